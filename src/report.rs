//! What the user sees: the summary on stderr and the JSON report.

use crate::graph::{Graph, OpId};
use crate::plan::Plan;
use serde_json::json;

/// `1536` → `1.50 KiB`; bytes under 1 KiB stay exact.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// `3913728` → `3,913,728`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn where_peak(graph: &Graph, order: &[OpId], step: Option<usize>) -> String {
    match step {
        None => "at the start (graph inputs)".to_string(),
        Some(s) => format!("at step {s}, {}", graph.describe_op(order[s])),
    }
}

/// The relative gap between a peak and a lower bound, `(peak - lb) / lb`.
pub fn gap(peak: u64, lower_bound: u64) -> f64 {
    if lower_bound == 0 {
        if peak == 0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (peak.saturating_sub(lower_bound)) as f64 / lower_bound as f64
    }
}

/// The gap of a plan that is not proved optimal, for humans: to 0.1%, or
/// to 0.0001% with the bytes when it is smaller than 0.1%, and whether the
/// search stopped because it was within `--gap`.
fn gap_text(plan: &Plan) -> String {
    let g = gap(plan.after.peak, plan.lower_bound);
    let mut s = if g < 1e-3 {
        format!("gap {:.4}% ({} B)", g * 100.0, grouped(plan.after.peak.saturating_sub(plan.lower_bound)))
    } else {
        format!("gap {:.1}%", g * 100.0)
    };
    if plan.stats.gap_stop {
        s += ", within --gap: search stopped";
    }
    s
}

/// The human summary, several lines, for stderr.
pub fn summary(model_name: &str, plan: &Plan) -> String {
    let g = &plan.graph;
    let before = &plan.before;
    let after = &plan.after;
    let mut s = format!("{model_name}: {} nodes, {} tensors\n", g.ops.len(), g.tensors.len());
    if plan.target == crate::plan::Target::OrtDefault {
        s += "  target: onnxruntime's default order (orders below are the ones it runs)\n";
    }
    s += &format!(
        "  input order   peak {:>11} ({} B) {}\n",
        human_bytes(before.peak),
        grouped(before.peak),
        where_peak(g, &plan.input_order, before.peak_step)
    );
    let change = if before.peak > 0 {
        format!("{:+.1}%", (after.peak as f64 - before.peak as f64) * 100.0 / before.peak as f64)
    } else {
        "±0%".into()
    };
    s += &format!(
        "  new order     peak {:>11} ({} B) {} [{}; {change}]\n",
        human_bytes(after.peak),
        grouped(after.peak),
        where_peak(g, &plan.order, after.peak_step),
        plan.method
    );
    let verdict = if plan.optimal { "the new order is optimal".to_string() } else { gap_text(plan) };
    s += &format!(
        "  lower bound        {:>11} ({} B): {verdict}\n",
        human_bytes(plan.lower_bound),
        grouped(plan.lower_bound)
    );
    s += &arena_line(plan);
    s += &format!("  weights            {:>11} (not counted)\n", human_bytes(plan.weight_bytes));
    s += &runtime_lines(plan);
    s += &body_lines(plan);
    for a in &plan.assumptions {
        s += &format!("  assumed: {a}\n");
    }
    s
}

/// The arena of the memory plan, with its bound and TFLite Micro's
/// greedy-by-size figure for the same order.
fn arena_line(plan: &Plan) -> String {
    let a = &plan.arena;
    let verdict = if a.optimal() {
        "meets its bound".to_string()
    } else {
        format!(
            "bound {} B, gap {:.1}%",
            grouped(a.arena_lower_bound_bytes),
            gap(a.arena_bytes, a.arena_lower_bound_bytes) * 100.0
        )
    };
    format!(
        "  arena              {:>11} ({} B, {} B aligned): {verdict}; greedy-by-size {} B\n",
        human_bytes(a.arena_bytes),
        grouped(a.arena_bytes),
        a.alignment,
        grouped(a.greedy_by_size_bytes)
    )
}

/// The peak every runtime model pays, before -> after, one line each, and
/// what the target gave up.
fn runtime_lines(plan: &Plan) -> String {
    let (b, a) = (&plan.runtimes.before, &plan.runtimes.after);
    let line = |label: &str, before: u64, after: u64| {
        format!(
            "    {label:<48} {:>11} -> {:>11} ({} -> {} B)\n",
            human_bytes(before),
            human_bytes(after),
            grouped(before),
            grouped(after)
        )
    };
    let mut s = "  runtimes (peak of the order each runs; before -> after):\n".to_string();
    s += &line("file order (code generators)", b.file_order, a.file_order);
    if b.ort_priority != b.file_order || a.ort_priority != a.file_order {
        s += &line("onnxruntime PRIORITY_BASED", b.ort_priority, a.ort_priority);
    } else {
        s += &line("onnxruntime PRIORITY_BASED (runs the file order)", b.ort_priority, a.ort_priority);
    }
    s += &line("onnxruntime default order (ORT_DISABLE_ALL)", b.ort_default, a.ort_default);
    for note in &plan.notes {
        s += &format!("  note: {note}\n");
    }
    s
}

/// One line per model for `--out-dir` runs.
pub fn one_line(model_name: &str, plan: &Plan) -> String {
    let verdict = if plan.optimal { "optimal".to_string() } else { gap_text(plan) };
    let change = if plan.before.peak > 0 {
        (plan.after.peak as f64 - plan.before.peak as f64) * 100.0 / plan.before.peak as f64
    } else {
        0.0
    };
    let rests = match &plan.unknown_dim {
        Some(u) if !u.tensors.is_empty() => format!(", resting on --unknown-dim {}", u.value),
        _ => String::new(),
    };
    format!(
        "{model_name}: {} nodes, peak {} -> {} ({change:+.1}%), {verdict}{rests}, {:.2} s",
        plan.graph.ops.len(),
        human_bytes(plan.before.peak),
        human_bytes(plan.after.peak),
        plan.seconds
    )
}

/// One line per control-flow body whose order changed, and one saying how
/// many bodies were counted and kept.
fn body_lines(plan: &Plan) -> String {
    let mut s = String::new();
    for b in plan.bodies.iter().filter(|b| b.changed) {
        let verdict =
            if b.optimal { "optimal".to_string() } else { format!("lower bound {} B", grouped(b.lower_bound)) };
        s += &format!(
            "  body {}: peak {} -> {} ({} -> {} B; {verdict})\n",
            b.name,
            human_bytes(b.peak_before),
            human_bytes(b.peak_after),
            grouped(b.peak_before),
            grouped(b.peak_after)
        );
    }
    let kept = plan.bodies.iter().filter(|b| !b.changed).count();
    if kept > 0 {
        s += &format!(
            "  bodies: {} counted, {kept} kept in their order{}\n",
            plan.bodies.len(),
            if plan.bodies.iter().all(|b| b.optimal) { " (every body's order is optimal)" } else { "" }
        );
    }
    s
}

/// The `bodies` list of the JSON report: every control-flow body, inner
/// bodies first.
fn bodies_json(plan: &Plan) -> serde_json::Value {
    plan.bodies
        .iter()
        .map(|b| {
            let path: Vec<serde_json::Value> =
                b.path.iter().map(|s| json!({"node_index": s.node, "attribute": s.attribute})).collect();
            json!({
                "body": b.name,
                "path": path,
                "attribute": b.path.last().map(|s| s.attribute.clone()),
                "nodes": b.graph.ops.len(),
                "peak_bytes_before": b.peak_before,
                "peak_bytes_after": b.peak_after,
                "lower_bound_bytes": b.lower_bound,
                "optimal": b.optimal,
                "changed": b.changed,
                "method": b.method,
                "runtimes": {
                    "file-order": {"before": b.before.file_order, "after": b.after.file_order},
                    "ort-priority-based": {"before": b.before.ort_priority, "after": b.after.ort_priority},
                    "ort-default": {"before": b.before.ort_default, "after": b.after.ort_default},
                },
            })
        })
        .collect()
}

/// The JSON report (`--report FILE.json`).
pub fn json(model_name: &str, plan: &Plan, written: Option<&str>) -> serde_json::Value {
    let g = &plan.graph;
    let step_json = |order: &[OpId], step: Option<usize>| match step {
        None => serde_json::Value::Null,
        Some(s) => {
            json!({"step": s, "node_index": order[s].0, "op_type": g.op(order[s]).op_type, "name": g.op(order[s]).name})
        }
    };
    json!({
        "model": model_name,
        "output": written,
        "nodes": g.ops.len(),
        "tensors": g.tensors.len(),
        "scheduler": plan.scheduler.name(),
        "target": plan.target.name(),
        "method": plan.method,
        "nodes_after_fusion": plan.stats.nodes_after_fusion,
        "parts": plan.stats.parts,
        "heuristic_peaks": plan.stats.heuristic_peaks.iter().map(|(n, p)| (n.clone(), json!(p))).collect::<serde_json::Map<String, serde_json::Value>>(),
        "timed_out": plan.stats.timed_out,
        "gap_stop": plan.stats.gap_stop,
        "peak_bytes_before": plan.before.peak,
        "peak_bytes_after": plan.after.peak,
        "peak_before_at": step_json(&plan.input_order, plan.before.peak_step),
        "peak_after_at": step_json(&plan.order, plan.after.peak_step),
        "lower_bound_bytes": plan.lower_bound,
        "gap": gap(plan.after.peak, plan.lower_bound),
        "optimal": plan.optimal,
        "weight_bytes": plan.weight_bytes,
        "alignment": plan.arena.alignment,
        "arena_bytes": plan.arena.arena_bytes,
        "arena_lower_bound_bytes": plan.arena.arena_lower_bound_bytes,
        "arena_greedy_by_size_bytes": plan.arena.greedy_by_size_bytes,
        "arena_order_search": plan.arena_order.json(),
        "file_sorted": plan.file_sorted,
        "seconds": plan.seconds,
        "assumptions": plan.assumptions,
        "runtimes": {
            "file-order": {"before": plan.runtimes.before.file_order, "after": plan.runtimes.after.file_order},
            "ort-priority-based": {"before": plan.runtimes.before.ort_priority, "after": plan.runtimes.after.ort_priority},
            "ort-default": {"before": plan.runtimes.before.ort_default, "after": plan.runtimes.after.ort_default},
        },
        "notes": plan.notes,
        "bodies": bodies_json(plan),
        "unknown_dim": plan.unknown_dim.as_ref().map(|u| json!({
            "value": u.value,
            "tensors": u.tensors.len(),
            "first": u.tensors.iter().take(5).collect::<Vec<_>>(),
            "derived": u.derived,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_formats() {
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.00 MiB");
        assert_eq!(grouped(3913728), "3,913,728");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
    }

    #[test]
    fn gaps() {
        assert_eq!(gap(110, 100), 0.1);
        assert_eq!(gap(0, 0), 0.0);
    }
}
