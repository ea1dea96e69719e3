//! Folding small shape computations into values, for the rules that read
//! values (an `If` condition, a `ConstantOfShape` shape, a `Range` limit).
//!
//! tract folds many shape computations itself, and those values are read
//! back from its facts; but it gives no value to `Size`, and a node it
//! cannot analyse stops its folding. Exported ONNX functions test their
//! inputs' ranks this way (`If(Equal(Size(size), 4))` in AffineGrid, the
//! attention functions), and the branch not taken is often one that cannot
//! be sized at all (a `Split` into more pieces than there are elements). So
//! [`fold`] evaluates, exactly, the few ops such conditions are made of,
//! over values already known (the model's small constants, tract's folded
//! values, earlier folds) and shapes already sized:
//!
//! - `Shape` (with `start`/`end`) and `Size` of a tensor of known shape;
//! - `Identity`, `Squeeze`, `Unsqueeze`, `Reshape`, `Flatten` (values kept in
//!   order);
//! - `Cast` to a bool, integer or float type;
//! - `Not`, `Neg`, `Abs`; `Equal`, `Less`, `Greater`, `LessOrEqual`,
//!   `GreaterOrEqual`, `And`, `Or`, `Xor`, `Add`, `Sub`, `Mul`, and `Div`
//!   (truncating on integer types), where both operands have one shape or
//!   one of them a single element;
//! - `Concat` of vectors, `Gather` from a vector (axis 0).
//!
//! Anything else, or any doubt (an unknown shape, more than
//! [`super::rules::MAX_CONST_VALUES`] values, a value beyond 2^53 where
//! `f64` stops being exact) gives no value: the rules then treat the tensor
//! as data they cannot see, as before.

use super::dtype::code::*;
use super::rules::{Typed, MAX_CONST_VALUES};
use crate::onnx::pb;

/// Largest magnitude an integer value may have to be folded: `f64` holds
/// every integer up to 2^53 exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

fn attr_i(node: &pb::NodeProto, name: &str) -> Option<i64> {
    super::rules::attr(node, name).map(|a| a.i())
}

fn is_integer(elem: i32) -> bool {
    matches!(elem, INT8 | INT16 | INT32 | INT64 | UINT8 | UINT16 | UINT32 | UINT64 | BOOL)
}

/// The values of `node`'s first output, when the op is one of the module's
/// and what it reads is known: `values` gives a tensor's known values,
/// `lookup` its concrete type.
pub(crate) fn fold(
    node: &pb::NodeProto,
    values: &dyn Fn(&str) -> Option<Vec<f64>>,
    lookup: &dyn Fn(&str) -> Option<Typed>,
) -> Option<Vec<f64>> {
    if !super::prepare::standard_domain(node) {
        return None;
    }
    let name = |i: usize| node.input.get(i).map(String::as_str).filter(|s| !s.is_empty());
    let val = |i: usize| name(i).and_then(values);
    let typed = |i: usize| name(i).and_then(lookup);
    let out = match node.op_type() {
        "Shape" => {
            let (_, shape) = typed(0)?;
            let rank = shape.len() as i64;
            let clamp = |v: i64| if v < 0 { (v + rank).max(0) } else { v.min(rank) };
            let start = clamp(attr_i(node, "start").unwrap_or(0)) as usize;
            let end = clamp(attr_i(node, "end").unwrap_or(rank)) as usize;
            shape.get(start..end.max(start))?.iter().map(|&d| d as f64).collect()
        }
        "Size" => vec![super::dims::count(&typed(0)?.1)? as f64],
        "Identity" | "Squeeze" | "Unsqueeze" | "Reshape" | "Flatten" => val(0)?,
        "Cast" => {
            let to = attr_i(node, "to")? as i32;
            let v = val(0)?;
            match to {
                BOOL => v.iter().map(|&x| f64::from(u8::from(x != 0.0))).collect(),
                INT8 | INT16 | INT32 | INT64 | UINT8 | UINT16 | UINT32 | UINT64 => {
                    let (from, _) = typed(0)?;
                    // Float to integer truncates; out-of-range results are
                    // implementation-defined: not folded.
                    let signed = matches!(to, INT8 | INT16 | INT32 | INT64);
                    let t: Vec<f64> = v.iter().map(|&x| if is_integer(from) { x } else { x.trunc() }).collect();
                    let limit = match to {
                        INT8 => 127.0,
                        UINT8 => 255.0,
                        INT16 => 32_767.0,
                        UINT16 => 65_535.0,
                        INT32 => 2_147_483_647.0,
                        UINT32 => 4_294_967_295.0,
                        _ => EXACT,
                    };
                    if t.iter().any(|&x| x.abs() > limit || (!signed && x < 0.0)) {
                        return None;
                    }
                    t
                }
                FLOAT => v.iter().map(|&x| f64::from(x as f32)).collect(),
                DOUBLE => v,
                _ => return None,
            }
        }
        "Not" => val(0)?.iter().map(|&x| f64::from(u8::from(x == 0.0))).collect(),
        "Neg" => val(0)?.iter().map(|&x| -x).collect(),
        "Abs" => val(0)?.iter().map(|&x| x.abs()).collect(),
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor" | "Add" | "Sub"
        | "Mul" | "Div" => {
            let (a, b) = (val(0)?, val(1)?);
            let ((ea, sa), (_, sb)) = (typed(0)?, typed(1)?);
            // Same shape, or one side a single element (broadcast).
            if !(sa == sb || a.len() == 1 || b.len() == 1) {
                return None;
            }
            let n = a.len().max(b.len());
            let at = |v: &[f64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
            let int = is_integer(ea);
            let op = node.op_type();
            let mut r = Vec::with_capacity(n);
            for i in 0..n {
                let (x, y) = (at(&a, i), at(&b, i));
                let bit = |c: bool| f64::from(u8::from(c));
                r.push(match op {
                    "Equal" => bit(x == y),
                    "Less" => bit(x < y),
                    "Greater" => bit(x > y),
                    "LessOrEqual" => bit(x <= y),
                    "GreaterOrEqual" => bit(x >= y),
                    "And" => bit(x != 0.0 && y != 0.0),
                    "Or" => bit(x != 0.0 || y != 0.0),
                    "Xor" => bit((x != 0.0) != (y != 0.0)),
                    "Add" => x + y,
                    "Sub" => x - y,
                    "Mul" => x * y,
                    _ if y == 0.0 => return None,
                    _ if int => (x / y).trunc(),
                    _ => x / y,
                });
            }
            if int && r.iter().any(|x| x.abs() > EXACT) {
                return None;
            }
            r
        }
        "Concat" => {
            let mut r = Vec::new();
            for i in 0..node.input.len() {
                let (_, s) = typed(i)?;
                if s.len() != 1 {
                    return None;
                }
                r.extend(val(i)?);
            }
            r
        }
        "Gather" => {
            let (_, s) = typed(0)?;
            if s.len() != 1 || attr_i(node, "axis").unwrap_or(0) != 0 {
                return None;
            }
            let data = val(0)?;
            let n = data.len() as i64;
            val(1)?
                .iter()
                .map(|&i| {
                    let i = i as i64;
                    let i = if i < 0 { i + n } else { i };
                    usize::try_from(i).ok().and_then(|i| data.get(i).copied())
                })
                .collect::<Option<Vec<f64>>>()?
        }
        _ => return None,
    };
    (out.len() <= MAX_CONST_VALUES && out.iter().all(|x| x.is_finite())).then_some(out)
}

/// Folds what [`fold`] can over `nodes` in order, adding each value to
/// `consts` (which starts with the graph's small constants); `lookup` gives
/// a tensor's concrete type.
pub(crate) fn fold_all(
    nodes: &[pb::NodeProto],
    consts: &mut std::collections::HashMap<String, Vec<f64>>,
    lookup: &dyn Fn(&str) -> Option<Typed>,
) {
    for node in nodes {
        let Some(out) = node.output.first().filter(|o| !o.is_empty() && !consts.contains_key(o.as_str())) else {
            continue;
        };
        if let Some(v) = fold(node, &|n| consts.get(n).cloned(), lookup) {
            consts.insert(out.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn node(op: &str, inputs: &[&str], attrs: &[(&str, i64)]) -> pb::NodeProto {
        pb::NodeProto {
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![format!("{op}_out")],
            attribute: attrs
                .iter()
                .map(|(k, v)| pb::AttributeProto {
                    name: Some(k.to_string()),
                    i: Some(*v),
                    r#type: Some(pb::attribute_proto::AttributeType::Int as i32),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn types(name: &str) -> Option<Typed> {
        match name {
            "x" => Some((FLOAT, vec![2, 3, 5])),
            "four" | "size" => Some((INT64, vec![])),
            "v" | "w" => Some((INT64, vec![3])),
            "m" => Some((INT64, vec![3, 1])),
            "f" => Some((FLOAT, vec![])),
            _ => None,
        }
    }

    fn run(n: &pb::NodeProto, known: &[(&str, Vec<f64>)]) -> Option<Vec<f64>> {
        let map: HashMap<String, Vec<f64>> = known.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        fold(n, &|k| map.get(k).cloned(), &types)
    }

    #[test]
    fn shapes_and_sizes_fold_to_their_dims() {
        assert_eq!(run(&node("Size", &["x"], &[]), &[]), Some(vec![30.0]));
        assert_eq!(run(&node("Shape", &["x"], &[]), &[]), Some(vec![2.0, 3.0, 5.0]));
        assert_eq!(run(&node("Shape", &["x"], &[("start", -2)]), &[]), Some(vec![3.0, 5.0]));
        assert_eq!(run(&node("Shape", &["x"], &[("start", 1), ("end", 2)]), &[]), Some(vec![3.0]));
        assert_eq!(run(&node("Shape", &["x"], &[("start", 2), ("end", 1)]), &[]), Some(vec![]));
        // An unknown shape gives nothing.
        assert_eq!(run(&node("Size", &["unknown"], &[]), &[]), None);
    }

    #[test]
    fn an_if_condition_built_from_a_size_folds() {
        // AffineGrid's `If(Equal(Size(size), 4))`, over a chain of folds.
        let nodes = vec![
            pb::NodeProto { output: vec!["n".into()], ..node("Size", &["x"], &[]) },
            pb::NodeProto { output: vec!["c".into()], ..node("Equal", &["n", "thirty"], &[]) },
            pb::NodeProto { output: vec!["nc".into()], ..node("Not", &["c"], &[]) },
        ];
        let mut consts: HashMap<String, Vec<f64>> = [("thirty".to_string(), vec![30.0])].into_iter().collect();
        let lookup = |n: &str| match n {
            "n" | "c" | "nc" | "thirty" => Some((INT64, vec![])),
            other => types(other),
        };
        fold_all(&nodes, &mut consts, &lookup);
        assert_eq!(consts.get("c"), Some(&vec![1.0]));
        assert_eq!(consts.get("nc"), Some(&vec![0.0]));
    }

    #[test]
    fn arithmetic_broadcasts_only_single_elements() {
        let v = ("v", vec![4.0, 7.0, -9.0]);
        assert_eq!(
            run(&node("Add", &["v", "four"], &[]), &[v.clone(), ("four", vec![4.0])]),
            Some(vec![8.0, 11.0, -5.0])
        );
        // Integer division truncates toward zero, like onnxruntime's.
        assert_eq!(
            run(&node("Div", &["v", "four"], &[]), &[v.clone(), ("four", vec![4.0])]),
            Some(vec![1.0, 1.0, -2.0])
        );
        assert_eq!(run(&node("Div", &["v", "four"], &[]), &[v.clone(), ("four", vec![0.0])]), None);
        // [3] against [3, 1] broadcasts to 3x3: not folded.
        assert_eq!(run(&node("Mul", &["v", "m"], &[]), &[v.clone(), ("m", vec![1.0, 2.0, 3.0])]), None);
        assert_eq!(run(&node("Less", &["v", "w"], &[]), &[v, ("w", vec![5.0, 5.0, 5.0])]), Some(vec![1.0, 0.0, 1.0]));
    }

    #[test]
    fn casts_gathers_and_concats() {
        let cast = |to: i32| node("Cast", &["f"], &[("to", i64::from(to))]);
        assert_eq!(run(&cast(INT64), &[("f", vec![-2.7])]), Some(vec![-2.0]));
        assert_eq!(run(&cast(BOOL), &[("f", vec![0.5])]), Some(vec![1.0]));
        assert_eq!(run(&cast(UINT8), &[("f", vec![-1.0])]), None);
        assert_eq!(run(&cast(STRING), &[("f", vec![1.0])]), None);
        let v = ("v", vec![4.0, 7.0, 9.0]);
        assert_eq!(run(&node("Gather", &["v", "four"], &[]), &[v.clone(), ("four", vec![-1.0])]), Some(vec![9.0]));
        assert_eq!(run(&node("Gather", &["v", "four"], &[]), &[v.clone(), ("four", vec![3.0])]), None);
        assert_eq!(
            run(&node("Concat", &["v", "w"], &[("axis", 0)]), &[v.clone(), ("w", vec![1.0, 2.0, 3.0])]),
            Some(vec![4.0, 7.0, 9.0, 1.0, 2.0, 3.0])
        );
        assert_eq!(run(&node("Concat", &["v", "m"], &[("axis", 0)]), &[v, ("m", vec![1.0, 2.0, 3.0])]), None);
    }
}
