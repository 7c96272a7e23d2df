//! The Memcached protocol over a socket: every command and meta flag, with the exact bytes
//! memcached 1.6.18 answers (checked against Debian's memcached while writing these), and
//! what is particular to rivet-server: items survive a restart, Redis and Memcached keys do
//! not collide, expiry is swept from the file, `-I` limits, authentication.
//!
//! Each check sends raw bytes and reads exactly the expected reply; at the end of a test the
//! connection must hold nothing more (so a stray extra reply fails the test).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::RivetServer;

struct Mc {
    s: TcpStream,
}

impl Mc {
    fn connect(port: u16) -> Mc {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the memcached port");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Mc { s }
    }

    /// Sends `req` and asserts the reply is exactly `want`.
    fn check(&mut self, req: &[u8], want: &[u8]) {
        self.s.write_all(req).expect("send");
        let mut got = vec![0u8; want.len()];
        let mut n = 0;
        while n < want.len() {
            match self.s.read(&mut got[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => panic!(
                    "reading the reply to {:?}: {e}; got so far {:?}, want {:?}",
                    String::from_utf8_lossy(&req[..req.len().min(120)]),
                    String::from_utf8_lossy(&got[..n]),
                    String::from_utf8_lossy(want)
                ),
            }
        }
        assert_eq!(
            String::from_utf8_lossy(&got[..n]),
            String::from_utf8_lossy(want),
            "reply to {:?}",
            String::from_utf8_lossy(&req[..req.len().min(120)])
        );
    }

    /// Sends `req` and returns the first reply line (for replies whose numbers vary).
    fn line(&mut self, req: &[u8]) -> String {
        self.s.write_all(req).expect("send");
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        while !out.ends_with(b"\r\n") {
            match self.s.read(&mut b) {
                Ok(1) => out.push(b[0]),
                other => panic!("reading a line: {other:?} after {out:?}"),
            }
        }
        out.truncate(out.len() - 2);
        String::from_utf8(out).expect("utf-8 reply line")
    }

    /// Asserts nothing more is waiting, then that the connection still works.
    fn quiet(&mut self) {
        self.s
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut b = [0u8; 64];
        match self.s.read(&mut b) {
            Ok(0) => panic!("connection closed"),
            Ok(n) => panic!(
                "unexpected extra reply bytes: {:?}",
                String::from_utf8_lossy(&b[..n])
            ),
            Err(_) => {}
        }
        self.s
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        self.check(b"mn\r\n", b"MN\r\n");
    }

    /// Asserts the server closed the connection.
    fn closed(&mut self) {
        let mut b = [0u8; 64];
        match self.s.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection to be closed, got {other:?}"),
        }
    }
}

fn server(extra: &[&str]) -> RivetServer {
    let mut args = vec!["--memcached-port", "0"];
    args.extend_from_slice(extra);
    RivetServer::start(&args)
}

/// The CAS value of `key` through `gets`.
fn cas_of(c: &mut Mc, key: &str) -> u64 {
    let l = c.line(format!("gets {key}\r\n").as_bytes());
    let cas = l
        .split(' ')
        .nth(4)
        .unwrap_or_else(|| panic!("gets {key}: {l}"))
        .parse()
        .expect("numeric cas");
    // Drain the value and END.
    let _ = c.line(b"");
    assert_eq!(c.line(b""), "END");
    cas
}

#[test]
fn storage_commands() {
    let s = server(&[]);
    let mut c = Mc::connect(s.memcached_port());
    c.check(b"set a 5 0 3\r\nabc\r\n", b"STORED\r\n");
    c.check(b"get a\r\n", b"VALUE a 5 3\r\nabc\r\nEND\r\n");
    c.check(b"add a 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
    c.check(b"add b 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.check(b"replace nope 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
    c.check(b"replace b 7 0 2\r\nyy\r\n", b"STORED\r\n");
    c.check(b"append a 9 9 2\r\nde\r\n", b"STORED\r\n");
    c.check(b"prepend a 0 0 1\r\n_\r\n", b"STORED\r\n");
    c.check(b"prepend nope 0 0 1\r\n_\r\n", b"NOT_STORED\r\n");
    // append/prepend keep the flags.
    c.check(
        b"get a b nope\r\n",
        b"VALUE a 5 6\r\n_abcde\r\nVALUE b 7 2\r\nyy\r\nEND\r\n",
    );
    // CAS: a stale value is refused, the current one accepted, a missing key not found.
    let cas = cas_of(&mut c, "a");
    c.check(
        format!("cas a 0 0 1 {}\r\nz\r\n", cas + 1000).as_bytes(),
        b"EXISTS\r\n",
    );
    c.check(
        format!("cas a 0 0 1 {cas}\r\nz\r\n").as_bytes(),
        b"STORED\r\n",
    );
    c.check(
        format!("cas a 0 0 1 {cas}\r\nz\r\n").as_bytes(),
        b"EXISTS\r\n",
    );
    c.check(b"cas nope 0 0 1 1\r\nz\r\n", b"NOT_FOUND\r\n");
    let cas2 = cas_of(&mut c, "a");
    assert_ne!(cas, cas2, "every modification changes the CAS");
    assert_eq!(cas2, cas_of(&mut c, "a"), "a read does not");
    // Binary-safe values: every byte, CRLF inside.
    let value: Vec<u8> = (0..=255u8).chain(*b"\r\n\r\n").collect();
    let mut req = format!("set bin 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    c.check(&req, b"STORED\r\n");
    let mut want = format!("VALUE bin 0 {}\r\n", value.len()).into_bytes();
    want.extend_from_slice(&value);
    want.extend_from_slice(b"\r\nEND\r\n");
    c.check(b"get bin\r\n", &want);
    // 32-bit flags; a value out of range is truncated as memcached's strtoul does.
    c.check(b"set f 4294967295 0 0\r\n\r\n", b"STORED\r\n");
    c.check(b"get f\r\n", b"VALUE f 4294967295 0\r\n\r\nEND\r\n");
    c.check(
        b"set f -1 0 0\r\n\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    // A big value (stored out of line) round-trips.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut req = format!("set big 3 0 {}\r\n", big.len()).into_bytes();
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n");
    c.check(&req, b"STORED\r\n");
    c.check(b"append big 0 0 3\r\nend\r\n", b"STORED\r\n");
    let mut want = format!("VALUE big 3 {}\r\n", big.len() + 3).into_bytes();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"end\r\nEND\r\n");
    c.check(b"get big\r\n", &want);
    c.quiet();
}

#[test]
fn noreply_and_pipelining() {
    let s = server(&[]);
    let mut c = Mc::connect(s.memcached_port());
    // noreply writes are silent but committed before later replies on the connection.
    c.check(
        b"set a 0 0 1 noreply\r\n1\r\nadd b 0 0 1 noreply\r\n2\r\nincr a 5 noreply\r\n\
          touch a 100 noreply\r\ndelete b noreply\r\nappend a 0 0 1 noreply\r\n!\r\n\
          flush_all 0 noreply\r\nverbosity 1 noreply\r\nget a b\r\n",
        b"END\r\n",
    );
    c.check(
        b"set a 0 0 1 noreply\r\n1\r\nincr a 5 noreply\r\nget a\r\n",
        b"VALUE a 0 1\r\n6\r\nEND\r\n",
    );
    // Errors under noreply are silent too (memcached's out_string).
    c.check(
        b"incr a x noreply\r\ntouch a x noreply\r\nset a 0 0 x noreply\r\nmn\r\n",
        b"MN\r\n",
    );
    // Quiet meta commands fenced by mn: only misses' absence and failures show.
    c.check(
        b"ms k1 1 q\r\nA\r\nms k2 1 q\r\nB\r\nmg k1 v q\r\nmg nope v q\r\nmg k2 v q k\r\n\
          md nope q\r\nmd k1 q\r\nma nope q\r\nmn\r\n",
        b"VA 1\r\nA\r\nVA 1 kk2\r\nB\r\nNF\r\nNF\r\nMN\r\n",
    );
    // A long pipeline in one write: replies in order.
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..500 {
        req.extend_from_slice(
            format!("set p{i} {i} 0 {}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
        );
        req.extend_from_slice(format!("get p{i}\r\n").as_bytes());
        want.extend_from_slice(b"STORED\r\n");
        want.extend_from_slice(
            format!("VALUE p{i} {i} {}\r\n{i}\r\nEND\r\n", i.to_string().len()).as_bytes(),
        );
    }
    c.check(&req, &want);
    c.quiet();
}

#[test]
fn incr_decr_touch_delete() {
    let s = server(&[]);
    let mut c = Mc::connect(s.memcached_port());
    c.check(b"incr n 1\r\n", b"NOT_FOUND\r\n");
    c.check(b"set n 0 0 3\r\n100\r\n", b"STORED\r\n");
    c.check(b"decr n 1\r\n", b"99\r\n");
    // memcached writes a shorter result in place, padded with spaces.
    c.check(b"get n\r\n", b"VALUE n 0 3\r\n99 \r\nEND\r\n");
    c.check(b"decr n 1000\r\n", b"0\r\n");
    c.check(
        b"incr n 18446744073709551615\r\n",
        b"18446744073709551615\r\n",
    );
    c.check(b"incr n 2\r\n", b"1\r\n");
    c.check(
        b"get n\r\n",
        b"VALUE n 0 20\r\n1                   \r\nEND\r\n",
    );
    c.check(
        b"incr n -1\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    );
    c.check(b"set s 0 0 2\r\nab\r\n", b"STORED\r\n");
    c.check(
        b"incr s 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    c.check(b"set s 0 0 5\r\n 7 zz\r\n", b"STORED\r\n");
    c.check(b"incr s 1\r\n", b"8\r\n");
    c.check(b"touch s 100\r\n", b"TOUCHED\r\n");
    c.check(b"mg s t\r\n", b"HD t100\r\n");
    c.check(b"touch nope 1\r\n", b"NOT_FOUND\r\n");
    c.check(
        b"touch s x\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    );
    c.check(b"gat 0 s nope\r\n", b"VALUE s 0 5\r\n8    \r\nEND\r\n");
    c.check(b"mg s t\r\n", b"HD t-1\r\n");
    c.check(b"delete s\r\n", b"DELETED\r\n");
    c.check(b"delete s\r\n", b"NOT_FOUND\r\n");
    c.check(b"delete n 0\r\n", b"DELETED\r\n");
    c.check(
        b"delete n 1\r\n",
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
    );
    c.quiet();
}

#[test]
fn exptime_rules_and_expiry() {
    let s = server(&[]);
    let mut c = Mc::connect(s.memcached_port());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // Negative: expired at once. Absolute in the past: expired. 30 days: relative.
    c.check(b"set a 0 -1 1\r\nx\r\nget a\r\n", b"STORED\r\nEND\r\n");
    c.check(b"set a 0 2592001 1\r\nx\r\nget a\r\n", b"STORED\r\nEND\r\n");
    c.check(b"set a 0 2592000 1\r\nx\r\n", b"STORED\r\n");
    let t: i64 = c.line(b"mg a t\r\n")[4..].parse().expect("ttl");
    assert!(
        (2_591_999..=2_592_000).contains(&t),
        "30 days is relative: ttl {t}"
    );
    let abs = now + 1000;
    c.check(
        format!("set a 0 {abs} 1\r\nx\r\n").as_bytes(),
        b"STORED\r\n",
    );
    let t: i64 = c.line(b"mg a t\r\n")[4..].parse().expect("ttl");
    assert!((998..=1000).contains(&t), "absolute exptime: ttl {t}");
    // A 1 s item is gone within 2 s, and the sweeper removes it from the file.
    c.check(b"set short 0 1 1\r\nx\r\n", b"STORED\r\n");
    std::thread::sleep(Duration::from_millis(2100));
    c.check(b"get short\r\n", b"END\r\n");
    let items = |c: &mut Mc| -> u64 {
        c.s.write_all(b"stats\r\n").expect("send");
        let mut text = String::new();
        while !text.ends_with("END\r\n") {
            let mut b = [0u8; 4096];
            let n = c.s.read(&mut b).expect("stats");
            text.push_str(&String::from_utf8_lossy(&b[..n]));
        }
        text.lines()
            .find_map(|l| l.strip_prefix("STAT curr_items "))
            .and_then(|v| v.parse().ok())
            .expect("curr_items")
    };
    // "a" (long TTL) is left; "short" was swept.
    assert_eq!(items(&mut c), 1);
    // Delayed flush_all: items stored before it vanish when it comes, later ones stay.
    c.check(
        b"set b 0 0 1\r\nx\r\nflush_all 2\r\nget b\r\n",
        b"STORED\r\nOK\r\nVALUE b 0 1\r\nx\r\nEND\r\n",
    );
    std::thread::sleep(Duration::from_millis(2100));
    c.check(b"get a b\r\n", b"END\r\n");
    c.check(
        b"set c 0 0 1\r\ny\r\nget c\r\n",
        b"STORED\r\nVALUE c 0 1\r\ny\r\nEND\r\n",
    );
    c.check(b"flush_all\r\nget c\r\n", b"OK\r\nEND\r\n");
    c.check(
        b"flush_all x\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    );
    c.quiet();
}

#[test]
fn meta_commands() {
    let s = server(&[]);
    let mut c = Mc::connect(s.memcached_port());
    c.check(b"mg a v\r\n", b"EN\r\n");
    c.check(b"mg a v k Oxy\r\n", b"EN ka Oxy\r\n");
    c.check(b"ms a 2 T100 F7 k O123\r\nhi\r\n", b"HD ka O123\r\n");
    c.check(b"mg a v t f s k u\r\n", b"VA 2 t100 f7 s2 ka\r\nhi\r\n");
    // h: hit before (as of before this request), l: seconds since the last access.
    c.check(b"mg a h\r\n", b"HD h0\r\n");
    let l = c.line(b"mg a h l\r\n");
    assert!(l == "HD h1 l0" || l == "HD h1 l1", "{l}");
    let cas: u64 = c.line(b"mg a c\r\n")[4..].parse().expect("cas");
    // C compares the CAS; c returns the new one.
    c.check(
        format!("ms a 1 C{}\r\nx\r\n", cas + 1).as_bytes(),
        b"EX\r\n",
    );
    let l = c.line(format!("ms a 1 C{cas} c\r\nx\r\n").as_bytes());
    let new: u64 = l
        .strip_prefix("HD c")
        .expect("HD c<cas>")
        .parse()
        .expect("cas");
    assert!(new > cas);
    c.check(b"ms nope 1 C5\r\nx\r\n", b"NF\r\n");
    // Modes: E add, A append, P prepend, R replace, S set.
    c.check(b"ms a 1 ME\r\ny\r\n", b"NS\r\n");
    c.check(b"ms a 1 MA\r\ny\r\nms a 1 MP\r\nw\r\n", b"HD\r\nHD\r\n");
    c.check(b"ms r 1 MR\r\ny\r\n", b"NS\r\n");
    c.check(
        b"ms a 1 MS F9\r\nz\r\nmg a v f\r\n",
        b"HD\r\nVA 1 f9\r\nz\r\n",
    );
    c.check(
        b"ms a 1 MX\r\nz\r\n",
        b"CLIENT_ERROR invalid mode for ms M token\r\n",
    );
    // Base64 keys.
    c.check(b"ms Zm9v 3 b k\r\nbar\r\n", b"HD kZm9v b\r\n");
    c.check(b"mg foo v\r\n", b"VA 3\r\nbar\r\n");
    c.check(b"mg Zm9v b v k\r\n", b"VA 3 kZm9v b\r\nbar\r\n");
    c.check(b"mg Zm9 b v\r\n", b"CLIENT_ERROR error decoding key\r\n");
    // N: vivify on miss and win; later fetches see Z.
    c.check(b"mg viv N30 v t\r\n", b"VA 0 t30 W\r\n\r\n");
    c.check(b"mg viv v\r\n", b"VA 0 Z\r\n\r\n");
    // md I: stale with a new CAS; the next fetch wins the recache (X W), the one after sees Z.
    c.check(b"ms st 2\r\nok\r\n", b"HD\r\n");
    c.check(b"md st I T30\r\n", b"HD\r\n");
    c.check(b"mg st v t\r\n", b"VA 2 t30 X W\r\nok\r\n");
    c.check(b"mg st v\r\n", b"VA 2 Z X\r\nok\r\n");
    // R: win when the TTL left is below the token.
    c.check(
        b"ms r 1 T10\r\n1\r\nmg r R30 v\r\nmg r R30 v\r\n",
        b"HD\r\nVA 1 W\r\n1\r\nVA 1 Z\r\n1\r\n",
    );
    // md: CAS compare, quiet.
    c.check(b"md a C1\r\n", b"EX\r\n");
    c.check(b"md a q\r\nmd a\r\n", b"NF\r\n");
    // ma: create with N/J, delta D, decrement mode, v and t.
    c.check(b"ma cnt\r\n", b"NF\r\n");
    c.check(b"ma cnt N0 J10 v\r\n", b"VA 2\r\n10\r\n");
    c.check(b"ma cnt D5 v t\r\n", b"VA 2 t-1\r\n15\r\n");
    c.check(b"ma cnt MD D100 v\r\n", b"VA 1\r\n0\r\n");
    c.check(
        b"ma cnt M- q\r\nma cnt M+ D7 T100 v t\r\n",
        b"VA 1 t100\r\n7\r\n",
    );
    c.check(
        b"ma cnt MX\r\n",
        b"CLIENT_ERROR invalid mode for ma M token\r\n",
    );
    c.check(
        b"ms t 1\r\nx\r\nma t\r\n",
        b"HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    // me: the debug line.
    let me = c.line(b"me st\r\n");
    assert!(
        me.starts_with("ME st exp=") && me.contains(" fetch=yes cls=1 size="),
        "{me}"
    );
    c.check(b"me nope\r\n", b"EN\r\n");
    // Errors.
    c.check(b"mg a v v\r\n", b"CLIENT_ERROR duplicate flag\r\n");
    c.check(b"mg a !\r\n", b"CLIENT_ERROR invalid flag\r\n");
    c.check(b"md a !\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n");
    c.check(
        b"ms a 2 T\r\nab\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    );
    c.check(b"ms a\r\n", b"CLIENT_ERROR bad command line format\r\n");
    c.check(b"mg\r\n", b"ERROR\r\n");
    c.check(
        b"mg a Oaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        b"CLIENT_ERROR opaque token too long\r\n",
    );
    c.check(
        b"mg a 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19\r\n",
        b"CLIENT_ERROR options flags are too long\r\n",
    );
    c.quiet();
}

#[test]
fn malformed_input_keeps_the_connection_in_sync() {
    let s = server(&["-I", "2k"]);
    let mut c = Mc::connect(s.memcached_port());
    let long = "k".repeat(251);
    c.check(
        format!("get {long}\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.check(
        format!("set {long} 0 0 1\r\nx\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    let ok = "k".repeat(250);
    c.check(format!("set {ok} 0 0 1\r\nx\r\n").as_bytes(), b"STORED\r\n");
    // A data block of the wrong length.
    c.check(
        b"set a 0 0 1\r\nab\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    c.check(
        b"set a 0 0 3\r\nab\r\n\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    // Too large for -I: refused after the block is read; the old value of a set is dropped.
    c.check(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    let mut req = b"set a 0 0 5000\r\n".to_vec();
    req.extend_from_slice(&[b'z'; 5000]);
    req.extend_from_slice(b"\r\nget a\r\n");
    c.check(&req, b"SERVER_ERROR object too large for cache\r\nEND\r\n");
    // The exact boundary of memcached's accounting: 48 + key + 1 + data + 2 + 8 <= 2048.
    let fits = 2048 - 48 - 1 - 1 - 2 - 8;
    let mut req = format!("set a 0 0 {fits}\r\n").into_bytes();
    req.extend(std::iter::repeat_n(b'q', fits));
    req.extend_from_slice(b"\r\n");
    c.check(&req, b"STORED\r\n");
    let mut req = format!("set a 0 0 {}\r\n", fits + 1).into_bytes();
    req.extend(std::iter::repeat_n(b'q', fits + 1));
    req.extend_from_slice(b"\r\n");
    c.check(&req, b"SERVER_ERROR object too large for cache\r\n");
    // Append past the limit: NOT_STORED.
    c.check(b"set b 0 0 1\r\nx\r\n", b"STORED\r\n");
    let mut req = format!("append b 0 0 {fits}\r\n").into_bytes();
    req.extend(std::iter::repeat_n(b'q', fits));
    req.extend_from_slice(b"\r\n");
    c.check(&req, b"NOT_STORED\r\n");
    // Bad numbers, wrong token counts, unknown commands, keys with spaces.
    c.check(
        b"set a x 0 1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.check(
        b"set a 0 0 -1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.check(b"set a 0 0\r\n", b"ERROR\r\n");
    c.check(
        b"set a b 0 0 1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.check(b"get\r\n", b"ERROR\r\n");
    c.check(b"bogus\r\n", b"ERROR\r\n");
    c.check(b"x\r\n", b"ERROR\r\n");
    c.check(b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n");
    c.check(b"stats nope\r\n", b"ERROR\r\n");
    c.check(b"stats reset\r\n", b"RESET\r\n");
    c.check(b"stats items\r\n", b"END\r\n");
    c.check(b"verbosity\r\n", b"ERROR\r\n");
    c.check(
        b"verbosity x\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    c.check(b"gat x a\r\n", b"CLIENT_ERROR invalid exptime argument\r\n");
    c.check(b"gat 10\r\n", b"END\r\n");
    // The refused set above dropped "a" (memcached does not leave the old value behind).
    c.check(b"  get   a  \r\n", b"END\r\n");
    // A bare "\n" ends a line too.
    c.check(b"mn\n", b"MN\r\n");
    let v = c.line(b"version\r\n");
    assert!(v.starts_with("VERSION 1.6.18"), "{v}");
    c.quiet();
    // A line of more than 2048 bytes without a newline closes the connection...
    let mut d = Mc::connect(s.memcached_port());
    d.s.write_all(&[b'x'; 3000]).expect("send");
    d.closed();
    // ...but a long multi-get is fine.
    let mut e = Mc::connect(s.memcached_port());
    let keys: Vec<String> = (0..600).map(|i| format!("key{i}")).collect();
    e.check(format!("get {}\r\n", keys.join(" ")).as_bytes(), b"END\r\n");
    // quit closes after the replies before it.
    e.check(b"mn\r\nquit\r\n", b"MN\r\n");
    e.closed();
    // The binary protocol is refused with a line, then the connection is closed.
    let mut f = Mc::connect(s.memcached_port());
    f.s.write_all(&[0x80, 0, 0, 0]).expect("send");
    let l = f.line(b"");
    assert!(
        l.starts_with("SERVER_ERROR the binary protocol is not supported"),
        "{l}"
    );
    f.closed();
}

#[test]
fn items_persist_and_stay_apart_from_redis_keys() {
    let mut s = server(&[]);
    let mut c = Mc::connect(s.memcached_port());
    c.check(b"set shared 1 0 9\r\nmemcached\r\n", b"STORED\r\n");
    let cas = cas_of(&mut c, "shared");
    let mut r = s.conn();
    assert_eq!(
        r.cmd(&["SET", "shared", "redis"]),
        common::Frame::Simple("OK".into())
    );
    assert_eq!(
        r.cmd(&["GET", "shared"]),
        common::Frame::bulk("redis"),
        "Redis keys are not Memcached items"
    );
    assert_eq!(r.cmd(&["DBSIZE"]), common::Frame::Integer(1));
    c.check(
        b"get shared\r\n",
        b"VALUE shared 1 9\r\nmemcached\r\nEND\r\n",
    );
    // FLUSHALL empties the Redis side only; flush_all the Memcached side only.
    r.cmd(&["FLUSHALL"]);
    c.check(
        b"get shared\r\n",
        b"VALUE shared 1 9\r\nmemcached\r\nEND\r\n",
    );
    r.cmd(&["SET", "shared", "redis"]);
    c.check(b"flush_all\r\nget shared\r\n", b"OK\r\nEND\r\n");
    assert_eq!(r.cmd(&["GET", "shared"]), common::Frame::bulk("redis"));
    c.check(b"set shared 1 0 9\r\nmemcached\r\n", b"STORED\r\n");
    let cas2 = cas_of(&mut c, "shared");
    assert!(cas2 > cas);
    drop(c);
    drop(r);
    // After a crash (SIGKILL) the items, their flags and CAS values are all back, and new
    // CAS values keep growing.
    s.restart();
    let mut c = Mc::connect(s.memcached_port());
    c.check(
        b"get shared\r\n",
        b"VALUE shared 1 9\r\nmemcached\r\nEND\r\n",
    );
    assert_eq!(cas_of(&mut c, "shared"), cas2);
    c.check(
        format!("cas shared 0 0 1 {cas2}\r\nx\r\n").as_bytes(),
        b"STORED\r\n",
    );
    assert!(cas_of(&mut c, "shared") > cas2);
    c.quiet();
}

#[test]
fn password_protects_the_memcached_port() {
    let s = server(&[]);
    assert_eq!(
        s.conn().cmd(&["CONFIG", "SET", "requirepass", "s3cret"]),
        common::Frame::Simple("OK".into())
    );
    let mut c = Mc::connect(s.memcached_port());
    c.check(b"get a\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    c.check(
        b"set a 0 0 12\r\ndefault nope\r\n",
        b"CLIENT_ERROR authentication failure\r\n",
    );
    c.check(b"set a 0 0 14\r\ndefault s3cret\r\n", b"STORED\r\n");
    c.check(
        b"set a 0 0 1\r\nx\r\nget a\r\n",
        b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
    );
    c.quiet();
}

#[test]
fn a_full_file_refuses_stores_like_memcached_out_of_memory() {
    let s = server(&["--max-file-size", "4mb"]);
    let mut c = Mc::connect(s.memcached_port());
    c.check(b"set first 0 0 4\r\nkept\r\n", b"STORED\r\n");
    let value = vec![b'v'; 200 * 1024];
    let mut stored = 0;
    let mut refused = None;
    for i in 0..200 {
        let mut req = format!("set big:{i} 0 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        match c.line(&req).as_str() {
            "STORED" => stored += 1,
            other => {
                refused = Some(other.to_string());
                break;
            }
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("SERVER_ERROR out of memory storing object"),
        "a 4 MB file cannot take 40 MB"
    );
    assert!(stored > 0);
    // Nothing of the refused set was applied; the connection goes on; deletes make room.
    c.check(
        format!("get big:{stored} first\r\n").as_bytes(),
        b"VALUE first 0 4\r\nkept\r\nEND\r\n",
    );
    for i in 0..stored {
        c.check(format!("delete big:{i}\r\n").as_bytes(), b"DELETED\r\n");
    }
    c.check(b"set after 0 0 4\r\nfits\r\n", b"STORED\r\n");
    c.quiet();
}

#[test]
fn lru_crawler_metadump_lists_live_items_page_by_page() {
    let s = server(&[]);
    let mut c = Mc::connect(s.memcached_port());
    // More items than one page (1000), one expired, one with a key that needs URI encoding.
    let mut req = Vec::new();
    for i in 0..2500 {
        req.extend_from_slice(format!("set item{i} 0 0 1 noreply\r\nx\r\n").as_bytes());
    }
    req.extend_from_slice(
        b"set gone 0 -1 1 noreply\r\nx\r\nset a/b 7 100 2 noreply\r\nyy\r\nget item7\r\n",
    );
    c.check(&req, b"VALUE item7 0 1\r\nx\r\nEND\r\n");
    c.s.write_all(b"lru_crawler metadump all\r\n")
        .expect("send");
    // The item lines end in LF only, like memcached's, so the first CRLF is END's.
    let text = c.line(b"");
    let body = text.strip_suffix("END").expect("ends with END");
    let items: Vec<&str> = body.split('\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(items.len(), 2501, "2500 items + a/b, not the expired one");
    assert!(items
        .iter()
        .all(|l| l.starts_with("key=") && l.contains(" cls=1 size=")));
    let ab = items
        .iter()
        .find(|l| l.starts_with("key=a%2Fb "))
        .expect("a/b listed");
    assert!(ab.contains(" fetch=no "), "{ab}");
    let seven = items
        .iter()
        .find(|l| l.starts_with("key=item7 "))
        .expect("item7");
    assert!(
        seven.contains(" exp=-1 ") && seven.contains(" fetch=yes "),
        "{seven}"
    );
    c.quiet();
}
