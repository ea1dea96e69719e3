//! Guarding tract against shape values it would fold into huge tensors or
//! truncate.
//!
//! tract evaluates every node whose inputs are all constants while it
//! analyses a model (constant folding). A model of a hundred bytes can thus
//! make it build a tensor of gigabytes (`ConstantOfShape([2^30])`) or try an
//! allocation of terabytes (`Pad` of a constant by 10^6), although the tool
//! only needs the *size* of that tensor. And shape values beyond 32 bits
//! (`Expand` to `[2^32 + 5]`) are not handled faithfully by tract's shape
//! inference: sizes would silently come out wrong.
//!
//! So before tract sees the graph, [`guard`] looks at every node that
//! creates elements from shape values — `ConstantOfShape`, `Expand`, `Tile`,
//! `Range`, `Pad`, `OneHot`, `Resize`, `Upsample` — whose shape-giving inputs
//! are constants stored in the model (initializers, `Constant` nodes), and
//! computes its output shape by its ONNX definition:
//!
//! - if tract would fold it into more than [`FOLD_LIMIT`] elements, or a
//!   shape value or output dimension is beyond [`TRACT_DIM_LIMIT`], the node
//!   is [`Decision::Sized`]: tract never sees it (its output is given to
//!   tract as a typed input where its dims are small enough, so what follows
//!   is still inferred), and its size is this arithmetic's;
//! - if the output shape cannot be computed here (an input shape that only
//!   tract knows) but a shape value is beyond [`TRACT_DIM_LIMIT`], the node
//!   is [`Decision::Hide`]: its outputs must come from the file's
//!   value_info, or sizing fails naming the node and the value;
//! - otherwise tract handles it as before.
//!
//! Shapes of outputs computed here feed later nodes (`Pad` of a
//! `ConstantOfShape`). Values are read only from constants stored in the
//! model, never computed, so this stays linear in the model's size. What
//! slips past (a shape vector computed by a chain of ops) is bounded by the
//! sizing worker's memory cap (module `isolate`).

use std::collections::HashMap;

use super::dtype::{self, code};
use super::rules::attr;
use crate::onnx::pb;

/// Most elements a tensor tract folds from constants may have (16 Mi:
/// 64 MiB of float32); larger ones are sized by arithmetic here.
pub(crate) const FOLD_LIMIT: u64 = 1 << 24;

/// Largest shape value or dimension given to tract (2^31 - 1).
pub(crate) const TRACT_DIM_LIMIT: u64 = i32::MAX as u64;

/// Most values read from one constant: shape vectors are short.
const MAX_VALUES: usize = 64;

/// What to do with one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The node's outputs have these types (output name, element type,
    /// shape), computed here; tract must not see the node.
    Sized(Vec<(String, i32, Vec<u64>)>),
    /// tract must not see the node, and its outputs have no size here: why.
    Hide(String),
}

/// A tensor stored in the model whose values may be read.
struct Known<'a> {
    elem: i32,
    dims: Vec<u64>,
    tensor: Option<&'a pb::TensorProto>,
    /// `value_int(s)` / `value_float(s)` of a `Constant`.
    ints: Option<Vec<i64>>,
    floats: Option<Vec<f32>>,
}

/// The values of a small integer tensor, `None` if it is not stored inline,
/// not an integer type, or too long.
fn int_values(t: &pb::TensorProto) -> Option<Vec<i64>> {
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return None;
    }
    let n = usize::try_from(super::dims::count(&super::prepare::tensor_dims(&t.dims)?)?).ok()?;
    if n > MAX_VALUES {
        return None;
    }
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let values: Vec<i64> = match (t.data_type(), raw) {
        (code::INT64, Some(r)) => {
            r.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
        }
        (code::INT32, Some(r)) => {
            r.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64).collect()
        }
        (code::INT64, None) => t.int64_data.clone(),
        (code::INT32 | code::INT16 | code::INT8 | code::UINT8 | code::UINT16, None) => {
            t.int32_data.iter().map(|&v| v as i64).collect()
        }
        _ => return None,
    };
    (values.len() == n).then_some(values)
}

/// The values of a small float tensor (Resize scales, Range bounds).
fn float_values(t: &pb::TensorProto) -> Option<Vec<f64>> {
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return None;
    }
    let n = usize::try_from(super::dims::count(&super::prepare::tensor_dims(&t.dims)?)?).ok()?;
    if n > MAX_VALUES {
        return None;
    }
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let values: Vec<f64> = match (t.data_type(), raw) {
        (code::FLOAT, Some(r)) => {
            r.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64).collect()
        }
        (code::DOUBLE, Some(r)) => {
            r.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
        }
        (code::FLOAT, None) => t.float_data.iter().map(|&v| v as f64).collect(),
        (code::DOUBLE, None) => t.double_data.clone(),
        _ => return None,
    };
    (values.len() == n).then_some(values)
}

impl Known<'_> {
    fn ints(&self) -> Option<Vec<i64>> {
        self.ints.clone().or_else(|| self.tensor.and_then(int_values))
    }
    fn floats(&self) -> Option<Vec<f64>> {
        if let Some(f) = &self.floats {
            return Some(f.iter().map(|&v| v as f64).collect());
        }
        let t = self.tensor?;
        float_values(t).or_else(|| int_values(t).map(|v| v.into_iter().map(|x| x as f64).collect()))
    }
}

/// Broadcasts two shapes by the numpy rule; `None` if they do not broadcast.
pub(super) fn broadcast(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for (i, slot) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        *slot = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

fn non_negative(v: &[i64]) -> Option<Vec<u64>> {
    v.iter().map(|&x| u64::try_from(x).ok()).collect()
}

/// Decides, for every top-level node, whether tract may see it (see the
/// module doc). `inputs` are the concrete types of the graph's inputs.
pub(crate) fn guard(graph: &pb::GraphProto, inputs: &HashMap<String, (i32, Vec<u64>)>) -> HashMap<usize, Decision> {
    let mut known: HashMap<&str, Known> = HashMap::new();
    for t in &graph.initializer {
        if let Some(dims) = super::prepare::tensor_dims(&t.dims) {
            known.insert(t.name(), Known { elem: t.data_type(), dims, tensor: Some(t), ints: None, floats: None });
        }
    }
    // Shapes known here: graph inputs, stored constants, outputs computed below.
    let mut shapes: HashMap<String, (i32, Vec<u64>)> = inputs.clone();
    for (name, k) in &known {
        shapes.insert(name.to_string(), (k.elem, k.dims.clone()));
    }
    // Tensors tract holds as constants (it folds nodes whose inputs all are).
    let mut constant: std::collections::HashSet<String> =
        known.keys().map(|s| s.to_string()).filter(|n| !inputs.contains_key(n)).collect();

    let mut decisions = HashMap::new();
    for (ix, node) in graph.node.iter().enumerate() {
        if super::prepare::is_constant(node) {
            if let (Some(out), Some((elem, dims, _))) = (node.output.first(), super::prepare::constant_value(node)) {
                if let Some(dims) = super::prepare::tensor_dims(&dims) {
                    let value = attr(node, "value");
                    let k = Known {
                        elem,
                        dims: dims.clone(),
                        tensor: value.and_then(|a| a.t.as_ref()),
                        ints: attr(node, "value_ints")
                            .map(|a| a.ints.clone())
                            .or_else(|| attr(node, "value_int").map(|a| vec![a.i()])),
                        floats: attr(node, "value_floats")
                            .map(|a| a.floats.clone())
                            .or_else(|| attr(node, "value_float").map(|a| vec![a.f()])),
                    };
                    known.insert(out.as_str(), k);
                    shapes.insert(out.clone(), (elem, dims));
                    constant.insert(out.clone());
                }
            }
            continue;
        }
        if !super::prepare::standard_domain(node) {
            continue;
        }
        let input = |i: usize| node.input.get(i).map(String::as_str).filter(|s| !s.is_empty());
        let all_constant = node.input.iter().filter(|i| !i.is_empty()).all(|i| constant.contains(i));
        let value_of = |i: usize| input(i).and_then(|n| known.get(n));
        let shape_of = |i: usize| input(i).and_then(|n| shapes.get(n)).cloned();
        // Values that set the output shape, and the output shape if computable.
        let (values, out): (Vec<i64>, Option<(i32, Vec<u64>)>) = match node.op_type() {
            "ConstantOfShape" => {
                let v = value_of(0).and_then(Known::ints).unwrap_or_default();
                let elem = attr(node, "value").and_then(|a| a.t.as_ref()).map_or(code::FLOAT, |t| t.data_type());
                let out = non_negative(&v).filter(|_| value_of(0).is_some()).map(|s| (elem, s));
                (v, out)
            }
            "Expand" => {
                let v = value_of(1).and_then(Known::ints).unwrap_or_default();
                let out = match (shape_of(0), non_negative(&v).filter(|_| value_of(1).is_some())) {
                    (Some((elem, x)), Some(s)) => broadcast(&x, &s).map(|b| (elem, b)),
                    _ => None,
                };
                (v, out)
            }
            "Tile" => {
                let v = value_of(1).and_then(Known::ints).unwrap_or_default();
                let out = match (shape_of(0), non_negative(&v).filter(|_| value_of(1).is_some())) {
                    (Some((elem, x)), Some(r)) if r.len() == x.len() => x
                        .iter()
                        .zip(&r)
                        .map(|(&a, &b)| a.checked_mul(b))
                        .collect::<Option<Vec<u64>>>()
                        .map(|s| (elem, s)),
                    _ => None,
                };
                (v, out)
            }
            "Range" => {
                let elem = value_of(0).map(|k| k.elem);
                let vals: Option<Vec<f64>> =
                    (0..3).map(|i| value_of(i).and_then(Known::floats).and_then(|v| v.first().copied())).collect();
                let ints: Vec<i64> = (0..3).filter_map(|i| value_of(i).and_then(Known::ints)).flatten().collect();
                let out = match (elem, vals) {
                    (Some(elem), Some(v)) if v[2] != 0.0 && v.iter().all(|x| x.is_finite()) => {
                        let n = ((v[1] - v[0]) / v[2]).ceil().max(0.0);
                        (n < 1.8e19).then(|| (elem, vec![n as u64]))
                    }
                    _ => None,
                };
                (ints, out)
            }
            "Pad" => {
                let pads = if node.input.len() > 1 {
                    value_of(1).and_then(Known::ints)
                } else {
                    attr(node, "pads").map(|a| a.ints.clone())
                };
                let v = pads.clone().unwrap_or_default();
                let axes_given = input(3).is_some();
                let out = match (shape_of(0), pads) {
                    (Some((elem, x)), Some(p)) if !axes_given && p.len() == 2 * x.len() => x
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| {
                            let s = i128::from(d) + i128::from(p[i]) + i128::from(p[i + x.len()]);
                            u64::try_from(s).ok()
                        })
                        .collect::<Option<Vec<u64>>>()
                        .map(|s| (elem, s)),
                    _ => None,
                };
                (v, out)
            }
            "OneHot" => {
                let depth = value_of(1).and_then(Known::floats).and_then(|v| v.first().copied());
                let v = value_of(1).and_then(Known::ints).unwrap_or_default();
                let values_elem = value_of(2).map(|k| k.elem);
                let out = match (shape_of(0), depth, values_elem) {
                    (Some((_, x)), Some(d), Some(elem)) if d >= 0.0 && d < 1.8e19 => {
                        let rank = x.len() as i64 + 1;
                        let axis = attr(node, "axis").map_or(-1, |a| a.i());
                        let axis = if axis < 0 { axis + rank } else { axis };
                        (0..rank).contains(&axis).then(|| {
                            let mut s = x.clone();
                            s.insert(axis as usize, d as u64);
                            (elem, s)
                        })
                    }
                    _ => None,
                };
                (v, out)
            }
            "Resize" | "Upsample" => {
                let (scales_ix, sizes_ix) = if node.op_type() == "Upsample" { (1, usize::MAX) } else { (2, 3) };
                let sizes = value_of(sizes_ix).and_then(Known::ints).filter(|v| !v.is_empty());
                let scales = value_of(scales_ix).and_then(Known::floats).filter(|v| !v.is_empty());
                let axes_given = attr(node, "axes").is_some();
                let out = match (shape_of(0), &sizes, &scales) {
                    (Some((elem, x)), Some(s), _) if !axes_given && s.len() == x.len() => {
                        non_negative(s).map(|s| (elem, s))
                    }
                    (Some((elem, x)), None, Some(f)) if !axes_given && f.len() == x.len() => x
                        .iter()
                        .zip(f)
                        .map(|(&d, &k)| {
                            let v = (d as f64 * k).floor();
                            (v.is_finite() && v >= 0.0 && v < 1.8e19).then_some(v as u64)
                        })
                        .collect::<Option<Vec<u64>>>()
                        .map(|s| (elem, s)),
                    _ => None,
                };
                let mut v = sizes.unwrap_or_default();
                // A scale that makes a dimension huge counts like a huge size.
                if let (Some((_, x)), Some(f)) = (shape_of(0), &scales) {
                    v.extend(x.iter().zip(f).map(|(&d, &k)| (d as f64 * k).clamp(-9.0e18, 9.0e18) as i64));
                }
                (v, out)
            }
            _ => continue,
        };
        let beyond = values.iter().find(|&&v| v.unsigned_abs() > TRACT_DIM_LIMIT).copied();
        let out_name = node.output.first().filter(|o| !o.is_empty());
        match (out, out_name) {
            (Some((elem, shape)), Some(name)) => {
                let count = super::dims::count(&shape);
                let huge_dim = shape.iter().any(|&d| d > TRACT_DIM_LIMIT);
                let folds_big = all_constant && count.map_or(true, |n| n > FOLD_LIMIT);
                let over = !dtype::tract_supports(elem) || count.is_none() || huge_dim || beyond.is_some() || folds_big;
                shapes.insert(name.clone(), (elem, shape.clone()));
                if over {
                    decisions.insert(ix, Decision::Sized(vec![(name.clone(), elem, shape)]));
                } else if all_constant {
                    constant.insert(name.clone());
                }
            }
            _ => {
                if let Some(v) = beyond {
                    decisions.insert(
                        ix,
                        Decision::Hide(format!(
                            "its shape input holds {v}, beyond the 32-bit values tract's shape inference handles"
                        )),
                    );
                } else if all_constant {
                    constant.extend(node.output.iter().filter(|o| !o.is_empty()).cloned());
                }
            }
        }
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        assert_eq!(broadcast(&[3, 1], &[1, 4]), Some(vec![3, 4]));
        assert_eq!(broadcast(&[1], &[2, 5]), Some(vec![2, 5]));
        assert_eq!(broadcast(&[2], &[3]), None);
        assert_eq!(broadcast(&[], &[7]), Some(vec![7]));
    }
}
