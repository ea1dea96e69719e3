//! The integer linear program of the seed method (Zhong et al., ICCAD 2023):
//! after fusion, place the groups at positions `0..G` so that the peak of the
//! memory model of [`crate::graph::memory`] is least.
//!
//! # Formulation
//!
//! `G` groups (see [`Groups`]), positions `t = 0..G`. `C[g,t]` below is the
//! cumulative sum `Σ_{t' <= t} x[g,t']` ("g has run by position t"), an
//! expression, not a variable. All byte sizes are divided by a power-of-two
//! `unit` that keeps the coefficients below about 2^20.
//!
//! Variables:
//! * `x[g,t]` binary: group `g` runs at position `t`, only for `t` in
//!   `[|anc(g)|, G-1-|desc(g)|]` (topology-aware pruning: a group cannot run
//!   before all its ancestors or after fewer positions than it has
//!   descendants). Outside that window `x` is the constant 0.
//! * `Q[e,s]` in `[0,1]`: tensor `e` is live after position `s` (for
//!   `s = -1..G-2`; `-1` is the start). Only for tensors that can be live
//!   across a group boundary, only where it is not a constant, and never for
//!   graph outputs (for them `Q[e,s] = C[p,s]`, an expression).
//! * `y[e,g,t]` in `[0,1]`: group `g` runs at `t` and every other group that
//!   reads `e` has run before: `e` dies inside `g` at `g`'s last read. Only
//!   for tensors read by more than one group and where it matters.
//! * `z[g,j,t]` in `[0,1]`: op `j` of `g` runs in place at `t` over an input
//!   that dies there (only with `--inplace`, only where that is not known
//!   in advance).
//! * `peak` continuous, the objective, bounded below by the lower bound LB2
//!   and above by the incumbent's peak.
//!
//! Constraints:
//! * each group at one position, each position one group;
//! * precedence `a -> b` (transitive reduction of the group DAG), in the
//!   tight cumulative form `C[b,t] <= C[a,t-1]`;
//! * liveness, freeable `e` produced by `p` and read by groups `c != p`:
//!   `Q[e,s] >= C[p,s] - C[c,s]` for each `c` (a graph input has `C[p,s] = 1`);
//! * death inside a group: `y[e,g,t] <= x[g,t]` and `y[e,g,t] <= C[c,t-1]`
//!   for each other reader `c`; in place: `z <= x[g,t]`, `z <= Σ y` over the
//!   candidate inputs;
//! * memory: for each position `t` and each internal step `j` of each group
//!   `g` that may run at `t`:
//!
//!   ```text
//!   peak >= Σ_e bytes(e)·Q[e,t-1]                       (live before position t)
//!           + x[g,t]·(internal(g,j) - sure frees and in-place savings)
//!           - Σ_{e read by g, last read before j} bytes(e)·y[e,g,t]
//!           - out(g,j)·z[g,j,t]
//!   ```
//!
//!   With `x[g,t] = 1` the right side is exactly the memory of
//!   [`evaluate`] at op `j` of `g`; with `x[g,t] = 0` every `g` term is 0
//!   (`y, z <= x`) and the right side is the memory live before position
//!   `t`, which is at most the memory of the step run there. So every row is
//!   valid and the rows of the group at `t` are exact; rows of different
//!   groups at the same `t` are summed into one (only one of them is
//!   active), one row per internal step, and internal steps another step of
//!   the same group always dominates are dropped.
//!
//! `Q`, `y` and `z` need only one-sided bounds: `Q` only raises the memory
//! and is pushed down to its true value, `y` and `z` only lower it and are
//! pushed up to theirs. The time limit comes from the deadline. microlp is
//! warm-started with the incumbent when its order keeps the groups together
//! (HiGHS is not: see its backend); the incumbent's peak caps the objective
//! either way.
//!
//! Every answer is re-checked: the order is expanded to ops, checked with
//! [`check_order`] and evaluated with [`evaluate`]; an objective that
//! disagrees with the evaluated peak is reported as [`IlpOutcome::NoSolution`].
//!
//! The solver is microlp (pure Rust), or HiGHS with the `highs` feature.

use super::{Groups, Order};
use crate::graph::bounds::{lb2, BitSet};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::topo::check_order;
use crate::graph::{Graph, OpId, TensorKind};
use good_lp::{variable, Constraint, Expression, ProblemVariables, Solution, SolutionStatus, SolverModel, Variable};
use std::time::Instant;

/// What [`solve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IlpOutcome {
    /// The least peak over all orders that run each group back to back,
    /// proved exactly: the solver's proof is relative (about 2e-9), so this
    /// needs peaks below about 2.5e8 times the gcd of the tensor sizes;
    /// above that a solution proved only to that precision is
    /// [`IlpOutcome::Feasible`].
    Optimal {
        /// The order, groups expanded to ops.
        order: Order,
        /// Its peak, as [`evaluate`] computes it.
        peak: u64,
    },
    /// The time limit was reached with a solution that is not proved optimal.
    Feasible {
        /// The order, groups expanded to ops.
        order: Order,
        /// Its peak, as [`evaluate`] computes it.
        peak: u64,
    },
    /// No order: the time limit came first, the solver failed, the input was
    /// invalid, or no grouped order beats the incumbent.
    NoSolution {
        /// Why, for the report.
        reason: String,
    },
}

/// The size of the ILP built for a graph, for reports and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IlpSize {
    /// Groups (positions).
    pub groups: usize,
    /// Binary position variables `x[g,t]` after pruning.
    pub binaries: usize,
    /// Continuous variables (liveness, deaths, in-place, peak).
    pub continuous: usize,
    /// Constraints.
    pub constraints: usize,
    /// Non-zero coefficients in the constraints.
    pub nonzeros: usize,
}

/// Above this many non-zero coefficients the ILP is not built.
const MAX_NONZEROS: usize = 4_000_000;
/// Coefficients are scaled so that the total of all tensor bytes is at most this.
const SCALE_LIMIT: f64 = (1u64 << 12) as f64;
/// Relative slack on the incumbent's peak as the ILP's upper bound.
const CAP_SLACK: f64 = 1e-7;
/// Gap, in quanta (the gcd of the tensor sizes), below which the solver
/// stops: every peak is a whole number of quanta.
const BYTE_GAP: f64 = 0.45;

/// Solves the scheduling ILP for `graph` with the ops fused into `groups`,
/// under `opts`, until `deadline`.
///
/// `incumbent`, if it is a valid order, bounds the peak from above (a grouped
/// order must beat or match it) and, if it keeps every group together in its
/// internal order, warm-starts the solver. Invalid groups, an expired
/// deadline, a solver failure, or an answer whose evaluated peak disagrees
/// with the solver's objective give [`IlpOutcome::NoSolution`].
pub fn solve(
    graph: &Graph,
    groups: &Groups,
    opts: &MemoryOptions,
    incumbent: &[OpId],
    deadline: Instant,
) -> IlpOutcome {
    let no = |reason: String| IlpOutcome::NoSolution { reason };
    if graph.ops.is_empty() {
        let peak = evaluate(graph, &[], opts).peak;
        return IlpOutcome::Optimal { order: Vec::new(), peak };
    }
    let model = match Model::build(graph, groups, opts, Some(deadline)) {
        Ok(m) => m,
        Err(e) => return no(e),
    };
    let incumbent_peak = check_order(graph, incumbent).ok().map(|()| evaluate(graph, incumbent, opts).peak);
    let warm = match model.group_positions(incumbent) {
        Some(pos) => {
            let values = model.assign(&pos);
            if let Err(e) = model.self_check(graph, opts, &pos, &values) {
                return no(format!("internal error in the ILP formulation: {e}"));
            }
            Some(values)
        }
        None => None,
    };
    let lb = model.lower_bound_bytes;
    if let Some(ub) = incumbent_peak {
        if ub < lb {
            return no(format!("internal error: the incumbent's peak {ub} is below the lower bound {lb}"));
        }
    }
    let seconds = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
    if seconds <= 0.0 {
        return no("the time limit was reached before the ILP was solved".to_string());
    }
    let ub_bytes = incumbent_peak.map_or(model.total_bytes as f64, |p| p as f64);
    let answer = match run_solver(&model, incumbent_peak, warm.as_deref(), seconds, ub_bytes) {
        Ok(a) => a,
        Err(e) => {
            let reason = match incumbent_peak {
                Some(p) if e.contains("nfeasible") => format!(
                    "no order that runs each group back to back has a peak of at most the incumbent's {p} bytes ({e})"
                ),
                _ => e,
            };
            return no(reason);
        }
    };
    let order = match model.order_from_positions(&answer.x) {
        Ok(o) => o,
        Err(e) => return no(format!("the solver's answer is not a schedule: {e}")),
    };
    if let Err(e) = check_order(graph, &order) {
        return no(format!("the solver's order is not topological: {e}"));
    }
    let peak = evaluate(graph, &order, opts).peak;
    let claimed = answer.peak * model.unit;
    let tol = model.tolerance_bytes();
    let proved = answer.proved;
    if claimed + tol < peak as f64 || (proved && (claimed - peak as f64).abs() > tol) {
        return no(format!(
            "internal error: the ILP claims a peak of {claimed:.3} bytes but its order's peak is {peak} bytes"
        ));
    }
    // The solver's proof holds up to its relative tolerance; it is exact
    // when that is below half a quantum of the peak's upper bound.
    let exact = proved && ub_bytes * backend::PROOF_RELATIVE <= 0.5 * model.quantum as f64;
    if exact || peak <= lb {
        IlpOutcome::Optimal { order, peak }
    } else {
        IlpOutcome::Feasible { order, peak }
    }
}

/// Above this many groups [`solve_within`] does not build the ILP: its
/// position binaries grow with the square of the groups, so a formulation
/// this large neither fits in memory nor finds a feasible order in any
/// reasonable time (228 groups found none in 5 s; 6,376 groups exhausted
/// the memory of the build machine).
pub const MAX_GROUPS: usize = 400;

/// [`solve`], but answering by `deadline` whatever the solver does.
///
/// microlp checks its time limit only between branch-and-bound nodes, and
/// building the formulation is not interruptible, so [`solve`] alone can
/// overrun its deadline (by 2x on a 660-op model). Here the solve runs on a
/// worker thread with copies of its inputs; if it has not answered by the
/// deadline, the result is [`IlpOutcome::NoSolution`] and the worker is left
/// to stop at the solver's next check (its answer is dropped). Parts of more
/// than [`MAX_GROUPS`] groups get [`IlpOutcome::NoSolution`] at once.
pub fn solve_within(
    graph: &Graph,
    groups: &Groups,
    opts: &MemoryOptions,
    incumbent: &[OpId],
    deadline: Instant,
) -> IlpOutcome {
    if groups.len() > MAX_GROUPS {
        return IlpOutcome::NoSolution {
            reason: format!(
                "{} groups after fusion, more than the {MAX_GROUPS} an ILP can handle; the `auto` scheduler is the method for graphs this large",
                groups.len()
            ),
        };
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (g, gr, o, inc) = (graph.clone(), groups.clone(), *opts, incumbent.to_vec());
    // The solver gets 90% of the time, so that its best order usually
    // arrives before the deadline; the wait below is the hard limit.
    let now = Instant::now();
    let solver_deadline = now + deadline.saturating_duration_since(now).mul_f64(0.9);
    let worker = std::thread::Builder::new().name("ilp".to_string()).spawn(move || {
        // The receiver is gone once the deadline passed: nothing to report to.
        let _ = tx.send(solve(&g, &gr, &o, &inc, solver_deadline));
    });
    if worker.is_err() {
        return solve(graph, groups, opts, incumbent, solver_deadline);
    }
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(outcome) => outcome,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            IlpOutcome::NoSolution { reason: "the time limit was reached before the ILP solver answered".to_string() }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            IlpOutcome::NoSolution { reason: "the ILP solver stopped without an answer".to_string() }
        }
    }
}

/// The size of the ILP [`solve`] would build, or why it cannot be built.
pub fn formulation_size(graph: &Graph, groups: &Groups, opts: &MemoryOptions) -> Result<IlpSize, String> {
    let m = Model::build(graph, groups, opts, None)?;
    let binaries = m.defs.iter().filter(|d| matches!(d, Def::Position)).count();
    let def_rows: usize = m
        .defs
        .iter()
        .map(|d| match d {
            Def::AtLeast(l) | Def::AtMost(l) => l.len(),
            _ => 0,
        })
        .sum();
    let def_nonzeros: usize = m
        .defs
        .iter()
        .map(|d| match d {
            Def::AtLeast(l) | Def::AtMost(l) => l.iter().map(|r| r.terms.len() + 1).sum(),
            _ => 0,
        })
        .sum();
    Ok(IlpSize {
        groups: m.group_ops.len(),
        binaries,
        continuous: m.defs.len() - binaries,
        constraints: m.eq_rows.len() + m.le_rows.len() + m.mem_rows.len() + def_rows,
        nonzeros: m.nonzeros + def_nonzeros,
    })
}

/// Checks the formulation against [`evaluate`] on one order, without a
/// solver: the order must run each group back to back; the values the ILP
/// would give its variables must satisfy every constraint, and the memory
/// rows of each position must peak exactly where `evaluate` does. Returns
/// the peak the ILP assigns to the order, in bytes. For tests.
#[doc(hidden)]
pub fn check_formulation(graph: &Graph, groups: &Groups, opts: &MemoryOptions, order: &[OpId]) -> Result<u64, String> {
    check_order(graph, order)?;
    let m = Model::build(graph, groups, opts, None)?;
    let pos = m.group_positions(order).ok_or("the order does not run each group back to back")?;
    let values = m.assign(&pos);
    m.self_check(graph, opts, &pos, &values)?;
    Ok((values[m.peak] * m.unit).round() as u64)
}

/// A linear expression over the model's variables (by index) plus a constant.
#[derive(Debug, Clone, Default)]
struct Lin {
    terms: Vec<(usize, f64)>,
    constant: f64,
}

impl Lin {
    fn constant(c: f64) -> Lin {
        Lin { terms: Vec::new(), constant: c }
    }
    fn var(v: usize) -> Lin {
        Lin { terms: vec![(v, 1.0)], constant: 0.0 }
    }
    fn add(&mut self, other: &Lin, coef: f64) {
        self.terms.extend(other.terms.iter().map(|&(v, c)| (v, c * coef)));
        self.constant += other.constant * coef;
    }
    fn eval(&self, values: &[f64]) -> f64 {
        self.constant + self.terms.iter().map(|&(v, c)| c * values[v]).sum::<f64>()
    }
    fn to_expression(&self, vars: &[Variable]) -> Expression {
        let mut e = Expression::with_capacity(self.terms.len());
        for &(v, c) in &self.terms {
            e.add_mul(c, vars[v]);
        }
        e + self.constant
    }
    /// Whether this is exactly one variable with coefficient 1 and no constant.
    fn is_var(&self, v: usize) -> bool {
        self.constant == 0.0 && self.terms.len() == 1 && self.terms[0] == (v, 1.0)
    }
}

/// How a variable is defined, which also gives its value for a known order.
#[derive(Debug, Clone)]
enum Def {
    /// `x[g,t]`, binary.
    Position,
    /// The objective.
    Peak,
    /// In `[0,1]`, at least each expression (its value: the largest, or 0).
    AtLeast(Vec<Lin>),
    /// In `[0,1]`, at most each expression (its value: the smallest, or 1).
    AtMost(Vec<Lin>),
}

/// The ILP in solver-independent form.
struct Model {
    defs: Vec<Def>,
    /// `x[g][t - lo[g]]`: variable indices.
    x: Vec<Vec<usize>>,
    lo: Vec<usize>,
    hi: Vec<usize>,
    peak: usize,
    /// `lin == 0`.
    eq_rows: Vec<Lin>,
    /// `lin <= 0`.
    le_rows: Vec<Lin>,
    /// `lin <= peak`, with the position each row belongs to.
    mem_rows: Vec<(usize, Lin)>,
    nonzeros: usize,
    group_ops: Vec<Vec<OpId>>,
    /// `op_group[op] = (group, index inside the group)`.
    op_group: Vec<(usize, usize)>,
    unit: f64,
    total_bytes: u64,
    /// The gcd of the tensor sizes: every peak is a multiple of it.
    quantum: u64,
    lower_bound_bytes: u64,
}

/// Where a tensor is read and written, relative to the groups.
struct TensorUse {
    producer: Option<usize>,
    /// Distinct groups that read it, other than its producer's, with the
    /// index of the last op of each that reads it.
    readers: Vec<(usize, usize)>,
    freeable: bool,
}

impl Model {
    /// Builds the formulation; `deadline` bounds the LB2 computed for it.
    fn build(graph: &Graph, groups: &Groups, opts: &MemoryOptions, deadline: Option<Instant>) -> Result<Model, String> {
        let n = graph.ops.len();
        // Groups: a partition of the ops (empty groups are ignored).
        let group_ops: Vec<Vec<OpId>> = groups.iter().filter(|g| !g.is_empty()).cloned().collect();
        let g_count = group_ops.len();
        // Before anything quadratic in the groups (ancestor sets, position
        // windows): the ILP is for small fused parts.
        if g_count > MAX_GROUPS {
            return Err(format!(
                "{g_count} groups after fusion: the ILP is built for at most {MAX_GROUPS} (it is meant for small fused parts)"
            ));
        }
        let mut op_group = vec![(usize::MAX, 0); n];
        for (g, ops) in group_ops.iter().enumerate() {
            for (i, &v) in ops.iter().enumerate() {
                if v.index() >= n {
                    return Err(format!("group {g} names op id {}, which is out of range", v.0));
                }
                if op_group[v.index()].0 != usize::MAX {
                    return Err(format!("{} is in more than one group", graph.describe_op(v)));
                }
                op_group[v.index()] = (g, i);
            }
        }
        if let Some(v) = graph.op_ids().find(|v| op_group[v.index()].0 == usize::MAX) {
            return Err(format!("{} is in no group", graph.describe_op(v)));
        }
        // The group DAG; internal orders must respect the op edges.
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); g_count];
        for (g, ops) in group_ops.iter().enumerate() {
            for (i, &v) in ops.iter().enumerate() {
                for p in graph.predecessors(v) {
                    let (gp, ip) = op_group[p.index()];
                    if gp == g {
                        if ip >= i {
                            return Err(format!(
                                "group {g} runs {} before {}, which produces one of its inputs",
                                graph.describe_op(v),
                                graph.describe_op(p)
                            ));
                        }
                    } else {
                        preds[g].push(gp);
                    }
                }
            }
            preds[g].sort_unstable();
            preds[g].dedup();
        }
        let mut succs: Vec<Vec<usize>> = vec![Vec::new(); g_count];
        for (g, ps) in preds.iter().enumerate() {
            for &p in ps {
                succs[p].push(g);
            }
        }
        let mut waiting: Vec<usize> = preds.iter().map(Vec::len).collect();
        let mut topo: Vec<usize> = (0..g_count).filter(|&g| waiting[g] == 0).collect();
        let mut head = 0;
        while head < topo.len() {
            let g = topo[head];
            head += 1;
            for &s in &succs[g] {
                waiting[s] -= 1;
                if waiting[s] == 0 {
                    topo.push(s);
                }
            }
        }
        if topo.len() != g_count {
            return Err("the groups depend on each other in a cycle".to_string());
        }
        let mut anc = vec![BitSet::new(g_count); g_count];
        for &g in &topo {
            let mut set = BitSet::new(g_count);
            for &p in &preds[g] {
                set.insert(p);
                set.union_with(&anc[p]);
            }
            anc[g] = set;
        }
        let mut desc = vec![BitSet::new(g_count); g_count];
        for &g in topo.iter().rev() {
            let mut set = BitSet::new(g_count);
            for &s in &succs[g] {
                set.insert(s);
                set.union_with(&desc[s]);
            }
            desc[g] = set;
        }
        let lo: Vec<usize> = anc.iter().map(BitSet::len).collect();
        let hi: Vec<usize> = desc.iter().map(|d| g_count - 1 - d.len()).collect();
        // Each position variable is a coefficient of the assignment rows.
        let positions: usize = lo.iter().zip(&hi).map(|(&l, &h)| h + 1 - l.min(h + 1)).sum();
        if positions > MAX_NONZEROS {
            return Err(format!(
                "the ILP for {g_count} groups has more than {MAX_NONZEROS} coefficients; it is meant for small fused parts"
            ));
        }

        // LB2 on the op graph, along the expanded group order.
        let op_order: Vec<OpId> = topo.iter().flat_map(|&g| group_ops[g].iter().copied()).collect();
        check_order(graph, &op_order).map_err(|e| format!("the groups do not give a topological order: {e}"))?;
        let lb = lb2(graph, &op_order, opts, deadline).0.bytes.max(graph.input_bytes());

        let total_bytes: u64 = graph
            .tensors
            .iter()
            .filter(|t| t.kind != TensorKind::Weight)
            .fold(0u64, |acc, t| acc.saturating_add(t.bytes));
        let quantum = graph
            .tensors
            .iter()
            .filter(|t| t.bytes > 0 && (t.producer.is_some() || t.kind == TensorKind::GraphInput))
            .fold(0u64, |acc, t| gcd(acc, t.bytes))
            .max(1);
        let mut unit = 1.0f64;
        while total_bytes as f64 / unit > SCALE_LIMIT {
            unit *= 2.0;
        }

        let mut m = Model {
            defs: Vec::new(),
            x: Vec::with_capacity(g_count),
            lo,
            hi,
            peak: 0,
            eq_rows: Vec::new(),
            le_rows: Vec::new(),
            mem_rows: Vec::new(),
            nonzeros: 0,
            group_ops,
            op_group,
            unit,
            total_bytes,
            quantum,
            lower_bound_bytes: lb,
        };
        for g in 0..g_count {
            let vars = (m.lo[g]..=m.hi[g]).map(|_| m.new_var(Def::Position)).collect();
            m.x.push(vars);
        }
        m.peak = m.new_var(Def::Peak);

        // Assignment.
        for g in 0..g_count {
            let mut row = Lin::constant(-1.0);
            row.terms.extend(m.x[g].iter().map(|&v| (v, 1.0)));
            m.push_eq(row);
        }
        for t in 0..g_count {
            let mut row = Lin::constant(-1.0);
            for g in 0..g_count {
                if let Some(v) = m.x_var(g, t) {
                    row.terms.push((v, 1.0));
                }
            }
            m.push_eq(row);
        }
        // Precedence over the transitive reduction: C[b,t] <= C[a,t-1].
        for (b, pb) in preds.iter().enumerate() {
            for &a in pb {
                let implied = pb.iter().any(|&c| c != a && anc[c].contains(a));
                if implied {
                    continue;
                }
                for t in m.lo[b]..=m.hi[a].min(g_count - 1) {
                    let mut row = m.cum(b, t as isize);
                    row.add(&m.cum(a, t as isize - 1), -1.0);
                    if !row.terms.is_empty() {
                        m.push_le(row);
                    }
                }
            }
        }

        // Tensors: who writes and reads them, group-wise.
        let uses: Vec<Option<TensorUse>> = (0..graph.tensors.len())
            .map(|i| {
                let t = &graph.tensors[i];
                if t.bytes == 0 {
                    return None;
                }
                let producer = t.producer.map(|p| m.op_group[p.index()].0);
                if t.producer.is_none() && t.kind != TensorKind::GraphInput {
                    return None;
                }
                let mut readers: Vec<(usize, usize)> = Vec::new();
                for &c in &t.consumers {
                    let (g, idx) = m.op_group[c.index()];
                    if Some(g) == producer {
                        continue;
                    }
                    match readers.iter_mut().find(|(rg, _)| *rg == g) {
                        Some(r) => r.1 = r.1.max(idx),
                        None => readers.push((g, idx)),
                    }
                }
                readers.sort_unstable();
                Some(TensorUse { producer, readers, freeable: frees(opts, t) })
            })
            .collect();

        let tracked = uses.iter().filter(|u| u.is_some()).count();
        if g_count.saturating_mul(tracked + g_count) > MAX_NONZEROS {
            return Err(format!(
                "the ILP for {g_count} groups and {tracked} tensors would be too large; it is meant for small fused parts"
            ));
        }
        // Q: live after position s, for s = -1..G-2, as expressions.
        // live[s + 1] = Σ bytes · Q over tensors live across group boundaries.
        let mut live: Vec<Lin> = vec![Lin::default(); g_count];
        for (i, u) in uses.iter().enumerate() {
            let Some(u) = u else { continue };
            let bytes = graph.tensors[i].bytes as f64 / unit;
            for s in -1..(g_count as isize - 1) {
                let q = m.liveness(u, s);
                live[(s + 1) as usize].add(&q, bytes);
            }
        }
        live.iter_mut().for_each(Lin::compact);

        // Per group: the terms its internal steps add to the memory rows.
        let mut terms: Vec<Vec<Vec<Lin>>> = Vec::with_capacity(g_count);
        for g in 0..g_count {
            let steps = group_steps(graph, opts, &m.group_ops[g], &m.op_group, &uses, g);
            let kept = undominated(graph, &steps);
            let mut need: Vec<usize> = kept
                .iter()
                .flat_map(|&j| {
                    let st = &steps[j];
                    st.var_dying.iter().chain(st.inplace.iter().flat_map(|(_, c)| c.iter())).copied()
                })
                .collect();
            need.sort_unstable();
            need.dedup();
            let mut per_t = Vec::with_capacity(m.hi[g] - m.lo[g] + 1);
            for t in m.lo[g]..=m.hi[g] {
                let xv = m.x[g][t - m.lo[g]];
                let mut deaths: Vec<(usize, Lin)> = Vec::with_capacity(need.len());
                for &e in &need {
                    if let Some(u) = &uses[e] {
                        let d = m.death(u, g, t, xv);
                        deaths.push((e, d));
                    }
                }
                let death_of = |e: usize| deaths.iter().find(|(d, _)| *d == e).map(|(_, l)| l);
                let mut lins = Vec::with_capacity(kept.len());
                for &j in &kept {
                    let st = &steps[j];
                    let mut lin = Lin::default();
                    let own = st.internal as f64 - st.sure_dying as f64;
                    if own != 0.0 {
                        lin.terms.push((xv, own / unit));
                    }
                    for &e in &st.var_dying {
                        if let Some(d) = death_of(e) {
                            lin.add(d, -(graph.tensors[e].bytes as f64) / unit);
                        }
                    }
                    if let Some((out, cands)) = &st.inplace {
                        let ds: Vec<Lin> = cands.iter().filter_map(|&e| death_of(e).cloned()).collect();
                        let z = m.inplace_var(xv, ds);
                        lin.add(&z, -(*out as f64) / unit);
                    }
                    lins.push(lin);
                }
                per_t.push(lins);
            }
            terms.push(per_t);
            m.check_size()?;
        }
        // Memory rows: at each position, one row per internal step index,
        // summing the terms of every group that may run there.
        for t in 0..g_count {
            let here: Vec<usize> = (0..g_count).filter(|&g| m.lo[g] <= t && t <= m.hi[g]).collect();
            let rows = here.iter().map(|&g| terms[g][t - m.lo[g]].len()).max().unwrap_or(0);
            for r in 0..rows {
                let mut lin = live[t].clone();
                for &g in &here {
                    let lins = &terms[g][t - m.lo[g]];
                    if let Some(l) = lins.get(r.min(lins.len().saturating_sub(1))) {
                        lin.add(l, 1.0);
                    }
                }
                lin.compact();
                m.nonzeros += lin.terms.len() + 1;
                m.mem_rows.push((t, lin));
            }
            m.check_size()?;
        }
        Ok(m)
    }

    fn new_var(&mut self, def: Def) -> usize {
        if let Def::AtLeast(l) | Def::AtMost(l) = &def {
            self.nonzeros += l.iter().map(|r| r.terms.len() + 1).sum::<usize>();
        }
        self.defs.push(def);
        self.defs.len() - 1
    }

    fn push_eq(&mut self, row: Lin) {
        self.nonzeros += row.terms.len();
        self.eq_rows.push(row);
    }

    fn push_le(&mut self, row: Lin) {
        self.nonzeros += row.terms.len();
        self.le_rows.push(row);
    }

    fn check_size(&self) -> Result<(), String> {
        if self.nonzeros > MAX_NONZEROS {
            Err(format!(
                "the ILP for {} groups has more than {MAX_NONZEROS} coefficients; it is meant for small fused parts",
                self.group_ops.len()
            ))
        } else {
            Ok(())
        }
    }

    fn x_var(&self, g: usize, t: usize) -> Option<usize> {
        if self.lo[g] <= t && t <= self.hi[g] {
            Some(self.x[g][t - self.lo[g]])
        } else {
            None
        }
    }

    /// `C[g,s]`: whether group `g` has run by position `s` (inclusive).
    fn cum(&self, g: usize, s: isize) -> Lin {
        if s < self.lo[g] as isize {
            Lin::default()
        } else if s >= self.hi[g] as isize {
            Lin::constant(1.0)
        } else {
            let upto = s as usize - self.lo[g];
            Lin { terms: self.x[g][..=upto].iter().map(|&v| (v, 1.0)).collect(), constant: 0.0 }
        }
    }

    /// The values `C[g,s]` can take: `(min, max)`.
    fn cum_range(&self, g: usize, s: isize) -> (i32, i32) {
        if s < self.lo[g] as isize {
            (0, 0)
        } else if s >= self.hi[g] as isize {
            (1, 1)
        } else {
            (0, 1)
        }
    }

    /// `Q[e,s]` as an expression: a constant, `C[p,s]`, or a new variable.
    fn liveness(&mut self, u: &TensorUse, s: isize) -> Lin {
        let produced = |m: &Model| match u.producer {
            Some(p) => (m.cum(p, s), m.cum_range(p, s)),
            None => (Lin::constant(1.0), (1, 1)),
        };
        if !u.freeable {
            return produced(self).0;
        }
        let (made, (made_min, made_max)) = produced(self);
        let mut bounds = Vec::new();
        for &(c, _) in &u.readers {
            let (c_min, c_max) = self.cum_range(c, s);
            if made_max - c_min <= 0 {
                continue; // never live on this reader's account
            }
            if made_min - c_max >= 1 {
                return Lin::constant(1.0); // surely produced, surely not yet read
            }
            let mut lin = made.clone();
            lin.add(&self.cum(c, s), -1.0);
            bounds.push(lin);
        }
        if bounds.is_empty() {
            return Lin::default();
        }
        Lin::var(self.new_var(Def::AtLeast(bounds)))
    }

    /// `y[e,g,t]`: `g` runs at `t` (its variable `xv`) and every other group
    /// reading `e` ran before, as an expression.
    fn death(&mut self, u: &TensorUse, g: usize, t: usize, xv: usize) -> Lin {
        let mut bounds = vec![Lin::var(xv)];
        for &(c, _) in &u.readers {
            if c == g {
                continue;
            }
            match self.cum_range(c, t as isize - 1) {
                (_, 0) => return Lin::default(),
                (1, _) => continue,
                _ => bounds.push(self.cum(c, t as isize - 1)),
            }
        }
        if bounds.len() == 1 {
            Lin::var(xv)
        } else {
            Lin::var(self.new_var(Def::AtMost(bounds)))
        }
    }

    /// `z[g,j,t]`: some candidate input dies at this op, so it runs in place.
    fn inplace_var(&mut self, xv: usize, deaths: Vec<Lin>) -> Lin {
        let deaths: Vec<Lin> = deaths.into_iter().filter(|d| !d.terms.is_empty() || d.constant != 0.0).collect();
        if deaths.is_empty() {
            return Lin::default();
        }
        if deaths.iter().any(|d| d.is_var(xv)) {
            return Lin::var(xv);
        }
        let mut any = Lin::default();
        for d in &deaths {
            any.add(d, 1.0);
        }
        Lin::var(self.new_var(Def::AtMost(vec![Lin::var(xv), any])))
    }

    /// The position of each group in `order`, if `order` is a topological
    /// order that runs every group back to back in its internal order.
    fn group_positions(&self, order: &[OpId]) -> Option<Vec<usize>> {
        let n = self.op_group.len();
        if order.len() != n {
            return None;
        }
        let mut at = vec![usize::MAX; n];
        for (i, &v) in order.iter().enumerate() {
            if v.index() >= n || at[v.index()] != usize::MAX {
                return None;
            }
            at[v.index()] = i;
        }
        let mut starts: Vec<(usize, usize)> = Vec::with_capacity(self.group_ops.len());
        for (g, ops) in self.group_ops.iter().enumerate() {
            let first = at[ops[0].index()];
            if ops.iter().enumerate().any(|(i, v)| at[v.index()] != first + i) {
                return None;
            }
            starts.push((first, g));
        }
        starts.sort_unstable();
        let mut pos = vec![0; self.group_ops.len()];
        for (t, &(_, g)) in starts.iter().enumerate() {
            pos[g] = t;
        }
        // A topological group order is inside every window; check the edges.
        let expanded = self.expand(&pos);
        if expanded.len() != n || expanded.iter().zip(order).any(|(a, b)| a != b) {
            return None;
        }
        for (g, &t) in pos.iter().enumerate() {
            self.x_var(g, t)?;
        }
        Some(pos)
    }

    /// The op order of groups placed at `pos` (position of each group).
    fn expand(&self, pos: &[usize]) -> Order {
        let mut by_pos = vec![usize::MAX; pos.len()];
        for (g, &t) in pos.iter().enumerate() {
            if t < by_pos.len() {
                by_pos[t] = g;
            }
        }
        by_pos.iter().filter(|&&g| g != usize::MAX).flat_map(|&g| self.group_ops[g].iter().copied()).collect()
    }

    /// The value of every variable for groups placed at `pos`: the smallest
    /// memory the constraints allow, which is the memory of that order.
    fn assign(&self, pos: &[usize]) -> Vec<f64> {
        let mut values = vec![0.0; self.defs.len()];
        for (g, &t) in pos.iter().enumerate() {
            if let Some(v) = self.x_var(g, t) {
                values[v] = 1.0;
            }
        }
        for (i, def) in self.defs.iter().enumerate() {
            values[i] = match def {
                Def::Position => values[i],
                Def::Peak => 0.0,
                Def::AtLeast(l) => l.iter().map(|r| r.eval(&values)).fold(0.0, f64::max).min(1.0),
                Def::AtMost(l) => l.iter().map(|r| r.eval(&values)).fold(1.0, f64::min).max(0.0),
            };
        }
        let rows = self.mem_rows.iter().map(|(_, r)| r.eval(&values)).fold(f64::NEG_INFINITY, f64::max);
        values[self.peak] = rows.max(self.lower_bound_bytes as f64 / self.unit);
        values
    }

    /// Checks the values of [`Model::assign`] against every constraint and
    /// against [`evaluate`], position by position.
    fn self_check(&self, graph: &Graph, opts: &MemoryOptions, pos: &[usize], values: &[f64]) -> Result<(), String> {
        let tol = 1e-6 * (1.0 + self.total_bytes as f64 / self.unit);
        for r in &self.eq_rows {
            if r.eval(values).abs() > tol {
                return Err("an assignment row is violated".into());
            }
        }
        for r in &self.le_rows {
            if r.eval(values) > tol {
                return Err("a precedence row is violated".into());
            }
        }
        for (i, def) in self.defs.iter().enumerate() {
            let ok = match def {
                Def::AtLeast(l) => l.iter().all(|r| r.eval(values) <= values[i] + tol),
                Def::AtMost(l) => l.iter().all(|r| r.eval(values) >= values[i] - tol),
                _ => true,
            };
            if !ok {
                return Err(format!("variable {i} cannot take the value of the order"));
            }
        }
        let order = self.expand(pos);
        let profile = evaluate(graph, &order, opts);
        let mut step = 0;
        let mut by_pos = vec![0; pos.len()];
        for (g, &t) in pos.iter().enumerate() {
            by_pos[t] = g;
        }
        for (t, &g) in by_pos.iter().enumerate() {
            let k = self.group_ops[g].len();
            let want = profile.steps[step..step + k].iter().copied().max().unwrap_or(0) as f64;
            step += k;
            let got = self
                .mem_rows
                .iter()
                .filter(|(rt, _)| *rt == t)
                .map(|(_, r)| r.eval(values))
                .fold(f64::NEG_INFINITY, f64::max)
                * self.unit;
            if (got - want).abs() > tol * self.unit {
                return Err(format!(
                    "at position {t} (group {g}) the memory rows give {got} bytes, the memory model {want}"
                ));
            }
        }
        let peak = values[self.peak] * self.unit;
        if (peak - profile.peak as f64).abs() > tol * self.unit {
            return Err(format!("the ILP's peak {peak} differs from the memory model's {}", profile.peak));
        }
        Ok(())
    }

    /// The order a solver's values describe.
    fn order_from_positions(&self, values: &[f64]) -> Result<Order, String> {
        let g_count = self.group_ops.len();
        let mut pos = vec![usize::MAX; g_count];
        for t in 0..g_count {
            let at: Vec<usize> =
                (0..g_count).filter(|&g| self.x_var(g, t).is_some_and(|v| values[v] > 0.5)).collect();
            match at.as_slice() {
                [g] if pos[*g] == usize::MAX => pos[*g] = t,
                [] => return Err(format!("no group at position {t}")),
                _ => return Err(format!("several groups at position {t}, or a group twice")),
            }
        }
        Ok(self.expand(&pos))
    }

    /// How far, in bytes, the solver's objective may be from the evaluated
    /// peak through rounding alone.
    fn tolerance_bytes(&self) -> f64 {
        BYTE_GAP + backend::RELATIVE_TOLERANCE * self.total_bytes as f64
    }

    /// Every constraint, for a solver.
    fn constraints(&self, vars: &[Variable]) -> Vec<Constraint> {
        let mut out = Vec::new();
        for r in &self.eq_rows {
            out.push(r.to_expression(vars).eq(0.0));
        }
        for r in &self.le_rows {
            out.push(r.to_expression(vars).leq(0.0));
        }
        for (i, def) in self.defs.iter().enumerate() {
            match def {
                Def::AtLeast(l) => {
                    for r in l {
                        out.push(r.to_expression(vars).leq(vars[i]));
                    }
                }
                Def::AtMost(l) => {
                    for r in l {
                        out.push(Expression::from(vars[i]).leq(r.to_expression(vars)));
                    }
                }
                _ => {}
            }
        }
        for (_, r) in &self.mem_rows {
            out.push(r.to_expression(vars).leq(vars[self.peak]));
        }
        out
    }
}

impl Lin {
    /// Merges repeated variables and drops zero coefficients.
    fn compact(&mut self) {
        self.terms.sort_unstable_by_key(|&(v, _)| v);
        let mut out: Vec<(usize, f64)> = Vec::with_capacity(self.terms.len());
        for &(v, c) in &self.terms {
            match out.last_mut() {
                Some(last) if last.0 == v => last.1 += c,
                _ => out.push((v, c)),
            }
        }
        out.retain(|&(_, c)| c != 0.0);
        self.terms = out;
    }
}

/// One op of a group, for the memory rows.
#[derive(Debug, Clone, Default)]
struct Step {
    /// Bytes of the group's own tensors live at this op (its outputs
    /// included), less an in-place saving that is certain.
    internal: u64,
    /// Bytes of outside tensors that surely died at an earlier op of the
    /// group (the group is their only reader).
    sure_dying: u64,
    /// Outside tensors read by other groups too whose last read in this
    /// group is at an earlier op: they died if the other readers ran before.
    var_dying: Vec<usize>,
    /// In place, when not certain: the output's bytes and the outside inputs
    /// whose death at this op allows it.
    inplace: Option<(u64, Vec<usize>)>,
}

/// The memory-relevant facts of each op of group `g`.
fn group_steps(
    graph: &Graph,
    opts: &MemoryOptions,
    ops: &[OpId],
    op_group: &[(usize, usize)],
    uses: &[Option<TensorUse>],
    g: usize,
) -> Vec<Step> {
    let k = ops.len();
    let mut steps = vec![Step::default(); k];
    let inside = |c: &OpId| op_group[c.index()].0 == g;
    // The group's own outputs.
    for (i, &v) in ops.iter().enumerate() {
        for &e in &graph.op(v).outputs {
            let t = graph.tensor(e);
            if t.bytes == 0 {
                continue;
            }
            let end = if t.graph_output || t.consumers.iter().any(|c| !inside(c)) {
                k - 1
            } else {
                t.consumers.iter().map(|c| op_group[c.index()].1).max().unwrap_or(i).max(i)
            };
            for st in &mut steps[i..=end] {
                st.internal = st.internal.saturating_add(t.bytes);
            }
        }
    }
    // Outside tensors: the last op of the group that reads each.
    let mut last_read: Vec<(usize, usize)> = Vec::new();
    for (i, &v) in ops.iter().enumerate() {
        for &e in &graph.op(v).inputs {
            let Some(u) = &uses[e.index()] else { continue };
            if u.producer == Some(g) || !u.freeable {
                continue;
            }
            match last_read.iter_mut().find(|(te, _)| *te == e.index()) {
                Some(r) => r.1 = r.1.max(i),
                None => last_read.push((e.index(), i)),
            }
        }
    }
    let only_reader = |e: usize| uses[e].as_ref().is_some_and(|u| u.readers.iter().all(|&(c, _)| c == g));
    for (j, st) in steps.iter_mut().enumerate() {
        for &(e, l) in &last_read {
            if l < j {
                if only_reader(e) {
                    st.sure_dying += graph.tensors[e].bytes;
                } else {
                    st.var_dying.push(e);
                }
            }
        }
    }
    // In place (see memory::inplace_reuse): a candidate input dies at the op.
    if opts.inplace {
        for (j, &v) in ops.iter().enumerate() {
            let op = graph.op(v);
            if !op.inplace_capable || op.outputs.len() != 1 {
                continue;
            }
            let out = graph.tensor(op.outputs[0]).bytes;
            if out == 0 {
                continue;
            }
            let mut sure = false;
            let mut maybe = Vec::new();
            for &e in &op.inputs {
                let t = graph.tensor(e);
                if t.bytes != out || t.kind == TensorKind::Weight || !frees(opts, t) {
                    continue;
                }
                if t.producer.is_some_and(|p| inside(&p)) {
                    let last = t.consumers.iter().map(|c| op_group[c.index()].1).max();
                    if t.consumers.iter().all(inside) && last == Some(j) {
                        sure = true;
                    }
                } else if last_read.iter().any(|&(te, l)| te == e.index() && l == j) {
                    if only_reader(e.index()) {
                        sure = true;
                    } else {
                        maybe.push(e.index());
                    }
                }
            }
            if sure {
                steps[j].internal = steps[j].internal.saturating_sub(out);
            } else if !maybe.is_empty() {
                steps[j].inplace = Some((out, maybe));
            }
        }
    }
    steps
}

/// The steps of a group whose memory rows are needed: a step is dropped when
/// another kept step has at least its memory in every schedule.
fn undominated(graph: &Graph, steps: &[Step]) -> Vec<usize> {
    let bytes = |e: usize| graph.tensors[e].bytes as i128;
    // covers(i, j): memory at step i >= memory at step j, whatever the other
    // groups do (deaths and in-place savings taken at their most favourable to j).
    let covers = |i: usize, j: usize| {
        let (a, b) = (&steps[i], &steps[j]);
        let mut low_i = a.internal as i128 - a.sure_dying as i128;
        low_i -= a.inplace.as_ref().map_or(0, |(out, _)| *out as i128);
        low_i -= a.var_dying.iter().filter(|e| !b.var_dying.contains(e)).map(|&e| bytes(e)).sum::<i128>();
        let high_j = b.internal as i128 - b.sure_dying as i128;
        low_i >= high_j
    };
    let mut kept: Vec<usize> = Vec::new();
    for j in 0..steps.len() {
        if !kept.iter().any(|&i| covers(i, j)) {
            kept.push(j);
        }
    }
    let mut r = kept.len();
    while r > 0 {
        r -= 1;
        let j = kept[r];
        if kept.iter().any(|&i| i != j && covers(i, j)) {
            kept.remove(r);
        }
    }
    kept
}

/// The solver's answer.
struct Answer {
    /// Values of the position variables, by variable index (others too).
    x: Vec<f64>,
    /// The objective, in scaled units.
    peak: f64,
    /// Proved optimal (within a gap below one byte).
    proved: bool,
}

fn run_solver(
    m: &Model,
    ub: Option<u64>,
    warm: Option<&[f64]>,
    seconds: f64,
    ub_bytes: f64,
) -> Result<Answer, String> {
    let mut pv = ProblemVariables::new();
    let lb = m.lower_bound_bytes as f64 / m.unit;
    let vars: Vec<Variable> = m
        .defs
        .iter()
        .map(|d| match d {
            Def::Position => pv.add(variable().binary()),
            Def::Peak => {
                let v = variable().min(lb);
                pv.add(match ub {
                    // A little slack, so that rounding cannot make the
                    // incumbent's own peak infeasible.
                    Some(u) => v.max((u as f64 + CAP_SLACK * (u as f64).max(m.quantum as f64)) / m.unit),
                    None => v,
                })
            }
            Def::AtLeast(_) | Def::AtMost(_) => pv.add(variable().min(0.0).max(1.0)),
        })
        .collect();
    let problem = pv.minimise(vars[m.peak]);
    let constraints = m.constraints(&vars);
    let warm: Option<Vec<(Variable, f64)>> = warm.map(|w| vars.iter().copied().zip(w.iter().copied()).collect());
    let gap_bytes = BYTE_GAP * m.quantum as f64;
    let (values, proved) = backend::solve(problem, constraints, warm, seconds, ub_bytes, gap_bytes, m.unit, &vars)?;
    let peak = values[m.peak];
    Ok(Answer { x: values, peak, proved })
}

/// Adds the constraints, solves, and reads every variable.
fn finish<M: SolverModel>(
    mut model: M,
    constraints: Vec<Constraint>,
    vars: &[Variable],
) -> Result<(Vec<f64>, bool), String> {
    for c in constraints {
        model.add_constraint(c);
    }
    let solved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || model.solve()));
    let solution = match solved {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("the ILP solver ({}) failed: {e}", M::name())),
        Err(_) => return Err(format!("the ILP solver ({}) panicked", M::name())),
    };
    // Both gap settings below prove optimality: peaks are whole bytes.
    let proved = matches!(solution.status(), SolutionStatus::Optimal | SolutionStatus::GapLimit);
    Ok((vars.iter().map(|&v| solution.value(v)).collect(), proved))
}

#[cfg(not(feature = "highs"))]
mod backend {
    use super::finish;
    use good_lp::variable::UnsolvedProblem;
    use good_lp::{Constraint, Variable, WithInitialSolution, WithMipGap, WithTimeLimit};

    /// microlp rounds integer variables of its incumbents: the objective is
    /// exact up to floating point.
    pub(super) const RELATIVE_TOLERANCE: f64 = 1e-9;
    /// microlp prunes a node whose bound is within 1e-9 (relative) of the
    /// incumbent, so its optimality proof is only that fine.
    pub(super) const PROOF_RELATIVE: f64 = 2e-9;

    #[allow(clippy::too_many_arguments)]
    pub(super) fn solve(
        problem: UnsolvedProblem,
        constraints: Vec<Constraint>,
        warm: Option<Vec<(Variable, f64)>>,
        seconds: f64,
        ub_bytes: f64,
        gap_bytes: f64,
        _unit: f64,
        vars: &[Variable],
    ) -> Result<(Vec<f64>, bool), String> {
        // A relative gap of gap_bytes / (an upper bound of the peak) is an
        // absolute gap below half a quantum.
        let gap = (gap_bytes / ub_bytes.max(1.0)) as f32;
        let mut model = problem
            .using(good_lp::solvers::microlp::microlp)
            .with_time_limit(seconds)
            .with_mip_gap(gap)
            .map_err(|e| format!("microlp rejected the gap {gap}: {e}"))?;
        if let Some(w) = warm {
            model = model.with_initial_solution(w);
        }
        finish(model, constraints, vars)
    }
}

#[cfg(feature = "highs")]
mod backend {
    use super::finish;
    use good_lp::variable::UnsolvedProblem;
    use good_lp::{Constraint, Variable};

    /// HiGHS accepts integer values within its feasibility tolerance (1e-6).
    pub(super) const RELATIVE_TOLERANCE: f64 = 2e-6;
    /// HiGHS's bounds carry its LP tolerances (about 1e-9 relative here).
    pub(super) const PROOF_RELATIVE: f64 = 2e-9;

    #[allow(clippy::too_many_arguments)]
    pub(super) fn solve(
        problem: UnsolvedProblem,
        constraints: Vec<Constraint>,
        warm: Option<Vec<(Variable, f64)>>,
        seconds: f64,
        _ub_bytes: f64,
        gap_bytes: f64,
        unit: f64,
        vars: &[Variable],
    ) -> Result<(Vec<f64>, bool), String> {
        let model = problem
            .using(good_lp::solvers::highs::highs)
            .set_time_limit(seconds)
            .set_option("output_flag", false)
            .set_mip_rel_gap(0.0)
            .map_err(|e| format!("HiGHS rejected the gap: {e}"))?
            .set_mip_abs_gap((gap_bytes / unit) as f32)
            .map_err(|e| format!("HiGHS rejected the gap: {e}"))?;
        // No warm start: with HiGHS 1.16's presolve a MIP start can come
        // back as the answer while the reported optimum is another, better
        // solution (seen on 5-op graphs, and caught by the tests). The
        // incumbent's peak still caps the objective.
        let _ = warm;
        finish(model, constraints, vars)
    }
}

/// Whether the memory model frees `t` after its last reader (as
/// `MemoryOptions::frees`): graph outputs never, graph inputs not when the
/// caller owns them.
fn frees(opts: &MemoryOptions, t: &crate::graph::Tensor) -> bool {
    !(t.graph_output || (opts.inputs_live_whole_run && t.kind == TensorKind::GraphInput))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
