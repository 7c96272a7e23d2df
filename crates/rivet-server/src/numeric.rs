//! INCRBYFLOAT arithmetic, digit for digit as Redis computes it: Redis parses both operands
//! with `strtold`, adds them in x87 80-bit `long double` (64-bit mantissa, round to nearest
//! even) and prints the sum with `%.17Lf`, trailing zeros removed. Rust has no 80-bit float,
//! so this module rounds and prints exactly with big integers: `1 + -1.1` is `-0.1` (not the
//! `-0.10000000000000009` of an `f64` sum) and `9223372036854775807 + -0.25` stays
//! `9223372036854775807`, as in Redis. Decimal and hexadecimal operands are both exact.

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};

/// Largest binary exponent of a finite `long double` (its maximum is just under 2^16384).
const MAX_EXP: i64 = 16384;
/// Below this binary exponent a value is treated as zero (the subnormal range).
const MIN_EXP: i64 = -16445;
/// Longest operand accepted (Redis's `MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;

/// A finite `long double`: `(-1)^neg * mant * 2^exp`, `mant` below 2^64 (0 for zero).
#[derive(Debug, Clone, PartialEq, Eq)]
struct LongDouble {
    neg: bool,
    mant: u64,
    exp: i64,
}

/// `num / den` rounded to 64 significant bits (nearest, ties to even); `None` on overflow.
fn round_ratio(neg: bool, num: BigUint, den: &BigUint) -> Option<LongDouble> {
    if num.is_zero() {
        return Some(LongDouble {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    // Start from an estimate of the exponent, then correct by one if needed.
    let mut e = num.bits() as i64 - den.bits() as i64 - 64;
    loop {
        let (n, d) = if e >= 0 {
            (num.clone(), den << e as u64)
        } else {
            (&num << (-e) as u64, den.clone())
        };
        let (q, r) = n.div_rem(&d);
        if q.bits() > 64 {
            e += 1;
            continue;
        }
        if q.bits() < 64 {
            e -= 1;
            continue;
        }
        let twice = r << 1u8;
        let round_up = twice > d || (twice == d && q.is_odd());
        let mut q = q + if round_up {
            BigUint::one()
        } else {
            BigUint::zero()
        };
        if q.bits() > 64 {
            q >>= 1u8;
            e += 1;
        }
        if e + 64 > MAX_EXP {
            return None;
        }
        if e < MIN_EXP {
            return Some(LongDouble {
                neg,
                mant: 0,
                exp: 0,
            });
        }
        return Some(LongDouble {
            neg,
            mant: q.to_u64()?,
            exp: e,
        });
    }
}

/// Parses a decimal operand (`-12.5`, `3.0e2`, `.5`, `1.`) as `strtold` rounds it.
fn parse_decimal(s: &[u8]) -> Option<LongDouble> {
    if s.is_empty() || s.len() >= MAX_CHARS {
        return None;
    }
    let (neg, body) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if let Some(hex) = body
        .strip_prefix(b"0x")
        .or_else(|| body.strip_prefix(b"0X"))
    {
        return parse_hex(neg, hex);
    }
    let (mant, exp10) = match body.iter().position(|&c| c == b'e' || c == b'E') {
        Some(i) => {
            let e: i64 = std::str::from_utf8(&body[i + 1..]).ok()?.parse().ok()?;
            (&body[..i], e)
        }
        None => (body, 0),
    };
    let mut digits = BigUint::zero();
    let mut frac = 0i64;
    let (mut seen_dot, mut any) = (false, false);
    for &c in mant {
        match c {
            b'.' if !seen_dot => seen_dot = true,
            b'0'..=b'9' => {
                digits = digits * 10u8 + (c - b'0');
                any = true;
                if seen_dot {
                    frac += 1;
                }
            }
            _ => return None,
        }
    }
    if !any {
        return None;
    }
    let e10 = exp10.checked_sub(frac)?;
    if !(-6000..=6000).contains(&e10) {
        // Far outside long double's range: overflow, or underflow of a nonzero value.
        return if digits.is_zero() {
            Some(LongDouble {
                neg,
                mant: 0,
                exp: 0,
            })
        } else {
            None
        };
    }
    let ten = BigUint::from(10u8);
    let (num, den) = if e10 >= 0 {
        (digits * ten.pow(e10 as u32), BigUint::one())
    } else {
        (digits, ten.pow((-e10) as u32))
    };
    let v = round_ratio(neg, num.clone(), &den)?;
    if v.mant == 0 && !num.is_zero() {
        return None; // strtold: ERANGE on underflow to zero
    }
    Some(v)
}

/// A C hexadecimal float after its `0x` (`10`, `1.8p3`): exact in binary, then rounded to 64
/// bits like any other operand.
fn parse_hex(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let (mant, exp2) = match s.iter().position(|&c| c == b'p' || c == b'P') {
        Some(i) => {
            let e: i64 = std::str::from_utf8(&s[i + 1..]).ok()?.parse().ok()?;
            (&s[..i], e)
        }
        None => (s, 0),
    };
    let mut digits = BigUint::zero();
    let mut frac = 0i64;
    let (mut seen_dot, mut any) = (false, false);
    for &c in mant {
        if c == b'.' && !seen_dot {
            seen_dot = true;
            continue;
        }
        let d = (c as char).to_digit(16)?;
        digits = digits * 16u8 + d;
        any = true;
        if seen_dot {
            frac += 1;
        }
    }
    if !any {
        return None;
    }
    let e2 = exp2.checked_sub(frac.checked_mul(4)?)?;
    if !(-20000..=20000).contains(&e2) {
        return None;
    }
    if e2 >= 0 {
        round_ratio(neg, digits << e2 as u64, &BigUint::one())
    } else {
        round_ratio(neg, digits, &(BigUint::one() << (-e2) as u64))
    }
}

/// The exact sum of two values, rounded to a `long double`; `None` on overflow.
fn add(a: &LongDouble, b: &LongDouble) -> Option<LongDouble> {
    let min = a.exp.min(b.exp);
    let scaled = |x: &LongDouble| BigUint::from(x.mant) << (x.exp - min) as u64;
    let (sa, sb) = (scaled(a), scaled(b));
    let (neg, mag) = match (a.neg, b.neg) {
        (x, y) if x == y => (x, sa + sb),
        (an, _) => {
            if sa >= sb {
                (an, sa - sb)
            } else {
                (!an, sb - sa)
            }
        }
    };
    let mut r = if min >= 0 {
        round_ratio(neg, mag << min as u64, &BigUint::one())?
    } else {
        round_ratio(neg, mag, &(BigUint::one() << (-min) as u64))?
    };
    if r.mant == 0 {
        r.neg = false;
    }
    Some(r)
}

/// `%.17Lf` of `x` with trailing zeros (and a bare point) removed; `-0` prints as `0`.
fn format_17f(x: &LongDouble) -> String {
    let ten17 = BigUint::from(10u8).pow(17);
    let scaled = if x.exp >= 0 {
        (BigUint::from(x.mant) << x.exp as u64) * ten17
    } else {
        let num = BigUint::from(x.mant) * ten17;
        let den = BigUint::one() << (-x.exp) as u64;
        let (q, r) = num.div_rem(&den);
        let twice = r << 1u8;
        if twice > den || (twice == den && q.is_odd()) {
            q + 1u8
        } else {
            q
        }
    };
    let digits = scaled.to_string();
    let (int_part, frac) = if digits.len() > 17 {
        digits.split_at(digits.len() - 17)
    } else {
        ("0", digits.as_str())
    };
    let frac = format!("{frac:0>17}");
    let frac = frac.trim_end_matches('0');
    let zero = int_part == "0" && frac.is_empty();
    let mut out = String::new();
    if x.neg && !zero {
        out.push('-');
    }
    out.push_str(int_part);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Whether `s` is a float INCRBYFLOAT accepts (`strtold`'s range, which is far wider than
/// `f64`'s: up to about 1.19e4932).
pub fn is_long_double(s: &[u8]) -> bool {
    parse_decimal(s).is_some() || crate::commands::args::parse_f64(s).is_some()
}

/// `a + b` as INCRBYFLOAT prints it; `None` when the sum is NaN or infinite. Both inputs must
/// already be valid (see [`is_long_double`]).
pub fn add_decimal_text(a: &[u8], b: &[u8]) -> Option<String> {
    if let (Some(x), Some(y)) = (parse_decimal(a), parse_decimal(b)) {
        return add(&x, &y).map(|s| format_17f(&s));
    }
    // Only infinities are left (the parser takes every finite decimal and hex operand):
    // inf + x, -inf + x and inf + -inf all fail as NaN or Infinity.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> Option<String> {
        add_decimal_text(a.as_bytes(), b.as_bytes())
    }

    #[test]
    fn matches_redis_long_double_results() {
        // Each expected value is what Redis 7.0.15 replies.
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
        assert_eq!(
            add("9223372036854775807", "-0.25").unwrap(),
            "9223372036854775807"
        );
        assert_eq!(add("0", "1e-5").unwrap(), "0.00001");
        assert!(add("0", "1e308")
            .unwrap()
            .starts_with("99999999999999999996685879655845645660560099847"));
        assert_eq!(add("1", "+inf"), None);
        assert_eq!(add("1e4932", "1e4932"), None);
        let third = add("0", "0.024390243902439025").unwrap();
        assert_eq!(third, "0.02439024390243902");
        assert_eq!(add(&third, "-0.024390243902439025").unwrap(), "0");
        assert_eq!(add("0x10", "0.5").unwrap(), "16.5");
        assert_eq!(add("0x10", "1e-5").unwrap(), "16.00001");
        // Beyond f64's range but within long double's, as Redis accepts.
        let big = format!("3{}", "0".repeat(2007));
        assert!(is_long_double(big.as_bytes()));
        assert!(add(&big, "-0.25")
            .unwrap()
            .starts_with("300000000000000000002395085444045978160795382760"));
        assert!(!is_long_double(b"1e5000"));
        assert!(!is_long_double(b" 1"));
    }
}
