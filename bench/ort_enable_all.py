#!/usr/bin/env python3
"""Arena peak of onnxruntime with its DEFAULT settings, input vs our default output.

Usage:
    python bench/ort_enable_all.py [--tool target/release/onnx-memsched] [--corpus DIR]
                                   [--sessions N] [--out FILE.md] [--json FILE.json] [MODEL.onnx ...]

Most users leave onnxruntime at its defaults: graph optimizations at
ORT_ENABLE_ALL (fusions, constant folding, NCHWc layout on x86), the default
execution order (reverse DFS), memory pattern and CPU arena on. For every
model (by default every corpus model and models/*.onnx) this script:

1. regenerates the weights with the corpus' materialize.py (models/ need none);
2. runs the tool with no flags (`onnx-memsched IN OUT -q --report R`);
3. runs IN and OUT in fresh processes, one at a time, 1 intra-op thread,
   same random inputs, twice each, with the profiler on, and reads the arena
   statistics onnxruntime >= 1.32 writes into every Node event:
   * first run: `mem_in_use_peak` minus the bytes in use before the first
     kernel (prepacked weights): the arena peak while tensors are allocated
     one by one (no memory pattern yet);
   * second run: the largest `mem_bytes_in_use` after a kernel minus the same
     baseline: with the memory pattern onnxruntime built during the first
     run (one block laid out by its planner), the steady state of a server;
   and checks that both files give bit-identical outputs;
4. with --sessions N (default 3), repeats step 3 in N fresh sessions per
   file (input and output alternating) and reports the median of each
   figure, its range when the sessions disagree, and how many different
   kernel orders onnxruntime ran: at ORT_ENABLE_ALL onnxruntime 1.32 does
   not always run one file in one order (its layout rewrite numbers new
   nodes differently from session to session on some models), so a single
   session can show a change that is only the session's luck.

Also reports the tool's figures (`runtimes` of the report, graph
optimizations off). Writes a markdown table (stdout, or --out) and the raw
rows (--json).
"""
import argparse
import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time


def profiled_session(model, scratch, level=None):
    """An onnxruntime session on `model` with the profiler on (profile files in
    `scratch`), 1 thread, every other option at its default; `level` names a
    GraphOptimizationLevel (default: ORT_ENABLE_ALL, the session default)."""
    import onnxruntime as ort

    so = ort.SessionOptions()  # defaults: ORT_ENABLE_ALL, default order, mem pattern, arena
    if level is not None:
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(scratch, "prof")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def arena_events(sess):
    """Ends `sess`'s profile (two runs) and returns its kernel events per run
    and the bytes in use before the first kernel (prepacked weights)."""
    prof = sess.end_profiling()
    with open(prof) as f:
        events = [e for e in json.load(f) if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    os.remove(prof)
    if not events or "mem_in_use_peak" not in events[0].get("args", {}):
        raise SystemExit("this onnxruntime writes no arena statistics into its profile (needs >= 1.32)")
    n = len(events) // 2
    run1, run2 = events[:n], events[n:]
    a = run1[0]["args"]
    base = int(a["mem_bytes_in_use"]) - int(a["mem_in_use_delta"])
    return run1, run2, base


def load_feeds(feeds_path):
    import numpy as np

    with np.load(feeds_path) as z:
        return {k: z[k] for k in z.files}


def worker(model, feeds_path, scratch):
    import numpy as np

    feeds = load_feeds(feeds_path)
    sess = profiled_session(model, scratch)
    # Copies on the numpy heap: the arrays run() returns may share the arena's
    # buffers, and holding them would count the first run's outputs in the
    # second run's figure.
    first = [np.array(o, copy=True) for o in sess.run(None, feeds)]
    second = sess.run(None, feeds)
    run1, run2, base = arena_events(sess)
    n = len(run1)
    h = hashlib.sha256()
    for o in first:
        o = np.ascontiguousarray(o)
        h.update(str((o.dtype.str, o.shape)).encode())
        h.update(o.tobytes())
    same = all(np.array_equal(x, y) for x, y in zip(first, second))
    order = hashlib.sha256("\n".join(e["name"] for e in run1).encode()).hexdigest()[:16]
    print(json.dumps(dict(
        order=order,
        first=max(int(e["args"]["mem_in_use_peak"]) for e in run1) - base,
        second=max(int(e["args"]["mem_bytes_in_use"]) for e in run2) - base,
        kernels=n,
        sha=h.hexdigest(),
        runs_agree=bool(same),
    )))


def make_feeds(model, seed=0):
    import numpy as np
    import onnx

    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        if dtype == np.bool_:
            feeds[vi.name] = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            feeds[vi.name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def run_worker(model, feeds_path, scratch, script=__file__, extra=()):
    """Runs `script --worker model [extra...] feeds scratch` in a fresh process
    (1 OpenMP thread) and returns the JSON line it prints last."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    argv = [sys.executable, os.path.abspath(script), "--worker", model, *extra, feeds_path, scratch]
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(" | ".join(p.stderr.strip().splitlines()[-3:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def stage_input(src, d, materialize):
    """Puts `src` into `d`/in (with its weights regenerated by the corpus'
    materialize.py when they are external data) and returns the staged
    path and the model (graph only)."""
    import onnx

    os.makedirs(os.path.join(d, "in"))
    model = onnx.load(src, load_external_data=False)
    staged = os.path.join(d, "in", os.path.basename(src))
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        subprocess.run([sys.executable, materialize, src, "--out-dir", os.path.join(d, "in")],
                       check=True, capture_output=True, text=True)
    else:
        shutil.copyfile(src, staged)
    return staged, model


def median(xs):
    """The median of xs (the lower middle value for an even count: a figure some session really had)."""
    ys = sorted(xs)
    return ys[(len(ys) - 1) // 2]


def measure(tool, materialize, src, work, tool_args=(), sessions=1):
    import numpy as np

    name = os.path.basename(src)[: -len(".onnx")]
    d = os.path.join(work, name)
    before, model = stage_input(src, d, materialize)
    after = os.path.join(d, "out", os.path.basename(src))
    os.makedirs(os.path.dirname(after))
    rep = os.path.join(d, "r.json")
    t0 = time.monotonic()
    p = subprocess.run([tool, "-q", "--report", rep, *tool_args, before, after], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"tool: {p.stderr.strip()}")
    tool_s = time.monotonic() - t0
    with open(rep) as f:
        r = json.load(f)
    feeds_path = os.path.join(d, "feeds.npz")
    np.savez(feeds_path, **make_feeds(model))
    row = dict(name=name, nodes=r["nodes"], runtimes=r["runtimes"], notes=r.get("notes", []), tool_seconds=tool_s,
               optimal=r["optimal"], lower_bound=r["lower_bound_bytes"])
    runs = {"before": [], "after": []}
    for _ in range(sessions):
        for v, path in (("before", before), ("after", after)):
            runs[v].append(run_worker(path, feeds_path, d))
    for v, rs in runs.items():
        row[v] = dict(first=median([r["first"] for r in rs]), second=median([r["second"] for r in rs]),
                      firsts=[r["first"] for r in rs], seconds=[r["second"] for r in rs],
                      orders=len({r["order"] for r in rs}), kernels=rs[0]["kernels"],
                      runs_agree=all(r["runs_agree"] for r in rs))
    shas = {r["sha"] for rs in runs.values() for r in rs}
    row["same_outputs"] = len(shas) == 1
    shutil.rmtree(d, ignore_errors=True)
    return row


def pct(b, a):
    return 100.0 * (a - b) / b if b else 0.0


def table(rows, header):
    L = [header, "",
         "| model | nodes | file order before -> after | proved | onnxruntime default (opt. off) before -> after "
         "| **arena, ORT_ENABLE_ALL, 1st run** before -> after (change) "
         "| arena in use, 2nd run (memory pattern) before -> after (change) | outputs identical |",
         "| --- | ---: | ---: | :---: | ---: | ---: | ---: | :---: |"]
    notes, gave_up = [], []
    files = varied = 0
    for r in rows:
        if "error" in r:
            L.append(f"| {r['name']} | | | | | error: {r['error']} | | |")
            continue
        fo, od = r["runtimes"]["file-order"], r["runtimes"]["ort-default"]
        b1, a1 = r["before"]["first"], r["after"]["first"]
        b2, a2 = r["before"]["second"], r["after"]["second"]
        for v in ("before", "after"):
            x = r[v]
            files += 1
            varied += x["orders"] > 1
            if min(x["firsts"]) != max(x["firsts"]) or min(x["seconds"]) != max(x["seconds"]):
                notes.append(f"* **{r['name']}** ({'input' if v == 'before' else 'output'}): {len(x['firsts'])} "
                             f"sessions ran {x['orders']} different kernel order(s); 1st run "
                             f"{min(x['firsts']):,}..{max(x['firsts']):,} B, 2nd run "
                             f"{min(x['seconds']):,}..{max(x['seconds']):,} B")
        L.append(f"| {r['name']} | {r['nodes']} | {fo['before']:,} -> {fo['after']:,} "
                 f"| {'yes' if r['optimal'] else 'no'} | {od['before']:,} -> {od['after']:,} "
                 f"| **{b1:,} -> {a1:,} ({pct(b1, a1):+.1f}%)** | {b2:,} -> {a2:,} ({pct(b2, a2):+.1f}%) "
                 f"| {'yes' if r['same_outputs'] else 'NO'} |")
        gave_up += [f"* **{r['name']}**: {n}" for n in r["notes"]]
    L += ["", f"onnxruntime ran more than one kernel order in the sessions of {varied} of {files} files; "
          f"the figures differed between sessions for {len(notes)} of them:"]
    if notes:
        L += [""] + notes
    if gave_up:
        L += ["", "What the default target reported giving up:", ""] + gave_up
    return "\n".join(L) + "\n"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
        return 0
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--tool", default=os.path.join(here, "target/release/onnx-memsched"))
    ap.add_argument("--corpus", default=os.path.join(here, "../shared/corpus/open"))
    ap.add_argument("--out")
    ap.add_argument("--json")
    ap.add_argument("--sessions", type=int, default=3, help="fresh sessions per file (median reported)")
    ap.add_argument("--tool-arg", action="append", default=[], help="extra argument for the tool (repeatable)")
    args = ap.parse_args()
    import onnxruntime

    models = args.models or sorted(glob.glob(os.path.join(here, "models/*.onnx"))) + sorted(
        glob.glob(os.path.join(args.corpus, "*.onnx")))
    materialize = os.path.join(os.path.dirname(os.path.abspath(args.corpus)), "materialize.py")
    rows = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ort_enable_all_") as work:
        for m in models:
            try:
                row = measure(args.tool, materialize, m, work, args.tool_arg, max(1, args.sessions))
            except Exception as e:  # one failing model does not stop the table
                row = dict(name=os.path.basename(m)[: -len(".onnx")], error=str(e)[:200])
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "notes"}), file=sys.stderr)
    header = (f"Generated by `python bench/ort_enable_all.py` on {time.strftime('%Y-%m-%d')}: {platform.machine()}, "
              f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
              f"{args.sessions} sessions per file (median shown), {time.monotonic() - t0:.0f} s in all.")
    text = table(rows, header)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
