//! LB3, the cut bound: for each op, the least memory its step can hold over
//! *all* sets of ops that may have run before it, found as a minimum cut;
//! and LB4 ([`joint_bound`], [`region_bound`]), which makes a few ops share
//! one order.
//!
//! LB2 ([`super::bounds`]) counts only the tensors live across an op in every
//! order. Where the ops that may run before or after `v` are many (graphs
//! with random local wiring, NAS cells), most tensors are live across `v` in
//! *some* orders but not others, and LB2 is weak. LB3 asks instead: which set
//! of ops run before `v` leaves the least memory live, and charges that.
//!
//! ## Why LB3 holds
//!
//! Fix an op `v` and any topological order; let `I` be the set of ops before
//! `v`. `I` is *closed under predecessors* (an ideal), contains every
//! ancestor of `v`, and contains neither `v` nor a descendant of `v`. The
//! memory at `v`'s step is `live(I)` plus `v`'s outputs (less an in-place
//! saving), where a tensor `t` is in `live(I)` iff it has been allocated (its
//! producer is in `I`, or it is a graph input) and is not yet freed (it is
//! never freed, or one of its consumers is outside `I`). So the peak of every
//! order is at least
//!
//! ```text
//! min over ideals I with anc(v) ⊆ I, I ∩ (desc(v) ∪ {v}) = ∅ of live(I)
//! ```
//!
//! plus `v`'s outputs, for every `v`. In an ideal, a consumer of `t` can be
//! in `I` only if `t`'s producer is (it is the consumer's ancestor), so `t`
//! costs `bytes(t) · (x_p − min_c x_c)` with `x_u = [u ∈ I]`, a submodular
//! function of `x`. It is minimised exactly by an s–t minimum cut (`s` side = `I`):
//!
//! * every ancestor of `v` is joined to `s`, `v` and its descendants to `t`
//!   (both with infinite capacity), so only the ops *incomparable* with `v`
//!   are free: the network is small where LB2 is already tight;
//! * an infinite arc `w → u` for each predecessor `u` of a free op `w` keeps
//!   `I` closed (cutting it would put `w` in `I` without `u`);
//! * a tensor with one free consumer `c` is an arc `p → c` of its bytes
//!   (cut exactly when `p ∈ I` and `c ∉ I`); one with several free consumers
//!   gets an auxiliary node `y` with `p → y` of its bytes and infinite arcs
//!   `y → c` (the cut puts `y` on the `s` side only when every `c` is there);
//!   one that is never freed, or has a consumer that is `v` or a descendant,
//!   costs its bytes whenever `p ∈ I`: an arc `p → t`.
//!
//! Tensors whose cost does not depend on `I` (producer an ancestor and a
//! consumer `v` or a descendant, or never freed) are exactly LB2's, so
//! `LB3(v) = LB2(v) + maxflow(v)` and LB3 is never weaker than LB2.
//!
//! The bound for `v` is at most the memory at `v`'s step in any known order,
//! so [`cut_bound`] evaluates ops from the largest such step down and stops
//! when no op left can raise the bound.

use super::bounds::{BitSet, Reachability};
use super::memory::{max_inplace_saving, MemoryOptions};
use super::{Graph, OpId, TensorKind};
use std::time::Instant;

const INF: u64 = u64::MAX / 4;

/// A flow network for Dinic's algorithm: arcs stored in pairs (`e`, `e ^ 1`).
#[derive(Default)]
struct Network {
    adj: Vec<Vec<u32>>,
    to: Vec<u32>,
    cap: Vec<u64>,
    level: Vec<u32>,
    next: Vec<u32>,
}

impl Network {
    fn reset(&mut self, nodes: usize) {
        for a in self.adj.iter_mut().take(nodes) {
            a.clear();
        }
        if self.adj.len() < nodes {
            self.adj.resize_with(nodes, Vec::new);
        }
        self.adj.truncate(nodes);
        self.to.clear();
        self.cap.clear();
    }

    fn add_node(&mut self) -> u32 {
        self.adj.push(Vec::new());
        (self.adj.len() - 1) as u32
    }

    fn arc(&mut self, from: u32, to: u32, cap: u64) {
        if from == to || cap == 0 {
            return;
        }
        let e = self.to.len() as u32;
        self.to.push(to);
        self.cap.push(cap);
        self.to.push(from);
        self.cap.push(0);
        self.adj[from as usize].push(e);
        self.adj[to as usize].push(e + 1);
    }

    /// The maximum flow from `s` to `t`.
    fn max_flow(&mut self, s: u32, t: u32) -> u64 {
        let n = self.adj.len();
        let mut flow = 0u64;
        let mut queue = Vec::with_capacity(n);
        let mut stack: Vec<u32> = Vec::new();
        loop {
            // Levels by breadth-first search over arcs with capacity left.
            self.level.clear();
            self.level.resize(n, u32::MAX);
            self.level[s as usize] = 0;
            queue.clear();
            queue.push(s);
            let mut head = 0;
            while head < queue.len() {
                let u = queue[head] as usize;
                head += 1;
                for &e in &self.adj[u] {
                    let w = self.to[e as usize] as usize;
                    if self.cap[e as usize] > 0 && self.level[w] == u32::MAX {
                        self.level[w] = self.level[u] + 1;
                        queue.push(w as u32);
                    }
                }
            }
            if self.level[t as usize] == u32::MAX {
                return flow;
            }
            // Blocking flow by iterative depth-first search; `stack` holds
            // the arcs of the current path from `s`.
            self.next.clear();
            self.next.resize(n, 0);
            loop {
                let u = stack.last().map_or(s, |&e| self.to[e as usize]) as usize;
                if u == t as usize {
                    let push = stack.iter().map(|&e| self.cap[e as usize]).min().unwrap_or(0);
                    for &e in &stack {
                        self.cap[e as usize] -= push;
                        self.cap[(e ^ 1) as usize] += push;
                    }
                    flow = flow.saturating_add(push);
                    // Back up to just before the first saturated arc.
                    let keep = stack.iter().position(|&e| self.cap[e as usize] == 0).unwrap_or(stack.len());
                    stack.truncate(keep);
                    continue;
                }
                let mut advanced = false;
                while (self.next[u] as usize) < self.adj[u].len() {
                    let e = self.adj[u][self.next[u] as usize];
                    let w = self.to[e as usize] as usize;
                    if self.cap[e as usize] > 0 && self.level[w] == self.level[u] + 1 {
                        stack.push(e);
                        advanced = true;
                        break;
                    }
                    self.next[u] += 1;
                }
                if !advanced {
                    // Dead end: no arc from `u` leads on; retreat.
                    self.level[u] = u32::MAX;
                    match stack.pop() {
                        Some(e) => {
                            let p = self.to[(e ^ 1) as usize] as usize;
                            self.next[p] += 1;
                        }
                        None => break,
                    }
                }
            }
        }
    }
}

/// Reusable buffers for [`step_bound`].
#[derive(Default)]
pub struct CutScratch {
    net: Network,
    node_of: Vec<u32>,
}

/// Where an op sits relative to `v` in the cut.
#[derive(Clone, Copy)]
enum Side {
    Before,
    After,
    Free(u32),
}

/// LB3 of op `v`: the least memory its step can hold over every set of ops
/// that may run before it ([`step_bound`] with only `v`'s ancestors before
/// and its descendants after).
pub fn op_bound(graph: &Graph, reach: &Reachability, opts: &MemoryOptions, v: OpId, scratch: &mut CutScratch) -> u64 {
    let mut after = reach.descendants[v.index()].clone();
    after.insert(v.index());
    step_bound(graph, opts, v, &reach.ancestors[v.index()], &after, scratch)
}

/// The least memory at `v`'s step over all sets `I` of ops run before it
/// with `before ⊆ I` and `I ∩ after = ∅`: LB3's minimum cut with more ops
/// fixed on each side.
///
/// `before` must contain `v`'s ancestors and be closed under predecessors;
/// `after` must contain `v` and its descendants and be closed under
/// successors; the two must be disjoint (then such sets `I` exist). With
/// `before = ancestors(v)` and `after = {v} ∪ descendants(v)` this is
/// LB3(v). [`crate::graph::bounds`]' in-place saving is subtracted.
pub fn step_bound(
    graph: &Graph,
    opts: &MemoryOptions,
    v: OpId,
    before: &BitSet,
    after: &BitSet,
    scratch: &mut CutScratch,
) -> u64 {
    const S: u32 = 0;
    const T: u32 = 1;
    let n = graph.ops.len();
    let net = &mut scratch.net;
    net.reset(2);
    scratch.node_of.clear();
    scratch.node_of.resize(n, u32::MAX);
    let free: Vec<usize> = (0..n).filter(|&u| !before.contains(u) && !after.contains(u)).collect();
    for &u in &free {
        scratch.node_of[u] = net.add_node();
    }
    let side = |u: OpId| -> Side {
        if before.contains(u.index()) {
            Side::Before
        } else if after.contains(u.index()) {
            Side::After
        } else {
            Side::Free(scratch.node_of[u.index()])
        }
    };
    let mut constant = 0u64;
    let mut free_consumers = Vec::new();
    for tensor in &graph.tensors {
        let from = match tensor.producer {
            None => S,
            Some(p) => match side(p) {
                Side::Before => S,
                Side::After => continue,
                Side::Free(np) => np,
            },
        };
        if from != S {
            // Closure, whatever the tensor's size: a free reader in `I`
            // forces its free producer into `I`.
            for &c in &tensor.consumers {
                if let Side::Free(nc) = side(c) {
                    net.arc(nc, from, INF);
                }
            }
        }
        if tensor.bytes == 0 || tensor.kind == TensorKind::Weight {
            continue;
        }
        let never_freed = tensor.graph_output || (tensor.kind == TensorKind::GraphInput && opts.inputs_live_whole_run);
        if tensor.consumers.is_empty() && !never_freed {
            continue;
        }
        free_consumers.clear();
        let mut one_after = never_freed;
        for &c in &tensor.consumers {
            match side(c) {
                Side::Before => {}
                Side::After => one_after = true,
                Side::Free(nc) => free_consumers.push(nc),
            }
        }
        if one_after {
            if from == S {
                constant += tensor.bytes;
            } else {
                net.arc(from, T, tensor.bytes);
            }
            continue;
        }
        free_consumers.sort_unstable();
        free_consumers.dedup();
        match free_consumers.len() {
            0 => {}
            1 => net.arc(from, free_consumers[0], tensor.bytes),
            _ => {
                let y = net.add_node();
                net.arc(from, y, tensor.bytes);
                for &c in &free_consumers {
                    net.arc(y, c, INF);
                }
            }
        }
    }
    let outputs: u64 = graph.op(v).outputs.iter().map(|&t| graph.tensor(t).bytes).sum();
    (constant + net.max_flow(S, T) + outputs).saturating_sub(max_inplace_saving(graph, opts, v))
}

/// LB4 on a few ops `hot` that must share one order: the least, over every
/// order of `hot` allowed by ancestry, of the largest [`step_bound`] of a
/// hot op given which hot ops ran before it. `None` for more than 20 ops or
/// once the deadline passes. States whose bound reaches `cap` are dropped (the
/// result is then `cap` when every order reaches it).
///
/// Why it holds: any order of the graph runs the hot ops in some order
/// allowed by ancestry; at the step of hot op `v`, with `J` the hot ops run
/// before it, the set of ops run before `v` contains `J` and their
/// ancestors and excludes the other hot ops and their descendants, so the
/// step holds at least `step_bound` for those sets. The peak is at least
/// the largest of these along the hot ops' order, hence at least its least
/// value over all such orders, which the DP over sets `J` computes.
pub fn joint_bound(
    graph: &Graph,
    reach: &Reachability,
    opts: &MemoryOptions,
    hot: &[OpId],
    cap: u64,
    deadline: Option<Instant>,
) -> Option<u64> {
    let h = hot.len();
    if h > 20 {
        return None;
    }
    // H-ancestors of each hot op, as a mask.
    let hanc: Vec<u32> = (0..h)
        .map(|j| {
            (0..h).filter(|&i| reach.ancestors[hot[j].index()].contains(hot[i].index())).fold(0u32, |m, i| m | 1 << i)
        })
        .collect();
    let with_self = |sets: &[BitSet], v: OpId| {
        let mut s = sets[v.index()].clone();
        s.insert(v.index());
        s
    };
    let up: Vec<BitSet> = hot.iter().map(|&v| with_self(&reach.ancestors, v)).collect();
    let down: Vec<BitSet> = hot.iter().map(|&v| with_self(&reach.descendants, v)).collect();
    let full = (1u32 << h) - 1;
    let mut g = vec![u64::MAX; 1 << h];
    g[0] = 0;
    let mut scratch = CutScratch::default();
    for j in 0..=full {
        if g[j as usize] >= cap {
            continue;
        }
        if deadline.is_some_and(crate::cancel::passed) {
            return None;
        }
        for v in 0..h {
            if j >> v & 1 == 1 || hanc[v] & !j != 0 {
                continue;
            }
            let mut before = reach.ancestors[hot[v].index()].clone();
            let mut after = down[v].clone();
            for u in 0..h {
                if j >> u & 1 == 1 {
                    before.union_with(&up[u]);
                } else if u != v {
                    after.union_with(&down[u]);
                }
            }
            let mut both = before.clone();
            both.intersect_with(&after);
            if !both.is_empty() {
                continue; // no order runs exactly J before v
            }
            let cost = step_bound(graph, opts, hot[v], &before, &after, &mut scratch);
            let next = (j | 1 << v) as usize;
            g[next] = g[next].min(g[j as usize].max(cost));
        }
    }
    Some(g[full as usize].min(cap))
}

/// LB3 and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutBound {
    /// Bytes no schedule can go below (at least LB2).
    pub bytes: u64,
    /// The op whose step gives the bound (`None`: LB2's start or end term).
    pub at: Option<OpId>,
    /// Ops whose cut was computed.
    pub ops_cut: usize,
    /// Whether every op that could raise the bound was tried.
    pub complete: bool,
    /// LB3 of each op whose cut was computed.
    pub per_op: Vec<Option<u64>>,
}

/// LB3: the largest `LB2(v) + cut(v)` over ops `v`, with LB2's start and end
/// terms (`floor`, normally LB2 itself).
///
/// `steps[v]` must be an upper bound on `v`'s step in some order (the memory
/// at `v`'s step of a known schedule): ops are tried from the largest down
/// and the search stops when none left can beat the bound, or at `deadline`.
pub fn cut_bound(
    graph: &Graph,
    reach: &Reachability,
    opts: &MemoryOptions,
    steps: &[u64],
    floor: u64,
    deadline: Option<Instant>,
) -> CutBound {
    let mut best =
        CutBound { bytes: floor, at: None, ops_cut: 0, complete: true, per_op: vec![None; graph.ops.len()] };
    let mut candidates: Vec<usize> = (0..graph.ops.len()).collect();
    candidates.sort_by_key(|&v| std::cmp::Reverse(steps[v]));
    let mut scratch = CutScratch::default();
    for v in candidates {
        if steps[v] <= best.bytes {
            break;
        }
        if deadline.is_some_and(crate::cancel::passed) {
            best.complete = false;
            break;
        }
        let b = op_bound(graph, reach, opts, OpId(v as u32), &mut scratch);
        best.ops_cut += 1;
        best.per_op[v] = Some(b);
        if b > best.bytes {
            best.bytes = b;
            best.at = Some(OpId(v as u32));
        }
    }
    best
}

/// Ops of a region that [`region_bound`] orders jointly.
const REGION_OPS: usize = 14;
/// A region is the ops within this many places of its centre in the order.
const REGION_RADIUS: usize = 50;

/// LB4 on the regions of `order` around the ops of largest LB3: each
/// region's [`joint_bound`] over its `REGION_OPS` ops of largest LB3,
/// regions taken by decreasing LB3 of their centre until `deadline` or
/// until the bound reaches `cap` (then `cap` is optimal). `steps[v]` is
/// op `v`'s step in `order`, as for [`cut_bound`]; a region whose steps are
/// all at most the bound so far is skipped: the joint bound of ops is at
/// most their largest step in any order. `lb3` is [`CutBound::per_op`]
/// (missing values are computed as needed). Returns the largest bound found
/// (at least `floor`).
#[allow(clippy::too_many_arguments)]
pub fn region_bound(
    graph: &Graph,
    reach: &Reachability,
    opts: &MemoryOptions,
    order: &[OpId],
    steps: &[u64],
    lb3: &[Option<u64>],
    floor: u64,
    cap: u64,
    deadline: Option<Instant>,
) -> u64 {
    let n = graph.ops.len();
    let mut lb3 = lb3.to_vec();
    lb3.resize(n, None);
    let mut scratch = CutScratch::default();
    let mut centres: Vec<(u64, usize)> =
        order.iter().enumerate().filter_map(|(s, v)| lb3[v.index()].map(|b| (b, s))).collect();
    centres.sort_by_key(|&(b, s)| (std::cmp::Reverse(b), s));
    let mut covered = vec![false; order.len()];
    let mut best = floor;
    for (_, s) in centres {
        if best >= cap || deadline.is_some_and(crate::cancel::passed) {
            break;
        }
        if covered[s] {
            continue;
        }
        let lo = s.saturating_sub(REGION_RADIUS);
        let hi = (s + REGION_RADIUS).min(order.len() - 1);
        if order[lo..=hi].iter().all(|v| steps[v.index()] <= best) {
            continue;
        }
        let mut window: Vec<(u64, OpId)> = Vec::new();
        for &v in &order[lo..=hi] {
            // Up to 101 minimum cuts per region: check the deadline between them.
            if lb3[v.index()].is_none() && deadline.is_some_and(|d| crate::cancel::passed(d)) {
                return best;
            }
            let b = *lb3[v.index()].get_or_insert_with(|| op_bound(graph, reach, opts, v, &mut scratch));
            window.push((b, v));
        }
        window.sort_by_key(|&(b, v)| (std::cmp::Reverse(b), v));
        window.truncate(REGION_OPS);
        let hot: Vec<OpId> = window.iter().map(|&(_, v)| v).collect();
        if hot.iter().all(|v| steps[v.index()] <= best) {
            covered[s] = true;
            continue;
        }
        match joint_bound(graph, reach, opts, &hot, cap, deadline) {
            Some(b) => best = best.max(b),
            None => break,
        }
        covered[s.saturating_sub(REGION_RADIUS / 2)..=(s + REGION_RADIUS / 2).min(order.len() - 1)]
            .iter_mut()
            .for_each(|c| *c = true);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_flow_of_a_small_network() {
        let mut net = Network::default();
        net.reset(4);
        net.arc(0, 2, 3);
        net.arc(0, 3, 2);
        net.arc(2, 3, 5);
        net.arc(2, 1, 2);
        net.arc(3, 1, 3);
        assert_eq!(net.max_flow(0, 1), 5);
    }
}
