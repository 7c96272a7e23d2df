//! One connection's pub/sub session: the channels, patterns and shard channels it
//! subscribes to, the (UN)SUBSCRIBE family's confirmations, and the queue of messages
//! waiting to be written to it.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::pubsub::{encode_confirmation, Message, Subscriber};
use crate::state::{lock, ClientHandle, ServerState};

/// Which of the three subscription kinds a command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// SUBSCRIBE / UNSUBSCRIBE.
    Channel,
    /// PSUBSCRIBE / PUNSUBSCRIBE.
    Pattern,
    /// SSUBSCRIBE / SUNSUBSCRIBE.
    Shard,
}

impl Class {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Class::Channel => ("subscribe", "unsubscribe"),
            Class::Pattern => ("psubscribe", "punsubscribe"),
            Class::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

/// A connection's subscriptions and message queue (created at its first subscription).
pub struct Subscriptions {
    state: Arc<ServerState>,
    handle: Arc<ClientHandle>,
    sub: Arc<Subscriber>,
    rx: UnboundedReceiver<Message>,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard: BTreeSet<Bytes>,
}

impl Subscriptions {
    /// An empty session for the connection `handle`.
    pub fn new(state: Arc<ServerState>, handle: Arc<ClientHandle>) -> Subscriptions {
        let (sub, rx) = Subscriber::new(handle.clone());
        Subscriptions {
            state,
            handle,
            sub,
            rx,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shard: BTreeSet::new(),
        }
    }

    /// In pub/sub mode: at least one subscription of any kind.
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }

    /// The count a confirmation reports: channels and patterns, or shard channels.
    fn count(&self, class: Class) -> usize {
        match class {
            Class::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    fn set(&mut self, class: Class) -> &mut BTreeSet<Bytes> {
        match class {
            Class::Channel => &mut self.channels,
            Class::Pattern => &mut self.patterns,
            Class::Shard => &mut self.shard,
        }
    }

    fn publish_counts(&self) {
        let mut info = lock(&self.handle.info);
        info.sub = self.channels.len();
        info.psub = self.patterns.len();
        info.ssub = self.shard.len();
    }

    /// (P|S)SUBSCRIBE `names`, appending one confirmation per name.
    pub fn subscribe(&mut self, class: Class, names: &[Bytes], proto: u8, out: &mut Vec<u8>) {
        for n in names {
            if self.set(class).insert(n.clone()) {
                let ps = &self.state.pubsub;
                match class {
                    Class::Channel => ps.subscribe(&self.sub, n, false),
                    Class::Shard => ps.subscribe(&self.sub, n, true),
                    Class::Pattern => ps.psubscribe(&self.sub, n),
                }
            }
            encode_confirmation(proto, class.names().0, Some(n), self.count(class), out);
        }
        self.publish_counts();
    }

    /// (P|S)UNSUBSCRIBE `names` (all of that kind when empty), appending confirmations
    /// when `out` is given; with nothing to unsubscribe from, one confirmation with a nil
    /// name.
    pub fn unsubscribe(
        &mut self,
        class: Class,
        names: &[Bytes],
        proto: u8,
        mut out: Option<&mut Vec<u8>>,
    ) {
        let all: Vec<Bytes>;
        let list = if names.is_empty() {
            all = self.set(class).iter().cloned().collect();
            if all.is_empty() {
                if let Some(out) = out.as_deref_mut() {
                    encode_confirmation(proto, class.names().1, None, self.count(class), out);
                }
                return;
            }
            &all[..]
        } else {
            names
        };
        let id = self.handle.id;
        for n in list {
            if self.set(class).remove(n) {
                let ps = &self.state.pubsub;
                match class {
                    Class::Channel => ps.unsubscribe(id, n, false),
                    Class::Shard => ps.unsubscribe(id, n, true),
                    Class::Pattern => ps.punsubscribe(id, n),
                }
            }
            if let Some(out) = out.as_deref_mut() {
                encode_confirmation(proto, class.names().1, Some(n), self.count(class), out);
            }
        }
        self.publish_counts();
    }

    /// Drops every subscription without confirmations (RESET, disconnect).
    pub fn clear(&mut self) {
        for c in [Class::Channel, Class::Pattern, Class::Shard] {
            self.unsubscribe(c, &[], 2, None);
        }
        // Messages already queued are not delivered after RESET.
        let mut bytes = 0;
        while let Ok(m) = self.rx.try_recv() {
            bytes += m.size();
        }
        self.sub.taken(bytes);
    }

    /// Appends every queued message to `out`; false when none was queued.
    pub fn drain(&mut self, proto: u8, out: &mut Vec<u8>) -> bool {
        let mut bytes = 0;
        let mut any = false;
        while let Ok(m) = self.rx.try_recv() {
            any = true;
            bytes += m.size();
            m.encode(proto, out);
        }
        self.sub.taken(bytes);
        any
    }

    /// Waits for a queued message and appends it (and any others queued) to `out`.
    pub async fn next(&mut self, proto: u8, out: &mut Vec<u8>) {
        if let Some(m) = self.rx.recv().await {
            let size = m.size();
            m.encode(proto, out);
            self.sub.taken(size);
            self.drain(proto, out);
        } else {
            std::future::pending::<()>().await
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        self.clear();
    }
}
