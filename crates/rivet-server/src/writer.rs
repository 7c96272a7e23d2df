//! The one write loop: a dedicated thread that owns write transactions.
//!
//! It takes whatever jobs are queued (each a group of pipelined write commands from one
//! connection, or one MULTI/EXEC), applies them in arrival order inside one write
//! transaction, commits (fdatasync before and after the meta page unless `--no-sync`), and
//! only then sends the replies: group commit. Between jobs it runs the active expiry sweep
//! in the same transaction, and frees deleted big collections a few milliseconds at a time.
//! It also owns the clients parked by blocking commands ([`crate::blocking`]): after every
//! command it serves the ones whose keys it made ready, and it answers the ones whose
//! timeout passed. A failed commit fails every command of that commit and refuses all later
//! writes until restart (reads go on), because the engine cannot safely retry a failed
//! fsync. A command that panics fails its batch (rolled back); the writer goes on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::blocking::{Parked, Registry, WouldBlock};
use crate::commands::{self, Ctx};
use crate::resp::Reply;
use crate::state::{lock, now_ms, ServerState};
use crate::store::{Kind, WriteLog};

/// Most jobs folded into one commit.
const MAX_JOBS_PER_COMMIT: usize = 1024;
/// Most keys the sweeper expires in one commit.
const SWEEP_BATCH: usize = 500;
/// Time the writer spends freeing deleted big collections in one commit: other clients'
/// writes wait at most about this long (plus the commit) behind a huge DEL.
const TRASH_STEP: Duration = Duration::from_millis(2);
/// Entries freed between two looks at the clock.
const TRASH_CHUNK: usize = 256;
/// Time between sweeps when nothing is due sooner (Redis's default `hz 10`).
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// One command for the writer: its database and arguments.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Database index the command runs in.
    pub db: usize,
    /// The command and its arguments.
    pub args: Vec<Bytes>,
}

/// A WATCHed key as seen when WATCH ran.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Database index.
    pub db: usize,
    /// The key.
    pub key: Vec<u8>,
    /// True if the key was already logically expired (but present) at WATCH time.
    pub was_expired: bool,
}

/// Work for the writer.
pub enum Job {
    /// Pipelined write commands of one connection; one reply per command.
    Commands {
        /// Client id (CLIENT ID) and protocol version.
        client: (u64, u8),
        /// The commands.
        cmds: Vec<Queued>,
        /// Where the replies go, once committed.
        reply: oneshot::Sender<Vec<Reply>>,
    },
    /// MULTI ... EXEC.
    Exec {
        /// Client id and protocol version.
        client: (u64, u8),
        /// Database selected when EXEC ran.
        db: usize,
        /// The queued commands.
        cmds: Vec<Vec<Bytes>>,
        /// Set when a watched key changed.
        dirty: Arc<AtomicBool>,
        /// The watched keys.
        watched: Vec<Watched>,
        /// EXEC's reply and the database selected afterwards.
        reply: oneshot::Sender<(Reply, usize)>,
    },
    /// One blocking command (BLPOP...): answered at once if it can be served, otherwise
    /// parked until a write serves it or its timeout passes.
    Block {
        /// Client id and protocol version.
        client: (u64, u8),
        /// Database selected.
        db: usize,
        /// The command.
        args: Vec<Bytes>,
        /// Where the one reply goes.
        reply: oneshot::Sender<Reply>,
    },
    /// Unparks client `id` (CLIENT UNBLOCK, or its connection went away).
    Unblock {
        /// The client.
        id: u64,
        /// Answer it with Redis's UNBLOCKED error instead of its timeout reply.
        error: bool,
        /// Told whether the client was parked.
        done: Option<oneshot::Sender<bool>>,
    },
    /// Memcached requests of one connection (see [`crate::memcached`]); the reply is their
    /// replies' bytes, or why the commit failed.
    Memcached {
        /// The requests, in order.
        reqs: Vec<crate::memcached::proto::Request>,
        /// Where the replies go, once committed.
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
    /// Stop after committing what is queued.
    Shutdown(oneshot::Sender<()>),
}

/// The connections' side of the writer.
#[derive(Debug)]
pub struct WriterHandle {
    tx: Mutex<Option<Sender<Job>>>,
    refused: Mutex<Option<String>>,
}

impl WriterHandle {
    /// A handle and the receiving end for [`run`].
    pub fn new() -> (WriterHandle, Receiver<Job>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (
            WriterHandle {
                tx: Mutex::new(Some(tx)),
                refused: Mutex::new(None),
            },
            rx,
        )
    }

    /// Queues a job; false when the writer has stopped.
    pub fn send(&self, job: Job) -> bool {
        match &*lock(&self.tx) {
            Some(tx) => tx.send(job).is_ok(),
            None => false,
        }
    }

    /// Why writes are refused, if they are (a failed commit).
    pub fn refused(&self) -> Option<String> {
        lock(&self.refused).clone()
    }

    fn refuse(&self, why: String) {
        *lock(&self.refused) = Some(why);
    }
}

/// The error a write gets once writes are refused.
pub fn refused_reply(why: &str) -> Reply {
    Reply::err(format!(
        "MISCONF Errors writing to the data file: {why}. Writes are refused until the server is restarted; reads still work."
    ))
}

/// What applying one job produced, sent after the commit.
enum Done {
    Commands(oneshot::Sender<Vec<Reply>>, Vec<Reply>),
    Exec(oneshot::Sender<(Reply, usize)>, Reply, usize),
    /// A blocking command's reply (served at once or after being parked).
    Single(oneshot::Sender<Reply>, Reply),
    /// A Memcached job's replies.
    Memcached(oneshot::Sender<Result<Vec<u8>, String>>, Vec<u8>, u64),
    /// Nothing to send (a blocking command was parked).
    Nothing,
}

impl Done {
    fn fail(self, e: &Reply) {
        match self {
            Done::Commands(tx, replies) => {
                let _ = tx.send(replies.iter().map(|_| e.clone()).collect());
            }
            Done::Exec(tx, _, db) => {
                let _ = tx.send((e.clone(), db));
            }
            Done::Single(tx, _) => {
                let _ = tx.send(e.clone());
            }
            Done::Memcached(tx, ..) => {
                let why = match e {
                    Reply::Error(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                let _ = tx.send(Err(why));
            }
            Done::Nothing => {}
        }
    }

    fn send(self) {
        match self {
            Done::Commands(tx, replies) => {
                let _ = tx.send(replies);
            }
            Done::Exec(tx, reply, db) => {
                let _ = tx.send((reply, db));
            }
            Done::Single(tx, reply) => {
                let _ = tx.send(reply);
            }
            Done::Memcached(tx, bytes, _) => {
                let _ = tx.send(Ok(bytes));
            }
            Done::Nothing => {}
        }
    }

    fn write_count(&self) -> u64 {
        match self {
            Done::Commands(_, r) => r.len() as u64,
            Done::Exec(..) | Done::Single(..) => 1,
            Done::Memcached(_, _, n) => *n,
            Done::Nothing => 0,
        }
    }
}

/// Runs the write loop until a [`Job::Shutdown`] or until every sender is gone.
pub fn run(state: Arc<ServerState>, rx: Receiver<Job>) {
    let mut next_sweep = Instant::now() + SWEEP_INTERVAL;
    let mut last_batch = 0usize;
    let mut reg = Registry::default();
    loop {
        let wake = reg
            .next_deadline()
            .map_or(next_sweep, |d| d.min(next_sweep));
        let wait = wake.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(j) => Some(j),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut jobs: Vec<Job> = first.into_iter().collect();
        drain(&rx, &mut jobs);
        if !jobs.is_empty() && !state.no_sync {
            gather_stragglers(&rx, &mut jobs, last_batch);
        }
        last_batch = jobs.len();
        let sweep = Instant::now() >= next_sweep;
        let mut stop: Option<oneshot::Sender<()>> = None;
        let work: Vec<Job> = jobs
            .into_iter()
            .filter_map(|j| match j {
                Job::Shutdown(s) => {
                    stop = Some(s);
                    None
                }
                Job::Unblock { id, error, done } => {
                    unblock(&state, &mut reg, id, error, done);
                    None
                }
                other => Some(other),
            })
            .collect();
        let more_due = commit_batch(&state, &mut reg, work, sweep);
        if !reg.is_empty() {
            reg.expire(&state, Instant::now());
        }
        if sweep {
            next_sweep = if more_due {
                Instant::now()
            } else {
                Instant::now() + SWEEP_INTERVAL
            };
        }
        if let Some(s) = stop {
            // Drain anything that raced with the shutdown request, then stop.
            let rest: Vec<Job> = rx.try_iter().collect();
            commit_batch(&state, &mut reg, rest, false);
            let _ = s.send(());
            return;
        }
    }
}

/// Unparks client `id`: its timeout reply, or Redis's UNBLOCKED error.
fn unblock(
    state: &ServerState,
    reg: &mut Registry,
    id: u64,
    error: bool,
    done: Option<oneshot::Sender<bool>>,
) {
    let found = reg.remove(state, id);
    let was = found.is_some();
    if let Some(p) = found {
        let r = if error {
            Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        } else {
            p.wait.timeout_reply
        };
        if let Some(spec) = commands::lookup(&p.args[0]) {
            state.record_call(spec, 0, r.is_error());
        }
        let _ = p.reply.send(r);
    }
    if let Some(d) = done {
        let _ = d.send(was);
    }
}

/// Moves every queued job into `jobs` (up to the per-commit cap).
fn drain(rx: &Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_JOBS_PER_COMMIT {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
}

/// Most time a durable commit waits for stragglers before it starts.
const STRAGGLER_WAIT: Duration = Duration::from_micros(250);

/// Group commit under load: when the previous commit carried many more jobs than are queued
/// now, the clients it answered are about to send their next writes; waiting a moment for
/// them (at most [`STRAGGLER_WAIT`]) lets one fsync cover them instead of starting a half-empty
/// commit and leaving them for the one after. Idle or lightly loaded servers never wait.
fn gather_stragglers(rx: &Receiver<Job>, jobs: &mut Vec<Job>, last_batch: usize) {
    if last_batch < 4 || jobs.len() * 4 >= last_batch * 3 {
        return;
    }
    let deadline = Instant::now() + STRAGGLER_WAIT;
    while jobs.len() * 4 < last_batch * 3 && jobs.len() < MAX_JOBS_PER_COMMIT {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left) {
            Ok(j) => {
                jobs.push(j);
                drain(rx, jobs);
            }
            Err(_) => break,
        }
    }
}

/// Applies `jobs` (and a sweep step if `sweep`) in one write transaction, commits, and
/// replies. Returns true when the sweeper left due keys behind.
fn commit_batch(state: &Arc<ServerState>, reg: &mut Registry, jobs: Vec<Job>, sweep: bool) -> bool {
    // DEBUG SET-ACTIVE-EXPIRE 0 stops expiry, not the freeing of deleted collections.
    let expire = state.active_expire.load(Ordering::Relaxed);
    if jobs.is_empty() && !(sweep && anything_due(state, expire)) {
        return false;
    }
    if let Some(why) = state.writer.refused() {
        let e = refused_reply(&why);
        for j in jobs {
            reject(j, &e);
        }
        return false;
    }
    let store = state.store.clone();
    let tx = match store.db().begin_write() {
        Ok(tx) => tx,
        Err(e) => {
            let e = Reply::err(format!("ERR cannot begin a write transaction: {e}"));
            for j in jobs {
                reject(j, &e);
            }
            return false;
        }
    };
    let log = WriteLog::default();
    let mut done = Vec::with_capacity(jobs.len());
    let mut failure: Option<rivet::Error> = None;
    let mc = &state.memcached;
    let now_s = now_ms().div_euclid(1000);
    if mc.has_marks() || mc.flush_due(now_s) {
        if let Err(e) = mc.upkeep(&store, &tx, now_s) {
            failure = Some(e);
        }
    }
    for job in jobs {
        if failure.is_some() {
            reject(
                job,
                &Reply::err("ERR transaction aborted by an earlier engine error"),
            );
            continue;
        }
        // A bug must not take the writer down: a command that panics fails its whole batch
        // (rolled back) and the writer goes on. Its own client's reply channel is dropped.
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            apply_job(state, &tx, &log, reg, job)
        }));
        match applied {
            Ok(Ok(d)) => done.extend(d),
            Ok(Err((e, d))) => {
                failure = Some(e);
                done.extend(d);
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                failure = Some(rivet::Error::Callback(format!(
                    "internal error (a command panicked: {what}); the batch was rolled back"
                )));
            }
        }
    }
    let mut more_due = false;
    if sweep && failure.is_none() {
        let step = |tx: &rivet::Tx| -> Result<bool, rivet::Error> {
            let more = expire && sweep_expired(state, tx, &log)?;
            Ok(empty_trash(state, tx)? || more)
        };
        match step(&tx) {
            Ok(m) => more_due = m,
            Err(e) => failure = Some(e),
        }
        notify_touched(state, &log, reg, None);
    }
    if let Some(e) = failure {
        tracing::error!(error = %e, "write batch failed; rolled back");
        tx.rollback();
        publish_dbmap(&store);
        let r = match e {
            rivet::Error::MaxSizeReached { limit } => max_size_reply(limit),
            other => Reply::err(format!("ERR {other}")),
        };
        for d in done {
            d.fail(&r);
        }
        return false;
    }
    let writes: u64 = done.iter().map(Done::write_count).sum();
    let t0 = Instant::now();
    match tx.commit() {
        Ok(()) => {
            let us = t0.elapsed().as_micros() as u64;
            let s = &state.stats;
            s.commits.fetch_add(1, Ordering::Relaxed);
            if !state.no_sync {
                s.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            s.writes_committed.fetch_add(writes, Ordering::Relaxed);
            s.commit_usec_total.fetch_add(us, Ordering::Relaxed);
            s.commit_usec_max.fetch_max(us, Ordering::Relaxed);
            publish_dbmap(&store);
            // Messages of this commit (keyspace notifications, PUBLISH in MULTI or a
            // script) go out once it is durable, before the replies.
            let limit = state.config.pubsub_limit();
            for (chan, msg, shard) in log.take_published() {
                state.pubsub.publish(&chan, &msg, shard, limit, true);
            }
            for d in done {
                d.send();
            }
        }
        Err(rivet::Error::MaxSizeReached { limit }) => {
            // A quota, not a fault: this commit fails cleanly and later ones may fit.
            tracing::warn!(
                limit,
                "commit refused: the data file reached --max-file-size"
            );
            let r = max_size_reply(limit);
            for d in done {
                d.fail(&r);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed: refusing writes until restart");
            state.writer.refuse(e.to_string());
            let r = refused_reply(&e.to_string());
            for d in done {
                d.fail(&r);
            }
        }
    }
    more_due
}

/// Makes a SWAPDB of the ended transaction (committed or not) visible to readers' cache.
fn publish_dbmap(store: &crate::store::Store) {
    if let Err(e) = store.publish_dbmap() {
        tracing::error!(error = %e, "reading the database map after SWAPDB");
    }
}

/// The error of commands whose commit would grow the file past `--max-file-size`.
fn max_size_reply(limit: u64) -> Reply {
    Reply::err(format!(
        "OOM command not allowed: the data file would grow past --max-file-size ({limit} bytes)"
    ))
}

fn reject(job: Job, e: &Reply) {
    match job {
        Job::Commands { cmds, reply, .. } => {
            let _ = reply.send(cmds.iter().map(|_| e.clone()).collect());
        }
        Job::Exec { reply, db, .. } => {
            let _ = reply.send((e.clone(), db));
        }
        Job::Block { reply, .. } => {
            let _ = reply.send(e.clone());
        }
        Job::Unblock { done, .. } => {
            if let Some(d) = done {
                let _ = d.send(false);
            }
        }
        Job::Memcached { reply, .. } => {
            let why = match e {
                Reply::Error(s) => s.clone(),
                other => format!("{other:?}"),
            };
            let _ = reply.send(Err(why));
        }
        Job::Shutdown(s) => {
            let _ = s.send(());
        }
    }
}

/// Tells watchers (and parked clients) about every key the log recorded, and queues the
/// keyspace notifications of the command `cmd` (name and arguments; `None` for the expiry
/// sweep) that changed them.
fn notify_touched(
    state: &Arc<ServerState>,
    log: &WriteLog,
    reg: &mut Registry,
    cmd: Option<(&str, &[Bytes])>,
) {
    let done = log.notified();
    let touched = log.take();
    let flags = state.config.notify_flags();
    if flags != 0 {
        let (name, args) = cmd.unwrap_or(("", &[]));
        let fresh = touched.get(done..).unwrap_or(&[]);
        crate::notify::command_events(flags, log, name, args, fresh);
    }
    state
        .stats
        .dirty
        .fetch_add(touched.len() as u64, Ordering::Relaxed);
    // After SWAPDB, any key of the two databases may hold what a parked client waits for.
    for db in log.take_swapped() {
        reg.touched_db(db);
    }
    for t in touched {
        if t.expired {
            state.watches.touch_expired(t.db, &t.key);
        } else {
            state.watches.touch(t.db, &t.key);
            reg.touched(t.db, &t.key);
        }
    }
}

/// Where a command runs in the writer.
struct Run<'a> {
    state: &'a Arc<ServerState>,
    tx: &'a rivet::Tx,
    log: &'a WriteLog,
}

/// Runs one command in the writer's transaction. A blocking command may park only when
/// `may_block` (never inside MULTI or a script); then its wish comes back beside the reply.
fn run_command(
    run: &Run<'_>,
    reg: &mut Registry,
    client: (u64, u8),
    db: &mut usize,
    args: &[Bytes],
    may_block: bool,
) -> Result<(Reply, Option<WouldBlock>), rivet::Error> {
    let Run { state, tx, log } = *run;
    let Some(spec) = commands::lookup(&args[0]) else {
        return Ok((commands::unknown_command(args), None));
    };
    let t0 = Instant::now();
    let reply = {
        let mut ctx = Ctx {
            store: &state.store,
            tx,
            state,
            db: *db,
            client_id: client.0,
            proto: client.1,
            now_ms: now_ms(),
            log: Some(log),
            may_block,
            would_block: None,
        };
        let r = match spec.handler {
            Some(h) => h(&mut ctx, args)?,
            None => Reply::err(format!(
                "ERR '{}' cannot run inside MULTI on this server",
                spec.name
            )),
        };
        *db = ctx.db;
        (r, ctx.would_block.take())
    };
    // A command that parks is counted when it is answered (served, timed out or unblocked),
    // once, as Redis counts a blocked command's call.
    if reply.1.is_none() {
        state.record_call(spec, t0.elapsed().as_micros() as u64, reply.0.is_error());
    }
    state
        .stats
        .commands_processed
        .fetch_add(1, Ordering::Relaxed);
    notify_touched(state, log, reg, Some((spec.name, args)));
    Ok(reply)
}

/// Runs the parked commands that the writes so far made servable, first come first served
/// per key, until no key is ready (a served BLMOVE may make another key ready). A key that
/// now holds no value of the type its clients wait for (a list, or a sorted set for the
/// BZ* commands) serves nobody, as in Redis 7.0; otherwise the command's reply, errors such
/// as a BLMOVE destination's WRONGTYPE included, goes to the client.
fn serve_parked(
    run: &Run<'_>,
    reg: &mut Registry,
    done: &mut Vec<Done>,
) -> Result<(), rivet::Error> {
    while let Some((db, key)) = reg.next_ready() {
        let holds = run
            .state
            .store
            .view(run.tx, db)?
            .lookup(&key, now_ms())?
            .map(|h| h.kind);
        for id in reg.waiting(db, &key) {
            let Some(p) = reg.get(id) else {
                continue;
            };
            if p.reply.is_closed() {
                reg.remove(run.state, id);
                continue;
            }
            if p.wait.kind == Kind::Stream {
                // Stream readers do not consume: each is served (or not) on its own.
                serve_stream_reader(run, reg, done, id, db, &key, holds)?;
                continue;
            }
            if holds != Some(p.wait.kind) {
                break;
            }
            let (client, mut pdb, args) = (p.client, p.db, p.args.clone());
            let (r, wait) = run_command(run, reg, client, &mut pdb, &args, true)?;
            // Still nothing to take: the clients behind it wait too.
            if wait.is_some() {
                break;
            }
            if let Some(p) = reg.remove(run.state, id) {
                done.push(Done::Single(p.reply, r));
            }
        }
    }
    Ok(())
}

/// Serves parked XREAD/XREADGROUP client `id` after a write to `key`: an XREADGROUP whose
/// key no longer holds a stream, or whose group is gone, gets Redis's error; otherwise the
/// command runs again and answers if it found entries (`holds`: the key's type now).
fn serve_stream_reader(
    run: &Run<'_>,
    reg: &mut Registry,
    done: &mut Vec<Done>,
    id: u64,
    db: usize,
    key: &[u8],
    holds: Option<Kind>,
) -> Result<(), rivet::Error> {
    let Some(p) = reg.get(id) else {
        return Ok(());
    };
    let view = run.state.store.view(run.tx, db)?;
    if let Some(r) = commands::stream_read::parked_unblock(&view, key, &p.args, now_ms())? {
        if let Some(p) = reg.remove(run.state, id) {
            if let Some(spec) = commands::lookup(&p.args[0]) {
                run.state.record_call(spec, 0, r.is_error());
            }
            done.push(Done::Single(p.reply, r));
        }
        return Ok(());
    }
    if holds != Some(Kind::Stream) {
        return Ok(());
    }
    let args = commands::stream_read::parked_args_for(&p.args, key).unwrap_or(p.args.clone());
    let (client, mut pdb) = (p.client, p.db);
    let (r, wait) = run_command(run, reg, client, &mut pdb, &args, true)?;
    if wait.is_none() {
        if let Some(p) = reg.remove(run.state, id) {
            done.push(Done::Single(p.reply, r));
        }
    }
    Ok(())
}

type JobResult = Result<Vec<Done>, (rivet::Error, Vec<Done>)>;

fn apply_job(
    state: &Arc<ServerState>,
    tx: &rivet::Tx,
    log: &WriteLog,
    reg: &mut Registry,
    job: Job,
) -> JobResult {
    let run = Run { state, tx, log };
    let mut done = Vec::new();
    match job {
        Job::Commands {
            client,
            cmds,
            reply,
        } => {
            let mut replies = Vec::with_capacity(cmds.len());
            for q in &cmds {
                let mut db = q.db;
                let step =
                    run_command(&run, reg, client, &mut db, &q.args, false).and_then(|(r, _)| {
                        replies.push(r);
                        serve_parked(&run, reg, &mut done)
                    });
                if let Err(e) = step {
                    replies.resize(cmds.len(), Reply::Nil);
                    done.push(Done::Commands(reply, replies));
                    return Err((e, done));
                }
            }
            done.push(Done::Commands(reply, replies));
            Ok(done)
        }
        Job::Block {
            client,
            mut db,
            args,
            reply,
        } => {
            let start_db = db;
            match run_command(&run, reg, client, &mut db, &args, true) {
                Ok((_, Some(mut wait))) => {
                    let args = wait.park_args.take().unwrap_or(args);
                    reg.park(
                        state,
                        Parked {
                            client,
                            db: start_db,
                            args,
                            wait,
                            reply,
                        },
                    );
                    done.push(Done::Nothing);
                }
                Ok((r, None)) => done.push(Done::Single(reply, r)),
                Err(e) => {
                    done.push(Done::Single(reply, Reply::Nil));
                    return Err((e, done));
                }
            }
            match serve_parked(&run, reg, &mut done) {
                Ok(()) => Ok(done),
                Err(e) => Err((e, done)),
            }
        }
        Job::Exec {
            client,
            mut db,
            cmds,
            dirty,
            watched,
            reply,
        } => {
            let start_db = db;
            let aborted = match watch_broken(state, tx, &dirty, &watched) {
                Ok(b) => b,
                Err(e) => {
                    done.push(Done::Exec(reply, Reply::NilArray, start_db));
                    return Err((e, done));
                }
            };
            if aborted {
                done.push(Done::Exec(reply, Reply::NilArray, db));
                return Ok(done);
            }
            let mut replies = Vec::with_capacity(cmds.len());
            for args in &cmds {
                match run_command(&run, reg, client, &mut db, args, false) {
                    Ok((r, _)) => replies.push(r),
                    Err(e) => {
                        done.push(Done::Exec(reply, Reply::NilArray, start_db));
                        return Err((e, done));
                    }
                }
            }
            done.push(Done::Exec(reply, Reply::Array(replies), db));
            match serve_parked(&run, reg, &mut done) {
                Ok(()) => Ok(done),
                Err(e) => Err((e, done)),
            }
        }
        Job::Memcached { reqs, reply } => {
            let v = state.store.memcached(tx);
            let mc = &state.memcached;
            let now = now_ms().div_euclid(1000);
            let mut out = Vec::new();
            let mut step = || -> Result<(), rivet::Error> {
                for r in &reqs {
                    crate::memcached::exec::write(&v, mc, now, r, &mut out)?;
                }
                mc.save_cas(&v)
            };
            let r = step();
            let n = reqs.iter().filter(|r| r.writes()).count() as u64;
            done.push(Done::Memcached(reply, out, n));
            match r {
                Ok(()) => Ok(done),
                Err(e) => Err((e, done)),
            }
        }
        Job::Unblock { done: tell, .. } => {
            // Handled by run() before the batch; one that slipped through finds nobody.
            if let Some(t) = tell {
                let _ = t.send(false);
            }
            Ok(done)
        }
        Job::Shutdown(_) => unreachable!("filtered out by run()"),
    }
}

/// True when EXEC must abort: a watched key was modified, or expired since WATCH.
fn watch_broken(
    state: &Arc<ServerState>,
    tx: &rivet::Tx,
    dirty: &AtomicBool,
    watched: &[Watched],
) -> Result<bool, rivet::Error> {
    if dirty.load(Ordering::Acquire) {
        return Ok(true);
    }
    let now = now_ms();
    for w in watched {
        if w.was_expired {
            continue;
        }
        let v = state.store.view(tx, w.db)?;
        if v.lookup_raw(&w.key)?.is_some_and(|h| h.is_expired(now)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Cheap check (one read transaction) whether any database has a due deadline (when
/// `expire`) or trash to free.
fn anything_due(state: &Arc<ServerState>, expire: bool) -> bool {
    let Ok(tx) = state.store.db().begin_read() else {
        return false;
    };
    let now = now_ms();
    let mc = &state.memcached;
    if mc.has_marks() || mc.flush_due(now.div_euclid(1000)) {
        return true;
    }
    if expire
        && state
            .store
            .memcached(&tx)
            .due(now, 1)
            .is_ok_and(|d| !d.is_empty())
    {
        return true;
    }
    (0..state.store.databases()).any(|i| {
        state
            .store
            .view(&tx, i)
            .and_then(|v| {
                Ok(
                    (expire && !v.due(now, 1)?.is_empty())
                        || v.trash()?.cursor().first()?.is_some(),
                )
            })
            .unwrap_or(false)
    })
}

/// Frees entries of deleted big collections for about [`TRASH_STEP`]; true if more are left.
fn empty_trash(state: &Arc<ServerState>, tx: &rivet::Tx) -> Result<bool, rivet::Error> {
    let until = Instant::now() + TRASH_STEP;
    for i in 0..state.store.databases() {
        let v = state.store.view(tx, i)?;
        loop {
            let (_, more) = v.trash_step(TRASH_CHUNK)?;
            if !more {
                break;
            }
            if Instant::now() >= until {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Deletes up to [`SWEEP_BATCH`] expired keys; returns true if more are due.
fn sweep_expired(
    state: &Arc<ServerState>,
    tx: &rivet::Tx,
    log: &WriteLog,
) -> Result<bool, rivet::Error> {
    let now = now_ms();
    let mut budget = SWEEP_BATCH;
    let mut more = false;
    for i in 0..state.store.databases() {
        if budget == 0 {
            more = true;
            break;
        }
        let v = state.store.view_mut(tx, i, log)?;
        let due = v.due(now, budget + 1)?;
        if due.len() > budget {
            more = true;
        }
        for (at, key) in due.into_iter().take(budget) {
            budget -= 1;
            match v.lookup_raw(&key)? {
                Some(h) if h.expire_at == Some(at) && h.is_expired(now) => {
                    v.delete_expired(&key, &h)?;
                    state.stats.expired_keys.fetch_add(1, Ordering::Relaxed);
                }
                _ => v.drop_deadline(at, &key)?,
            }
        }
    }
    // Memcached items share the deadline index layout (their own index).
    let v = state.store.memcached(tx);
    let due = v.due(now, budget + 1)?;
    if due.len() > budget {
        more = true;
    }
    for (at, key) in due.into_iter().take(budget) {
        match v.lookup_raw(&key)? {
            Some(h) if h.expire_at == Some(at) && h.is_expired(now) => {
                v.delete_expired(&key, &h)?;
                state.stats.expired_keys.fetch_add(1, Ordering::Relaxed);
            }
            _ => v.drop_deadline(at, &key)?,
        }
    }
    Ok(more)
}
