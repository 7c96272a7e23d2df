//! Real clients against rivet-server: the `redis` crate (RESP2 and RESP3, pipelines,
//! transactions, SCAN iteration) and Debian's `redis-cli` (commands, `--scan`, `--pipe`).
//! Data written through them must survive a restart and the file must check clean.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::RivetServer;

fn client(port: u16, resp3: bool) -> redis::Connection {
    let url = if resp3 {
        format!("redis://127.0.0.1:{port}/?protocol=resp3")
    } else {
        format!("redis://127.0.0.1:{port}/")
    };
    redis::Client::open(url)
        .expect("client url")
        .get_connection()
        .expect("connect to rivet-server")
}

#[test]
fn redis_crate_commands_pipelines_and_transactions() {
    let server = RivetServer::start(&[]);
    for resp3 in [false, true] {
        let mut c = client(server.port(), resp3);
        let _: () = redis::cmd("FLUSHALL").query(&mut c).expect("flushall");
        let _: () = redis::cmd("SET")
            .arg("greeting")
            .arg("hello")
            .query(&mut c)
            .expect("set");
        let v: String = redis::cmd("GET")
            .arg("greeting")
            .query(&mut c)
            .expect("get");
        assert_eq!(v, "hello");
        let n: i64 = redis::cmd("INCRBY")
            .arg("counter")
            .arg(41)
            .query(&mut c)
            .expect("incrby");
        assert_eq!(n, 41);
        let (a, b): (i64, String) = redis::pipe()
            .cmd("INCR")
            .arg("counter")
            .cmd("GET")
            .arg("greeting")
            .query(&mut c)
            .expect("pipeline");
        assert_eq!((a, b.as_str()), (42, "hello"));
        let (x, y): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg("tx")
            .cmd("INCR")
            .arg("tx")
            .query(&mut c)
            .expect("MULTI/EXEC");
        assert_eq!((x, y), (1, 2));
        for i in 0..250 {
            let _: () = redis::cmd("SET")
                .arg(format!("k:{i}"))
                .arg(i)
                .query(&mut c)
                .expect("set");
        }
        let mut seen: Vec<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg("k:*")
            .clone()
            .iter(&mut c)
            .expect("scan")
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 250, "SCAN returns every key (resp3={resp3})");
        let h: std::collections::HashMap<String, String> = {
            let _: () = redis::cmd("HSET")
                .arg("h")
                .arg("f1")
                .arg("a")
                .arg("f2")
                .arg("b")
                .query(&mut c)
                .expect("hset");
            redis::cmd("HGETALL")
                .arg("h")
                .query(&mut c)
                .expect("hgetall")
        };
        assert_eq!(h.len(), 2);
        let ttl: i64 = {
            let _: () = redis::cmd("SET")
                .arg("t")
                .arg("v")
                .arg("EX")
                .arg(100)
                .query(&mut c)
                .expect("set ex");
            redis::cmd("TTL").arg("t").query(&mut c).expect("ttl")
        };
        assert!((99..=100).contains(&ttl));
    }
}

fn redis_cli() -> Option<&'static str> {
    let ok = Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("redis-cli");
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
        panic!("redis-cli is required under CI (apt-get install redis-tools)");
    }
    eprintln!("SKIPPED: redis-cli not installed (apt-get install redis-tools)");
    None
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn redis_cli_and_restart_keep_data() {
    let Some(_) = redis_cli() else { return };
    let mut server = RivetServer::start(&[]);
    let port = server.port();
    assert_eq!(cli(port, &["PING"]), "PONG");
    assert_eq!(cli(port, &["SET", "name", "rivet"]), "OK");
    assert_eq!(cli(port, &["GET", "name"]), "rivet");
    assert_eq!(cli(port, &["RPUSH", "list", "a", "b", "c"]), "3");
    // --pipe: mass insertion in RESP, as users load data.
    let mut input = Vec::new();
    for i in 0..1000 {
        let k = format!("bulk:{i}");
        let v = format!("value-{i}");
        write!(
            input,
            "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
            k.len(),
            v.len()
        )
        .expect("buffer");
    }
    let mut pipe = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli --pipe");
    pipe.stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("write pipe input");
    let out = pipe.wait_with_output().expect("pipe finishes");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 1000"), "{text}");
    let scanned = cli(port, &["--scan", "--pattern", "bulk:*"]);
    assert_eq!(scanned.lines().count(), 1000);
    assert_eq!(cli(port, &["DBSIZE"]), "1002");

    server.restart();
    let port = server.port();
    assert_eq!(cli(port, &["GET", "name"]), "rivet");
    assert_eq!(cli(port, &["LRANGE", "list", "0", "-1"]), "a\nb\nc");
    assert_eq!(cli(port, &["GET", "bulk:999"]), "value-999");
    assert_eq!(cli(port, &["DBSIZE"]), "1002");
    server.stop();
    assert_file_checks_clean(&server.db_path());
}

/// Opens the data file read-only with the engine and runs its full consistency check (what
/// `rivet check` runs).
fn assert_file_checks_clean(path: &std::path::Path) {
    let db = rivet::Db::open(
        path,
        rivet::Options {
            read_only: true,
            ..rivet::Options::default()
        },
    )
    .expect("open the data file read-only");
    let problems = db.check().expect("check runs");
    assert!(problems.is_empty(), "{}: {problems:?}", path.display());
}

/// Regression: an error the connection answers itself (arity, unknown command, EXECABORT)
/// used to be written before the replies of pipelined writes still waiting for their commit.
#[test]
fn pipelined_errors_keep_request_order() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    let mut batch = Vec::new();
    for args in [
        &["SET", "a", "1"][..],
        &["COPY", "a", "b"],
        &["PERSIST", "a", "extra"],
        &["NOSUCHCOMMAND"],
        &["INCR", "a"],
        &["EXEC", "extra"],
        &["GET", "a"],
    ] {
        batch.extend(common::Conn::encode(args));
    }
    c.send_raw(&batch);
    let replies: Vec<String> = (0..7).map(|_| c.read().to_string()).collect();
    assert!(replies[0].contains("OK"), "{replies:?}");
    assert!(replies[1].contains('1'), "{replies:?}");
    assert!(
        replies[2].contains("wrong number of arguments for 'persist'"),
        "{replies:?}"
    );
    assert!(replies[3].contains("unknown command"), "{replies:?}");
    assert!(replies[4].contains('2'), "{replies:?}");
    assert!(replies[5].contains("EXECABORT"), "{replies:?}");
    assert!(replies[6].contains('2'), "{replies:?}");
}

/// Regression: Redis reads the SCAN cursor with strtoul, so `-1` is 2^64-1 (the end of the
/// keyspace order), not an error.
#[test]
fn scan_cursor_minus_one_is_the_end() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(
        c.cmd(&["SET", "k", "v"]),
        common::Frame::Simple("OK".into())
    );
    let reply = c.cmd(&["SCAN", "-1"]).to_string();
    assert!(reply.contains("\"0\""), "{reply}");
    assert!(c
        .cmd(&["SCAN", "abc"])
        .to_string()
        .contains("invalid cursor"));
}

/// Regression: reads once took their time from a clock derived from an earlier reading, up to
/// a millisecond behind the writer's, so PTTL right after PEXPIRE 1000 could say 1001.
#[test]
fn pttl_never_exceeds_the_ttl_just_set() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    for _ in 0..300 {
        assert_eq!(
            c.cmd(&["SET", "k", "v"]),
            common::Frame::Simple("OK".into())
        );
        assert_eq!(c.cmd(&["PEXPIRE", "k", "1000"]), common::Frame::Integer(1));
        match c.cmd(&["PTTL", "k"]) {
            common::Frame::Integer(t) => assert!((900..=1000).contains(&t), "PTTL {t}"),
            other => panic!("PTTL answered {other}"),
        }
    }
}

/// INFO errorstats counts error replies by code like Redis (the first word of the message,
/// `ERR` for an empty one, errors inside an EXEC reply included), and CONFIG RESETSTAT
/// clears it. The numbers are Debian redis-server 7.0.15's for the same commands.
#[test]
fn errorstats_count_error_replies_by_code() {
    let s = RivetServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd(&["SET", "s", "x"]),
        common::Frame::Simple("OK".into())
    );
    c.cmd(&[
        "EVAL",
        "return redis.error_reply('MY_ERR_CODE custom msg')",
        "0",
    ]);
    c.cmd(&["CONFIG", "RESETSTAT"]);
    c.cmd(&[
        "EVAL",
        "return redis.error_reply('MY_ERR_CODE custom msg')",
        "0",
    ]);
    c.cmd(&["EVAL", "return redis.error_reply('')", "0"]);
    c.cmd(&["LPUSH", "s", "x"]);
    c.cmd(&["NOSUCHCOMMAND"]);
    c.cmd(&["MULTI"]);
    c.cmd(&["LPUSH", "s", "x"]);
    c.cmd(&["EXEC"]);
    let common::Frame::Bulk(Some(info)) = c.cmd(&["INFO", "errorstats"]) else {
        panic!("INFO errorstats is not a bulk string");
    };
    let info = String::from_utf8(info).unwrap();
    let lines: Vec<&str> = info.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "errorstat_ERR:count=2",
            "errorstat_MY_ERR_CODE:count=1",
            "errorstat_WRONGTYPE:count=2"
        ],
        "{info}"
    );
    let common::Frame::Bulk(Some(stats)) = c.cmd(&["INFO", "stats"]) else {
        panic!("INFO stats is not a bulk string");
    };
    assert!(
        String::from_utf8(stats)
            .unwrap()
            .contains("total_error_replies:5\r\n"),
        "total_error_replies"
    );
}

/// CLIENT LIST/INFO show the session as it is now (new-user trial): `multi=-1` right after
/// EXEC or DISCARD, and `resp=2` after RESET undid HELLO 3, as Redis.
#[test]
fn client_list_shows_the_session_after_exec_and_reset() {
    let s = RivetServer::start(&[]);
    let mut a = s.conn();
    let mut other = s.conn();
    let field = |c: &mut common::Conn, args: &[&str], key: &str| -> String {
        let text = match c.cmd(args) {
            common::Frame::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
            common::Frame::Verbatim(_, b) => String::from_utf8(b).unwrap(),
            other => panic!("{args:?}: {other}"),
        };
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in {text}"))
            .to_string()
    };
    let common::Frame::Integer(id) = a.cmd(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID");
    };
    let id = id.to_string();
    a.cmd(&["MULTI"]);
    a.cmd(&["SET", "a", "1"]);
    a.cmd(&["EXEC"]);
    assert_eq!(
        field(&mut other, &["CLIENT", "LIST", "ID", &id], "multi"),
        "-1"
    );
    a.cmd(&["MULTI"]);
    a.cmd(&["SET", "a", "1"]);
    a.cmd(&["DISCARD"]);
    assert_eq!(
        field(&mut other, &["CLIENT", "LIST", "ID", &id], "multi"),
        "-1"
    );
    a.cmd(&["HELLO", "3"]);
    assert_eq!(field(&mut a, &["CLIENT", "INFO"], "resp"), "3");
    a.cmd(&["RESET"]);
    assert_eq!(field(&mut a, &["CLIENT", "INFO"], "resp"), "2");
}
