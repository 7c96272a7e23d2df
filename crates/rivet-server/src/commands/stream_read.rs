//! XREAD and XREADGROUP (Redis `t_stream.c` `xreadCommand`), with BLOCK, and the group
//! counters Redis 7.0 keeps for `entries-read` and `lag`.
//!
//! A read that finds nothing and has BLOCK parks the client (see [`crate::blocking`]); the
//! parked command is rewritten first so that a `$` id means the stream's last id when the
//! command first ran, and a missing COUNT reads as Redis's 1000 for blocked readers. When a
//! parked key is written the writer runs the command again; an XREADGROUP whose key or group
//! went away gets Redis's error instead ([`parked_unblock`]).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::args::{err, int, is, SYNTAX};
use super::stream_groups::{Group, GroupEdit, Nack};
use super::streams::{
    entry_reply, first_entry, last_entry, parse_strict, range, read_stream, Stream, StreamId,
};
use super::strings::{arg, tri};
use super::{CmdResult, Ctx};
use crate::blocking::WouldBlock;
use crate::resp::Reply;
use crate::store::keyspace::Kind;
use crate::store::DbView;

/// What lag and entries-read need of a stream.
pub struct State {
    len: u64,
    first: StreamId,
    last: StreamId,
    added: u64,
    max_deleted: StreamId,
}

impl State {
    /// The state of stream `s`.
    pub fn of(v: &DbView<'_>, s: &Stream<'_>) -> Result<State, rivet::Error> {
        Ok(State {
            len: s.c.len,
            first: first_entry(v, s.c.id)?.unwrap_or_default(),
            last: s.m.last,
            added: s.m.added,
            max_deleted: s.m.max_deleted,
        })
    }

    /// Whether a deleted entry may lie at or after `start` (`streamRangeHasTombstones`).
    fn has_tombstones(&self, start: StreamId) -> bool {
        if self.len == 0 || self.max_deleted.is_zero() {
            return false;
        }
        if self.first > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// The logical read counter of `id`, or -1 when it cannot be known
    /// (`streamEstimateDistanceFromFirstEverEntry`).
    pub fn estimate(&self, id: StreamId) -> i64 {
        if self.added == 0 {
            return 0;
        }
        if self.len == 0 && id <= self.last {
            return self.added as i64;
        }
        if id == self.last {
            return self.added as i64;
        }
        if id > self.last {
            return -1;
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first {
            if id < self.first {
                return self.added.saturating_sub(self.len) as i64;
            }
            if id == self.first {
                return (self.added.saturating_sub(self.len) + 1) as i64;
            }
        }
        -1
    }

    /// The group's lag, or None when it cannot be computed (`streamReplyWithCGLag`).
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.added == 0 {
            return Some(0);
        }
        if g.entries_read != -1 && !self.has_tombstones(g.last) {
            return Some(self.added as i64 - g.entries_read);
        }
        let read = self.estimate(g.last);
        (read != -1).then(|| self.added as i64 - read)
    }

    /// Advances the group's read counter over delivered entry `id` (`streamReplyWithRange`).
    fn advance(&self, g: &mut Group, id: StreamId) {
        if id <= g.last {
            return;
        }
        if g.entries_read != -1 && !self.has_tombstones(id) {
            g.entries_read += 1;
        } else if self.added > 0 {
            g.entries_read = self.estimate(id);
        }
        g.last = id;
    }
}

/// Parsed XREAD/XREADGROUP options.
struct ReadOpts {
    block: Option<(usize, Option<Instant>)>,
    count: u64,
    count_given: bool,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    at: usize,
    n: usize,
}

/// Parses a BLOCK timeout in milliseconds; None: wait for ever.
fn block_timeout(a: &[u8], now_ms: i64) -> Result<Option<Instant>, Reply> {
    let ms =
        super::args::int(a).map_err(|_| err("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(err("ERR timeout is negative"));
    }
    if ms > 0 && ms > i64::MAX - now_ms {
        return Err(err("ERR timeout is out of range"));
    }
    Ok((ms > 0).then(|| Instant::now() + Duration::from_millis(ms as u64)))
}

fn parse(a: &[Bytes], group: bool, now_ms: i64, in_script: bool) -> Result<ReadOpts, Reply> {
    let mut o = ReadOpts {
        block: None,
        count: 0,
        count_given: false,
        group: None,
        noack: false,
        at: 0,
        n: 0,
    };
    let mut i = 1;
    while i < a.len() {
        let more = a.len() - i - 1;
        let opt = &a[i];
        if is(opt, "block") && more > 0 {
            if in_script {
                return Err(Reply::err(format!(
                    "ERR {} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(&a[0])
                )));
            }
            o.block = Some((i + 1, block_timeout(&a[i + 1], now_ms)?));
            i += 2;
        } else if is(opt, "count") && more > 0 {
            o.count = int(&a[i + 1])?.max(0) as u64;
            o.count_given = true;
            i += 2;
        } else if is(opt, "streams") && more > 0 {
            o.at = i + 1;
            let rest = a.len() - o.at;
            if !rest.is_multiple_of(2) {
                return Err(err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
            }
            o.n = rest / 2;
            break;
        } else if is(opt, "group") && more >= 2 {
            if !group {
                return Err(err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            o.group = Some((a[i + 1].clone(), a[i + 2].clone()));
            i += 3;
        } else if is(opt, "noack") {
            if !group {
                return Err(err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            o.noack = true;
            i += 1;
        } else {
            return Err(err(SYNTAX));
        }
    }
    if o.at == 0 {
        return Err(err(SYNTAX));
    }
    if group && o.group.is_none() {
        return Err(err("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(o)
}

fn nogroup(key: &[u8], g: &[u8]) -> Reply {
    Reply::err(format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(g)
    ))
}

/// XREAD [COUNT n] [BLOCK ms] STREAMS key [key ...] id [id ...], and
/// XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key [key ...] id [id ...]
pub fn xread(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let is_group = is(&a[0], "xreadgroup");
    let in_script = ctx.log.is_some() && ctx.state.scripts.running();
    let o = arg!(parse(a, is_group, ctx.now_ms, in_script));
    let keys = &a[o.at..o.at + o.n];
    let idargs = &a[o.at + o.n..];
    let v = ctx.view()?;
    // Resolve the ids first (None: `>`), checking types and groups.
    let mut ids: Vec<Option<StreamId>> = Vec::with_capacity(o.n);
    for (k, idarg) in keys.iter().zip(idargs) {
        let s = tri!(read_stream(&v, k, ctx.now_ms));
        if let Some((g, _)) = &o.group {
            let has = match &s {
                Some(s) => GroupEdit::load(&v, s.c.id, g)?.is_some(),
                None => false,
            };
            if !has {
                return Ok(nogroup(k, g));
            }
        }
        if idarg.as_ref() == b"$" {
            if is_group {
                return Ok(err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
            }
            ids.push(Some(s.map(|s| s.m.last).unwrap_or_default()));
        } else if idarg.as_ref() == b">" {
            if !is_group {
                return Ok(err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
            }
            ids.push(None);
        } else {
            ids.push(Some(arg!(parse_strict(idarg))));
        }
    }
    let mut out: Vec<(Bytes, Reply)> = Vec::new();
    for (k, id) in keys.iter().zip(&ids) {
        let Some(s) = tri!(read_stream(&v, k, ctx.now_ms)) else {
            continue;
        };
        let served = match &o.group {
            Some((g, c)) => serve_group(ctx, &v, k, &s, g, c, *id, o.count, o.noack)?,
            None => {
                let gt = id.unwrap_or_default();
                let top = if s.c.len > 0 {
                    last_entry(&v, s.c.id)?
                } else {
                    None
                };
                match (top, gt.next()) {
                    (Some(top), Some(from)) if top > gt => {
                        let items =
                            range(&v, s.c.id, from, StreamId::MAX, false, o.count as usize)?;
                        Some(items.iter().map(|(i, val)| entry_reply(*i, val)).collect())
                    }
                    _ => None,
                }
            }
        };
        if let Some(entries) = served {
            out.push((k.clone(), Reply::Array(entries)));
        }
    }
    if !out.is_empty() {
        return Ok(if ctx.proto >= 3 {
            Reply::Map(
                out.into_iter()
                    .map(|(k, r)| (Reply::Bulk(k.to_vec()), r))
                    .collect(),
            )
        } else {
            Reply::Array(
                out.into_iter()
                    .map(|(k, r)| Reply::Array(vec![Reply::Bulk(k.to_vec()), r]))
                    .collect(),
            )
        });
    }
    let Some((block_at, deadline)) = o.block else {
        return Ok(Reply::NilArray);
    };
    if !ctx.may_block {
        return Ok(Reply::NilArray);
    }
    // Park with `$` resolved and Redis's default COUNT for blocked readers.
    let mut park: Vec<Bytes> = vec![a[0].clone()];
    if let Some((g, c)) = &o.group {
        park.extend([Bytes::from_static(b"GROUP"), g.clone(), c.clone()]);
    }
    if o.noack {
        park.push(Bytes::from_static(b"NOACK"));
    }
    let count = if o.count_given && o.count > 0 {
        o.count
    } else {
        1000
    };
    park.extend([
        Bytes::from_static(b"COUNT"),
        Bytes::from(count.to_string()),
        Bytes::from_static(b"BLOCK"),
        a[block_at].clone(),
        Bytes::from_static(b"STREAMS"),
    ]);
    park.extend(keys.iter().cloned());
    for (raw, id) in idargs.iter().zip(&ids) {
        park.push(match id {
            Some(id) if raw.as_ref() == b"$" => Bytes::from(id.text()),
            _ => raw.clone(),
        });
    }
    ctx.would_block = Some(WouldBlock {
        keys: keys.iter().map(|k| k.to_vec()).collect(),
        kind: Kind::Stream,
        deadline,
        timeout_reply: Reply::NilArray,
        park_args: Some(park),
    });
    Ok(Reply::Nil)
}

/// Serves one stream of an XREADGROUP: new entries for `>` (None when there are none), or
/// the consumer's history after `id`.
#[allow(clippy::too_many_arguments)]
fn serve_group(
    ctx: &Ctx<'_>,
    v: &DbView<'_>,
    key: &[u8],
    s: &Stream<'_>,
    g: &[u8],
    c: &[u8],
    id: Option<StreamId>,
    count: u64,
    noack: bool,
) -> Result<Option<Vec<Reply>>, rivet::Error> {
    let Some(mut ge) = GroupEdit::load(v, s.c.id, g)? else {
        return Ok(None);
    };
    let now = ctx.now_ms;
    let mut out = Vec::new();
    match id {
        Some(after) => {
            if ge.ensure_consumer(c, now, true)? {
                crate::notify::event(ctx, crate::notify::STREAM, "xgroup-createconsumer", key);
            }
            let ids = match after.next() {
                Some(from) => ge.consumer_pel(c, from, StreamId::MAX, count as usize)?,
                None => Vec::new(),
            };
            for id in ids {
                match v.coll_get(s.c.id, &id.key())? {
                    Some(val) => {
                        out.push(entry_reply(id, val));
                        if let Some(old) = ge.nack(id)? {
                            let new = Nack {
                                time: now,
                                count: old.count + 1,
                                consumer: old.consumer.clone(),
                            };
                            ge.put_nack(id, Some(&old), &new)?;
                        }
                    }
                    None => out.push(Reply::Array(vec![id.reply(), Reply::NilArray])),
                }
            }
        }
        None => {
            if s.c.len == 0 {
                return Ok(None);
            }
            let top = last_entry(v, s.c.id)?.unwrap_or_default();
            let Some(from) = ge.g.last.next() else {
                return Ok(None);
            };
            if top <= ge.g.last {
                return Ok(None);
            }
            if ge.ensure_consumer(c, now, true)? {
                crate::notify::event(ctx, crate::notify::STREAM, "xgroup-createconsumer", key);
            }
            let st = State::of(v, s)?;
            let items = range(v, s.c.id, from, StreamId::MAX, false, count as usize)?;
            for (id, val) in &items {
                st.advance(&mut ge.g, *id);
                ge.touch();
                out.push(entry_reply(*id, val));
                if !noack {
                    let old = ge.nack(*id)?;
                    let new = Nack {
                        time: now,
                        count: 1,
                        consumer: c.to_vec(),
                    };
                    ge.put_nack(*id, old.as_ref(), &new)?;
                }
            }
        }
    }
    ge.save()?;
    Ok(Some(out))
}

/// The parked XREAD/XREADGROUP `args` narrowed to the one stream `key` that was written (as
/// Redis serves a blocked reader from the key that became ready); None if `key` is not one
/// of its streams.
pub fn parked_args_for(args: &[Bytes], key: &[u8]) -> Option<Vec<Bytes>> {
    let at = args.iter().position(|x| is(x, "streams"))? + 1;
    let n = (args.len() - at) / 2;
    let i = args[at..at + n].iter().position(|k| k.as_ref() == key)?;
    let mut out = args[..at].to_vec();
    out.push(args[at + i].clone());
    out.push(args[at + n + i].clone());
    Some(out)
}

/// For a parked XREADGROUP whose key `key` was written: Redis's error when the key no longer
/// holds a stream or the group is gone (the client is then unblocked with it); None when the
/// command should simply run again. Other commands: None.
pub fn parked_unblock(
    v: &DbView<'_>,
    key: &[u8],
    args: &[Bytes],
    now: i64,
) -> Result<Option<Reply>, rivet::Error> {
    if !args.first().is_some_and(|c| is(c, "xreadgroup")) {
        return Ok(None);
    }
    let Some(gi) = args.iter().position(|x| is(x, "group")) else {
        return Ok(None);
    };
    let Some(g) = args.get(gi + 1) else {
        return Ok(None);
    };
    let s = match read_stream(v, key, now)? {
        Ok(Some(s)) => s,
        Ok(None) | Err(_) => {
            return Ok(Some(err("UNBLOCKED the stream key no longer exists")));
        }
    };
    if GroupEdit::load(v, s.c.id, g)?.is_none() {
        return Ok(Some(err(
            "NOGROUP the consumer group this client was blocked on no longer exists",
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    fn state(len: u64, first: u64, last: u64, added: u64, max_deleted: u64) -> State {
        State {
            len,
            first: id(first),
            last: id(last),
            added,
            max_deleted: id(max_deleted),
        }
    }

    fn group(last: u64, entries_read: i64) -> Group {
        Group {
            last: id(last),
            entries_read,
            pel: 0,
            consumers: 0,
        }
    }

    #[test]
    fn lag_follows_redis_rules() {
        // Never-used stream: lag 0.
        assert_eq!(state(0, 0, 0, 0, 0).lag(&group(0, -1)), Some(0));
        // Five entries 1..5, none deleted, group read two of them.
        let s = state(5, 1, 5, 5, 0);
        assert_eq!(s.lag(&group(2, 2)), Some(3));
        // Unknown counter at the first entry or before it can be estimated...
        assert_eq!(s.lag(&group(1, -1)), Some(4));
        assert_eq!(s.lag(&group(0, -1)), Some(5));
        // ...in the middle it cannot.
        assert_eq!(s.lag(&group(3, -1)), None);
        // At the last id it is 0.
        assert_eq!(s.lag(&group(5, -1)), Some(0));
        // A tombstone after the group's position makes the counter unusable.
        let holes = state(4, 1, 5, 5, 3);
        assert_eq!(holes.lag(&group(2, 2)), None);
        assert_eq!(holes.lag(&group(5, 5)), Some(0));
    }

    #[test]
    fn reads_advance_the_counter() {
        let s = state(5, 1, 5, 5, 0);
        let mut g = group(0, 0);
        s.advance(&mut g, id(1));
        s.advance(&mut g, id(2));
        assert_eq!((g.last, g.entries_read), (id(2), 2));
        // Re-reading an older id changes nothing.
        s.advance(&mut g, id(1));
        assert_eq!((g.last, g.entries_read), (id(2), 2));
        let mut lost = group(0, -1);
        s.advance(&mut lost, id(1));
        assert_eq!(lost.entries_read, 1);
    }

    #[test]
    fn parked_args_keep_only_the_written_stream() {
        let a: Vec<Bytes> = ["XREAD", "COUNT", "5", "STREAMS", "a", "b", "1-0", "2-0"]
            .iter()
            .map(|s| Bytes::from(s.to_string()))
            .collect();
        let n = parked_args_for(&a, b"b").expect("b is parked");
        assert_eq!(n, ["XREAD", "COUNT", "5", "STREAMS", "b", "2-0"]);
        assert!(parked_args_for(&a, b"c").is_none());
    }
}
