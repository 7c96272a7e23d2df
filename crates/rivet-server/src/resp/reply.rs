//! Replies: the typed value a command returns, and its encoding as RESP2 or RESP3.
//!
//! Commands build a [`Reply`] without knowing the connection's protocol version; the
//! connection encodes it with [`Reply::encode`]. RESP3-only types fall back to their RESP2
//! forms the way Redis does (maps become flat arrays, doubles become bulk strings, booleans
//! integers, null becomes `$-1` or `*-1`).

/// A command's reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status line. Must not contain CR or LF.
    Status(&'static str),
    /// A status line built at run time (for example `TYPE`'s answer).
    StatusOwned(String),
    /// An error line, whole: code and message (`ERR syntax error`, `WRONGTYPE ...`).
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$len\r\nbytes`.
    Bulk(Vec<u8>),
    /// The null bulk string (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// The null array (`*-1` in RESP2, `_` in RESP3).
    NilArray,
    /// `*n` followed by the elements.
    Array(Vec<Reply>),
    /// A RESP3 map (`%n`); RESP2 sends a flat array of 2n elements.
    Map(Vec<(Reply, Reply)>),
    /// A RESP3 set (`~n`); RESP2 sends an array.
    Set(Vec<Reply>),
    /// A RESP3 double (`,`); RESP2 sends it as a bulk string. Formatted as Redis does.
    Double(f64),
    /// A RESP3 boolean (`#t`/`#f`); RESP2 sends `:1`/`:0`.
    Bool(bool),
    /// A RESP3 verbatim string (`=len\r\ntxt:...`); RESP2 sends a bulk string.
    Verbatim(String),
    /// A RESP3 big number (`(`); RESP2 sends it as a bulk string.
    BigNumber(String),
    /// Bytes already encoded (used for EXEC's nested replies).
    Raw(Vec<u8>),
}

/// The shared `OK` reply.
pub const OK: Reply = Reply::Status("OK");

impl Reply {
    /// An error reply from a full Redis error line (`"ERR ..."`).
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    /// A bulk reply copying `b`.
    pub fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(b.to_vec())
    }

    /// A bulk reply, or nil when `b` is `None`.
    pub fn opt_bulk(b: Option<&[u8]>) -> Reply {
        match b {
            Some(b) => Reply::Bulk(b.to_vec()),
            None => Reply::Nil,
        }
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoding of this reply for protocol version `proto` (2 or 3) to `out`.
    pub fn encode(&self, proto: u8, out: &mut Vec<u8>) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::StatusOwned(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(e) => {
                // An error line must stay one line: Redis replaces newlines with spaces.
                out.push(b'-');
                out.extend(
                    e.bytes()
                        .map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
                );
                out.extend_from_slice(b"\r\n");
            }
            Reply::Int(n) => int_line(out, b':', *n),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil => {
                out.extend_from_slice(if proto >= 3 { b"_\r\n" } else { b"$-1\r\n" });
            }
            Reply::NilArray => {
                out.extend_from_slice(if proto >= 3 { b"_\r\n" } else { b"*-1\r\n" });
            }
            Reply::Array(items) => {
                int_line(out, b'*', items.len() as i64);
                for i in items {
                    i.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                if proto >= 3 {
                    int_line(out, b'%', pairs.len() as i64);
                } else {
                    int_line(out, b'*', 2 * pairs.len() as i64);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Set(items) => {
                int_line(
                    out,
                    if proto >= 3 { b'~' } else { b'*' },
                    items.len() as i64,
                );
                for i in items {
                    i.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                if proto >= 3 {
                    line(out, b',', text.as_bytes());
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::Bool(b) => {
                if proto >= 3 {
                    out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
                }
            }
            Reply::Verbatim(text) => {
                if proto >= 3 {
                    int_line(out, b'=', text.len() as i64 + 4);
                    out.extend_from_slice(b"txt:");
                    out.extend_from_slice(text.as_bytes());
                    out.extend_from_slice(b"\r\n");
                } else {
                    bulk(out, text.as_bytes());
                }
            }
            Reply::BigNumber(n) => {
                // One line: CR and LF become spaces, as Redis does.
                let n: Vec<u8> = n
                    .bytes()
                    .map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c })
                    .collect();
                if proto >= 3 {
                    line(out, b'(', &n);
                } else {
                    bulk(out, &n);
                }
            }
            Reply::Raw(b) => out.extend_from_slice(b),
        }
    }
}

fn line(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn int_line(out: &mut Vec<u8>, tag: u8, n: i64) {
    out.push(tag);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    int_line(out, b'$', b.len() as i64);
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Formats a double as Redis's RESP3 double and `%.17g` replies do: `inf`, `-inf`, `nan`,
/// otherwise the shortest text that reads back as the same value.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format_g17(d)
    }
}

/// `%.17g` formatting (C's printf), as Redis uses for scores and INCRBYFLOAT's sibling
/// commands: 17 significant digits, trailing zeros removed, exponent form outside 1e-5..1e17.
pub fn format_g17(d: f64) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{:.16e}", d); // d.dddddddddddddddde±X
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-5..17).contains(&exp) {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, d)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, proto: u8) -> String {
        let mut v = Vec::new();
        r.encode(proto, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn resp2_and_resp3_forms() {
        assert_eq!(enc(&Reply::Nil, 2), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, 3), "_\r\n");
        assert_eq!(enc(&Reply::NilArray, 2), "*-1\r\n");
        let m = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Int(1))]);
        assert_eq!(enc(&m, 2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, 3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), 2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), 3), ",1.5\r\n");
        assert_eq!(enc(&Reply::Bool(true), 2), ":1\r\n");
        assert_eq!(enc(&Reply::err("ERR a\r\nb"), 2), "-ERR a  b\r\n");
    }

    #[test]
    fn g17_matches_printf() {
        assert_eq!(format_g17(1.0), "1");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(10.5), "10.5");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_g17(-3.0), "-3");
        assert_eq!(format_g17(123456789012345678.0), "1.2345678901234568e+17");
    }
}
