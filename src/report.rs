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
        if peak == 0 { 0.0 } else { f64::INFINITY }
    } else {
        (peak.saturating_sub(lower_bound)) as f64 / lower_bound as f64
    }
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
    let verdict = if plan.optimal {
        "the new order is optimal".to_string()
    } else {
        format!("gap {:.1}%", gap(after.peak, plan.lower_bound) * 100.0)
    };
    s += &format!(
        "  lower bound        {:>11} ({} B): {verdict}\n",
        human_bytes(plan.lower_bound),
        grouped(plan.lower_bound)
    );
    s += &format!("  weights            {:>11} (not counted)\n", human_bytes(plan.weight_bytes));
    s += &runtime_lines(plan);
    for a in &plan.assumptions {
        s += &format!("  assumed: {a}\n");
    }
    s
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
    let verdict = if plan.optimal {
        "optimal".to_string()
    } else {
        format!("gap {:.1}%", gap(plan.after.peak, plan.lower_bound) * 100.0)
    };
    let change = if plan.before.peak > 0 {
        (plan.after.peak as f64 - plan.before.peak as f64) * 100.0 / plan.before.peak as f64
    } else {
        0.0
    };
    format!(
        "{model_name}: {} nodes, peak {} -> {} ({change:+.1}%), {verdict}, {:.2} s",
        plan.graph.ops.len(),
        human_bytes(plan.before.peak),
        human_bytes(plan.after.peak),
        plan.seconds
    )
}

/// The JSON report (`--report FILE.json`).
pub fn json(model_name: &str, plan: &Plan, written: Option<&str>) -> serde_json::Value {
    let g = &plan.graph;
    let step_json = |order: &[OpId], step: Option<usize>| match step {
        None => serde_json::Value::Null,
        Some(s) => json!({"step": s, "node_index": order[s].0, "op_type": g.op(order[s]).op_type, "name": g.op(order[s]).name}),
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
        "peak_bytes_before": plan.before.peak,
        "peak_bytes_after": plan.after.peak,
        "peak_before_at": step_json(&plan.input_order, plan.before.peak_step),
        "peak_after_at": step_json(&plan.order, plan.after.peak_step),
        "lower_bound_bytes": plan.lower_bound,
        "gap": gap(plan.after.peak, plan.lower_bound),
        "optimal": plan.optimal,
        "weight_bytes": plan.weight_bytes,
        "file_sorted": plan.file_sorted,
        "seconds": plan.seconds,
        "assumptions": plan.assumptions,
        "runtimes": {
            "file-order": {"before": plan.runtimes.before.file_order, "after": plan.runtimes.after.file_order},
            "ort-priority-based": {"before": plan.runtimes.before.ort_priority, "after": plan.runtimes.after.ort_priority},
            "ort-default": {"before": plan.runtimes.before.ort_default, "after": plan.runtimes.after.ort_default},
        },
        "notes": plan.notes,
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
