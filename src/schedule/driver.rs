//! The anytime driver behind `--scheduler auto` (and `dp`, `ilp`, and the
//! single heuristics).
//!
//! `auto`:
//!
//! 1. **Portfolio.** Every heuristic of [`heuristics::PORTFOLIO`]; the best
//!    is the incumbent. The global lower bound is LB2
//!    ([`crate::graph::bounds::lower_bound`]); if the incumbent meets it, it
//!    is optimal and the driver stops.
//! 2. **Decomposition** at forced prefixes ([`decompose`]): the peak is
//!    `max(start, max_j (c_j + peak_j))` over the parts, so only a part that
//!    attains the maximum (the *bottleneck*) matters, and proving the
//!    bottleneck part optimal proves the whole order optimal. Each part
//!    starts from the best of the incumbent's restriction and the portfolio
//!    run on the part alone; its lower bound is the larger of LB2 of the part
//!    and the part's share of the global bound.
//! 3. **Per bottleneck part**, until it is proved or the time is up: the
//!    exact method for parallel chains ([`chains`]) when the part has that
//!    shape; else fusion ([`fusion::fuse`]), band searches of widths 4 to 24
//!    around the incumbent ([`band`]: linear-time DP in a moving band, which
//!    gives the exact searches a tight budget and improves parts far too big
//!    for them), the cut bound LB3 ([`crate::graph::cut`]) where LB2 falls
//!    short, the exact DP ([`dp::solve`]) with the part's incumbent as
//!    budget, the ILP ([`ilp::solve`]) on small fused parts the DP gave up
//!    on; then, as anytime work, exact searches on windows around the peak
//!    ([`window`]), wider bands, and beam searches of growing width
//!    ([`dp::beam`]).
//!
//! The result is always the best order found, checked to be topological and
//! re-evaluated with [`evaluate`]; `optimal` is true only when the peak meets
//! the lower bound or an exact method proved the bottleneck part.
//!
//! `auto` also stops once the peak is within [`SolveOptions::gap`] of the
//! lower bound (default 0.01% of the peak): chasing the last bytes of a
//! multi-megabyte peak is not worth a minute. A bottleneck part still gets its
//! first round then (the chains method, and the cut bounds for at most a
//! second) so that cheap proofs are found, but no search; the result says
//! `optimal: false` and [`SolveStats::gap_stop`].

use super::{band, chains, decompose, dp, fusion, heuristics, ilp, window, Order, Scheduler};
use crate::graph::bounds::{lb1, lb2, Reachability};
use crate::graph::cut::{cut_bound, region_bound};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{topo, Graph, OpId};
use std::time::{Duration, Instant};

/// Above this many ops LB2 gets a time cap when no deadline is given, and
/// the cut bounds (whose reachability is quadratic) are skipped.
const LB2_MAX_OPS: usize = 20_000;
/// LB2's time cap above `LB2_MAX_OPS` ops without a deadline.
const LB2_BIG_GRAPH_TIME: Duration = Duration::from_secs(1);
/// The exact DP is tried on parts of at most this many groups.
const DP_MAX_GROUPS: usize = 20_000;
/// The ILP is tried on parts of at most this many groups.
const ILP_MAX_GROUPS: usize = 60;
/// Memory the DP may use for its states, in bytes.
const DP_MEMORY: usize = 512 << 20;
/// Band widths grow by this step ([`band`]).
const BAND_STEP: usize = 4;
/// Widths tried before the exact searches; wider ones are anytime work.
const FIRST_BAND_WIDTH: usize = 24;
/// States a band layer keeps.
const BAND_MAX_LAYER: usize = 100_000;
/// States a band pass may store (8 bytes each).
const BAND_MAX_STATES: usize = 40_000_000;
/// Ops in a window of the window search ([`window`]).
const WINDOW_OPS: usize = 100;

/// What to solve and how.
#[derive(Clone, Copy)]
pub struct SolveOptions<'a> {
    /// Switches of the memory model.
    pub memory: MemoryOptions,
    /// Stop searching after this long and return the best order found.
    pub time_limit: Duration,
    /// `auto`, `dp`, `ilp`, or a single heuristic.
    pub method: Scheduler,
    /// Called with one line of progress now and then (e.g. to print on stderr).
    pub progress: Option<&'a dyn Fn(&str)>,
    /// `auto` stops searching once `peak - lower bound <= gap * peak`
    /// (a fraction, default [`DEFAULT_GAP`]); the result is then not
    /// `optimal` and [`SolveStats::gap_stop`] says why the search ended.
    /// `0` searches until the peak is proved or the time is up.
    pub gap: f64,
}

/// The default [`SolveOptions::gap`]: 0.01% of the peak.
pub const DEFAULT_GAP: f64 = 1e-4;

/// The largest peak whose gap to `lower_bound` is at most `gap` of itself:
/// `peak - lb <= gap * peak` holds exactly for `peak <= lb / (1 - gap)`.
pub fn negligible_peak(lower_bound: u64, gap: f64) -> u64 {
    if !(gap > 0.0 && gap < 1.0) {
        return lower_bound;
    }
    let limit = (lower_bound as f64 / (1.0 - gap)).floor();
    // Floating point may land a hair above the exact quotient.
    let mut peak = if limit >= u64::MAX as f64 { u64::MAX } else { (limit as u64).max(lower_bound) };
    while peak > lower_bound && (peak - lower_bound) as f64 > gap * peak as f64 {
        peak -= 1;
    }
    peak
}

impl Default for SolveOptions<'_> {
    fn default() -> Self {
        SolveOptions {
            memory: MemoryOptions::default(),
            time_limit: Duration::from_secs(60),
            method: Scheduler::Auto,
            progress: None,
            gap: DEFAULT_GAP,
        }
    }
}

impl std::fmt::Debug for SolveOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolveOptions")
            .field("memory", &self.memory)
            .field("time_limit", &self.time_limit)
            .field("method", &self.method)
            .field("progress", &self.progress.is_some())
            .field("gap", &self.gap)
            .finish()
    }
}

/// What happened to one part of the decomposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartStats {
    /// Ops in the part.
    pub ops: usize,
    /// Groups after fusion (equal to `ops` if fusion did not run).
    pub groups: usize,
    /// Bytes live across the part that it does not touch.
    pub constant: u64,
    /// The part's peak in the final order, `constant` included.
    pub peak: u64,
    /// The part's lower bound, `constant` included.
    pub lower_bound: u64,
    /// Whether the part's order is proved optimal.
    pub proved: bool,
    /// What produced the part's order (`heuristic:NAME`, `dp`, `chains`,
    /// `ilp`, `beam`, `trivial`).
    pub method: String,
}

/// Counters and per-stage results, for reports and benchmarks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SolveStats {
    /// Ops in the graph.
    pub nodes: usize,
    /// Units searched after fusion, summed over the parts fusion ran on
    /// (parts it did not run on count their ops).
    pub nodes_after_fusion: usize,
    /// Parts of the decomposition.
    pub parts: usize,
    /// One entry per part, in schedule order (empty if not decomposed).
    pub part_details: Vec<PartStats>,
    /// Peak of every heuristic of the portfolio on the whole graph, best first.
    pub heuristic_peaks: Vec<(String, u64)>,
    /// DP states stored, summed over all searches.
    pub dp_states: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Whether the time limit stopped the search.
    pub timed_out: bool,
    /// Whether `auto` stopped because the gap to the lower bound fell to
    /// [`SolveOptions::gap`] or below.
    pub gap_stop: bool,
    /// What a size guard or the deadline left out of the search or the
    /// bound (one sentence each), for the report's assumptions.
    pub notes: Vec<String>,
}

impl SolveStats {
    /// The best heuristic and its peak.
    pub fn best_heuristic(&self) -> Option<(&str, u64)> {
        self.heuristic_peaks.first().map(|(n, p)| (n.as_str(), *p))
    }
}

/// A checked schedule with what is known about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// A topological order of all ops.
    pub order: Order,
    /// Its peak under the memory model ([`evaluate`]).
    pub peak: u64,
    /// No order has a smaller peak.
    pub lower_bound: u64,
    /// Whether `peak` is proved to be the least possible.
    pub optimal: bool,
    /// What produced the order.
    pub method: String,
    /// Counters.
    pub stats: SolveStats,
}

/// Why no schedule exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SolveError {
    /// The graph has a cycle (these ops form it).
    #[error("the graph has a cycle through {} ops", .0.len())]
    Cycle(Vec<OpId>),
}

/// Finds an order of least peak within the time limit (see the module doc).
///
/// Errors only if the graph has a cycle.
pub fn solve(graph: &Graph, opts: &SolveOptions) -> Result<Solution, SolveError> {
    let started = Instant::now();
    let deadline = started + opts.time_limit;
    let say = |msg: &str| {
        if let Some(f) = opts.progress {
            f(msg);
        }
    };
    let mem = &opts.memory;
    let input_order = topo::stable_order(graph).map_err(|topo::Cycle(c)| SolveError::Cycle(c))?;
    let mut stats = SolveStats { nodes: graph.ops.len(), nodes_after_fusion: graph.ops.len(), ..SolveStats::default() };

    // A single heuristic.
    if !matches!(opts.method, Scheduler::Auto | Scheduler::Dp | Scheduler::Ilp) {
        let order = heuristics::run(graph, opts.method, mem).unwrap_or(input_order);
        let peak = evaluate(graph, &order, mem).peak;
        let (lb, note) = lower_bound_noted(graph, &order, mem, Some(deadline));
        stats.notes.extend(note);
        stats.heuristic_peaks.push((opts.method.name().to_string(), peak));
        stats.seconds = started.elapsed().as_secs_f64();
        return Ok(Solution {
            order,
            peak,
            lower_bound: lb,
            optimal: peak <= lb,
            method: opts.method.name().to_string(),
            stats,
        });
    }

    let candidates = heuristics::portfolio_until(graph, mem, Some(deadline));
    stats.heuristic_peaks = candidates.iter().map(|c| (c.scheduler.name().to_string(), c.peak)).collect();
    let (mut best_order, mut best_peak, mut method) = match candidates.into_iter().next() {
        Some(c) => (c.order, c.peak, format!("heuristic:{}", c.scheduler.name())),
        None => {
            let peak = evaluate(graph, &input_order, mem).peak;
            (input_order.clone(), peak, "heuristic:input".to_string())
        }
    };
    // LB2 gets a quarter of the time at most (it is fast but for huge graphs).
    let lb_deadline = Instant::now() + deadline.saturating_duration_since(Instant::now()) / 4;
    let (mut lb, note) = lower_bound_noted(graph, &input_order, mem, Some(lb_deadline));
    stats.notes.extend(note);
    say(&format!(
        "heuristics: best {} with peak {} B; lower bound {} B",
        method.trim_start_matches("heuristic:"),
        best_peak,
        lb
    ));
    let finish = |order: Order, claimed: u64, lb: u64, proved: bool, method: String, mut stats: SolveStats| {
        let peak = evaluate(graph, &order, mem).peak;
        debug_assert!(topo::check_order(graph, &order).is_ok(), "the driver built an invalid order");
        debug_assert_eq!(peak, claimed, "the driver's claimed peak differs from evaluate");
        stats.seconds = started.elapsed().as_secs_f64();
        let lb = lb.min(peak);
        Solution { optimal: (proved && peak == claimed) || peak <= lb, order, peak, lower_bound: lb, method, stats }
    };
    if best_peak <= lb {
        say("the best heuristic meets the lower bound: optimal");
        return Ok(finish(best_order, best_peak, lb, true, method, stats));
    }

    match opts.method {
        Scheduler::Dp => {
            let groups = dp::singletons(graph);
            let limits = dp::DpLimits { deadline: Some(deadline), max_states: dp_state_cap(groups.len()) };
            let r = dp::solve(graph, &groups, mem, Some(&best_order), lb, &limits);
            stats.dp_states = r.stats.states;
            let proved = match r.outcome {
                dp::DpOutcome::Proved { order, peak, improved } => {
                    if improved {
                        best_order = order;
                        best_peak = peak;
                        method = "dp".to_string();
                    }
                    say(&format!("dp: proved optimal peak {peak} B"));
                    true
                }
                other => {
                    stats.timed_out = matches!(other, dp::DpOutcome::Timeout);
                    say(&format!("dp: gave up ({other:?})"));
                    false
                }
            };
            if proved {
                lb = best_peak;
            }
            Ok(finish(best_order, best_peak, lb, proved, method, stats))
        }
        Scheduler::Ilp => {
            let groups = fusion::fuse_until(graph, mem, deadline);
            stats.nodes_after_fusion = groups.len();
            say(&format!("fusion: {} ops -> {} groups", graph.ops.len(), groups.len()));
            let proved = match ilp::solve_within(graph, &groups, mem, &best_order, deadline) {
                ilp::IlpOutcome::Optimal { order, peak } => {
                    if peak < best_peak {
                        best_order = order;
                        best_peak = peak;
                        method = "ilp".to_string();
                    }
                    say(&format!("ilp: proved optimal peak {peak} B"));
                    true
                }
                ilp::IlpOutcome::Feasible { order, peak } => {
                    if peak < best_peak {
                        best_order = order;
                        best_peak = peak;
                        method = "ilp".to_string();
                    }
                    stats.timed_out = true;
                    say(&format!("ilp: feasible peak {peak} B, not proved"));
                    false
                }
                ilp::IlpOutcome::NoSolution { reason } => {
                    say(&format!("ilp: no solution ({reason})"));
                    // The order is then the best heuristic's: say why.
                    stats.notes.push(format!("the ILP gave no order ({reason}); the order is the best heuristic's"));
                    false
                }
            };
            if proved {
                lb = lb.max(best_peak);
            }
            Ok(finish(best_order, best_peak, lb, proved, method, stats))
        }
        _ => Ok(auto(graph, opts, deadline, best_order, best_peak, method, lb, stats, &say, finish)),
    }
}

/// LB2 of the whole graph ([`lb2`], `O(n)` memory at any size); `order` is
/// any topological order. Up to 20,000 ops it is always complete; above,
/// it gets at most one second (then it is a weaker bound, at least LB1).
pub fn global_lower_bound(graph: &Graph, order: &[OpId], mem: &MemoryOptions) -> u64 {
    let cap = (graph.ops.len() > LB2_MAX_OPS).then(|| Instant::now() + LB2_BIG_GRAPH_TIME);
    global_lower_bound_until(graph, order, mem, cap)
}

/// [`global_lower_bound`] stopped at `deadline` (then a weaker bound, at
/// least LB1, that still holds for every order).
pub fn global_lower_bound_until(graph: &Graph, order: &[OpId], mem: &MemoryOptions, deadline: Option<Instant>) -> u64 {
    lower_bound_noted(graph, order, mem, deadline).0
}

/// [`global_lower_bound_until`] and, when the deadline cut LB2 short, a
/// note saying so.
fn lower_bound_noted(
    graph: &Graph,
    order: &[OpId],
    mem: &MemoryOptions,
    deadline: Option<Instant>,
) -> (u64, Option<String>) {
    let (bound, complete) = lb2(graph, order, mem, deadline);
    let note = (!complete).then(|| {
        format!(
            "the time limit cut the lower bound LB2 short on {} ops: the bound counts only part of the tensors live across each op (still a valid bound, possibly a larger gap)",
            graph.ops.len()
        )
    });
    (bound.bytes.max(lb1(graph, mem).bytes), note)
}

fn dp_state_cap(groups: usize) -> usize {
    let per_state = groups.div_ceil(64).max(1) * 8 + 64;
    (DP_MEMORY / per_state).min(6_000_000)
}

/// A part being worked on.
struct PartWork {
    order: Order,
    /// Peak of `order` on the part graph (constant excluded).
    peak: u64,
    /// Lower bound on the part graph (constant excluded).
    lb: u64,
    proved: bool,
    /// Nothing more to try on it.
    exhausted: bool,
    exact_tried: bool,
    window_done: bool,
    band_width: usize,
    beam_width: usize,
    groups: Option<super::Groups>,
    method: String,
}

impl PartWork {
    /// Takes a better order found by `method`; it is proved once it meets
    /// the part's lower bound.
    fn adopt(&mut self, order: Order, peak: u64, method: &str) {
        self.order = order;
        self.peak = peak;
        self.method = method.to_string();
        if self.peak <= self.lb {
            self.proved = true;
            self.exhausted = true;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn auto<F>(
    graph: &Graph,
    opts: &SolveOptions,
    deadline: Instant,
    best_order: Order,
    best_peak: u64,
    method: String,
    global_lb: u64,
    mut stats: SolveStats,
    say: &dyn Fn(&str),
    finish: F,
) -> Solution
where
    F: Fn(Order, u64, u64, bool, String, SolveStats) -> Solution,
{
    let mem = &opts.memory;
    let d = decompose::decompose(graph, &best_order, mem);
    let popts = d.part_options;
    stats.parts = d.parts.len();
    let restricted = d.restrict(&best_order, graph.ops.len());
    let mut work: Vec<PartWork> = Vec::with_capacity(d.parts.len());
    for (part, inc) in d.parts.iter().zip(restricted) {
        let pg = &part.graph;
        let mut order = inc;
        let mut peak = evaluate(pg, &order, &popts).peak;
        let mut method = method.clone();
        let trivial = pg.ops.len() <= 1;
        // Past the deadline the parts keep the incumbent's order and LB1.
        let late = crate::cancel::passed(deadline);
        if !trivial && !late {
            if let Some(c) = heuristics::portfolio_until(pg, &popts, Some(deadline)).into_iter().next() {
                if c.peak < peak {
                    order = c.order;
                    peak = c.peak;
                    method = format!("heuristic:{}", c.scheduler.name());
                }
            }
        }
        let lb = if trivial {
            peak
        } else if late {
            lb1(pg, &popts).bytes.min(peak)
        } else {
            global_lower_bound_until(pg, &order, &popts, Some(deadline))
        };
        let proved = trivial || peak <= lb;
        work.push(PartWork {
            order,
            peak,
            lb,
            proved,
            exhausted: proved,
            exact_tried: false,
            window_done: false,
            band_width: BAND_STEP,
            beam_width: 16,
            groups: None,
            method: if trivial { "trivial".to_string() } else { method },
        });
    }
    let total = |work: &[PartWork]| d.combine(&work.iter().map(|w| w.peak).collect::<Vec<_>>());
    let lb = global_lb.max(d.combine(&work.iter().map(|w| w.lb).collect::<Vec<_>>()));
    say(&format!(
        "decomposition: {} parts (largest {} ops); peak {} B, lower bound {} B",
        d.parts.len(),
        d.parts.iter().map(|p| p.ops.len()).max().unwrap_or(0),
        total(&work),
        lb
    ));

    let mut proved_overall = false;
    let good_enough = negligible_peak(lb, opts.gap);
    loop {
        let peak = total(&work);
        if peak <= lb || peak <= d.start {
            proved_overall = true;
            break;
        }
        // The bottleneck: a part attaining the peak. If one of them is
        // proved, so is the whole.
        let attaining: Vec<usize> = (0..work.len()).filter(|&j| d.parts[j].constant + work[j].peak == peak).collect();
        if attaining.iter().any(|&j| work[j].proved) {
            proved_overall = true;
            break;
        }
        let Some(&j) = attaining.iter().find(|&&j| !work[j].exhausted) else {
            break;
        };
        // Within the gap, a part still gets its first round (the cheap
        // proofs: chains, the cut bounds for at most a second), no search.
        if peak <= good_enough && work[j].exact_tried {
            say(&format!("the gap to the lower bound ({} B) is within --gap: search stopped", peak - lb));
            stats.gap_stop = true;
            break;
        }
        if crate::cancel::passed(deadline) {
            stats.timed_out = true;
            break;
        }
        improve_part(&d.parts[j], &mut work[j], &popts, deadline, good_enough, &mut stats, say, j);
    }

    let lb = lb.max(d.combine(&work.iter().map(|w| w.lb).collect::<Vec<_>>()));
    let part_orders: Vec<Order> = work.iter().map(|w| w.order.clone()).collect();
    let order = d.concat(&part_orders);
    let claimed = total(&work);
    stats.part_details = d
        .parts
        .iter()
        .zip(&work)
        .map(|(p, w)| PartStats {
            ops: p.ops.len(),
            groups: w.groups.as_ref().map_or(p.ops.len(), Vec::len),
            constant: p.constant,
            peak: p.constant + w.peak,
            lower_bound: p.constant + w.lb,
            proved: w.proved,
            method: w.method.clone(),
        })
        .collect();
    stats.nodes_after_fusion = stats.part_details.iter().map(|p| p.groups).sum();
    // Never worse than the portfolio, and always checked.
    let valid = topo::check_order(graph, &order).is_ok() && evaluate(graph, &order, mem).peak == claimed;
    if !valid || claimed > best_peak {
        debug_assert!(valid, "decomposition produced an invalid order or a wrong peak");
        return finish(best_order, best_peak, lb, false, method, stats);
    }
    let mut methods: Vec<&str> = stats
        .part_details
        .iter()
        .filter(|p| p.peak == claimed || claimed < best_peak)
        .map(|p| p.method.as_str())
        .filter(|m| (!m.starts_with("heuristic:") || m.contains("proved by")) && *m != "trivial")
        .collect();
    methods.sort_unstable();
    methods.dedup();
    let method = if claimed < best_peak || !methods.is_empty() {
        format!("auto ({})", if methods.is_empty() { "decomposition".to_string() } else { methods.join(", ") })
    } else {
        method
    };
    let final_lb = if proved_overall { claimed } else { lb };
    finish(order, claimed, final_lb, proved_overall, method, stats)
}

/// One round of work on a bottleneck part: the exact methods first, then
/// beam searches of growing width. Returns early once the part's peak
/// (constant included) is at most `good_enough` (see [`SolveOptions::gap`]).
#[allow(clippy::too_many_arguments)]
fn improve_part(
    part: &decompose::Part,
    w: &mut PartWork,
    popts: &MemoryOptions,
    deadline: Instant,
    good_enough: u64,
    stats: &mut SolveStats,
    say: &dyn Fn(&str),
    index: usize,
) {
    let pg = &part.graph;
    let now = Instant::now();
    if !w.exact_tried {
        w.exact_tried = true;
        // Parallel chains: exact in polynomial time (or bounds).
        if let Some(c) = chains::solve(pg, popts) {
            w.lb = w.lb.max(c.lower_bound);
            if c.peak < w.peak {
                w.order = c.order;
                w.peak = c.peak;
                w.method = "chains".to_string();
            }
            if w.peak <= w.lb {
                w.proved = true;
                w.exhausted = true;
                if w.method != "chains" {
                    w.method = format!("{} (proved by the chains bound)", w.method);
                }
                say(&format!("part {index}: parallel chains, proved peak {} B", part.constant + w.peak));
                return;
            }
        }
        let groups = fusion::fuse_until(pg, popts, deadline);
        say(&format!("part {index}: {} ops -> {} groups after fusion", pg.ops.len(), groups.len()));
        // Band searches of growing width: linear in the part's size, they
        // give the DP a tight budget and improve parts far too big for it.
        let band_deadline = now + deadline.saturating_duration_since(now).mul_f64(0.2);
        let done = |w: &PartWork| part.constant + w.peak <= good_enough;
        while w.band_width <= FIRST_BAND_WIDTH && !crate::cancel::passed(band_deadline) && !done(w) {
            band_round(pg, &groups, popts, w, band_deadline, part.constant, say, index);
        }
        if w.peak <= w.lb {
            w.proved = true;
            w.exhausted = true;
            w.groups = Some(groups);
            return;
        }
        // The cut bound (LB3), then the region bound (LB4), where LB2 is
        // short of the new peak. Within the gap, they get at most a second:
        // a proof is still worth that much, the search no longer.
        let mut bound_time = deadline.saturating_duration_since(Instant::now()).mul_f64(0.25);
        if done(w) {
            bound_time = bound_time.min(Duration::from_secs(1));
        }
        let bound_deadline = Instant::now() + bound_time;
        if bound_time >= Duration::from_secs(1) {
            say(&format!("part {index}: cut bounds (LB3, LB4), at most {:.0} s", bound_time.as_secs_f64()));
        }
        if let Some(b) = cut_lower_bounds(pg, &w.order, popts, w.lb, w.peak, bound_deadline) {
            if b.lb3 > w.lb {
                say(&format!("part {index}: cut bound (LB3) raises the lower bound to {} B", part.constant + b.lb3));
            }
            if b.lb4 > b.lb3.max(w.lb) {
                say(&format!("part {index}: region bound (LB4) raises the lower bound to {} B", part.constant + b.lb4));
            }
            w.lb = w.lb.max(b.lb3).max(b.lb4);
        }
        if w.peak <= w.lb {
            w.proved = true;
            w.exhausted = true;
            if !w.method.contains("proved") {
                w.method = format!("{} (proved by the cut bounds)", w.method);
            }
            w.groups = Some(groups);
            return;
        }
        if done(w) {
            w.groups = Some(groups);
            return;
        }
        if groups.len() <= DP_MAX_GROUPS {
            // Leave time for the anytime methods on the rest.
            let left = deadline.saturating_duration_since(now);
            // Small parts are usually solved outright; on big ones the DP
            // rarely finishes, so it gets less of the time.
            let share = match groups.len() {
                0..=300 => 0.6,
                301..=3000 => 0.3,
                _ => 0.1,
            };
            let dp_deadline = now + left.mul_f64(share);
            let limits = dp::DpLimits { deadline: Some(dp_deadline), max_states: dp_state_cap(groups.len()) };
            let r = dp::solve(pg, &groups, popts, Some(&w.order), w.lb, &limits);
            stats.dp_states += r.stats.states;
            match r.outcome {
                dp::DpOutcome::Proved { order, peak, improved } => {
                    if improved {
                        w.order = order;
                        w.peak = peak;
                        w.method = "dp".to_string();
                    } else {
                        w.method = format!("{} (proved by dp)", w.method);
                    }
                    w.lb = w.lb.max(peak);
                    w.proved = true;
                    w.exhausted = true;
                    say(&format!(
                        "part {index}: dp proved peak {} B ({} states)",
                        part.constant + w.peak,
                        r.stats.states
                    ));
                    w.groups = Some(groups);
                    return;
                }
                other => say(&format!("part {index}: dp gave up ({other:?}, {} states)", r.stats.states)),
            }
        }
        if groups.len() <= ILP_MAX_GROUPS && !crate::cancel::passed(deadline) && !done(w) {
            let left = deadline.saturating_duration_since(Instant::now());
            let ilp_deadline = Instant::now() + left.mul_f64(0.5);
            match ilp::solve_within(pg, &groups, popts, &w.order, ilp_deadline) {
                ilp::IlpOutcome::Optimal { order, peak } => {
                    if peak < w.peak {
                        w.order = order;
                        w.peak = peak;
                        w.method = "ilp".to_string();
                    }
                    w.lb = w.lb.max(w.peak.min(peak));
                    if peak <= w.peak {
                        w.proved = true;
                        w.exhausted = true;
                        w.groups = Some(groups);
                        say(&format!("part {index}: ilp proved peak {} B", part.constant + w.peak));
                        return;
                    }
                }
                ilp::IlpOutcome::Feasible { order, peak } => {
                    if peak < w.peak {
                        w.order = order;
                        w.peak = peak;
                        w.method = "ilp".to_string();
                    }
                }
                ilp::IlpOutcome::NoSolution { reason } => say(&format!("part {index}: ilp: {reason}")),
            }
        }
        w.groups = Some(groups);
        return;
    }
    // Anytime: exact searches on windows around the peak and band searches
    // in turn while either gains (each moves ops the other cannot), then
    // wider bands, then beam searches of growing width.
    let groups = w.groups.clone().unwrap_or_else(|| dp::singletons(pg));
    if w.band_width <= FIRST_BAND_WIDTH {
        // The windows changed the order: search its band again.
        band_round(pg, &groups, popts, w, deadline, part.constant, say, index);
        w.band_width = w.band_width.max(FIRST_BAND_WIDTH + BAND_STEP);
        return;
    }
    if !w.window_done {
        w.window_done = true;
        if pg.ops.len() > WINDOW_OPS {
            say(&format!(
                "part {index}: window search, at most {:.0} s",
                deadline.saturating_duration_since(Instant::now()).as_secs_f64()
            ));
            let limits = window::WindowLimits {
                ops: WINDOW_OPS,
                max_states: dp_state_cap(WINDOW_OPS),
                per_window: Duration::from_secs(2),
                deadline,
            };
            let (order, peak, stats) = window::improve(pg, popts, &w.order, &limits);
            // Never a higher peak; fewer steps at the peak is progress too.
            if stats.improved > 0 && peak <= w.peak && topo::check_order(pg, &order).is_ok() {
                if peak < w.peak {
                    say(&format!(
                        "part {index}: windows of {WINDOW_OPS} ops improved the peak to {} B ({} of {} windows)",
                        part.constant + peak,
                        stats.improved,
                        stats.windows
                    ));
                    w.adopt(order, peak, "window");
                } else {
                    w.order = order;
                }
                w.band_width = FIRST_BAND_WIDTH;
            }
            return;
        }
    }
    if w.band_width <= band::MAX_WIDTH {
        band_round(pg, &groups, popts, w, deadline, part.constant, say, index);
        return;
    }
    if w.beam_width > 1 << 14 {
        w.exhausted = true;
        return;
    }
    let width = w.beam_width;
    w.beam_width *= 4;
    if let Some((order, peak)) = dp::beam(pg, &groups, popts, width, Some(deadline)) {
        if peak < w.peak && topo::check_order(pg, &order).is_ok() {
            say(&format!("part {index}: beam width {width} improved the peak to {} B", part.constant + peak));
            w.adopt(order, peak, "beam");
        }
    }
}

/// One band search ([`band::improve`]) at the part's next width.
#[allow(clippy::too_many_arguments)]
fn band_round(
    pg: &Graph,
    groups: &super::Groups,
    popts: &MemoryOptions,
    w: &mut PartWork,
    deadline: Instant,
    constant: u64,
    say: &dyn Fn(&str),
    index: usize,
) {
    let width = w.band_width;
    w.band_width += BAND_STEP;
    let limits =
        band::BandLimits { width, max_layer: BAND_MAX_LAYER, max_states: BAND_MAX_STATES, deadline: Some(deadline) };
    let (order, peak, stats) = band::improve(pg, groups, popts, &w.order, &limits);
    if peak < w.peak && topo::check_order(pg, &order).is_ok() {
        say(&format!(
            "part {index}: band width {width} improved the peak to {} B ({} passes, {} states)",
            constant + peak,
            stats.passes,
            stats.states
        ));
        w.adopt(order, peak, "band");
        w.window_done = false;
    }
}

/// LB3 and LB4 of a graph.
struct CutBounds {
    lb3: u64,
    lb4: u64,
}

/// LB3 ([`cut_bound`]) and LB4 ([`region_bound`]) of a graph, using the
/// steps of `order` (whose peak is `peak`) to skip ops and regions that
/// cannot raise `floor`; `None` where reachability is too large.
fn cut_lower_bounds(
    graph: &Graph,
    order: &[OpId],
    mem: &MemoryOptions,
    floor: u64,
    peak: u64,
    deadline: Instant,
) -> Option<CutBounds> {
    if graph.ops.len() > LB2_MAX_OPS {
        return None;
    }
    let topo_order = topo::stable_order(graph).ok()?;
    let reach = Reachability::new(graph, &topo_order);
    let profile = evaluate(graph, order, mem);
    let mut steps = vec![0u64; graph.ops.len()];
    for (s, v) in order.iter().enumerate() {
        steps[v.index()] = profile.steps[s];
    }
    // LB3 gets half the time: LB4 needs its per-op values.
    let half = Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2;
    let lb3 = cut_bound(graph, &reach, mem, &steps, floor, Some(half));
    let lb4 = if lb3.bytes < peak {
        region_bound(graph, &reach, mem, order, &steps, &lb3.per_op, lb3.bytes, peak, Some(deadline))
    } else {
        lb3.bytes
    };
    Some(CutBounds { lb3: lb3.bytes, lb4 })
}
