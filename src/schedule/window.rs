//! Window search: the exact DP on a window of the incumbent around its peak.
//!
//! Cut the incumbent into three slices, before, inside and after a window
//! of consecutive steps. Every edge goes from a slice to the same or a
//! later one, so [`decompose::split`] turns the window into a standalone
//! graph whose every order, put back between the same two slices, gives an
//! order of the whole graph with the window's term of the peak formula
//! replaced and the others unchanged. The exact DP ([`dp::solve`]) on the
//! fused window, with its current order as budget, finds the window order
//! of least peak, with no limit on how far an op moves inside the window:
//! the moves a band search ([`super::band`]) cannot make.
//!
//! [`improve`] repeats this on windows around the steps that attain the
//! peak, until no such window improves or the deadline passes.

use super::{decompose, dp, fusion, Order};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{Graph, OpId};
use std::time::{Duration, Instant};

/// What a window search may spend.
#[derive(Debug, Clone, Copy)]
pub struct WindowLimits {
    /// Ops in a window.
    pub ops: usize,
    /// DP states per window.
    pub max_states: usize,
    /// Time per window.
    pub per_window: Duration,
    /// Give up after this instant.
    pub deadline: Instant,
}

/// Counters of a window search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Windows searched.
    pub windows: usize,
    /// Windows whose order was improved.
    pub improved: usize,
    /// DP states stored, summed.
    pub states: usize,
}

/// The best order of the window `[a, b)` of `order` under the budget of its
/// current order, put back in place; `None` if the DP found nothing better
/// (or gave up).
fn search(
    graph: &Graph,
    opts: &MemoryOptions,
    order: &[OpId],
    a: usize,
    b: usize,
    limits: &WindowLimits,
    stats: &mut WindowStats,
) -> Option<Order> {
    let n = order.len();
    let d = decompose::split(graph, order, opts, &[0, a, b, n]);
    let inside = d.parts.get(1)?;
    let current = d.restrict(order, graph.ops.len()).into_iter().nth(1)?;
    let groups = fusion::fuse(&inside.graph, &d.part_options);
    let deadline = (Instant::now() + limits.per_window).min(limits.deadline);
    let dp_limits = dp::DpLimits { deadline: Some(deadline), max_states: limits.max_states };
    let r = dp::solve(&inside.graph, &groups, &d.part_options, Some(&current), 0, &dp_limits);
    stats.windows += 1;
    stats.states += r.stats.states;
    match r.outcome {
        dp::DpOutcome::Proved { order: better, improved: true, .. } => {
            let mut out = order[..a].to_vec();
            out.extend(better.iter().map(|v| inside.ops[v.index()]));
            out.extend_from_slice(&order[b..]);
            Some(out)
        }
        _ => None,
    }
}

/// Improves `incumbent` by exact searches on windows of `limits.ops` steps
/// centred on (then on either side of) the steps that attain its peak.
/// Returns the best order, its peak and the counters.
pub fn improve(
    graph: &Graph,
    opts: &MemoryOptions,
    incumbent: &[OpId],
    limits: &WindowLimits,
) -> (Order, u64, WindowStats) {
    let mut order = incumbent.to_vec();
    let mut profile = evaluate(graph, &order, opts);
    let mut stats = WindowStats::default();
    let n = order.len();
    let size = limits.ops.clamp(1, n.max(1));
    // Windows already searched without success, for this order.
    let mut failed: Vec<(usize, usize)> = Vec::new();
    'outer: while !crate::cancel::passed(limits.deadline) {
        let hot: Vec<usize> = (0..n).filter(|&s| profile.steps[s] == profile.peak).collect();
        for &s in &hot {
            for shift in [size / 2, size / 6, size - size / 6] {
                let a = s.saturating_sub(shift).min(n - size);
                let b = a + size;
                if failed.contains(&(a, b)) {
                    continue;
                }
                if crate::cancel::passed(limits.deadline) {
                    break 'outer;
                }
                match search(graph, opts, &order, a, b, limits, &mut stats) {
                    Some(better) => {
                        let p = evaluate(graph, &better, opts);
                        if p.peak > profile.peak {
                            failed.push((a, b));
                            continue;
                        }
                        stats.improved += 1;
                        order = better;
                        profile = p;
                        failed.clear();
                        continue 'outer;
                    }
                    None => failed.push((a, b)),
                }
            }
        }
        break;
    }
    let peak = profile.peak;
    (order, peak, stats)
}
