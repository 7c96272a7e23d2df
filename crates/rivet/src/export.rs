//! Canonical JSON Lines dump of a database's logical content.
//!
//! The format is the one the Go interop peer's `dump` subcommand writes (see
//! `tests/interop/README.md`), so a Rivet export and a bbolt dump of the same data are
//! byte-for-byte equal:
//!
//! * one compact JSON object per line, each line ending in `\n`, no spaces anywhere;
//! * the walk is depth-first, starting at the top-level buckets, in ascending unsigned byte
//!   order of key (cursor order);
//! * every bucket first gets a declaration line `{"bucket":[P1,...,Pn]}`, with
//!   `,"sequence":N` appended when the bucket's sequence is not zero;
//! * then its entries in key order: a plain key/value is
//!   `{"bucket":[P1,...,Pn],"key":K,"value":V}`, and a sub-bucket entry is the sub-bucket's
//!   declaration followed, recursively, by its contents, at that key's position;
//! * each byte string (path element, key, value) is a JSON string when it is valid UTF-8,
//!   otherwise `{"base64":"..."}` in standard padded base64 (see [`encode_bytes`]).
//!
//! ```text
//! {"bucket":["widgets"],"sequence":3}
//! {"bucket":["widgets"],"key":"foo","value":"bar"}
//! {"bucket":["widgets","sub"]}
//! {"bucket":["widgets","sub"],"key":{"base64":"/w=="},"value":"tab\there\u001f"}
//! ```

use std::io::Write;

use crate::bucket::Bucket;
use crate::cursor::Iter;
use crate::error::{Error, Result};
use crate::tx::Tx;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends one byte string to `out` in the dump encoding.
///
/// When `b` is valid UTF-8 (the same test as Go's `utf8.Valid`: surrogates, overlong forms
/// and code points above U+10FFFF are rejected) it is written as a JSON string: `"` becomes
/// `\"`, `\` becomes `\\`, 0x08, 0x0C, 0x0A, 0x0D and 0x09 become `\b`, `\f`, `\n`, `\r` and
/// `\t`, every other byte below 0x20 becomes `\u00xx` (lowercase hex), and everything else
/// (0x7F, `<>&`, U+2028, all non-ASCII text) is written literally. Otherwise it is written as
/// `{"base64":"..."}` with standard padded base64. An empty string is `""`.
pub fn encode_bytes(b: &[u8], out: &mut String) {
    match std::str::from_utf8(b) {
        Ok(s) => encode_str(s, out),
        Err(_) => {
            out.push_str("{\"base64\":\"");
            encode_base64(b, out);
            out.push_str("\"}");
        }
    }
}

/// Appends `s` as a JSON string with the dump's escaping rules.
fn encode_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &str = match c {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            c if c < 0x20 => "",
            _ => continue,
        };
        // Every escaped byte is ASCII, so `start..i` lies on character boundaries.
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(HEX_DIGITS[usize::from(c >> 4)] as char);
            out.push(HEX_DIGITS[usize::from(c & 0xf)] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends standard (RFC 4648, `+/`, padded) base64 of `b`.
fn encode_base64(b: &[u8], out: &mut String) {
    out.reserve(b.len().div_ceil(3) * 4);
    let sym = |x: u32| BASE64_ALPHABET[(x & 0x3f) as usize] as char;
    let mut chunks = b.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(sym(n >> 6));
        out.push(sym(n));
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.push(sym(n >> 18));
            out.push(sym(n >> 12));
            out.push_str("==");
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.push(sym(n >> 18));
            out.push(sym(n >> 12));
            out.push(sym(n >> 6));
            out.push('=');
        }
        _ => {}
    }
}

/// Appends `{"bucket":[P1,...,Pn]` (no closing brace) to `out`.
fn encode_path(path: &[&[u8]], out: &mut String) {
    out.push_str("{\"bucket\":[");
    for (i, p) in path.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        encode_bytes(p, out);
    }
    out.push(']');
}

/// One bucket being walked: its path and the iterator over its remaining entries.
struct Level<'tx> {
    bucket: Bucket<'tx>,
    iter: Iter<'tx>,
}

/// Writes the canonical JSON Lines dump of everything visible to `tx` to `out` and returns
/// the number of lines written.
///
/// The output is byte-for-byte what the Go interop peer's `dump` writes for the same
/// logical content (see the [module documentation](self)). The walk holds only one line in
/// memory at a time; pass a buffered writer for large databases. I/O failures are returned as
/// [`Error::Io`]; a plain key at the top level (which bbolt never writes) is reported as
/// [`Error::Corrupted`].
pub fn write_jsonl(tx: &Tx, out: &mut impl Write) -> Result<u64> {
    let mut lines = 0u64;
    let mut line = String::new();
    let mut emit = |line: &mut String| -> Result<()> {
        line.push_str("}\n");
        out.write_all(line.as_bytes())
            .map_err(|e| Error::io("writing JSON Lines export", e))?;
        line.clear();
        lines += 1;
        Ok(())
    };

    let root = tx.root();
    // The walk uses an explicit stack so that deep nesting cannot overflow the call stack.
    let mut path: Vec<&[u8]> = Vec::new();
    let mut stack: Vec<Level<'_>> = Vec::new();
    let mut roots: std::collections::HashSet<u64> = std::collections::HashSet::new();
    roots.insert(root.root_page());
    let mut top = root.iter();
    loop {
        let entry = match stack.last_mut() {
            Some(level) => level.iter.next(),
            None => top.next(),
        };
        let Some(entry) = entry else {
            if stack.pop().is_none() {
                break;
            }
            path.pop();
            continue;
        };
        let entry = entry?;
        let parent = stack.last().map(|l| l.bucket).unwrap_or(root);
        if entry.is_bucket() {
            let Some(child) = parent.bucket(entry.key())? else {
                return Err(Error::corrupted(
                    parent.root_page(),
                    "bucket entry could not be opened as a bucket",
                ));
            };
            // In a sound file every bucket root page is referenced once; seeing one again means
            // a corrupt reference cycle, which would otherwise nest forever.
            let page = child.root_page();
            if page != 0 && !roots.insert(page) {
                return Err(Error::corrupted(
                    page,
                    format!(
                        "bucket {:?} reuses the root page of another bucket (reference cycle)",
                        String::from_utf8_lossy(entry.key())
                    ),
                ));
            }
            path.push(entry.key());
            encode_path(&path, &mut line);
            let seq = child.sequence();
            if seq != 0 {
                line.push_str(",\"sequence\":");
                line.push_str(&seq.to_string());
            }
            emit(&mut line)?;
            stack.push(Level {
                bucket: child,
                iter: child.iter(),
            });
        } else if stack.is_empty() {
            return Err(Error::corrupted(
                root.root_page(),
                format!(
                    "root entry {:?} is not a bucket",
                    String::from_utf8_lossy(entry.key())
                ),
            ));
        } else {
            encode_path(&path, &mut line);
            line.push_str(",\"key\":");
            encode_bytes(entry.key(), &mut line);
            line.push_str(",\"value\":");
            encode_bytes(entry.value().unwrap_or_default(), &mut line);
            emit(&mut line)?;
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Db, Options};

    fn enc(b: &[u8]) -> String {
        let mut s = String::new();
        encode_bytes(b, &mut s);
        s
    }

    fn export(db: &Db) -> String {
        let tx = db.begin_read().unwrap();
        let mut out = Vec::new();
        let n = write_jsonl(&tx, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(n as usize, s.lines().count());
        s
    }

    fn temp_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            dir.path().join("export.db"),
            Options {
                page_size: Some(4096),
                ..Options::default()
            },
        )
        .unwrap();
        (dir, db)
    }

    #[test]
    fn escapes_every_control_byte() {
        let named = [
            (0x08u8, "\\b"),
            (0x09, "\\t"),
            (0x0a, "\\n"),
            (0x0c, "\\f"),
            (0x0d, "\\r"),
        ];
        for c in 0u8..0x20 {
            let want = match named.iter().find(|(b, _)| *b == c) {
                Some((_, e)) => format!("\"{e}\""),
                None => format!("\"\\u{:04x}\"", c),
            };
            assert_eq!(enc(&[c]), want, "byte {c:#04x}");
        }
        assert_eq!(enc(b"\x1f"), "\"\\u001f\"");
        assert_eq!(enc(b"\x1b"), "\"\\u001b\"");
        assert_eq!(enc(b"\x00"), "\"\\u0000\"");
        assert_eq!(enc(b"\x0b"), "\"\\u000b\"");
    }

    #[test]
    fn escapes_quotes_and_backslashes_only() {
        assert_eq!(enc(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(enc(b"/<>&'\x7f"), "\"/<>&'\x7f\"");
        assert_eq!(enc(b"tab\there\x1f"), r#""tab\there\u001f""#);
        // Non-ASCII text, U+2028 and U+2029 are literal.
        let s = "h\u{e9}llo \u{2028}\u{2029} \u{1f600} \u{65e5}\u{672c}";
        assert_eq!(enc(s.as_bytes()), format!("\"{s}\""));
        // Mixed escapes around multi-byte characters.
        assert_eq!(enc("\u{e9}\n\u{e9}".as_bytes()), "\"\u{e9}\\n\u{e9}\"");
    }

    #[test]
    fn empty_string() {
        assert_eq!(enc(b""), "\"\"");
    }

    #[test]
    fn invalid_utf8_is_base64() {
        assert_eq!(enc(b"\xff"), r#"{"base64":"/w=="}"#);
        assert_eq!(enc(b"\x80"), r#"{"base64":"gA=="}"#);
        // Surrogate U+D800 encoded in UTF-8, an overlong "/", and a code point above U+10FFFF.
        assert_eq!(enc(b"\xed\xa0\x80"), r#"{"base64":"7aCA"}"#);
        assert_eq!(enc(b"\xc0\xaf"), r#"{"base64":"wK8="}"#);
        assert_eq!(enc(b"\xf4\x90\x80\x80"), r#"{"base64":"9JCAgA=="}"#);
        // A truncated multi-byte sequence at the end.
        assert_eq!(enc(b"ab\xe2\x82"), r#"{"base64":"YWLigg=="}"#);
        // Valid edge code points stay strings.
        assert_eq!(enc("\u{10ffff}".as_bytes()), "\"\u{10ffff}\"");
        assert_eq!(enc(b"\x7f"), "\"\x7f\"");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            let mut s = String::new();
            encode_base64(input, &mut s);
            assert_eq!(s, want);
        }
        let all: Vec<u8> = (0..=255u8).collect();
        let mut s = String::new();
        encode_base64(&all, &mut s);
        assert_eq!(&s[..8], "AAECAwQF");
        assert!(s.ends_with("+/w=="));
        assert_eq!(s.len(), 344);
        assert_eq!(enc(&[0xfb, 0xff, 0xbf]), r#"{"base64":"+/+/"}"#);
    }

    #[test]
    fn empty_database_exports_nothing() {
        let (_dir, db) = temp_db();
        assert_eq!(export(&db), "");
    }

    #[test]
    fn nested_buckets_with_sequences() {
        let (_dir, db) = temp_db();
        db.update(|tx| {
            let w = tx.create_bucket(b"widgets")?;
            w.set_sequence(3)?;
            w.put(b"foo", b"bar")?;
            w.put(b"empty", b"")?;
            let sub = w.create_bucket(b"sub")?;
            sub.put(b"\xff", b"tab\there\x1f")?;
            let deep = sub.create_bucket(b"deep")?;
            deep.set_sequence(u64::MAX)?;
            deep.put(b"k", b"v")?;
            sub.create_bucket(b"\x00bin\xfe")?;
            w.put(b"zzz", b"last")?;
            let a = tx.create_bucket(b"a")?;
            a.next_sequence()?;
            tx.create_bucket(b"empty-bucket")?;
            Ok::<_, Error>(())
        })
        .unwrap();
        let want = concat!(
            "{\"bucket\":[\"a\"],\"sequence\":1}\n",
            "{\"bucket\":[\"empty-bucket\"]}\n",
            "{\"bucket\":[\"widgets\"],\"sequence\":3}\n",
            "{\"bucket\":[\"widgets\"],\"key\":\"empty\",\"value\":\"\"}\n",
            "{\"bucket\":[\"widgets\"],\"key\":\"foo\",\"value\":\"bar\"}\n",
            "{\"bucket\":[\"widgets\",\"sub\"]}\n",
            "{\"bucket\":[\"widgets\",\"sub\",{\"base64\":\"AGJpbv4=\"}]}\n",
            "{\"bucket\":[\"widgets\",\"sub\",\"deep\"],\"sequence\":18446744073709551615}\n",
            "{\"bucket\":[\"widgets\",\"sub\",\"deep\"],\"key\":\"k\",\"value\":\"v\"}\n",
            "{\"bucket\":[\"widgets\",\"sub\"],\"key\":{\"base64\":\"/w==\"},\"value\":\"tab\\there\\u001f\"}\n",
            "{\"bucket\":[\"widgets\"],\"key\":\"zzz\",\"value\":\"last\"}\n",
        );
        assert_eq!(export(&db), want);
    }

    #[test]
    fn export_inside_write_transaction_sees_uncommitted_changes() {
        let (_dir, db) = temp_db();
        let tx = db.begin_write().unwrap();
        tx.create_bucket(b"b").unwrap().put(b"k", b"v").unwrap();
        let mut out = Vec::new();
        assert_eq!(write_jsonl(&tx, &mut out).unwrap(), 2);
        assert_eq!(
            out,
            b"{\"bucket\":[\"b\"]}\n{\"bucket\":[\"b\"],\"key\":\"k\",\"value\":\"v\"}\n"
        );
        tx.rollback();
    }

    #[test]
    fn many_keys_across_pages() {
        let (_dir, db) = temp_db();
        db.update(|tx| {
            let b = tx.create_bucket(b"many")?;
            for i in 0..2000u32 {
                b.put(format!("k{i:05}").as_bytes(), &i.to_be_bytes())?;
            }
            b.create_bucket(b"k00500x")?.put(b"in", b"side")?;
            Ok::<_, Error>(())
        })
        .unwrap();
        let s = export(&db);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 1 + 2000 + 2);
        assert_eq!(lines[0], "{\"bucket\":[\"many\"]}");
        assert_eq!(lines[502], "{\"bucket\":[\"many\",\"k00500x\"]}");
        assert_eq!(
            lines[503],
            "{\"bucket\":[\"many\",\"k00500x\"],\"key\":\"in\",\"value\":\"side\"}"
        );
        assert!(lines[504].starts_with("{\"bucket\":[\"many\"],\"key\":\"k00501\""));
    }

    #[test]
    fn io_errors_are_wrapped() {
        struct Failing;
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (_dir, db) = temp_db();
        db.update(|tx| tx.create_bucket(b"b").map(|_| ())).unwrap();
        let tx = db.begin_read().unwrap();
        match write_jsonl(&tx, &mut Failing) {
            Err(Error::Io { .. }) => {}
            other => panic!("expected an I/O error, got {other:?}"),
        }
    }
}
