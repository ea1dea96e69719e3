//! The heuristic portfolio: every scheduler returns a topological order of
//! all ops on thousands of random graphs, and the big synthetic graphs are
//! scheduled in milliseconds.

mod common;

use common::{all_memory_options, random_graph, Rng};
use onnx_memsched::graph::memory::evaluate;
use onnx_memsched::graph::topo::check_order;
use onnx_memsched::graph::{from_lists, Graph};
use onnx_memsched::schedule::heuristics::{self, PORTFOLIO};
use onnx_memsched::schedule::Scheduler;
use std::time::Instant;

#[test]
fn every_heuristic_returns_a_topological_order() {
    let mut rng = Rng::new(2024);
    for case in 0..3000 {
        let n = 1 + rng.below(if case % 10 == 0 { 120 } else { 25 }) as usize;
        let graph = random_graph(&mut rng, n);
        for opts in all_memory_options() {
            let cands = heuristics::portfolio(&graph, &opts);
            assert_eq!(cands.len(), PORTFOLIO.len());
            for c in &cands {
                assert!(
                    check_order(&graph, &c.order).is_ok(),
                    "case {case} {:?}: {:?}",
                    c.scheduler,
                    check_order(&graph, &c.order)
                );
                assert_eq!(c.peak, evaluate(&graph, &c.order, &opts).peak);
            }
            assert!(cands.windows(2).all(|w| w[0].peak <= w[1].peak), "portfolio sorted best first");
        }
    }
}

#[test]
fn non_heuristics_and_cycles_give_none() {
    let g = from_lists(&[(vec![0], vec![1])], &[1, 1], &[1]);
    let opts = Default::default();
    for s in [Scheduler::Dp, Scheduler::Ilp, Scheduler::Auto] {
        assert!(heuristics::run(&g, s, &opts).is_none());
    }
    let cyclic = from_lists(&[(vec![1], vec![0]), (vec![0], vec![1])], &[1, 1], &[]);
    assert!(heuristics::run(&cyclic, Scheduler::Greedy, &opts).is_none());
    assert!(heuristics::portfolio(&cyclic, &opts).is_empty());
}

/// A graph like the corpus's `many_small`: `n` small ops, each reading one
/// to three recent tensors (local wiring).
pub fn local_wiring(n: usize, seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let mut bytes = vec![256u64];
    let mut ops = Vec::new();
    for _ in 0..n {
        let reads = 1 + rng.below(3) as usize;
        let mut ins = Vec::new();
        for _ in 0..reads {
            let back = 1 + rng.below(12.min(bytes.len() as u64)) as usize;
            let t = bytes.len() - back;
            if !ins.contains(&t) {
                ins.push(t);
            }
        }
        bytes.push([64, 128, 256, 512, 1024][rng.below(5) as usize]);
        ops.push((ins, vec![bytes.len() - 1]));
    }
    from_lists(&ops, &bytes, &[bytes.len() - 1])
}

#[test]
fn heuristics_are_fast_on_10k_ops() {
    let g = local_wiring(10_000, 1);
    for opts in all_memory_options() {
        for &s in PORTFOLIO {
            let t = Instant::now();
            let order = heuristics::run(&g, s, &opts).expect("acyclic");
            let ms = t.elapsed().as_millis();
            assert!(check_order(&g, &order).is_ok());
            // Generous for debug-ish builds; release is ~1-5 ms.
            assert!(ms < 2000, "{} took {ms} ms", s.name());
        }
    }
}
