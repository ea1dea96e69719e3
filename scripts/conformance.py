#!/usr/bin/env python3
"""The ONNX backend test suite as a conformance check of onnx-memsched.

Usage:
    python scripts/conformance.py --tool target/release/onnx-memsched [--suite DIR] [--jobs 1|2]
        [--only REGEX] [--subset N] [--time-limit S] [--json OUT.json]

The suite: the `onnx` wheel ships the node test case definitions
(`onnx/backend/test/case/node/*.py`) but not their generated models, so they
are regenerated with `onnx.backend.test.cmd_tools.generate_data` into
`--suite` (default `target/onnx-suite`, reused when it is already there and
was made by the installed onnx version); the `simple`, `pytorch-converted` and
`pytorch-operator` cases the wheel ships with data are checked too.

For every model (each with its own test_data_set_0 inputs):

  ort-cannot-run  onnxruntime (ORT_DISABLE_ALL, PRIORITY_BASED execution
                  order, i.e. file order) cannot load or run the original
                  model: not counted against the tool, listed for reference.
  refused         the tool exits 1. When its message names `--unknown-dim`,
                  the advice is followed (`--unknown-dim 1`) and the model is
                  checked with it (`ok-unknown-dim`: all checks but the peaks,
                  which rest on the assumed size); when it advises
                  `--input-shape NAME=...`, the input's real shape is given;
                  `refused` then means the advice did not work either (or
                  cannot be followed: the detail says so).
  crash/timeout   any other exit status, or no answer within the time limit
                  plus 60 s.
  checker         onnx.checker rejects the written model.
  changed         the written model is not the original with only graph.node
                  permuted (node multiset, then everything else byte for byte).
  outputs-differ  onnxruntime's outputs of the two models differ in dtype,
                  shape or a single bit (models whose outputs differ between
                  two runs of the original, e.g. random ops, are `nondeterministic`
                  and not compared).
  peak-before / peak-after
                  the report's peak_bytes_before / peak_bytes_after differ
                  from an independent replay of the README's memory model on
                  the original / written node order, with every tensor's size
                  taken from onnxruntime's real values (every top-level node
                  output is made a graph output to read it).
  ok              all of the above hold.

Replay rules (README, "The memory model"): a node allocates its outputs while
its inputs are live; after it, tensors whose consumers have all run are freed,
and so are outputs nothing reads; graph inputs are live from the start, graph
outputs to the end; initializers and Constant outputs are weights (0); names a
subgraph reads from the outer scope are inputs of the node owning it; a tensor
read twice by one node counts once; the peak includes the start. A tensor's
bytes are its element count times the width of its ONNX type (sub-byte types
rounded up per tensor); strings count 0 bytes (the tool's documented rule);
a sequence counts the sum of its tensors, an absent optional 0. A
control-flow node's step adds the memory of its bodies by the README's rule
(If: the larger branch less the node's outputs; Loop: one iteration plus the
scan outputs; Scan: one iteration), with the body peaks the report gives: the
bodies' own figures are checked independently by scripts/check_bodies.py.

Prints one line per model that is not `ok`, then a table of failure classes
with the model names, the run time, and exits 1 if any class other than `ok`,
`ok-unknown-dim`, `ort-cannot-run` and `nondeterministic` has members. With
--known FILE (lines `CLASS KIND/NAME`, `#` comments), failures listed there are
expected (known bugs being fixed) and do not fail the run; a listed model that
now passes is reported so the list can shrink. Runs at most --jobs worker
processes (default 1; the machine is shared).
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED_KINDS = ("simple", "pytorch-converted", "pytorch-operator")

# Bits per element of every ONNX tensor type onnxruntime may return, by the
# name in onnxruntime's type strings (`tensor(float)`).
BITS = {
    "float": 32, "uint8": 8, "int8": 8, "uint16": 16, "int16": 16, "int32": 32, "int64": 64,
    "string": 0, "bool": 8, "float16": 16, "double": 64, "uint32": 32, "uint64": 64,
    "complex64": 64, "complex128": 128, "bfloat16": 16, "float8e4m3fn": 8, "float8e4m3fnuz": 8,
    "float8e5m2": 8, "float8e5m2fnuz": 8, "uint4": 4, "int4": 4, "float4e2m1": 4, "float8e8m0": 8,
    "uint2": 2, "int2": 2,
}


# ------------------------------------------------------------------ the suite
def generate_suite(folder):
    """Regenerates the node cases into folder/node (skipped when a stamp of
    the same onnx version is there); returns the list of case folders."""
    import onnx

    stamp = os.path.join(folder, "onnx-version")
    if not (os.path.exists(stamp) and open(stamp).read() == onnx.__version__):
        import onnx.backend.test.case.node as node_cases
        import onnx.backend.test.cmd_tools as cmd_tools

        os.makedirs(folder, exist_ok=True)
        t = time.time()
        # generate_data writes what model_test.collect_testcases returns; in
        # onnx >= 1.16 that is only the model-level cases, so point it at the
        # node cases (its writer handles both kinds).
        original = cmd_tools.model_test.collect_testcases
        cmd_tools.model_test.collect_testcases = node_cases.collect_testcases
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cmd_tools.generate_data(argparse.Namespace(output=folder))
        finally:
            cmd_tools.model_test.collect_testcases = original
        with open(stamp, "w") as f:
            f.write(onnx.__version__)
        print(f"generated the node suite into {folder} in {time.time() - t:.0f} s", flush=True)
    cases = []
    node_dir = os.path.join(folder, "node")
    cases += [os.path.join(node_dir, d) for d in sorted(os.listdir(node_dir))]
    shipped = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    for kind in SHIPPED_KINDS:
        d = os.path.join(shipped, kind)
        if os.path.isdir(d):
            cases += [os.path.join(d, c) for c in sorted(os.listdir(d))]
    return [c for c in cases if os.path.exists(os.path.join(c, "model.onnx"))]


def case_name(case):
    if case.endswith(".onnx"):
        return "model/" + os.path.basename(case)
    return os.path.basename(os.path.dirname(case)) + "/" + os.path.basename(case)


# ------------------------------------------------------------ one model check
# Tensor types numpy cannot hold: fed to onnxruntime as raw storage.
EXOTIC_STORAGE = {"BFLOAT16": "uint16", "FLOAT8E4M3FN": "uint8", "FLOAT8E4M3FNUZ": "uint8", "FLOAT8E5M2": "uint8",
                  "FLOAT8E5M2FNUZ": "uint8", "FLOAT8E8M0": "uint8"}


def load_inputs(case, model):
    """The case's test_data_set_0 inputs by name: numpy arrays, lists
    (sequences), None (empty optionals), or (onnx type, storage array) for
    types numpy cannot hold."""
    from onnx import numpy_helper, TensorProto, SequenceProto, OptionalProto

    data = os.path.join(case, "test_data_set_0")
    feeds = {}
    inits = {t.name for t in model.graph.initializer}
    for j, vi in enumerate(model.graph.input):
        path = os.path.join(data, f"input_{j}.pb")
        if vi.name in inits or not os.path.exists(path):
            continue
        raw = open(path, "rb").read()
        if vi.type.HasField("sequence_type"):
            p = SequenceProto()
            p.ParseFromString(raw)
            feeds[vi.name] = numpy_helper.to_list(p)
        elif vi.type.HasField("optional_type"):
            p = OptionalProto()
            p.ParseFromString(raw)
            feeds[vi.name] = numpy_helper.to_optional(p)
        else:
            p = TensorProto()
            p.ParseFromString(raw)
            storage = EXOTIC_STORAGE.get(TensorProto.DataType.Name(p.data_type))
            arr = numpy_helper.to_array(p)
            feeds[vi.name] = (p.data_type, arr.view(storage)) if storage else arr
    return feeds


def random_inputs(model):
    """Inputs for a model outside the suite (--model): every symbolic dim 1,
    as the tool assumes for unbound symbols; integers 0 (valid indices),
    floats standard normal, booleans true."""
    import numpy as np
    import onnx

    rng = np.random.default_rng(0)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[vi.name] = np.ones(shape, dtype)
        else:
            feeds[vi.name] = np.zeros(shape, dtype)
    return feeds


def session(model_bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    so.log_severity_level = 4
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def norm_ort(ov, ort_type):
    """An OrtValue as ("tensor", element type, shape, raw bytes or strings)."""
    import ctypes

    if not ov.has_value():
        return None
    if not ov.is_tensor():
        return norm_np(ov.numpy(), ort_type)
    elem = re.match(r"tensor\((\w+)\)", ov.data_type()).group(1)
    shape = tuple(ov.shape())
    if elem == "string":
        return ("tensor", elem, shape, tuple(ov.numpy().ravel().tolist()))
    n = ov.tensor_size_in_bytes()
    return ("tensor", elem, shape, ctypes.string_at(ov.data_ptr(), n) if n else b"")


def norm_np(v, ort_type):
    """A value onnxruntime returned as numpy, list or None, normalized like norm_ort."""
    import numpy as np

    if v is None:
        return None
    if isinstance(v, list):
        inner = ort_type[4:-1] if ort_type.startswith("seq(") else "tensor(float)"
        return ("seq", tuple(norm_np(x, inner) for x in v))
    if ort_type.startswith("optional("):
        return norm_np(v, ort_type[9:-1])
    v = np.asarray(v)
    m = re.match(r"tensor\((\w+)\)", ort_type)
    elem = m.group(1) if m else v.dtype.name
    if v.dtype == object:
        return ("tensor", elem, v.shape, tuple(v.ravel().tolist()))
    return ("tensor", elem, v.shape, np.ascontiguousarray(v).tobytes())


def run(sess, feeds):
    """Outputs by name, normalized (norm_ort). Tensor-only feeds go through
    OrtValues, so that every tensor type round-trips as raw bytes."""
    import onnxruntime as ort

    outs = sess.get_outputs()
    if all(isinstance(v, tuple) or (hasattr(v, "dtype") and v.dtype.kind not in "OUS") for v in feeds.values()):
        ovs = {}
        for k, v in feeds.items():
            if isinstance(v, tuple):
                ovs[k] = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(v[1], v[0])
            else:
                ovs[k] = ort.OrtValue.ortvalue_from_numpy(v)
        try:
            res = sess.run_with_ort_values([o.name for o in outs], ovs)
            return {o.name: norm_ort(r, o.type) for o, r in zip(outs, res)}
        except Exception:
            if any(isinstance(v, tuple) for v in feeds.values()):
                raise
    res = sess.run(None, feeds)
    return {o.name: norm_np(v, o.type) for o, v in zip(outs, res)}


def value_bytes(value):
    """Real bytes of one normalized value (see the module doc)."""
    if value is None:
        return 0
    if value[0] == "seq":
        return sum(value_bytes(x) for x in value[1])
    _, elem, shape, _ = value
    n = 1
    for d in shape:
        n *= d
    return (n * BITS[elem] + 7) // 8


def feed_bytes(type_proto, value):
    """Real bytes of a graph input's value, by its declared ONNX type."""
    import onnx

    if value is None:
        return 0
    if type_proto.HasField("sequence_type"):
        return sum(feed_bytes(type_proto.sequence_type.elem_type, v) for v in value)
    if type_proto.HasField("optional_type"):
        return feed_bytes(type_proto.optional_type.elem_type, value)
    if type_proto.HasField("tensor_type"):
        arr = value[1] if isinstance(value, tuple) else value
        elem = onnx.TensorProto.DataType.Name(type_proto.tensor_type.elem_type).lower()
        return value_bytes(("tensor", elem, arr.shape, None))
    return 0


def outer_names(graph):
    """Names a (sub)graph reads that it does not define itself."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used = []
    for n in graph.node:
        used += [x for x in n.input if x]
        for a in n.attribute:
            for g in list(a.g.node and [a.g] or []) + list(a.graphs):
                used += outer_names(g)
        defined |= set(n.output)
    used += [o.name for o in graph.output]
    return [u for u in dict.fromkeys(used) if u not in defined]


def node_inputs(node):
    names = [x for x in node.input if x]
    for a in node.attribute:
        for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            names += outer_names(g)
    return list(dict.fromkeys(names))


def body_extras(graph, report, after, original_nodes):
    """Per node of `graph`, the extra bytes of its control-flow bodies by the
    README's rule, from the report's body peaks (`after`: the written ones);
    the bodies' own figures are checked by scripts/check_bodies.py."""
    import onnx
    from node_order import canonical_node

    by_index = {}
    for b in report.get("bodies", []):
        if len(b["path"]) == 1:
            by_index.setdefault(b["path"][0]["node_index"], []).append(
                b["peak_bytes_after"] if after else b["peak_bytes_before"])
    index_of = {}
    for i, n in enumerate(original_nodes):
        index_of.setdefault(canonical_node(n), []).append(i)
    extras = []
    for n in graph.node:
        if not any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute):
            extras.append(None)
            continue
        candidates = index_of.get(canonical_node(n), [])
        peaks = by_index.get(candidates.pop(0), []) if candidates else []
        extras.append((n.op_type, peaks))
    return extras


def replay(graph, sizes, extras=None):
    """The README's memory model on graph.node in file order; sizes by name;
    `extras` (from body_extras) adds the memory of control-flow bodies."""
    weights = {t.name for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            weights |= set(n.output)
    size = lambda t: 0 if t in weights else sizes[t]  # noqa: E731
    ins = [node_inputs(n) for n in graph.node]
    last = {}
    for i, names in enumerate(ins):
        for t in names:
            last[t] = i
    outputs = {o.name for o in graph.output}
    live = {i.name for i in graph.input if i.name not in weights}
    cur = sum(size(t) for t in live)
    peak = cur
    for i, n in enumerate(graph.node):
        new = [t for t in dict.fromkeys(n.output) if t and t not in live]
        cur += sum(size(t) for t in new)
        live |= set(new)
        extra = 0
        if extras and extras[i] and extras[i][1]:  # a body the tool could not size is not counted (it says so)
            op, peaks = extras[i]
            p = max(peaks, default=0)
            outs = sum(size(t) for t in dict.fromkeys(n.output) if t)
            if op == "If":
                extra = max(0, p - outs)
            elif op == "Loop":
                extra = p + sum(size(t) for t in n.output[max(0, len(n.input) - 2):] if t)
            else:
                extra = p
        peak = max(peak, cur + extra)
        for t in set(ins[i]) | set(new):
            if t in live and t not in outputs and last.get(t, -1) <= i:
                live.discard(t)
                cur -= size(t)
    return peak


def check_case(case, tool, time_limit, scratch):
    """One model: returns (class, detail, seconds)."""
    import onnx

    started = time.time()
    model_path = case if case.endswith(".onnx") else os.path.join(case, "model.onnx")
    original = onnx.load(model_path)
    try:
        feeds = random_inputs(original) if case.endswith(".onnx") else load_inputs(case, original)
        first = run(session(original.SerializeToString()), feeds)
    except Exception as e:  # onnxruntime refuses the model: not the tool's business
        return "ort-cannot-run", str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    out = os.path.join(scratch, "out.onnx")
    rep = os.path.join(scratch, "report.json")
    for f in (out, rep):
        if os.path.exists(f):
            os.remove(f)
    base = [tool, "-q", "--report", rep, "--time-limit", str(time_limit)]
    flags = []
    try:
        p = subprocess.run(base + [model_path, out], capture_output=True, text=True, timeout=time_limit + 60)
        advice = re.search(r"--input-shape ([^=\s]+)=", p.stderr) if p.returncode == 1 else None
        unfollowable = ""
        if p.returncode == 1 and "--unknown-dim" in p.stderr:
            flags = ["--unknown-dim", "1"]
        elif advice:
            # Follow the advice with the input's real shape, where it has one.
            value = feeds.get(advice.group(1))
            arr = value[1] if isinstance(value, tuple) else value
            if hasattr(arr, "shape"):
                flags = ["--input-shape", advice.group(1) + "=" + "x".join(str(d) for d in arr.shape)]
            else:
                unfollowable = f" [the advice --input-shape cannot be followed: `{advice.group(1)}` is not a tensor]"
        if p.returncode == 0 and not flags and os.path.exists(rep):
            # A symbol the tool assumed 1 (said in the assumptions): follow
            # the summary's advice with the real shapes of the inputs.
            if any("unbound: assumed 1" in a for a in json.load(open(rep)).get("assumptions", [])):
                for name, value in feeds.items():
                    arr = value[1] if isinstance(value, tuple) else value
                    if hasattr(arr, "shape"):
                        flags += ["--input-shape", name + "=" + "x".join(str(d) for d in arr.shape)]
        if flags:
            p = subprocess.run(base + flags + [model_path, out], capture_output=True, text=True,
                               timeout=time_limit + 60)
    except subprocess.TimeoutExpired:
        return "timeout", f"no answer in {time_limit + 60} s"
    if p.returncode == 1:
        msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "(no message)"
        tried = f" [also refused with {' '.join(flags)}]" if flags else unfollowable
        return "refused", msg.replace(model_path, "MODEL")[:300] + tried
    if p.returncode != 0 or not os.path.exists(out):
        return "crash", f"exit {p.returncode}: {p.stderr.strip()[-300:]}"
    written = onnx.load(out)
    try:
        onnx.checker.check_model(written)
    except Exception as e:
        try:  # the suite has models the checker rejects as they are
            onnx.checker.check_model(original)
        except Exception:
            pass
        else:
            return "checker", str(e).splitlines()[0][:200]
    from node_order import canonical_node as key
    if collections.Counter(map(key, original.graph.node)) != collections.Counter(map(key, written.graph.node)):
        return "changed", "the node multiset differs"
    a, b = onnx.ModelProto(), onnx.ModelProto()
    a.CopyFrom(original)
    b.CopyFrom(written)
    a.graph.ClearField("node")
    b.graph.ClearField("node")
    if a.SerializeToString(deterministic=True) != b.SerializeToString(deterministic=True):
        return "changed", "something besides the node order differs"
    # Outputs: bit-identical, unless the original is not reproducible itself.
    second = run(session(original.SerializeToString()), feeds)
    deterministic = first == second
    new = run(session(written.SerializeToString()), feeds)
    if deterministic and (set(new) != set(first) or not all(first[k] == new[k] for k in first)):
        bad = [k for k in first if k not in new or not first[k] == new[k]]
        return "outputs-differ", f"outputs {bad[:3]}"
    # Real sizes: every top-level node output becomes a graph output.
    probe = onnx.ModelProto()
    probe.CopyFrom(original)
    have = {o.name for o in probe.graph.output}
    for n in probe.graph.node:
        for t in n.output:
            if t and t not in have:
                probe.graph.output.append(onnx.ValueInfoProto(name=t))
                have.add(t)
    try:
        values = run(session(probe.SerializeToString()), feeds)
    except Exception as e:
        return "probe-failed", str(e).splitlines()[0][:160]
    sizes = {k: value_bytes(v) for k, v in values.items()}
    for i in original.graph.input:
        if i.name in feeds:
            sizes[i.name] = feed_bytes(i.type, feeds[i.name])
    for i in original.graph.input:
        sizes.setdefault(i.name, 0)
    report = json.load(open(rep))
    try:
        before = replay(original.graph, sizes, body_extras(original.graph, report, False, original.graph.node))
        after = replay(written.graph, sizes, body_extras(written.graph, report, True, original.graph.node))
    except KeyError as e:
        return "probe-failed", f"no real size for tensor {e}"
    note = (" (with " + " ".join(flags) + ")") if flags else ""
    if not deterministic:
        return "nondeterministic", "outputs differ between two runs of the original; peaks not compared" + note
    if flags and flags[0] == "--unknown-dim":
        # Figures resting on an assumed size are not compared.
        return "ok-unknown-dim", f"reported {report['peak_bytes_before']} -> {report['peak_bytes_after']} B, " \
            f"real {before} -> {after} B{note}"
    if report["peak_bytes_before"] != before:
        return "peak-before", f"reported {report['peak_bytes_before']} B, real {before} B{note}"
    if report["peak_bytes_after"] != after:
        return "peak-after", f"reported {report['peak_bytes_after']} B, real {after} B{note}"
    return ("ok-unknown-dim" if flags else "ok"), f"peak {before} -> {after} B{note}"


def worker(tool, time_limit):
    """Reads case folders on stdin, writes one JSON line per case."""
    import numpy as np
    import warnings

    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    with tempfile.TemporaryDirectory() as scratch:
        for line in sys.stdin:
            case = line.strip()
            t = time.time()
            try:
                cls, detail = check_case(case, tool, time_limit, scratch)
            except Exception as e:  # the checker's own failure, reported as such
                cls, detail = "checker-error", f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            print(json.dumps({"case": case, "class": cls, "detail": detail, "seconds": time.time() - t}), flush=True)


# ------------------------------------------------------------------- driver
class Worker:
    def __init__(self, tool, time_limit):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--tool", tool, "--time-limit", str(time_limit)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.case = None

    def send(self, case):
        self.case = case
        self.proc.stdin.write(case + "\n")
        self.proc.stdin.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--suite", default=os.path.join(HERE, "..", "target", "onnx-suite"))
    ap.add_argument("--jobs", type=int, default=1, choices=[1, 2])
    ap.add_argument("--only", help="regular expression on KIND/NAME")
    ap.add_argument("--subset", type=int, help="every Nth case only (a fast sample)")
    ap.add_argument("--time-limit", type=float, default=20.0, help="the tool's --time-limit per model")
    ap.add_argument("--json", help="write every case's class and detail here")
    ap.add_argument("--known", help="expected failures, lines `CLASS KIND/NAME`")
    ap.add_argument("--model", action="append", default=[],
                    help="check this model (random inputs, symbols 1) instead of the suite; repeatable")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    tool = os.path.abspath(args.tool)
    if args.worker:
        return worker(tool, args.time_limit)
    started = time.time()
    cases = [os.path.abspath(m) for m in args.model] or generate_suite(os.path.abspath(args.suite))
    if args.only:
        cases = [c for c in cases if re.search(args.only, case_name(c))]
    if args.subset:
        cases = cases[:: args.subset]
    print(f"{len(cases)} models, {args.jobs} worker(s)", flush=True)
    import selectors

    results = []
    todo = list(reversed(cases))
    workers = [Worker(tool, args.time_limit) for _ in range(min(args.jobs, len(cases)))]
    sel = selectors.DefaultSelector()

    def feed(w):
        if todo:
            w.send(todo.pop())
            sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            w.since = time.time()
        else:
            w.proc.stdin.close()
            w.case = None

    for w in workers:
        feed(w)
    deadline_per_case = args.time_limit + 180
    while any(w.case for w in workers):
        for key, _ in sel.select(timeout=5):
            w = key.data
            sel.unregister(w.proc.stdout)
            line = w.proc.stdout.readline()
            if line:
                results.append(json.loads(line))
            else:  # the worker died (onnxruntime crashed): record it and start another
                results.append({"case": w.case, "class": "checker-crash", "detail": "onnxruntime or python died",
                                "seconds": time.time() - w.since})
                idx = workers.index(w)
                w = workers[idx] = Worker(tool, args.time_limit)
            r = results[-1]
            if r["class"] not in ("ok", "ok-unknown-dim", "ort-cannot-run"):
                print(f"{r['class']:16} {case_name(r['case'])}: {r['detail']}", flush=True)
            feed(w)
        for i, w in enumerate(workers):
            if w.case and time.time() - w.since > deadline_per_case:
                sel.unregister(w.proc.stdout)
                w.proc.kill()
                results.append({"case": w.case, "class": "timeout", "detail": "the check hung", "seconds": 0})
                workers[i] = Worker(tool, args.time_limit)
                feed(workers[i])
    by_class = collections.defaultdict(list)
    for r in results:
        by_class[r["class"]].append(case_name(r["case"]))
    print()
    print(f"{'class':18} {'models':>6}  names")
    for cls in sorted(by_class, key=lambda c: (-len(by_class[c]), c)):
        names = by_class[cls]
        shown = ", ".join(n.split("/", 1)[1] for n in names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
        print(f"{cls:18} {len(names):6}  {shown}")
    print(f"\n{len(results)} models in {time.time() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    fine = ("ok", "ok-unknown-dim", "ort-cannot-run", "nondeterministic")
    known = set()
    if args.known:
        for line in open(args.known):
            line = line.split("#", 1)[0].strip()
            if line:
                known.add(tuple(line.split(None, 1)))
    got = {(r["class"], case_name(r["case"])) for r in results}
    bad = sorted((c, n) for c, n in got if c not in fine and (c, n) not in known)
    checked = {case_name(r["case"]) for r in results}
    fixed = sorted((c, n) for c, n in known if n in checked and (c, n) not in got)
    if fixed:
        print(f"{len(fixed)} known failures no longer happen (remove them from {args.known}):")
        for c, n in fixed:
            print(f"  {c} {n}")
    if args.known:
        print(f"{len(bad)} failures not in {args.known}" + (":" if bad else ""))
        for c, n in bad:
            print(f"  {c} {n}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
