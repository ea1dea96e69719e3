//! The driver: `auto` against brute force on small graphs, every method's
//! result checked, and timings on big synthetic graphs.

mod common;

use common::{all_memory_options, brute_force, random_graph, Rng};
use onnx_memsched::graph::memory::{evaluate, MemoryOptions};
use onnx_memsched::graph::topo::check_order;
use onnx_memsched::graph::{from_lists, Graph};
use onnx_memsched::schedule::driver::{solve, Solution, SolveError, SolveOptions};
use onnx_memsched::schedule::Scheduler;
use std::time::{Duration, Instant};

fn check(graph: &Graph, s: &Solution, opts: &MemoryOptions) {
    assert!(check_order(graph, &s.order).is_ok(), "{:?}", check_order(graph, &s.order));
    assert_eq!(evaluate(graph, &s.order, opts).peak, s.peak, "claimed peak");
    assert!(s.lower_bound <= s.peak);
    if s.optimal {
        assert_eq!(s.lower_bound, s.peak);
    }
}

#[test]
fn auto_is_valid_and_never_claims_a_false_optimum() {
    let mut rng = Rng::new(8080);
    let mut proved = 0;
    let mut total = 0;
    for case in 0..2000 {
        let n = 1 + rng.below(10) as usize;
        let graph = random_graph(&mut rng, n);
        for memory in all_memory_options() {
            // No gap: small graphs are always solved to a proof.
            let opts =
                SolveOptions { memory, time_limit: Duration::from_secs(20), gap: 0.0, ..SolveOptions::default() };
            let s = solve(&graph, &opts).expect("acyclic");
            check(&graph, &s, &memory);
            let (best, _) = brute_force(&graph, &memory);
            assert!(s.lower_bound <= best, "case {case}: bound above the optimum");
            assert!(s.peak >= best);
            if s.optimal {
                assert_eq!(s.peak, best, "case {case} {memory:?}: false optimum\n{graph:#?}");
            }
            // Small graphs are always solved to optimality.
            assert_eq!(s.peak, best, "case {case} {memory:?}: {}\n{graph:#?}", s.method);
            assert!(s.optimal, "case {case}: not proved");
            proved += usize::from(s.optimal);
            total += 1;
        }
    }
    assert_eq!(proved, total);
}

#[test]
fn every_method_returns_a_checked_order() {
    let mut rng = Rng::new(3);
    for case in 0..150 {
        let n = 1 + rng.below(9) as usize;
        let graph = random_graph(&mut rng, n);
        for memory in all_memory_options() {
            let (best, _) = brute_force(&graph, &memory);
            for &(method, _, _) in Scheduler::ALL {
                let opts =
                    SolveOptions { memory, time_limit: Duration::from_secs(20), method, progress: None, gap: 0.0 };
                let s = solve(&graph, &opts).expect("acyclic");
                check(&graph, &s, &memory);
                if s.optimal {
                    assert_eq!(s.peak, best, "case {case} {}: false optimum", method.name());
                }
                if method == Scheduler::Dp {
                    assert_eq!(s.peak, best, "case {case}: dp");
                }
            }
        }
    }
}

#[test]
fn a_cycle_is_an_error_not_a_panic() {
    let g = from_lists(&[(vec![1], vec![0]), (vec![0], vec![1])], &[1, 1], &[]);
    assert!(matches!(solve(&g, &SolveOptions::default()), Err(SolveError::Cycle(_))));
}

#[test]
fn progress_is_reported() {
    let lines = std::cell::RefCell::new(Vec::<String>::new());
    let record = |s: &str| lines.borrow_mut().push(s.to_string());
    let g = fork_join(8, 3, 1);
    let opts = SolveOptions { progress: Some(&record), ..SolveOptions::default() };
    let s = solve(&g, &opts).expect("acyclic");
    check(&g, &s, &MemoryOptions::default());
    assert!(!lines.borrow().is_empty());
}

/// One input -> a stem op -> `branches` parallel chains of `depth` ops with
/// varied widths -> Concat -> a head op, like the corpus's `wide_fanout`.
pub fn fork_join(branches: usize, depth: usize, seed: u64) -> Graph {
    let mut rng = Rng::new(seed);
    let unit = 12_544u64; // 56x56 floats per channel
    let mut bytes = vec![64 * unit, 64 * unit];
    let mut ops = vec![(vec![0], vec![1])];
    let mut ends = Vec::new();
    for _ in 0..branches {
        let len = 1 + rng.below(depth as u64) as usize;
        let mut prev = 1;
        for k in 0..len {
            let ch = if k + 1 == len { 4 << rng.below(4) } else { 16 << rng.below(7) };
            bytes.push(ch * unit);
            ops.push((vec![prev], vec![bytes.len() - 1]));
            prev = bytes.len() - 1;
        }
        ends.push(prev);
    }
    bytes.push(ends.iter().map(|&t| bytes[t]).sum());
    let concat = bytes.len() - 1;
    ops.push((ends, vec![concat]));
    bytes.push(64 * unit);
    ops.push((vec![concat], vec![bytes.len() - 1]));
    let out = bytes.len() - 1;
    from_lists(&ops, &bytes, &[out])
}

/// Like the corpus's `many_small`: small ops reading recent tensors.
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
fn wide_fork_join_is_proved_quickly() {
    let g = fork_join(64, 5, 7);
    for memory in all_memory_options() {
        let t = Instant::now();
        let opts = SolveOptions { memory, time_limit: Duration::from_secs(20), ..SolveOptions::default() };
        let s = solve(&g, &opts).expect("acyclic");
        check(&g, &s, &memory);
        assert!(s.optimal, "{memory:?}: {} peak {} lb {}", s.method, s.peak, s.lower_bound);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn big_local_wiring_is_valid_within_the_limit() {
    let g = local_wiring(10_000, 2);
    let t = Instant::now();
    let memory = MemoryOptions::default();
    let opts = SolveOptions { memory, time_limit: Duration::from_secs(3), ..SolveOptions::default() };
    let s = solve(&g, &opts).expect("acyclic");
    check(&g, &s, &memory);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    // The searches (band, cut bounds, windows) never lose what the
    // portfolio had, and the bound is at least LB2.
    assert!(s.peak <= s.stats.heuristic_peaks[0].1);
    let order: Vec<_> = g.op_ids().collect();
    let reach = onnx_memsched::graph::bounds::Reachability::new(&g, &order);
    assert!(s.lower_bound >= onnx_memsched::graph::bounds::lower_bound(&g, &reach, &memory).bytes.min(s.peak));
}

/// Timings for the report: `cargo test --release --test schedule_driver -- --ignored --nocapture`.
#[test]
#[ignore]
fn synthetic_timings() {
    let cases: Vec<(&str, Graph)> = vec![
        ("fork_join 64x5", fork_join(64, 5, 7)),
        ("fork_join 256x5", fork_join(256, 5, 8)),
        ("local_wiring 10k", local_wiring(10_000, 2)),
        ("local_wiring 1k", local_wiring(1_000, 3)),
    ];
    for (name, g) in &cases {
        let memory = MemoryOptions::default();
        for &h in onnx_memsched::schedule::heuristics::PORTFOLIO {
            let t = Instant::now();
            let o = onnx_memsched::schedule::heuristics::run(g, h, &memory).expect("acyclic");
            let ms = t.elapsed().as_secs_f64() * 1e3;
            println!("{name}: {} {:.1} ms peak {}", h.name(), ms, evaluate(g, &o, &memory).peak);
        }
        let t = Instant::now();
        let print = |s: &str| println!("  [{:.2}s] {s}", t.elapsed().as_secs_f64());
        let opts = SolveOptions {
            memory,
            time_limit: Duration::from_secs(20),
            progress: Some(&print),
            ..SolveOptions::default()
        };
        let s = solve(g, &opts).expect("acyclic");
        println!(
            "{name}: auto {:.2} s peak {} lb {} optimal {} method {} parts {} dp_states {}",
            t.elapsed().as_secs_f64(),
            s.peak,
            s.lower_bound,
            s.optimal,
            s.method,
            s.stats.parts,
            s.stats.dp_states
        );
    }
}
