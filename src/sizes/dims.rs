//! Symbolic dimensions: binding `dim_param`s to numbers.
//!
//! A `dim_param` is either a symbol declared by the model (`batch` on a graph
//! input) or a formula the exporter derived from such symbols (`128*batch`).
//! [`Symbols::param`] gives its value:
//!
//! 1. a `--dim` whose name is the whole `dim_param` string wins;
//! 2. otherwise, if the string is an arithmetic expression (see
//!    [`super::expr`]) all of whose symbols are *known* (bound with `--dim`, or
//!    declared as a whole `dim_param` on a graph input or output), it is
//!    evaluated, an unbound declared symbol counting as 1;
//! 3. otherwise the whole string is one opaque symbol (`batch-size`,
//!    `unk__3`): 1, unless bound.
//!
//! Rule 2 only trusts expressions over known symbols so that a name such as
//! `batch-size` is not read as `batch - size`. Each symbol assumed to be 1 is
//! reported once in [`Symbols::assumptions`].

use std::collections::{HashMap, HashSet};

use super::dtype;
use super::expr;
use crate::onnx::pb;
use pb::tensor_shape_proto::dimension::Value as Dim;

/// Symbol values and what was assumed about the unbound ones.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    /// `--dim` bindings.
    bound: HashMap<String, i64>,
    /// Symbols that may appear inside expressions: declared or bound.
    known: HashSet<String>,
    /// Unbound symbols taken as 1, in order of first use.
    assumed: Vec<String>,
    assumed_set: HashSet<String>,
    /// Other assumptions (inputs with missing dims, unused `--dim`s), in order.
    notes: Vec<String>,
}

/// A concrete tensor type: element type and shape.
pub(crate) type Concrete = (i32, Vec<u64>);

impl Symbols {
    /// Binds `dims` (validated by the caller) and learns the declared symbols
    /// of `graph`'s inputs and outputs. A `--dim` that names nothing in the
    /// graph's inputs, outputs or value_info is noted as unused.
    pub fn new(dims: &[(String, i64)], graph: &pb::GraphProto) -> Symbols {
        let mut s = Symbols::default();
        for (name, value) in dims {
            s.bound.insert(name.trim().to_string(), *value);
            s.known.insert(name.trim().to_string());
        }
        for vi in graph.input.iter().chain(&graph.output) {
            for p in params(vi) {
                if expr::parse(p).is_ok_and(|e| e.is_symbol()) {
                    s.known.insert(p.trim().to_string());
                }
            }
        }
        if !dims.is_empty() {
            let mut mentioned: HashSet<String> = HashSet::new();
            let mut seen: HashSet<&str> = HashSet::new();
            for vi in graph.input.iter().chain(&graph.output).chain(&graph.value_info) {
                for p in params(vi) {
                    if !seen.insert(p) {
                        continue;
                    }
                    mentioned.insert(p.trim().to_string());
                    if let Ok(e) = expr::parse(p) {
                        let mut syms = Vec::new();
                        e.symbols(&mut syms);
                        mentioned.extend(syms.into_iter().map(str::to_string));
                    }
                }
            }
            for (name, value) in dims {
                if !mentioned.contains(name.trim()) {
                    s.notes.push(format!(
                        "--dim {name}={value} was not used: no dimension of the model's inputs, outputs or value_info is named `{name}`"
                    ));
                }
            }
        }
        s
    }

    fn symbol(&mut self, name: &str) -> i64 {
        if let Some(&v) = self.bound.get(name) {
            return v;
        }
        if self.assumed_set.insert(name.to_string()) {
            self.assumed.push(name.to_string());
        }
        1
    }

    /// The value of a `dim_param` (see the module doc), or why it has none.
    pub fn param(&mut self, param: &str) -> Result<u64, String> {
        let p = param.trim();
        if let Some(&v) = self.bound.get(p) {
            return u64::try_from(v).map_err(|_| format!("--dim {p}={v} is negative"));
        }
        let parsed = expr::parse(p).ok().filter(|e| {
            let mut syms = Vec::new();
            e.symbols(&mut syms);
            syms.iter().all(|s| self.known.contains(*s))
        });
        let value = match parsed {
            Some(e) => e
                .eval_int(&mut |s| self.symbol(s))
                .map_err(|err| format!("dimension `{p}` cannot be evaluated: {err}"))?,
            None => i128::from(self.symbol(p)),
        };
        if value < 0 {
            return Err(format!("dimension `{p}` evaluates to {value}, which is negative"));
        }
        u64::try_from(value)
            .map_err(|_| format!("dimension `{p}` evaluates to {value}, which is too large (more than 2^64 - 1)"))
    }

    /// Records an assumption that is not about a symbol.
    pub fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    /// Every assumption made so far, symbols first.
    pub fn assumptions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .assumed
            .iter()
            .map(|s| {
                // An expression over unknown symbols (`2*seq` where `seq` is
                // declared nowhere): binding its symbols makes it evaluate.
                let mut syms = Vec::new();
                let parsed = expr::parse(s).ok();
                if let Some(e) = parsed.as_ref().filter(|e| !e.is_symbol()) {
                    e.symbols(&mut syms);
                }
                let mut unique: Vec<&str> = Vec::new();
                for x in syms {
                    if !unique.contains(&x) {
                        unique.push(x);
                    }
                }
                let value = |x: &str| if x == "N" { "VALUE" } else { "N" };
                if unique.is_empty() {
                    format!("symbol `{s}` unbound: assumed 1 (bind it with --dim {s}={})", value(s))
                } else {
                    let flags: Vec<String> = unique.iter().map(|x| format!("--dim {x}={}", value(x))).collect();
                    format!("dimension `{s}` unbound: assumed 1 (bind it with {})", flags.join(" "))
                }
            })
            .collect();
        out.extend(self.notes.iter().cloned());
        out
    }

    /// The concrete type of a value_info entry: element type and every
    /// dimension known (`dim_value`, or a `dim_param` that [`Self::param`]
    /// evaluates). A dimension with neither is not concrete.
    pub fn value_info(&mut self, vi: &pb::ValueInfoProto) -> Result<Concrete, String> {
        let tt = tensor_type(vi)?;
        let elem = tt.elem_type();
        if dtype::elem_bits(elem).is_none() && elem != dtype::code::STRING {
            return Err(format!("its element type {} has no fixed size", dtype::elem_name(elem)));
        }
        let shape = tt.shape.as_ref().ok_or("its value_info has no shape")?;
        let mut dims = Vec::with_capacity(shape.dim.len());
        for (axis, d) in shape.dim.iter().enumerate() {
            dims.push(match &d.value {
                Some(Dim::DimValue(v)) if *v >= 0 => *v as u64,
                Some(Dim::DimParam(p)) => self.param(p)?,
                // No value and no name: an unknown dim like an unbound
                // symbol, so 1, and said.
                _ => {
                    let name = vi.name();
                    let note = format!(
                        "value_info of `{name}`: dimension {axis} has neither value nor name: assumed 1 (as an unbound symbol)"
                    );
                    if !self.notes.contains(&note) {
                        self.notes.push(note);
                    }
                    1
                }
            });
        }
        Ok((elem, dims))
    }

    /// The concrete type of graph input `vi`: its declared type with
    /// `override_shape` (from `--input-shape`) replacing the shape. A
    /// dimension with neither value nor name counts as 1, and that is noted.
    pub fn graph_input(&mut self, vi: &pb::ValueInfoProto, override_shape: Option<&[u64]>) -> Result<Concrete, String> {
        let name = vi.name();
        let tt = tensor_type(vi)?;
        let elem = tt.elem_type();
        if elem == dtype::code::UNDEFINED {
            return Err("its element type is not declared".into());
        }
        if let Some(shape) = override_shape {
            return Ok((elem, shape.to_vec()));
        }
        let shape = tt.shape.as_ref().ok_or("its shape is not declared (not even its rank)")?;
        let mut dims = Vec::with_capacity(shape.dim.len());
        for (axis, d) in shape.dim.iter().enumerate() {
            dims.push(match &d.value {
                Some(Dim::DimValue(v)) if *v >= 0 => *v as u64,
                Some(Dim::DimValue(v)) => {
                    return Err(format!("its dimension {axis} is {v}, and a dimension cannot be negative (invalid ONNX)"))
                }
                Some(Dim::DimParam(p)) => self.param(p)?,
                _ => {
                    self.notes.push(format!(
                        "graph input `{name}` dimension {axis} has no size: assumed 1 (set the shape with --input-shape {name}=D0x...)"
                    ));
                    1
                }
            });
        }
        Ok((elem, dims))
    }
}

/// The tensor type of a value_info, or why it has none.
fn tensor_type(vi: &pb::ValueInfoProto) -> Result<&pb::type_proto::Tensor, String> {
    use pb::type_proto::Value;
    match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(t)) => Ok(t),
        Some(Value::SequenceType(_)) => Err("it is a sequence, not a tensor".into()),
        Some(Value::MapType(_)) => Err("it is a map, not a tensor".into()),
        Some(Value::OptionalType(_)) => Err("it is an optional, not a tensor".into()),
        Some(Value::SparseTensorType(_)) => Err("it is a sparse tensor".into()),
        Some(Value::OpaqueType(_)) => Err("it is an opaque value, not a tensor".into()),
        None => Err("its type is not declared".into()),
    }
}

/// The tensor type inside a type: the type itself, or the element of a
/// sequence or optional (recursively); with whether a sequence was crossed.
pub(crate) fn element_tensor(t: &pb::TypeProto) -> Option<(&pb::type_proto::Tensor, bool)> {
    use pb::type_proto::Value;
    match t.value.as_ref()? {
        Value::TensorType(tt) => Some((tt, false)),
        Value::SequenceType(s) => element_tensor(s.elem_type.as_deref()?).map(|(tt, _)| (tt, true)),
        Value::OptionalType(o) => element_tensor(o.elem_type.as_deref()?),
        _ => None,
    }
}

/// The `dim_param` strings of a value_info.
fn params(vi: &pb::ValueInfoProto) -> impl Iterator<Item = &str> {
    let dims = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| s.dim.as_slice()),
        _ => None,
    };
    dims.unwrap_or(&[]).iter().filter_map(|d| match &d.value {
        Some(Dim::DimParam(p)) => Some(p.as_str()),
        _ => None,
    })
}

/// Number of elements of a shape, `None` on overflow.
pub(crate) fn count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}
