//! Parallel chains: an exact polynomial method, and tight bounds when the
//! chains share a fork tensor that dies at the last of them.
//!
//! A part whose ops form disjoint chains (every op has at most one producer
//! op and at most one consumer op) is what lies between a fork and its join
//! once [`super::decompose`] has cut the graph there: Inception blocks,
//! `wide_fanout` (one tensor, 64 conv chains, a Concat).
//!
//! # The sum model
//!
//! Live memory splits into a constant `K` (graph inputs that are never freed
//! or that no op reads), one term per chain `r_i(p)` (the bytes chain `i`
//! holds after its first `p` ops: its private inputs not yet dead and its
//! live outputs; this depends only on `p`), and, if there is one, a shared
//! input `X` read by several chains and freed after its last reader. Running
//! op `p` of chain `i` takes memory `K + [X live]·x + Σ_l r_l + e_ip` at its
//! step (`e = outputs - in-place saving`, all known statically because the
//! chain's private tensors die at fixed ops) and changes the memory by
//! `Δ_ip = r_i(p) - r_i(p-1)`.
//!
//! Without a freeable shared input this is the problem of merging chains of
//! jobs `(e, Δ)` to minimise the largest prefix peak, which is solved
//! exactly as follows (Abdel-Wahab and Kameda, "Scheduling to minimize
//! maximum cumulative cost subject to series-parallel precedence
//! constraints", Operations Research 26(1), 1978; Liu's hill–valley
//! segments, 1987, for trees; Kayaaslan et al., TCS 2018, for series-parallel
//! task graphs):
//!
//! * **Independent jobs.** A job is *negative* if `Δ < 0`. Negative jobs go
//!   first by increasing `e`, then the others by decreasing `e - Δ`. Exchange:
//!   for adjacent jobs `a, b` from memory `M`, `a` first peaks at
//!   `M + max(e_a, Δ_a + e_b)`, `b` first at `M + max(e_b, Δ_b + e_a)`; if both
//!   are negative and `e_a <= e_b`, the first is `<= e_b`; if `a` is negative
//!   and `b` not, `e_a <= Δ_b + e_a` and `Δ_a + e_b < e_b`; if neither is and
//!   `e_a - Δ_a >= e_b - Δ_b`, then `Δ_a + e_b <= Δ_b + e_a` and
//!   `e_a <= Δ_b + e_a`. In each case `a` first is no worse, and the rule is a
//!   total preorder, so sorting never raises the peak.
//! * **Chains.** A block of consecutive jobs is a job with
//!   `e = max_k (Δ_1 + … + Δ_(k-1) + e_k)` and `Δ = Σ Δ_k`, and the exchange
//!   above holds for blocks. If `b` follows `a` in a chain and has strictly
//!   higher priority, some optimal schedule runs `b` right after `a`: for a
//!   block `W` run between them, swap `W` before `a` if `W`'s priority is at
//!   least `b`'s (hence above `a`'s), else swap it after `b`; `W` holds no job
//!   of that chain. Merging such pairs until priorities are non-increasing
//!   along every chain and then sorting all blocks (stably) is optimal.
//!
//! # A shared fork tensor
//!
//! With a shared input `X` (`x` bytes, read by the first op of several
//! chains, freed after the last of them), the problem is no longer of that
//! form. [`solve`] then returns the best of a few candidate orders (the rule
//! above with `X` held throughout, with `X` charged only at its readers, and
//! with each likely last reader moved last) and a lower bound that is the
//! largest of:
//!
//! * the exact optimum of the relaxation that counts `x` only at the steps
//!   of `X`'s readers (every real step is at least as large);
//! * for each op `v` of chain `i` that does not read `X`: at its step either
//!   `X` is live, or every other chain reading `X` has run at least one op and
//!   holds at least its least residual after that, so the step is at least
//!   `K + r_i(p-1) + e_v + min(x + Σ_{l≠i} min_p r_l, Σ_{l≠i} m_l)` with
//!   `m_l = min_{p>=1} r_l(p)` for chains reading `X` (`min_{p>=0}` for the
//!   others);
//! * the same with a set of ops `u` of distinct chains (the costliest op of
//!   each of the k costliest chains, and every pair): one of them runs
//!   last, and at its step every other chain of the set holds at least its
//!   least residual after its `u`, `min_{q > pos(u)} r(q)`;
//! * at the step of the last reader `f_L` of `X` all other readers have run:
//!   `min_L (K + x + r_L(0) + e_(f_L) + Σ_{l≠L} m_l)`.
//!
//! When the best candidate meets this bound it is optimal. On `wide_fanout`
//! the second term is what proves the order that runs the widest chain
//! first while `X` is live.

use super::Order;
use crate::graph::memory::{evaluate, MemoryOptions};
use crate::graph::{Graph, OpId, TensorKind};
use std::cmp::Reverse;

/// Ops considered pairwise for the pair bound (the costliest).
const PAIR_OPS: usize = 256;

/// What [`solve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainResult {
    /// The best order found.
    pub order: Order,
    /// Its peak ([`evaluate`]).
    pub peak: u64,
    /// A lower bound on every order's peak.
    pub lower_bound: u64,
}

/// A block of consecutive jobs of one chain.
#[derive(Debug, Clone, Copy)]
struct Block {
    e: i128,
    d: i128,
    chain: usize,
    /// First job (position in the chain) and number of jobs.
    start: usize,
    len: usize,
}

impl Block {
    /// Smaller runs first.
    fn key(&self) -> (u8, i128) {
        if self.d < 0 {
            (0, self.e)
        } else {
            (1, -(self.e - self.d))
        }
    }
}

/// The optimal merge of chains of jobs `(e, Δ)` (module doc): the blocks in
/// the order to run them and the peak above the starting memory.
fn merge_chains(jobs: &[Vec<(i128, i128)>]) -> (Vec<Block>, i128) {
    let mut blocks: Vec<Block> = Vec::new();
    for (ci, chain) in jobs.iter().enumerate() {
        let mut stack: Vec<Block> = Vec::new();
        for (k, &(e, d)) in chain.iter().enumerate() {
            stack.push(Block { e, d, chain: ci, start: k, len: 1 });
            while stack.len() >= 2 {
                let b = stack[stack.len() - 1];
                let a = stack[stack.len() - 2];
                if b.key() < a.key() {
                    stack.truncate(stack.len() - 2);
                    stack.push(Block {
                        e: a.e.max(a.d + b.e),
                        d: a.d + b.d,
                        chain: ci,
                        start: a.start,
                        len: a.len + b.len,
                    });
                } else {
                    break;
                }
            }
        }
        blocks.extend(stack);
    }
    blocks.sort_by_key(|b| (b.key(), b.chain, b.start));
    let mut m: i128 = 0;
    let mut peak: i128 = 0;
    for b in &blocks {
        peak = peak.max(m + b.e);
        m += b.d;
    }
    (blocks, peak)
}

/// The chains of a graph and the numbers of the sum model.
struct Chains {
    /// Ops of each chain, in order.
    ops: Vec<Vec<usize>>,
    /// (e, Δ) of each op, with in-place reuse of private inputs only.
    jobs: Vec<Vec<(i128, i128)>>,
    /// Output bytes of each op.
    alloc: Vec<Vec<i128>>,
    /// r_i(p) for p = 0..=len.
    residual: Vec<Vec<i128>>,
    /// Bytes live throughout (never freed, or unread).
    constant: i128,
    /// The freeable shared input, if any: (tensor, bytes, chains reading it).
    shared: Option<(usize, i128, Vec<bool>)>,
}

fn analyse(graph: &Graph, opts: &MemoryOptions) -> Option<Chains> {
    let n = graph.ops.len();
    let preds: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.predecessors(v)).collect();
    let succs: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.successors(v)).collect();
    if preds.iter().chain(&succs).any(|s| s.len() > 1) {
        return None;
    }
    let frees = |t: usize| {
        let tensor = &graph.tensors[t];
        !(tensor.graph_output || (opts.inputs_live_whole_run && tensor.kind == TensorKind::GraphInput))
    };
    let mut chain_of = vec![usize::MAX; n];
    let mut pos = vec![0usize; n];
    let mut ops: Vec<Vec<usize>> = Vec::new();
    for (v, p) in preds.iter().enumerate() {
        if !p.is_empty() {
            continue;
        }
        let ci = ops.len();
        let mut chain = Vec::new();
        let mut cur = Some(v);
        while let Some(u) = cur {
            chain_of[u] = ci;
            pos[u] = chain.len();
            chain.push(u);
            cur = succs[u].first().map(|s| s.index());
        }
        ops.push(chain);
    }
    if chain_of.contains(&usize::MAX) {
        return None;
    }
    // Graph inputs: constant, private to one chain, or shared.
    let mut constant: i128 = 0;
    let mut shared = None;
    let mut private_inputs: Vec<i128> = vec![0; ops.len()];
    for (ti, t) in graph.tensors.iter().enumerate() {
        if t.kind != TensorKind::GraphInput || t.bytes == 0 {
            continue;
        }
        let bytes = i128::from(t.bytes);
        let mut readers: Vec<usize> = t.consumers.iter().map(|c| chain_of[c.index()]).collect();
        readers.sort_unstable();
        readers.dedup();
        if !frees(ti) || readers.is_empty() {
            if !frees(ti) || !t.consumers.is_empty() {
                constant += bytes;
            }
            continue;
        }
        if readers.len() == 1 {
            private_inputs[readers[0]] += bytes;
            continue;
        }
        // A freeable shared input: only one, read only by first ops.
        if shared.is_some() || t.consumers.iter().any(|c| pos[c.index()] != 0) {
            return None;
        }
        let mut reads = vec![false; ops.len()];
        for &r in &readers {
            reads[r] = true;
        }
        shared = Some((ti, bytes, reads));
    }
    let shared_t = shared.as_ref().map(|s| s.0);
    let mut jobs = Vec::with_capacity(ops.len());
    let mut allocs = Vec::with_capacity(ops.len());
    let mut residual = Vec::with_capacity(ops.len());
    for (ci, chain) in ops.iter().enumerate() {
        let mut r = private_inputs[ci];
        let mut rs = vec![r];
        let mut js = Vec::with_capacity(chain.len());
        let mut al = Vec::with_capacity(chain.len());
        for &v in chain {
            let op = &graph.ops[v];
            let alloc: i128 = op.outputs.iter().map(|&t| i128::from(graph.tensor(t).bytes)).sum();
            let mut freed: i128 = 0;
            let mut reuse: i128 = 0;
            let inplace_out = if opts.inplace && op.inplace_capable && op.outputs.len() == 1 {
                graph.tensor(op.outputs[0]).bytes
            } else {
                0
            };
            for &t in &op.outputs {
                let tensor = graph.tensor(t);
                if tensor.consumers.is_empty() && !tensor.graph_output {
                    freed += i128::from(tensor.bytes);
                }
            }
            for &t in &op.inputs {
                if Some(t.index()) == shared_t || !frees(t.index()) {
                    continue;
                }
                let tensor = graph.tensor(t);
                // Private: all readers are in this chain; it dies at its last.
                let last = tensor.consumers.iter().map(|c| pos[c.index()]).max();
                if tensor.kind != TensorKind::Weight && last == Some(pos[v]) {
                    freed += i128::from(tensor.bytes);
                    if inplace_out > 0 && tensor.bytes == inplace_out {
                        reuse = i128::from(inplace_out);
                    }
                }
            }
            js.push((alloc - reuse, alloc - freed));
            al.push(alloc);
            r += alloc - freed;
            rs.push(r);
        }
        jobs.push(js);
        allocs.push(al);
        residual.push(rs);
    }
    Some(Chains { ops, jobs, alloc: allocs, residual, constant, shared })
}

fn order_of(ch: &Chains, blocks: &[Block]) -> Order {
    blocks.iter().flat_map(|b| ch.ops[b.chain][b.start..b.start + b.len].iter().map(|&v| OpId(v as u32))).collect()
}

/// Exact order (or bounds, with a shared fork tensor) for a graph made of
/// disjoint chains; `None` if the graph is not of that shape, or has more
/// than one freeable input shared by chains, or one read by an op that is
/// not first in its chain.
pub fn solve(graph: &Graph, opts: &MemoryOptions) -> Option<ChainResult> {
    let ch = analyse(graph, opts)?;
    let start = i128::from(graph.input_bytes());
    let r0: i128 = ch.residual.iter().map(|r| r[0]).sum();
    let eval = |o: &Order| evaluate(graph, o, opts).peak;
    let to_u64 = |x: i128| u64::try_from(x.max(0)).unwrap_or(u64::MAX);
    match &ch.shared {
        None => {
            let (blocks, peak) = merge_chains(&ch.jobs);
            let order = order_of(&ch, &blocks);
            let real = eval(&order);
            let model = to_u64((ch.constant + r0 + peak).max(start));
            // The model must agree with the evaluator to claim optimality.
            let lower_bound = if real == model { real } else { 0 };
            Some(ChainResult { order, peak: real, lower_bound })
        }
        Some((xt, x, reads)) => {
            let x = *x;
            let m = ch.ops.len();
            let rmin0: Vec<i128> = ch.residual.iter().map(|r| r.iter().copied().min().unwrap_or(0)).collect();
            let rmin1: Vec<i128> = ch.residual.iter().map(|r| r[1..].iter().copied().min().unwrap_or(0)).collect();
            // Best saving the first op of a reader chain could make by
            // overwriting X when it is the last reader.
            let x_reuse = |ci: usize| -> i128 {
                let v = ch.ops[ci][0];
                let op = &graph.ops[v];
                if opts.inplace && op.inplace_capable && op.outputs.len() == 1 {
                    let out = graph.tensor(op.outputs[0]).bytes;
                    let xt = &graph.tensors[*xt];
                    if out > 0 && xt.bytes == out && xt.kind != TensorKind::Weight {
                        return i128::from(out);
                    }
                }
                0
            };
            // e of a reader's first op with X live and the best in-place
            // saving it could make (over a private input or over X).
            let first_with_x = |ci: usize| -> i128 {
                let (e, _) = ch.jobs[ci][0];
                let alloc = ch.alloc[ci][0];
                let saving = (alloc - e).max(x_reuse(ci));
                x + alloc - saving
            };
            // Relaxation: x counted only at its readers' steps.
            let relaxed: Vec<Vec<(i128, i128)>> = ch
                .jobs
                .iter()
                .enumerate()
                .map(|(ci, js)| {
                    let mut js = js.clone();
                    if reads[ci] {
                        js[0].0 = first_with_x(ci);
                    }
                    js
                })
                .collect();
            let (relaxed_blocks, relaxed_peak) = merge_chains(&relaxed);
            let mut lb = (ch.constant + r0 + relaxed_peak).max(start);
            // Per-op bound, and the pair bound: of two ops u, v of
            // different chains one runs first; the other's step then also
            // holds the first one's chain at its least residual after it.
            let sum_min0: i128 = rmin0.iter().sum();
            let sum_m: i128 = (0..m).map(|l| if reads[l] { rmin1[l] } else { rmin0[l] }).sum();
            let m_of = |l: usize| if reads[l] { rmin1[l] } else { rmin0[l] };
            let mut ops_bound: Vec<(i128, usize, usize)> = Vec::new();
            for ci in 0..m {
                let held_x = x + sum_min0 - rmin0[ci];
                let held_no_x = sum_m - m_of(ci);
                for (p, &(e, _)) in ch.jobs[ci].iter().enumerate() {
                    if p == 0 && reads[ci] {
                        continue;
                    }
                    let own = ch.constant + ch.residual[ci][p] + e;
                    lb = lb.max(own + held_x.min(held_no_x));
                    ops_bound.push((own, ci, p));
                }
            }
            ops_bound.sort_unstable_by_key(|&(own, _, _)| Reverse(own));
            ops_bound.truncate(PAIR_OPS);
            // Least residual of chain l once its op p has run.
            let after = |l: usize, p: usize| ch.residual[l][p + 1..].iter().copied().min().unwrap_or(0);
            let second = |(own_v, b, _): (i128, usize, usize), (_, a, pu): (i128, usize, usize)| {
                let held_x = x + sum_min0 - rmin0[a] - rmin0[b];
                let held_no_x = sum_m - m_of(a) - m_of(b);
                own_v + after(a, pu) + held_x.min(held_no_x)
            };
            for (k, &u) in ops_bound.iter().enumerate() {
                for &v in &ops_bound[k + 1..] {
                    if u.1 != v.1 {
                        lb = lb.max(second(v, u).min(second(u, v)));
                    }
                }
            }
            // The set bound: of the costliest op of each of k chains, one
            // runs last, and every other chain of the set then holds at
            // least its least residual after its op.
            let mut seen_chain = vec![false; m];
            let tops: Vec<(i128, usize, usize)> =
                ops_bound.iter().copied().filter(|&(_, c, _)| !std::mem::replace(&mut seen_chain[c], true)).collect();
            let (mut sum_after, mut excl_min0, mut excl_m) = (0i128, 0i128, 0i128);
            for k in 0..tops.len() {
                let (_, c, p) = tops[k];
                sum_after += after(c, p);
                excl_min0 += rmin0[c];
                excl_m += m_of(c);
                let held = (x + sum_min0 - excl_min0).min(sum_m - excl_m);
                let last = tops[..=k].iter().map(|&(own, c, p)| own + sum_after - after(c, p)).min().unwrap_or(0);
                lb = lb.max(last + held);
            }
            // The last reader's step.
            let last_reader = (0..m)
                .filter(|&l| reads[l])
                .map(|l| ch.constant + ch.residual[l][0] + first_with_x(l) + sum_m - rmin1[l])
                .min()
                .unwrap_or(0);
            lb = lb.max(last_reader);
            // Candidates.
            let mut cands: Vec<Order> = vec![order_of(&ch, &relaxed_blocks)];
            let (plain_blocks, _) = merge_chains(&ch.jobs);
            let plain = order_of(&ch, &plain_blocks);
            // Move each of the likeliest last readers after all other readers.
            let mut by_bound: Vec<usize> = (0..m).filter(|&l| reads[l]).collect();
            by_bound.sort_by_key(|&l| ch.residual[l][0] + ch.jobs[l][0].0 - rmin1[l]);
            for &l in by_bound.iter().take(8) {
                cands.push(postpone_chain_start(&ch, &plain, l, reads));
            }
            cands.push(plain);
            let (order, peak) =
                cands.into_iter().map(|o| (eval(&o), o)).min_by_key(|(p, _)| *p).map(|(p, o)| (o, p))?;
            Some(ChainResult { order, peak, lower_bound: to_u64(lb).min(peak) })
        }
    }
}

/// `order` with chain `l`'s ops that run before the last first op of the
/// other reader chains moved to right after it.
fn postpone_chain_start(ch: &Chains, order: &Order, l: usize, reads: &[bool]) -> Order {
    let firsts: Vec<usize> = (0..ch.ops.len()).filter(|&c| c != l && reads[c]).map(|c| ch.ops[c][0]).collect();
    let Some(last) = order.iter().rposition(|v| firsts.contains(&v.index())) else {
        return order.clone();
    };
    let mine: Vec<usize> = ch.ops[l].clone();
    let (mut head, mut moved) = (Vec::new(), Vec::new());
    for v in &order[..=last] {
        if mine.contains(&v.index()) {
            moved.push(*v);
        } else {
            head.push(*v);
        }
    }
    head.extend(moved);
    head.extend_from_slice(&order[last + 1..]);
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::from_lists;

    #[test]
    fn merge_runs_negative_blocks_first() {
        // Chain 0: +10 then -9 (a hill); chain 1: +1.
        let (blocks, peak) = merge_chains(&[vec![(10, 10), (1, -9)], vec![(1, 1)]]);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].chain, 0);
        assert_eq!(peak, 11);
    }

    #[test]
    fn fork_into_chains_is_solved() {
        // x (graph output, never freed) -> three chains of different widths.
        let g = from_lists(
            &[(vec![0], vec![1]), (vec![1], vec![2]), (vec![0], vec![3]), (vec![3], vec![4]), (vec![0], vec![5])],
            &[4, 100, 1, 10, 2, 3],
            &[0, 2, 4, 5],
        );
        let r = solve(&g, &MemoryOptions::default()).expect("chains");
        assert_eq!(r.peak, r.lower_bound);
        assert_eq!(r.peak, 105);
    }
}
