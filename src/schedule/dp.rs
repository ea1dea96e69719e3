//! Exact search: dynamic programming over executed sets (downsets).
//!
//! # The state space
//!
//! Ops are searched in [`Groups`] (ops that some optimal schedule runs back
//! to back; singletons without fusion). A state is the set `S` of groups
//! already run, a down-set of the group DAG. The live bytes between steps
//! depend only on `S` (a tensor is live iff it exists and a consumer outside
//! `S` still needs it, or it is never freed), so two partial schedules that
//! reach the same `S` differ only in their running peak `g(S)`, the largest
//! step memory so far; keeping the smaller one loses nothing. Running a ready
//! group `c` from `S` costs `peak(S, c)`, the largest step memory of its ops
//! in order, and `g(S ∪ {c}) = max(g(S), peak(S, c))`.
//!
//! # Search order and proofs
//!
//! States are expanded best-first by `g` (Dijkstra on the bottleneck cost,
//! which is monotone along paths), ties to the deeper state. Hence:
//!
//! * the first complete state popped has the least peak of all schedules
//!   (among those under the budget);
//! * every popped `g(S)` is at most the optimum, so if some completion of a
//!   popped `S` stays within `g(S)` (tried with a greedy), that completion is
//!   optimal.
//!
//! **Budget pruning.** With an incumbent of peak `B`, a state with
//! `g >= B` is dropped: the search either finds a schedule strictly below
//! `B` or, when the queue runs dry, proves that none exists (the incumbent
//! is optimal). **Bound pruning.** Every remaining op `v` still has to run,
//! and its step needs at least LB2(v) bytes in every order (see
//! [`crate::graph::bounds`]), so a state with `max(g, max_{v ∉ S} LB2(v)) >= B`
//! is dropped too.
//!
//! **Free moves.** If a ready group `c` has `peak(S, c) <= g(S)` and does not
//! increase the live bytes (`live(S ∪ {c}) <= live(S)`), only that child is
//! expanded. Proof: take any completion of `S` that runs `c` later, after a
//! stretch `W` of ops, and move `c` to the front. `c`'s own steps stay within
//! `g(S)`. No op of `W` reads `c`'s outputs (they ran before `c`), and moving
//! `c` earlier only frees its dying inputs earlier, so at every step of `W`
//! the live bytes change by at most `live(S ∪ {c}) - live(S) <= 0`; an op of
//! `W` that now becomes the last reader of a tensor can only gain in-place
//! reuse. After `c` everything is as before. So the moved completion is no
//! worse, and some optimal completion of `S` starts with `c`.
//!
//! The number of stored states is capped ([`DpLimits::max_states`]) and the
//! deadline is checked every few hundred expansions: the search then gives up
//! cleanly with [`DpOutcome::TooManyStates`] or [`DpOutcome::Timeout`].

use super::heuristics::Prepared;
use super::{Groups, Order};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{topo, Graph, OpId};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

/// How long and how large the search may grow.
#[derive(Debug, Clone, Copy)]
pub struct DpLimits {
    /// Give up after this instant.
    pub deadline: Option<Instant>,
    /// Give up once this many states are stored (each takes about
    /// `40 + groups / 8` bytes).
    pub max_states: usize,
}

impl Default for DpLimits {
    fn default() -> Self {
        DpLimits { deadline: None, max_states: 4_000_000 }
    }
}

/// What the search established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpOutcome {
    /// `order` is optimal with this `peak`. `improved` says whether it beats
    /// the incumbent (otherwise the incumbent itself is returned, now proved).
    Proved {
        /// An optimal order.
        order: Order,
        /// Its peak.
        peak: u64,
        /// Whether it is strictly better than the incumbent.
        improved: bool,
    },
    /// The deadline passed first.
    Timeout,
    /// The state cap was reached first.
    TooManyStates,
    /// The groups are not a partition of the ops into runnable blocks.
    InvalidGroups(String),
}

/// Counters of one search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpStats {
    /// States stored.
    pub states: usize,
    /// States expanded.
    pub expanded: usize,
    /// Greedy completions tried.
    pub completions: usize,
}

/// The outcome with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpResult {
    /// What was established.
    pub outcome: DpOutcome,
    /// Counters.
    pub stats: DpStats,
}

/// Every op alone in its group, in file order.
pub fn singletons(graph: &Graph) -> Groups {
    graph.op_ids().map(|v| vec![v]).collect()
}

/// Identity hasher for keys that are already uniformly random (Zobrist).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The groups as a DAG with the memory effect of running each from a state.
pub(crate) struct GroupModel<'p, 'g> {
    pub p: &'p Prepared<'g>,
    pub groups: Vec<Vec<u32>>,
    /// The group of each op and its position inside it.
    group_of: Vec<u32>,
    pos: Vec<u32>,
    /// Distinct predecessor and successor groups.
    pub gpreds: Vec<Vec<u32>>,
    pub gsuccs: Vec<Vec<u32>>,
    /// Words of a set of groups.
    pub words: usize,
    /// Zobrist key of each group.
    pub zobrist: Vec<u64>,
}

impl<'p, 'g> GroupModel<'p, 'g> {
    /// Checks that `groups` partition the ops, that each group's order runs
    /// its ops after their producers inside the group, and that the groups
    /// form a DAG.
    pub fn new(p: &'p Prepared<'g>, groups: &Groups) -> Result<Self, String> {
        let n = p.len();
        let mut group_of = vec![u32::MAX; n];
        let mut pos = vec![0u32; n];
        for (gi, g) in groups.iter().enumerate() {
            if g.is_empty() {
                return Err(format!("group {gi} is empty"));
            }
            for (k, v) in g.iter().enumerate() {
                if v.index() >= n {
                    return Err(format!("op id {} is out of range", v.0));
                }
                if group_of[v.index()] != u32::MAX {
                    return Err(format!("{} is in two groups", p.graph.describe_op(*v)));
                }
                group_of[v.index()] = gi as u32;
                pos[v.index()] = k as u32;
            }
        }
        if let Some(v) = group_of.iter().position(|&g| g == u32::MAX) {
            return Err(format!("{} is in no group", p.graph.describe_op(OpId(v as u32))));
        }
        let ng = groups.len();
        let mut gpreds: Vec<Vec<u32>> = vec![Vec::new(); ng];
        for (gi, g) in groups.iter().enumerate() {
            for v in g {
                for &u in &p.preds[v.index()] {
                    let gu = group_of[u as usize];
                    if gu as usize == gi {
                        if pos[u as usize] > pos[v.index()] {
                            return Err(format!(
                                "group {gi} runs {} before its producer {}",
                                p.graph.describe_op(*v),
                                p.graph.describe_op(OpId(u))
                            ));
                        }
                    } else {
                        gpreds[gi].push(gu);
                    }
                }
            }
            gpreds[gi].sort_unstable();
            gpreds[gi].dedup();
        }
        let mut gsuccs: Vec<Vec<u32>> = vec![Vec::new(); ng];
        for (gi, ps) in gpreds.iter().enumerate() {
            for &q in ps {
                gsuccs[q as usize].push(gi as u32);
            }
        }
        // Acyclic?
        let mut waiting: Vec<usize> = gpreds.iter().map(Vec::len).collect();
        let mut stack: Vec<usize> = (0..ng).filter(|&g| waiting[g] == 0).collect();
        let mut seen = 0;
        while let Some(g) = stack.pop() {
            seen += 1;
            for &s in &gsuccs[g] {
                waiting[s as usize] -= 1;
                if waiting[s as usize] == 0 {
                    stack.push(s as usize);
                }
            }
        }
        if seen != ng {
            return Err("the groups depend on each other in a cycle".into());
        }
        let mut seed = 0x005E_ED0F_DA7A;
        let zobrist = (0..ng).map(|_| splitmix(&mut seed)).collect();
        Ok(GroupModel {
            p,
            groups: groups.iter().map(|g| g.iter().map(|v| v.0).collect()).collect(),
            group_of,
            pos,
            gpreds,
            gsuccs,
            words: ng.div_ceil(64).max(1),
            zobrist,
        })
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    #[inline]
    fn has(set: &[u64], g: usize) -> bool {
        set[g / 64] >> (g % 64) & 1 == 1
    }

    #[inline]
    pub fn add(set: &mut [u64], g: usize) {
        set[g / 64] |= 1 << (g % 64);
    }

    /// Whether group `c` (not in `set`) has all its predecessors in `set`.
    #[inline]
    pub fn is_ready(&self, set: &[u64], c: usize) -> bool {
        !Self::has(set, c) && self.gpreds[c].iter().all(|&q| Self::has(set, q as usize))
    }

    /// Running group `c` from the state `set` with `live` bytes live:
    /// (largest step memory, live bytes after).
    pub fn simulate(&self, set: &[u64], c: usize, live: u64) -> (u64, u64) {
        self.simulate_by(|g| Self::has(set, g), c, live)
    }

    /// [`Self::simulate`] with the state given as a membership test on groups.
    #[inline]
    pub fn simulate_by(&self, has: impl Fn(usize) -> bool, c: usize, live: u64) -> (u64, u64) {
        let p = self.p;
        let mut live = live;
        let mut peak = 0;
        for &v in &self.groups[c] {
            let v = v as usize;
            let my_pos = self.pos[v];
            let (reuse, freed) = p.effect(v, |t| {
                p.graph.tensors[t].consumers.iter().all(|u| {
                    let u = u.index();
                    if u == v {
                        return true;
                    }
                    let gu = self.group_of[u] as usize;
                    has(gu) || (gu == c && self.pos[u] < my_pos)
                })
            });
            peak = peak.max(live + p.alloc[v] - reuse);
            live = live + p.alloc[v] - freed;
        }
        (peak, live)
    }

    /// The ops of the groups in `seq`, in order.
    pub fn flatten(&self, seq: &[u32]) -> Order {
        seq.iter().flat_map(|&g| self.groups[g as usize].iter().map(|&v| OpId(v))).collect()
    }

    /// Greedy completion from a state: repeatedly run a free move if there
    /// is one, else the ready group with the lowest step peak (then the most
    /// bytes freed). Returns the groups run and the running peak; gives up
    /// (None) as soon as the peak would exceed `cap`, or at `deadline` (each
    /// step scans every ready group: quadratic on wide graphs).
    pub fn complete_greedily(
        &self,
        set: &[u64],
        live: u64,
        g: u64,
        cap: u64,
        deadline: Option<Instant>,
    ) -> Option<(Vec<u32>, u64)> {
        let mut set = set.to_vec();
        let mut live = live;
        let mut g = g;
        let mut ready: Vec<u32> = (0..self.len()).filter(|&c| self.is_ready(&set, c)).map(|c| c as u32).collect();
        let mut seq = Vec::new();
        let mut work = 0usize;
        while !ready.is_empty() {
            work += ready.len();
            if work > 1 << 16 {
                work = 0;
                if deadline.is_some_and(|d| crate::cancel::passed(d)) {
                    return None;
                }
            }
            let mut best: Option<(usize, (u64, u64))> = None;
            let mut best_key = (true, u64::MAX, u64::MAX);
            for (i, &c) in ready.iter().enumerate() {
                let (peak, after) = self.simulate(&set, c as usize, live);
                let free = peak <= g && after <= live;
                let key = (!free, peak, after);
                if key < best_key {
                    best_key = key;
                    best = Some((i, (peak, after)));
                }
            }
            let (i, (peak, after)) = best?;
            if peak > cap {
                return None;
            }
            let c = ready.swap_remove(i) as usize;
            Self::add(&mut set, c);
            g = g.max(peak);
            live = after;
            seq.push(c as u32);
            for &s in &self.gsuccs[c] {
                if self.is_ready(&set, s as usize) {
                    ready.push(s);
                }
            }
        }
        Some((seq, g))
    }
}

/// Stored states: flat arrays indexed by state id.
struct Arena {
    words: usize,
    sets: Vec<u64>,
    g: Vec<u64>,
    live: Vec<u64>,
    depth: Vec<u32>,
    parent: Vec<u32>,
    via: Vec<u32>,
    closed: Vec<bool>,
    /// Next state with the same Zobrist key.
    next: Vec<u32>,
    index: IdMap<u32>,
}

/// No state: the root's parent, the end of a chain.
pub(crate) const NONE: u32 = u32::MAX;

/// The groups run along a trail of `(parent entry, group)` pairs, from the
/// root (parent [`NONE`]) to entry `t`.
pub(crate) fn unwind(trail: &[(u32, u32)], mut t: u32) -> Vec<u32> {
    let mut seq = Vec::new();
    while t != NONE {
        let (parent, c) = trail[t as usize];
        seq.push(c);
        t = parent;
    }
    seq.reverse();
    seq
}

impl Arena {
    fn set(&self, i: u32) -> &[u64] {
        &self.sets[i as usize * self.words..(i as usize + 1) * self.words]
    }

    fn find(&self, key: u64, set: &[u64]) -> Option<u32> {
        let mut i = *self.index.get(&key)?;
        while i != NONE {
            if self.set(i) == set {
                return Some(i);
            }
            i = self.next[i as usize];
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(&mut self, key: u64, set: &[u64], g: u64, live: u64, depth: u32, parent: u32, via: u32) -> u32 {
        let i = self.g.len() as u32;
        self.sets.extend_from_slice(set);
        self.g.push(g);
        self.live.push(live);
        self.depth.push(depth);
        self.parent.push(parent);
        self.via.push(via);
        self.closed.push(false);
        let head = self.index.insert(key, i).unwrap_or(NONE);
        self.next.push(head);
        i
    }

    fn path(&self, mut i: u32) -> Vec<u32> {
        let mut seq = Vec::new();
        while self.parent[i as usize] != NONE {
            seq.push(self.via[i as usize]);
            i = self.parent[i as usize];
        }
        seq.reverse();
        seq
    }
}

/// Finds an order of least peak, or proves the incumbent optimal, by
/// best-first search over executed sets of `groups` (see the module doc).
///
/// `incumbent` (a topological order) sets the budget: only strictly better
/// schedules are searched for. `lower_bound` is a bound the caller knows
/// (0 if none); the search stops at once when the incumbent meets it.
pub fn solve(
    graph: &Graph,
    groups: &Groups,
    opts: &MemoryOptions,
    incumbent: Option<&[OpId]>,
    lower_bound: u64,
    limits: &DpLimits,
) -> DpResult {
    let mut stats = DpStats::default();
    let done = |outcome, stats| DpResult { outcome, stats };
    let p = Prepared::new(graph, opts);
    let model = match GroupModel::new(&p, groups) {
        Ok(m) => m,
        Err(e) => return done(DpOutcome::InvalidGroups(e), stats),
    };
    let Ok(topo_order) = topo::stable_order(graph) else {
        return done(DpOutcome::InvalidGroups("the graph has a cycle".into()), stats);
    };
    let incumbent = incumbent.filter(|o| topo::check_order(graph, o).is_ok());
    let budget = incumbent.map_or(u64::MAX, |o| evaluate(graph, o, opts).peak);
    let lower_bound = lower_bound.max(p.start);
    if let Some(o) = incumbent {
        if budget <= lower_bound {
            return done(DpOutcome::Proved { order: o.to_vec(), peak: budget, improved: false }, stats);
        }
    }
    let ng = model.len();
    if ng == 0 {
        return done(DpOutcome::Proved { order: Vec::new(), peak: p.start, improved: budget > p.start }, stats);
    }
    // Static bound of each group: the largest LB2 of its ops; groups sorted
    // by it, largest first, for h(S) = max over groups not yet run.
    // (LB2 in O(n) memory: the n x n reachability would not fit big graphs.)
    let op_lb = crate::graph::bounds::lb2_per_op(graph, &topo_order, opts, limits.deadline).per_op;
    let group_lb: Vec<u64> =
        model.groups.iter().map(|g| g.iter().map(|&v| op_lb[v as usize]).max().unwrap_or(0)).collect();
    let mut by_lb: Vec<usize> = (0..ng).collect();
    by_lb.sort_by_key(|&c| Reverse(group_lb[c]));
    let h = |set: &[u64]| by_lb.iter().find(|&&c| !GroupModel::has(set, c)).map_or(0, |&c| group_lb[c]);

    let words = model.words;
    let mut arena = Arena {
        words,
        sets: Vec::new(),
        g: Vec::new(),
        live: Vec::new(),
        depth: Vec::new(),
        parent: Vec::new(),
        via: Vec::new(),
        closed: Vec::new(),
        next: Vec::new(),
        index: IdMap::default(),
    };
    let empty = vec![0u64; words];
    let root = arena.insert(0, &empty, p.start, p.live0, 0, NONE, NONE);
    let mut heap: BinaryHeap<Reverse<(u64, Reverse<u32>, u32)>> = BinaryHeap::new();
    heap.push(Reverse((p.start, Reverse(0), root)));
    let mut set = vec![0u64; words];
    let mut children: Vec<(u32, u64, u64)> = Vec::new();
    let mut last_completion_g = None;
    let mut completions_at_g = 0;
    let proved = |order: Order, peak: u64| DpOutcome::Proved { order, peak, improved: peak < budget };

    while let Some(Reverse((g, _, i))) = heap.pop() {
        let iu = i as usize;
        if arena.closed[iu] || arena.g[iu] != g {
            continue;
        }
        arena.closed[iu] = true;
        stats.expanded += 1;
        if stats.expanded % 256 == 0 {
            if let Some(d) = limits.deadline {
                if crate::cancel::passed(d) {
                    stats.states = arena.g.len();
                    return done(DpOutcome::Timeout, stats);
                }
            }
        }
        let depth = arena.depth[iu];
        set.copy_from_slice(arena.set(i));
        let live = arena.live[iu];
        if depth as usize == ng {
            stats.states = arena.g.len();
            let order = model.flatten(&arena.path(i));
            return done(proved(order, g), stats);
        }
        // g <= optimum here: a completion within g is optimal.
        let hs = h(&set);
        if hs <= g {
            if last_completion_g != Some(g) {
                last_completion_g = Some(g);
                completions_at_g = 0;
            }
            if completions_at_g < 4 {
                completions_at_g += 1;
                stats.completions += 1;
                if let Some((seq, peak)) = model.complete_greedily(&set, live, g, g, limits.deadline) {
                    let mut full = arena.path(i);
                    full.extend(seq);
                    stats.states = arena.g.len();
                    return done(proved(model.flatten(&full), peak), stats);
                }
            }
        }
        children.clear();
        for c in 0..ng {
            if !model.is_ready(&set, c) {
                continue;
            }
            let (peak, after) = model.simulate(&set, c, live);
            if peak <= g && after <= live {
                // A free move: the only child worth expanding.
                children.clear();
                children.push((c as u32, peak, after));
                break;
            }
            children.push((c as u32, peak, after));
        }
        let key = {
            let mut k = 0u64;
            for c in 0..ng {
                if GroupModel::has(&set, c) {
                    k ^= model.zobrist[c];
                }
            }
            k
        };
        for (k, &(c, peak, after)) in children.iter().enumerate() {
            // Wide graphs have many children, each costing O(groups).
            if k % 1024 == 1023 && limits.deadline.is_some_and(|d| crate::cancel::passed(d)) {
                stats.states = arena.g.len();
                return done(DpOutcome::Timeout, stats);
            }
            let g2 = g.max(peak);
            if g2 >= budget {
                continue;
            }
            let mut child = set.clone();
            GroupModel::add(&mut child, c as usize);
            if h(&child) >= budget {
                continue;
            }
            let key2 = key ^ model.zobrist[c as usize];
            match arena.find(key2, &child) {
                Some(j) => {
                    let ju = j as usize;
                    if arena.closed[ju] || arena.g[ju] <= g2 {
                        continue;
                    }
                    arena.g[ju] = g2;
                    arena.parent[ju] = i;
                    arena.via[ju] = c;
                    heap.push(Reverse((g2, Reverse(depth + 1), j)));
                }
                None => {
                    if arena.g.len() >= limits.max_states {
                        stats.states = arena.g.len();
                        return done(DpOutcome::TooManyStates, stats);
                    }
                    let j = arena.insert(key2, &child, g2, after, depth + 1, i, c);
                    heap.push(Reverse((g2, Reverse(depth + 1), j)));
                }
            }
        }
    }
    stats.states = arena.g.len();
    match incumbent {
        // Nothing below the budget: the incumbent is optimal.
        Some(o) => done(DpOutcome::Proved { order: o.to_vec(), peak: budget, improved: false }, stats),
        // Without an incumbent the budget is infinite and the search always
        // reaches the full set; this is unreachable but harmless.
        None => done(DpOutcome::TooManyStates, stats),
    }
}

/// Beam search over the same state space: keeps the `width` best states
/// (least running peak, then least live bytes) per number of groups run,
/// with the same free moves. An anytime heuristic for parts too large for
/// [`solve`]; returns the best complete order found and its peak, or None
/// if the deadline passed first or the groups are invalid.
pub fn beam(
    graph: &Graph,
    groups: &Groups,
    opts: &MemoryOptions,
    width: usize,
    deadline: Option<Instant>,
) -> Option<(Order, u64)> {
    let p = Prepared::new(graph, opts);
    let model = GroupModel::new(&p, groups).ok()?;
    let ng = model.len();
    let words = model.words;
    struct Node {
        set: Vec<u64>,
        key: u64,
        g: u64,
        live: u64,
        ready: Vec<u32>,
        trail: u32,
    }
    // trail: index into (parent trail, group) pairs, to rebuild the order.
    let mut trails: Vec<(u32, u32)> = Vec::new();
    let root_ready: Vec<u32> = (0..ng as u32).filter(|&c| model.gpreds[c as usize].is_empty()).collect();
    let mut level =
        vec![Node { set: vec![0; words], key: 0, g: p.start, live: p.live0, ready: root_ready, trail: NONE }];
    let width = width.max(1);
    let mut expansions = 0usize;
    for _ in 0..ng {
        // A level of a wide graph sorts width x ready children: check here too.
        if deadline.is_some_and(|d| crate::cancel::passed(d)) {
            return None;
        }
        // (g, live, parent index in level, group) of every child, deduplicated by set.
        let mut cands: Vec<(u64, u64, usize, u32, u64)> = Vec::new();
        for (pi, node) in level.iter().enumerate() {
            expansions += 1;
            if expansions % 64 == 0 {
                if let Some(d) = deadline {
                    if crate::cancel::passed(d) {
                        return None;
                    }
                }
            }
            let mut local: Vec<(u64, u64, u32)> = Vec::new();
            for &c in &node.ready {
                let (peak, after) = model.simulate(&node.set, c as usize, node.live);
                if peak <= node.g && after <= node.live {
                    local.clear();
                    local.push((peak, after, c));
                    break;
                }
                local.push((peak, after, c));
            }
            for (peak, after, c) in local {
                cands.push((node.g.max(peak), after, pi, c, node.key ^ model.zobrist[c as usize]));
            }
        }
        cands.sort_unstable_by_key(|&(g, live, pi, c, _)| (g, live, pi, c));
        let mut seen: IdMap<()> = IdMap::default();
        let mut next = Vec::with_capacity(width);
        for &(g, live, pi, c, key) in &cands {
            if next.len() >= width {
                break;
            }
            if seen.insert(key, ()).is_some() {
                continue;
            }
            let parent = &level[pi];
            let mut set = parent.set.clone();
            GroupModel::add(&mut set, c as usize);
            let mut ready: Vec<u32> = parent.ready.iter().copied().filter(|&r| r != c).collect();
            for &s in &model.gsuccs[c as usize] {
                if model.is_ready(&set, s as usize) {
                    ready.push(s);
                }
            }
            trails.push((parent.trail, c));
            next.push(Node { set, key, g, live, ready, trail: trails.len() as u32 - 1 });
        }
        if next.is_empty() {
            return None;
        }
        level = next;
    }
    let best = level.iter().min_by_key(|n| n.g)?;
    let order = model.flatten(&unwind(&trails, best.trail));
    let peak = evaluate(graph, &order, opts).peak;
    Some((order, peak))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::from_lists;
    use crate::schedule::heuristics;

    #[test]
    fn dp_finds_the_better_branch_order() {
        // x -> a (100) -> a' (1); x -> b (10) -> b' (1); join.
        let g = from_lists(
            &[(vec![0], vec![3]), (vec![3], vec![4]), (vec![0], vec![1]), (vec![1], vec![2]), (vec![2, 4], vec![5])],
            &[1, 100, 1, 10, 1, 1],
            &[5],
        );
        let opts = MemoryOptions::default();
        let r = solve(&g, &singletons(&g), &opts, None, 0, &DpLimits::default());
        let DpOutcome::Proved { order, peak, .. } = r.outcome else { panic!("{r:?}") };
        assert_eq!(peak, 102);
        assert_eq!(evaluate(&g, &order, &opts).peak, 102);
        // With the optimum as incumbent, the search proves it.
        let r = solve(&g, &singletons(&g), &opts, Some(&order), 0, &DpLimits::default());
        assert!(matches!(r.outcome, DpOutcome::Proved { improved: false, peak: 102, .. }));
        let bfs = heuristics::kahn_bfs(&g);
        let r = solve(&g, &singletons(&g), &opts, Some(&bfs), 0, &DpLimits::default());
        assert!(matches!(r.outcome, DpOutcome::Proved { improved: true, peak: 102, .. }), "{r:?}");
        let (_, bp) = beam(&g, &singletons(&g), &opts, 4, None).expect("beam");
        assert_eq!(bp, 102);
    }

    #[test]
    fn invalid_groups_are_reported() {
        let g = from_lists(&[(vec![0], vec![1]), (vec![1], vec![2])], &[1; 3], &[2]);
        let opts = MemoryOptions::default();
        let bad = vec![vec![OpId(1), OpId(0)]];
        let r = solve(&g, &bad, &opts, None, 0, &DpLimits::default());
        assert!(matches!(r.outcome, DpOutcome::InvalidGroups(_)));
        let missing = vec![vec![OpId(0)]];
        assert!(matches!(
            solve(&g, &missing, &opts, None, 0, &DpLimits::default()).outcome,
            DpOutcome::InvalidGroups(_)
        ));
    }
}
