//! INCRBYFLOAT arithmetic. Redis adds in `long double` and prints with `%.17Lf`, trailing
//! zeros removed, so `1 + -1.1` is `-0.1`, not the `-0.10000000000000009` a plain `f64` sum
//! prints. We add plain decimal inputs exactly in 128-bit fixed point (rounded to 17
//! decimals, which is what the extended-precision sum prints) and fall back to `f64` for
//! inputs with exponents or too many digits.

/// Largest number of fraction digits Redis prints.
const MAX_SCALE: u32 = 17;

/// A decimal number as `mantissa * 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn parse_decimal(s: &[u8]) -> Option<Decimal> {
    // An exponent (`3.0e2`, `1E-5`) shifts the scale.
    let (s, exp) = match s.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => {
            let e: i32 = std::str::from_utf8(&s[i + 1..]).ok()?.parse().ok()?;
            (&s[..i], e)
        }
        None => (s, 0),
    };
    let d = parse_plain_decimal(s)?;
    let scale = d.scale as i64 - exp as i64;
    if scale >= 0 {
        Some(Decimal {
            mantissa: d.mantissa,
            scale: u32::try_from(scale).ok()?,
        })
    } else {
        let factor = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        Some(Decimal {
            mantissa: d.mantissa.checked_mul(factor)?,
            scale: 0,
        })
    }
}

fn parse_plain_decimal(s: &[u8]) -> Option<Decimal> {
    let (neg, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mut mantissa: i128 = 0;
    let mut scale = 0u32;
    let mut seen_dot = false;
    let mut digits = 0;
    for &c in body {
        match c {
            b'.' if !seen_dot => seen_dot = true,
            b'0'..=b'9' => {
                mantissa = mantissa.checked_mul(10)?.checked_add((c - b'0') as i128)?;
                digits += 1;
                if seen_dot {
                    scale += 1;
                }
            }
            _ => return None,
        }
    }
    if digits == 0 || digits > 36 {
        return None;
    }
    Some(Decimal {
        mantissa: if neg { -mantissa } else { mantissa },
        scale,
    })
}

fn rescale(d: Decimal, scale: u32) -> Option<i128> {
    d.mantissa.checked_mul(10i128.checked_pow(scale - d.scale)?)
}

fn format_decimal(mut d: Decimal) -> String {
    if d.scale > MAX_SCALE {
        // Round to 17 decimals, ties to even: a decimal input that is an exact tie is, in
        // binary, almost never one, and ties-to-even matches what `%.17Lf` prints for the
        // inputs clients send (for example 1/41 as Tcl prints it).
        let div = 10i128.pow(d.scale - MAX_SCALE);
        let q = d.mantissa / div;
        let r = d.mantissa % div;
        let twice = r.abs() * 2;
        let adj = if twice > div || (twice == div && q % 2 != 0) {
            r.signum()
        } else {
            0
        };
        d = Decimal {
            mantissa: q + adj,
            scale: MAX_SCALE,
        };
    }
    let neg = d.mantissa < 0;
    let digits = d.mantissa.unsigned_abs().to_string();
    let scale = d.scale as usize;
    let (int_part, frac) = if digits.len() > scale {
        let (i, f) = digits.split_at(digits.len() - scale);
        (i.to_string(), f.to_string())
    } else {
        ("0".to_string(), format!("{digits:0>scale$}"))
    };
    let frac = frac.trim_end_matches('0');
    let mut out = String::new();
    if neg && (int_part != "0" || !frac.is_empty()) {
        out.push('-');
    }
    out.push_str(&int_part);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Formats a float as Redis's human-friendly `%.17Lf` with trailing zeros removed.
pub fn format_human(v: f64) -> String {
    let s = format!("{v:.17}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// `a + b` as INCRBYFLOAT prints it; `None` when the sum is NaN or infinite. Both inputs must
/// already be valid floats.
pub fn add_decimal_text(a: &[u8], b: &[u8]) -> Option<String> {
    if let (Some(x), Some(y)) = (parse_decimal(a), parse_decimal(b)) {
        let scale = x.scale.max(y.scale);
        if let (Some(mx), Some(my)) = (rescale(x, scale), rescale(y, scale)) {
            if let Some(m) = mx.checked_add(my) {
                return Some(format_decimal(Decimal { mantissa: m, scale }));
            }
        }
    }
    let x = crate::commands::args::parse_f64(a)?;
    let y = crate::commands::args::parse_f64(b)?;
    let s = x + y;
    if s.is_finite() {
        Some(format_human(s))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> Option<String> {
        add_decimal_text(a.as_bytes(), b.as_bytes())
    }

    #[test]
    fn matches_redis_long_double_results() {
        assert_eq!(add("0", "10.5").unwrap(), "10.5");
        assert_eq!(add("1.5", "1.5").unwrap(), "3");
        assert_eq!(add("1", "-1.1").unwrap(), "-0.1");
        assert_eq!(add("17179869184", "1.5").unwrap(), "17179869185.5");
        assert_eq!(add("0.1", "-0.1").unwrap(), "0");
        assert_eq!(add("5.0e3", "1").unwrap(), "5001");
        assert_eq!(
            add("-9223372036854775808", "3.0e2").unwrap(),
            "-9223372036854775508"
        );
        assert_eq!(add("0", "1e-5").unwrap(), "0.00001");
        assert_eq!(add("1", "+inf"), None);
        let third = add("0", "0.024390243902439025").unwrap();
        assert_eq!(third, "0.02439024390243902");
        assert_eq!(add(&third, "-0.024390243902439025").unwrap(), "0");
    }
}
