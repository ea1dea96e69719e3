//! One file for every runtime: the default target (`--target all-runtimes`).
//!
//! The same node order is run differently by different runtimes:
//!
//! * **file order**: code generators (onnx2c, onnx-mlir, TensorRT's parser)
//!   run the nodes as written;
//! * **onnxruntime PRIORITY_BASED** (`SessionOptions.execution_order`) runs
//!   Kahn's algorithm over the graph with a priority queue
//!   (`GraphViewer`'s `PriorityNodeCompare`, read in onnxruntime's
//!   `graph_viewer.cc`): of the ready nodes, a `Shape` or `Size` node first
//!   ([`HIGH_PRIORITY_OPS`]), then the lowest node index. Node indices are
//!   file positions, except that `Constant` nodes become initializers and
//!   ops expanded into their function body ([`ort::INLINED_OPS`]) get
//!   indices after every file node (see [`ort`]). [`priority_order`] is this
//!   rule. On a sorted file without Shape/Size/inlined ops it is the file
//!   order; otherwise a Shape node runs right after its producer and an
//!   inlined op only when no other node is ready;
//! * **onnxruntime's default order**: the reverse depth-first search of
//!   [`ort::predict_for_file`], in which file order only breaks ties.
//!
//! [`priority_order`] of any order is a fixed point: written as the file,
//! onnxruntime PRIORITY_BASED runs it exactly as written (at each step the
//! node it ran is the ready node of the top class with the least position in
//! the written file). So every file this module writes is in that form, and
//! for it the file-order figure and the PRIORITY_BASED figure are one.
//!
//! # The default: [`balance`]
//!
//! Minimise the file-order peak subject to onnxruntime's default order of
//! the written file peaking no higher than that of the input file; among
//! files with the same file-order peak, prefer the lowest default-order
//! peak. The input file is always feasible. Candidates:
//!
//! 1. the best order of [`driver::solve`] (the unconstrained file-order
//!    search), put into PRIORITY_BASED form;
//! 2. that file after [`ort_repair::lower_default_peak`]: a hill climb that
//!    swaps the file order of sibling blocks (what onnxruntime's depth-first
//!    search looks at) as long as the file-order peak stays at candidate 1's,
//!    lowering the default-order peak. On the corpus this alone keeps the
//!    file-order optimum on wide_fanout (default order 37,130,240 B, input
//!    37,330,944 B) and randwire_ws_regular_c154_s1;
//! 3. only if neither is feasible: for the best order onnxruntime's default
//!    mode can be made to run ([`ort::search`]; skipped when onnxruntime's
//!    order of the input already meets the lower bound), and, if still
//!    needed, for the order it runs on the input file: the least file-order
//!    peak over all files that make onnxruntime run exactly that order,
//!    found by [`driver::solve`] on the graph with the steering constraints
//!    ([`ort::steering_constraints`]) added as zero-byte tensors (a tensor of
//!    0 bytes costs nothing in the memory model and orders its producer
//!    before its consumer);
//! 4. the input order itself (feasible by definition).
//!
//! Where none of candidates 1-2 is feasible, the file-order optimum may be
//! out of reach for every file, not only for the files tried: on
//! regnety_016 the optimum (5,419,008 B) needs the first block's shortcut
//! convolution to run before the 2,408,448 B `relu_1` (else the stem's
//! 1,605,632 B output is live there: 6,422,528 B), while onnxruntime's
//! default order explores the block's two branches from the `Add`, highest
//! file position first, and so runs that shortcut before `relu_1` only if it
//! stands after the branch's last convolution, which stands after `relu_1`;
//! onnxruntime's order of the input already peaks at 5,419,008 B, so every
//! file at the optimum raises it (docs/ORT_MEMORY.md).
//!
//! The result says what the constraint cost ([`Balanced::notes`]): the
//! file-order figure of the chosen file is compared with that of candidate 1.

use super::driver::{self, SolveError, SolveOptions, SolveStats};
use super::{ort, ort_repair, Order};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{topo, Graph, OpId, Tensor, TensorId, TensorKind};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Op types onnxruntime's PRIORITY_BASED order runs as soon as they are
/// ready, before any other ready node (`PriorityNodeCompare::IsHighPri`).
pub const HIGH_PRIORITY_OPS: &[&str] = &["Shape", "Size"];

/// Whether onnxruntime's PRIORITY_BASED order runs `v` as soon as it is ready.
pub fn is_high_priority(graph: &Graph, v: OpId) -> bool {
    HIGH_PRIORITY_OPS.contains(&graph.op(v).op_type.as_str())
}

/// onnxruntime's PRIORITY_BASED execution order (graph optimizations off)
/// for a file whose nodes stand in `file_order` (`file_order[i]` at
/// position `i`): folded `Constant` ops first (onnxruntime does not run
/// them; they hold weights only), then Kahn's algorithm taking the ready op
/// of least key `(not Shape/Size, node index)`, the node index being the
/// file position, plus the number of ops for an op onnxruntime expands into
/// its function body (whose body is taken to run as one unit). `None` if
/// `file_order` is not a permutation of the ops or the graph has a cycle.
///
/// For any topological order `d`, `priority_order(graph, d)` written as the
/// file makes PRIORITY_BASED run exactly the written order (module docs).
pub fn priority_order(graph: &Graph, file_order: &[OpId]) -> Option<Order> {
    let n = graph.ops.len();
    if file_order.len() != n {
        return None;
    }
    let mut position = vec![usize::MAX; n];
    for (i, &v) in file_order.iter().enumerate() {
        let slot = position.get_mut(v.index())?;
        if *slot != usize::MAX {
            return None;
        }
        *slot = i;
    }
    let folded: Vec<bool> = graph.op_ids().map(|v| ort::is_folded(graph, v)).collect();
    let key = |v: OpId| {
        let class = u8::from(!is_high_priority(graph, v));
        let shift = if ort::is_inlined(graph, v) { n } else { 0 };
        (class, position[v.index()] + shift, v.0)
    };
    let mut order: Order = file_order.iter().copied().filter(|v| folded[v.index()]).collect();
    let mut waiting: Vec<usize> =
        graph.op_ids().map(|v| graph.predecessors(v).iter().filter(|p| !folded[p.index()]).count()).collect();
    let mut ready: BinaryHeap<Reverse<(u8, usize, u32)>> =
        graph.op_ids().filter(|v| !folded[v.index()] && waiting[v.index()] == 0).map(|v| Reverse(key(v))).collect();
    while let Some(Reverse((_, _, v))) = ready.pop() {
        let v = OpId(v);
        order.push(v);
        for c in graph.successors(v) {
            let w = &mut waiting[c.index()];
            *w -= 1;
            if *w == 0 {
                ready.push(Reverse(key(c)));
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// The peak each runtime model pays for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimePeaks {
    /// Run in file order (code generators); for a file that is not
    /// topologically sorted, its stable topological sort.
    pub file_order: u64,
    /// onnxruntime's default execution order, graph optimizations off
    /// ([`ort::predict_for_file`]).
    pub ort_default: u64,
    /// onnxruntime's PRIORITY_BASED execution order, graph optimizations off
    /// ([`priority_order`]).
    pub ort_priority: u64,
}

impl RuntimePeaks {
    /// The larger of the two figures of runtimes that follow the file order
    /// (code generators and onnxruntime PRIORITY_BASED); equal to both for
    /// the files this module writes.
    pub fn file_like(&self) -> u64 {
        self.file_order.max(self.ort_priority)
    }
}

/// Every runtime's peak for `file` (a permutation of the ops, in the order
/// they stand in the file) under `opts`; `None` if `file` is not a
/// permutation or the graph has a cycle.
pub fn runtime_peaks(graph: &Graph, file: &[OpId], opts: &MemoryOptions) -> Option<RuntimePeaks> {
    let run = if topo::check_order(graph, file).is_ok() { file.to_vec() } else { topo::stable_order(graph).ok()? };
    let default = ort::predict_for_file(graph, file)?;
    if default.len() != graph.ops.len() {
        return None;
    }
    let priority = priority_order(graph, file)?;
    Some(RuntimePeaks {
        file_order: evaluate(graph, &run, opts).peak,
        ort_default: evaluate(graph, &default, opts).peak,
        ort_priority: evaluate(graph, &priority, opts).peak,
    })
}

/// What [`balance`] chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Balanced {
    /// The node order to write (a topological order of all ops).
    pub file: Order,
    /// Every runtime's peak for `file`.
    pub peaks: RuntimePeaks,
    /// Every runtime's peak for the input file (the ops in id order).
    pub input: RuntimePeaks,
    /// The file-order figure ([`RuntimePeaks::file_like`]) of the best
    /// order the unconstrained search found, in PRIORITY_BASED form:
    /// what the file-order figure would be without the onnxruntime constraint.
    pub unconstrained: u64,
    /// The peak of the best order of the unconstrained search as it came
    /// (before Shape/Size nodes and inlined ops were moved to where
    /// PRIORITY_BASED runs them).
    pub search_peak: u64,
    /// No order of the graph peaks below this (the unconstrained search's
    /// bound).
    pub lower_bound: u64,
    /// Whether the file-order figure of `file` is proved the least of all orders.
    pub optimal: bool,
    /// What produced `file`.
    pub method: String,
    /// Counters of the unconstrained search.
    pub stats: SolveStats,
    /// What was given up and why, one sentence each (empty when nothing was).
    pub notes: Vec<String>,
}

impl Balanced {
    /// Bytes of file-order peak ([`RuntimePeaks::file_like`]) above the
    /// best order the unconstrained search found (`search_peak`): what
    /// writing Shape/Size nodes where PRIORITY_BASED runs them and keeping
    /// onnxruntime's default order at or below the input's cost together.
    /// 0 when nothing was given up; [`Balanced::notes`] then is empty.
    pub fn given_up(&self) -> u64 {
        self.peaks.file_like().saturating_sub(self.search_peak)
    }
}

/// A candidate file with its figures.
struct Candidate {
    file: Order,
    peaks: RuntimePeaks,
    method: String,
}

/// The graph with each `(u, c)` of `constraints` added as a zero-byte tensor
/// written by `u` and read by `c`; ops keep their ids.
pub fn with_order_constraints(graph: &Graph, constraints: &[(OpId, OpId)]) -> Graph {
    let mut g = graph.clone();
    for (i, &(u, c)) in constraints.iter().enumerate() {
        if u == c {
            continue;
        }
        let t = TensorId(g.tensors.len() as u32);
        g.tensors.push(Tensor {
            name: format!("<order constraint {i}>"),
            bytes: 0,
            kind: TensorKind::Activation,
            producer: Some(u),
            consumers: vec![c],
            graph_output: false,
            body: false,
        });
        g.ops[u.index()].outputs.push(t);
        g.ops[c.index()].inputs.push(t);
    }
    g
}

/// The default target: the least file-order peak whose file onnxruntime's
/// default order runs at no higher a peak than the input file, ties broken
/// toward the lowest default-order peak (module docs). Searches within
/// `opts.time_limit` in all (70% for the unconstrained search). The chosen
/// file's onnxruntime default-order peak is never above the input's when
/// the input file is topologically sorted (the input is a candidate).
///
/// Errors only if the graph has a cycle.
pub fn balance(graph: &Graph, opts: &SolveOptions) -> Result<Balanced, SolveError> {
    let start = Instant::now();
    let deadline = start + opts.time_limit;
    let mem = &opts.memory;
    let say = |msg: &str| {
        if let Some(f) = opts.progress {
            f(msg);
        }
    };
    let input_order = topo::stable_order(graph).map_err(|topo::Cycle(c)| SolveError::Cycle(c))?;
    let identity: Order = graph.op_ids().collect();
    let cycle = || SolveError::Cycle(Vec::new());
    let input = runtime_peaks(graph, &identity, mem).ok_or_else(cycle)?;
    let cap = input.ort_default;

    let solution = driver::solve(graph, &SolveOptions { time_limit: opts.time_limit.mul_f64(0.7), ..*opts })?;
    let mut candidates: Vec<Candidate> = Vec::new();
    let consider = |file: Order, method: String, candidates: &mut Vec<Candidate>| {
        if let Some(peaks) = runtime_peaks(graph, &file, mem) {
            candidates.push(Candidate { file, peaks, method });
        }
    };
    let f0 = priority_order(graph, &solution.order).ok_or_else(cycle)?;
    consider(f0, solution.method.clone(), &mut candidates);
    let unconstrained = candidates.first().map_or(solution.peak, |c| c.peaks.file_like());
    // Feasible at the unconstrained figure, with the least default-order peak.
    let best_at_target = |c: &[Candidate]| {
        c.iter()
            .filter(|c| c.peaks.ort_default <= cap && c.peaks.file_like() <= unconstrained)
            .map(|c| c.peaks.ort_default)
            .min()
    };
    let left = || deadline.saturating_duration_since(Instant::now());

    // Of the files with the unconstrained figure, one whose onnxruntime
    // default order peaks lower (module docs of `ort_repair`).
    if let Some(first) = candidates.first().filter(|c| c.peaks.ort_default > solution.lower_bound) {
        let budget = (left() / 4).min(Duration::from_millis(1_000 + 2 * graph.ops.len() as u64));
        let start = first.file.clone();
        if let Some(r) = ort_repair::lower_default_peak(
            graph,
            &start,
            unconstrained,
            solution.lower_bound,
            mem,
            Instant::now() + budget,
        ) {
            say(&format!(
                "onnxruntime default order of the best file: {} B -> {} B ({} moves, {} files tried)",
                candidates[0].peaks.ort_default, r.default_peak, r.moves, r.tried
            ));
            if r.moves > 0 {
                consider(r.file, format!("{} with onnxruntime's order repaired", solution.method), &mut candidates);
            }
        }
    }

    // When no file at the unconstrained figure is feasible: the best order
    // onnxruntime's default mode can be made to run, then the least
    // file-order peak among the files that steer it there; then the same for
    // the order it runs on the input; then the input itself. When one is
    // feasible, the climb above has already lowered its default-order peak
    // (the tie-break), and this search (2-6 s on some corpus models) did not
    // find a lower one on any corpus model where it was tried.
    if best_at_target(&candidates).is_none() {
        // No order peaks below the lower bound: if onnxruntime's order of
        // the input meets it, that order is the best reachable one.
        let search_budget = if cap <= solution.lower_bound {
            Duration::ZERO
        } else {
            (left() / 3).min(Duration::from_millis(2_000 + 5 * graph.ops.len() as u64))
        };
        let reachable = ort::search(graph, mem, Instant::now() + search_budget);
        say(&format!("onnxruntime default order: input {} B, best reachable {} B", cap, reachable.peak));
        let steer = |target: &[OpId], budget: Duration, what: &str, candidates: &mut Vec<Candidate>| {
            let Some(constraints) = ort::steering_constraints(graph, target) else { return };
            let constrained = with_order_constraints(graph, &constraints);
            let sub = SolveOptions { time_limit: budget, progress: None, ..*opts };
            let Ok(found) = driver::solve(&constrained, &sub) else { return };
            let method = format!("{} steered to {what}", found.method);
            if let Some(f) = priority_order(graph, &found.order) {
                consider(f, method.clone(), candidates);
            }
            consider(found.order, method, candidates);
        };
        steer(&reachable.order, left() / 2, "onnxruntime's best reachable order", &mut candidates);
        if best_at_target(&candidates).is_none() {
            if let Some(t_in) = ort::predict_for_file(graph, &identity) {
                steer(&t_in, left(), "onnxruntime's order of the input", &mut candidates);
            }
            if let Some(f) = priority_order(graph, &input_order) {
                consider(f, "input order".into(), &mut candidates);
            }
            consider(input_order.clone(), "input order".into(), &mut candidates);
        }
    }
    // Feasible first, then the least file-order figure, then the least
    // default-order peak; the earliest candidate among equals.
    let chosen = candidates
        .into_iter()
        .enumerate()
        .min_by_key(|(i, c)| (c.peaks.ort_default > cap, c.peaks.file_like(), c.peaks.ort_default, *i))
        .map(|(_, c)| c)
        .ok_or_else(cycle)?;
    let figure = chosen.peaks.file_like();
    let mut notes = Vec::new();
    if chosen.peaks.ort_default > cap {
        notes.push(format!(
            "no file found keeps onnxruntime's default order at or below the input's {cap} B (it peaks at {} B): \
             the input file is not topologically sorted",
            chosen.peaks.ort_default
        ));
    }
    if figure > solution.peak {
        let mut why = Vec::new();
        let shape_cost = unconstrained.min(figure).saturating_sub(solution.peak);
        if shape_cost > 0 {
            why.push(format!(
                "{shape_cost} B because onnxruntime PRIORITY_BASED runs Shape/Size nodes as soon as they are ready \
                 and expanded function ops only when nothing else is (the best order found, written where it runs \
                 them, peaks at {unconstrained} B)"
            ));
        }
        if figure > unconstrained {
            why.push(format!(
                "{} B because every file found with a lower file-order peak makes onnxruntime's default order peak \
                 above the input's {cap} B",
                figure - unconstrained
            ));
        }
        notes.push(format!(
            "the file-order peak is {figure} B, {} B above the best order found without regard for onnxruntime \
             ({} B): {}",
            figure - solution.peak,
            solution.peak,
            why.join("; ")
        ));
    }
    let optimal = figure <= solution.lower_bound || (figure == solution.peak && solution.optimal);
    Ok(Balanced {
        file: chosen.file,
        peaks: chosen.peaks,
        input,
        unconstrained,
        search_peak: solution.peak,
        lower_bound: solution.lower_bound,
        optimal,
        method: chosen.method,
        stats: solution.stats,
        notes,
    })
}
