//! Builds the small test models shipped in `models/`.
//!
//! ```text
//! cargo run --release --example make_models [-- OUT_DIR]      (default: the crate's models/)
//! ```
//!
//! Four self-contained ONNX models (opset 17, IR version 8, every weight
//! inline, each well under 1 MB) with irregular wiring, where the order of
//! the nodes decides the peak activation memory:
//!
//! * `randwire.onnx`: a randomly wired network (two Watts–Strogatz stages of
//!   12 nodes each; every node is a weighted sum of its inputs, Relu, then a
//!   depthwise-separable, 1x1 or expand-reduce convolution);
//! * `nas_cell.onnx`: a DARTS-like stack of 4 cells (4 intermediate nodes per
//!   cell, each adding two earlier states passed through conv 3x3, separable
//!   conv, max pool, avg pool or identity; the cell output concatenates them);
//! * `multi_branch.onnx`: Inception-like blocks whose branches have very
//!   different activation sizes;
//! * `fork_join.onnx`: one tensor, 8 parallel expand/reduce chains of very
//!   different widths, one Concat.
//!
//! The models are written with their nodes sorted by depth (a breadth-first,
//! level-by-level order): a valid topological order, but one that keeps many
//! branches alive at once, so a memory-aware scheduler has something to gain.
//! Everything is deterministic: a fixed-seed PRNG, no clocks, no hash-map
//! iteration order in the output; running this twice gives identical files.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use onnx_memsched::onnx::pb;
use pb::tensor_shape_proto::{dimension, Dimension};
use pb::type_proto;
use prost::Message;

/// ONNX `TensorProto.DataType.FLOAT`.
const FLOAT: i32 = 1;
/// ONNX `AttributeProto.AttributeType` values used here.
const ATTR_INT: i32 = 2;
const ATTR_INTS: i32 = 7;

/// SplitMix64: tiny, fast, and good enough to draw weights and wiring.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f32 {
        (self.unit() * 2.0 - 1.0) as f32
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

fn attr_int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), r#type: Some(ATTR_INT), i: Some(value), ..Default::default() }
}

fn attr_ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: Some(name.into()), r#type: Some(ATTR_INTS), ints: values.to_vec(), ..Default::default() }
}

fn value_info(name: &str, shape: &[i64]) -> pb::ValueInfoProto {
    let dims =
        shape.iter().map(|&d| Dimension { value: Some(dimension::Value::DimValue(d)), ..Default::default() }).collect();
    pb::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(pb::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(FLOAT),
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Builds one graph: tracks the shape of every activation so that weights,
/// `value_info` and output types come out right.
struct Builder {
    rng: Rng,
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    inputs: Vec<pb::ValueInfoProto>,
    /// Shape of every activation tensor.
    shapes: HashMap<String, Vec<i64>>,
    /// Activation tensors in creation order (for `value_info`).
    created: Vec<String>,
    /// Per-prefix counters for unique names.
    counters: HashMap<String, usize>,
}

impl Builder {
    fn new(seed: u64) -> Builder {
        Builder {
            rng: Rng::new(seed),
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            shapes: HashMap::new(),
            created: Vec::new(),
            counters: HashMap::new(),
        }
    }

    /// `prefix`, `prefix_1`, `prefix_2`, ...: unique within the graph.
    fn fresh(&mut self, prefix: &str) -> String {
        let n = self.counters.entry(prefix.to_string()).or_insert(0);
        let name = if *n == 0 { prefix.to_string() } else { format!("{prefix}_{n}") };
        *n += 1;
        name
    }

    fn shape(&self, tensor: &str) -> &[i64] {
        &self.shapes[tensor]
    }

    /// Channels of an NCHW activation.
    fn channels(&self, tensor: &str) -> i64 {
        self.shape(tensor)[1]
    }

    fn input(&mut self, name: &str, shape: &[i64]) -> String {
        self.inputs.push(value_info(name, shape));
        self.shapes.insert(name.to_string(), shape.to_vec());
        name.to_string()
    }

    /// A float initializer with values uniform in [-scale, scale]. Large
    /// tensors go to `raw_data` (little-endian), small ones to `float_data`,
    /// so both encodings appear in every model.
    fn weight(&mut self, prefix: &str, dims: &[i64], scale: f32) -> String {
        let name = self.fresh(prefix);
        let count: i64 = dims.iter().product();
        let values: Vec<f32> = (0..count).map(|_| self.rng.sym() * scale).collect();
        let mut t = pb::TensorProto {
            name: Some(name.clone()),
            dims: dims.to_vec(),
            data_type: Some(FLOAT),
            ..Default::default()
        };
        if count > 16 {
            t.raw_data = Some(values.iter().flat_map(|v| v.to_le_bytes()).collect());
        } else {
            t.float_data = values;
        }
        self.initializers.push(t);
        name
    }

    /// A scalar (rank-0) float initializer.
    fn scalar(&mut self, prefix: &str, value: f32) -> String {
        let name = self.fresh(prefix);
        self.initializers.push(pb::TensorProto {
            name: Some(name.clone()),
            data_type: Some(FLOAT),
            float_data: vec![value],
            ..Default::default()
        });
        name
    }

    /// Adds a single-output node; its output is named after the node.
    fn node(
        &mut self,
        op: &str,
        scope: &str,
        inputs: &[&str],
        attrs: Vec<pb::AttributeProto>,
        out_shape: Vec<i64>,
    ) -> String {
        let name = self.fresh(&format!("{scope}/{op}"));
        let out = format!("{name}:0");
        self.nodes.push(pb::NodeProto {
            name: Some(name),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        self.shapes.insert(out.clone(), out_shape);
        self.created.push(out.clone());
        out
    }

    /// `Conv` with "same" padding for odd kernels, optional bias.
    #[allow(clippy::too_many_arguments)]
    fn conv(&mut self, scope: &str, x: &str, cout: i64, k: i64, stride: i64, groups: i64, bias: bool) -> String {
        let s = self.shape(x).to_vec();
        let (cin, h, w) = (s[1], s[2], s[3]);
        assert!(cin % groups == 0 && cout % groups == 0, "bad group count");
        let pad = k / 2;
        let out_h = (h + 2 * pad - k) / stride + 1;
        let out_w = (w + 2 * pad - k) / stride + 1;
        let fan_in = (cin / groups) * k * k;
        let scale = (3.0 / fan_in as f32).sqrt();
        let wname = self.weight(&format!("{scope}/W"), &[cout, cin / groups, k, k], scale);
        let mut inputs = vec![x.to_string(), wname];
        if bias {
            inputs.push(self.weight(&format!("{scope}/B"), &[cout], 0.1));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let attrs = vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("pads", &[pad, pad, pad, pad]),
            attr_ints("strides", &[stride, stride]),
            attr_int("group", groups),
        ];
        self.node("Conv", scope, &refs, attrs, vec![s[0], cout, out_h, out_w])
    }

    fn unary(&mut self, op: &str, scope: &str, x: &str) -> String {
        let s = self.shape(x).to_vec();
        self.node(op, scope, &[x], Vec::new(), s)
    }

    fn relu(&mut self, scope: &str, x: &str) -> String {
        self.unary("Relu", scope, x)
    }

    fn add(&mut self, scope: &str, a: &str, b: &str) -> String {
        assert_eq!(self.shape(a), self.shape(b), "Add of {a} and {b}");
        let s = self.shape(a).to_vec();
        self.node("Add", scope, &[a, b], Vec::new(), s)
    }

    fn sum(&mut self, scope: &str, xs: &[String]) -> String {
        let s = self.shape(&xs[0]).to_vec();
        for x in xs {
            assert_eq!(self.shape(x), s.as_slice(), "Sum input {x}");
        }
        let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
        self.node("Sum", scope, &refs, Vec::new(), s)
    }

    fn mul_scalar(&mut self, scope: &str, x: &str, value: f32) -> String {
        let c = self.scalar(&format!("{scope}/w"), value);
        let s = self.shape(x).to_vec();
        self.node("Mul", scope, &[x, &c], Vec::new(), s)
    }

    /// `MaxPool` or `AveragePool`, 3x3 or 2x2, "same"-style padding for 3x3.
    fn pool(&mut self, op: &str, scope: &str, x: &str, k: i64, stride: i64) -> String {
        let s = self.shape(x).to_vec();
        let pad = k / 2;
        let out_h = (s[2] + 2 * pad - k) / stride + 1;
        let out_w = (s[3] + 2 * pad - k) / stride + 1;
        let attrs = vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("pads", &[pad, pad, pad, pad]),
            attr_ints("strides", &[stride, stride]),
        ];
        self.node(op, scope, &[x], attrs, vec![s[0], s[1], out_h, out_w])
    }

    fn concat(&mut self, scope: &str, xs: &[String]) -> String {
        let mut s = self.shape(&xs[0]).to_vec();
        s[1] = xs.iter().map(|x| self.channels(x)).sum();
        let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
        self.node("Concat", scope, &refs, vec![attr_int("axis", 1)], s)
    }

    /// GlobalAveragePool -> Flatten -> Gemm: NCHW features to [N, classes].
    fn classifier(&mut self, x: &str, classes: i64) -> String {
        let s = self.shape(x).to_vec();
        let pooled = self.node("GlobalAveragePool", "head", &[x], Vec::new(), vec![s[0], s[1], 1, 1]);
        let flat = self.node("Flatten", "head", &[&pooled], vec![attr_int("axis", 1)], vec![s[0], s[1]]);
        let w = self.weight("head/W", &[classes, s[1]], (3.0 / s[1] as f32).sqrt());
        let b = self.weight("head/B", &[classes], 0.1);
        self.node("Gemm", "head", &[&flat, &w, &b], vec![attr_int("transB", 1)], vec![s[0], classes])
    }

    /// The model, with nodes in breadth-first (level) order: a node's level is
    /// one more than the deepest level among its producers; nodes are sorted
    /// stably by level. Every producer has a lower level than its consumers,
    /// so the order is topological.
    fn finish(self, graph_name: &str, doc: &str, outputs: &[&str]) -> pb::ModelProto {
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
        }
        // Nodes were created in a topological order, so one pass suffices.
        let mut level = vec![0usize; self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            level[i] = n
                .input
                .iter()
                .filter_map(|t| producer.get(t.as_str()))
                .map(|&p| {
                    assert!(p < i, "nodes must be created in topological order");
                    level[p] + 1
                })
                .max()
                .unwrap_or(0);
        }
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by_key(|&i| level[i]);
        let nodes: Vec<pb::NodeProto> = order.iter().map(|&i| self.nodes[i].clone()).collect();

        let graph_outputs: Vec<pb::ValueInfoProto> = outputs.iter().map(|o| value_info(o, &self.shapes[*o])).collect();
        let value_info: Vec<pb::ValueInfoProto> = self
            .created
            .iter()
            .filter(|t| !outputs.contains(&t.as_str()))
            .map(|t| value_info(t, &self.shapes[t]))
            .collect();
        pb::ModelProto {
            ir_version: Some(8),
            opset_import: vec![pb::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
            producer_name: Some("onnx-memsched make_models".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            doc_string: Some(doc.into()),
            graph: Some(pb::GraphProto {
                node: nodes,
                name: Some(graph_name.into()),
                initializer: self.initializers,
                input: self.inputs,
                output: graph_outputs,
                value_info,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// A Watts–Strogatz small-world graph WS(n, k, p) made acyclic by pointing
/// every edge from the lower to the higher node index; returns the
/// predecessor list of every node.
fn watts_strogatz_dag(rng: &mut Rng, n: usize, k: usize, p: f64) -> Vec<Vec<usize>> {
    let mut adjacent = vec![vec![false; n]; n];
    let mut edges = Vec::new();
    for i in 0..n {
        for j in 1..=k / 2 {
            edges.push((i, (i + j) % n));
        }
    }
    for &(a, b) in &edges {
        adjacent[a][b] = true;
        adjacent[b][a] = true;
    }
    for e in edges.iter_mut() {
        let (i, t) = *e;
        if rng.chance(p) {
            let free: Vec<usize> = (0..n).filter(|&c| c != i && !adjacent[i][c]).collect();
            if free.is_empty() {
                continue;
            }
            let c = rng.pick(&free);
            adjacent[i][t] = false;
            adjacent[t][i] = false;
            adjacent[i][c] = true;
            adjacent[c][i] = true;
            *e = (i, c);
        }
    }
    let mut preds = vec![Vec::new(); n];
    for &(a, b) in &edges {
        let (lo, hi) = (a.min(b), a.max(b));
        if !preds[hi].contains(&lo) {
            preds[hi].push(lo);
        }
    }
    for p in &mut preds {
        p.sort_unstable();
    }
    preds
}

/// One RandWire stage: `n` nodes wired by WS(n, 4, 0.75); input nodes read
/// `x`; the stage output is the sum of the output nodes.
fn randwire_stage(b: &mut Builder, stage: usize, x: &str, n: usize) -> String {
    let preds = watts_strogatz_dag(&mut b.rng, n, 4, 0.75);
    let c = b.channels(x);
    let mut outs: Vec<String> = Vec::new();
    let mut has_succ = vec![false; n];
    for (i, ps) in preds.iter().enumerate() {
        let scope = format!("s{stage}/n{i}");
        for &p in ps {
            has_succ[p] = true;
        }
        let agg = match ps.len() {
            0 => x.to_string(),
            1 => outs[ps[0]].clone(),
            _ => {
                // Weighted sum: sigmoid-like positive weights.
                let mut terms = Vec::new();
                for &p in ps {
                    let w = 0.5 + 0.5 * b.rng.unit() as f32;
                    let src = outs[p].clone();
                    terms.push(b.mul_scalar(&scope, &src, w));
                }
                b.sum(&scope, &terms)
            }
        };
        let r = b.relu(&scope, &agg);
        let out = match b.rng.below(3) {
            0 => {
                // Depthwise-separable: 3x3 depthwise then 1x1.
                let d = b.conv(&scope, &r, c, 3, 1, c, false);
                b.conv(&scope, &d, c, 1, 1, 1, true)
            }
            1 => b.conv(&scope, &r, c, 1, 1, 1, true),
            _ => {
                // Expand-reduce: 1x1 to 2-4x channels, Relu, 1x1 back.
                let wide = c * (2 + b.rng.below(3) as i64);
                let e = b.conv(&scope, &r, wide, 1, 1, 1, true);
                let e = b.relu(&scope, &e);
                b.conv(&scope, &e, c, 1, 1, 1, true)
            }
        };
        outs.push(out);
    }
    let sinks: Vec<String> = (0..n).filter(|&i| !has_succ[i]).map(|i| outs[i].clone()).collect();
    if sinks.len() == 1 {
        sinks[0].clone()
    } else {
        b.sum(&format!("s{stage}/out"), &sinks)
    }
}

fn randwire() -> pb::ModelProto {
    let mut b = Builder::new(0x5241_4E44_5749_5245); // "RANDWIRE"
    let x = b.input("input", &[1, 3, 32, 32]);
    let stem = b.conv("stem", &x, 16, 3, 1, 1, true);
    let s1 = randwire_stage(&mut b, 1, &stem, 12);
    let r = b.relu("transition", &s1);
    let t = b.conv("transition", &r, 32, 3, 2, 1, true);
    let s2 = randwire_stage(&mut b, 2, &t, 12);
    let y = b.classifier(&s2, 10);
    b.finish(
        "randwire",
        "RandWire-style network: two Watts-Strogatz WS(12,4,0.75) stages (16 ch at 32x32, 32 ch at 16x16); \
         each node = weighted sum of inputs, Relu, separable / 1x1 / expand-reduce conv. Generated by \
         examples/make_models.rs; nodes in breadth-first order.",
        &[&y],
    )
}

#[derive(Clone, Copy, Debug)]
enum CellOp {
    Conv3,
    SepConv3,
    MaxPool3,
    AvgPool3,
    Identity,
}

const CELL_OPS: [CellOp; 5] = [CellOp::Conv3, CellOp::SepConv3, CellOp::MaxPool3, CellOp::AvgPool3, CellOp::Identity];

fn cell_op(b: &mut Builder, scope: &str, op: CellOp, x: &str, stride: i64) -> String {
    let c = b.channels(x);
    match op {
        CellOp::Conv3 => {
            let r = b.relu(scope, x);
            b.conv(scope, &r, c, 3, stride, 1, true)
        }
        CellOp::SepConv3 => {
            // DARTS' sep_conv_3x3: (Relu, depthwise 3x3, 1x1) twice.
            let r = b.relu(scope, x);
            let d = b.conv(scope, &r, c, 3, stride, c, false);
            let p = b.conv(scope, &d, c, 1, 1, 1, true);
            let r = b.relu(scope, &p);
            let d = b.conv(scope, &r, c, 3, 1, c, false);
            b.conv(scope, &d, c, 1, 1, 1, true)
        }
        CellOp::MaxPool3 => b.pool("MaxPool", scope, x, 3, stride),
        CellOp::AvgPool3 => b.pool("AveragePool", scope, x, 3, stride),
        CellOp::Identity if stride == 1 => x.to_string(),
        CellOp::Identity => {
            // Factorized reduce, simplified: Relu, strided 1x1 conv.
            let r = b.relu(scope, x);
            b.conv(scope, &r, c, 1, stride, 1, true)
        }
    }
}

/// One DARTS-like cell with 4 intermediate nodes; returns the Concat of them.
fn nas_cell(b: &mut Builder, index: usize, s0: &str, s1: &str, c: i64, reduce: bool) -> String {
    let scope = format!("cell{index}");
    // Preprocess both states to c channels at s1's resolution.
    let s0_stride = b.shape(s0)[2] / b.shape(s1)[2];
    let r0 = b.relu(&format!("{scope}/pre0"), s0);
    let p0 = b.conv(&format!("{scope}/pre0"), &r0, c, 1, s0_stride, 1, true);
    let r1 = b.relu(&format!("{scope}/pre1"), s1);
    let p1 = b.conv(&format!("{scope}/pre1"), &r1, c, 1, 1, 1, true);
    let mut states = vec![p0, p1];
    for i in 0..4 {
        let node_scope = format!("{scope}/node{i}");
        let j1 = b.rng.below(states.len());
        let mut j2 = b.rng.below(states.len() - 1);
        if j2 >= j1 {
            j2 += 1;
        }
        let mut terms = Vec::new();
        for (e, j) in [j1, j2].into_iter().enumerate() {
            let stride = if reduce && j < 2 { 2 } else { 1 };
            let op = b.rng.pick(&CELL_OPS);
            let src = states[j].clone();
            terms.push(cell_op(b, &format!("{node_scope}/e{e}"), op, &src, stride));
        }
        let sum = b.add(&node_scope, &terms[0], &terms[1]);
        states.push(sum);
    }
    b.concat(&scope, &states[2..])
}

fn nas_cell_model() -> pb::ModelProto {
    let mut b = Builder::new(0x4441_5254_5343_454C); // "DARTSCEL"
    let x = b.input("input", &[1, 3, 32, 32]);
    let stem = b.conv("stem", &x, 24, 3, 1, 1, true);
    let cells = [(8, false), (8, false), (16, true), (16, false)];
    let (mut s0, mut s1) = (stem.clone(), stem);
    for (i, &(c, reduce)) in cells.iter().enumerate() {
        let out = nas_cell(&mut b, i, &s0, &s1, c, reduce);
        s0 = s1;
        s1 = out;
    }
    let y = b.classifier(&s1, 10);
    b.finish(
        "nas_cell",
        "DARTS-like stack of 4 cells (C = 8, 8, 16 reduction, 16), each with 4 intermediate nodes adding two \
         earlier states through conv3x3 / sep_conv3x3 / max_pool / avg_pool / identity, output = Concat. \
         Generated by examples/make_models.rs; nodes in breadth-first order.",
        &[&y],
    )
}

/// An Inception-like block: five branches of very different activation
/// sizes, concatenated.
fn inception_block(b: &mut Builder, index: usize, x: &str, wide: i64, huge: i64) -> String {
    let scope = format!("block{index}");
    let c = b.channels(x);
    let mut branches = Vec::new();
    // 1x1 conv expanding to many channels (large output).
    let s = format!("{scope}/b_wide");
    let t = b.conv(&s, x, wide, 1, 1, 1, true);
    branches.push(b.relu(&s, &t));
    // 1x1 reduce then 3x3.
    let s = format!("{scope}/b_3x3");
    let t = b.conv(&s, x, 16, 1, 1, 1, true);
    let t = b.relu(&s, &t);
    let t = b.conv(&s, &t, 24, 3, 1, 1, true);
    branches.push(b.relu(&s, &t));
    // 1x1 reduce then two 3x3 (a factorised 5x5).
    let s = format!("{scope}/b_5x5");
    let t = b.conv(&s, x, 8, 1, 1, 1, true);
    let t = b.relu(&s, &t);
    let t = b.conv(&s, &t, 16, 3, 1, 1, true);
    let t = b.relu(&s, &t);
    let t = b.conv(&s, &t, 16, 3, 1, 1, true);
    branches.push(b.relu(&s, &t));
    // Pool branch.
    let s = format!("{scope}/b_pool");
    let t = b.pool("MaxPool", &s, x, 3, 1);
    let t = b.conv(&s, &t, c / 2, 1, 1, 1, true);
    branches.push(b.relu(&s, &t));
    // Huge expansion, depthwise 3x3, small projection (big inside, small out).
    let s = format!("{scope}/b_expand");
    let t = b.conv(&s, x, huge, 1, 1, 1, true);
    let t = b.relu(&s, &t);
    let t = b.conv(&s, &t, huge, 3, 1, huge, true);
    let t = b.relu(&s, &t);
    branches.push(b.conv(&s, &t, 8, 1, 1, 1, true));
    b.concat(&scope, &branches)
}

fn multi_branch() -> pb::ModelProto {
    let mut b = Builder::new(0x494E_4345_5054_494F); // "INCEPTIO"
    let x = b.input("input", &[1, 3, 32, 32]);
    let t = b.conv("stem", &x, 32, 3, 1, 1, true);
    let t = b.relu("stem", &t);
    let t = inception_block(&mut b, 1, &t, 96, 192);
    let t = b.pool("MaxPool", "down1", &t, 3, 2);
    let t = b.conv("down1", &t, 48, 1, 1, 1, true);
    let t = inception_block(&mut b, 2, &t, 128, 288);
    let t = b.conv("mix2", &t, 64, 1, 1, 1, true);
    let t = inception_block(&mut b, 3, &t, 160, 384);
    let y = b.classifier(&t, 10);
    b.finish(
        "multi_branch",
        "Inception-like net: 3 blocks of 5 branches (wide 1x1, 1x1-3x3, 1x1-3x3-3x3, maxpool-1x1, \
         huge 1x1 expansion-depthwise-projection) of very different activation sizes, concatenated. \
         Generated by examples/make_models.rs; nodes in breadth-first order.",
        &[&y],
    )
}

fn fork_join() -> pb::ModelProto {
    let mut b = Builder::new(0x464F_524B_4A4F_494E); // "FORKJOIN"
    let x = b.input("input", &[1, 16, 32, 32]);
    let mut widths = [16i64, 24, 48, 64, 96, 128, 192, 256];
    b.rng.shuffle(&mut widths);
    let mut outs = Vec::new();
    for (i, &h) in widths.iter().enumerate() {
        let s = format!("chain{i}");
        let t = b.conv(&s, &x, h, 1, 1, 1, true);
        let t = b.relu(&s, &t);
        outs.push(b.conv(&s, &t, 8, 1, 1, 1, true));
    }
    let y = b.concat("join", &outs);
    b.finish(
        "fork_join",
        "One tensor -> 8 parallel chains (1x1 conv expanding to 16..256 channels, Relu, 1x1 conv to 8) -> Concat. \
         Generated by examples/make_models.rs; nodes in breadth-first order.",
        &[&y],
    )
}

fn main() -> ExitCode {
    // Default: the crate's own `models/` folder, wherever cargo is run from.
    let out_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("make_models: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    type Build = fn() -> pb::ModelProto;
    let models: [(&str, Build); 4] = [
        ("randwire", randwire),
        ("nas_cell", nas_cell_model),
        ("multi_branch", multi_branch),
        ("fork_join", fork_join),
    ];
    for (name, build) in models {
        let model = build();
        let bytes = model.encode_to_vec();
        let path = out_dir.join(format!("{name}.onnx"));
        if let Err(e) = std::fs::write(&path, &bytes) {
            eprintln!("make_models: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        let graph = model.graph.as_ref().expect("built with a graph");
        println!(
            "{}: {} nodes, {} initializers, {} bytes",
            path.display(),
            graph.node.len(),
            graph.initializer.len(),
            bytes.len()
        );
    }
    ExitCode::SUCCESS
}
