#!/usr/bin/env python3
"""Measured activation memory in onnxruntime, before and after onnx-memsched.

Usage:
    python bench/ort_memory.py [--tool target/release/onnx-memsched] [--corpus DIR]
                               [--min-gain 10] [--repeats 3] [--out docs/ORT_MEMORY.md]
                               [MODEL.onnx ...]

onnxruntime runs nodes in file order with SessionOptions.execution_order =
PRIORITY_BASED and graph_optimization_level = ORT_DISABLE_ALL (docs/DESIGN.md
section 7). For every model this script runs the tool with default options
(`onnx-memsched IN OUT -q --report r.json`), then measures onnxruntime on IN
and on OUT in fresh subprocesses, on the same fixed random inputs, with
intra_op_num_threads = 1 and enable_mem_pattern = False (every tensor is
allocated when its producer runs and freed after its last consumer):

  arena     The CPU arena's peak bytes in use during the run (BFC arena
            MaxInUse) minus its bytes in use before the first kernel
            (prepacked MatMul/Gemm weights). The Python API has no
            AllocatorGetStats, but onnxruntime >= 1.32 writes the arena
            statistics after every kernel into the profiler's Node events
            (enable_profiling; args mem_bytes_in_use, mem_in_use_peak, ...).
            The same events give the order really run, checked against the
            file order. Deterministic, so measured once.
  no-reuse  The same with SessionOptions.enable_mem_reuse = False: the
            allocation planner then stops handing a dead tensor's buffer to a
            later tensor of the same size (which keeps the buffer allocated in
            between); in-place reuse (MayInplace/Alias kernels) stays. Only
            to explain differences.
  rss       Peak resident set size of a run minus the RSS just before it, with
            the CPU arena off (every tensor is its own malloc); median of
            --repeats fresh processes. One warm-up run first faults in the
            weights (external data is memory-mapped and read on first use),
            code pages and thread-local buffers; then the high-water mark is
            reset (`5` into /proc/self/clear_refs, then VmHWM; ru_maxrss where
            that is not allowed). MALLOC_MMAP_THRESHOLD_=4096 makes glibc give
            every freed block of a page or more back to the system, so RSS
            follows frees (granularity: 4 KiB pages). With the arena on, RSS
            does not track activations (the arena keeps its regions after the
            warm-up run, or without warm-up the weights' pages dominate), so it
            is not reported.

Models: models/*.onnx in this repository, plus the corpus models (--corpus,
default ../shared/corpus/open) for which the tool predicts a peak at least
--min-gain percent lower (found with a --dry-run pass); or the MODEL arguments.
Corpus models lack their weights: materialize.py (next to the corpus folder)
regenerates them in a temporary folder. Nothing is written outside that folder
except --out (this Markdown section; --out '' only prints).

The predicted peaks (`peak_bytes_before`, `peak_bytes_after` of the report) use
the default memory model of DESIGN.md section 3. To explain gaps the table also
gives the tool's file-order peak of both files under the model closest to
onnxruntime (`--scheduler input --inplace --inputs-live-whole-run`, minus the
graph inputs, which the caller owns and which are not in the arena).
Needs: onnx, onnxruntime >= 1.32, numpy. Takes 2-4 minutes on 2 cores.
"""
import argparse
import datetime
import gc
import glob
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
AGREE_POINTS = 3.0  # measured and predicted changes "agree" within this many percentage points


# ---------------------------------------------------------------- worker side (fresh process)

def _session(path, arena, reuse=True, profile_prefix=None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    so.enable_mem_pattern = False
    so.enable_mem_reuse = reuse
    so.enable_cpu_mem_arena = arena
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(mode, model, feeds_path, scratch):
    import numpy as np

    with np.load(feeds_path) as z:
        feeds = {k: z[k] for k in z.files}
    out = {}
    if mode in ("arena", "arena-noreuse"):
        sess = _session(model, True, reuse=mode == "arena", profile_prefix=os.path.join(scratch, "prof"))
        outputs = sess.run(None, feeds)
        prof = sess.end_profiling()
        with open(prof) as f:
            events = [e for e in json.load(f) if e.get("cat") == "Node"]
        os.remove(prof)
        if not events or "mem_in_use_peak" not in events[0].get("args", {}):
            raise SystemExit("this onnxruntime writes no arena statistics into its profile (needs >= 1.32)")
        a = [e["args"] for e in events]
        # Snapshots after each kernel, before its dead inputs are freed: bytes
        # in use (chunk sizes) and bytes requested (what the kernels asked for).
        in_use = [int(x["mem_bytes_in_use"]) for x in a]
        req = [int(x["mem_bytes_requested_in_use"]) for x in a]
        peaks = [int(x["mem_in_use_peak"]) for x in a]
        base = in_use[0] - int(a[0]["mem_in_use_delta"])
        base_req = req[0] - int(a[0]["mem_requested_in_use_delta"])
        final = peaks[-1]
        at = next(i for i, p in enumerate(peaks) if p == final)
        out.update(
            baseline=base,
            peak=final - base,
            # Largest requested bytes after a kernel: the tensors onnxruntime
            # holds, without allocator slack or kernel temporaries.
            live_peak=max(req) - base_req,
            # At the peak: tensors (requested), chunk slack (BFC hands out a
            # free chunk of up to twice the request without splitting it) and
            # the kernel's temporary buffers (freed before the kernel ends).
            live_at_peak=req[at] - base_req,
            slack_at_peak=(in_use[at] - base) - (req[at] - base_req),
            scratch_at_peak=final - in_use[at],
            # MaxInUse is not reset when a run starts: if the final value
            # already stood after the first kernel, it may date from session
            # creation.
            maybe_before_run=at == 0,
            peak_node=events[at]["name"].removesuffix("_kernel_time"),
            peak_op=a[at].get("op_name", "?"),
            peak_step=at,
            order=[e["name"].removesuffix("_kernel_time") for e in events],
        )
    elif mode == "rss":
        sess = _session(model, False)
        sess.run(None, feeds)  # warm-up
        gc.collect()
        rss0 = _status_kib("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            how = "VmHWM"
        except OSError:
            how = "ru_maxrss"
        outputs = sess.run(None, feeds)
        hwm = _status_kib("VmHWM") if how == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out.update(peak=max(0, hwm - rss0) * 1024, how=how)
    else:
        raise SystemExit(f"unknown worker mode {mode}")
    h = hashlib.sha256()
    for o in outputs:
        o = np.ascontiguousarray(o)
        h.update(str((o.dtype.str, o.shape)).encode())
        h.update(o.tobytes())
    out["outputs_sha256"] = h.hexdigest()
    print(json.dumps(out))


# ---------------------------------------------------------------- driver side

def make_feeds(model, seed):
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
            value = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            value = rng.integers(0, 2, size=shape).astype(dtype)  # valid indices
        else:
            value = rng.standard_normal(shape).astype(dtype)
        feeds[vi.name] = value
    return feeds


def run_tool(tool, args):
    p = subprocess.run([tool, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(tool)} {' '.join(args)}: exit {p.returncode}: "
                           + " | ".join(p.stderr.strip().splitlines()[-3:]))
    return p


def tool_report(tool, model, extra, scratch, tag):
    rep = os.path.join(scratch, f"{tag}.json")
    run_tool(tool, ["--dry-run", "-q", "--report", rep, *extra, model])
    with open(rep) as f:
        return json.load(f)


def run_worker(mode, model, feeds_path, scratch):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="4096", OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", mode, model, feeds_path, scratch],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"worker {mode} on {os.path.basename(model)}: "
                           + " | ".join(p.stderr.strip().splitlines()[-3:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def pct(before, after):
    return 100.0 * (after - before) / before if before else float("nan")


def fmt_b(b):
    return f"{int(b):,}"


def fmt_pct(x):
    return "n/a" if x != x else f"{x:+.1f}%"


def kib(b):
    return f"{b / 1024:,.0f} KiB" if b < 10 * 2**20 else f"{b / 2**20:,.1f} MiB"


def measure(args, tool, work, name, src, corpus):
    import numpy as np
    import onnx

    t0 = time.monotonic()
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "in"))
    src_model = onnx.load(src, load_external_data=False)
    before = os.path.join(d, "in", os.path.basename(src))
    if corpus or any(t.data_location == onnx.TensorProto.EXTERNAL for t in src_model.graph.initializer):
        materialize = os.path.join(os.path.dirname(os.path.abspath(args.corpus)), "materialize.py")
        subprocess.run([sys.executable, materialize, src, "--out-dir", os.path.join(d, "in")],
                       check=True, capture_output=True, text=True)
    else:
        shutil.copyfile(src, before)
    after = os.path.join(d, "out", os.path.basename(src))
    os.makedirs(os.path.dirname(after))
    rep = os.path.join(d, "r.json")
    run_tool(tool, [before, after, "-q", "--report", rep])
    with open(rep) as f:
        r = json.load(f)
    feeds = make_feeds(src_model, args.seed)
    feeds_path = os.path.join(d, "feeds.npz")
    np.savez(feeds_path, **feeds)
    input_bytes = sum(v.nbytes for v in feeds.values())
    row = dict(name=name, nodes=r["nodes"], pred_before=r["peak_bytes_before"], pred_after=r["peak_bytes_after"],
               optimal=r.get("optimal"), input_bytes=input_bytes)
    hashes = set()
    for v, p in (("before", before), ("after", after)):
        row["ortlike_" + v] = tool_report(tool, p, ["--scheduler", "input", "--inplace", "--inputs-live-whole-run"],
                                          d, "ortlike-" + v)["peak_bytes_before"] - input_bytes
        m = onnx.load(p, load_external_data=False)
        file_order = [n.name for n in m.graph.node if n.op_type != "Constant"]
        for mode in ("arena", "arena-noreuse"):
            a = run_worker(mode, p, feeds_path, d)
            hashes.add(a["outputs_sha256"])
            row[f"{mode}_{v}"] = a
            if mode == "arena":
                row["order_ok_" + v] = a["order"] == file_order if all(file_order) else None
        runs = [run_worker("rss", p, feeds_path, d) for _ in range(args.repeats)]
        hashes.update(x["outputs_sha256"] for x in runs)
        row["rss_" + v] = statistics.median(x["peak"] for x in runs)
        row["rss_all_" + v] = [x["peak"] for x in runs]
        row["rss_how"] = runs[0]["how"]
    row["same_outputs"] = len(hashes) == 1
    row["pred_pct"] = pct(row["pred_before"], row["pred_after"])
    row["ortlike_pct"] = pct(row["ortlike_before"], row["ortlike_after"])
    row["arena_pct"] = pct(row["arena_before"]["peak"], row["arena_after"]["peak"])
    row["noreuse_pct"] = pct(row["arena-noreuse_before"]["peak"], row["arena-noreuse_after"]["peak"])
    row["rss_pct"] = pct(row["rss_before"], row["rss_after"])
    row["seconds"] = time.monotonic() - t0
    return row


def explain(r):
    """Why measured (arena) and predicted changes differ, from the measured parts."""
    pred, arena, ol, nr = r["pred_pct"], r["arena_pct"], r["ortlike_pct"], r["noreuse_pct"]
    b, a = r["arena_before"], r["arena_after"]
    agree = abs(arena - pred) <= AGREE_POINTS
    head = f"{'Agrees' if agree else 'Differs'}: measured {fmt_pct(arena)}, predicted {fmt_pct(pred)}"
    parts = [f"its peak is {fmt_b(b['live_at_peak'])} -> {fmt_b(a['live_at_peak'])} B of tensors held, "
             f"{fmt_b(b['slack_at_peak'])} -> {fmt_b(a['slack_at_peak'])} B of chunk slack and "
             f"{fmt_b(b['scratch_at_peak'])} -> {fmt_b(a['scratch_at_peak'])} B of kernel scratch "
             f"({b['peak_op']} `{b['peak_node']}` -> {a['peak_op']} `{a['peak_node']}`)"]
    held_pct = pct(b["live_at_peak"], a["live_at_peak"])
    held = {v: r[f"arena_{v}"]["peak"] - r[f"arena-noreuse_{v}"]["peak"] for v in ("before", "after")}
    if not agree:
        if abs(held_pct - pred) <= AGREE_POINTS:
            parts.insert(0, f"the tensors onnxruntime holds at its peak change as predicted ({fmt_pct(held_pct)}); "
                            f"the gap is allocator overhead at the peak (chunk slack, kernel scratch)")
        else:
            causes = []
            if abs(ol - pred) > 2.0:
                causes.append("its in-place reuse, the caller-owned graph input")
            if any(abs(h) > 0.02 * r[f"arena_{v}"]["peak"] for v, h in held.items()):
                causes.append("the dead buffers its planner keeps for reuse")
            why = (f"the tensors onnxruntime holds at its peak change by {fmt_pct(held_pct)}, not {fmt_pct(pred)}"
                   + (f" ({', '.join(causes[:-1]) + ' and ' if len(causes) > 1 else ''}{causes[-1]} make its live set "
                      f"differ from the default model)" if causes else ""))
            if abs(arena - held_pct) > AGREE_POINTS:
                why += f", and allocator overhead moves the figure from {fmt_pct(held_pct)} to {fmt_pct(arena)}"
            parts.insert(0, why)
    if abs(ol - pred) > 2.0:
        parts.append(f"onnxruntime's rules alone change what the two orders cost: with in-place reuse and the "
                     f"{kib(r['input_bytes'])} graph input outside the arena, the tool's own model gives "
                     f"{fmt_b(r['ortlike_before'])} -> {fmt_b(r['ortlike_after'])} B ({fmt_pct(ol)})")
    held = {v: r[f"arena_{v}"]["peak"] - r[f"arena-noreuse_{v}"]["peak"] for v in ("before", "after")}
    if any(abs(h) > 0.02 * r[f"arena_{v}"]["peak"] for v, h in held.items()):
        parts.append(f"the planner's buffer reuse accounts for {held['before']:+,} / {held['after']:+,} B of the "
                     f"peaks (with `enable_mem_reuse = False`: {fmt_pct(nr)})")
    return head + "; " + "; ".join(parts) + "."


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="models to measure (default: models/*.onnx + selected corpus models)")
    ap.add_argument("--tool", default=os.path.join(ROOT, "target", "release", "onnx-memsched"))
    ap.add_argument("--corpus", default=os.path.join(ROOT, "..", "shared", "corpus", "open"))
    ap.add_argument("--min-gain", type=float, default=10.0, help="corpus models with a predicted gain >= this %%")
    ap.add_argument("--select-time-limit", type=float, default=10.0,
                    help="--time-limit of the --dry-run pass that selects corpus models (default 10)")
    ap.add_argument("--repeats", type=int, default=3, help="RSS measurements per model and variant (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="numpy seed of the random inputs (default 0)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "ORT_MEMORY.md"))
    ap.add_argument("--keep-temp", action="store_true")
    ap.add_argument("--worker", nargs=4, metavar=("MODE", "MODEL", "FEEDS", "SCRATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(*args.worker)

    import onnxruntime as ort

    t_start = time.monotonic()
    tool = os.path.abspath(args.tool)
    work = tempfile.mkdtemp(prefix="ort-memory-")
    try:
        if args.models:
            models = [(os.path.splitext(os.path.basename(m))[0], m, False) for m in args.models]
        else:
            models = [(os.path.splitext(os.path.basename(m))[0], m, False)
                      for m in sorted(glob.glob(os.path.join(ROOT, "models", "*.onnx")))]
            if os.path.isdir(args.corpus):
                print(f"selecting corpus models (predicted gain >= {args.min_gain:g}%) ...", file=sys.stderr)
                for m in sorted(glob.glob(os.path.join(args.corpus, "*.onnx"))):
                    name = os.path.splitext(os.path.basename(m))[0]
                    r = tool_report(tool, m, ["--time-limit", str(args.select_time_limit)], work, "select-" + name)
                    gain = -pct(r["peak_bytes_before"], r["peak_bytes_after"])
                    if gain >= args.min_gain - 1e-9:
                        models.append((name, m, True))
                        print(f"  {name}: {gain:.1f}%", file=sys.stderr)
            else:
                print(f"no corpus at {args.corpus}: models/ only", file=sys.stderr)

        rows = []
        for name, src, corpus in models:
            row = measure(args, tool, work, name, src, corpus)
            rows.append(row)
            print(f"  {name}: predicted {fmt_pct(row['pred_pct'])}, arena {fmt_pct(row['arena_pct'])}, "
                  f"arena without planner reuse {fmt_pct(row['noreuse_pct'])}, RSS {fmt_pct(row['rss_pct'])}, "
                  f"{row['seconds']:.0f} s", file=sys.stderr)

        text = render(rows, ort.__version__, tool, args, time.monotonic() - t_start)
        print(text)
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                f.write(text)
            print(f"wrote {args.out}", file=sys.stderr)
        with open(os.path.join(work, "rows.json"), "w") as f:
            json.dump(rows, f, indent=1, default=str)
    finally:
        if args.keep_temp:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def render(rows, ort_version, tool, args, seconds):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    shown_tool = os.path.relpath(tool, ROOT) if tool.startswith(ROOT + os.sep) else tool
    all_same = all(r["same_outputs"] for r in rows)
    all_order = all(r["order_ok_" + v] is not False for r in rows for v in ("before", "after"))
    L = ["# Measured activation memory in onnxruntime\n"]
    L.append(f"Generated by `python bench/ort_memory.py` on {datetime.date.today()}: {platform.machine()}, "
             f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python "
             f"{platform.python_version()}, onnxruntime {ort_version}, tool `{shown_tool}`, {args.repeats} RSS "
             f"repeats, {seconds:.0f} s in all.\n")
    L.append("onnxruntime (CPU, `ORT_DISABLE_ALL`, `execution_order = PRIORITY_BASED`, i.e. file order, "
             "`enable_mem_pattern = False`, 1 thread) runs each model as given (*before*) and as rewritten by "
             "`onnx-memsched IN OUT -q` with default options (*after*), on the same random inputs, each measurement "
             "in a fresh process. "
             + ("Outputs were bit-identical across all runs of both files" if all_same
                else "**Outputs differed on some models (see below)**")
             + ("; the order onnxruntime ran (its profiler's node events) was each file's order.\n" if all_order
                else "; **onnxruntime did not run some files in file order (see below)**.\n"))
    L.append("* **predicted**: the tool's report, `peak_bytes_before` / `peak_bytes_after` (default memory model "
             "of DESIGN.md section 3: no in-place reuse, graph inputs live until their last use).")
    L.append("* **arena** (the measured figure): the CPU arena's peak bytes in use during the run (BFC arena "
             "`MaxInUse`) minus its bytes in use before the first kernel (prepacked MatMul/Gemm weights). The "
             "Python API has no `AllocatorGetStats`, but onnxruntime 1.32 writes the arena statistics after every "
             "kernel into the profiler's Node events (`enable_profiling`; `mem_in_use_peak`, `mem_bytes_in_use`). "
             "Deterministic and exact to the byte. Graph inputs are not in it (the caller's numpy buffers); graph "
             "outputs are.")
    L.append("* **arena, no planner reuse**: the same with `enable_mem_reuse = False` (in-place reuse by kernels "
             "that declare it stays on). Shown only to explain gaps.")
    L.append(f"* **RSS, arena off**: peak resident set size of a run minus the RSS just before it, median of "
             f"{args.repeats} fresh processes, with `enable_cpu_mem_arena = False` (every tensor is its own "
             "malloc). A warm-up run first faults in the weights (memory-mapped external data), code and "
             "thread-local buffers; then the high-water mark is reset (`/proc/self/clear_refs`, then `VmHWM`); "
             "`MALLOC_MMAP_THRESHOLD_=4096` makes glibc return every freed block of a page or more, so RSS follows "
             "frees. 4 KiB granularity; counts everything the run touches. With the arena on, RSS does not track "
             "activations (the arena keeps the regions it grew, and without a warm-up run the weights' pages "
             "dominate), so it is not reported.")
    L.append("* **ORT-like model**: the tool's file-order peak of the same two files with `--inplace "
             "--inputs-live-whole-run`, minus the graph inputs: its memory model closest to what the arena counts. "
             "Explains gaps; it is not a prediction the tool makes by default.\n")
    L.append("| model | nodes | predicted before | predicted after | predicted change | arena before | arena after "
             "| **arena change** | arena, no planner reuse: before / after (change) | RSS, arena off: before / after "
             "(change) | ORT-like model: before / after (change) |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        L.append(f"| {r['name']} | {r['nodes']} | {fmt_b(r['pred_before'])} | {fmt_b(r['pred_after'])} "
                 f"| {fmt_pct(r['pred_pct'])} | {fmt_b(r['arena_before']['peak'])} | {fmt_b(r['arena_after']['peak'])} "
                 f"| **{fmt_pct(r['arena_pct'])}** "
                 f"| {fmt_b(r['arena-noreuse_before']['peak'])} / {fmt_b(r['arena-noreuse_after']['peak'])} "
                 f"({fmt_pct(r['noreuse_pct'])}) "
                 f"| {kib(r['rss_before'])} / {kib(r['rss_after'])} ({fmt_pct(r['rss_pct'])}) "
                 f"| {fmt_b(r['ortlike_before'])} / {fmt_b(r['ortlike_after'])} ({fmt_pct(r['ortlike_pct'])}) |")
    L.append("")
    L.append("Bytes, except RSS. Per model: measured (arena) vs predicted change, and what the arena peak is made "
             "of, before -> after. *Tensors held*: bytes the kernels requested that are live right after the peak "
             "kernel (onnxruntime's own live set, with in-place reuse, without the graph input, and with the dead "
             "buffers its allocation planner keeps for reuse: with memory reuse on, a dead tensor's buffer stays "
             "allocated until a later tensor of exactly the same size takes it over). *Chunk slack*: the BFC arena "
             "hands a request a free chunk of up to twice its size without splitting it, and counts the whole "
             "chunk as in use. *Kernel scratch*: temporary buffers a kernel allocates and frees while it runs "
             "(im2col for Conv, partial sums), part of the peak but of no tensor. The tool models none of the "
             "three effects by default.\n")
    for r in rows:
        notes = []
        if not r["same_outputs"]:
            notes.append("**outputs differ between runs or files**")
        for v in ("before", "after"):
            if r["order_ok_" + v] is False:
                notes.append(f"**onnxruntime did not run the {v} file in file order**")
            if r["arena_" + v].get("maybe_before_run"):
                notes.append(f"the {v} arena peak may date from session creation")
        L.append(f"* **{r['name']}**: {explain(r)}" + (" " + "; ".join(notes) + "." if notes else ""))
    L.append("")
    L.append(summary(rows))
    return "\n".join(L) + "\n"


def summary(rows):
    if not rows:
        return ""
    n = len(rows)
    fell = [r for r in rows if r["arena_after"]["peak"] < r["arena_before"]["peak"]]
    rose = [r for r in rows if r["arena_after"]["peak"] > r["arena_before"]["peak"]]
    agree = [r for r in rows if abs(r["arena_pct"] - r["pred_pct"]) <= AGREE_POINTS]
    more = [r for r in rows if r["arena_pct"] < r["pred_pct"] - AGREE_POINTS]
    less = [r for r in rows if r["arena_pct"] > r["pred_pct"] + AGREE_POINTS]
    rss_close = [r for r in rows if abs(r["rss_pct"] - pct(r["arena_before"]["live_at_peak"] + r["arena_before"]["scratch_at_peak"],
                                                            r["arena_after"]["live_at_peak"] + r["arena_after"]["scratch_at_peak"])) <= 5.0]
    names = lambda rs: ", ".join(r["name"] for r in rs) or "none"  # noqa: E731
    return (f"**What the numbers show.** The measured arena peak fell on {len(fell)} of {n} models and rose on "
            f"{len(rose)} ({names(rose)}). The measured change agrees with the predicted one within "
            f"{AGREE_POINTS:g} points on {len(agree)} ({names(agree)}), is a larger saving on {len(more)} "
            f"({names(more)}) and a smaller one on {len(less)} ({names(less)}). The RSS change (arena off: no chunk "
            f"slack) is within 5 points of the change in tensors held plus scratch on {len(rss_close)} of {n}; RSS "
            f"moves in 4 KiB pages and with malloc's behaviour, so it is noisy below about 1 MiB.\n\n"
            + findings(rows))


def findings(rows):
    """Plain statements about the mechanisms, with this run's largest instances."""
    def biggest(key):
        best = max(((r[f"arena_{v}"][key] if key != "held" else r[f"arena_{v}"]["peak"] - r[f"arena-noreuse_{v}"]["peak"],
                     r["name"], v) for r in rows for v in ("before", "after")), default=(0, "", ""))
        return f"{best[0]:,} B ({best[1]}, {best[2]})"
    ties = [r["name"] for r in rows if r["pred_pct"] <= -5.0 and abs(r["ortlike_pct"]) < 1.0]
    gap = lambda r, k: abs(r[k] - r["noreuse_pct"])  # noqa: E731
    closer = sum(1 for r in rows if gap(r, "ortlike_pct") < gap(r, "pred_pct") - 1.0)
    farther = sum(1 for r in rows if gap(r, "ortlike_pct") > gap(r, "pred_pct") + 1.0)
    L = ["**Why the figures differ.** Three things outside the tool's default model sit in the measured peak:",
         f"* the allocation planner's buffer reuse keeps a dead tensor's buffer until a later tensor of the same "
         f"size takes it over; it depends on the order and is the largest effect here, up to {biggest('held')} "
         f"(`enable_mem_reuse = False` removes it);",
         f"* the BFC arena's chunk slack, up to {biggest('slack_at_peak')} at a peak;",
         f"* kernel scratch (im2col buffers of Conv, temporaries of Sum), up to {biggest('scratch_at_peak')} at a peak.",
         "",
         "onnxruntime's in-place reuse and its caller-owned graph inputs change the live set as well; the tool "
         "models both (`--inplace --inputs-live-whole-run`, the ORT-like column). Against the arena without planner "
         f"reuse, that model's change is closer than the default model's on {closer} of {len(rows)} models, "
         f"farther on {farther}.", ""]
    if ties:
        L.append(f"On {', '.join(ties)} the two orders tie under that model, so the saving the default model predicts "
                 "does not exist in onnxruntime; when onnxruntime is the target, the orders to measure next are the "
                 "ones the tool finds with those flags (not measured here).")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
