//! From a parsed model to a checked schedule with its certificate.

use crate::graph::bounds::{lower_bound, LowerBound, Reachability};
use crate::graph::memory::{evaluate, MemoryOptions, Profile};
use crate::graph::{self, topo, BuildError, Graph, OpId, TensorKind};
use crate::onnx::OnnxFile;
use crate::schedule::{heuristics, Scheduler};
use crate::sizes::{self, SizeError, SizeOptions};
use std::time::{Duration, Instant};

/// What to plan and under which memory model.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Which scheduler picks the order.
    pub scheduler: Scheduler,
    /// Switches of the memory model.
    pub memory: MemoryOptions,
    /// Symbol values and input shapes for size inference.
    pub sizes: SizeOptions,
    /// Time budget for searching schedulers.
    pub time_limit: Duration,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            scheduler: Scheduler::Input,
            memory: MemoryOptions::default(),
            sizes: SizeOptions::default(),
            time_limit: Duration::from_secs(60),
        }
    }
}

/// Why no schedule could be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A tensor's size is unknown.
    #[error(transparent)]
    Sizes(#[from] SizeError),
    /// The names do not form a dependency graph.
    #[error(transparent)]
    Graph(#[from] BuildError),
    /// The graph has a cycle.
    #[error("the graph has a cycle: {0}; a valid ONNX graph is acyclic")]
    Cycle(String),
    /// A scheduler produced a wrong order or peak: a bug in this tool.
    #[error("internal error, please report it: {0}")]
    Internal(String),
}

/// A checked schedule and what is known about it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The dependency graph with tensor sizes.
    pub graph: Graph,
    /// The file order, or its stable topological sort when the file is unsorted.
    pub input_order: Vec<OpId>,
    /// Whether the file's node order was already topological.
    pub file_sorted: bool,
    /// The chosen order.
    pub order: Vec<OpId>,
    /// Memory of the input order.
    pub before: Profile,
    /// Memory of the chosen order.
    pub after: Profile,
    /// A bound no order can beat.
    pub lower_bound: LowerBound,
    /// Whether `after.peak` is proved to be the least possible.
    pub optimal: bool,
    /// The scheduler that produced `order`.
    pub scheduler: Scheduler,
    /// Everything assumed that the user did not say (symbols, options).
    pub assumptions: Vec<String>,
    /// Bytes of weights (initializers and Constant outputs) with known size.
    pub weight_bytes: u64,
    /// The memory model the peaks were computed under.
    pub memory: MemoryOptions,
    /// Wall time of planning.
    pub seconds: f64,
}

/// Infers sizes, builds the graph, runs the scheduler and checks its order.
pub fn plan(file: &OnnxFile, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let start = Instant::now();
    // Structure first: a cycle or a missing producer is reported as such,
    // not as a tensor whose size cannot be inferred.
    let mut graph = graph::build(file.graph(), &|_| 0)?;
    let input_order = topo::stable_order(&graph).map_err(|topo::Cycle(ops)| {
        let names: Vec<String> = ops.iter().map(|&v| graph.describe_op(v)).collect();
        PlanError::Cycle(names.join(" -> "))
    })?;
    let sizes = sizes::infer(&file.model, &opts.sizes)?;
    for tensor in &mut graph.tensors {
        if tensor.kind != TensorKind::Weight {
            tensor.bytes = sizes.tensors.get(&tensor.name).map_or(0, |s| s.bytes);
        }
    }
    let weight_bytes = weight_bytes(file, &sizes);
    let file_sorted = input_order.iter().enumerate().all(|(i, v)| v.index() == i);
    let order = match opts.scheduler {
        Scheduler::Input => input_order.clone(),
        Scheduler::Dfs => heuristics::ort_dfs(&graph),
    };
    topo::check_order(&graph, &order).map_err(|e| {
        PlanError::Internal(format!("scheduler `{}` returned an invalid order: {e}", opts.scheduler.name()))
    })?;
    let before = evaluate(&graph, &input_order, &opts.memory);
    let after = evaluate(&graph, &order, &opts.memory);
    let reach = Reachability::new(&graph, &input_order);
    let lower_bound = lower_bound(&graph, &reach, &opts.memory);
    let optimal = after.peak == lower_bound.bytes;
    let mut assumptions = sizes.assumptions.clone();
    assumptions.extend(opts.memory.describe());
    if !file_sorted {
        assumptions.push("the file's nodes were not topologically sorted: the input order is their stable sort".into());
    }
    Ok(Plan {
        graph,
        input_order,
        file_sorted,
        order,
        before,
        after,
        lower_bound,
        optimal,
        scheduler: opts.scheduler,
        assumptions,
        weight_bytes,
        memory: opts.memory,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn weight_bytes(file: &OnnxFile, sizes: &sizes::Sizes) -> u64 {
    let graph = file.graph();
    let inits = graph.initializer.iter().map(|t| t.name());
    let constants = graph
        .node
        .iter()
        .filter(|n| graph::build::is_constant(n))
        .flat_map(|n| n.output.iter().map(String::as_str));
    inits.chain(constants).filter_map(|name| sizes.tensors.get(name)).map(|s| s.bytes).sum()
}
