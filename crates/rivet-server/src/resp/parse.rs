//! Request parsing: RESP multibulk arrays and inline commands, incrementally, with Redis's
//! limits and exact protocol error texts (Redis 7.0 `networking.c`).
//!
//! The parser consumes complete pieces from the front of a `BytesMut` and keeps its place
//! between calls, so a 500 MB argument arriving in 64 KiB reads is scanned once. It never
//! allocates according to a length the client claims: the argument vector grows as arguments
//! arrive and a bulk string is taken from the buffer only once it is all there.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline command line, and longest `*`/`$` header line (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;

/// Largest argument count a client may announce (Redis: `INT_MAX`).
const MAX_MULTIBULK: i64 = i32::MAX as i64;

/// Limits that apply while parsing, read from the live configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `proto-max-bulk-len`: the longest bulk string accepted, in bytes.
    pub max_bulk_len: i64,
    /// False until the client authenticates when a password is set; then headers are capped
    /// (10 arguments, 16 KiB bulks) as Redis does.
    pub authenticated: bool,
}

/// A protocol error: the reply text (without the leading `-`). The connection sends it and
/// closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// Incremental request parser for one connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Arguments still to read of the current multibulk request (0 = between requests).
    remaining: usize,
    /// Length of the bulk string being read, once its header has been consumed.
    bulk_len: Option<usize>,
    args: Vec<Bytes>,
}

impl RequestParser {
    /// A parser between requests.
    pub fn new() -> RequestParser {
        RequestParser::default()
    }

    /// Takes the next complete request from the front of `buf`.
    ///
    /// Returns `Ok(Some(args))` for a request (possibly empty: an empty inline line or a
    /// `*0`/negative count, which callers skip), `Ok(None)` when more bytes are needed, and
    /// `Err` on a protocol error.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if self.remaining == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                return parse_inline(buf);
            }
            let Some(line) = take_line(buf, "too big mbulk count string")? else {
                return Ok(None);
            };
            let n = parse_i64(&line[1..]).filter(|n| *n <= MAX_MULTIBULK);
            let Some(n) = n else {
                return Err(proto("invalid multibulk length"));
            };
            if n > 10 && !limits.authenticated {
                return Err(proto("unauthenticated multibulk length"));
            }
            if n <= 0 {
                return Ok(Some(Vec::new()));
            }
            self.remaining = n as usize;
            self.args = Vec::with_capacity(self.remaining.min(1024));
        }
        while self.remaining > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let Some(line) = take_line_peek(buf, "too big bulk count string")? else {
                        return Ok(None);
                    };
                    if buf[0] != b'$' {
                        let got = buf[0] as char;
                        return Err(ProtocolError(format!(
                            "Protocol error: expected '$', got '{got}'"
                        )));
                    }
                    let len = parse_i64(&buf[1..line]);
                    let len = match len {
                        Some(l) if l >= 0 && l <= limits.max_bulk_len => l,
                        _ => return Err(proto("invalid bulk length")),
                    };
                    if len > 16384 && !limits.authenticated {
                        return Err(proto("unauthenticated bulk length"));
                    }
                    buf.advance(line + 2);
                    let len = usize::try_from(len).map_err(|_| proto("invalid bulk length"))?;
                    self.bulk_len = Some(len);
                    len
                }
            };
            // Redis skips the two bytes after the payload without checking them.
            if buf.len() < len + 2 {
                return Ok(None);
            }
            let arg = buf.split_to(len).freeze();
            buf.advance(2);
            self.args.push(arg);
            self.bulk_len = None;
            self.remaining -= 1;
        }
        Ok(Some(std::mem::take(&mut self.args)))
    }

    /// True while a multibulk request is half read (used to tell EOF mid-request).
    pub fn in_request(&self) -> bool {
        self.remaining > 0
    }
}

fn proto(what: &str) -> ProtocolError {
    ProtocolError(format!("Protocol error: {what}"))
}

/// Finds a `\r\n`-terminated header line at the front of `buf` without consuming it;
/// returns the index of the `\r`.
fn take_line_peek(buf: &BytesMut, too_big: &str) -> Result<Option<usize>, ProtocolError> {
    match memchr(b'\r', buf) {
        None if buf.len() > INLINE_MAX => Err(proto(too_big)),
        None => Ok(None),
        Some(i) if i + 1 >= buf.len() => Ok(None),
        Some(i) => Ok(Some(i)),
    }
}

/// Consumes a header line ending in `\r\n`; returns it without the terminator.
fn take_line(buf: &mut BytesMut, too_big: &str) -> Result<Option<Bytes>, ProtocolError> {
    let Some(i) = take_line_peek(buf, too_big)? else {
        return Ok(None);
    };
    let line = buf.split_to(i).freeze();
    buf.advance(2);
    Ok(Some(line))
}

fn memchr(c: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == c)
}

/// Parses a decimal integer exactly as Redis's `string2ll` does: optional `-`, no `+`, no
/// leading zeros (except "0"), no spaces, no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// One inline command line (`SET k v\r\n`), split as Redis's `sdssplitargs` splits it.
fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(proto("too big inline request"));
        }
        return Ok(None);
    };
    let mut line = buf.split_to(nl + 1);
    line.truncate(nl);
    if line.last() == Some(&b'\r') {
        line.truncate(nl - 1);
    }
    match split_args(&line) {
        Some(args) => Ok(Some(args.into_iter().map(Bytes::from).collect())),
        None => Err(proto("unbalanced quotes in request")),
    }
}

/// Splits a line into arguments: whitespace-separated words, `"double quoted"` strings with
/// `\n \r \t \b \a \\ \" \xHH` escapes, and `'single quoted'` strings with `\'`. A closing
/// quote must be followed by whitespace or the end. `None` on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                let c = *line.get(i)?;
                if c == b'\\' && i + 3 < line.len() && line[i + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        cur.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < line.len() {
                    cur.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else if in_sq {
                let c = *line.get(i)?;
                if c == b'\\' && i + 1 < line.len() && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                    i += 1;
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(&c) if is_space(c) => break,
                    Some(b'"') => {
                        in_dq = true;
                        i += 1;
                    }
                    Some(b'\'') => {
                        in_sq = true;
                        i += 1;
                    }
                    Some(&c) => {
                        cur.push(c);
                        i += 1;
                    }
                }
            }
        }
        args.push(cur);
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        authenticated: true,
    };

    fn all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = p.next(&mut buf, OPEN)? {
            out.push(req.into_iter().map(|b| b.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let r = all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nset a \"b c\\x41\"\n").unwrap();
        assert_eq!(r[0], vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(r[1], vec![b"PING".to_vec()]);
        assert_eq!(r[2], vec![b"set".to_vec(), b"a".to_vec(), b"b cA".to_vec()]);
    }

    #[test]
    fn byte_at_a_time_is_the_same() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut p = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(r) = p.next(&mut buf, OPEN).unwrap() {
                got = Some(r);
            }
        }
        let got = got.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(&got[2][..], b"value");
    }

    #[test]
    fn redis_error_texts() {
        let e = |i: &[u8]| all(i).unwrap_err().0;
        assert_eq!(
            e(b"*3000000000\r\n"),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            e(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
            "Protocol error: expected '$', got 'f'"
        );
        assert_eq!(e(b"*1\r\n$-10\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            e(b"*1\r\n$2000000000\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            e(b"*1\r\n$blabla\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            e(b"set \"\"\"test-key\"\"\" v\r\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            e(&vec![b'a'; INLINE_MAX + 1]),
            "Protocol error: too big inline request"
        );
    }

    #[test]
    fn negative_and_empty_requests_are_skipped() {
        let r = all(b"*-10\r\n\r\n*0\r\n").unwrap();
        assert!(r.iter().all(|a| a.is_empty()));
    }

    #[test]
    fn unauthenticated_limits() {
        let mut p = RequestParser::new();
        let lim = Limits {
            authenticated: false,
            ..OPEN
        };
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert!(p.next(&mut buf, lim).is_err());
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"012"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"-0"), None);
    }
}
