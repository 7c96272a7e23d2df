//! Pub/sub end to end: channel and pattern subscribers in RESP2 and RESP3, confirmation
//! counts, the subscribed-mode rules, PUBLISH after a write on the same connection, PUBLISH
//! in MULTI and Lua, the `pubsub` output buffer limit against a subscriber that never reads,
//! and keyspace notifications.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Conn, Frame, RivetServer};

fn b(s: &str) -> Frame {
    Frame::bulk(s)
}

fn int(n: i64) -> Frame {
    Frame::Integer(n)
}

fn arr(v: Vec<Frame>) -> Frame {
    Frame::Array(Some(v))
}

/// A RESP2 message frame of strings.
fn msg(parts: &[&str]) -> Frame {
    arr(parts.iter().map(|p| b(p)).collect())
}

/// A RESP3 push frame of strings.
fn push(parts: &[&str]) -> Frame {
    Frame::Push(parts.iter().map(|p| b(p)).collect())
}

fn confirm(kind: &str, name: &str, n: i64) -> Frame {
    arr(vec![b(kind), b(name), int(n)])
}

fn info_field(c: &mut Conn, section: &str, field: &str) -> String {
    let Frame::Bulk(Some(text)) = c.cmd(&["INFO", section]) else {
        panic!("INFO {section} is not a bulk string");
    };
    let text = String::from_utf8_lossy(&text).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO {section} lacks {field}"))
        .trim()
        .to_string()
}

#[test]
fn channel_and_pattern_subscribers_in_resp2_and_resp3() {
    let server = RivetServer::start(&[]);
    let mut a = server.conn();
    let mut p = server.conn();
    let mut r3 = server.conn();
    let mut publ = server.conn();

    a.send(&["SUBSCRIBE", "news", "sport"]);
    assert_eq!(a.read(), confirm("subscribe", "news", 1));
    assert_eq!(a.read(), confirm("subscribe", "sport", 2));
    p.send(&["PSUBSCRIBE", "n*", "x?z"]);
    assert_eq!(p.read(), confirm("psubscribe", "n*", 1));
    assert_eq!(p.read(), confirm("psubscribe", "x?z", 2));
    assert!(matches!(r3.cmd(&["HELLO", "3"]), Frame::Map(_)));
    r3.send(&["SUBSCRIBE", "news"]);
    assert_eq!(
        r3.read(),
        Frame::Push(vec![b("subscribe"), b("news"), int(1)])
    );

    assert_eq!(publ.cmd(&["PUBLISH", "news", "hello"]), int(3));
    assert_eq!(publ.cmd(&["PUBLISH", "xyz", "p"]), int(1));
    assert_eq!(publ.cmd(&["PUBLISH", "nobody", "p"]), int(1));
    assert_eq!(publ.cmd(&["PUBLISH", "other", "p"]), int(0));
    assert_eq!(a.read(), msg(&["message", "news", "hello"]));
    assert_eq!(p.read(), msg(&["pmessage", "n*", "news", "hello"]));
    assert_eq!(p.read(), msg(&["pmessage", "x?z", "xyz", "p"]));
    assert_eq!(p.read(), msg(&["pmessage", "n*", "nobody", "p"]));
    assert_eq!(r3.read(), push(&["message", "news", "hello"]));

    assert_eq!(
        publ.cmd(&["PUBSUB", "NUMSUB", "news", "sport", "none"]),
        arr(vec![
            b("news"),
            int(2),
            b("sport"),
            int(1),
            b("none"),
            int(0)
        ])
    );
    assert_eq!(publ.cmd(&["PUBSUB", "NUMPAT"]), int(2));
    assert_eq!(
        publ.cmd(&["PUBSUB", "CHANNELS"]),
        arr(vec![b("news"), b("sport")])
    );
    assert_eq!(
        publ.cmd(&["PUBSUB", "CHANNELS", "s*"]),
        arr(vec![b("sport")])
    );
    assert_eq!(info_field(&mut publ, "stats", "pubsub_channels"), "2");
    assert_eq!(info_field(&mut publ, "stats", "pubsub_patterns"), "2");

    // A RESP3 subscriber may run any command.
    assert_eq!(r3.cmd(&["SET", "k", "v"]), Frame::Simple("OK".into()));
    assert_eq!(r3.cmd(&["GET", "k"]), b("v"));
    // Publishing to itself: the message comes before the reply.
    assert_eq!(
        r3.cmd(&["PUBLISH", "news", "self"]),
        push(&["message", "news", "self"])
    );
    assert_eq!(r3.read(), int(3));
    assert_eq!(a.read(), msg(&["message", "news", "self"]));
    assert_eq!(p.read(), msg(&["pmessage", "n*", "news", "self"]));

    // CLIENT LIST shows the subscription counts and the P flag.
    let Frame::Bulk(Some(list)) = publ.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]) else {
        panic!("CLIENT LIST is not a bulk string");
    };
    let list = String::from_utf8_lossy(&list).to_string();
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains("flags=P db=0 sub=2 psub=0"), "{list}");
    assert!(list.contains("sub=0 psub=2"), "{list}");
}

#[test]
fn unsubscribe_counts_and_replies_with_nothing_subscribed() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    c.send(&["UNSUBSCRIBE"]);
    assert_eq!(
        c.read(),
        arr(vec![b("unsubscribe"), Frame::Bulk(None), int(0)])
    );
    c.send(&["PUNSUBSCRIBE"]);
    assert_eq!(
        c.read(),
        arr(vec![b("punsubscribe"), Frame::Bulk(None), int(0)])
    );
    c.send(&["UNSUBSCRIBE", "a", "b"]);
    assert_eq!(c.read(), confirm("unsubscribe", "a", 0));
    assert_eq!(c.read(), confirm("unsubscribe", "b", 0));

    c.send(&["SUBSCRIBE", "a", "a", "b"]);
    assert_eq!(c.read(), confirm("subscribe", "a", 1));
    assert_eq!(c.read(), confirm("subscribe", "a", 1));
    assert_eq!(c.read(), confirm("subscribe", "b", 2));
    c.send(&["PSUBSCRIBE", "p*"]);
    assert_eq!(c.read(), confirm("psubscribe", "p*", 3));
    c.send(&["UNSUBSCRIBE", "b"]);
    assert_eq!(c.read(), confirm("unsubscribe", "b", 2));
    c.send(&["UNSUBSCRIBE"]);
    assert_eq!(c.read(), confirm("unsubscribe", "a", 1));
    c.send(&["PUNSUBSCRIBE"]);
    assert_eq!(c.read(), confirm("punsubscribe", "p*", 0));
    // Out of pub/sub mode: ordinary commands work again.
    assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
}

#[test]
fn resp2_subscribed_mode_allows_only_subscription_commands() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    c.send(&["SUBSCRIBE", "ch"]);
    assert_eq!(c.read(), confirm("subscribe", "ch", 1));
    assert_eq!(
        c.cmd(&["GET", "k"]),
        Frame::Error("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context".into())
    );
    assert_eq!(c.cmd(&["PING"]), arr(vec![b("pong"), b("")]));
    assert_eq!(c.cmd(&["PING", "x"]), arr(vec![b("pong"), b("x")]));
    // RESET leaves pub/sub mode and drops the subscriptions.
    assert_eq!(c.cmd(&["RESET"]), Frame::Simple("RESET".into()));
    assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
    let mut other = server.conn();
    assert_eq!(other.cmd(&["PUBLISH", "ch", "m"]), int(0));
}

#[test]
fn a_publish_after_a_write_is_delivered_after_the_commit() {
    let server = RivetServer::start(&[]);
    let mut sub = server.conn();
    let mut reader = server.conn();
    let mut w = server.conn();
    sub.send(&["SUBSCRIBE", "changed"]);
    assert_eq!(sub.read(), confirm("subscribe", "changed", 1));
    for i in 0..50 {
        let v = format!("v{i}");
        // Pipelined: the write and the PUBLISH arrive together.
        let mut bytes = Conn::encode(&["SET", "key", &v]);
        bytes.extend(Conn::encode(&["PUBLISH", "changed", &v]));
        w.send_raw(&bytes);
        assert_eq!(sub.read(), msg(&["message", "changed", &v]));
        assert_eq!(reader.cmd(&["GET", "key"]), b(&v), "round {i}");
        assert_eq!(w.read(), Frame::Simple("OK".into()));
        assert_eq!(w.read(), int(1));
    }
}

#[test]
fn publish_inside_multi_and_lua_is_delivered() {
    let server = RivetServer::start(&[]);
    let mut sub = server.conn();
    let mut c = server.conn();
    sub.send(&["SUBSCRIBE", "ch"]);
    assert_eq!(sub.read(), confirm("subscribe", "ch", 1));
    assert_eq!(c.cmd(&["MULTI"]), Frame::Simple("OK".into()));
    assert_eq!(c.cmd(&["SET", "k", "1"]), Frame::Simple("QUEUED".into()));
    assert_eq!(
        c.cmd(&["PUBLISH", "ch", "in-multi"]),
        Frame::Simple("QUEUED".into())
    );
    assert_eq!(
        c.cmd(&["EXEC"]),
        arr(vec![Frame::Simple("OK".into()), int(1)])
    );
    assert_eq!(sub.read(), msg(&["message", "ch", "in-multi"]));
    assert_eq!(
        c.cmd(&[
            "EVAL",
            "return redis.call('publish', KEYS[1], ARGV[1])",
            "1",
            "ch",
            "lua"
        ]),
        int(1)
    );
    assert_eq!(sub.read(), msg(&["message", "ch", "lua"]));
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_by_the_buffer_limit() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(
        c.cmd(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 4mb 1mb 1"
        ]),
        Frame::Simple("OK".into())
    );
    let Frame::Array(Some(v)) = c.cmd(&["CONFIG", "GET", "client-output-buffer-limit"]) else {
        panic!("CONFIG GET reply");
    };
    assert_eq!(
        v[1],
        b("normal 0 0 0 slave 268435456 67108864 60 pubsub 4194304 1048576 1")
    );
    // A raw socket that subscribes and then never reads.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    raw.write_all(&Conn::encode(&["SUBSCRIBE", "big"])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.cmd(&["PUBSUB", "NUMSUB", "big"]) != arr(vec![b("big"), int(1)]) {
        assert!(Instant::now() < deadline, "the subscription never showed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let rss0: u64 = info_field(&mut c, "memory", "used_memory_rss")
        .parse()
        .unwrap();
    let payload = vec![b'x'; 1 << 20];
    let mut gone = false;
    for _ in 0..300 {
        c.send(&[&b"PUBLISH"[..], b"big", &payload]);
        let r = c.read();
        if r == int(0) {
            gone = true;
            break;
        }
    }
    assert!(gone, "the subscriber was never disconnected");
    let rss1: u64 = info_field(&mut c, "memory", "used_memory_rss")
        .parse()
        .unwrap();
    assert!(
        rss1 < rss0 + (100 << 20),
        "server memory grew from {rss0} to {rss1}"
    );
    let Frame::Bulk(Some(list)) = c.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]) else {
        panic!("CLIENT LIST");
    };
    assert!(list.is_empty(), "{}", String::from_utf8_lossy(&list));
}

fn events(sub: &mut Conn, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| match sub.read() {
            Frame::Array(Some(v)) if v.len() == 4 => {
                let s = |f: &Frame| match f {
                    Frame::Bulk(Some(b)) => String::from_utf8_lossy(b).to_string(),
                    other => panic!("not a bulk: {other}"),
                };
                format!("{} {}", s(&v[2]), s(&v[3]))
            }
            other => panic!("not a pmessage: {other}"),
        })
        .collect()
}

#[test]
fn keyspace_notifications() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    let mut sub = server.conn();
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        Frame::Simple("OK".into())
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "notify-keyspace-events"]),
        arr(vec![b("notify-keyspace-events"), b("AKE")])
    );
    assert!(matches!(
        c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Kq"]),
        Frame::Error(e) if e.contains("Invalid event class character")
    ));
    sub.send(&["PSUBSCRIBE", "__key*"]);
    assert_eq!(sub.read(), confirm("psubscribe", "__key*", 1));
    c.cmd(&["SET", "foo", "bar"]);
    assert_eq!(
        events(&mut sub, 2),
        ["__keyspace@0__:foo set", "__keyevent@0__:set foo"]
    );
    c.cmd(&["RPUSH", "l", "a"]);
    c.cmd(&["LPOP", "l"]);
    assert_eq!(
        events(&mut sub, 6),
        [
            "__keyspace@0__:l rpush",
            "__keyevent@0__:rpush l",
            "__keyspace@0__:l lpop",
            "__keyevent@0__:lpop l",
            "__keyspace@0__:l del",
            "__keyevent@0__:del l",
        ]
    );
    c.cmd(&["RENAME", "foo", "bar"]);
    assert_eq!(
        events(&mut sub, 4),
        [
            "__keyspace@0__:foo rename_from",
            "__keyevent@0__:rename_from foo",
            "__keyspace@0__:bar rename_to",
            "__keyevent@0__:rename_to bar",
        ]
    );
    // Only new keys and expiries; the sweeper reports the expiry.
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Enx"]);
    c.cmd(&["SET", "fresh", "1", "PX", "50"]);
    c.cmd(&["SET", "bar", "2"]);
    assert_eq!(
        events(&mut sub, 2),
        ["__keyevent@0__:new fresh", "__keyevent@0__:expired fresh"]
    );
    // A write that meets an expired key (lazy expiry, the sweeper off) reports its expiry
    // first.
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"]);
    c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    c.cmd(&["SET", "lazy", "1", "PX", "1"]);
    assert_eq!(
        events(&mut sub, 2),
        ["__keyspace@0__:lazy set", "__keyspace@0__:lazy expire"]
    );
    std::thread::sleep(Duration::from_millis(20));
    c.cmd(&["APPEND", "lazy", "x"]);
    assert_eq!(
        events(&mut sub, 2),
        ["__keyspace@0__:lazy expired", "__keyspace@0__:lazy append"]
    );
    c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]);
    // The commands of a script report their own events.
    let script = "redis.call('set', KEYS[1], 'a'); redis.call('lpush', KEYS[2], 'b')";
    c.cmd(&["EVAL", script, "2", "sk", "sl"]);
    assert_eq!(
        events(&mut sub, 2),
        ["__keyspace@0__:sk set", "__keyspace@0__:sl lpush"]
    );
    // Nothing for an untouched key.
    c.cmd(&["SREM", "nosuchset", "x"]);
    c.cmd(&["CONFIG", "SET", "notify-keyspace-events", ""]);
}

#[test]
fn shard_channels() {
    let server = RivetServer::start(&[]);
    let mut s = server.conn();
    let mut c = server.conn();
    s.send(&["SSUBSCRIBE", "a", "b"]);
    assert_eq!(s.read(), confirm("ssubscribe", "a", 1));
    assert_eq!(s.read(), confirm("ssubscribe", "b", 2));
    // Shard and plain channels are separate namespaces.
    assert_eq!(c.cmd(&["PUBLISH", "a", "x"]), int(0));
    assert_eq!(c.cmd(&["SPUBLISH", "a", "y"]), int(1));
    assert_eq!(s.read(), msg(&["smessage", "a", "y"]));
    assert_eq!(
        c.cmd(&["PUBSUB", "SHARDNUMSUB", "a", "z"]),
        arr(vec![b("a"), int(1), b("z"), int(0)])
    );
    assert_eq!(
        c.cmd(&["PUBSUB", "SHARDCHANNELS"]),
        arr(vec![b("a"), b("b")])
    );
    assert_eq!(c.cmd(&["PUBSUB", "CHANNELS"]), arr(vec![]));
    s.send(&["SUNSUBSCRIBE"]);
    let mut got = vec![s.read(), s.read()];
    got.sort_by_key(|f| f.to_string());
    assert_eq!(
        got,
        vec![
            confirm("sunsubscribe", "a", 1),
            confirm("sunsubscribe", "b", 0)
        ]
    );
    assert_eq!(s.cmd(&["PING"]), Frame::Simple("PONG".into()));
}

#[test]
fn the_soft_limit_disconnects_after_its_seconds() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(
        c.cmd(&[
            "CONFIG",
            "SET",
            "client-output-buffer-limit",
            "pubsub 0 1mb 1"
        ]),
        Frame::Simple("OK".into())
    );
    let mut raw = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    raw.write_all(&Conn::encode(&["SUBSCRIBE", "soft"]))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.cmd(&["PUBSUB", "NUMSUB", "soft"]) != arr(vec![b("soft"), int(1)]) {
        assert!(Instant::now() < deadline, "the subscription never showed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let payload = vec![b'y'; 256 << 10];
    let started = Instant::now();
    // Over the soft limit but under no hard limit: the subscriber stays until it has been
    // over for more than a second.
    loop {
        let r = c.cmd(&[&b"PUBLISH"[..], b"soft", &payload]);
        if r == int(0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never disconnected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "disconnected before the soft limit's seconds: {:?}",
        started.elapsed()
    );
}

#[test]
fn subscribers_are_exempt_from_the_idle_timeout() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "timeout", "1"]),
        Frame::Simple("OK".into())
    );
    let mut sub = server.conn();
    sub.send(&["SUBSCRIBE", "quiet"]);
    assert_eq!(sub.read(), confirm("subscribe", "quiet", 1));
    std::thread::sleep(Duration::from_millis(2500));
    let mut p = server.conn();
    assert_eq!(p.cmd(&["PUBLISH", "quiet", "still here"]), int(1));
    assert_eq!(sub.read(), msg(&["message", "quiet", "still here"]));
}

#[test]
fn client_kill_and_list_by_type_pubsub() {
    let server = RivetServer::start(&[]);
    let mut c = server.conn();
    let mut sub = server.conn();
    sub.send(&["PSUBSCRIBE", "*"]);
    assert_eq!(sub.read(), confirm("psubscribe", "*", 1));
    let Frame::Bulk(Some(normal)) = c.cmd(&["CLIENT", "LIST", "TYPE", "normal"]) else {
        panic!("CLIENT LIST");
    };
    assert_eq!(String::from_utf8_lossy(&normal).lines().count(), 1);
    assert_eq!(c.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]), int(1));
    assert!(sub.try_read().is_err(), "the subscriber was closed");
    assert_eq!(c.cmd(&["PUBSUB", "NUMPAT"]), int(0));
}
