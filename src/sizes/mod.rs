//! Tensor byte sizes: how many bytes every tensor of the top-level graph takes.
//!
//! The scheduler needs a size for every activation, and ONNX files rarely
//! carry them all: exporters write shapes for the graph's inputs and outputs,
//! sometimes for intermediate tensors (`value_info`), with symbolic
//! dimensions (`batch`, `128*batch`). So sizes are *inferred*, with tract's
//! shape inference, and the file's own claims are only a fallback:
//!
//! 1. **Inputs.** Each graph input gets a concrete type: its declared type,
//!    with `dim_param`s bound by `--dim` (or assumed 1, which is reported:
//!    see [`Sizes::assumptions`]) and its shape replaced by `--input-shape`
//!    when given. Derived dimensions such as `128*batch` or `(batch+1)//2`
//!    are evaluated (module `expr`).
//! 2. **Weights** never set the tool's time and are never read: float
//!    initializers over 1 KiB, integer ones over 64 KiB and any stored as
//!    external data reach tract as typed graph inputs (dtype and dims, no
//!    bytes); small ones stay constants because shape computations read
//!    their values (module `prepare`).
//!    Initializers and `Constant` outputs are sized from their own dims
//!    ([`SizeSource::Declared`]); they are weights, reported apart.
//! 3. **tract** (`tract_onnx::onnx()`, file value_info ignored) parses the
//!    prepared model and analyses it; each ONNX name's fact is read through
//!    `outlets_by_name`. Ops tract lacks (custom domains, `Loop`, unknown
//!    types) and nodes whose tract builder fails are left out of tract's
//!    model (their outputs become unknown sources), so one unsupported node
//!    never stops the rest. tract's `TDim` (the type of `Shape` outputs)
//!    counts as INT64.
//! 4. **value_info fallback.** Where tract has no concrete fact, the file's
//!    `value_info` / graph `output` type is used ([`SizeSource::ValueInfo`]),
//!    with its `dim_param`s evaluated as for inputs, and it is also handed to
//!    tract, which then infers what depends on it (so one unsupported op does
//!    not need value_info for everything downstream).
//! 5. A tensor with neither is a [`SizeError::Unsized`] naming the tensor, the
//!    node that writes it, and the flags that fix it.
//!
//! Sizes are elements times element size; sub-byte types are packed
//! ([`elem_bytes`]). Strings have no fixed size and count 0 bytes (said in
//! the assumptions). Alignment and allocator overheads are not counted.

mod dims;
mod dtype;
pub mod expr;
mod fold;
pub mod isolate;
mod prepare;
mod quiet;
mod tract;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

pub use dtype::{elem_bits, elem_bytes, elem_name};

use crate::onnx::pb;
use dims::{count, Symbols};

/// What the user says about shapes (`--dim`, `--input-shape`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizeOptions {
    /// `--dim NAME=VALUE`: binds a symbolic dimension such as `batch`.
    pub dims: Vec<(String, i64)>,
    /// `--input-shape NAME=1x3x224x224`: replaces the whole shape of a graph
    /// input.
    pub input_shapes: Vec<(String, Vec<u64>)>,
}

/// Where a tensor's size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSource {
    /// tract's shape inference.
    Tract,
    /// The file's `value_info` (or graph output type), because tract could not
    /// infer the tensor.
    ValueInfo,
    /// The tensor's own declaration: a graph input (with `--dim` and
    /// `--input-shape` applied), an initializer, or a `Constant` value.
    Declared,
    /// The tool's own shape arithmetic on constant inputs, for a node that
    /// tract would fold into a huge tensor or whose shape values are beyond
    /// what tract handles (module `fold`).
    Arithmetic,
}

/// The size of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSize {
    /// ONNX `TensorProto.DataType`.
    pub elem_type: i32,
    /// Concrete shape.
    pub shape: Vec<u64>,
    /// Bytes, from [`elem_bytes`].
    pub bytes: u64,
    /// Where the shape and type came from.
    pub source: SizeSource,
}

/// Sizes of the tensors of the top-level graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Every graph input that is not an initializer, every named output of
    /// every top-level node, and the initializers and `Constant` outputs
    /// whose size is known.
    pub tensors: HashMap<String, TensorSize>,
    /// What was assumed rather than told: unbound symbols taken as 1, input
    /// dimensions without a size, unused `--dim`s, tensors sized from the
    /// file's value_info. For the user to read.
    pub assumptions: Vec<String>,
}

/// Why sizes could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    /// The model has no graph.
    #[error("the model has no graph")]
    NoGraph,
    /// `--input-shape` names no graph input.
    #[error(
        "--input-shape {name}=...: the model has no input `{name}`; its inputs are: {available}"
    )]
    UnknownInput {
        /// The name given.
        name: String,
        /// The graph's non-initializer inputs, comma-separated.
        available: String,
    },
    /// `--dim` with a negative value.
    #[error("--dim {name}={value}: a dimension cannot be negative")]
    NegativeDim {
        /// The symbol.
        name: String,
        /// The value given.
        value: i64,
    },
    /// A graph input whose size cannot be determined.
    #[error("cannot determine the size of graph input `{name}`: {reason}; set its shape with --input-shape {name}=D0xD1x... or bind its symbols with --dim NAME=N")]
    BadInput {
        /// The input.
        name: String,
        /// Why.
        reason: String,
    },
    /// A node output whose size neither tract nor the file gives.
    #[error("cannot determine the size of tensor `{tensor}` written by node #{node_index} ({op_type} \"{node_name}\"): {reason}; add its shape to the model's value_info (onnx.shape_inference) or set input shapes with --input-shape/--dim{}", more_text(*.more))]
    Unsized {
        /// The tensor.
        tensor: String,
        /// Index of the node that writes it in `graph.node`.
        node_index: usize,
        /// That node's name.
        node_name: String,
        /// That node's op type (with its domain if not the standard one).
        op_type: String,
        /// What tract and the file lack.
        reason: String,
        /// How many other tensors have no size either.
        more: usize,
    },
    /// A node output too large to have a size in bytes.
    #[error("tensor `{tensor}` written by node #{node_index} ({op_type} \"{node_name}\") has shape {shape:?}: its size overflows 64 bits, so no runtime can allocate it; check the node's shape inputs")]
    Overflow {
        /// The tensor.
        tensor: String,
        /// Index of the node that writes it in `graph.node`.
        node_index: usize,
        /// That node's name.
        node_name: String,
        /// That node's op type.
        op_type: String,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// Size inference could not run (its worker process failed to start or
    /// answered nonsense); the text says what happened and what to do.
    #[error("{0}")]
    Isolation(String),
}

/// How [`infer_with`] uses tract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TractUse {
    /// On every node it can load, except these (node index, why).
    Hiding(Vec<(usize, String)>),
    /// Not at all, for this reason: sizes come from the file and the tool's
    /// own arithmetic only.
    Off(String),
}

/// Rounds of value_info injection from the front of the unknown region before
/// the rest is filled at once (each round re-runs tract's analysis).
const MAX_INJECTION_ROUNDS: usize = 8;

/// Names of the graph's initializers, dense and sparse: weights, never
/// graph inputs even when the file also lists them as inputs.
pub(crate) fn initializer_names(graph: &pb::GraphProto) -> HashSet<&str> {
    graph
        .initializer
        .iter()
        .map(|t| t.name())
        .chain(graph.sparse_initializer.iter().filter_map(|s| s.values.as_ref()).map(|t| t.name()))
        .collect()
}

fn more_text(more: usize) -> String {
    match more {
        0 => String::new(),
        1 => " (1 more tensor has no size)".into(),
        n => format!(" ({n} more tensors have no size)"),
    }
}

/// Infers the size of every tensor of `model`'s top-level graph (see the
/// module doc for how). Never reads external data.
pub fn infer(model: &pb::ModelProto, opts: &SizeOptions) -> Result<Sizes, SizeError> {
    infer_with(model, opts, &TractUse::Hiding(Vec::new()))
}

/// [`infer`], with tract used as `tract_use` says.
pub(crate) fn infer_with(
    model: &pb::ModelProto,
    opts: &SizeOptions,
    tract_use: &TractUse,
) -> Result<Sizes, SizeError> {
    let graph = model.graph.as_ref().ok_or(SizeError::NoGraph)?;
    for (name, value) in &opts.dims {
        if *value < 0 {
            return Err(SizeError::NegativeDim {
                name: name.clone(),
                value: *value,
            });
        }
    }
    let init_names = initializer_names(graph);
    let real_inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|vi| !init_names.contains(vi.name()))
        .collect();
    for (name, _) in &opts.input_shapes {
        if !real_inputs.iter().any(|vi| vi.name() == name) {
            let available: Vec<String> = real_inputs
                .iter()
                .map(|vi| format!("`{}`", vi.name()))
                .collect();
            let available = if available.is_empty() {
                "(none)".to_string()
            } else {
                available.join(", ")
            };
            return Err(SizeError::UnknownInput {
                name: name.clone(),
                available,
            });
        }
    }

    let mut syms = Symbols::new(&opts.dims, graph);
    let mut tensors: HashMap<String, TensorSize> = HashMap::new();

    // 1. Graph inputs.
    let mut inputs: HashMap<String, (i32, Vec<u64>)> = HashMap::new();
    for vi in &real_inputs {
        let name = vi.name();
        let over = opts
            .input_shapes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_slice());
        let (elem, shape) = syms
            .graph_input(vi, over)
            .map_err(|reason| SizeError::BadInput {
                name: name.into(),
                reason,
            })?;
        let bytes = sized(elem, &shape).map_err(|reason| SizeError::BadInput {
            name: name.into(),
            reason,
        })?;
        tensors.insert(
            name.to_string(),
            TensorSize {
                elem_type: elem,
                shape: shape.clone(),
                bytes,
                source: SizeSource::Declared,
            },
        );
        inputs.insert(name.to_string(), (elem, shape));
    }

    // 2. Weights, from their own declarations.
    let mut declare = |name: &str, elem: i32, dims: &[i64]| {
        if let Some(shape) = prepare::tensor_dims(dims) {
            if let Ok(bytes) = sized(elem, &shape) {
                tensors.insert(
                    name.to_string(),
                    TensorSize {
                        elem_type: elem,
                        shape,
                        bytes,
                        source: SizeSource::Declared,
                    },
                );
            }
        }
    };
    for t in &graph.initializer {
        declare(t.name(), t.data_type(), &t.dims);
    }
    for s in &graph.sparse_initializer {
        if let Some(v) = s.values.as_ref() {
            declare(v.name(), v.data_type(), &s.dims);
        }
    }
    let mut constant_outputs: HashSet<&str> = HashSet::new();
    for node in graph.node.iter().filter(|n| prepare::is_constant(n)) {
        constant_outputs.extend(
            node.output
                .iter()
                .filter(|o| !o.is_empty())
                .map(String::as_str),
        );
        if let (Some(out), Some((elem, dims, _))) =
            (node.output.first(), prepare::constant_value(node))
        {
            if !out.is_empty() {
                declare(out, elem, &dims);
            }
        }
    }

    // 3. tract.
    let loaded = match tract_use {
        TractUse::Hiding(preset) => tract::load(model, graph, &inputs, preset),
        TractUse::Off(why) => {
            syms.note(format!("tract was not used ({why}); sizes come from the file's value_info"));
            let sized = fold::guard(graph, &inputs)
                .into_iter()
                .filter_map(|(ix, d)| match d {
                    fold::Decision::Sized(outs) => Some(outs.into_iter().map(move |(o, e, s)| (ix, o, e, s))),
                    fold::Decision::Hide(_) => None,
                })
                .flatten()
                .collect();
            tract::Loaded { model: None, hidden: Vec::new(), failure: Some(why.clone()), sized }
        }
    };
    for (ix, out, elem, shape) in &loaded.sized {
        let Ok(bytes) = sized(*elem, shape) else {
            let node = &graph.node[*ix];
            return Err(SizeError::Overflow {
                tensor: out.clone(),
                node_index: *ix,
                node_name: node.name().to_string(),
                op_type: op_label(node),
                shape: shape.clone(),
            });
        };
        let size = TensorSize { elem_type: *elem, shape: shape.clone(), bytes, source: SizeSource::Arithmetic };
        tensors.insert(out.clone(), size);
    }
    let hidden: HashMap<usize, String> = loaded.hidden.into_iter().collect();
    let mut analysed = loaded.model;
    if let (Some(failure), TractUse::Hiding(_)) = (&loaded.failure, tract_use) {
        syms.note(format!(
            "tract could not load the model ({failure}); sizes come from the file's value_info"
        ));
    }
    let analysis_error = analysed.as_mut().and_then(|a| a.analyse());

    // 4. value_info, first tensor-typed entry per name.
    let mut vinfo: HashMap<&str, &pb::ValueInfoProto> = HashMap::new();
    for vi in graph
        .input
        .iter()
        .chain(&graph.value_info)
        .chain(&graph.output)
    {
        let is_tensor = matches!(
            vi.r#type.as_ref().and_then(|t| t.value.as_ref()),
            Some(pb::type_proto::Value::TensorType(_))
        );
        let slot = vinfo.entry(vi.name()).or_insert(vi);
        if is_tensor
            && !matches!(
                slot.r#type.as_ref().and_then(|t| t.value.as_ref()),
                Some(pb::type_proto::Value::TensorType(_))
            )
        {
            *slot = vi;
        }
    }

    // Node outputs tract leaves unknown get their value_info, and tract runs
    // again to propagate it. Rounds go from the front: only outputs of nodes
    // tract hides or could not infer although it knows all their inputs, so
    // that what follows them is inferred by tract, not copied from the file.
    // When no such node is left, the remaining unknowns get value_info too.
    let mut from_value_info: HashSet<&str> = HashSet::new();
    if let Some(a) = analysed.as_mut() {
        let mut round = 0;
        loop {
            let last = round >= MAX_INJECTION_ROUNDS;
            // Decide on this round's tensors before injecting any of them.
            let mut todo: Vec<&str> = Vec::new();
            for (ix, node) in graph.node.iter().enumerate() {
                let unknown = |o: &str| {
                    !o.is_empty()
                        && !tensors.contains_key(o)
                        && !from_value_info.contains(o)
                        && concrete(a.fact(o).as_ref()).is_none()
                };
                if !node.output.iter().any(|o| unknown(o)) {
                    continue;
                }
                let at_front = hidden.contains_key(&ix)
                    || node.input.iter().filter(|i| !i.is_empty()).all(|i| {
                        tensors.contains_key(i.as_str())
                            || a.fact(i).is_some_and(|f| f.shape.is_some())
                    });
                if last || at_front {
                    todo.extend(
                        node.output
                            .iter()
                            .map(String::as_str)
                            .filter(|o| unknown(o)),
                    );
                }
            }
            let mut injected = 0;
            for out in todo {
                if let Some(Ok((elem, shape))) = vinfo.get(out).map(|vi| syms.value_info(vi)) {
                    if a.inject(out, elem, &shape) {
                        from_value_info.insert(out);
                        injected += 1;
                    }
                }
            }
            if injected > 0 {
                a.analyse();
            }
            if last {
                break;
            }
            round = if injected > 0 {
                round + 1
            } else {
                MAX_INJECTION_ROUNDS
            };
        }
    }

    // 5. Every node output, from tract, else value_info, else an error.
    let mut missing: Vec<(String, usize, String)> = Vec::new();
    let mut fallback: Vec<(&str, usize)> = Vec::new();
    for (ix, node) in graph.node.iter().enumerate() {
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            if tensors.contains_key(out.as_str()) {
                continue;
            }
            let fact = analysed.as_ref().and_then(|a| a.fact(out));
            if !from_value_info.contains(out.as_str()) {
                if let Some((elem, shape)) = concrete(fact.as_ref()) {
                    if let Ok(bytes) = sized(elem, &shape) {
                        tensors.insert(
                            out.clone(),
                            TensorSize {
                                elem_type: elem,
                                shape,
                                bytes,
                                source: SizeSource::Tract,
                            },
                        );
                        continue;
                    }
                }
            }
            let vi = vinfo.get(out.as_str()).map(|vi| syms.value_info(vi));
            let from_file = match vi {
                Some(Ok((elem, shape))) => sized(elem, &shape).map(|b| (elem, shape, b)),
                Some(Err(e)) => Err(format!("its value_info is not usable: {e}")),
                None => Err("the file has no value_info for it".to_string()),
            };
            match from_file {
                Ok((elem_type, shape, bytes)) => {
                    fallback.push((out.as_str(), ix));
                    tensors.insert(
                        out.clone(),
                        TensorSize {
                            elem_type,
                            shape,
                            bytes,
                            source: SizeSource::ValueInfo,
                        },
                    );
                }
                Err(file_reason) => {
                    if constant_outputs.contains(out.as_str()) {
                        continue; // a weight: its size is optional
                    }
                    let tract_reason = if let Some(why) = hidden.get(&ix) {
                        format!("tract cannot infer it ({why})")
                    } else if let Some((elem, shape)) = concrete(fact.as_ref()) {
                        match sized(elem, &shape) {
                            Err(e) => {
                                format!("tract infers {} {shape:?}, but {e}", elem_name(elem))
                            }
                            Ok(_) => "tract cannot infer it".to_string(),
                        }
                    } else if let Some(failure) = &loaded.failure {
                        format!("tract could not load the model ({failure})")
                    } else if let Some(e) = &analysis_error {
                        format!("tract cannot infer it (tract's first error: {e})")
                    } else {
                        "tract cannot infer it".to_string()
                    };
                    missing.push((out.clone(), ix, format!("{tract_reason} and {file_reason}")));
                }
            }
        }
    }
    if let Some((tensor, node_index, reason)) = missing.first().cloned() {
        let node = &graph.node[node_index];
        return Err(SizeError::Unsized {
            tensor,
            node_index,
            node_name: node.name().to_string(),
            op_type: op_label(node),
            reason,
            more: missing.len() - 1,
        });
    }

    let mut assumptions = syms.assumptions();
    let mut strings: Vec<&str> = tensors
        .iter()
        .filter(|(n, t)| {
            t.elem_type == dtype::code::STRING
                && !init_names.contains(n.as_str())
                && !constant_outputs.contains(n.as_str())
        })
        .map(|(n, _)| n.as_str())
        .collect();
    strings.sort_unstable();
    if let Some(first) = strings.first() {
        assumptions.push(format!(
            "{} string tensor{} counted as 0 bytes, strings having no fixed size (first: `{first}`)",
            strings.len(),
            if strings.len() == 1 { "" } else { "s" },
        ));
    }
    if let Some(&(name, ix)) = fallback.first() {
        let n = fallback.len();
        let node = &graph.node[ix];
        let why = match (hidden.get(&ix), &analysis_error) {
            (Some(why), _) => format!(": {why}"),
            (None, Some(e)) => format!("; tract's first error: {e}"),
            (None, None) => String::new(),
        };
        assumptions.push(format!(
            "{n} tensor{} sized from the file's value_info because tract could not infer {} (first: `{name}`, written by node #{ix} ({} \"{}\"){why})",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it" } else { "them" },
            op_label(node),
            node.name(),
        ));
    }
    Ok(Sizes {
        tensors,
        assumptions,
    })
}

/// A node's op type for messages, with its domain if it is not a standard one.
fn op_label(node: &pb::NodeProto) -> String {
    if prepare::standard_domain(node) {
        node.op_type().to_string()
    } else {
        format!("{}:{}", node.domain(), node.op_type())
    }
}

/// The concrete type in a tract fact, if both parts are known.
fn concrete(fact: Option<&tract::Fact>) -> Option<(i32, Vec<u64>)> {
    let f = fact?;
    Some((f.elem_type?, f.shape.clone()?))
}

/// Bytes of a tensor of this type, or why it has no size. Strings have no
/// fixed size: they count 0 bytes, and [`infer`] says so in its assumptions.
fn sized(elem: i32, shape: &[u64]) -> Result<u64, String> {
    if elem == dtype::code::STRING {
        return count(shape)
            .map(|_| 0)
            .ok_or_else(|| format!("its size {shape:?} overflows 64 bits"));
    }
    if elem_bits(elem).is_none() {
        return Err(format!(
            "its element type {} has no fixed size",
            elem_name(elem)
        ));
    }
    count(shape)
        .and_then(|n| elem_bytes(elem, n))
        .ok_or_else(|| format!("its size {shape:?} overflows 64 bits"))
}
