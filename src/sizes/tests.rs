//! Unit tests of the sizes module, on small models built in code.

use super::dtype::code::*;
use super::*;
use pb::tensor_shape_proto::{dimension::Value as Dim, Dimension};

mod rules_cases;

// ---------------------------------------------------------------- builders

/// A value_info; each dim is a number, `?` (no value) or a `dim_param`.
fn vi(name: &str, elem: i32, dims: &[&str]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: match d.parse::<i64>() {
                Ok(v) => Some(Dim::DimValue(v)),
                Err(_) if *d == "?" => None,
                Err(_) => Some(Dim::DimParam(d.to_string())),
            },
            denotation: None,
        })
        .collect();
    pb::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: Some(format!("n_{}", outputs.first().copied().unwrap_or(op))),
        op_type: Some(op.into()),
        attribute,
        ..Default::default()
    }
}

fn custom(domain: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto { domain: Some(domain.into()), ..node(op, inputs, outputs, vec![]) }
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        r#type: Some(pb::attribute_proto::AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        r#type: Some(pb::attribute_proto::AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn graph_attr(name: &str, g: pb::GraphProto) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        r#type: Some(pb::attribute_proto::AttributeType::Graph as i32),
        g: Some(g),
        ..Default::default()
    }
}

fn tensor_attr(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        r#type: Some(pb::attribute_proto::AttributeType::Tensor as i32),
        t: Some(t),
        ..Default::default()
    }
}

/// A float tensor of zeros, inline, or external data in a file that does
/// not exist.
fn f32_tensor(name: &str, dims: &[i64], external: bool) -> pb::TensorProto {
    let n: i64 = dims.iter().product();
    let mut t =
        pb::TensorProto { name: Some(name.into()), dims: dims.to_vec(), data_type: Some(FLOAT), ..Default::default() };
    if external {
        t.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
        t.external_data = vec![
            pb::StringStringEntryProto { key: Some("location".into()), value: Some("does_not_exist.onnx.data".into()) },
            pb::StringStringEntryProto { key: Some("offset".into()), value: Some("0".into()) },
            pb::StringStringEntryProto { key: Some("length".into()), value: Some((n * 4).to_string()) },
        ];
    } else {
        t.raw_data = Some(vec![0u8; (n * 4) as usize]);
    }
    t
}

fn i64_tensor(name: &str, dims: &[i64], values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(INT64),
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

fn graph(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    inits: Vec<pb::TensorProto>,
    value_info: Vec<pb::ValueInfoProto>,
) -> pb::GraphProto {
    pb::GraphProto {
        node: nodes,
        name: Some("g".into()),
        initializer: inits,
        input: inputs,
        output: outputs,
        value_info,
        ..Default::default()
    }
}

fn model(g: pb::GraphProto) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: Some(8),
        opset_import: vec![pb::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(g),
        ..Default::default()
    }
}

fn no_opts() -> SizeOptions {
    SizeOptions::default()
}

fn dims(d: &[(&str, i64)]) -> SizeOptions {
    SizeOptions { dims: d.iter().map(|(n, v)| (n.to_string(), *v)).collect(), ..Default::default() }
}

fn get<'a>(s: &'a Sizes, name: &str) -> &'a TensorSize {
    s.tensors.get(name).unwrap_or_else(|| panic!("no size for `{name}`; have {:?}", s.tensors.keys()))
}

/// Input x: float[1,3,8,8] -> Conv(w: 4x3x3x3, pads 1) -> c -> Relu -> y.
fn conv_relu(w_external: bool) -> pb::ModelProto {
    model(graph(
        vec![
            node("Conv", &["x", "w"], &["c"], vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])]),
            node("Relu", &["c"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &["1", "3", "8", "8"])],
        vec![vi("y", FLOAT, &["1", "4", "8", "8"])],
        vec![f32_tensor("w", &[4, 3, 3, 3], w_external)],
        vec![],
    ))
}

// ---------------------------------------------------------------- elem_bytes

#[test]
fn elem_bytes_of_every_schema_type() {
    let table: &[(i32, Option<u64>)] = &[
        (UNDEFINED, None),
        (FLOAT, Some(40)),
        (UINT8, Some(10)),
        (INT8, Some(10)),
        (UINT16, Some(20)),
        (INT16, Some(20)),
        (INT32, Some(40)),
        (INT64, Some(80)),
        (STRING, None),
        (BOOL, Some(10)),
        (FLOAT16, Some(20)),
        (DOUBLE, Some(80)),
        (UINT32, Some(40)),
        (UINT64, Some(80)),
        (COMPLEX64, Some(80)),
        (COMPLEX128, Some(160)),
        (BFLOAT16, Some(20)),
        (FLOAT8E4M3FN, Some(10)),
        (FLOAT8E4M3FNUZ, Some(10)),
        (FLOAT8E5M2, Some(10)),
        (FLOAT8E5M2FNUZ, Some(10)),
        (UINT4, Some(5)),
        (INT4, Some(5)),
        (FLOAT4E2M1, Some(5)),
        (FLOAT8E8M0, Some(10)),
        (UINT2, Some(3)), // ceil(10 / 4)
        (INT2, Some(3)),
        (FLOAT6E2M3, Some(8)), // ceil(60 / 8)
        (FLOAT6E3M2, Some(8)),
    ];
    assert_eq!(table.len(), 29, "every code of the schema, 0..=28");
    for &(t, want) in table {
        assert_eq!(elem_bytes(t, 10), want, "{} x 10", elem_name(t));
    }
    // codes beyond the schema
    assert_eq!(elem_bytes(29, 10), None);
    assert_eq!(elem_bytes(-1, 10), None);
    // rounding of packed types
    assert_eq!(elem_bytes(INT4, 0), Some(0));
    assert_eq!(elem_bytes(INT4, 1), Some(1));
    assert_eq!(elem_bytes(UINT4, 3), Some(2));
    assert_eq!(elem_bytes(FLOAT4E2M1, 7), Some(4));
    assert_eq!(elem_bytes(INT2, 1), Some(1));
    assert_eq!(elem_bytes(UINT2, 5), Some(2));
    assert_eq!(elem_bytes(FLOAT6E2M3, 1), Some(1));
    assert_eq!(elem_bytes(FLOAT6E2M3, 4), Some(3));
    // overflow is None, not a wrap
    assert_eq!(elem_bytes(INT64, u64::MAX / 4), None);
    assert_eq!(elem_bytes(UINT8, u64::MAX), Some(u64::MAX));
    assert_eq!(elem_bytes(INT4, u64::MAX), Some(u64::MAX / 2 + 1));
}

#[test]
fn tract_type_mapping_round_trips() {
    for t in 0..=28 {
        if let Some(dt) = dtype::to_tract(t) {
            assert_eq!(dtype::from_tract(dt), Some(t), "{}", elem_name(t));
            assert!(dtype::tract_supports(t));
        }
    }
    assert_eq!(dtype::from_tract(tract_onnx::prelude::DatumType::TDim), Some(INT64));
}

// ---------------------------------------------------------------- basic models

#[test]
fn conv_relu_sizes() {
    let s = infer(&conv_relu(false), &no_opts()).unwrap();
    let x = get(&s, "x");
    assert_eq!((x.bytes, x.source), (3 * 64 * 4, SizeSource::Declared));
    let c = get(&s, "c");
    assert_eq!(c.shape, vec![1, 4, 8, 8]);
    assert_eq!(c.elem_type, FLOAT);
    assert_eq!((c.bytes, c.source), (4 * 64 * 4, SizeSource::Tract));
    assert_eq!(get(&s, "y").bytes, 1024);
    let w = get(&s, "w");
    assert_eq!((w.bytes, w.source), (4 * 27 * 4, SizeSource::Declared));
    assert!(s.assumptions.is_empty(), "{:?}", s.assumptions);
}

#[test]
fn external_weight_without_data_still_infers() {
    // MatMul weight 512x256 float (512 KiB) as external data whose file does
    // not exist: tract gets it as a typed input and never opens the file.
    let m = model(graph(
        vec![node("MatMul", &["x", "w"], &["y"], vec![]), node("Relu", &["y"], &["z"], vec![])],
        vec![vi("x", FLOAT, &["2", "512"])],
        vec![vi("z", FLOAT, &["2", "256"])],
        vec![f32_tensor("w", &[512, 256], true)],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "y").shape, vec![2, 256]);
    assert_eq!(get(&s, "y").bytes, 2 * 256 * 4);
    assert_eq!(get(&s, "y").source, SizeSource::Tract);
    assert_eq!(get(&s, "w").bytes, 512 * 256 * 4);
    // the same with the conv model's weight external
    let s = infer(&conv_relu(true), &no_opts()).unwrap();
    assert_eq!(get(&s, "y").bytes, 1024);
}

#[test]
fn large_inline_weight_and_large_constant_infer() {
    // a 64 KiB inline float initializer and a Constant node holding an
    // external 128x128 float tensor
    let m = model(graph(
        vec![
            node("Constant", &[], &["k"], vec![tensor_attr("value", f32_tensor("k", &[128, 128], true))]),
            node("MatMul", &["x", "w"], &["a"], vec![]),
            node("MatMul", &["a", "k"], &["b"], vec![]),
        ],
        vec![vi("x", FLOAT, &["3", "128"])],
        vec![vi("b", FLOAT, &["3", "128"])],
        vec![f32_tensor("w", &[128, 128], false)],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "b").bytes, 3 * 128 * 4);
    assert_eq!(get(&s, "b").source, SizeSource::Tract);
    let k = get(&s, "k");
    assert_eq!((k.bytes, k.source), (128 * 128 * 4, SizeSource::Declared));
}

#[test]
fn small_integer_initializers_stay_constants_for_shapes() {
    // Reshape's target comes from an int64 initializer: its values decide
    // the output shape.
    let m = model(graph(
        vec![node("Reshape", &["x", "shape"], &["y"], vec![])],
        vec![vi("x", FLOAT, &["2", "3", "4"])],
        vec![vi("y", FLOAT, &["?", "?"])],
        vec![i64_tensor("shape", &[2], &[6, -1])],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "y").shape, vec![6, 4]);
    assert_eq!(get(&s, "y").source, SizeSource::Tract);
    assert_eq!(get(&s, "shape").bytes, 16);
}

#[test]
fn shape_output_counts_as_int64() {
    let m = model(graph(
        vec![node("Shape", &["x"], &["s"], vec![]), node("Cast", &["s"], &["f"], vec![int("to", FLOAT as i64)])],
        vec![vi("x", FLOAT, &["1", "3", "8", "8"])],
        vec![vi("f", FLOAT, &["4"])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    let sh = get(&s, "s");
    assert_eq!((sh.elem_type, sh.shape.clone(), sh.bytes), (INT64, vec![4], 32));
    assert_eq!(get(&s, "f").bytes, 16);
}

#[test]
fn outputs_nobody_reads_are_sized() {
    // MaxPool's optional second output (indices) is read by no one.
    let m = model(graph(
        vec![node("MaxPool", &["x"], &["p", "idx"], vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])])],
        vec![vi("x", FLOAT, &["1", "2", "8", "8"])],
        vec![vi("p", FLOAT, &["1", "2", "4", "4"])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "p").bytes, 32 * 4);
    let idx = get(&s, "idx");
    assert_eq!((idx.elem_type, idx.bytes), (INT64, 32 * 8));
}

#[test]
fn sub_byte_and_exotic_inputs() {
    // INT4 input of 15 elements: 8 bytes; a BFLOAT16 input (tract lacks the
    // type) is still sized from its declaration.
    let m = model(graph(
        vec![node("Identity", &["q"], &["q2"], vec![]), node("Identity", &["b"], &["b2"], vec![])],
        vec![vi("q", INT4, &["3", "5"]), vi("b", BFLOAT16, &["4", "4"])],
        vec![vi("q2", INT4, &["3", "5"]), vi("b2", BFLOAT16, &["4", "4"])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "q").bytes, 8);
    assert_eq!(get(&s, "b").bytes, 32);
    // tract cannot see these types: the tool's Identity rule copies them
    assert_eq!((get(&s, "q2").bytes, get(&s, "q2").source), (8, SizeSource::Rule));
    assert_eq!((get(&s, "b2").bytes, get(&s, "b2").source), (32, SizeSource::Rule));
}

// ---------------------------------------------------------------- symbols

fn batch_model() -> pb::ModelProto {
    // x: float[batch, 16] -> Relu -> r -> custom op (no tract) -> u (value_info
    // says [batch*2, 16]) -> Relu -> y
    model(graph(
        vec![
            node("Relu", &["x"], &["r"], vec![]),
            custom("com.example", "Double", &["r"], &["u"]),
            node("Relu", &["u"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &["batch", "16"])],
        vec![vi("y", FLOAT, &["2*batch", "16"])],
        vec![],
        vec![vi("u", FLOAT, &["batch*2", "16"])],
    ))
}

#[test]
fn unbound_symbol_defaults_to_one_and_is_reported() {
    let s = infer(&batch_model(), &no_opts()).unwrap();
    assert_eq!(get(&s, "x").shape, vec![1, 16]);
    assert_eq!(get(&s, "r").bytes, 64);
    assert_eq!(get(&s, "u").shape, vec![2, 16]);
    assert!(s.assumptions.iter().any(|a| a.contains("`batch`") && a.contains("--dim batch=N")), "{:?}", s.assumptions);
}

#[test]
fn bound_symbol_and_derived_dims() {
    let s = infer(&batch_model(), &dims(&[("batch", 3)])).unwrap();
    assert_eq!(get(&s, "x").shape, vec![3, 16]);
    assert_eq!(get(&s, "r").shape, vec![3, 16]);
    // from value_info `batch*2`, then tract goes on from it
    let u = get(&s, "u");
    assert_eq!((u.shape.clone(), u.source), (vec![6, 16], SizeSource::ValueInfo));
    let y = get(&s, "y");
    assert_eq!((y.shape.clone(), y.source), (vec![6, 16], SizeSource::Tract));
    assert!(s.assumptions.iter().all(|a| !a.contains("`batch`")), "{:?}", s.assumptions);
    assert!(s.assumptions.iter().any(|a| a.contains("value_info") && a.contains("`u`")));
}

#[test]
fn derived_dim_expressions_in_value_info() {
    for (param, batch, want) in
        [("(batch+1)//2", 5, 3), ("batch // 2 + 1", 4, 3), ("128*batch", 2, 256), ("batch*128", 2, 256)]
    {
        let mut m = batch_model();
        m.graph.as_mut().unwrap().value_info = vec![vi("u", FLOAT, &[param, "16"])];
        let s = infer(&m, &dims(&[("batch", batch)])).unwrap();
        assert_eq!(get(&s, "u").shape, vec![want, 16], "{param}");
    }
}

#[test]
fn dim_param_strings_that_are_not_expressions() {
    // `batch-size` is one name, not batch minus size: bind it whole
    let m = model(graph(
        vec![node("Relu", &["x"], &["y"], vec![])],
        vec![vi("x", FLOAT, &["batch-size", "?", "2*seq"])],
        vec![vi("y", FLOAT, &["batch-size", "?", "2*seq"])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "x").shape, vec![1, 1, 1]);
    let text = s.assumptions.join("\n");
    assert!(text.contains("`batch-size`"), "{text}");
    assert!(text.contains("dimension 1 has no size"), "{text}");
    assert!(text.contains("--dim seq=N"), "{text}");
    let s = infer(&m, &dims(&[("batch-size", 4), ("seq", 3)])).unwrap();
    assert_eq!(get(&s, "y").shape, vec![4, 1, 6]);
}

#[test]
fn unused_dim_is_an_assumption() {
    let s = infer(&conv_relu(false), &dims(&[("nope", 3)])).unwrap();
    assert!(s.assumptions.iter().any(|a| a.contains("--dim nope=3") && a.contains("not used")), "{:?}", s.assumptions);
}

#[test]
fn negative_dim_is_an_error() {
    let e = infer(&batch_model(), &dims(&[("batch", -2)])).unwrap_err();
    assert!(matches!(e, SizeError::NegativeDim { .. }), "{e}");
}

#[test]
fn input_shape_override() {
    let opts = SizeOptions { input_shapes: vec![("x".into(), vec![2, 3, 16, 16])], ..Default::default() };
    let s = infer(&conv_relu(false), &opts).unwrap();
    assert_eq!(get(&s, "x").shape, vec![2, 3, 16, 16]);
    assert_eq!(get(&s, "y").shape, vec![2, 4, 16, 16]);
}

#[test]
fn input_shape_for_unknown_input_names_the_inputs() {
    let opts = SizeOptions { input_shapes: vec![("w".into(), vec![1])], ..Default::default() };
    let e = infer(&conv_relu(false), &opts).unwrap_err().to_string();
    assert!(e.contains("no input `w`") && e.contains("`x`"), "{e}");
}

#[test]
fn input_without_shape_is_an_error_naming_the_flag() {
    let mut m = conv_relu(false);
    let g = m.graph.as_mut().unwrap();
    if let Some(pb::type_proto::Value::TensorType(t)) = g.input[0].r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    let e = infer(&m, &no_opts()).unwrap_err().to_string();
    assert!(e.contains("`x`") && e.contains("--input-shape"), "{e}");
    // ... which --input-shape fixes
    let opts = SizeOptions { input_shapes: vec![("x".into(), vec![1, 3, 8, 8])], ..Default::default() };
    assert_eq!(get(&infer(&m, &opts).unwrap(), "y").bytes, 1024);
}

// ---------------------------------------------------------------- fallbacks and errors

#[test]
fn unsized_tensor_error_names_tensor_node_and_flags() {
    let m = model(graph(
        vec![node("Relu", &["x"], &["r"], vec![]), custom("com.example", "MyOp", &["r"], &["mystery"])],
        vec![vi("x", FLOAT, &["1", "8"])],
        vec![vi("out_unrelated", FLOAT, &["1"])],
        vec![],
        vec![],
    ));
    let e = infer(&m, &no_opts()).unwrap_err();
    match &e {
        SizeError::Unsized { tensor, node_index, node_name, op_type, .. } => {
            assert_eq!(tensor, "mystery");
            assert_eq!(*node_index, 1);
            assert_eq!(node_name, "n_mystery");
            assert_eq!(op_type, "com.example:MyOp");
        }
        other => panic!("unexpected error {other}"),
    }
    let text = e.to_string();
    for want in ["`mystery`", "node #1", "MyOp", "n_mystery", "value_info", "--input-shape", "--dim"] {
        assert!(text.contains(want), "missing {want:?} in: {text}");
    }
}

#[test]
fn custom_domain_op_named_like_a_standard_op_is_not_trusted() {
    // a `Relu` of another domain may do anything: tract must not read it as Relu
    let m = model(graph(
        vec![custom("com.example", "Relu", &["x"], &["y"])],
        vec![vi("x", FLOAT, &["1", "8"])],
        vec![vi("y", FLOAT, &["1", "16"])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    let y = get(&s, "y");
    assert_eq!((y.shape.clone(), y.source), (vec![1, 16], SizeSource::ValueInfo));
}

#[test]
fn loop_outputs_come_from_the_body() {
    // Loop is not in tract-onnx 0.23: its output comes from the tool's rule
    // (the body sized on its own), and what follows from tract.
    let body = graph(
        vec![node("Identity", &["c_in"], &["c_out"], vec![]), node("Relu", &["h"], &["h_out"], vec![])],
        vec![vi("i", INT64, &[]), vi("c_in", BOOL, &[]), vi("h", FLOAT, &["1", "8"])],
        vec![vi("c_out", BOOL, &[]), vi("h_out", FLOAT, &["1", "8"])],
        vec![],
        vec![],
    );
    let m = model(graph(
        vec![
            node("Loop", &["trip", "", "x"], &["h_final"], vec![graph_attr("body", body)]),
            node("Relu", &["h_final"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &["1", "8"])],
        vec![vi("y", FLOAT, &["?", "?"])],
        vec![i64_tensor("trip", &[], &[3])],
        vec![vi("h_final", FLOAT, &["1", "8"])],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!((get(&s, "h_final").bytes, get(&s, "h_final").source), (32, SizeSource::Rule));
    assert_eq!((get(&s, "y").bytes, get(&s, "y").source), (32, SizeSource::Tract));

    // without the value_info: the same
    let mut m = m;
    m.graph.as_mut().unwrap().value_info.clear();
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "h_final").bytes, 32);

    // a Loop whose body cannot be sized (a custom op without value_info):
    // an error that names the Loop node
    let g = m.graph.as_mut().unwrap();
    let body = g.node[0].attribute[0].g.as_mut().unwrap();
    body.node[1] = custom("com.example", "Mystery", &["h"], &["h_out"]);
    if let Some(pb::type_proto::Value::TensorType(t)) = body.output[1].r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    let e = infer(&m, &no_opts()).unwrap_err().to_string();
    assert!(e.contains("`h_final`") && e.contains("Loop") && e.contains("node #0"), "{e}");
}

#[test]
fn if_with_external_weights_in_branches_is_inferred() {
    // then: Conv with an external weight local to the branch; else: Relu.
    let conv = |out: &str, w: &str| {
        node("Conv", &["x", w], &[out], vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])])
    };
    let then_g = graph(
        vec![conv("t", "w_then")],
        vec![],
        vec![vi("t", FLOAT, &["1", "3", "8", "8"])],
        vec![f32_tensor("w_then", &[3, 3, 3, 3], true)],
        vec![],
    );
    let else_g = graph(
        vec![node("Relu", &["x"], &["e"], vec![])],
        vec![],
        vec![vi("e", FLOAT, &["1", "3", "8", "8"])],
        vec![],
        vec![],
    );
    let m = model(graph(
        vec![
            node("ReduceSum", &["x"], &["sum"], vec![int("keepdims", 0)]),
            node("Greater", &["sum", "zero"], &["cond"], vec![]),
            node("If", &["cond"], &["out"], vec![graph_attr("then_branch", then_g), graph_attr("else_branch", else_g)]),
        ],
        vec![vi("x", FLOAT, &["1", "3", "8", "8"])],
        vec![vi("out", FLOAT, &["?", "?", "?", "?"])],
        vec![f32_tensor("zero", &[], false)],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    let out = get(&s, "out");
    assert_eq!((out.bytes, out.source), (3 * 64 * 4, SizeSource::Rule));
    assert_eq!(get(&s, "cond").elem_type, BOOL);
}

#[test]
fn tract_builder_failure_is_contained() {
    // tract has no BFLOAT16: its Cast builder fails. The node is left out of
    // tract's model; its output comes from the tool's Cast rule (forward,
    // from its input; the value_info agrees) and the rest from tract.
    let m = model(graph(
        vec![
            node("Relu", &["x"], &["r"], vec![]),
            node("Cast", &["r"], &["b"], vec![int("to", BFLOAT16 as i64)]),
            node("Cast", &["b"], &["f"], vec![int("to", FLOAT as i64)]),
            node("Relu", &["f"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &["2", "8"])],
        vec![vi("y", FLOAT, &["2", "8"])],
        vec![],
        vec![vi("b", BFLOAT16, &["2", "8"])],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!((get(&s, "b").bytes, get(&s, "b").source), (32, SizeSource::Rule));
    assert_eq!(get(&s, "f").bytes, 64);
    assert_eq!(get(&s, "y").bytes, 64);
}

#[test]
fn malformed_models_give_errors_not_panics() {
    // no graph
    let e = infer(&pb::ModelProto::default(), &no_opts()).unwrap_err();
    assert!(matches!(e, SizeError::NoGraph));
    // a graph output nothing defines, an input read but never defined, empty
    // output names, a node with no op type, a cycle
    let m = model(graph(
        vec![
            node("Add", &["x", "ghost"], &["a"], vec![]),
            node("Relu", &["a"], &["", "b"], vec![]),
            pb::NodeProto { output: vec!["weird".into()], ..Default::default() },
            node("Add", &["c2", "x"], &["c1"], vec![]),
            node("Relu", &["c1"], &["c2"], vec![]),
        ],
        vec![vi("x", FLOAT, &["4"])],
        vec![vi("nothing_defines_me", FLOAT, &["4"])],
        vec![],
        vec![],
    ));
    let r = infer(&m, &no_opts());
    assert!(r.is_err());
    // with value_info for every node output, it succeeds
    let mut m = m;
    m.graph.as_mut().unwrap().value_info =
        ["a", "b", "weird", "c1", "c2"].iter().map(|n| vi(n, FLOAT, &["4"])).collect();
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "c2").bytes, 16);
}

#[test]
fn constants_are_sized_but_never_required() {
    let m = model(graph(
        vec![
            node("Constant", &[], &["k"], vec![tensor_attr("value", i64_tensor("k", &[2], &[4, 4]))]),
            node(
                "Constant",
                &[],
                &["s"],
                vec![pb::AttributeProto {
                    name: Some("value_string".into()),
                    r#type: Some(pb::attribute_proto::AttributeType::String as i32),
                    s: Some(b"hello".to_vec()),
                    ..Default::default()
                }],
            ),
            node("Reshape", &["x", "k"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &["16"])],
        vec![vi("y", FLOAT, &["4", "4"])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!((get(&s, "k").bytes, get(&s, "k").source), (16, SizeSource::Declared));
    // strings have no fixed size: a string weight counts 0 bytes
    assert_eq!((get(&s, "s").elem_type, get(&s, "s").bytes), (STRING, 0));
    assert_eq!(get(&s, "y").shape, vec![4, 4]);
}

#[test]
fn string_activations_count_zero_and_say_so() {
    let m = model(graph(
        vec![node("Identity", &["words"], &["w2"], vec![])],
        vec![vi("words", STRING, &["3"])],
        vec![vi("w2", STRING, &["3"])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "words").bytes, 0);
    assert_eq!((get(&s, "w2").bytes, get(&s, "w2").shape.clone()), (0, vec![3]));
    assert!(s.assumptions.iter().any(|a| a.contains("2 string tensors counted as 0 bytes")), "{:?}", s.assumptions);
}

#[test]
fn a_rule_resting_on_unknown_dim_gives_way_to_a_static_value_info() {
    // n = NonZero(x) has a data-dependent length; the If's branches return
    // it cast to float, so the rule's answer for `y` rests on --unknown-dim.
    // The file's static value_info for `y` is a fact: it wins. `z`, which
    // has none, keeps the rule's answer and counts as derived from the guess.
    let branch = |out: &str| {
        graph(
            vec![node("Cast", &["n"], &[out], vec![int("to", FLOAT as i64)])],
            vec![],
            vec![vi(out, FLOAT, &["?", "?"])],
            vec![],
            vec![],
        )
    };
    let m = model(graph(
        vec![
            node("NonZero", &["x"], &["n"], vec![]),
            node(
                "If",
                &["c"],
                &["y"],
                vec![graph_attr("then_branch", branch("a")), graph_attr("else_branch", branch("b"))],
            ),
            node(
                "If",
                &["c"],
                &["z"],
                vec![graph_attr("then_branch", branch("d")), graph_attr("else_branch", branch("e"))],
            ),
        ],
        vec![vi("x", FLOAT, &["2", "3"]), vi("c", BOOL, &[])],
        vec![vi("y", FLOAT, &["2", "5"]), vi("z", FLOAT, &["?", "?"])],
        vec![],
        vec![],
    ));
    let opts = SizeOptions { unknown_dim: Some(3), ..Default::default() };
    let s = infer(&m, &opts).unwrap();
    assert_eq!(get(&s, "n").shape, vec![2, 3]);
    assert_eq!((get(&s, "y").shape.clone(), get(&s, "y").source), (vec![2, 5], SizeSource::ValueInfo));
    assert_eq!((get(&s, "z").shape.clone(), get(&s, "z").source), (vec![2, 3], SizeSource::Rule));
    // The branches needed no guess of their own: no note says so.
    assert!(!s.assumptions.iter().any(|a| a.contains("was not needed")), "{:?}", s.assumptions);
    let used = s.unknown_dim.as_ref().unwrap();
    assert_eq!((used.tensors.clone(), used.derived), (vec!["n".to_string()], 1), "{used:?}");
}
