#!/usr/bin/env python3
"""Why a written file costs more in onnxruntime at ORT_ENABLE_ALL: the arena peak per optimization level.

Usage:
    python bench/ort_levels.py [--tool target/release/onnx-memsched] [--corpus DIR]
                               [--target T]... [--levels disable,basic,extended,all] [--repeat N]
                               [--json FILE] MODEL ...

MODEL is a path, or a name looked up in models/ and then in --corpus. For
every MODEL this script writes the tool's default output (no flags) and, for
each --target T, the output of `--target T`; then it runs the input and every
output in a fresh process per (file, level), one at a time, 1 intra-op
thread, default execution order, memory pattern and CPU arena on (the
session defaults except the optimization level), on the same random inputs
as bench/ort_enable_all.py, and prints per file and level:

* the first run's arena peak: the largest `mem_in_use_peak` of the
  profiler's Node events minus the bytes in use before the first kernel
  (the figure of bench/ort_enable_all.py's ORT_ENABLE_ALL column);
* the kernel after which that peak was first reached, and how many kernels ran;
* the second run's largest bytes in use (memory pattern on: the block
  onnxruntime's planner laid out after the first run), as in
  bench/ort_enable_all.py;
* how many of the kernels that ran are nodes of the file (same name) and how
  many onnxruntime made (fused, NCHWc, reorder nodes: new names);
* with --json, the executed order too (kernel names).

--repeat N runs each (file, level) in N fresh sessions: at ORT_ENABLE_ALL
onnxruntime 1.32 does not always run the same file in the same order (seen
on wide_fanout), so one session per file can mislead.

Everything goes to a scratch folder that is removed at the end; the model
files are never modified. Needs onnxruntime >= 1.32 (arena statistics in the
profile).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ort_enable_all import arena_events, load_feeds, make_feeds, profiled_session, run_worker, stage_input  # noqa: E402

LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


def worker(model, level, feeds_path, scratch):
    feeds = load_feeds(feeds_path)
    sess = profiled_session(model, scratch, LEVELS[level])
    sess.run(None, feeds)
    sess.run(None, feeds)
    events, run2, base = arena_events(sess)
    peaks = [int(e["args"]["mem_in_use_peak"]) - base for e in events]
    top = max(peaks)
    at = peaks.index(top)
    print(json.dumps(dict(
        peak=top,
        peak_kernel=events[at]["name"][: -len("_kernel_time")],
        peak_op=events[at]["args"].get("op_name", ""),
        peak_step=at,
        second=max(int(e["args"]["mem_bytes_in_use"]) for e in run2) - base,
        order=[e["name"][: -len("_kernel_time")] for e in events],
    )))


def resolve(name, here, corpus):
    if os.path.isfile(name):
        return name
    for folder in (os.path.join(here, "models"), corpus):
        path = os.path.join(folder, name if name.endswith(".onnx") else name + ".onnx")
        if os.path.isfile(path):
            return path
    raise SystemExit(f"{name}: no such model (not a file, not in models/ nor in {corpus})")


def study(tool, materialize, src, work, targets, levels, repeat=1):
    import numpy as np

    name = os.path.basename(src)[: -len(".onnx")]
    d = os.path.join(work, name)
    before, model = stage_input(src, d, materialize)
    file_nodes = {n.name for n in model.graph.node}
    feeds_path = os.path.join(d, "feeds.npz")
    np.savez(feeds_path, **make_feeds(model))
    files = [("input", before, None)]
    for t in [None, *targets]:
        label = "default output" if t is None else f"--target {t}"
        sub = os.path.join(d, "out-" + (t or "default"))
        os.makedirs(sub)
        out = os.path.join(sub, os.path.basename(src))
        rep = os.path.join(sub, "r.json")
        args = [] if t is None else ["--target", t]
        p = subprocess.run([tool, "-q", "--report", rep, *args, before, out], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"tool {label}: {p.stderr.strip()}")
        with open(rep) as f:
            files.append((label, out, json.load(f)["runtimes"]))
    rows = []
    for label, path, runtimes in files:
        for level, rep in ((lv, i) for lv in levels for i in range(repeat)):
            r = run_worker(path, feeds_path, d, script=__file__, extra=(level,))
            r.update(name=name, file=label, level=level, rep=rep, runtimes=runtimes,
                     kernels=len(r["order"]), new_kernels=sum(1 for k in r["order"] if k not in file_nodes))
            rows.append(r)
            print(f"{name:28} {label:26} {level:9}#{rep} peak {r['peak']:>12,} B at step {r['peak_step']:4}/"
                  f"{r['kernels']:<4} ({r['peak_op']} {r['peak_kernel']}); kernels made by onnxruntime: "
                  f"{r['new_kernels']}; 2nd run in use {r['second']:,} B", flush=True)
    shutil.rmtree(d, ignore_errors=True)
    return rows


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:6])
        return 0
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--tool", default=os.path.join(here, "target/release/onnx-memsched"))
    ap.add_argument("--corpus", default=os.path.join(here, "../shared/corpus/open"))
    ap.add_argument("--target", action="append", default=[], help="also measure `--target T` (repeatable)")
    ap.add_argument("--levels", default="disable,basic,extended,all")
    ap.add_argument("--repeat", type=int, default=1, help="sessions per file and level (fresh processes)")
    ap.add_argument("--json")
    args = ap.parse_args()
    levels = args.levels.split(",")
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad:
        ap.error(f"--levels: unknown level {bad[0]} (one of {', '.join(LEVELS)})")
    materialize = os.path.join(os.path.dirname(os.path.abspath(args.corpus)), "materialize.py")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ort_levels_") as work:
        for m in args.models:
            rows += study(args.tool, materialize, resolve(m, here, args.corpus), work, args.target, levels, args.repeat)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
