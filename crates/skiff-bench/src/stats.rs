//! Summaries of repeated measurements: median with its spread (min, p25, p75, p99, max).
//!
//! Percentiles use the nearest-rank method (the smallest sample with at least `p`% of the samples at
//! or below it), so every reported figure is a value that was actually measured.

use serde::Serialize;

/// A distribution's summary. Units are the caller's (milliseconds, operations per second...).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p99: f64,
    pub max: f64,
}

/// The nearest-rank percentile `p` (0–100) of `sorted` (ascending, non-empty).
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

impl Summary {
    /// Summarises `samples`; `None` when there are none (or only NaNs).
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            min: sorted[0],
            p25: nearest_rank(&sorted, 25.0),
            median: nearest_rank(&sorted, 50.0),
            p75: nearest_rank(&sorted, 75.0),
            p99: nearest_rank(&sorted, 99.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// A number for a table: no decimals from 100 up, one below 100, two below 10, three below 1;
/// thousands separated by commas.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    let decimals = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    let text = format!("{v:.decimals$}");
    let (int, frac) = text.split_once('.').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// min, p25, median, p75, p99, max
    type Six = (f64, f64, f64, f64, f64, f64);

    #[test]
    fn summaries() {
        let cases: &[(&[f64], Option<Six>)] = &[
            (&[], None),
            (&[f64::NAN], None),
            (&[5.0], Some((5.0, 5.0, 5.0, 5.0, 5.0, 5.0))),
            (&[3.0, 1.0, 2.0], Some((1.0, 1.0, 2.0, 3.0, 3.0, 3.0))),
            (&[4.0, 1.0, 3.0, 2.0], Some((1.0, 1.0, 2.0, 3.0, 4.0, 4.0))),
        ];
        for (samples, want) in cases {
            let got = Summary::of(samples).map(|s| (s.min, s.p25, s.median, s.p75, s.p99, s.max));
            assert_eq!(&got, want, "{samples:?}");
        }
    }

    #[test]
    fn p99_of_a_hundred_samples_is_the_99th() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&samples).expect("samples");
        assert_eq!((s.n, s.median, s.p99, s.max), (100, 50.0, 99.0, 100.0));
    }

    #[test]
    fn numbers() {
        let cases = [
            (0.1234, "0.123"),
            (1.234, "1.23"),
            (12.34, "12.3"),
            (123.4, "123"),
            (12345.6, "12,346"),
            (-1234.0, "-1,234"),
            (1_000_000.0, "1,000,000"),
            (f64::INFINITY, "–"),
        ];
        for (v, want) in cases {
            assert_eq!(fmt_num(v), want, "{v}");
        }
    }
}
