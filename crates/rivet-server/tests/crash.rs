//! Crash safety: acknowledged writes survive SIGKILL, unacknowledged ones are never half
//! applied, and the data file stays consistent.
//!
//! Eight writer threads stream acknowledged writes (SET of unique keys, INCR of a per-thread
//! counter, APPEND to a per-thread log, MULTI/EXEC or a Lua script (EVAL) writing two keys at
//! once) while the server is killed with SIGKILL at a moment drawn from a seeded generator.
//! After each kill the data file is checked (`rivet check`), the server restarts on it, and every write is verified:
//!
//! - an acknowledged SET is present with its value; an unacknowledged one is present with its
//!   value or absent (and stays so in every later round);
//! - a counter lies between its last acknowledged value and the number of INCRs sent;
//! - an append log is the acknowledged appends, plus at most the one in flight;
//! - the two keys of a MULTI/EXEC or of a script are both present or both absent (both
//!   present if acked);
//! - DBSIZE equals the number of keys the model says exist.
//!
//! Knobs: `CRASH_KILLS` (default 3; thorough mode is `CRASH_KILLS=50`) and `CRASH_SEED`
//! (printed on every run; set it to replay the kill timing and the operation mix). Run with
//! `cargo test -p rivet-server --test crash -- --nocapture` to see the figures.

mod common;
mod proc_util;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{env_u64, Conn, Frame, RivetServer, Rng};

const THREADS: usize = 8;

/// The script that writes a pair: two SETs, then it counts them back.
const PAIR_SCRIPT: &str = "redis.call('SET', KEYS[1], ARGV[1]) \
     redis.call('SET', KEYS[2], ARGV[1]) \
     return redis.call('EXISTS', KEYS[1], KEYS[2])";

/// What the model knows about one key.
#[derive(Clone, Debug)]
enum Expect {
    /// Acknowledged (or seen after a restart): must be there with this value.
    Present(Vec<u8>),
    /// Sent but not acknowledged before the crash: this value or nothing.
    Maybe(Vec<u8>),
    /// Not acknowledged and found absent after a restart: must stay absent.
    Absent,
}

/// One pair of keys written together (MULTI/EXEC or a script).
#[derive(Clone, Debug)]
struct Pair {
    a: String,
    b: String,
    value: Vec<u8>,
    /// `Some(true)` both present, `Some(false)` both absent, `None` unknown (in flight).
    state: Option<bool>,
}

/// Everything one writer thread did, across all rounds.
#[derive(Default, Debug)]
struct Model {
    thread: usize,
    seq: u64,
    /// SET keys of the current round.
    keys: BTreeMap<String, Expect>,
    /// SET keys of earlier rounds (all resolved: Present or Absent).
    old_keys: BTreeMap<String, Expect>,
    counter_acked: i64,
    counter_sent: i64,
    log_acked: Vec<u8>,
    log_pending: Option<Vec<u8>>,
    /// MULTI/EXEC pairs of the current round.
    pairs: Vec<Pair>,
    /// Pairs of earlier rounds (all resolved).
    old_pairs: Vec<Pair>,
    /// Keys the resolved earlier rounds left present (SET keys and pair keys).
    old_present: usize,
    /// Acknowledged writes in the current round (a MULTI/EXEC counts once).
    acked_round: u64,
    acked_total: u64,
}

impl Model {
    fn counter_key(&self) -> String {
        format!("ctr:{}", self.thread)
    }

    fn log_key(&self) -> String {
        format!("log:{}", self.thread)
    }
}

/// Why a writer thread stopped: the connection died (expected after the kill) or the server
/// answered something wrong (a bug).
enum Stop {
    Io,
    Bad(String),
}

fn read(c: &mut Conn) -> Result<Frame, Stop> {
    c.try_read().map_err(|_| Stop::Io)
}

fn send(c: &mut Conn, cmds: &[Vec<Vec<u8>>]) -> Result<(), Stop> {
    let mut bytes = Vec::new();
    for args in cmds {
        bytes.extend_from_slice(&Conn::encode(args));
    }
    c.try_send_raw(&bytes).map_err(|_| Stop::Io)
}

fn expect(got: Frame, want: &Frame, what: &str) -> Result<(), Stop> {
    if &got == want {
        Ok(())
    } else {
        Err(Stop::Bad(format!("{what}: expected {want}, got {got}")))
    }
}

fn value(rng: &mut Rng, thread: usize, seq: u64) -> Vec<u8> {
    let mut v = format!("v:{thread}:{seq}:").into_bytes();
    // Mostly small values, sometimes multi-page ones (overflow pages in the engine).
    let extra = if rng.below(20) == 0 {
        4096 + rng.below(16 * 1024)
    } else {
        rng.below(200)
    };
    let fill = b'a' + (seq % 26) as u8;
    v.resize(v.len() + extra as usize, fill);
    v
}

fn args(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// One writer: acknowledged writes until the connection dies.
fn writer(mut m: Model, mut c: Conn, mut rng: Rng, go: Arc<Barrier>) -> (Model, Option<String>) {
    go.wait();
    let bad = loop {
        m.seq += 1;
        let seq = m.seq;
        let t = m.thread;
        let r = match rng.below(100) {
            0..=49 => {
                let key = format!("set:{t}:{seq}");
                let v = value(&mut rng, t, seq);
                m.keys.insert(key.clone(), Expect::Maybe(v.clone()));
                send(&mut c, &[args(&[b"SET", key.as_bytes(), &v])])
                    .and_then(|_| read(&mut c))
                    .and_then(|f| expect(f, &Frame::Simple("OK".into()), "SET"))
                    .map(|_| {
                        m.keys.insert(key, Expect::Present(v));
                    })
            }
            50..=64 => {
                m.counter_sent += 1;
                let key = m.counter_key();
                let want = m.counter_acked + 1;
                send(&mut c, &[args(&[b"INCR", key.as_bytes()])])
                    .and_then(|_| read(&mut c))
                    .and_then(|f| expect(f, &Frame::Integer(want), "INCR"))
                    .map(|_| m.counter_acked = want)
            }
            65..=79 => {
                let key = m.log_key();
                let chunk = format!("[{seq}]").into_bytes();
                m.log_pending = Some(chunk.clone());
                let want = (m.log_acked.len() + chunk.len()) as i64;
                send(&mut c, &[args(&[b"APPEND", key.as_bytes(), &chunk])])
                    .and_then(|_| read(&mut c))
                    .and_then(|f| expect(f, &Frame::Integer(want), "APPEND"))
                    .map(|_| {
                        m.log_acked.extend_from_slice(&chunk);
                        m.log_pending = None;
                    })
            }
            80..=89 => {
                let a = format!("pair:{t}:{seq}:a");
                let b = format!("pair:{t}:{seq}:b");
                let v = value(&mut rng, t, seq);
                m.pairs.push(Pair {
                    a: a.clone(),
                    b: b.clone(),
                    value: v.clone(),
                    state: None,
                });
                let cmds = [
                    args(&[b"MULTI"]),
                    args(&[b"SET", a.as_bytes(), &v]),
                    args(&[b"SET", b.as_bytes(), &v]),
                    args(&[b"EXEC"]),
                ];
                let ok = Frame::Simple("OK".into());
                let queued = Frame::Simple("QUEUED".into());
                let exec = Frame::Array(Some(vec![ok.clone(), ok.clone()]));
                send(&mut c, &cmds)
                    .and_then(|_| read(&mut c))
                    .and_then(|f| expect(f, &ok, "MULTI"))
                    .and_then(|_| read(&mut c))
                    .and_then(|f| expect(f, &queued, "queued SET"))
                    .and_then(|_| read(&mut c))
                    .and_then(|f| expect(f, &queued, "queued SET"))
                    .and_then(|_| read(&mut c))
                    .and_then(|f| expect(f, &exec, "EXEC"))
                    .map(|_| {
                        if let Some(p) = m.pairs.last_mut() {
                            p.state = Some(true);
                        }
                    })
            }
            _ => {
                // A Lua script writes the pair (and reads its own writes back): all of it or
                // none of it may survive a crash.
                let a = format!("pair:{t}:{seq}:a");
                let b = format!("pair:{t}:{seq}:b");
                let v = value(&mut rng, t, seq);
                m.pairs.push(Pair {
                    a: a.clone(),
                    b: b.clone(),
                    value: v.clone(),
                    state: None,
                });
                let eval = args(&[
                    b"EVAL",
                    PAIR_SCRIPT.as_bytes(),
                    b"2",
                    a.as_bytes(),
                    b.as_bytes(),
                    &v,
                ]);
                send(&mut c, &[eval])
                    .and_then(|_| read(&mut c))
                    .and_then(|f| expect(f, &Frame::Integer(2), "EVAL"))
                    .map(|_| {
                        if let Some(p) = m.pairs.last_mut() {
                            p.state = Some(true);
                        }
                    })
            }
        };
        match r {
            Ok(()) => m.acked_round += 1,
            Err(Stop::Io) => break None,
            Err(Stop::Bad(why)) => break Some(format!("thread {t}, op {seq}: {why}")),
        }
    };
    (m, bad)
}

/// Values of `keys` (MGET in chunks; `None` = absent).
fn mget(c: &mut Conn, keys: &[String]) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(256) {
        let mut a: Vec<&[u8]> = vec![b"MGET"];
        a.extend(chunk.iter().map(|k| k.as_bytes()));
        match c.cmd(&a) {
            Frame::Array(Some(items)) if items.len() == chunk.len() => {
                for it in items {
                    match it {
                        Frame::Bulk(v) => out.push(v),
                        other => panic!("MGET item: expected a bulk, got {other}"),
                    }
                }
            }
            other => panic!("MGET of {} keys answered {other}", chunk.len()),
        }
    }
    out
}

/// Checks the restarted server against every model, then resolves what was in flight.
/// Keys of earlier rounds are re-read only when `full` (DBSIZE covers them every round).
/// Returns (acked writes of this round verified, keys checked, in-flight writes found
/// applied, in-flight writes found absent).
fn verify(c: &mut Conn, models: &mut [Model], round: usize, full: bool) -> (u64, usize, u64, u64) {
    let mut failures = Vec::new();
    let (mut applied, mut dropped, mut acked) = (0u64, 0u64, 0u64);
    let mut keys_checked = 0usize;
    let mut expected_keys = 0usize;
    for m in models.iter_mut() {
        // Plain SETs.
        let mut names: Vec<String> = m.keys.keys().cloned().collect();
        let current = names.len();
        if full {
            names.extend(m.old_keys.keys().cloned());
        }
        let got = mget(c, &names);
        keys_checked += names.len();
        for (i, (name, got)) in names.iter().zip(got).enumerate() {
            let exp = if i < current {
                m.keys.get_mut(name)
            } else {
                m.old_keys.get_mut(name)
            }
            .expect("key from the model");
            let resolved = match (&*exp, got) {
                (Expect::Present(v), Some(g)) if *v == g => Expect::Present(g),
                (Expect::Maybe(v), Some(g)) if *v == g => {
                    applied += 1;
                    Expect::Present(g)
                }
                (Expect::Maybe(_), None) => {
                    dropped += 1;
                    Expect::Absent
                }
                (Expect::Absent, None) => Expect::Absent,
                (e, g) => {
                    failures.push(format!(
                        "{name}: expected {}, got {}",
                        describe(e),
                        g.map_or("(absent)".into(), |g| common::escape(&g))
                    ));
                    continue;
                }
            };
            if i < current && matches!(resolved, Expect::Present(_)) {
                m.old_present += 1;
            }
            *exp = resolved;
        }
        // Counter.
        let ck = m.counter_key();
        let got = mget(c, std::slice::from_ref(&ck)).remove(0);
        let n = match &got {
            None => 0,
            Some(g) => std::str::from_utf8(g)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(-1),
        };
        if n < m.counter_acked || n > m.counter_sent {
            failures.push(format!(
                "{ck}: {n} (raw {:?}), expected {}..={} (last acked..sent)",
                got.as_deref().map(common::escape),
                m.counter_acked,
                m.counter_sent
            ));
        } else {
            m.counter_acked = n;
            m.counter_sent = n;
        }
        if n > 0 {
            expected_keys += 1;
        }
        // Append log.
        let lk = m.log_key();
        let got = mget(c, std::slice::from_ref(&lk))
            .remove(0)
            .unwrap_or_default();
        let mut with_pending = m.log_acked.clone();
        if let Some(p) = &m.log_pending {
            with_pending.extend_from_slice(p);
        }
        if got == m.log_acked || got == with_pending {
            m.log_acked = got;
            m.log_pending = None;
        } else {
            failures.push(format!(
                "{lk}: got {}, expected {} or {}",
                common::escape(&got),
                common::escape(&m.log_acked),
                common::escape(&with_pending)
            ));
        }
        if !m.log_acked.is_empty() {
            expected_keys += 1;
        }
        // MULTI/EXEC pairs.
        let current = m.pairs.len();
        let mut pairs = std::mem::take(&mut m.pairs);
        if full {
            pairs.append(&mut m.old_pairs);
        }
        let names: Vec<String> = pairs
            .iter()
            .flat_map(|p| [p.a.clone(), p.b.clone()])
            .collect();
        let got = mget(c, &names);
        keys_checked += names.len();
        for (i, (p, g)) in pairs.iter_mut().zip(got.chunks(2)).enumerate() {
            let (ga, gb) = (&g[0], &g[1]);
            let both = ga.as_deref() == Some(&p.value[..]) && gb.as_deref() == Some(&p.value[..]);
            let neither = ga.is_none() && gb.is_none();
            match (p.state, both, neither) {
                (Some(true), true, _) | (Some(false), _, true) => {}
                (None, true, _) => {
                    applied += 1;
                    p.state = Some(true);
                }
                (None, _, true) => {
                    dropped += 1;
                    p.state = Some(false);
                }
                _ => failures.push(format!(
                    "MULTI pair {}/{} (state {:?}): got {} / {}",
                    p.a,
                    p.b,
                    p.state,
                    ga.as_deref().map_or("(absent)".into(), common::escape),
                    gb.as_deref().map_or("(absent)".into(), common::escape)
                )),
            }
            if i < current && p.state == Some(true) {
                m.old_present += 2;
            }
        }
        m.old_pairs.extend(pairs);
        let round_keys = std::mem::take(&mut m.keys);
        m.old_keys.extend(round_keys);
        expected_keys += m.old_present;
        acked += m.acked_round;
        m.acked_total += m.acked_round;
        m.acked_round = 0;
    }
    let dbsize = c.cmd(&["DBSIZE"]);
    if failures.is_empty() && dbsize != Frame::Integer(expected_keys as i64) {
        failures.push(format!("DBSIZE: got {dbsize}, model says {expected_keys}"));
    }
    assert!(
        failures.is_empty(),
        "round {round}: {} lost or half-applied writes (first 20):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    (acked, keys_checked, applied, dropped)
}

fn describe(e: &Expect) -> String {
    match e {
        Expect::Present(v) => format!("acked {}", common::escape(v)),
        Expect::Maybe(v) => format!("unacked {} or absent", common::escape(v)),
        Expect::Absent => "absent (seen absent after an earlier crash)".into(),
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let kills = env_u64("CRASH_KILLS").unwrap_or(3) as usize;
    let seed = env_u64("CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!("crash: CRASH_SEED={seed} CRASH_KILLS={kills} ({THREADS} writer threads)");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut server = RivetServer::start(&[]);
    let db = server.db_path();
    let mut models: Vec<Model> = (0..THREADS)
        .map(|thread| Model {
            thread,
            ..Model::default()
        })
        .collect();
    let (mut acked_total, mut applied_total, mut dropped_total) = (0u64, 0u64, 0u64);
    for round in 1..=kills {
        let go = Arc::new(Barrier::new(THREADS + 1));
        let handles: Vec<_> = models
            .drain(..)
            .map(|m| {
                let c = server.conn();
                let r = Rng(rng.next());
                let go = go.clone();
                std::thread::spawn(move || writer(m, c, r, go))
            })
            .collect();
        go.wait();
        // Kill somewhere between 50 ms and 1.5 s into the write stream.
        let delay = Duration::from_millis(50 + rng.below(1450));
        std::thread::sleep(delay);
        let pid = proc_util::server_pid(&db);
        proc_util::kill9(pid);
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
        // The file as the crash left it must be consistent before anything repairs it.
        proc_util::rivet_check(&db);
        server.restart();
        let mut c = server.conn();
        // Re-read every key of every round each 10th round and at the end.
        let full = round % 10 == 0 || round == kills;
        let (acked, keys, applied, dropped) = verify(&mut c, &mut models, round, full);
        acked_total += acked;
        applied_total += applied;
        dropped_total += dropped;
        println!(
            "crash: round {round}/{kills}: killed after {delay:?}; {acked} acked writes this \
             round verified ({keys} keys checked in all); in-flight writes found applied: \
             {applied}, absent: {dropped}"
        );
    }
    let status = server.stop();
    assert!(
        status.success(),
        "rivet-server exited with {status} on SIGTERM"
    );
    let final_checker = proc_util::rivet_check(&db);
    println!(
        "crash: {kills} kills, {acked_total} acknowledged writes verified, in-flight writes \
         applied {applied_total} / absent {dropped_total}; file check after every kill and \
         after the final clean stop: {final_checker}; {:.1?} total",
        started.elapsed()
    );
}
