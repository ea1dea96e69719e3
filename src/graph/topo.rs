//! Topological orders: checking them, the stable sort, and cycles.

use super::{Graph, OpId};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Ops that form a cycle, in dependency order (each reads an output of the
/// one before it, and the first reads an output of the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<OpId>);

/// The topological order closest to file order: Kahn's algorithm that always
/// runs the ready op with the lowest file index. On a sorted graph it returns
/// the file order itself.
///
/// Errors with a [`Cycle`] if the graph has one.
pub fn stable_order(graph: &Graph) -> Result<Vec<OpId>, Cycle> {
    let n = graph.ops.len();
    let preds: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.predecessors(v)).collect();
    let mut waiting: Vec<usize> = preds.iter().map(Vec::len).collect();
    let succs: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.successors(v)).collect();
    let mut ready: BinaryHeap<Reverse<OpId>> =
        graph.op_ids().filter(|v| waiting[v.index()] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(v)) = ready.pop() {
        order.push(v);
        for &s in &succs[v.index()] {
            waiting[s.index()] -= 1;
            if waiting[s.index()] == 0 {
                ready.push(Reverse(s));
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        Err(find_cycle(&preds, &waiting))
    }
}

/// Walks predecessor edges among the ops Kahn could not run until it repeats
/// an op; the repeated stretch is a cycle.
fn find_cycle(preds: &[Vec<OpId>], waiting: &[usize]) -> Cycle {
    let stuck = |v: OpId| waiting[v.index()] > 0;
    let Some(start) = (0..preds.len()).map(|i| OpId(i as u32)).find(|&v| stuck(v)) else {
        return Cycle(Vec::new());
    };
    let mut seen_at = vec![usize::MAX; preds.len()];
    let mut path = Vec::new();
    let mut v = start;
    while seen_at[v.index()] == usize::MAX {
        seen_at[v.index()] = path.len();
        path.push(v);
        // A stuck op has at least one stuck predecessor, else it would have run.
        match preds[v.index()].iter().copied().find(|&p| stuck(p)) {
            Some(p) => v = p,
            None => break,
        }
    }
    let mut cycle = path.split_off(seen_at[v.index()].min(path.len()));
    cycle.reverse();
    Cycle(cycle)
}

/// Whether `order` runs every op exactly once, each after the producers of
/// its inputs. Returns a description of the first violation otherwise.
pub fn check_order(graph: &Graph, order: &[OpId]) -> Result<(), String> {
    let n = graph.ops.len();
    if order.len() != n {
        return Err(format!("the order has {} ops, the graph {}", order.len(), n));
    }
    let mut position = vec![usize::MAX; n];
    for (i, &v) in order.iter().enumerate() {
        if v.index() >= n {
            return Err(format!("op id {} is out of range", v.0));
        }
        if position[v.index()] != usize::MAX {
            return Err(format!("{} appears twice", graph.describe_op(v)));
        }
        position[v.index()] = i;
    }
    for &v in order {
        for p in graph.predecessors(v) {
            if position[p.index()] > position[v.index()] {
                return Err(format!(
                    "{} runs before {}, which produces one of its inputs",
                    graph.describe_op(v),
                    graph.describe_op(p)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::from_lists;

    #[test]
    fn sorted_graph_keeps_file_order() {
        let g = from_lists(&[(vec![0], vec![1]), (vec![0], vec![2]), (vec![1, 2], vec![3])], &[1; 4], &[3]);
        assert_eq!(stable_order(&g).unwrap(), vec![OpId(0), OpId(1), OpId(2)]);
    }

    #[test]
    fn unsorted_graph_is_sorted_stably() {
        // op0 reads what op2 writes; op1 is independent.
        let g = from_lists(&[(vec![1], vec![2]), (vec![0], vec![3]), (vec![0], vec![1])], &[1; 4], &[2, 3]);
        let order = stable_order(&g).unwrap();
        assert_eq!(order, vec![OpId(1), OpId(2), OpId(0)]);
        assert!(check_order(&g, &order).is_ok());
        assert!(check_order(&g, &[OpId(0), OpId(1), OpId(2)]).is_err());
    }

    #[test]
    fn cycle_is_reported_with_its_ops() {
        // op0: t2 -> t1, op1: t1 -> t2, op2: t0 -> t3 (outside the cycle)
        let g = from_lists(&[(vec![2], vec![1]), (vec![1], vec![2]), (vec![0], vec![3])], &[1; 4], &[3]);
        let Cycle(ops) = stable_order(&g).unwrap_err();
        let mut sorted = ops.clone();
        sorted.sort();
        assert_eq!(sorted, vec![OpId(0), OpId(1)]);
    }

    #[test]
    fn check_order_rejects_duplicates_and_short_orders() {
        let g = from_lists(&[(vec![0], vec![1]), (vec![1], vec![2])], &[1; 3], &[2]);
        assert!(check_order(&g, &[OpId(0)]).is_err());
        assert!(check_order(&g, &[OpId(0), OpId(0)]).is_err());
    }
}
