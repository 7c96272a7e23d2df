//! One client connection: reads requests, runs them in order, writes replies in order.
//!
//! Consecutive write commands (pipelined or not) are gathered into one job for the writer
//! and share a commit with other clients' writes; their replies arrive after the commit. A
//! read waits for this connection's outstanding writes first (read-your-writes), then runs
//! on this task in its own read transaction. The connection also owns the session state:
//! selected database, protocol version, authentication, name, MULTI queue and WATCHed keys,
//! and its pub/sub subscriptions: a subscriber waits for input and for messages alike, and
//! writes queued messages before the reply of the request that follows them. (A PUBLISH is
//! a read here: it runs once this connection's pending writes are committed.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::commands::args::{err, int, is, lower};
use crate::commands::{self, arity_error, arity_ok, unknown_subcommand, Ctx, Spec};
use crate::commands::{BLOCKING, CONN, NO_AUTH, NO_MULTI, NO_QUEUE, WRITE};
use crate::resp::parse::{parse_i64, Limits, RequestParser};
use crate::resp::{Reply, OK};
use crate::state::{lock, now_ms, ClientHandle, ServerState};
use crate::subscriptions::{Class, Subscriptions};
use crate::writer::{refused_reply, Job, Queued, Watched};

/// Writes gathered before they are sent to the writer regardless of what follows.
const MAX_GROUP: usize = 1024;
/// Buffer capacity a connection keeps between requests; larger buffers are released.
const BUF_KEEP: usize = 256 * 1024;
/// Output bytes buffered before they are written to the socket mid-batch.
const OUT_FLUSH: usize = 256 * 1024;

/// CLIENT REPLY state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyMode {
    On,
    Off,
    Skip,
}

/// What to do after a command.
#[derive(Debug)]
enum Flow {
    Continue,
    /// A blocking command went to the writer: send what is buffered, then wait for its
    /// reply (watching the socket for a disconnect).
    Block(oneshot::Receiver<Reply>),
    /// Send what is buffered, then close.
    Close,
}

/// A MULTI in progress.
#[derive(Debug, Default)]
struct Multi {
    cmds: Vec<Vec<Bytes>>,
    /// A queued command was rejected: EXEC will answer EXECABORT.
    failed: bool,
}

/// One connection's session.
struct Conn {
    state: Arc<ServerState>,
    handle: Arc<ClientHandle>,
    db: usize,
    proto: u8,
    authenticated: bool,
    name: String,
    reply_mode: ReplyMode,
    multi: Option<Multi>,
    watched: Vec<Watched>,
    dirty: Arc<AtomicBool>,
    /// Write commands not yet sent to the writer, and whether each reply is suppressed.
    group: Vec<Queued>,
    group_silent: Vec<bool>,
    /// The snapshot consecutive reads of one batch of requests share; dropped before any
    /// write is sent (so later reads see it) and before the connection waits for input.
    read_tx: Option<rivet::Tx>,
    /// When the current command started.
    started: Instant,
    /// Pub/sub subscriptions, from the first (P|S)SUBSCRIBE on.
    subs: Option<Subscriptions>,
}

/// Serves one accepted connection until it closes, is killed, or the server shuts down.
pub async fn serve(mut socket: TcpStream, state: Arc<ServerState>, handle: Arc<ClientHandle>) {
    let _ = socket.set_nodelay(true);
    let mut conn = Conn {
        authenticated: state.config.requirepass().is_none(),
        state: state.clone(),
        handle: handle.clone(),
        db: 0,
        proto: 2,
        name: String::new(),
        reply_mode: ReplyMode::On,
        multi: None,
        watched: Vec::new(),
        dirty: Arc::new(AtomicBool::new(false)),
        group: Vec::new(),
        group_silent: Vec::new(),
        read_tx: None,
        started: Instant::now(),
        subs: None,
    };
    let mut io = Buffers::new();
    let mut parser = RequestParser::new();
    let mut shutdown = state.shutdown.subscribe();
    'conn: loop {
        let mut close = false;
        loop {
            let limits = Limits {
                max_bulk_len: state.config.proto_max_bulk_len(),
                authenticated: conn.authenticated,
            };
            match parser.next(&mut io.rbuf, limits) {
                Ok(Some(args)) if args.is_empty() => continue,
                Ok(Some(args)) => match conn.dispatch(args, &mut io.out).await {
                    Flow::Continue => {}
                    Flow::Close => {
                        close = true;
                        break;
                    }
                    Flow::Block(rx) => {
                        if write_out(&mut socket, &mut io.out, &state).await.is_err() {
                            break 'conn;
                        }
                        let waited = wait_parked(
                            &mut socket,
                            &mut io.rbuf,
                            rx,
                            &state,
                            &handle,
                            &mut shutdown,
                        )
                        .await;
                        match waited {
                            Some(r) => conn.emit(&mut io.out, r),
                            None => break 'conn,
                        }
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    conn.flush_writes(&mut io.out).await;
                    conn.drain_messages(&mut io.out);
                    tracing::debug!(client = handle.id, error = %e.0, "protocol error; closing");
                    Reply::Error(format!("ERR {}", e.0)).encode(conn.proto, &mut io.out);
                    close = true;
                    break;
                }
            }
            conn.drain_messages(&mut io.out);
            if io.out.len() >= OUT_FLUSH {
                conn.flush_writes(&mut io.out).await;
                conn.read_tx = None;
                if write_killable(&mut socket, &mut io.out, &state, &handle)
                    .await
                    .is_err()
                {
                    break 'conn;
                }
            }
        }
        conn.flush_writes(&mut io.out).await;
        conn.drain_messages(&mut io.out);
        conn.read_tx = None;
        if write_killable(&mut socket, &mut io.out, &state, &handle)
            .await
            .is_err()
            || close
        {
            break;
        }
        // A subscriber waits for input and for messages alike; pub/sub clients are exempt
        // from the idle `timeout`, as in Redis.
        let more = match conn.subs.as_mut() {
            Some(subs) if subs.active() => {
                io.idle_exempt = true;
                let proto = conn.proto;
                let mut msgs = Vec::new();
                let more = tokio::select! {
                    more = io.next_input(&mut socket, &state, &handle, &mut shutdown) => more,
                    _ = subs.next(proto, &mut msgs) => true,
                };
                io.out.extend_from_slice(&msgs);
                more
            }
            _ => {
                io.idle_exempt = false;
                io.next_input(&mut socket, &state, &handle, &mut shutdown)
                    .await
            }
        };
        if !more {
            break;
        }
    }
    conn.subs = None;
    conn.unwatch_all();
    lock(&state.clients).remove(&handle.id);
}

/// A connection's request and reply buffers (Redis and Memcached connections alike).
pub(crate) struct Buffers {
    /// Request bytes read and not yet parsed.
    pub rbuf: BytesMut,
    /// Replies not yet written.
    pub out: Vec<u8>,
    /// `rbuf` held a big request since it was last reallocated. (After `split_to`,
    /// `capacity()` shows only the tail, so it cannot tell.)
    big_input: bool,
    /// The idle `timeout` does not apply (a pub/sub client).
    pub idle_exempt: bool,
}

impl Buffers {
    pub(crate) fn new() -> Buffers {
        Buffers {
            rbuf: BytesMut::with_capacity(16 * 1024),
            out: Vec::with_capacity(16 * 1024),
            big_input: false,
            idle_exempt: false,
        }
    }

    /// Between two batches of requests: gives back the memory a big request or reply left
    /// behind (a connection that once sent or fetched a 100 MB value must not hold 100 MB
    /// while it idles), then waits for more input. False when the connection must close
    /// (killed, shutting down, or see [`read_more`]).
    pub(crate) async fn next_input(
        &mut self,
        socket: &mut TcpStream,
        state: &ServerState,
        handle: &ClientHandle,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        if self.rbuf.is_empty() && (self.big_input || self.rbuf.capacity() > BUF_KEEP) {
            self.rbuf = BytesMut::with_capacity(16 * 1024);
            self.big_input = false;
        }
        if self.out.capacity() > BUF_KEEP {
            self.out = Vec::with_capacity(16 * 1024);
        }
        if handle.killed.load(Ordering::Acquire) || state.shutting_down() {
            return false;
        }
        let idle = if self.idle_exempt {
            0
        } else {
            state.config.timeout()
        };
        if read_more(socket, &mut self.rbuf, idle, state, handle, shutdown)
            .await
            .is_none()
        {
            return false;
        }
        self.big_input |= self.rbuf.len() > BUF_KEEP;
        true
    }
}

/// Reads more request bytes into `rbuf` (Redis and Memcached connections alike). `None`
/// when the connection must close: the client went away, was killed, stayed idle past
/// `timeout`, the server is shutting down, or the query buffer passed its limit.
async fn read_more(
    socket: &mut TcpStream,
    rbuf: &mut BytesMut,
    idle: u64,
    state: &ServerState,
    handle: &ClientHandle,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<usize> {
    let idle_sleep = async {
        if idle == 0 {
            std::future::pending::<()>().await
        } else {
            tokio::time::sleep(Duration::from_secs(idle)).await
        }
    };
    let n = tokio::select! {
        r = socket.read_buf(rbuf) => match r {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        },
        _ = handle.kill_notify.notified() => return None,
        _ = shutdown.changed() => return None,
        _ = idle_sleep => {
            tracing::debug!(client = handle.id, "closing idle client");
            return None;
        }
    };
    state
        .stats
        .net_input_bytes
        .fetch_add(n as u64, Ordering::Relaxed);
    if rbuf.len() as u64 > state.config.query_buffer_limit() {
        tracing::warn!(
            client = handle.id,
            bytes = rbuf.len(),
            "closing client that reached max query buffer length"
        );
        return None;
    }
    Some(n)
}

/// Waits for the reply of a parked blocking command. Bytes the client sends meanwhile are
/// kept for later (Redis reads nothing from a blocked client either). `None` when the
/// client goes away, is killed, or the server shuts down: the writer is told to forget it.
async fn wait_parked(
    socket: &mut TcpStream,
    rbuf: &mut BytesMut,
    mut rx: oneshot::Receiver<Reply>,
    state: &ServerState,
    handle: &ClientHandle,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Reply> {
    loop {
        tokio::select! {
            r = &mut rx => {
                return Some(r.unwrap_or_else(|_| err(WRITER_GONE)));
            }
            n = socket.read_buf(rbuf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) if rbuf.len() as u64 > state.config.query_buffer_limit() => break,
                Ok(_) => {}
            },
            _ = handle.kill_notify.notified() => break,
            _ = shutdown.changed() => break,
        }
    }
    drop(rx);
    state.writer.send(Job::Unblock {
        id: handle.id,
        error: false,
        done: None,
    });
    None
}

/// The reply when the writer dropped a job without answering: it stopped (shutdown), or a
/// command hit an internal error and its batch was rolled back.
const WRITER_GONE: &str =
    "ERR the write was not applied: the server is shutting down or hit an internal error (see its log)";

/// Writes `out` to the socket (counting the bytes) and clears it.
pub(crate) async fn write_out(
    socket: &mut TcpStream,
    out: &mut Vec<u8>,
    state: &ServerState,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    socket.write_all(out).await?;
    state
        .stats
        .net_output_bytes
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    out.clear();
    Ok(())
}

/// Like [`write_out`], but gives up when the client is killed meanwhile (a subscriber that
/// stopped reading is killed by its output buffer limit while this write waits).
async fn write_killable(
    socket: &mut TcpStream,
    out: &mut Vec<u8>,
    state: &ServerState,
    handle: &ClientHandle,
) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    tokio::select! {
        r = write_out(socket, out, state) => r,
        _ = handle.kill_notify.notified() => {
            // Keep the wake-up for the connection's other waits.
            handle.kill_notify.notify_one();
            Err(std::io::Error::other("client killed"))
        }
    }
}

impl Conn {
    /// Appends the pub/sub messages queued for this connection to `out`.
    fn drain_messages(&mut self, out: &mut Vec<u8>) {
        if let Some(s) = self.subs.as_mut() {
            s.drain(self.proto, out);
        }
    }

    /// In pub/sub mode (RESP2 restricts the commands allowed).
    fn subscribed(&self) -> bool {
        self.subs.as_ref().is_some_and(|s| s.active())
    }

    /// The (P|S)(UN)SUBSCRIBE commands: their confirmations are pushed whatever CLIENT
    /// REPLY says, as in Redis.
    fn subscription(&mut self, name: &str, a: &[Bytes], out: &mut Vec<u8>) {
        let _ = self.silent_next();
        let (class, subscribe) = match name {
            "subscribe" => (Class::Channel, true),
            "unsubscribe" => (Class::Channel, false),
            "psubscribe" => (Class::Pattern, true),
            "punsubscribe" => (Class::Pattern, false),
            "ssubscribe" => (Class::Shard, true),
            _ => (Class::Shard, false),
        };
        let subs = self
            .subs
            .get_or_insert_with(|| Subscriptions::new(self.state.clone(), self.handle.clone()));
        if subscribe {
            subs.subscribe(class, &a[1..], self.proto, out);
        } else {
            subs.unsubscribe(class, &a[1..], self.proto, Some(out));
        }
    }

    /// Encodes `r` unless CLIENT REPLY suppresses it.
    fn emit(&mut self, out: &mut Vec<u8>, r: Reply) {
        let silent = self.silent_next();
        self.state.stats.count_reply_errors(&r);
        if !silent {
            r.encode(self.proto, out);
        }
    }

    /// Whether the reply now due is suppressed, consuming a SKIP.
    fn silent_next(&mut self) -> bool {
        match self.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::Skip => {
                self.reply_mode = ReplyMode::On;
                true
            }
        }
    }

    /// Sends gathered writes to the writer and appends their replies, in order.
    async fn flush_writes(&mut self, out: &mut Vec<u8>) {
        if self.group.is_empty() {
            return;
        }
        self.read_tx = None;
        let cmds = std::mem::take(&mut self.group);
        let silent = std::mem::take(&mut self.group_silent);
        let n = cmds.len();
        let (tx, rx) = oneshot::channel();
        let job = Job::Commands {
            client: (self.handle.id, self.proto),
            cmds,
            reply: tx,
        };
        let replies = if self.state.writer.send(job) {
            rx.await.unwrap_or_else(|_| vec![err(WRITER_GONE); n])
        } else {
            vec![err("ERR server is shutting down"); n]
        };
        for (r, s) in replies.into_iter().zip(silent) {
            self.state.stats.count_reply_errors(&r);
            if !s {
                r.encode(self.proto, out);
            }
        }
    }

    /// CLIENT LIST's `multi=` goes back to -1 as soon as the transaction ends (it is
    /// otherwise refreshed only when the next command starts).
    fn multi_ended(&self) {
        lock(&self.handle.info).multi = -1;
    }

    fn note_command(&mut self, name: &str) {
        // The command's start serves CLIENT LIST's idle time and the command statistics.
        self.started = Instant::now();
        let mut info = lock(&self.handle.info);
        info.last_cmd.clear();
        info.last_cmd.push_str(name);
        info.last_active = self.started;
        info.db = self.db;
        info.multi = self
            .multi
            .as_ref()
            .map(|m| m.cmds.len() as i64)
            .unwrap_or(-1);
    }

    /// Runs or queues one request.
    async fn dispatch(&mut self, args: Vec<Bytes>, out: &mut Vec<u8>) -> Flow {
        // Messages published before this request was read go out before its reply.
        self.drain_messages(out);
        let spec = commands::lookup(&args[0]);
        // Read once: the checks below must agree with the grouping decision.
        let busy = self.state.scripts.busy();
        let refused = self.state.writer.refused();
        // Only a valid write outside MULTI joins the pending group; any other reply (errors
        // included) is written now, so the group's replies must go out first to keep replies
        // in request order.
        let joins_group = spec.is_some_and(|s| {
            commands::is_write(s, &args)
                && s.flags & (CONN | BLOCKING) == 0
                && arity_ok(s.arity, args.len())
                && self.authenticated
                && self.multi.is_none()
                && !busy
                && refused.is_none()
        });
        if !joins_group {
            self.flush_writes(out).await;
        }
        let Some(spec) = spec else {
            self.fail_multi();
            let r = commands::unknown_command(&args);
            self.emit(out, r);
            return Flow::Continue;
        };
        self.note_command(spec.name);
        tracing::trace!(
            client = self.handle.id,
            db = self.db,
            cmd = spec.name,
            argc = args.len(),
            "command"
        );
        if !arity_ok(spec.arity, args.len()) {
            self.reject(spec, arity_error(spec.name), out);
            return Flow::Continue;
        }
        if !self.authenticated && spec.flags & NO_AUTH == 0 {
            self.reject(spec, err("NOAUTH Authentication required."), out);
            return Flow::Continue;
        }
        if busy && !crate::scripting::allowed_while_busy(spec.name, &args) {
            self.reject(spec, self.state.scripts.busy_reply(), out);
            return Flow::Continue;
        }
        if self.proto == 2 && self.subscribed() {
            if !matches!(
                spec.name,
                "subscribe"
                    | "ssubscribe"
                    | "unsubscribe"
                    | "sunsubscribe"
                    | "psubscribe"
                    | "punsubscribe"
                    | "ping"
                    | "quit"
                    | "reset"
            ) {
                let r = Reply::err(format!("ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", spec.name));
                self.reject(spec, r, out);
                return Flow::Continue;
            }
            if spec.name == "ping" && self.multi.is_none() {
                let msg = args.get(1).map_or(&b""[..], |m| m.as_ref());
                self.state.record_call(spec, 0, false);
                self.emit(
                    out,
                    Reply::Array(vec![Reply::bulk(b"pong"), Reply::bulk(msg)]),
                );
                return Flow::Continue;
            }
        }
        if let Some(m) = &mut self.multi {
            if spec.flags & NO_MULTI != 0 {
                m.failed = true;
                self.emit(out, err("ERR Command not allowed inside a transaction"));
                return Flow::Continue;
            }
            if spec.flags & NO_QUEUE == 0 {
                m.cmds.push(args);
                self.emit(out, Reply::Status("QUEUED"));
                return Flow::Continue;
            }
        }
        if spec.flags & CONN != 0 {
            self.flush_writes(out).await;
            self.read_tx = None;
            return self.connection_command(spec, &args, out).await;
        }
        if commands::is_write(spec, &args) || spec.flags & BLOCKING != 0 {
            if let Some(why) = refused {
                self.emit(out, refused_reply(&why));
                return Flow::Continue;
            }
            if spec.flags & BLOCKING != 0 {
                self.flush_writes(out).await;
                self.read_tx = None;
                let (tx, rx) = oneshot::channel();
                let job = Job::Block {
                    client: (self.handle.id, self.proto),
                    db: self.db,
                    args,
                    reply: tx,
                };
                if !self.state.writer.send(job) {
                    self.emit(out, err("ERR server is shutting down"));
                    return Flow::Continue;
                }
                return Flow::Block(rx);
            }
            let silent = self.silent_next();
            self.group.push(Queued { db: self.db, args });
            self.group_silent.push(silent);
            if self.group.len() >= MAX_GROUP {
                self.flush_writes(out).await;
            }
            return Flow::Continue;
        }
        self.flush_writes(out).await;
        if spec.name == "debug" && args.len() == 3 && is(&args[1], "sleep") {
            self.read_tx = None;
            let secs = String::from_utf8_lossy(&args[2])
                .parse::<f64>()
                .unwrap_or(0.0);
            tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0))).await;
            self.emit(out, OK);
            return Flow::Continue;
        }
        let r = self.run_read(spec, &args);
        // A RESP3 client that publishes to itself gets the message before the reply, as
        // Redis sends it.
        self.drain_messages(out);
        self.emit(out, r);
        Flow::Continue
    }

    /// Refuses a command before it runs (Redis's `rejectCommand`): inside MULTI the
    /// transaction is flagged, and a refused EXEC discards any transaction and unwatches,
    /// answering `EXECABORT`.
    fn reject(&mut self, spec: &Spec, r: Reply, out: &mut Vec<u8>) {
        self.state.record_rejected(spec);
        // Redis aborts with EXECABORT whether or not a MULTI is open.
        if spec.name == "exec" {
            self.multi = None;
            self.multi_ended();
            self.unwatch_all();
            let msg = match &r {
                Reply::Error(e) => e.strip_prefix("ERR ").unwrap_or(e).to_string(),
                _ => String::new(),
            };
            self.emit(
                out,
                Reply::err(format!("EXECABORT Transaction discarded because of: {msg}")),
            );
            return;
        }
        self.fail_multi();
        self.emit(out, r);
    }

    fn fail_multi(&mut self) {
        if let Some(m) = &mut self.multi {
            m.failed = true;
        }
    }

    /// Runs a read-only (or state-only) command in its own read transaction.
    fn run_read(&mut self, spec: &'static Spec, args: &[Bytes]) -> Reply {
        let Some(handler) = spec.handler else {
            return err("ERR internal: command has no handler");
        };
        let t0 = self.started;
        // The wall clock itself, as the writer reads it: a derived time could run a
        // millisecond behind and show a TTL longer than the one just set.
        let now = now_ms();
        if self.read_tx.is_none() {
            match self.state.store.db().begin_read() {
                Ok(tx) => self.read_tx = Some(tx),
                Err(e) => return Reply::err(format!("ERR {e}")),
            }
        }
        let Some(tx) = self.read_tx.take() else {
            return err("ERR internal: no read transaction");
        };
        let mut ctx = Ctx {
            store: &self.state.store,
            tx: &tx,
            state: &self.state,
            db: self.db,
            client_id: self.handle.id,
            proto: self.proto,
            now_ms: now,
            log: None,
            may_block: false,
            would_block: None,
        };
        let r = match handler(&mut ctx, args) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, command = spec.name, "read failed");
                Reply::err(format!("ERR {e}"))
            }
        };
        self.db = ctx.db;
        self.read_tx = Some(tx);
        self.state
            .record_call(spec, t0.elapsed().as_micros() as u64, r.is_error());
        self.state
            .stats
            .commands_processed
            .fetch_add(1, Ordering::Relaxed);
        r
    }

    fn unwatch_all(&mut self) {
        if self.watched.is_empty() {
            self.dirty.store(false, Ordering::Release);
            return;
        }
        let keys: Vec<(usize, Vec<u8>)> = self.watched.drain(..).map(|w| (w.db, w.key)).collect();
        self.state.watches.unwatch(self.handle.id, &keys);
        self.dirty.store(false, Ordering::Release);
    }

    /// Commands that act on the session itself.
    async fn connection_command(
        &mut self,
        spec: &'static Spec,
        a: &[Bytes],
        out: &mut Vec<u8>,
    ) -> Flow {
        self.state
            .stats
            .commands_processed
            .fetch_add(1, Ordering::Relaxed);
        self.state.record_call(spec, 0, false);
        let r = match spec.name {
            "auth" => self.auth(a),
            "hello" => self.hello(a),
            "quit" => {
                self.emit(out, OK);
                return Flow::Close;
            }
            "reset" => {
                self.multi = None;
                self.unwatch_all();
                if let Some(s) = self.subs.as_mut() {
                    s.clear();
                }
                self.db = 0;
                self.proto = 2;
                self.name.clear();
                self.reply_mode = ReplyMode::On;
                self.authenticated = self.state.config.requirepass().is_none();
                {
                    let mut info = lock(&self.handle.info);
                    info.name.clear();
                    info.resp = 2;
                }
                self.multi_ended();
                Reply::Status("RESET")
            }
            "multi" => {
                if self.multi.is_some() {
                    err("ERR MULTI calls can not be nested")
                } else {
                    self.multi = Some(Multi::default());
                    OK
                }
            }
            "discard" => match self.multi.take() {
                None => err("ERR DISCARD without MULTI"),
                Some(_) => {
                    self.multi_ended();
                    self.unwatch_all();
                    OK
                }
            },
            "exec" => self.exec().await,
            "watch" => self.watch(a),
            "unwatch" => {
                self.unwatch_all();
                OK
            }
            "client" if a.len() >= 2 && is(&a[1], "unblock") => self.client_unblock(a).await,
            "client" => return self.client(a, out),
            "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ssubscribe"
            | "sunsubscribe" => {
                self.subscription(spec.name, a, out);
                return Flow::Continue;
            }
            "shutdown" => return self.shutdown(a, out),
            _ => err("ERR internal: unhandled connection command"),
        };
        self.emit(out, r);
        Flow::Continue
    }

    async fn exec(&mut self) -> Reply {
        let Some(m) = self.multi.take() else {
            return err("ERR EXEC without MULTI");
        };
        self.multi_ended();
        if m.failed {
            self.unwatch_all();
            return err("EXECABORT Transaction discarded because of previous errors.");
        }
        if let Some(why) = self.state.writer.refused() {
            let writes = m
                .cmds
                .iter()
                .any(|c| commands::lookup(&c[0]).is_some_and(|s| s.flags & WRITE != 0));
            if writes {
                self.unwatch_all();
                return refused_reply(&why);
            }
        }
        let (tx, rx) = oneshot::channel();
        let job = Job::Exec {
            client: (self.handle.id, self.proto),
            db: self.db,
            cmds: m.cmds,
            dirty: self.dirty.clone(),
            watched: self.watched.clone(),
            reply: tx,
        };
        let r = if self.state.writer.send(job) {
            match rx.await {
                Ok((r, db)) => {
                    self.db = db;
                    r
                }
                Err(_) => err(WRITER_GONE),
            }
        } else {
            err("ERR server is shutting down")
        };
        self.unwatch_all();
        r
    }

    fn watch(&mut self, a: &[Bytes]) -> Reply {
        if self.multi.is_some() {
            return err("ERR WATCH inside MULTI is not allowed");
        }
        let tx = match self.state.store.db().begin_read() {
            Ok(tx) => tx,
            Err(e) => return Reply::err(format!("ERR {e}")),
        };
        let now = now_ms();
        for k in &a[1..] {
            if self
                .watched
                .iter()
                .any(|w| w.db == self.db && w.key == k.as_ref())
            {
                continue;
            }
            let was_expired = match self
                .state
                .store
                .view(&tx, self.db)
                .and_then(|v| v.lookup_raw(k))
            {
                Ok(h) => h.is_some_and(|h| h.is_expired(now)),
                Err(e) => return Reply::err(format!("ERR {e}")),
            };
            self.state
                .watches
                .watch(self.handle.id, &self.dirty, self.db, k, was_expired);
            self.watched.push(Watched {
                db: self.db,
                key: k.to_vec(),
                was_expired,
            });
        }
        OK
    }

    fn password_matches(&self, user: Option<&[u8]>, pass: &[u8]) -> Reply {
        let Some(expected) = self.state.config.requirepass() else {
            if user.is_none() {
                return err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
            }
            // No password: the default user accepts any password.
            return if user == Some(b"default") {
                OK
            } else {
                wrongpass()
            };
        };
        if user.is_some_and(|u| u != b"default") || pass != expected.as_bytes() {
            return wrongpass();
        }
        OK
    }

    fn auth(&mut self, a: &[Bytes]) -> Reply {
        let r = match a.len() {
            2 => self.password_matches(None, &a[1]),
            3 => self.password_matches(Some(&a[1]), &a[2]),
            _ => return err("ERR syntax error"),
        };
        if r == OK {
            self.authenticated = true;
        }
        r
    }

    fn hello(&mut self, a: &[Bytes]) -> Reply {
        let mut proto = self.proto;
        if a.len() >= 2 {
            let Ok(v) = int(&a[1]) else {
                return err("ERR Protocol version is not an integer or out of range");
            };
            if !(2..=3).contains(&v) {
                return err("NOPROTO unsupported protocol version");
            }
            proto = v as u8;
        }
        let mut i = 2;
        let mut setname = None;
        while i < a.len() {
            if is(&a[i], "auth") && i + 2 < a.len() {
                let r = self.password_matches(Some(&a[i + 1]), &a[i + 2]);
                if r != OK {
                    return r;
                }
                self.authenticated = true;
                i += 3;
            } else if is(&a[i], "setname") && i + 1 < a.len() {
                setname = Some(a[i + 1].clone());
                i += 2;
            } else {
                return Reply::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&a[i])
                ));
            }
        }
        if !self.authenticated {
            return err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        if let Some(n) = setname {
            if let Err(r) = self.set_name(&n) {
                return r;
            }
        }
        self.proto = proto;
        lock(&self.handle.info).resp = proto;
        Reply::Map(vec![
            (Reply::bulk(b"server"), Reply::bulk(b"redis")),
            (
                Reply::bulk(b"version"),
                Reply::bulk(commands::server::REDIS_COMPAT_VERSION.as_bytes()),
            ),
            (Reply::bulk(b"proto"), Reply::Int(proto as i64)),
            (Reply::bulk(b"id"), Reply::Int(self.handle.id as i64)),
            (Reply::bulk(b"mode"), Reply::bulk(b"standalone")),
            (Reply::bulk(b"role"), Reply::bulk(b"master")),
            (Reply::bulk(b"modules"), Reply::Array(vec![])),
        ])
    }

    fn set_name(&mut self, n: &[u8]) -> Result<(), Reply> {
        if n.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
            return Err(err(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        self.name = String::from_utf8_lossy(n).to_string();
        lock(&self.handle.info).name = self.name.clone();
        Ok(())
    }

    fn client(&mut self, a: &[Bytes], out: &mut Vec<u8>) -> Flow {
        let sub = lower(&a[1]);
        let r = match (sub.as_str(), a.len()) {
            ("id", 2) => Reply::Int(self.handle.id as i64),
            ("getname", 2) => {
                if self.name.is_empty() {
                    Reply::Nil
                } else {
                    Reply::bulk(self.name.as_bytes())
                }
            }
            ("setname", 3) => match self.set_name(&a[2]) {
                Ok(()) => OK,
                Err(r) => r,
            },
            ("setinfo", 4) => OK,
            ("info", 2) => Reply::Verbatim(client_line(&self.handle)),
            ("list", _) => self.client_list(&a[2..]),
            ("kill", _) => self.client_kill(&a[2..]),
            ("no-evict", 3) | ("no-touch", 3) => {
                let on = if is(&a[2], "on") {
                    true
                } else if is(&a[2], "off") {
                    false
                } else {
                    self.emit(out, err("ERR syntax error"));
                    return Flow::Continue;
                };
                let mut info = lock(&self.handle.info);
                if sub == "no-evict" {
                    info.no_evict = on;
                } else {
                    info.no_touch = on;
                }
                OK
            }
            ("reply", 3) => {
                if is(&a[2], "on") {
                    self.reply_mode = ReplyMode::On;
                    OK
                } else if is(&a[2], "off") {
                    self.reply_mode = ReplyMode::Off;
                    return Flow::Continue;
                } else if is(&a[2], "skip") {
                    if self.reply_mode == ReplyMode::On {
                        self.reply_mode = ReplyMode::Skip;
                    }
                    return Flow::Continue;
                } else {
                    err("ERR syntax error")
                }
            }
            ("help", 2) => Reply::Array(
                [
                    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "ID",
                    "GETNAME",
                    "SETNAME <name>",
                    "INFO",
                    "LIST [TYPE normal] [ID id ...]",
                    "KILL <ip:port> | KILL <option> <value> [...]",
                    "NO-EVICT (ON|OFF)",
                    "NO-TOUCH (ON|OFF)",
                    "REPLY (ON|OFF|SKIP)",
                    "HELP",
                ]
                .iter()
                .map(|s| Reply::StatusOwned(s.to_string()))
                .collect(),
            ),
            (
                "id" | "getname" | "setname" | "info" | "no-evict" | "no-touch" | "reply" | "help"
                | "setinfo",
                _,
            ) => arity_error(&format!("client|{sub}")),
            _ => unknown_subcommand("client", &a[1]),
        };
        self.emit(out, r);
        Flow::Continue
    }

    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if that client was parked by a blocking command.
    async fn client_unblock(&mut self, a: &[Bytes]) -> Reply {
        if a.len() < 3 || a.len() > 4 {
            return crate::commands::arity_error("client|unblock");
        }
        let Some(id) = parse_i64(&a[2]) else {
            return err("ERR value is not an integer or out of range");
        };
        let error = match a.get(3) {
            None => false,
            Some(o) if is(o, "timeout") => false,
            Some(o) if is(o, "error") => true,
            Some(_) => return err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
        };
        let (tx, rx) = oneshot::channel();
        let job = Job::Unblock {
            id: id as u64,
            error,
            done: Some(tx),
        };
        if !self.state.writer.send(job) {
            return Reply::Int(0);
        }
        Reply::Int(rx.await.unwrap_or(false) as i64)
    }

    fn client_list(&self, a: &[Bytes]) -> Reply {
        let mut ids: Option<Vec<u64>> = None;
        let mut kind: Option<String> = None;
        let mut i = 0;
        while i < a.len() {
            if is(&a[i], "type") && i + 1 < a.len() {
                let t = lower(&a[i + 1]);
                if !matches!(
                    t.as_str(),
                    "normal" | "master" | "replica" | "slave" | "pubsub"
                ) {
                    return Reply::err(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(&a[i + 1])
                    ));
                }
                kind = Some(t);
                i += 2;
            } else if is(&a[i], "id") && i + 1 < a.len() {
                let mut v = Vec::new();
                for x in &a[i + 1..] {
                    match int(x) {
                        Ok(n) if n > 0 => v.push(n as u64),
                        _ => return err("ERR Invalid client ID"),
                    }
                }
                ids = Some(v);
                i = a.len();
            } else {
                return err("ERR syntax error");
            }
        }
        let clients: Vec<Arc<ClientHandle>> = {
            let m = lock(&self.state.clients);
            let mut v: Vec<_> = m.values().cloned().collect();
            v.sort_by_key(|c| c.id);
            v
        };
        let mut text = String::new();
        for c in clients {
            if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
                continue;
            }
            if let Some(k) = &kind {
                let pubsub = lock(&c.info).pubsub();
                let matches = match k.as_str() {
                    "normal" => !pubsub,
                    "pubsub" => pubsub,
                    _ => false,
                };
                if !matches {
                    continue;
                }
            }
            text.push_str(&client_line(&c));
        }
        Reply::Verbatim(text)
    }

    fn client_kill(&self, a: &[Bytes]) -> Reply {
        // Old form: CLIENT KILL addr:port
        if a.len() == 1 {
            let addr = String::from_utf8_lossy(&a[0]).to_string();
            let target = lock(&self.state.clients)
                .values()
                .find(|c| c.addr == addr)
                .cloned();
            return match target {
                Some(c) => {
                    kill(&c);
                    OK
                }
                None => err("ERR No such client"),
            };
        }
        if a.is_empty() || !a.len().is_multiple_of(2) {
            return err("ERR syntax error");
        }
        let mut id = None;
        let mut addr = None;
        let mut laddr = None;
        let mut skipme = true;
        let mut kind: Option<&str> = None;
        for p in a.chunks(2) {
            let v = String::from_utf8_lossy(&p[1]).to_string();
            match lower(&p[0]).as_str() {
                "id" => match int(&p[1]) {
                    Ok(n) if n > 0 => id = Some(n as u64),
                    _ => return err("ERR client-id should be greater than 0"),
                },
                "addr" => addr = Some(v),
                "laddr" => laddr = Some(v),
                "user" => {
                    if v != "default" {
                        return Reply::err(format!("ERR No such user '{v}'"));
                    }
                }
                "skipme" => match v.to_ascii_lowercase().as_str() {
                    "yes" => skipme = true,
                    "no" => skipme = false,
                    _ => return err("ERR syntax error"),
                },
                "type" => match v.to_ascii_lowercase().as_str() {
                    "normal" => kind = Some("normal"),
                    "pubsub" => kind = Some("pubsub"),
                    "master" | "replica" | "slave" => kind = Some("replica"),
                    _ => return Reply::err(format!("ERR Unknown client type '{v}'")),
                },
                "maxage" => {}
                _ => return err("ERR syntax error"),
            }
        }
        if kind == Some("replica") {
            return Reply::Int(0);
        }
        let targets: Vec<Arc<ClientHandle>> = lock(&self.state.clients)
            .values()
            .filter(|c| id.is_none_or(|i| c.id == i))
            .filter(|c| addr.as_ref().is_none_or(|a| &c.addr == a))
            .filter(|c| laddr.as_ref().is_none_or(|a| &c.laddr == a))
            .filter(|c| !(skipme && c.id == self.handle.id))
            .filter(|c| kind.is_none_or(|k| (k == "pubsub") == lock(&c.info).pubsub()))
            .cloned()
            .collect();
        for c in &targets {
            kill(c);
        }
        Reply::Int(targets.len() as i64)
    }

    fn shutdown(&mut self, a: &[Bytes], out: &mut Vec<u8>) -> Flow {
        for o in &a[1..] {
            match lower(o).as_str() {
                "nosave" | "save" | "now" | "force" => {}
                "abort" => {
                    self.emit(out, err("ERR No shutdown in progress."));
                    return Flow::Continue;
                }
                _ => {
                    self.emit(out, err("ERR syntax error"));
                    return Flow::Continue;
                }
            }
        }
        tracing::info!(client = self.handle.id, "SHUTDOWN requested");
        let _ = self.state.shutdown.send(true);
        Flow::Close
    }
}

fn wrongpass() -> Reply {
    err("WRONGPASS invalid username-password pair or user is disabled.")
}

fn kill(c: &ClientHandle) {
    c.killed.store(true, Ordering::Release);
    c.kill_notify.notify_one();
}

/// One CLIENT LIST line, with Redis's field names.
fn client_line(c: &ClientHandle) -> String {
    let info = lock(&c.info).clone();
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}\n",
        c.id,
        c.addr,
        c.laddr,
        info.name,
        c.created.elapsed().as_secs(),
        info.last_active.elapsed().as_secs(),
        if info.pubsub() { "P" } else { "N" },
        info.db,
        info.sub,
        info.psub,
        info.ssub,
        info.multi,
        info.last_cmd,
        info.resp,
    )
}
