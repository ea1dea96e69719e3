//! Running tract's shape inference on a [`super::prepare::Prepared`] model.
//!
//! tract is a library written for well-formed models it can run; on the
//! models a user hands this tool it may return an error or even panic. Every
//! call into it is therefore wrapped in `catch_unwind` (silently: module
//! `quiet`), and errors are turned
//! into text for the caller, who falls back on the file's value_info. Loading
//! retries with the nodes whose builders failed hidden (see [`load`]);
//! analysis runs in tract's *obstinate* mode, which keeps going past nodes it
//! cannot analyse, so one bad node costs only the tensors that depend on it.

use std::any::Any;
use std::collections::HashMap;
use std::ops::Not;

use tract_onnx::model::{ParseResult, ParsingContext};
use tract_onnx::prelude::{InferenceFact, InferenceModel, InferenceModelExt, OutletId, TVec};
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::Onnx;

use super::dtype;
use super::prepare::{prepare, Prepared};
use super::quiet;
use crate::onnx::pb;

/// Longest tract error text kept in messages.
const MAX_ERROR_CHARS: usize = 300;

/// How many times loading is retried with more nodes hidden.
const LOAD_ATTEMPTS: usize = 4;

/// What tract knows about one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fact {
    /// ONNX element type, when tract knows it.
    pub elem_type: Option<i32>,
    /// Shape, when tract knows every dimension.
    pub shape: Option<Vec<u64>>,
}

/// What tract knows about a tensor whose shape it does not fully know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partial {
    /// ONNX element type, when tract knows it.
    pub elem_type: Option<i32>,
    /// Each dim, `None` where unknown; `None` as a whole when the rank is.
    pub dims: Option<Vec<Option<u64>>>,
}

/// A loaded and analysed tract model with its ONNX name table.
pub(crate) struct Analysed {
    model: InferenceModel,
    outlets: HashMap<String, OutletId>,
}

/// The outcome of [`load`].
pub(crate) struct Loaded {
    /// The model, unless tract refused it even with nodes hidden.
    pub model: Option<Analysed>,
    /// User's nodes left out of the tract model, with the reason.
    pub hidden: Vec<(usize, String)>,
    /// Why tract refused the model, when it did.
    pub failure: Option<String>,
    /// Node outputs sized by arithmetic instead of tract (module `fold`):
    /// (node, output, elem_type, shape).
    pub sized: Vec<(usize, String, i32, Vec<u64>)>,
}

/// The tract framework as used here: value_info is ignored (the caller
/// decides where it is trusted) and no external data is ever read (the model
/// is parsed without a directory, so tract errors instead of opening files).
pub(crate) fn framework() -> Onnx {
    tract_onnx::onnx().with_ignore_value_info(true).with_ignore_output_shapes(true)
}

fn shorten(mut s: String) -> String {
    if s.len() > MAX_ERROR_CHARS {
        let mut cut = MAX_ERROR_CHARS;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

fn panic_text(p: Box<dyn Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    shorten(format!("tract panicked: {msg}"))
}

fn parse(onnx: &Onnx, proto: &tract_onnx::pb::ModelProto) -> Result<ParseResult, String> {
    match quiet::catch(|| onnx.parse(proto, None)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(shorten(format!("{e:#}"))),
        Err(p) => Err(panic_text(p)),
    }
}

/// Runs tract's builder on every top-level node alone and returns the
/// (tract-model) indices of those that fail, with the error.
fn failing_nodes(onnx: &Onnx, proto: &tract_onnx::pb::ModelProto) -> Vec<(usize, String)> {
    let Some(graph) = proto.graph.as_ref() else {
        return Vec::new();
    };
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(0);
    let ctx = ParsingContext {
        onnx_operator_set_version: opset,
        framework: onnx,
        model: proto,
        parent_graphs: vec![graph],
        model_dir: None,
        template: InferenceModel::default(),
    };
    let mut failing = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        let Some(builder) = onnx.op_register.0.get(&node.op_type) else {
            continue;
        };
        match quiet::catch(|| builder(&ctx, node)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failing.push((i, shorten(format!("tract cannot load it: {e:#}")))),
            Err(p) => failing.push((i, panic_text(p))),
        }
    }
    failing
}

/// Prepares the model for tract and loads it, leaving out the nodes of
/// `preset` (user's node index, why). When tract refuses the model,
/// the nodes whose builders fail are hidden and loading is retried; if it
/// still fails (or no single node is to blame) the model is `None` and the
/// caller sizes everything from value_info.
pub(crate) fn load(
    model: &pb::ModelProto,
    graph: &pb::GraphProto,
    inputs: &HashMap<String, (i32, Vec<u64>)>,
    preset: &[(usize, String)],
) -> Loaded {
    let onnx = framework();
    let registered = |op: &str| onnx.op_register.0.contains_key(op);
    let mut hide: HashMap<usize, String> = preset.iter().cloned().collect();
    let mut last_error = String::new();
    let mut hidden = Vec::new();
    let mut sized = Vec::new();
    for _ in 0..LOAD_ATTEMPTS {
        let Prepared { model: proto, node_map, hidden: h, sized: s } =
            match prepare(model, graph, inputs, &hide, &registered) {
                Ok(p) => p,
                Err(e) => return Loaded { model: None, hidden, failure: Some(e), sized },
            };
        hidden = h;
        sized = s;
        match parse(&onnx, &proto) {
            Ok(r) => {
                let analysed = Analysed { model: r.model, outlets: r.outlets_by_name };
                return Loaded { model: Some(analysed), hidden, failure: None, sized };
            }
            Err(e) => {
                last_error = e;
                let mut new = false;
                for (ix, why) in failing_nodes(&onnx, &proto) {
                    if let Some(&user_ix) = node_map.get(ix) {
                        new |= hide.insert(user_ix, why).is_none();
                    }
                }
                if !new {
                    break;
                }
            }
        }
    }
    Loaded { model: None, hidden, failure: Some(last_error), sized }
}

impl Analysed {
    /// Runs (or re-runs) the analysis. Returns tract's first error, if any:
    /// the facts it could infer are kept either way.
    pub fn analyse(&mut self) -> Option<String> {
        match quiet::catch(|| self.model.analyse(true)) {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(shorten(format!("{e:#}"))),
            Err(p) => Some(panic_text(p)),
        }
    }

    /// What tract knows about tensor `name`; `None` if tract has no such tensor.
    pub fn fact(&self, name: &str) -> Option<Fact> {
        let outlet = *self.outlets.get(name)?;
        let read = || {
            let f = self.model.outlet_fact(outlet).ok()?;
            let elem_type = f.datum_type.concretize().and_then(dtype::from_tract);
            let shape = f.shape.as_concrete_finite().ok().flatten().map(|s| s.iter().map(|&d| d as u64).collect());
            Some(Fact { elem_type, shape })
        };
        quiet::catch(read).ok().flatten()
    }

    /// The values of tensor `name` when tract's analysis derived them (a
    /// shape computation folded to a constant, such as `Size` of a tensor of
    /// known shape compared with a number), as numbers; `None` when unknown,
    /// not numeric, or longer than `max` values.
    pub fn values(&self, name: &str, max: usize) -> Option<Vec<f64>> {
        let outlet = *self.outlets.get(name)?;
        let read = || -> Option<Vec<f64>> {
            let f = self.model.outlet_fact(outlet).ok()?;
            let t = f.value.concretize()?;
            if t.len() > max {
                return None;
            }
            let t = if t.datum_type() == tract_onnx::prelude::DatumType::TDim {
                t.cast_to::<i64>().ok()?.into_owned()
            } else {
                t.as_ref().clone()
            };
            let t = t.cast_to::<f64>().ok()?;
            Some(t.to_plain_array_view::<f64>().ok()?.iter().copied().collect())
        };
        quiet::catch(read).ok().flatten()
    }

    /// The name tract gives the node its analysis `error` (from
    /// [`Self::analyse`]) failed on: the ONNX node's name, else its first
    /// output's (as tract-onnx names nodes).
    pub fn failed_node(&self, error: &str) -> Option<String> {
        let rest = &error[error.find("Failed analyse for node #")? + "Failed analyse for node #".len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let ix: usize = digits.parse().ok()?;
        quiet::catch(|| self.model.nodes().get(ix).map(|n| n.name.clone())).ok().flatten()
    }

    /// What tract knows about tensor `name`, dim by dim; `None` if tract has
    /// no such tensor.
    pub fn partial(&self, name: &str) -> Option<Partial> {
        let outlet = *self.outlets.get(name)?;
        let f = self.model.outlet_fact(outlet).ok()?;
        let elem_type = f.datum_type.concretize().and_then(dtype::from_tract);
        let dims = f.shape.is_open().not().then(|| {
            f.shape
                .dims()
                .map(|d| d.concretize().and_then(|d| d.to_i64().ok()).and_then(|d| u64::try_from(d).ok()))
                .collect()
        });
        Some(Partial { elem_type, dims })
    }

    /// Tells tract that tensor `name` has this type (taken from the file's
    /// value_info or a rule), so that it can infer what depends on it.
    /// Returns whether the fact was taken (it is not when it contradicts what
    /// tract already knows).
    ///
    /// An INT64 tensor's type is set only where tract takes it: tract
    /// computes shapes as its own `TDim` type, which does not unify with
    /// `i64`, so when the typed fact is refused the shape alone is given
    /// (what reads the tensor is then typed by the tool's rules).
    pub fn inject(&mut self, name: &str, elem_type: i32, dims: &[u64]) -> bool {
        let Some(&outlet) = self.outlets.get(name) else {
            return false;
        };
        let Ok(dims) = dims.iter().map(|&d| usize::try_from(d)).collect::<Result<TVec<usize>, _>>() else {
            return false;
        };
        let shape_only = InferenceFact::shape(dims);
        let typed = dtype::to_tract(elem_type).map(|dt| shape_only.clone().with_datum_type(dt));
        let model = &mut self.model;
        let mut set = |fact: &InferenceFact| -> bool {
            let done = quiet::catch(|| -> bool {
                let Ok(old) = model.outlet_fact(outlet) else {
                    return false;
                };
                match old.unify(fact) {
                    Ok(unified) => model.set_outlet_fact(outlet, unified).is_ok(),
                    Err(_) => false,
                }
            });
            done.unwrap_or(false)
        };
        match typed {
            Some(t) if set(&t) => true,
            Some(_) if elem_type == dtype::code::INT64 => set(&shape_only),
            Some(_) => false,
            None => set(&shape_only),
        }
    }
}
