//! Blocking pops on rivet-server: who gets served, in which order, when, and that a served
//! pop is durable and a parked client that goes away loses nothing. (The replies themselves
//! are compared with real Redis by the differential test.)

mod common;

use std::time::{Duration, Instant};

use common::{Frame, RivetServer};

fn bulk(s: &str) -> Frame {
    Frame::bulk(s)
}

fn pair(k: &str, v: &str) -> Frame {
    Frame::Array(Some(vec![bulk(k), bulk(v)]))
}

/// Waits until INFO reports `n` parked clients.
fn wait_blocked(c: &mut common::Conn, n: u64) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let info = match c.cmd(&["INFO", "clients"]) {
            Frame::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("INFO: {other}"),
        };
        if info.contains(&format!("blocked_clients:{n}\r")) {
            return;
        }
        assert!(
            Instant::now() < until,
            "never saw {n} blocked clients: {info}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn parked_clients_are_served_first_come_first_served() {
    let server = RivetServer::start(&[]);
    let mut a = server.conn();
    let mut b = server.conn();
    let mut w = server.conn();
    a.send(&["BLPOP", "q", "0"]);
    wait_blocked(&mut w, 1);
    b.send(&["BLPOP", "other", "q", "0"]);
    wait_blocked(&mut w, 2);
    // One push of three elements: the first parked client gets the first element, the
    // second the next, and the third element stays.
    assert_eq!(w.cmd(&["RPUSH", "q", "x", "y", "z"]), Frame::Integer(3));
    assert_eq!(a.read(), pair("q", "x"));
    assert_eq!(b.read(), pair("q", "y"));
    assert_eq!(
        w.cmd(&["LRANGE", "q", "0", "-1"]),
        Frame::Array(Some(vec![bulk("z")]))
    );
    wait_blocked(&mut w, 0);
}

#[test]
fn a_parked_client_is_served_before_the_pushers_next_command() {
    let server = RivetServer::start(&[]);
    let mut a = server.conn();
    let mut w = server.conn();
    a.send(&["BRPOP", "q", "0"]);
    wait_blocked(&mut w, 1);
    // Pipelined: Redis serves the parked client right after RPUSH, so LLEN sees 0.
    w.send(&["RPUSH", "q", "v"]);
    w.send(&["LLEN", "q"]);
    assert_eq!(w.read(), Frame::Integer(1));
    assert_eq!(w.read(), Frame::Integer(0));
    assert_eq!(a.read(), pair("q", "v"));
}

#[test]
fn timeouts_and_multi() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    let t0 = Instant::now();
    assert_eq!(c.cmd(&["BLPOP", "q", "0.2"]), Frame::Array(None));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(c.cmd(&["BZPOPMIN", "z", "0.05"]), Frame::Array(None));
    // Inside MULTI a blocking command never blocks: it answers as if it timed out.
    assert_eq!(c.cmd(&["MULTI"]), Frame::Simple("OK".into()));
    assert_eq!(c.cmd(&["BLPOP", "q", "0"]), Frame::Simple("QUEUED".into()));
    assert_eq!(
        c.cmd(&["EXEC"]),
        Frame::Array(Some(vec![Frame::Array(None)]))
    );
    assert_eq!(
        c.cmd(&["BLPOP", "q", "-1"]),
        Frame::Error("ERR timeout is negative".into())
    );
    assert_eq!(
        c.cmd(&["BLPOP", "q", "x"]),
        Frame::Error("ERR timeout is not a float or out of range".into())
    );
}

#[test]
fn a_client_that_goes_away_while_parked_takes_nothing() {
    let server = RivetServer::start(&[]);
    let mut w = server.conn();
    {
        let mut a = server.conn();
        a.send(&["BLPOP", "q", "0"]);
        wait_blocked(&mut w, 1);
    } // `a` disconnects
    wait_blocked(&mut w, 0);
    assert_eq!(w.cmd(&["RPUSH", "q", "v"]), Frame::Integer(1));
    assert_eq!(
        w.cmd(&["LRANGE", "q", "0", "-1"]),
        Frame::Array(Some(vec![bulk("v")]))
    );
}

#[test]
fn client_unblock_and_served_pops_survive_a_restart() {
    let mut server = RivetServer::start(&[]);
    let mut a = server.conn();
    let mut w = server.conn();
    let id = match a.cmd(&["CLIENT", "ID"]) {
        Frame::Integer(i) => i.to_string(),
        other => panic!("CLIENT ID: {other}"),
    };
    a.send(&["BZPOPMAX", "z", "0"]);
    wait_blocked(&mut w, 1);
    assert_eq!(w.cmd(&["CLIENT", "UNBLOCK", &id]), Frame::Integer(1));
    assert_eq!(a.read(), Frame::Array(None));
    assert_eq!(w.cmd(&["CLIENT", "UNBLOCK", &id]), Frame::Integer(0));
    a.send(&["BZPOPMAX", "z", "0"]);
    wait_blocked(&mut w, 1);
    assert_eq!(
        w.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]),
        Frame::Integer(1)
    );
    assert_eq!(
        a.read(),
        Frame::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into())
    );
    a.send(&["BZPOPMAX", "z", "0"]);
    wait_blocked(&mut w, 1);
    assert_eq!(w.cmd(&["ZADD", "z", "1", "a", "2", "b"]), Frame::Integer(2));
    assert_eq!(
        a.read(),
        Frame::Array(Some(vec![bulk("z"), bulk("b"), bulk("2")]))
    );
    drop(a);
    drop(w);
    server.restart();
    let mut c = server.conn();
    assert_eq!(
        c.cmd(&["ZRANGE", "z", "0", "-1"]),
        Frame::Array(Some(vec![bulk("a")])),
        "the served pop was committed before its reply"
    );
}

/// A blocked command is one call in INFO commandstats, counted when it is answered (served,
/// timed out, or unblocked with an error, which is a failed call), as in Redis 7.0.15
/// (its suite checks `failed_calls=1` after XGROUP DESTROY unblocks an XREADGROUP).
#[test]
fn a_blocked_command_counts_as_one_call_when_answered() {
    let s = RivetServer::start(&[]);
    let mut c = s.conn();
    c.cmd(&["CONFIG", "RESETSTAT"]);
    assert_eq!(c.cmd(&["BLPOP", "nokey", "0.05"]), Frame::Array(None));
    let mut waiter = s.conn();
    waiter.send(&["BLPOP", "l", "5"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(c.cmd(&["RPUSH", "l", "x"]), Frame::Integer(1));
    waiter.read();
    c.cmd(&["XGROUP", "CREATE", "ms", "g", "$", "MKSTREAM"]);
    waiter.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "Alice",
        "BLOCK",
        "0",
        "STREAMS",
        "ms",
        ">",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(c.cmd(&["XGROUP", "DESTROY", "ms", "g"]), Frame::Integer(1));
    assert!(matches!(waiter.read(), Frame::Error(e) if e.starts_with("NOGROUP")));
    let Frame::Bulk(Some(stats)) = c.cmd(&["INFO", "commandstats"]) else {
        panic!("INFO commandstats is not a bulk string");
    };
    let stats = String::from_utf8(stats).unwrap();
    let calls = |cmd: &str| {
        let line = stats
            .lines()
            .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
            .unwrap_or_else(|| panic!("no cmdstat_{cmd}:\n{stats}"));
        let field = |f: &str| {
            line.split(',')
                .find_map(|kv| kv.split_once('=').filter(|(k, _)| k.ends_with(f)))
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        (field("calls"), field("failed_calls"))
    };
    assert_eq!(
        calls("blpop"),
        ("2".to_string(), "0".to_string()),
        "{stats}"
    );
    assert_eq!(
        calls("xreadgroup"),
        ("1".to_string(), "1".to_string()),
        "{stats}"
    );
}
