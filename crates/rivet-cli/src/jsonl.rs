//! Parsing one line of the JSON Lines export format (the reader matching
//! [`rivet::export::write_jsonl`]).
//!
//! A line is a JSON object with the fields `bucket` (a non-empty array of byte strings, the
//! bucket's path), and either nothing else or `sequence` (a bucket declaration), or `key` and
//! `value` together (a pair in that bucket). A byte string is a JSON string (its UTF-8 bytes) or
//! `{"base64": "..."}` (standard, padded base64). Any valid JSON spacing, field order and escape
//! is accepted; unknown or repeated fields, a key without a value, a value without a key,
//! `sequence` on a pair, empty bucket names or keys, and numbers that are not unsigned 64-bit
//! integers are rejected.
//!
//! The JSON itself is parsed by `serde_json`; [`Fields`] keeps an object's fields in order and
//! with duplicates (a `serde_json::Map` would keep only the last), so a repeated field can be
//! rejected instead of silently overwritten.

use std::fmt;

use base64::Engine as _;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// The fields of a JSON object, in order, duplicates included.
struct Fields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A short name of a JSON value's type, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses one line as a JSON object. A line holds one JSON text, so `serde_json`'s "at line 1
/// column N" becomes "at column N".
fn parse_object(text: &str) -> Result<Vec<(String, Value)>, String> {
    match serde_json::from_str::<Fields>(text) {
        Ok(f) => Ok(f.0),
        Err(e) if e.is_data() => Err("a line must be a JSON object".into()),
        Err(e) => {
            let msg = e.to_string();
            let msg = match msg.rfind(" at line ") {
                Some(i) => format!("{} at column {}", &msg[..i], e.column()),
                None => msg,
            };
            Err(msg.replace(
                "trailing characters",
                "unexpected text after the JSON object",
            ))
        }
    }
}

/// Largest key bbolt accepts.
const MAX_KEY_SIZE: usize = rivet::format::MAX_KEY_SIZE;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `{"bucket": [...], "sequence": N}`: declares the bucket (sequence 0 when absent).
    Bucket {
        /// The bucket's path from the root.
        path: Vec<Vec<u8>>,
        /// The bucket's sequence, when given.
        sequence: Option<u64>,
    },
    /// `{"bucket": [...], "key": K, "value": V}`: a key/value pair in that bucket.
    Pair {
        /// The bucket's path from the root.
        path: Vec<Vec<u8>>,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
}

/// Parses one line (without its line terminator). The error is the reason, without the line
/// number.
pub fn parse_line(text: &str) -> Result<Line, String> {
    let fields = parse_object(text)?;
    let (mut bucket, mut sequence, mut key, mut value) = (None, None, None, None);
    for (name, v) in fields {
        let slot = match name.as_str() {
            "bucket" => &mut bucket,
            "sequence" => &mut sequence,
            "key" => &mut key,
            "value" => &mut value,
            other => return Err(format!("unknown field {other:?}")),
        };
        if slot.is_some() {
            return Err(format!("field {name:?} appears twice"));
        }
        *slot = Some(v);
    }
    let path = match bucket {
        None => return Err("missing field \"bucket\"".into()),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err("\"bucket\" must name at least one bucket".into());
            }
            let mut path = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let name = byte_string(item).map_err(|e| format!("\"bucket\"[{i}]: {e}"))?;
                if name.is_empty() {
                    return Err(format!("\"bucket\"[{i}]: bucket names must not be empty"));
                }
                path.push(name);
            }
            path
        }
        Some(other) => {
            return Err(format!(
                "\"bucket\" must be an array of byte strings, not {}",
                kind(&other)
            ))
        }
    };
    match (key, value) {
        (None, None) => {
            let sequence = sequence.map(|v| unsigned(&v)).transpose()?;
            Ok(Line::Bucket { path, sequence })
        }
        (Some(k), Some(v)) => {
            if sequence.is_some() {
                return Err(
                    "\"sequence\" belongs on a bucket declaration, not on a key/value pair".into(),
                );
            }
            let key = byte_string(&k).map_err(|e| format!("\"key\": {e}"))?;
            if key.is_empty() {
                return Err("\"key\" must not be empty".into());
            }
            if key.len() > MAX_KEY_SIZE {
                return Err(format!(
                    "\"key\" is {} bytes long; the limit is {MAX_KEY_SIZE}",
                    key.len()
                ));
            }
            let value = byte_string(&v).map_err(|e| format!("\"value\": {e}"))?;
            Ok(Line::Pair { path, key, value })
        }
        (Some(_), None) => Err("\"key\" without \"value\"".into()),
        (None, Some(_)) => Err("\"value\" without \"key\"".into()),
    }
}

/// Decodes a byte string: a JSON string or `{"base64": "..."}`.
fn byte_string(v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.clone().into_bytes()),
        Value::Object(fields) => match fields.get("base64") {
            Some(Value::String(b64)) if fields.len() == 1 => decode_base64(b64),
            _ => Err("expected a string or {\"base64\": \"...\"}".into()),
        },
        other => Err(format!(
            "expected a string or {{\"base64\": \"...\"}}, not {}",
            kind(other)
        )),
    }
}

/// Parses a JSON number that must be an integer in `0..=u64::MAX`.
fn unsigned(v: &Value) -> Result<u64, String> {
    match v {
        // Without `arbitrary_precision`, 2^64 and above parse as a float: rejected here too.
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("\"sequence\" must be an integer from 0 to 2^64-1, not {n}")),
        other => Err(format!(
            "\"sequence\" must be a number, not {}",
            kind(other)
        )),
    }
}

/// Decodes standard (RFC 4648 `+/`) base64 with padding.
pub fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("invalid base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(path: &[&[u8]], key: &[u8], value: &[u8]) -> Line {
        Line::Pair {
            path: path.iter().map(|p| p.to_vec()).collect(),
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn canonical_lines() {
        assert_eq!(
            parse_line(r#"{"bucket":["widgets"],"sequence":3}"#).unwrap(),
            Line::Bucket {
                path: vec![b"widgets".to_vec()],
                sequence: Some(3)
            }
        );
        assert_eq!(
            parse_line(r#"{"bucket":["a","b"]}"#).unwrap(),
            Line::Bucket {
                path: vec![b"a".to_vec(), b"b".to_vec()],
                sequence: None
            }
        );
        assert_eq!(
            parse_line(r#"{"bucket":["w",{"base64":"AGJpbv4="}],"key":{"base64":"/w=="},"value":"tab\there\u001f"}"#)
                .unwrap(),
            pair(&[b"w", b"\x00bin\xfe"], b"\xff", b"tab\there\x1f")
        );
        assert_eq!(
            parse_line(r#"{"bucket":["w"],"sequence":18446744073709551615}"#).unwrap(),
            Line::Bucket {
                path: vec![b"w".to_vec()],
                sequence: Some(u64::MAX)
            }
        );
    }

    #[test]
    fn any_spacing_and_order() {
        assert_eq!(
            parse_line(" { \"value\" : \"v\" , \"key\" : \"\\u006b\" ,\t\"bucket\" : [ \"b\" ] } ")
                .unwrap(),
            pair(&[b"b"], b"k", b"v")
        );
        assert_eq!(
            parse_line(r#"{"bucket":["\ud83d\ude00"],"key":"k","value":""}"#).unwrap(),
            pair(&["😀".as_bytes()], b"k", b"")
        );
    }

    #[test]
    fn rejects_malformed_lines() {
        let cases = [
            ("[1]", "JSON object"),
            ("{}", "missing field \"bucket\""),
            (r#"{"bucket":[]}"#, "at least one"),
            (r#"{"bucket":"b"}"#, "array"),
            (r#"{"bucket":[""]}"#, "must not be empty"),
            (r#"{"bucket":[1]}"#, "expected a string"),
            (r#"{"bucket":["b"],"key":"k"}"#, "without \"value\""),
            (r#"{"bucket":["b"],"value":"v"}"#, "without \"key\""),
            (
                r#"{"bucket":["b"],"key":"","value":"v"}"#,
                "must not be empty",
            ),
            (r#"{"bucket":["b"],"extra":1}"#, "unknown field"),
            (r#"{"bucket":["b"],"bucket":["c"]}"#, "twice"),
            (r#"{"bucket":["b"],"sequence":-1}"#, "integer"),
            (r#"{"bucket":["b"],"sequence":1.5}"#, "integer"),
            (
                r#"{"bucket":["b"],"sequence":18446744073709551616}"#,
                "integer",
            ),
            (r#"{"bucket":["b"],"sequence":"1"}"#, "number"),
            (
                r#"{"bucket":["b"],"sequence":1,"key":"k","value":"v"}"#,
                "declaration",
            ),
            (
                r#"{"bucket":["b"],"key":{"base64":"@@@@"},"value":"v"}"#,
                "base64",
            ),
            (
                r#"{"bucket":["b"],"key":{"base64":"AB"},"value":"v"}"#,
                "invalid base64",
            ),
            (
                r#"{"bucket":["b"],"key":{"b64":"AA=="},"value":"v"}"#,
                "expected a string",
            ),
            (
                r#"{"bucket":["b"],"key":"k","value":"v"} trailing"#,
                "after",
            ),
            (
                // A lone surrogate: serde_json reports the escape as cut short.
                r#"{"bucket":["b"],"key":"\ud800","value":"v"}"#,
                "hex escape",
            ),
        ];
        for (line, want) in cases {
            let err = parse_line(line).expect_err(line);
            assert!(err.contains(want), "{line}: {err:?} lacks {want:?}");
        }
        let long = format!(
            r#"{{"bucket":["b"],"key":"{}","value":""}}"#,
            "k".repeat(32769)
        );
        assert!(parse_line(&long).unwrap_err().contains("limit"));
    }

    #[test]
    fn base64_vectors() {
        for (plain, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foobar", "Zm9vYmFy"),
            (b"\xfb\xff\xbf", "+/+/"),
        ] {
            assert_eq!(decode_base64(enc).unwrap(), plain, "{enc}");
        }
        assert!(decode_base64("Zg=a").is_err());
        assert!(decode_base64("Zg==Zg==").is_err());
        assert!(decode_base64("Z===").is_err());
    }
}
