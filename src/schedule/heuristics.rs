//! Fast schedulers that need no search.
//!
//! Every scheduler here returns a topological order of all ops in
//! `O((n + e) log n)` time or better (n ops, e tensor-consumer edges), so the
//! whole portfolio runs in milliseconds even on graphs of 10k ops. Memory is
//! tracked incrementally by `Tracker`, which follows the model of
//! [`crate::graph::memory`] exactly (checked against `evaluate` in the tests).
//!
//! | name | rule |
//! | --- | --- |
//! | `input` | the file order (stable topological sort) |
//! | `dfs` | onnxruntime's default: reverse DFS post-order from the sinks ([`ort_dfs`]) |
//! | `bfs` | Kahn's algorithm with a FIFO queue ([`kahn_bfs`]) |
//! | `greedy` | XLA-style list scheduling: the ready op that frees the most bytes minus what it allocates ([`greedy_free`]) |
//! | `lpmf` | PyTorch Inductor's least-peak-memory-first: the ready op whose step memory is lowest ([`lpmf`]) |
//! | `liu` | DFS post-order that runs the branch with the largest peak minus residual first ([`liu_dfs`]) |

use super::{Order, Scheduler};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{topo, Graph, OpId, TensorKind};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// onnxruntime's default execution order (`GraphViewer` built with
/// `Graph::ReverseDFSFrom` and `NodeCompare`).
///
/// The sinks (ops none of whose outputs another op reads) go on an explicit
/// stack in file order. Popping an op that was not yet visited marks it,
/// pushes a "leave" marker for it, then pushes its distinct producers sorted
/// by ascending file index, so the producer with the highest index is
/// explored first. An op is emitted when its leave marker is popped: a
/// post-order, hence topological. File order only breaks ties, which is what
/// `--target ort-default` later steers.
///
/// Requires an acyclic graph.
pub fn ort_dfs(graph: &Graph) -> Order {
    let n = graph.ops.len();
    let mut stack: Vec<(OpId, bool)> =
        graph.op_ids().filter(|&v| graph.successors(v).is_empty()).map(|v| (v, false)).collect();
    let mut visited = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some((v, leave)) = stack.pop() {
        if leave {
            order.push(v);
            continue;
        }
        if std::mem::replace(&mut visited[v.index()], true) {
            continue;
        }
        stack.push((v, true));
        // predecessors() is sorted ascending: the last pushed (highest index) pops first.
        for p in graph.predecessors(v) {
            stack.push((p, false));
        }
    }
    order
}

/// Static facts about a graph under a memory model, shared by the
/// schedulers and the exact searches: adjacency, allocation and freeing.
#[derive(Debug, Clone)]
pub(crate) struct Prepared<'g> {
    pub graph: &'g Graph,
    /// Distinct producer ops of each op's inputs, ascending.
    pub preds: Vec<Vec<u32>>,
    /// Distinct consumer ops of each op's outputs, ascending.
    pub succs: Vec<Vec<u32>>,
    /// Bytes of all outputs of each op.
    pub alloc: Vec<u64>,
    /// Bytes of outputs nothing reads and that are not graph outputs: freed
    /// right after their op's step.
    pub dead_out: Vec<u64>,
    /// Whether a tensor is freed after its last consumer.
    pub frees: Vec<bool>,
    /// Output bytes an op may write in place (0 if it never can).
    pub inplace_out: Vec<u64>,
    /// Memory before the first op (every graph input).
    pub start: u64,
    /// Live bytes before the first op once unread graph inputs are freed.
    pub live0: u64,
}

impl<'g> Prepared<'g> {
    pub fn new(graph: &'g Graph, opts: &MemoryOptions) -> Self {
        let n = graph.ops.len();
        let preds: Vec<Vec<u32>> =
            graph.op_ids().map(|v| graph.predecessors(v).iter().map(|p| p.0).collect()).collect();
        let succs: Vec<Vec<u32>> = graph.op_ids().map(|v| graph.successors(v).iter().map(|s| s.0).collect()).collect();
        let frees: Vec<bool> = graph
            .tensors
            .iter()
            .map(|t| !(t.graph_output || (opts.inputs_live_whole_run && t.kind == TensorKind::GraphInput)))
            .collect();
        let mut alloc = vec![0u64; n];
        let mut dead_out = vec![0u64; n];
        let mut inplace_out = vec![0u64; n];
        for (i, op) in graph.ops.iter().enumerate() {
            for &t in &op.outputs {
                let tensor = graph.tensor(t);
                alloc[i] += tensor.bytes;
                if tensor.consumers.is_empty() && !tensor.graph_output {
                    dead_out[i] += tensor.bytes;
                }
            }
            if opts.inplace && op.inplace_capable && op.outputs.len() == 1 {
                inplace_out[i] = graph.tensor(op.outputs[0]).bytes;
            }
        }
        let start = graph.input_bytes();
        let mut live0 = start;
        for (i, t) in graph.tensors.iter().enumerate() {
            if t.kind == TensorKind::GraphInput && t.consumers.is_empty() && frees[i] {
                live0 -= t.bytes;
            }
        }
        Prepared { graph, preds, succs, alloc, dead_out, frees, inplace_out, start, live0 }
    }

    pub fn len(&self) -> usize {
        self.preds.len()
    }

    /// What running `v` does when `last(t)` tells whether `v` is the last
    /// op still to read input `t`: (bytes it reuses in place, bytes it frees).
    #[inline]
    pub fn effect(&self, v: usize, last: impl Fn(usize) -> bool) -> (u64, u64) {
        let op = &self.graph.ops[v];
        let out = self.inplace_out[v];
        let mut reuse = 0;
        let mut freed = self.dead_out[v];
        for &t in &op.inputs {
            let ti = t.index();
            if self.frees[ti] && last(ti) {
                let tensor = &self.graph.tensors[ti];
                freed += tensor.bytes;
                if out > 0 && tensor.bytes == out && tensor.kind != TensorKind::Weight {
                    reuse = out;
                }
            }
        }
        (reuse, freed)
    }
}

/// Incremental memory bookkeeping along a schedule being built: the same
/// numbers as [`evaluate`], one op at a time.
#[derive(Debug, Clone)]
pub(crate) struct Tracker<'p, 'g> {
    pub p: &'p Prepared<'g>,
    /// Consumers of each tensor that have not run yet.
    pub remaining: Vec<u32>,
    /// Bytes live between steps.
    pub live: u64,
    /// Largest memory so far (the start included).
    pub peak: u64,
}

impl<'p, 'g> Tracker<'p, 'g> {
    pub fn new(p: &'p Prepared<'g>) -> Self {
        let remaining = p.graph.tensors.iter().map(|t| t.consumers.len() as u32).collect();
        Tracker { p, remaining, live: p.live0, peak: p.start }
    }

    /// (bytes reused in place, bytes freed) if `v` ran now.
    #[inline]
    pub fn effect(&self, v: usize) -> (u64, u64) {
        self.p.effect(v, |t| self.remaining[t] == 1)
    }

    /// Runs `v`; calls `on_last(t)` for every input `t` that now has exactly
    /// one consumer left. Returns the memory at its step.
    pub fn run(&mut self, v: usize, mut on_last: impl FnMut(usize)) -> u64 {
        let (reuse, freed) = self.effect(v);
        let step = self.live + self.p.alloc[v] - reuse;
        self.peak = self.peak.max(step);
        self.live = self.live + self.p.alloc[v] - freed;
        for &t in &self.p.graph.ops[v].inputs {
            let r = &mut self.remaining[t.index()];
            *r -= 1;
            if *r == 1 {
                on_last(t.index());
            }
        }
        step
    }
}

/// Kahn's algorithm with a FIFO queue: the ops level by level, sources in
/// file order (a breadth-first order).
pub fn kahn_bfs(graph: &Graph) -> Order {
    let p = Prepared::new(graph, &MemoryOptions::default());
    let n = p.len();
    let mut waiting: Vec<usize> = p.preds.iter().map(Vec::len).collect();
    let mut queue: VecDeque<u32> = (0..n as u32).filter(|&v| waiting[v as usize] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(v) = queue.pop_front() {
        order.push(OpId(v));
        for &s in &p.succs[v as usize] {
            waiting[s as usize] -= 1;
            if waiting[s as usize] == 0 {
                queue.push_back(s);
            }
        }
    }
    order
}

/// List scheduling with a priority that depends on the current state.
///
/// `key(alloc, reuse, freed)` ranks a ready op (largest runs first); ties go
/// to the op that became ready last (depth-first), then to the lowest file
/// index. A ready op's key changes only when one of its inputs gets down to
/// one remaining consumer (then it may free or overwrite it); those ops are
/// re-pushed with a new version, and stale heap entries are skipped, so the
/// whole run costs `O((n + e) log n)`.
fn list_schedule(p: &Prepared, key: impl Fn(u64, u64, u64) -> (i128, i128)) -> Order {
    let n = p.len();
    let graph = p.graph;
    let mut tracker = Tracker::new(p);
    let mut waiting: Vec<usize> = p.preds.iter().map(Vec::len).collect();
    let mut done = vec![false; n];
    let mut version = vec![0u32; n];
    let mut ready_seq = vec![0u64; n];
    let mut seq = 0u64;
    type Entry = ((i128, i128), u64, Reverse<u32>, u32);
    let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
    let score = |t: &Tracker, v: usize| {
        let (reuse, freed) = t.effect(v);
        key(p.alloc[v], reuse, freed)
    };
    for v in 0..n {
        if waiting[v] == 0 {
            seq += 1;
            ready_seq[v] = seq;
            heap.push((score(&tracker, v), seq, Reverse(v as u32), 0));
        }
    }
    let mut order = Vec::with_capacity(n);
    let mut touched: Vec<usize> = Vec::new();
    while let Some((_, _, Reverse(v), ver)) = heap.pop() {
        let v = v as usize;
        if done[v] || ver != version[v] {
            continue;
        }
        done[v] = true;
        order.push(OpId(v as u32));
        touched.clear();
        tracker.run(v, |t| touched.push(t));
        for &t in &touched {
            // The one consumer left may now free or overwrite t.
            if let Some(c) = graph.tensors[t].consumers.iter().map(|c| c.index()).find(|&c| !done[c]) {
                if waiting[c] == 0 {
                    version[c] += 1;
                    heap.push((score(&tracker, c), ready_seq[c], Reverse(c as u32), version[c]));
                }
            }
        }
        for &s in &p.succs[v] {
            let s = s as usize;
            waiting[s] -= 1;
            if waiting[s] == 0 {
                seq += 1;
                ready_seq[s] = seq;
                heap.push((score(&tracker, s), seq, Reverse(s as u32), version[s]));
            }
        }
    }
    order
}

/// XLA-style greedy list scheduler: among the ready ops, run the one that
/// frees the most bytes minus the bytes it allocates; ties go to the lower
/// step memory, then depth-first, then file order.
pub fn greedy_free(graph: &Graph, opts: &MemoryOptions) -> Order {
    let p = Prepared::new(graph, opts);
    list_schedule(&p, |alloc, reuse, freed| (freed as i128 - alloc as i128, -((alloc - reuse) as i128)))
}

/// PyTorch Inductor's least-peak-memory-first: among the ready ops, run the
/// one whose step memory (live bytes plus its outputs, less in-place reuse)
/// is lowest; ties go to the one that frees the most net bytes, then
/// depth-first, then file order.
pub fn lpmf(graph: &Graph, opts: &MemoryOptions) -> Order {
    let p = Prepared::new(graph, opts);
    list_schedule(&p, |alloc, reuse, freed| (-((alloc - reuse) as i128), freed as i128 - alloc as i128))
}

/// Depth-first post-order from the sinks in which every op's producers are
/// explored costliest-first, the rule that is optimal on in-trees among
/// post-orders (Liu 1986; Sethi–Ullman for expression trees): a branch
/// needs `peak` bytes to compute and leaves `residual` bytes, and running
/// branches by decreasing `peak - residual` minimises the largest of
/// `residuals of earlier branches + peak`.
///
/// On a DAG the branch costs are estimates (a shared producer is counted in
/// every consumer's cone), but the order is always topological: it is a
/// post-order of a DFS along producer edges.
pub fn liu_dfs(graph: &Graph, opts: &MemoryOptions) -> Order {
    let p = Prepared::new(graph, opts);
    let n = p.len();
    let Ok(topo) = topo::stable_order(graph) else {
        return ort_dfs(graph);
    };
    // residual[v]: bytes v leaves live; peak[v]: estimated peak of v's cone.
    let residual: Vec<u64> = (0..n).map(|v| p.alloc[v] - p.dead_out[v]).collect();
    let mut peak = vec![0u64; n];
    let key = |peak: &[u64], v: usize| peak[v] as i128 - residual[v] as i128;
    for &v in &topo {
        let v = v.index();
        let mut children: Vec<usize> = p.preds[v].iter().map(|&c| c as usize).collect();
        children.sort_by_key(|&c| Reverse(key(&peak, c)));
        let mut held = 0u64;
        let mut best = 0u64;
        for &c in &children {
            best = best.max(held.saturating_add(peak[c]));
            held = held.saturating_add(residual[c]);
        }
        let inputs: u64 = graph.ops[v]
            .inputs
            .iter()
            .filter(|t| graph.tensor(**t).producer.is_none())
            .map(|t| graph.tensor(*t).bytes)
            .sum();
        peak[v] = best.max(held.saturating_add(inputs).saturating_add(p.alloc[v] - p.inplace_saving_bound(v)));
    }
    // Explore the costliest branch first: push children cheapest first.
    let mut sinks: Vec<usize> = (0..n).filter(|&v| p.succs[v].is_empty()).collect();
    sinks.sort_by_key(|&v| (key(&peak, v), Reverse(v)));
    let mut stack: Vec<(usize, bool)> = sinks.into_iter().map(|v| (v, false)).collect();
    let mut visited = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some((v, leave)) = stack.pop() {
        if leave {
            order.push(OpId(v as u32));
            continue;
        }
        if std::mem::replace(&mut visited[v], true) {
            continue;
        }
        stack.push((v, true));
        let mut children: Vec<usize> = p.preds[v].iter().map(|&c| c as usize).filter(|&c| !visited[c]).collect();
        children.sort_by_key(|&c| (key(&peak, c), Reverse(c)));
        stack.extend(children.into_iter().map(|c| (c, false)));
    }
    order
}

impl Prepared<'_> {
    /// The most an op can save by running in place (for estimates only).
    fn inplace_saving_bound(&self, v: usize) -> u64 {
        let out = self.inplace_out[v];
        if out == 0 {
            return 0;
        }
        let reusable = self.graph.ops[v].inputs.iter().any(|&t| {
            let tensor = self.graph.tensor(t);
            self.frees[t.index()] && tensor.bytes == out && tensor.kind != TensorKind::Weight
        });
        if reusable {
            out
        } else {
            0
        }
    }
}

/// The order a heuristic scheduler gives, or `None` for schedulers that
/// are not heuristics (`dp`, `ilp`, `auto`) or when the graph has a cycle.
pub fn run(graph: &Graph, scheduler: Scheduler, opts: &MemoryOptions) -> Option<Order> {
    let acyclic = topo::stable_order(graph).ok()?;
    match scheduler {
        Scheduler::Input => Some(acyclic),
        Scheduler::Dfs => Some(ort_dfs(graph)),
        Scheduler::Bfs => Some(kahn_bfs(graph)),
        Scheduler::Greedy => Some(greedy_free(graph, opts)),
        Scheduler::Lpmf => Some(lpmf(graph, opts)),
        Scheduler::Liu => Some(liu_dfs(graph, opts)),
        Scheduler::Dp | Scheduler::Ilp | Scheduler::Auto => None,
    }
}

/// The heuristic schedulers, in the order the portfolio runs them.
pub const PORTFOLIO: &[Scheduler] =
    &[Scheduler::Input, Scheduler::Dfs, Scheduler::Bfs, Scheduler::Greedy, Scheduler::Lpmf, Scheduler::Liu];

/// One heuristic's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Which heuristic.
    pub scheduler: Scheduler,
    /// Its order.
    pub order: Order,
    /// Its peak under the memory model.
    pub peak: u64,
}

/// Runs every heuristic of [`PORTFOLIO`] and evaluates it; the best first
/// (lowest peak; earlier in the portfolio on ties). Empty if the graph has
/// a cycle.
pub fn portfolio(graph: &Graph, opts: &MemoryOptions) -> Vec<Candidate> {
    portfolio_until(graph, opts, None)
}

/// [`portfolio`], starting no heuristic after `deadline` except the first
/// (`input`), so that a valid order always comes back. Each heuristic
/// takes `O((n + e) log n)`, so the overrun is one heuristic at most.
pub fn portfolio_until(graph: &Graph, opts: &MemoryOptions, deadline: Option<std::time::Instant>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = PORTFOLIO
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| {
            if i > 0 && deadline.is_some_and(|d| crate::cancel::passed(d)) {
                return None;
            }
            let order = run(graph, s, opts)?;
            let peak = evaluate(graph, &order, opts).peak;
            Some(Candidate { scheduler: s, order, peak })
        })
        .collect();
    out.sort_by_key(|c| c.peak);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{from_lists, topo::check_order};

    #[test]
    fn later_branch_runs_first() {
        // op0: x -> a, op1: x -> b, op2: (a, b) -> y. The reverse DFS visits
        // op2, then its highest-index producer op1 first.
        let g = from_lists(&[(vec![0], vec![1]), (vec![0], vec![2]), (vec![1, 2], vec![3])], &[1; 4], &[3]);
        assert_eq!(ort_dfs(&g), vec![OpId(1), OpId(0), OpId(2)]);
    }

    #[test]
    fn last_sink_is_explored_first() {
        // Two independent chains; both end in sinks. The sink with the higher
        // index (op3) is on top of the stack.
        let g = from_lists(
            &[(vec![0], vec![1]), (vec![1], vec![2]), (vec![0], vec![3]), (vec![3], vec![4])],
            &[1; 5],
            &[2, 4],
        );
        assert_eq!(ort_dfs(&g), vec![OpId(2), OpId(3), OpId(0), OpId(1)]);
    }

    #[test]
    fn dfs_is_topological_on_a_diamond_lattice() {
        let mut ops = Vec::new();
        for i in 0..20usize {
            ops.push((vec![i, i / 2], vec![i + 1]));
        }
        let g = from_lists(&ops, &[1; 21], &[20]);
        let order = ort_dfs(&g);
        assert!(check_order(&g, &order).is_ok());
    }

    /// x -> big branch (a: 100 B, then 1 B) and small branch (b: 10 B, then
    /// 1 B) -> join. Running the big branch first keeps the peak at the
    /// big branch's own peak plus nothing.
    fn fork_join() -> Graph {
        from_lists(
            &[
                (vec![0], vec![1]),    // op0: x -> a (100)
                (vec![1], vec![2]),    // op1: a -> a' (1)
                (vec![0], vec![3]),    // op2: x -> b (10)
                (vec![3], vec![4]),    // op3: b -> b' (1)
                (vec![2, 4], vec![5]), // op4: join
            ],
            &[1, 100, 1, 10, 1, 1],
            &[5],
        )
    }

    #[test]
    fn heuristics_are_topological_and_tracker_matches_evaluate() {
        let g = fork_join();
        let opts = MemoryOptions::default();
        for c in portfolio(&g, &opts) {
            assert!(check_order(&g, &c.order).is_ok(), "{:?}", c.scheduler);
            let p = Prepared::new(&g, &opts);
            let mut t = Tracker::new(&p);
            for v in &c.order {
                t.run(v.index(), |_| {});
            }
            assert_eq!(t.peak, c.peak, "{:?}", c.scheduler);
        }
    }

    #[test]
    fn liu_runs_the_costly_branch_first() {
        let g = fork_join();
        let order = liu_dfs(&g, &MemoryOptions::default());
        assert_eq!(order, vec![OpId(0), OpId(1), OpId(2), OpId(3), OpId(4)]);
        assert_eq!(evaluate(&g, &order, &MemoryOptions::default()).peak, 102);
    }

    #[test]
    fn bfs_goes_level_by_level() {
        let g = fork_join();
        assert_eq!(kahn_bfs(&g), vec![OpId(0), OpId(2), OpId(1), OpId(3), OpId(4)]);
    }
}
