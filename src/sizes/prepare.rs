//! Builds the model that tract analyses: the user's graph without the bytes of
//! its weights and without what tract cannot load.
//!
//! Shapes never depend on the values of floating-point weights, only on their
//! shapes, so every initializer that is floating point and larger than
//! [`INLINE_LIMIT`], or stored as external data (of any type), becomes a
//! *typed graph input* with its dtype and dims: tract learns everything it
//! needs and no weight byte is copied or read. External data is never opened
//! (the `.data` files may be absent). Small float and integer initializers
//! stay constants because shape computations (`Reshape` targets, `Slice`
//! starts, `Tile` repeats, `Resize` scales...) read their values; integer
//! ones larger than [`INT_INLINE_LIMIT`] (quantized weights) become typed
//! inputs too, since no shape vector is that long. Large `Constant` nodes are
//! treated the same way (the node is replaced by a typed input named as its
//! output), and weights inside subgraphs (`If`/`Scan` bodies) are hoisted to
//! the top level as typed inputs when their name is unique in the model (the
//! body then reads them from the outer scope, which tract wires as a
//! closure); a node whose subgraph holds external data that cannot be
//! hoisted is left out (below).
//!
//! What tract cannot load is hidden from it: tensors of types tract lacks
//! (bfloat16, float8, 4-bit, complex) are left undefined, so tract sees an
//! unknown source in their place; nodes of domains other than the standard
//! ones, op types tract does not register, and nodes whose tract builder
//! failed are left out, so their outputs too are unknown sources to tract
//! (tract creates a source for every name that is read but not defined).
//! The caller fills unknown tensors from the file's value_info, and tract
//! then infers what follows them.
//!
//! The result is our prost model re-encoded and decoded as tract's own prost
//! types (tract's schema is older; the fields it lacks are not needed for
//! shape inference).

use std::collections::{HashMap, HashSet};

use prost::Message;

use super::dtype;
use crate::onnx::pb;

/// Floating-point initializers larger than this many bytes are given to tract
/// as typed inputs instead of constants.
pub(crate) const INLINE_LIMIT: u64 = 1024;

/// Integer (and bool) initializers larger than this many bytes are given to
/// tract as typed inputs: they are weights, not shapes (8192 int64 values).
pub(crate) const INT_INLINE_LIMIT: u64 = 64 * 1024;

/// The model to give tract, and how its nodes relate to the user's.
pub(crate) struct Prepared {
    /// The model in tract's prost types.
    pub model: tract_onnx::pb::ModelProto,
    /// For each node of the tract model, the index of the user's node.
    pub node_map: Vec<usize>,
    /// User's nodes left out of the tract model, with the reason.
    pub hidden: Vec<(usize, String)>,
    /// User's nodes left out of the tract model because their output was
    /// sized by arithmetic (module `fold`): (node, output, elem_type, shape).
    pub sized: Vec<(usize, String, i32, Vec<u64>)>,
}

/// Whether a node's domain is one whose op types tract interprets (tract
/// keys ops by type only, so a custom-domain `Conv` would be misread).
pub(crate) fn standard_domain(node: &pb::NodeProto) -> bool {
    matches!(node.domain(), "" | "ai.onnx" | "ai.onnx.ml")
}

/// Whether a node is the standard `Constant` op.
pub(crate) fn is_constant(node: &pb::NodeProto) -> bool {
    node.op_type() == "Constant" && matches!(node.domain(), "" | "ai.onnx")
}

fn is_external(t: &pb::TensorProto) -> bool {
    t.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
}

/// Dims of a tensor, `None` if one is negative.
pub(crate) fn tensor_dims(dims: &[i64]) -> Option<Vec<u64>> {
    dims.iter().map(|&d| u64::try_from(d).ok()).collect()
}

/// Whether tract should get `t` as a typed input rather than a constant.
pub(crate) fn as_typed_input(t: &pb::TensorProto) -> bool {
    if is_external(t) {
        return true;
    }
    let dt = t.data_type();
    let limit = if dtype::is_float(dt) { INLINE_LIMIT } else { INT_INLINE_LIMIT };
    let n = tensor_dims(&t.dims).and_then(|d| super::dims::count(&d));
    n.and_then(|n| dtype::elem_bytes(dt, n)).map_or(true, |b| b > limit)
}

/// A value_info with a fully concrete tensor type.
pub(crate) fn typed_value_info(name: &str, elem_type: i32, dims: &[u64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value as Dim, Dimension};
    let dim = dims.iter().map(|&d| Dimension { value: Some(Dim::DimValue(d as i64)), denotation: None }).collect();
    pb::ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: Some(elem_type),
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

/// A typed input for tensor `t` if tract can represent its type.
fn typed_input_of(name: &str, elem_type: i32, dims: &[i64]) -> Option<pb::ValueInfoProto> {
    let dims = tensor_dims(dims)?;
    dtype::tract_supports(elem_type).then(|| typed_value_info(name, elem_type, &dims))
}

/// Counts how often each name is defined anywhere in the model (inputs,
/// initializers, node outputs, recursively into subgraphs).
fn count_definitions(graph: &pb::GraphProto, counts: &mut HashMap<String, u32>) {
    fn add(counts: &mut HashMap<String, u32>, n: &str) {
        if !n.is_empty() {
            *counts.entry(n.to_string()).or_default() += 1;
        }
    }
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    graph.input.iter().filter(|i| !inits.contains(i.name())).for_each(|i| add(counts, i.name()));
    graph.initializer.iter().for_each(|t| add(counts, t.name()));
    graph.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).for_each(|t| add(counts, t.name()));
    for node in &graph.node {
        node.output.iter().for_each(|o| add(counts, o));
        for a in &node.attribute {
            for g in a.g.iter().chain(&a.graphs) {
                count_definitions(g, counts);
            }
        }
    }
}

/// State for hoisting subgraph weights to the top level.
struct Hoist<'a> {
    root: &'a pb::GraphProto,
    counts: Option<HashMap<String, u32>>,
    /// Typed top-level inputs for the hoisted weights.
    inputs: Vec<pb::ValueInfoProto>,
}

impl Hoist<'_> {
    fn unique(&mut self, name: &str) -> bool {
        let root = self.root;
        let counts = self.counts.get_or_insert_with(|| {
            let mut c = HashMap::new();
            count_definitions(root, &mut c);
            c
        });
        counts.get(name).copied() == Some(1)
    }

    /// Rewrites a subgraph for tract; `Err` says why the owning node must be
    /// hidden instead.
    fn subgraph(&mut self, g: &mut pb::GraphProto) -> Result<(), String> {
        for t in std::mem::take(&mut g.initializer) {
            let dt = t.data_type();
            if !dtype::tract_supports(dt) || tensor_dims(&t.dims).is_none() {
                continue; // hidden: tract sees an unknown outer-scope value
            }
            if as_typed_input(&t) {
                if self.unique(t.name()) {
                    if let Some(vi) = typed_input_of(t.name(), dt, &t.dims) {
                        self.inputs.push(vi);
                    }
                    continue;
                }
                if is_external(&t) {
                    return Err(format!(
                        "its subgraph weight `{}` is external data and its name is not unique",
                        t.name()
                    ));
                }
            }
            g.initializer.push(t);
        }
        for node in &mut g.node {
            if !standard_domain(node) {
                return Err(format!("its subgraph uses op {} of domain `{}`", node.op_type(), node.domain()));
            }
            for a in &mut node.attribute {
                if a.t.as_ref().is_some_and(is_external) || a.tensors.iter().any(is_external) {
                    return Err("its subgraph has a constant stored as external data".into());
                }
                if let Some(sub) = a.g.as_mut() {
                    self.subgraph(sub)?;
                }
                for sub in &mut a.graphs {
                    self.subgraph(sub)?;
                }
            }
        }
        Ok(())
    }
}

/// What a `Constant` node holds, for sizing it and for deciding how tract
/// gets it: `(elem_type, dims, external or large float)`.
pub(crate) fn constant_value(node: &pb::NodeProto) -> Option<(i32, Vec<i64>, bool)> {
    use dtype::code::*;
    let attr = node.attribute.iter().find(|a| {
        matches!(
            a.name(),
            "value"
                | "sparse_value"
                | "value_float"
                | "value_floats"
                | "value_int"
                | "value_ints"
                | "value_string"
                | "value_strings"
        )
    })?;
    Some(match attr.name() {
        "value" => {
            let t = attr.t.as_ref()?;
            (t.data_type(), t.dims.clone(), as_typed_input(t))
        }
        "sparse_value" => {
            let s = attr.sparse_tensor.as_ref()?;
            (s.values.as_ref()?.data_type(), s.dims.clone(), true)
        }
        "value_float" => (FLOAT, vec![], false),
        "value_floats" => (FLOAT, vec![attr.floats.len() as i64], false),
        "value_int" => (INT64, vec![], false),
        "value_ints" => (INT64, vec![attr.ints.len() as i64], false),
        "value_string" => (STRING, vec![], false),
        _ => (STRING, vec![attr.strings.len() as i64], false),
    })
}

/// Builds the tract model. `inputs` are the concrete types of the graph's
/// non-initializer inputs (inputs missing from it, or of a type tract lacks,
/// are left undefined); `hide` lists further nodes to leave out, with the reason
/// (builders that failed on an earlier attempt); `registered` says whether
/// tract has an op of a given type.
pub(crate) fn prepare(
    model: &pb::ModelProto,
    graph: &pb::GraphProto,
    inputs: &HashMap<String, (i32, Vec<u64>)>,
    hide: &HashMap<usize, String>,
    registered: &dyn Fn(&str) -> bool,
) -> Result<Prepared, String> {
    let mut g = pb::GraphProto { name: graph.name.clone(), ..Default::default() };
    let mut defined: HashSet<String> = HashSet::new();

    let init_names = super::initializer_names(graph);
    for vi in &graph.input {
        if init_names.contains(vi.name()) {
            continue;
        }
        if let Some((elem, dims)) = inputs.get(vi.name()) {
            if dtype::tract_supports(*elem) {
                g.input.push(typed_value_info(vi.name(), *elem, dims));
                defined.insert(vi.name().to_string());
            }
        }
    }
    for t in &graph.initializer {
        let dt = t.data_type();
        if !dtype::tract_supports(dt) || tensor_dims(&t.dims).is_none() {
            continue;
        }
        if as_typed_input(t) {
            if let Some(vi) = typed_input_of(t.name(), dt, &t.dims) {
                g.input.push(vi);
            }
        } else {
            g.initializer.push(t.clone());
        }
        defined.insert(t.name().to_string());
    }
    for s in &graph.sparse_initializer {
        if let Some(v) = s.values.as_ref() {
            if let Some(vi) = typed_input_of(v.name(), v.data_type(), &s.dims) {
                g.input.push(vi);
                defined.insert(v.name().to_string());
            }
        }
    }

    let mut hoist = Hoist { root: graph, counts: None, inputs: Vec::new() };
    let mut node_map = Vec::with_capacity(graph.node.len());
    let mut hidden = Vec::new();
    let mut decisions = super::fold::guard(graph, inputs);
    let mut sized = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        let reason = if let Some(r) = hide.get(&i) {
            Some(r.clone())
        } else if let Some(decision) = decisions.remove(&i) {
            match decision {
                super::fold::Decision::Hide(r) => Some(r),
                super::fold::Decision::Sized(outs) => {
                    for (name, elem, shape) in outs {
                        let small = shape.iter().all(|&d| d <= super::fold::TRACT_DIM_LIMIT);
                        if small && dtype::tract_supports(elem) && defined.insert(name.clone()) {
                            g.input.push(typed_value_info(&name, elem, &shape));
                        }
                        sized.push((i, name, elem, shape));
                    }
                    continue;
                }
            }
        } else if !standard_domain(node) {
            Some(format!("tract does not know ops of domain `{}`", node.domain()))
        } else if !registered(node.op_type()) {
            Some(format!("tract-onnx has no {} op", node.op_type()))
        } else if super::rules::sized_by_rules_only(node) {
            Some(format!("{} is sized by the tool's own rule", node.op_type()))
        } else {
            None
        };
        let new_node = if let Some(reason) = reason {
            hidden.push((i, reason));
            continue;
        } else if is_constant(node) {
            match constant_value(node) {
                Some((dt, dims, true)) => {
                    // A large or external constant: a typed input (or nothing,
                    // if tract lacks its type) named as its output.
                    if let Some(out) = node.output.first().filter(|o| !o.is_empty()) {
                        if let Some(vi) = typed_input_of(out, dt, &dims) {
                            g.input.push(vi);
                            defined.insert(out.clone());
                        }
                    }
                    continue;
                }
                Some((dt, _, false)) if !dtype::tract_supports(dt) => continue,
                _ => node.clone(),
            }
        } else if node.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty()) {
            let mut n = node.clone();
            let mut res = Ok(());
            for a in &mut n.attribute {
                for sub in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                    if res.is_ok() {
                        res = hoist.subgraph(sub);
                    }
                }
            }
            match res {
                Ok(()) => n,
                Err(reason) => {
                    hidden.push((i, reason));
                    continue;
                }
            }
        } else {
            super::rules::patch_for_tract(node).unwrap_or_else(|| node.clone())
        };
        defined.extend(new_node.output.iter().filter(|o| !o.is_empty()).cloned());
        node_map.push(i);
        g.node.push(new_node);
    }
    for vi in hoist.inputs {
        if defined.insert(vi.name().to_string()) {
            g.input.push(vi);
        }
    }
    // tract indexes its name table with every graph output: keep only the
    // defined ones, by name (their declared types are not used), and not the
    // graph inputs a graph returns as they are (a body returning an outer
    // value): tract would replace the input's typed fact by the output's
    // empty one.
    let input_names: HashSet<String> = g.input.iter().map(|i| i.name().to_string()).collect();
    for o in &graph.output {
        if defined.contains(o.name()) && !input_names.contains(o.name()) {
            g.output.push(pb::ValueInfoProto { name: o.name.clone(), ..Default::default() });
        }
    }

    let ours = pb::ModelProto {
        ir_version: model.ir_version,
        opset_import: model.opset_import.clone(),
        graph: Some(g),
        ..Default::default()
    };
    let bytes = ours.encode_to_vec();
    let model = tract_onnx::pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| format!("re-encoding the model for tract failed: {e}"))?;
    Ok(Prepared { model, node_map, hidden, sized })
}
