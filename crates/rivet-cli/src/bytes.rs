//! Byte strings on the command line and on the terminal.
//!
//! Bucket names, keys and values are given as text (the argument's raw bytes, so non-UTF-8
//! arguments work too) or, with `--hex`, as hex digits. They are shown escaped by default, so
//! binary data cannot garble the terminal: printable text is shown as is, `\` as `\\`, common
//! control characters as `\n`, `\t`, `\r`, other control characters and invalid UTF-8 bytes as
//! `\xNN` (or `\u{NNNN}` for non-ASCII control characters). `--hex` shows hex, `--raw` the bytes
//! unchanged.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::error::{CliError, CliResult};

/// How byte strings are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Escaped text (the default).
    Escaped,
    /// Lowercase hex.
    Hex,
    /// The bytes unchanged.
    Raw,
}

impl Show {
    /// The display mode selected by the `--hex` and `--raw` flags.
    pub fn from_flags(hex: bool, raw: bool) -> Show {
        if hex {
            Show::Hex
        } else if raw {
            Show::Raw
        } else {
            Show::Escaped
        }
    }

    /// Renders `b` in this mode.
    pub fn render(self, b: &[u8]) -> Vec<u8> {
        match self {
            Show::Escaped => escape(b).into_bytes(),
            Show::Hex => hex(b).into_bytes(),
            Show::Raw => b.to_vec(),
        }
    }
}

/// Decodes a command-line argument: its raw bytes, or hex digits when `hex` is set.
pub fn decode_arg(arg: &OsStr, hex: bool, what: &str) -> CliResult<Vec<u8>> {
    let raw = arg.as_bytes();
    if !hex {
        return Ok(raw.to_vec());
    }
    unhex(raw).map_err(|why| {
        CliError::new(format!(
            "invalid hex for {what} {:?}: {why}",
            String::from_utf8_lossy(raw)
        ))
    })
}

/// Decodes hex digits (either case; an optional `0x` prefix).
pub fn unhex(s: &[u8]) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix(b"0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    let digit = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("{:?} is not a hex digit", char::from(c))),
        }
    };
    s.chunks_exact(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0xf)]));
    }
    s
}

/// Escapes `b` for display on a terminal (see the module documentation).
pub fn escape(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                c if c.is_control() && c.is_ascii() => {
                    s.push_str(&format!("\\x{:02x}", u32::from(c)));
                }
                c if c.is_control() || is_invisible_format(c) => {
                    s.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
                }
                c => s.push(c),
            }
        }
        for &x in chunk.invalid() {
            s.push_str(&format!("\\x{x:02x}"));
        }
    }
    s
}

/// Characters that could reorder or hide text on a terminal (bidi controls, line and paragraph
/// separators).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A bucket path for messages: escaped names joined with `/`.
pub fn show_path(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "(root)".into();
    }
    path.iter().map(|p| escape(p)).collect::<Vec<_>>().join("/")
}

/// Shows at most `max` bytes of `b` (escaped or hex), noting the full length when cut.
pub fn preview(b: &[u8], show: Show, max: usize) -> String {
    let cut = &b[..b.len().min(max)];
    let mut s = match show {
        Show::Hex => hex(cut),
        _ => escape(cut),
    };
    if b.len() > max {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape(b"plain text"), "plain text");
        assert_eq!(escape(b"a\\b\nc\td\re"), "a\\\\b\\nc\\td\\re");
        assert_eq!(escape(b"\x00\x1b\x7f"), "\\x00\\x1b\\x7f");
        assert_eq!(escape(b"\xff\xfe ok"), "\\xff\\xfe ok");
        assert_eq!(escape("héllo 日本".as_bytes()), "héllo 日本");
        assert_eq!(escape("\u{85}".as_bytes()), "\\u{0085}");
        assert_eq!(escape("\u{202e}x".as_bytes()), "\\u{202e}x");
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(b"\x00\xffA"), "00ff41");
        assert_eq!(unhex(b"00ff41").unwrap(), b"\x00\xffA");
        assert_eq!(unhex(b"0xABcd").unwrap(), b"\xab\xcd");
        assert_eq!(unhex(b"").unwrap(), b"");
        assert!(unhex(b"abc").is_err());
        assert!(unhex(b"zz").is_err());
    }

    #[test]
    fn previews() {
        assert_eq!(preview(b"abcdef", Show::Escaped, 3), "abc… (6 bytes)");
        assert_eq!(preview(b"ab", Show::Hex, 3), "6162");
    }
}
