//! Reading and writing ONNX model files without losing a byte.
//!
//! prost decodes the model into [`pb`] types, but it drops fields it does not
//! know and would re-encode defaults differently, so the model is never
//! re-encoded. Instead [`OnnxFile::parse`] also walks the wire format and
//! records the byte span of every `NodeProto` record inside the top-level
//! `GraphProto`; [`OnnxFile::with_order`] writes the input bytes with those
//! records permuted and every other byte as it was. The output has exactly
//! the input's size, and the graph's length prefix stays valid because the
//! records only trade places.
//!
//! Control-flow bodies (the graphs in a node's attributes: If branches, Loop
//! and Scan bodies, at any depth) get the same treatment: the reader records
//! the span of every node record inside each body ([`OnnxFile::bodies`]), and
//! [`OnnxFile::with_orders`] permutes them in place too, deepest first, so a
//! body moved with its node still carries its own new order.

pub mod external;
pub mod wire;

use std::ops::Range;

/// The ONNX schema (`proto/onnx.proto` of the newest release), compiled by prost.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

/// Field number of `ModelProto.graph`.
const MODEL_GRAPH_FIELD: u32 = 7;
/// Field number of `GraphProto.node`.
const GRAPH_NODE_FIELD: u32 = 1;
/// Field number of `NodeProto.attribute`.
const NODE_ATTRIBUTE_FIELD: u32 = 5;
/// Field number of `AttributeProto.name`.
const ATTRIBUTE_NAME_FIELD: u32 = 1;
/// Field number of `AttributeProto.g` (a single graph).
const ATTRIBUTE_GRAPH_FIELD: u32 = 6;

/// One step from a graph into a body: the node at `node` (its position in
/// its graph's `node` list) and the name of its graph attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BodyStep {
    /// Position of the control-flow node in its graph's `node` list.
    pub node: usize,
    /// Name of the attribute that holds the body (`then_branch`, `body`, ...).
    pub attribute: String,
}

/// Where a body sits: the steps from the top-level graph, outermost first.
/// `[{node: 5, attribute: "then_branch"}]` is the then branch of the sixth
/// top-level node.
pub type BodyPath = Vec<BodyStep>;

/// The node records of one body graph (a graph-valued attribute `g` of a
/// node, at any depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyRecords {
    /// Where the body is.
    pub path: BodyPath,
    /// Byte span of each of the body's node records, in its file order.
    pub node_records: Vec<Range<usize>>,
}

/// Why bytes are not an ONNX model this tool can rewrite.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Zero bytes.
    #[error("the file is empty (expected an ONNX model)")]
    Empty,
    /// The bytes are not a protobuf message.
    #[error("not an ONNX model: the protobuf is malformed ({0}); the file may be truncated or not an .onnx file")]
    Wire(wire::WireError),
    /// The bytes are protobuf but not a `ModelProto`.
    #[error("not an ONNX model: {0}; the file may be truncated or not an .onnx file")]
    Decode(#[from] prost::DecodeError),
    /// A `ModelProto` without a graph.
    #[error("the model has no graph (is this an ONNX model, or a file of another kind?)")]
    NoGraph,
    /// The graph field is split over several records (protobuf merges them;
    /// no exporter writes this).
    #[error("the model's graph is split over {0} records; re-save it with onnx.save to merge them")]
    SplitGraph(usize),
    /// The wire walk and prost disagree on the node count (a bug, or a model
    /// that stores nodes in an unexpected way).
    #[error("found {records} node records but the decoded graph has {decoded} nodes")]
    NodeCountMismatch {
        /// Records found by the wire walk.
        records: usize,
        /// Nodes prost decoded.
        decoded: usize,
    },
}

/// A parsed model together with its original bytes.
#[derive(Debug, Clone)]
pub struct OnnxFile {
    /// The file's bytes, unchanged.
    pub bytes: Vec<u8>,
    /// The decoded model.
    pub model: pb::ModelProto,
    /// Byte span of each `graph.node` record (tag to end of payload), in file order.
    pub node_records: Vec<Range<usize>>,
    /// The node records of every body whose layout on the wire matches the
    /// decoded model (one `g` field per attribute, as every exporter writes),
    /// outer bodies before the bodies inside them. A body missing here keeps
    /// its order when the file is written.
    pub bodies: Vec<BodyRecords>,
}

impl OnnxFile {
    /// Decodes `bytes` and locates the node records.
    pub fn parse(bytes: Vec<u8>) -> Result<OnnxFile, ReadError> {
        use prost::Message;
        if bytes.is_empty() {
            return Err(ReadError::Empty);
        }
        let top = wire::fields(&bytes, 0..bytes.len()).map_err(ReadError::Wire)?;
        let graphs: Vec<&wire::Field> =
            top.iter().filter(|f| f.number == MODEL_GRAPH_FIELD && f.wire_type == 2).collect();
        let graph = match graphs.as_slice() {
            [] => return Err(ReadError::NoGraph),
            [g] => *g,
            more => return Err(ReadError::SplitGraph(more.len())),
        };
        let node_records: Vec<Range<usize>> = wire::fields(&bytes, graph.payload.clone())
            .map_err(ReadError::Wire)?
            .into_iter()
            .filter(|f| f.number == GRAPH_NODE_FIELD && f.wire_type == 2)
            .map(|f| f.record)
            .collect();
        let model = pb::ModelProto::decode(bytes.as_slice())?;
        let decoded = model.graph.as_ref().map_or(0, |g| g.node.len());
        if decoded != node_records.len() {
            return Err(ReadError::NodeCountMismatch { records: node_records.len(), decoded });
        }
        let mut bodies = Vec::new();
        if let Some(g) = model.graph.as_ref() {
            find_bodies(&bytes, &node_records, g, &Vec::new(), &mut bodies);
        }
        Ok(OnnxFile { bytes, model, node_records, bodies })
    }

    /// The node records of the body at `path`, if the reader found them.
    pub fn body(&self, path: &[BodyStep]) -> Option<&BodyRecords> {
        self.bodies.iter().find(|b| b.path == path)
    }

    /// The top-level graph (parse guarantees there is one).
    pub fn graph(&self) -> &pb::GraphProto {
        static EMPTY: std::sync::OnceLock<pb::GraphProto> = std::sync::OnceLock::new();
        self.model.graph.as_ref().unwrap_or_else(|| EMPTY.get_or_init(pb::GraphProto::default))
    }

    /// The file's bytes with the node records in `order`: the node at file
    /// position `order[i]` takes the place of the `i`-th node record. Every
    /// other byte is unchanged.
    ///
    /// # Panics
    /// If `order` is not a permutation of `0..node count` (a caller bug; the
    /// schedule is checked before it gets here).
    pub fn with_order(&self, order: &[usize]) -> Vec<u8> {
        self.with_orders(order, &[])
    }

    /// The file's bytes with the top-level node records in `order` (as
    /// [`with_order`](Self::with_order)) and, for each `(path, body_order)`
    /// in `bodies`, the node records of that body in `body_order`. Bodies
    /// are permuted in place before their enclosing graph moves its records,
    /// so every body keeps its new order wherever its node goes. Every byte
    /// outside node records is unchanged; the output has the input's size.
    ///
    /// # Panics
    /// If an order is not a permutation of its graph's nodes or a path names
    /// no recorded body (caller bugs: plans only name bodies the reader found).
    pub fn with_orders(&self, order: &[usize], bodies: &[(BodyPath, Vec<usize>)]) -> Vec<u8> {
        let mut out = self.bytes.clone();
        let mut nested: Vec<(&BodyRecords, &[usize])> = bodies
            .iter()
            .map(|(path, o)| (self.body(path).expect("a body the reader recorded"), o.as_slice()))
            .collect();
        nested.sort_by_key(|(b, _)| std::cmp::Reverse(b.path.len()));
        for (body, body_order) in nested {
            permute_records(&mut out, &body.node_records, body_order);
        }
        permute_records(&mut out, &self.node_records, order);
        debug_assert_eq!(out.len(), self.bytes.len());
        out
    }
}

/// Rewrites `buf` so that the `i`-th of `records` holds what record
/// `order[i]` held; the bytes between records stay where they are.
fn permute_records(buf: &mut [u8], records: &[Range<usize>], order: &[usize]) {
    assert_eq!(order.len(), records.len(), "order must list every node");
    let mut seen = vec![false; order.len()];
    for &i in order {
        assert!(!std::mem::replace(&mut seen[i], true), "node {i} listed twice");
    }
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return;
    };
    let region = first.start..last.end;
    let mut rebuilt = Vec::with_capacity(region.len());
    let mut cursor = region.start;
    for (slot, &node) in records.iter().zip(order) {
        rebuilt.extend_from_slice(&buf[cursor..slot.start]);
        rebuilt.extend_from_slice(&buf[records[node].clone()]);
        cursor = slot.end;
    }
    debug_assert_eq!(rebuilt.len(), region.len());
    buf[region].copy_from_slice(&rebuilt);
}

/// Records the node spans of every body under the graph whose node records
/// are `records` (decoded as `graph`), appending outer bodies before inner
/// ones. A body is recorded only when the wire walk agrees with the decoded
/// graph (one `g` field in its attribute, as many node records as nodes).
fn find_bodies(
    bytes: &[u8],
    records: &[Range<usize>],
    graph: &pb::GraphProto,
    prefix: &[BodyStep],
    out: &mut Vec<BodyRecords>,
) {
    for (index, (record, node)) in records.iter().zip(&graph.node).enumerate() {
        if !node.attribute.iter().any(|a| a.g.is_some()) {
            continue;
        }
        let Ok(fields) = wire::fields(bytes, record.clone()) else { continue };
        // The record's payload is the NodeProto: the first field is the tag
        // and length of the record itself.
        let Some(payload) = fields.first().filter(|f| f.wire_type == 2).map(|f| f.payload.clone()) else { continue };
        let Ok(node_fields) = wire::fields(bytes, payload) else { continue };
        for attr in node_fields.iter().filter(|f| f.number == NODE_ATTRIBUTE_FIELD && f.wire_type == 2) {
            let Ok(attr_fields) = wire::fields(bytes, attr.payload.clone()) else { continue };
            let names: Vec<&wire::Field> = attr_fields.iter().filter(|f| f.number == ATTRIBUTE_NAME_FIELD).collect();
            let graphs: Vec<&wire::Field> =
                attr_fields.iter().filter(|f| f.number == ATTRIBUTE_GRAPH_FIELD && f.wire_type == 2).collect();
            let ([name], [g]) = (names.as_slice(), graphs.as_slice()) else { continue };
            let Ok(name) = std::str::from_utf8(&bytes[name.payload.clone()]) else { continue };
            let Some(decoded) = node.attribute.iter().find(|a| a.name() == name).and_then(|a| a.g.as_ref()) else {
                continue;
            };
            let Ok(inner) = wire::fields(bytes, g.payload.clone()) else { continue };
            let body_records: Vec<Range<usize>> = inner
                .into_iter()
                .filter(|f| f.number == GRAPH_NODE_FIELD && f.wire_type == 2)
                .map(|f| f.record)
                .collect();
            if body_records.len() != decoded.node.len() {
                continue;
            }
            let mut path = prefix.to_vec();
            path.push(BodyStep { node: index, attribute: name.to_string() });
            out.push(BodyRecords { path: path.clone(), node_records: body_records.clone() });
            find_bodies(bytes, &body_records, decoded, &path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn node(name: &str, input: &str, output: &str) -> pb::NodeProto {
        pb::NodeProto {
            name: Some(name.into()),
            op_type: Some("Relu".into()),
            input: vec![input.into()],
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn model() -> pb::ModelProto {
        pb::ModelProto {
            ir_version: Some(10),
            graph: Some(pb::GraphProto {
                node: vec![node("a", "x", "y"), node("bb", "y", "z"), node("ccc", "z", "w")],
                name: Some("g".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn identity_order_gives_identical_bytes() {
        let bytes = model().encode_to_vec();
        let file = OnnxFile::parse(bytes.clone()).unwrap();
        assert_eq!(file.node_records.len(), 3);
        assert_eq!(file.with_order(&[0, 1, 2]), bytes);
    }

    #[test]
    fn permuted_order_moves_only_nodes() {
        let bytes = model().encode_to_vec();
        let file = OnnxFile::parse(bytes.clone()).unwrap();
        let out = file.with_order(&[2, 0, 1]);
        assert_eq!(out.len(), bytes.len());
        let back = pb::ModelProto::decode(out.as_slice()).unwrap();
        let names: Vec<_> = back.graph.as_ref().unwrap().node.iter().map(|n| n.name().to_string()).collect();
        assert_eq!(names, ["ccc", "a", "bb"]);
        let mut expect = model();
        expect.graph.as_mut().unwrap().node.rotate_right(1);
        assert_eq!(back, expect);
    }

    #[test]
    fn unknown_fields_survive() {
        // Append an unknown field (number 99, varint) to the model and one
        // (number 77) inside the graph, between the nodes.
        let mut m = model();
        let mut graph_bytes = Vec::new();
        let g = m.graph.take().unwrap();
        for (i, n) in g.node.iter().enumerate() {
            prost::encoding::message::encode(1, n, &mut graph_bytes);
            if i == 0 {
                prost::encoding::uint64::encode(77, &5, &mut graph_bytes);
            }
        }
        prost::encoding::string::encode(2, &"g".to_string(), &mut graph_bytes);
        let mut bytes = m.encode_to_vec();
        prost::encoding::encode_key(7, prost::encoding::WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(graph_bytes.len() as u64, &mut bytes);
        bytes.extend_from_slice(&graph_bytes);
        prost::encoding::uint64::encode(99, &1, &mut bytes);
        let file = OnnxFile::parse(bytes.clone()).unwrap();
        let out = file.with_order(&[1, 2, 0]);
        assert_eq!(out.len(), bytes.len());
        // Both unknown fields are still there, byte for byte.
        let fields = wire::fields(&out, 0..out.len()).unwrap();
        assert!(fields.iter().any(|f| f.number == 99));
        let graph = fields.iter().find(|f| f.number == 7).unwrap();
        let inner = wire::fields(&out, graph.payload.clone()).unwrap();
        let numbers: Vec<u32> = inner.iter().map(|f| f.number).collect();
        assert_eq!(numbers, [1, 77, 1, 1, 2]);
    }

    fn body(nodes: Vec<pb::NodeProto>) -> pb::GraphProto {
        pb::GraphProto { node: nodes, name: Some("b".into()), ..Default::default() }
    }

    fn with_body(name: &str, attr: &str, g: pb::GraphProto) -> pb::NodeProto {
        let mut n = node(name, "c", &format!("{name}_out"));
        n.op_type = Some("If".into());
        n.attribute.push(pb::AttributeProto {
            name: Some(attr.into()),
            r#type: Some(5),
            g: Some(g),
            ..Default::default()
        });
        n
    }

    /// A model whose second node holds a body of three nodes, one of which
    /// holds a body of two: every level can be permuted.
    fn nested_model() -> pb::ModelProto {
        let inner = body(vec![node("i0", "p", "q"), node("i11", "q", "r")]);
        let mut middle_node = with_body("m1", "then_branch", inner);
        middle_node.input = vec!["z".into()];
        let middle = body(vec![node("m0", "y", "z"), middle_node, node("m222", "z", "w")]);
        let mut m = model();
        m.graph.as_mut().unwrap().node.insert(1, with_body("outer", "else_branch", middle));
        m
    }

    fn names(g: &pb::GraphProto) -> Vec<String> {
        g.node.iter().map(|n| n.name().to_string()).collect()
    }

    #[test]
    fn bodies_are_found_outer_first() {
        let file = OnnxFile::parse(nested_model().encode_to_vec()).unwrap();
        let paths: Vec<Vec<(usize, &str)>> =
            file.bodies.iter().map(|b| b.path.iter().map(|s| (s.node, s.attribute.as_str())).collect()).collect();
        assert_eq!(paths, vec![vec![(1, "else_branch")], vec![(1, "else_branch"), (1, "then_branch")]]);
        assert_eq!(file.bodies[0].node_records.len(), 3);
        assert_eq!(file.bodies[1].node_records.len(), 2);
    }

    #[test]
    fn nested_orders_permute_every_level_and_nothing_else() {
        let m = nested_model();
        let bytes = m.encode_to_vec();
        let file = OnnxFile::parse(bytes.clone()).unwrap();
        let outer = vec![BodyStep { node: 1, attribute: "else_branch".into() }];
        let mut inner = outer.clone();
        inner.push(BodyStep { node: 1, attribute: "then_branch".into() });
        // Top level moved too, so the body travels with its node.
        let out = file.with_orders(&[1, 0, 2, 3], &[(outer, vec![2, 0, 1]), (inner, vec![1, 0])]);
        assert_eq!(out.len(), bytes.len());
        let back = pb::ModelProto::decode(out.as_slice()).unwrap();
        let g = back.graph.as_ref().unwrap();
        assert_eq!(names(g), ["outer", "a", "bb", "ccc"]);
        let middle = g.node[0].attribute[0].g.as_ref().unwrap();
        assert_eq!(names(middle), ["m222", "m0", "m1"]);
        let inner_g = middle.node[2].attribute[0].g.as_ref().unwrap();
        assert_eq!(names(inner_g), ["i11", "i0"]);
        // Undo every permutation by hand: the model is the input's.
        let mut expect = m.clone();
        let eg = expect.graph.as_mut().unwrap();
        eg.node.swap(0, 1);
        let em = eg.node[0].attribute[0].g.as_mut().unwrap();
        em.node.rotate_right(1);
        em.node[2].attribute[0].g.as_mut().unwrap().node.swap(0, 1);
        assert_eq!(back, expect);
        // No permutation at all gives the input's bytes.
        assert_eq!(file.with_orders(&[0, 1, 2, 3], &[]), bytes);
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(matches!(OnnxFile::parse(vec![]), Err(ReadError::Empty)));
        let bytes = model().encode_to_vec();
        for cut in [1, bytes.len() / 2, bytes.len() - 1] {
            assert!(OnnxFile::parse(bytes[..cut].to_vec()).is_err(), "cut {cut}");
        }
        let no_graph = pb::ModelProto { ir_version: Some(9), ..Default::default() }.encode_to_vec();
        assert!(matches!(OnnxFile::parse(no_graph), Err(ReadError::NoGraph)));
    }
}
