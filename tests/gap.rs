//! Stopping at a negligible gap (`--gap`) and the ILP answering within its
//! deadline: checked against brute force on small random graphs and against
//! the definition of the gap.

mod common;

use common::onnx_models::{bytes, diamond};
use common::{all_memory_options, brute_force, random_graph, Rng};
use onnx_memsched::graph::memory::evaluate;
use onnx_memsched::graph::topo::check_order;
use onnx_memsched::graph::{from_lists, OpId};
use onnx_memsched::schedule::driver::{negligible_peak, solve, SolveOptions};
use onnx_memsched::schedule::{dp, ilp};
use std::time::{Duration, Instant};

/// The definition, searched upwards: the largest `p >= lb` with
/// `p - lb <= gap * p` (the condition only weakens as `p` grows past
/// `lb / (1 - gap)`, so the first failure ends the search).
fn largest_within_gap(lb: u64, gap: f64) -> u64 {
    let mut p = lb;
    while (p + 1 - lb) as f64 <= gap * (p + 1) as f64 {
        p += 1;
    }
    p
}

#[test]
fn negligible_peak_is_the_largest_peak_within_the_gap() {
    let mut rng = Rng::new(11);
    for &gap in &[0.0, 1e-4, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.9] {
        // The upward search takes about lb * gap steps: big bounds only
        // with small gaps.
        let big = if gap <= 1e-3 { 30 } else { 0 };
        for lb in (0..3000).chain((0..big).map(|_| rng.below(1 << 30))) {
            assert_eq!(negligible_peak(lb, gap), largest_within_gap(lb, gap), "lb {lb}, gap {gap}");
        }
    }
    // A gap of 0 (or nonsense) asks for the lower bound itself.
    for gap in [0.0, -1.0, 1.0, f64::NAN] {
        assert_eq!(negligible_peak(1000, gap), 1000);
    }
}

#[test]
fn auto_with_a_gap_stops_within_it_and_claims_nothing_false() {
    let mut rng = Rng::new(1111);
    let gap = 0.3;
    let (mut stopped, mut cases) = (0, 0);
    for _ in 0..1500 {
        let n = 2 + rng.below(9) as usize;
        let graph = random_graph(&mut rng, n);
        for memory in all_memory_options() {
            let (best, _) = brute_force(&graph, &memory);
            let opts = SolveOptions { memory, time_limit: Duration::from_secs(20), gap, ..SolveOptions::default() };
            let s = solve(&graph, &opts).expect("acyclic");
            cases += 1;
            assert!(check_order(&graph, &s.order).is_ok());
            assert_eq!(evaluate(&graph, &s.order, &memory).peak, s.peak, "claimed peak");
            assert!(s.lower_bound <= best, "lower bound {} above the optimum {best}", s.lower_bound);
            if s.optimal {
                assert_eq!(s.peak, best, "claimed optimal");
            }
            if s.stats.gap_stop {
                stopped += 1;
                assert!(!s.optimal, "a search stopped at the gap is not a proof");
                assert!(s.peak > s.lower_bound);
                // Within the gap of the bound, hence of the optimum.
                assert!((s.peak - s.lower_bound) as f64 <= gap * s.peak as f64, "{} vs {}", s.peak, s.lower_bound);
                assert!((s.peak - best) as f64 <= gap * s.peak as f64);
            }
            // With no gap allowed, the search never stops early.
            let exact = SolveOptions { gap: 0.0, ..opts };
            let e = solve(&graph, &exact).expect("acyclic");
            assert!(!e.stats.gap_stop);
            assert!(!e.optimal || e.peak == best);
        }
    }
    assert!(stopped > 0, "no case stopped at the gap in {cases}: the test checks nothing");
}

#[test]
fn the_ilp_refuses_formulations_too_large_to_build() {
    // A fan of MAX_GROUPS + 1 independent ops reading one input.
    let n = ilp::MAX_GROUPS + 1;
    let ops: Vec<(Vec<usize>, Vec<usize>)> = (0..n).map(|i| (vec![0], vec![i + 1])).collect();
    let sizes = vec![8u64; n + 1];
    let outputs: Vec<usize> = (1..=n).collect();
    let g = from_lists(&ops, &sizes, &outputs);
    let order: Vec<OpId> = g.op_ids().collect();
    let far = Instant::now() + Duration::from_secs(3600);
    match ilp::solve_within(&g, &dp::singletons(&g), &Default::default(), &order, far) {
        ilp::IlpOutcome::NoSolution { reason } => assert!(reason.contains("auto"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_ilp_within_a_deadline_gives_the_solvers_answer() {
    // On small graphs the worker answers well before a generous deadline, and
    // its answer is the optimum (brute force) or a refusal, never a wrong peak.
    let mut rng = Rng::new(1234);
    let mut optimal = 0;
    for _ in 0..40 {
        let n = 1 + rng.below(6) as usize;
        let graph = random_graph(&mut rng, n);
        let memory = Default::default();
        let (best, order) = brute_force(&graph, &memory);
        let far = Instant::now() + Duration::from_secs(600);
        match ilp::solve_within(&graph, &dp::singletons(&graph), &memory, &order, far) {
            ilp::IlpOutcome::Optimal { order, peak } => {
                assert_eq!(peak, best);
                assert_eq!(evaluate(&graph, &order, &memory).peak, best);
                optimal += 1;
            }
            ilp::IlpOutcome::Feasible { peak, .. } => assert!(peak >= best),
            ilp::IlpOutcome::NoSolution { .. } => {}
        }
    }
    assert!(optimal > 0);
    // A deadline already passed: an answer at once, and no order.
    let graph = random_graph(&mut rng, 6);
    let order: Vec<OpId> = graph.op_ids().collect();
    let past = Instant::now();
    assert!(matches!(
        ilp::solve_within(&graph, &dp::singletons(&graph), &Default::default(), &order, past),
        ilp::IlpOutcome::NoSolution { .. }
    ));
}

#[test]
fn cli_gap_must_be_a_percentage() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.onnx");
    std::fs::write(&input, bytes(&diamond())).unwrap();
    for bad in ["100", "-1", "nan"] {
        let out = assert_cmd::Command::cargo_bin("onnx-memsched")
            .unwrap()
            .args(["--dry-run", &format!("--gap={bad}")])
            .arg(&input)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--gap {bad}: {stderr}");
        assert!(stderr.contains("--gap") && !stderr.contains("panicked"), "{stderr}");
    }
    let report = dir.path().join("r.json");
    let out = assert_cmd::Command::cargo_bin("onnx-memsched")
        .unwrap()
        .args(["--dry-run", "-q", "--gap", "0", "--report"])
        .arg(&report)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["gap_stop"], serde_json::Value::Bool(false));
    assert_eq!(json["optimal"], serde_json::Value::Bool(true));
}
