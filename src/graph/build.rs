//! Building a [`Graph`] from an ONNX graph.
//!
//! Names become typed ids. A node's inputs are its non-empty `input` names
//! plus every outer-scope name its subgraphs (If branches, Loop and Scan
//! bodies, at any depth) read without defining: those are implicit inputs, so
//! the control-flow op is atomic and runs after their producers.
//! Initializers and `Constant` outputs are weights.

use super::{Graph, Op, OpId, Tensor, TensorId, TensorKind};
use crate::onnx::pb;
use indexmap::IndexMap;
use std::collections::HashSet;

/// Why an ONNX graph is not a valid dependency graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A node reads a name nothing defines.
    #[error("tensor `{tensor}` read by {consumer} is produced by no node and is neither a graph input nor an initializer; fix the exporter or add the missing producer")]
    MissingProducer {
        /// The tensor name.
        tensor: String,
        /// Description of the reading node.
        consumer: String,
    },
    /// Two writers of one name.
    #[error("tensor `{tensor}` is written by both {first} and {second}; ONNX requires each tensor to have one producer (SSA)")]
    DuplicateProducer {
        /// The tensor name.
        tensor: String,
        /// The first writer (a node, a graph input or an initializer).
        first: String,
        /// The second writer.
        second: String,
    },
    /// A graph output nothing defines.
    #[error("graph output `{tensor}` is produced by no node and is not a graph input or initializer")]
    MissingOutput {
        /// The tensor name.
        tensor: String,
    },
}

/// Ops whose single output may be written over an input of the same size
/// that dies at them (element-wise and reshape-like ops), for the in-place
/// memory option. Mirrors what onnxruntime's allocation planner and TFLite
/// reuse; conservative: anything not listed never runs in place.
const INPLACE_OPS: &[&str] = &[
    "Abs", "Add", "BatchNormalization", "Cast", "Ceil", "Clip", "Div", "Dropout", "Elu", "Erf", "Exp",
    "Flatten", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log", "Mish", "Mul",
    "Neg", "Not", "Pow", "PRelu", "Reciprocal", "Relu", "Reshape", "Round", "Selu", "Sigmoid", "Sign",
    "Softplus", "Softsign", "Sqrt", "Squeeze", "Sub", "Tanh", "Unsqueeze", "Where",
];

/// Whether a node is an ONNX `Constant` (its output is a weight).
pub fn is_constant(node: &pb::NodeProto) -> bool {
    node.op_type() == "Constant" && matches!(node.domain(), "" | "ai.onnx")
}

/// `node #12 (Conv "stem.conv")`, the way every message names a node.
pub fn describe_node(index: usize, node: &pb::NodeProto) -> String {
    if node.name().is_empty() {
        format!("node #{index} ({})", node.op_type())
    } else {
        format!("node #{index} ({} \"{}\")", node.op_type(), node.name())
    }
}

fn subgraphs(node: &pb::NodeProto) -> impl Iterator<Item = &pb::GraphProto> {
    node.attribute.iter().flat_map(|a| a.g.iter().chain(a.graphs.iter()))
}

/// Names a subgraph reads that it does not define itself (at any depth), in
/// first-read order.
pub fn outer_reads(graph: &pb::GraphProto) -> Vec<String> {
    let mut defined: HashSet<&str> = graph.input.iter().map(|v| v.name()).collect();
    defined.extend(graph.initializer.iter().map(|t| t.name()));
    defined.extend(graph.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.name()));
    let mut reads: IndexMap<String, ()> = IndexMap::new();
    for node in &graph.node {
        for name in node.input.iter().filter(|n| !n.is_empty()) {
            if !defined.contains(name.as_str()) {
                reads.insert(name.clone(), ());
            }
        }
        for sub in subgraphs(node) {
            for name in outer_reads(sub) {
                if !defined.contains(name.as_str()) {
                    reads.insert(name, ());
                }
            }
        }
        defined.extend(node.output.iter().filter(|n| !n.is_empty()).map(String::as_str));
    }
    for out in &graph.output {
        if !defined.contains(out.name()) {
            reads.insert(out.name().to_string(), ());
        }
    }
    reads.into_keys().collect()
}

/// The names a top-level node reads: its inputs, then its subgraphs' outer reads.
pub fn node_reads(node: &pb::NodeProto) -> Vec<String> {
    let mut names: IndexMap<String, ()> =
        node.input.iter().filter(|n| !n.is_empty()).map(|n| (n.clone(), ())).collect();
    for sub in subgraphs(node) {
        for name in outer_reads(sub) {
            names.insert(name, ());
        }
    }
    names.into_keys().collect()
}

/// Tensors by name while the graph is built, with who defined each.
struct Table<'a> {
    ids: IndexMap<String, TensorId>,
    tensors: Vec<Tensor>,
    origin: Vec<String>,
    bytes_of: &'a dyn Fn(&str) -> u64,
}

impl Table<'_> {
    fn add(&mut self, name: &str, kind: TensorKind, producer: Option<OpId>, what: String) -> Result<(), BuildError> {
        if let Some(&id) = self.ids.get(name) {
            return Err(BuildError::DuplicateProducer {
                tensor: name.to_string(),
                first: self.origin[id.index()].clone(),
                second: what,
            });
        }
        let id = TensorId(self.tensors.len() as u32);
        self.ids.insert(name.to_string(), id);
        let bytes = if kind == TensorKind::Weight { 0 } else { (self.bytes_of)(name) };
        self.tensors.push(Tensor { name: name.to_string(), bytes, kind, producer, consumers: Vec::new(), graph_output: false });
        self.origin.push(what);
        Ok(())
    }
}

/// Builds the dependency graph of `graph`, with `bytes_of(name)` the size the
/// memory model counts for an activation or graph input (weights count 0
/// whatever `bytes_of` says).
pub fn build(graph: &pb::GraphProto, bytes_of: &dyn Fn(&str) -> u64) -> Result<Graph, BuildError> {
    let mut table = Table { ids: IndexMap::new(), tensors: Vec::new(), origin: Vec::new(), bytes_of };
    for init in &graph.initializer {
        table.add(init.name(), TensorKind::Weight, None, "an initializer".into())?;
    }
    for sparse in &graph.sparse_initializer {
        if let Some(values) = &sparse.values {
            table.add(values.name(), TensorKind::Weight, None, "a sparse initializer".into())?;
        }
    }
    for input in &graph.input {
        // Older IR versions list initializers as graph inputs too: those are weights.
        if !table.ids.contains_key(input.name()) {
            table.add(input.name(), TensorKind::GraphInput, None, "a graph input".into())?;
        }
    }
    for (i, node) in graph.node.iter().enumerate() {
        let kind = if is_constant(node) { TensorKind::Weight } else { TensorKind::Activation };
        for out in node.output.iter().filter(|n| !n.is_empty()) {
            table.add(out, kind, Some(OpId(i as u32)), describe_node(i, node))?;
        }
    }
    let Table { ids, mut tensors, .. } = table;
    let mut ops = Vec::with_capacity(graph.node.len());
    for (i, node) in graph.node.iter().enumerate() {
        let op_id = OpId(i as u32);
        let mut inputs = Vec::new();
        for name in node_reads(node) {
            let Some(&t) = ids.get(&name) else {
                return Err(BuildError::MissingProducer { tensor: name, consumer: describe_node(i, node) });
            };
            inputs.push(t);
            tensors[t.index()].consumers.push(op_id);
        }
        let outputs = node.output.iter().filter(|n| !n.is_empty()).map(|n| ids[n.as_str()]).collect::<Vec<_>>();
        let inplace_capable = matches!(node.domain(), "" | "ai.onnx") && INPLACE_OPS.contains(&node.op_type());
        ops.push(Op {
            name: node.name().to_string(),
            op_type: node.op_type().to_string(),
            inputs,
            outputs,
            inplace_capable,
        });
    }
    for out in &graph.output {
        let Some(&t) = ids.get(out.name()) else {
            return Err(BuildError::MissingOutput { tensor: out.name().to_string() });
        };
        tensors[t.index()].graph_output = true;
    }
    Ok(Graph { ops, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
        pb::NodeProto {
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn value(name: &str) -> pb::ValueInfoProto {
        pb::ValueInfoProto { name: Some(name.into()), ..Default::default() }
    }

    #[test]
    fn subgraph_outer_reads_are_implicit_inputs() {
        let body = pb::GraphProto {
            node: vec![node("Add", &["outer", "local"], &["s"]), node("Relu", &["s"], &["r"])],
            input: vec![value("local")],
            output: vec![value("r"), value("outer2")],
            ..Default::default()
        };
        let mut iff = node("If", &["cond"], &["y"]);
        iff.attribute.push(pb::AttributeProto { name: Some("then_branch".into()), g: Some(body), ..Default::default() });
        let g = pb::GraphProto {
            node: vec![node("Relu", &["x"], &["outer"]), node("Relu", &["x"], &["outer2"]), node("Less", &["x", "x"], &["cond"]), iff],
            input: vec![value("x")],
            output: vec![value("y")],
            ..Default::default()
        };
        let graph = build(&g, &|_| 4).unwrap();
        let reads: Vec<&str> = graph.ops[3].inputs.iter().map(|&t| graph.tensor(t).name.as_str()).collect();
        assert_eq!(reads, ["cond", "outer", "outer2"]);
        assert_eq!(graph.predecessors(OpId(3)), vec![OpId(0), OpId(1), OpId(2)]);
    }

    #[test]
    fn weights_count_zero_and_duplicates_count_once() {
        let g = pb::GraphProto {
            node: vec![node("Constant", &[], &["c"]), node("Add", &["x", "x"], &["y"]), node("Mul", &["y", "c"], &["z"])],
            input: vec![value("x")],
            output: vec![value("z")],
            ..Default::default()
        };
        let graph = build(&g, &|_| 8).unwrap();
        assert_eq!(graph.ops[1].inputs.len(), 1);
        let c = &graph.tensors[graph.ops[0].outputs[0].index()];
        assert_eq!((c.kind, c.bytes), (TensorKind::Weight, 0));
        assert!(graph.ops[1].inplace_capable);
    }

    #[test]
    fn errors_name_the_tensor_and_node() {
        let missing = pb::GraphProto { node: vec![node("Relu", &["nowhere"], &["y"])], ..Default::default() };
        let err = build(&missing, &|_| 1).unwrap_err().to_string();
        assert!(err.contains("`nowhere`") && err.contains("node #0 (Relu)"), "{err}");
        let twice = pb::GraphProto {
            node: vec![node("Relu", &["x"], &["y"]), node("Relu", &["x"], &["y"])],
            input: vec![value("x")],
            ..Default::default()
        };
        let err = build(&twice, &|_| 1).unwrap_err().to_string();
        assert!(err.contains("node #0") && err.contains("node #1") && err.contains("`y`"), "{err}");
        let no_out = pb::GraphProto { output: vec![value("ghost")], ..Default::default() };
        assert!(build(&no_out, &|_| 1).unwrap_err().to_string().contains("ghost"));
    }
}
