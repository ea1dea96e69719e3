//! Iterative graph fusion that keeps the optimal peak.
//!
//! [`fuse`] partitions the ops into *groups* such that some optimal schedule
//! (least peak over all topological orders, under the memory model of
//! [`crate::graph::memory`] with the given [`MemoryOptions`]) runs the ops of
//! every group back to back, in the group's order. The exact searches then
//! order groups instead of ops ([`expand`] turns an order of groups into an
//! order of ops, [`group_predecessors`] gives the quotient DAG).
//!
//! Fusion starts from singletons and merges two groups `A -> B` (an edge of
//! the quotient DAG) whenever one of two rules, [Rule E](#rule-e-eager-b-runs-right-after-a)
//! or [Rule L](#rule-l-late-a-runs-right-before-b), proves it safe, until no
//! rule applies. Each rule is proved by an exchange argument that moves one
//! whole group; the proofs hold for every combination of the memory options
//! (`inputs_live_whole_run` only changes which tensors are *freeable*; in-place
//! reuse is handled explicitly). The property tests in `tests/fusion.rs`
//! check them against brute force on thousands of random graphs.
//!
//! # Why not plain chain fusion
//!
//! Take `conv: a -> (y, c)` and `relu: y -> z` with `a` and `c` of 1 byte, `y`
//! and `z` of 100, a 1000-byte tensor `T` live when `conv` runs, and an op
//! `w: (T, c) -> s` (1 byte) that is `T`'s last reader. `y`'s only reader is
//! `relu` and `relu`'s only producer is `conv`, yet `conv, relu, w` peaks at
//! `T + y + c + z` = 1201 while `conv, w, relu` peaks at `T + a + y + c` =
//! 1102: running `relu` right after `conv` raises the peak. Rule E below
//! refuses (`relu`'s step would top `conv`'s, which frees only `a`), and so
//! does Rule L (`conv` also feeds `w`). In a plain chain `x -> y -> z` the
//! rules fuse the pair when `y` is not a *valley* (`x > y < z`): Rule E when
//! `z <= y` and `z <= x`, Rule L when `x <= y` and `x <= z`, as Liu's
//! hill–valley theory of tree schedules suggests.
//!
//! # Notation
//!
//! A *state* `X` is the set of ops already run. Memory after the ops of `X`
//! have run, `L(X)`, depends only on the set, not on its order: a tensor is
//! live iff it exists (a graph input, or its producer is in `X`) and is not
//! freed (it is a graph output, or an input kept for the whole run, or some
//! consumer is outside `X`; an output nobody reads dies after its step).
//! Running op `v` in state `X` costs `step(v, X) = L(X) + out(v) - r(v, X)`,
//! where `r(v, X)` is the in-place saving: `out(v)` if `v` may overwrite an
//! input whose only consumer not in `X` is `v`, else 0.
//!
//! **Fact 1.** `r(v, X)` is nondecreasing in `X`: the condition "every other
//! consumer of `t` is in `X`" survives adding ops to `X`.
//!
//! A *unit* `U = u1..um` (a group, run consecutively) started in state `X`
//! has three figures, all relative to memory levels:
//! `d_U(X) = max_j step(uj, X + u1..u(j-1)) - L(X)` (peak above the start),
//! `n_U(X) = L(X + U) - L(X)` (net change) and `e_U(X) = d_U(X) - n_U(X)`
//! (peak above the end).
//!
//! **Fact 2 (what the state changes).** These figures depend on `X` only
//! through the *shared* inputs of `U`: tensors `U` reads, does not produce,
//! and that also have readers outside `U`. Such a tensor `t` is *done* when
//! all its outside readers are in `X`; then (if freeable) it is freed after
//! its last reader `u_q` in `U` and may be overwritten in place at `u_q`;
//! otherwise it survives `U`. Every other tensor `U` touches behaves the same
//! in every state (outputs of `U` read outside `U` cannot have readers in `X`).
//!
//! **Lemma 1 (monotonicity).** Turning one shared tensor `t` (size `b`) from
//! pending to done subtracts `b` from every step after `u_q` and from `n_U`,
//! and may add an in-place saving at `u_q` (at most `b`, as the saving equals
//! the size of the overwritten input). Hence `d_U` and `n_U` are
//! nonincreasing and `e_U` is nondecreasing in the set of done tensors: for
//! `j < q` `e_j` grows by `b`, at `j = q` by `b - saving >= 0`, after `q` it
//! is unchanged. So the extremes are "all pending" (*cold*: largest `d`,
//! `n`, smallest `e`) and "all done" (*warm*: smallest `d`, `n`, largest `e`).
//!
//! **Lemma 2 (composition).** For `A` then `B` from state `X`:
//! `d_AB(X) = max(d_A(X), n_A(X) + d_B(X+A))`, `n_AB(X) = n_A(X) + n_B(X+A)`,
//! `e_AB(X) = max(e_A(X) - n_B(X+A), e_B(X+A))`.
//!
//! Every unit keeps two *summaries*, pairs `(D, N)`:
//! cold `(D+, N+)` with `D+ >= d_U(X)`, `N+ >= n_U(X)`, `D+ - N+ <= e_U(X)`,
//! and warm `(D-, N-)` with `D- <= d_U(X)`, `N- <= n_U(X)`, `D- - N- >= e_U(X)`,
//! for every state `X` in which `U` can start. A unit of at most
//! [`FusionLimits::exact_summary_size`] gets them by simulating its ops
//! with all shared tensors pending / done (exact by Lemma 1). A bigger
//! merged unit composes its parts' summaries with Lemma 2's formulas
//! (`D = max(D_A, N_A + D_B)`, `N = N_A + N_B`), which keeps all three
//! inequalities: e.g. for the cold one, `d_AB(X) <= max(D_A, N_A + D_B)` since
//! each term is bounded, and `e_AB(X) = max(e_A(X) - n_B, e_B) >=
//! max((D_A - N_A) - N_B, D_B - N_B) = D - N`; the warm one is symmetric.
//!
//! The rules below use bounds that hold in every state the proof needs. When
//! both units are small ([`FusionLimits::context_size`]) they are computed by
//! simulating the unit in the tightest scenario the proof allows (a shared
//! tensor counts as done only if all its outside readers are ancestors that
//! must already have run, or counts as pending if an outside reader is a
//! descendant that cannot have run yet, found by a bounded search); otherwise
//! the stored summaries are used. Both are valid by Lemma 1.
//!
//! # Rule E (eager): `B` runs right after `A`
//!
//! Condition: `A -> B` is an edge of the quotient; every predecessor group of
//! `B` other than `A` is a predecessor group of `A` (E0); and, with bounds
//! over the states after `A` in which `B` can start,
//! `N_B^max <= 0` (E1: `B` never raises the memory level) and
//! `D_B^max <= E_A^min` (E2: `B`'s peak above the level after `A` is at most
//! `A`'s own peak above that level).
//!
//! Proof. Take an optimal schedule in which all groups are consecutive:
//! `alpha A beta B gamma` (`A` precedes `B` in every order; `S` is the state
//! of `alpha`). Move `B` to right after `A`: `alpha A B beta gamma`. It is a
//! valid order: by E0 every predecessor of `B` is `A` or precedes `A`. Steps
//! of `alpha`, `A` and `gamma` run in the same states as before. A step of
//! `w` in `beta`, old state `Y` (`S + A <= Y`), now runs in `Y + B`:
//! `L(Y + B) - L(Y) = n_B(Y) <= 0` by E1 and `r(w, Y + B) >= r(w, Y)` by
//! Fact 1, so it does not grow. `B` now runs in state `S + A`; its steps are
//! at most `L(S + A) + D_B^max <= L(S + A) + E_A^min <= L(S + A) + e_A(S)`,
//! which is the largest step of `A` in the old schedule. No step exceeds the
//! old peak, so the new schedule is optimal too, all old groups are still
//! consecutive, and `A B` is.
//!
//! # Rule L (late): `A` runs right before `B`
//!
//! Condition: `A -> B` is an edge of the quotient; every successor group of
//! `A` other than `B` is a successor group of `B` (L0); and, with bounds over
//! the states before `B` in which `A` can start,
//! `N_A^min >= 0` (L1: `A` never lowers the memory level) and
//! `E_A^max <= D_B^min` (L2: `A`'s peak above the level after it is at most
//! `B`'s peak above that same level).
//!
//! Proof. From `alpha A beta B gamma` move `A` to right before `B`:
//! `alpha beta A B gamma`. Valid: by L0 no successor of `A` is in `beta`.
//! `alpha`, `B` (state `S + beta + A` as before) and `gamma` are unchanged. A
//! step of `w` in `beta`, old state `Y + A`, now runs in `Y`; its memory
//! changes by `-n_A(Y) + r(w, Y + A) - r(w, Y)`. If `w` loses an in-place
//! saving, the input `t` it overwrote is read by `A` and by `w`, so `A`
//! cannot free it in state `Y`; `t` is therefore among the shared tensors the
//! bound `N_A^min` counts as freed, which gives `n_A(Y) >= N_A^min + |t| >=
//! |t|` (L1). Without such a loss the change is `-n_A(Y) <= 0`. `A` now runs
//! in state `X = S + beta`; its steps are at most `L(X + A) + e_A(X) <=
//! L(X + A) + E_A^max <= L(X + A) + D_B^min`, which is at most the largest
//! step of `B` in the old schedule (`B` starts in state `X + A` there).
//!
//! # Iteration
//!
//! Invariant: some optimal schedule runs every current group consecutively.
//! It holds for singletons, and each merge keeps it: the proofs start from any
//! such schedule and move a whole group, so the other groups stay intact. The
//! quotient stays acyclic: a path `A -> C -> ... -> B` with `C != B` would,
//! under E0, end in a predecessor of `B` that is a predecessor of `A` (a
//! cycle), and under L0 start at a successor of `A` that is a successor of
//! `B` (a cycle). Merged groups run `A`'s ops then `B`'s, which respects every
//! dependency since all edges between them go from `A` to `B`.
//!
//! Rules are tried on a worklist of quotient edges; after a merge the edges of
//! the new group are re-queued, and whole rounds repeat until one merges
//! nothing (or [`FusionLimits::max_rounds`]). With the default limits each
//! check and merge touches a bounded number of ops, so fusion runs in about
//! `O((ops + edges) log)` per round.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};

use super::{Groups, Order};
use crate::graph::memory::MemoryOptions;
use crate::graph::topo::stable_order;
use crate::graph::{Graph, OpId, TensorId, TensorKind};

/// Groups of ops that some optimal schedule runs back to back: a partition of
/// all ops, each group in its internal execution order, listed in a
/// topological order of the (acyclic) quotient graph.
///
/// The graph must be acyclic; on a graph with a cycle every op is its own
/// group.
pub fn fuse(graph: &Graph, opts: &MemoryOptions) -> Groups {
    fuse_with(graph, opts, &FusionLimits::default()).groups
}

/// [`fuse`], merging until `deadline` at most (fewer merges are as safe).
pub fn fuse_until(graph: &Graph, opts: &MemoryOptions, deadline: std::time::Instant) -> Groups {
    fuse_with(graph, opts, &FusionLimits { deadline: Some(deadline), ..FusionLimits::default() }).groups
}

/// Expands an order of groups (indices into `groups`) into an op order.
/// Indices out of range are skipped.
pub fn expand(groups: &Groups, group_order: &[usize]) -> Order {
    group_order.iter().filter_map(|&g| groups.get(g)).flatten().copied().collect()
}

/// The quotient DAG: for each group, the sorted distinct groups that produce
/// an input of one of its ops (itself excluded). Op ids that are out of range
/// or in no group are ignored.
pub fn group_predecessors(graph: &Graph, groups: &Groups) -> Vec<Vec<usize>> {
    let mut group_of = vec![usize::MAX; graph.ops.len()];
    for (g, ops) in groups.iter().enumerate() {
        for &v in ops {
            if let Some(slot) = group_of.get_mut(v.index()) {
                *slot = g;
            }
        }
    }
    groups
        .iter()
        .enumerate()
        .map(|(g, ops)| {
            let mut preds: Vec<usize> = ops
                .iter()
                .filter(|v| v.index() < graph.ops.len())
                .flat_map(|&v| graph.op(v).inputs.iter())
                .filter_map(|&t| graph.tensors.get(t.index()).and_then(|t| t.producer))
                .filter_map(|p| group_of.get(p.index()).copied())
                .filter(|&h| h != g && h != usize::MAX)
                .collect();
            preds.sort_unstable();
            preds.dedup();
            preds
        })
        .collect()
}

/// Work limits of [`fuse_with`]. They only trade fusion for time: any values
/// give a correct (safe) partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FusionLimits {
    /// A merged group of at most this size gets exact summaries by
    /// simulation; a bigger one composes its parts' summaries (looser). The
    /// size of a group, which is what simulating it costs, counts each op
    /// as one plus its inputs and outputs.
    pub exact_summary_size: usize,
    /// When two candidate groups have at most this size together, a rule
    /// that the stored summaries cannot prove is retried with bounds from
    /// simulating them in their graph context (tighter).
    pub context_size: usize,
    /// How many groups the bounded ancestor / descendant search visits.
    pub context_groups: usize,
    /// Tensors with more readers than this are treated pessimistically in
    /// context simulations instead of scanning their readers.
    pub reader_scan: usize,
    /// Most rounds over all edges.
    pub max_rounds: usize,
    /// Stop merging at this instant (the groups so far are as safe as any).
    pub deadline: Option<std::time::Instant>,
}

impl Default for FusionLimits {
    fn default() -> Self {
        FusionLimits {
            exact_summary_size: 1024,
            context_size: 256,
            context_groups: 32,
            reader_scan: 64,
            max_rounds: 16,
            deadline: None,
        }
    }
}

/// The result of [`fuse_with`]: the groups and how they came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fusion {
    /// The groups, as [`fuse`] returns them.
    pub groups: Groups,
    /// Merges done by Rule E.
    pub eager_merges: usize,
    /// Merges done by Rule L.
    pub late_merges: usize,
    /// Rounds over all edges (the last one merged nothing unless the limit hit).
    pub rounds: usize,
}

/// [`fuse`] with explicit work limits, also reporting the merges.
pub fn fuse_with(graph: &Graph, opts: &MemoryOptions, limits: &FusionLimits) -> Fusion {
    let singletons =
        || Fusion { groups: graph.op_ids().map(|v| vec![v]).collect(), eager_merges: 0, late_merges: 0, rounds: 0 };
    if !tensors_are_consistent(graph) {
        return singletons();
    }
    let Ok(order) = stable_order(graph) else {
        return singletons();
    };
    let mut fuser = Fuser::new(graph, *opts, limits.clone());
    let rounds = fuser.run(&order);
    Fusion { groups: fuser.groups(), eager_merges: fuser.eager, late_merges: fuser.late, rounds }
}

/// Every tensor id an op names exists, and every producer / consumer id is
/// an op: the fuser indexes freely after this check.
fn tensors_are_consistent(graph: &Graph) -> bool {
    let n = graph.ops.len();
    graph.ops.iter().all(|op| op.inputs.iter().chain(&op.outputs).all(|t| t.index() < graph.tensors.len()))
        && graph
            .tensors
            .iter()
            .all(|t| t.producer.map_or(true, |p| p.index() < n) && t.consumers.iter().all(|c| c.index() < n))
}

const NONE: usize = usize::MAX;

/// A merged unit with more edges than this is not re-queued at once.
const REQUEUE_DEGREE: usize = 32;

/// A summary `(D, N)` of a unit: peak above the start and net change
/// (cold: upper bounds with `D - N` a lower bound of the peak above the end;
/// warm: the reverse). See the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    d: i128,
    n: i128,
}

impl Bound {
    /// Lemma 2's composition of `a` then `b`.
    fn then(self, b: Bound) -> Bound {
        Bound { d: self.d.max(self.n + b.d), n: self.n + b.n }
    }
    /// The peak above the end.
    fn e(self) -> i128 {
        self.d - self.n
    }
}

/// How a simulation treats the shared inputs of a unit (read, not produced,
/// and also read outside the unit): done (all outside readers have run) or
/// pending.
enum Shared<'s> {
    /// All pending: the cold extreme.
    Pending,
    /// All done: the warm extreme.
    Done,
    /// Done iff every outside reader is in one of these groups (sorted).
    DoneIfAllIn(&'s [usize]),
    /// Done unless an outside reader is in one of these groups (sorted).
    DoneUnlessAnyIn(&'s [usize]),
}

struct Fuser<'g> {
    graph: &'g Graph,
    opts: MemoryOptions,
    limits: FusionLimits,
    /// The group (unit) of each op; a unit's id is one of its ops' indices.
    unit_of: Vec<usize>,
    /// Next op of the same unit in execution order, or NONE.
    next: Vec<usize>,
    head: Vec<usize>,
    tail: Vec<usize>,
    len: Vec<usize>,
    /// Ops plus their tensor references: the cost of simulating the unit.
    size: Vec<usize>,
    alive: Vec<bool>,
    preds: Vec<BTreeSet<usize>>,
    succs: Vec<BTreeSet<usize>>,
    cold: Vec<Bound>,
    warm: Vec<Bound>,
    /// Scratch for simulations, indexed by tensor: readers inside the unit
    /// (total and not yet run), valid when `mark == epoch`.
    mark: Vec<u32>,
    inside: Vec<u32>,
    left: Vec<u32>,
    epoch: u32,
    /// Scratch for searches, indexed by unit.
    seen: Vec<u32>,
    seen_epoch: u32,
    eager: usize,
    late: usize,
}

impl<'g> Fuser<'g> {
    fn new(graph: &'g Graph, opts: MemoryOptions, limits: FusionLimits) -> Self {
        let n = graph.ops.len();
        let nt = graph.tensors.len();
        let mut fuser = Fuser {
            graph,
            opts,
            limits,
            unit_of: (0..n).collect(),
            next: vec![NONE; n],
            head: (0..n).collect(),
            tail: (0..n).collect(),
            len: vec![1; n],
            size: graph.ops.iter().map(|op| 1 + op.inputs.len() + op.outputs.len()).collect(),
            alive: vec![true; n],
            preds: graph.op_ids().map(|v| graph.predecessors(v).iter().map(|p| p.index()).collect()).collect(),
            succs: graph.op_ids().map(|v| graph.successors(v).iter().map(|s| s.index()).collect()).collect(),
            cold: vec![Bound { d: 0, n: 0 }; n],
            warm: vec![Bound { d: 0, n: 0 }; n],
            mark: vec![0; nt],
            inside: vec![0; nt],
            left: vec![0; nt],
            epoch: 0,
            seen: vec![0; n],
            seen_epoch: 0,
            eager: 0,
            late: 0,
        };
        for u in 0..n {
            fuser.cold[u] = fuser.simulate(u, &Shared::Pending);
            fuser.warm[u] = fuser.simulate(u, &Shared::Done);
        }
        fuser
    }

    /// Rounds of the worklist until one merges nothing; returns the count.
    fn run(&mut self, order: &[OpId]) -> usize {
        let mut rounds = 0;
        while rounds < self.limits.max_rounds {
            rounds += 1;
            let mut work: VecDeque<(usize, usize)> = VecDeque::new();
            for &v in order {
                let u = v.index();
                if self.alive[u] {
                    work.extend(self.succs[u].iter().map(|&s| (u, s)));
                }
            }
            let mut merged = false;
            let mut tried = 0usize;
            while let Some((a, b)) = work.pop_front() {
                tried += 1;
                if tried % 1024 == 0 && self.limits.deadline.is_some_and(|d| crate::cancel::passed(d)) {
                    return rounds;
                }
                if !self.alive[a] || !self.alive[b] || !self.succs[a].contains(&b) {
                    continue;
                }
                if self.eager_applies(a, b) {
                    self.eager += 1;
                } else if self.late_applies(a, b) {
                    self.late += 1;
                } else {
                    continue;
                }
                let u = self.merge(a, b);
                merged = true;
                // Re-check the new unit's edges now; a hub's edges wait for
                // the next round, so merging into it stays cheap.
                if self.preds[u].len() + self.succs[u].len() <= REQUEUE_DEGREE {
                    work.extend(self.preds[u].iter().map(|&p| (p, u)));
                    work.extend(self.succs[u].iter().map(|&s| (u, s)));
                }
            }
            if !merged {
                break;
            }
        }
        rounds
    }

    /// Whether freeing `t` after its last reader is allowed by the options.
    fn frees(&self, t: TensorId) -> bool {
        let tensor = self.graph.tensor(t);
        let kept_for_the_run = self.opts.inputs_live_whole_run && tensor.kind == TensorKind::GraphInput;
        !tensor.graph_output && !kept_for_the_run
    }

    /// Simulates unit `u`'s ops from an arbitrary level 0: returns the peak
    /// step above the start and the net change, with shared inputs treated
    /// as `shared` says (Fact 2).
    fn simulate(&mut self, u: usize, shared: &Shared) -> Bound {
        let graph = self.graph;
        self.count_inside(u);
        let mut v = self.head[u];
        while v != NONE {
            for &t in &graph.ops[v].inputs {
                self.left[t.index()] = self.inside[t.index()];
            }
            v = self.next[v];
        }
        let mut level: i128 = 0;
        let mut peak: Option<i128> = None;
        v = self.head[u];
        while v != NONE {
            let op = &graph.ops[v];
            let allocated: i128 = op.outputs.iter().map(|&t| i128::from(graph.tensor(t).bytes)).sum();
            let mut saving = 0;
            if self.opts.inplace && op.inplace_capable && op.outputs.len() == 1 && allocated > 0 {
                let reusable = op.inputs.iter().any(|&t| {
                    let tensor = graph.tensor(t);
                    i128::from(tensor.bytes) == allocated
                        && tensor.kind != TensorKind::Weight
                        && self.frees(t)
                        && self.left[t.index()] == 1
                        && self.outside_done(u, t, shared)
                });
                if reusable {
                    saving = allocated;
                }
            }
            let step = level + allocated - saving;
            peak = Some(peak.map_or(step, |p: i128| p.max(step)));
            level += allocated;
            for &t in &op.inputs {
                self.left[t.index()] -= 1;
                if self.left[t.index()] == 0 && self.frees(t) && self.outside_done(u, t, shared) {
                    level -= i128::from(graph.tensor(t).bytes);
                }
            }
            for &t in &op.outputs {
                let tensor = graph.tensor(t);
                if tensor.consumers.is_empty() && !tensor.graph_output {
                    level -= i128::from(tensor.bytes);
                }
            }
            v = self.next[v];
        }
        Bound { d: peak.unwrap_or(0), n: level }
    }

    /// Sets `inside[t]` to the number of `u`'s ops that read `t`, for every
    /// tensor `u` reads.
    fn count_inside(&mut self, u: usize) {
        if self.epoch == u32::MAX {
            self.mark.iter_mut().for_each(|m| *m = 0);
            self.epoch = 0;
        }
        self.epoch += 1;
        let epoch = self.epoch;
        let mut v = self.head[u];
        while v != NONE {
            for &t in &self.graph.ops[v].inputs {
                let i = t.index();
                if self.mark[i] != epoch {
                    self.mark[i] = epoch;
                    self.inside[i] = 0;
                }
                self.inside[i] += 1;
            }
            v = self.next[v];
        }
    }

    /// Whether every reader of `t` outside unit `u` has run, in the scenario.
    /// Requires `inside[t]` to hold `u`'s readers of `t`.
    fn outside_done(&self, u: usize, t: TensorId, shared: &Shared) -> bool {
        let tensor = self.graph.tensor(t);
        let outside = (tensor.consumers.len() as u64).saturating_sub(u64::from(self.inside[t.index()]));
        if outside == 0 {
            return true;
        }
        if tensor.producer.is_some_and(|p| self.unit_of[p.index()] == u) {
            // Read after `u` by a successor: never done while `u` runs.
            return false;
        }
        let scan = tensor.consumers.len() <= self.limits.reader_scan;
        let outside_units = || tensor.consumers.iter().map(|c| self.unit_of[c.index()]).filter(move |&w| w != u);
        match shared {
            Shared::Pending => false,
            Shared::Done => true,
            Shared::DoneIfAllIn(set) => scan && outside_units().all(|w| set.binary_search(&w).is_ok()),
            Shared::DoneUnlessAnyIn(set) => !scan || !outside_units().any(|w| set.binary_search(&w).is_ok()),
        }
    }

    /// Up to `context_groups` units reachable from `u` along `preds`
    /// (`up`) or `succs`, `u` excluded, sorted.
    fn reachable(&mut self, u: usize, up: bool) -> Vec<usize> {
        let budget = self.limits.context_groups;
        if self.seen_epoch == u32::MAX {
            self.seen.iter_mut().for_each(|m| *m = 0);
            self.seen_epoch = 0;
        }
        self.seen_epoch += 1;
        let epoch = self.seen_epoch;
        self.seen[u] = epoch;
        let mut found: Vec<usize> = Vec::new();
        let mut next_in_queue = 0;
        let mut w = u;
        'search: loop {
            let edges = if up { &self.preds[w] } else { &self.succs[w] };
            for &x in edges {
                if found.len() >= budget {
                    break 'search;
                }
                if self.seen[x] != epoch {
                    self.seen[x] = epoch;
                    found.push(x);
                }
            }
            match found.get(next_in_queue) {
                Some(&x) => w = x,
                None => break,
            }
            next_in_queue += 1;
        }
        found.sort_unstable();
        found
    }

    fn small_pair(&self, a: usize, b: usize) -> bool {
        self.size[a] + self.size[b] <= self.limits.context_size
    }

    /// Rule E for the edge `a -> b` (see the module doc).
    fn eager_applies(&mut self, a: usize, b: usize) -> bool {
        // E0: every predecessor of b is a or a predecessor of a.
        if !self.preds[b].iter().all(|p| *p == a || self.preds[a].contains(p)) {
            return false;
        }
        let holds = |b_bound: Bound, a_e_min: i128| b_bound.n <= 0 && b_bound.d <= a_e_min;
        // The stored cold summaries hold in every state; the context (which
        // tensors must be done) can only tighten them (Lemma 1).
        if holds(self.cold[b], self.cold[a].e()) {
            return true;
        }
        if !self.small_pair(a, b) {
            return false;
        }
        // After a, every ancestor of b has run (E0); a starts after its own
        // ancestors. Nothing else need have run.
        let bb = match self.has_shared(b) {
            true => {
                let before_b = self.reachable(b, true);
                self.simulate(b, &Shared::DoneIfAllIn(&before_b))
            }
            false => self.cold[b],
        };
        let ab = match self.has_shared(a) {
            true => {
                let before_a = self.reachable(a, true);
                self.simulate(a, &Shared::DoneIfAllIn(&before_a))
            }
            false => self.cold[a],
        };
        holds(bb, ab.e())
    }

    /// Rule L for the edge `a -> b` (see the module doc).
    fn late_applies(&mut self, a: usize, b: usize) -> bool {
        // L0: every successor of a is b or a successor of b.
        if !self.succs[a].iter().all(|s| *s == b || self.succs[b].contains(s)) {
            return false;
        }
        let holds = |a_bound: Bound, b_d_min: i128| a_bound.n >= 0 && a_bound.e() <= b_d_min;
        if holds(self.warm[a], self.warm[b].d) {
            return true;
        }
        if !self.small_pair(a, b) {
            return false;
        }
        // Descendants of a (of b) cannot have run before a (before b).
        let ab = match self.has_shared(a) {
            true => {
                let after_a = self.reachable(a, false);
                self.simulate(a, &Shared::DoneUnlessAnyIn(&after_a))
            }
            false => self.warm[a],
        };
        let bb = match self.has_shared(b) {
            true => {
                let after_b = self.reachable(b, false);
                self.simulate(b, &Shared::DoneUnlessAnyIn(&after_b))
            }
            false => self.warm[b],
        };
        holds(ab, bb.d)
    }

    /// Whether unit `u` has a shared input (read and not produced by `u`,
    /// also read outside `u`). Without one, every state gives the same
    /// figures and the stored summaries are exact.
    fn has_shared(&mut self, u: usize) -> bool {
        self.count_inside(u);
        let mut v = self.head[u];
        while v != NONE {
            for &t in &self.graph.ops[v].inputs {
                let tensor = self.graph.tensor(t);
                if tensor.consumers.len() > self.inside[t.index()] as usize
                    && !tensor.producer.is_some_and(|p| self.unit_of[p.index()] == u)
                {
                    return true;
                }
            }
            v = self.next[v];
        }
        false
    }

    /// Merges `b` into `a` (edge `a -> b`): ops of `a` then ops of `b`.
    /// Returns the id of the merged unit.
    fn merge(&mut self, a: usize, b: usize) -> usize {
        // Relabelling costs the ops of `gone`, rewiring its edges: keep the
        // bigger side (small-to-large).
        let cost = |u: usize| self.size[u] + self.preds[u].len() + self.succs[u].len();
        let (keep, gone) = if cost(a) >= cost(b) { (a, b) } else { (b, a) };
        let mut v = self.head[gone];
        while v != NONE {
            self.unit_of[v] = keep;
            v = self.next[v];
        }
        let (head_a, tail_a, head_b, tail_b) = (self.head[a], self.tail[a], self.head[b], self.tail[b]);
        self.next[tail_a] = head_b;
        self.head[keep] = head_a;
        self.tail[keep] = tail_b;
        self.len[keep] = self.len[a] + self.len[b];
        self.size[keep] = self.size[a] + self.size[b];
        self.alive[gone] = false;

        let gone_preds = std::mem::take(&mut self.preds[gone]);
        let gone_succs = std::mem::take(&mut self.succs[gone]);
        for p in gone_preds {
            self.succs[p].remove(&gone);
            if p != keep {
                self.succs[p].insert(keep);
                self.preds[keep].insert(p);
            }
        }
        for s in gone_succs {
            self.preds[s].remove(&gone);
            if s != keep {
                self.preds[s].insert(keep);
                self.succs[keep].insert(s);
            }
        }
        self.preds[keep].remove(&gone);
        self.succs[keep].remove(&gone);

        let (cold, warm) = (self.cold[a].then(self.cold[b]), self.warm[a].then(self.warm[b]));
        if self.size[keep] <= self.limits.exact_summary_size {
            self.cold[keep] = self.simulate(keep, &Shared::Pending);
            self.warm[keep] = self.simulate(keep, &Shared::Done);
        } else {
            self.cold[keep] = cold;
            self.warm[keep] = warm;
        }
        keep
    }

    /// The live units in a topological order of the quotient (ties: the
    /// unit whose first op comes first in the file), each as its op list.
    fn groups(&self) -> Groups {
        let n = self.alive.len();
        let mut waiting: Vec<usize> = (0..n).map(|u| self.preds[u].len()).collect();
        let mut ready: BinaryHeap<Reverse<(usize, usize)>> =
            (0..n).filter(|&u| self.alive[u] && waiting[u] == 0).map(|u| Reverse((self.head[u], u))).collect();
        let mut groups = Vec::new();
        while let Some(Reverse((_, u))) = ready.pop() {
            let mut ops = Vec::with_capacity(self.len[u]);
            let mut v = self.head[u];
            while v != NONE {
                ops.push(OpId(v as u32));
                v = self.next[v];
            }
            groups.push(ops);
            for &s in &self.succs[u] {
                waiting[s] -= 1;
                if waiting[s] == 0 {
                    ready.push(Reverse((self.head[s], s)));
                }
            }
        }
        // Unreachable on an acyclic quotient (see the module doc); kept so the
        // result is a partition whatever happens.
        if groups.iter().map(Vec::len).sum::<usize>() < n {
            let mut emitted = vec![false; n];
            for v in groups.iter().flatten() {
                emitted[v.index()] = true;
            }
            for u in (0..n).filter(|&u| self.alive[u] && !emitted[self.head[u]]) {
                let mut ops = Vec::new();
                let mut v = self.head[u];
                while v != NONE {
                    ops.push(OpId(v as u32));
                    v = self.next[v];
                }
                groups.push(ops);
            }
        }
        groups
    }
}
