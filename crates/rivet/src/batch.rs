//! Group commit: `Db::batch` coalesces concurrent callers into one write transaction.
//!
//! Semantics follow bbolt: the first caller of a new batch waits up to `max_batch_delay` (or
//! until `max_batch_size` calls have joined), then runs every queued function in one write
//! transaction. Unlike bbolt, it stops waiting as soon as every caller currently inside
//! `batch` has joined: a lone caller (or a group that nobody else can join) does not sit out
//! the delay. If a function fails, the transaction is rolled back, that caller is told to
//! retry alone (so it gets its own error), and the rest of the batch is run again. Functions
//! may therefore run more than once and must be idempotent.
//!
//! Unlike bbolt's `func(*Tx) error`, a function may borrow from its caller's stack and return
//! a value: the caller stays inside `batch` until no other thread can reach its function (see
//! [`Call`]), the way scoped threads borrow.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::tx::Tx;

/// A queued function with its type (and its result type) erased: it runs the caller's
/// function and keeps the value in the caller's slot.
type ErasedFn = dyn Fn(&Tx) -> Result<()> + Sync;

enum Outcome {
    Done(Result<()>),
    RetrySolo,
}

/// One caller's function in a group, run by the group's leader (maybe on another thread).
///
/// `f` points into the calling thread's stack frame, which lives until that caller's
/// `rx.recv()` in [`Db::batch`] returns. That happens only after `reply` sent an outcome
/// (after the leader's last call of `f`) or was dropped with the `Call`: `f` is never used
/// after either, so it is never used after the frame is gone.
struct Call {
    f: *const ErasedFn,
    reply: mpsc::Sender<Outcome>,
}

// SAFETY: the pointee is `Sync` (so calling it from the leader's thread through a shared
// reference is allowed) and outlives every use of the pointer (see `Call`).
unsafe impl Send for Call {}

impl Call {
    fn run(&self, tx: &Tx) -> Result<()> {
        // SAFETY: the caller that owns the pointee is blocked in `batch` until this `Call`
        // has sent its outcome or is dropped (see `Call`), so the pointee is alive here.
        let f = unsafe { &*self.f };
        f(tx)
    }
}

#[derive(Default)]
struct Group {
    calls: Vec<Call>,
    id: u64,
}

/// The batch currently collecting callers.
#[derive(Default)]
pub(crate) struct Batcher {
    pending: Mutex<Option<Group>>,
    /// Signalled when a caller joins the pending group or leaves `batch`.
    full: Condvar,
    next_id: Mutex<u64>,
    /// Callers inside `batch` right now (joined a group, or waiting for one's outcome).
    active: AtomicUsize,
}

/// Counts a caller inside `batch` for as long as it lives.
struct Active<'a>(&'a Batcher);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        // Take the lock so that a leader between its check and its wait cannot miss this.
        let _g = self.0.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.0.full.notify_all();
    }
}

fn duplicate(e: &Error) -> Error {
    match e {
        Error::Io { op, source } => Error::io(
            op.clone(),
            std::io::Error::new(source.kind(), source.to_string()),
        ),
        Error::Poisoned(s) => Error::Poisoned(s.clone()),
        Error::MaxSizeReached { limit } => Error::MaxSizeReached { limit: *limit },
        Error::Corrupted { page, reason } => Error::corrupted(*page, reason.clone()),
        other => Error::Callback(other.to_string()),
    }
}

impl Db {
    /// Runs `f` in a write transaction shared with other concurrent `batch` callers (group
    /// commit) and returns its value once the shared transaction committed. `f` may be
    /// called more than once (on any thread taking part in the batch) and must be
    /// idempotent; the value returned is the one from the run that was committed. `f` may
    /// borrow from the caller. With `max_batch_size == 0` this is [`Db::update`].
    ///
    /// The first caller of a group waits for others up to `max_batch_delay` or until
    /// `max_batch_size` have joined, as in bbolt, but no longer than until every caller
    /// currently inside `batch` has joined: a lone caller runs at once.
    ///
    /// Errors: `f`'s own error (after it is retried alone, as bbolt does), or the commit's
    /// error.
    pub fn batch<F, T>(&self, f: F) -> Result<T>
    where
        F: Fn(&Tx) -> Result<T> + Sync,
        T: Send,
    {
        let opts = self.options();
        let (max, delay) = (opts.max_batch_size, opts.max_batch_delay);
        if max == 0 {
            return self.update(|tx| f(tx));
        }
        let slot: Mutex<Option<T>> = Mutex::new(None);
        let run = |tx: &Tx| -> Result<()> {
            let v = f(tx)?;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
            Ok(())
        };
        let short: *const (dyn Fn(&Tx) -> Result<()> + Sync + '_) = &run;
        // SAFETY: only the pointee's lifetime bound changes (same vtable and layout); the
        // pointer is used only while this frame is alive (see `Call`): this function does
        // not return before `rx.recv()` below does.
        let erased: *const ErasedFn = unsafe { std::mem::transmute(short) };
        let (tx, rx) = mpsc::channel();
        let b = &self.shared.batch;
        b.active.fetch_add(1, Ordering::AcqRel);
        let _active = Active(b);
        let leader_of = {
            let mut pending = b.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.as_mut() {
                Some(g) if g.calls.len() < max => {
                    g.calls.push(Call {
                        f: erased,
                        reply: tx,
                    });
                    b.full.notify_all();
                    None
                }
                _ => {
                    let mut id = b.next_id.lock().unwrap_or_else(|e| e.into_inner());
                    *id += 1;
                    // A full group left behind is run by its own leader; start a new one.
                    let old = pending.replace(Group {
                        calls: vec![Call {
                            f: erased,
                            reply: tx,
                        }],
                        id: *id,
                    });
                    debug_assert!(
                        old.as_ref().is_none_or(|g| g.calls.len() >= max) || old.is_none()
                    );
                    if let Some(old) = old {
                        // Cannot happen with a leader waiting on it, but never drop callers.
                        std::thread::spawn({
                            let db = self.clone();
                            move || db.run_group(old.calls)
                        });
                    }
                    Some(*id)
                }
            }
        };
        if let Some(id) = leader_of {
            let deadline = Instant::now() + delay;
            let mut pending = b.pending.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let joined = pending
                    .as_ref()
                    .filter(|g| g.id == id)
                    .map_or(0, |g| g.calls.len());
                let full = joined >= max;
                // Everyone who could join already has: waiting longer helps nobody.
                let all_in = b.active.load(Ordering::Acquire) <= joined;
                let now = Instant::now();
                if full || all_in || now >= deadline {
                    break;
                }
                pending = b
                    .full
                    .wait_timeout(pending, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            let group = match pending.take() {
                Some(g) if g.id == id => g,
                other => {
                    *pending = other;
                    Group::default()
                }
            };
            drop(pending);
            self.run_group(group.calls);
        }
        match rx.recv() {
            Ok(Outcome::Done(r)) => {
                r?;
                slot.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .ok_or_else(|| Error::Callback("batch function left no result".into()))
            }
            Ok(Outcome::RetrySolo) | Err(_) => self.update(|tx| f(tx)),
        }
    }

    fn run_group(&self, mut calls: Vec<Call>) {
        while !calls.is_empty() {
            let mut failed: Option<usize> = None;
            let res = self.update(|tx| {
                for (i, c) in calls.iter().enumerate() {
                    let r = catch_unwind(AssertUnwindSafe(|| c.run(tx)));
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            failed = Some(i);
                            return Err(e);
                        }
                        Err(_) => {
                            failed = Some(i);
                            return Err(Error::Callback("batch function panicked".into()));
                        }
                    }
                }
                Ok(())
            });
            if let Some(i) = failed {
                let c = calls.remove(i);
                let _ = c.reply.send(Outcome::RetrySolo);
                continue;
            }
            for c in calls.drain(..) {
                let r = match &res {
                    Ok(()) => Ok(()),
                    Err(e) => Err(duplicate(e)),
                };
                let _ = c.reply.send(Outcome::Done(r));
            }
        }
    }
}
