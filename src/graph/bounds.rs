//! Lower bounds on the peak of every schedule.
//!
//! A lower bound `LB` with `LB == peak` of some schedule proves that schedule
//! optimal without any search; otherwise `(peak - LB) / LB` is the gap the
//! report quotes.
//!
//! * **LB1** (per op): an op's step holds all its inputs and all its outputs.
//! * **LB2** (per op, this module's [`lower_bound`]): LB1 plus every tensor
//!   that is live across the op in *every* order.
//!
//! ## Why LB2 holds
//!
//! Fix an op `v` and any topological order. At `v`'s step the memory is the
//! bytes live before `v` plus `v`'s outputs. Live before `v` are `v`'s inputs
//! (freed only after their last consumer, `v` at the earliest) and every
//! tensor `t` that (a) has been allocated, and (b) has not been freed. Take `t`
//! not read or written by `v`:
//! (a) holds in every order when `t` is a graph input (live from the start)
//! or its producer is an ancestor of `v` (ancestors run before `v`);
//! (b) holds in every order when `t` is a graph output (never freed) or one of
//! its consumers is a descendant of `v` (descendants run after `v`, and `t` is
//! freed only after its last consumer), or, under
//! `inputs_live_whole_run`, `t` is a graph input.
//! These tensors, `v`'s inputs and `v`'s outputs are distinct, so the sum of
//! their bytes is at most the memory at `v`'s step, hence at most the peak.
//! With in-place reuse an op may share one input's buffer with its output,
//! so the bound subtracts the largest such saving.
//!
//! Two more terms hold for every order: the start (all graph inputs are
//! live before the first op) and the end (all graph outputs are live at the
//! last step).

use super::memory::{max_inplace_saving, MemoryOptions};
use super::{Graph, OpId, TensorKind};

/// A fixed-size set of op indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    /// An empty set for indices `0..n`.
    pub fn new(n: usize) -> Self {
        BitSet { words: vec![0; n.div_ceil(64)] }
    }
    /// Adds `i`.
    pub fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }
    /// Whether `i` is in the set.
    pub fn contains(&self, i: usize) -> bool {
        self.words[i / 64] >> (i % 64) & 1 == 1
    }
    /// Adds every element of `other`.
    pub fn union_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }
    /// Keeps only elements also in `other`.
    pub fn intersect_with(&mut self, other: &BitSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= *b;
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
    /// The elements in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + bit)
            })
        })
    }
}

/// Strict ancestors and descendants of every op.
#[derive(Clone, Debug)]
pub struct Reachability {
    /// `ancestors[v]`: ops that must run before `v`.
    pub ancestors: Vec<BitSet>,
    /// `descendants[v]`: ops that must run after `v`.
    pub descendants: Vec<BitSet>,
}

impl Reachability {
    /// Computes both relations along a topological `order` of `graph`.
    pub fn new(graph: &Graph, order: &[OpId]) -> Self {
        let n = graph.ops.len();
        let mut ancestors = vec![BitSet::new(n); n];
        for &v in order {
            let mut set = BitSet::new(n);
            for p in graph.predecessors(v) {
                set.insert(p.index());
                set.union_with(&ancestors[p.index()]);
            }
            ancestors[v.index()] = set;
        }
        let mut descendants = vec![BitSet::new(n); n];
        for &v in order.iter().rev() {
            let mut set = BitSet::new(n);
            for s in graph.successors(v) {
                set.insert(s.index());
                set.union_with(&descendants[s.index()]);
            }
            descendants[v.index()] = set;
        }
        Reachability { ancestors, descendants }
    }
}

/// The lower bound and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerBound {
    /// Bytes no schedule can go below.
    pub bytes: u64,
    /// The op whose step gives the bound (`None`: the start or the end).
    pub at: Option<OpId>,
}

/// LB1: the largest `inputs + outputs` of any op, the start and the end.
pub fn lb1(graph: &Graph, opts: &MemoryOptions) -> LowerBound {
    let mut best = LowerBound { bytes: base_bound(graph), at: None };
    for v in graph.op_ids() {
        let b = op_io_bytes(graph, v).saturating_sub(max_inplace_saving(graph, opts, v));
        if b > best.bytes {
            best = LowerBound { bytes: b, at: Some(v) };
        }
    }
    best
}

fn op_io_bytes(graph: &Graph, v: OpId) -> u64 {
    let op = graph.op(v);
    op.inputs.iter().chain(&op.outputs).map(|&t| graph.tensor(t).bytes).sum()
}

/// The start (all graph inputs) and the end (all graph outputs).
fn base_bound(graph: &Graph) -> u64 {
    let outputs: u64 = graph.tensors.iter().filter(|t| t.graph_output).map(|t| t.bytes).sum();
    graph.input_bytes().max(outputs)
}

/// LB2 of every op, indexed by op: the bytes that op's step holds in every
/// order (see the module doc for the proof). The search uses it to prune;
/// [`lower_bound`] takes its maximum.
pub fn per_op(graph: &Graph, reach: &Reachability, opts: &MemoryOptions) -> Vec<u64> {
    let n = graph.ops.len();
    // extra[v]: bytes of tensors live across v in every order, v's own excluded.
    let mut extra = vec![0u64; n];
    for t in &graph.tensors {
        if t.bytes == 0 {
            continue;
        }
        let is_input = t.kind == TensorKind::GraphInput;
        let stays_to_end = t.graph_output || (is_input && opts.inputs_live_whole_run);
        let mut across = match (t.producer, is_input) {
            (Some(p), _) => reach.descendants[p.index()].clone(),
            (None, true) => full_set(n),
            (None, false) => continue,
        };
        if !stays_to_end {
            let mut before_a_consumer = BitSet::new(n);
            for &c in &t.consumers {
                before_a_consumer.union_with(&reach.ancestors[c.index()]);
            }
            across.intersect_with(&before_a_consumer);
        }
        for v in across.iter() {
            extra[v] += t.bytes;
        }
        // v's own inputs are counted by op_io_bytes; remove double counts.
        for &c in &t.consumers {
            if across.contains(c.index()) {
                extra[c.index()] -= t.bytes;
            }
        }
    }
    graph
        .op_ids()
        .map(|v| (op_io_bytes(graph, v) + extra[v.index()]).saturating_sub(max_inplace_saving(graph, opts, v)))
        .collect()
}

/// LB2: the largest [`per_op`] bound, the start and the end.
pub fn lower_bound(graph: &Graph, reach: &Reachability, opts: &MemoryOptions) -> LowerBound {
    let mut best = LowerBound { bytes: base_bound(graph), at: None };
    for (i, b) in per_op(graph, reach, opts).into_iter().enumerate() {
        if b > best.bytes {
            best = LowerBound { bytes: b, at: Some(OpId(i as u32)) };
        }
    }
    best
}

fn full_set(n: usize) -> BitSet {
    let mut s = BitSet::new(n);
    for i in 0..n {
        s.insert(i);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::from_lists;

    #[test]
    fn bitset_basics() {
        let mut s = BitSet::new(130);
        for i in [0, 63, 64, 129] {
            s.insert(i);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 63, 64, 129]);
        assert_eq!(s.len(), 4);
        assert!(s.contains(64) && !s.contains(65));
    }

    #[test]
    fn lb2_counts_a_tensor_that_spans_an_op() {
        // t0 -> op0 -> t1 ; t1 -> op1 -> t2 ; (t1, t2) -> op2 -> t3
        // t1 (100 B) is live across op1 in every order.
        let g = from_lists(
            &[(vec![0], vec![1]), (vec![1], vec![2]), (vec![1, 2], vec![3])],
            &[1, 100, 10, 1],
            &[3],
        );
        let order: Vec<OpId> = g.op_ids().collect();
        let reach = Reachability::new(&g, &order);
        let opts = MemoryOptions::default();
        assert_eq!(lb1(&g, &opts).bytes, 111);
        // op1: its input t1 (100) + output t2 (10); op2: 100 + 10 + 1.
        assert_eq!(lower_bound(&g, &reach, &opts).bytes, 111);
    }

    #[test]
    fn lb2_counts_a_side_branch_that_must_wait() {
        // op0: t0 -> t1 (50 B). op1: t0 -> t2 (1 B). op2: t2 -> t3 (1 B).
        // op3: (t1, t3) -> t4. t1 lives across op2 in every order? No: t1's
        // producer op0 is not an ancestor of op2. So LB2(op2) = 2 only.
        // But t0 (graph input, 7 B) is read by op0 and op1.
        let g = from_lists(
            &[(vec![0], vec![1]), (vec![0], vec![2]), (vec![2], vec![3]), (vec![1, 3], vec![4])],
            &[7, 50, 1, 1, 1],
            &[4],
        );
        let order: Vec<OpId> = g.op_ids().collect();
        let reach = Reachability::new(&g, &order);
        let lb = lower_bound(&g, &reach, &MemoryOptions::default());
        // op0: 7 + 50 = 57, nothing else is surely live (t2 need not exist yet).
        assert_eq!(lb.bytes, 57);
        assert_eq!(lb.at, Some(OpId(0)));
    }
}
