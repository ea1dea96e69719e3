//! Tiny ONNX models built with the prost types, for end-to-end tests.

use onnx_memsched::onnx::pb;
use prost::Message;

/// A tensor value_info of element type `elem` (ONNX `DataType` code) and
/// static `dims`.
pub fn typed_value(name: &str, elem: i32, dims: &[i64]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)),
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

pub fn float_value(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    typed_value(name, pb::tensor_proto::DataType::Float as i32, dims)
}

pub fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

pub fn model(
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: Some(8),
        producer_name: Some("onnx-memsched tests".into()),
        opset_import: vec![pb::OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(pb::GraphProto {
            name: Some("test".into()),
            node: nodes,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// x[1,64] → a = Relu(x), b = Sigmoid(x), c = Add(a, b) → y = Relu(c):
/// a small valid diamond.
pub fn diamond() -> pb::ModelProto {
    model(
        vec![
            node("Relu", "a", &["x"], &["a"]),
            node("Sigmoid", "b", &["x"], &["b"]),
            node("Add", "c", &["a", "b"], &["c"]),
            node("Relu", "y", &["c"], &["y"]),
        ],
        vec![float_value("x", &[1, 64])],
        vec![float_value("y", &[1, 64])],
    )
}

pub fn bytes(model: &pb::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        i: Some(v),
        r#type: Some(pb::attribute_proto::AttributeType::Int as i32),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: Some(name.into()),
        ints: v.to_vec(),
        r#type: Some(pb::attribute_proto::AttributeType::Ints as i32),
        ..Default::default()
    }
}

/// x[1,64] forks into two branches, each `Concat(x,x,x,x)` (1 KiB, big)
/// then `ReduceMean` (4 B, small), joined by a `Concat`. In `bad` file
/// order both big tensors are live at once (peak 2304 B); running each
/// branch to its end first peaks at 1284 B.
pub fn fork_join(bad: bool) -> pb::ModelProto {
    let expand = |name: &str, out: &str| {
        let mut n = node("Concat", name, &["x", "x", "x", "x"], &[out]);
        n.attribute.push(attr_int("axis", 1));
        n
    };
    let reduce = |name: &str, input: &str, out: &str| {
        let mut n = node("ReduceMean", name, &[input], &[out]);
        n.attribute.push(attr_ints("axes", &[1]));
        n.attribute.push(attr_int("keepdims", 1));
        n
    };
    let mut join = node("Concat", "join", &["ra", "rb"], &["y"]);
    join.attribute.push(attr_int("axis", 1));
    let nodes = if bad {
        vec![expand("ea", "a"), expand("eb", "b"), reduce("ra", "a", "ra"), reduce("rb", "b", "rb"), join]
    } else {
        vec![expand("ea", "a"), reduce("ra", "a", "ra"), expand("eb", "b"), reduce("rb", "b", "rb"), join]
    };
    model(nodes, vec![float_value("x", &[1, 64])], vec![float_value("y", &[1, 2])])
}

/// `y = x + w` with the weight `w` (16 bytes) in the external data file `location`.
pub fn with_external_weight(location: &str) -> pb::ModelProto {
    let mut m = model(
        vec![node("Add", "add", &["x", "w"], &["y"])],
        vec![float_value("x", &[1, 4])],
        vec![float_value("y", &[1, 4])],
    );
    m.graph.as_mut().unwrap().initializer.push(pb::TensorProto {
        name: Some("w".into()),
        dims: vec![1, 4],
        data_type: Some(pb::tensor_proto::DataType::Float as i32),
        data_location: Some(pb::tensor_proto::DataLocation::External as i32),
        external_data: vec![
            pb::StringStringEntryProto { key: Some("location".into()), value: Some(location.into()) },
            pb::StringStringEntryProto { key: Some("offset".into()), value: Some("0".into()) },
            pb::StringStringEntryProto { key: Some("length".into()), value: Some("16".into()) },
        ],
        ..Default::default()
    });
    m
}

/// `node` with the nodes of its bodies (If, Loop, Scan, at any depth) sorted
/// by their encoding: the tool may reorder body nodes, and nothing else in
/// them, so files that differ only in node order have equal canonical nodes.
pub fn canonical_node(node: &pb::NodeProto) -> pb::NodeProto {
    let mut n = node.clone();
    for a in &mut n.attribute {
        if let Some(g) = a.g.as_mut() {
            let mut inner: Vec<pb::NodeProto> = g.node.iter().map(canonical_node).collect();
            inner.sort_by_key(Message::encode_to_vec);
            g.node = inner;
        }
    }
    n
}
