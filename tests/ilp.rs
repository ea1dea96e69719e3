//! The ILP scheduler against brute force, with and without fused groups.

mod common;

use common::{all_memory_options, all_orders, random_graph, Rng};
use onnx_memsched::graph::memory::{evaluate, MemoryOptions};
use onnx_memsched::graph::topo::{check_order, stable_order};
use onnx_memsched::graph::{from_lists, Graph, OpId};
use onnx_memsched::schedule::ilp::{check_formulation, formulation_size, solve, IlpOutcome};
use onnx_memsched::schedule::Groups;
use std::time::{Duration, Instant};

fn singletons(graph: &Graph) -> Groups {
    graph.op_ids().map(|v| vec![v]).collect()
}

/// Fuses random chains: an op with its only successor when that successor
/// has it as only predecessor (repeatedly, so chains grow).
fn chain_groups(graph: &Graph, rng: &mut Rng) -> Groups {
    let n = graph.ops.len();
    let mut next: Vec<Option<OpId>> = vec![None; n];
    let mut has_prev = vec![false; n];
    for u in graph.op_ids() {
        let succ = graph.successors(u);
        if let [v] = succ.as_slice() {
            if graph.predecessors(*v) == vec![u] && rng.chance(60) {
                next[u.index()] = Some(*v);
                has_prev[v.index()] = true;
            }
        }
    }
    let mut groups = Vec::new();
    for u in graph.op_ids() {
        if has_prev[u.index()] {
            continue;
        }
        let mut g = vec![u];
        let mut cur = u;
        while let Some(v) = next[cur.index()] {
            g.push(v);
            cur = v;
        }
        groups.push(g);
    }
    groups
}

/// Cuts a random topological order into random consecutive segments: each
/// segment is a valid group (not necessarily connected).
fn segment_groups(graph: &Graph, rng: &mut Rng) -> Groups {
    let orders = all_orders(graph);
    let order = &orders[rng.below(orders.len() as u64) as usize];
    let mut groups: Groups = Vec::new();
    for &v in order {
        match groups.last_mut() {
            Some(g) if rng.chance(35) && g.len() < 4 => g.push(v),
            _ => groups.push(vec![v]),
        }
    }
    groups
}

fn is_grouped(order: &[OpId], groups: &Groups) -> bool {
    let mut at = vec![0; order.len()];
    for (i, v) in order.iter().enumerate() {
        at[v.index()] = i;
    }
    groups.iter().all(|g| g.iter().enumerate().all(|(i, v)| at[v.index()] == at[g[0].index()] + i))
}

/// The least peak over the orders that run each group back to back.
fn grouped_brute_force(graph: &Graph, groups: &Groups, opts: &MemoryOptions) -> (u64, Vec<OpId>) {
    all_orders(graph)
        .into_iter()
        .filter(|o| is_grouped(o, groups))
        .map(|o| (evaluate(graph, &o, opts).peak, o))
        .min_by_key(|(p, _)| *p)
        .expect("the groups allow an order")
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Solves and checks that the answer is a proved optimum equal to `want`.
fn expect_optimal(graph: &Graph, groups: &Groups, opts: &MemoryOptions, incumbent: &[OpId], want: u64, what: &str) {
    match solve(graph, groups, opts, incumbent, soon()) {
        IlpOutcome::Optimal { order, peak } => {
            assert!(check_order(graph, &order).is_ok(), "{what}: invalid order {order:?}");
            assert!(is_grouped(&order, groups), "{what}: the order splits a group");
            assert_eq!(evaluate(graph, &order, opts).peak, peak, "{what}: claimed peak is not the order's");
            assert_eq!(peak, want, "{what}: ILP optimum differs from brute force\n{graph:?}\n{groups:?}");
        }
        other => panic!("{what}: expected an optimum of {want}, got {other:?}\n{graph:?}\n{groups:?}"),
    }
}

#[test]
fn formulation_matches_the_memory_model_on_every_order() {
    // No solver: the values the ILP gives an order satisfy every constraint
    // and its memory rows equal the memory model, position by position.
    let mut rng = Rng::new(11);
    let mut checked = 0;
    for case in 0..400 {
        let n = 1 + (case % 9);
        let graph = random_graph(&mut rng, n);
        let groups = match case % 3 {
            0 => singletons(&graph),
            1 => chain_groups(&graph, &mut rng),
            _ => segment_groups(&graph, &mut rng),
        };
        let orders: Vec<Vec<OpId>> = all_orders(&graph).into_iter().filter(|o| is_grouped(o, &groups)).collect();
        for opts in all_memory_options() {
            for _ in 0..3 {
                let order = &orders[rng.below(orders.len() as u64) as usize];
                let got = check_formulation(&graph, &groups, &opts, order)
                    .unwrap_or_else(|e| panic!("case {case} {opts:?}: {e}\n{graph:?}\n{groups:?}\n{order:?}"));
                assert_eq!(got, evaluate(&graph, order, &opts).peak, "case {case}");
                checked += 1;
            }
        }
    }
    assert!(checked > 3000);
}

#[test]
fn ilp_matches_brute_force_with_singleton_groups() {
    let mut rng = Rng::new(2024);
    for case in 0..240 {
        let n = 1 + (case % 8);
        let graph = random_graph(&mut rng, n);
        let groups = singletons(&graph);
        let incumbent = stable_order(&graph).expect("acyclic");
        for opts in all_memory_options() {
            let (want, _) = common::brute_force(&graph, &opts);
            expect_optimal(&graph, &groups, &opts, &incumbent, want, &format!("case {case} {opts:?}"));
        }
    }
}

#[test]
fn ilp_matches_brute_force_restricted_to_groups() {
    let mut rng = Rng::new(77);
    for case in 0..240 {
        let n = 2 + (case % 7);
        let graph = random_graph(&mut rng, n);
        let groups = if case % 2 == 0 { chain_groups(&graph, &mut rng) } else { segment_groups(&graph, &mut rng) };
        // A grouped incumbent, the worst one, so the solver has work to do.
        let grouped: Vec<Vec<OpId>> = all_orders(&graph).into_iter().filter(|o| is_grouped(o, &groups)).collect();
        for opts in all_memory_options() {
            let worst = grouped.iter().max_by_key(|o| evaluate(&graph, o, &opts).peak).expect("an order");
            let (want, _) = grouped_brute_force(&graph, &groups, &opts);
            expect_optimal(&graph, &groups, &opts, worst, want, &format!("case {case} {opts:?}"));
        }
    }
}

#[test]
fn incumbent_that_splits_groups_only_bounds_the_peak() {
    // The incumbent's peak caps the ILP: when no grouped order reaches it
    // the answer is NoSolution, otherwise the grouped optimum.
    let mut rng = Rng::new(5);
    let (mut capped, mut solved) = (0, 0);
    for case in 0..150 {
        let n = 3 + (case % 5);
        let graph = random_graph(&mut rng, n);
        let groups = segment_groups(&graph, &mut rng);
        for opts in all_memory_options() {
            let (best, best_order) = common::brute_force(&graph, &opts);
            let (want, _) = grouped_brute_force(&graph, &groups, &opts);
            match solve(&graph, &groups, &opts, &best_order, soon()) {
                IlpOutcome::Optimal { order, peak } => {
                    assert_eq!(peak, want, "case {case}");
                    assert!(peak <= best, "case {case}: above the incumbent");
                    assert!(is_grouped(&order, &groups));
                    solved += 1;
                }
                IlpOutcome::NoSolution { reason } => {
                    assert!(want > best, "case {case}: no solution although {want} <= {best}: {reason}");
                    capped += 1;
                }
                other => panic!("case {case}: {other:?}"),
            }
        }
    }
    assert!(capped > 0 && solved > 0, "capped {capped}, solved {solved}");
}

#[test]
fn works_without_an_incumbent_and_with_an_invalid_one() {
    let mut rng = Rng::new(9);
    for case in 0..60 {
        let graph = random_graph(&mut rng, 1 + case % 7);
        let groups = singletons(&graph);
        let opts = MemoryOptions::default();
        let (want, _) = common::brute_force(&graph, &opts);
        expect_optimal(&graph, &groups, &opts, &[], want, "no incumbent");
        let bogus = vec![OpId(0); graph.ops.len()];
        expect_optimal(&graph, &groups, &opts, &bogus, want, "invalid incumbent");
        let out_of_range = vec![OpId(1000)];
        expect_optimal(&graph, &groups, &opts, &out_of_range, want, "out-of-range incumbent");
    }
}

#[test]
fn a_known_case_where_the_file_order_is_not_best() {
    // t0 -> op0 -> t1 (big) -> op2 ; t0 -> op1 -> t2 (small) -> op2.
    // op1 first keeps the big tensor short-lived.
    let g = from_lists(
        &[(vec![0], vec![1]), (vec![0], vec![2]), (vec![2], vec![3]), (vec![1, 3], vec![4])],
        &[10, 1000, 500, 5, 1],
        &[4],
    );
    let opts = MemoryOptions::default();
    let file: Vec<OpId> = g.op_ids().collect();
    let (want, _) = common::brute_force(&g, &opts);
    assert!(evaluate(&g, &file, &opts).peak > want);
    expect_optimal(&g, &singletons(&g), &opts, &file, want, "known case");
    let size = formulation_size(&g, &singletons(&g), &opts).expect("small");
    assert_eq!(size.groups, 4);
    // op0: anc 0, desc 1 -> positions 0..=2; op1: 0..=1; op2: 1..=2; op3: 3.
    assert_eq!(size.binaries, 3 + 2 + 2 + 1);
}

#[test]
fn invalid_groups_and_expired_deadlines_give_no_solution() {
    let g = from_lists(&[(vec![0], vec![1]), (vec![1], vec![2]), (vec![0], vec![3])], &[4, 8, 2, 3], &[2, 3]);
    let opts = MemoryOptions::default();
    let order: Vec<OpId> = g.op_ids().collect();
    let cases: Vec<(Groups, &str)> = vec![
        (vec![vec![OpId(0)], vec![OpId(1)]], "an op in no group"),
        (vec![vec![OpId(0), OpId(1)], vec![OpId(1)], vec![OpId(2)]], "an op twice"),
        (vec![vec![OpId(1), OpId(0)], vec![OpId(2)]], "internal order against an edge"),
        (vec![vec![OpId(0)], vec![OpId(1)], vec![OpId(2)], vec![OpId(7)]], "an op out of range"),
    ];
    for (groups, what) in cases {
        assert!(
            matches!(solve(&g, &groups, &opts, &order, soon()), IlpOutcome::NoSolution { .. }),
            "{what}"
        );
    }
    // Groups that depend on each other both ways: {op0, op2} and {op1}, with
    // op3 reading op1's output and op2 writing... build a real cycle:
    // op0 -> op1 -> op2, groups {op0, op2} and {op1}.
    let chain = from_lists(&[(vec![0], vec![1]), (vec![1], vec![2]), (vec![2], vec![3])], &[1; 4], &[3]);
    let cyclic: Groups = vec![vec![OpId(0), OpId(2)], vec![OpId(1)]];
    let chain_order: Vec<OpId> = chain.op_ids().collect();
    match solve(&chain, &cyclic, &opts, &chain_order, soon()) {
        IlpOutcome::NoSolution { reason } => assert!(reason.contains("cycle"), "{reason}"),
        other => panic!("cyclic groups: {other:?}"),
    }
    let past = Instant::now() - Duration::from_millis(1);
    assert!(matches!(
        solve(&g, &singletons(&g), &opts, &order, past),
        IlpOutcome::NoSolution { .. }
    ));
    // Empty groups are ignored; the empty graph is trivially optimal.
    let mut with_empty = singletons(&g);
    with_empty.push(Vec::new());
    assert!(matches!(solve(&g, &with_empty, &opts, &order, soon()), IlpOutcome::Optimal { .. }));
    let empty = Graph::default();
    assert_eq!(
        solve(&empty, &Vec::new(), &opts, &[], soon()),
        IlpOutcome::Optimal { order: Vec::new(), peak: 0 }
    );
}

#[test]
fn large_sizes_are_scaled_without_losing_exactness() {
    // Sizes in the megabytes force a scale unit > 1; differences of one byte
    // must still be found, and the claimed peak must be the evaluated one.
    let mut rng = Rng::new(31);
    for case in 0..40 {
        let mut graph = random_graph(&mut rng, 3 + case % 5);
        for t in &mut graph.tensors {
            t.bytes = t.bytes * 37 + rng.below(3);
        }
        for opts in all_memory_options() {
            let (want, _) = common::brute_force(&graph, &opts);
            let incumbent = stable_order(&graph).expect("acyclic");
            expect_optimal(&graph, &singletons(&graph), &opts, &incumbent, want, &format!("scaled case {case}"));
        }
    }
}

#[test]
fn gigabyte_sizes_are_optimal_only_to_the_solver_precision() {
    // Around 10 GB the solver's relative tolerance exceeds a byte: the
    // answer is then Feasible (never a false "optimal") and within 1e-8.
    let mut rng = Rng::new(32);
    for case in 0..40 {
        let mut graph = random_graph(&mut rng, 3 + case % 5);
        for t in &mut graph.tensors {
            t.bytes = t.bytes * 1_000_003 + rng.below(7);
        }
        for opts in all_memory_options() {
            let (want, _) = common::brute_force(&graph, &opts);
            let incumbent = stable_order(&graph).expect("acyclic");
            let what = format!("gigabyte case {case} {opts:?}");
            match solve(&graph, &singletons(&graph), &opts, &incumbent, soon()) {
                IlpOutcome::Optimal { order, peak } => {
                    assert_eq!(peak, want, "{what}");
                    assert_eq!(evaluate(&graph, &order, &opts).peak, peak, "{what}");
                }
                IlpOutcome::Feasible { order, peak } => {
                    assert_eq!(evaluate(&graph, &order, &opts).peak, peak, "{what}");
                    assert!(peak >= want && (peak - want) as f64 <= 1e-8 * want as f64, "{what}: {peak} vs {want}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}

/// More and larger cases than the default suite; run with
/// `ILP_STRESS_CASES=2000 cargo test --release --test ilp stress -- --ignored`.
#[test]
#[ignore]
fn stress_against_brute_force() {
    let cases: usize = std::env::var("ILP_STRESS_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
    let mut rng = Rng::new(4242);
    for case in 0..cases {
        let n = 1 + (case % 9);
        let graph = random_graph(&mut rng, n);
        let groups = match case % 3 {
            0 => singletons(&graph),
            1 => chain_groups(&graph, &mut rng),
            _ => segment_groups(&graph, &mut rng),
        };
        let grouped: Vec<Vec<OpId>> = all_orders(&graph).into_iter().filter(|o| is_grouped(o, &groups)).collect();
        for opts in all_memory_options() {
            let (want, _) = grouped_brute_force(&graph, &groups, &opts);
            let incumbent = &grouped[rng.below(grouped.len() as u64) as usize];
            expect_optimal(&graph, &groups, &opts, incumbent, want, &format!("stress case {case} {opts:?}"));
        }
    }
}

/// How long the solver takes to prove optimality on random graphs; run with
/// `cargo test --release --test ilp timing -- --ignored --nocapture`
/// (`ILP_SIZES=10,15`, `ILP_SEEDS=3`, `ILP_TIME_LIMIT=60` to change it).
/// Two families: the adversarial sizes of `random_graph`, and the same
/// graphs with uniform sizes 1..=100 (harder: many near-ties).
#[test]
#[ignore]
fn timing_table() {
    use onnx_memsched::graph::bounds::{lower_bound, Reachability};
    let limit: u64 = std::env::var("ILP_TIME_LIMIT").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let sizes: Vec<usize> = std::env::var("ILP_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 15, 20, 30]);
    let seeds: u64 = std::env::var("ILP_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    println!("| ops | sizes | seed | binaries | continuous | rows | nonzeros | LB2 | incumbent | result | peak | seconds |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &n in &sizes {
        for family in ["adversarial", "uniform"] {
            for seed in 0..seeds {
                let mut rng = Rng::new(1000 + seed * 31 + n as u64);
                let mut graph = random_graph(&mut rng, n);
                if family == "uniform" {
                    for t in &mut graph.tensors {
                        t.bytes = 1 + rng.below(100);
                    }
                }
                let groups = singletons(&graph);
                let opts = MemoryOptions::default();
                let incumbent = stable_order(&graph).expect("acyclic");
                let inc_peak = evaluate(&graph, &incumbent, &opts).peak;
                let lb = lower_bound(&graph, &Reachability::new(&graph, &incumbent), &opts).bytes;
                let size = formulation_size(&graph, &groups, &opts).expect("builds");
                let start = Instant::now();
                let out = solve(&graph, &groups, &opts, &incumbent, start + Duration::from_secs(limit));
                let secs = start.elapsed().as_secs_f64();
                let (what, peak) = match out {
                    IlpOutcome::Optimal { peak, .. } => ("optimal", peak.to_string()),
                    IlpOutcome::Feasible { peak, .. } => ("feasible", peak.to_string()),
                    IlpOutcome::NoSolution { reason } => ("none", reason),
                };
                println!(
                    "| {n} | {family} | {seed} | {} | {} | {} | {} | {lb} | {inc_peak} | {what} | {peak} | {secs:.2} |",
                    size.binaries, size.continuous, size.constraints, size.nonzeros
                );
            }
        }
    }
}
