//! SVG plots for the HTML report (plotters' SVG backend: no fonts or files needed to view).

use plotters::prelude::*;

use super::EvalError;
use super::atr::{Froc, Roc, ScanScores};

const SIZE: (u32, u32) = (640, 440);

fn plot_err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> EvalError + '_ {
    move |e| EvalError::Plot { what: what.to_string(), reason: e.to_string() }
}

/// Named polylines in one chart with a legend.
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
    series: &[(String, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> Result<String, EvalError> {
    let err = plot_err(title);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range, y_range)
            .map_err(&err)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(&err)?;
        for (i, (name, points)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                .map_err(&err)?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        }
        if series.len() > 1 || series.first().is_some_and(|s| !s.0.is_empty()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(legend)
                .draw()
                .map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

/// Precision against recall at IoU 0.5, one line per class with ground truth.
pub fn pr_curves(rec_thrs: &[f64], curves: &[(String, Vec<f64>)]) -> Result<String, EvalError> {
    let series: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .filter(|(_, p)| p.iter().all(|&v| v > -1.0))
        .map(|(name, p)| (name.clone(), rec_thrs.iter().copied().zip(p.iter().copied()).collect()))
        .collect();
    line_chart(
        "Precision-recall per class (IoU 0.50, area all)",
        "recall",
        "precision",
        0.0..1.0,
        0.0..1.02,
        &series,
        SeriesLabelPosition::UpperRight,
    )
}

/// The scan-level ROC (Pd against Pfa) with the chance diagonal.
pub fn roc_plot(roc: &Roc) -> Result<String, EvalError> {
    let points = roc.points.iter().map(|p| (p.pfa, p.pd)).collect();
    line_chart(
        &format!("Scan ROC (AUC {:.3})", roc.auc),
        "Pfa (share of clean scans that alarm)",
        "Pd (share of threat scans that alarm)",
        0.0..1.0,
        0.0..1.02,
        &[("scans".into(), points), ("chance".into(), vec![(0.0, 0.0), (1.0, 1.0)])],
        SeriesLabelPosition::LowerRight,
    )
}

/// The FROC curve (sensitivity against false positives per scan), cut a little beyond the
/// largest configured FP-per-scan rate.
pub fn froc_plot(froc: &Froc) -> Result<String, EvalError> {
    let max_fp = froc
        .points
        .iter()
        .map(|p| p.fp_per_scan)
        .fold(1.0, f64::max)
        .min(froc.sensitivity_at.last().map_or(8.0, |p| p.0 * 1.25));
    let points =
        froc.points.iter().filter(|p| p.fp_per_scan <= max_fp).map(|p| (p.fp_per_scan, p.sensitivity)).collect();
    line_chart(
        "FROC",
        "false positives per scan",
        "sensitivity",
        0.0..max_fp,
        0.0..1.02,
        &[(String::new(), points)],
        SeriesLabelPosition::LowerRight,
    )
}

/// Histogram of scan scores of threat and clean scans (scans without detections left out).
pub fn score_histogram(scans: &ScanScores) -> Result<String, EvalError> {
    let err = plot_err("score histogram");
    let finite: Vec<(f64, bool)> =
        scans.scores.iter().zip(&scans.positive).filter(|(s, _)| s.is_finite()).map(|(&s, &p)| (s, p)).collect();
    let (lo, hi) = finite.iter().fold((0.0f64, 1.0f64), |(lo, hi), &(s, _)| (lo.min(s), hi.max(s)));
    const BINS: usize = 20;
    let width = (hi - lo) / BINS as f64;
    let mut counts = [[0usize; BINS]; 2];
    for &(s, p) in &finite {
        let b = (((s - lo) / width) as usize).min(BINS - 1);
        counts[usize::from(p)][b] += 1;
    }
    let top = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(&err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Scan score (max detection score) by scan truth", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .map_err(&err)?;
        chart.configure_mesh().x_desc("scan score").y_desc("scans").draw().map_err(&err)?;
        for (label, positive, color) in [("clean scans", 0usize, BLUE), ("threat scans", 1, RED)] {
            let bars = (0..BINS).map(move |b| {
                let x0 = lo + b as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, counts[positive][b] as f64)], color.mix(0.45).filled())
            });
            chart
                .draw_series(bars)
                .map_err(&err)?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.mix(0.45).filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperMiddle)
            .draw()
            .map_err(&err)?;
        root.present().map_err(&err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_labels() {
        let svg = line_chart(
            "t",
            "recall",
            "precision",
            0.0..1.0,
            0.0..1.0,
            &[("knife".into(), vec![(0.0, 1.0), (1.0, 0.5)])],
            SeriesLabelPosition::UpperRight,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("knife") && svg.contains("recall"));
        let scans = ScanScores {
            image_ids: vec![1, 2, 3],
            scores: vec![0.2, 0.9, f64::NEG_INFINITY],
            positive: vec![false, true, true],
        };
        assert!(score_histogram(&scans).unwrap().contains("threat scans"));
    }
}
