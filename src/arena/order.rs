//! Order for the arena: among the orders whose peak is no higher than the
//! chosen one's (so, when that peak is proved optimal, among the optimal
//! orders), and which the target's runtime constraint admits, prefer one
//! whose arena meets its bound.
//!
//! Two orders with the same live-bytes peak can need different arenas,
//! because fixed offsets fragment differently. When the first order's arena
//! is above its bound, [`choose`] looks for another order:
//!
//! - **exhaustively** on small graphs ([`EXHAUSTIVE_MAX_OPS`]): every
//!   topological order whose peak is not above the chosen one's (prefixes
//!   that already exceed it are cut), each placed by [`plan_memory`], which
//!   is exact on small plans ([`super::EXACT_MAX_BUFFERS`]). When the
//!   enumeration completes in time and every plan was small enough to be
//!   placed exactly, "none found" is a proof that no admissible order's
//!   arena meets its bound;
//! - **by local moves** otherwise: shift one op to another position within
//!   its slack (after its last predecessor, before its first successor),
//!   preferring ops that run while a tensor ending above the bound is live;
//!   keep the move when the peak does not rise, the constraint admits it and
//!   the arena does not grow.
//!
//! An order is better when its arena is smaller, then when it meets its
//! bound (the bound differs between orders only by alignment). The search
//! stops at the first order that meets its bound, or at its deadline.

use super::{plan_memory, ArenaError, MemoryPlan, EXACT_MAX_BUFFERS};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{Graph, OpId, TensorKind};
use crate::schedule::{ort, runtimes};
use std::time::Instant;

/// Graphs with at most this many ops are searched exhaustively first.
pub const EXHAUSTIVE_MAX_OPS: usize = 40;

/// Most prefixes the exhaustive enumeration visits before it gives up and
/// the local moves take over.
const EXHAUSTIVE_MAX_VISITS: u64 = 200_000;

/// Which other orders the target admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// None: the order stays (`--scheduler input`, `--target ort-default`,
    /// whose order is what onnxruntime's search reaches).
    Order,
    /// Orders whose file-order peak is not higher (`--target file-order`).
    Peak,
    /// Orders whose file-order peak and onnxruntime default-order peak of
    /// the file are both not higher (`--target all-runtimes`).
    PeakAndOrtDefault,
}

/// What the search for an order whose arena meets its bound did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderSearch {
    /// Not run: the first order's arena meets its bound.
    #[default]
    NotNeeded,
    /// Not run: the target does not allow another order ([`Keep::Order`]).
    Fixed,
    /// An order whose arena meets its bound was found after trying `tried`
    /// candidate orders (peak and constraint met, placed).
    Found {
        /// Candidate orders placed.
        tried: u64,
    },
    /// No order tried meets its bound; the order kept is the one with the
    /// least arena seen. `exhaustive`: every admissible order was placed
    /// exactly, so none exists.
    NotFound {
        /// Candidate orders placed.
        tried: u64,
        /// Whether that is a proof that no admissible order meets its bound.
        exhaustive: bool,
    },
}

impl OrderSearch {
    /// The name in the JSON report: `not-needed`, `fixed`, `found`,
    /// `none-exists` (exhaustive) or `none-found` (not exhaustive).
    pub fn name(&self) -> &'static str {
        match self {
            OrderSearch::NotNeeded => "not-needed",
            OrderSearch::Fixed => "fixed",
            OrderSearch::Found { .. } => "found",
            OrderSearch::NotFound { exhaustive: true, .. } => "none-exists",
            OrderSearch::NotFound { exhaustive: false, .. } => "none-found",
        }
    }

    /// Candidate orders placed (0 when the search did not run).
    pub fn tried(&self) -> u64 {
        match self {
            OrderSearch::Found { tried } | OrderSearch::NotFound { tried, .. } => *tried,
            _ => 0,
        }
    }

    /// For the report: `{"outcome": name, "orders_tried": n}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"outcome": self.name(), "orders_tried": self.tried()})
    }
}

/// The order chosen for the arena and its plan.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The order: the one given unless a better one for the arena was found;
    /// its peak is never above the given order's, and the [`Keep`]
    /// constraint holds for it.
    pub order: Vec<OpId>,
    /// Its memory plan (checked by [`plan_memory`]).
    pub plan: MemoryPlan,
    /// What the search did.
    pub search: OrderSearch,
}

/// A sentence for the report's notes when the arena stays above its bound
/// (`None` when it meets it): what was searched and whether that proves
/// that no admissible order does better. `peak_proved` says whether the
/// order's peak is proved optimal (then the orders searched are the
/// optimal ones).
pub fn note(plan: &MemoryPlan, search: OrderSearch, peak_proved: bool) -> Option<String> {
    if plan.optimal() {
        return None;
    }
    let above = plan.arena_bytes.saturating_sub(plan.arena_lower_bound_bytes);
    let which = if peak_proved { "the optimal peak" } else { "this peak" };
    let text = match search {
        OrderSearch::NotNeeded | OrderSearch::Found { .. } => return None,
        OrderSearch::Fixed => {
            format!("the arena is {above} B above its bound; this target keeps the order, so no other order was tried for it")
        }
        OrderSearch::NotFound { tried, exhaustive: true } => format!(
            "no order with {which} that the target admits has an arena meeting its bound \
             (all {tried} placed exactly): the arena stays {above} B above it"
        ),
        OrderSearch::NotFound { tried, exhaustive: false } => format!(
            "the arena is {above} B above its bound: no order with {which} tried in the time \
             meets it ({tried} tried; not a proof that none does)"
        ),
    };
    Some(text)
}

/// Whether `a` is a better plan than `b`: smaller arena, then meeting its
/// bound.
fn better(a: &MemoryPlan, b: &MemoryPlan) -> bool {
    (a.arena_bytes, !a.optimal()) < (b.arena_bytes, !b.optimal())
}

/// What a candidate order must satisfy besides being topological.
struct Admit<'a> {
    graph: &'a Graph,
    memory: &'a MemoryOptions,
    keep: Keep,
    peak: u64,
    ort_default: u64,
    /// Whether the first order is its own onnxruntime PRIORITY_BASED order
    /// (then every candidate must be, so that the file order is what that
    /// runtime runs, as [`runtimes`] documents for the files it writes).
    priority_form: bool,
}

impl<'a> Admit<'a> {
    fn new(graph: &'a Graph, order: &[OpId], memory: &'a MemoryOptions, keep: Keep) -> Self {
        let peak = evaluate(graph, order, memory).peak;
        let ort_default = match keep {
            Keep::PeakAndOrtDefault => ort_default_peak(graph, order, memory).unwrap_or(0),
            _ => 0,
        };
        let priority_form = runtimes::priority_order(graph, order).as_deref() == Some(order);
        Admit { graph, memory, keep, peak, ort_default, priority_form }
    }

    /// Whether `order` (topological) keeps the peak and the constraint.
    fn admits(&self, order: &[OpId]) -> bool {
        if evaluate(self.graph, order, self.memory).peak > self.peak {
            return false;
        }
        if self.priority_form && runtimes::priority_order(self.graph, order).as_deref() != Some(order) {
            return false;
        }
        match self.keep {
            Keep::Order => false,
            Keep::Peak => true,
            Keep::PeakAndOrtDefault => {
                ort_default_peak(self.graph, order, self.memory).is_some_and(|p| p <= self.ort_default)
            }
        }
    }
}

/// The peak of the order onnxruntime's default mode runs for `file`.
fn ort_default_peak(graph: &Graph, file: &[OpId], memory: &MemoryOptions) -> Option<u64> {
    let run = ort::predict_for_file(graph, file)?;
    (run.len() == graph.ops.len()).then(|| evaluate(graph, &run, memory).peak)
}

/// Looks for an order whose arena meets its bound among the orders `keep`
/// admits (module docs), starting from `order` (topological) and its plan
/// `first`, until `deadline`. Returns the given order and plan when its
/// arena already meets its bound, `keep` is [`Keep::Order`] or nothing
/// better was found.
pub fn choose(
    graph: &Graph,
    order: &[OpId],
    first: MemoryPlan,
    memory: &MemoryOptions,
    alignment: u64,
    keep: Keep,
    deadline: Instant,
) -> Result<Chosen, ArenaError> {
    if first.optimal() {
        return Ok(Chosen { order: order.to_vec(), plan: first, search: OrderSearch::NotNeeded });
    }
    if keep == Keep::Order {
        return Ok(Chosen { order: order.to_vec(), plan: first, search: OrderSearch::Fixed });
    }
    let admit = Admit::new(graph, order, memory, keep);
    let mut best = Chosen { order: order.to_vec(), plan: first, search: OrderSearch::NotNeeded };
    let mut tried = 0u64;
    if graph.ops.len() <= EXHAUSTIVE_MAX_OPS {
        let mut all = Exhaustive::new(graph, &admit, alignment, deadline);
        all.run(&mut best)?;
        tried += all.tried;
        if best.plan.optimal() {
            return Ok(Chosen { search: OrderSearch::Found { tried }, ..best });
        }
        if all.complete && all.exact && Instant::now() < deadline {
            return Ok(Chosen { search: OrderSearch::NotFound { tried, exhaustive: true }, ..best });
        }
    }
    tried += local_moves(graph, &admit, alignment, &mut best, deadline)?;
    let search = if best.plan.optimal() {
        OrderSearch::Found { tried }
    } else {
        OrderSearch::NotFound { tried, exhaustive: false }
    };
    Ok(Chosen { search, ..best })
}

/// Every topological order with no higher peak, by depth-first search over
/// prefixes.
struct Exhaustive<'a> {
    graph: &'a Graph,
    admit: &'a Admit<'a>,
    alignment: u64,
    deadline: Instant,
    preds: Vec<Vec<OpId>>,
    succs: Vec<Vec<OpId>>,
    /// Prefixes visited.
    visits: u64,
    /// Candidate orders placed.
    tried: u64,
    /// Whether the enumeration finished (not cut by visits or the deadline).
    complete: bool,
    /// Whether every plan made was small enough to be placed exactly.
    exact: bool,
}

impl<'a> Exhaustive<'a> {
    fn new(graph: &'a Graph, admit: &'a Admit<'a>, alignment: u64, deadline: Instant) -> Self {
        Exhaustive {
            graph,
            admit,
            alignment,
            deadline,
            preds: graph.op_ids().map(|v| graph.predecessors(v)).collect(),
            succs: graph.op_ids().map(|v| graph.successors(v)).collect(),
            visits: 0,
            tried: 0,
            complete: true,
            exact: true,
        }
    }

    fn run(&mut self, best: &mut Chosen) -> Result<(), ArenaError> {
        let g = self.graph;
        let mut waiting: Vec<usize> = self.preds.iter().map(Vec::len).collect();
        let mut remaining: Vec<u32> = g.tensors.iter().map(|t| t.consumers.len() as u32).collect();
        // Live bytes before the first op, as the memory model counts them.
        let mut live = g.input_bytes();
        for (i, t) in g.tensors.iter().enumerate() {
            if t.kind == TensorKind::GraphInput
                && t.consumers.is_empty()
                && self.admit.memory.frees(g, crate::graph::TensorId(i as u32))
            {
                live -= t.bytes;
            }
        }
        let mut prefix = Vec::with_capacity(g.ops.len());
        self.dfs(&mut prefix, &mut waiting, &mut remaining, live, best)
    }

    fn dfs(
        &mut self,
        prefix: &mut Vec<OpId>,
        waiting: &mut [usize],
        remaining: &mut [u32],
        live: u64,
        best: &mut Chosen,
    ) -> Result<(), ArenaError> {
        if !self.complete || best.plan.optimal() {
            return Ok(());
        }
        self.visits += 1;
        if self.visits > EXHAUSTIVE_MAX_VISITS || (self.visits % 256 == 0 && Instant::now() >= self.deadline) {
            self.complete = false;
            return Ok(());
        }
        let g = self.graph;
        if prefix.len() == g.ops.len() {
            if self.admit.admits(prefix) {
                self.tried += 1;
                let plan = plan_memory(g, prefix, self.admit.memory, self.alignment, self.deadline)?;
                if plan.tensors.len() > EXACT_MAX_BUFFERS {
                    self.exact = false;
                }
                if better(&plan, &best.plan) {
                    best.order = prefix.clone();
                    best.plan = plan;
                }
            }
            return Ok(());
        }
        let memory = self.admit.memory;
        for v in g.op_ids() {
            if waiting[v.index()] != 0 || prefix.contains(&v) {
                continue;
            }
            let op = g.op(v);
            let allocated: u64 = op.outputs.iter().map(|&t| g.tensor(t).bytes).sum();
            // Without in-place reuse this is the step's memory exactly; with
            // it, a bound from above, so nothing is cut then.
            if !memory.inplace && live + allocated > self.admit.peak {
                continue;
            }
            let mut next = live + allocated;
            for &t in &op.inputs {
                remaining[t.index()] -= 1;
                if remaining[t.index()] == 0 && memory.frees(g, t) {
                    next -= g.tensor(t).bytes;
                }
            }
            for &t in &op.outputs {
                let tensor = g.tensor(t);
                if tensor.consumers.is_empty() && !tensor.graph_output {
                    next -= tensor.bytes;
                }
            }
            for s in &self.succs[v.index()] {
                waiting[s.index()] -= 1;
            }
            prefix.push(v);
            let result = self.dfs(prefix, waiting, remaining, next, best);
            prefix.pop();
            for s in &self.succs[v.index()] {
                waiting[s.index()] += 1;
            }
            for &t in &op.inputs {
                remaining[t.index()] += 1;
            }
            result?;
            if !self.complete || best.plan.optimal() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A small deterministic PRNG (xorshift64*), so runs are repeatable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    }
}

/// Local moves from `best` until its arena meets its bound or `deadline`
/// (module docs); returns how many candidate orders were placed.
fn local_moves(
    graph: &Graph,
    admit: &Admit,
    alignment: u64,
    best: &mut Chosen,
    deadline: Instant,
) -> Result<u64, ArenaError> {
    let n = graph.ops.len();
    if n < 2 {
        return Ok(0);
    }
    let preds: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.predecessors(v)).collect();
    let succs: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.successors(v)).collect();
    let mut rng = Rng(0x6A09_E667_F3BC_C908);
    let mut current = best.order.clone();
    let mut current_plan = best.plan.clone();
    let mut tried = 0u64;
    let mut pos = vec![0usize; n];
    while Instant::now() < deadline && !best.plan.optimal() {
        for (p, &v) in current.iter().enumerate() {
            pos[v.index()] = p;
        }
        // An op running while a tensor above the bound is live, mostly.
        let bound = current_plan.arena_lower_bound_bytes;
        let high: Vec<(usize, usize)> = current_plan
            .tensors
            .iter()
            .filter(|t| t.offset + t.size > bound)
            .map(|t| (t.first_step, t.last_step))
            .collect();
        let step = match high.get(rng.below(high.len())) {
            Some(&(first, last)) if rng.below(4) != 0 => (first + rng.below(last - first + 1)).min(n - 1),
            _ => rng.below(n),
        };
        let v = current[step];
        let lo = preds[v.index()].iter().map(|p| pos[p.index()] + 1).max().unwrap_or(0);
        let hi = succs[v.index()].iter().map(|s| pos[s.index()]).min().unwrap_or(n).saturating_sub(1);
        if hi <= lo {
            continue;
        }
        let to = lo + rng.below(hi - lo + 1);
        if to == step {
            continue;
        }
        let mut candidate = current.clone();
        let moved = candidate.remove(step);
        candidate.insert(to, moved);
        if !admit.admits(&candidate) {
            continue;
        }
        tried += 1;
        // Each candidate gets a short share of the time left for its
        // placement (the portfolio always runs), so that many orders are tried.
        let now = Instant::now();
        let slice = now + (deadline.saturating_duration_since(now) / 8).min(std::time::Duration::from_millis(50));
        let plan = plan_memory(graph, &candidate, admit.memory, alignment, slice)?;
        if !better(&current_plan, &plan) {
            if better(&plan, &best.plan) {
                best.order = candidate.clone();
                best.plan = plan.clone();
            }
            current = candidate;
            current_plan = plan;
        }
    }
    Ok(tried)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{from_lists, topo};
    use std::time::Duration;

    use super::super::test_rng::Rng64;

    /// A random DAG of `n` ops in two chains that start from the graph
    /// input and merge in a last op: op `i` extends chain `i % 2` and may
    /// also read any earlier tensor (a skip), so the chains interleave in
    /// many orders and lifetimes interlock. Sizes are multiples of 64 (so
    /// the arena bound is the peak); the merge's output is the graph output.
    fn random_dag(rng: &mut Rng64, n: usize) -> Graph {
        let mut bytes = vec![64 * (1 + rng.below(3))];
        let mut ops = Vec::new();
        let mut ends = [0usize, 0];
        for i in 0..n {
            let mut ins = vec![ends[i % 2]];
            for _ in 0..rng.below(3) {
                ins.push(rng.below(bytes.len() as u64) as usize);
            }
            ins.sort_unstable();
            ins.dedup();
            let t = bytes.len();
            bytes.push(64 * (1 + rng.below(8)));
            ends[i % 2] = t;
            ops.push((ins, vec![t]));
        }
        let out = bytes.len();
        bytes.push(64);
        let mut ins = ends.to_vec();
        ins.sort_unstable();
        ins.dedup();
        ops.push((ins, vec![out]));
        from_lists(&ops, &bytes, &[out])
    }

    /// Every topological order, by plain recursion (no pruning).
    fn all_orders(graph: &Graph) -> Vec<Vec<OpId>> {
        fn rec(g: &Graph, prefix: &mut Vec<OpId>, out: &mut Vec<Vec<OpId>>) {
            if prefix.len() == g.ops.len() {
                out.push(prefix.clone());
                return;
            }
            for v in g.op_ids() {
                if !prefix.contains(&v) && g.predecessors(v).iter().all(|p| prefix.contains(p)) {
                    prefix.push(v);
                    rec(g, prefix, out);
                    prefix.pop();
                }
            }
        }
        let mut out = Vec::new();
        rec(graph, &mut Vec::new(), &mut out);
        out
    }

    /// Lifetimes `(size, first, last)` of `order` under the default memory
    /// model, computed here from the graph alone.
    fn lifetimes(g: &Graph, order: &[OpId]) -> Vec<(u64, usize, usize)> {
        let pos = |v: OpId| order.iter().position(|&w| w == v).unwrap();
        let end = order.len() - 1;
        g.tensors
            .iter()
            .filter(|t| t.bytes > 0)
            .map(|t| {
                let first = t.producer.map_or(0, pos);
                let last =
                    if t.graph_output { end } else { t.consumers.iter().map(|&c| pos(c)).max().unwrap_or(first) };
                (t.bytes, first, last.max(first))
            })
            .collect()
    }

    /// Whether the buffers fit in `arena` bytes with offsets on a 64-byte
    /// grid, by trying every assignment (no first fit, no orders).
    fn fits(buffers: &[(u64, usize, usize)], arena: u64) -> bool {
        let mut buffers = buffers.to_vec();
        buffers.sort_by_key(|b| std::cmp::Reverse(b.0));
        fn rec(i: usize, b: &[(u64, usize, usize)], arena: u64, offsets: &mut Vec<u64>) -> bool {
            if i == b.len() {
                return true;
            }
            let (size, first, last) = b[i];
            let mut o = 0;
            while o + size <= arena {
                let ok = (0..i).all(|j| {
                    let (sj, fj, lj) = b[j];
                    lj < first || last < fj || o + size <= offsets[j] || offsets[j] + sj <= o
                });
                if ok {
                    offsets.push(o);
                    if rec(i + 1, b, arena, offsets) {
                        return true;
                    }
                    offsets.pop();
                }
                o += 64;
            }
            false
        }
        rec(0, &buffers, arena, &mut Vec::new())
    }

    fn live_peak(buffers: &[(u64, usize, usize)]) -> u64 {
        let steps = buffers.iter().map(|b| b.2 + 1).max().unwrap_or(0);
        (0..steps).map(|s| buffers.iter().filter(|b| b.1 <= s && s <= b.2).map(|b| b.0).sum()).max().unwrap_or(0)
    }

    #[test]
    fn small_dags_meet_the_bound_whenever_some_optimal_order_does() {
        let mut rng = Rng64(0x0B5E_55ED_C0FF_EE01);
        let memory = MemoryOptions::default();
        let (mut checked, mut first_missed, mut none_exists) = (0, 0, 0);
        for case in 0..400 {
            let n = 5 + rng.below(5) as usize;
            let g = random_dag(&mut rng, n);
            let orders = all_orders(&g);
            let optimum = orders.iter().map(|o| evaluate(&g, o, &memory).peak).min().unwrap();
            let optimal: Vec<&Vec<OpId>> = orders.iter().filter(|o| evaluate(&g, o, &memory).peak == optimum).collect();
            // Does some optimal order fit in its live-bytes peak?
            let some_meets = optimal.iter().any(|o| {
                let b = lifetimes(&g, o);
                fits(&b, live_peak(&b))
            });
            // Start from a few optimal orders (a small DAG can have hundreds).
            for start in optimal.iter().step_by(1 + optimal.len() / 6) {
                let deadline = Instant::now() + Duration::from_secs(10);
                let first = plan_memory(&g, start, &memory, 64, deadline).unwrap();
                let was_above = !first.optimal();
                if was_above {
                    // A target that keeps the order keeps it, and says so.
                    let kept = choose(&g, start, first.clone(), &memory, 64, Keep::Order, deadline).unwrap();
                    assert_eq!((&kept.order, &kept.plan, kept.search), (*start, &first, OrderSearch::Fixed));
                    assert!(note(&kept.plan, kept.search, true).is_some());
                }
                let chosen = choose(&g, start, first, &memory, 64, Keep::Peak, deadline).unwrap();
                topo::check_order(&g, &chosen.order).unwrap();
                assert_eq!(evaluate(&g, &chosen.order, &memory).peak, optimum, "case {case}");
                // The plan belongs to the chosen order and fits its lifetimes.
                let b = lifetimes(&g, &chosen.order);
                assert_eq!(chosen.plan.arena_lower_bound_bytes, live_peak(&b), "case {case}");
                assert_eq!(chosen.plan.tensors.len(), b.len(), "case {case}");
                for p in &chosen.plan.tensors {
                    let t = g.tensor(p.tensor);
                    assert!(b.contains(&(t.bytes, p.first_step, p.last_step)), "case {case}");
                    assert!(p.offset + p.size <= chosen.plan.arena_bytes, "case {case}");
                }
                for (i, p) in chosen.plan.tensors.iter().enumerate() {
                    for q in &chosen.plan.tensors[i + 1..] {
                        let shares_step = p.first_step <= q.last_step && q.first_step <= p.last_step;
                        assert!(
                            !shares_step || p.offset + p.size <= q.offset || q.offset + q.size <= p.offset,
                            "case {case}: overlap"
                        );
                    }
                }
                assert_eq!(
                    chosen.plan.optimal(),
                    some_meets,
                    "case {case}: {:?} {:?} {} optimal orders, {:?}",
                    chosen.search,
                    start,
                    optimal.len(),
                    g.ops.iter().map(|o| (o.inputs.clone(), o.outputs.clone())).collect::<Vec<_>>()
                );
                if was_above {
                    first_missed += 1;
                    match chosen.search {
                        OrderSearch::Found { .. } => assert!(some_meets),
                        OrderSearch::NotFound { exhaustive, .. } => {
                            assert!(exhaustive && !some_meets, "case {case}");
                            none_exists += 1;
                        }
                        other => panic!("case {case}: {other:?} after a plan above its bound"),
                    }
                } else {
                    assert_eq!(chosen.search, OrderSearch::NotNeeded);
                    assert_eq!(&chosen.order, *start);
                }
                checked += 1;
            }
        }
        // The generator must produce optimal orders whose arena misses the
        // bound where another optimal order meets it (rare on optimal
        // orders of small DAGs: 2 of about 1,200 starts with this seed).
        eprintln!("{checked} starts, {first_missed} above their bound, {none_exists} with no optimal order meeting it");
        assert!(checked > 400 && first_missed > none_exists, "{checked} {first_missed} {none_exists}");
    }

    #[test]
    fn larger_dags_keep_peak_and_constraint_and_never_grow_the_arena() {
        let mut rng = Rng64(0xFACE_B00C_0000_0003);
        let memory = MemoryOptions::default();
        let mut moved = 0;
        for case in 0..20 {
            let n = 60 + rng.below(40) as usize;
            let g = random_dag(&mut rng, n);
            let order = topo::stable_order(&g).unwrap();
            let first = plan_memory(&g, &order, &memory, 64, Instant::now() + Duration::from_millis(50)).unwrap();
            let peak = evaluate(&g, &order, &memory).peak;
            let ort_before = ort_default_peak(&g, &order, &memory).unwrap();
            let deadline = Instant::now() + Duration::from_millis(200);
            let chosen = choose(&g, &order, first.clone(), &memory, 64, Keep::PeakAndOrtDefault, deadline).unwrap();
            topo::check_order(&g, &chosen.order).unwrap();
            assert!(evaluate(&g, &chosen.order, &memory).peak <= peak, "case {case}");
            assert!(ort_default_peak(&g, &chosen.order, &memory).unwrap() <= ort_before, "case {case}");
            assert!(chosen.plan.arena_bytes <= first.arena_bytes, "case {case}");
            if chosen.order != order {
                moved += 1;
            }
        }
        let _ = moved;
    }
}
