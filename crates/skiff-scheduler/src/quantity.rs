//! Resource quantities (`100m`, `1.5Gi`, `2e3`) as exact integers, the way the scheduler compares
//! them: CPU in millicores (`Quantity.MilliValue()`), everything else in whole units
//! (`Quantity.Value()`), both rounded up like apimachinery's `resource.Quantity`.
//!
//! `skiff_api::validation::parse_quantity` returns an `f64`, which is fine for validation but loses
//! exactness at memory sizes; accounting adds and subtracts thousands of requests, so this parser
//! keeps everything in `i128` and saturates at `i64`.

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}")]
pub struct QuantityError(pub String);

/// The quantity in thousandths of a unit, rounded up (`MilliValue`).
pub fn parse_milli(text: &str) -> Result<i64, QuantityError> {
    scaled(text, 3)
}

/// The quantity in whole units, rounded up (`Value`).
pub fn parse_value(text: &str) -> Result<i64, QuantityError> {
    scaled(text, 0)
}

/// `text × 10^scale`, rounded up to an integer.
fn scaled(text: &str, scale: i32) -> Result<i64, QuantityError> {
    let err = || QuantityError(text.to_string());
    let t = text.trim();
    let (negative, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(err());
    }
    let (binary, decimal) = suffix_multiplier(suffix).ok_or_else(err)?;
    // Keep at most 30 significant digits: more cannot change an i64 result that matters.
    let digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let digits = digits.trim_start_matches('0');
    let (digits, dropped) = if digits.len() > 30 { (&digits[..30], (digits.len() - 30) as i32) } else { (digits, 0) };
    let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| err())? };
    let exponent = decimal + scale + dropped - frac_part.len() as i32;
    let magnitude = scale_by(mantissa, binary, exponent, negative);
    let value = if negative { -magnitude } else { magnitude };
    Ok(value.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// `mantissa × binary × 10^exponent`, rounded away from zero for positives (up) and toward zero
/// for negatives (also up), saturating.
fn scale_by(mantissa: i128, binary: i128, exponent: i32, negative: bool) -> i128 {
    let base = mantissa.saturating_mul(binary);
    if exponent >= 0 {
        let mut v = base;
        for _ in 0..exponent.min(40) {
            v = v.saturating_mul(10);
        }
        v
    } else {
        let divisor = 10i128.checked_pow((-exponent) as u32).unwrap_or(i128::MAX);
        let q = base / divisor;
        if base % divisor != 0 && !negative { q + 1 } else { q }
    }
}

/// The (binary, decimal exponent) multiplier of a suffix.
fn suffix_multiplier(suffix: &str) -> Option<(i128, i32)> {
    Some(match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        s if s.starts_with(['e', 'E']) => {
            let e = &s[1..];
            let digits = e.trim_start_matches(['+', '-']);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || e.len() - digits.len() > 1 {
                return None;
            }
            (1, e.parse::<i32>().ok()?.clamp(-100, 100))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_values() {
        let cases: &[(&str, i64)] = &[
            ("100m", 100),
            ("1", 1000),
            ("0.5", 500),
            ("2.25", 2250),
            ("1.0001", 1001), // rounded up
            ("0", 0),
            ("1k", 1_000_000),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("+3", 3000),
            ("-1", -1000),
            ("250u", 1), // 0.00025 → 1m, rounded up
            ("1n", 1),
            (".5", 500),
            ("5.", 5000),
        ];
        for (text, want) in cases {
            assert_eq!(parse_milli(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn whole_values() {
        let cases: &[(&str, i64)] = &[
            ("1Gi", 1 << 30),
            ("512Mi", 512 << 20),
            ("1.5Gi", 3 << 29),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("129M", 129_000_000),
            ("123Mi", 128_974_848),
            ("1Ki", 1024),
            ("100m", 1), // Value() rounds up
            ("110", 110),
            ("1Ei", 1 << 60),
            ("9Ei", i64::MAX), // saturates
            ("1e100", i64::MAX),
        ];
        for (text, want) in cases {
            assert_eq!(parse_value(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for text in ["", "abc", "1.2.3", "1Qi", "1e", "1e+-2", "m", "1 Gi", "--1"] {
            assert!(parse_milli(text).is_err(), "{text:?} should not parse");
        }
    }
}
