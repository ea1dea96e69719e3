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
use std::time::Instant;

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

/// Tensors per block of [`lb2_per_op`]: 64 times this many words per op.
const LB2_BLOCK_WORDS: usize = 8;

/// LB2 of every op, as [`per_op`], without the `n x n` [`Reachability`]:
/// memory `O(n)` at any graph size, and it stops at `deadline`.
///
/// `order` must be a topological order of all ops. The tensors are taken in
/// blocks of 512; for one block, a pass along `order` marks which ops
/// descend from each tensor's producer, a pass backwards which ops precede
/// one of its consumers, and only the stretch of `order` between the
/// block's first producer and its last consumer is visited (so a chain
/// costs `O(n)`, and any graph at most `O(T (n + e) / 64)` word operations
/// for `T` tensors). A tensor is counted at an op exactly when [`per_op`]
/// counts it there.
///
/// When the deadline passes first, the tensors not yet processed are left
/// out: every value is then still a lower bound on its op's step (a sum
/// over fewer tensors that are live there), never below LB1, and
/// [`Lb2::complete`] is false.
pub fn lb2_per_op(graph: &Graph, order: &[OpId], opts: &MemoryOptions, deadline: Option<Instant>) -> Lb2 {
    const W: usize = LB2_BLOCK_WORDS;
    let n = graph.ops.len();
    let mut pos = vec![usize::MAX; n];
    for (i, v) in order.iter().enumerate() {
        if let Some(p) = pos.get_mut(v.index()) {
            *p = i;
        }
    }
    let io = |v: usize| {
        let v = OpId(v as u32);
        op_io_bytes(graph, v).saturating_sub(max_inplace_saving(graph, opts, v))
    };
    if order.len() != n || pos.contains(&usize::MAX) {
        // Not an order of all ops: LB1 per op, which needs none.
        return Lb2 { per_op: (0..n).map(io).collect(), complete: false };
    }
    // (start, end, tensor): the positions in `order` where the tensor can be
    // live across an op, `start..end`.
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for (ti, t) in graph.tensors.iter().enumerate() {
        if t.bytes == 0 {
            continue;
        }
        let is_input = t.kind == TensorKind::GraphInput;
        let start = match (t.producer, is_input) {
            (Some(p), _) => pos[p.index()] + 1,
            (None, true) => 0,
            (None, false) => continue,
        };
        let stays_to_end = t.graph_output || (is_input && opts.inputs_live_whole_run);
        let end = if stays_to_end { n } else { t.consumers.iter().map(|c| pos[c.index()]).max().unwrap_or(0) };
        if start < end {
            spans.push((start, end, ti));
        }
    }
    spans.sort_unstable();
    let preds: Vec<Vec<usize>> =
        order.iter().map(|&v| graph.predecessors(v).iter().map(|p| pos[p.index()]).collect()).collect();
    let succs: Vec<Vec<usize>> =
        order.iter().map(|&v| graph.successors(v).iter().map(|s| pos[s.index()]).collect()).collect();
    let mut extra = vec![0u64; n];
    let mut complete = true;
    let late = || deadline.is_some_and(|d| crate::cancel::passed(d));
    // Per position of the stretch: descends from the producer, precedes a
    // consumer, produces, consumes (one bit per tensor of the block).
    let (mut down, mut up, mut made, mut read) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    'blocks: for block in spans.chunks(64 * W) {
        if late() {
            complete = false;
            break;
        }
        // Positions base..lim: from the block's first producer to its last
        // consumer (included: the backward pass starts from the readers).
        let base = block.iter().map(|&(s, _, _)| s).min().unwrap_or(0).saturating_sub(1);
        let lim = (block.iter().map(|&(_, e, _)| e).max().unwrap_or(0) + 1).min(n);
        let len = lim - base;
        for buf in [&mut down, &mut up, &mut made, &mut read] {
            buf.clear();
            buf.resize(len, [0u64; W]);
        }
        // Graph inputs exist before every op; never-freed tensors stay after every op.
        let mut from_start = [0u64; W];
        let mut to_end = [0u64; W];
        for (b, &(_, _, ti)) in block.iter().enumerate() {
            let (word, bit) = (b / 64, 1u64 << (b % 64));
            let t = &graph.tensors[ti];
            match t.producer {
                Some(p) => made[pos[p.index()] - base][word] |= bit,
                None => from_start[word] |= bit,
            }
            if t.graph_output || (t.kind == TensorKind::GraphInput && opts.inputs_live_whole_run) {
                to_end[word] |= bit;
            }
            for c in &t.consumers {
                let at = pos[c.index()];
                if (base..lim).contains(&at) {
                    read[at - base][word] |= bit;
                }
            }
        }
        for i in base..lim {
            if (i - base) % 8192 == 8191 && late() {
                complete = false;
                break 'blocks;
            }
            let mut acc = [0u64; W];
            for &p in &preds[i] {
                if p >= base {
                    for w in 0..W {
                        acc[w] |= down[p - base][w] | made[p - base][w];
                    }
                }
            }
            down[i - base] = acc;
        }
        for i in (base..lim).rev() {
            let mut acc = [0u64; W];
            for &s in &succs[i] {
                if s < lim {
                    for w in 0..W {
                        acc[w] |= up[s - base][w] | read[s - base][w];
                    }
                }
            }
            up[i - base] = acc;
        }
        for i in base..lim {
            let v = order[i].index();
            for w in 0..W {
                let mut across = (down[i - base][w] | from_start[w]) & (up[i - base][w] | to_end[w]);
                // The op's own inputs are counted by op_io_bytes.
                across &= !read[i - base][w];
                while across != 0 {
                    let b = w * 64 + across.trailing_zeros() as usize;
                    across &= across - 1;
                    extra[v] = extra[v].saturating_add(graph.tensors[block[b].2].bytes);
                }
            }
        }
    }
    Lb2 { per_op: (0..n).map(|v| io(v).saturating_add(extra[v])).collect(), complete }
}

/// [`lb2_per_op`]'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lb2 {
    /// A lower bound on each op's step, indexed by op.
    pub per_op: Vec<u64>,
    /// Whether every tensor was counted (the bound is exactly [`per_op`]'s).
    pub complete: bool,
}

/// The largest of [`lb2_per_op`]'s values, the start and the end: LB2 when
/// [`Lb2::complete`], a weaker valid bound otherwise.
pub fn lb2(graph: &Graph, order: &[OpId], opts: &MemoryOptions, deadline: Option<Instant>) -> (LowerBound, bool) {
    let r = lb2_per_op(graph, order, opts, deadline);
    let mut best = LowerBound { bytes: base_bound(graph), at: None };
    for (i, &b) in r.per_op.iter().enumerate() {
        if b > best.bytes {
            best = LowerBound { bytes: b, at: Some(OpId(i as u32)) };
        }
    }
    (best, r.complete)
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
