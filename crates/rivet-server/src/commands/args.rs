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

/// Float parsing without the error reply.
pub fn parse_f64(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty()
        || s.len() > 5000
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            // Rust accepts "nan", "infinity" spellings handled above; reject the rest here.
            if lower.contains("nan") || lower.contains("inf") {
                return None;
            }
            s.parse::<f64>().ok()?
        }
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
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
