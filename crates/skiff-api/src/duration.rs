//! Kubernetes' human-readable durations (`apimachinery/pkg/util/duration/duration.go`).
//!
//! kubectl prints whatever the server puts in a Table cell, so AGE, RESTARTS' "(5m ago)" and an
//! event's LAST SEEN must be formatted exactly as the real apiserver formats them: `HumanDuration`
//! with about two significant figures (`2m5s`, `179m`, `3h5m`, `2d3h`, `400d`, `2y1d`).

use k8s_openapi::jiff::{SignedDuration, Timestamp};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_MINUTE: i128 = 60 * NANOS_PER_SECOND;
const NANOS_PER_HOUR: i128 = 60 * NANOS_PER_MINUTE;

/// `HumanDuration` for a non-negative duration.
pub fn human_duration(d: std::time::Duration) -> String {
    human_nanos(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// `HumanDuration` for a signed duration: a duration of two seconds or more in the past (negative)
/// is `<invalid>`, anything closer to zero is `0s`, the tolerance Kubernetes allows for clock skew.
pub fn human_signed_duration(d: SignedDuration) -> String {
    human_nanos(d.as_nanos())
}

/// `ShortHumanDuration`: one unit only (`59s`, `59m`, `23h`, `364d`, `2y`).
pub fn short_human_duration(d: std::time::Duration) -> String {
    let nanos = go_duration(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    let seconds = nanos / NANOS_PER_SECOND;
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = nanos / NANOS_PER_MINUTE;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = nanos / NANOS_PER_HOUR;
    if hours < 24 {
        format!("{hours}h")
    } else if hours < 24 * 365 {
        format!("{}d", hours / 24)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// The time elapsed since a `metav1.Time` / `MicroTime` as printers show it (`translateTimestampSince`):
/// `<unknown>` when the timestamp is absent, zero (`0001-01-01T00:00:00Z`) or unparseable,
/// `<invalid>` when it lies two seconds or more in the future, else [`human_duration`].
pub fn translate_timestamp_since(ts: Option<&str>, now: Timestamp) -> String {
    match ts.and_then(parse_non_zero) {
        Some(t) => human_nanos(now.as_nanosecond() - t.as_nanosecond()),
        None => "<unknown>".to_string(),
    }
}

/// A Kubernetes timestamp, or `None` when it is unparseable or Go's zero time (which `metav1.Time`
/// treats as unset).
pub(crate) fn parse_non_zero(s: &str) -> Option<Timestamp> {
    let t: Timestamp = s.parse().ok()?;
    // Go's zero `time.Time`: 0001-01-01T00:00:00Z, 62135596800 seconds before the Unix epoch.
    (t.as_second() != -62_135_596_800 || t.subsec_nanosecond() != 0).then_some(t)
}

/// Go's `time.Duration` is an `int64` of nanoseconds and `time.Since` saturates; clamp to match.
fn go_duration(nanos: i128) -> i128 {
    nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX))
}

/// `HumanDuration` on a signed count of nanoseconds, with Go's truncating integer arithmetic.
fn human_nanos(nanos: i128) -> String {
    let nanos = go_duration(nanos);
    let seconds = nanos / NANOS_PER_SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / NANOS_PER_MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / NANOS_PER_HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i128 = 1_000_000;
    const S: i128 = NANOS_PER_SECOND;
    const M: i128 = NANOS_PER_MINUTE;
    const H: i128 = NANOS_PER_HOUR;
    const D: i128 = 24 * H;
    const Y: i128 = 365 * D;

    /// `TestHumanDuration` from upstream `duration_test.go`.
    #[test]
    fn human_duration_examples() {
        let cases: &[(i128, &str)] = &[
            (S, "1s"),
            (70 * S, "70s"),
            (190 * S, "3m10s"),
            (70 * M, "70m"),
            (47 * H, "47h"),
            (49 * H, "2d1h"),
            ((8 * 24 + 2) * H, "8d"),
            ((367 * 24) * H, "367d"),
            ((365 * 2 * 24 + 25) * H, "2y1d"),
            ((365 * 8 * 24 + 2) * H, "8y"),
        ];
        for (nanos, want) in cases {
            assert_eq!(human_nanos(*nanos), *want, "{nanos}ns");
        }
    }

    /// `TestHumanDurationBoundaries` from upstream `duration_test.go`.
    #[test]
    fn human_duration_boundaries() {
        let cases: &[(i128, &str)] = &[
            (-2 * S, "<invalid>"),
            (-2 * S + 1, "0s"),
            (0, "0s"),
            (S - MS, "0s"),
            (2 * M - MS, "119s"),
            (2 * M, "2m"),
            (2 * M + S, "2m1s"),
            (10 * M - MS, "9m59s"),
            (10 * M, "10m"),
            (10 * M + S, "10m"),
            (3 * H - MS, "179m"),
            (3 * H, "3h"),
            (3 * H + M, "3h1m"),
            (8 * H - MS, "7h59m"),
            (8 * H, "8h"),
            (8 * H + 59 * M, "8h"),
            (2 * D - MS, "47h"),
            (2 * D, "2d"),
            (2 * D + H, "2d1h"),
            (8 * D - MS, "7d23h"),
            (8 * D, "8d"),
            (8 * D + 23 * H, "8d"),
            (2 * Y - MS, "729d"),
            (2 * Y, "2y"),
            (2 * Y + 23 * H, "2y"),
            (2 * Y + 23 * H + 59 * M, "2y"),
            (2 * Y + 24 * H - MS, "2y"),
            (2 * Y + 24 * H, "2y1d"),
            (3 * Y, "3y"),
            (4 * Y, "4y"),
            (5 * Y, "5y"),
            (6 * Y, "6y"),
            (7 * Y, "7y"),
            (8 * Y - MS, "7y364d"),
            (8 * Y, "8y"),
            (8 * Y + 364 * D, "8y"),
            (9 * Y, "9y"),
        ];
        for (nanos, want) in cases {
            assert_eq!(human_nanos(*nanos), *want, "{nanos}ns");
        }
    }

    /// `TestShortHumanDurationBoundaries` from upstream (non-negative cases; the type is unsigned).
    #[test]
    fn short_human_duration_boundaries() {
        let cases: &[(i128, &str)] = &[
            (0, "0s"),
            (S - MS, "0s"),
            (S, "1s"),
            (2 * S - MS, "1s"),
            (M - MS, "59s"),
            (M, "1m"),
            (2 * M - MS, "1m"),
            (H - MS, "59m"),
            (H, "1h"),
            (2 * H - MS, "1h"),
            (D - MS, "23h"),
            (D, "1d"),
            (2 * D - MS, "1d"),
            (Y - MS, "364d"),
            (Y, "1y"),
            (2 * Y - MS, "1y"),
            (2 * Y, "2y"),
        ];
        for (nanos, want) in cases {
            let d = std::time::Duration::from_nanos(u64::try_from(*nanos).expect("non-negative"));
            assert_eq!(short_human_duration(d), *want, "{nanos}ns");
        }
    }

    #[test]
    fn public_wrappers_agree() {
        assert_eq!(human_duration(std::time::Duration::from_secs(190)), "3m10s");
        assert_eq!(human_signed_duration(SignedDuration::from_secs(-2)), "<invalid>");
        assert_eq!(human_signed_duration(SignedDuration::from_millis(-1500)), "0s");
        // Beyond Go's int64 nanoseconds the duration saturates at ~292 years.
        assert_eq!(human_duration(std::time::Duration::from_secs(u64::MAX)), "292y");
    }

    #[test]
    fn translate_timestamp_since_cases() {
        let now: Timestamp = "2026-01-10T12:00:00Z".parse().expect("now");
        let cases: &[(Option<&str>, &str)] = &[
            (None, "<unknown>"),
            (Some("not a time"), "<unknown>"),
            (Some("0001-01-01T00:00:00Z"), "<unknown>"),
            (Some("2026-01-10T12:00:00Z"), "0s"),
            (Some("2026-01-10T11:59:48Z"), "12s"),
            (Some("2026-01-10T11:55:00Z"), "5m"),
            (Some("2026-01-10T11:57:55Z"), "2m5s"),
            (Some("2026-01-07T12:00:00Z"), "3d"),
            (Some("2026-01-10T12:00:01Z"), "0s"),
            (Some("2026-01-10T12:00:01.999999Z"), "0s"),
            (Some("2026-01-10T12:00:02Z"), "<invalid>"),
            (Some("2026-01-10T11:59:30.123456Z"), "29s"),
        ];
        for (ts, want) in cases {
            assert_eq!(translate_timestamp_since(*ts, now), *want, "{ts:?}");
        }
    }
}
