#!/usr/bin/env python3
"""Benchmark onnx-memsched over a folder of models and print a Markdown table.

Usage:
    python bench/corpus.py [--tool target/release/onnx-memsched] [--time-limit S] [DIR_OR_MODELS...]

Default models: ../shared/corpus/open when present, else models/. For each
model the tool runs once with --dry-run --report (default scheduler, default
time limit unless given); the JSON report holds the peaks of the input order,
of every portfolio heuristic (dfs is onnxruntime's default order), of the
result, the lower bound and the wall time. The script also times a Python
onnx.load + onnx.save round trip of the same file (what a user would run
around any graph rewrite) and prints the ratio.
"""
import argparse
import datetime
import glob
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time


def fmt_bytes(b):
    return f"{b:,}"


def geomean(xs):
    xs = [x for x in xs if x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def roundtrip_seconds(path):
    try:
        import onnx
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        m = onnx.load(path, load_external_data=False)
        onnx.save(m, os.path.join(d, "rt.onnx"))
        return time.perf_counter() - t


def tract_peak(example, path):
    """Peak of tract's own order (examples/tract_order.rs), '-' when unavailable."""
    if not example or not os.path.exists(example):
        return "-"
    proc = subprocess.run([example, path], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("tract_peak_bytes "):
            return fmt_bytes(int(line.split()[1]))
    return "-"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*")
    ap.add_argument("--tool", default=os.path.join(root, "target", "release", "onnx-memsched"))
    ap.add_argument("--tract-example", default=os.path.join(root, "target", "release", "examples", "tract_order"),
                    help="the tract_order example binary (column 'tract order'; '-' if absent)")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--extra", default="", help="extra arguments for the tool, space separated")
    args = ap.parse_args()
    paths = args.paths or [os.path.join(root, "..", "shared", "corpus", "open")]
    if not args.paths and not os.path.isdir(paths[0]):
        paths = [os.path.join(root, "models")]
    models = []
    for p in paths:
        models += sorted(glob.glob(os.path.join(p, "*.onnx"))) if os.path.isdir(p) else [p]
    rows, red_input, red_ort = [], [], []
    failures = 0
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
          f"date: {datetime.date.today()}; tool: {args.tool}\n")
    print("| model | nodes | after fusion | input order | ort default (dfs) | tract order | best heuristic | ours | lower bound | optimal / gap | tool s | onnx load+save s | tool / load+save |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for m in models:
        name = os.path.splitext(os.path.basename(m))[0]
        with tempfile.TemporaryDirectory() as d:
            rep = os.path.join(d, "r.json")
            cmd = [args.tool, "--dry-run", "-q", "--report", rep, m] + args.extra.split()
            if args.time_limit is not None:
                cmd += ["--time-limit", str(args.time_limit)]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                failures += 1
                print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode} |")
                continue
            r = json.load(open(rep))
        heur = r.get("heuristic_peaks", {})
        best_name, best = min(heur.items(), key=lambda kv: kv[1]) if heur else ("-", r["peak_bytes_before"])
        dfs = heur.get("dfs", float("nan"))
        ours = r["peak_bytes_after"]
        lb = r["lower_bound_bytes"]
        verdict = "optimal" if r["optimal"] else f"gap {100 * (ours - lb) / lb:.1f}%"
        rt = roundtrip_seconds(m)
        red_input.append(r["peak_bytes_before"] / ours)
        if isinstance(dfs, int):
            red_ort.append(dfs / ours)
        print(f"| {name} | {r['nodes']} | {r.get('nodes_after_fusion', '-')} | {fmt_bytes(r['peak_bytes_before'])} | "
              f"{fmt_bytes(dfs) if isinstance(dfs, int) else '-'} | {tract_peak(args.tract_example, m)} | {fmt_bytes(best)} ({best_name}) | {fmt_bytes(ours)} | "
              f"{fmt_bytes(lb)} | {verdict} | {wall:.3f} | {'-' if rt is None else f'{rt:.4f}'} | "
              f"{'-' if rt is None else f'{wall / rt:.1f}x'} |")
        sys.stdout.flush()
    print()
    print(f"geometric-mean peak reduction: {geomean(red_input):.3f}x over the input order, "
          f"{geomean(red_ort):.3f}x over onnxruntime's default order; {len(models)} models, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
