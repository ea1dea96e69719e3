//! Peak memory of the sizing worker: sizes each model in the tool's worker
//! process (`onnx-memsched --size-worker`, as the CLI does) started under GNU
//! time, which reports that process's own peak resident set size, and prints
//! one line per model: `path<TAB>worker runs<TAB>peak RSS of the largest run
//! (KiB)<TAB>seconds<TAB>outcome`. The figures back `MEMORY_CAP` in
//! `src/sizes/isolate.rs` (docs/HARDENING-SIZES.md).
//!
//! ```text
//! cargo build --release --bin onnx-memsched --example worker_rss
//! target/release/examples/worker_rss [--tool target/release/onnx-memsched] [--time-limit 60] model.onnx...
//! ```
//!
//! Needs `/usr/bin/time` (GNU time). Several worker runs per model happen
//! only when tract crashes (the bisection of the culprit node).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use onnx_memsched::onnx::OnnxFile;
use onnx_memsched::sizes::isolate::{infer_in_worker, sizing_budget, Worker, WORKER_FLAG};
use onnx_memsched::sizes::SizeOptions;

fn main() -> ExitCode {
    let mut tool = std::path::PathBuf::from("target/release/onnx-memsched");
    let mut limit = 60.0_f64;
    let mut models = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tool" => tool = args.next().map(Into::into).unwrap_or(tool),
            "--time-limit" => limit = args.next().and_then(|v| v.parse().ok()).unwrap_or(limit),
            _ => models.push(a),
        }
    }
    if models.is_empty() {
        eprintln!("usage: worker_rss [--tool PATH] [--time-limit SECONDS] model.onnx...");
        return ExitCode::from(2);
    }
    let log = std::env::temp_dir().join(format!("worker_rss.{}.txt", std::process::id()));
    for path in &models {
        let file = match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| OnnxFile::parse(b).map_err(|e| e.to_string()))
        {
            Ok(f) => f,
            Err(e) => {
                println!("{path}\t0\t-\t-\tcannot read: {e}");
                continue;
            }
        };
        let _ = std::fs::remove_file(&log);
        let worker = Worker {
            program: "/usr/bin/time".into(),
            args: vec![
                "-a".into(),
                "-o".into(),
                log.clone().into(),
                "-f".into(),
                "%M".into(),
                tool.clone().into(),
                WORKER_FLAG.into(),
            ],
        };
        let start = Instant::now();
        let deadline = start + sizing_budget(Duration::from_secs_f64(limit));
        let result = infer_in_worker(&worker, &file.model, &SizeOptions::default(), deadline);
        let seconds = start.elapsed().as_secs_f64();
        // GNU time writes one line per run ("Command terminated by signal N"
        // before it for a killed worker); a worker killed at the deadline
        // takes time with it and writes nothing.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let peaks: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        let outcome = match &result {
            Ok(s) => {
                let stopped = s.assumptions.iter().find(|a| a.contains("tract was not used"));
                stopped.map_or("sized".to_string(), |a| format!("sized without tract: {a}"))
            }
            Err(e) => format!("error: {e}"),
        };
        let peak = peaks.iter().max().map_or("-".to_string(), |p| p.to_string());
        println!("{path}\t{}\t{peak}\t{seconds:.1}\t{}", peaks.len(), outcome.chars().take(200).collect::<String>());
    }
    let _ = std::fs::remove_file(&log);
    ExitCode::SUCCESS
}
