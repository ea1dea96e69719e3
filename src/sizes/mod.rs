//! Tensor byte sizes: how many bytes every tensor of the top-level graph takes.
//!
//! The scheduler needs a size for every activation, and ONNX files rarely
//! carry them all: exporters write shapes for the graph's inputs and outputs,
//! sometimes for intermediate tensors (`value_info`), with symbolic
//! dimensions (`batch`, `128*batch`). So sizes are *inferred*: forward from
//! each tensor's producer where possible, the file's own claims only as a
//! fallback, and a guess only when the user asks for one (`--unknown-dim`):
//!
//! 1. **Inputs.** Each graph input gets a concrete type: its declared type,
//!    with `dim_param`s bound by `--dim` (or assumed 1, which is reported:
//!    see [`Sizes::assumptions`]) and its shape replaced by `--input-shape`
//!    when given. `--input-shape` also binds every symbol of the input's
//!    declared dims (`[batch, seq_len]` with `1x16` binds `seq_len` = 16 for
//!    the whole graph); a symbol given two values is a
//!    [`SizeError::ConflictingDim`]. Derived dimensions such as `128*batch`
//!    or `(batch+1)//2` are evaluated (module `expr`). A dim with neither
//!    value nor name counts like an unbound symbol (1, and said), on inputs
//!    and in value_info alike. A sequence or optional input is sized only with
//!    `--unknown-dim` (its length is never declared).
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
//!    types), nodes whose tract builder fails and `If` (tract unifies its
//!    branches into one fact) are left out of tract's model (their outputs
//!    become unknown sources), so one unsupported node never stops the rest.
//!    tract's `TDim` (the type of `Shape` outputs) counts as INT64.
//! 4. **Front by front.** Each output tract leaves unknown, and each output
//!    of a node left out of tract (tract's fact there could only come from
//!    its consumers), is decided once all the node's inputs are known: by
//!    the tool's own rule for the op (module `rules`, [`SizeSource::Rule`]),
//!    else by the file's `value_info` / graph `output` type
//!    ([`SizeSource::ValueInfo`]), else, with `--unknown-dim N`, by what is
//!    known with each unknown dim taken as `N` ([`SizeSource::UnknownDim`]).
//!    Each decision is handed to tract, which then infers what follows, so
//!    one op tract fails on does not leave the rest of the graph unsized.
//!    Values of small shape computations (tract's folded facts, and what
//!    module `values` folds: `Size`, `Shape`, comparisons, arithmetic) count
//!    as constants for the rules, so an If whose condition is computed from
//!    shapes is sized by the branch it takes.
//! 5. Where tract's fact and a static value_info (every dim a number)
//!    disagree, the assumptions name the tensor and both shapes; tract's
//!    fact is used when all the node's inputs were known to it (forward
//!    inference), the file's otherwise.
//! 6. A tensor with none of these is a [`SizeError::Unsized`] naming the
//!    tensor, the node that writes it, and the flags that fix it
//!    (`--unknown-dim N` for a data-dependent size). Before refusing, a node
//!    tract's analysis failed on (whose partly applied rules can leave
//!    contradictory facts that block the rules' sizes) is hidden from tract
//!    with the other unsized nodes of its op, and sizing runs again (at most
//!    three times); the refusal stands if that does not
//!    size everything.
//!
//! Sizes are elements times element size; sub-byte types are packed
//! ([`elem_bytes`]). Strings have no fixed size and count 0 bytes, whether a
//! graph input or written by a node, whatever their shape (said in the
//! assumptions). A sequence counts as its elements stacked along a new first
//! dim (the same bytes), an optional as its element. Alignment and allocator
//! overheads are not counted.

mod dims;
mod dtype;
pub mod expr;
mod fold;
pub mod isolate;
mod prepare;
mod quiet;
mod rules;
mod tract;
mod values;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

pub use dtype::{elem_bits, elem_bytes, elem_name};
pub(crate) use prepare::typed_value_info;
pub(crate) use rules::body_formals;

use crate::onnx::pb;
use dims::{count, Symbols};

/// What the user says about shapes (`--dim`, `--input-shape`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizeOptions {
    /// `--dim NAME=VALUE`: binds a symbolic dimension such as `batch`.
    pub dims: Vec<(String, i64)>,
    /// `--input-shape NAME=1x3x224x224`: replaces the whole shape of a graph
    /// input. Every symbol of the input's declared dims is bound to the
    /// given value (as by `--dim`), so the rest of the graph agrees.
    pub input_shapes: Vec<(String, Vec<u64>)>,
    /// `--unknown-dim N`: each dim nothing can determine (data-dependent,
    /// such as `NonZero`'s count, or unknown to tract and the file) is taken
    /// as `N`; [`Sizes::unknown_dim`] says which tensors rest on it. Without
    /// it such a tensor is a [`SizeError::Unsized`] naming this flag.
    pub unknown_dim: Option<u64>,
}

/// Where a tensor's size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSource {
    /// tract's shape inference.
    Tract,
    /// The tool's own shape rule for the op that writes it (module `rules`),
    /// where tract fails or is not trusted (`If`).
    Rule,
    /// `--unknown-dim N`: at least one dim is the assumed `N`.
    UnknownDim,
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
    /// What `--unknown-dim` was used for; `None` when it was not given.
    pub unknown_dim: Option<UnknownDimUse>,
}

/// What `--unknown-dim N` decided. Every figure computed from the sizes rests
/// on it as soon as `tensors` is not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownDimUse {
    /// `N`.
    pub value: u64,
    /// Tensors sized with at least one dim taken as `N`, in node order.
    pub tensors: Vec<String>,
    /// How many more tensors were inferred from those.
    pub derived: usize,
}

/// Why sizes could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum SizeError {
    /// The model has no graph.
    #[error("the model has no graph")]
    NoGraph,
    /// `--input-shape` names no graph input.
    #[error("--input-shape {name}=...: the model has no input `{name}`; its inputs are: {available}")]
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
    /// Two values for one symbol: `--input-shape` against `--dim` or against
    /// another `--input-shape`.
    #[error("symbol `{symbol}` is {first} but {second}; give it one value")]
    ConflictingDim {
        /// The symbol.
        symbol: String,
        /// The first binding, e.g. `16 by --dim seq=16`.
        first: String,
        /// The one that disagrees.
        second: String,
    },
    /// A node output whose size neither tract, the tool's rules nor the file
    /// gives.
    #[error("cannot determine the size of tensor `{tensor}` written by node #{node_index} ({op_type} \"{node_name}\"): {reason}; {advice}{}", more_text(*.more))]
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
        /// What to do (names `--unknown-dim` when it would work).
        advice: String,
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

/// Most retries of sizing with a node hidden from tract because its
/// analysis failed on it and sizing was left incomplete (each retry costs
/// one more analysis).
const MAX_ANALYSIS_RETRIES: usize = 3;

/// How the assumption that `--unknown-dim` sized nothing ends.
pub(crate) const UNKNOWN_DIM_NOT_NEEDED: &str = "was not needed: no dim was unknown";

/// How the reason for hiding such a node starts.
const ANALYSIS_FAILED: &str = "tract's analysis failed";

/// Rounds of value_info injection from the front of the unknown region before
/// the rest is filled at once (each round re-runs tract's analysis).
const MAX_INJECTION_ROUNDS: usize = 32;

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
pub(crate) fn infer_with(model: &pb::ModelProto, opts: &SizeOptions, tract_use: &TractUse) -> Result<Sizes, SizeError> {
    let graph = model.graph.as_ref().ok_or(SizeError::NoGraph)?;
    for (name, value) in &opts.dims {
        if *value < 0 {
            return Err(SizeError::NegativeDim { name: name.clone(), value: *value });
        }
    }
    let init_names = initializer_names(graph);
    let real_inputs: Vec<&pb::ValueInfoProto> =
        graph.input.iter().filter(|vi| !init_names.contains(vi.name())).collect();
    for (name, _) in &opts.input_shapes {
        if !real_inputs.iter().any(|vi| vi.name() == name) {
            let available: Vec<String> = real_inputs.iter().map(|vi| format!("`{}`", vi.name())).collect();
            let available = if available.is_empty() { "(none)".to_string() } else { available.join(", ") };
            return Err(SizeError::UnknownInput { name: name.clone(), available });
        }
    }

    let mut all_dims = opts.dims.clone();
    all_dims.extend(input_shape_bindings(&real_inputs, opts)?);
    let mut syms = Symbols::new(&all_dims, graph);
    let mut tensors: HashMap<String, TensorSize> = HashMap::new();

    // 1. Graph inputs.
    let mut sequence_inputs: Vec<String> = Vec::new();
    let mut inputs: HashMap<String, (i32, Vec<u64>)> = HashMap::new();
    for vi in &real_inputs {
        let name = vi.name();
        let over = opts.input_shapes.iter().rev().find(|(n, _)| n == name).map(|(_, s)| s.as_slice());
        let declared = syms.graph_input(vi, over).or_else(|reason| {
            // A sequence or optional input: its element type is known, its
            // length (and unknown dims) only --unknown-dim gives.
            let seq = vi.r#type.as_ref().and_then(dims::element_tensor).filter(|(t, _)| t.elem_type() != 0);
            match (seq, opts.unknown_dim) {
                (Some(_), Some(n)) => guess_with_unknown_dim(None, Some(*vi), n)
                    .map(|(e, s, _)| {
                        sequence_inputs.push(name.to_string());
                        (e, s)
                    })
                    .ok_or(reason),
                (Some(_), None) => Err(format!(
                    "{reason}; its length is not declared: size it with --unknown-dim N (each unknown dim and length taken as N)"
                )),
                _ => Err(reason),
            }
        });
        let (elem, shape) = declared.map_err(|reason| SizeError::BadInput { name: name.into(), reason })?;
        let bytes = sized(elem, &shape).map_err(|reason| SizeError::BadInput { name: name.into(), reason })?;
        tensors.insert(
            name.to_string(),
            TensorSize {
                elem_type: elem,
                shape: shape.clone(),
                bytes,
                source: if sequence_inputs.iter().any(|s| s == name) {
                    SizeSource::UnknownDim
                } else {
                    SizeSource::Declared
                },
            },
        );
        if !sequence_inputs.iter().any(|s| s == name) {
            inputs.insert(name.to_string(), (elem, shape));
        }
    }

    // 2. Weights, from their own declarations.
    let mut declare = |name: &str, elem: i32, dims: &[i64]| {
        if let Some(shape) = prepare::tensor_dims(dims) {
            if let Ok(bytes) = sized(elem, &shape) {
                tensors.insert(
                    name.to_string(),
                    TensorSize { elem_type: elem, shape, bytes, source: SizeSource::Declared },
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
        constant_outputs.extend(node.output.iter().filter(|o| !o.is_empty()).map(String::as_str));
        if let (Some(out), Some((elem, dims, _))) = (node.output.first(), prepare::constant_value(node)) {
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
            "tract could not load the model ({failure}); sizes come from the tool's own rules and the file's value_info"
        ));
    }
    let analysis_error = analysed.as_mut().and_then(|a| a.analyse());

    // 4. value_info, first tensor-typed entry per name.
    let mut vinfo: HashMap<&str, &pb::ValueInfoProto> = HashMap::new();
    for vi in graph.input.iter().chain(&graph.value_info).chain(&graph.output) {
        let is_tensor =
            matches!(vi.r#type.as_ref().and_then(|t| t.value.as_ref()), Some(pb::type_proto::Value::TensorType(_)));
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

    // Outputs tract leaves unknown, and every output of a node tract does not
    // run (its fact there comes from consumers only), are decided here, from
    // the front: the tool's own rule for the op (forward inference from the
    // inputs), else the file's value_info, else, with --unknown-dim, the
    // known part with each unknown dim taken as N. Each decision is handed to
    // tract, which infers what follows. Rounds go from the front (nodes whose
    // inputs are all known); the last round decides what is left.
    let mut consts = rules::constants(graph);
    let sequences = std::cell::RefCell::new(HashMap::new());
    let mut decided: HashMap<String, TensorSize> = HashMap::new();
    let mut rule_notes: Vec<String> = Vec::new();
    let mut disagreements: Vec<String> = Vec::new();
    let mut touched: Vec<String> = sequence_inputs;
    // Tensors that rest on --unknown-dim: those it sized and what reads
    // them, transitively (grown as the rounds go).
    let mut tainted: HashSet<String> = touched.iter().cloned().collect();
    let mut data_dependent: HashMap<String, String> = HashMap::new();
    let untrusted_outputs: HashSet<&str> = hidden
        .keys()
        .flat_map(|&ix| graph.node[ix].output.iter().map(String::as_str))
        .filter(|o| !o.is_empty())
        .collect();
    let mut round = 0;
    loop {
        let last = round >= MAX_INJECTION_ROUNDS;
        let mut injected = 0;
        let mut progress = 0;
        // Tensors decided in this round: what reads them waits for tract's
        // next analysis (which infers it forward) before any fallback.
        let mut fresh: HashSet<String> = HashSet::new();
        for node in &graph.node {
            let a = analysed.as_ref();
            let unknown = |o: &str| {
                !o.is_empty()
                    && !tensors.contains_key(o)
                    && !decided.contains_key(o)
                    && (untrusted_outputs.contains(o) || concrete(a.and_then(|a| a.fact(o)).as_ref()).is_none())
            };
            let lookup = |n: &str| -> Option<(i32, Vec<u64>)> {
                if let Some(t) = tensors.get(n).or_else(|| decided.get(n)) {
                    return Some((t.elem_type, t.shape.clone()));
                }
                if untrusted_outputs.contains(n) {
                    return None; // tract's fact there comes from consumers only
                }
                concrete(a.and_then(|a| a.fact(n)).as_ref())
            };
            // Inputs, and the outer-scope values a body reads.
            let reads = crate::graph::build::node_reads(node);
            let reads_guess = reads.iter().any(|i| tainted.contains(i));
            if reads_guess {
                tainted.extend(node.output.iter().filter(|o| !o.is_empty()).cloned());
            }
            // Values tract folded, and the shape computations it does not
            // fold (module `values`), count as constants for the rules: an
            // If condition computed from shapes picks its branch.
            if let Some(first) = node.output.first().filter(|o| !o.is_empty() && !consts.contains_key(o.as_str())) {
                let known =
                    |n: &str| consts.get(n).cloned().or_else(|| a.and_then(|a| a.values(n, rules::MAX_CONST_VALUES)));
                if let Some(v) = values::fold(node, &known, &lookup) {
                    consts.insert(first.clone(), v);
                }
            }
            let outs: Vec<usize> = (0..node.output.len()).filter(|&k| unknown(&node.output[k])).collect();
            if outs.is_empty() {
                continue;
            }
            let at_front = reads.iter().all(|i| lookup(i).is_some());
            let waits = !last && analysed.is_some() && node.input.iter().any(|i| fresh.contains(i));
            if !(last || at_front) || waits {
                continue;
            }
            // Values tract folded (an outer value a body reads as a shape)
            // count as constants for the rules.
            if let Some(a) = a {
                for i in &reads {
                    if consts.contains_key(i.as_str()) {
                        continue;
                    }
                    if let Some(v) = a.values(i, rules::MAX_CONST_VALUES) {
                        consts.insert(i.clone(), v);
                    }
                }
            }
            let ctx = rules::Ctx { model, opts, consts: &consts, sequences: &sequences };
            let applied = rules::apply(node, &ctx, &lookup).unwrap_or_default();
            let mut choices: Vec<(String, TensorSize, bool)> = Vec::new();
            for k in outs {
                let out = node.output[k].as_str();
                let rule = applied.outs.get(k).cloned().flatten();
                let static_vi = vinfo.get(out).and_then(|vi| static_shape(vi));
                let from_rule = rule
                    .as_ref()
                    .and_then(|r| Some((r.elem, r.concrete()?)))
                    .and_then(|(e, s)| Some((e, s.clone(), sized(e, &s).ok()?)));
                // A rule's answer that rests on --unknown-dim guesses inside a
                // body gives way to a static value_info (a fact), and counts
                // as a guess itself.
                let from_rule = from_rule.filter(|_| !((applied.guessed || reads_guess) && static_vi.is_some()));
                let choice = if let Some((elem, shape, bytes)) = from_rule {
                    if let Some((ve, vs)) = static_vi.filter(|(ve, vs)| (*ve, vs) != (elem, &shape)) {
                        disagreements.push(format!(
                            "`{out}`: the tool's rule for {} gives {} {shape:?}, the file's value_info {} {vs:?} (the rule's is used)",
                            op_label(node),
                            elem_name(elem),
                            elem_name(ve)
                        ));
                    }
                    let source = if applied.guessed { SizeSource::UnknownDim } else { SizeSource::Rule };
                    Some((TensorSize { elem_type: elem, shape, bytes, source }, applied.guessed))
                } else if let Some(Ok((elem, shape))) =
                    vinfo.get(out).filter(|_| rule.is_none() || static_vi.is_some()).map(|vi| syms.value_info(vi))
                {
                    // (a data-dependent dim is not taken from a value_info
                    // that does not give it as a number)
                    sized(elem, &shape).ok().map(|bytes| {
                        (TensorSize { elem_type: elem, shape, bytes, source: SizeSource::ValueInfo }, false)
                    })
                } else if let (Some(r), Some(n)) = (rule.as_ref(), opts.unknown_dim) {
                    let shape: Vec<u64> = r.dims.iter().map(|d| d.unwrap_or(n)).collect();
                    sized(r.elem, &shape).ok().map(|bytes| {
                        (TensorSize { elem_type: r.elem, shape, bytes, source: SizeSource::UnknownDim }, true)
                    })
                } else if let (true, Some(n)) = (last, opts.unknown_dim) {
                    let partial = a.and_then(|a| a.partial(out));
                    guess_with_unknown_dim(partial, vinfo.get(out).copied(), n).map(|(elem, shape, bytes)| {
                        (TensorSize { elem_type: elem, shape, bytes, source: SizeSource::UnknownDim }, true)
                    })
                } else {
                    None
                };
                if choice.is_none() {
                    if rule.is_some() {
                        data_dependent
                            .insert(out.to_string(), format!("its size depends on the data ({})", op_label(node)));
                    } else if let Some(why) = &applied.failure {
                        data_dependent
                            .insert(out.to_string(), format!("the tool's rule for {} failed: {why}", op_label(node)));
                    }
                }
                if let Some((t, guessed)) = choice {
                    choices.push((out.to_string(), t, guessed));
                }
            }
            if !choices.is_empty() {
                rule_notes.extend(applied.notes);
            }
            for (out, t, guessed) in choices {
                if let Some(a) = analysed.as_mut() {
                    if t.elem_type != dtype::code::STRING && a.inject(&out, t.elem_type, &t.shape) {
                        injected += 1;
                    }
                }
                if guessed {
                    touched.push(out.clone());
                    tainted.insert(out.clone());
                }
                fresh.insert(out.clone());
                decided.insert(out, t);
                progress += 1;
            }
        }
        if injected > 0 {
            if let Some(a) = analysed.as_mut() {
                a.analyse();
            }
        }
        if last {
            break;
        }
        round = if progress > 0 { round + 1 } else { MAX_INJECTION_ROUNDS };
    }

    // 5. Every node output: decided above, else from tract, else an error.
    let mut missing: Vec<(String, usize, String)> = Vec::new();
    let mut fallback: Vec<(&str, usize)> = Vec::new();
    for (ix, node) in graph.node.iter().enumerate() {
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            if tensors.contains_key(out.as_str()) {
                continue;
            }
            if let Some(t) = decided.get(out.as_str()) {
                if t.source == SizeSource::ValueInfo {
                    fallback.push((out.as_str(), ix));
                }
                tensors.insert(out.clone(), t.clone());
                continue;
            }
            // Where tract does not run the node, its fact comes from the
            // consumers only: not a size to trust.
            let fact =
                analysed.as_ref().and_then(|a| a.fact(out)).filter(|_| !untrusted_outputs.contains(out.as_str()));
            if let Some((elem, shape)) = concrete(fact.as_ref()) {
                if let Ok(bytes) = sized(elem, &shape) {
                    let mut t = TensorSize { elem_type: elem, shape, bytes, source: SizeSource::Tract };
                    if let Some((ve, vs)) = vinfo.get(out.as_str()).and_then(|vi| static_shape(vi)) {
                        if (ve, &vs) != (t.elem_type, &t.shape) {
                            // Forward (every input known to tract) wins over
                            // the file; a fact tract could only have taken
                            // from consumers does not.
                            let forward = node.input.iter().filter(|i| !i.is_empty()).all(|i| {
                                tensors.contains_key(i.as_str())
                                    || concrete(analysed.as_ref().and_then(|a| a.fact(i)).as_ref()).is_some()
                            });
                            let used = if forward {
                                "tract's is used: it follows from the node's inputs"
                            } else {
                                "the file's is used: tract took its fact from the consumers"
                            };
                            disagreements.push(format!(
                                "`{out}`: tract infers {} {:?}, the file's value_info says {} {vs:?} ({used})",
                                elem_name(t.elem_type),
                                t.shape,
                                elem_name(ve)
                            ));
                            if !forward {
                                if let Ok(bytes) = sized(ve, &vs) {
                                    t = TensorSize { elem_type: ve, shape: vs, bytes, source: SizeSource::ValueInfo };
                                }
                            }
                        }
                    }
                    tensors.insert(out.clone(), t);
                    continue;
                }
            }
            // A string tensor counts 0 bytes whatever its shape.
            let vi_elem = vinfo.get(out.as_str()).and_then(|vi| vi_tensor_elem(vi));
            if fact.as_ref().and_then(|f| f.elem_type) == Some(dtype::code::STRING)
                || vi_elem == Some(dtype::code::STRING)
            {
                let shape = fact.as_ref().and_then(|f| f.shape.clone()).unwrap_or_default();
                tensors.insert(
                    out.clone(),
                    TensorSize {
                        elem_type: dtype::code::STRING,
                        shape,
                        bytes: 0,
                        source: if vi_elem.is_some() { SizeSource::ValueInfo } else { SizeSource::Tract },
                    },
                );
                continue;
            }
            if constant_outputs.contains(out.as_str()) {
                continue; // a weight: its size is optional
            }
            let file_reason = match vinfo.get(out.as_str()).map(|vi| syms.value_info(vi)) {
                Some(Err(e)) => format!("its value_info is not usable: {e}"),
                Some(Ok(_)) => "its value_info gives no size".to_string(),
                None => "the file has no value_info for it".to_string(),
            };
            let tract_reason = if let Some(why) = data_dependent.get(out.as_str()) {
                why.clone()
            } else if let Some(why) = hidden.get(&ix) {
                format!("tract cannot infer it ({why})")
            } else if let Some((elem, shape)) = concrete(fact.as_ref()) {
                match sized(elem, &shape) {
                    Err(e) => format!("tract infers {} {shape:?}, but {e}", elem_name(elem)),
                    Ok(_) => "tract cannot infer it".to_string(),
                }
            } else if let (Some(failure), TractUse::Off(_)) = (&loaded.failure, tract_use) {
                format!("tract was not used ({failure})")
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
    if let Some((tensor, node_index, reason)) = missing.first().cloned() {
        // A node tract's analysis fails on can leave contradictory facts
        // behind it (a rule of its op applied to its inputs before another
        // failed), which then stop tract from taking the rules' sizes of
        // what it reads. Hidden from tract, it is sized like any op tract
        // cannot run: try that before refusing.
        if let (TractUse::Hiding(preset), Some(e), Some(a)) = (tract_use, &analysis_error, analysed.as_ref()) {
            let tract_name = |n: &pb::NodeProto| {
                if n.name().is_empty() {
                    n.output.first().cloned().unwrap_or_default()
                } else {
                    n.name().to_string()
                }
            };
            let failed = a.failed_node(e).and_then(|name| graph.node.iter().position(|n| tract_name(n) == name));
            let retries = preset.iter().filter(|(_, why)| why.starts_with(ANALYSIS_FAILED)).count();
            if let Some(ix) = failed.filter(|ix| retries < MAX_ANALYSIS_RETRIES && !preset.iter().any(|(h, _)| h == ix))
            {
                // With it, the other nodes of its op that tract left unsized
                // (they often fail the same way, one analysis each).
                let op = graph.node[ix].op_type();
                let same: Vec<usize> = graph
                    .node
                    .iter()
                    .enumerate()
                    .filter(|&(k, n)| {
                        k != ix
                            && n.op_type() == op
                            && !preset.iter().any(|(h, _)| *h == k)
                            && n.output.iter().any(|o| !o.is_empty() && concrete(a.fact(o).as_ref()).is_none())
                    })
                    .map(|(k, _)| k)
                    .collect();
                let mut hide = preset.clone();
                hide.push((ix, format!("{ANALYSIS_FAILED} ({e})")));
                hide.extend(same.into_iter().map(|k| (k, format!("{ANALYSIS_FAILED} on another {op} ({e})"))));
                if let Ok(sizes) = infer_with(model, opts, &TractUse::Hiding(hide)) {
                    return Ok(sizes);
                }
            }
        }
        let node = &graph.node[node_index];
        let advice = if opts.unknown_dim.is_some() {
            "neither its element type nor its rank is known, so --unknown-dim cannot size it: add its type and shape to the model's value_info (onnx.shape_inference)".to_string()
        } else {
            "size each unknown dim as N with --unknown-dim N, or add its shape to the model's value_info (onnx.shape_inference), or set input shapes with --input-shape/--dim".to_string()
        };
        return Err(SizeError::Unsized {
            tensor,
            node_index,
            node_name: node.name().to_string(),
            op_type: op_label(node),
            reason,
            advice,
            more: missing.len() - 1,
        });
    }

    let mut assumptions = syms.assumptions();
    for n in rule_notes {
        if !assumptions.contains(&n) {
            assumptions.push(n);
        }
    }
    for d in &disagreements {
        assumptions.push(format!("the file's value_info disagrees on {d}"));
    }
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
    let unknown_dim = opts.unknown_dim.map(|value| {
        let derived = derived_count(graph, &touched, &tensors);
        let first: Vec<String> = touched.iter().take(3).map(|t| format!("`{t}`")).collect();
        assumptions.push(if touched.is_empty() {
            format!("--unknown-dim {value} {UNKNOWN_DIM_NOT_NEEDED}")
        } else {
            format!(
                "--unknown-dim {value}: {} tensor{} sized with each unknown dim taken as {value} (first: {}), {derived} more derived from them; every figure rests on this",
                touched.len(),
                if touched.len() == 1 { "" } else { "s" },
                first.join(", ")
            )
        });
        UnknownDimUse {
            value,
            tensors: touched.clone(),
            derived,
        }
    });
    Ok(Sizes { tensors, assumptions, unknown_dim })
}

/// The values of `graph`'s small constants and of the shape computations
/// module `values` folds from them and from `sizes`' shapes (an If condition
/// such as `Equal(Size(x), 4)`), by tensor name. What tract alone folded
/// during sizing is not among them.
pub(crate) fn folded_values(graph: &pb::GraphProto, sizes: &Sizes) -> HashMap<String, Vec<f64>> {
    let mut consts = rules::constants(graph);
    values::fold_all(&graph.node, &mut consts, &|n| sizes.tensors.get(n).map(|t| (t.elem_type, t.shape.clone())));
    consts
}

/// How many tensors tract or the rules sized from tensors `touched` (their
/// descendants in the graph, through the outer values bodies read too, whose
/// size did not come from the file or a declaration).
fn derived_count(graph: &pb::GraphProto, touched: &[String], tensors: &HashMap<String, TensorSize>) -> usize {
    let mut reached: HashSet<&str> = touched.iter().map(String::as_str).collect();
    let mut count = 0;
    for node in &graph.node {
        if crate::graph::build::node_reads(node).iter().any(|i| reached.contains(i.as_str())) {
            for o in node.output.iter().filter(|o| !o.is_empty()) {
                if reached.insert(o.as_str())
                    && tensors.get(o.as_str()).is_some_and(|t| matches!(t.source, SizeSource::Tract | SizeSource::Rule))
                {
                    count += 1;
                }
            }
        }
    }
    count
}

/// The element type of a value_info's tensor type (or of a sequence's or
/// optional's tensor element).
fn vi_tensor_elem(vi: &pb::ValueInfoProto) -> Option<i32> {
    dims::element_tensor(vi.r#type.as_ref()?).map(|(t, _)| t.elem_type())
}

/// A value_info's type when it is fully static (every dim a number).
fn static_shape(vi: &pb::ValueInfoProto) -> Option<(i32, Vec<u64>)> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let Some(pb::type_proto::Value::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return None;
    };
    let dims = tt
        .shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Dim::DimValue(v)) => u64::try_from(v).ok(),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((tt.elem_type(), dims))
}

/// A size for a tensor nothing else sizes, with each unknown dim taken as
/// `n`: tract's partial fact (element type and the dims it knows), else the
/// file's value_info (a sequence's or optional's element type; a sequence
/// gets a first dim, its length). An unknown rank counts as one dim.
fn guess_with_unknown_dim(
    partial: Option<tract::Partial>,
    vi: Option<&pb::ValueInfoProto>,
    n: u64,
) -> Option<(i32, Vec<u64>, u64)> {
    let from_vi = vi.and_then(|vi| dims::element_tensor(vi.r#type.as_ref()?));
    let elem = partial
        .as_ref()
        .and_then(|p| p.elem_type)
        .or_else(|| from_vi.map(|(t, _)| t.elem_type()))
        .filter(|&e| e != dtype::code::UNDEFINED)?;
    let shape: Vec<u64> = match (partial.and_then(|p| p.dims), from_vi) {
        (Some(d), _) => d.into_iter().map(|d| d.unwrap_or(n)).collect(),
        (None, Some((t, seq))) => {
            use pb::tensor_shape_proto::dimension::Value as Dim;
            let mut s: Vec<u64> = if seq { vec![n] } else { Vec::new() };
            match t.shape.as_ref() {
                Some(sh) => s.extend(sh.dim.iter().map(|d| match d.value {
                    Some(Dim::DimValue(v)) if v >= 0 => v as u64,
                    _ => n,
                })),
                None => s.push(n),
            }
            s
        }
        (None, None) => vec![n],
    };
    let bytes = sized(elem, &shape).ok()?;
    Some((elem, shape, bytes))
}

/// The symbols that `--input-shape` binds: each declared dim of the input
/// that is a plain symbol (or an opaque name) takes the given value. A symbol
/// given two values (by `--dim` and `--input-shape`, or by two inputs) is an
/// error. When the given rank differs from the declared one, nothing is bound.
fn input_shape_bindings(
    real_inputs: &[&pb::ValueInfoProto],
    opts: &SizeOptions,
) -> Result<Vec<(String, i64)>, SizeError> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let mut bound: HashMap<String, (u64, String)> = HashMap::new();
    for (name, value) in &opts.dims {
        bound.insert(name.trim().to_string(), (*value as u64, format!("{value} by --dim {name}={value}")));
    }
    let mut out = Vec::new();
    for (k, (name, shape)) in opts.input_shapes.iter().enumerate() {
        if opts.input_shapes[k + 1..].iter().any(|(n, _)| n == name) {
            continue; // a later --input-shape for the same input wins
        }
        let Some(vi) = real_inputs.iter().find(|vi| vi.name() == name) else {
            continue;
        };
        let Some(pb::type_proto::Value::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            continue;
        };
        let declared = tt.shape.as_ref().map_or(&[][..], |s| s.dim.as_slice());
        if declared.len() != shape.len() {
            continue;
        }
        let text: Vec<String> = shape.iter().map(u64::to_string).collect();
        for (d, &v) in declared.iter().zip(shape) {
            let Some(Dim::DimParam(p)) = &d.value else {
                continue;
            };
            let p = p.trim();
            if expr::parse(p).is_ok_and(|e| !e.is_symbol()) {
                continue; // a formula such as `2*seq`: evaluated from its symbols
            }
            let Ok(signed) = i64::try_from(v) else {
                continue;
            };
            let here = format!("{v} by --input-shape {name}={}", text.join("x"));
            match bound.get(p) {
                Some((old, first)) if *old != v => {
                    return Err(SizeError::ConflictingDim { symbol: p.to_string(), first: first.clone(), second: here })
                }
                Some(_) => {}
                None => {
                    bound.insert(p.to_string(), (v, here));
                    out.push((p.to_string(), signed));
                }
            }
        }
    }
    Ok(out)
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
        return count(shape).map(|_| 0).ok_or_else(|| format!("its size {shape:?} overflows 64 bits"));
    }
    if elem_bits(elem).is_none() {
        return Err(format!("its element type {} has no fixed size", elem_name(elem)));
    }
    count(shape).and_then(|n| elem_bytes(elem, n)).ok_or_else(|| format!("its size {shape:?} overflows 64 bits"))
}
