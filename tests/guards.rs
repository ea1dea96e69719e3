//! Issue 15, the scheduler half: LB2 without the `n x n` reachability, every
//! mode on graphs of 200,000 ops in bounded memory, and one deadline for
//! every stage.
//!
//! * LB2 in `O(n)` memory ([`lb2_per_op`]) equals the reachability-based
//!   LB2 on random graphs, in any topological order and under every memory
//!   option, and stays a valid bound (at least LB1, at most LB2) when its
//!   deadline cuts it short.
//! * The real binary, under a 2 GB address-space limit, with
//!   `--time-limit 2`, on a 200,000-op chain in the modes that built the
//!   `n x n` reachability (`dp`, `ilp`, `--target ort-default`) and on wide
//!   graphs (one op with 20,000 producers; a braid of 100,000 ops without
//!   cut points) with `auto`, `dp` and `ort-default`: exit 0, a valid
//!   output, within the limit plus 20 s of CPU time.

mod common;

use common::onnx_models::{self, bytes, float_value as value};
use common::{all_memory_options, random_graph, Rng};
use onnx_memsched::graph::bounds::{lb1, lb2, lb2_per_op, per_op, Reachability};
use onnx_memsched::graph::{topo, OpId};
use onnx_memsched::onnx::pb;
use prost::Message;
use std::process::Command;
use std::time::Instant;

/// A random topological order (Kahn's algorithm with random picks).
fn random_order(graph: &onnx_memsched::graph::Graph, rng: &mut Rng) -> Vec<OpId> {
    let n = graph.ops.len();
    let mut waiting: Vec<usize> = graph.op_ids().map(|v| graph.predecessors(v).len()).collect();
    let mut ready: Vec<OpId> = graph.op_ids().filter(|v| waiting[v.index()] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while !ready.is_empty() {
        let v = ready.swap_remove(rng.below(ready.len() as u64) as usize);
        order.push(v);
        for s in graph.successors(v) {
            waiting[s.index()] -= 1;
            if waiting[s.index()] == 0 {
                ready.push(s);
            }
        }
    }
    order
}

#[test]
fn lb2_without_reachability_equals_lb2_with_it() {
    let mut rng = Rng::new(15);
    for case in 0..600 {
        // Sizes past one block of 512 tensors now and then.
        let n = if case % 50 == 0 { 400 + rng.below(300) as usize } else { 1 + rng.below(40) as usize };
        let graph = random_graph(&mut rng, n);
        let order = random_order(&graph, &mut rng);
        assert_eq!(order.len(), n);
        let stable = topo::stable_order(&graph).unwrap();
        for opts in all_memory_options() {
            let expected = per_op(&graph, &Reachability::new(&graph, &stable), &opts);
            let got = lb2_per_op(&graph, &order, &opts, None);
            assert!(got.complete, "case {case}: no deadline, yet incomplete");
            assert_eq!(got.per_op, expected, "case {case}, {opts:?}");
        }
    }
}

#[test]
fn lb2_cut_short_by_its_deadline_is_between_lb1_and_lb2() {
    let mut rng = Rng::new(16);
    let past = Instant::now();
    for case in 0..200 {
        let n = 1 + rng.below(60) as usize;
        let graph = random_graph(&mut rng, n);
        let order = topo::stable_order(&graph).unwrap();
        for opts in all_memory_options() {
            let full = per_op(&graph, &Reachability::new(&graph, &order), &opts);
            let cut = lb2_per_op(&graph, &order, &opts, Some(past));
            for (v, (&c, &f)) in cut.per_op.iter().zip(&full).enumerate() {
                assert!(c <= f, "case {case}: op {v}: {c} above LB2 {f}");
            }
            let (bound, _) = lb2(&graph, &order, &opts, Some(past));
            assert!(bound.bytes >= lb1(&graph, &opts).bytes, "case {case}: below LB1");
        }
    }
}

#[test]
fn lb2_of_an_invalid_order_falls_back_to_lb1() {
    let mut rng = Rng::new(17);
    let graph = random_graph(&mut rng, 30);
    let opts = Default::default();
    let short: Vec<OpId> = graph.op_ids().take(10).collect();
    let r = lb2_per_op(&graph, &short, &opts, None);
    assert!(!r.complete);
    assert_eq!(r.per_op.len(), graph.ops.len());
    let (bound, _) = lb2(&graph, &short, &opts, None);
    assert_eq!(bound.bytes, lb1(&graph, &opts).bytes);
}

// ---------------------------------------------------------------------------
// The real binary at scale.

fn node(op: &str, inputs: &[String], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: Some(op.into()),
        name: Some(output.into()),
        input: inputs.to_vec(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// A model reading `x` (1x16 floats) and writing `output`, as bytes.
fn model(nodes: Vec<pb::NodeProto>, output: pb::ValueInfoProto) -> Vec<u8> {
    bytes(&onnx_models::model(nodes, vec![value("x", &[1, 16])], vec![output]))
}

/// `n` Relu ops in a line, with value_info for every tensor: tract needs
/// several seconds for 200,000 ops (about 7 s of wall time on the loaded
/// development machine, near the 8 s sizing share of `--time-limit 10`), and
/// when it is stopped the file's shapes size the chain, so the schedulers
/// under test run whatever the machine's load.
fn chain(n: usize) -> Vec<u8> {
    let nodes = (0..n)
        .map(|i| node("Relu", &[if i == 0 { "x".into() } else { format!("t{}", i - 1) }], &format!("t{i}")))
        .collect();
    let mut m = onnx_models::model(nodes, vec![value("x", &[1, 16])], vec![value(&format!("t{}", n - 1), &[1, 16])]);
    m.graph.as_mut().unwrap().value_info = (0..n - 1).map(|i| value(&format!("t{i}"), &[1, 16])).collect();
    bytes(&m)
}

/// `n` Relu ops on the input, joined by one Sum: an op with `n` producers.
fn wide_sum(n: usize) -> Vec<u8> {
    let mut nodes: Vec<pb::NodeProto> = (0..n).map(|i| node("Relu", &["x".into()], &format!("t{i}"))).collect();
    nodes.push(node("Sum", &(0..n).map(|i| format!("t{i}")).collect::<Vec<_>>(), "y"));
    model(nodes, value("y", &[1, 16]))
}

/// Two chains of `n / 2` ops, each op also reading the other chain two
/// steps back: no op is a cut point, so the decomposition leaves one part.
fn braid(n: usize) -> Vec<u8> {
    let half = n / 2;
    let name = |c: char, i: usize| if i == usize::MAX { "x".to_string() } else { format!("{c}{i}") };
    let mut nodes = Vec::new();
    for i in 0..half {
        for (c, other) in [('a', 'b'), ('b', 'a')] {
            let prev = name(c, i.wrapping_sub(1));
            let cross = if i >= 2 { name(other, i - 2) } else { "x".into() };
            nodes.push(node("Add", &[prev, cross], &name(c, i)));
        }
    }
    nodes.push(node("Add", &[name('a', half - 1), name('b', half - 1)], "y"));
    model(nodes, value("y", &[1, 16]))
}

/// Runs the binary under a 2 GB address-space limit and a CPU-time limit
/// of `--time-limit` plus 20 s (CPU time, so that a loaded machine does not
/// fail the test; wall time gets a wider margin against hangs) and checks
/// exit 0, an output with the input's nodes and no panic text. Returns the
/// wall seconds taken.
fn run_bounded(name: &str, input: &[u8], args: &[&str], limit: f64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.onnx");
    let out = dir.path().join("out.onnx");
    std::fs::write(&inp, input).unwrap();
    let tool = env!("CARGO_BIN_EXE_onnx-memsched");
    let limit_arg = limit.to_string();
    let cpu = (limit + 20.0).ceil().to_string();
    let started = Instant::now();
    // `ulimit -v` is in KiB: 2 GiB of address space, so running out aborts
    // the run instead of passing unnoticed; `ulimit -t` kills it past the CPU time.
    let result = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && ulimit -t \"$0\" && exec \"$@\"")
        .arg(&cpu)
        .arg(tool)
        .args(args)
        .args(["-q", "--time-limit", &limit_arg])
        .arg(&inp)
        .arg(&out)
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{name} {args:?}: {stderr}");
    assert!(!stderr.contains("panicked at"), "{name} {args:?}: {stderr}");
    assert!(took < limit + 120.0, "{name} {args:?}: {took:.1} s with --time-limit {limit}");
    let before = pb::ModelProto::decode(input).unwrap();
    let after = pb::ModelProto::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let nodes = |m: &pb::ModelProto| {
        let mut v: Vec<Vec<u8>> = m.graph.as_ref().unwrap().node.iter().map(Message::encode_to_vec).collect();
        v.sort();
        v
    };
    assert_eq!(nodes(&before), nodes(&after), "{name} {args:?}: the output's nodes differ");
    took
}

#[test]
fn dp_ilp_and_ort_default_handle_a_200k_op_chain_within_the_limit_and_2_gb() {
    let input = chain(200_000);
    for args in [&["--scheduler", "dp"][..], &["--scheduler", "ilp"], &["--target", "ort-default"]] {
        // 10 s: sizing 200k ops takes tract several seconds on a loaded
        // machine; if it is cut short, the chain's value_info sizes it.
        let took = run_bounded("chain 200k", &input, args, 10.0);
        eprintln!("chain 200k {args:?}: {took:.1} s");
    }
}

#[test]
fn wide_and_undecomposable_graphs_obey_the_time_limit() {
    let sum = wide_sum(20_000);
    let braid = braid(100_000);
    for (name, input, args) in [
        ("sum 20k", &sum, &["--scheduler", "auto"][..]),
        ("sum 20k", &sum, &["--target", "ort-default"]),
        ("braid 100k", &braid, &["--scheduler", "auto"]),
        ("braid 100k", &braid, &["--scheduler", "dp"]),
    ] {
        let took = run_bounded(name, input, args, 10.0);
        eprintln!("{name} {args:?}: {took:.1} s");
    }
}
