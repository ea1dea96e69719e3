//! Fast schedulers that need no search.

use super::Order;
use crate::graph::{Graph, OpId};

/// onnxruntime's default execution order (`GraphViewer` built with
/// `Graph::ReverseDFSFrom` and `NodeCompare`).
///
/// The sinks (ops none of whose outputs another op reads) go on an explicit
/// stack in file order. Popping an op that was not yet visited marks it,
/// pushes a "leave" marker for it, then pushes its distinct producers sorted
/// by ascending file index, so the producer with the highest index is
/// explored first. An op is emitted when its leave marker is popped: a
/// post-order, hence topological. File order only breaks ties, which is what
/// `--target ort-default` later steers.
///
/// Requires an acyclic graph.
pub fn ort_dfs(graph: &Graph) -> Order {
    let n = graph.ops.len();
    let mut stack: Vec<(OpId, bool)> =
        graph.op_ids().filter(|&v| graph.successors(v).is_empty()).map(|v| (v, false)).collect();
    let mut visited = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some((v, leave)) = stack.pop() {
        if leave {
            order.push(v);
            continue;
        }
        if std::mem::replace(&mut visited[v.index()], true) {
            continue;
        }
        stack.push((v, true));
        // predecessors() is sorted ascending: the last pushed (highest index) pops first.
        for p in graph.predecessors(v) {
            stack.push((p, false));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{from_lists, topo::check_order};

    #[test]
    fn later_branch_runs_first() {
        // op0: x -> a, op1: x -> b, op2: (a, b) -> y. The reverse DFS visits
        // op2, then its highest-index producer op1 first.
        let g = from_lists(&[(vec![0], vec![1]), (vec![0], vec![2]), (vec![1, 2], vec![3])], &[1; 4], &[3]);
        assert_eq!(ort_dfs(&g), vec![OpId(1), OpId(0), OpId(2)]);
    }

    #[test]
    fn last_sink_is_explored_first() {
        // Two independent chains; both end in sinks. The sink with the higher
        // index (op3) is on top of the stack.
        let g = from_lists(
            &[(vec![0], vec![1]), (vec![1], vec![2]), (vec![0], vec![3]), (vec![3], vec![4])],
            &[1; 5],
            &[2, 4],
        );
        assert_eq!(ort_dfs(&g), vec![OpId(2), OpId(3), OpId(0), OpId(1)]);
    }

    #[test]
    fn dfs_is_topological_on_a_diamond_lattice() {
        let mut ops = Vec::new();
        for i in 0..20usize {
            ops.push((vec![i, i / 2], vec![i + 1]));
        }
        let g = from_lists(&ops, &[1; 21], &[20]);
        let order = ort_dfs(&g);
        assert!(check_order(&g, &order).is_ok());
    }
}
