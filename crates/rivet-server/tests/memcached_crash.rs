//! Crash safety of the Memcached protocol: acknowledged item writes survive SIGKILL, the
//! CAS counter is persisted, and the data file stays consistent.
//!
//! Six writer threads, each on its own Memcached connection, store distinct keys with known
//! values and flags (binary values with `\r\n` inside, some bigger than the 16 KiB inline
//! limit so they live in chunks) in three ways:
//!
//! - `set` and its `STORED` reply (sometimes followed by `gets`, recording the CAS);
//! - a batch of `set ... noreply` closed by a fence: `mn` (answered `MN`) or `mg <last> v f c`
//!   (answered `VA`). A noreply write is acknowledged when the fence after it is answered;
//! - meta `ms <key> <len> F<flags> c`, answered `HD c<cas>`.
//!
//! The server is killed with SIGKILL at a moment drawn from a seeded generator; the file is
//! checked (`rivet check`), the server restarted on it, and then:
//!
//! - every acknowledged key reads back its exact value and flags through `get` (and a sample
//!   through `mg`); an unacknowledged one is that value or absent, and stays so later;
//! - `stats` `curr_items` equals the number of keys the model says exist;
//! - CAS: the probe item written and `gets`-read before the kill has the same CAS after the
//!   restart, `cas` with that value is accepted (`STORED`) and then refused (`EXISTS`), and
//!   every CAS handed out after the restart is larger than any CAS seen before the kill.
//!
//! Knobs: `MC_CRASH_KILLS` (default 3; long mode `MC_CRASH_KILLS=50`) and `MC_CRASH_SEED`
//! (printed on every run; set it to replay the kill timing and the operation mix). Run with
//! `cargo test -p rivet-server --test memcached_crash -- --nocapture` to see the figures.
//! `rivet check` is the CLI when built (`cargo build -p rivet-cli`, or `$RIVET_CLI`), else
//! the engine's own check.

mod common;
mod proc_util;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{env_u64, escape, RivetServer, Rng};

const THREADS: usize = 6;

/// A blocking Memcached text/meta connection (read timeout 10 s).
struct Mc {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Mc {
    fn connect(port: u16) -> io::Result<Mc> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Mc {
            w: s.try_clone()?,
            r: BufReader::with_capacity(64 * 1024, s),
        })
    }

    fn send(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)
    }

    /// One reply line without its CRLF.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut l = Vec::new();
        if self.r.read_until(b'\n', &mut l)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        if !l.ends_with(b"\r\n") {
            return Err(bad(format!("reply line without CRLF: {}", escape(&l))));
        }
        l.truncate(l.len() - 2);
        Ok(l)
    }

    /// `n` data bytes and their CRLF.
    fn data(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; n + 2];
        self.r.read_exact(&mut b)?;
        if &b[n..] != b"\r\n" {
            return Err(bad(format!("data block of {n} bytes without CRLF")));
        }
        b.truncate(n);
        Ok(b)
    }

    /// `get k1 k2 ...` (or `gets`): key -> (flags, value, cas if `gets`).
    fn get_many(&mut self, cmd: &str, keys: &[&str]) -> io::Result<HashMap<String, Item>> {
        let mut req = cmd.as_bytes().to_vec();
        for k in keys {
            req.push(b' ');
            req.extend_from_slice(k.as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        self.send(&req)?;
        let mut out = HashMap::new();
        loop {
            let l = self.line()?;
            if l == b"END" {
                return Ok(out);
            }
            let text = String::from_utf8_lossy(&l).into_owned();
            let w: Vec<&str> = text.split(' ').collect();
            let ok = w.first() == Some(&"VALUE") && (w.len() == 4 || w.len() == 5);
            if !ok {
                return Err(bad(format!("{cmd}: unexpected line {}", escape(&l))));
            }
            let num = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| bad(format!("bad number in {text}")))
            };
            let flags = num(w[2])? as u32;
            let len = num(w[3])? as usize;
            let cas = if w.len() == 5 { Some(num(w[4])?) } else { None };
            let value = self.data(len)?;
            out.insert(w[1].to_string(), Item { flags, value, cas });
        }
    }

    fn gets(&mut self, key: &str) -> io::Result<Option<Item>> {
        Ok(self.get_many("gets", &[key])?.remove(key))
    }

    /// `mg key v f c`: the item or None (`EN`).
    fn mg(&mut self, key: &str) -> io::Result<Option<Item>> {
        self.send(format!("mg {key} v f c\r\n").as_bytes())?;
        self.read_va()
    }

    /// Reads the answer to `mg ... v f c`.
    fn read_va(&mut self) -> io::Result<Option<Item>> {
        let l = self.line()?;
        if l == b"EN" {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&l).into_owned();
        let mut w = text.split(' ');
        if w.next() != Some("VA") {
            return Err(bad(format!("mg: unexpected line {}", escape(&l))));
        }
        let len: usize = w
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad(format!("mg: bad length in {text}")))?;
        let (mut flags, mut cas) = (None, None);
        for f in w {
            if let Some(v) = f.strip_prefix('f') {
                flags = v.parse().ok();
            } else if let Some(v) = f.strip_prefix('c') {
                cas = v.parse().ok();
            }
        }
        let flags = flags.ok_or_else(|| bad(format!("mg: no f flag in {text}")))?;
        let value = self.data(len)?;
        Ok(Some(Item { flags, value, cas }))
    }

    /// A command with a one-line reply.
    fn simple(&mut self, req: &[u8]) -> io::Result<String> {
        self.send(req)?;
        Ok(String::from_utf8_lossy(&self.line()?).into_owned())
    }

    /// `stats` as a name -> value map.
    fn stats(&mut self) -> io::Result<HashMap<String, String>> {
        self.send(b"stats\r\n")?;
        let mut out = HashMap::new();
        loop {
            let l = String::from_utf8_lossy(&self.line()?).into_owned();
            if l == "END" {
                return Ok(out);
            }
            let mut w = l.splitn(3, ' ');
            if let (Some("STAT"), Some(n), Some(v)) = (w.next(), w.next(), w.next()) {
                out.insert(n.to_string(), v.to_string());
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Item {
    flags: u32,
    value: Vec<u8>,
    cas: Option<u64>,
}

fn store_cmd(cmd: &str, key: &str, flags: u32, value: &[u8], noreply: bool) -> Vec<u8> {
    let nr = if noreply { " noreply" } else { "" };
    let mut b = format!("{cmd} {key} {flags} 0 {}{nr}\r\n", value.len()).into_bytes();
    b.extend_from_slice(value);
    b.extend_from_slice(b"\r\n");
    b
}

/// What the model knows about one key (with the flags it was stored with).
#[derive(Clone, Debug)]
enum Expect {
    /// Acknowledged (or seen after a restart): must be there with this value.
    Present(u32, Vec<u8>),
    /// Sent but not acknowledged before the crash: this value or nothing.
    Maybe(u32, Vec<u8>),
    /// Not acknowledged and found absent after a restart: must stay absent.
    Absent,
}

#[derive(Default)]
struct Model {
    thread: usize,
    seq: u64,
    keys: BTreeMap<String, Expect>,
    /// Largest CAS this thread saw (from `gets`, `mg c`, `ms c`).
    max_cas: u64,
    acked_round: u64,
    /// Acknowledged writes by kind: set, noreply+fence, ms.
    by_kind: [u64; 3],
}

enum Stop {
    Io,
    Bad(String),
}

fn io<T>(r: io::Result<T>) -> Result<T, Stop> {
    r.map_err(|_| Stop::Io)
}

fn want(got: String, want: &str, what: &str) -> Result<(), Stop> {
    if got == want {
        Ok(())
    } else {
        Err(Stop::Bad(format!("{what}: expected {want:?}, got {got:?}")))
    }
}

/// A value of the key's own bytes plus binary filler (CR, LF, NUL, high bytes included);
/// mostly small, sometimes bigger than the 16 KiB inline limit.
fn value(rng: &mut Rng, key: &str) -> Vec<u8> {
    let mut v = format!("{key}|").into_bytes();
    let extra = match rng.below(20) {
        0 => 16 * 1024 + rng.below(100 * 1024),
        1 => 0,
        _ => rng.below(300),
    };
    for i in 0..extra {
        v.push(match rng.below(16) {
            0 => b'\r',
            1 => b'\n',
            _ => (rng.next() as u8).wrapping_add(i as u8),
        });
    }
    if rng.below(10) == 0 {
        v.extend_from_slice(b"\r\nEND\r\n");
    }
    v
}

fn writer(mut m: Model, port: u16, mut rng: Rng, go: Arc<Barrier>) -> (Model, Option<String>) {
    let c = Mc::connect(port);
    go.wait();
    let Ok(mut c) = c else {
        let why = format!("thread {}: cannot connect", m.thread);
        return (m, Some(why));
    };
    let bad = loop {
        let t = m.thread;
        let r = match rng.below(100) {
            0..=54 => {
                m.seq += 1;
                let key = format!("t{t}:{}", m.seq);
                let (flags, v) = (rng.next() as u32, value(&mut rng, &key));
                m.keys.insert(key.clone(), Expect::Maybe(flags, v.clone()));
                let with_gets = rng.below(5) == 0;
                (|| {
                    let reply = io(c.simple(&store_cmd("set", &key, flags, &v, false)))?;
                    want(reply, "STORED", "set")?;
                    m.keys
                        .insert(key.clone(), Expect::Present(flags, v.clone()));
                    m.by_kind[0] += 1;
                    if with_gets {
                        let got = io(c.gets(&key))?;
                        match got {
                            Some(Item {
                                flags: f,
                                value: g,
                                cas: Some(cas),
                            }) if f == flags && g == v => m.max_cas = m.max_cas.max(cas),
                            other => {
                                return Err(Stop::Bad(format!(
                                    "gets {key} right after its set: {other:?}"
                                )))
                            }
                        }
                    }
                    Ok(1)
                })()
            }
            55..=79 => {
                let n = 1 + rng.below(6) as usize;
                let mut batch = Vec::new();
                let mut sent = Vec::new();
                for _ in 0..n {
                    m.seq += 1;
                    let key = format!("t{t}:{}", m.seq);
                    let (flags, v) = (rng.next() as u32, value(&mut rng, &key));
                    batch.extend(store_cmd("set", &key, flags, &v, true));
                    m.keys.insert(key.clone(), Expect::Maybe(flags, v.clone()));
                    sent.push((key, flags, v));
                }
                let use_mn = rng.below(2) == 0;
                (|| {
                    let (last, lflags, lv) = sent.last().expect("a batch has a key").clone();
                    if use_mn {
                        batch.extend_from_slice(b"mn\r\n");
                        io(c.send(&batch))?;
                        want(
                            io(c.line().map(|l| String::from_utf8_lossy(&l).into()))?,
                            "MN",
                            "mn",
                        )?;
                    } else {
                        batch.extend_from_slice(format!("mg {last} v f c\r\n").as_bytes());
                        io(c.send(&batch))?;
                        match io(c.read_va())? {
                            Some(Item {
                                flags,
                                value,
                                cas: Some(cas),
                            }) if flags == lflags && value == lv => m.max_cas = m.max_cas.max(cas),
                            other => {
                                return Err(Stop::Bad(format!(
                                    "mg {last} after its noreply set: {other:?}"
                                )))
                            }
                        }
                    }
                    for (key, flags, v) in sent.drain(..) {
                        m.keys.insert(key, Expect::Present(flags, v));
                    }
                    m.by_kind[1] += n as u64;
                    Ok(n as u64)
                })()
            }
            _ => {
                m.seq += 1;
                let key = format!("t{t}:{}", m.seq);
                let (flags, v) = (rng.next() as u32, value(&mut rng, &key));
                m.keys.insert(key.clone(), Expect::Maybe(flags, v.clone()));
                (|| {
                    let mut req = format!("ms {key} {} F{flags} c\r\n", v.len()).into_bytes();
                    req.extend_from_slice(&v);
                    req.extend_from_slice(b"\r\n");
                    let reply = io(c.simple(&req))?;
                    let cas = reply
                        .strip_prefix("HD c")
                        .and_then(|n| n.parse::<u64>().ok())
                        .ok_or_else(|| Stop::Bad(format!("ms {key}: answered {reply:?}")))?;
                    m.max_cas = m.max_cas.max(cas);
                    m.keys
                        .insert(key.clone(), Expect::Present(flags, v.clone()));
                    m.by_kind[2] += 1;
                    Ok(1)
                })()
            }
        };
        match r {
            Ok(n) => m.acked_round += n,
            Err(Stop::Io) => break None,
            Err(Stop::Bad(why)) => break Some(format!("thread {t}, op {}: {why}", m.seq)),
        }
    };
    (m, bad)
}

fn describe(e: &Expect) -> String {
    match e {
        Expect::Present(f, v) => format!("acked flags {f} {}", escape(v)),
        Expect::Maybe(f, v) => format!("unacked flags {f} {} or absent", escape(v)),
        Expect::Absent => "absent (seen absent after an earlier crash)".into(),
    }
}

/// Checks every key of every model against the restarted server; resolves unacknowledged
/// ones. Returns (keys checked, present keys, in-flight applied, in-flight absent).
fn verify(c: &mut Mc, models: &mut [Model], rng: &mut Rng) -> (usize, usize, u64, u64) {
    let mut failures = Vec::new();
    let (mut checked, mut present, mut applied, mut dropped) = (0usize, 0usize, 0u64, 0u64);
    for m in models.iter_mut() {
        let names: Vec<String> = m.keys.keys().cloned().collect();
        for chunk in names.chunks(50) {
            let refs: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
            let got = c
                .get_many("get", &refs)
                .unwrap_or_else(|e| panic!("get of {} keys: {e}", refs.len()));
            for name in chunk {
                checked += 1;
                let got = got.get(name).map(|i| (i.flags, i.value.clone()));
                // A sample is read a second time through the meta protocol.
                if rng.below(10) == 0 {
                    let meta = c
                        .mg(name)
                        .unwrap_or_else(|e| panic!("mg {name}: {e}"))
                        .map(|i| (i.flags, i.value));
                    if meta != got {
                        failures.push(format!(
                            "{name}: get and mg disagree: {:?} vs {:?}",
                            got.as_ref().map(|(f, v)| (f, escape(v))),
                            meta.as_ref().map(|(f, v)| (f, escape(v)))
                        ));
                    }
                }
                let exp = m.keys.get_mut(name).expect("key of the model");
                let resolved = match (&*exp, got) {
                    (Expect::Present(f, v), Some((gf, g))) if *f == gf && *v == g => {
                        Expect::Present(gf, g)
                    }
                    (Expect::Maybe(f, v), Some((gf, g))) if *f == gf && *v == g => {
                        applied += 1;
                        Expect::Present(gf, g)
                    }
                    (Expect::Maybe(..), None) => {
                        dropped += 1;
                        Expect::Absent
                    }
                    (Expect::Absent, None) => Expect::Absent,
                    (e, g) => {
                        failures.push(format!(
                            "{name}: expected {}, got {}",
                            describe(e),
                            g.map_or("(absent)".into(), |(f, g)| format!(
                                "flags {f} {}",
                                escape(&g)
                            ))
                        ));
                        continue;
                    }
                };
                if matches!(resolved, Expect::Present(..)) {
                    present += 1;
                }
                *exp = resolved;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} lost, wrong or half-applied items (first 20):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    (checked, present, applied, dropped)
}

/// The CAS of `key` via `gets`, which must hold `value`.
fn gets_cas(c: &mut Mc, key: &str, value: &[u8]) -> u64 {
    match c.gets(key).unwrap_or_else(|e| panic!("gets {key}: {e}")) {
        Some(Item {
            value: v,
            cas: Some(cas),
            ..
        }) if v == value => cas,
        other => panic!("gets {key}: expected {}, got {other:?}", escape(value)),
    }
}

#[test]
fn acknowledged_items_and_cas_survive_sigkill() {
    let kills = env_u64("MC_CRASH_KILLS").unwrap_or(3) as usize;
    let seed = env_u64("MC_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("mc-crash: MC_CRASH_SEED={seed} MC_CRASH_KILLS={kills} ({THREADS} writer threads)");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut server = RivetServer::start(&["--memcached-port", "0"]);
    let db = server.db_path();
    let mut models: Vec<Model> = (0..THREADS)
        .map(|thread| Model {
            thread,
            ..Model::default()
        })
        .collect();
    // Probe items written by the main thread (always acknowledged): counted in curr_items.
    let mut probes = 0usize;
    let mut acked_total = 0u64;
    let mut kinds = [0u64; 3];
    for round in 1..=kills {
        let port = server.memcached_port();
        // The CAS probe: stored and read (with its CAS) before the writers start.
        let mut c = Mc::connect(port).expect("connect to the memcached port");
        let probe = format!("casprobe:{round}");
        let probe_v = format!("probe-{round}").into_bytes();
        let reply = c
            .simple(&store_cmd("set", &probe, 7, &probe_v, false))
            .expect("set the probe");
        assert_eq!(reply, "STORED", "set {probe}");
        probes += 1;
        let probe_cas = gets_cas(&mut c, &probe, &probe_v);
        drop(c);

        let go = Arc::new(Barrier::new(THREADS + 1));
        let handles: Vec<_> = models
            .drain(..)
            .map(|m| {
                let r = Rng(rng.next());
                let go = go.clone();
                std::thread::spawn(move || writer(m, port, r, go))
            })
            .collect();
        go.wait();
        let delay = Duration::from_millis(100 + rng.below(1400));
        std::thread::sleep(delay);
        proc_util::kill9(proc_util::server_pid(&db));
        let mut bad = Vec::new();
        for h in handles {
            let (m, why) = h.join().expect("writer thread panicked");
            bad.extend(why);
            models.push(m);
        }
        models.sort_by_key(|m| m.thread);
        assert!(
            bad.is_empty(),
            "wrong replies before the kill:\n{}",
            bad.join("\n")
        );
        let max_cas_seen = models
            .iter()
            .map(|m| m.max_cas)
            .max()
            .unwrap_or(0)
            .max(probe_cas);
        // The file as the crash left it must be consistent before anything repairs it.
        proc_util::rivet_check(&db);
        server.restart();
        let mut c = Mc::connect(server.memcached_port()).expect("connect after restart");

        let (checked, present, applied, dropped) = verify(&mut c, &mut models, &mut rng);
        let acked: u64 = models.iter().map(|m| m.acked_round).sum();
        for m in models.iter_mut() {
            for (k, n) in kinds.iter_mut().zip(m.by_kind) {
                *k += n;
            }
            m.by_kind = [0; 3];
            m.acked_round = 0;
        }
        acked_total += acked;

        // CAS: the probe kept its CAS, and `cas` with it is accepted once.
        let after = gets_cas(&mut c, &probe, &probe_v);
        assert_eq!(
            after, probe_cas,
            "{probe}: CAS {probe_cas} before the kill, {after} after the restart"
        );
        let new_v = format!("probe-{round}-cas").into_bytes();
        let mut req = format!("cas {probe} 7 0 {} {probe_cas}\r\n", new_v.len()).into_bytes();
        req.extend_from_slice(&new_v);
        req.extend_from_slice(b"\r\n");
        let reply = c.simple(&req).expect("cas after restart");
        assert_eq!(
            reply, "STORED",
            "cas {probe} with the CAS {probe_cas} read before the kill"
        );
        let new_cas = gets_cas(&mut c, &probe, &new_v);
        assert!(
            new_cas > max_cas_seen,
            "{probe}: CAS after cas is {new_cas}, not above {max_cas_seen} seen before the kill"
        );
        let reply = c.simple(&req).expect("stale cas after restart");
        assert_eq!(
            reply, "EXISTS",
            "cas {probe} with the now stale {probe_cas}"
        );
        // A brand-new item, too.
        let fresh = format!("casfresh:{round}");
        let reply = c
            .simple(&store_cmd("set", &fresh, 0, b"fresh", false))
            .expect("set a fresh item");
        assert_eq!(reply, "STORED", "set {fresh}");
        probes += 1;
        let fresh_cas = gets_cas(&mut c, &fresh, b"fresh");
        assert!(
            fresh_cas > max_cas_seen,
            "{fresh}: new item's CAS {fresh_cas} is not above {max_cas_seen} seen before the kill"
        );

        // The item count agrees with the model.
        let stats = c.stats().expect("stats");
        let curr: usize = stats
            .get("curr_items")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no curr_items in stats: {stats:?}"));
        assert_eq!(
            curr,
            present + probes,
            "stats curr_items vs the model ({present} writer keys + {probes} probe keys)"
        );
        println!(
            "mc-crash: round {round}/{kills}: killed after {delay:?}; {acked} acked writes this \
             round; {checked} keys checked ({present} present); in-flight writes found \
             applied: {applied}, absent: {dropped}; CAS max before kill {max_cas_seen}, after \
             {fresh_cas}"
        );
    }
    assert!(
        acked_total > 0,
        "no write was acknowledged in {kills} rounds: nothing was tested"
    );
    let status = server.stop();
    assert!(
        status.success(),
        "rivet-server exited with {status} on SIGTERM"
    );
    let checker = proc_util::rivet_check(&db);
    println!(
        "mc-crash: {kills} kills, {acked_total} acknowledged writes verified (set {}, \
         noreply+fence {}, ms {}); file check after every kill and the final stop: {checker}; \
         {:.1?} total",
        kinds[0],
        kinds[1],
        kinds[2],
        started.elapsed()
    );
}
