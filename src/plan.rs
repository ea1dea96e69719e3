//! From a parsed model to a checked schedule with its certificate.

use crate::bodies;
use crate::graph::memory::{evaluate, MemoryOptions, Profile};
use crate::graph::{self, topo, BuildError, Graph, OpId, TensorKind};
use crate::onnx::OnnxFile;
use crate::schedule::driver::{self, SolveOptions, SolveStats};
use crate::schedule::runtimes::{self, RuntimePeaks};
use crate::schedule::{ort, Scheduler};
use crate::sizes::{self, SizeError, SizeOptions};
use std::time::{Duration, Instant};

/// Which runtime behaviour the written file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// The default: the least file-order peak (code generators, onnxruntime
    /// PRIORITY_BASED) subject to onnxruntime's default order of the written
    /// file peaking no higher than the input's, ties broken toward the lowest
    /// default-order peak ([`runtimes::balance`]).
    #[default]
    AllRuntimes,
    /// Runtimes and code generators that execute nodes in file order
    /// (onnxruntime with PRIORITY_BASED order, onnx2c, onnx-mlir, TensorRT's
    /// parser): the file order is the schedule, with no regard for
    /// onnxruntime's default order.
    FileOrder,
    /// onnxruntime with default settings: it runs a reverse depth-first
    /// order in which file order only breaks ties; the file is ordered so
    /// that this search yields the best schedule it can reach.
    OrtDefault,
}

impl Target {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Target::AllRuntimes => "all-runtimes",
            Target::FileOrder => "file-order",
            Target::OrtDefault => "ort-default",
        }
    }

    /// The target of a command-line name, if it is one.
    pub fn from_name(name: &str) -> Option<Target> {
        [Target::AllRuntimes, Target::FileOrder, Target::OrtDefault].into_iter().find(|t| t.name() == name)
    }
}

/// The longest time limit honoured (a week): a longer one is taken as this,
/// so that no deadline computed from it overflows `Instant`.
pub const MAX_TIME_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// What to plan and under which memory model.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Which scheduler picks the order.
    pub scheduler: Scheduler,
    /// Which runtime the order is for.
    pub target: Target,
    /// Switches of the memory model.
    pub memory: MemoryOptions,
    /// Symbol values and input shapes for size inference.
    pub sizes: SizeOptions,
    /// Time budget for the whole plan (size inference, search, checks); the
    /// search gets what is left after sizing, less a margin for the checks.
    pub time_limit: Duration,
    /// Alignment of offsets and sizes in the memory plan, in bytes (>= 1).
    pub alignment: u64,
    /// Where size inference runs: `None` in this process (tract's crashes
    /// and runaways are then this process's); `Some` in that worker process,
    /// killed after [`sizes::isolate::sizing_budget`] of the time limit and
    /// capped in memory, with a fallback when it fails (see
    /// [`sizes::isolate`]).
    pub size_worker: Option<sizes::isolate::Worker>,
    /// `auto` stops once the gap to the lower bound is at most this
    /// fraction of the peak ([`SolveOptions::gap`]); `0` asks for a proof.
    pub gap: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            scheduler: Scheduler::Auto,
            target: Target::AllRuntimes,
            memory: MemoryOptions::default(),
            sizes: SizeOptions::default(),
            time_limit: Duration::from_secs(60),
            alignment: crate::arena::DEFAULT_ALIGNMENT,
            size_worker: None,
            gap: driver::DEFAULT_GAP,
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
    /// The order the target will execute after the rewrite.
    pub order: Vec<OpId>,
    /// The node order to write to the file (equal to `order` for the
    /// file-order target).
    pub file_order: Vec<OpId>,
    /// The order the target executes for the input file.
    pub before_order: Vec<OpId>,
    /// Memory of `before_order`.
    pub before: Profile,
    /// Memory of `order`.
    pub after: Profile,
    /// Bytes no order can go below (the best bound proved: LB2 and the
    /// search's, see [`driver::solve`]).
    pub lower_bound: u64,
    /// Whether `after.peak` is proved to be the least possible.
    pub optimal: bool,
    /// The scheduler that was asked for.
    pub scheduler: Scheduler,
    /// The target runtime behaviour.
    pub target: Target,
    /// What produced the order, e.g. `dp`, `heuristic:lpmf`, `ilp`.
    pub method: String,
    /// Search counters: heuristic peaks, nodes after fusion, parts.
    pub stats: SolveStats,
    /// Everything assumed that the user did not say (symbols, options).
    pub assumptions: Vec<String>,
    /// Bytes of weights (initializers and Constant outputs) with known size.
    pub weight_bytes: u64,
    /// What `--unknown-dim` decided (`None` without the flag); every figure
    /// rests on it when its tensor list is not empty.
    pub unknown_dim: Option<sizes::UnknownDimUse>,
    /// The memory model the peaks were computed under.
    pub memory: MemoryOptions,
    /// Offsets of every activation tensor in one arena for `order`, with
    /// the arena's size and lower bound.
    pub arena: crate::arena::MemoryPlan,
    /// Whether another order with no higher peak was sought for the arena
    /// to meet its bound, and what came of it ([`crate::arena::order`]).
    pub arena_order: crate::arena::order::OrderSearch,
    /// Wall time of planning.
    pub seconds: f64,
    /// Every runtime's peak for the input file and for the written file.
    pub runtimes: RuntimeFigures,
    /// What the target gave up and why, one sentence each (empty when nothing).
    pub notes: Vec<String>,
    /// The plan of every control-flow body (If branches, Loop and Scan
    /// bodies, at any depth), inner bodies first; their peaks are part of
    /// `before` and `after` (see [`crate::bodies`]).
    pub bodies: Vec<bodies::BodyPlan>,
}

impl Plan {
    /// The bytes to write: `file` with its nodes in [`Plan::file_order`] and
    /// every body whose order changed in its new order; all else unchanged.
    pub fn rewrite(&self, file: &OnnxFile) -> Vec<u8> {
        let order: Vec<usize> = self.file_order.iter().map(|v| v.index()).collect();
        let bodies: Vec<(crate::onnx::BodyPath, Vec<usize>)> = self
            .bodies
            .iter()
            .filter(|b| b.changed)
            .map(|b| (b.path.clone(), b.file_order.iter().map(|v| v.index()).collect()))
            .collect();
        file.with_orders(&order, &bodies)
    }
}

/// Every runtime's peak before and after the rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimeFigures {
    /// For the input file as it is.
    pub before: RuntimePeaks,
    /// For the file written (`Plan::file_order`).
    pub after: RuntimePeaks,
}

/// Infers sizes, builds the graph, runs the scheduler and checks its order.
pub fn plan(file: &OnnxFile, opts: &PlanOptions) -> Result<Plan, PlanError> {
    plan_with_progress(file, opts, None)
}

/// [`plan`], calling `progress` with a line now and then during long searches.
pub fn plan_with_progress(
    file: &OnnxFile,
    opts: &PlanOptions,
    progress: Option<&dyn Fn(&str)>,
) -> Result<Plan, PlanError> {
    let start = Instant::now();
    // Structure first: a cycle or a missing producer is reported as such,
    // not as a tensor whose size cannot be inferred.
    let mut graph = graph::build(file.graph(), &|_| 0)?;
    let input_order = topo::stable_order(&graph).map_err(|topo::Cycle(ops)| {
        let names: Vec<String> = ops.iter().map(|&v| graph.describe_op(v)).collect();
        PlanError::Cycle(names.join(" -> "))
    })?;
    let sizes = match &opts.size_worker {
        None => sizes::infer(&file.model, &opts.sizes)?,
        Some(worker) => {
            let budget = sizes::isolate::sizing_budget(opts.time_limit);
            let deadline = start.checked_add(budget).unwrap_or_else(|| start + Duration::from_secs(1 << 32));
            sizes::isolate::infer_in_worker(worker, &file.model, &opts.sizes, deadline)?
        }
    };
    for tensor in &mut graph.tensors {
        if tensor.kind != TensorKind::Weight {
            tensor.bytes = sizes.tensors.get(&tensor.name).map_or(0, |s| s.bytes);
        }
    }
    // Control-flow bodies first: each is scheduled on its own, and its peak
    // becomes an extra of its node's step in the graph scheduled below.
    let body_deadline = Instant::now() + bodies::budget(search_budget(opts.time_limit, start));
    let rewritable = |path: &[crate::onnx::BodyStep]| file.body(path).is_some();
    let body_opts = bodies::BodyOptions {
        plan: opts,
        deadline: body_deadline,
        left: std::cell::Cell::new(bodies::count(file.graph())),
    };
    let found = bodies::plan_bodies(&file.model, &sizes, &graph, &[], "", &rewritable, &body_opts)?;
    let runtime = bodies::Runtime::of_target(opts.target);
    let base = graph;
    let graph = bodies::with_costs(&base, &found.costs, runtime, true);
    let weight_bytes = weight_bytes(file, &sizes);
    let file_sorted = input_order.iter().enumerate().all(|(i, v)| v.index() == i);
    let solve_opts = SolveOptions {
        memory: opts.memory,
        time_limit: search_budget(opts.time_limit, start)
            .saturating_sub(arena_budget(opts.time_limit, graph.ops.len())),
        method: opts.scheduler,
        progress,
        gap: opts.gap,
    };
    let internal = |what: String| PlanError::Internal(format!("scheduler `{}`: {what}", opts.scheduler.name()));
    let keep_input = opts.scheduler == Scheduler::Input;
    let target = if keep_input && opts.target == Target::AllRuntimes { Target::FileOrder } else { opts.target };
    let search_time =
        search_budget(opts.time_limit, start).saturating_sub(arena_budget(opts.time_limit, graph.ops.len()));
    let Scheduled { before_order, mut order, mut file_order, method, stats, proved, lower_bound, mut notes } =
        schedule_for_target(&graph, &input_order, opts, &solve_opts, search_time)?;
    let before = evaluate(&bodies::with_costs(&base, &found.costs, runtime, false), &before_order, &opts.memory);
    let after = evaluate(&graph, &order, &opts.memory);
    let bodies_proved = found.plans.iter().all(|b| b.optimal);
    let optimal = (proved || after.peak <= lower_bound) && bodies_proved;
    // Half the arena budget places the order; the rest looks for another
    // order with no higher peak whose arena meets its bound (src/arena/order.rs).
    let arena_start = Instant::now();
    let arena_time = arena_budget(opts.time_limit, graph.ops.len());
    let arena = crate::arena::plan_memory(&graph, &order, &opts.memory, opts.alignment, arena_start + arena_time / 2)
        .map_err(|e| PlanError::Internal(e.to_string()))?;
    let keep = match target {
        _ if keep_input => crate::arena::order::Keep::Order,
        Target::OrtDefault => crate::arena::order::Keep::Order,
        Target::FileOrder => crate::arena::order::Keep::Peak,
        Target::AllRuntimes => crate::arena::order::Keep::PeakAndOrtDefault,
    };
    let chosen = crate::arena::order::choose(
        &graph,
        &order,
        arena,
        &opts.memory,
        opts.alignment,
        keep,
        arena_start + arena_time,
    )
    .map_err(|e| PlanError::Internal(e.to_string()))?;
    let (arena, arena_order) = (chosen.plan, chosen.search);
    let after = if chosen.order != order {
        topo::check_order(&graph, &chosen.order).map_err(&internal)?;
        // Targets that may change the order write it as it runs.
        order = chosen.order;
        file_order = order.clone();
        evaluate(&graph, &order, &opts.memory)
    } else {
        after
    };
    notes.extend(crate::arena::order::note(&arena, arena_order, optimal));
    let mut assumptions = sizes.assumptions.clone();
    assumptions.extend(opts.memory.describe());
    assumptions.extend(stats.notes.iter().cloned());
    if !file_sorted {
        assumptions.push("the file's nodes were not topologically sorted: the input order is their stable sort".into());
    }
    if found.unknown_branch {
        assumptions.push(
            "an If node's step counts the larger of its two branches (which one runs is not known before running)"
                .into(),
        );
    }
    assumptions.extend(found.assumptions.iter().cloned());
    assumptions.extend(found.uncounted.iter().cloned());
    let identity: Vec<OpId> = base.op_ids().collect();
    let figures = |file: &[OpId], after: bool| {
        bodies::runtime_peaks(&base, &found.costs, after, file, &opts.memory)
            .ok_or_else(|| internal("the runtimes' orders do not cover the graph".into()))
    };
    let runtimes = RuntimeFigures { before: figures(&identity, false)?, after: figures(&file_order, true)? };
    Ok(Plan {
        graph,
        input_order,
        file_sorted,
        order,
        file_order,
        before_order,
        before,
        after,
        lower_bound,
        optimal,
        scheduler: opts.scheduler,
        target: opts.target,
        method,
        stats,
        assumptions,
        weight_bytes,
        unknown_dim: sizes.unknown_dim.clone(),
        memory: opts.memory,
        arena,
        arena_order,
        seconds: start.elapsed().as_secs_f64(),
        runtimes,
        notes,
        bodies: found.plans,
    })
}

/// What [`schedule_for_target`] chose for one graph (the top level or a body).
pub(crate) struct Scheduled {
    /// The order the target executes for the input file.
    pub before_order: Vec<OpId>,
    /// The order the target executes for the written file.
    pub order: Vec<OpId>,
    /// The node order to write.
    pub file_order: Vec<OpId>,
    /// What produced the order.
    pub method: String,
    /// Search counters.
    pub stats: SolveStats,
    /// Whether the search proved the order's peak the least.
    pub proved: bool,
    /// No order peaks below this.
    pub lower_bound: u64,
    /// What the target gave up and why.
    pub notes: Vec<String>,
}

/// Schedules `graph` for `opts.target` (its orders checked): the one place
/// that maps a target to a search, for the top-level graph and for every
/// control-flow body alike. `search_time` caps onnxruntime's search.
pub(crate) fn schedule_for_target(
    graph: &Graph,
    input_order: &[OpId],
    opts: &PlanOptions,
    solve_opts: &SolveOptions,
    search_time: Duration,
) -> Result<Scheduled, PlanError> {
    let internal = |what: String| PlanError::Internal(format!("scheduler `{}`: {what}", opts.scheduler.name()));
    let mut notes = Vec::new();
    // `--scheduler input` keeps the file as it is (its stable sort when
    // unsorted), whatever the target: nothing is steered or moved.
    let keep_input = opts.scheduler == Scheduler::Input;
    let target = if keep_input && opts.target == Target::AllRuntimes { Target::FileOrder } else { opts.target };
    let (before_order, order, file_order, method, stats, proved, lower_bound) = match target {
        Target::AllRuntimes => {
            let found = runtimes::balance(graph, solve_opts).map_err(|e| internal(e.to_string()))?;
            topo::check_order(graph, &found.file).map_err(&internal)?;
            notes = found.notes;
            let file = found.file;
            (input_order.to_vec(), file.clone(), file, found.method, found.stats, found.optimal, found.lower_bound)
        }
        Target::FileOrder => {
            let solution = driver::solve(graph, solve_opts).map_err(|e| internal(e.to_string()))?;
            topo::check_order(graph, &solution.order).map_err(&internal)?;
            let claimed = evaluate(graph, &solution.order, &opts.memory).peak;
            if claimed != solution.peak {
                return Err(internal(format!("claimed peak {} but the order peaks at {claimed}", solution.peak)));
            }
            // Shape/Size nodes where onnxruntime PRIORITY_BASED runs them,
            // when that costs nothing: then it runs the file as written.
            let order = match runtimes::priority_order(graph, &solution.order) {
                Some(moved) if !keep_input && evaluate(graph, &moved, &opts.memory).peak <= solution.peak => moved,
                _ => solution.order,
            };
            let bound = solution.lower_bound;
            (input_order.to_vec(), order.clone(), order, solution.method, solution.stats, solution.optimal, bound)
        }
        Target::OrtDefault => {
            // What onnxruntime runs for the file as it is (an unsorted file
            // is read in its own order, which a sorted file may not reproduce).
            let before_order = ort::predict_for_file(graph, &(0..graph.ops.len() as u32).map(OpId).collect::<Vec<_>>())
                .unwrap_or_else(|| ort::predict(graph));
            let (order, method) = match opts.scheduler {
                Scheduler::Input => (ort::predict(graph), "ort-default of the input order".to_string()),
                _ => {
                    // Random restarts run until their deadline; past a few
                    // seconds they rarely pay, so unless the user asks for
                    // less, the search gets 5 s plus 10 ms per op.
                    let cap = Duration::from_millis(5_000 + 10 * graph.ops.len() as u64);
                    let budget = search_time.min(cap);
                    let found = ort::search(graph, &opts.memory, Instant::now() + budget);
                    let proof = if found.proved_best { ", proved best reachable" } else { "" };
                    (found.order, format!("ort-reachable ({}{proof})", found.method))
                }
            };
            let file_order = ort::file_order_for_memory(graph, &order, &opts.memory)
                .ok_or_else(|| internal("no file order makes onnxruntime run the chosen schedule".into()))?;
            topo::check_order(graph, &file_order).map_err(&internal)?;
            if ort::predict_for_file(graph, &file_order).as_ref() != Some(&order) {
                return Err(internal("the written file would not make onnxruntime run the chosen schedule".into()));
            }
            let bound = driver::global_lower_bound(graph, input_order, &opts.memory);
            (before_order, order, file_order, method, SolveStats::default(), false, bound)
        }
    };
    Ok(Scheduled { before_order, order, file_order, method, stats, proved, lower_bound, notes })
}

/// What is left of the time limit for the search: the limit covers the
/// whole plan, so the time spent inferring sizes is taken off, and so is a
/// margin (2%, at most a second) for checking the order and writing the file.
fn search_budget(limit: Duration, start: Instant) -> Duration {
    let limit = limit.min(MAX_TIME_LIMIT);
    let margin = (limit / 50).min(Duration::from_secs(1));
    limit.saturating_sub(start.elapsed()).saturating_sub(margin)
}

/// Time for the memory plan beyond the greedy portfolio: a fifth of the
/// limit, at most 2 s plus 0.2 ms per op; the first half places the order's
/// tensors, the second looks for an order whose arena meets its bound when
/// that placement does not ([`crate::arena::order`]).
fn arena_budget(limit: Duration, ops: usize) -> Duration {
    (limit / 5).min(Duration::from_millis(2_000 + ops as u64 / 5))
}

fn weight_bytes(file: &OnnxFile, sizes: &sizes::Sizes) -> u64 {
    let graph = file.graph();
    let inits = graph.initializer.iter().map(|t| t.name());
    let constants =
        graph.node.iter().filter(|n| graph::build::is_constant(n)).flat_map(|n| n.output.iter().map(String::as_str));
    inits.chain(constants).filter_map(|name| sizes.tensors.get(name)).map(|s| s.bytes).sum()
}
