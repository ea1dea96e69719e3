//! Schedulers: functions from a [`Graph`] to a topological order of its ops.
//!
//! Each scheduler is named on the command line by `--scheduler NAME`; see
//! [`Scheduler`]. They see only the [`Graph`], never ONNX.

pub mod decompose;
pub mod dp;
pub mod driver;
pub mod fusion;
pub mod heuristics;
pub mod ilp;

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
}

impl Scheduler {
    /// Every scheduler with its command-line name and a one-line description.
    pub const ALL: &'static [(Scheduler, &'static str, &'static str)] = &[
        (Scheduler::Input, "input", "keep the file order (sorted stably if the file is not topologically sorted)"),
        (Scheduler::Dfs, "dfs", "onnxruntime's default order: reverse depth-first post-order from the graph's sinks"),
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
