#!/usr/bin/env python3
"""End-to-end check of onnx-memsched on real model files.

Usage:
    python scripts/check_outputs.py --tool target/release/onnx-memsched [options] MODEL.onnx...

For every model:

  input      `tool --scheduler input MODEL OUT` must give a file byte-identical
             to MODEL.
  SCHEDULER  (each --scheduler, default dfs) `tool --scheduler S MODEL OUT`, then:
             * onnx.checker accepts OUT (full_check, i.e. with strict shape
               inference; when that fails on the input model as well, the plain
               check). A missing external-data file is replaced by a sparse
               placeholder of the right size in a scratch folder, because the
               checker only needs it to exist;
             * OUT has the same nodes as MODEL (multiset of serialized
               NodeProtos) and they are topologically sorted (every input is a
               graph input, an initializer, "" or the output of an earlier node;
               names a subgraph reads from the outer scope count as inputs of
               the node that owns it);
             * everything but the node order is identical (both models with
               graph.node cleared serialize to the same bytes), and so is the
               file size;
             * with --ort: onnxruntime (graph optimizations off, PRIORITY_BASED
               execution order, i.e. file order) gives bit-identical outputs
               (same dtypes, shapes and bytes) for MODEL and OUT on the same
               random inputs.

One line per model and scheduler (`ok MODEL SCHEDULER ...` or
`FAIL MODEL: SCHEDULER: reason`), then `N passed, M failed`. Exit status 1 if
anything failed, 2 on bad usage.

Models whose external data file is missing are checked without their weights;
--ort skips them unless --materialize is given: then materialize.py (found next
to the model, in its parent folder, or given by --materialize-script) writes
the model and regenerated weights into a scratch folder and the tool runs on
that copy, so its outputs need the data to be linked or copied next to them.

All outputs go to a temporary folder (removed at the end unless --keep-temp),
never next to the inputs. Needs: pip install onnx numpy (and onnxruntime for --ort).
"""

import argparse
import collections
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto

from node_order import canonical_node


# ---------------------------------------------------------------- model walking

def subgraphs(node):
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.g
        elif a.type == AttributeProto.GRAPHS:
            yield from a.graphs


def all_graphs(graph):
    yield graph
    for node in graph.node:
        for sg in subgraphs(node):
            yield from all_graphs(sg)


def all_tensors(model):
    """Initializers of all (sub)graphs and tensor-valued node attributes."""
    for g in all_graphs(model.graph):
        yield from g.initializer
        for s in g.sparse_initializer:
            yield s.values
            yield s.indices
        for node in g.node:
            for a in node.attribute:
                if a.type == AttributeProto.TENSOR:
                    yield a.t
                elif a.type == AttributeProto.TENSORS:
                    yield from a.tensors


def external_data(model):
    """{location: bytes needed} over every tensor stored as external data."""
    need = {}
    for t in all_tensors(model):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        n = math.prod(t.dims) if t.dims else 1
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        except Exception:
            itemsize = 8
        end = int(info.get("offset", 0)) + int(info.get("length", n * itemsize))
        need[loc] = max(need.get(loc, 0), end)
    return need


def missing_data(model, folder):
    return sorted(loc for loc in external_data(model) if not os.path.isfile(os.path.join(folder, loc)))


def outer_names(graph):
    """Names a (sub)graph reads that it does not define itself."""
    defined = {""}
    defined.update(i.name for i in graph.input)
    defined.update(t.name for t in graph.initializer)
    defined.update(s.values.name for s in graph.sparse_initializer)
    used = set()
    for node in graph.node:
        defined.update(node.output)
        used.update(node.input)
        for sg in subgraphs(node):
            used |= outer_names(sg)
    return used - defined


def topo_error(graph):
    """None if the top-level nodes are topologically sorted, else why not."""
    available = {""}
    available.update(i.name for i in graph.input)
    available.update(t.name for t in graph.initializer)
    available.update(s.values.name for s in graph.sparse_initializer)
    producer = {}
    for i, node in enumerate(graph.node):
        for o in node.output:
            if o:
                producer.setdefault(o, i)
    for i, node in enumerate(graph.node):
        implicit = set()
        for sg in subgraphs(node):
            implicit |= outer_names(sg)
        for name in list(node.input) + sorted(implicit - set(node.input)):
            if name in available:
                continue
            what = f"node {i} ({node.name or node.op_type})"
            how = "its subgraph reads" if name in implicit and name not in node.input else "reads"
            if name in producer:
                return f"{what} {how} {name!r} before node {producer[name]} produces it"
            return f"{what} {how} {name!r}, which nothing defines"
        available.update(node.output)
    for o in graph.output:
        if o.name not in available:
            return f"graph output {o.name!r} is never produced"
    return None


def without_nodes(model):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.node[:]
    return m.SerializeToString()


def node_multiset(model):
    return collections.Counter(canonical_node(n) for n in model.graph.node)


# ---------------------------------------------------------------- checker

def checkable_copy(path, model, scratch):
    """`path` if its external data is all there, else a copy of it in a new
    scratch folder next to sparse placeholders for the missing data files."""
    folder = os.path.dirname(os.path.abspath(path))
    missing = missing_data(model, folder)
    if not missing:
        return path
    d = tempfile.mkdtemp(prefix="check-", dir=scratch)
    copy = os.path.join(d, os.path.basename(path))
    shutil.copyfile(path, copy)
    need = external_data(model)
    for loc in missing:
        target = os.path.normpath(os.path.join(d, loc))
        if os.path.isabs(loc) or not target.startswith(d + os.sep):
            continue  # unsafe location: leave it to the checker to reject
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.truncate(need[loc])
    return copy


def run_checker(out_path, out_model, in_path, in_model, scratch):
    """(ok, what) for onnx.checker on the output, as strict as the input allows."""
    out_file = checkable_copy(out_path, out_model, scratch)
    try:
        onnx.checker.check_model(out_file, full_check=True)
        return True, "checker full"
    except Exception as e_full:
        full_error = first_line(e_full)
    try:
        onnx.checker.check_model(checkable_copy(in_path, in_model, scratch), full_check=True)
    except Exception:
        # The input fails the full check too: require the plain check.
        try:
            onnx.checker.check_model(out_file)
            return True, "checker basic (full_check rejects the input too)"
        except Exception as e:
            return False, f"onnx.checker rejects the output: {first_line(e)}"
    return False, f"onnx.checker(full_check) rejects the output but not the input: {full_error}"


def first_line(e):
    text = str(e).strip() or type(e).__name__
    line = text.splitlines()[0]
    return line if len(line) < 400 else line[:400] + "..."


# ---------------------------------------------------------------- onnxruntime

def make_feeds(model, seed):
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        if vi.type.WhichOneof("value") != "tensor_type":
            raise ValueError(f"input {vi.name!r} is not a tensor; cannot make a value for it")
        tt = vi.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        if dtype == np.bool_:
            value = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            value = rng.integers(0, 2, size=shape).astype(dtype)  # valid indices
        elif np.issubdtype(dtype, np.floating):
            value = rng.standard_normal(shape).astype(dtype)
        else:
            raise ValueError(f"input {vi.name!r} has dtype {dtype}; cannot make a value for it")
        feeds[vi.name] = value
    return feeds


def ort_run(path, feeds, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if hasattr(ort, "ExecutionOrder"):
        so.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds)))


def difference(a, b, where):
    """None if a and b are bit-identical, else a description."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype != b.dtype:
            return f"{where}: dtype {a.dtype} != {b.dtype}"
        if a.shape != b.shape:
            return f"{where}: shape {a.shape} != {b.shape}"
        same = np.array_equal(a, b) if a.dtype == object else a.tobytes() == b.tobytes()
        if same:
            return None
        if np.issubdtype(a.dtype, np.number):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            unequal = a != b
            if np.issubdtype(a.dtype, np.floating):
                unequal &= ~(np.isnan(a) & np.isnan(b))
            count = int(np.count_nonzero(unequal))
            return f"{where}: {count} of {a.size} values differ (max abs diff {np.nanmax(diff):.3g})"
        return f"{where}: values differ"
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f"{where}: {len(a)} != {len(b)} elements"
        for i, (x, y) in enumerate(zip(a, b)):
            d = difference(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{where}: keys differ"
        for k in a:
            d = difference(a[k], b[k], f"{where}[{k!r}]")
            if d:
                return d
        return None
    if type(a) is not type(b) or a != b:
        return f"{where}: {type(a).__name__} {a!r} != {type(b).__name__} {b!r}"
    return None


def compare_outputs(ref, got):
    if list(ref) != list(got):
        return f"output names differ: {list(ref)} != {list(got)}"
    for name in ref:
        d = difference(ref[name], got[name], f"output {name!r}")
        if d:
            return d
    return None


# ---------------------------------------------------------------- the tool

PEAK_RE = re.compile(r"new order\s+peak\s+.*?\(([\d,]+) B\)")


def run_tool(args, scheduler, src, dst):
    """(error or None, seconds, stderr)."""
    cmd = [args.tool, "--scheduler", scheduler, *args.tool_arg, src, dst]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return f"the tool did not finish in {args.timeout:g} s", time.monotonic() - t0, ""
    seconds = time.monotonic() - t0
    if p.returncode != 0:
        tail = " | ".join(p.stderr.strip().splitlines()[-3:])
        return f"the tool exited with status {p.returncode}: {tail}", seconds, p.stderr
    if not os.path.isfile(dst):
        return "the tool exited 0 but wrote no file", seconds, p.stderr
    return None, seconds, p.stderr


def find_materialize(args, model_path):
    if args.materialize_script:
        return args.materialize_script
    folder = os.path.dirname(os.path.abspath(model_path))
    for d in (folder, os.path.dirname(folder)):
        candidate = os.path.join(d, "materialize.py")
        if os.path.isfile(candidate):
            return candidate
    return None


# ---------------------------------------------------------------- one model

class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, model, scheduler, details):
        self.passed += 1
        print(f"ok {model} {scheduler} {details}".rstrip(), flush=True)

    def fail(self, model, scheduler, reason):
        self.failed += 1
        print(f"FAIL {model}: {scheduler}: {reason}", flush=True)


def check_model_file(args, model_path, work, results):
    shown = model_path
    name = os.path.basename(model_path)
    with open(model_path, "rb") as f:
        original = f.read()
    in_model = onnx.load_from_string(original)
    folder = os.path.dirname(os.path.abspath(model_path))
    missing = missing_data(in_model, folder)

    # Where the tool reads from: the model itself, or a materialized copy.
    src = model_path
    ort_note = None
    if args.ort and missing:
        if not args.materialize:
            ort_note = f"ort skipped (external data {', '.join(missing)} missing; --materialize regenerates it)"
        else:
            script = find_materialize(args, model_path)
            if script is None:
                ort_note = "ort skipped (no materialize.py found; give --materialize-script)"
            else:
                mat = os.path.join(work, "materialized")
                t0 = time.monotonic()
                p = subprocess.run([sys.executable, script, model_path, "--out-dir", mat],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    tail = " | ".join(p.stderr.strip().splitlines()[-3:])
                    for s in ["input", *args.scheduler]:
                        results.fail(shown, s, f"materialize.py failed: {tail}")
                    return
                src = os.path.join(mat, name)
                print(f"  materialized {name} in {time.monotonic() - t0:.1f} s", flush=True)
    run_ort = args.ort and ort_note is None

    # The reference run comes first, before the tool has touched (linked)
    # the source's data file.
    reference = None
    ref_error = None
    feeds = None
    if run_ort:
        try:
            feeds = make_feeds(in_model, args.seed)
            t0 = time.monotonic()
            reference = ort_run(src, feeds, args.ort_threads)
            ref_seconds = time.monotonic() - t0
        except Exception as e:
            ref_error = f"onnxruntime cannot run the input model: {first_line(e)}"

    # (a) the input order gives the input's bytes.
    dst = os.path.join(work, "input", name)
    os.makedirs(os.path.dirname(dst))
    err, seconds, _ = run_tool(args, "input", src, dst)
    if err is None:
        with open(dst, "rb") as f:
            got = f.read()
        if got != original:
            err = f"output differs from the input ({len(got)} vs {len(original)} bytes)"
    if err:
        results.fail(shown, "input", err)
    else:
        results.ok(shown, "input", f"byte-identical, tool {seconds:.2f} s")

    in_nodes = node_multiset(in_model)
    in_rest = without_nodes(in_model)

    # (b) every other scheduler.
    for scheduler in args.scheduler:
        dst = os.path.join(work, "out-" + scheduler, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        err, seconds, stderr = run_tool(args, scheduler, src, dst)
        if err:
            results.fail(shown, scheduler, err)
            continue
        try:
            details = [f"tool {seconds:.2f} s"]
            m = PEAK_RE.search(stderr)
            if m:
                details.append(f"peak {m.group(1)} B")
            reason = None
            with open(dst, "rb") as f:
                out_bytes = f.read()
            if len(out_bytes) != len(original):
                reason = f"file size {len(out_bytes)} != input's {len(original)}"
            out_model = onnx.load_from_string(out_bytes) if reason is None else None
            if reason is None and node_multiset(out_model) != in_nodes:
                reason = "the output's nodes are not the input's nodes (as a multiset)"
            if reason is None:
                reason = topo_error(out_model.graph)
                if reason:
                    reason = "not topologically sorted: " + reason
            if reason is None and without_nodes(out_model) != in_rest:
                reason = "the model differs in more than the node order"
            reasons = [reason] if reason else []
            if not reasons:
                # The structure is right: run the checker and onnxruntime
                # independently, so that one failing does not hide the other.
                ok, what = run_checker(dst, out_model, model_path, in_model, work)
                (details if ok else reasons).append(what)
            if args.ort and reason is None:
                if ort_note:
                    details.append(ort_note)
                elif ref_error:
                    reasons.append(ref_error)
                else:
                    t0 = time.monotonic()
                    try:
                        got = ort_run(dst, feeds, args.ort_threads)
                        diff = compare_outputs(reference, got)
                    except Exception as e:
                        diff = f"onnxruntime cannot run the output: {first_line(e)}"
                    if diff:
                        reasons.append(diff)
                    else:
                        details.append(f"ort bit-identical ({len(got)} outputs, "
                                       f"{ref_seconds:.2f} + {time.monotonic() - t0:.2f} s)")
            reason = "; ".join(reasons)
            if reason:
                results.fail(shown, scheduler, reason + f" (passed: {', '.join(details)})")
            else:
                results.ok(shown, scheduler, ", ".join(details))
        except Exception as e:
            results.fail(shown, scheduler, f"{type(e).__name__}: {first_line(e)}")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    ap.add_argument("models", nargs="+", metavar="MODEL", help="ONNX model files")
    ap.add_argument("--tool", required=True, help="path to the onnx-memsched binary")
    ap.add_argument("--scheduler", action="append", metavar="NAME",
                    help="scheduler to check besides `input` (repeatable; default: dfs)")
    ap.add_argument("--tool-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for the tool, e.g. --tool-arg=--time-limit=10 (repeatable)")
    ap.add_argument("--timeout", type=float, default=900, metavar="SECONDS",
                    help="time limit of one tool run (default 900)")
    ap.add_argument("--ort", action="store_true",
                    help="also require bit-identical onnxruntime outputs")
    ap.add_argument("--materialize", action="store_true",
                    help="with --ort: regenerate missing external data with materialize.py")
    ap.add_argument("--materialize-script", metavar="PATH",
                    help="materialize.py to use (default: next to the model or in its parent folder)")
    ap.add_argument("--seed", type=int, default=0, help="numpy seed of the random inputs (default 0)")
    ap.add_argument("--ort-threads", type=int, default=1, metavar="N",
                    help="onnxruntime intra-op threads (default 1)")
    ap.add_argument("--keep-temp", action="store_true", help="keep the temporary folder and print its path")
    args = ap.parse_args()
    args.scheduler = args.scheduler or ["dfs"]
    args.scheduler = [s for s in dict.fromkeys(args.scheduler) if s != "input"]
    if not (os.path.isfile(args.tool) and os.access(args.tool, os.X_OK)):
        ap.error(f"--tool {args.tool}: not an executable file")
    args.tool = os.path.abspath(args.tool)
    if args.materialize and not args.ort:
        ap.error("--materialize only makes sense with --ort")
    if args.ort:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            ap.error("--ort needs onnxruntime (pip install onnxruntime)")

    results = Results()
    root = tempfile.mkdtemp(prefix="check_outputs-")
    t_start = time.monotonic()
    try:
        for i, model_path in enumerate(args.models):
            work = os.path.join(root, f"{i:04d}")
            os.makedirs(work)
            t0 = time.monotonic()
            try:
                if not os.path.isfile(model_path):
                    raise FileNotFoundError("no such file")
                check_model_file(args, model_path, work, results)
            except Exception as e:
                results.fail(model_path, "all", f"{type(e).__name__}: {first_line(e)}")
            finally:
                if not args.keep_temp:
                    shutil.rmtree(work, ignore_errors=True)
            print(f"  {model_path}: {time.monotonic() - t0:.1f} s", flush=True)
    finally:
        if args.keep_temp:
            print(f"  outputs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"  total {time.monotonic() - t_start:.1f} s")
    print(f"{results.passed} passed, {results.failed} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
