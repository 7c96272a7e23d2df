//! Running parsed Memcached requests against the item namespace, with memcached 1.6.18's
//! semantics: storage modes and CAS, incr/decr (in-place space padding included), touch,
//! delayed `flush_all`, and the meta commands' flags in request order.
//!
//! Requests that change items run in the writer's transaction ([`write`]); pure reads run
//! on a connection's snapshot ([`read`]). A read hit marks the item fetched (and, once a
//! minute, its access time) through [`super::Shared::mark`]: the writer folds the marks
//! into its next commit, so plain `get`s never wait for a disk write.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use crate::store::items::{Item, ItemMeta, BIT_FETCHED, BIT_KEY_BINARY, BIT_STALE, BIT_TOKEN_SENT};
use crate::store::{DbView, Result};

use super::proto::{
    base64_encode, fits, line, Meta, Request, StoreMode, OPAQUE_MAX, REALTIME_MAXDELTA,
};
use super::{Mark, Shared};

/// A fetched item's access time moves at most this often (memcached's
/// `ITEM_UPDATE_INTERVAL`), so a hot item costs no write per `get`.
const ACCESS_INTERVAL: i64 = 60;

/// What a read-only run found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The reply was appended.
    Done,
    /// The request changes the item after all (an `mg` that wins a stale item's recache
    /// token): run it in the writer instead.
    NeedsWriter,
}

/// One request's run: the namespace in a transaction and the clock.
struct Run<'a, 'tx> {
    v: &'a DbView<'tx>,
    shared: &'a Shared,
    /// Unix seconds.
    now: i64,
    /// In the writer (may change items).
    write: bool,
}

/// memcached's `realtime()` in absolute Unix seconds: 0 = never; negative values and
/// absolute times at or before memcached's `process_started` (`started`) give the second
/// after it, long past (expired at once); other absolute times are kept as they are, so a
/// `t` flag on an expired item prints the same wrapped number as memcached.
pub fn realtime(exptime: i32, now: i64, started: i64) -> i64 {
    let e = if exptime < 0 {
        REALTIME_MAXDELTA + 1
    } else {
        i64::from(exptime)
    };
    if e == 0 {
        0
    } else if e > REALTIME_MAXDELTA {
        if e <= started {
            started + 1
        } else {
            e
        }
    } else {
        now + e
    }
}

impl<'tx> Run<'_, 'tx> {
    /// [`realtime`] now.
    fn rt(&self, exptime: i32) -> i64 {
        realtime(exptime, self.now, self.shared.started)
    }

    /// Alive: not expired and not hidden by a `flush_all`.
    fn valid(&self, it: &Item<'_>) -> bool {
        let flush_at = self.shared.flush_at.load(Ordering::Acquire);
        let flushed = flush_at != 0 && flush_at <= self.now && i64::from(it.meta.time) <= flush_at;
        !it.expired(self.now) && !flushed
    }

    /// The live item under `key`; in the writer a dead one is removed on the way.
    fn find(&self, key: &[u8]) -> Result<Option<Item<'tx>>> {
        match self.v.item_raw(key)? {
            Some(it) if self.valid(&it) => Ok(Some(it)),
            Some(it) => {
                if self.write {
                    self.v.item_delete(key, &it)?;
                }
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn next_cas(&self) -> u64 {
        self.shared.cas.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn now32(&self) -> u32 {
        self.now.clamp(0, i64::from(u32::MAX)) as u32
    }

    /// The fields a fetch leaves behind (memcached's LRU bump): fetched, and the access time
    /// when it is a minute old. `None` when nothing changes.
    fn bumped(&self, m: ItemMeta) -> Option<ItemMeta> {
        if !m.has(BIT_FETCHED) {
            return Some(ItemMeta {
                bits: m.bits | BIT_FETCHED,
                ..m
            });
        }
        if self.now - i64::from(m.time) >= ACCESS_INTERVAL {
            return Some(ItemMeta {
                time: self.now32(),
                ..m
            });
        }
        None
    }

    /// The item's fields with a held fetch mark applied (what a reader should report).
    fn effective(&self, key: &[u8], it: &Item<'_>) -> ItemMeta {
        match self.shared.pending_mark(key) {
            Some(mk) => mk.apply(it.meta),
            None => it.meta,
        }
    }

    /// Records a fetch: written at once in the writer, as a mark from a reader.
    fn bump(&self, key: &[u8], it: &Item<'_>, meta: ItemMeta) -> Result<()> {
        let Some(new) = self.bumped(meta) else {
            return Ok(());
        };
        if self.write {
            self.v.item_update(key, it, new, it.exp)
        } else {
            let time = (new.time != meta.time).then_some(new.time);
            self.shared.mark(key, Mark::new(it.meta.cas, time));
            Ok(())
        }
    }

    fn value(&self, it: &Item<'tx>) -> Result<Cow<'tx, [u8]>> {
        self.v.item_value(it)
    }
}

/// Runs a request that only reads (`get`, `gets`, `mg` without N/R/T, `me`) on a snapshot.
pub fn read(
    v: &DbView<'_>,
    shared: &Shared,
    now: i64,
    req: &Request,
    out: &mut Vec<u8>,
) -> Result<ReadOutcome> {
    let run = Run {
        v,
        shared,
        now,
        write: false,
    };
    match req {
        Request::Get {
            keys,
            cas,
            touch: None,
            then_fail,
        } => get(&run, keys, *cas, None, *then_fail, out)?,
        Request::Meta(m) if m.code == b'g' => return mg(&run, m, out),
        Request::MetaDebug { key } => me(&run, key, out)?,
        other => {
            debug_assert!(false, "not a read: {other:?}");
            out.extend_from_slice(b"SERVER_ERROR internal error: not a read\r\n");
        }
    }
    Ok(ReadOutcome::Done)
}

/// Runs a request in the writer's transaction, appending its reply (nothing when quiet).
pub fn write(
    v: &DbView<'_>,
    shared: &Shared,
    now: i64,
    req: &Request,
    out: &mut Vec<u8>,
) -> Result<()> {
    let run = Run {
        v,
        shared,
        now,
        write: true,
    };
    let st = &shared.stats;
    match req {
        Request::Get {
            keys,
            cas,
            touch,
            then_fail,
        } => get(&run, keys, *cas, *touch, *then_fail, out)?,
        Request::Store {
            mode,
            key,
            flags,
            exptime,
            cas,
            data,
            noreply,
        } => {
            st.cmd_set.fetch_add(1, Ordering::Relaxed);
            let s = Store {
                mode: *mode,
                key,
                flags: *flags,
                exp: run.rt(*exptime),
                cas: *cas,
                data,
                stale: false,
                key_binary: false,
            };
            let (r, _) = store(&run, &s)?;
            let word = match r {
                Outcome::Stored => "STORED",
                Outcome::NotStored => "NOT_STORED",
                Outcome::Exists => "EXISTS",
                Outcome::NotFound => "NOT_FOUND",
            };
            out.extend(line(word, *noreply));
        }
        Request::TooLarge { key, unlink, reply } => {
            st.cmd_set.fetch_add(1, Ordering::Relaxed);
            st.store_too_large.fetch_add(1, Ordering::Relaxed);
            if *unlink {
                if let Some(it) = run.find(key)? {
                    v.item_delete(key, &it)?;
                }
            }
            out.extend_from_slice(reply);
        }
        Request::Delete { key, noreply } => {
            let word = match run.find(key)? {
                Some(it) => {
                    v.item_delete(key, &it)?;
                    st.delete_hits.fetch_add(1, Ordering::Relaxed);
                    "DELETED"
                }
                None => {
                    st.delete_misses.fetch_add(1, Ordering::Relaxed);
                    "NOT_FOUND"
                }
            };
            out.extend(line(word, *noreply));
        }
        Request::Arith {
            key,
            incr,
            delta,
            noreply,
        } => {
            let r = match arith(&run, key, *incr, *delta, None)? {
                Arith::Done(n, _) => n.to_string(),
                Arith::NotFound => "NOT_FOUND".into(),
                Arith::NonNumeric => {
                    "CLIENT_ERROR cannot increment or decrement non-numeric value".into()
                }
                Arith::CasMismatch => "EXISTS".into(),
            };
            out.extend(line(&r, *noreply));
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            st.cmd_touch.fetch_add(1, Ordering::Relaxed);
            let word = match run.find(key)? {
                Some(it) => {
                    st.touch_hits.fetch_add(1, Ordering::Relaxed);
                    let meta = run.bumped(it.meta).unwrap_or(it.meta);
                    v.item_update(key, &it, meta, run.rt(*exptime))?;
                    "TOUCHED"
                }
                None => {
                    st.touch_misses.fetch_add(1, Ordering::Relaxed);
                    "NOT_FOUND"
                }
            };
            out.extend(line(word, *noreply));
        }
        Request::FlushAll { delay, noreply } => {
            st.cmd_flush.fetch_add(1, Ordering::Relaxed);
            let at = if *delay > 0 {
                run.rt(*delay) - 1
            } else {
                now - 1
            };
            shared.schedule_flush(v, at, now)?;
            out.extend(line("OK", *noreply));
        }
        Request::Meta(m) => match m.code {
            b'g' => {
                mg(&run, m, out)?;
            }
            b's' => ms(&run, m, out)?,
            b'd' => md(&run, m, out)?,
            _ => ma(&run, m, out)?,
        },
        Request::Reply(r) => out.extend_from_slice(r),
        Request::Stats(_)
        | Request::MetaDebug { .. }
        | Request::Quit
        | Request::MetaDump
        | Request::Auth { .. } => {
            debug_assert!(false, "not a write: {req:?}");
        }
    }
    Ok(())
}

/// `get`/`gets`, and `gat`/`gats` when `touch` (in the writer). With `then_fail`, the
/// lookups happen (fetch marks, touches) but the reply is memcached's error for the
/// over-long key that followed them.
fn get(
    run: &Run<'_, '_>,
    keys: &[Vec<u8>],
    cas: bool,
    touch: Option<i32>,
    then_fail: bool,
    out: &mut Vec<u8>,
) -> Result<()> {
    let start = out.len();
    let st = &run.shared.stats;
    for key in keys {
        let hit = run.find(key)?;
        if touch.is_some() {
            st.cmd_touch.fetch_add(1, Ordering::Relaxed);
        } else {
            st.cmd_get.fetch_add(1, Ordering::Relaxed);
        }
        let Some(it) = hit else {
            if touch.is_some() {
                st.touch_misses.fetch_add(1, Ordering::Relaxed);
            } else {
                st.get_misses.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        if touch.is_some() {
            st.touch_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            st.get_hits.fetch_add(1, Ordering::Relaxed);
        }
        let value = run.value(&it)?;
        out.extend_from_slice(b"VALUE ");
        out.extend_from_slice(key);
        out.extend_from_slice(format!(" {} {}", it.meta.flags, value.len()).as_bytes());
        if cas {
            out.extend_from_slice(format!(" {}", it.meta.cas).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&value);
        out.extend_from_slice(b"\r\n");
        match touch {
            Some(t) => {
                let meta = run.bumped(it.meta).unwrap_or(it.meta);
                run.v.item_update(key, &it, meta, run.rt(t))?;
            }
            None => {
                let meta = run.effective(key, &it);
                run.bump(key, &it, meta)?;
            }
        }
    }
    if then_fail {
        out.truncate(start);
        out.extend(line("CLIENT_ERROR bad command line format", false));
    } else {
        out.extend_from_slice(b"END\r\n");
    }
    Ok(())
}

/// The outcome of a storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
}

/// A storage request, classic or meta.
struct Store<'a> {
    mode: StoreMode,
    key: &'a [u8],
    flags: u32,
    /// Absolute expiry (Unix seconds, 0 never).
    exp: i64,
    /// CAS to compare (0 = none).
    cas: u64,
    data: &'a [u8],
    /// `ms ... I`: a CAS older than the item's stores the value as stale.
    stale: bool,
    key_binary: bool,
}

/// memcached's `do_store_item`. Returns the outcome and the stored item's CAS.
fn store(run: &Run<'_, '_>, s: &Store<'_>) -> Result<(Outcome, u64)> {
    let old = run.find(s.key)?;
    let bits = if s.key_binary { BIT_KEY_BINARY } else { 0 };
    let fresh = |run: &Run<'_, '_>| ItemMeta {
        cas: {
            run.shared.stats.total_items.fetch_add(1, Ordering::Relaxed);
            run.next_cas()
        },
        flags: s.flags,
        time: run.now32(),
        bits,
    };
    let Some(old) = old else {
        return Ok(match s.mode {
            StoreMode::Set | StoreMode::Add => {
                let meta = fresh(run);
                run.v.item_put(s.key, None, meta, s.exp, s.data)?;
                (Outcome::Stored, meta.cas)
            }
            StoreMode::Cas => {
                run.shared.stats.cas_misses.fetch_add(1, Ordering::Relaxed);
                (Outcome::NotFound, 0)
            }
            _ => (Outcome::NotStored, 0),
        });
    };
    let cas_match = s.cas != 0 && s.cas == old.meta.cas;
    let cas_stale = s.cas != 0 && !cas_match && s.stale && s.cas < old.meta.cas;
    match s.mode {
        StoreMode::Add => Ok((Outcome::NotStored, 0)),
        StoreMode::Set | StoreMode::Replace => {
            let meta = fresh(run);
            run.v.item_put(s.key, Some(&old), meta, s.exp, s.data)?;
            Ok((Outcome::Stored, meta.cas))
        }
        StoreMode::Cas => {
            let st = &run.shared.stats;
            if cas_match {
                st.cas_hits.fetch_add(1, Ordering::Relaxed);
                let meta = fresh(run);
                run.v.item_put(s.key, Some(&old), meta, s.exp, s.data)?;
                Ok((Outcome::Stored, meta.cas))
            } else if cas_stale {
                st.cas_hits.fetch_add(1, Ordering::Relaxed);
                let mut meta = fresh(run);
                meta.bits |= BIT_STALE | (old.meta.bits & BIT_TOKEN_SENT);
                run.v.item_put(s.key, Some(&old), meta, old.exp, s.data)?;
                Ok((Outcome::Stored, meta.cas))
            } else {
                st.cas_badval.fetch_add(1, Ordering::Relaxed);
                Ok((Outcome::Exists, 0))
            }
        }
        StoreMode::Append | StoreMode::Prepend => {
            if s.cas != 0 && !cas_match {
                return Ok((Outcome::Exists, 0));
            }
            let cur = run.value(&old)?;
            if !fits(
                s.key.len(),
                old.meta.flags,
                cur.len() + s.data.len(),
                run.shared.max_item_size,
            ) {
                return Ok((Outcome::NotStored, 0));
            }
            let mut v = Vec::with_capacity(cur.len() + s.data.len());
            if s.mode == StoreMode::Append {
                v.extend_from_slice(&cur);
                v.extend_from_slice(s.data);
            } else {
                v.extend_from_slice(s.data);
                v.extend_from_slice(&cur);
            }
            // memcached copies into a new item, which is not marked as having a binary key.
            let meta = ItemMeta {
                flags: old.meta.flags,
                bits: 0,
                ..fresh(run)
            };
            run.v.item_put(s.key, Some(&old), meta, old.exp, &v)?;
            Ok((Outcome::Stored, meta.cas))
        }
    }
}

/// The outcome of incr/decr.
enum Arith {
    /// The new value, and whether it was written in place (memcached replaces the item
    /// when the number grows longer; `ma`'s TTL flags then change the old one, lost).
    Done(u64, bool),
    NotFound,
    NonNumeric,
    CasMismatch,
}

/// memcached's `do_add_delta`: the value must read as a decimal uint64 (leading whitespace
/// and trailing whitespace-led text allowed); incr wraps, decr stops at 0; a result no
/// longer than the old value is written in place, padded with spaces to the old length.
fn arith(run: &Run<'_, '_>, key: &[u8], incr: bool, delta: u64, cas: Option<u64>) -> Result<Arith> {
    let st = &run.shared.stats;
    let Some(it) = run.find(key)? else {
        if incr {
            st.incr_misses.fetch_add(1, Ordering::Relaxed);
        } else {
            st.decr_misses.fetch_add(1, Ordering::Relaxed);
        }
        return Ok(Arith::NotFound);
    };
    let cur = run.value(&it)?;
    if cur.is_empty() {
        return Ok(Arith::NonNumeric);
    }
    if let Some(c) = cas {
        if c != 0 && c != it.meta.cas {
            return Ok(Arith::CasMismatch);
        }
    }
    let Some(value) = parse_stored_u64(&cur) else {
        return Ok(Arith::NonNumeric);
    };
    let new = if incr {
        st.incr_hits.fetch_add(1, Ordering::Relaxed);
        value.wrapping_add(delta)
    } else {
        st.decr_hits.fetch_add(1, Ordering::Relaxed);
        value.saturating_sub(delta)
    };
    let digits = new.to_string().into_bytes();
    let cas = run.next_cas();
    let in_place = digits.len() <= cur.len();
    if in_place {
        let mut v = digits;
        v.resize(cur.len(), b' ');
        // In place: memcached's LRU update moves the access time only once a minute.
        let time = if run.now - i64::from(it.meta.time) >= ACCESS_INTERVAL {
            run.now32()
        } else {
            it.meta.time
        };
        let meta = ItemMeta {
            cas,
            time,
            ..it.meta
        };
        run.v.item_put(key, Some(&it), meta, it.exp, &v)?;
    } else {
        let meta = ItemMeta {
            cas,
            flags: it.meta.flags,
            time: run.now32(),
            bits: 0,
        };
        run.v.item_put(key, Some(&it), meta, it.exp, &digits)?;
    }
    Ok(Arith::Done(new, in_place))
}

/// `safe_strtoull` on a stored value, which C reads up to a NUL byte (memcached follows
/// the value with `\r\n`, which ends the number like any whitespace).
fn parse_stored_u64(v: &[u8]) -> Option<u64> {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    super::proto::strtoull(&v[..end])
}

const OPAQUE_ERR: &str = "CLIENT_ERROR opaque token too long";

/// An `O` token longer than memcached accepts.
fn too_long_opaque(m: &Meta) -> bool {
    m.tokens
        .iter()
        .any(|t| t[0] == b'O' && t.len() > OPAQUE_MAX)
}

/// The T/N TTL updates of a successful `ma` up to its first over-long `O` token (where
/// memcached stops).
fn apply_ma_ttl(run: &Run<'_, '_>, m: &Meta, key: &[u8], created: bool) -> Result<()> {
    let Some(it) = run.find(key)? else {
        return Ok(());
    };
    let mut exp = it.exp;
    for t in &m.tokens {
        match t[0] {
            b'T' => exp = run.rt(m.flags.ttl.unwrap_or(0)),
            b'N' if created => exp = run.rt(m.flags.vivify.unwrap_or(0)),
            b'O' if t.len() > OPAQUE_MAX => break,
            _ => {}
        }
    }
    if exp != it.exp {
        run.v.item_update(key, &it, it.meta, exp)?;
    }
    Ok(())
}

/// Ends a reply line that carries no item (EN, NF, EX, NS, or md's HD): the `O` and `k`
/// tokens in request order (the key in the request's own encoding), then CRLF.
fn status_line(out: &mut Vec<u8>, m: &Meta, key: &[u8]) {
    for t in &m.tokens {
        match t[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(t);
            }
            b'k' => put_key(out, key, m.flags.key_binary),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends ` k<key>` (base64 and ` b` for a binary key).
fn put_key(out: &mut Vec<u8>, key: &[u8], binary: bool) {
    out.extend_from_slice(b" k");
    if binary {
        out.extend_from_slice(base64_encode(key).as_bytes());
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

/// `t`: seconds left (-1 never), as memcached's unsigned arithmetic prints it.
fn ttl_token(exp: i64, now: i64) -> String {
    if exp == 0 {
        "-1".into()
    } else {
        ((exp - now) as u32).to_string()
    }
}

/// Meta get.
fn mg(run: &Run<'_, '_>, m: &Meta, out: &mut Vec<u8>) -> Result<ReadOutcome> {
    let f = &m.flags;
    let st = &run.shared.stats;
    let key = &m.key[..];
    let mut hit = run.find(key)?;
    let mut created = false;
    if hit.is_none() && f.vivify.is_some() {
        // The stub: empty value, flags 0, the N TTL applied below. (memcached does not
        // mark a vivified item's key binary: `k` returns it decoded.)
        let meta = ItemMeta {
            cas: run.next_cas(),
            flags: 0,
            time: run.now32(),
            bits: 0,
        };
        // Created without a TTL: the N token sets it when its turn comes (a `t` before
        // it shows -1, as in memcached).
        run.v.item_put(key, None, meta, 0, b"")?;
        run.shared.stats.total_items.fetch_add(1, Ordering::Relaxed);
        // Served once even when its TTL already passed (N-1), as memcached does.
        hit = run.v.item_raw(key)?;
        created = hit.is_some();
    }
    let Some(it) = hit else {
        if f.ttl.is_some() {
            st.cmd_touch.fetch_add(1, Ordering::Relaxed);
            st.touch_misses.fetch_add(1, Ordering::Relaxed);
        } else {
            st.cmd_get.fetch_add(1, Ordering::Relaxed);
            st.get_misses.fetch_add(1, Ordering::Relaxed);
        }
        if too_long_opaque(m) {
            out.extend(line(OPAQUE_ERR, false));
            return Ok(ReadOutcome::Done);
        }
        if f.quiet {
            return Ok(ReadOutcome::Done);
        }
        out.extend_from_slice(b"EN");
        status_line(out, m, key);
        return Ok(ReadOutcome::Done);
    };
    let mut meta = if run.write {
        it.meta
    } else {
        run.effective(key, &it)
    };
    let stale_win = meta.has(BIT_STALE) && !meta.has(BIT_TOKEN_SENT);
    if !run.write && stale_win {
        return Ok(ReadOutcome::NeedsWriter);
    }
    let mut exp = it.exp;
    let mut won = false;
    let value = if f.value { Some(run.value(&it)?) } else { None };
    let len = it.len();
    let mut line_out = Vec::with_capacity(64);
    match &value {
        Some(_) => line_out.extend_from_slice(format!("VA {len}").as_bytes()),
        None => line_out.extend_from_slice(b"HD"),
    }
    for t in &m.tokens {
        match t[0] {
            b'T' => exp = run.rt(f.ttl.unwrap_or(0)),
            b'N' if created => {
                exp = run.rt(f.vivify.unwrap_or(0));
                won = true;
            }
            b'R' => {
                let recache_at = run.rt(f.recache.unwrap_or(0));
                if !meta.has(BIT_TOKEN_SENT) && !created && exp != 0 && exp < recache_at {
                    won = true;
                }
            }
            b's' => line_out.extend_from_slice(format!(" s{len}").as_bytes()),
            b't' => line_out.extend_from_slice(format!(" t{}", ttl_token(exp, run.now)).as_bytes()),
            b'c' => line_out.extend_from_slice(format!(" c{}", meta.cas).as_bytes()),
            b'f' => line_out.extend_from_slice(format!(" f{}", meta.flags).as_bytes()),
            b'l' => line_out.extend_from_slice(
                format!(" l{}", (run.now - i64::from(meta.time)) as u32).as_bytes(),
            ),
            b'h' => line_out.extend_from_slice(if meta.has(BIT_FETCHED) {
                b" h1"
            } else {
                b" h0"
            }),
            b'O' if t.len() > OPAQUE_MAX => {
                // memcached fails here, keeping what the tokens before did (a vivified item,
                // a new TTL), and the fetch only when it was recorded at lookup (without the
                // flags that make memcached lock the item and bump it at the end).
                let locked = f.vivify.is_some()
                    || f.ttl.is_some()
                    || f.recache.is_some()
                    || m.tokens.iter().any(|t| matches!(t[0], b'h' | b'l'));
                let bump = !locked && !f.no_update;
                if run.write {
                    let meta = match run.bumped(it.meta) {
                        Some(b) if bump => b,
                        _ => it.meta,
                    };
                    if exp != it.exp || meta != it.meta {
                        run.v.item_update(key, &it, meta, exp)?;
                    }
                } else if bump {
                    run.bump(key, &it, meta)?;
                }
                out.extend(line(OPAQUE_ERR, false));
                return Ok(ReadOutcome::Done);
            }
            b'O' => {
                line_out.push(b' ');
                line_out.extend_from_slice(t);
            }
            b'k' => put_key(&mut line_out, key, meta.has(BIT_KEY_BINARY)),
            _ => {}
        }
    }
    if meta.has(BIT_TOKEN_SENT) {
        line_out.extend_from_slice(b" Z");
    }
    if meta.has(BIT_STALE) {
        line_out.extend_from_slice(b" X");
        if !meta.has(BIT_TOKEN_SENT) {
            won = true;
        }
    }
    if won {
        line_out.extend_from_slice(b" W");
        meta.bits |= BIT_TOKEN_SENT;
    }
    line_out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&line_out);
    if let Some(v) = &value {
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if f.ttl.is_some() {
        st.cmd_touch.fetch_add(1, Ordering::Relaxed);
        st.touch_hits.fetch_add(1, Ordering::Relaxed);
    } else {
        st.cmd_get.fetch_add(1, Ordering::Relaxed);
        st.get_hits.fetch_add(1, Ordering::Relaxed);
    }
    if run.write {
        if !f.no_update {
            meta = run.bumped(meta).unwrap_or(meta);
        }
        if meta != it.meta || exp != it.exp {
            run.v.item_update(key, &it, meta, exp)?;
        }
    } else if !f.no_update {
        run.bump(key, &it, meta)?;
    }
    Ok(ReadOutcome::Done)
}

/// Meta set.
fn ms(run: &Run<'_, '_>, m: &Meta, out: &mut Vec<u8>) -> Result<()> {
    let f = &m.flags;
    run.shared.stats.cmd_set.fetch_add(1, Ordering::Relaxed);
    let mut mode = match f.mode {
        Some(b'E') => StoreMode::Add,
        Some(b'A') => StoreMode::Append,
        Some(b'P') => StoreMode::Prepend,
        Some(b'R') => StoreMode::Replace,
        _ => StoreMode::Set,
    };
    if f.cas.is_some() && matches!(mode, StoreMode::Set | StoreMode::Replace) {
        mode = StoreMode::Cas;
    }
    let s = Store {
        mode,
        key: &m.key,
        flags: f.client_flags,
        exp: run.rt(f.ttl.unwrap_or(0)),
        cas: f.cas.unwrap_or(0),
        data: &m.data,
        stale: f.stale && mode == StoreMode::Cas,
        key_binary: f.key_binary,
    };
    let (r, cas) = store(run, &s)?;
    let code: &[u8] = match r {
        Outcome::Stored if f.quiet => return Ok(()),
        Outcome::Stored => b"HD",
        Outcome::Exists => b"EX",
        Outcome::NotFound => b"NF",
        Outcome::NotStored => b"NS",
    };
    out.extend_from_slice(code);
    for t in &m.tokens {
        match t[0] {
            b'O' => {
                out.push(b' ');
                out.extend_from_slice(t);
            }
            b'k' => put_key(out, &m.key, f.key_binary),
            b'c' => out.extend_from_slice(format!(" c{cas}").as_bytes()),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Meta delete.
fn md(run: &Run<'_, '_>, m: &Meta, out: &mut Vec<u8>) -> Result<()> {
    let f = &m.flags;
    let st = &run.shared.stats;
    let key = &m.key[..];
    let code: &[u8] = match run.find(key)? {
        Some(it) if f.cas.is_some_and(|c| c != it.meta.cas) => {
            st.delete_misses.fetch_add(1, Ordering::Relaxed);
            b"EX"
        }
        Some(it) if f.stale => {
            let exp = match f.ttl {
                Some(t) => run.rt(t),
                None => it.exp,
            };
            let meta = ItemMeta {
                cas: run.next_cas(),
                bits: (it.meta.bits | BIT_STALE) & !BIT_TOKEN_SENT,
                ..it.meta
            };
            run.v.item_update(key, &it, meta, exp)?;
            b"HD"
        }
        Some(it) => {
            st.delete_hits.fetch_add(1, Ordering::Relaxed);
            run.v.item_delete(key, &it)?;
            b"HD"
        }
        None => {
            st.delete_misses.fetch_add(1, Ordering::Relaxed);
            b"NF"
        }
    };
    if code == b"HD" && f.quiet {
        return Ok(());
    }
    out.extend_from_slice(code);
    status_line(out, m, key);
    Ok(())
}

/// Meta arithmetic.
fn ma(run: &Run<'_, '_>, m: &Meta, out: &mut Vec<u8>) -> Result<()> {
    let f = &m.flags;
    let key = &m.key[..];
    let incr = !matches!(f.mode, Some(b'D' | b'-'));
    let delta = f.delta.unwrap_or(1);
    let mut created = false;
    let mut number = 0u64;
    let mut code: &[u8] = b"HD";
    let mut ok = false;
    let mut replaced = false;
    match arith(run, key, incr, delta, f.cas)? {
        Arith::Done(n, in_place) => {
            number = n;
            ok = true;
            replaced = !in_place;
        }
        Arith::NonNumeric => {
            out.extend(line(
                "CLIENT_ERROR cannot increment or decrement non-numeric value",
                false,
            ));
            return Ok(());
        }
        Arith::CasMismatch => code = b"EX",
        Arith::NotFound => match f.vivify {
            Some(_) => {
                let digits = f.initial.to_string();
                // (memcached does not mark an item made by ma as having a binary key.)
                let meta = ItemMeta {
                    cas: run.next_cas(),
                    flags: 0,
                    time: run.now32(),
                    bits: 0,
                };
                run.v.item_put(key, None, meta, 0, digits.as_bytes())?;
                number = f.initial;
                created = true;
                ok = true;
            }
            None => code = b"NF",
        },
    }
    // memcached checks the opaque length only while writing the reply, after the update.
    if too_long_opaque(m) {
        if ok && !replaced {
            apply_ma_ttl(run, m, key, created)?;
        }
        out.extend(line(OPAQUE_ERR, false));
        return Ok(());
    }
    if !ok {
        out.extend_from_slice(code);
        status_line(out, m, key);
        return Ok(());
    }
    // The item as it stands now, for c/t and the T/N updates (in token order).
    let Some(it) = run.find(key)? else {
        out.extend_from_slice(b"SERVER_ERROR item vanished during ma\r\n");
        return Ok(());
    };
    let mut exp = it.exp;
    let digits = number.to_string();
    let mut l = Vec::with_capacity(64);
    if f.value {
        l.extend_from_slice(format!("VA {}", digits.len()).as_bytes());
    } else {
        l.extend_from_slice(b"HD");
    }
    for t in &m.tokens {
        match t[0] {
            b'c' => l.extend_from_slice(format!(" c{}", it.meta.cas).as_bytes()),
            b't' => l.extend_from_slice(format!(" t{}", ttl_token(exp, run.now)).as_bytes()),
            b'T' => exp = run.rt(f.ttl.unwrap_or(0)),
            b'N' if created => exp = run.rt(f.vivify.unwrap_or(0)),
            b'O' => {
                l.push(b' ');
                l.extend_from_slice(t);
            }
            b'k' => put_key(&mut l, key, f.key_binary),
            _ => {}
        }
    }
    if exp != it.exp && !replaced {
        run.v.item_update(key, &it, it.meta, exp)?;
    }
    // memcached's quiet mode hides the success of an existing item's update, not the
    // creation of a new one.
    if f.quiet && !created {
        return Ok(());
    }
    out.extend_from_slice(&l);
    out.extend_from_slice(b"\r\n");
    if f.value {
        out.extend_from_slice(digits.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// Meta debug: `ME <key> exp=.. la=.. cas=.. fetch=.. cls=1 size=..` (memcached's fields;
/// `exp` is now minus the expiry, as memcached prints it, and `size` its item size formula).
fn me(run: &Run<'_, '_>, key: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let Some(it) = run.find(key)? else {
        out.extend_from_slice(b"EN\r\n");
        return Ok(());
    };
    let meta = run.effective(key, &it);
    out.extend_from_slice(b"ME ");
    if meta.has(BIT_KEY_BINARY) {
        out.extend_from_slice(base64_encode(key).as_bytes());
    } else {
        out.extend_from_slice(key);
    }
    let exp = if it.exp == 0 { -1 } else { run.now - it.exp };
    let suffix = if meta.flags == 0 { 0 } else { 4 };
    let size = 48 + key.len() as u64 + 1 + suffix + it.len() + 2 + 8;
    out.extend_from_slice(
        format!(
            " exp={exp} la={} cas={} fetch={} cls=1 size={size}\r\n",
            run.now - i64::from(meta.time),
            meta.cas,
            if meta.has(BIT_FETCHED) { "yes" } else { "no" },
        )
        .as_bytes(),
    );
    Ok(())
}

/// One page of `lru_crawler metadump`: the live items of about `count` keyspace entries
/// from scan position `cursor`, one line each in memcached's format (`key=` URI-encoded,
/// `exp` and `la` as Unix times, `cls=1`), terminated by `\n` only, as memcached does.
/// Returns the next position (0 = done).
pub fn metadump_page(
    v: &DbView<'_>,
    shared: &Shared,
    now: i64,
    cursor: u64,
    count: usize,
    out: &mut Vec<u8>,
) -> Result<u64> {
    let run = Run {
        v,
        shared,
        now,
        write: false,
    };
    let page = v.scan(cursor, count, now.saturating_mul(1000), |_, _| true)?;
    for key in &page.keys {
        let Some(it) = run.find(key)? else {
            continue;
        };
        let meta = run.effective(key, &it);
        out.extend_from_slice(b"key=");
        for &b in key {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b);
            } else {
                out.extend_from_slice(format!("%{b:02X}").as_bytes());
            }
        }
        let exp = if it.exp == 0 { -1 } else { it.exp };
        let suffix = if meta.flags == 0 { 0 } else { 4 };
        let size = 48 + key.len() as u64 + 1 + suffix + it.len() + 2 + 8;
        out.extend_from_slice(
            format!(
                " exp={exp} la={} cas={} fetch={} cls=1 size={size}\n",
                meta.time,
                meta.cas,
                if meta.has(BIT_FETCHED) { "yes" } else { "no" },
            )
            .as_bytes(),
        );
    }
    Ok(page.cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_rules() {
        let now = 1_800_000_000;
        let started = now - 100;
        let realtime = |e, now| realtime(e, now, started);
        assert_eq!(realtime(0, now), 0);
        assert_eq!(realtime(10, now), now + 10);
        assert_eq!(realtime(-1, now), started + 1, "negative: expired at once");
        assert_eq!(
            realtime(2_592_000, now),
            now + 2_592_000,
            "30 days is still relative"
        );
        assert_eq!(
            realtime(2_592_001, now),
            started + 1,
            "absolute, before the start"
        );
        assert_eq!(
            realtime(1_799_999_990, now),
            1_799_999_990,
            "absolute, just past"
        );
        assert_eq!(realtime(1_900_000_000, now), 1_900_000_000);
    }

    #[test]
    fn stored_numbers_follow_strtoull() {
        assert_eq!(parse_stored_u64(b"12"), Some(12));
        assert_eq!(parse_stored_u64(b" 12 "), Some(12));
        assert_eq!(parse_stored_u64(b"12 abc"), Some(12));
        assert_eq!(parse_stored_u64(b"12abc"), None);
        assert_eq!(parse_stored_u64(b"5\x00x"), Some(5), "C stops at the NUL");
        assert_eq!(parse_stored_u64(b"-1"), None);
        assert_eq!(parse_stored_u64(b"18446744073709551616"), None);
    }
}
