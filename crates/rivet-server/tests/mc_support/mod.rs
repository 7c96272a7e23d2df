//! Memcached helpers for the integration tests: a reference Debian `memcached` (1.6.18) on a
//! free port (skipped loudly when missing, failing when `CI` is set), and a small blocking
//! text-protocol client that writes raw bytes and reads one reply unit at a time, binary-safe:
//! a plain line (`STORED`, `HD c5 t-1`, `EN`, `MN`, `CLIENT_ERROR ...`, `42`, ...),
//! the `VALUE ...`/data/`END` block of get/gets/gat/gats, an `mg` hit with value
//! (`VA <len> <flags>*` + data block), or the `STAT ...`/`END` block of `stats`.

#![allow(dead_code)]

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's reference server.
pub const MEMCACHED_BIN: &str = "/usr/bin/memcached";
/// How long memcached may take to answer its first `version`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of a [`McConn`].
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A reference memcached (`-l 127.0.0.1 -p PORT -U 0 -t 1 -m 64 -u root` plus extra
/// arguments); killed on drop.
pub struct Memcached {
    child: Option<Child>,
    port: u16,
}

impl Memcached {
    /// Starts Debian's memcached with `extra` arguments (e.g. `["-I", "1m"]`), or returns
    /// None when it is not installed (see [`memcached_or_skip`]). Retries on a new port if
    /// the chosen one was taken meanwhile.
    pub fn start(extra: &[&str]) -> Option<Memcached> {
        if !Path::new(MEMCACHED_BIN).exists() {
            return None;
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = crate::common::free_port();
            let mut cmd = Command::new(MEMCACHED_BIN);
            cmd.args(["-l", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .args(["-U", "0", "-t", "1", "-m", "64"])
                // Needed when the tests run as root (memcached refuses to otherwise); ignored
                // for other users.
                .args(["-u", "root"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawn memcached ({cmd:?}): {e}"));
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    return Some(Memcached {
                        child: Some(child),
                        port,
                    })
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = format!("{why} ({cmd:?})");
                }
            }
        }
        panic!("memcached did not start: {last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn conn(&self) -> McConn {
        McConn::connect(self.port)
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls until `port` answers `version` with a `VERSION` line.
fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::from("never connected");
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the process exited with {status}"));
        }
        match version_once(port) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    Err(format!(
        "no VERSION within {START_TIMEOUT:?} (last: {last})"
    ))
}

fn version_once(port: u16) -> Result<(), String> {
    let addr = ([127, 0, 0, 1], port).into();
    let s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    let mut c = McConn::from_stream(s, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    c.try_send_raw(b"version\r\n").map_err(|e| e.to_string())?;
    match c.try_read().map_err(|e| e.to_string())? {
        Unit::Line(l) if l.starts_with(b"VERSION ") => Ok(()),
        other => Err(format!("version answered {other}")),
    }
}

/// Starts memcached, or prints a loud `SKIPPED` line and returns None when it is missing;
/// panics instead when the environment variable `CI` is set (non-empty).
pub fn memcached_or_skip(test: &str, extra: &[&str]) -> Option<Memcached> {
    if let Some(m) = Memcached::start(extra) {
        return Some(m);
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
        panic!("{test}: memcached not installed ({MEMCACHED_BIN}) and CI is set");
    }
    let stars = "*".repeat(70);
    // Straight to stderr (not `eprintln!`), so the test harness' capture cannot hide it.
    let _ = writeln!(
        io::stderr(),
        "\n{stars}\nSKIPPED: memcached not installed ({MEMCACHED_BIN}); {test} not run \
         (apt-get install -y memcached)\n{stars}\n"
    );
    None
}

/// One reply unit of the memcached text protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Unit {
    /// A single line without its CRLF: `STORED`, `HD ...`, `EN`, `MN`, `ERROR`, `42`, ...
    Line(Vec<u8>),
    /// get/gets/gat/gats: each `VALUE <key> <flags> <bytes> [<cas>]` header (without CRLF)
    /// with its data block, up to the `END` line (a lone `END` is an empty list).
    Values(Vec<(Vec<u8>, Vec<u8>)>),
    /// An `mg` hit with `v`: the `VA <len> <flags>*` header and the data block.
    Va(Vec<u8>, Vec<u8>),
    /// `stats`: the `STAT ...` lines up to `END`.
    Stats(Vec<Vec<u8>>),
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Line(l) => write!(f, "{}", escape(l)),
            Unit::Values(v) => {
                write!(f, "[")?;
                for (i, (h, d)) in v.iter().enumerate() {
                    write!(
                        f,
                        "{}{} + {}",
                        if i > 0 { ", " } else { "" },
                        escape(h),
                        escape(d)
                    )?;
                }
                write!(f, "] END")
            }
            Unit::Va(h, d) => write!(f, "{} + {}", escape(h), escape(d)),
            Unit::Stats(v) => write!(f, "(stats: {} lines) END", v.len()),
        }
    }
}

/// Shows `b` for messages, cut to its first 64 bytes (memcached values are often longer
/// than the Redis tests' 48).
pub fn escape(b: &[u8]) -> String {
    crate::common::escape_max(b, 64)
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A blocking memcached text-protocol connection (read timeout 10 s).
pub struct McConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    port: u16,
}

impl McConn {
    /// Connects to 127.0.0.1:`port`; panics with context on failure.
    pub fn connect(port: u16) -> McConn {
        let s = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        McConn::from_stream(s, READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("set up connection to port {port}: {e}"))
    }

    fn from_stream(s: TcpStream, timeout: Duration) -> io::Result<McConn> {
        s.set_read_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        let port = s.peer_addr()?.port();
        let writer = s.try_clone()?;
        Ok(McConn {
            reader: BufReader::with_capacity(64 * 1024, s),
            writer,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Writes raw bytes; panics with context on failure.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes)
            .unwrap_or_else(|e| panic!("write {} bytes to port {}: {e}", bytes.len(), self.port));
    }

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads one reply unit; panics with context on failure.
    pub fn read(&mut self) -> Unit {
        self.try_read()
            .unwrap_or_else(|e| panic!("read a reply from port {}: {e}", self.port))
    }

    /// Sends raw bytes and reads one reply unit.
    pub fn cmd(&mut self, bytes: &[u8]) -> Unit {
        self.send_raw(bytes);
        self.read()
    }

    /// Reads one reply unit, or the I/O or protocol error.
    pub fn try_read(&mut self) -> io::Result<Unit> {
        let line = self.line()?;
        if line == b"END" {
            return Ok(Unit::Values(Vec::new()));
        }
        if line.starts_with(b"VALUE ") {
            let mut values = Vec::new();
            let mut header = line;
            loop {
                // VALUE <key> <flags> <bytes> [<cas>]: the key has no spaces.
                let n = header_len(&header, 3)?;
                let data = self.block(n)?;
                values.push((header, data));
                header = self.line()?;
                if header == b"END" {
                    return Ok(Unit::Values(values));
                }
                if !header.starts_with(b"VALUE ") {
                    return Err(bad_data(format!(
                        "expected VALUE or END after a data block, got {}",
                        escape(&header)
                    )));
                }
            }
        }
        if line.starts_with(b"VA ") {
            let n = header_len(&line, 1)?;
            let data = self.block(n)?;
            return Ok(Unit::Va(line, data));
        }
        if line.starts_with(b"STAT ") {
            let mut lines = vec![line];
            loop {
                let l = self.line()?;
                if l == b"END" {
                    return Ok(Unit::Stats(lines));
                }
                lines.push(l);
            }
        }
        Ok(Unit::Line(line))
    }

    /// `n` data bytes followed by CRLF.
    fn block(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; n + 2];
        self.reader.read_exact(&mut b)?;
        if &b[n..] != b"\r\n" {
            return Err(bad_data(format!(
                "data block of {n} bytes not followed by CRLF"
            )));
        }
        b.truncate(n);
        Ok(b)
    }

    /// One CRLF-terminated line, without the CRLF.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        if !line.ends_with(b"\r\n") {
            return Err(bad_data(format!("line without CRLF: {}", escape(&line))));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }
}

/// The space-separated token `index` of a header line as a data length.
fn header_len(header: &[u8], index: usize) -> io::Result<usize> {
    header
        .split(|&c| c == b' ')
        .nth(index)
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad_data(format!("no length at token {index} of {}", escape(header))))
}

/// Standard base64 with padding (what memcached's `b` flag reads and writes).
pub fn base64_encode(b: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for chunk in b.chunks(3) {
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(v >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// Decodes standard padded base64; None when malformed.
pub fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    for (ci, chunk) in s.chunks(4).enumerate() {
        let last = ci == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut v = 0u32;
        for &c in &chunk[..4 - pad] {
            v = v << 6 | val(c)?;
        }
        v <<= 6 * pad as u32;
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[test]
fn base64_round_trips() {
    for s in [&b""[..], b"k", b"k0", b"b\x00\xfe", b"\xff\xff\xff\xff"] {
        assert_eq!(base64_decode(&base64_encode(s)).as_deref(), Some(s));
    }
    assert_eq!(base64_encode(b"k1"), b"azE=");
    assert_eq!(base64_decode(b"a!E="), None);
}
