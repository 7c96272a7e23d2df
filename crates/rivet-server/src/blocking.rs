//! Clients parked by blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP, XREAD and XREADGROUP with BLOCK), owned by the writer thread.
//!
//! A blocking command is sent to the writer as its own job. If it finds something to serve
//! it answers like its non-blocking form; otherwise the writer parks the client here with
//! the keys it waits on. Whenever a write touches one of those keys, the writer runs the
//! parked commands again, first come first served, inside the same transaction and right
//! after the command that made the key ready (as Redis does after each command), and sends
//! their replies after the commit like any other write. Parked commands whose deadline
//! passes get their timeout reply from the writer loop; a client that disconnects or is
//! unblocked with CLIENT UNBLOCK is removed at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::resp::Reply;
use crate::state::ServerState;
use crate::store::Kind;

/// What a blocking command that found nothing to serve asks for.
#[derive(Debug, Clone)]
pub struct WouldBlock {
    /// The keys to wait on (in the command's database).
    pub keys: Vec<Vec<u8>>,
    /// The type a key must hold to serve the client (a list, or a sorted set for BZ*).
    pub kind: Kind,
    /// When to give up (`None`: never).
    pub deadline: Option<Instant>,
    /// The reply on timeout (a null array, or a null bulk string for BLMOVE/BRPOPLPUSH).
    pub timeout_reply: Reply,
    /// The command to park instead of the one sent (XREAD parks with `$` resolved to the
    /// stream's last id at the time it first ran).
    pub park_args: Option<Vec<Bytes>>,
}

/// A parked client.
pub struct Parked {
    /// Client id and protocol version.
    pub client: (u64, u8),
    /// Database the command runs in.
    pub db: usize,
    /// The command.
    pub args: Vec<Bytes>,
    /// What it waits for.
    pub wait: WouldBlock,
    /// Where the reply goes.
    pub reply: oneshot::Sender<Reply>,
}

/// Every parked client, by key, in arrival order.
#[derive(Default)]
pub struct Registry {
    parked: HashMap<u64, Parked>,
    by_key: HashMap<(usize, Vec<u8>), VecDeque<u64>>,
    /// Keys written since the last serve pass that some client waits on.
    ready: VecDeque<(usize, Vec<u8>)>,
}

impl Registry {
    /// Whether no client is parked.
    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    /// Parks a client (unless it already went away).
    pub fn park(&mut self, state: &ServerState, p: Parked) {
        if p.reply.is_closed() {
            return;
        }
        let id = p.client.0;
        for k in &p.wait.keys {
            let q = self.by_key.entry((p.db, k.clone())).or_default();
            if !q.contains(&id) {
                q.push_back(id);
            }
        }
        self.parked.insert(id, p);
        state.stats.blocked_clients.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes client `id`; returns its entry if it was parked.
    pub fn remove(&mut self, state: &ServerState, id: u64) -> Option<Parked> {
        let p = self.parked.remove(&id)?;
        for k in &p.wait.keys {
            let slot = (p.db, k.clone());
            if let Some(q) = self.by_key.get_mut(&slot) {
                q.retain(|&c| c != id);
                if q.is_empty() {
                    self.by_key.remove(&slot);
                }
            }
        }
        state.stats.blocked_clients.fetch_sub(1, Ordering::Relaxed);
        Some(p)
    }

    /// Notes that `key` of database `db` changed.
    pub fn touched(&mut self, db: usize, key: &[u8]) {
        if self.parked.is_empty() {
            return;
        }
        let slot = (db, key.to_vec());
        if self.by_key.contains_key(&slot) && !self.ready.contains(&slot) {
            self.ready.push_back(slot);
        }
    }

    /// Notes that every key of database `db` may have changed (SWAPDB).
    pub fn touched_db(&mut self, db: usize) {
        let keys: Vec<Vec<u8>> = self
            .by_key
            .keys()
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k.clone())
            .collect();
        for k in keys {
            self.touched(db, &k);
        }
    }

    /// The next key that became ready, if any.
    pub fn next_ready(&mut self) -> Option<(usize, Vec<u8>)> {
        self.ready.pop_front()
    }

    /// The clients waiting on a key, first come first.
    pub fn waiting(&self, db: usize, key: &[u8]) -> Vec<u64> {
        self.by_key
            .get(&(db, key.to_vec()))
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The parked client `id`.
    pub fn get(&self, id: u64) -> Option<&Parked> {
        self.parked.get(&id)
    }

    /// The earliest deadline of any parked client.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.parked.values().filter_map(|p| p.wait.deadline).min()
    }

    /// Answers every client whose deadline passed with its timeout reply.
    pub fn expire(&mut self, state: &ServerState, now: Instant) {
        let due: Vec<u64> = self
            .parked
            .iter()
            .filter(|(_, p)| p.wait.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.remove(state, id) {
                // The parked call is counted now that it is answered (see the writer).
                if let Some(spec) = crate::commands::lookup(&p.args[0]) {
                    state.record_call(spec, 0, false);
                }
                let _ = p.reply.send(p.wait.timeout_reply);
            }
        }
    }

    /// Drops clients whose connection went away.
    pub fn forget_closed(&mut self, state: &ServerState) {
        let gone: Vec<u64> = self
            .parked
            .iter()
            .filter(|(_, p)| p.reply.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(state, id);
        }
    }
}
