//! The Redis command table: name, arity, flags, key positions and handler of every command,
//! and the context handlers run in.
//!
//! Handlers are plain functions of a [`Ctx`] (one transaction, the session's database, the
//! time) and the arguments. They run on a connection's task inside a read transaction, or on
//! the writer thread inside the shared write transaction (commands flagged [`WRITE`], and
//! everything inside MULTI/EXEC). A handler validates everything before it changes anything,
//! so an error never leaves a half-applied command in a commit shared with others. An
//! `Err(rivet::Error)` is an engine failure: the writer fails the whole commit.

pub mod access;
pub mod args;
pub mod bits;
pub mod bpop;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod member_scan;
pub mod pubsub;
pub mod server;
pub mod sets;
pub mod sort;
pub mod stream_cg;
pub mod stream_groups;
pub mod stream_info;
pub mod stream_read;
pub mod streams;
pub mod strings;
mod table;
pub mod zrange;
pub mod zsetops;
pub mod zsets;

use std::sync::Arc;

use bytes::Bytes;
use rivet::Tx;

use crate::resp::Reply;
use crate::state::ServerState;
use crate::store::{DbView, Store, WriteLog};

pub use table::{index_of, lookup, Spec, COMMANDS};

/// What a handler returns: a reply, or an engine error that fails the whole commit.
pub type CmdResult = Result<Reply, rivet::Error>;

/// A command handler.
pub type Handler = fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult;

/// Writes: sent to the writer.
pub const WRITE: u32 = 1;
/// Reads data.
pub const READONLY: u32 = 1 << 1;
/// Administrative.
pub const ADMIN: u32 = 1 << 2;
/// O(1) or O(log n).
pub const FAST: u32 = 1 << 3;
/// Allowed before AUTH.
pub const NO_AUTH: u32 = 1 << 4;
/// Run by the connection itself (session state, MULTI, AUTH...), never queued to the writer.
pub const CONN: u32 = 1 << 5;
/// Not queued by MULTI: runs at once even inside a transaction.
pub const NO_QUEUE: u32 = 1 << 6;
/// May grow memory (Redis's `denyoom`).
pub const DENY_OOM: u32 = 1 << 7;
/// Allowed while loading / stale (reported by COMMAND only).
pub const LOADING: u32 = 1 << 8;
/// Touches no keys (reported by COMMAND only).
pub const STALE: u32 = 1 << 9;
/// Refused inside MULTI ("Command not allowed inside a transaction"), as Redis's `no-multi`.
pub const NO_MULTI: u32 = 1 << 10;
/// May park the client until a key is written (Redis's `blocking`): sent to the writer as
/// its own job outside MULTI.
pub const BLOCKING: u32 = 1 << 11;

/// Where and when a handler runs.
pub struct Ctx<'a> {
    /// The data.
    pub store: &'a Store,
    /// The transaction: a read snapshot, or the writer's open write transaction.
    pub tx: &'a Tx,
    /// Server-wide state (configuration, clients, statistics).
    pub state: &'a Arc<ServerState>,
    /// The session's selected database (SELECT changes it).
    pub db: usize,
    /// The session's client id.
    pub client_id: u64,
    /// The session's protocol version (2 or 3).
    pub proto: u8,
    /// Command time in Unix ms (one instant per command, as Redis caches it).
    pub now_ms: i64,
    /// Present in the writer: records touched keys.
    pub log: Option<&'a WriteLog>,
    /// A blocking command may park the client (only as its own writer job: never inside
    /// MULTI or a script, where it answers as if it timed out).
    pub may_block: bool,
    /// Set by a blocking command that found nothing to serve and may block.
    pub would_block: Option<crate::blocking::WouldBlock>,
}

impl<'a> Ctx<'a> {
    /// The session's database.
    pub fn view(&self) -> Result<DbView<'a>, rivet::Error> {
        self.view_at(self.db)
    }

    /// Database `index` (below `store.databases()`).
    pub fn view_at(&self, index: usize) -> Result<DbView<'a>, rivet::Error> {
        match self.log {
            Some(log) => self.store.view_mut(self.tx, index, log),
            None => self.store.view(self.tx, index),
        }
    }
}

/// Whether this command goes to the writer: write commands, except FUNCTION KILL|STATS|HELP,
/// which must answer on the connection while a function runs.
pub fn is_write(spec: &Spec, args: &[Bytes]) -> bool {
    spec.flags & WRITE != 0
        && !(spec.name == "function" && crate::functions::runs_on_connection(args))
}

/// The arity error, with Redis's text (`fullname` is `cmd` or `cmd|sub`).
pub fn arity_error(fullname: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{fullname}' command"
    ))
}

/// Redis's reply to an unknown command.
pub fn unknown_command(args: &[Bytes]) -> Reply {
    // Redis formats the arguments with `%s`, which stops at a NUL byte.
    let c_str = |a: &[u8]| {
        a.iter()
            .position(|&b| b == 0)
            .map_or(a.to_vec(), |i| a[..i].to_vec())
    };
    let mut list = String::new();
    for a in args.iter().skip(1) {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        let a = c_str(a);
        let s = String::from_utf8_lossy(&a);
        let s: String = s.chars().take(room).collect();
        list.push_str(&format!("'{s}' "));
    }
    let name: String = String::from_utf8_lossy(&c_str(&args[0]))
        .chars()
        .take(128)
        .collect();
    Reply::err(format!(
        "ERR unknown command '{name}', with args beginning with: {list}"
    ))
}

/// Redis's reply to an unknown subcommand of a container command.
pub fn unknown_subcommand(cmd: &str, sub: &[u8]) -> Reply {
    let sub: String = String::from_utf8_lossy(sub).chars().take(128).collect();
    Reply::err(format!(
        "ERR unknown subcommand '{sub}'. Try {} HELP.",
        cmd.to_ascii_uppercase()
    ))
}

/// True when `args` has the right count for `arity` (Redis: positive = exact, negative =
/// at least).
pub fn arity_ok(arity: i32, argc: usize) -> bool {
    if arity >= 0 {
        argc == arity as usize
    } else {
        argc >= (-arity) as usize
    }
}
