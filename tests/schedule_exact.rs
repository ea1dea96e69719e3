//! The exact methods against brute force: the DP over executed sets, the
//! decomposition at forced prefixes, and the parallel-chains method.

mod common;

use common::{adversarial_bytes, all_memory_options, all_orders, brute_force, random_graph, Rng};
use onnx_memsched::graph::memory::{evaluate, MemoryOptions};
use onnx_memsched::graph::topo::check_order;
use onnx_memsched::graph::{from_lists, Graph, OpId};
use onnx_memsched::schedule::dp::{self, DpLimits, DpOutcome};
use onnx_memsched::schedule::{chains, decompose, heuristics, Order};

fn proved(outcome: DpOutcome) -> (Order, u64, bool) {
    match outcome {
        DpOutcome::Proved { order, peak, improved } => (order, peak, improved),
        other => panic!("the DP did not finish: {other:?}"),
    }
}

#[test]
fn dp_equals_brute_force() {
    let mut rng = Rng::new(99);
    for case in 0..2500 {
        let n = 1 + rng.below(10) as usize;
        let graph = random_graph(&mut rng, n);
        let groups = dp::singletons(&graph);
        for opts in all_memory_options() {
            let (best, _) = brute_force(&graph, &opts);
            // No incumbent: the search finds the optimum itself.
            let (order, peak, _) = proved(dp::solve(&graph, &groups, &opts, None, 0, &DpLimits::default()).outcome);
            assert!(check_order(&graph, &order).is_ok(), "case {case}");
            assert_eq!(peak, best, "case {case} {opts:?}\n{graph:#?}");
            assert_eq!(evaluate(&graph, &order, &opts).peak, peak, "case {case}");
            // With a heuristic incumbent as budget: better or proved.
            let inc = heuristics::kahn_bfs(&graph);
            let inc_peak = evaluate(&graph, &inc, &opts).peak;
            let (order, peak, improved) =
                proved(dp::solve(&graph, &groups, &opts, Some(&inc), 0, &DpLimits::default()).outcome);
            assert_eq!(peak, best, "case {case} {opts:?} with incumbent");
            assert_eq!(improved, best < inc_peak);
            assert_eq!(evaluate(&graph, &order, &opts).peak, peak);
        }
    }
}

#[test]
fn dp_on_fused_groups_equals_brute_force() {
    let mut rng = Rng::new(5);
    for case in 0..1500 {
        let n = 1 + rng.below(9) as usize;
        let graph = random_graph(&mut rng, n);
        for opts in all_memory_options() {
            let (best, _) = brute_force(&graph, &opts);
            let groups = onnx_memsched::schedule::fusion::fuse(&graph, &opts);
            let (order, peak, _) = proved(dp::solve(&graph, &groups, &opts, None, 0, &DpLimits::default()).outcome);
            assert!(check_order(&graph, &order).is_ok());
            assert_eq!(peak, best, "case {case} {opts:?} groups {groups:?}\n{graph:#?}");
        }
    }
}

#[test]
fn dp_gives_up_cleanly() {
    // 40 independent ops: far too many states for a cap of 1000.
    let ops: Vec<(Vec<usize>, Vec<usize>)> = (0..40).map(|i| (vec![0], vec![i + 1])).collect();
    let bytes: Vec<u64> = (0..41).map(|i| 1 + (i * 7919 % 13) as u64).collect();
    let outputs: Vec<usize> = (1..41).collect();
    let g = from_lists(&ops, &bytes, &outputs);
    let opts = MemoryOptions::default();
    let limits = DpLimits { deadline: None, max_states: 1000 };
    let r = dp::solve(&g, &dp::singletons(&g), &opts, None, 0, &limits);
    assert_eq!(r.outcome, DpOutcome::TooManyStates);
    let past = std::time::Instant::now();
    let limits = DpLimits { deadline: Some(past), max_states: usize::MAX };
    let r = dp::solve(&g, &dp::singletons(&g), &opts, None, 0, &limits);
    assert!(matches!(r.outcome, DpOutcome::Timeout | DpOutcome::Proved { .. }));
}

#[test]
fn beam_is_valid_and_never_below_the_optimum() {
    let mut rng = Rng::new(31);
    for case in 0..800 {
        let n = 1 + rng.below(9) as usize;
        let graph = random_graph(&mut rng, n);
        for opts in all_memory_options() {
            let (best, _) = brute_force(&graph, &opts);
            let (order, peak) = dp::beam(&graph, &dp::singletons(&graph), &opts, 8, None).expect("beam");
            assert!(check_order(&graph, &order).is_ok(), "case {case}");
            assert_eq!(evaluate(&graph, &order, &opts).peak, peak);
            assert!(peak >= best);
        }
    }
}

/// Forced prefixes by definition: the first `i` ops of `order` form a set
/// that every topological order runs first.
fn forced_by_enumeration(graph: &Graph, order: &[OpId]) -> Vec<usize> {
    let all = all_orders(graph);
    let n = order.len();
    (0..=n)
        .filter(|&i| {
            let mut want: Vec<OpId> = order[..i].to_vec();
            want.sort();
            all.iter().all(|o| {
                let mut got = o[..i].to_vec();
                got.sort();
                got == want
            })
        })
        .collect()
}

#[test]
fn decomposition_is_exact() {
    let mut rng = Rng::new(17);
    let mut split = 0;
    for case in 0..2000 {
        let n = 1 + rng.below(9) as usize;
        let graph = random_graph(&mut rng, n);
        let order = onnx_memsched::graph::topo::stable_order(&graph).expect("acyclic");
        let cuts = decompose::forced_prefixes(&graph, &order);
        assert_eq!(cuts, forced_by_enumeration(&graph, &order), "case {case}\n{graph:#?}");
        for opts in all_memory_options() {
            let d = decompose::decompose(&graph, &order, &opts);
            split += usize::from(d.parts.len() > 1);
            assert_eq!(d.parts.iter().map(|p| p.ops.len()).sum::<usize>(), n);
            // Any order: the part peaks combine to the whole's peak.
            let some = heuristics::lpmf(&graph, &opts);
            let parts = d.restrict(&some, n);
            let peaks: Vec<u64> =
                d.parts.iter().zip(&parts).map(|(p, o)| evaluate(&p.graph, o, &d.part_options).peak).collect();
            assert_eq!(d.concat(&parts), some, "case {case}: restrict then concat is the identity");
            assert_eq!(d.combine(&peaks), evaluate(&graph, &some, &opts).peak, "case {case} {opts:?}\n{graph:#?}");
            // Optimal parts concatenate to an optimal whole.
            let (best, _) = brute_force(&graph, &opts);
            let optimal: Vec<(u64, Order)> = d.parts.iter().map(|p| brute_force(&p.graph, &d.part_options)).collect();
            let whole = d.concat(&optimal.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>());
            assert!(check_order(&graph, &whole).is_ok());
            assert_eq!(evaluate(&graph, &whole, &opts).peak, best, "case {case} {opts:?}");
            assert_eq!(d.combine(&optimal.iter().map(|(p, _)| *p).collect::<Vec<_>>()), best);
        }
    }
    assert!(split > 1000, "only {split} decomposed cases");
}

/// Disjoint chains, optionally fed by one shared input (freeable or not),
/// with private inputs and outputs now and then.
fn random_chains(rng: &mut Rng, max_ops: usize) -> Graph {
    let mut bytes = vec![adversarial_bytes(rng)];
    let mut ops = Vec::new();
    let mut outputs = Vec::new();
    if rng.chance(30) {
        outputs.push(0);
    }
    let total = 1 + rng.below(max_ops as u64) as usize;
    while ops.len() < total {
        let len = 1 + rng.below((total - ops.len()).min(4) as u64) as usize;
        let mut prev: Option<usize> = None;
        for _ in 0..len {
            let mut ins = Vec::new();
            match prev {
                Some(t) => ins.push(t),
                None => {
                    if rng.chance(85) {
                        ins.push(0);
                    }
                }
            }
            if rng.chance(15) {
                bytes.push(adversarial_bytes(rng));
                ins.push(bytes.len() - 1);
            }
            bytes.push(adversarial_bytes(rng));
            let out = bytes.len() - 1;
            let mut outs = vec![out];
            if rng.chance(10) {
                bytes.push(adversarial_bytes(rng));
                outs.push(bytes.len() - 1);
            }
            ops.push((ins, outs));
            prev = Some(out);
        }
        if let Some(t) = prev {
            outputs.push(t);
        }
    }
    let mut g = from_lists(&ops, &bytes, &outputs);
    for op in &mut g.ops {
        op.inplace_capable = op.outputs.len() == 1 && rng.chance(50);
    }
    g
}

#[test]
fn parallel_chains_match_brute_force() {
    let mut rng = Rng::new(4242);
    let (mut exact, mut total) = (0, 0);
    for case in 0..3000 {
        let graph = random_chains(&mut rng, 8);
        for opts in all_memory_options() {
            let Some(r) = chains::solve(&graph, &opts) else { continue };
            total += 1;
            let (best, _) = brute_force(&graph, &opts);
            assert!(check_order(&graph, &r.order).is_ok(), "case {case}");
            assert_eq!(evaluate(&graph, &r.order, &opts).peak, r.peak);
            assert!(
                r.lower_bound <= best,
                "case {case} {opts:?}: bound {} > optimum {best}\n{graph:#?}",
                r.lower_bound
            );
            assert!(r.peak >= best);
            if r.lower_bound == r.peak {
                exact += 1;
            }
        }
    }
    assert!(total > 5000, "only {total} chain graphs recognised");
    assert!(exact * 10 > total * 9, "proved only {exact} of {total}");
}

#[test]
fn chains_without_a_freeable_fork_are_always_exact() {
    let mut rng = Rng::new(77);
    for case in 0..2000 {
        let mut graph = random_chains(&mut rng, 8);
        graph.tensors[0].graph_output = true;
        for opts in all_memory_options() {
            let Some(r) = chains::solve(&graph, &opts) else { continue };
            let (best, _) = brute_force(&graph, &opts);
            assert_eq!(r.peak, best, "case {case} {opts:?}\n{graph:#?}");
            assert_eq!(r.lower_bound, best, "case {case}: the sum model must be exact");
        }
    }
}

/// The band search never returns a worse or invalid order; with a band as
/// wide as the graph it is the exact DP and finds the optimum, on singletons
/// and on fused groups; a narrow band on the same graphs still only improves.
#[test]
fn band_search_is_exact_when_the_band_spans_the_graph() {
    use onnx_memsched::schedule::band::{improve, BandLimits};
    let mut rng = Rng::new(77);
    let mut narrow_below_optimum_gap = 0;
    for case in 0..1500 {
        let n = 1 + rng.below(10) as usize;
        let graph = random_graph(&mut rng, n);
        for opts in all_memory_options() {
            let (best, _) = brute_force(&graph, &opts);
            let inc = heuristics::kahn_bfs(&graph);
            let inc_peak = evaluate(&graph, &inc, &opts).peak;
            for groups in [dp::singletons(&graph), onnx_memsched::schedule::fusion::fuse(&graph, &opts)] {
                for width in [1, 2, n] {
                    let limits = BandLimits { width, max_layer: usize::MAX, max_states: 1 << 24, deadline: None };
                    let (order, peak, _) = improve(&graph, &groups, &opts, &inc, &limits);
                    assert!(check_order(&graph, &order).is_ok(), "case {case}");
                    assert_eq!(evaluate(&graph, &order, &opts).peak, peak, "case {case}");
                    assert!(best <= peak && peak <= inc_peak, "case {case} width {width}");
                    if width == n {
                        assert_eq!(peak, best, "case {case} {opts:?} groups {groups:?}\n{graph:#?}");
                    } else if peak > best {
                        narrow_below_optimum_gap += 1;
                    }
                }
            }
        }
    }
    // Narrow bands do miss optima: the width matters (the test can see it).
    assert!(narrow_below_optimum_gap > 0);
}

/// Window search never returns a worse or invalid order, and with a window
/// as large as the graph it is the exact DP.
#[test]
fn window_search_is_exact_when_the_window_spans_the_graph() {
    use onnx_memsched::schedule::window::{improve, WindowLimits};
    use std::time::{Duration, Instant};
    let mut rng = Rng::new(88);
    let mut improved_by_small_windows = 0;
    for case in 0..1500 {
        let n = 1 + rng.below(10) as usize;
        let graph = random_graph(&mut rng, n);
        for opts in all_memory_options() {
            let (best, _) = brute_force(&graph, &opts);
            let inc = heuristics::kahn_bfs(&graph);
            let inc_peak = evaluate(&graph, &inc, &opts).peak;
            for size in [3, n] {
                let limits = WindowLimits {
                    ops: size,
                    max_states: 1 << 20,
                    per_window: Duration::from_secs(10),
                    deadline: Instant::now() + Duration::from_secs(60),
                };
                let (order, peak, _) = improve(&graph, &opts, &inc, &limits);
                assert!(check_order(&graph, &order).is_ok(), "case {case}");
                assert_eq!(evaluate(&graph, &order, &opts).peak, peak, "case {case}");
                assert!(best <= peak && peak <= inc_peak, "case {case} size {size}");
                if size >= n {
                    assert_eq!(peak, best, "case {case} {opts:?}\n{graph:#?}");
                } else if peak < inc_peak {
                    improved_by_small_windows += 1;
                }
            }
        }
    }
    assert!(improved_by_small_windows > 0);
}
