//! Schedulers: functions from a [`Graph`](crate::graph::Graph) to a topological order of its ops.
//!
//! Each scheduler is named on the command line by `--scheduler NAME`; see
//! [`Scheduler`]. They see only the [`Graph`](crate::graph::Graph), never ONNX.

pub mod band;
pub mod chains;
pub mod decompose;
pub mod dp;
pub mod driver;
pub mod fusion;
pub mod heuristics;
pub mod ilp;
pub mod ort;
pub mod ort_repair;
pub mod runtimes;
pub mod window;

use crate::graph::OpId;

/// A schedule: every op once, in a topological order.
pub type Order = Vec<OpId>;

/// Ops that some optimal schedule runs back to back, in this order: the unit
/// of search after fusion. A partition of all ops; singletons when nothing
/// is fused.
pub type Groups = Vec<Vec<OpId>>;

/// The schedulers the command line offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheduler {
    /// Keep the file order (sorted stably if the file is not topologically sorted).
    Input,
    /// The order onnxruntime's default mode runs: a reverse depth-first
    /// post-order from the ops nobody consumes, highest file index first.
    Dfs,
    /// Kahn's algorithm with a FIFO queue (breadth-first).
    Bfs,
    /// XLA-style list scheduler: the ready op that frees the most bytes
    /// minus the bytes it allocates.
    Greedy,
    /// PyTorch Inductor's least-peak-memory-first: the ready op with the
    /// lowest step memory.
    Lpmf,
    /// Depth-first post-order that runs the costliest branch (peak minus
    /// residual) first, Liu's rule for trees.
    Liu,
    /// Exact dynamic programming over executed sets on the whole graph,
    /// with the best heuristic as the budget.
    Dp,
    /// The seed method alone: fusion + ILP.
    Ilp,
    /// Heuristic portfolio, decomposition, fusion and exact search within
    /// the time limit; says whether the result is proved optimal.
    Auto,
}

impl Scheduler {
    /// Every scheduler with its command-line name and a one-line description.
    pub const ALL: &'static [(Scheduler, &'static str, &'static str)] = &[
        (Scheduler::Input, "input", "keep the file order (sorted stably if the file is not topologically sorted)"),
        (Scheduler::Dfs, "dfs", "onnxruntime's default order: reverse depth-first post-order from the graph's sinks"),
        (Scheduler::Bfs, "bfs", "Kahn's algorithm with a FIFO queue (breadth-first)"),
        (Scheduler::Greedy, "greedy", "XLA-style list scheduler: run the ready node that frees the most bytes minus what it allocates"),
        (Scheduler::Lpmf, "lpmf", "PyTorch Inductor's least-peak-memory-first: run the ready node with the lowest step memory"),
        (Scheduler::Liu, "liu", "depth-first post-order running the costliest branch (peak minus residual) first (Liu's rule)"),
        (Scheduler::Dp, "dp", "exact dynamic programming over executed sets on the whole graph (exponential; small graphs)"),
        (Scheduler::Ilp, "ilp", "the seed method alone: fusion + ILP"),
        (Scheduler::Auto, "auto", "heuristics, decomposition, fusion, exact and neighbourhood search within the time limit; proves optimality by lower bounds or exact search where it can, else reports the gap"),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(s, _, _)| *s == self).map_or("?", |(_, n, _)| n)
    }

    /// The scheduler with this command-line name.
    pub fn from_name(name: &str) -> Option<Scheduler> {
        Self::ALL.iter().find(|(_, n, _)| *n == name).map(|(s, _, _)| *s)
    }
}
