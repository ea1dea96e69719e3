//! The tool's own shape rules: fallbacks for ops where tract's analysis fails
//! (or cannot be trusted) although the output shape is plain.
//!
//! tract stays the main engine. [`super::infer`] calls [`apply`] for a node
//! only when tract leaves one of its outputs unknown (or the node is one tract
//! must not size, see [`sized_by_rules_only`]) and every input the rule needs
//! has a concrete size; the result is injected into tract, so what follows the
//! node is again inferred by tract. Rules work on one node at a time, so one op
//! that tract fails on never leaves the rest of the graph unsized.
//!
//! Rules (ONNX operator spec, latest opsets):
//!
//! - `Shape` → `INT64[rank]` (with `start`/`end`), `Size` → `INT64[]`.
//! - `*Like` ops (`EyeLike`, `RandomNormalLike`, `RandomUniformLike`,
//!   `Bernoulli`): the input's shape, the `dtype` attribute's type (else the
//!   input's); `CastLike`: the shape of input 0, the type of input 1.
//! - `ConstantOfShape`: the dims are the values of its (constant) input; the
//!   type is the `value` attribute's, FLOAT when absent (per spec).
//! - `Range` with constant `start`, `limit`, `delta`:
//!   `max(ceil((limit - start) / delta), 0)` elements of `start`'s type.
//! - `Pad` with constant `pads` (and `axes`): each padded dim grows by its two
//!   pads; `constant_value` plays no part in the shape.
//! - Element-wise ops: one input (`Relu`, `Exp`, `Softmax`, ...) → its type
//!   and shape; `Add`, `Mul`, `Max`, ... → the numpy broadcast of the
//!   inputs' shapes, the first input's type; comparisons and logic → BOOL;
//!   `Where` → the broadcast, input 1's type; `Cast` → the input's shape,
//!   the `to` type. (tract knows no type for an INT64 tensor it is told
//!   the shape of, so what reads one is left to these.)
//! - `Concat` of inputs of one type and rank, equal outside `axis`: their
//!   lengths along `axis` add up (tract can be left without a fact there
//!   when a consumer it cannot analyse contradicts the inputs' sizes).
//! - `Slice` with constant `starts`, `ends` (and `axes`, `steps`), or the
//!   attributes before opset 10: each sliced dim by the spec's clamping.
//! - `NonZero` → `INT64[rank, ?]`; `Unique` → `Y`, `indices`, `counts` have a
//!   data-dependent length `?`, `inverse_indices` the input's length. A `?`
//!   dim is *data-dependent*: only `--unknown-dim N` sizes it (see
//!   [`super::SizeOptions::unknown_dim`]).
//! - Sequences are sized as their elements stacked along a new first dim
//!   (the same bytes; elements of different shapes: one flat dim of all their
//!   elements): `SequenceEmpty` → `[0]`, `SequenceConstruct` → `[k, ...]`,
//!   `SequenceLength` → `INT64[]`. Optionals are sized as their element
//!   (`Optional`, `OptionalGetElement`; `OptionalHasElement` → `BOOL[]`);
//!   `Identity` copies its input's type (sequence or not). `SplitToSequence`
//!   (pieces from `split` or `axis`; unknown pieces: the input's bytes),
//!   `SequenceInsert`, `SequenceErase`, `SequenceAt` and `ConcatFromSequence`
//!   follow the elements of every sequence the rules built, at constant
//!   positions; a sequence from elsewhere (a graph input, a Loop) falls back
//!   on value_info, where a sequence type is sized with a length that only
//!   `--unknown-dim` gives.
//! - `If`: each branch is sized on its own (a recursive [`super::infer`] with
//!   the outer-scope values it reads as inputs); when the condition is a
//!   constant, the branch taken gives the outputs, else each output takes the
//!   larger of the two branches (in bytes), which is said in the assumptions
//!   when they differ. tract is never asked (it unifies the two branches into
//!   one fact and propagates it backwards).
//! - `Loop`: the body is sized with the loop-carried values' types; a
//!   loop-carried output keeps the dims the body keeps (a dim the body changes
//!   is data-dependent); a scan output stacks the body's per-iteration value
//!   along a new first dim of length `M` when `M` is a constant and there is no
//!   condition input, else a data-dependent `?`.
//! - `Scan` (opset 9+): the body is sized with the states and one slice of each
//!   scan input; final states are the body's, each scan output gets the
//!   sequence length inserted at its `scan_output_axes` position.
//!
//! Small constant values (initializers and `Constant` outputs of at most
//! [`MAX_CONST_VALUES`] numbers) are read for the rules that need them; weight
//! bytes stored as external data never are.

use std::collections::{HashMap, HashSet};

use super::dtype::code::*;
use super::{SizeOptions, Sizes};
use crate::onnx::pb;

/// Constant tensors with more numbers than this are not read (no shape or
/// range argument is that long).
pub(crate) const MAX_CONST_VALUES: usize = 64;

/// Element-wise ops of one input whose output has its type and shape.
const UNARY: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Abs",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Erf",
    "Sin",
    "Cos",
    "Softplus",
    "Softsign",
    "Elu",
    "Selu",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "Mish",
    "Clip",
    "BitwiseNot",
    "Softmax",
    "LogSoftmax",
    "Hardmax",
    "Dropout",
];

/// Element-wise ops whose inputs broadcast (numpy rules) to the output's
/// shape, of the first input's type.
const BROADCAST: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Mod",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "BitShift",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
    "PRelu",
];

/// Broadcasting ops whose output is BOOL.
const COMPARE: &[&str] = &["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Not"];

/// Axis `a` of a tensor of rank `rank` (negative counts from the end), if
/// it is one.
fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    usize::try_from(if a < 0 { a + r } else { a }).ok().filter(|&x| x < rank)
}

/// The shape of `parts` concatenated along `ax`: their lengths there add
/// up; `None` unless they have one rank and agree on every other dim.
fn concatenated(parts: &[Typed], ax: usize) -> Option<Vec<u64>> {
    let first = &parts.first()?.1;
    let agree = parts
        .iter()
        .all(|(_, s)| s.len() == first.len() && s.iter().zip(first).enumerate().all(|(i, (x, y))| i == ax || x == y));
    if !agree {
        return None;
    }
    let mut dims = first.clone();
    dims[ax] = parts.iter().try_fold(0u64, |acc, (_, s)| acc.checked_add(s[ax]))?;
    Some(dims)
}

/// A concrete tensor type: element type and shape.
pub(crate) type Typed = (i32, Vec<u64>);

/// One output of a rule: element type and dims, `None` for a data-dependent
/// dim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleOut {
    pub elem: i32,
    pub dims: Vec<Option<u64>>,
}

impl RuleOut {
    fn known(elem: i32, dims: &[u64]) -> RuleOut {
        RuleOut { elem, dims: dims.iter().map(|&d| Some(d)).collect() }
    }

    /// The concrete shape, if no dim is data-dependent.
    pub fn concrete(&self) -> Option<Vec<u64>> {
        self.dims.iter().copied().collect()
    }
}

/// What a rule found for a node: per output (`None`: the rule says nothing
/// about it), and notes for the assumptions.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub outs: Vec<Option<RuleOut>>,
    pub notes: Vec<String>,
    /// Why the rule could not size the outputs (a body that cannot be sized).
    pub failure: Option<String>,
    /// The outputs rest on `--unknown-dim` guesses made inside a body: a
    /// static value_info of an output is a fact and wins over them.
    pub guessed: bool,
}

/// A body sized by [`run_body`].
struct BodyRun {
    /// The types of its outputs, in order.
    outs: Vec<Typed>,
    /// The assumptions made inside.
    notes: Vec<String>,
    /// Whether `--unknown-dim` sized any of its tensors.
    guessed: bool,
}

impl Applied {
    fn failed(why: String) -> Option<Applied> {
        Some(Applied { failure: Some(why), ..Default::default() })
    }
}

/// What the rules can read besides the inputs' types.
pub(crate) struct Ctx<'a> {
    /// The whole model (its opset imports; sub-models for bodies copy them).
    pub model: &'a pb::ModelProto,
    /// The user's options (bodies are sized with the same `--dim`s and
    /// `--unknown-dim`).
    pub opts: &'a SizeOptions,
    /// Values of small constants, by name.
    pub consts: &'a HashMap<String, Vec<f64>>,
    /// The elements of each sequence the rules built, in order, when each
    /// one's type is known: what `SequenceAt`, `SequenceErase` and
    /// `ConcatFromSequence` read (a sequence's own size, its elements stacked
    /// or flattened, cannot say where one element ends).
    pub sequences: &'a std::cell::RefCell<HashMap<String, Vec<Typed>>>,
}

/// Ops that tract must not size even when it can: their outputs always come
/// from [`apply`] (else value_info). `If`: tract unifies the branches.
pub(crate) fn sized_by_rules_only(node: &pb::NodeProto) -> bool {
    super::prepare::standard_domain(node) && node.op_type() == "If"
}

/// The node to give tract in place of `node`, when tract would misread it:
/// `ConstantOfShape` without `value` gets the spec's default (FLOAT 0), since
/// tract would otherwise make it DOUBLE.
pub(crate) fn patch_for_tract(node: &pb::NodeProto) -> Option<pb::NodeProto> {
    if node.op_type() != "ConstantOfShape" || node.attribute.iter().any(|a| a.name() == "value") {
        return None;
    }
    let mut n = node.clone();
    n.attribute.push(pb::AttributeProto {
        name: Some("value".into()),
        r#type: Some(pb::attribute_proto::AttributeType::Tensor as i32),
        t: Some(pb::TensorProto { dims: vec![1], data_type: Some(FLOAT), float_data: vec![0.0], ..Default::default() }),
        ..Default::default()
    });
    Some(n)
}

/// The numbers in a tensor, if it is small, inline and numeric.
pub(crate) fn tensor_values(t: &pb::TensorProto) -> Option<Vec<f64>> {
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return None;
    }
    let n = super::dims::count(&super::prepare::tensor_dims(&t.dims)?)? as usize;
    if n > MAX_CONST_VALUES {
        return None;
    }
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let from_raw = |width: usize, f: &dyn Fn(&[u8]) -> f64| -> Option<Vec<f64>> {
        let r = raw?;
        (r.len() == n * width).then(|| r.chunks_exact(width).map(f).collect())
    };
    let v: Vec<f64> = match t.data_type() {
        INT64 => from_raw(8, &|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .unwrap_or_else(|| t.int64_data.iter().map(|&x| x as f64).collect()),
        UINT64 => from_raw(8, &|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .unwrap_or_else(|| t.uint64_data.iter().map(|&x| x as f64).collect()),
        INT32 => from_raw(4, &|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64)
            .unwrap_or_else(|| t.int32_data.iter().map(|&x| x as f64).collect()),
        INT16 | INT8 | UINT8 | UINT16 | BOOL => match t.data_type() {
            INT16 => from_raw(2, &|c| i16::from_le_bytes([c[0], c[1]]) as f64),
            UINT16 => from_raw(2, &|c| u16::from_le_bytes([c[0], c[1]]) as f64),
            INT8 => from_raw(1, &|c| c[0] as i8 as f64),
            _ => from_raw(1, &|c| c[0] as f64),
        }
        .unwrap_or_else(|| t.int32_data.iter().map(|&x| x as f64).collect()),
        FLOAT => from_raw(4, &|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64)
            .unwrap_or_else(|| t.float_data.iter().map(|&x| x as f64).collect()),
        DOUBLE => from_raw(8, &|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .unwrap_or_else(|| t.double_data.clone()),
        _ => return None,
    };
    (v.len() == n).then_some(v)
}

/// Values of the graph's small constants: initializers and `Constant` nodes.
pub(crate) fn constants(graph: &pb::GraphProto) -> HashMap<String, Vec<f64>> {
    let mut out = HashMap::new();
    for t in &graph.initializer {
        if let Some(v) = tensor_values(t) {
            out.insert(t.name().to_string(), v);
        }
    }
    for node in graph.node.iter().filter(|n| super::prepare::is_constant(n)) {
        let Some(name) = node.output.first().filter(|o| !o.is_empty()) else {
            continue;
        };
        let v = node.attribute.iter().find_map(|a| match a.name() {
            "value" => a.t.as_ref().and_then(tensor_values),
            "value_int" => Some(vec![a.i() as f64]),
            "value_ints" if a.ints.len() <= MAX_CONST_VALUES => Some(a.ints.iter().map(|&x| x as f64).collect()),
            "value_float" => Some(vec![f64::from(a.f())]),
            "value_floats" if a.floats.len() <= MAX_CONST_VALUES => {
                Some(a.floats.iter().map(|&x| f64::from(x)).collect())
            }
            _ => None,
        });
        if let Some(v) = v {
            out.insert(name.clone(), v);
        }
    }
    out
}

pub(super) fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

fn input(node: &pb::NodeProto, i: usize) -> Option<&str> {
    node.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

fn opset(model: &pb::ModelProto) -> i64 {
    model.opset_import.iter().find(|o| matches!(o.domain(), "" | "ai.onnx")).map_or(1, |o| o.version())
}

/// Applies the rule for `node`'s op, if there is one and what it needs is
/// known. `lookup` gives the concrete type of a tensor known so far.
pub(crate) fn apply(node: &pb::NodeProto, ctx: &Ctx, lookup: &dyn Fn(&str) -> Option<Typed>) -> Option<Applied> {
    if !super::prepare::standard_domain(node) {
        return None;
    }
    let one = |o: RuleOut| Some(Applied { outs: vec![Some(o)], ..Default::default() });
    let typed = |i: usize| input(node, i).and_then(lookup);
    let values = |i: usize| input(node, i).and_then(|n| ctx.consts.get(n));
    let dtype_attr = || attr(node, "dtype").map(|a| a.i() as i32);
    match node.op_type() {
        "Shape" => {
            let (_, shape) = typed(0)?;
            let rank = shape.len() as i64;
            let clamp = |v: i64| if v < 0 { (v + rank).max(0) } else { v.min(rank) };
            let start = clamp(attr(node, "start").map_or(0, |a| a.i()));
            let end = clamp(attr(node, "end").map_or(rank, |a| a.i()));
            one(RuleOut::known(INT64, &[(end - start).max(0) as u64]))
        }
        "Size" => one(RuleOut::known(INT64, &[])),
        "EyeLike" | "RandomNormalLike" | "RandomUniformLike" | "Bernoulli" => {
            let (elem, shape) = typed(0)?;
            one(RuleOut::known(dtype_attr().unwrap_or(elem), &shape))
        }
        "CastLike" => {
            let (_, shape) = typed(0)?;
            let (elem, _) = typed(1)?;
            one(RuleOut::known(elem, &shape))
        }
        "ConstantOfShape" => {
            let elem = attr(node, "value").and_then(|a| a.t.as_ref()).map_or(FLOAT, |t| t.data_type());
            let dims = match values(0) {
                Some(v) => v.iter().map(|&d| (d >= 0.0).then_some(d as u64)).collect::<Option<Vec<_>>>()?,
                None => {
                    let (_, shape) = typed(0)?;
                    let rank = *shape.first()?;
                    return one(RuleOut { elem, dims: vec![None; usize::try_from(rank).ok()?.min(64)] });
                }
            };
            one(RuleOut::known(elem, &dims))
        }
        "Range" => {
            let (elem, _) = typed(0)?;
            let len = match (values(0), values(1), values(2)) {
                (Some(s), Some(l), Some(d)) if s.len() == 1 && l.len() == 1 && d.len() == 1 && d[0] != 0.0 => {
                    let n = ((l[0] - s[0]) / d[0]).ceil();
                    Some(if n > 0.0 { n as u64 } else { 0 })
                }
                _ => None,
            };
            one(RuleOut { elem, dims: vec![len] })
        }
        "Pad" => {
            let (elem, shape) = typed(0)?;
            let rank = shape.len();
            let pads: Vec<i64> = if opset(ctx.model) >= 11 {
                values(1)?.iter().map(|&p| p as i64).collect()
            } else {
                attr(node, "pads").or_else(|| attr(node, "paddings"))?.ints.clone()
            };
            let axes: Vec<usize> = match values(3) {
                Some(a) => a.iter().map(|&x| axis(x as i64, rank)).collect::<Option<Vec<_>>>()?,
                None if input(node, 3).is_some() => return None,
                None => (0..rank).collect(),
            };
            if pads.len() != 2 * axes.len() {
                return None;
            }
            let mut dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            for (k, &ax) in axes.iter().enumerate() {
                dims[ax] += pads[k] + pads[k + axes.len()];
            }
            let dims = dims.into_iter().map(|d| u64::try_from(d).ok()).collect::<Option<Vec<_>>>()?;
            one(RuleOut::known(elem, &dims))
        }
        op if UNARY.contains(&op) => {
            let (elem, shape) = typed(0)?;
            one(RuleOut::known(elem, &shape))
        }
        "Cast" => {
            let (_, shape) = typed(0)?;
            one(RuleOut::known(attr(node, "to")?.i() as i32, &shape))
        }
        op if BROADCAST.contains(&op) || COMPARE.contains(&op) || op == "Where" => {
            let ins: Vec<Typed> =
                node.input.iter().filter(|i| !i.is_empty()).map(|i| lookup(i)).collect::<Option<Vec<_>>>()?;
            let shape = ins.iter().try_fold(Vec::new(), |acc, (_, s)| super::fold::broadcast(&acc, s))?;
            let elem = match op {
                "Where" => ins.get(1)?.0,
                _ if COMPARE.contains(&op) => BOOL,
                _ => ins.first()?.0,
            };
            one(RuleOut::known(elem, &shape))
        }
        "Concat" => {
            let parts: Vec<Typed> = node.input.iter().map(|i| lookup(i)).collect::<Option<Vec<_>>>()?;
            let elem = parts.first()?.0;
            if parts.iter().any(|(e, _)| *e != elem) {
                return None;
            }
            let ax = axis(attr(node, "axis")?.i(), parts[0].1.len())?;
            one(RuleOut::known(elem, &concatenated(&parts, ax)?))
        }
        "Slice" => {
            let (elem, shape) = typed(0)?;
            let rank = shape.len();
            let list = |i: usize, a: &str| -> Option<Option<Vec<i64>>> {
                if opset(ctx.model) >= 10 {
                    match input(node, i) {
                        Some(_) => Some(Some(values(i)?.iter().map(|&x| x as i64).collect())),
                        None => Some(None),
                    }
                } else {
                    Some(attr(node, a).map(|a| a.ints.clone()))
                }
            };
            let starts = list(1, "starts")??;
            let ends = list(2, "ends")??;
            let axes = list(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps =
                if opset(ctx.model) >= 10 { list(4, "")? } else { None }.unwrap_or_else(|| vec![1; starts.len()]);
            if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
                return None;
            }
            let mut dims = shape.clone();
            for k in 0..starts.len() {
                let ax = axis(axes[k], rank)?;
                let d = i128::from(shape[ax]);
                let (mut s, mut e, st) = (i128::from(starts[k]), i128::from(ends[k]), i128::from(steps[k]));
                if st == 0 {
                    return None;
                }
                if s < 0 {
                    s += d;
                }
                if e < 0 {
                    e += d;
                }
                let len = if st > 0 {
                    let (s, e) = (s.clamp(0, d), e.clamp(0, d));
                    (e - s + st - 1).div_euclid(st).max(0)
                } else {
                    let (s, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
                    (s - e + (-st) - 1).div_euclid(-st).max(0)
                };
                dims[ax] = u64::try_from(len).ok()?;
            }
            one(RuleOut::known(elem, &dims))
        }
        "NonZero" => {
            let (_, shape) = typed(0)?;
            one(RuleOut { elem: INT64, dims: vec![Some(shape.len() as u64), None] })
        }
        "Unique" => {
            let (elem, shape) = typed(0)?;
            let (y, inverse) = match attr(node, "axis") {
                Some(a) => {
                    let ax = axis(a.i(), shape.len())?;
                    let mut y: Vec<Option<u64>> = shape.iter().map(|&d| Some(d)).collect();
                    y[ax] = None;
                    (y, shape[ax])
                }
                None => (vec![None], super::dims::count(&shape)?),
            };
            Some(Applied {
                outs: vec![
                    Some(RuleOut { elem, dims: y }),
                    Some(RuleOut { elem: INT64, dims: vec![None] }),
                    Some(RuleOut::known(INT64, &[inverse])),
                    Some(RuleOut { elem: INT64, dims: vec![None] }),
                ],
                ..Default::default()
            })
        }
        // Sequences are sized as their elements stacked along a new first
        // dim (same bytes); optionals as their element.
        "SequenceEmpty" => {
            let elem = dtype_attr().unwrap_or(FLOAT);
            record_sequence(ctx, node, Vec::new());
            one(RuleOut::known(elem, &[0]))
        }
        "SequenceConstruct" => {
            let elems: Vec<Typed> = node.input.iter().map(|i| lookup(i)).collect::<Option<Vec<_>>>()?;
            let elem = elems.first()?.0;
            record_sequence(ctx, node, elems.clone());
            one(sequence_out(elem, &elems)?)
        }
        "SplitToSequence" => {
            let (elem, shape) = typed(0)?;
            let ax = axis(attr(node, "axis").map_or(0, |a| a.i()), shape.len())?;
            let len = shape[ax];
            let sizes: Option<Vec<u64>> = match input(node, 1) {
                None => Some(vec![1; len as usize]),
                Some(_) => match values(1) {
                    // a scalar: pieces of that size, the last one shorter
                    Some(v) if v.len() == 1 && input_rank(node, 1, lookup) == Some(0) && v[0] >= 1.0 => {
                        let k = v[0] as u64;
                        Some((0..len.div_ceil(k)).map(|i| k.min(len - i * k)).collect())
                    }
                    Some(v) if v.iter().all(|&x| x >= 0.0) && v.iter().sum::<f64>() as u64 == len => {
                        Some(v.iter().map(|&x| x as u64).collect())
                    }
                    _ => None,
                },
            };
            let Some(sizes) = sizes else {
                // Unknown pieces: the sequence still holds the input's bytes.
                return one(RuleOut::known(elem, &[super::dims::count(&shape)?]));
            };
            let keep = input(node, 1).is_some() || attr(node, "keepdims").map_or(1, |a| a.i()) != 0;
            let elems: Vec<Typed> = sizes
                .iter()
                .map(|&k| {
                    let mut s = shape.clone();
                    if keep {
                        s[ax] = k;
                    } else {
                        s.remove(ax);
                    }
                    (elem, s)
                })
                .collect();
            record_sequence(ctx, node, elems.clone());
            one(sequence_out(elem, &elems)?)
        }
        "SequenceInsert" => {
            let mut elems = known_sequence(ctx, node, 0)?;
            let t = typed(1)?;
            let at = position(values(2), elems.len(), elems.len() + 1, elems.len())?;
            elems.insert(at, t.clone());
            record_sequence(ctx, node, elems.clone());
            one(sequence_out(t.0, &elems)?)
        }
        "SequenceErase" => {
            let mut elems = known_sequence(ctx, node, 0)?;
            let elem = typed(0)?.0;
            let at = position(values(1), elems.len(), elems.len(), elems.len().checked_sub(1)?)?;
            elems.remove(at);
            record_sequence(ctx, node, elems.clone());
            one(sequence_out(elem, &elems)?)
        }
        "SequenceAt" => {
            let elems = known_sequence(ctx, node, 0)?;
            let at = position(Some(values(1)?), elems.len(), elems.len(), 0)?;
            let (elem, shape) = elems.get(at)?.clone();
            one(RuleOut::known(elem, &shape))
        }
        "ConcatFromSequence" => {
            let elems = known_sequence(ctx, node, 0)?;
            let (elem, first) = elems.first()?.clone();
            let new_axis = attr(node, "new_axis").map_or(0, |a| a.i()) != 0;
            let ax = axis(attr(node, "axis")?.i(), first.len() + usize::from(new_axis))?;
            if new_axis {
                if !elems.iter().all(|(_, s)| *s == first) {
                    return None;
                }
                let mut s = first.clone();
                s.insert(ax, elems.len() as u64);
                one(RuleOut::known(elem, &s))
            } else {
                one(RuleOut::known(elem, &concatenated(&elems, ax)?))
            }
        }
        "SequenceLength" | "OptionalHasElement" => {
            one(RuleOut::known(if node.op_type() == "SequenceLength" { INT64 } else { BOOL }, &[]))
        }
        "Optional" | "OptionalGetElement" | "Identity" => {
            let (elem, shape) = typed(0)?;
            one(RuleOut::known(elem, &shape))
        }
        "If" => if_rule(node, ctx, lookup),
        "Loop" => loop_rule(node, ctx, lookup),
        "Scan" if opset(ctx.model) >= 9 => scan_rule(node, ctx, lookup),
        _ => None,
    }
}

/// A sequence's size: its elements stacked along a new first dim when they
/// all have one shape, else one flat dim of all their elements (the same
/// bytes either way).
fn sequence_out(elem: i32, elems: &[Typed]) -> Option<RuleOut> {
    match elems.first() {
        Some((_, first)) if elems.iter().all(|(e, s)| *e == elem && s == first) => {
            let mut dims = vec![elems.len() as u64];
            dims.extend(first);
            Some(RuleOut::known(elem, &dims))
        }
        _ => {
            let total = elems.iter().try_fold(0u64, |acc, (_, s)| acc.checked_add(super::dims::count(s)?))?;
            Some(RuleOut::known(elem, &[total]))
        }
    }
}

fn record_sequence(ctx: &Ctx, node: &pb::NodeProto, elems: Vec<Typed>) {
    if let Some(out) = node.output.first().filter(|o| !o.is_empty()) {
        ctx.sequences.borrow_mut().insert(out.clone(), elems);
    }
}

/// The elements of the sequence input `i`, when a rule built it.
fn known_sequence(ctx: &Ctx, node: &pb::NodeProto, i: usize) -> Option<Vec<Typed>> {
    ctx.sequences.borrow().get(input(node, i)?).cloned()
}

/// A sequence position of a sequence of `len` elements: a negative one
/// counts from the end (`p + len`), the result must be below `bound` (`len`
/// to read or erase, `len + 1` to insert); `default` when the input is
/// absent, `None` when it is not a constant or out of range.
fn position(values: Option<&Vec<f64>>, len: usize, bound: usize, default: usize) -> Option<usize> {
    let Some(v) = values else { return Some(default) };
    let p = *v.first().filter(|_| v.len() == 1)? as i64;
    let p = if p < 0 { p + len as i64 } else { p };
    usize::try_from(p).ok().filter(|&p| p < bound)
}

fn input_rank(node: &pb::NodeProto, i: usize, lookup: &dyn Fn(&str) -> Option<Typed>) -> Option<usize> {
    input(node, i).and_then(lookup).map(|(_, s)| s.len())
}

fn body<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::GraphProto> {
    attr(node, name).and_then(|a| a.g.as_ref())
}

/// Sizes a body graph as a model of its own: `formal` types its declared
/// inputs (in order), outer-scope values come from `lookup`.
fn run_body(
    g: &pb::GraphProto,
    formal: &[Typed],
    ctx: &Ctx,
    lookup: &dyn Fn(&str) -> Option<Typed>,
) -> Result<BodyRun, String> {
    if formal.len() != g.input.len() {
        return Err(format!("its body has {} inputs, expected {}", g.input.len(), formal.len()));
    }
    let mut sub = g.clone();
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name()).collect();
    sub.input = g
        .input
        .iter()
        .zip(formal)
        .map(|(vi, (elem, shape))| super::prepare::typed_value_info(vi.name(), *elem, shape))
        .collect();
    for name in crate::graph::build::outer_reads(g) {
        if inits.contains(name.as_str()) {
            continue;
        }
        let (elem, shape) =
            lookup(&name).ok_or_else(|| format!("the outer value `{name}` it reads has no size yet"))?;
        // A small outer constant stays a constant: shape computations in the
        // body may read its values.
        if let Some(t) = ctx.consts.get(&name).and_then(|v| constant_tensor(&name, elem, &shape, v)) {
            sub.initializer.push(t);
        } else {
            sub.input.push(super::prepare::typed_value_info(&name, elem, &shape));
        }
    }
    let model = pb::ModelProto {
        ir_version: ctx.model.ir_version,
        opset_import: ctx.model.opset_import.clone(),
        graph: Some(sub),
        ..Default::default()
    };
    let opts = SizeOptions { dims: ctx.opts.dims.clone(), input_shapes: Vec::new(), unknown_dim: ctx.opts.unknown_dim };
    let Sizes { tensors, assumptions, unknown_dim } =
        super::infer(&model, &opts).map_err(|e| format!("its body cannot be sized: {e}"))?;
    let guessed = unknown_dim.is_some_and(|u| !u.tensors.is_empty());
    // (that the flag was not needed inside is no news to the user)
    let notes = assumptions.into_iter().filter(|a| !a.ends_with(super::UNKNOWN_DIM_NOT_NEEDED)).collect();
    let outs = g
        .output
        .iter()
        .map(|o| {
            tensors
                .get(o.name())
                .map(|t| (t.elem_type, t.shape.clone()))
                .ok_or_else(|| format!("its body output `{}` has no size", o.name()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BodyRun { outs, notes, guessed })
}

/// A tensor holding `values` as type `elem`, for the types whose values
/// shapes are made of.
fn constant_tensor(name: &str, elem: i32, shape: &[u64], values: &[f64]) -> Option<pb::TensorProto> {
    let mut t = pb::TensorProto {
        name: Some(name.to_string()),
        dims: shape.iter().map(|&d| i64::try_from(d).ok()).collect::<Option<Vec<_>>>()?,
        data_type: Some(elem),
        ..Default::default()
    };
    if super::dims::count(shape)? != values.len() as u64 {
        return None;
    }
    match elem {
        INT64 => t.int64_data = values.iter().map(|&v| v as i64).collect(),
        INT32 | BOOL | INT8 | UINT8 | INT16 | UINT16 => t.int32_data = values.iter().map(|&v| v as i32).collect(),
        FLOAT => t.float_data = values.iter().map(|&v| v as f32).collect(),
        DOUBLE => t.double_data = values.to_vec(),
        _ => return None,
    }
    Some(t)
}

fn bytes(t: &Typed) -> u64 {
    super::sized(t.0, &t.1).unwrap_or(0)
}

fn if_rule(node: &pb::NodeProto, ctx: &Ctx, lookup: &dyn Fn(&str) -> Option<Typed>) -> Option<Applied> {
    let cond = input(node, 0)?;
    let taken = ctx.consts.get(cond).and_then(|v| v.first()).map(|&c| c != 0.0);
    let run = |name: &str| match body(node, name) {
        Some(g) => run_body(g, &[], ctx, lookup),
        None => Err(format!("it has no {name}")),
    };
    let mut notes = Vec::new();
    let guessed;
    let outs: Vec<Typed> = match taken {
        Some(t) => {
            let r = match run(if t { "then_branch" } else { "else_branch" }) {
                Ok(x) => x,
                Err(e) => return Applied::failed(e),
            };
            notes.extend(r.notes);
            guessed = r.guessed;
            r.outs
        }
        None => {
            let ra = match run("then_branch") {
                Ok(x) => x,
                Err(e) => return Applied::failed(format!("then branch: {e}")),
            };
            let rb = match run("else_branch") {
                Ok(x) => x,
                Err(e) => return Applied::failed(format!("else branch: {e}")),
            };
            guessed = ra.guessed || rb.guessed;
            notes.extend(ra.notes.into_iter().chain(rb.notes));
            let (a, b) = (ra.outs, rb.outs);
            if a.len() != b.len() {
                return None;
            }
            let mut differ = Vec::new();
            let outs = a
                .into_iter()
                .zip(b)
                .enumerate()
                .map(|(i, (x, y))| {
                    if x != y {
                        differ.push(format!(
                            "`{}`: then {} {:?}, else {} {:?}",
                            node.output.get(i).map_or("", String::as_str),
                            super::elem_name(x.0),
                            x.1,
                            super::elem_name(y.0),
                            y.1
                        ));
                    }
                    if bytes(&y) > bytes(&x) {
                        y
                    } else {
                        x
                    }
                })
                .collect();
            if let Some(first) = differ.first() {
                notes.push(format!(
                    "If node \"{}\": the branches' outputs differ ({first}{}); each output counts as the larger",
                    node.name(),
                    if differ.len() > 1 { format!(" and {} more", differ.len() - 1) } else { String::new() }
                ));
            }
            outs
        }
    };
    Some(Applied {
        outs: outs.iter().map(|(e, s)| Some(RuleOut::known(*e, s))).collect(),
        notes,
        failure: None,
        guessed,
    })
}

/// The types of the declared inputs of a Loop or Scan body, from the types
/// of the node's inputs: for Loop the iteration count, the condition and the
/// loop-carried values; for Scan the states and one slice of each scanned
/// input (along its `scan_input_axes`), with the scanned length (`None`
/// without scanned inputs). `Err` says why they cannot be known.
pub(crate) fn body_formals(
    node: &pb::NodeProto,
    lookup: &dyn Fn(&str) -> Option<Typed>,
) -> Result<(Vec<Typed>, Option<u64>), String> {
    let known = |name: &str| lookup(name).ok_or_else(|| format!("the size of its input `{name}` is unknown"));
    match node.op_type() {
        "Loop" => {
            let mut formal = vec![(INT64, vec![]), (BOOL, vec![])];
            for name in node.input.iter().skip(2) {
                formal.push(known(name)?);
            }
            Ok((formal, None))
        }
        "Scan" => {
            let m = attr(node, "num_scan_inputs")
                .and_then(|a| usize::try_from(a.i()).ok())
                .ok_or("it has no num_scan_inputs")?;
            let all: Vec<Typed> = node.input.iter().map(|n| known(n)).collect::<Result<_, _>>()?;
            let states = all.len().checked_sub(m).ok_or("it has fewer inputs than num_scan_inputs")?;
            let axes = attr(node, "scan_input_axes").map(|a| a.ints.clone()).unwrap_or_default();
            let mut formal = all[..states].to_vec();
            let mut seq_len = None;
            for (k, (elem, shape)) in all[states..].iter().enumerate() {
                let ax = axis(axes.get(k).copied().unwrap_or(0), shape.len()).ok_or("a scan axis is out of range")?;
                seq_len.get_or_insert(shape[ax]);
                let mut s = shape.clone();
                s.remove(ax);
                formal.push((*elem, s));
            }
            Ok((formal, seq_len))
        }
        other => Err(format!("bodies of {other} nodes are not modelled")),
    }
}

fn loop_rule(node: &pb::NodeProto, ctx: &Ctx, lookup: &dyn Fn(&str) -> Option<Typed>) -> Option<Applied> {
    let g = body(node, "body")?;
    let (formal, _) = body_formals(node, lookup).ok()?;
    let carried = &formal[2..];
    let BodyRun { outs, notes, guessed } = match run_body(g, &formal, ctx, lookup) {
        Ok(x) => x,
        Err(e) => return Applied::failed(e),
    };
    // body outputs: cond, carried..., scan outputs...
    // The trip count is M when nothing can stop the loop earlier: no
    // condition, or a constant true one that the body passes on unchanged.
    let m = input(node, 0).and_then(|m| ctx.consts.get(m)).filter(|m| m.len() == 1 && m[0] >= 0.0);
    let runs_to_m = match input(node, 1) {
        None => true,
        Some(c) => ctx.consts.get(c).is_some_and(|v| v.len() == 1 && v[0] != 0.0) && condition_passes_through(g),
    };
    let trip = m.filter(|_| runs_to_m).map(|m| m[0] as u64);
    let mut result = Vec::new();
    for (k, (elem, shape)) in outs.iter().enumerate().skip(1) {
        if let Some((_, init)) = carried.get(k - 1) {
            let dims = if init.len() == shape.len() {
                shape.iter().zip(init).map(|(&a, &b)| (a == b).then_some(a)).collect()
            } else {
                return None;
            };
            result.push(Some(RuleOut { elem: *elem, dims }));
        } else {
            let mut dims = vec![trip];
            dims.extend(shape.iter().map(|&d| Some(d)));
            result.push(Some(RuleOut { elem: *elem, dims }));
        }
    }
    Some(Applied { outs: result, notes, failure: None, guessed })
}

/// Whether a Loop body's condition output is its condition input, as is or
/// through one `Identity`: then a loop started with a true condition never
/// stops before its trip count.
fn condition_passes_through(g: &pb::GraphProto) -> bool {
    let (Some(c_in), Some(c_out)) = (g.input.get(1).map(|v| v.name()), g.output.first().map(|v| v.name())) else {
        return false;
    };
    c_in == c_out
        || g.node.iter().any(|n| {
            n.op_type() == "Identity"
                && n.output.first().map(String::as_str) == Some(c_out)
                && n.input.first().map(String::as_str) == Some(c_in)
        })
}

fn scan_rule(node: &pb::NodeProto, ctx: &Ctx, lookup: &dyn Fn(&str) -> Option<Typed>) -> Option<Applied> {
    let g = body(node, "body")?;
    let (formal, seq_len) = body_formals(node, lookup).ok()?;
    let seq_len = seq_len?;
    let m = usize::try_from(attr(node, "num_scan_inputs")?.i()).ok()?;
    let n_states = node.input.len().checked_sub(m)?;
    let out_axes = attr(node, "scan_output_axes").map(|a| a.ints.clone()).unwrap_or_default();
    let BodyRun { outs, notes, guessed } = match run_body(g, &formal, ctx, lookup) {
        Ok(x) => x,
        Err(e) => return Applied::failed(e),
    };
    let mut result = Vec::new();
    for (k, (elem, shape)) in outs.iter().enumerate() {
        if k < n_states {
            result.push(Some(RuleOut::known(*elem, shape)));
        } else {
            let ax = axis(out_axes.get(k - n_states).copied().unwrap_or(0), shape.len() + 1)?;
            let mut s = shape.clone();
            s.insert(ax, seq_len);
            result.push(Some(RuleOut::known(*elem, &s)));
        }
    }
    Some(Applied { outs: result, notes, failure: None, guessed })
}
