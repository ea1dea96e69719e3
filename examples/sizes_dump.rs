//! Prints the inferred byte size of every tensor of an ONNX model, one
//! `name<TAB>bytes<TAB>source<TAB>type[shape]` line per tensor, sorted by name;
//! assumptions and the inference time go to stderr.
//!
//! ```text
//! cargo run --release --example sizes_dump -- model.onnx [--dim N=V]... [--input-shape NAME=1x3x224x224]...
//! ```
//!
//! Useful to compare the `sizes` module with another tool (e.g. the corpus'
//! `peak.py`) tensor by tensor.

use std::process::ExitCode;
use std::time::Instant;

use onnx_memsched::onnx::pb;
use onnx_memsched::sizes::{self, elem_name, SizeOptions};
use prost::Message;

fn parse_args() -> Result<(String, SizeOptions), String> {
    let mut path = None;
    let mut opts = SizeOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dim" | "--input-shape" => {
                let v = args.next().ok_or(format!("{a} needs NAME=VALUE"))?;
                let (name, value) = v
                    .split_once('=')
                    .ok_or(format!("{a} {v}: expected NAME=VALUE"))?;
                if a == "--dim" {
                    let n = value
                        .parse::<i64>()
                        .map_err(|e| format!("--dim {v}: {e}"))?;
                    opts.dims.push((name.to_string(), n));
                } else {
                    let shape = if value.is_empty() {
                        Vec::new()
                    } else {
                        value
                            .split('x')
                            .map(|d| {
                                d.parse::<u64>()
                                    .map_err(|e| format!("--input-shape {v}: {e}"))
                            })
                            .collect::<Result<Vec<_>, _>>()?
                    };
                    opts.input_shapes.push((name.to_string(), shape));
                }
            }
            "--unknown-dim" => {
                let v = args.next().ok_or("--unknown-dim needs N")?;
                opts.unknown_dim = Some(v.parse::<u64>().map_err(|e| format!("--unknown-dim {v}: {e}"))?);
            }
            _ if path.is_none() => path = Some(a),
            _ => return Err(format!("unexpected argument `{a}`")),
        }
    }
    Ok((
        path.ok_or("usage: sizes_dump MODEL.onnx [--dim N=V]... [--input-shape NAME=AxBxC]...")?,
        opts,
    ))
}

fn main() -> ExitCode {
    let (path, opts) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let model = match pb::ModelProto::decode(bytes.as_slice()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{path}: not an ONNX model: {e}");
            return ExitCode::FAILURE;
        }
    };
    let start = Instant::now();
    let result = sizes::infer(&model, &opts);
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(s) => {
            let mut names: Vec<&String> = s.tensors.keys().collect();
            names.sort();
            for name in names {
                let t = &s.tensors[name];
                println!(
                    "{name}\t{}\t{:?}\t{}{:?}",
                    t.bytes,
                    t.source,
                    elem_name(t.elem_type),
                    t.shape
                );
            }
            for a in &s.assumptions {
                eprintln!("assumption: {a}");
            }
            eprintln!("{path}: {} tensors in {:.3} s", s.tensors.len(), secs);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{path}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
