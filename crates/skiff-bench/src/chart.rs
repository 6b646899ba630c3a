//! SVG charts of distributions with `plotters`: one column per series, a box from p25 to p75, the
//! median as a thick line, whiskers from min to max, and every sample as a dot (up to a few hundred).
//! Series that span orders of magnitude are drawn on a log scale.

use std::path::Path;

use plotters::prelude::*;

use crate::stats::{Summary, fmt_num};

/// One column: a label and its samples.
pub struct Series {
    pub label: String,
    pub samples: Vec<f64>,
}

impl Series {
    pub fn new(label: impl Into<String>, samples: &[f64]) -> Series {
        Series { label: label.into(), samples: samples.to_vec() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("no samples to draw")]
    Empty,
    #[error("drawing {path}: {message}")]
    Draw { path: String, message: String },
}

/// More dots than this are not drawn (the box says enough).
const MAX_DOTS: usize = 400;

/// Whether values from `lo` to `hi` are better shown on a log scale.
pub fn wants_log(lo: f64, hi: f64) -> bool {
    lo > 0.0 && hi / lo > 30.0
}

/// The y range `[lo, hi]` widened by 5% on both sides (in the plotted space).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
    (lo - span * 0.05, hi + span * 0.05)
}

/// The value a log-scale tick at `y` (= log10 of the value) stands for, when it is 1, 2 or 5 × 10^k
/// (within 1.5%); other ticks stay unlabelled.
pub fn nice_log_label(y: f64) -> Option<f64> {
    let v = 10f64.powf(y);
    let decade = 10f64.powf(y.floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * decade).find(|n| ((v - n) / n).abs() < 0.015)
}

/// A deterministic horizontal offset in [-0.25, 0.25] for the `i`th dot, so dots of equal values
/// do not hide each other.
fn jitter(i: usize) -> f64 {
    let golden = 0.618_033_988_75_f64;
    ((i as f64 * golden).fract() - 0.5) * 0.5
}

/// Draws `series` into the SVG file `path`; `unit` labels the y axis.
pub fn distribution(path: &Path, title: &str, unit: &str, series: &[Series]) -> Result<(), ChartError> {
    let summaries: Vec<Option<Summary>> = series.iter().map(|s| Summary::of(&s.samples)).collect();
    let lo = summaries.iter().flatten().map(|s| s.min).fold(f64::INFINITY, f64::min);
    let hi = summaries.iter().flatten().map(|s| s.max).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return Err(ChartError::Empty);
    }
    let log = wants_log(lo, hi);
    let tf = move |v: f64| if log { v.max(f64::MIN_POSITIVE).log10() } else { v };
    let (y0, y1) = padded(tf(lo), tf(hi));
    let draw_err =
        |e: &dyn std::fmt::Display| ChartError::Draw { path: path.display().to_string(), message: e.to_string() };
    let n = series.len();
    let width = (160 * n as u32).clamp(480, 1100);
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y0..y1)
        .map_err(|e| draw_err(&e))?;
    let labels: Vec<String> = series.iter().map(|s| s.label.clone()).collect();
    let x_fmt = move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let y_fmt = move |y: &f64| {
        if !log {
            fmt_num(*y)
        } else if let Some(v) = nice_log_label(*y) {
            fmt_num(v)
        } else {
            String::new()
        }
    };
    let y_desc = if log { format!("{unit} (log scale)") } else { unit.to_string() };
    let mut mesh = chart.configure_mesh();
    if log {
        // Many ticks, labelled only at 1, 2 and 5 × 10^k; no grid lines for the unlabelled ones.
        mesh.y_labels(80).disable_y_mesh();
    }
    mesh.disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| draw_err(&e))?;
    let colour = |i: usize| Palette99::pick(i).to_rgba();
    for (i, (s, summary)) in series.iter().zip(&summaries).enumerate() {
        let Some(q) = summary else { continue };
        let x = i as f64;
        let c = colour(i);
        let whisker = vec![(x, tf(q.min)), (x, tf(q.max))];
        let caps = [q.min, q.max].map(|v| vec![(x - 0.1, tf(v)), (x + 0.1, tf(v))]);
        chart
            .draw_series(std::iter::once(PathElement::new(whisker, BLACK.stroke_width(1))))
            .map_err(|e| draw_err(&e))?;
        chart
            .draw_series(caps.into_iter().map(|p| PathElement::new(p, BLACK.stroke_width(1))))
            .map_err(|e| draw_err(&e))?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x - 0.3, tf(q.p25)), (x + 0.3, tf(q.p75))],
                c.mix(0.35).filled(),
            )))
            .map_err(|e| draw_err(&e))?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x - 0.3, tf(q.p25)), (x + 0.3, tf(q.p75))],
                c.stroke_width(1),
            )))
            .map_err(|e| draw_err(&e))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x - 0.3, tf(q.median)), (x + 0.3, tf(q.median))],
                BLACK.stroke_width(3),
            )))
            .map_err(|e| draw_err(&e))?;
        if s.samples.len() <= MAX_DOTS {
            chart
                .draw_series(
                    s.samples.iter().enumerate().map(|(k, v)| Circle::new((x + jitter(k), tf(*v)), 2, c.filled())),
                )
                .map_err(|e| draw_err(&e))?;
        }
        // Just above the median line, from the box's left edge.
        let label = EmptyElement::at((x - 0.28, tf(q.median)))
            + Text::new(
                format!("median {}", fmt_num(q.median)),
                (0, -14),
                ("sans-serif", 11).into_font().color(&BLACK),
            );
        chart.draw_series(std::iter::once(label)).map_err(|e| draw_err(&e))?;
    }
    root.present().map_err(|e| draw_err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scale_only_for_wide_positive_ranges() {
        let cases = [(1.0, 10.0, false), (1.0, 31.0, true), (0.0, 1000.0, false), (5.0, 5.0, false)];
        for (lo, hi, want) in cases {
            assert_eq!(wants_log(lo, hi), want, "{lo}..{hi}");
        }
    }

    #[test]
    fn log_labels() {
        let cases =
            [(0.0, Some(1.0)), (2.0f64.log10(), Some(2.0)), (3.0, Some(1000.0)), (0.5, None), (2.699, Some(500.0))];
        for (y, want) in cases {
            assert_eq!(nice_log_label(y).map(|v| (v * 1000.0).round() / 1000.0), want, "{y}");
        }
    }

    #[test]
    fn jitter_stays_inside_the_column() {
        assert!((0..1000).map(jitter).all(|j| (-0.25..=0.25).contains(&j)));
        assert_ne!(jitter(1), jitter(2));
    }

    #[test]
    fn draws_an_svg_with_every_label() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.svg");
        let series = [Series::new("Skiff", &[10.0, 12.0, 11.0]), Series::new("podman", &[1500.0, 1600.0])];
        distribution(&path, "Deployment start", "ms", &series).expect("draw");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        for text in ["Skiff", "podman", "Deployment start", "ms (log scale)", "median 11.0"] {
            assert!(svg.contains(text), "{text} is in the chart");
        }
    }

    #[test]
    fn nothing_to_draw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = distribution(&dir.path().join("c.svg"), "t", "ms", &[Series::new("a", &[])]);
        assert!(matches!(err, Err(ChartError::Empty)));
    }
}
