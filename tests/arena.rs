//! The memory plan: offsets checked pairwise from the definition on random
//! graphs and orders (every memory model variant, several alignments), the
//! lifetimes against the memory model, the bound against the evaluator, and
//! `--memory-plan` end to end.

mod common;

use common::{all_memory_options, random_graph, Rng};
use onnx_memsched::arena::{plan_memory, MemoryPlan};
use onnx_memsched::graph::memory::{evaluate, MemoryOptions};
use onnx_memsched::graph::{Graph, OpId, TensorKind};
use std::time::{Duration, Instant};

/// A random topological order: repeatedly a random ready op.
fn random_order(graph: &Graph, rng: &mut Rng) -> Vec<OpId> {
    let preds: Vec<Vec<OpId>> = graph.op_ids().map(|v| graph.predecessors(v)).collect();
    let mut done = vec![false; graph.ops.len()];
    let mut order = Vec::new();
    while order.len() < graph.ops.len() {
        let ready: Vec<usize> =
            (0..done.len()).filter(|&v| !done[v] && preds[v].iter().all(|p| done[p.index()])).collect();
        let v = ready[rng.below(ready.len() as u64) as usize];
        done[v] = true;
        order.push(OpId(v as u32));
    }
    order
}

/// Checks `plan` from the definition: lifetimes from positions, sizes
/// rounded up, no two tensors live at a common step overlapping (an
/// in-place output shares its input's bytes at its own first step only).
fn check_from_definition(graph: &Graph, order: &[OpId], memory: &MemoryOptions, plan: &MemoryPlan) {
    let align = plan.alignment;
    let mut pos = vec![0usize; graph.ops.len()];
    for (s, v) in order.iter().enumerate() {
        pos[v.index()] = s;
    }
    let end = order.len().saturating_sub(1);
    let mut placed = 0;
    for (i, t) in graph.tensors.iter().enumerate() {
        let entry = plan.tensors.iter().find(|p| p.tensor.index() == i);
        if t.kind == TensorKind::Weight || t.bytes == 0 {
            assert!(entry.is_none(), "tensor {} has no bytes but a place", t.name);
            continue;
        }
        let p = entry.unwrap_or_else(|| panic!("tensor {} has no place", t.name));
        placed += 1;
        assert_eq!(p.size, t.bytes.div_ceil(align) * align, "size of {}", t.name);
        assert_eq!(p.offset % align, 0);
        assert!(p.offset + p.size <= plan.arena_bytes);
        let first = t.producer.map_or(0, |v| pos[v.index()]);
        let keep = t.graph_output || (memory.inputs_live_whole_run && t.kind == TensorKind::GraphInput);
        let last = if keep { end } else { t.consumers.iter().map(|c| pos[c.index()]).max().unwrap_or(first) };
        assert_eq!((p.first_step, p.last_step), (first, last.max(first)), "lifetime of {}", t.name);
    }
    assert_eq!(placed, plan.tensors.len());
    for a in &plan.tensors {
        for b in &plan.tensors {
            if a.tensor >= b.tensor || a.first_step > b.last_step || b.first_step > a.last_step {
                continue;
            }
            let disjoint = a.offset + a.size <= b.offset || b.offset + b.size <= a.offset;
            let handoff = |x: &onnx_memsched::arena::PlannedTensor, y: &onnx_memsched::arena::PlannedTensor| {
                x.inplace_of == Some(y.tensor) && x.offset == y.offset && x.first_step == y.last_step
            };
            assert!(
                disjoint || handoff(a, b) || handoff(b, a),
                "{} [{}..{}] at {} and {} [{}..{}] at {} overlap",
                graph.tensor(a.tensor).name,
                a.first_step,
                a.last_step,
                a.offset,
                graph.tensor(b.tensor).name,
                b.first_step,
                b.last_step,
                b.offset
            );
        }
    }
    assert!(plan.arena_bytes >= plan.arena_lower_bound_bytes);
    assert!(plan.arena_bytes <= plan.greedy_by_size_bytes);
}

#[test]
fn random_graphs_get_valid_plans_within_bound_and_greedy() {
    let mut rng = Rng::new(0xA7E4A);
    for case in 0..300 {
        let n = 1 + rng.below(14) as usize;
        let graph = random_graph(&mut rng, n);
        let order = random_order(&graph, &mut rng);
        for memory in all_memory_options() {
            for align in [1, 8, 64] {
                let deadline = Instant::now() + Duration::from_millis(20);
                let plan = plan_memory(&graph, &order, &memory, align, deadline)
                    .unwrap_or_else(|e| panic!("case {case}: {e}"));
                check_from_definition(&graph, &order, &memory, &plan);
                if align == 1 {
                    // Unaligned, the bound is the memory model's peak, except
                    // that a graph input nobody reads is placed at step 0
                    // (it exists until the first op runs), where the
                    // evaluator frees it just before.
                    let peak = evaluate(&graph, &order, &memory).peak;
                    let idle_input = graph
                        .tensors
                        .iter()
                        .any(|t| t.kind == TensorKind::GraphInput && t.consumers.is_empty() && t.bytes > 0);
                    if idle_input {
                        assert!(plan.arena_lower_bound_bytes >= peak, "case {case}");
                    } else {
                        assert_eq!(plan.arena_lower_bound_bytes, peak, "case {case} {memory:?}");
                    }
                }
            }
        }
    }
}

#[test]
fn memory_plan_end_to_end_on_a_shipped_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/models/nas_cell.onnx");
    let out = dir.path().join("out.onnx");
    let plan_path = dir.path().join("plan.json");
    let report_path = dir.path().join("report.json");
    let run = assert_cmd::Command::cargo_bin("onnx-memsched")
        .unwrap()
        .args(["-q", "--align", "128", "--memory-plan"])
        .arg(&plan_path)
        .arg("--report")
        .arg(&report_path)
        .arg(model)
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan_path).unwrap()).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(plan["alignment"], 128);
    assert_eq!(plan["arena_bytes"], report["arena_bytes"]);
    assert_eq!(plan["arena_lower_bound_bytes"], report["arena_lower_bound_bytes"]);
    let tensors = plan["tensors"].as_array().unwrap();
    assert!(!tensors.is_empty());
    let arena = plan["arena_bytes"].as_u64().unwrap();
    let mut top = 0;
    for t in tensors {
        let (offset, size) = (t["offset"].as_u64().unwrap(), t["size"].as_u64().unwrap());
        assert_eq!(offset % 128, 0);
        assert_eq!(size % 128, 0);
        top = top.max(offset + size);
    }
    assert_eq!(top, arena);
    // The plan is for the written order, whose peak the report gives: with
    // sizes that are multiples of 128 already, the bound is that peak.
    assert!(plan["arena_lower_bound_bytes"].as_u64().unwrap() >= report["peak_bytes_after"].as_u64().unwrap());
    assert!(arena <= report["arena_greedy_by_size_bytes"].as_u64().unwrap());
}

#[test]
fn order_for_the_arena_keeps_peak_constraint_and_a_valid_plan() {
    use onnx_memsched::arena::order::{choose, note, Keep, OrderSearch};
    use onnx_memsched::schedule::{ort, runtimes};
    let ort_peak =
        |g: &Graph, file: &[OpId], m: &MemoryOptions| evaluate(g, &ort::predict_for_file(g, file).unwrap(), m).peak;
    let mut rng = Rng::new(0x0DE7_A7E4);
    let mut above = 0;
    for case in 0..150 {
        let n = 2 + rng.below(30) as usize;
        let graph = random_graph(&mut rng, n);
        let order = random_order(&graph, &mut rng);
        for memory in all_memory_options() {
            let first = plan_memory(&graph, &order, &memory, 64, Instant::now() + Duration::from_millis(20)).unwrap();
            let peak = evaluate(&graph, &order, &memory).peak;
            let ort_before = ort_peak(&graph, &order, &memory);
            let in_priority_form = runtimes::priority_order(&graph, &order).as_deref() == Some(&order[..]);
            for keep in [Keep::Peak, Keep::PeakAndOrtDefault] {
                let deadline = Instant::now() + Duration::from_millis(100);
                let chosen = choose(&graph, &order, first.clone(), &memory, 64, keep, deadline)
                    .unwrap_or_else(|e| panic!("case {case}: {e}"));
                onnx_memsched::graph::topo::check_order(&graph, &chosen.order).unwrap();
                check_from_definition(&graph, &chosen.order, &memory, &chosen.plan);
                assert!(evaluate(&graph, &chosen.order, &memory).peak <= peak, "case {case}");
                assert!(chosen.plan.arena_bytes <= first.arena_bytes, "case {case}");
                if keep == Keep::PeakAndOrtDefault {
                    assert!(ort_peak(&graph, &chosen.order, &memory) <= ort_before, "case {case}");
                }
                if in_priority_form {
                    assert_eq!(runtimes::priority_order(&graph, &chosen.order).as_deref(), Some(&chosen.order[..]));
                }
                // The outcome agrees with the plan, and a plan above its bound
                // always comes with a note.
                match chosen.search {
                    OrderSearch::NotNeeded => assert!(first.optimal() && chosen.order == order, "case {case}"),
                    OrderSearch::Found { .. } => assert!(chosen.plan.optimal() && !first.optimal(), "case {case}"),
                    OrderSearch::NotFound { .. } => assert!(!chosen.plan.optimal(), "case {case}"),
                    OrderSearch::Fixed => panic!("case {case}: {keep:?} may change the order"),
                }
                assert_eq!(note(&chosen.plan, chosen.search, false).is_some(), !chosen.plan.optimal(), "case {case}");
                if !first.optimal() {
                    above += 1;
                }
            }
        }
    }
    assert!(above > 0, "no random order whose arena is above its bound: the search is not exercised");
}

#[test]
fn report_says_what_the_arena_order_search_did() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["fork_join", "multi_branch", "nas_cell", "randwire"] {
        let model = format!("{}/models/{name}.onnx", env!("CARGO_MANIFEST_DIR"));
        let report_path = dir.path().join(format!("{name}.json"));
        let run = assert_cmd::Command::cargo_bin("onnx-memsched")
            .unwrap()
            .args(["-q", "--dry-run", "--time-limit", "10", "--report"])
            .arg(&report_path)
            .arg(&model)
            .output()
            .unwrap();
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
        let meets = report["arena_bytes"] == report["arena_lower_bound_bytes"];
        let outcome = report["arena_order_search"]["outcome"].as_str().unwrap_or_else(|| panic!("{name}: no outcome"));
        assert!(report["arena_order_search"]["orders_tried"].is_u64(), "{name}");
        assert_eq!(meets, ["not-needed", "found"].contains(&outcome), "{name}: {outcome}");
        let noted = report["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("arena"));
        assert_eq!(noted, !meets, "{name}");
    }
}
