//! Offsets in one arena for buffers whose lifetimes are fixed: dynamic
//! storage allocation (DSA) on an interval graph.
//!
//! Every buffer has a size and a closed interval of steps during which it is
//! live; two buffers live at a common step must not overlap in the arena.
//! The arena is the largest `offset + size`. No arena can be smaller than the
//! most bytes live at one step ([`lower_bound`]); fragmentation can make the
//! least arena larger, and finding it is NP-hard in general, but on tensor
//! lifetimes a good placement order almost always reaches the bound.
//!
//! **Placing by an order.** [`place_in_order`] takes the buffers one by one
//! and puts each at the lowest offset where it overlaps no buffer already
//! placed that shares a step with it (first fit). This is complete: for
//! every placement `P` there is an order that yields a placement no higher
//! than `P` at every buffer. Take the buffers by increasing offset in `P`;
//! when buffer `j` comes, every earlier conflicting buffer `i` sits at or
//! below its offset in `P` (induction) and ended at or below `P(j)` there
//! (`P(i) <= P(j)` and they do not overlap), so `[P(j), P(j) + size)` is still
//! free and first fit puts `j` at or below `P(j)`. Searching over orders
//! therefore finds the optimum, which [`exact`] does by branch and bound.
//!
//! **The portfolio** ([`plan`]): TFLite Micro's greedy-by-size rule
//! ([`greedy_by_size`]: largest first, first fit) and other orders (longest
//! lifetime first, largest area first, earliest first), then, when none
//! reaches the bound, a seeded local search over orders (swaps and moves of
//! buffers that end above the bound) and, for small instances, the exact
//! search. The result is never worse than greedy-by-size, which is one of
//! the members.
//!
//! This module is plain data and std only; [`super`] builds the buffers from
//! a schedule.

use std::time::Instant;

/// A buffer to place: `size` bytes, live at every step of `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes, already rounded to the alignment.
    pub size: u64,
    /// First step at which the buffer is live.
    pub first: usize,
    /// Last step at which the buffer is live (`>= first`).
    pub last: usize,
}

impl Buffer {
    /// Whether the two buffers are live at a common step.
    pub fn overlaps_in_time(&self, other: &Buffer) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// An offset for every buffer and the arena they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `offsets[i]` is where buffer `i` starts.
    pub offsets: Vec<u64>,
    /// The largest `offset + size` (0 for no buffers).
    pub arena: u64,
    /// Which method found it, e.g. `greedy-by-size`, `local-search`, `exact`.
    pub method: &'static str,
}

/// The most bytes live at one step: no placement has a smaller arena.
///
/// ```
/// use onnx_memsched::arena::place::{lower_bound, Buffer};
/// let b = [Buffer { size: 4, first: 0, last: 1 }, Buffer { size: 8, first: 1, last: 2 }, Buffer { size: 2, first: 2, last: 2 }];
/// assert_eq!(lower_bound(&b), 12);
/// ```
pub fn lower_bound(buffers: &[Buffer]) -> u64 {
    let steps = buffers.iter().map(|b| b.last + 2).max().unwrap_or(0);
    let mut delta = vec![0i128; steps];
    for b in buffers {
        delta[b.first] += b.size as i128;
        delta[b.last + 1] -= b.size as i128;
    }
    let mut live: i128 = 0;
    let mut best: i128 = 0;
    for d in delta {
        live += d;
        best = best.max(live);
    }
    best as u64
}

/// Most pairs of buffers sharing a step for which [`plan`] builds adjacency
/// lists (4 bytes each, twice); above it (a node reading tens of thousands
/// of live tensors) placement scans the placed buffers instead, in constant
/// extra memory, and only greedy-by-size runs.
pub const MAX_CONFLICTS: usize = 4_000_000;

/// How many pairs of buffers share a step (stops counting past `cap`).
fn conflict_count(buffers: &[Buffer], cap: usize) -> usize {
    let mut events: Vec<(usize, bool)> = Vec::with_capacity(buffers.len() * 2);
    for b in buffers {
        events.push((b.first, false));
        events.push((b.last, true));
    }
    // Starts before ends at the same step: they share it.
    events.sort_unstable();
    let (mut live, mut pairs) = (0usize, 0usize);
    for (_, end) in events {
        if end {
            live -= 1;
        } else {
            pairs += live;
            live += 1;
            if pairs > cap {
                return pairs;
            }
        }
    }
    pairs
}

/// Which buffers share a step with which, as adjacency lists (each buffer's
/// neighbours in increasing index). Built by a sweep over the steps; its
/// memory grows with the number of such pairs (see [`MAX_CONFLICTS`]).
pub fn conflicts(buffers: &[Buffer]) -> Vec<Vec<u32>> {
    let mut by_first: Vec<usize> = (0..buffers.len()).collect();
    by_first.sort_by_key(|&i| (buffers[i].first, i));
    let mut adjacency = vec![Vec::new(); buffers.len()];
    // Buffers started so far that may still be live, pruned lazily.
    let mut open: Vec<usize> = Vec::new();
    for &i in &by_first {
        let b = buffers[i];
        open.retain(|&j| buffers[j].last >= b.first);
        for &j in &open {
            adjacency[i].push(j as u32);
            adjacency[j].push(i as u32);
        }
        open.push(i);
    }
    for list in &mut adjacency {
        list.sort_unstable();
    }
    adjacency
}

/// Places the buffers in `order` (a permutation of their indices), each at
/// the lowest offset where it overlaps no earlier-placed buffer that shares
/// a step with it.
pub fn place_in_order(buffers: &[Buffer], adjacency: &[Vec<u32>], order: &[usize]) -> Placement {
    let mut offsets = vec![u64::MAX; buffers.len()];
    let mut arena = 0;
    let mut taken: Vec<(u64, u64)> = Vec::new();
    for &i in order {
        let offset = lowest_fit(buffers, adjacency, &offsets, i, &mut taken);
        offsets[i] = offset;
        arena = arena.max(offset + buffers[i].size);
    }
    Placement { offsets, arena, method: "first-fit" }
}

/// The lowest offset for buffer `i` given the placed buffers (`u64::MAX`
/// marks unplaced ones). `taken` is scratch space.
fn lowest_fit(
    buffers: &[Buffer],
    adjacency: &[Vec<u32>],
    offsets: &[u64],
    i: usize,
    taken: &mut Vec<(u64, u64)>,
) -> u64 {
    let size = buffers[i].size;
    if size == 0 {
        return 0;
    }
    taken.clear();
    let mut add = |j: usize| {
        let o = offsets[j];
        if o != u64::MAX && buffers[j].size > 0 {
            taken.push((o, o + buffers[j].size));
        }
    };
    if adjacency.is_empty() && buffers.len() > 1 {
        // No lists (too many conflicts to keep): scan every placed buffer.
        for (j, b) in buffers.iter().enumerate() {
            if j != i && b.overlaps_in_time(&buffers[i]) {
                add(j);
            }
        }
    } else {
        for &j in &adjacency[i] {
            add(j as usize);
        }
    }
    taken.sort_unstable();
    let mut candidate = 0;
    for &(start, end) in taken.iter() {
        if candidate + size <= start {
            break;
        }
        candidate = candidate.max(end);
    }
    candidate
}

/// TFLite Micro's greedy-by-size planner: the largest buffer first (ties in
/// index order), each at the lowest offset that fits (first fit).
pub fn greedy_by_size(buffers: &[Buffer]) -> Placement {
    let adjacency =
        if conflict_count(buffers, MAX_CONFLICTS) > MAX_CONFLICTS { Vec::new() } else { conflicts(buffers) };
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].size), i));
    Placement { method: "greedy-by-size", ..place_in_order(buffers, &adjacency, &order) }
}

/// Checks a placement from scratch: every offset a multiple of `alignment`,
/// no two buffers that share a step overlap in the arena, every buffer inside
/// `arena`. Independent of how the placement was made (a sweep over steps,
/// not the adjacency lists the planner used).
pub fn validate(buffers: &[Buffer], placement: &Placement, alignment: u64) -> Result<(), String> {
    if placement.offsets.len() != buffers.len() {
        return Err(format!("{} offsets for {} buffers", placement.offsets.len(), buffers.len()));
    }
    for (i, (b, &o)) in buffers.iter().zip(&placement.offsets).enumerate() {
        if alignment > 0 && o % alignment != 0 {
            return Err(format!("buffer {i} at offset {o}, not a multiple of {alignment}"));
        }
        let end = o.checked_add(b.size).ok_or_else(|| format!("buffer {i} ends past 2^64"))?;
        if end > placement.arena {
            return Err(format!("buffer {i} ends at {end}, past the arena of {}", placement.arena));
        }
        if b.first > b.last {
            return Err(format!("buffer {i} has an empty lifetime {}..={}", b.first, b.last));
        }
    }
    // Sweep over the steps keeping the live buffers by offset. They never
    // overlap (checked on entry), so a buffer entering overlaps one of them
    // exactly when it overlaps its neighbour below or above in offset order.
    let mut entering: Vec<usize> = (0..buffers.len()).filter(|&i| buffers[i].size > 0).collect();
    entering.sort_by_key(|&i| (buffers[i].first, i));
    let mut leaving = entering.clone();
    leaving.sort_by_key(|&i| (buffers[i].last, i));
    let mut live: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    let mut out = 0;
    for &i in &entering {
        let step = buffers[i].first;
        while out < leaving.len() && buffers[leaving[out]].last < step {
            let j = leaving[out];
            if live.get(&placement.offsets[j]) == Some(&j) {
                live.remove(&placement.offsets[j]);
            }
            out += 1;
        }
        let (start, end) = (placement.offsets[i], placement.offsets[i] + buffers[i].size);
        let below = live.range(..=start).next_back();
        let above = live.range(start..).next();
        for (&o, &j) in below.into_iter().chain(above) {
            if o < end && start < o + buffers[j].size {
                return Err(format!(
                    "buffers {j} and {i} are both live at step {step} and overlap at [{}, {})",
                    start.max(o),
                    end.min(o + buffers[j].size)
                ));
            }
        }
        live.insert(start, i);
    }
    Ok(())
}

/// Budget of the search beyond the greedy portfolio.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    /// Stop searching at this instant (the greedy portfolio always runs).
    pub deadline: Instant,
    /// Run the exact search when there are at most this many buffers
    /// taking part in the contested steps.
    pub exact_max_buffers: usize,
}

/// The best placement found: the greedy portfolio (greedy-by-size among
/// them), then local search and, on small instances, the exact search, until
/// the arena meets [`lower_bound`] or the deadline passes. Never above
/// [`greedy_by_size`].
pub fn plan(buffers: &[Buffer], effort: Effort) -> Placement {
    let bound = lower_bound(buffers);
    if conflict_count(buffers, MAX_CONFLICTS) > MAX_CONFLICTS {
        return greedy_by_size(buffers);
    }
    let adjacency = conflicts(buffers);
    let n = buffers.len();
    let key_orders: [(&'static str, Box<dyn Fn(usize) -> (u64, u64, usize)>); 5] = [
        ("greedy-by-size", Box::new(|i: usize| (u64::MAX - buffers[i].size, 0, i))),
        ("size-then-lifetime", Box::new(|i: usize| (u64::MAX - buffers[i].size, u64::MAX - span(&buffers[i]), i))),
        ("longest-lifetime", Box::new(|i: usize| (u64::MAX - span(&buffers[i]), u64::MAX - buffers[i].size, i))),
        ("largest-area", Box::new(|i: usize| (u64::MAX - buffers[i].size.saturating_mul(span(&buffers[i])), 0, i))),
        ("earliest-first", Box::new(|i: usize| (buffers[i].first as u64, u64::MAX - buffers[i].size, i))),
    ];
    let mut best: Option<(Placement, Vec<usize>)> = None;
    for (name, key) in key_orders.iter() {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| key(i));
        let p = place_in_order(buffers, &adjacency, &order);
        if best.as_ref().map_or(true, |(b, _)| p.arena < b.arena) {
            best = Some((Placement { method: name, ..p }, order));
        }
        if best.as_ref().is_some_and(|(b, _)| b.arena <= bound) {
            break;
        }
    }
    let Some((mut best, mut best_order)) = best else {
        return Placement { offsets: Vec::new(), arena: 0, method: "empty" };
    };
    if best.arena <= bound || Instant::now() >= effort.deadline {
        return best;
    }
    if n <= effort.exact_max_buffers {
        if let Some(p) = exact(buffers, &adjacency, best.arena, bound, effort.deadline) {
            if p.arena < best.arena {
                best = p;
            }
        }
        // Finished before the deadline: nothing below `best.arena` exists,
        // so searching on would only spend the time.
        if best.arena <= bound || Instant::now() < effort.deadline {
            return best;
        }
    }
    // Repair first: it re-places only the buffers around the top of the
    // arena, so it is cheap where the local search (which re-places every
    // buffer per move) is slow; it gets half the time left.
    let now = Instant::now();
    let half = now + effort.deadline.saturating_duration_since(now) / 2;
    if let Some(p) = repair(buffers, &adjacency, &best, bound, half) {
        best = p;
        if best.arena <= bound {
            return best;
        }
    }
    if let Some((p, order)) = local_search(buffers, &adjacency, &best_order, best.arena, bound, effort.deadline) {
        if p.arena < best.arena {
            best = p;
            best_order = order;
        }
    }
    let _ = best_order;
    best
}

/// Most buffers a repair window re-places by the exact search.
const REPAIR_EXACT_MAX: usize = 20;

/// Placement repair (a large-neighbourhood search): pick a buffer that ends
/// above `bound`, free every buffer whose lifetime lies inside a window of
/// steps around it, keep all others where they are, and re-place the freed
/// ones (first fit in several orders, or exactly when they are few). A
/// change is kept when neither the arena nor the bytes above the bound
/// grow. The freed buffers are the only ones whose place changes and the
/// others are obstacles, so every step is a valid placement. Returns a
/// placement with a smaller arena than `start`, if one was found before
/// `deadline`.
pub fn repair(
    buffers: &[Buffer],
    adjacency: &[Vec<u32>],
    start: &Placement,
    bound: u64,
    deadline: Instant,
) -> Option<Placement> {
    let n = buffers.len();
    if n < 2 || start.arena <= bound || adjacency.len() != n {
        return None;
    }
    let excess = |offsets: &[u64]| -> u64 {
        buffers.iter().zip(offsets).map(|(b, &o)| (o + b.size).saturating_sub(bound)).sum()
    };
    let top = |offsets: &[u64]| buffers.iter().zip(offsets).map(|(b, &o)| o + b.size).max().unwrap_or(0);
    let steps = buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    // Buffers by first step, to find those inside a window quickly.
    let mut by_first: Vec<usize> = (0..n).collect();
    by_first.sort_by_key(|&i| (buffers[i].first, i));
    let mut offsets = start.offsets.clone();
    let mut arena = start.arena;
    let mut over = excess(&offsets);
    let mut best: Option<Placement> = None;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut taken = Vec::new();
    let mut round: u64 = 0;
    while Instant::now() < deadline && arena > bound {
        round += 1;
        let high: Vec<usize> = (0..n).filter(|&i| offsets[i] + buffers[i].size > bound).collect();
        let Some(&h) = high.get(rng.below(high.len().max(1))) else { break };
        // Windows grow with the rounds (up to the whole schedule) so that a
        // stuck neighbourhood is eventually widened.
        let reach = 1 + rng.below(2 + (round as usize / 8).min(steps));
        let (lo, hi) = (buffers[h].first.saturating_sub(reach), buffers[h].last + reach);
        let from = by_first.partition_point(|&i| buffers[i].first < lo);
        let free: Vec<usize> = by_first[from..]
            .iter()
            .copied()
            .take_while(|&i| buffers[i].first <= hi)
            .filter(|&i| buffers[i].last <= hi && buffers[i].size > 0)
            .collect();
        if free.is_empty() {
            continue;
        }
        let old: Vec<u64> = free.iter().map(|&i| offsets[i]).collect();
        let old_top = free.iter().map(|&i| offsets[i] + buffers[i].size).max().unwrap_or(0);
        for &i in &free {
            offsets[i] = u64::MAX;
        }
        let mut placed = false;
        if free.len() <= REPAIR_EXACT_MAX {
            // The least top for the freed buffers among the fixed ones.
            let sub = Search::run(buffers, adjacency, offsets.clone(), &free, old_top, bound, deadline);
            if let Some((sub_offsets, _)) = sub {
                offsets = sub_offsets;
                placed = true;
            }
        }
        if !placed {
            // First fit, largest first with ties and a few swaps at random.
            let mut keyed: Vec<(std::cmp::Reverse<u64>, usize, usize)> =
                free.iter().map(|&i| (std::cmp::Reverse(buffers[i].size), rng.below(1 << 16), i)).collect();
            keyed.sort_unstable();
            let mut order: Vec<usize> = keyed.into_iter().map(|k| k.2).collect();
            for _ in 0..rng.below(1 + order.len() / 4 + 1) {
                let (a, b) = (rng.below(order.len()), rng.below(order.len()));
                order.swap(a, b);
            }
            for &i in &order {
                offsets[i] = lowest_fit(buffers, adjacency, &offsets, i, &mut taken);
            }
        }
        let (new_arena, new_over) = (top(&offsets), excess(&offsets));
        if (new_arena, new_over) <= (arena, over) {
            let improved = new_arena < best.as_ref().map_or(start.arena, |b| b.arena);
            arena = new_arena;
            over = new_over;
            if improved {
                best = Some(Placement { offsets: offsets.clone(), arena, method: "repair" });
            }
        } else {
            for (&i, &o) in free.iter().zip(&old) {
                offsets[i] = o;
            }
        }
    }
    best
}

fn span(b: &Buffer) -> u64 {
    (b.last - b.first + 1) as u64
}

/// A small deterministic PRNG (xorshift64*), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

/// Local search over placement orders: move a buffer that ends above the
/// bound (or one of its neighbours) earlier in the order, keep the change
/// when the arena does not grow. Returns a strictly better placement, if any.
fn local_search(
    buffers: &[Buffer],
    adjacency: &[Vec<u32>],
    start: &[usize],
    start_arena: u64,
    bound: u64,
    deadline: Instant,
) -> Option<(Placement, Vec<usize>)> {
    let n = start.len();
    if n < 2 {
        return None;
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut order = start.to_vec();
    let mut current = place_in_order(buffers, adjacency, &order);
    let mut best: Option<(Placement, Vec<usize>)> = None;
    let mut best_arena = start_arena;
    let mut tries: u64 = 0;
    while Instant::now() < deadline {
        tries += 1;
        // Buffers at the top of the arena are the ones to move down.
        let high: Vec<usize> = (0..n).filter(|&i| current.offsets[i] + buffers[i].size > bound).collect();
        if high.is_empty() {
            break;
        }
        let mut pos = vec![0usize; n];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        let pick = high[rng.below(high.len())];
        // Either the high buffer itself or a neighbour placed before it.
        let moved = if rng.below(2) == 0 || adjacency[pick].is_empty() {
            pick
        } else {
            adjacency[pick][rng.below(adjacency[pick].len())] as usize
        };
        let from = pos[moved];
        if from == 0 {
            continue;
        }
        let to = rng.below(from);
        let mut candidate = order.clone();
        let item = candidate.remove(from);
        candidate.insert(to, item);
        let p = place_in_order(buffers, adjacency, &candidate);
        if p.arena <= current.arena {
            order = candidate;
            current = p;
            if current.arena < best_arena {
                best_arena = current.arena;
                best = Some((Placement { method: "local-search", ..current.clone() }, order.clone()));
                if best_arena <= bound {
                    break;
                }
            }
        }
        if tries % 64 == 0 && n > 5_000 && Instant::now() >= deadline {
            break;
        }
    }
    best
}

/// Branch and bound over placement orders (complete, see the module doc):
/// the least arena below `upper`, if any, or `None` when none exists or the
/// deadline passed first. Stops at `bound`.
pub fn exact(
    buffers: &[Buffer],
    adjacency: &[Vec<u32>],
    upper: u64,
    bound: u64,
    deadline: Instant,
) -> Option<Placement> {
    let all: Vec<usize> = (0..buffers.len()).collect();
    Search::run(buffers, adjacency, vec![u64::MAX; buffers.len()], &all, upper, bound, deadline)
        .map(|(offsets, arena)| Placement { offsets, arena, method: "exact" })
}

struct Search<'a> {
    buffers: &'a [Buffer],
    adjacency: &'a [Vec<u32>],
    offsets: Vec<u64>,
    best_arena: u64,
    best: Option<Vec<u64>>,
    bound: u64,
    deadline: Instant,
    visits: u64,
    timed_out: bool,
    taken: Vec<(u64, u64)>,
}

impl<'a> Search<'a> {
    /// Places the buffers of `free` (unplaced, `u64::MAX` in `offsets`)
    /// among the others (placed in `offsets`) so that the highest end of a
    /// freed buffer is least and below `upper`, stopping early at `bound`:
    /// the new offsets and that highest end, or `None` (none below `upper`,
    /// or the deadline passed first). Complete for the same reason as
    /// [`exact`]: first fit among fixed obstacles still reaches every
    /// placement's offsets or lower ones.
    fn run(
        buffers: &'a [Buffer],
        adjacency: &'a [Vec<u32>],
        offsets: Vec<u64>,
        free: &[usize],
        upper: u64,
        bound: u64,
        deadline: Instant,
    ) -> Option<(Vec<u64>, u64)> {
        let mut order = free.to_vec();
        // Large buffers first: the bound bites early.
        order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].size), i));
        let mut state = Search {
            buffers,
            adjacency,
            offsets,
            best_arena: upper,
            best: None,
            bound,
            deadline,
            visits: 0,
            timed_out: false,
            taken: Vec::new(),
        };
        let mut used = vec![false; buffers.len()];
        state.dfs(&order, &mut used, 0, 0);
        let arena = state.best_arena;
        state.best.map(|offsets| (offsets, arena))
    }

    fn dfs(&mut self, candidates: &[usize], used: &mut [bool], placed: usize, arena: u64) {
        if self.timed_out || self.best_arena <= self.bound {
            return;
        }
        self.visits += 1;
        if self.visits % 1024 == 0 && Instant::now() >= self.deadline {
            self.timed_out = true;
            return;
        }
        if placed == candidates.len() {
            if arena < self.best_arena {
                self.best_arena = arena;
                self.best = Some(self.offsets.clone());
            }
            return;
        }
        // Offsets chosen so far only depend on the set placed and their
        // order; two buffers that share no step commute, so only try a buffer
        // next if no unplaced buffer earlier in `candidates` is independent
        // of it and would land at the same offset either way. The simple,
        // safe part of that: skip a buffer identical (size and lifetime) to
        // an earlier unplaced one.
        let mut tried: Vec<(u64, usize, usize)> = Vec::new();
        for &i in candidates {
            if used[i] {
                continue;
            }
            let b = self.buffers[i];
            if tried.contains(&(b.size, b.first, b.last)) {
                continue;
            }
            tried.push((b.size, b.first, b.last));
            let mut taken = std::mem::take(&mut self.taken);
            let offset = lowest_fit(self.buffers, self.adjacency, &self.offsets, i, &mut taken);
            self.taken = taken;
            let top = arena.max(offset + b.size);
            if top >= self.best_arena {
                continue;
            }
            used[i] = true;
            self.offsets[i] = offset;
            self.dfs(candidates, used, placed + 1, top);
            self.offsets[i] = u64::MAX;
            used[i] = false;
            if self.timed_out || self.best_arena <= self.bound {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use super::super::test_rng::Rng64;

    fn random_buffers(rng: &mut Rng64, n: usize, steps: u64, align: u64) -> Vec<Buffer> {
        (0..n)
            .map(|_| {
                let first = rng.below(steps) as usize;
                let last = first + rng.below(1 + steps / 2) as usize;
                let size = match rng.below(4) {
                    0 => 0,
                    1 => align * (1 + rng.below(2)),
                    _ => align * (1 + rng.below(8)),
                };
                Buffer { size, first, last }
            })
            .collect()
    }

    /// The least arena over all placements with aligned offsets, by trying
    /// every assignment of offsets from a small grid: shares nothing with the
    /// planner (no first fit, no orders).
    fn brute_force_arena(buffers: &[Buffer], align: u64) -> u64 {
        let total: u64 = buffers.iter().map(|b| b.size).sum();
        let slots = total / align + 1;
        let mut offsets = vec![0u64; buffers.len()];
        let mut best = u64::MAX;
        fn rec(i: usize, buffers: &[Buffer], align: u64, slots: u64, offsets: &mut Vec<u64>, best: &mut u64) {
            if i == buffers.len() {
                let arena = buffers.iter().zip(offsets.iter()).map(|(b, o)| o + b.size).max().unwrap_or(0);
                *best = (*best).min(arena);
                return;
            }
            for s in 0..slots {
                let o = s * align;
                if o + buffers[i].size >= *best && buffers[i].size > 0 {
                    break;
                }
                let ok = (0..i).all(|j| {
                    !buffers[i].overlaps_in_time(&buffers[j])
                        || buffers[i].size == 0
                        || buffers[j].size == 0
                        || o + buffers[i].size <= offsets[j]
                        || offsets[j] + buffers[j].size <= o
                });
                if ok {
                    offsets[i] = o;
                    rec(i + 1, buffers, align, slots, offsets, best);
                }
                if buffers[i].size == 0 {
                    break;
                }
            }
        }
        rec(0, buffers, align, slots, &mut offsets, &mut best);
        best
    }

    fn effort(ms: u64) -> Effort {
        Effort { deadline: Instant::now() + Duration::from_millis(ms), exact_max_buffers: 64 }
    }

    #[test]
    fn lower_bound_is_the_fullest_step() {
        let b = [
            Buffer { size: 4, first: 0, last: 3 },
            Buffer { size: 8, first: 1, last: 1 },
            Buffer { size: 16, first: 2, last: 4 },
            Buffer { size: 1, first: 4, last: 4 },
        ];
        // step 2: 4 + 16; step 3: 4 + 16; step 4: 16 + 1; step 1: 4 + 8.
        assert_eq!(lower_bound(&b), 20);
    }

    #[test]
    fn greedy_by_size_can_fragment_and_the_plan_does_better() {
        // A classic: by size, C (10) lands at 0 and B (6) above it, so D (6),
        // live with B but not with C, cannot use the room C leaves.
        let b = [
            Buffer { size: 4, first: 0, last: 1 },  // A
            Buffer { size: 6, first: 1, last: 2 },  // B
            Buffer { size: 10, first: 0, last: 0 }, // C
            Buffer { size: 6, first: 2, last: 3 },  // D
            Buffer { size: 4, first: 3, last: 3 },  // E
        ];
        let g = greedy_by_size(&b);
        validate(&b, &g, 1).unwrap();
        let p = plan(&b, effort(1000));
        validate(&b, &p, 1).unwrap();
        assert!(p.arena <= g.arena);
        assert_eq!(p.arena, brute_force_arena(&b, 1));
    }

    #[test]
    fn random_lifetimes_valid_within_bound_and_greedy() {
        let mut rng = Rng64(0x1234_5678_9ABC_DEF1);
        for case in 0..400 {
            let n = 1 + rng.below(40) as usize;
            let b = random_buffers(&mut rng, n, 12, 64);
            let g = greedy_by_size(&b);
            validate(&b, &g, 64).unwrap_or_else(|e| panic!("case {case}: greedy invalid: {e}"));
            let p = plan(&b, effort(20));
            validate(&b, &p, 64).unwrap_or_else(|e| panic!("case {case}: plan invalid: {e}"));
            assert!(p.arena >= lower_bound(&b), "case {case}");
            assert!(p.arena <= g.arena, "case {case}: plan {} above greedy {}", p.arena, g.arena);
        }
    }

    #[test]
    fn exact_equals_brute_force_on_small_cases() {
        let mut rng = Rng64(0xDEAD_BEEF_0000_0001);
        let mut below_greedy = 0;
        for case in 0..300 {
            let n = 1 + rng.below(7) as usize;
            let b = random_buffers(&mut rng, n, 6, 1);
            let truth = brute_force_arena(&b, 1);
            let adjacency = conflicts(&b);
            let g = greedy_by_size(&b);
            let found = exact(&b, &adjacency, g.arena + 1, 0, Instant::now() + Duration::from_secs(10))
                .unwrap_or_else(|| panic!("case {case}: exact found nothing below greedy + 1"));
            validate(&b, &found, 1).unwrap();
            assert_eq!(found.arena, truth, "case {case}: {b:?}");
            let p = plan(&b, effort(1000));
            assert_eq!(p.arena, truth, "case {case}: plan {} vs optimum {truth}: {b:?}", p.arena);
            if truth < g.arena {
                below_greedy += 1;
            }
        }
        // The generator must produce cases where greedy-by-size is not optimal,
        // or this test would not show that the search adds anything.
        assert!(below_greedy > 0);
    }

    #[test]
    fn many_conflicts_use_no_adjacency_lists_and_stay_valid() {
        // 3,000 buffers alive together: 4.5 million pairs, above the cap.
        let b: Vec<Buffer> =
            (0..3000).map(|i| Buffer { size: 64 * (1 + (i % 5) as u64), first: i % 7, last: 10 }).collect();
        assert!(conflict_count(&b, MAX_CONFLICTS) > MAX_CONFLICTS);
        let p = plan(&b, effort(50));
        validate(&b, &p, 64).unwrap();
        // All live at step 10: the bound is the total, and first fit meets it.
        assert_eq!(p.arena, lower_bound(&b));
        assert_eq!(p.arena, b.iter().map(|b| b.size).sum::<u64>());
    }

    #[test]
    fn validate_catches_overlaps_and_misalignment() {
        let b = [Buffer { size: 64, first: 0, last: 2 }, Buffer { size: 64, first: 2, last: 3 }];
        let good = Placement { offsets: vec![0, 64], arena: 128, method: "t" };
        assert!(validate(&b, &good, 64).is_ok());
        let overlap = Placement { offsets: vec![0, 32], arena: 128, method: "t" };
        assert!(validate(&b, &overlap, 32).unwrap_err().contains("step 2"));
        let misaligned = Placement { offsets: vec![0, 96], arena: 160, method: "t" };
        assert!(validate(&b, &misaligned, 64).unwrap_err().contains("multiple"));
        let outside = Placement { offsets: vec![0, 64], arena: 100, method: "t" };
        assert!(validate(&b, &outside, 64).unwrap_err().contains("past the arena"));
        // Disjoint lifetimes may share offsets.
        let c = [Buffer { size: 64, first: 0, last: 1 }, Buffer { size: 64, first: 2, last: 3 }];
        assert!(validate(&c, &Placement { offsets: vec![0, 0], arena: 64, method: "t" }, 64).is_ok());
    }
}
