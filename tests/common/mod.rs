//! Shared test helpers: random graphs with adversarial sizes and a
//! brute-force optimum that shares no code with the schedulers.
#![allow(dead_code)]

pub mod fuzz_gen;
pub mod nested_sim;
pub mod onnx_models;

use onnx_memsched::graph::memory::{evaluate, MemoryOptions};
use onnx_memsched::graph::{from_lists, Graph, OpId};

/// A small deterministic PRNG (xorshift64*), so failures reproduce from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Adversarial tensor sizes: mostly tiny or huge, some in between, some zero.
pub fn adversarial_bytes(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0 => 0,
        1..=3 => 1 + rng.below(4),
        4..=6 => 1000 + rng.below(3000),
        7 => 100_000,
        _ => 1 + rng.below(200),
    }
}

/// A random DAG of `n` ops: each op reads 0..=3 earlier tensors (graph
/// inputs or outputs of earlier ops, shared freely) and writes 1..=2 tensors
/// (sometimes 0 when it reads something). Some tensors are graph outputs,
/// some outputs are never read. Ops are listed in a random topological
/// order, not always the creation order.
pub fn random_graph(rng: &mut Rng, n: usize) -> Graph {
    let inputs = 1 + rng.below(2) as usize;
    let mut bytes: Vec<u64> = (0..inputs).map(|_| adversarial_bytes(rng)).collect();
    let mut ops: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for _ in 0..n {
        let reads = rng.below(4) as usize;
        let mut ins = Vec::new();
        for _ in 0..reads.max(1) {
            // Prefer recent tensors, so chains and diamonds appear.
            let t = if rng.chance(60) && bytes.len() > 3 {
                bytes.len() - 1 - rng.below(3) as usize
            } else {
                rng.below(bytes.len() as u64) as usize
            };
            if !ins.contains(&t) {
                ins.push(t);
            }
        }
        let writes = if rng.chance(10) { 0 } else { 1 + rng.below(2) as usize };
        let outs: Vec<usize> = (0..writes)
            .map(|_| {
                bytes.push(adversarial_bytes(rng));
                bytes.len() - 1
            })
            .collect();
        ops.push((ins, outs));
    }
    let outputs: Vec<usize> = (inputs..bytes.len()).filter(|_| rng.chance(15)).collect();
    // Shuffle the op list into another topological order: repeatedly pick a
    // random op whose inputs are all available.
    let mut producer = vec![usize::MAX; bytes.len()];
    for (i, (_, outs)) in ops.iter().enumerate() {
        for &t in outs {
            producer[t] = i;
        }
    }
    let mut done = vec![false; n];
    let mut shuffled = Vec::new();
    while shuffled.len() < n {
        let ready: Vec<usize> = (0..n)
            .filter(|&i| !done[i] && ops[i].0.iter().all(|&t| producer[t] == usize::MAX || done[producer[t]]))
            .collect();
        let pick = ready[rng.below(ready.len() as u64) as usize];
        done[pick] = true;
        shuffled.push(ops[pick].clone());
    }
    let mut graph = from_lists(&shuffled, &bytes, &outputs);
    for op in &mut graph.ops {
        op.inplace_capable = op.outputs.len() == 1 && rng.chance(40);
    }
    graph
}

/// Every topological order of `graph`, enumerated (use on small graphs only).
pub fn all_orders(graph: &Graph) -> Vec<Vec<OpId>> {
    let n = graph.ops.len();
    let preds: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.predecessors(v)).collect();
    let mut out = Vec::new();
    let mut order = Vec::new();
    let mut used = vec![false; n];
    fn rec(preds: &[Vec<OpId>], used: &mut Vec<bool>, order: &mut Vec<OpId>, out: &mut Vec<Vec<OpId>>) {
        if order.len() == used.len() {
            out.push(order.clone());
            return;
        }
        for v in 0..used.len() {
            if !used[v] && preds[v].iter().all(|p| used[p.index()]) {
                used[v] = true;
                order.push(OpId(v as u32));
                rec(preds, used, order, out);
                order.pop();
                used[v] = false;
            }
        }
    }
    rec(&preds, &mut used, &mut order, &mut out);
    out
}

/// The least peak over all topological orders, by enumeration, with an
/// order that reaches it.
pub fn brute_force(graph: &Graph, opts: &MemoryOptions) -> (u64, Vec<OpId>) {
    all_orders(graph)
        .into_iter()
        .map(|o| (evaluate(graph, &o, opts).peak, o))
        .min_by_key(|(p, _)| *p)
        .expect("a DAG has at least one order")
}

/// Memory options to try in property tests: the default and each switch.
pub fn all_memory_options() -> [MemoryOptions; 3] {
    [
        MemoryOptions::default(),
        MemoryOptions { inputs_live_whole_run: true, inplace: false },
        MemoryOptions { inputs_live_whole_run: false, inplace: true },
    ]
}
