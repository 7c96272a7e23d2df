//! Helpers shared by the rivet-server integration tests: the server under test on a free
//! port with its own temporary data file, a reference Debian `redis-server` (skipped loudly
//! when missing, failing when `CI` is set), and a small blocking RESP2/RESP3 client whose
//! hand-rolled parser keeps every detail of the wire (null bulk vs null array, RESP3 types).

#![allow(dead_code)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The server binary under test.
pub const RIVET_BIN: &str = env!("CARGO_BIN_EXE_rivet-server");
/// Debian's reference server.
pub const REDIS_BIN: &str = "/usr/bin/redis-server";
/// How long a server may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout of a [`Conn`].
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1 (bind port 0, read it, drop the listener).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    l.local_addr()
        .expect("local_addr of the probe listener")
        .port()
}

/// Spawns `cmd` with stdout and stderr appended to `log`, then waits until `port` answers
/// PING; panics (with the log) if the process exits or does not answer in time.
fn spawn_ready(mut cmd: Command, port: u16, log: &Path, what: &str) -> Child {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    let err = out.try_clone().expect("clone the log file handle");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what} ({cmd:?}): {e}"));
    if let Err(why) = wait_ready(&mut child, port) {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{what} did not start on port {port}: {why}\n--- command: {cmd:?}\n--- output:\n{}",
            read_log(log)
        );
    }
    child
}

/// The port in the first "ready to accept connections addr=IP:PORT" line written to `log`
/// after byte `from`.
fn bound_port(log: &Path, from: u64) -> Option<u16> {
    logged_port(log, from, "ready to accept connections")
}

/// The port in the first line containing `marker` and `addr=IP:PORT` written to `log` after
/// byte `from`.
fn logged_port(log: &Path, from: u64, marker: &str) -> Option<u16> {
    let text = std::fs::read(log).ok()?;
    let text = String::from_utf8_lossy(text.get(from as usize..)?);
    let line = text.lines().find(|l| l.contains(marker))?;
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))?;
    addr.rsplit(':').next()?.parse().ok()
}

/// Polls until a connection to `port` answers PING with PONG.
fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last = String::from("never connected");
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the process exited with {status}"));
        }
        match ping_once(port) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("no PONG within {START_TIMEOUT:?} (last: {last})"))
}

fn ping_once(port: u16) -> Result<(), String> {
    let addr = ([127, 0, 0, 1], port).into();
    let s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    let mut c = Conn::from_stream(s, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    c.send(&[b"PING"]);
    match c.try_read().map_err(|e| e.to_string())? {
        Frame::Simple(s) if s == "PONG" => Ok(()),
        other => Err(format!("PING answered {other}")),
    }
}

fn read_log(log: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(log) {
        let _ = f.read_to_string(&mut s);
    }
    let skip = s.len().saturating_sub(8000);
    let start = (skip..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

fn kill_and_reap(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Sends SIGTERM and waits up to 10 s; on timeout kills with SIGKILL and returns an error.
fn terminate(child: &mut Child) -> Result<ExitStatus, String> {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    if !matches!(sent, Ok(s) if s.success()) {
        return Err(format!("kill -TERM {pid} failed: {sent:?}"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "pid {pid} still running 10 s after SIGTERM (killed with SIGKILL)"
    ))
}

/// A rivet-server process on a free port with its data file in a temporary directory;
/// killed on drop.
pub struct RivetServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    /// The Memcached port, when started with `--memcached-port`.
    mc_port: Option<u16>,
    extra: Vec<String>,
}

impl RivetServer {
    /// Starts the server with `--port P --bind 127.0.0.1 --db <tmp>/data.db` plus `extra_args`
    /// and waits until it answers PING.
    pub fn start(extra_args: &[&str]) -> RivetServer {
        let dir = tempfile::tempdir().expect("create a temporary directory for rivet-server");
        let mut s = RivetServer {
            child: None,
            dir,
            port: 0,
            mc_port: None,
            extra: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// Starts the server on `--port 0` and reads the port it bound from its log, so that
    /// parallel tests never race for a port picked in advance.
    fn spawn(&mut self) {
        let log = self.log_path();
        let seen = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut cmd = Command::new(RIVET_BIN);
        cmd.args(["--port", "0", "--bind", "127.0.0.1", "--db"])
            .arg(self.db_path())
            .args(&self.extra);
        let deadline = Instant::now() + START_TIMEOUT;
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out.try_clone().expect("clone the log file handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn rivet-server ({cmd:?}): {e}"));
        let port = loop {
            if let Some(p) = bound_port(&log, seen) {
                break p;
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "rivet-server did not start ({exited:?})\n--- command: {cmd:?}\n--- output:\n{}",
                    read_log(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Err(why) = wait_ready(&mut child, port) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "rivet-server did not answer on port {port}: {why}\n{}",
                read_log(&log)
            );
        }
        self.port = port;
        // The memcached listener is logged before the Redis "ready" line.
        self.mc_port = logged_port(&log, seen, "memcached protocol listening");
        self.child = Some(child);
    }

    /// The Memcached port (started with `--memcached-port 0`); panics when there is none.
    pub fn memcached_port(&self) -> u16 {
        self.mc_port
            .expect("rivet-server was not started with --memcached-port")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data.db")
    }

    /// Where the server's stdout and stderr go (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The tail of the server's output.
    pub fn log(&self) -> String {
        read_log(&self.log_path())
    }

    /// A new connection to the server.
    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }

    /// Crash test helper: kills the process with SIGKILL and starts it again on the same data
    /// file (on a new free port: see [`RivetServer::port`]).
    pub fn restart(&mut self) {
        kill_and_reap(&mut self.child);
        self.spawn();
    }

    /// Stops the server cleanly (SIGTERM) and returns its exit status; panics with the log if
    /// it does not exit within 10 s.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("rivet-server is not running");
        terminate(&mut child)
            .unwrap_or_else(|e| panic!("stopping rivet-server: {e}\n{}", self.log()))
    }

    /// Stops the server cleanly (SIGTERM, which must exit 0) and starts it again on the same
    /// data file (on a new free port: see [`RivetServer::port`]).
    pub fn stop_and_start(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "rivet-server exited with {status} after SIGTERM\n{}",
            self.log()
        );
        self.spawn();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for RivetServer {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// A reference `redis-server` (no persistence) on a free port; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl RedisServer {
    /// Starts Debian's redis-server, or returns None when it is not installed (see
    /// [`redis_or_skip`]).
    pub fn start() -> Option<RedisServer> {
        if !Path::new(REDIS_BIN).exists() {
            return None;
        }
        let dir = tempfile::tempdir().expect("create a temporary directory for redis-server");
        let port = free_port();
        let mut cmd = Command::new(REDIS_BIN);
        cmd.args(["--save", "", "--appendonly", "no", "--port"])
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no", "--dir"])
            .arg(dir.path());
        let log = dir.path().join("redis.log");
        let child = spawn_ready(cmd, port, &log, "redis-server");
        Some(RedisServer {
            child: Some(child),
            dir,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Starts redis-server, or prints a loud `SKIPPED` line and returns None when it is missing;
/// panics instead when the environment variable `CI` is set (non-empty).
pub fn redis_or_skip(test: &str) -> Option<RedisServer> {
    if let Some(r) = RedisServer::start() {
        return Some(r);
    }
    skip(
        test,
        &format!("redis-server not installed ({REDIS_BIN})"),
        "apt-get install -y redis-server",
    );
    None
}

/// Whether the environment variable `CI` is set (non-empty): missing peers fail instead of
/// skipping.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty())
}

/// Reports a test that cannot run because a peer is missing (`why`; `fix` says how to get
/// it): a loud SKIPPED banner straight to stderr (past the harness' capture), or a panic
/// under CI.
pub fn skip(test: &str, why: &str, fix: &str) {
    if ci() {
        panic!("{test}: {why} and CI is set ({fix})");
    }
    let stars = "*".repeat(70);
    let _ = writeln!(
        io::stderr(),
        "\n{stars}\nSKIPPED: {why}; {test} not run ({fix})\n{stars}\n"
    );
}

/// The Python interpreter that can `import` every module in `modules` (comma-separated, as
/// in an import statement): `$RIVET_PYTHON` (which must, or the test fails), else `python3`
/// if it can; otherwise None after [`skip`] (`pip` names the packages to install).
pub fn python_with(test: &str, modules: &str, pip: &str) -> Option<PathBuf> {
    let can_import = |p: &Path| {
        Command::new(p)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if let Some(p) = std::env::var_os("RIVET_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            can_import(&p),
            "RIVET_PYTHON={} cannot `import {modules}` (pip install {pip})",
            p.display()
        );
        return Some(p);
    }
    let p = PathBuf::from("python3");
    if can_import(&p) {
        return Some(p);
    }
    skip(
        test,
        &format!("no Python that can import {modules} (set RIVET_PYTHON)"),
        &format!("python3 -m venv /tmp/venv && /tmp/venv/bin/pip install {pip}; RIVET_PYTHON=/tmp/venv/bin/python"),
    );
    None
}

/// One RESP reply (RESP2 and RESP3 types; attributes are read and dropped).
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    /// `$-1` is `Bulk(None)`.
    Bulk(Option<Vec<u8>>),
    /// `*-1` is `Array(None)`.
    Array(Option<Vec<Frame>>),
    /// RESP3 `_`.
    Null,
    /// RESP3 `,` as sent.
    Double(String),
    Boolean(bool),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    /// RESP3 `=`: format (3 letters) and payload.
    Verbatim(String, Vec<u8>),
    BigNumber(String),
    Push(Vec<Frame>),
}

impl Frame {
    /// A bulk string reply.
    pub fn bulk(b: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(Some(b.as_ref().to_vec()))
    }

    /// The first word of an error reply (`ERR`, `WRONGTYPE`, ...).
    pub fn error_kind(&self) -> Option<&str> {
        match self {
            Frame::Error(e) => Some(e.split(' ').next().unwrap_or("")),
            _ => None,
        }
    }

    /// The elements of an array, set or push reply.
    pub fn items(&self) -> Option<&[Frame]> {
        match self {
            Frame::Array(Some(v)) | Frame::Set(v) | Frame::Push(v) => Some(v),
            _ => None,
        }
    }
}

/// Shows `b` like redis-cli does: printable ASCII as is, other bytes as `\xHH`; long values
/// are cut to their first 48 bytes plus their length.
pub fn escape(b: &[u8]) -> String {
    escape_max(b, 48)
}

/// [`escape`] cut at `max` bytes.
pub fn escape_max(b: &[u8], max: usize) -> String {
    let mut s = String::new();
    for &c in b.iter().take(max) {
        match c {
            b'"' | b'\\' => s.push_str(&format!("\\{}", c as char)),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > max {
        s.push_str(&format!("...({} bytes)", b.len()));
    }
    format!("\"{s}\"")
}

/// A command line for messages: `SET "k" "v"`.
pub fn escape_cmd(args: &[impl AsRef<[u8]>]) -> String {
    let words: Vec<String> = args.iter().map(|a| escape(a.as_ref())).collect();
    words.join(" ")
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Simple(s) => write!(f, "+{s}"),
            Frame::Error(e) => write!(f, "-{e}"),
            Frame::Integer(i) => write!(f, "(integer) {i}"),
            Frame::Bulk(None) => write!(f, "(nil bulk)"),
            Frame::Bulk(Some(b)) => write!(f, "{}", escape(b)),
            Frame::Array(None) => write!(f, "(nil array)"),
            Frame::Array(Some(v)) => write_list(f, "[", v, "]"),
            Frame::Null => write!(f, "(null)"),
            Frame::Double(d) => write!(f, "(double) {d}"),
            Frame::Boolean(b) => write!(f, "(boolean) {b}"),
            Frame::Map(m) => {
                write!(f, "{{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    write!(f, "{}{k}: {v}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, "}}")
            }
            Frame::Set(v) => write_list(f, "~{", v, "}"),
            Frame::Verbatim(t, b) => write!(f, "(verbatim {t}) {}", escape(b)),
            Frame::BigNumber(n) => write!(f, "(big number) {n}"),
            Frame::Push(v) => write_list(f, ">[", v, "]"),
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, open: &str, v: &[Frame], close: &str) -> fmt::Result {
    write!(f, "{open}")?;
    for (i, x) in v.iter().enumerate() {
        if i == 20 {
            write!(f, ", ...({} items)", v.len())?;
            break;
        }
        write!(f, "{}{x}", if i > 0 { ", " } else { "" })?;
    }
    write!(f, "{close}")
}

/// A blocking RESP connection (read timeout 10 s).
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    port: u16,
}

fn bad_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Conn {
    /// Connects to 127.0.0.1:`port`; panics with context on failure.
    pub fn connect(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        Conn::from_stream(s, READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("set up connection to port {port}: {e}"))
    }

    fn from_stream(s: TcpStream, timeout: Duration) -> io::Result<Conn> {
        s.set_read_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        let port = s.peer_addr()?.port();
        let writer = s.try_clone()?;
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, s),
            writer,
            port,
        })
    }

    /// The encoding of one multibulk command.
    pub fn encode(args: &[impl AsRef<[u8]>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Writes one multibulk command (no reply is read).
    pub fn send(&mut self, args: &[impl AsRef<[u8]>]) {
        self.send_raw(&Conn::encode(args));
    }

    /// Writes raw bytes; panics with context on failure.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes)
            .unwrap_or_else(|e| panic!("write {} bytes to port {}: {e}", bytes.len(), self.port));
    }

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Reads one reply; panics with context on failure.
    pub fn read(&mut self) -> Frame {
        self.try_read()
            .unwrap_or_else(|e| panic!("read a reply from port {}: {e}", self.port))
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[impl AsRef<[u8]>]) -> Frame {
        self.send(args);
        self.read()
    }

    /// Reads one reply, or the I/O or protocol error.
    pub fn try_read(&mut self) -> io::Result<Frame> {
        loop {
            let line = self.line()?;
            let (&kind, rest) = line
                .split_first()
                .ok_or_else(|| bad_data("empty reply line".into()))?;
            let rest = line_text(rest);
            if kind == b'|' {
                let n = count(&rest)?;
                self.pairs(n)?; // attribute: dropped
                continue;
            }
            return self.frame(kind, rest);
        }
    }

    fn frame(&mut self, kind: u8, rest: String) -> io::Result<Frame> {
        Ok(match kind {
            b'+' => Frame::Simple(rest),
            b'-' => Frame::Error(rest),
            b':' => Frame::Integer(number(&rest)?),
            b'$' => Frame::Bulk(self.opt_blob(&rest)?),
            b'*' => match opt_count(&rest)? {
                None => Frame::Array(None),
                Some(n) => Frame::Array(Some(self.frames(n)?)),
            },
            b'_' => Frame::Null,
            b',' => Frame::Double(rest),
            b'#' => match rest.as_str() {
                "t" => Frame::Boolean(true),
                "f" => Frame::Boolean(false),
                _ => return Err(bad_data(format!("bad boolean #{rest}"))),
            },
            b'%' => Frame::Map(self.pairs(count(&rest)?)?),
            b'~' => Frame::Set(self.frames(count(&rest)?)?),
            b'>' => Frame::Push(self.frames(count(&rest)?)?),
            b'(' => Frame::BigNumber(rest),
            b'!' => Frame::Error(String::from_utf8_lossy(&self.blob(count(&rest)?)?).into_owned()),
            b'=' => self.verbatim(count(&rest)?)?,
            _ => return Err(bad_data(format!("unknown reply type {}", escape(&[kind])))),
        })
    }

    fn frames(&mut self, n: usize) -> io::Result<Vec<Frame>> {
        (0..n).map(|_| self.try_read()).collect()
    }

    fn pairs(&mut self, n: usize) -> io::Result<Vec<(Frame, Frame)>> {
        (0..n)
            .map(|_| Ok((self.try_read()?, self.try_read()?)))
            .collect()
    }

    fn opt_blob(&mut self, header: &str) -> io::Result<Option<Vec<u8>>> {
        match opt_count(header)? {
            None => Ok(None),
            Some(n) => self.blob(n).map(Some),
        }
    }

    fn verbatim(&mut self, n: usize) -> io::Result<Frame> {
        let b = self.blob(n)?;
        if b.len() < 4 || b[3] != b':' {
            return Err(bad_data(format!("bad verbatim string {}", escape(&b))));
        }
        Ok(Frame::Verbatim(
            String::from_utf8_lossy(&b[..3]).into_owned(),
            b[4..].to_vec(),
        ))
    }

    /// `n` payload bytes followed by CRLF.
    fn blob(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; n + 2];
        self.reader.read_exact(&mut b)?;
        if &b[n..] != b"\r\n" {
            return Err(bad_data(format!("bulk of {n} bytes not followed by CRLF")));
        }
        b.truncate(n);
        Ok(b)
    }

    /// One CRLF-terminated header line, without the CRLF.
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
            return Err(bad_data(format!(
                "header line without CRLF: {}",
                escape(&line)
            )));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }
}

/// A header line as text: as is when it is UTF-8, else with every byte outside printable
/// ASCII written as `\xHH` (error lines may quote raw key bytes).
fn line_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b
            .iter()
            .map(|&c| match c {
                0x20..=0x7e if c != b'\\' => (c as char).to_string(),
                _ => format!("\\x{c:02x}"),
            })
            .collect(),
    }
}

fn number(s: &str) -> io::Result<i64> {
    s.parse()
        .map_err(|_| bad_data(format!("bad integer {s:?}")))
}

fn count(s: &str) -> io::Result<usize> {
    s.parse().map_err(|_| bad_data(format!("bad length {s:?}")))
}

/// A length where `-1` means null.
fn opt_count(s: &str) -> io::Result<Option<usize>> {
    if s == "-1" {
        Ok(None)
    } else {
        count(s).map(Some)
    }
}

/// SplitMix64: tiny, deterministic across platforms and crate versions.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// A numeric environment knob (`CRASH_KILLS`, `MC_CRASH_SEED`, ...); panics on garbage.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// A yes/no environment knob: set, non-empty and not `0`.
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Stops rivet-server with SIGTERM (it must exit 0) and runs `rivet check` on its file.
pub fn stop_and_check(mut server: RivetServer) {
    let status = server.stop();
    assert!(
        status.success(),
        "rivet-server exited with {status} after SIGTERM\n{}",
        server.log()
    );
    let Some(cli) = rivet_cli() else { return };
    let out = Command::new(&cli)
        .arg("check")
        .arg(server.db_path())
        .output()
        .unwrap_or_else(|e| panic!("run {} check: {e}", cli.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "OK",
        "rivet check {} failed ({}):\n{stdout}{}",
        server.db_path().display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `rivet` CLI next to the server binary, or in `target/debug`, or built on demand in a
/// separate target directory (the running `cargo test` holds the main one's lock).
fn rivet_cli() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let beside = Path::new(RIVET_BIN).with_file_name("rivet");
    let candidates = [beside, root.join("target/debug/rivet")];
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Some(p.clone());
    }
    let dir = root.join("target/difftest-cli");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "-q", "-p", "rivet-cli", "--target-dir"])
        .arg(&dir)
        .current_dir(&root)
        .status();
    let bin = dir.join("debug/rivet");
    if matches!(built, Ok(s) if s.success()) && bin.is_file() {
        return Some(bin);
    }
    println!("NOTE: rivet CLI not found and not buildable ({built:?}); `rivet check` skipped");
    None
}
