//! Band search: the exact DP restricted to orders that stay close to an
//! incumbent, for graphs far too large for [`dp::solve`](super::dp::solve).
//!
//! Number the groups `0..n` by their position in the incumbent (its *rank*).
//! A state is a set `I` of groups already run, written `(k, mask)`: every
//! group of rank below `k` is in `I`, the group of rank `k` is not, and
//! `mask` says which of ranks `k+1 ..= k+w` are; nothing beyond `k+w` is.
//! So a group may run at most `w` places before the group of rank `k` that
//! holds the band back, and the state space has at most `n · 2^w` states
//! instead of every down-set of the DAG: the DP over it is linear in `n`.
//!
//! Within the band the search is the DP of [`super::dp`]: two partial orders
//! reaching the same `I` have the same live bytes, so only the one with the
//! smaller running peak is kept, states whose running peak reaches the
//! budget are dropped, and free moves (a ready group that raises neither
//! the peak nor the live bytes) are taken at once. Layers (states with the
//! same `|I|`) are expanded in turn; a layer wider than the cap keeps its
//! best states (least running peak, then least live bytes), and the result
//! is then a beam search inside the band. Either way the answer is a valid
//! order, re-evaluated by the caller.
//!
//! [`improve`] repeats the search around each better order it finds (the
//! band moves with the incumbent), a large-neighbourhood search whose
//! neighbourhoods are solved by DP: unlike swaps or window re-orderings, one
//! pass can lower every step of the profile at once.

use super::dp::{unwind, GroupModel, NONE};
use super::heuristics::Prepared;
use super::{Groups, Order};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{Graph, OpId};
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// The widest band: `mask` is a `u64`.
pub const MAX_WIDTH: usize = 63;

/// The band and what the search may spend.
#[derive(Debug, Clone, Copy)]
pub struct BandLimits {
    /// How many places a group may run ahead of the first group not yet
    /// run (at most [`MAX_WIDTH`]).
    pub width: usize,
    /// States kept per layer; wider layers keep their best states.
    pub max_layer: usize,
    /// States stored over a whole pass (8 bytes each); a pass that needs
    /// more gives up.
    pub max_states: usize,
    /// Give up after this instant.
    pub deadline: Option<Instant>,
}

/// How a band search went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BandStats {
    /// Passes run (one DP each).
    pub passes: usize,
    /// States kept, summed over passes.
    pub states: usize,
    /// Whether some layer was cut down to the cap.
    pub capped: bool,
}

#[derive(Clone, Copy)]
struct State {
    k: u32,
    mask: u64,
    g: u64,
    live: u64,
    /// Index into the trail of (parent trail, group).
    trail: u32,
}

/// The incumbent as a sequence of groups: groups by the position of their
/// first op, repaired into a topological order of the group DAG.
fn group_sequence(model: &GroupModel, incumbent: &[OpId]) -> Vec<u32> {
    let n = model.p.len();
    let mut pos = vec![usize::MAX; n];
    for (i, v) in incumbent.iter().enumerate() {
        if v.index() < n {
            pos[v.index()] = i;
        }
    }
    let ng = model.len();
    let first: Vec<usize> =
        model.groups.iter().map(|g| g.iter().map(|&v| pos[v as usize]).min().unwrap_or(usize::MAX)).collect();
    let mut waiting: Vec<usize> = model.gpreds.iter().map(Vec::len).collect();
    let mut heap: BinaryHeap<std::cmp::Reverse<(usize, u32)>> =
        (0..ng).filter(|&c| waiting[c] == 0).map(|c| std::cmp::Reverse((first[c], c as u32))).collect();
    let mut seq = Vec::with_capacity(ng);
    while let Some(std::cmp::Reverse((_, c))) = heap.pop() {
        seq.push(c);
        for &s in &model.gsuccs[c as usize] {
            waiting[s as usize] -= 1;
            if waiting[s as usize] == 0 {
                heap.push(std::cmp::Reverse((first[s as usize], s)));
            }
        }
    }
    seq
}

/// One DP pass in the band of width `width` around `incumbent`: the best
/// order found whose peak is below `budget`, with the number of states kept
/// and whether a layer was capped. `None` if there is none in the band (or
/// the deadline passed).
fn pass(model: &GroupModel, incumbent: &[OpId], budget: u64, limits: &BandLimits) -> (Option<Vec<u32>>, usize, bool) {
    let BandLimits { width, max_layer, max_states, deadline } = *limits;
    let p = model.p;
    let ng = model.len();
    let w = width.clamp(1, MAX_WIDTH) as u32;
    let seq = group_sequence(model, incumbent);
    if seq.len() != ng {
        return (None, 0, false);
    }
    let mut rank = vec![0u32; ng];
    for (r, &c) in seq.iter().enumerate() {
        rank[c as usize] = r as u32;
    }
    let has = |k: u32, mask: u64, g: usize| {
        let r = rank[g];
        r < k || (r > k && r - k <= w && mask >> (r - k - 1) & 1 == 1)
    };
    let mut trail: Vec<(u32, u32)> = Vec::new();
    let mut layer = vec![State { k: 0, mask: 0, g: p.start, live: p.live0, trail: NONE }];
    let mut states = 1usize;
    let mut capped = false;
    let mut index: HashMap<(u32, u64), u32> = HashMap::new();
    let mut next: Vec<State> = Vec::new();
    let mut children: Vec<(u64, u64, u32)> = Vec::new();
    for _ in 0..ng {
        if deadline.is_some_and(crate::cancel::passed) || trail.len() > max_states {
            return (None, states, capped);
        }
        index.clear();
        next.clear();
        for s in &layer {
            children.clear();
            let last = (s.k + w).min(ng as u32 - 1);
            for r in s.k..=last {
                let c = seq[r as usize] as usize;
                if r > s.k && s.mask >> (r - s.k - 1) & 1 == 1 {
                    continue;
                }
                if !model.gpreds[c].iter().all(|&q| has(s.k, s.mask, q as usize)) {
                    continue;
                }
                let (peak, after) = model.simulate_by(|g| has(s.k, s.mask, g), c, s.live);
                if peak <= s.g && after <= s.live {
                    children.clear();
                    children.push((peak, after, r));
                    break;
                }
                children.push((peak, after, r));
            }
            for &(peak, after, r) in &children {
                let g = s.g.max(peak);
                if g >= budget {
                    continue;
                }
                let (k, mask) = if r == s.k {
                    let t = s.mask.trailing_ones();
                    (s.k + 1 + t, if t >= 63 { 0 } else { s.mask >> (t + 1) })
                } else {
                    (s.k, s.mask | 1 << (r - s.k - 1))
                };
                match index.get(&(k, mask)) {
                    Some(&i) => {
                        let old = &mut next[i as usize];
                        if g < old.g {
                            old.g = g;
                            trail[old.trail as usize] = (s.trail, seq[r as usize]);
                        }
                    }
                    None => {
                        trail.push((s.trail, seq[r as usize]));
                        index.insert((k, mask), next.len() as u32);
                        next.push(State { k, mask, g, live: after, trail: trail.len() as u32 - 1 });
                    }
                }
            }
        }
        if next.is_empty() {
            return (None, states, capped);
        }
        if next.len() > max_layer {
            capped = true;
            next.sort_unstable_by_key(|s| (s.g, s.live));
            next.truncate(max_layer);
        }
        states += next.len();
        std::mem::swap(&mut layer, &mut next);
    }
    let Some(best) = layer.iter().min_by_key(|s| s.g) else {
        return (None, states, capped);
    };
    (Some(unwind(&trail, best.trail)), states, capped)
}

/// Improves `incumbent` (a topological order of `graph`) by band searches,
/// re-centred on every better order, until a pass finds nothing better or
/// a limit is hit. Returns the best order and its peak (the incumbent's
/// when nothing better was found), and the counters.
pub fn improve(
    graph: &Graph,
    groups: &Groups,
    opts: &MemoryOptions,
    incumbent: &[OpId],
    limits: &BandLimits,
) -> (Order, u64, BandStats) {
    let mut best = incumbent.to_vec();
    let mut best_peak = evaluate(graph, &best, opts).peak;
    let mut stats = BandStats::default();
    let p = Prepared::new(graph, opts);
    let Ok(model) = GroupModel::new(&p, groups) else {
        return (best, best_peak, stats);
    };
    loop {
        let (found, states, capped) = pass(&model, &best, best_peak, limits);
        stats.passes += 1;
        stats.states += states;
        stats.capped |= capped;
        let Some(seq) = found else { break };
        let order = model.flatten(&seq);
        let peak = evaluate(graph, &order, opts).peak;
        if peak >= best_peak {
            break;
        }
        best = order;
        best_peak = peak;
    }
    (best, best_peak, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::from_lists;
    use crate::schedule::dp::singletons;

    #[test]
    fn the_band_width_bounds_how_far_an_op_moves() {
        // x -> b (10) -> b' (10); x -> a (100) -> a' (1); join. The input
        // order runs b first and holds b' while a runs (111); the optimum
        // (102) runs a and a' first, before op 0 (rank 0): a' has rank 3, so
        // this needs a band of width 3.
        let g = from_lists(
            &[(vec![0], vec![1]), (vec![1], vec![2]), (vec![0], vec![3]), (vec![3], vec![4]), (vec![2, 4], vec![5])],
            &[1, 10, 10, 100, 1, 1],
            &[5],
        );
        let opts = MemoryOptions::default();
        let input: Vec<OpId> = g.op_ids().collect();
        assert_eq!(evaluate(&g, &input, &opts).peak, 111);
        let limits = |width| BandLimits { width, max_layer: 1000, max_states: 1 << 20, deadline: None };
        let (order, peak, _) = improve(&g, &singletons(&g), &opts, &input, &limits(3));
        assert_eq!(peak, 102);
        assert_eq!(evaluate(&g, &order, &opts).peak, 102);
        let (_, peak, _) = improve(&g, &singletons(&g), &opts, &input, &limits(2));
        assert_eq!(peak, 111);
    }
}
