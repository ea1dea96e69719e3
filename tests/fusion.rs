//! Graph fusion against exhaustive search: the groups must keep the optimal
//! peak under every memory option, expand to valid orders, and actually fuse.

mod common;

use common::{adversarial_bytes, all_memory_options, brute_force, random_graph, Rng};

/// The three option sets of the other tests, and both switches on at once.
fn options() -> Vec<MemoryOptions> {
    let mut all = all_memory_options().to_vec();
    all.push(MemoryOptions { inputs_live_whole_run: true, inplace: true });
    all
}
use onnx_memsched::graph::memory::{evaluate, MemoryOptions};
use onnx_memsched::graph::topo::check_order;
use onnx_memsched::graph::{from_lists, Graph, OpId, TensorId, TensorKind};
use onnx_memsched::schedule::fusion::{expand, fuse, fuse_with, group_predecessors, FusionLimits};
use onnx_memsched::schedule::Groups;

// ---------------------------------------------------------------------------
// An independent model of memory as a function of the set of ops already run
// (the view the fusion proofs and the group-level searches take).

fn frees(graph: &Graph, t: TensorId, opts: &MemoryOptions) -> bool {
    let tensor = graph.tensor(t);
    let kept_for_the_run = opts.inputs_live_whole_run && tensor.kind == TensorKind::GraphInput;
    !tensor.graph_output && !kept_for_the_run
}

/// Bytes live once exactly the ops in `done` have run.
fn live(graph: &Graph, done: &[bool], opts: &MemoryOptions) -> u64 {
    let mut total = 0;
    for (i, t) in graph.tensors.iter().enumerate() {
        let exists = match t.producer {
            Some(p) => done[p.index()],
            None => t.kind == TensorKind::GraphInput,
        };
        let freed = if t.consumers.is_empty() {
            t.producer.is_some() && !t.graph_output || t.producer.is_none() && frees(graph, TensorId(i as u32), opts)
        } else {
            t.consumers.iter().all(|c| done[c.index()]) && frees(graph, TensorId(i as u32), opts)
        };
        if exists && !freed {
            total += t.bytes;
        }
    }
    total
}

/// Memory at the step of `v` when exactly `done` has run before it.
fn step(graph: &Graph, v: OpId, done: &[bool], opts: &MemoryOptions) -> u64 {
    let op = graph.op(v);
    let out: u64 = op.outputs.iter().map(|&t| graph.tensor(t).bytes).sum();
    let reuse = opts.inplace
        && op.inplace_capable
        && op.outputs.len() == 1
        && out > 0
        && op.inputs.iter().any(|&t| {
            let tensor = graph.tensor(t);
            tensor.bytes == out
                && tensor.kind != TensorKind::Weight
                && frees(graph, t, opts)
                && tensor.consumers.iter().all(|&c| c == v || done[c.index()])
        });
    live(graph, done, opts) + out - if reuse { out } else { 0 }
}

/// Runs whole groups one after another and returns every step's memory and
/// the peak (start included).
fn simulate_groups(graph: &Graph, groups: &Groups, group_order: &[usize], opts: &MemoryOptions) -> (Vec<u64>, u64) {
    let mut done = vec![false; graph.ops.len()];
    let mut steps = Vec::new();
    for &g in group_order {
        for &v in &groups[g] {
            steps.push(step(graph, v, &done, opts));
            done[v.index()] = true;
        }
    }
    let peak = steps.iter().copied().max().unwrap_or(0).max(graph.input_bytes());
    (steps, peak)
}

/// The least peak over all topological orders: dynamic programming over
/// the sets of ops run so far (memory depends on the set only).
fn optimum_ops(graph: &Graph, opts: &MemoryOptions) -> u64 {
    let n = graph.ops.len();
    let preds: Vec<u32> =
        graph.op_ids().map(|v| graph.predecessors(v).iter().fold(0u32, |m, p| m | 1 << p.index())).collect();
    let mut best = vec![u64::MAX; 1 << n];
    best[0] = graph.input_bytes();
    let mut done = vec![false; n];
    for mask in 1u32..(1 << n) {
        for (v, &needs) in preds.iter().enumerate() {
            let rest = mask & !(1 << v);
            if mask & 1 << v == 0 || needs & !rest != 0 || best[rest as usize] == u64::MAX {
                continue;
            }
            for (i, d) in done.iter_mut().enumerate() {
                *d = rest >> i & 1 == 1;
            }
            let cand = best[rest as usize].max(step(graph, OpId(v as u32), &done, opts));
            best[mask as usize] = best[mask as usize].min(cand);
        }
    }
    best[(1 << n) - 1]
}

/// The least peak over orders that run every group consecutively, in its
/// internal order: the same dynamic programming over sets of groups.
fn optimum_groups(graph: &Graph, groups: &Groups, opts: &MemoryOptions) -> u64 {
    let k = groups.len();
    let preds: Vec<u32> =
        group_predecessors(graph, groups).iter().map(|ps| ps.iter().fold(0u32, |m, p| m | 1 << p)).collect();
    let mut best = vec![u64::MAX; 1 << k];
    best[0] = graph.input_bytes();
    let mut done = vec![false; graph.ops.len()];
    for mask in 1u32..(1 << k) {
        for g in 0..k {
            let rest = mask & !(1 << g);
            if mask & 1 << g == 0 || preds[g] & !rest != 0 || best[rest as usize] == u64::MAX {
                continue;
            }
            done.iter_mut().for_each(|d| *d = false);
            for h in (0..k).filter(|h| rest >> h & 1 == 1) {
                for v in &groups[h] {
                    done[v.index()] = true;
                }
            }
            let mut peak = best[rest as usize];
            for &v in &groups[g] {
                peak = peak.max(step(graph, v, &done, opts));
                done[v.index()] = true;
            }
            best[mask as usize] = best[mask as usize].min(peak);
        }
    }
    best[(1 << k) - 1]
}

// ---------------------------------------------------------------------------
// Structure checks.

/// Asserts that `groups` partition the ops, each in dependency order, with
/// an acyclic quotient; returns the quotient's predecessor lists.
fn check_structure(graph: &Graph, groups: &Groups, what: &str) -> Vec<Vec<usize>> {
    let n = graph.ops.len();
    let mut group_of = vec![usize::MAX; n];
    for (g, ops) in groups.iter().enumerate() {
        assert!(!ops.is_empty(), "{what}: empty group {g}");
        for &v in ops {
            assert_eq!(group_of[v.index()], usize::MAX, "{what}: op {v:?} in two groups");
            group_of[v.index()] = g;
        }
    }
    assert!(group_of.iter().all(|&g| g != usize::MAX), "{what}: an op is in no group: {groups:?}");
    for ops in groups {
        for (i, &v) in ops.iter().enumerate() {
            for p in graph.predecessors(v) {
                if let Some(j) = ops.iter().position(|&w| w == p) {
                    assert!(j < i, "{what}: group {ops:?} runs {v:?} before its producer {p:?}");
                }
            }
        }
    }
    let preds = group_predecessors(graph, groups);
    // Kahn on the quotient; `fuse` lists groups in a topological order.
    let mut placed = vec![false; groups.len()];
    for (g, ps) in preds.iter().enumerate() {
        assert!(ps.iter().all(|&p| placed[p]), "{what}: groups not in topological order (or a cycle) at {g}");
        placed[g] = true;
    }
    preds
}

/// A random topological order of the quotient.
fn random_group_order(preds: &[Vec<usize>], rng: &mut Rng) -> Vec<usize> {
    let k = preds.len();
    let mut placed = vec![false; k];
    let mut order = Vec::new();
    while order.len() < k {
        let ready: Vec<usize> = (0..k).filter(|&g| !placed[g] && preds[g].iter().all(|&p| placed[p])).collect();
        assert!(!ready.is_empty(), "quotient has a cycle");
        let g = ready[rng.below(ready.len() as u64) as usize];
        placed[g] = true;
        order.push(g);
    }
    order
}

/// All properties on one graph under one option set.
fn check_graph(graph: &Graph, groups: &Groups, opts: &MemoryOptions, rng: &mut Rng, what: &str) {
    let preds = check_structure(graph, groups, what);
    // (3) any order of groups expands to a valid op order whose evaluation
    // matches the group-by-group simulation.
    for _ in 0..2 {
        let group_order = random_group_order(&preds, rng);
        let order = expand(groups, &group_order);
        assert_eq!(check_order(graph, &order), Ok(()), "{what}: expanded order invalid");
        let profile = evaluate(graph, &order, opts);
        let (steps, peak) = simulate_groups(graph, groups, &group_order, opts);
        assert_eq!(profile.steps, steps, "{what}: {opts:?} steps differ");
        assert_eq!(profile.peak, peak, "{what}: {opts:?} peak differs");
    }
    // (2) the best order of groups is as good as the best order of ops.
    let best = optimum_ops(graph, opts);
    let fused = optimum_groups(graph, groups, opts);
    assert_eq!(fused, best, "{what}: {opts:?} fusion lost the optimum\ngroups {groups:?}\n{graph:#?}");
}

// ---------------------------------------------------------------------------
// Graph generators.

/// Mostly chains: each op reads the newest tensor, sometimes another one too;
/// sizes either adversarial or "layer-like" (close to each other).
fn chain_graph(rng: &mut Rng, n: usize) -> Graph {
    let layer_like = rng.chance(50);
    let size = |rng: &mut Rng| {
        if layer_like {
            match rng.below(6) {
                0 => 64,
                1 => 128,
                2 => 32,
                3 => 0,
                _ => 64 + 8 * rng.below(8),
            }
        } else {
            adversarial_bytes(rng)
        }
    };
    let inputs = 1 + rng.below(2) as usize;
    let mut bytes: Vec<u64> = (0..inputs).map(|_| size(rng)).collect();
    let mut ops: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    let mut newest = bytes.len() - 1;
    for _ in 0..n {
        let mut ins = Vec::new();
        match rng.below(20) {
            0..=13 => ins.push(newest),
            14..=17 => {
                ins.push(newest);
                let other = rng.below(bytes.len() as u64) as usize;
                if other != newest {
                    ins.push(other);
                }
            }
            _ => ins.push(rng.below(bytes.len() as u64) as usize),
        }
        let writes = match rng.below(20) {
            0 => 0,
            1 => 2,
            _ => 1,
        };
        let mut outs = Vec::new();
        for _ in 0..writes {
            bytes.push(size(rng));
            outs.push(bytes.len() - 1);
        }
        if let Some(&last) = outs.first() {
            newest = last;
        }
        ops.push((ins, outs));
    }
    let mut outputs: Vec<usize> = (inputs..bytes.len()).filter(|_| rng.chance(8)).collect();
    if !outputs.contains(&newest) && newest >= inputs {
        outputs.push(newest);
    }
    let mut graph = from_lists(&ops, &bytes, &outputs);
    for op in &mut graph.ops {
        op.inplace_capable = op.outputs.len() == 1 && rng.chance(50);
    }
    graph
}

fn tight_limits() -> FusionLimits {
    // Composed summaries and stored bounds everywhere: the looser path.
    FusionLimits {
        exact_summary_size: 1,
        context_size: 0,
        context_groups: 1,
        reader_scan: 0,
        max_rounds: 16,
        deadline: None,
    }
}

// ---------------------------------------------------------------------------
// Property tests. `FUSION_CASES=N` scales the case counts (default 3000).

fn cases(default: usize) -> usize {
    let scale: usize = std::env::var("FUSION_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    default * scale / 3000
}

#[test]
fn fusion_keeps_the_optimum_on_random_graphs() {
    let mut rng = Rng::new(2023);
    let mut ops = 0;
    let mut units = 0;
    for case in 0..cases(3000) {
        let n = 1 + rng.below(10) as usize;
        let graph = random_graph(&mut rng, n);
        for opts in options() {
            let groups = fuse(&graph, &opts);
            check_graph(&graph, &groups, &opts, &mut rng, &format!("random case {case}"));
            ops += n;
            units += groups.len();
        }
    }
    println!("random graphs: {ops} ops -> {units} groups ({:.1}% fewer)", 100.0 * (1.0 - units as f64 / ops as f64));
}

#[test]
fn fusion_keeps_the_optimum_on_chain_heavy_graphs() {
    let mut rng = Rng::new(77);
    for case in 0..cases(3000) {
        let n = 1 + rng.below(10) as usize;
        let graph = chain_graph(&mut rng, n);
        for opts in options() {
            let groups = fuse(&graph, &opts);
            check_graph(&graph, &groups, &opts, &mut rng, &format!("chain case {case}"));
        }
    }
}

#[test]
fn composed_summaries_and_stored_bounds_are_safe_too() {
    let mut rng = Rng::new(99);
    for case in 0..cases(1500) {
        let n = 1 + rng.below(10) as usize;
        let graph = if case % 2 == 0 { random_graph(&mut rng, n) } else { chain_graph(&mut rng, n) };
        for opts in options() {
            for limits in [
                tight_limits(),
                FusionLimits { exact_summary_size: 6, context_size: 8, context_groups: 2, ..FusionLimits::default() },
            ] {
                let groups = fuse_with(&graph, &opts, &limits).groups;
                check_graph(&graph, &groups, &opts, &mut rng, &format!("limits {limits:?} case {case}"));
            }
        }
    }
}

#[test]
fn the_dynamic_programme_agrees_with_enumeration() {
    // The reference optimum above relies on memory being a function of the
    // set of ops run; check it against plain enumeration of orders.
    let mut rng = Rng::new(5);
    for case in 0..cases(600) {
        let n = 1 + rng.below(8) as usize;
        let graph = if case % 2 == 0 { random_graph(&mut rng, n) } else { chain_graph(&mut rng, n) };
        for opts in options() {
            assert_eq!(optimum_ops(&graph, &opts), brute_force(&graph, &opts).0, "case {case} {opts:?}");
        }
    }
}

#[test]
fn fusion_is_not_vacuous_on_chain_heavy_graphs() {
    let mut rng = Rng::new(31337);
    for size in [10, 100, 1000] {
        let (mut ops, mut units) = (0usize, 0usize);
        for _ in 0..(3000 / size).max(20) {
            let graph = chain_graph(&mut rng, size);
            for opts in options() {
                ops += graph.ops.len();
                units += fuse(&graph, &opts).len();
            }
        }
        let reduction = 1.0 - units as f64 / ops as f64;
        println!("chain-heavy graphs of {size} ops: {ops} ops -> {units} groups ({:.1}% fewer)", 100.0 * reduction);
        assert!(reduction > 0.2, "only {:.1}% fewer units at size {size}", 100.0 * reduction);
    }
}

// ---------------------------------------------------------------------------
// Hand-made graphs: each rule fires when its condition holds and not when
// it fails.

fn together(groups: &Groups, a: u32, b: u32) -> bool {
    groups.iter().any(|g| g.contains(&OpId(a)) && g.contains(&OpId(b)))
}

fn assert_safe(graph: &Graph) {
    let mut rng = Rng::new(1);
    for opts in options() {
        check_graph(graph, &fuse(graph, &opts), &opts, &mut rng, "hand-made");
    }
}

/// op0: t0 (x) -> t1 (y), t2 ; op1: t1 -> t3 (z) ; op2: t2 -> t4 (w).
/// op0 has two successors, so only Rule E can join op0 and op1.
fn eager_graph(x: u64) -> Graph {
    from_lists(&[(vec![0], vec![1, 2]), (vec![1], vec![3]), (vec![2], vec![4])], &[x, 100, 1, 50, 500], &[3, 4])
}

#[test]
fn rule_e_fires_when_b_stays_below_a() {
    // z (50) <= y (100): op1 never raises the level; z <= x (80): op1's
    // peak above the level after op0 is at most op0's (it frees x).
    let g = eager_graph(80);
    let f = fuse_with(&g, &MemoryOptions::default(), &FusionLimits::default());
    assert!(together(&f.groups, 0, 1), "{:?}", f.groups);
    assert!(!together(&f.groups, 0, 2), "{:?}", f.groups);
    assert_eq!((f.eager_merges, f.late_merges), (1, 0));
    assert_safe(&g);
}

#[test]
fn rule_e_does_not_fire_when_b_would_rise_above_a() {
    // x = 20 < z = 50: running op1 right after op0 may top op0's step.
    let g = eager_graph(20);
    let f = fuse_with(&g, &MemoryOptions::default(), &FusionLimits::default());
    assert_eq!(f.groups.len(), 3, "{:?}", f.groups);
    assert_safe(&g);
}

/// op0: t0 (x) -> t1 (y) ; op1: t2 (100) -> t3 (1) ; op2: (t1, t3) -> t4 (z).
/// op2 has two predecessors, so only Rule L can join op0 and op2.
fn late_graph(x: u64, z: u64) -> Graph {
    from_lists(&[(vec![0], vec![1]), (vec![2], vec![3]), (vec![1, 3], vec![4])], &[x, 60, 100, 1, z], &[4])
}

#[test]
fn rule_l_fires_when_a_only_rises_and_stays_below_b() {
    // y (60) >= x (40): op0 never lowers the level; x <= z (50).
    let g = late_graph(40, 50);
    let f = fuse_with(&g, &MemoryOptions::default(), &FusionLimits::default());
    assert!(together(&f.groups, 0, 2), "{:?}", f.groups);
    assert!(f.late_merges >= 1);
    assert_safe(&g);
}

#[test]
fn rule_l_does_not_fire_when_a_peaks_above_b() {
    // x (40) > z (30): op0's step may top op2's if op0 waits.
    let g = late_graph(40, 30);
    let groups = fuse(&g, &MemoryOptions::default());
    assert!(!together(&groups, 0, 2), "{groups:?}");
    assert_safe(&g);
    // and not when op0 lowers the level (x > y)
    let g = late_graph(70, 80);
    let groups = fuse(&g, &MemoryOptions::default());
    assert!(!together(&groups, 0, 2), "{groups:?}");
    assert_safe(&g);
}

#[test]
fn naive_chain_fusion_would_lose_the_optimum_and_is_not_done() {
    // op0: t0 -> (T 1000, a 1) ; op1 "conv": a -> (y 100, c 1) ; op2 "relu": y -> z 100 ;
    // op3: (T, c) -> s 1 ; op4: (z, s) -> out. y's only reader is op2 and op2's
    // only producer is op1, yet running op3 between them frees T first.
    let g = from_lists(
        &[
            (vec![0], vec![1, 2]),
            (vec![2], vec![3, 4]),
            (vec![3], vec![5]),
            (vec![1, 4], vec![6]),
            (vec![5, 6], vec![7]),
        ],
        &[1, 1000, 1, 100, 1, 100, 1, 1],
        &[7],
    );
    let opts = MemoryOptions::default();
    let naive: Groups = vec![vec![OpId(0)], vec![OpId(1), OpId(2)], vec![OpId(3)], vec![OpId(4)]];
    assert!(optimum_groups(&g, &naive, &opts) > optimum_ops(&g, &opts));
    let groups = fuse(&g, &opts);
    // Fusion may put them in one group, but never back to back.
    let back_to_back = groups.iter().any(|g| g.windows(2).any(|w| w == [OpId(1), OpId(2)]));
    assert!(!back_to_back, "{groups:?}");
    assert_safe(&g);
}

#[test]
fn valleys_split_chains_and_equal_layers_fuse() {
    // x 100 -> op0 -> y 10 -> op1 -> z 100: a valley at y, no rule applies.
    let g = from_lists(&[(vec![0], vec![1]), (vec![1], vec![2])], &[100, 10, 100], &[2]);
    assert_eq!(fuse(&g, &MemoryOptions::default()).len(), 2);
    assert_safe(&g);
    // Equal sizes along a chain of 6: one group.
    let g = from_lists(&(0..6).map(|i| (vec![i], vec![i + 1])).collect::<Vec<_>>(), &[64; 7], &[6]);
    assert_eq!(fuse(&g, &MemoryOptions::default()), vec![(0..6).map(OpId).collect::<Vec<_>>()]);
}

#[test]
fn inplace_option_lets_an_elementwise_op_join_its_producer() {
    // op0: x (10) -> y (100), y2 (1) ; op1 (in-place capable): y -> z (100) ;
    // op2: y2 -> w (500). Without in-place, op1 would rise above op0 (Rule E
    // fails) and op0 has two successors (Rule L does not apply); in place, op1
    // allocates nothing.
    let mut g =
        from_lists(&[(vec![0], vec![1, 2]), (vec![1], vec![3]), (vec![2], vec![4])], &[10, 100, 1, 100, 500], &[3, 4]);
    g.ops[1].inplace_capable = true;
    assert!(!together(&fuse(&g, &MemoryOptions::default()), 0, 1));
    assert!(together(&fuse(&g, &MemoryOptions { inplace: true, ..MemoryOptions::default() }), 0, 1));
    assert_safe(&g);
}

#[test]
fn fusion_iterates_on_groups() {
    // A chain 40 -> 60 -> 80 -> 60 -> 40 (a hill): Rule L joins the rising
    // ops, Rule E the falling ones, and the group profiles let the two
    // halves meet: one group.
    let sizes = [40, 60, 80, 60, 40];
    let g = from_lists(&(0..4).map(|i| (vec![i], vec![i + 1])).collect::<Vec<_>>(), &sizes, &[4]);
    let f = fuse_with(&g, &MemoryOptions::default(), &FusionLimits::default());
    assert_eq!(f.groups.len(), 1, "{:?}", f.groups);
    assert!(f.eager_merges > 0 && f.late_merges > 0, "{f:?}");
    assert_safe(&g);
}

#[test]
fn odd_inputs_do_not_panic() {
    // A cycle: op0 reads what op1 writes and vice versa.
    let g = from_lists(&[(vec![1], vec![0]), (vec![0], vec![1])], &[1, 1], &[]);
    let groups = fuse(&g, &MemoryOptions::default());
    assert_eq!(groups.len(), 2);
    assert_eq!(expand(&groups, &[5, 1, 0]), vec![OpId(1), OpId(0)]);
    let bogus: Groups = vec![vec![OpId(7)], vec![OpId(0), OpId(1)]];
    assert_eq!(group_predecessors(&g, &bogus), vec![Vec::<usize>::new(), Vec::new()]);
    assert!(fuse(&Graph::default(), &MemoryOptions::default()).is_empty());
}

#[test]
#[ignore = "timing: run with --ignored --nocapture"]
fn fusion_is_fast_on_big_graphs() {
    let mut rng = Rng::new(4242);
    for n in [10_000, 20_000, 40_000] {
        let graph = chain_graph(&mut rng, n);
        for opts in options() {
            let start = std::time::Instant::now();
            let f = fuse_with(&graph, &opts, &FusionLimits::default());
            let took = start.elapsed();
            let order: Vec<usize> = (0..f.groups.len()).collect();
            assert_eq!(check_order(&graph, &expand(&f.groups, &order)), Ok(()));
            println!(
                "{n} ops, {opts:?}: {} groups ({} eager, {} late merges, {} rounds) in {took:?}",
                f.groups.len(),
                f.eager_merges,
                f.late_merges,
                f.rounds
            );
        }
    }
}
