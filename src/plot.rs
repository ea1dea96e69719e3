//! `--plot FILE.svg`: live activation bytes over the steps of the input order
//! and the new order, with the lower bound and both peaks marked.

use crate::graph::memory::Profile;
use plotters::prelude::*;

/// The unit that keeps the axis numbers readable, and its size in bytes.
fn unit_for(max: u64) -> (&'static str, f64) {
    match max {
        m if m >= 1 << 30 => ("GiB", (1u64 << 30) as f64),
        m if m >= 1 << 20 => ("MiB", (1u64 << 20) as f64),
        m if m >= 1 << 10 => ("KiB", 1024.0),
        _ => ("bytes", 1.0),
    }
}

/// Memory at the start (x = 0) and after each step (x = step + 1).
fn points(p: &Profile, scale: f64) -> Vec<(f64, f64)> {
    std::iter::once(p.start)
        .chain(p.steps.iter().copied())
        .enumerate()
        .map(|(x, b)| (x as f64, b as f64 / scale))
        .collect()
}

fn peak_point(p: &Profile, scale: f64) -> (f64, f64) {
    (p.peak_step.map_or(0.0, |s| (s + 1) as f64), p.peak as f64 / scale)
}

/// Renders the SVG as a string. The y axis leaves room above the highest
/// curve for the legend, so it never hides a peak marker.
pub fn svg(title: &str, before: &Profile, after: &Profile, lower_bound: u64) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| format!("cannot draw the plot: {e}");
    let max = before.peak.max(after.peak).max(lower_bound).max(1);
    let (unit, scale) = unit_for(max);
    let steps = before.steps.len().max(after.steps.len()).max(1) as f64;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..steps, 0f64..(max as f64 / scale) * 1.3)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("step (node in execution order)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(format!("live activations ({unit})"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(&e))?;
        let input_color = RGBColor(200, 60, 50);
        let new_color = RGBColor(30, 100, 200);
        let bound_color = RGBColor(90, 90, 90);
        chart
            .draw_series(LineSeries::new(points(before, scale), input_color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("input order (peak {})", crate::report::human_bytes(before.peak)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], input_color.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(points(after, scale), new_color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("new order (peak {})", crate::report::human_bytes(after.peak)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], new_color.stroke_width(2)));
        let lb = lower_bound as f64 / scale;
        chart
            .draw_series(DashedLineSeries::new(vec![(0.0, lb), (steps, lb)], 8, 6, bound_color.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label(format!("lower bound ({})", crate::report::human_bytes(lower_bound)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], bound_color));
        for (profile, color) in [(before, input_color), (after, new_color)] {
            chart
                .draw_series(std::iter::once(Circle::new(peak_point(profile, scale), 6, color.filled())))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(steps: Vec<u64>) -> Profile {
        let peak = steps.iter().copied().max().unwrap_or(0);
        let peak_step = steps.iter().position(|&s| s == peak);
        Profile { peak, peak_step, start: 10, steps }
    }

    #[test]
    fn svg_has_both_series_and_the_bound() {
        let before = profile(vec![3 << 20, 5 << 20, 2 << 20]);
        let after = profile(vec![3 << 20, 4 << 20, 2 << 20]);
        let s = svg("net.onnx", &before, &after, 4 << 20).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("input order (peak 5.00 MiB)") && s.contains("new order (peak 4.00 MiB)"));
        assert!(s.contains("lower bound (4.00 MiB)") && s.contains("net.onnx") && s.contains("(MiB)"));
        assert!(s.matches("<polyline").count() >= 2, "two curves");
    }
}
