//! The `--json` output of `info`, `stats`, `check` and `pages`, built with `serde_json`.
//!
//! Objects keep their fields in the order given (`serde_json`'s `preserve_order`). Two helpers
//! keep what the former hand-written writer did and `serde_json` does not: [`bytes`] writes a
//! byte string the way the export format does (a JSON string when it is UTF-8, else
//! `{"base64":"..."}`, through the engine's encoder), and [`percent`] rounds a percentage to
//! two decimals (an integral one prints without `.0`). Parsing (`import`) is in
//! [`crate::jsonl`], also with `serde_json`.

use serde_json::{Map, Value};

/// An object with its fields in this order.
pub fn object(fields: Vec<(&str, Value)>) -> Value {
    let mut m = Map::with_capacity(fields.len());
    for (k, v) in fields {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

/// A byte string: a JSON string when it is UTF-8, else `{"base64":"..."}` as in the export.
pub fn bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => {
            let mut s = String::new();
            rivet::export::encode_bytes(b, &mut s);
            // The engine's encoder writes valid JSON; should that ever fail, say so in the
            // value rather than dropping it.
            serde_json::from_str(&s).unwrap_or_else(|e| Value::String(format!("<{e}>")))
        }
    }
}

/// A percentage rounded to two decimals (`null` when not finite).
pub fn percent(x: f64) -> Value {
    let r = (x * 100.0).round() / 100.0;
    if r.fract() == 0.0 && (0.0..9.0e15).contains(&r) {
        Value::from(r as u64)
    } else {
        serde_json::Number::from_f64(r)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_like_the_export_format() {
        let v = object(vec![
            ("name", bytes(b"a\"b\n")),
            ("bin", bytes(b"\xff\x00")),
            ("pct", percent(32.142857)),
            ("whole", percent(50.0)),
            ("none", percent(f64::NAN)),
            ("n", Value::from(u64::MAX)),
        ]);
        assert_eq!(
            v.to_string(),
            r#"{"name":"a\"b\n","bin":{"base64":"/wA="},"pct":32.14,"whole":50,"none":null,"n":18446744073709551615}"#
        );
    }
}
