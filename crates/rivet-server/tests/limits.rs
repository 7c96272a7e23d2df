//! Bad input and limits over a real socket: protocol errors close only the offending
//! connection (with Redis's exact error text), claimed lengths are not trusted with memory,
//! and the client limits (query buffer, maxclients, idle timeout, unauthenticated headers)
//! hold. A second server on a locked data file fails fast.

mod common;
mod proc_util;

use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Conn, Frame, RivetServer};

fn ok() -> Frame {
    Frame::Simple("OK".into())
}

fn pong() -> Frame {
    Frame::Simple("PONG".into())
}

/// Asserts the server closed `c`: a read sees EOF (or a reset, when the server closed with
/// unread input pending).
fn assert_closed(c: &mut Conn, what: &str) {
    match c.try_read() {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ) => {}
        Err(e) => panic!("{what}: expected the connection to close, got the error {e}"),
        Ok(f) => panic!("{what}: expected the connection to close, got the reply {f}"),
    }
}

/// Sends `bytes` on a fresh connection, expects exactly the error `msg` and then the close,
/// and checks that a connection opened before (and a new one) are still served.
fn assert_protocol_error(s: &RivetServer, bytes: &[u8], msg: &str) {
    let mut bystander = s.conn();
    assert_eq!(bystander.cmd(&["PING"]), pong());
    let mut c = s.conn();
    // The server may close while we are still writing a long input: ignore write errors.
    let _ = c.try_send_raw(bytes);
    let shown = common::escape(bytes);
    match c.try_read() {
        Ok(Frame::Error(e)) => assert_eq!(e, msg, "reply to {shown}"),
        Ok(f) => panic!("{shown}: expected -{msg}, got {f}"),
        Err(e) => panic!("{shown}: expected -{msg}, got the I/O error {e}"),
    }
    assert_closed(&mut c, &shown);
    assert_eq!(
        bystander.cmd(&["PING"]),
        pong(),
        "other client after {shown}"
    );
    assert_eq!(s.conn().cmd(&["PING"]), pong(), "new client after {shown}");
}

#[test]
fn bulk_longer_than_proto_max_bulk_len_closes_only_that_client() {
    let s = RivetServer::start(&[]);
    // Default proto-max-bulk-len is 512 MB.
    assert_protocol_error(
        &s,
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    for bad in [
        &b"*1\r\n$-1\r\n"[..],
        b"*1\r\n$-10\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$+5\r\n",
        b"*1\r\n$99999999999999999999999\r\n",
    ] {
        assert_protocol_error(&s, bad, "ERR Protocol error: invalid bulk length");
    }
    assert_protocol_error(
        &s,
        b"*2\r\n$4\r\nECHO\r\nfoo\r\n",
        "ERR Protocol error: expected '$', got 'f'",
    );
}

#[test]
fn config_set_proto_max_bulk_len_lowers_the_limit() {
    let s = RivetServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"]), ok());
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "proto-max-bulk-len"]),
        Frame::Array(Some(vec![
            Frame::bulk("proto-max-bulk-len"),
            Frame::bulk("1048576")
        ]))
    );
    // Exactly the limit is fine.
    let big = vec![b'x'; 1 << 20];
    assert_eq!(c.cmd(&[&b"SET"[..], b"k", &big]), ok());
    assert_eq!(c.cmd(&["STRLEN", "k"]), Frame::Integer(1 << 20));
    // One byte more is a protocol error.
    assert_protocol_error(
        &s,
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    assert_eq!(c.cmd(&["STRLEN", "k"]), Frame::Integer(1 << 20));
}

#[test]
fn multibulk_count_limits() {
    let s = RivetServer::start(&[]);
    for bad in [
        &b"*3000000000\r\n"[..],
        b"*2147483648\r\n",
        b"*abc\r\n",
        b"*+1\r\n",
        b"*99999999999999999999999\r\n",
    ] {
        assert_protocol_error(&s, bad, "ERR Protocol error: invalid multibulk length");
    }
    // Negative and zero counts are empty requests, skipped without a reply (as Redis does).
    let mut c = s.conn();
    c.send_raw(b"*-1\r\n*0\r\n*-100\r\nPING\r\n");
    assert_eq!(c.read(), pong());
    // Valid pipelined commands before the error are answered first.
    let mut c = s.conn();
    c.send_raw(b"PING\r\n*3000000000\r\n");
    assert_eq!(c.read(), pong());
    assert_eq!(
        c.read(),
        Frame::Error("ERR Protocol error: invalid multibulk length".into())
    );
    assert_closed(&mut c, "after the pipelined protocol error");
}

#[test]
fn header_lines_and_inline_requests_too_long() {
    let s = RivetServer::start(&[]);
    let mut inline = b"SET k ".to_vec();
    inline.resize(70 * 1024, b'a');
    assert_protocol_error(&s, &inline, "ERR Protocol error: too big inline request");
    let mut mbulk = b"*".to_vec();
    mbulk.resize(70 * 1024, b'1');
    assert_protocol_error(&s, &mbulk, "ERR Protocol error: too big mbulk count string");
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.resize(70 * 1024, b'1');
    assert_protocol_error(&s, &bulk, "ERR Protocol error: too big bulk count string");
    // An inline line just under the limit is fine.
    let mut c = s.conn();
    let mut line = b"SET k ".to_vec();
    line.resize(60 * 1024, b'a');
    line.extend_from_slice(b"\r\n");
    c.send_raw(&line);
    assert_eq!(c.read(), ok());
    assert_eq!(c.cmd(&["STRLEN", "k"]), Frame::Integer(60 * 1024 - 6));
}

#[test]
fn inline_quotes() {
    let s = RivetServer::start(&[]);
    let mut c = s.conn();
    c.send_raw(b"SET k \"a b\\x41\\n\" \r\nGET k\r\nSET k2 'it\\'s'\r\nGET k2\r\n\r\n");
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), Frame::bulk("a bA\n"));
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), Frame::bulk("it's"));
    for bad in [
        &b"SET k \"abc\r\n"[..],
        b"SET k 'abc\r\n",
        b"SET k \"a\"b\r\n",
        b"set \"\"\"test-key\"\"\" v\r\n",
    ] {
        assert_protocol_error(&s, bad, "ERR Protocol error: unbalanced quotes in request");
    }
}

/// A rivet-server started with `--requirepass` (the shared `RivetServer::start` waits for a
/// PONG, which a password-protected server never gives); killed on drop.
struct PasswordServer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PasswordServer {
    fn start(pass: &str) -> PasswordServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = common::free_port();
        let child = Command::new(common::RIVET_BIN)
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--requirepass", pass, "--db"])
            .arg(dir.path().join("data.db"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rivet-server --requirepass");
        let mut s = PasswordServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = s.child.try_wait().expect("try_wait") {
                panic!("rivet-server --requirepass exited with {st}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "rivet-server did not listen in 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }
}

impl Drop for PasswordServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`assert_protocol_error`] for a password-protected server.
fn assert_protocol_error_pw(s: &PasswordServer, bytes: &[u8], msg: &str) {
    let mut c = s.conn();
    let _ = c.try_send_raw(bytes);
    let shown = common::escape(bytes);
    match c.try_read() {
        Ok(Frame::Error(e)) => assert_eq!(e, msg, "reply to {shown}"),
        Ok(f) => panic!("{shown}: expected -{msg}, got {f}"),
        Err(e) => panic!("{shown}: expected -{msg}, got the I/O error {e}"),
    }
    assert_closed(&mut c, &shown);
}

#[test]
fn unauthenticated_limits_and_noauth() {
    let s = PasswordServer::start("sekret");
    let mut c = s.conn();
    assert_eq!(
        c.cmd(&["GET", "k"]),
        Frame::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        c.cmd(&["AUTH", "wrong"]).error_kind(),
        Some("WRONGPASS"),
        "AUTH with a wrong password"
    );
    let mut eleven = b"*11\r\n".to_vec();
    for _ in 0..11 {
        eleven.extend_from_slice(b"$1\r\nx\r\n");
    }
    assert_protocol_error_pw(
        &s,
        &eleven,
        "ERR Protocol error: unauthenticated multibulk length",
    );
    assert_protocol_error_pw(
        &s,
        b"*2\r\n$4\r\nECHO\r\n$16385\r\n",
        "ERR Protocol error: unauthenticated bulk length",
    );
    // 10 arguments and a 16384-byte bulk are still allowed before AUTH (answered NOAUTH).
    let ten: Vec<&str> = vec!["MSET"; 1].into_iter().chain(["x"; 9]).collect();
    assert_eq!(c.cmd(&ten).error_kind(), Some("NOAUTH"));
    let v = vec![b'v'; 16384];
    assert_eq!(c.cmd(&[&b"ECHO"[..], &v]).error_kind(), Some("NOAUTH"));
    // AUTH pipelined with a large request in the same write: the limits lift right after
    // the AUTH, as in Redis.
    let mut c = s.conn();
    let mut bytes = Conn::encode(&["AUTH", "sekret"]);
    let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
    for i in 0..10 {
        args.push(format!("k{i}").into_bytes());
        args.push(vec![b'z'; 20000]);
    }
    bytes.extend_from_slice(&Conn::encode(&args));
    c.send_raw(&bytes);
    assert_eq!(c.read(), ok());
    assert_eq!(c.read(), ok());
    assert_eq!(c.cmd(&["STRLEN", "k9"]), Frame::Integer(20000));
    // The unauthenticated client from before is still there and still limited.
    assert_eq!(c.cmd(&["PING"]), pong());
    assert_eq!(s.conn().cmd(&["PING"]).error_kind(), Some("NOAUTH"));
}

#[test]
fn claimed_lengths_do_not_allocate() {
    let s = RivetServer::start(&[]);
    let pid = proc_util::server_pid(&s.db_path());
    let mut c = s.conn();
    assert_eq!(c.cmd(&["PING"]), pong());
    let before = proc_util::rss_kib(pid);
    // Several clients each claim a 500 MB bulk (and one a 2^31-1 argument count) but send
    // only a few bytes; the server must wait for the data, not reserve for it.
    let mut liars = Vec::new();
    for i in 0..4 {
        let mut l = s.conn();
        l.send_raw(format!("*3\r\n$3\r\nSET\r\n$2\r\nk{i}\r\n$524288000\r\nabc").as_bytes());
        liars.push(l);
    }
    let mut l = s.conn();
    l.send_raw(b"*2147483647\r\n$4\r\nPING\r\n");
    liars.push(l);
    // Let the server read and parse all of it; a PING on each liar's neighbour proves the
    // event loop went past their input.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.cmd(&["PING"]), pong());
    let during = proc_util::rss_kib(pid);
    println!("limits: server RSS {before} KiB before, {during} KiB with 5 lying clients open");
    assert!(
        during < 100 * 1024,
        "server RSS grew to {during} KiB (from {before} KiB) for claimed lengths"
    );
    // The liars are still connected, waiting for their data.
    let list = match c.cmd(&["CLIENT", "LIST"]) {
        Frame::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("CLIENT LIST answered {other}"),
    };
    assert_eq!(
        list.lines().count(),
        6,
        "all clients still connected:\n{list}"
    );
    drop(liars);
    assert_eq!(c.cmd(&["PING"]), pong());
}

/// Regression: the read buffer used to keep its peak capacity for as long as the client
/// stayed connected, so every connection that once sent a big value pinned that much memory.
/// Like Redis (clientsCronResizeQueryBuffer), the server now gives it back.
#[test]
fn query_buffer_is_released_after_a_big_argument() {
    let s = RivetServer::start(&[]);
    let pid = proc_util::server_pid(&s.db_path());
    let mut c = s.conn();
    assert_eq!(c.cmd(&["PING"]), pong());
    let before = proc_util::rss_anon_kib(pid);
    let v = vec![b'x'; 128 << 20];
    assert_eq!(c.cmd(&[&b"SET"[..], b"big", &v]), ok());
    drop(v);
    assert_eq!(c.cmd(&["DEL", "big"]), Frame::Integer(1));
    // Idle for a while, still connected (Redis resizes buffers idle for 2 s).
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(c.cmd(&["PING"]), pong());
    let after = proc_util::rss_anon_kib(pid);
    println!("limits: RssAnon {before} KiB before a 128 MB SET, {after} KiB 4 s after (idle)");
    assert!(
        after < before + 64 * 1024,
        "RssAnon went from {before} KiB to {after} KiB and stayed there while the client idles"
    );
}

#[test]
fn client_query_buffer_limit_closes_the_client() {
    let s = RivetServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"]),
        ok()
    );
    let mut big = s.conn();
    let _ = big.try_send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < 2 << 20 {
        if big.try_send_raw(&chunk).is_err() {
            break; // closed by the server already
        }
        sent += chunk.len();
    }
    assert_closed(&mut big, "client over client-query-buffer-limit");
    assert_eq!(c.cmd(&["PING"]), pong());
    assert_eq!(c.cmd(&["EXISTS", "k"]), Frame::Integer(0));
    // Under the limit, a bulk of 900 KB still works.
    let v = vec![b'y'; 900 * 1024];
    assert_eq!(s.conn().cmd(&[&b"SET"[..], b"k", &v]), ok());
}

/// Number of clients CLIENT LIST shows.
fn client_count(c: &mut Conn) -> usize {
    match c.cmd(&["CLIENT", "LIST"]) {
        Frame::Bulk(Some(b)) => String::from_utf8_lossy(&b).lines().count(),
        other => panic!("CLIENT LIST answered {other}"),
    }
}

#[test]
fn maxclients_rejects_the_extra_client() {
    let s = RivetServer::start(&["--maxclients", "2"]);
    let mut a = s.conn();
    // The start-up probe's connection is released asynchronously: wait until `a` is alone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client_count(&mut a) != 1 {
        assert!(
            Instant::now() < deadline,
            "start-up probe client never left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = s.conn();
    assert_eq!(b.cmd(&["PING"]), pong());
    let mut third = s.conn();
    // Redis sends the error at accept time; the command is never read.
    third.send_raw(b"PING\r\n");
    assert_eq!(
        third.read(),
        Frame::Error("ERR max number of clients reached".into())
    );
    assert_closed(&mut third, "rejected client");
    assert_eq!(a.cmd(&["PING"]), pong());
    // Once a client leaves, a new one gets in (the server notices the close asynchronously).
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut n = s.conn();
        n.send_raw(b"PING\r\n");
        match n.try_read() {
            Ok(f) if f == pong() => break,
            Ok(Frame::Error(e)) if e.contains("max number of clients") => {}
            other => panic!("after a client left: {other:?}"),
        }
        assert!(Instant::now() < deadline, "no slot freed within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn timeout_closes_idle_clients_only() {
    let s = RivetServer::start(&["--timeout", "1"]);
    let mut idle = s.conn();
    assert_eq!(idle.cmd(&["PING"]), pong());
    let since = Instant::now();
    let mut busy = s.conn();
    // The busy client talks every 200 ms for 2.5 s; the idle one must be closed meanwhile.
    while since.elapsed() < Duration::from_millis(2500) {
        assert_eq!(busy.cmd(&["PING"]), pong(), "an active client was closed");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_closed(&mut idle, "idle client with --timeout 1");
    let mut fresh = s.conn();
    assert_eq!(fresh.cmd(&["PING"]), pong());
    assert_eq!(busy.cmd(&["PING"]), pong());
    // Closed no earlier than the timeout: a client idle 500 ms is still served.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fresh.cmd(&["PING"]), pong());
}

#[test]
fn second_server_on_the_same_file_fails_fast() {
    let s = RivetServer::start(&[]);
    let port = common::free_port();
    let started = Instant::now();
    let mut second = Command::new(common::RIVET_BIN)
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--db"])
        .arg(s.db_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn a second rivet-server");
    let status = loop {
        if let Some(st) = second.try_wait().expect("try_wait on the second server") {
            break st;
        }
        if started.elapsed() > Duration::from_secs(5) {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second rivet-server on a locked file was still running after 5 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let mut err = String::new();
    second
        .stderr
        .take()
        .expect("stderr of the second server")
        .read_to_string(&mut err)
        .expect("read the second server's stderr");
    assert!(!status.success(), "second server exited with {status}");
    assert!(
        err.contains("locked"),
        "second server's stderr does not mention the lock:\n{err}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "second server took {elapsed:?} to give up"
    );
    // The first one is unaffected.
    assert_eq!(s.conn().cmd(&["PING"]), pong());
}
