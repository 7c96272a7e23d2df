//! Pub/sub: the server-wide registry of channel, pattern and shard-channel subscriptions,
//! message delivery to subscriber connections, and the `pubsub` output buffer limit.
//!
//! Each subscribing connection owns a [`Subscriber`]: an unbounded queue of [`Message`]s
//! with a byte counter. PUBLISH (on any connection, or the writer after a commit) pushes
//! into the queues of the matching subscribers and counts the bytes; the subscriber's
//! connection drains its queue into its socket. A subscriber whose queued bytes pass the
//! hard limit, or stay past the soft limit for longer than its seconds, is killed at once
//! and receives nothing more, so a client that never reads cannot grow server memory
//! without bound. Publishing touches no file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::state::{lock, ClientHandle};

/// Bytes counted for a message besides its channel, pattern and payload (framing).
const MSG_OVERHEAD: u64 = 48;

/// A message on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct Message {
    /// The matching pattern, for a `pmessage`.
    pub pattern: Option<Bytes>,
    /// The channel published to.
    pub channel: Bytes,
    /// The payload.
    pub payload: Bytes,
    /// Published with SPUBLISH (an `smessage`).
    pub shard: bool,
}

impl Message {
    /// Bytes this message holds while queued (what the output buffer limit counts).
    pub fn size(&self) -> u64 {
        (self.channel.len() + self.payload.len() + self.pattern.as_ref().map_or(0, |p| p.len()))
            as u64
            + MSG_OVERHEAD
    }

    /// Appends the message as Redis sends it: an array in RESP2, a push in RESP3.
    pub fn encode(&self, proto: u8, out: &mut Vec<u8>) {
        match &self.pattern {
            Some(p) => {
                header(proto, 4, out);
                bulk(out, b"pmessage");
                bulk(out, p);
            }
            None => {
                header(proto, 3, out);
                bulk(out, if self.shard { b"smessage" } else { b"message" });
            }
        }
        bulk(out, &self.channel);
        bulk(out, &self.payload);
    }
}

/// The header of a pub/sub array (`*n`) or push (`>n` in RESP3).
fn header(proto: u8, n: usize, out: &mut Vec<u8>) {
    out.push(if proto >= 3 { b'>' } else { b'*' });
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends a (un)subscription confirmation: `[kind, channel or nil, count]`.
pub fn encode_confirmation(
    proto: u8,
    kind: &str,
    channel: Option<&[u8]>,
    count: usize,
    out: &mut Vec<u8>,
) {
    header(proto, 3, out);
    bulk(out, kind.as_bytes());
    match channel {
        Some(c) => bulk(out, c),
        None => out.extend_from_slice(if proto >= 3 { b"_\r\n" } else { b"$-1\r\n" }),
    }
    out.push(b':');
    out.extend_from_slice(count.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The `pubsub` class of `client-output-buffer-limit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferLimit {
    /// Disconnect at once past this many queued bytes (0 = no limit).
    pub hard: u64,
    /// Disconnect when past this many bytes for longer than `soft_secs` (0 = no limit).
    pub soft: u64,
    /// See `soft`.
    pub soft_secs: u64,
}

/// One subscribing connection's queue.
#[derive(Debug)]
pub struct Subscriber {
    handle: Arc<ClientHandle>,
    tx: UnboundedSender<Message>,
    /// Bytes queued and not yet taken by the connection.
    pending: AtomicU64,
    /// Since when `pending` has been over the soft limit.
    soft_since: Mutex<Option<Instant>>,
}

impl Subscriber {
    /// A subscriber for the connection `handle`, and the receiving end its connection drains.
    pub fn new(handle: Arc<ClientHandle>) -> (Arc<Subscriber>, UnboundedReceiver<Message>) {
        let (tx, rx) = unbounded_channel();
        let s = Subscriber {
            handle,
            tx,
            pending: AtomicU64::new(0),
            soft_since: Mutex::new(None),
        };
        (Arc::new(s), rx)
    }

    /// The connection took `bytes` of queued messages.
    pub fn taken(&self, bytes: u64) {
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(bytes))
            });
    }

    /// Bytes queued (CLIENT LIST's `omem`).
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    fn id(&self) -> u64 {
        self.handle.id
    }

    /// Queues `m` unless the subscriber is gone or over its limit (then it is killed).
    fn deliver(&self, m: Message, limit: BufferLimit) {
        if self.handle.killed.load(Ordering::Acquire) {
            return;
        }
        let size = m.size();
        let now = self.pending.fetch_add(size, Ordering::AcqRel) + size;
        let mut over = limit.hard > 0 && now >= limit.hard;
        if limit.soft > 0 && now >= limit.soft {
            let mut since = lock(&self.soft_since);
            match *since {
                None => *since = Some(Instant::now()),
                Some(t) => over |= t.elapsed().as_secs() > limit.soft_secs,
            }
        } else if limit.soft > 0 {
            *lock(&self.soft_since) = None;
        }
        if over {
            tracing::warn!(
                client = self.id(),
                bytes = now,
                "closing pub/sub client that reached its output buffer limit"
            );
            self.taken(size);
            self.handle.killed.store(true, Ordering::Release);
            self.handle.kill_notify.notify_one();
            return;
        }
        if self.tx.send(m).is_err() {
            self.taken(size);
        }
    }
}

type Subs = Vec<Arc<Subscriber>>;

#[derive(Debug, Default)]
struct Inner {
    channels: HashMap<Bytes, Subs>,
    shard: HashMap<Bytes, Subs>,
    /// Patterns in the order they were first subscribed.
    patterns: Vec<(Bytes, Subs)>,
}

/// Every subscription on the server.
#[derive(Debug, Default)]
pub struct PubSub {
    inner: Mutex<Inner>,
}

impl PubSub {
    /// Adds `sub` to `channel` (a shard channel when `shard`). The caller keeps the
    /// connection's own set and calls this once per new channel.
    pub fn subscribe(&self, sub: &Arc<Subscriber>, channel: &Bytes, shard: bool) {
        let mut g = lock(&self.inner);
        let map = if shard { &mut g.shard } else { &mut g.channels };
        map.entry(channel.clone()).or_default().push(sub.clone());
    }

    /// Removes client `id` from `channel`.
    pub fn unsubscribe(&self, id: u64, channel: &[u8], shard: bool) {
        let mut g = lock(&self.inner);
        let map = if shard { &mut g.shard } else { &mut g.channels };
        if let Some(list) = map.get_mut(channel) {
            list.retain(|s| s.id() != id);
            if list.is_empty() {
                map.remove(channel);
            }
        }
    }

    /// Adds `sub` to `pattern`.
    pub fn psubscribe(&self, sub: &Arc<Subscriber>, pattern: &Bytes) {
        let mut g = lock(&self.inner);
        match g.patterns.iter_mut().find(|(p, _)| p == pattern) {
            Some((_, list)) => list.push(sub.clone()),
            None => g.patterns.push((pattern.clone(), vec![sub.clone()])),
        }
    }

    /// Removes client `id` from `pattern`.
    pub fn punsubscribe(&self, id: u64, pattern: &[u8]) {
        let mut g = lock(&self.inner);
        if let Some(i) = g.patterns.iter().position(|(p, _)| p == pattern) {
            g.patterns[i].1.retain(|s| s.id() != id);
            if g.patterns[i].1.is_empty() {
                g.patterns.remove(i);
            }
        }
    }

    /// Publishes `payload` to `channel`: channel subscribers first (in subscription order),
    /// then pattern subscribers. Returns the number of receivers. With `send` false only
    /// counts them (a PUBLISH in the writer, delivered after its commit).
    pub fn publish(
        &self,
        channel: &[u8],
        payload: &[u8],
        shard: bool,
        limit: BufferLimit,
        send: bool,
    ) -> usize {
        let g = lock(&self.inner);
        let map = if shard { &g.shard } else { &g.channels };
        let mut n = 0;
        let chan = Bytes::copy_from_slice(channel);
        let data = Bytes::copy_from_slice(payload);
        if let Some(list) = map.get(channel) {
            n += list.len();
            if send {
                for s in list {
                    let m = Message {
                        pattern: None,
                        channel: chan.clone(),
                        payload: data.clone(),
                        shard,
                    };
                    s.deliver(m, limit);
                }
            }
        }
        if shard {
            return n;
        }
        for (p, list) in &g.patterns {
            if !crate::glob::matches(p, channel, false) {
                continue;
            }
            n += list.len();
            if send {
                for s in list {
                    let m = Message {
                        pattern: Some(p.clone()),
                        channel: chan.clone(),
                        payload: data.clone(),
                        shard: false,
                    };
                    s.deliver(m, limit);
                }
            }
        }
        n
    }

    /// Channels (shard channels when `shard`) with at least one subscriber, matching
    /// `pattern` if given (PUBSUB CHANNELS).
    pub fn channels(&self, pattern: Option<&[u8]>, shard: bool) -> Vec<Bytes> {
        let g = lock(&self.inner);
        let map = if shard { &g.shard } else { &g.channels };
        map.keys()
            .filter(|c| pattern.is_none_or(|p| crate::glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel` (PUBSUB NUMSUB / SHARDNUMSUB).
    pub fn numsub(&self, channel: &[u8], shard: bool) -> usize {
        let g = lock(&self.inner);
        let map = if shard { &g.shard } else { &g.channels };
        map.get(channel).map_or(0, |l| l.len())
    }

    /// Distinct patterns with a subscriber (PUBSUB NUMPAT, INFO `pubsub_patterns`).
    pub fn numpat(&self) -> usize {
        lock(&self.inner).patterns.len()
    }

    /// Channels with a subscriber (INFO `pubsub_channels`).
    pub fn numchannels(&self) -> usize {
        lock(&self.inner).channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(id: u64) -> Arc<ClientHandle> {
        Arc::new(ClientHandle {
            id,
            addr: String::new(),
            laddr: String::new(),
            created: Instant::now(),
            info: Mutex::new(crate::state::ClientInfo::new()),
            killed: Default::default(),
            kill_notify: Default::default(),
        })
    }

    #[test]
    fn channels_then_patterns() {
        let ps = PubSub::default();
        let (a, mut ra) = Subscriber::new(handle(1));
        ps.subscribe(&a, &Bytes::from_static(b"foo.bar"), false);
        ps.psubscribe(&a, &Bytes::from_static(b"foo.*"));
        let lim = BufferLimit::default();
        assert_eq!(ps.publish(b"foo.bar", b"x", false, lim, true), 2);
        assert!(ra.try_recv().unwrap().pattern.is_none());
        assert_eq!(
            ra.try_recv().unwrap().pattern.as_deref(),
            Some(&b"foo.*"[..])
        );
        assert_eq!(ps.publish(b"foo1", b"x", false, lim, true), 0);
        ps.unsubscribe(1, b"foo.bar", false);
        ps.punsubscribe(1, b"foo.*");
        assert_eq!(ps.numpat(), 0);
        assert_eq!(ps.numchannels(), 0);
    }

    #[test]
    fn hard_limit_kills() {
        let ps = PubSub::default();
        let h = handle(7);
        let (a, _ra) = Subscriber::new(h.clone());
        ps.subscribe(&a, &Bytes::from_static(b"c"), false);
        let lim = BufferLimit {
            hard: 1000,
            soft: 0,
            soft_secs: 0,
        };
        for _ in 0..5 {
            ps.publish(b"c", &[0u8; 300], false, lim, true);
        }
        assert!(h.killed.load(Ordering::Acquire));
        assert!(a.pending() < 1000);
    }
}
