//! Streams on rivet-server, the parts the differential test cannot compare with Redis: idle
//! times, blocking timeouts and wake-ups, consumer groups and pending entries surviving a
//! restart (SIGTERM, then `rivet check` on the file), and groups travelling with COPY and
//! going with DEL.

mod common;

use std::time::{Duration, Instant};

use common::{stop_and_check, Conn, Frame, RivetServer};

fn int(f: &Frame) -> i64 {
    match f {
        Frame::Integer(n) => *n,
        other => panic!("expected an integer, got {other}"),
    }
}

fn items(f: &Frame) -> Vec<Frame> {
    match f {
        Frame::Array(Some(v)) => v.clone(),
        other => panic!("expected an array, got {other}"),
    }
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        Frame::Simple(s) => s.clone(),
        other => panic!("expected a string, got {other}"),
    }
}

/// A field of a flat RESP2 map reply (XINFO).
fn field(f: &Frame, name: &str) -> Frame {
    let v = items(f);
    for pair in v.chunks(2) {
        if text(&pair[0]) == name {
            return pair[1].clone();
        }
    }
    panic!("no field {name} in {f}")
}

fn ok(c: &mut Conn, args: &[&str]) -> Frame {
    let r = c.cmd(args);
    assert!(!matches!(r, Frame::Error(_)), "{args:?}: {r}");
    r
}

/// Waits until INFO reports `n` parked clients.
fn wait_blocked(c: &mut Conn, n: u64) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let info = text(&c.cmd(&["INFO", "clients"]));
        if info.contains(&format!("blocked_clients:{n}\r")) {
            return;
        }
        assert!(Instant::now() < until, "never saw {n} blocked clients");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The state a restart must keep: XPENDING summary and extended form (without idle times),
/// XINFO GROUPS, consumer names and pending counts, XINFO STREAM counters.
fn group_state(c: &mut Conn) -> Vec<String> {
    let mut out = vec![
        c.cmd(&["XPENDING", "s", "g"]).to_string(),
        c.cmd(&["XINFO", "GROUPS", "s"]).to_string(),
    ];
    for e in items(&c.cmd(&["XPENDING", "s", "g", "-", "+", "100"])) {
        let e = items(&e);
        out.push(format!("{} {} {}", text(&e[0]), text(&e[1]), int(&e[3])));
    }
    for cons in items(&c.cmd(&["XINFO", "CONSUMERS", "s", "g"])) {
        out.push(format!(
            "{} {}",
            text(&field(&cons, "name")),
            int(&field(&cons, "pending"))
        ));
    }
    let info = c.cmd(&["XINFO", "STREAM", "s"]);
    for f in [
        "length",
        "last-generated-id",
        "max-deleted-entry-id",
        "entries-added",
        "groups",
    ] {
        out.push(field(&info, f).to_string());
    }
    out
}

#[test]
fn groups_and_pending_entries_survive_a_restart() {
    let mut server = RivetServer::start(&[]);
    let mut c = server.conn();
    for i in 1..=6 {
        ok(
            &mut c,
            &["XADD", "s", &format!("{i}-0"), "f", &i.to_string()],
        );
    }
    ok(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    ok(&mut c, &["XGROUP", "CREATE", "s", "other", "$"]);
    ok(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "COUNT",
            "3",
            "STREAMS",
            "s",
            ">",
        ],
    );
    ok(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert_eq!(int(&c.cmd(&["XACK", "s", "g", "2-0"])), 1);
    ok(&mut c, &["XCLAIM", "s", "g", "bob", "0", "1-0", "JUSTID"]);
    assert_eq!(
        int(&c.cmd(&["XGROUP", "CREATECONSUMER", "s", "g", "carol"])),
        1
    );
    assert_eq!(int(&c.cmd(&["XDEL", "s", "6-0"])), 1);
    let before = group_state(&mut c);
    assert!(before[0].contains('3'), "three pending: {}", before[0]);
    drop(c);
    server.stop_and_start();
    let mut c = server.conn();
    assert_eq!(group_state(&mut c), before);
    // Reading goes on where it stopped: only 5-0 is new for g (6-0 was deleted).
    let r = c.cmd(&["XREADGROUP", "GROUP", "g", "carol", "STREAMS", "s", ">"]);
    let entries = items(&items(&items(&r)[0])[1]);
    assert_eq!(entries.len(), 1, "{r}");
    assert_eq!(text(&items(&entries[0])[0]), "5-0");
    drop(c);
    stop_and_check(server);
}

#[test]
fn idle_times_and_delivery_counts() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    ok(&mut c, &["XADD", "s", "1-0", "a", "1"]);
    ok(&mut c, &["XADD", "s", "2-0", "b", "2"]);
    ok(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    ok(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", ">"],
    );
    std::thread::sleep(Duration::from_millis(150));
    let pending = items(&c.cmd(&["XPENDING", "s", "g", "-", "+", "10"]));
    assert_eq!(pending.len(), 2);
    for e in &pending {
        let e = items(e);
        let idle = int(&e[2]);
        assert!((150..5000).contains(&idle), "idle {idle}");
        assert_eq!(int(&e[3]), 1);
    }
    assert_eq!(
        items(&c.cmd(&["XPENDING", "s", "g", "IDLE", "100", "-", "+", "10"])).len(),
        2
    );
    assert!(items(&c.cmd(&["XPENDING", "s", "g", "IDLE", "60000", "-", "+", "10"])).is_empty());
    // History delivery counts and resets the idle time.
    ok(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0"],
    );
    let e = items(&items(&c.cmd(&["XPENDING", "s", "g", "-", "+", "1"]))[0]);
    assert!(int(&e[2]) < 100, "idle after redelivery: {}", int(&e[2]));
    assert_eq!(int(&e[3]), 2);
    // XCLAIM IDLE sets the idle time; RETRYCOUNT the count.
    ok(
        &mut c,
        &[
            "XCLAIM",
            "s",
            "g",
            "bob",
            "0",
            "1-0",
            "IDLE",
            "5000",
            "RETRYCOUNT",
            "7",
        ],
    );
    let e = items(&items(&c.cmd(&["XPENDING", "s", "g", "-", "+", "1"]))[0]);
    assert_eq!(text(&e[1]), "bob");
    assert!((5000..10000).contains(&int(&e[2])), "idle {}", int(&e[2]));
    assert_eq!(int(&e[3]), 7);
    // XAUTOCLAIM with a min idle time takes only the old one.
    let r = items(&c.cmd(&["XAUTOCLAIM", "s", "g", "carol", "4000", "0", "JUSTID"]));
    assert_eq!(items(&r[1]).len(), 1);
    assert_eq!(text(&items(&r[1])[0]), "1-0");
    // Consumer idle times.
    std::thread::sleep(Duration::from_millis(120));
    for cons in items(&c.cmd(&["XINFO", "CONSUMERS", "s", "g"])) {
        let idle = int(&field(&cons, "idle"));
        assert!((100..5000).contains(&idle), "consumer idle {idle}");
    }
}

#[test]
fn blocking_reads_time_out_and_wake() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    let mut parked = server.conn();
    // A timeout answers a null array after the BLOCK time.
    let t0 = Instant::now();
    let r = parked.cmd(&["XREAD", "BLOCK", "150", "STREAMS", "s", "$"]);
    assert_eq!(r, Frame::Array(None));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(140) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    ok(&mut c, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]);
    let r = parked.cmd(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "a",
        "BLOCK",
        "100",
        "STREAMS",
        "s",
        ">",
    ]);
    assert_eq!(r, Frame::Array(None));
    // Inside MULTI a blocking read answers at once.
    ok(&mut c, &["MULTI"]);
    c.cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    let r = items(&c.cmd(&["EXEC"]));
    assert_eq!(r[0], Frame::Array(None));
    // Inside a script BLOCK is refused, as Redis does.
    match c.cmd(&[
        "EVAL",
        "return redis.pcall('xread','BLOCK',0,'STREAMS','s','$')",
        "1",
        "s",
    ]) {
        Frame::Error(e) => assert!(
            e.contains("not allowed with BLOCK option from scripts"),
            "{e}"
        ),
        other => panic!("expected an error, got {other}"),
    }
    // `$` is the last id when the command ran: an XADD wakes the reader with that entry.
    ok(&mut c, &["XADD", "s", "5-0", "a", "1"]);
    parked.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    wait_blocked(&mut c, 1);
    ok(&mut c, &["XADD", "s", "6-0", "b", "2"]);
    let r = parked.read();
    assert_eq!(
        r.to_string(),
        c.cmd(&["XREAD", "STREAMS", "s", "5-0"]).to_string()
    );
    // A parked XREADGROUP is served, and its entry is pending for its consumer.
    ok(&mut c, &["XGROUP", "SETID", "s", "g", "$"]);
    parked.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "zed",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    wait_blocked(&mut c, 1);
    ok(&mut c, &["XADD", "s", "7-0", "c", "3"]);
    let r = parked.read();
    assert!(r.to_string().contains("7-0"), "{r}");
    let p = items(&c.cmd(&["XPENDING", "s", "g"]));
    assert_eq!(int(&p[0]), 1);
    assert_eq!(text(&items(&items(&p[3])[0])[0]), "zed");
    // Destroying the group unblocks with NOGROUP; deleting the key with UNBLOCKED.
    parked.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "zed",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    wait_blocked(&mut c, 1);
    assert_eq!(int(&c.cmd(&["XGROUP", "DESTROY", "s", "g"])), 1);
    match parked.read() {
        Frame::Error(e) => assert!(e.starts_with("NOGROUP"), "{e}"),
        other => panic!("expected NOGROUP, got {other}"),
    }
    ok(&mut c, &["XGROUP", "CREATE", "s", "g", "$"]);
    parked.send(&[
        "XREADGROUP",
        "GROUP",
        "g",
        "zed",
        "BLOCK",
        "0",
        "STREAMS",
        "s",
        ">",
    ]);
    wait_blocked(&mut c, 1);
    assert_eq!(int(&c.cmd(&["DEL", "s"])), 1);
    match parked.read() {
        Frame::Error(e) => assert!(e.contains("no longer exists"), "{e}"),
        other => panic!("expected UNBLOCKED, got {other}"),
    }
    // A parked XREAD survives the key's deletion and is served by the next XADD.
    parked.send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    wait_blocked(&mut c, 1);
    ok(&mut c, &["SET", "s", "string"]);
    ok(&mut c, &["DEL", "s"]);
    ok(&mut c, &["XADD", "s", "1-0", "d", "4"]);
    assert!(parked.read().to_string().contains("1-0"));
}

#[test]
fn groups_travel_with_copy_and_rename_and_go_with_del() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    for i in 1..=3 {
        ok(&mut c, &["XADD", "s", &format!("{i}-0"), "f", "v"]);
    }
    ok(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    ok(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "a",
            "COUNT",
            "2",
            "STREAMS",
            "s",
            ">",
        ],
    );
    assert_eq!(int(&c.cmd(&["COPY", "s", "t"])), 1);
    assert_eq!(
        c.cmd(&["XPENDING", "t", "g"]).to_string(),
        c.cmd(&["XPENDING", "s", "g"]).to_string()
    );
    // The copy is independent.
    assert_eq!(int(&c.cmd(&["XACK", "t", "g", "1-0", "2-0"])), 2);
    assert_eq!(int(&items(&c.cmd(&["XPENDING", "s", "g"]))[0]), 2);
    ok(&mut c, &["RENAME", "t", "u"]);
    assert_eq!(int(&items(&c.cmd(&["XPENDING", "u", "g"]))[0]), 0);
    assert_eq!(items(&c.cmd(&["XINFO", "GROUPS", "u"])).len(), 1);
    assert_eq!(int(&c.cmd(&["DEL", "s"])), 1);
    ok(&mut c, &["XADD", "s", "9-0", "f", "v"]);
    assert!(items(&c.cmd(&["XINFO", "GROUPS", "s"])).is_empty());
    match c.cmd(&["XPENDING", "s", "g"]) {
        Frame::Error(e) => assert!(e.starts_with("NOGROUP"), "{e}"),
        other => panic!("expected NOGROUP, got {other}"),
    }
    drop(c);
    stop_and_check(server);
}

#[test]
fn a_big_pending_list_is_acked_one_entry_at_a_time() {
    let server = RivetServer::start(&["--no-sync"]);
    let mut c = server.conn();
    let n = 5000;
    let mut batch = Vec::new();
    for i in 1..=n {
        batch.extend(Conn::encode(&["XADD", "s", &format!("{i}-0"), "f", "v"]));
    }
    c.send_raw(&batch);
    for _ in 1..=n {
        c.read();
    }
    ok(&mut c, &["XGROUP", "CREATE", "s", "g", "0"]);
    ok(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "a", "STREAMS", "s", ">"],
    );
    assert_eq!(int(&items(&c.cmd(&["XPENDING", "s", "g"]))[0]), n);
    assert_eq!(int(&c.cmd(&["XACK", "s", "g", "2500-0", "99999-0"])), 1);
    let p = items(&c.cmd(&["XPENDING", "s", "g"]));
    assert_eq!(int(&p[0]), n - 1);
    assert_eq!(text(&p[1]), "1-0");
    assert_eq!(text(&p[2]), format!("{n}-0"));
    let cons = items(&c.cmd(&["XINFO", "CONSUMERS", "s", "g"]));
    assert_eq!(int(&field(&cons[0], "pending")), n - 1);
    assert_eq!(
        int(&c.cmd(&["XGROUP", "DELCONSUMER", "s", "g", "a"])),
        n - 1
    );
    assert_eq!(int(&items(&c.cmd(&["XPENDING", "s", "g"]))[0]), 0);
    drop(c);
    stop_and_check(server);
}
