//! Argument parsing shared by the handlers, with Redis's error texts.

use crate::resp::parse::parse_i64;
use crate::resp::Reply;

/// `ERR syntax error`
pub const SYNTAX: &str = "ERR syntax error";
/// Not an integer.
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
/// Not a float.
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
/// Type mismatch.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// SELECT/MOVE/SWAPDB index errors.
pub const DB_RANGE: &str = "ERR DB index is out of range";
/// Missing key for RENAME and friends.
pub const NO_SUCH_KEY: &str = "ERR no such key";
/// A key longer than the file format allows.
pub const KEY_TOO_LONG: &str = "ERR key too long (rivet-server accepts keys up to 32760 bytes)";

/// Most picks one HRANDFIELD, SRANDMEMBER or ZRANDMEMBER reply with a negative count (picks
/// with repetition) may hold: Redis streams any count, this server builds replies in memory,
/// so a count like -10^12 is refused with `ERR value is out of range` instead.
pub const RANDOM_DRAWS_MAX: u64 = 1 << 20;

/// An error reply from a constant.
pub fn err(s: &str) -> Reply {
    Reply::Error(s.to_string())
}

/// Parses a Redis integer argument (`string2ll` rules).
pub fn int(a: &[u8]) -> Result<i64, Reply> {
    parse_i64(a).ok_or_else(|| err(NOT_INT))
}

/// Parses a Redis float argument as `strtold` does for INCRBYFLOAT and friends: decimal or
/// exponent forms, `inf`/`-inf`; no spaces, no NaN, no empty string.
pub fn float(a: &[u8]) -> Result<f64, Reply> {
    parse_f64(a).ok_or_else(|| err(NOT_FLOAT))
}

/// Float parsing without the error reply, as Redis's `string2ld` (C's `strtold`): decimal
/// and exponent forms, hexadecimal (`0x10`, `0x1p4`), `inf`/`infinity`; no surrounding
/// spaces, no NaN, and no overflow to infinity or underflow to zero.
pub fn parse_f64(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.len() >= 5 * 1024 || s.starts_with(char::is_whitespace) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let (neg, body) = match lower.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, lower.strip_prefix('+').unwrap_or(&lower)),
    };
    let v = match body {
        "inf" | "infinity" => f64::INFINITY,
        _ if body.starts_with("0x") => parse_hex_float(&body[2..])?,
        _ => {
            if body.contains("nan") || body.contains("inf") || body.starts_with(['+', '-']) {
                return None;
            }
            let v = body.parse::<f64>().ok()?;
            // strtold reports ERANGE for overflow and for underflow to zero.
            let mantissa = body.split('e').next().unwrap_or("");
            let nonzero = mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c));
            if v.is_infinite() || (v == 0.0 && nonzero) {
                return None;
            }
            v
        }
    };
    let v = if neg { -v } else { v };
    (!v.is_nan()).then_some(v)
}

/// The part of a C hexadecimal float after `0x`: hex digits with an optional point, then an
/// optional binary exponent `p[+-]N`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int_part, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int_part.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int_part.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    v.is_finite().then_some(v)
}

/// The options of SCAN and its collection forms: `cursor [MATCH pattern] [COUNT n]` and,
/// where allowed, `[TYPE type]`.
pub struct ScanOptions<'a> {
    /// Where to resume (0 = start).
    pub cursor: u64,
    /// Entries to visit, about (COUNT, default 10).
    pub count: usize,
    /// MATCH pattern, `None` for none or `*`.
    pub pattern: Option<&'a [u8]>,
    /// TYPE filter, lowercase.
    pub type_filter: Option<String>,
}

/// Parses `a[at]` as the cursor and the options after it, with Redis's errors.
pub fn scan_options(
    a: &[bytes::Bytes],
    at: usize,
    allow_type: bool,
) -> Result<ScanOptions<'_>, Reply> {
    // Redis reads the cursor with strtoul, which takes a leading '-' and negates (wrapping).
    let text = std::str::from_utf8(&a[at]).unwrap_or("");
    let cursor = match text.strip_prefix('-') {
        Some(rest) => rest.parse::<u64>().ok().map(u64::wrapping_neg),
        None => text.parse::<u64>().ok(),
    }
    .ok_or_else(|| err("ERR invalid cursor"))?;
    let mut o = ScanOptions {
        cursor,
        count: 10,
        pattern: None,
        type_filter: None,
    };
    let mut i = at + 1;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(err(SYNTAX));
        }
        if is(&a[i], "count") {
            let n = int(&a[i + 1])?;
            if n < 1 {
                return Err(err(SYNTAX));
            }
            o.count = n.min(1 << 20) as usize;
        } else if is(&a[i], "match") {
            o.pattern = Some(&a[i + 1])
                .filter(|p| p.as_ref() != b"*")
                .map(|p| p.as_ref());
        } else if allow_type && is(&a[i], "type") {
            o.type_filter = Some(lower(&a[i + 1]));
        } else {
            return Err(err(SYNTAX));
        }
        i += 2;
    }
    Ok(o)
}

/// An optional positive COUNT argument at `a[at]` (LPOP, RPOP, SPOP): `Ok(None)` when absent.
pub fn optional_count(a: &[bytes::Bytes], at: usize) -> Result<Option<u64>, Reply> {
    if a.len() > at + 1 {
        return Err(err(SYNTAX));
    }
    match a.get(at) {
        None => Ok(None),
        Some(x) => {
            let n = int(x)?;
            if n < 0 {
                return Err(err("ERR value is out of range, must be positive"));
            }
            Ok(Some(n as u64))
        }
    }
}

/// Redis's inclusive index range over `len` items as LRANGE, LTRIM and ZRANGE read it
/// (negative indexes count from the end); `None` when empty.
pub fn list_range(len: i64, start: i64, end: i64) -> Option<(i64, i64)> {
    let s = if start < 0 { start + len } else { start }.max(0);
    let e = if end < 0 { end + len } else { end };
    if s > e || s >= len {
        return None;
    }
    Some((s, e.min(len - 1)))
}

/// Redis's inclusive index range over `len` bytes (or bits) as GETRANGE, BITCOUNT and BITPOS
/// read it: like [`list_range`], but an end still negative after counting from the end
/// becomes 0. `None` when empty.
pub fn string_range(len: i64, start: i64, end: i64) -> Option<(i64, i64)> {
    let s = if start < 0 { start + len } else { start }.max(0);
    let e = if end < 0 { end + len } else { end }.max(0).min(len - 1);
    (s <= e).then_some((s, e))
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
pub fn is(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// A non-negative integer that must fit `usize` (COUNT options).
pub fn count(a: &[u8]) -> Result<i64, Reply> {
    int(a)
}

/// The lowercase form of a command name or keyword.
pub fn lower(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::parse_f64;

    #[test]
    fn floats_as_strtold_reads_them() {
        assert_eq!(parse_f64(b"0x10"), Some(16.0));
        assert_eq!(parse_f64(b"-0x1p4"), Some(-16.0));
        assert_eq!(parse_f64(b"3.0e2"), Some(300.0));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1."), Some(1.0));
        assert_eq!(parse_f64(b".5"), Some(0.5));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"1e5000"), None);
        assert_eq!(parse_f64(b"1e-5000"), None);
        assert_eq!(parse_f64(b""), None);
        assert_eq!(parse_f64(b"abc"), None);
    }
}
