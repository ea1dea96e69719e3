//! A structure-aware generator of hostile ONNX models for the fuzz test
//! (`tests/fuzz.rs`) and the fuzz campaign (`scripts/fuzz_campaign.py`,
//! through `examples/fuzz_gen.rs`, which includes this file).
//!
//! A case is a seed model (the built-in ones below, `models/*.onnx`, corpus
//! models) with one to four mutations of its structure: op types, inputs and
//! outputs (dangling names, duplicate outputs, cycles), attributes (huge,
//! negative, empty and wrongly typed values), shapes and element types of
//! graph inputs, outputs and `value_info` (huge, negative and zero dims,
//! hostile `dim_param` expressions), initializers, node lists (deleted,
//! duplicated, shuffled nodes), hostile nodes (constant folding into huge
//! tensors, Sum/Concat of thousands of inputs, GatherND on scalars) and
//! If/Loop/Scan bodies (empty, dangling, nested, wrong arity). Plus random
//! command-line options. Everything is deterministic in the case's seed.
#![allow(dead_code)]

use onnx_memsched::onnx::pb;
use pb::attribute_proto::AttributeType;
use pb::tensor_shape_proto::dimension::Value as Dim;

/// xorshift64*: cases reproduce from their seed.
pub struct FuzzRng(u64);

impl FuzzRng {
    pub fn new(seed: u64) -> FuzzRng {
        FuzzRng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`; 0 when `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Op types worth trying: common ones, the ones whose size inference folds
/// constants, control flow, sequence ops, and unknown ones.
const OPS: &[&str] = &[
    "Relu",
    "Add",
    "Mul",
    "Concat",
    "Sum",
    "Gather",
    "GatherND",
    "Reshape",
    "Expand",
    "ConstantOfShape",
    "Range",
    "Tile",
    "Pad",
    "Resize",
    "OneHot",
    "If",
    "Loop",
    "Scan",
    "Identity",
    "MatMul",
    "Conv",
    "MaxPool",
    "Shape",
    "Slice",
    "Split",
    "Transpose",
    "Unsqueeze",
    "Squeeze",
    "Constant",
    "Cast",
    "Where",
    "TopK",
    "NonZero",
    "Einsum",
    "Softmax",
    "HardSwish",
    "SplitToSequence",
    "SequenceAt",
    "Dropout",
    "ReduceMean",
    "Flatten",
    "Gemm",
    "Foo",
    "",
];

/// Integer values that break arithmetic.
const HOSTILE_INTS: &[i64] = &[
    0,
    -1,
    -2,
    1,
    2,
    3,
    7,
    1 << 16,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) + 5,
    1 << 40,
    1 << 62,
    i64::MAX,
    i64::MIN,
    -(1 << 40),
];

/// `dim_param` strings: symbols, expressions that overflow or divide by zero, garbage.
const HOSTILE_PARAMS: &[&str] = &[
    "batch",
    "N",
    "N*N*N*N*N*N*N*N",
    "batch*1099511627776*1099511627776",
    "(batch+1)//2",
    "a//0",
    "a%0",
    "((((",
    "-batch",
    "2**70",
    "",
    "unk__0",
    "9223372036854775807*2",
    "-9223372036854775808",
];

/// ONNX element types, valid and not.
const DTYPES: &[i32] = &[0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 21, 22, 23, 999, -1];

fn value_info(name: &str, elem: i32, dims: &[i64]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| pb::tensor_shape_proto::Dimension {
                            value: Some(Dim::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(AttributeType::Int as i32),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(AttributeType::Ints as i32),
        ..Default::default()
    }
}

fn attr_graph(name: &str, g: pb::GraphProto) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        g: Some(g),
        r#type: Some(AttributeType::Graph as i32),
        ..Default::default()
    }
}

fn attr_tensor(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        t: Some(t),
        r#type: Some(AttributeType::Tensor as i32),
        ..Default::default()
    }
}

fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(7),
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: Some(8),
        producer_name: Some("onnx-memsched fuzz".into()),
        opset_import: vec![pb::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(pb::GraphProto {
            name: Some("fuzz".into()),
            node: nodes,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn body(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
) -> pb::GraphProto {
    pb::GraphProto { name: Some("body".into()), node: nodes, input: inputs, output: outputs, ..Default::default() }
}

/// Small valid models covering the shapes the mutations need: a diamond, a
/// chain, an If, a Loop and a Scan that read outer-scope tensors.
pub fn builtin_seeds() -> Vec<(String, pb::ModelProto)> {
    let x = || value_info("x", 1, &[1, 16]);
    let y = || value_info("y", 1, &[1, 16]);
    let diamond = model(
        vec![
            node("Relu", "a", &["x"], &["a"]),
            node("Sigmoid", "b", &["x"], &["b"]),
            node("Add", "c", &["a", "b"], &["c"]),
            node("Relu", "d", &["c"], &["y"]),
        ],
        vec![x()],
        vec![y()],
    );
    let chain = model(
        (0..8)
            .map(|i| {
                let input = if i == 0 { "x".to_string() } else { format!("t{}", i - 1) };
                let output = if i == 7 { "y".to_string() } else { format!("t{i}") };
                node("Relu", &format!("r{i}"), &[&input], &[&output])
            })
            .collect(),
        vec![x()],
        vec![y()],
    );
    let branch =
        |op: &str, out: &str| body(vec![node(op, "b", &["x"], &[out])], vec![], vec![value_info(out, 1, &[1, 16])]);
    let mut if_node = node("If", "if", &["cond"], &["y"]);
    if_node.attribute.push(attr_graph("then_branch", branch("Relu", "then_out")));
    if_node.attribute.push(attr_graph("else_branch", branch("Sigmoid", "else_out")));
    let if_model =
        model(vec![node("Relu", "pre", &["x"], &["p"]), if_node], vec![x(), value_info("cond", 9, &[])], vec![y()]);
    let mut loop_node = node("Loop", "loop", &["trip", "", "x"], &["y"]);
    loop_node.attribute.push(attr_graph(
        "body",
        body(
            vec![
                node("Identity", "c", &["cond_in"], &["cond_out"]),
                node("Add", "acc", &["carry", "x"], &["carry_out"]),
            ],
            vec![value_info("i", 7, &[]), value_info("cond_in", 9, &[]), value_info("carry", 1, &[1, 16])],
            vec![value_info("cond_out", 9, &[]), value_info("carry_out", 1, &[1, 16])],
        ),
    ));
    let mut loop_model = model(vec![loop_node], vec![x()], vec![y()]);
    if let Some(g) = loop_model.graph.as_mut() {
        g.initializer.push(int64_tensor("trip", &[], &[3]));
    }
    let mut scan_node = node("Scan", "scan", &["x", "seq"], &["y", "ys"]);
    scan_node.attribute.push(attr_int("num_scan_inputs", 1));
    scan_node.attribute.push(attr_graph(
        "body",
        body(
            vec![node("Add", "s", &["state", "elem"], &["state_out"]), node("Identity", "o", &["elem"], &["elem_out"])],
            vec![value_info("state", 1, &[16]), value_info("elem", 1, &[16])],
            vec![value_info("state_out", 1, &[16]), value_info("elem_out", 1, &[16])],
        ),
    ));
    let scan_model = model(
        vec![node("Reshape", "flat", &["x", "shape"], &["xs"]), scan_node],
        vec![x(), value_info("seq", 1, &[4, 16])],
        vec![y(), value_info("ys", 1, &[4, 16])],
    );
    let mut scan_model = scan_model;
    if let Some(g) = scan_model.graph.as_mut() {
        g.initializer.push(int64_tensor("shape", &[1], &[16]));
        // The Scan reads the reshaped x as its state.
        g.node[1].input[0] = "xs".into();
    }
    vec![
        ("diamond".into(), diamond),
        ("chain".into(), chain),
        ("if".into(), if_model),
        ("loop".into(), loop_model),
        ("scan".into(), scan_model),
    ]
}

/// Every tensor name a graph mentions (inputs, initializers, node outputs).
fn names(g: &pb::GraphProto) -> Vec<String> {
    let mut out: Vec<String> = g.input.iter().filter_map(|v| v.name.clone()).collect();
    out.extend(g.initializer.iter().filter_map(|t| t.name.clone()));
    out.extend(g.node.iter().flat_map(|n| n.output.iter().cloned()));
    if out.is_empty() {
        out.push("x".into());
    }
    out
}

fn hostile_int(rng: &mut FuzzRng) -> i64 {
    *rng.pick(HOSTILE_INTS)
}

fn hostile_dims(rng: &mut FuzzRng) -> Vec<i64> {
    match rng.below(5) {
        0 => vec![],
        1 => vec![0],
        2 => vec![hostile_int(rng)],
        3 => (0..1 + rng.below(6)).map(|_| hostile_int(rng)).collect(),
        _ => vec![1 << 20, 1 << 20, 1 << 20],
    }
}

/// A hostile attribute for the given name.
fn hostile_attribute(rng: &mut FuzzRng, name: &str) -> pb::AttributeProto {
    match rng.below(6) {
        0 => attr_int(name, hostile_int(rng)),
        1 => attr_ints(name, &hostile_dims(rng)),
        2 => attr_ints(name, &[]),
        3 => {
            let dims = hostile_dims(rng);
            attr_tensor(name, pb::TensorProto { dims, data_type: Some(*rng.pick(DTYPES)), ..Default::default() })
        }
        4 => pb::AttributeProto {
            name: Some(name.into()),
            f: Some(f32::NAN),
            r#type: Some(AttributeType::Float as i32),
            ..Default::default()
        },
        // A declared type that does not match the field set.
        _ => pb::AttributeProto {
            name: Some(name.into()),
            i: Some(hostile_int(rng)),
            r#type: Some(*rng.pick(&[0, 5, 10, 99])),
            ..Default::default()
        },
    }
}

const ATTR_NAMES: &[&str] = &[
    "axis",
    "axes",
    "perm",
    "shape",
    "value",
    "to",
    "kernel_shape",
    "pads",
    "strides",
    "num_scan_inputs",
    "keepdims",
    "mode",
    "split",
    "group",
    "dilations",
    "body",
    "then_branch",
    "else_branch",
    "equation",
    "k",
];

/// A subgraph that is odd in one of several ways.
fn odd_body(rng: &mut FuzzRng, outer: &[String]) -> pb::GraphProto {
    let outer_name = rng.pick(outer).clone();
    match rng.below(6) {
        0 => body(vec![], vec![], vec![]),
        1 => body(vec![node("Relu", "b", &["nowhere"], &["o"])], vec![], vec![value_info("o", 1, &[1, 16])]),
        2 => body(vec![node("Relu", "b", &[&outer_name], &["o"])], vec![], vec![value_info("o", 1, &[1, 16])]),
        3 => {
            // Nested If reading an outer name.
            let inner =
                body(vec![node("Identity", "i", &[&outer_name], &["io"])], vec![], vec![value_info("io", 1, &[])]);
            let mut n = node("If", "nested", &[&outer_name], &["o"]);
            n.attribute.push(attr_graph("then_branch", inner.clone()));
            n.attribute.push(attr_graph("else_branch", inner));
            body(vec![n], vec![], vec![value_info("o", 1, &[])])
        }
        4 => body(
            vec![node("Identity", "b", &[&outer_name], &["o"])],
            (0..rng.below(5)).map(|i| value_info(&format!("in{i}"), *rng.pick(DTYPES), &hostile_dims(rng))).collect(),
            (0..rng.below(4)).map(|i| value_info(&format!("out{i}"), 1, &[])).collect(),
        ),
        // Output not produced by the body.
        _ => body(vec![], vec![], vec![value_info(&outer_name, 1, &[1, 16])]),
    }
}

/// One hostile node (and initializers it needs) added to the graph.
fn hostile_node(rng: &mut FuzzRng, g: &mut pb::GraphProto, k: usize) {
    let src = rng.pick(&names(g)).clone();
    let out = format!("h{k}");
    let big = *rng.pick(&[1i64 << 20, 1 << 30, 1 << 40, (1 << 32) + 5, -1, 0]);
    match rng.below(9) {
        0 => {
            g.initializer.push(int64_tensor(&format!("hs{k}"), &[1], &[big]));
            g.node.push(node("ConstantOfShape", &out, &[&format!("hs{k}")], &[&out]));
        }
        1 => {
            g.initializer.push(int64_tensor(&format!("hs{k}"), &[2], &[big, big]));
            g.node.push(node("Expand", &out, &[&src, &format!("hs{k}")], &[&out]));
        }
        2 => {
            g.initializer.push(int64_tensor(&format!("hp{k}"), &[4], &[0, big, 0, big]));
            g.node.push(node("Pad", &out, &[&src, &format!("hp{k}")], &[&out]));
        }
        3 => {
            g.initializer.push(int64_tensor(&format!("hi{k}"), &[], &[0]));
            g.node.push(node("GatherND", &out, &[&src, &format!("hi{k}")], &[&out]));
        }
        4 => {
            // If on an empty constant condition.
            g.initializer.push(pb::TensorProto {
                name: Some(format!("hc{k}")),
                dims: vec![0],
                data_type: Some(9),
                ..Default::default()
            });
            let mut n = node("If", &out, &[&format!("hc{k}")], &[&out]);
            n.attribute.push(attr_graph("then_branch", odd_body(rng, &[src.clone()])));
            n.attribute.push(attr_graph("else_branch", odd_body(rng, &[src.clone()])));
            g.node.push(n);
        }
        5 => {
            let count = *rng.pick(&[1000usize, 5000]);
            let inputs: Vec<&str> = (0..count).map(|_| src.as_str()).collect();
            let op = *rng.pick(&["Sum", "Concat"]);
            let mut n = node(op, &out, &inputs, &[&out]);
            if op == "Concat" {
                n.attribute.push(attr_int("axis", 0));
            }
            g.node.push(n);
        }
        6 => {
            g.initializer.push(int64_tensor(&format!("hr{k}"), &[], &[0]));
            g.initializer.push(int64_tensor(&format!("hl{k}"), &[], &[big]));
            g.initializer.push(int64_tensor(&format!("hd{k}"), &[], &[1]));
            g.node.push(node("Range", &out, &[&format!("hr{k}"), &format!("hl{k}"), &format!("hd{k}")], &[&out]));
        }
        7 => {
            let mut n = node("Constant", &out, &[], &[&out]);
            let dims = hostile_dims(rng);
            n.attribute.push(attr_tensor(
                "value",
                pb::TensorProto { dims, data_type: Some(*rng.pick(DTYPES)), ..Default::default() },
            ));
            g.node.push(n);
        }
        _ => {
            let mut n = node(*rng.pick(&["Loop", "Scan", "If"]), &out, &[&src, &src], &[&out]);
            n.attribute.push(attr_graph("body", odd_body(rng, &[src.clone()])));
            n.attribute.push(attr_int("num_scan_inputs", hostile_int(rng)));
            g.node.push(n);
        }
    }
    if rng.chance(50) {
        g.output.push(value_info(&out, 1, &[]));
    }
}

fn mutate_type(rng: &mut FuzzRng, v: &mut pb::ValueInfoProto) {
    let is_tensor =
        matches!(v.r#type.as_ref().and_then(|t| t.value.as_ref()), Some(pb::type_proto::Value::TensorType(_)));
    if !is_tensor {
        v.r#type = None;
        return;
    }
    let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) else {
        return;
    };
    match rng.below(6) {
        0 => t.elem_type = Some(*rng.pick(DTYPES)),
        1 => t.shape = None,
        2 => {
            let dims: Vec<i64> = hostile_dims(rng);
            t.shape = Some(pb::TensorShapeProto {
                dim: dims
                    .into_iter()
                    .map(|d| pb::tensor_shape_proto::Dimension { value: Some(Dim::DimValue(d)), ..Default::default() })
                    .collect(),
            })
        }
        3 => {
            let shape = t.shape.get_or_insert_with(Default::default);
            let p = rng.pick(HOSTILE_PARAMS).to_string();
            match shape.dim.first_mut() {
                Some(d) => d.value = Some(Dim::DimParam(p)),
                None => shape
                    .dim
                    .push(pb::tensor_shape_proto::Dimension { value: Some(Dim::DimParam(p)), ..Default::default() }),
            }
        }
        4 => {
            let shape = t.shape.get_or_insert_with(Default::default);
            let d = hostile_int(rng);
            if let Some(dim) = shape.dim.last_mut() {
                dim.value = Some(Dim::DimValue(d));
            }
        }
        _ => {
            let shape = t.shape.get_or_insert_with(Default::default);
            shape.dim.push(pb::tensor_shape_proto::Dimension { value: None, ..Default::default() });
        }
    }
}

/// Applies one mutation to `m`; returns its name.
pub fn mutate_once(rng: &mut FuzzRng, m: &mut pb::ModelProto, k: usize) -> &'static str {
    let g = m.graph.get_or_insert_with(Default::default);
    let all = names(g);
    let n_nodes = g.node.len();
    match rng.below(16) {
        0 if n_nodes > 0 => {
            let i = rng.below(n_nodes);
            g.node[i].op_type = Some(rng.pick(OPS).to_string());
            if rng.chance(20) {
                g.node[i].domain = Some(rng.pick(&["com.example", "ai.onnx.ml", "com.microsoft", ""]).to_string());
            }
            "op_type"
        }
        1 if n_nodes > 0 => {
            let i = rng.below(n_nodes);
            let new = match rng.below(4) {
                0 => "dangling".to_string(),
                1 => String::new(),
                // A later node's output: a cycle or an unsorted file.
                2 => g.node[rng.below(n_nodes)].output.first().cloned().unwrap_or_default(),
                _ => rng.pick(&all).clone(),
            };
            let node = &mut g.node[i];
            if node.input.is_empty() || rng.chance(30) {
                node.input.push(new);
            } else {
                let j = rng.below(node.input.len());
                node.input[j] = new;
            }
            "input"
        }
        2 if n_nodes > 0 => {
            let i = rng.below(n_nodes);
            let new = match rng.below(4) {
                0 => rng.pick(&all).clone(),
                1 => String::new(),
                2 => g.input.first().and_then(|v| v.name.clone()).unwrap_or_default(),
                _ => format!("extra{k}"),
            };
            let node = &mut g.node[i];
            match rng.below(3) {
                0 => node.output.clear(),
                1 => node.output.push(new),
                _ => {
                    let j = rng.below(node.output.len().max(1));
                    if j < node.output.len() {
                        node.output[j] = new;
                    } else {
                        node.output.push(new);
                    }
                }
            }
            "output"
        }
        3 if n_nodes > 0 => {
            let i = rng.below(n_nodes);
            let node = &mut g.node[i];
            if !node.attribute.is_empty() && rng.chance(40) {
                let j = rng.below(node.attribute.len());
                node.attribute.remove(j);
            } else {
                let name = rng.pick(ATTR_NAMES).to_string();
                node.attribute.retain(|a| a.name.as_deref() != Some(&name));
                node.attribute.push(hostile_attribute(rng, &name));
            }
            "attribute"
        }
        4 | 5 => {
            let lists = [g.input.len(), g.output.len(), g.value_info.len()];
            let which = rng.below(3);
            let list = match which {
                0 => &mut g.input,
                1 => &mut g.output,
                _ => &mut g.value_info,
            };
            if lists[which] == 0 {
                list.push(value_info(rng.pick(all.as_slice()).as_str(), 1, &[1, 16]));
            }
            let j = rng.below(list.len());
            mutate_type(rng, &mut list[j]);
            "shape_or_dtype"
        }
        6 if !g.initializer.is_empty() => {
            let j = rng.below(g.initializer.len());
            let t = &mut g.initializer[j];
            match rng.below(5) {
                0 => t.dims = hostile_dims(rng),
                1 => t.data_type = Some(*rng.pick(DTYPES)),
                2 => t.raw_data = Some(vec![0; rng.below(3)]),
                3 => {
                    t.data_location = Some(1);
                    t.external_data = vec![pb::StringStringEntryProto {
                        key: Some("location".into()),
                        value: Some(rng.pick(&["missing.data", "", "sub/w.data", "w.data"]).to_string()),
                    }];
                    t.raw_data = None;
                }
                _ => t.name = Some(rng.pick(&all).clone()),
            }
            "initializer"
        }
        7 if n_nodes > 0 => {
            let i = rng.below(n_nodes);
            match rng.below(4) {
                0 => {
                    g.node.remove(i);
                }
                1 => {
                    let copy = g.node[i].clone();
                    g.node.push(copy);
                }
                2 => {
                    let j = rng.below(n_nodes);
                    g.node.swap(i, j);
                }
                _ => g.node.reverse(),
            }
            "node_list"
        }
        8 | 9 => {
            hostile_node(rng, g, k);
            "hostile_node"
        }
        10 => {
            // Control flow: give a node an odd body, or make it control flow.
            let outer = all.clone();
            if n_nodes == 0 {
                g.node.push(node("If", "cf", &[rng.pick(&outer).as_str()], &["cf_out"]));
            }
            let i = rng.below(g.node.len());
            let node = &mut g.node[i];
            let attr = *rng.pick(&["then_branch", "else_branch", "body"]);
            if rng.chance(40) {
                node.op_type = Some(rng.pick(&["If", "Loop", "Scan"]).to_string());
            }
            node.attribute.retain(|a| a.name.as_deref() != Some(attr));
            let b = odd_body(rng, &outer);
            node.attribute.push(attr_graph(attr, b));
            "control_flow"
        }
        11 => {
            match rng.below(5) {
                0 => g.input.clear(),
                1 => g.output.clear(),
                2 => {
                    if let Some(v) = g.input.first().cloned() {
                        g.input.push(v);
                    }
                }
                3 => g.output.push(value_info("not_produced", 1, &[1])),
                _ => {
                    if let Some(o) = g.output.first().cloned() {
                        g.input.push(o);
                    }
                }
            }
            "graph_io"
        }
        12 => {
            match rng.below(4) {
                0 => m.opset_import.clear(),
                1 => {
                    let version = *rng.pick(&[0i64, 1, 6, 11, 13, 99_999, -1]);
                    m.opset_import =
                        vec![pb::OperatorSetIdProto { domain: Some(String::new()), version: Some(version) }];
                }
                2 => m.ir_version = Some(*rng.pick(&[0i64, 1, 3, 99, -1])),
                _ => {
                    m.opset_import.push(pb::OperatorSetIdProto { domain: Some("com.example".into()), version: Some(1) })
                }
            }
            "model_header"
        }
        13 if n_nodes > 0 => {
            // Many copies of one input: a wide node.
            let i = rng.below(n_nodes);
            let src = rng.pick(&all).clone();
            let count = *rng.pick(&[100usize, 2000]);
            g.node[i].input.extend(std::iter::repeat(src).take(count));
            "wide_node"
        }
        14 if n_nodes > 0 => {
            // An unsorted file: move a node to the front.
            let i = rng.below(n_nodes);
            let n = g.node.remove(i);
            g.node.insert(0, n);
            "unsorted"
        }
        _ => {
            // A symbolic dimension on a graph input.
            if let Some(v) = g.input.first_mut() {
                mutate_type(rng, v);
            }
            "input_type"
        }
    }
}

/// Options a case is run with, besides INPUT OUTPUT.
pub fn random_args(rng: &mut FuzzRng) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let scheduler = *rng.pick(&["auto", "auto", "auto", "dfs", "greedy", "liu", "dp", "ilp", "input", "lpmf", "bfs"]);
    args.extend(["--scheduler".into(), scheduler.into()]);
    if rng.chance(20) {
        args.extend(["--target".into(), "ort-default".into()]);
    }
    if rng.chance(20) {
        args.push("--inplace".into());
    }
    if rng.chance(20) {
        args.push("--inputs-live-whole-run".into());
    }
    if rng.chance(15) {
        args.extend(["--dim".into(), format!("batch={}", rng.pick(&[0u64, 1, 8, 1 << 40]))]);
    }
    if rng.chance(10) {
        args.extend(["--input-shape".into(), format!("x={}", rng.pick(&["1x16", "0", "", "4294967301x2"]))]);
    }
    args.extend(["--time-limit".into(), "2".into(), "-q".into()]);
    args
}

/// Case `seed`: a mutated copy of one of `seeds` and its options.
pub fn case(seed: u64, seeds: &[(String, pb::ModelProto)]) -> (String, pb::ModelProto, Vec<String>) {
    let mut rng = FuzzRng::new(seed);
    let (name, base) = rng.pick(seeds);
    let mut m = base.clone();
    let mut what = vec![name.clone()];
    for k in 0..1 + rng.below(4) {
        what.push(mutate_once(&mut rng, &mut m, k).to_string());
    }
    (what.join("+"), m, random_args(&mut rng))
}

/// The seed models of the files in `dirs` (`*.onnx`, at most `max_bytes`
/// each; unreadable ones skipped), sorted by name.
pub fn file_seeds(dirs: &[std::path::PathBuf], max_bytes: u64) -> Vec<(String, pb::ModelProto)> {
    use prost::Message;
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.extension().map_or(true, |e| e != "onnx") || p.metadata().map_or(true, |m| m.len() > max_bytes) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else { continue };
            if let Ok(m) = pb::ModelProto::decode(bytes.as_slice()) {
                let name = p.file_stem().map_or("file".into(), |s| s.to_string_lossy().to_string());
                out.push((name, m));
            }
        }
    }
    out
}
