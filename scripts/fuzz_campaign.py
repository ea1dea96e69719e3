#!/usr/bin/env python3
"""Fuzz campaign: structure-aware mutated models through the real binary,
with per-run time and memory limits, for as many cases or minutes as asked.

    cargo build --release --example fuzz_gen
    python3 scripts/fuzz_campaign.py --minutes 30 --out target/fuzz-campaign

Cases come from `examples/fuzz_gen.rs` (the generator `tests/fuzz.rs` runs
in CI), seeded with the built-in models, `models/` and, when present,
`../shared/corpus/open`. Each run gets an address-space limit (--mem-mb,
RLIMIT_AS), a CPU-time limit (its --time-limit plus --margin seconds,
RLIMIT_CPU: CPU, so that a loaded machine does not count as a hang) and a
wall-clock limit of --time-limit plus 6 x --margin (then SIGKILL). A run
fails when it ends by a signal or an exit code other than 0-3, prints panic
text, overruns, changes its input, leaves files
behind after a failure, or exits 0 with an output that is not the input
with its nodes reordered. Every failing input is saved under OUT/failures/
with its options and what went wrong; OUT/summary.json has the counts.
Needs the `onnx` Python package (for decoding outputs).
"""
import argparse
import collections
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import onnx

from node_order import canonical_node

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def limits(mem_bytes, cpu_seconds):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def split_nodes(data):
    m = onnx.ModelProto()
    m.ParseFromString(data)
    nodes = sorted(canonical_node(n) for n in m.graph.node)
    del m.graph.node[:]
    return m, nodes


def time_limit(args):
    if "--time-limit" in args:
        try:
            return float(args[args.index("--time-limit") + 1])
        except (ValueError, IndexError):
            pass
    return 60.0


def run_case(tool, model_path, args, mem_bytes, margin):
    """Returns (exit code or None, seconds, problem or None)."""
    data = open(model_path, "rb").read()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        inp, out = os.path.join(d, "in.onnx"), os.path.join(d, "out.onnx")
        shutil.copyfile(model_path, inp)
        env = dict(os.environ, RUST_BACKTRACE="1")
        start = time.monotonic()
        try:
            # CPU time is the real bound (a loaded machine stretches wall
            # time); the wall-clock timeout only catches a run that sleeps.
            cpu = int(time_limit(args) + margin) + 1
            p = subprocess.run([tool, *args, inp, out], capture_output=True, env=env,
                               preexec_fn=limits(mem_bytes, cpu), timeout=time_limit(args) + 6 * margin)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - start, f"hang: no exit within --time-limit + {6 * margin} s of wall time"
        took = time.monotonic() - start
        err = p.stderr.decode("utf-8", "replace")
        head = " | ".join(err.strip().splitlines()[:3])
        code = p.returncode
        if code == -24:
            return code, took, f"overrun: more than --time-limit + {margin} s of CPU time (SIGXCPU): {head}"
        if code < 0:
            return code, took, f"killed by signal {-code}: {head}"
        if code not in (0, 1, 2, 3):
            return code, took, f"exit code {code}: {head}"
        # Rust's own panic report says "panicked at"; a caught panic inside
        # tract is part of a one-line error ("tract panicked: ..."), which is
        # the contained outcome (the same rule as tests/fuzz.rs).
        if "panicked at" in err or "stack backtrace" in err:
            at = " | ".join(l for l in err.splitlines() if "panicked at" in l)[:300]
            return code, took, f"panic text (exit {code}): {at}"
        if open(inp, "rb").read() != data:
            return code, took, f"input changed (exit {code})"
        left = sorted(set(os.listdir(d)) - {"in.onnx", "out.onnx"})
        if code == 0:
            left = [n for n in left if ".tmp" in n or n.startswith(".onnx-memsched")]
        if left:
            return code, took, f"files left behind (exit {code}): {left}"
        if code != 0:
            if os.path.exists(out):
                return code, took, f"exit {code} but an output was written"
            return code, took, None
        if not os.path.exists(out):
            return code, took, "exit 0 but no output"
        written = open(out, "rb").read()
        if len(written) != len(data):
            return code, took, f"output has {len(written)} bytes, input {len(data)}"
        try:
            rest_in, nodes_in = split_nodes(data)
            rest_out, nodes_out = split_nodes(written)
        except Exception as e:  # noqa: BLE001 - any decode failure is a finding
            return code, took, f"output does not decode: {e}"
        if nodes_in != nodes_out:
            return code, took, "output nodes differ from the input's"
        if rest_in.SerializeToString(deterministic=True) != rest_out.SerializeToString(deterministic=True):
            return code, took, "output differs beyond the node order"
        return code, took, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", default=os.path.join(ROOT, "target/release/onnx-memsched"))
    ap.add_argument("--gen", default=os.path.join(ROOT, "target/release/examples/fuzz_gen"))
    ap.add_argument("--minutes", type=float, default=30.0, help="stop after this long (default 30)")
    ap.add_argument("--cases", type=int, default=0, help="stop after this many cases (0: no limit)")
    ap.add_argument("--seed", type=int, default=1_000_000, help="first case seed")
    ap.add_argument("--mem-mb", type=int, default=2048, help="address-space limit per run (default 2048)")
    ap.add_argument("--margin", type=float, default=20.0, help="seconds past --time-limit before a run is a hang")
    ap.add_argument("--out", default=os.path.join(ROOT, "target/fuzz-campaign"))
    ap.add_argument("seed_dirs", nargs="*", help="folders of seed models (default models/ and the corpus)")
    a = ap.parse_args()
    seed_dirs = a.seed_dirs or [d for d in (os.path.join(ROOT, "models"), os.path.join(ROOT, "../shared/corpus/open"))
                                if os.path.isdir(d)]
    failures_dir = os.path.join(a.out, "failures")
    os.makedirs(failures_dir, exist_ok=True)
    deadline = time.monotonic() + a.minutes * 60
    codes, kinds, signatures = collections.Counter(), collections.Counter(), collections.Counter()
    runs, slowest, seed, batch = 0, (0.0, None), a.seed, 200
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-batch-") as cases_dir:
        while time.monotonic() < deadline and (a.cases == 0 or runs < a.cases):
            for f in os.listdir(cases_dir):
                os.remove(os.path.join(cases_dir, f))
            subprocess.run([a.gen, cases_dir, str(seed), str(batch), *seed_dirs], check=True)
            for s in range(seed, seed + batch):
                if time.monotonic() >= deadline or (a.cases and runs >= a.cases):
                    break
                base = os.path.join(cases_dir, f"case_{s}")
                lines = open(base + ".args").read().splitlines()
                what = lines[0].lstrip("# ")
                args = [l for l in lines[1:] if l]
                code, took, problem = run_case(a.tool, base + ".onnx", args, a.mem_mb << 20, a.margin)
                runs += 1
                codes[str(code)] += 1
                for k in what.split("+")[1:]:
                    kinds[k] += 1
                if took > slowest[0]:
                    slowest = (took, s)
                if problem:
                    # One signature per panic site (the path and line), else per message kind.
                    site = problem.split("panicked at ")[-1].split(": ")[0] if "panicked at" in problem else ""
                    key = site or problem.split(":")[0]
                    where = "tract" if "/tract-" in site else "unattributed"
                    sig = f"{where}:{key}"
                    signatures[sig] += 1
                    dest = os.path.join(failures_dir, f"case_{s}")
                    shutil.copyfile(base + ".onnx", dest + ".onnx")
                    shutil.copyfile(base + ".args", dest + ".args")
                    with open(dest + ".txt", "w") as f:
                        f.write(f"{what}\n{' '.join(args)}\n{problem}\n")
                    print(f"FAIL case {s} ({what}): {problem}", flush=True)
            seed += batch
            print(f"{runs} runs, {sum(signatures.values())} failures, exit codes {dict(codes)}, "
                  f"{time.monotonic() - started:.0f} s", flush=True)
    summary = {
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
        "first_seed": a.seed,
        "last_seed": seed - 1,
        "exit_codes": dict(codes),
        "mutations": dict(kinds),
        "failures": sum(signatures.values()),
        "failure_kinds": dict(signatures),
        "slowest_run": {"seconds": round(slowest[0], 2), "seed": slowest[1]},
        "mem_mb": a.mem_mb,
        "seed_dirs": seed_dirs,
    }
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
