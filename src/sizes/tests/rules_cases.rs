//! Issue 11's sizing cases: symbols bound by `--input-shape`, the tool's own
//! shape rules, `--unknown-dim`, If branches, strings, sequences. Every
//! expected size is worked out by hand from the ONNX operator spec (the
//! comments show the arithmetic); `scripts/check_sizes.py` checks the same
//! kinds of models against onnxruntime's real tensors.

use super::*;

fn f32_values(name: &str, dims: &[i64], v: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(FLOAT),
        float_data: v.to_vec(),
        ..Default::default()
    }
}

fn bool_scalar(name: &str, v: bool) -> pb::TensorProto {
    pb::TensorProto {
        name: Some(name.into()),
        dims: vec![],
        data_type: Some(BOOL),
        int32_data: vec![i32::from(v)],
        ..Default::default()
    }
}

fn seq_vi(name: &str, elem: i32, dims: &[&str]) -> pb::ValueInfoProto {
    let inner = vi(name, elem, dims).r#type.unwrap();
    pb::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::SequenceType(Box::new(pb::type_proto::Sequence {
                elem_type: Some(Box::new(inner)),
            }))),
            denotation: None,
        }),
        ..Default::default()
    }
}

fn unknown_dim(n: u64) -> SizeOptions {
    SizeOptions { unknown_dim: Some(n), ..Default::default() }
}

fn shapes(input_shapes: &[(&str, &[u64])], d: &[(&str, i64)]) -> SizeOptions {
    SizeOptions {
        dims: d.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        input_shapes: input_shapes.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect(),
        unknown_dim: None,
    }
}

// ------------------------------------------------------------ symbols

/// ids: INT64[batch, seq_len] -> com.microsoft op (value_info
/// [batch, seq_len, 4], FLOAT) -> Relu.
fn bilstm_like() -> pb::ModelProto {
    model(graph(
        vec![custom("com.microsoft", "Embed", &["ids"], &["e"]), node("Relu", &["e"], &["y"], vec![])],
        vec![vi("ids", INT64, &["batch", "seq_len"])],
        vec![vi("y", FLOAT, &["batch", "seq_len", "4"])],
        vec![],
        vec![vi("e", FLOAT, &["batch", "seq_len", "4"])],
    ))
}

#[test]
fn input_shape_binds_every_symbol_of_the_input() {
    let s = infer(&bilstm_like(), &shapes(&[("ids", &[1, 16])], &[])).unwrap();
    // 1 x 16 x 4 floats = 256 B, not 1 x 1 x 4 (seq_len taken as 1)
    assert_eq!((get(&s, "e").shape.clone(), get(&s, "e").bytes), (vec![1, 16, 4], 256));
    assert_eq!(get(&s, "y").bytes, 256);
    assert_eq!(get(&s, "ids").bytes, 16 * 8);
    assert!(!s.assumptions.iter().any(|a| a.contains("assumed 1")), "{:?}", s.assumptions);
}

#[test]
fn input_shape_conflicts_are_errors() {
    // with --dim
    let e = infer(&bilstm_like(), &shapes(&[("ids", &[1, 16])], &[("seq_len", 8)])).unwrap_err();
    assert!(matches!(e, SizeError::ConflictingDim { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("seq_len") && text.contains("--dim seq_len=8") && text.contains("--input-shape ids=1x16"),
        "{text}"
    );
    // agreeing --dim is fine
    let s = infer(&bilstm_like(), &shapes(&[("ids", &[1, 16])], &[("seq_len", 16)])).unwrap();
    assert_eq!(get(&s, "e").bytes, 256);
    // between inputs
    let mut m = bilstm_like();
    let g = m.graph.as_mut().unwrap();
    g.input.push(vi("mask", INT64, &["batch", "seq_len"]));
    let e = infer(&m, &shapes(&[("ids", &[1, 16]), ("mask", &[1, 8])], &[])).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("seq_len") && text.contains("ids=1x16") && text.contains("mask=1x8"), "{text}");
    // a later --input-shape for the same input replaces the earlier one
    let s = infer(&bilstm_like(), &shapes(&[("ids", &[1, 8]), ("ids", &[2, 16])], &[])).unwrap();
    assert_eq!(get(&s, "e").shape, vec![2, 16, 4]);
}

#[test]
fn anonymous_dims_are_treated_like_named_unknown_dims() {
    let make = |d: &str| {
        model(graph(
            vec![custom("com.example", "Op", &["x"], &["c"]), node("Relu", &["c"], &["y"], vec![])],
            vec![vi("x", FLOAT, &["2", "8"])],
            vec![vi("y", FLOAT, &["?", "?"])],
            vec![],
            vec![vi("c", FLOAT, &[d, "8"])],
        ))
    };
    let named = infer(&make("unk__7"), &no_opts()).unwrap();
    let anonymous = infer(&make("?"), &no_opts()).unwrap();
    // both: 1 x 8 floats = 32 B, and said
    assert_eq!(get(&named, "c").bytes, 32);
    assert_eq!(get(&anonymous, "c").bytes, 32);
    assert_eq!(get(&anonymous, "y").bytes, 32);
    assert!(
        anonymous.assumptions.iter().any(|a| a.contains("`c`") && a.contains("assumed 1")),
        "{:?}",
        anonymous.assumptions
    );
}

// ------------------------------------------------------------ facts over guesses

#[test]
fn constant_of_shape_defaults_to_float32() {
    let m = model(graph(
        vec![node("ConstantOfShape", &["shape"], &["z"], vec![]), node("Add", &["z", "x"], &["y"], vec![])],
        vec![vi("x", FLOAT, &["100", "300"])],
        vec![vi("y", FLOAT, &["100", "300"])],
        vec![i64_tensor("shape", &[2], &[100, 300])],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    // spec: without `value`, float32 zeros: 100 * 300 * 4 = 120,000 B
    assert_eq!((get(&s, "z").elem_type, get(&s, "z").bytes), (FLOAT, 120_000));
    assert_eq!(get(&s, "y").bytes, 120_000);
}

/// cond -> If(then: Relu(x) [1,8]; else: Concat(x, x) [1,16]) -> Relu.
fn if_model(cond_const: Option<bool>) -> pb::ModelProto {
    let then_g =
        graph(vec![node("Relu", &["x"], &["t"], vec![])], vec![], vec![vi("t", FLOAT, &["1", "8"])], vec![], vec![]);
    let else_g = graph(
        vec![node("Concat", &["x", "x"], &["e"], vec![int("axis", 1)])],
        vec![],
        vec![vi("e", FLOAT, &["1", "16"])],
        vec![],
        vec![],
    );
    let mut nodes = vec![
        node("If", &["cond"], &["out"], vec![graph_attr("then_branch", then_g), graph_attr("else_branch", else_g)]),
        node("Relu", &["out"], &["y"], vec![]),
    ];
    let mut inputs = vec![vi("x", FLOAT, &["1", "8"])];
    let mut inits = vec![];
    match cond_const {
        Some(c) => inits.push(bool_scalar("cond", c)),
        None => {
            inputs.push(vi("c", FLOAT, &[]));
            nodes.insert(0, node("Cast", &["c"], &["cond"], vec![int("to", BOOL as i64)]));
        }
    }
    // the file claims the then-branch's shape for `out`
    model(graph(nodes, inputs, vec![vi("y", FLOAT, &["1", "?"])], inits, vec![vi("out", FLOAT, &["1", "8"])]))
}

#[test]
fn if_outputs_take_the_larger_branch() {
    let s = infer(&if_model(None), &no_opts()).unwrap();
    // then 1x8 floats = 32 B, else 1x16 = 64 B: the larger
    assert_eq!((get(&s, "out").shape.clone(), get(&s, "out").bytes), (vec![1, 16], 64));
    assert_eq!(get(&s, "out").source, SizeSource::Rule);
    // what follows is inferred from it, not from the file
    assert_eq!(get(&s, "y").bytes, 64);
    assert!(s.assumptions.iter().any(|a| a.contains("branches") && a.contains("`out`")), "{:?}", s.assumptions);
    assert!(s.assumptions.iter().any(|a| a.contains("disagree") && a.contains("`out`")), "{:?}", s.assumptions);
}

#[test]
fn if_with_a_constant_condition_takes_its_branch() {
    let s = infer(&if_model(Some(true)), &no_opts()).unwrap();
    assert_eq!(get(&s, "out").bytes, 32);
    assert_eq!(get(&s, "y").bytes, 32);
    let s = infer(&if_model(Some(false)), &no_opts()).unwrap();
    assert_eq!(get(&s, "out").bytes, 64);
}

// ------------------------------------------------------------ rules

#[test]
fn pad_with_one_element_constant_value() {
    let m = model(graph(
        vec![node("Pad", &["x", "pads", "cv"], &["p"], vec![]), node("Relu", &["p"], &["y"], vec![])],
        vec![vi("x", FLOAT, &["1", "3", "4", "4"])],
        vec![vi("y", FLOAT, &["?", "?", "?", "?"])],
        vec![i64_tensor("pads", &[8], &[0, 0, 1, 2, 0, 0, 1, 2]), f32_values("cv", &[1], &[0.5])],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    // [1, 3, 4+1+1, 4+2+2] = 1*3*6*8 floats = 576 B
    assert_eq!((get(&s, "p").shape.clone(), get(&s, "p").bytes), (vec![1, 3, 6, 8], 576));
    assert_eq!(get(&s, "y").bytes, 576);
}

#[test]
fn range_with_constant_inputs() {
    let m = model(graph(
        vec![node("Range", &["s", "l", "d"], &["r"], vec![]), node("Neg", &["r"], &["y"], vec![])],
        vec![],
        vec![vi("y", INT64, &["?"])],
        vec![i64_tensor("s", &[], &[1]), i64_tensor("l", &[], &[11]), i64_tensor("d", &[], &[3])],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    // ceil((11 - 1) / 3) = 4 INT64 = 32 B
    assert_eq!((get(&s, "r").shape.clone(), get(&s, "r").bytes), (vec![4], 32));
    assert_eq!(get(&s, "y").bytes, 32);
    // float: ceil((1 - 0) / 0.3) = 4 floats
    let m = model(graph(
        vec![node("Range", &["s", "l", "d"], &["r"], vec![])],
        vec![],
        vec![vi("r", FLOAT, &["?"])],
        vec![f32_values("s", &[], &[0.0]), f32_values("l", &[], &[1.0]), f32_values("d", &[], &[0.3])],
        vec![],
    ));
    assert_eq!(get(&infer(&m, &no_opts()).unwrap(), "r").bytes, 16);
}

#[test]
fn shape_like_ops_and_cast_like() {
    let m = model(graph(
        vec![
            custom("com.example", "Op", &["x"], &["c"]),
            node("Shape", &["c"], &["sh"], vec![int("start", 1)]),
            node("EyeLike", &["sq"], &["eye"], vec![int("dtype", INT32 as i64)]),
            node("RandomNormalLike", &["x"], &["rn"], vec![]),
            node("RandomUniformLike", &["x"], &["ru"], vec![int("dtype", DOUBLE as i64)]),
            node("CastLike", &["x", "i8"], &["cl"], vec![]),
            node("Relu", &["cl"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &["2", "5"]), vi("sq", FLOAT, &["3", "3"]), vi("i8", INT8, &["1"])],
        vec![vi("y", INT8, &["?", "?"]), vi("sh", INT64, &["?"])],
        vec![],
        vec![vi("c", FLOAT, &["2", "3", "4"])],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    // Shape(start=1) of a rank-3 tensor: INT64[2] = 16 B
    assert_eq!((get(&s, "sh").elem_type, get(&s, "sh").shape.clone()), (INT64, vec![2]));
    assert_eq!((get(&s, "eye").elem_type, get(&s, "eye").bytes), (INT32, 36));
    assert_eq!((get(&s, "rn").elem_type, get(&s, "rn").bytes), (FLOAT, 40));
    assert_eq!((get(&s, "ru").elem_type, get(&s, "ru").bytes), (DOUBLE, 80));
    assert_eq!((get(&s, "cl").elem_type, get(&s, "cl").bytes), (INT8, 10));
    assert_eq!(get(&s, "y").bytes, 10);
}

#[test]
fn unique_needs_unknown_dim_and_the_message_says_so() {
    let m = model(graph(
        vec![
            node("Unique", &["x"], &["u", "idx", "inv", "cnt"], vec![int("sorted", 1)]),
            node("Neg", &["u"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &["3", "4"])],
        vec![vi("y", FLOAT, &["?"]), vi("idx", INT64, &["?"]), vi("inv", INT64, &["?"]), vi("cnt", INT64, &["?"])],
        vec![],
        vec![],
    ));
    let e = infer(&m, &no_opts()).unwrap_err().to_string();
    assert!(e.contains("--unknown-dim N") && e.contains("depends on the data") && e.contains("Unique"), "{e}");
    let s = infer(&m, &unknown_dim(5)).unwrap();
    // U = 5: Y FLOAT[5] 20 B; indices, counts INT64[5] 40 B; inverse INT64[3*4] 96 B
    assert_eq!(get(&s, "u").bytes, 20);
    assert_eq!(get(&s, "idx").bytes, 40);
    assert_eq!(get(&s, "cnt").bytes, 40);
    assert_eq!((get(&s, "inv").bytes, get(&s, "inv").source), (96, SizeSource::Rule));
    assert_eq!(get(&s, "y").bytes, 20);
    let used = s.unknown_dim.as_ref().unwrap();
    assert_eq!(used.value, 5);
    assert_eq!(used.tensors, vec!["u".to_string(), "idx".to_string(), "cnt".to_string()]);
    assert_eq!(used.derived, 1, "y");
    assert!(
        s.assumptions.iter().any(|a| a.contains("--unknown-dim 5") && a.contains("every figure")),
        "{:?}",
        s.assumptions
    );
}

#[test]
fn nonzero_is_rank_by_unknown() {
    let m = model(graph(
        vec![node("NonZero", &["x"], &["nz"], vec![]), node("Transpose", &["nz"], &["y"], vec![])],
        vec![vi("x", FLOAT, &["3", "4", "5"])],
        vec![vi("y", INT64, &["?", "?"])],
        vec![],
        vec![],
    ));
    assert!(infer(&m, &no_opts()).unwrap_err().to_string().contains("--unknown-dim"));
    let s = infer(&m, &unknown_dim(10)).unwrap();
    // INT64[3, 10] = 240 B, and its transpose
    assert_eq!((get(&s, "nz").shape.clone(), get(&s, "nz").bytes), (vec![3, 10], 240));
    assert_eq!(get(&s, "y").shape, vec![10, 3]);
}

#[test]
fn scan_outputs_stack_the_body() {
    // state s: FLOAT[2]; scan input xs: FLOAT[5, 2]; body: s' = s + x, out = x * 2
    let body = graph(
        vec![node("Add", &["s_in", "x_in"], &["s_out"], vec![]), node("Add", &["x_in", "x_in"], &["o"], vec![])],
        vec![vi("s_in", FLOAT, &["2"]), vi("x_in", FLOAT, &["2"])],
        vec![vi("s_out", FLOAT, &["2"]), vi("o", FLOAT, &["2"])],
        vec![],
        vec![],
    );
    let m = model(graph(
        vec![
            node("Scan", &["s0", "xs"], &["s_final", "os"], vec![graph_attr("body", body), int("num_scan_inputs", 1)]),
            node("Relu", &["os"], &["y"], vec![]),
        ],
        vec![vi("s0", FLOAT, &["2"]), vi("xs", FLOAT, &["5", "2"])],
        vec![vi("s_final", FLOAT, &["?"]), vi("y", FLOAT, &["?", "?"])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "s_final").bytes, 8);
    // 5 iterations of FLOAT[2]: [5, 2] = 40 B
    assert_eq!((get(&s, "os").shape.clone(), get(&s, "os").bytes), (vec![5, 2], 40));
    assert_eq!(get(&s, "y").bytes, 40);
}

/// Loop with M = 3, carried h: FLOAT[1, 8], one scan output (h_out per
/// iteration); `cond` input given (a constant true) or not; the body passes
/// its condition on (`Identity`) or computes it (`Not`, data-dependent).
fn loop_model(with_cond: bool) -> pb::ModelProto {
    loop_model_with(with_cond, "Identity")
}

fn loop_model_with(with_cond: bool, cond_op: &str) -> pb::ModelProto {
    let body = graph(
        vec![
            node(cond_op, &["c_in"], &["c_out"], vec![]),
            node("Relu", &["h"], &["h_out"], vec![]),
            node("Neg", &["h"], &["scan"], vec![]),
        ],
        vec![vi("i", INT64, &[]), vi("c_in", BOOL, &[]), vi("h", FLOAT, &["1", "8"])],
        vec![vi("c_out", BOOL, &[]), vi("h_out", FLOAT, &["1", "8"]), vi("scan", FLOAT, &["1", "8"])],
        vec![],
        vec![],
    );
    let mut inits = vec![i64_tensor("trip", &[], &[3])];
    if with_cond {
        inits.push(bool_scalar("keep_going", true));
    }
    let cond = if with_cond { "keep_going" } else { "" };
    model(graph(
        vec![
            node("Loop", &["trip", cond, "x"], &["h_final", "stacked"], vec![graph_attr("body", body)]),
            node("Relu", &["stacked"], &["y"], vec![]),
        ],
        vec![vi("x", FLOAT, &["1", "8"])],
        vec![vi("h_final", FLOAT, &["?", "?"]), vi("y", FLOAT, &["?", "?", "?"])],
        inits,
        vec![],
    ))
}

#[test]
fn loop_outputs_from_the_body() {
    let s = infer(&loop_model(false), &no_opts()).unwrap();
    assert_eq!(get(&s, "h_final").bytes, 32);
    // 3 iterations of FLOAT[1, 8]: [3, 1, 8] = 96 B
    assert_eq!((get(&s, "stacked").shape.clone(), get(&s, "stacked").bytes), (vec![3, 1, 8], 96));
    assert_eq!(get(&s, "y").bytes, 96);
    // a constant true condition the body passes on cannot stop the loop: M
    let s = infer(&loop_model(true), &no_opts()).unwrap();
    assert_eq!((get(&s, "stacked").shape.clone(), get(&s, "stacked").bytes), (vec![3, 1, 8], 96));
    // a condition the body computes makes the trip count data-dependent
    let e = infer(&loop_model_with(true, "Not"), &no_opts()).unwrap_err().to_string();
    assert!(e.contains("`stacked`") && e.contains("--unknown-dim"), "{e}");
    let s = infer(&loop_model_with(true, "Not"), &unknown_dim(4)).unwrap();
    assert_eq!(get(&s, "stacked").shape, vec![4, 1, 8]);
    assert_eq!(get(&s, "h_final").bytes, 32);
}

// ------------------------------------------------------------ strings, sequences

#[test]
fn strings_written_by_nodes_count_zero() {
    // a node writes strings of unknown shape (value_info without dims)
    let m = model(graph(
        vec![
            custom("ai.onnx.contrib", "Tokenize", &["x"], &["words"]),
            custom("ai.onnx.contrib", "Count", &["words"], &["n"]),
        ],
        vec![vi("x", FLOAT, &["4"])],
        vec![vi("n", INT64, &["1"])],
        vec![],
        vec![vi("words", STRING, &["?"])],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!((get(&s, "words").elem_type, get(&s, "words").bytes), (STRING, 0));
    assert!(s.assumptions.iter().any(|a| a.contains("string") && a.contains("`words`")), "{:?}", s.assumptions);
    // a string-typed value_info with no shape at all counts 0 as well
    let mut m = m;
    let g = m.graph.as_mut().unwrap();
    if let Some(pb::type_proto::Value::TensorType(t)) = g.value_info[0].r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    assert_eq!(get(&infer(&m, &no_opts()).unwrap(), "words").bytes, 0);
}

#[test]
fn sequences_sized_when_known_else_unknown_dim() {
    // SequenceConstruct of two FLOAT[2, 3]: 2 * 24 B
    let m = model(graph(
        vec![
            node("SequenceConstruct", &["a", "b"], &["seq"], vec![]),
            node("SequenceLength", &["seq"], &["n"], vec![]),
        ],
        vec![vi("a", FLOAT, &["2", "3"]), vi("b", FLOAT, &["2", "3"])],
        vec![vi("n", INT64, &[])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "seq").bytes, 48);
    assert_eq!(get(&s, "n").bytes, 8);

    // a sequence graph input: its length only --unknown-dim gives, and the
    // refusal says so
    let m = model(graph(
        vec![node("SequenceLength", &["seq"], &["n"], vec![])],
        vec![seq_vi("seq", FLOAT, &["?", "3"])],
        vec![vi("n", INT64, &[])],
        vec![],
        vec![],
    ));
    let e = infer(&m, &no_opts()).unwrap_err().to_string();
    assert!(e.contains("`seq`") && e.contains("--unknown-dim N"), "{e}");
    let s = infer(&m, &unknown_dim(4)).unwrap();
    // 4 elements of FLOAT[4, 3] = 192 B
    assert_eq!((get(&s, "seq").shape.clone(), get(&s, "seq").bytes), (vec![4, 4, 3], 192));
    assert_eq!(s.unknown_dim.as_ref().unwrap().tensors, vec!["seq".to_string()]);

    // a sequence written by an op the rules do not know: its value_info's
    // element type, length and unknown dims from --unknown-dim
    let m = model(graph(
        vec![
            custom("ai.onnx.contrib", "MakeParts", &["x"], &["parts"]),
            node("ConcatFromSequence", &["parts"], &["y"], vec![int("axis", 0)]),
        ],
        vec![vi("x", FLOAT, &["6", "2"])],
        vec![vi("y", FLOAT, &["6", "2"])],
        vec![],
        vec![seq_vi("parts", FLOAT, &["1", "2"])],
    ));
    let e = infer(&m, &no_opts()).unwrap_err().to_string();
    assert!(e.contains("`parts`") && e.contains("--unknown-dim N"), "{e}");
    let s = infer(&m, &unknown_dim(6)).unwrap();
    assert_eq!(get(&s, "parts").bytes, 6 * 2 * 4);
}

#[test]
fn sequence_ops_follow_their_elements() {
    // x: FLOAT[7, 2] split in pieces of 3 along axis 0: [3, 2], [3, 2], [1, 2]
    let m = model(graph(
        vec![
            node("SplitToSequence", &["x", "three"], &["parts"], vec![int("axis", 0)]),
            // erase the last: [3, 2], [3, 2] (stacked: [2, 3, 2])
            node("SequenceErase", &["parts", "minus_one"], &["two"], vec![]),
            // insert b: FLOAT[1, 2] in front: ragged, one flat dim of 14
            node("SequenceInsert", &["two", "b", "zero"], &["three_parts"], vec![]),
            // the second from the end: [3, 2]
            node("SequenceAt", &["three_parts", "minus_two"], &["at"], vec![]),
            // concatenated along axis 0: [7, 2]
            node("ConcatFromSequence", &["three_parts"], &["cat"], vec![int("axis", 0)]),
            // stacked along a new axis 1: [3, 2, 2]... of the equal pieces
            node("ConcatFromSequence", &["two"], &["stacked"], vec![int("axis", 1), int("new_axis", 1)]),
        ],
        vec![vi("x", FLOAT, &["7", "2"]), vi("b", FLOAT, &["1", "2"])],
        vec![vi("at", FLOAT, &["?", "?"]), vi("cat", FLOAT, &["?", "?"]), vi("stacked", FLOAT, &["?", "?", "?"])],
        vec![
            i64_tensor("three", &[], &[3]),
            i64_tensor("minus_one", &[], &[-1]),
            i64_tensor("zero", &[], &[0]),
            i64_tensor("minus_two", &[], &[-2]),
        ],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "parts").bytes, 7 * 2 * 4);
    assert_eq!((get(&s, "two").shape.clone(), get(&s, "two").bytes), (vec![2, 3, 2], 48));
    assert_eq!((get(&s, "three_parts").shape.clone(), get(&s, "three_parts").bytes), (vec![14], 56));
    assert_eq!(get(&s, "at").shape, vec![3, 2]);
    assert_eq!(get(&s, "cat").shape, vec![7, 2]);
    assert_eq!(get(&s, "stacked").shape, vec![3, 2, 2]);

    // pieces from a split that is not a constant: the input's bytes, and
    // what reads the elements falls back on value_info
    let m = model(graph(
        vec![
            node("SplitToSequence", &["x", "sp"], &["parts"], vec![]),
            node("SequenceLength", &["parts"], &["n"], vec![]),
        ],
        vec![vi("x", FLOAT, &["7", "2"]), vi("sp", INT64, &["2"])],
        vec![vi("n", INT64, &[])],
        vec![],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    assert_eq!(get(&s, "parts").bytes, 56);
}

#[test]
fn one_failing_op_does_not_leave_the_rest_unsized() {
    // Range (tract's analysis needs constants it does not fold here) feeds
    // a chain that tract infers once the rule's size is injected.
    let m = model(graph(
        vec![
            node("Range", &["s", "l", "d"], &["r"], vec![]),
            node("Cast", &["r"], &["f"], vec![int("to", FLOAT as i64)]),
            node("Unsqueeze", &["f", "axes"], &["u"], vec![]),
            node("MatMul", &["u", "w"], &["y"], vec![]),
        ],
        vec![],
        vec![vi("y", FLOAT, &["?", "?"])],
        vec![
            i64_tensor("s", &[], &[0]),
            i64_tensor("l", &[], &[8]),
            i64_tensor("d", &[], &[1]),
            i64_tensor("axes", &[1], &[0]),
            f32_tensor("w", &[8, 4], false),
        ],
        vec![],
    ));
    let s = infer(&m, &no_opts()).unwrap();
    // r INT64[8]; f FLOAT[8]; u [1, 8]; y [1, 4] = 16 B
    assert_eq!(get(&s, "r").bytes, 64);
    assert_eq!(get(&s, "u").shape, vec![1, 8]);
    assert_eq!(get(&s, "y").bytes, 16);
}
