//! Splitting a graph into parts that every order runs one after another.
//!
//! # Forced prefixes
//!
//! A set `D` of ops is a *forced prefix* when every topological order runs
//! exactly the ops of `D` first: every op of `D` is an ancestor of every op
//! outside it. The simplest case is `D = ancestors(v)` for an op `v`
//! comparable to every other op (a cut op: `ancestors ∪ descendants ∪ {v}`
//! is everything); `D` may also end at several ops at once (two parallel ops
//! that both feed the next two). Forced prefixes are prefixes of every
//! order, in particular of any one topological order `π`, so they are found
//! by scanning `π`: with `D_i` the first `i` ops and `R_i` the ops outside
//! `D_i` whose producers are all in `D_i` (the minimal ops of the rest),
//! `D_i` is forced iff every `r ∈ R_i` has exactly `i` ancestors (its
//! ancestors lie in `D_i`, and it needs all of them; the other ops outside
//! `D_i` are descendants of some `r`). Ancestor counts come from bitsets of
//! 4096 sources at a time (`O(n e / 64)` time, `O(n)` memory).
//!
//! # Parts and their standalone graphs
//!
//! Consecutive forced prefixes `∅ = D_0 ⊂ D_1 ⊂ … ⊂ D_k = all` cut the ops
//! into parts `P_j = D_j \ D_{j-1}`. Every edge goes from a part to the same
//! or a later one (the `D_j` are down-sets), so the topological orders of
//! the graph are exactly the concatenations of topological orders of the
//! parts. Part `P_j` becomes a standalone [`Graph`] `H_j`:
//!
//! * a tensor that `P_j` reads but does not write (written by an earlier
//!   part, or a graph input) is a graph input of `H_j`;
//! * a tensor that `P_j` touches and that must outlive the part (read by a
//!   later part, a graph output, or a graph input kept for the whole run) is
//!   a graph output of `H_j`;
//! * consumers are restricted to `P_j`;
//! * tensors live across the whole part without being touched by it
//!   (written before, read after, or never freed) are left out and counted
//!   as the part's constant `c_j`.
//!
//! `H_j` is evaluated with `inputs_live_whole_run = false` (a tensor that the
//! whole graph frees after its last reader in `P_j` is a graph input of
//! `H_j`; a real graph input kept for the whole run is marked a graph output
//! of `H_j` instead, which keeps it live from the start to the end of the
//! part) and with the caller's `inplace` switch.
//!
//! # Why the peak splits
//!
//! Fix an order `o` of the graph and its restrictions `o_j` to the parts.
//! At a step of op `v ∈ P_j`, the live tensors of the whole graph are (a)
//! those not touched by `P_j` and live across it, `c_j` bytes whatever the
//! order, and (b) tensors touched by `P_j`. A tensor of (b) is live in the
//! graph iff it is live in `H_j` at the same step of `o_j`: it exists (a
//! graph input of `H_j` exists from the part's start, since its producer ran
//! in an earlier part; an output of `H_j` from its producer's step), and it
//! is still needed iff a reader in `P_j` has yet to run or it must outlive
//! the part (then it is a graph output of `H_j`). In-place reuse needs the
//! input to die at `v`: a tensor read after the part never dies in `P_j`
//! (the graph still has a reader; in `H_j` it is a graph output, never
//! freed); otherwise the readers left are the same in both. So
//! `step_G(v) = c_j + step_{H_j}(v)`. `H_j`'s start memory plus `c_j` is the
//! live memory of the graph at the part boundary, which is at most the next
//! step's memory, so it never raises the maximum. Hence
//!
//! ```text
//! peak_G(o) = max(start_G, max_j (c_j + peak_{H_j}(o_j)))
//! ```
//!
//! where `start_G` is the graph's start memory (all graph inputs). The terms
//! are independent (any choice of part orders concatenates to an order of
//! the graph), so concatenating optimal part orders is optimal, the optimum
//! is `max(start_G, max_j (c_j + OPT_j))`, and the same formula with a lower
//! bound of each part is a lower bound of the graph.

use super::Order;
use crate::graph::memory::MemoryOptions;
use crate::graph::{Graph, Op, OpId, Tensor, TensorId, TensorKind};

/// One part: a standalone graph and what it stands for in the whole.
#[derive(Debug, Clone)]
pub struct Part {
    /// The part as a graph of its own (op `i` is `ops[i]` of the whole).
    pub graph: Graph,
    /// The whole graph's id of each of the part's ops, in the order of the
    /// given topological order.
    pub ops: Vec<OpId>,
    /// Bytes live across the whole part that the part does not touch.
    pub constant: u64,
}

/// A graph cut at its forced prefixes.
#[derive(Debug, Clone)]
pub struct Decomposition {
    /// The parts, in the order every schedule runs them.
    pub parts: Vec<Part>,
    /// Memory of the whole graph before its first op.
    pub start: u64,
    /// The memory model the parts are evaluated with (see the module doc).
    pub part_options: MemoryOptions,
}

impl Decomposition {
    /// The whole graph's order from an order of each part (part-local ids).
    pub fn concat(&self, orders: &[Order]) -> Order {
        self.parts.iter().zip(orders).flat_map(|(part, o)| o.iter().map(|v| part.ops[v.index()])).collect()
    }

    /// The whole graph's peak from each part's peak (or a bound from each
    /// part's bound).
    pub fn combine(&self, part_values: &[u64]) -> u64 {
        self.parts.iter().zip(part_values).map(|(part, &v)| part.constant + v).fold(self.start, u64::max)
    }

    /// The restriction of an order of the whole graph to each part, in
    /// part-local ids.
    pub fn restrict(&self, order: &[OpId], n_ops: usize) -> Vec<Order> {
        let mut where_: Vec<(u32, u32)> = vec![(u32::MAX, 0); n_ops];
        for (pi, part) in self.parts.iter().enumerate() {
            for (li, v) in part.ops.iter().enumerate() {
                where_[v.index()] = (pi as u32, li as u32);
            }
        }
        let mut out: Vec<Order> = self.parts.iter().map(|p| Vec::with_capacity(p.ops.len())).collect();
        for v in order {
            if let Some(&(pi, li)) = where_.get(v.index()) {
                if let Some(o) = out.get_mut(pi as usize) {
                    o.push(OpId(li));
                }
            }
        }
        out
    }
}

/// Number of strict ancestors of every op, with bitsets over 4096 sources
/// at a time. `order` must be a topological order of all ops.
pub fn ancestor_counts(graph: &Graph, order: &[OpId]) -> Vec<u32> {
    const WORDS: usize = 64;
    let n = order.len();
    let mut pos = vec![0usize; graph.ops.len()];
    for (i, v) in order.iter().enumerate() {
        pos[v.index()] = i;
    }
    let preds: Vec<Vec<usize>> =
        order.iter().map(|&v| graph.predecessors(v).iter().map(|p| pos[p.index()]).collect()).collect();
    let mut counts = vec![0u32; n];
    let mut bits = vec![0u64; n * WORDS];
    let mut lo = 0;
    while lo < n {
        let hi = (lo + WORDS * 64).min(n);
        bits[lo * WORDS..].iter_mut().for_each(|w| *w = 0);
        for i in lo..n {
            let (before, rest) = bits.split_at_mut(i * WORDS);
            let mine = &mut rest[..WORDS];
            for &p in &preds[i] {
                if p < lo {
                    continue;
                }
                let theirs = &before[p * WORDS..(p + 1) * WORDS];
                for (a, b) in mine.iter_mut().zip(theirs) {
                    *a |= *b;
                }
                if p < hi {
                    let k = p - lo;
                    mine[k / 64] |= 1 << (k % 64);
                }
            }
            counts[i] += mine.iter().map(|w| w.count_ones()).sum::<u32>();
        }
        lo = hi;
    }
    let mut by_op = vec![0u32; graph.ops.len()];
    for (i, v) in order.iter().enumerate() {
        by_op[v.index()] = counts[i];
    }
    by_op
}

/// The sizes of the forced prefixes of `order` (a topological order of all
/// ops), from 0 to n: every order of the graph runs exactly the first
/// `sizes[k]` ops of `order` first, as a set.
pub fn forced_prefixes(graph: &Graph, order: &[OpId]) -> Vec<usize> {
    let n = order.len();
    let anc = ancestor_counts(graph, order);
    let mut waiting: Vec<usize> = graph.op_ids().map(|v| graph.predecessors(v).len()).collect();
    let succs: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.successors(v)).collect();
    // R: ops not yet run whose producers have all run.
    let mut ready_count: u64 = 0;
    let mut ready_anc: u64 = 0;
    for v in graph.op_ids() {
        if waiting[v.index()] == 0 {
            ready_count += 1;
            ready_anc += u64::from(anc[v.index()]);
        }
    }
    let mut cuts = vec![0];
    for (i, &v) in order.iter().enumerate() {
        // v leaves R (it is ready: order is topological).
        ready_count -= 1;
        ready_anc -= u64::from(anc[v.index()]);
        for &s in &succs[v.index()] {
            waiting[s.index()] -= 1;
            if waiting[s.index()] == 0 {
                ready_count += 1;
                ready_anc += u64::from(anc[s.index()]);
            }
        }
        let size = i + 1;
        if size < n && ready_count * size as u64 == ready_anc {
            cuts.push(size);
        }
    }
    if n > 0 {
        cuts.push(n);
    }
    cuts
}

/// Cuts `graph` at its forced prefixes along `order` (a topological order
/// of all ops). A graph with no cut is one part.
pub fn decompose(graph: &Graph, order: &[OpId], opts: &MemoryOptions) -> Decomposition {
    split(graph, order, opts, &forced_prefixes(graph, order))
}

/// Parts of `order` between the positions `cuts` (increasing, from 0 to
/// the number of ops), whether or not the prefixes are forced.
///
/// Every edge still goes from a part to the same or a later one (`order` is
/// topological), so the peak formula of the module doc holds for every
/// choice of part orders: replacing one part's order by a better order of
/// its standalone graph lowers that part's term and leaves the others. This
/// makes any window of an order a neighbourhood to search exactly. The
/// converse (every order of the graph is a concatenation) needs forced
/// prefixes, so only [`decompose`] may be used for proofs.
pub fn split(graph: &Graph, order: &[OpId], opts: &MemoryOptions, cuts: &[usize]) -> Decomposition {
    let k = cuts.len().saturating_sub(1);
    let mut part_of = vec![0usize; graph.ops.len()];
    for j in 0..k {
        for v in &order[cuts[j]..cuts[j + 1]] {
            part_of[v.index()] = j;
        }
    }
    let part_options = MemoryOptions { inputs_live_whole_run: false, inplace: opts.inplace };
    // Constants: tensors live across parts they do not touch. For each
    // tensor, the parts from its birth to its death get its bytes, then the
    // parts that touch it take them back.
    let mut diff = vec![0i128; k + 1];
    let mut constant_fix = vec![0u64; k];
    for t in &graph.tensors {
        if t.bytes == 0 || k == 0 {
            continue;
        }
        let is_input = t.kind == TensorKind::GraphInput;
        if t.producer.is_none() && !is_input {
            continue;
        }
        let never_freed = t.graph_output || (is_input && opts.inputs_live_whole_run);
        let birth = t.producer.map_or(0, |p| part_of[p.index()]);
        let last_reader = t.consumers.iter().map(|c| part_of[c.index()]).max();
        let death = if never_freed {
            k - 1
        } else {
            match last_reader {
                Some(r) => r,
                None => continue,
            }
        };
        diff[birth] += i128::from(t.bytes);
        diff[death + 1] -= i128::from(t.bytes);
        let mut touching: Vec<usize> = t.consumers.iter().map(|c| part_of[c.index()]).collect();
        if let Some(p) = t.producer {
            touching.push(part_of[p.index()]);
        }
        touching.sort_unstable();
        touching.dedup();
        for j in touching {
            constant_fix[j] += t.bytes;
        }
    }
    let mut parts = Vec::with_capacity(k);
    let mut acc: i128 = 0;
    for j in 0..k {
        acc += diff[j];
        let constant = u64::try_from(acc - i128::from(constant_fix[j])).unwrap_or(0);
        let ops: Vec<OpId> = order[cuts[j]..cuts[j + 1]].to_vec();
        let graph_j = part_graph(graph, &ops, &part_of, j, opts);
        parts.push(Part { graph: graph_j, ops, constant });
    }
    Decomposition { parts, start: graph.input_bytes(), part_options }
}

/// The standalone graph of part `j` (see the module doc).
fn part_graph(graph: &Graph, ops: &[OpId], part_of: &[usize], j: usize, opts: &MemoryOptions) -> Graph {
    let mut local_tensor: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut tensors: Vec<Tensor> = Vec::new();
    let mut local_ops: Vec<Op> = Vec::with_capacity(ops.len());
    let mut map_tensor = |t: TensorId, tensors: &mut Vec<Tensor>| -> TensorId {
        if let Some(&l) = local_tensor.get(&t.0) {
            return TensorId(l);
        }
        let src = graph.tensor(t);
        let produced_here = src.producer.is_some_and(|p| part_of[p.index()] == j);
        let read_later = src.consumers.iter().any(|c| part_of[c.index()] > j);
        let is_input = src.kind == TensorKind::GraphInput;
        let kind = match src.kind {
            TensorKind::Weight => TensorKind::Weight,
            _ if produced_here => TensorKind::Activation,
            _ => TensorKind::GraphInput,
        };
        let bytes = if kind == TensorKind::GraphInput && src.producer.is_none() && !is_input { 0 } else { src.bytes };
        let graph_output = src.graph_output || read_later || (is_input && opts.inputs_live_whole_run);
        let l = tensors.len() as u32;
        tensors.push(Tensor {
            name: src.name.clone(),
            bytes,
            kind,
            producer: None,
            consumers: Vec::new(),
            graph_output,
            body: src.body,
        });
        local_tensor.insert(t.0, l);
        TensorId(l)
    };
    for (li, &v) in ops.iter().enumerate() {
        let op = graph.op(v);
        let inputs: Vec<TensorId> = op.inputs.iter().map(|&t| map_tensor(t, &mut tensors)).collect();
        let outputs: Vec<TensorId> = op.outputs.iter().map(|&t| map_tensor(t, &mut tensors)).collect();
        for &t in &inputs {
            tensors[t.index()].consumers.push(OpId(li as u32));
        }
        for &t in &outputs {
            tensors[t.index()].producer = Some(OpId(li as u32));
        }
        local_ops.push(Op {
            name: op.name.clone(),
            op_type: op.op_type.clone(),
            inputs,
            outputs,
            inplace_capable: op.inplace_capable,
        });
    }
    // Consumers in file (local id) order, as the graph builder keeps them.
    for t in &mut tensors {
        t.consumers.sort_unstable();
    }
    Graph { ops: local_ops, tensors }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::from_lists;
    use crate::graph::memory::evaluate;

    #[test]
    fn a_chain_of_diamonds_splits_at_the_joins() {
        // op0: x -> a; op1: a -> b; op2: a -> c; op3: (b, c) -> d; op4: d -> e
        let g = from_lists(
            &[(vec![0], vec![1]), (vec![1], vec![2]), (vec![1], vec![3]), (vec![2, 3], vec![4]), (vec![4], vec![5])],
            &[4, 8, 2, 3, 5, 1],
            &[5],
        );
        let order: Vec<OpId> = g.op_ids().collect();
        assert_eq!(forced_prefixes(&g, &order), vec![0, 1, 3, 4, 5]);
        let opts = MemoryOptions::default();
        let d = decompose(&g, &order, &opts);
        assert_eq!(d.parts.len(), 4);
        let orders: Vec<Order> = d.parts.iter().map(|p| p.graph.op_ids().collect()).collect();
        let peaks: Vec<u64> =
            d.parts.iter().zip(&orders).map(|(p, o)| evaluate(&p.graph, o, &d.part_options).peak).collect();
        assert_eq!(d.combine(&peaks), evaluate(&g, &d.concat(&orders), &opts).peak);
    }

    #[test]
    fn two_parallel_ops_feeding_two_make_a_forced_prefix() {
        // op0, op1 read x; op2 and op3 both read both outputs.
        let g = from_lists(
            &[(vec![0], vec![1]), (vec![0], vec![2]), (vec![1, 2], vec![3]), (vec![1, 2], vec![4])],
            &[1, 1, 1, 1, 1],
            &[3, 4],
        );
        let order: Vec<OpId> = g.op_ids().collect();
        assert_eq!(forced_prefixes(&g, &order), vec![0, 2, 4]);
    }
}
