//! One Memcached client connection: reads requests, runs them in order, writes replies in
//! order.
//!
//! Consecutive requests that change items (pipelined or not, `noreply` or not) are gathered
//! into one job for the writer, so they share a commit (and its fsync) with every other
//! client's writes; their replies are sent after the commit. A read first waits for this
//! connection's gathered writes (read-your-writes), then runs on a snapshot in this task.
//! When a commit fails, the client gets one `SERVER_ERROR` line and the connection is closed,
//! as memcached does for errors it cannot continue from; when it would grow the file past
//! `--max-file-size`, every request of the batch gets memcached's `SERVER_ERROR out of memory
//! storing object` (even under `noreply`, as memcached sends it) and the connection goes on.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::connection::{write_out, Buffers};
use crate::state::{lock, now_ms, ClientHandle, ServerState};
use crate::writer::Job;

use super::exec::{self, ReadOutcome};
use super::proto::{line, Parsed, Parser, Request};

/// Write requests gathered before they go to the writer regardless of what follows.
const MAX_GROUP: usize = 1024;
/// Output bytes buffered before they are written mid-batch.
const OUT_FLUSH: usize = 256 * 1024;

/// The current Unix second (the clock of every expiry decision).
pub fn now_secs() -> i64 {
    now_ms().div_euclid(1000)
}

struct Session {
    state: Arc<ServerState>,
    handle: Arc<ClientHandle>,
    group: Vec<Request>,
    read_tx: Option<rivet::Tx>,
    /// A commit failed: send what is buffered, then close.
    broken: bool,
}

/// Serves one accepted Memcached connection until it closes, is killed, or the server
/// shuts down.
pub async fn serve(mut socket: TcpStream, state: Arc<ServerState>, handle: Arc<ClientHandle>) {
    let _ = socket.set_nodelay(true);
    let shared = &state.memcached;
    shared
        .stats
        .curr_connections
        .fetch_add(1, Ordering::Relaxed);
    shared
        .stats
        .total_connections
        .fetch_add(1, Ordering::Relaxed);
    let mut parser = Parser::new(shared.max_item_size);
    parser.auth_mode = state.config.requirepass().is_some();
    let mut s = Session {
        state: state.clone(),
        handle: handle.clone(),
        group: Vec::new(),
        read_tx: None,
        broken: false,
    };
    let mut io = Buffers::new();
    let mut shutdown = state.shutdown.subscribe();
    'conn: loop {
        let mut close = false;
        loop {
            match parser.next(&mut io.rbuf) {
                Parsed::More => break,
                Parsed::Close(msg) => {
                    s.flush_writes(&mut io.out).await;
                    if let Some(m) = msg {
                        io.out.extend(line(m, false));
                    }
                    close = true;
                    break;
                }
                Parsed::Request(Request::Quit) => {
                    s.flush_writes(&mut io.out).await;
                    close = true;
                    break;
                }
                Parsed::Request(Request::MetaDump) => {
                    s.flush_writes(&mut io.out).await;
                    if s.metadump(&mut socket, &mut io.out).await.is_err() {
                        break 'conn;
                    }
                }
                Parsed::Request(Request::Auth { user, password }) => {
                    s.flush_writes(&mut io.out).await;
                    let ok = state
                        .config
                        .requirepass()
                        .is_some_and(|p| user == b"default" && password == p.as_bytes());
                    shared.stats.auth_cmds.fetch_add(1, Ordering::Relaxed);
                    if ok {
                        parser.auth_mode = false;
                        io.out.extend(line("STORED", false));
                    } else {
                        shared.stats.auth_errors.fetch_add(1, Ordering::Relaxed);
                        io.out
                            .extend(line("CLIENT_ERROR authentication failure", false));
                    }
                }
                Parsed::Request(req) => s.dispatch(req, &mut io.out).await,
            }
            if s.broken {
                close = true;
                break;
            }
            if io.out.len() >= OUT_FLUSH {
                s.flush_writes(&mut io.out).await;
                s.read_tx = None;
                if write_out(&mut socket, &mut io.out, &state).await.is_err() {
                    break 'conn;
                }
            }
        }
        s.flush_writes(&mut io.out).await;
        s.read_tx = None;
        if write_out(&mut socket, &mut io.out, &state).await.is_err() || close || s.broken {
            break;
        }
        if !io
            .next_input(&mut socket, &state, &handle, &mut shutdown)
            .await
        {
            break;
        }
    }
    shared
        .stats
        .curr_connections
        .fetch_sub(1, Ordering::Relaxed);
    lock(&state.clients).remove(&handle.id);
}

impl Session {
    fn note(&self, req: &Request) {
        let name = match req {
            Request::Get { touch: Some(_), .. } => "mc|gat",
            Request::Get { .. } => "mc|get",
            Request::Store { .. } | Request::TooLarge { .. } => "mc|set",
            Request::Delete { .. } => "mc|delete",
            Request::Arith { .. } => "mc|incr",
            Request::Touch { .. } => "mc|touch",
            Request::FlushAll { .. } => "mc|flush_all",
            Request::Stats(_) => "mc|stats",
            Request::Meta(m) => match m.code {
                b'g' => "mc|mg",
                b's' => "mc|ms",
                b'd' => "mc|md",
                _ => "mc|ma",
            },
            Request::MetaDebug { .. } => "mc|me",
            Request::MetaDump => "mc|lru_crawler",
            Request::Reply(_) | Request::Quit | Request::Auth { .. } => return,
        };
        let mut info = lock(&self.handle.info);
        info.last_cmd.clear();
        info.last_cmd.push_str(name);
        info.last_active = Instant::now();
    }

    async fn dispatch(&mut self, req: Request, out: &mut Vec<u8>) {
        self.note(&req);
        self.state
            .stats
            .commands_processed
            .fetch_add(1, Ordering::Relaxed);
        if let Request::Reply(r) = &req {
            if self.group.is_empty() {
                out.extend_from_slice(r);
            } else {
                // Keeps its place behind the gathered writes.
                self.group.push(req);
            }
            return;
        }
        if req.writes() {
            self.read_tx = None;
            self.group.push(req);
            if self.group.len() >= MAX_GROUP {
                self.flush_writes(out).await;
            }
            return;
        }
        self.flush_writes(out).await;
        if self.broken {
            return;
        }
        if let Request::Stats(args) = &req {
            super::stats::reply(&self.state, args, out);
            return;
        }
        match self.run_read(&req, out) {
            Ok(ReadOutcome::Done) => {}
            Ok(ReadOutcome::NeedsWriter) => {
                self.group.push(req);
                self.flush_writes(out).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "memcached read failed");
                out.extend(line(&format!("SERVER_ERROR {e}"), false));
            }
        }
    }

    fn run_read(&mut self, req: &Request, out: &mut Vec<u8>) -> crate::store::Result<ReadOutcome> {
        if self.read_tx.is_none() {
            self.read_tx = Some(self.state.store.db().begin_read()?);
        }
        let tx = self.read_tx.as_ref().expect("set above");
        let v = self.state.store.memcached(tx);
        let mark = out.len();
        let r = exec::read(&v, &self.state.memcached, now_secs(), req, out);
        if !matches!(r, Ok(ReadOutcome::Done)) {
            out.truncate(mark);
        }
        r
    }

    /// `lru_crawler metadump`: the item lines page by page (each page on a fresh snapshot,
    /// written out before the next, so a dump of millions of items needs no more memory than
    /// one page), then `END`.
    async fn metadump(&mut self, socket: &mut TcpStream, out: &mut Vec<u8>) -> std::io::Result<()> {
        const PAGE: usize = 1000;
        self.read_tx = None;
        let mut cursor = 0;
        loop {
            let page = (|| {
                let tx = self.state.store.db().begin_read()?;
                let v = self.state.store.memcached(&tx);
                exec::metadump_page(&v, &self.state.memcached, now_secs(), cursor, PAGE, out)
            })();
            match page {
                Ok(next) => cursor = next,
                Err(e) => {
                    tracing::error!(error = %e, "memcached metadump failed");
                    out.extend(line(&format!("SERVER_ERROR {e}"), false));
                    return Ok(());
                }
            }
            write_out(socket, out, &self.state).await?;
            if cursor == 0 {
                break;
            }
        }
        out.extend_from_slice(b"END\r\n");
        Ok(())
    }

    /// Sends gathered writes to the writer and appends their replies.
    async fn flush_writes(&mut self, out: &mut Vec<u8>) {
        if self.group.is_empty() {
            return;
        }
        self.read_tx = None;
        let reqs = std::mem::take(&mut self.group);
        let n = reqs.len();
        if let Some(why) = self.state.writer.refused() {
            out.extend(line(
                &format!("SERVER_ERROR writes are refused until restart: {why}"),
                false,
            ));
            self.broken = true;
            return;
        }
        let (tx, rx) = oneshot::channel();
        let job = Job::Memcached { reqs, reply: tx };
        let r = if self.state.writer.send(job) {
            rx.await.unwrap_or_else(|_| {
                Err("the write was not applied: the server is shutting down or hit an internal error (see its log)".into())
            })
        } else {
            Err("server is shutting down".into())
        };
        match r {
            Ok(bytes) => out.extend_from_slice(&bytes),
            // The --max-file-size quota: nothing of the batch was applied; like memcached
            // out of memory, every request gets the error (noreply or not) and the
            // connection goes on.
            Err(why) if why.starts_with("OOM") => {
                for _ in 0..n {
                    out.extend(line("SERVER_ERROR out of memory storing object", false));
                }
            }
            Err(why) => {
                out.extend(line(&format!("SERVER_ERROR {why}"), false));
                self.broken = true;
            }
        }
    }
}
