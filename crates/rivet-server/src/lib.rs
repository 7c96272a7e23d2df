//! rivet-server: a durable Redis-compatible server that keeps its data in one Rivet
//! (bbolt-format) file.
//!
//! Layers, top to bottom (dependencies point down only):
//!
//! - [`listener`]: accepting connections, `maxclients`, shutdown.
//! - [`connection`]: one client's session: RESP framing, AUTH/HELLO, MULTI queue, WATCH,
//!   pipelining with replies in request order; [`subscriptions`] holds its pub/sub state.
//! - [`commands`]: the Redis command table and handlers, one file per family.
//! - [`writer`]: the one write loop (group commit, fsync before acknowledgement, expiry sweep).
//! - [`store`]: the typed data model over Rivet transactions (keyspace, strings, expiry
//!   index, scan order), usable and tested without any network code.
//!
//! Support modules: [`resp`] (wire format), [`config`] (CONFIG parameters), [`state`]
//! (shared server state), [`info`] (INFO sections), [`glob`] (Redis pattern matching),
//! [`numeric`] (INCRBYFLOAT arithmetic), [`pubsub`] (the subscription registry, message
//! delivery, the output buffer limit), [`notify`] (keyspace notifications), [`lcs`] (LCS),
//! [`scripting`] (Lua), and [`memcached`] (the Memcached text and meta protocol on the same
//! file).

#![warn(missing_docs)]

pub mod blocking;
pub mod commands;
pub mod config;
pub mod connection;
pub mod functions;
pub mod glob;
pub mod info;
pub mod lcs;
pub mod listener;
pub mod lua;
pub mod memcached;
pub mod notify;
pub mod numeric;
pub mod pubsub;
pub mod resp;
pub mod scripting;
pub mod state;
pub mod store;
pub mod subscriptions;
pub mod writer;
