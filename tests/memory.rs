//! The evaluator against an independent step-by-step simulator, and the
//! lower bounds against the brute-force optimum.

mod common;

use common::{all_memory_options, all_orders, brute_force, random_graph, Rng};
use onnx_memsched::graph::bounds::{lb1, lower_bound, Reachability};
use onnx_memsched::graph::memory::{evaluate, MemoryOptions};
use onnx_memsched::graph::{Graph, OpId, TensorKind};

/// Memory at every step computed from the definition, tensor by tensor:
/// a tensor is live at step `s` if it exists by then (graph input, or its
/// producer ran at or before `s`) and is still needed (graph output, a
/// consumer at or after `s`, produced exactly at `s`, or an input kept for
/// the whole run).
fn simulate(graph: &Graph, order: &[OpId], opts: &MemoryOptions) -> (u64, Vec<u64>) {
    let mut pos = vec![0usize; graph.ops.len()];
    for (i, v) in order.iter().enumerate() {
        pos[v.index()] = i;
    }
    let n = order.len();
    let mut steps = vec![0u64; n];
    let mut start = 0;
    for t in &graph.tensors {
        if t.kind == TensorKind::GraphInput {
            start += t.bytes;
        }
        let born = t.producer.map(|p| pos[p.index()]);
        let last_use = t.consumers.iter().map(|c| pos[c.index()]).max();
        let forever = t.graph_output || (opts.inputs_live_whole_run && t.kind == TensorKind::GraphInput);
        for (s, step) in steps.iter_mut().enumerate() {
            let exists = born.map_or(t.kind == TensorKind::GraphInput, |b| b <= s);
            let needed = forever || last_use.is_some_and(|l| l >= s) || born == Some(s);
            if exists && needed {
                *step += t.bytes;
            }
        }
    }
    if opts.inplace {
        for (s, &v) in order.iter().enumerate() {
            let op = graph.op(v);
            if !op.inplace_capable || op.outputs.len() != 1 {
                continue;
            }
            let out = graph.tensor(op.outputs[0]).bytes;
            let reusable = op.inputs.iter().any(|&t| {
                let tensor = graph.tensor(t);
                let last = tensor.consumers.iter().map(|c| pos[c.index()]).max();
                out > 0
                    && tensor.bytes == out
                    && tensor.kind != TensorKind::Weight
                    && !tensor.graph_output
                    && !(opts.inputs_live_whole_run && tensor.kind == TensorKind::GraphInput)
                    && last == Some(s)
            });
            if reusable {
                steps[s] -= out;
            }
        }
    }
    let peak = steps.iter().copied().max().unwrap_or(0).max(start);
    (peak, steps)
}

#[test]
fn evaluator_matches_the_definition_on_random_graphs() {
    let mut rng = Rng::new(7);
    for case in 0..3000 {
        let n = 1 + rng.below(14) as usize;
        let graph = random_graph(&mut rng, n);
        let order: Vec<OpId> = graph.op_ids().collect();
        for opts in all_memory_options() {
            let profile = evaluate(&graph, &order, &opts);
            let (peak, steps) = simulate(&graph, &order, &opts);
            assert_eq!(profile.steps, steps, "case {case} {opts:?}\n{graph:#?}");
            assert_eq!(profile.peak, peak, "case {case} {opts:?}");
            let at = profile.peak_step.map_or(profile.start, |s| profile.steps[s]);
            assert_eq!(at, profile.peak, "peak_step points at the peak");
        }
    }
}

#[test]
fn lower_bounds_never_exceed_the_optimum() {
    let mut rng = Rng::new(11);
    let mut tight = 0;
    for case in 0..1500 {
        let n = 1 + rng.below(9) as usize;
        let graph = random_graph(&mut rng, n);
        let order: Vec<OpId> = graph.op_ids().collect();
        let reach = Reachability::new(&graph, &order);
        for opts in all_memory_options() {
            let (best, _) = brute_force(&graph, &opts);
            let l1 = lb1(&graph, &opts).bytes;
            let l2 = lower_bound(&graph, &reach, &opts).bytes;
            assert!(l1 <= l2, "case {case}: LB2 {l2} must refine LB1 {l1}");
            assert!(l2 <= best, "case {case} {opts:?}: LB2 {l2} > optimum {best}\n{graph:#?}");
            tight += usize::from(l2 == best);
        }
    }
    // The bound is not vacuous: it proves optimality on many small graphs.
    assert!(tight > 1000, "LB2 tight on only {tight} of 4500 cases");
}

#[test]
fn enumeration_finds_every_order_of_a_diamond() {
    let g = onnx_memsched::graph::from_lists(
        &[(vec![0], vec![1]), (vec![1], vec![2]), (vec![1], vec![3]), (vec![2, 3], vec![4])],
        &[1; 5],
        &[4],
    );
    assert_eq!(all_orders(&g).len(), 2);
}

/// LB3 at op `v` is exactly the least memory `v`'s step can have over all
/// orders (without in-place reuse every admissible set of earlier ops is the
/// prefix of some order), so it equals brute force op by op.
#[test]
fn the_cut_bound_of_each_op_is_its_least_step_over_all_orders() {
    use onnx_memsched::graph::bounds::per_op;
    use onnx_memsched::graph::cut::{cut_bound, op_bound, CutScratch};
    let mut rng = Rng::new(23);
    let mut above_lb2 = 0;
    for case in 0..1200 {
        let n = 1 + rng.below(8) as usize;
        let graph = random_graph(&mut rng, n);
        let order: Vec<OpId> = graph.op_ids().collect();
        let reach = Reachability::new(&graph, &order);
        let orders = all_orders(&graph);
        for opts in all_memory_options() {
            let lb2 = per_op(&graph, &reach, &opts);
            let mut scratch = CutScratch::default();
            let (best, _) = brute_force(&graph, &opts);
            for v in graph.op_ids() {
                let lb3 = op_bound(&graph, &reach, &opts, v, &mut scratch);
                let least = orders
                    .iter()
                    .map(|o| evaluate(&graph, o, &opts).steps[o.iter().position(|&u| u == v).unwrap()])
                    .min()
                    .unwrap();
                if opts.inplace {
                    assert!(lb3 <= least, "case {case} {opts:?} op {v:?}: LB3 {lb3} > least step {least}");
                } else {
                    assert_eq!(lb3, least, "case {case} {opts:?} op {v:?}\n{graph:#?}");
                }
                above_lb2 += usize::from(lb3 > lb2[v.index()]);
            }
            let steps = vec![u64::MAX; graph.ops.len()];
            let floor = lower_bound(&graph, &reach, &opts).bytes;
            let lb3 = cut_bound(&graph, &reach, &opts, &steps, floor, None);
            assert!(lb3.complete && floor <= lb3.bytes && lb3.bytes <= best, "case {case} {opts:?}");
        }
    }
    assert!(above_lb2 > 500, "the cut raised LB2 at only {above_lb2} ops");
}

/// LB4 over any few ops never exceeds the optimum; over all ops (without
/// in-place reuse) it is the exact DP and equals it.
#[test]
fn the_joint_bound_is_exact_over_all_ops_and_safe_over_some() {
    use onnx_memsched::graph::cut::joint_bound;
    let mut rng = Rng::new(41);
    let mut above_lb3 = 0;
    for case in 0..1200 {
        let n = 1 + rng.below(8) as usize;
        let graph = random_graph(&mut rng, n);
        let order: Vec<OpId> = graph.op_ids().collect();
        let reach = Reachability::new(&graph, &order);
        for opts in all_memory_options() {
            let (best, _) = brute_force(&graph, &opts);
            let all = joint_bound(&graph, &reach, &opts, &order, u64::MAX, None).unwrap();
            let floor = lower_bound(&graph, &reach, &opts).bytes.max(all);
            assert!(floor <= best, "case {case} {opts:?}: LB4 {all} > optimum {best}");
            if !opts.inplace {
                // The start (graph inputs before any op) is not an op's step.
                assert_eq!(all.max(graph.input_bytes()), best, "case {case} {opts:?}\n{graph:#?}");
            }
            let some: Vec<OpId> = order.iter().copied().filter(|_| rng.chance(50)).collect();
            let part = joint_bound(&graph, &reach, &opts, &some, u64::MAX, None).unwrap();
            assert!(part <= best, "case {case} {opts:?} ops {some:?}: LB4 {part} > optimum {best}");
            let steps = vec![u64::MAX; graph.ops.len()];
            let lb3 = onnx_memsched::graph::cut::cut_bound(&graph, &reach, &opts, &steps, 0, None).bytes;
            above_lb3 += usize::from(part > lb3);
        }
    }
    assert!(above_lb3 > 20, "LB4 beat LB3 only {above_lb3} times");
}
