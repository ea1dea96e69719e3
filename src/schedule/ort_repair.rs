//! Lowering onnxruntime's default-order peak of a file without raising its
//! file-order peak: the search the default target ([`runtimes::balance`])
//! runs on the best file-order schedule before anything else.
//!
//! onnxruntime's default order ([`ort::predict_for_file`]) is a reverse
//! depth-first search in which the file order only breaks ties: at every op
//! it explores the op's producers (and, at the start, the sinks) highest
//! file position first. So two files with the same file-order peak can make
//! onnxruntime run orders with very different peaks, and most optimal
//! file orders leave freedom outside their bottleneck. [`lower_default_peak`]
//! uses that freedom: a hill climb over files whose moves swap the file
//! order of two *siblings* (two producers of one op, or two sinks), the only
//! thing the depth-first search looks at. A move that puts `b` before `a`
//! either hoists `b` with its ancestors that stand between them to just
//! before `a`, or sinks `a` with its descendants that stand between them to
//! just after `b`; both keep the file topologically sorted. Every candidate
//! is put into PRIORITY_BASED form ([`runtimes::priority_order`]), so its
//! file-order figure is the one every file-order runtime pays. A move is kept
//! when the file-order peak stays within the cap and onnxruntime's default
//! order gets strictly better: a lower peak, or the same peak at fewer
//! steps. The climb stops at a local optimum, at the goal, or at the
//! deadline ([`crate::cancel::passed`]).
//!
//! [`runtimes::balance`]: super::runtimes::balance

use super::{ort, runtimes, Order};
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{Graph, OpId};
use std::time::Instant;

/// What [`lower_default_peak`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    /// The file (a topological order of all ops, in PRIORITY_BASED form).
    pub file: Order,
    /// Its file-order peak (never above the cap asked for).
    pub file_peak: u64,
    /// The peak of onnxruntime's default order of `file`.
    pub default_peak: u64,
    /// Moves kept.
    pub moves: usize,
    /// Candidate files evaluated.
    pub tried: usize,
    /// Whether the climb ended at a local optimum or at the goal (not at the
    /// deadline).
    pub finished: bool,
}

/// How good onnxruntime's default order of a file is: its peak, then the
/// memory of its [`KEY_STEPS`] costliest steps, highest first, compared
/// lexicographically (so that a move that relieves a step at or near the
/// peak counts too).
type Key = Vec<u64>;

/// How many of the costliest steps [`Key`] compares.
const KEY_STEPS: usize = 64;

/// The evaluation of one candidate file.
struct Scored {
    file: Order,
    file_peak: u64,
    key: Key,
}

/// The state shared by all candidates of one climb.
struct Climb<'g> {
    graph: &'g Graph,
    opts: &'g MemoryOptions,
    predictor: ort::DefaultOrder,
    file_cap: u64,
    tried: usize,
}

impl Climb<'_> {
    /// `file` in PRIORITY_BASED form with its figures, or `None` if its
    /// file-order peak is above the cap.
    fn score(&mut self, file: &[OpId]) -> Option<Scored> {
        self.tried += 1;
        let file = runtimes::priority_order(self.graph, file)?;
        let file_peak = evaluate(self.graph, &file, self.opts).peak;
        if file_peak > self.file_cap {
            return None;
        }
        let run = self.predictor.run(&file)?;
        let profile = evaluate(self.graph, &run, self.opts);
        let mut steps = profile.steps;
        steps.sort_unstable_by(|a, b| b.cmp(a));
        steps.truncate(KEY_STEPS);
        // The peak counts the graph inputs before the first step too.
        steps.insert(0, profile.peak);
        Some(Scored { file, file_peak, key: steps })
    }
}

/// The groups of siblings whose file order onnxruntime's default order
/// looks at: the distinct non-folded producers of each op, and the
/// non-folded sinks; groups of one left out.
fn sibling_groups(graph: &Graph) -> Vec<Vec<OpId>> {
    let folded: Vec<bool> = graph.op_ids().map(|v| ort::is_folded(graph, v)).collect();
    let mut groups = Vec::new();
    let mut sinks = Vec::new();
    for v in graph.op_ids() {
        if folded[v.index()] {
            continue;
        }
        if graph.successors(v).is_empty() {
            sinks.push(v);
        }
        let preds: Vec<OpId> = graph.predecessors(v).into_iter().filter(|p| !folded[p.index()]).collect();
        if preds.len() >= 2 {
            groups.push(preds);
        }
    }
    if sinks.len() >= 2 {
        groups.push(sinks);
    }
    groups
}

/// `file` with the ops marked in `moved` taken out and put back, in file
/// order, right before position `at` (`before == true`) or right after it.
fn shifted(file: &[OpId], moved: &[bool], at: usize, before: bool) -> Order {
    let block: Vec<OpId> = file.iter().copied().filter(|v| moved[v.index()]).collect();
    let mut out = Vec::with_capacity(file.len());
    for (i, &v) in file.iter().enumerate() {
        if i == at && before {
            out.extend_from_slice(&block);
        }
        if !moved[v.index()] {
            out.push(v);
        }
        if i == at && !before {
            out.extend_from_slice(&block);
        }
    }
    out
}

/// Distinct predecessors and successors of every op, as indices.
struct Adjacency {
    preds: Vec<Vec<u32>>,
    succs: Vec<Vec<u32>>,
}

impl Adjacency {
    fn new(graph: &Graph) -> Adjacency {
        Adjacency {
            preds: graph.op_ids().map(|v| graph.predecessors(v).iter().map(|p| p.0).collect()).collect(),
            succs: graph.op_ids().map(|v| graph.successors(v).iter().map(|p| p.0).collect()).collect(),
        }
    }

    /// Marks (with `stamp`) `from` and every op reachable from it along
    /// predecessor (`up`) or successor edges whose position passes `keep`.
    fn closure(&self, from: &[u32], up: bool, keep: impl Fn(u32) -> bool, mark: &mut [u32], stamp: u32) {
        let mut stack: Vec<u32> = Vec::new();
        for &f in from {
            if mark[f as usize] != stamp {
                mark[f as usize] = stamp;
                stack.push(f);
            }
        }
        while let Some(x) = stack.pop() {
            let next = if up { &self.preds[x as usize] } else { &self.succs[x as usize] };
            for &y in next {
                if mark[y as usize] != stamp && keep(y) {
                    mark[y as usize] = stamp;
                    stack.push(y);
                }
            }
        }
    }
}

/// The four moves that put `y` before `x` (`x` standing before `y` in the
/// file, neither an ancestor of the other), as sets of ops to move and where
/// to: `(moved, at, before)` for [`shifted`]. Tight moves shift only what
/// must go along; block moves shift a whole sibling block (`x` with its
/// ancestors that are not ancestors of `y`) so that the two blocks trade
/// places.
fn moves_for(
    adj: &Adjacency,
    position: &[usize],
    x: u32,
    y: u32,
    scratch: &mut Scratch,
) -> Vec<(Vec<bool>, usize, bool)> {
    let n = position.len();
    let (px, py) = (position[x as usize], position[y as usize]);
    let mut out = Vec::new();
    let set = |scratch: &Scratch, stamp: u32| -> Vec<bool> { scratch.mark.iter().map(|&m| m == stamp).collect() };
    // Hoist y with its ancestors standing after x to just before x.
    let s = scratch.next();
    adj.closure(&[y], true, |v| position[v as usize] > px, &mut scratch.mark, s);
    if scratch.mark[x as usize] == s {
        return out; // x is an ancestor of y
    }
    out.push((set(scratch, s), px, true));
    // Sink x with its descendants standing before y to just after y.
    let s = scratch.next();
    adj.closure(&[x], false, |v| position[v as usize] < py, &mut scratch.mark, s);
    if scratch.mark[y as usize] == s {
        return out;
    }
    out.push((set(scratch, s), py, false));
    // x's block: x and its ancestors that are not ancestors of y.
    let anc_y = scratch.next();
    adj.closure(&[y], true, |_| true, &mut scratch.mark, anc_y);
    let anc_y_set = set(scratch, anc_y);
    let blk = scratch.next();
    adj.closure(&[x], true, |v| !anc_y_set[v as usize], &mut scratch.mark, blk);
    let block: Vec<u32> = (0..n as u32).filter(|&v| scratch.mark[v as usize] == blk).collect();
    let start = block.iter().map(|&v| position[v as usize]).min().unwrap_or(px);
    if start < px {
        // Hoist y with its ancestors standing after the block's start to
        // just before it.
        let s = scratch.next();
        adj.closure(&[y], true, |v| position[v as usize] > start, &mut scratch.mark, s);
        out.push((set(scratch, s), start, true));
        // Sink the block with its descendants standing before y to just
        // after y (none of them is an ancestor of y).
        let s = scratch.next();
        let from: Vec<u32> = block.iter().copied().filter(|&v| position[v as usize] >= start).collect();
        adj.closure(&from, false, |v| position[v as usize] < py, &mut scratch.mark, s);
        if scratch.mark[y as usize] != s {
            out.push((set(scratch, s), py, false));
        }
    }
    out
}

/// Reusable marks for [`moves_for`].
struct Scratch {
    mark: Vec<u32>,
    stamp: u32,
}

impl Scratch {
    fn next(&mut self) -> u32 {
        self.stamp += 1;
        self.stamp
    }
}

/// A file whose onnxruntime default order peaks as low as this hill climb
/// finds (module docs), starting from `start` (a topological order of all
/// ops) and never accepting a file whose file-order peak (in PRIORITY_BASED
/// form) is above `file_cap`. Stops as soon as the default-order peak is at
/// most `goal` (pass a lower bound that holds for every order), at a local
/// optimum, or when `deadline` passes. `None` if `start` itself, in
/// PRIORITY_BASED form, is not a topological order of all ops or has a
/// file-order peak above `file_cap`; otherwise the result is never worse
/// than `start` on either figure's cap and default-order peak.
pub fn lower_default_peak(
    graph: &Graph,
    start: &[OpId],
    file_cap: u64,
    goal: u64,
    opts: &MemoryOptions,
    deadline: Instant,
) -> Option<Repaired> {
    let mut climb = Climb { graph, opts, predictor: ort::DefaultOrder::new(graph), file_cap, tried: 0 };
    let mut current = climb.score(start)?;
    let groups = sibling_groups(graph);
    let n = graph.ops.len();
    let mut moves = 0usize;
    let mut position = vec![0usize; n];
    let adj = Adjacency::new(graph);
    let mut scratch = Scratch { mark: vec![0; n], stamp: 0 };
    let mut finished = false;
    'passes: loop {
        if current.key.first().copied().unwrap_or(0) <= goal {
            finished = true;
            break;
        }
        let mut improved = false;
        for group in &groups {
            for (i, &a) in group.iter().enumerate() {
                for &b in &group[i + 1..] {
                    if crate::cancel::passed(deadline) {
                        break 'passes;
                    }
                    for (k, &v) in current.file.iter().enumerate() {
                        position[v.index()] = k;
                    }
                    // x stands before y; every move puts y before x.
                    let (x, y) = if position[a.index()] < position[b.index()] { (a, b) } else { (b, a) };
                    for (moved, at, before) in moves_for(&adj, &position, x.0, y.0, &mut scratch) {
                        let candidate = shifted(&current.file, &moved, at, before);
                        let Some(scored) = climb.score(&candidate) else { continue };
                        if scored.key < current.key {
                            current = scored;
                            moves += 1;
                            improved = true;
                            if current.key.first().copied().unwrap_or(0) <= goal {
                                finished = true;
                                break 'passes;
                            }
                            break;
                        }
                    }
                }
            }
        }
        if !improved {
            finished = true;
            break;
        }
    }
    Some(Repaired {
        file: current.file,
        file_peak: current.file_peak,
        default_peak: current.key.first().copied().unwrap_or(0),
        moves,
        tried: climb.tried,
        finished,
    })
}
