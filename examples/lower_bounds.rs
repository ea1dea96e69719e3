//! Prints the lower bounds of a model (LB1, LB2, LB3, LB4) with their
//! times, against the peak of the file order and of the best heuristic
//! (or of the order in a file of op indices given as a second argument).
//!
//! ```text
//! cargo run --release --example lower_bounds -- model.onnx
//! ```

use onnx_memsched::graph::bounds::{lb1, lower_bound, Reachability};
use onnx_memsched::graph::cut::{cut_bound, region_bound};
use onnx_memsched::graph::OpId;
use onnx_memsched::graph::memory::evaluate;
use onnx_memsched::onnx::OnnxFile;
use onnx_memsched::schedule::{heuristics, Scheduler};
use onnx_memsched::{plan, PlanOptions};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: lower_bounds MODEL.onnx");
        return ExitCode::from(2);
    };
    let file = match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|b| OnnxFile::parse(b).map_err(|e| e.to_string())) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = PlanOptions { scheduler: Scheduler::Input, ..PlanOptions::default() };
    let p = match plan(&file, &opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let g = &p.graph;
    let mem = &p.memory;
    let best = heuristics::portfolio(g, mem).into_iter().next();
    let (mut order, mut peak) = best.map_or((p.input_order.clone(), p.before.peak), |c| (c.order, c.peak));
    if let Some(text) = std::env::args().nth(2).and_then(|f| std::fs::read_to_string(f).ok()) {
        order = text.split_whitespace().filter_map(|x| x.parse().ok()).map(OpId).collect();
        peak = evaluate(g, &order, mem).peak;
    }
    let t = Instant::now();
    let reach = Reachability::new(g, &p.input_order);
    let l2 = lower_bound(g, &reach, mem).bytes;
    let t2 = t.elapsed().as_secs_f64();
    let prof = evaluate(g, &order, mem);
    let mut steps = vec![0u64; g.ops.len()];
    for (s, v) in order.iter().enumerate() {
        steps[v.index()] = prof.steps[s];
    }
    let t = Instant::now();
    let l3 = cut_bound(g, &reach, mem, &steps, l2, None);
    let t3 = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let l4 = region_bound(g, &reach, mem, &order, &steps, &l3.per_op, l3.bytes, peak, None);
    let t4 = t.elapsed().as_secs_f64();
    println!(
        "{path}: ops {} input {} order {peak} LB1 {} LB2 {l2} ({t2:.2}s) LB3 {} ({t3:.2}s, {} cuts, at {:?}) LB4 {l4} ({t4:.2}s)",
        g.ops.len(),
        p.before.peak,
        lb1(g, mem).bytes,
        l3.bytes,
        l3.ops_cut,
        l3.at
    );
    ExitCode::SUCCESS
}
