//! Control-flow bodies against a brute-force nested simulator.
//!
//! Random models with If and Loop nodes (bodies with their own chains, reading
//! outer tensors), sized by construction. The simulator below is written from
//! the memory model's definition (README, `bodies` module doc) and shares no
//! code with the tool: it finds every figure by enumerating orders. Checked:
//! the input's peak, each written body at its exact optimum, the written
//! model's peak, the model's optimum when the plan says `optimal`, and that
//! only node order changed, at every depth.

mod common;

use std::collections::HashMap;

use common::nested_sim::Sim;
use common::onnx_models::{canonical_node, float_value, model, node};
use common::Rng;
use onnx_memsched::onnx::{pb, OnnxFile};
use onnx_memsched::plan::{plan, PlanOptions, Target};
use prost::Message;

const INT64: i32 = 7;
const BOOL: i32 = 9;

fn typed(name: &str, elem: i32, dims: &[i64]) -> pb::ValueInfoProto {
    let mut v = float_value(name, dims);
    if let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.elem_type = Some(elem);
    }
    v
}

fn graph_attr(name: &str, g: pb::GraphProto) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), r#type: Some(5), g: Some(g), ..Default::default() }
}

fn ints_attr(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), r#type: Some(7), ints: v.to_vec(), ..Default::default() }
}

fn int_attr(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), r#type: Some(2), i: Some(v), ..Default::default() }
}

/// Builds random 1-D float chains and records every tensor's bytes.
struct Gen {
    rng: Rng,
    bytes: HashMap<String, u64>,
    count: usize,
}

impl Gen {
    fn name(&mut self, p: &str) -> String {
        self.count += 1;
        format!("{p}{}", self.count)
    }

    /// `n` random nodes over `sources` (1-D float tensors): Relu, Concat of
    /// two, ReduceMax to one element. Returns the nodes and what they wrote.
    fn dag(&mut self, prefix: &str, sources: &[String], n: usize) -> (Vec<pb::NodeProto>, Vec<String>) {
        let mut avail = sources.to_vec();
        let mut nodes = Vec::new();
        let mut made = Vec::new();
        for _ in 0..n {
            let a = avail[self.rng.below(avail.len() as u64) as usize].clone();
            let out = self.name(&format!("{prefix}t"));
            let nm = self.name(&format!("{prefix}n"));
            let node = match self.rng.below(3) {
                0 => {
                    self.bytes.insert(out.clone(), self.bytes[&a]);
                    node("Relu", &nm, &[&a], &[&out])
                }
                1 => {
                    let b = avail[self.rng.below(avail.len() as u64) as usize].clone();
                    self.bytes.insert(out.clone(), self.bytes[&a] + self.bytes[&b]);
                    let mut n = node("Concat", &nm, &[&a, &b], &[&out]);
                    n.attribute.push(int_attr("axis", 0));
                    n
                }
                _ => {
                    self.bytes.insert(out.clone(), 4);
                    let mut n = node("ReduceMax", &nm, &[&a], &[&out]);
                    n.attribute.push(ints_attr("axes", &[0]));
                    n.attribute.push(int_attr("keepdims", 1));
                    n
                }
            };
            nodes.push(node);
            avail.push(out.clone());
            made.push(out);
        }
        (nodes, made)
    }

    fn pick(&mut self, items: &[String]) -> String {
        items[self.rng.below(items.len() as u64) as usize].clone()
    }
}

fn dims_of(bytes: u64) -> Vec<i64> {
    vec![(bytes / 4) as i64]
}

/// A random model: a few top-level nodes, an If whose branches read outer
/// tensors, a Loop whose body has its own chain and a scan output, and a
/// tail reading their outputs.
fn random_model(seed: u64) -> (pb::ModelProto, HashMap<String, u64>) {
    let mut g = Gen { rng: Rng::new(seed), bytes: HashMap::new(), count: 0 };
    let k = 16 * (1 + g.rng.below(64)) as i64;
    g.bytes.insert("x".into(), 4 * k as u64);
    g.bytes.insert("c".into(), 1);
    let head = 2 + g.rng.below(3) as usize;
    let (mut nodes, mut avail) = g.dag("h", &["x".to_string()], head);
    avail.push("x".into());
    // If: each branch reads one or two outer tensors.
    let branch = |g: &mut Gen, tag: &str, avail: &[String]| {
        let mut reads = vec![g.pick(avail)];
        if g.rng.chance(50) {
            reads.push(g.pick(avail));
        }
        let n = 2 + g.rng.below(4) as usize;
        let (body, made) = g.dag(tag, &reads, n);
        let out = made.last().cloned().unwrap_or_default();
        let outputs = vec![float_value(&out, &dims_of(g.bytes[&out]))];
        (pb::GraphProto { name: Some(tag.into()), node: body, output: outputs, ..Default::default() }, out)
    };
    let (then_g, then_out) = branch(&mut g, "th", &avail);
    let (else_g, else_out) = branch(&mut g, "el", &avail);
    let if_out = "if_out".to_string();
    g.bytes.insert(if_out.clone(), g.bytes[&then_out].max(g.bytes[&else_out]));
    let mut if_node = node("If", "choose", &["c"], &[&if_out]);
    if_node.attribute = vec![graph_attr("then_branch", then_g), graph_attr("else_branch", else_g)];
    nodes.push(if_node);
    avail.push(if_out);
    // Loop: two iterations over a carried tensor, with a scan output.
    let carried = g.pick(&avail);
    let outer = g.pick(&avail);
    g.bytes.insert("h_in".into(), g.bytes[&carried]);
    let n_body = 2 + g.rng.below(4) as usize;
    let (mut body, made) = g.dag("lp", &["h_in".to_string(), outer], n_body);
    let scan_src = g.pick(&made);
    body.push(node("Relu", "update", &["h_in"], &["h_out"]));
    body.push(node("Identity", "scan", &[&scan_src], &["scan_out"]));
    body.push(node("Identity", "keep", &["cond_in"], &["cond_out"]));
    g.bytes.insert("h_out".into(), g.bytes[&carried]);
    g.bytes.insert("scan_out".into(), g.bytes[&scan_src]);
    g.bytes.insert("iter".into(), 8);
    g.bytes.insert("cond_in".into(), 1);
    g.bytes.insert("cond_out".into(), 1);
    let loop_body = pb::GraphProto {
        name: Some("body".into()),
        node: body,
        input: vec![
            typed("iter", INT64, &[]),
            typed("cond_in", BOOL, &[]),
            float_value("h_in", &dims_of(g.bytes[&carried])),
        ],
        output: vec![
            typed("cond_out", BOOL, &[]),
            float_value("h_out", &dims_of(g.bytes[&carried])),
            float_value("scan_out", &dims_of(g.bytes[&scan_src])),
        ],
        ..Default::default()
    };
    let mut loop_node = node("Loop", "repeat", &["trip", "", &carried], &["final", "scans"]);
    loop_node.attribute = vec![graph_attr("body", loop_body)];
    nodes.push(loop_node);
    g.bytes.insert("final".into(), g.bytes[&carried]);
    g.bytes.insert("scans".into(), 2 * g.bytes[&scan_src]);
    avail.push("final".into());
    let n_tail = 2 + g.rng.below(2) as usize;
    let (tail, made) = g.dag("tl", &avail, n_tail);
    nodes.extend(tail);
    let y = made.last().cloned().unwrap_or_default();
    let scan_elems = (g.bytes[&scan_src] / 4) as i64;
    let outputs = vec![float_value(&y, &dims_of(g.bytes[&y])), float_value("scans", &[2, scan_elems])];
    let mut m = model(nodes, vec![float_value("x", &[k]), typed("c", BOOL, &[])], outputs);
    let gr = m.graph.as_mut().unwrap();
    gr.initializer.push(pb::TensorProto {
        name: Some("trip".into()),
        data_type: Some(INT64),
        int64_data: vec![2],
        ..Default::default()
    });
    (m, g.bytes)
}

/// The graph with its nodes in a canonical order, bodies included.
fn canonical(g: &pb::GraphProto) -> pb::GraphProto {
    let mut g = g.clone();
    g.node = g.node.iter().map(canonical_node).collect();
    g.node.sort_by_key(|n| n.encode_to_vec());
    g
}

fn bodies_of(g: &pb::GraphProto, out: &mut Vec<(String, pb::GraphProto)>) {
    for n in &g.node {
        for a in &n.attribute {
            if let Some(b) = &a.g {
                out.push((format!("{} {}", n.name(), a.name()), b.clone()));
                bodies_of(b, out);
            }
        }
    }
}

#[test]
fn nested_peaks_match_a_brute_force_simulator() {
    let mut bodies_changed = 0;
    for seed in 1..=40u64 {
        let (m, sizes) = random_model(seed);
        let bytes = m.encode_to_vec();
        let file = OnnxFile::parse(bytes.clone()).unwrap();
        let opts = PlanOptions { target: Target::FileOrder, gap: 0.0, ..Default::default() };
        let p = plan(&file, &opts).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let g = m.graph.as_ref().unwrap();
        let input = Sim::new(g, &sizes);
        let identity: Vec<usize> = (0..g.node.len()).collect();
        assert_eq!(p.before.peak, input.peak(&identity), "seed {seed}: input peak");

        let written = p.rewrite(&file);
        assert_eq!(written.len(), bytes.len(), "seed {seed}: size changed");
        let wm = pb::ModelProto::decode(written.as_slice()).unwrap();
        let wg = wm.graph.as_ref().unwrap();
        assert_eq!(canonical(wg), canonical(g), "seed {seed}: more than node order changed");
        let mut rest_in = m.clone();
        let mut rest_out = wm.clone();
        rest_in.graph = None;
        rest_out.graph = None;
        assert_eq!(rest_in, rest_out, "seed {seed}");

        let out = Sim::new(wg, &sizes);
        assert_eq!(p.after.peak, out.peak(&identity), "seed {seed}: written peak");
        assert!(p.after.peak <= p.before.peak, "seed {seed}: worse than the input");
        let mut written_bodies = Vec::new();
        bodies_of(wg, &mut written_bodies);
        for (name, b) in &written_bodies {
            let sim = Sim::new(b, &sizes);
            let peak = sim.peak(&(0..b.node.len()).collect::<Vec<_>>());
            assert_eq!(peak, sim.optimum(), "seed {seed}: body {name} is not at its optimum");
            let planned = p.bodies.iter().find(|x| {
                x.name.ends_with(name.split(' ').last().unwrap()) && x.name.contains(name.split(' ').next().unwrap())
            });
            let planned = planned.unwrap_or_else(|| panic!("seed {seed}: body {name} not in the plan"));
            assert_eq!(planned.peak_after, peak, "seed {seed}: body {name}: reported peak");
            assert!(planned.optimal, "seed {seed}: body {name} not proved");
            bodies_changed += usize::from(planned.changed);
        }
        if p.optimal {
            assert_eq!(p.after.peak, out.optimum(), "seed {seed}: claimed optimal");
        }
    }
    // The generator makes bodies worth reordering: some must have moved.
    assert!(bodies_changed > 0, "no body was ever reordered");
}

/// An If whose condition is computed from shapes (`Equal(Size(x), 16)`, as
/// exported functions test their inputs' ranks) runs one branch only: the
/// other, however large, is not counted, and the summary says why.
#[test]
fn an_if_with_a_constant_condition_counts_the_branch_it_takes() {
    let then_g = pb::GraphProto {
        name: Some("then".into()),
        node: vec![node("Relu", "r", &["x"], &["yt"])],
        output: vec![float_value("yt", &[16])],
        ..Default::default()
    };
    // A branch that would hold 4x the input twice over.
    let mut cat = node("Concat", "cat", &["x", "x", "x", "x"], &["big"]);
    cat.attribute.push(int_attr("axis", 0));
    let else_g = pb::GraphProto {
        name: Some("else".into()),
        node: vec![cat, node("Relu", "r2", &["big"], &["big2"]), {
            let mut n = node("ReduceMax", "m", &["big2"], &["ye"]);
            n.attribute.push(ints_attr("axes", &[0]));
            n.attribute.push(int_attr("keepdims", 1));
            n
        }],
        output: vec![float_value("ye", &[1])],
        ..Default::default()
    };
    let mut iff = node("If", "choose", &["c"], &["y"]);
    iff.attribute = vec![graph_attr("then_branch", then_g), graph_attr("else_branch", else_g)];
    let mut m = model(
        vec![node("Size", "size", &["x"], &["n"]), node("Equal", "eq", &["n", "sixteen"], &["c"]), iff],
        vec![float_value("x", &[16])],
        vec![float_value("y", &[16])],
    );
    m.graph.as_mut().unwrap().initializer.push(pb::TensorProto {
        name: Some("sixteen".into()),
        data_type: Some(INT64),
        int64_data: vec![16],
        ..Default::default()
    });
    let file = OnnxFile::parse(m.encode_to_vec()).unwrap();
    let p = plan(&file, &PlanOptions { target: Target::FileOrder, gap: 0.0, ..Default::default() }).unwrap();
    // x 64 B, n 8 B, c 1 B, y 64 B (the then branch's): at the If, x + c + y;
    // its branch needs nothing beyond its output. Counting the else branch
    // (512 B inside) would give 577 B.
    assert_eq!(p.before.peak, 64 + 1 + 64, "{:?}", p.assumptions);
    assert!(
        p.assumptions.iter().any(|a| a.contains("always true") && a.contains("then_branch")),
        "{:?}",
        p.assumptions
    );
    assert!(!p.assumptions.iter().any(|a| a.contains("larger of its two branches")), "{:?}", p.assumptions);
    assert!(
        p.bodies.iter().all(|b| b.name.contains("then_branch")),
        "{:?}",
        p.bodies.iter().map(|b| &b.name).collect::<Vec<_>>()
    );
}
