//! Prints the order in which onnxruntime (default execution order, graph
//! optimizations off) will run a model's nodes, one node name per line,
//! `Constant` nodes left out (onnxruntime turns them into initializers).
//!
//! ```text
//! cargo run --release --example ort_predict -- MODEL.onnx [--priority]
//! cargo run --release --example ort_predict -- MODEL.onnx --best 10 --write OUT.onnx [--dim N=V]...
//! ```
//!
//! With `--priority` it prints the order onnxruntime's PRIORITY_BASED
//! execution order runs instead (`schedule::runtimes::priority_order`).
//!
//! With `--best SECONDS` it prints instead the lowest-peak order that some
//! file order makes onnxruntime run (`schedule::ort::best_reachable`, with
//! tensor sizes inferred as the tool does), and with `--write OUT.onnx` it
//! writes the model with that file order (`file_order_for`): onnxruntime
//! then runs exactly the printed order. Peaks of the file order, of
//! onnxruntime's order of the input and of the chosen order go to stderr.
//!
//! A node is named by its `name`, or `#INDEX` (its position in the file the
//! order is about: the input, or OUT with `--write`) when its name is empty
//! or shared with another node; `scripts/ort_order.py` names nodes the same
//! way, so the two outputs compare line by line.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use onnx_memsched::graph::memory::{evaluate, MemoryOptions};
use onnx_memsched::graph::{self, Graph, OpId, TensorKind};
use onnx_memsched::onnx::OnnxFile;
use onnx_memsched::schedule::ort;
use onnx_memsched::sizes::{self, SizeOptions};

struct Args {
    model: String,
    best: Option<f64>,
    write: Option<String>,
    sizes: SizeOptions,
    priority: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut out = Args { model: String::new(), best: None, write: None, sizes: SizeOptions::default(), priority: false };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--best" => {
                let v = args.next().ok_or("--best needs SECONDS")?;
                out.best = Some(v.parse::<f64>().map_err(|e| format!("--best {v}: {e}"))?);
            }
            "--priority" => out.priority = true,
            "--write" => out.write = Some(args.next().ok_or("--write needs a path")?),
            "--dim" => {
                let v = args.next().ok_or("--dim needs NAME=VALUE")?;
                let (name, value) = v.split_once('=').ok_or(format!("--dim {v}: expected NAME=VALUE"))?;
                let n = value.parse::<i64>().map_err(|e| format!("--dim {v}: {e}"))?;
                out.sizes.dims.push((name.to_string(), n));
            }
            "-h" | "--help" => {
                return Err(
                    "usage: ort_predict MODEL.onnx [--priority] [--best SECONDS [--write OUT.onnx]] [--dim NAME=VALUE]...".into()
                )
            }
            _ if out.model.is_empty() && !a.starts_with('-') => out.model = a,
            _ => return Err(format!("unexpected argument `{a}` (try --help)")),
        }
    }
    if out.model.is_empty() {
        return Err("usage: ort_predict MODEL.onnx [--priority] [--best SECONDS [--write OUT.onnx]] [--dim NAME=VALUE]...".into());
    }
    if out.write.is_some() && out.best.is_none() {
        return Err("--write needs --best".into());
    }
    Ok(out)
}

/// Display names of the ops for a file that lists them in `file` order.
fn names(graph: &Graph, file: &[OpId]) -> Vec<String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for op in &graph.ops {
        *count.entry(op.name.as_str()).or_default() += 1;
    }
    let mut out = vec![String::new(); graph.ops.len()];
    for (position, &v) in file.iter().enumerate() {
        let name = graph.op(v).name.as_str();
        out[v.index()] = if name.is_empty() || count.get(name).copied().unwrap_or(0) > 1 {
            format!("#{position}")
        } else {
            name.to_string()
        };
    }
    out
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let bytes = std::fs::read(&args.model).map_err(|e| format!("{}: {e}", args.model))?;
    let file = OnnxFile::parse(bytes).map_err(|e| format!("{}: {e}", args.model))?;
    let mut graph = graph::build(file.graph(), &|_| 0).map_err(|e| e.to_string())?;
    let identity: Vec<OpId> = graph.op_ids().collect();
    let Some(seconds) = args.best else {
        let labels = names(&graph, &identity);
        let order = if args.priority {
            onnx_memsched::schedule::runtimes::priority_order(&graph, &identity).ok_or("the graph has a cycle")?
        } else {
            ort::predict(&graph)
        };
        for v in order {
            if !ort::is_folded(&graph, v) {
                println!("{}", labels[v.index()]);
            }
        }
        return Ok(());
    };
    let sizes = sizes::infer(&file.model, &args.sizes).map_err(|e| e.to_string())?;
    for tensor in &mut graph.tensors {
        if tensor.kind != TensorKind::Weight {
            tensor.bytes = sizes.tensors.get(&tensor.name).map_or(0, |s| s.bytes);
        }
    }
    let opts = MemoryOptions::default();
    let start = Instant::now();
    let found = ort::search(&graph, &opts, start + Duration::from_secs_f64(seconds.max(0.0)));
    let elapsed = start.elapsed().as_secs_f64();
    let best = found.order;
    let file_order = ort::file_order_for(&graph, &best).ok_or("internal error: the chosen order is not reachable")?;
    let peak = |o: &[OpId]| evaluate(&graph, o, &opts).peak;
    let sorted = graph::topo::stable_order(&graph).map_err(|_| "the graph has a cycle")?;
    eprintln!(
        "{} nodes; peak (bytes): file order {}, onnxruntime on the input {}, best reachable {} ({}{}; rewritten file in file order: {}); {elapsed:.2} s",
        graph.ops.len(),
        peak(&sorted),
        peak(&ort::predict(&graph)),
        peak(&best),
        found.method,
        if found.proved_best { ", proved best" } else { "" },
        peak(&file_order),
    );
    let labels = match &args.write {
        Some(out) => {
            let order: Vec<usize> = file_order.iter().map(|v| v.index()).collect();
            std::fs::write(out, file.with_order(&order)).map_err(|e| format!("{out}: {e}"))?;
            names(&graph, &file_order)
        }
        None => names(&graph, &identity),
    };
    for v in best {
        if !ort::is_folded(&graph, v) {
            println!("{}", labels[v.index()]);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ort_predict: {e}");
            ExitCode::FAILURE
        }
    }
}
