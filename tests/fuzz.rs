//! The fuzz target: structure-aware mutated models (`common/fuzz_gen.rs`)
//! through the whole pipeline of the real binary, so that a crash, an abort
//! or a hang in a child process counts. Every case must end with
//!
//! * exit code 0, 1, 2 or 3 (not a signal, not 101), within the time limit
//!   plus a generous margin;
//! * no panic text on stderr;
//! * on failure: no output file and nothing else left in the folder;
//! * the input file unchanged;
//! * on success: an output of the input's size that decodes to the same
//!   model with the same multiset of nodes (only their order may change).
//!
//! CI runs a bounded number of cases (`FUZZ_CASES`, default below; seeds
//! from the built-in models, `models/` and, when present, the small corpus
//! models). Longer campaigns: `scripts/fuzz_campaign.py`. Every failing
//! input found is kept in `tests/fuzz_regressions/` and replayed by
//! `fuzz_regressions_hold`.

mod common;

use common::fuzz_gen;
use common::onnx_models::canonical_node;
use onnx_memsched::onnx::pb;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Cases per CI run (about 20 s of CPU).
const CI_CASES: u64 = 150;
/// A run may use this much more CPU time than its `--time-limit` (then it is killed).
const MARGIN: Duration = Duration::from_secs(20);
/// Wall time past `--time-limit` after which a run counts as a hang (wide:
/// the CPU limit is the real bound, wall time only catches a sleeping run).
const WALL_MARGIN: Duration = Duration::from_secs(120);
/// Whether failures inside tract's size inference (issue 15 items 1-3 and 7:
/// its panics, its out-of-bounds reads, its huge constant folding) fail the
/// test. True since tract runs isolated in a worker process
/// (`src/sizes/isolate.rs`), where they become a one-line error or a
/// fallback: every kept regression replays clean, so a new one is a bug.
const TRACT_FINDINGS_FAIL: bool = true;

/// Whether a failure is one of tract's known classes: a panic in a tract
/// crate (or in a crate only tract uses here), a segmentation fault, or an
/// abort on a failed allocation.
fn is_tract_finding(problem: &str) -> bool {
    ["/tract-", "/smallvec-", "/ndarray-"].iter().any(|p| problem.contains(p))
        || problem.starts_with("killed by a signal (signal: 11")
        || problem.starts_with("killed by a signal (signal: 6")
        || problem.contains("memory allocation of")
}

fn tool() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_onnx-memsched"))
}

fn time_limit(args: &[String]) -> Duration {
    let secs = args
        .iter()
        .position(|a| a == "--time-limit")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(60.0);
    Duration::from_secs_f64(secs)
}

/// The model with its nodes taken out, and each node's encoding (bodies in
/// canonical order), sorted.
fn split_nodes(model: &pb::ModelProto) -> (pb::ModelProto, Vec<Vec<u8>>) {
    let mut rest = model.clone();
    let mut nodes: Vec<Vec<u8>> = rest
        .graph
        .as_mut()
        .map_or(Vec::new(), |g| std::mem::take(&mut g.node))
        .iter()
        .map(|n| canonical_node(n).encode_to_vec())
        .collect();
    nodes.sort();
    (rest, nodes)
}

/// Runs the binary on `input` with `args` in a fresh folder and checks every
/// promise of the module doc. Returns the exit code, or what went wrong.
fn check_case(input: &[u8], args: &[String]) -> Result<i32, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let in_path = dir.path().join("in.onnx");
    let out_path = dir.path().join("out.onnx");
    std::fs::write(&in_path, input).map_err(|e| e.to_string())?;
    let started = Instant::now();
    // 2 GiB of address space and `--time-limit` + 20 s of CPU time (CPU, not
    // wall time: a loaded machine must not fail the test).
    let cpu = (time_limit(args) + MARGIN).as_secs_f64().ceil().to_string();
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && ulimit -t \"$0\" && exec \"$@\"")
        .arg(&cpu)
        .arg(tool())
        .args(args)
        .arg(&in_path)
        .arg(&out_path)
        .env("RUST_BACKTRACE", "1")
        .output()
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = |s: &str| s.lines().take(3).collect::<Vec<_>>().join(" | ");
    let code = match out.status.code() {
        Some(c @ 0..=3) => c,
        Some(c) => return Err(format!("exit code {c}: {}", first(&stderr))),
        None => return Err(format!("killed by a signal ({}): {}", out.status, first(&stderr))),
    };
    // A caught tract panic is carried by the one-line error ("tract
    // panicked: ..."); Rust's own report says "panicked at".
    if stderr.contains("panicked at") || stderr.contains("stack backtrace") {
        let at = stderr.lines().skip_while(|l| !l.contains("panicked at")).take(2).collect::<Vec<_>>().join(" | ");
        return Err(format!("panic text on stderr (exit {code}): {at}"));
    }
    if took > time_limit(args) + WALL_MARGIN {
        return Err(format!("took {:.1} s with --time-limit {:?}", took.as_secs_f64(), time_limit(args)));
    }
    if std::fs::read(&in_path).map_err(|e| e.to_string())? != input {
        return Err(format!("the input changed (exit {code})"));
    }
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .filter(|n| n != "in.onnx" && n != "out.onnx")
        .collect();
    left.sort();
    // A successful run may copy external data files next to the output;
    // only temporary files are leftovers then.
    if code == 0 {
        left.retain(|n| n.contains(".tmp") || n.starts_with(".onnx-memsched"));
    }
    if !left.is_empty() {
        return Err(format!("files left in the folder (exit {code}): {left:?}"));
    }
    if code != 0 {
        if out_path.exists() {
            return Err(format!("exit {code} but an output file was written"));
        }
        return Ok(code);
    }
    let written = std::fs::read(&out_path).map_err(|e| format!("exit 0 but no output: {e}"))?;
    if written.len() != input.len() {
        return Err(format!("output has {} bytes, input {}", written.len(), input.len()));
    }
    let before = pb::ModelProto::decode(input).map_err(|e| format!("exit 0 on an undecodable input: {e}"))?;
    let after = pb::ModelProto::decode(written.as_slice()).map_err(|e| format!("the output does not decode: {e}"))?;
    let (rest_before, nodes_before) = split_nodes(&before);
    let (rest_after, nodes_after) = split_nodes(&after);
    if nodes_before != nodes_after {
        return Err("the output's nodes are not the input's nodes".into());
    }
    if rest_before != rest_after {
        return Err("the output differs from the input beyond the node order".into());
    }
    Ok(0)
}

fn seeds() -> Vec<(String, pb::ModelProto)> {
    let mut seeds = fuzz_gen::builtin_seeds();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = [root.join("models"), root.join("../shared/corpus/open")];
    // Corpus models up to 2 MB keep a case under a few seconds.
    seeds.extend(fuzz_gen::file_seeds(&dirs, 2 << 20));
    seeds
}

#[test]
fn mutated_models_keep_every_promise() {
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(CI_CASES);
    let first = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1u64);
    let seeds = seeds();
    let mut failures = Vec::new();
    let mut codes = [0usize; 4];
    for seed in first..first + cases {
        let (what, model, args) = fuzz_gen::case(seed, &seeds);
        let bytes = model.encode_to_vec();
        match check_case(&bytes, &args) {
            Ok(code) => codes[code as usize] += 1,
            Err(e) if !TRACT_FINDINGS_FAIL && is_tract_finding(&e) => {
                eprintln!("case {seed} ({what}): tract finding, tolerated until tract runs isolated: {e}");
            }
            Err(e) => failures.push(format!("case {seed} ({what}, {}): {e}", args.join(" "))),
        }
    }
    assert!(failures.is_empty(), "{} of {cases} cases failed:\n{}", failures.len(), failures.join("\n"));
    // The generator must reach both ends of the pipeline: models it accepts
    // and models it refuses.
    assert!(codes[0] > 0 && codes[1] > 0, "exit codes 0..3: {codes:?}: the generator is not exercising the tool");
}

/// Replays every input kept in `tests/fuzz_regressions/` (`NAME.onnx`, with
/// its options one per line in `NAME.args`).
#[test]
fn fuzz_regressions_hold() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fuzz_regressions exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no regression inputs in {}", dir.display());
    let mut failures = Vec::new();
    for p in &paths {
        let input = std::fs::read(p).unwrap();
        let args: Vec<String> = std::fs::read_to_string(p.with_extension("args"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        match check_case(&input, &args) {
            Ok(_) => {}
            Err(e) if !TRACT_FINDINGS_FAIL && is_tract_finding(&e) => {
                eprintln!("{}: tract finding, tolerated until tract runs isolated: {e}", p.display());
            }
            Err(e) => failures.push(format!("{}: {e}", p.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
