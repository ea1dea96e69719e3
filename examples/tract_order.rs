//! The peak, under this crate's memory model, of the order tract would run an
//! ONNX model's nodes in.
//!
//! ```text
//! cargo run --release --example tract_order -- MODEL.onnx
//! ```
//!
//! tract orders a model's nodes by itself (`eval_order_opt_ram`, which its
//! `SimplePlan` uses unless `skip_order_opt_ram` is set). That heuristic is
//! size-blind: it only looks at the node graph. This example loads the model
//! into a tract `InferenceModel` (no analysis, no optimisation), asks tract
//! for `eval_order_opt_ram`, maps tract's nodes back to the ONNX nodes and
//! evaluates the order with [`onnx_memsched::graph::memory::evaluate`].
//!
//! No weight byte is read: every initializer is replaced by a float scalar
//! (and large or external `Constant` values too), which keeps the node graph
//! tract sees unchanged (weights are `Const` nodes either way) since the
//! order does not depend on values. Graph inputs get an untyped float fact.
//! Nodes whose tract builder fails (or that tract does not know) are given
//! to tract as opaque nodes with the same inputs (including the outer-scope
//! reads of their subgraphs) and outputs, so the graph keeps its shape.
//!
//! tract names the node of ONNX node `i` after its name (or first output) and
//! puts it at index `consts + i`; the mapping is checked by name. ONNX nodes
//! tract's order does not contain (nodes no graph output depends on) are
//! appended: the final order is a stable topological sort of our graph with
//! tract's position as the priority, which reproduces tract's order exactly
//! where it is valid.
//!
//! Prints `tract_peak_bytes N`, `input_peak_bytes N`, `placed_by_tract N`,
//! `appended N`, `opaque_nodes N` (one per line).

use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;

use onnx_memsched::graph::{self, build::node_reads, memory, topo, OpId, TensorKind};
use onnx_memsched::onnx::{pb, OnnxFile};
use onnx_memsched::sizes;
use prost::Message;
use tract_onnx::model::ParsingContext;
use tract_onnx::prelude::InferenceModel;
use tract_onnx::Onnx;

const OPAQUE_OP: &str = "MemschedOpaqueForOrder";
const ATTEMPTS: usize = 5;

/// A stand-in for a weight, distinct from every other one: tract's
/// `add_const` shares one node between initializers of equal value, and real
/// large weights are (almost) never equal.
fn dummy_tensor(name: Option<String>, counter: &mut u32) -> pb::TensorProto {
    *counter += 1;
    pb::TensorProto {
        name,
        data_type: Some(1),
        dims: vec![3],
        float_data: vec![*counter as f32, 1.2345e-30, -9.876e29],
        ..Default::default()
    }
}

/// Whether a weight is kept as it is: small and inline (tract shares equal
/// small constants such as shape vectors, and so does this).
fn keep(t: &pb::TensorProto) -> bool {
    if is_external(t) {
        return false;
    }
    let payload = t.raw_data.as_ref().map_or(0, |r| r.len())
        + 4 * (t.float_data.len() + t.int32_data.len())
        + 8 * (t.int64_data.len() + t.double_data.len() + t.uint64_data.len())
        + t.string_data.iter().map(|s| s.len()).sum::<usize>();
    payload <= 1024
}

fn is_external(t: &pb::TensorProto) -> bool {
    t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
}

/// Replaces every weight of `g` (and of its subgraphs) by a float scalar.
fn strip_weights(g: &mut pb::GraphProto, counter: &mut u32) {
    let sparse: Vec<pb::TensorProto> =
        g.sparse_initializer.drain(..).filter_map(|s| s.values).map(|v| dummy_tensor(v.name, counter)).collect();
    for t in g.initializer.iter_mut() {
        if !keep(t) {
            *t = dummy_tensor(t.name.take(), counter);
        }
    }
    g.initializer.extend(sparse);
    for node in g.node.iter_mut() {
        for a in node.attribute.iter_mut() {
            if let Some(t) = a.t.as_mut() {
                if !keep(t) {
                    *t = dummy_tensor(t.name.take(), counter);
                }
            }
            for sub in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                strip_weights(sub, counter);
            }
        }
    }
}

/// An untyped float tensor type (the order ignores facts).
fn untyped() -> pb::TypeProto {
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: Some(1), shape: None })),
        denotation: None,
    }
}

/// A node with the same name, reads and writes that tract cannot fail to build.
fn opaque(node: &pb::NodeProto) -> pb::NodeProto {
    pb::NodeProto {
        name: node.name.clone(),
        op_type: Some(OPAQUE_OP.to_string()),
        input: node_reads(node),
        output: node.output.clone(),
        ..Default::default()
    }
}

fn to_tract(model: &pb::ModelProto) -> Result<tract_onnx::pb::ModelProto, String> {
    tract_onnx::pb::ModelProto::decode(model.encode_to_vec().as_slice()).map_err(|e| format!("re-decoding: {e}"))
}

fn panic_text(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Indices of the top-level nodes whose tract builder fails.
fn failing_nodes(onnx: &Onnx, proto: &tract_onnx::pb::ModelProto) -> Vec<usize> {
    let Some(graph) = proto.graph.as_ref() else { return Vec::new() };
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(0);
    let ctx = ParsingContext {
        onnx_operator_set_version: opset,
        framework: onnx,
        model: proto,
        parent_graphs: vec![graph],
        model_dir: None,
        template: InferenceModel::default(),
    };
    let mut failing = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        let Some(builder) = onnx.op_register.0.get(&node.op_type) else { continue };
        match catch_unwind(AssertUnwindSafe(|| builder(&ctx, node))) {
            Ok(Ok(_)) => {}
            _ => failing.push(i),
        }
    }
    failing
}

/// tract's `eval_order_opt_ram` as ONNX node indices (first occurrence of
/// each), and how many nodes were given to tract as opaque.
fn tract_order(model: &pb::ModelProto) -> Result<(Vec<usize>, usize), String> {
    let onnx = tract_onnx::onnx().with_ignore_value_info(true).with_ignore_output_shapes(true);
    let mut m = model.clone();
    let g = m.graph.as_mut().ok_or("no graph")?;
    strip_weights(g, &mut 0);
    g.value_info.clear();
    for vi in g.input.iter_mut().chain(g.output.iter_mut()) {
        vi.r#type = Some(untyped());
    }
    let original = g.node.clone();
    let mut opaque_set: HashSet<usize> = HashSet::new();
    for (i, n) in original.iter().enumerate() {
        let standard = matches!(n.domain(), "" | "ai.onnx" | "ai.onnx.ml");
        if !standard {
            opaque_set.insert(i);
        }
    }
    let mut last_err = String::new();
    for attempt in 0..ATTEMPTS {
        let g = m.graph.as_mut().unwrap();
        for (i, n) in original.iter().enumerate() {
            g.node[i] = if opaque_set.contains(&i) || attempt + 1 == ATTEMPTS { opaque(n) } else { n.clone() };
        }
        let proto = to_tract(&m)?;
        let parsed = catch_unwind(AssertUnwindSafe(|| onnx.parse(&proto, None)));
        let result = match parsed {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                last_err = format!("{e:#}");
                let failing = failing_nodes(&onnx, &proto);
                opaque_set.extend(failing);
                continue;
            }
            Err(p) => {
                last_err = format!("tract panicked: {}", panic_text(p));
                let failing = failing_nodes(&onnx, &proto);
                opaque_set.extend(failing);
                continue;
            }
        };
        let tm = result.model;
        let order = catch_unwind(AssertUnwindSafe(|| tm.eval_order_opt_ram()))
            .map_err(|p| format!("eval_order_opt_ram panicked: {}", panic_text(p)))?
            .map_err(|e| format!("eval_order_opt_ram: {e:#}"))?;
        // tract adds the sources and `Const` nodes first (equal constants
        // share one node), then ONNX node i at index `consts + i`, named
        // after it; find `consts` and check every name.
        let tg = proto.graph.as_ref().unwrap();
        let nodes = tm.nodes();
        let expected = |i: usize, consts: usize| {
            let pbnode = &tg.node[i];
            if !pbnode.name.is_empty() {
                pbnode.name.clone()
            } else if !pbnode.output.is_empty() && !pbnode.output[0].is_empty() {
                pbnode.output[0].clone()
            } else {
                format!("{}-{}", consts + i, pbnode.op_type)
            }
        };
        let fits = |c: usize| {
            (0..tg.node.len()).all(|i| nodes.get(c + i).map(|n| n.name.as_str()) == Some(expected(i, c).as_str()))
        };
        let consts = (0..nodes.len().saturating_sub(tg.node.len()) + 1)
            .find(|&c| fits(c))
            .ok_or("cannot map tract's nodes back to the ONNX nodes by name")?;
        let n = tg.node.len();
        let mut seen = vec![false; n];
        let mut out = Vec::new();
        for t in order {
            if t >= consts && t < consts + n && !seen[t - consts] {
                seen[t - consts] = true;
                out.push(t - consts);
            }
        }
        let opaque_count = if attempt + 1 == ATTEMPTS { n } else { opaque_set.len() };
        return Ok((out, opaque_count));
    }
    Err(format!("tract refused the model even with every node opaque: {last_err}"))
}

/// Stable topological sort with `priority[op]` (lower first), then file order.
fn priority_sort(g: &graph::Graph, priority: &[usize]) -> Option<Vec<OpId>> {
    let n = g.ops.len();
    let mut waiting: Vec<usize> = g.op_ids().map(|v| g.predecessors(v).len()).collect();
    let succs: Vec<Vec<OpId>> = g.op_ids().map(|v| g.successors(v)).collect();
    let mut ready: BinaryHeap<Reverse<(usize, OpId)>> =
        g.op_ids().filter(|v| waiting[v.index()] == 0).map(|v| Reverse((priority[v.index()], v))).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse((_, v))) = ready.pop() {
        order.push(v);
        for &s in &succs[v.index()] {
            waiting[s.index()] -= 1;
            if waiting[s.index()] == 0 {
                ready.push(Reverse((priority[s.index()], s)));
            }
        }
    }
    (order.len() == n).then_some(order)
}

fn run(path: &str) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let file = OnnxFile::parse(bytes).map_err(|e| format!("{path}: {e}"))?;
    let mut g = graph::build(file.graph(), &|_| 0).map_err(|e| e.to_string())?;
    let input_order = topo::stable_order(&g).map_err(|_| "the graph has a cycle".to_string())?;
    let sizes = sizes::infer(&file.model, &Default::default()).map_err(|e| e.to_string())?;
    for t in &mut g.tensors {
        if t.kind != TensorKind::Weight {
            t.bytes = sizes.tensors.get(&t.name).map_or(0, |s| s.bytes);
        }
    }
    let (tract, opaque) = tract_order(&file.model)?;
    let mut priority = vec![usize::MAX; g.ops.len()];
    for (pos, &i) in tract.iter().enumerate() {
        priority[i] = pos;
    }
    let order = priority_sort(&g, &priority).ok_or("the graph has a cycle")?;
    topo::check_order(&g, &order)?;
    // How much of tract's order survives: the longest prefix of the final
    // order equal to tract's (tract's order is topologically valid on our
    // graph unless the two graphs differ).
    let kept = order.iter().zip(&tract).take_while(|(a, &b)| a.index() == b).count();
    let opts = memory::MemoryOptions::default();
    let peak = memory::evaluate(&g, &order, &opts).peak;
    let input_peak = memory::evaluate(&g, &input_order, &opts).peak;
    println!("tract_peak_bytes {peak}");
    println!("input_peak_bytes {input_peak}");
    println!("placed_by_tract {}", tract.len());
    println!("appended {}", g.ops.len() - tract.len());
    println!("opaque_nodes {opaque}");
    if kept != tract.len() {
        println!("warning: tract's order was not topologically valid on our graph; it diverges at position {kept}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: tract_order MODEL.onnx");
        return ExitCode::from(2);
    };
    match run(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
