//! The dependency graph the scheduler works on: ops, tensors and their sizes.
//!
//! It knows nothing of ONNX. [`build()`] makes one from an ONNX graph; tests and
//! benchmarks make them directly with [`from_lists`]. Ids are
//! typed ([`OpId`], [`TensorId`]) and index plain vectors, so algorithms are
//! functions over plain data.
//!
//! An op's index is its position in the input file: `OpId(0)` is the first
//! node of `graph.node`.

pub mod bounds;
pub mod build;
pub mod cut;
pub mod memory;
pub mod topo;

pub use build::{build, BuildError};

/// Index of an op (an ONNX node) in [`Graph::ops`], equal to its file position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u32);

/// Index of a tensor in [`Graph::tensors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorId(pub u32);

impl OpId {
    /// The id as a vector index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl TensorId {
    /// The id as a vector index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What a tensor is, which decides how the memory model treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// Produced by an op; live from its producer to its last consumer.
    Activation,
    /// A graph input: live from the start until its last consumer.
    GraphInput,
    /// An initializer or the output of a `Constant` op: never counted.
    Weight,
}

/// A value that ops read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    /// The ONNX name.
    pub name: String,
    /// Bytes the memory model counts for it (0 for weights, whatever their size).
    pub bytes: u64,
    /// Activation, graph input or weight.
    pub kind: TensorKind,
    /// The op that writes it (None for graph inputs and initializers).
    pub producer: Option<OpId>,
    /// The distinct ops that read it, in file order.
    pub consumers: Vec<OpId>,
    /// Whether it is a graph output (then it stays live to the end).
    pub graph_output: bool,
    /// Whether it stands for the working memory of its producer's
    /// control-flow bodies while that node runs (see [`crate::bodies`]): no
    /// ONNX tensor has its name, nothing reads it, it lives for one step.
    pub body: bool,
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The ONNX node name (may be empty).
    pub name: String,
    /// The ONNX op type, e.g. `Conv`.
    pub op_type: String,
    /// Distinct tensors it reads, including outer-scope tensors read inside
    /// its subgraphs (If, Loop, Scan bodies), in first-read order.
    pub inputs: Vec<TensorId>,
    /// Distinct tensors it writes, in order (empty optional outputs dropped).
    pub outputs: Vec<TensorId>,
    /// Whether the op may write its output over a dying input of the same
    /// size (element-wise and reshape-like ops with one output); used only
    /// when the in-place memory option is on.
    pub inplace_capable: bool,
}

/// A directed acyclic graph of ops and tensors (acyclic once checked by
/// [`topo::stable_order`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    /// Ops in file order.
    pub ops: Vec<Op>,
    /// Every tensor the ops read or write, and the graph inputs.
    pub tensors: Vec<Tensor>,
}

impl Graph {
    /// The op with this id.
    pub fn op(&self, id: OpId) -> &Op {
        &self.ops[id.index()]
    }

    /// The tensor with this id.
    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id.index()]
    }

    /// All op ids in file order.
    pub fn op_ids(&self) -> impl ExactSizeIterator<Item = OpId> + '_ {
        (0..self.ops.len() as u32).map(OpId)
    }

    /// The distinct ops that produce `op`'s inputs (its direct predecessors).
    pub fn predecessors(&self, op: OpId) -> Vec<OpId> {
        let mut preds: Vec<OpId> = self.op(op).inputs.iter().filter_map(|&t| self.tensor(t).producer).collect();
        preds.sort_unstable();
        preds.dedup();
        preds
    }

    /// The distinct ops that read `op`'s outputs (its direct successors).
    pub fn successors(&self, op: OpId) -> Vec<OpId> {
        let mut succs: Vec<OpId> =
            self.op(op).outputs.iter().flat_map(|&t| self.tensor(t).consumers.iter().copied()).collect();
        succs.sort_unstable();
        succs.dedup();
        succs
    }

    /// A short human description of an op, for messages:
    /// `node #12 (Conv "stem.conv")`.
    pub fn describe_op(&self, id: OpId) -> String {
        let op = self.op(id);
        if op.name.is_empty() {
            format!("node #{} ({})", id.0, op.op_type)
        } else {
            format!("node #{} ({} \"{}\")", id.0, op.op_type, op.name)
        }
    }

    /// Total bytes of the graph inputs (the memory live before any op runs).
    pub fn input_bytes(&self) -> u64 {
        self.tensors.iter().filter(|t| t.kind == TensorKind::GraphInput).map(|t| t.bytes).sum()
    }
}

/// Builds a [`Graph`] from a compact description, for tests, benchmarks and
/// examples: `ops[i]` lists the tensor indices op `i` reads and writes, and
/// `bytes[t]` is the size of tensor `t`. A tensor that no op writes is a graph
/// input; `outputs` lists the graph outputs.
///
/// ```
/// use onnx_memsched::graph::{from_lists, OpId};
/// // t0 -> op0 -> t1 -> op1 -> t2
/// let g = from_lists(&[(vec![0], vec![1]), (vec![1], vec![2])], &[4, 8, 2], &[2]);
/// assert_eq!(g.successors(OpId(0)), vec![OpId(1)]);
/// ```
///
/// # Panics
/// If a tensor index is out of range or written twice (a test bug).
pub fn from_lists(ops: &[(Vec<usize>, Vec<usize>)], bytes: &[u64], outputs: &[usize]) -> Graph {
    let mut tensors: Vec<Tensor> = bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| Tensor {
            name: format!("t{i}"),
            bytes: b,
            kind: TensorKind::GraphInput,
            producer: None,
            consumers: Vec::new(),
            graph_output: outputs.contains(&i),
            body: false,
        })
        .collect();
    let mut graph_ops = Vec::new();
    for (i, (ins, outs)) in ops.iter().enumerate() {
        let op = OpId(i as u32);
        let mut inputs = Vec::new();
        for &t in ins {
            if !inputs.contains(&TensorId(t as u32)) {
                inputs.push(TensorId(t as u32));
                tensors[t].consumers.push(op);
            }
        }
        let mut op_outputs = Vec::new();
        for &t in outs {
            assert!(tensors[t].producer.is_none(), "tensor t{t} written twice");
            tensors[t].producer = Some(op);
            tensors[t].kind = TensorKind::Activation;
            op_outputs.push(TensorId(t as u32));
        }
        graph_ops.push(Op {
            name: format!("op{i}"),
            op_type: "Op".into(),
            inputs,
            outputs: op_outputs,
            inplace_capable: false,
        });
    }
    Graph { ops: graph_ops, tensors }
}
