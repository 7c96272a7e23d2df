//! Lua scripting over a socket: Redis's error texts for scripts, and that SHUTDOWN (allowed
//! while a script is busy) stops a script that never ends instead of hanging.

mod common;

use std::time::{Duration, Instant};

use common::{Frame, RivetServer};

fn err_text(f: Frame) -> String {
    match f {
        Frame::Error(e) => e,
        other => panic!("expected an error, got {other}"),
    }
}

#[test]
fn pcall_error_tables_carry_the_err_code() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    // The reply is the error table redis.pcall returned, passed through as an error reply.
    for (script, want) in [
        (
            "return redis.pcall('set')",
            "ERR Wrong number of args calling Redis command from script",
        ),
        (
            "return redis.pcall('nosuchcommand')",
            "ERR Unknown Redis command called from script",
        ),
        (
            "return redis.pcall('multi')",
            "ERR This Redis command is not allowed from script",
        ),
        (
            "return redis.pcall('config', 'get', 'port')",
            "ERR This Redis command is not allowed from script",
        ),
    ] {
        assert_eq!(err_text(c.cmd(&["EVAL", script, "0"])), want, "{script}");
    }
    assert_eq!(
        c.cmd(&["EVAL", "return redis.REDIS_VERSION", "0"]),
        Frame::bulk("7.0.15")
    );
    assert_eq!(
        c.cmd(&["EVAL", "return {double=1.5}", "0"]),
        Frame::bulk("1.5")
    );
}

#[test]
fn shutdown_stops_a_busy_script() {
    let mut server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "lua-time-limit", "10"]),
        Frame::Simple("OK".into())
    );
    let mut busy = server.conn();
    busy.send(&["EVAL", "while true do end", "0"]);
    // Wait until the server reports BUSY, then ask it to shut down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.cmd(&["GET", "x"]) {
            Frame::Error(e) if e.starts_with("BUSY") => break,
            _ if Instant::now() > deadline => panic!("the script never became busy"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    c.send(&["SHUTDOWN", "NOSAVE"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.is_running() {
        assert!(
            Instant::now() < deadline,
            "rivet-server is still running 10 s after SHUTDOWN NOSAVE during a busy script\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
