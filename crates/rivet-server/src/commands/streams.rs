//! Stream commands (Redis `t_stream.c`), the entry side: XADD (NOMKSTREAM, MAXLEN/MINID with
//! `=`/`~` and LIMIT), XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID, and the stream header
//! every stream command shares. Each entry is its own record under the stream's collection
//! id, keyed by its 128-bit entry id, so XADD is an append and XRANGE a range scan. Consumer
//! groups, their consumers and pending entries lists live beside the entries under the same
//! id (see [`super::stream_groups`]); XREAD/XREADGROUP are in [`super::stream_read`], the
//! group commands in [`super::stream_cg`], XINFO in [`super::stream_info`].

use bytes::Bytes;

use super::access::{or_new, read, write};
use super::args::{err, int, is, NO_SUCH_KEY, SYNTAX};
use super::strings::{arg, tri};
use super::{arity_error, CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::collections::Coll;
use crate::store::keyspace::{Body, Header, Kind};
use crate::store::DbView;

/// A stream entry id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// The largest id.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// The 16-byte big-endian record key.
    pub fn key(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.ms.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    /// Decodes a record key (missing bytes read as 0).
    pub fn from_key(k: &[u8]) -> StreamId {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        if k.len() >= 8 {
            ms.copy_from_slice(&k[..8]);
        }
        if k.len() >= 16 {
            seq.copy_from_slice(&k[8..16]);
        }
        StreamId {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }

    /// `ms-seq`.
    pub fn text(self) -> Vec<u8> {
        format!("{}-{}", self.ms, self.seq).into_bytes()
    }

    /// As a bulk reply.
    pub fn reply(self) -> Reply {
        Reply::Bulk(self.text())
    }

    /// The next id, if any.
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq + 1,
            })
        } else if self.ms < u64::MAX {
            Some(StreamId {
                ms: self.ms + 1,
                seq: 0,
            })
        } else {
            None
        }
    }

    /// The previous id, if any.
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq - 1,
            })
        } else if self.ms > 0 {
            Some(StreamId {
                ms: self.ms - 1,
                seq: u64::MAX,
            })
        } else {
            None
        }
    }

    /// True for 0-0.
    pub fn is_zero(self) -> bool {
        self == StreamId::default()
    }
}

/// Redis's error for an unparsable id.
pub const BAD_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// Parses `ms[-seq]`; a missing seq is `missing_seq`. `-`/`+` are the extremes unless
/// `strict`.
pub fn parse_id_gen(a: &[u8], missing_seq: u64, strict: bool) -> Result<StreamId, Reply> {
    if a.len() > 127 {
        return Err(err(BAD_ID));
    }
    match a {
        b"-" if !strict => return Ok(StreamId::default()),
        b"+" if !strict => return Ok(StreamId::MAX),
        _ => {}
    }
    let s = std::str::from_utf8(a).map_err(|_| err(BAD_ID))?;
    let (ms, seq) = match s.split_once('-') {
        Some((m, q)) => (m, Some(q)),
        None => (s, None),
    };
    let num = |t: &str| -> Result<u64, Reply> { t.parse().map_err(|_| err(BAD_ID)) };
    let ms = num(ms)?;
    let seq = match seq {
        Some(q) => num(q)?,
        None => missing_seq,
    };
    Ok(StreamId { ms, seq })
}

/// Parses an id where `-` and `+` are accepted.
pub fn parse_id(a: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    parse_id_gen(a, missing_seq, false)
}

/// Parses an id where `-` and `+` are refused.
pub fn parse_strict(a: &[u8]) -> Result<StreamId, Reply> {
    parse_id_gen(a, 0, true)
}

/// Parses a range start (`(` for exclusive).
pub fn parse_start(a: &[u8]) -> Result<StreamId, Reply> {
    if a.len() > 1 && a[0] == b'(' {
        let id = parse_id_gen(&a[1..], 0, true)?;
        return id
            .next()
            .ok_or_else(|| err("ERR invalid start ID for the interval"));
    }
    parse_id(a, 0)
}

/// Parses a range end (`(` for exclusive).
pub fn parse_end(a: &[u8]) -> Result<StreamId, Reply> {
    if a.len() > 1 && a[0] == b'(' {
        let id = parse_id_gen(&a[1..], u64::MAX, true)?;
        return id
            .prev()
            .ok_or_else(|| err("ERR invalid end ID for the interval"));
    }
    parse_id(a, u64::MAX)
}

/// The counters a stream keeps in its header beside the entry count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// The last id ever generated (`last-generated-id`).
    pub last: StreamId,
    /// Entries ever added (`entries-added`).
    pub added: u64,
    /// The largest id ever deleted by XDEL (`max-deleted-entry-id`).
    pub max_deleted: StreamId,
}

impl Meta {
    /// Decodes the header's type-specific bytes: last id (16), entries added (8), max deleted
    /// id (16). Streams written before the last field read it as 0-0.
    pub fn of(h: &Header<'_>) -> Meta {
        let extra = match h.body {
            Body::Id { extra, .. } => extra,
            Body::Inline(_) => &[],
        };
        Meta {
            last: extra.get(..16).map(StreamId::from_key).unwrap_or_default(),
            added: extra
                .get(16..24)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0),
            max_deleted: extra
                .get(24..40)
                .map(StreamId::from_key)
                .unwrap_or_default(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut extra = Vec::with_capacity(40);
        extra.extend_from_slice(&self.last.key());
        extra.extend_from_slice(&self.added.to_be_bytes());
        extra.extend_from_slice(&self.max_deleted.key());
        extra
    }
}

/// A stream found by a lookup.
pub struct Stream<'tx> {
    /// Its header as stored.
    pub h: Header<'tx>,
    /// The collection fields (id, entry count).
    pub c: Coll,
    /// The counters.
    pub m: Meta,
}

impl<'tx> Stream<'tx> {
    fn of(found: Option<(Header<'tx>, Coll)>) -> Option<Stream<'tx>> {
        found.map(|(h, c)| Stream {
            m: Meta::of(&h),
            h,
            c,
        })
    }

    /// Rewrites the header (also how a change is made visible to WATCH and parked clients).
    pub fn save(&self, v: &DbView<'_>, key: &[u8]) -> Result<(), rivet::Error> {
        save(v, key, Some(&self.h), &self.c, &self.m)
    }

    /// The first entry's id (0-0 when empty), as Redis's `first_id`.
    pub fn first_id(&self, v: &DbView<'_>) -> Result<StreamId, rivet::Error> {
        Ok(first_entry(v, self.c.id)?.unwrap_or_default())
    }
}

/// The live stream at `key` for reading (`Err`: WRONGTYPE).
pub fn read_stream<'tx>(
    v: &DbView<'tx>,
    key: &[u8],
    now: i64,
) -> Result<Result<Option<Stream<'tx>>, Reply>, rivet::Error> {
    Ok(read(v, key, now, Kind::Stream)?.map(Stream::of))
}

/// The live stream at `key` for writing (`Err`: WRONGTYPE).
pub fn write_stream<'tx>(
    v: &DbView<'tx>,
    key: &[u8],
    now: i64,
) -> Result<Result<Option<Stream<'tx>>, Reply>, rivet::Error> {
    Ok(write(v, key, now, Kind::Stream)?.map(Stream::of))
}

/// Writes the stream header with its counters.
fn save(
    v: &DbView<'_>,
    key: &[u8],
    old: Option<&Header<'_>>,
    c: &Coll,
    m: &Meta,
) -> Result<(), rivet::Error> {
    let extra = m.encode();
    let h = Header {
        kind: Kind::Stream,
        expire_at: c.expire_at,
        body: Body::Id {
            id: c.id,
            len: c.len,
            extra: &extra,
        },
    };
    v.put_header(key, old, &h)
}

/// Creates an empty stream at `key` (which holds nothing live).
pub fn create_empty(v: &DbView<'_>, key: &[u8]) -> Result<Coll, rivet::Error> {
    let c = v.coll_new(Kind::Stream)?;
    save(v, key, None, &c, &Meta::default())?;
    Ok(c)
}

/// Encodes an entry's field/value pairs.
fn encode_fields(pairs: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
    for p in pairs {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Decodes an entry's field/value pairs as bulk replies.
pub fn decode_fields(mut v: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    let take_u32 = |v: &mut &[u8]| -> Option<usize> {
        let (h, r) = v.split_first_chunk::<4>()?;
        *v = r;
        Some(u32::from_be_bytes(*h) as usize)
    };
    let Some(n) = take_u32(&mut v) else {
        return out;
    };
    for _ in 0..n {
        let Some(len) = take_u32(&mut v) else { break };
        if v.len() < len {
            break;
        }
        out.push(Reply::bulk(&v[..len]));
        v = &v[len..];
    }
    out
}

/// One entry as Redis replies it: `[id, [field, value, ...]]`.
pub fn entry_reply(id: StreamId, val: &[u8]) -> Reply {
    Reply::Array(vec![id.reply(), Reply::Array(decode_fields(val))])
}

/// Visits the entries of stream `sid` from `from` on (backwards from `from` when `rev`)
/// until `f` returns false; group records, which sort after every entry, are never seen.
pub fn scan_entries<'tx>(
    v: &DbView<'tx>,
    sid: u64,
    from: StreamId,
    rev: bool,
    mut f: impl FnMut(StreamId, &'tx [u8]) -> Result<bool, rivet::Error>,
) -> Result<(), rivet::Error> {
    v.coll_scan(sid, &[], Some(&from.key()), rev, |k, val| {
        if k.len() != 16 {
            return Ok(false);
        }
        f(StreamId::from_key(k), val)
    })
}

/// The first entry's id.
pub fn first_entry(v: &DbView<'_>, sid: u64) -> Result<Option<StreamId>, rivet::Error> {
    let mut out = None;
    scan_entries(v, sid, StreamId::default(), false, |id, _| {
        out = Some(id);
        Ok(false)
    })?;
    Ok(out)
}

/// The last entry's id (Redis's `streamLastValidID`).
pub fn last_entry(v: &DbView<'_>, sid: u64) -> Result<Option<StreamId>, rivet::Error> {
    let mut out = None;
    scan_entries(v, sid, StreamId::MAX, true, |id, _| {
        out = Some(id);
        Ok(false)
    })?;
    Ok(out)
}

/// Entries from `start` to `end` in order (reverse: from `end` down to `start`), at most
/// `count` (0: all).
pub fn range(
    v: &DbView<'_>,
    sid: u64,
    start: StreamId,
    end: StreamId,
    rev: bool,
    count: usize,
) -> Result<Vec<(StreamId, Vec<u8>)>, rivet::Error> {
    let mut out = Vec::new();
    if start > end {
        return Ok(out);
    }
    let from = if rev { end } else { start };
    scan_entries(v, sid, from, rev, |id, val| {
        if (rev && id < start) || (!rev && id > end) {
            return Ok(false);
        }
        out.push((id, val.to_vec()));
        Ok(count == 0 || out.len() < count)
    })?;
    Ok(out)
}

/// Trimming strategy of XADD/XTRIM.
#[derive(Debug, Clone, Copy)]
enum Strategy {
    MaxLen(u64),
    MinId(StreamId),
}

/// Parsed XADD/XTRIM options.
struct AddTrim {
    strategy: Option<Strategy>,
    approx: bool,
    limit: u64,
    nomk: bool,
    /// XADD: the id argument's index.
    id_at: usize,
}

/// Parses the options of XADD (`xadd`) or XTRIM, as `streamParseAddOrTrimArgsOrReply`.
fn parse_add_trim(ctx: &Ctx<'_>, a: &[Bytes], xadd: bool) -> Result<AddTrim, Reply> {
    let mut o = AddTrim {
        strategy: None,
        approx: false,
        limit: 0,
        nomk: false,
        id_at: a.len(),
    };
    let mut limit_given = false;
    let mut i = 2;
    while i < a.len() {
        let more = a.len() - 1 - i;
        let opt = &a[i];
        if xadd && opt.as_ref() == b"*" {
            o.id_at = i;
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if o.strategy.is_some() {
                return Err(err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible"));
            }
            o.approx = false;
            let next = &a[i + 1];
            if more >= 2 && (next.as_ref() == b"~" || next.as_ref() == b"=") {
                o.approx = next.as_ref() == b"~";
                i += 1;
            }
            let t = &a[i + 1];
            o.strategy = Some(if is(opt, "maxlen") {
                let n = int(t)?;
                if n < 0 {
                    return Err(err("ERR The MAXLEN argument must be >= 0."));
                }
                Strategy::MaxLen(n as u64)
            } else {
                Strategy::MinId(parse_strict(t)?)
            });
            i += 2;
        } else if is(opt, "limit") && more > 0 {
            let n = int(&a[i + 1])?;
            if n < 0 {
                return Err(err("ERR The LIMIT argument must be >= 0."));
            }
            o.limit = n as u64;
            limit_given = true;
            i += 2;
        } else if xadd && is(opt, "nomkstream") {
            o.nomk = true;
            i += 1;
        } else if xadd {
            o.id_at = i;
            break;
        } else {
            return Err(err(SYNTAX));
        }
    }
    if o.limit > 0 && o.strategy.is_none() {
        return Err(err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && o.strategy.is_none() {
        return Err(err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !o.approx {
            return Err(err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if o.approx {
        let node = node_entries(ctx) as i64;
        o.limit = (100 * node).clamp(1, 1_000_000) as u64;
        if node <= 0 {
            o.limit = 10_000;
        }
    } else {
        o.limit = 0;
    }
    Ok(o)
}

/// `stream-node-max-entries`: the size of the virtual nodes approximate trimming removes.
fn node_entries(ctx: &Ctx<'_>) -> u64 {
    ctx.state
        .config
        .get("stream-node-max-entries")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
}

/// Deletes entries from the head as `streamTrim` does; returns how many. Approximate trimming
/// removes only whole virtual nodes of `node` entries, counted from the first entry ever
/// added (Redis's listpack nodes), and at most `limit` entries (0: no limit).
fn trim(
    v: &DbView<'_>,
    s: &mut Stream<'_>,
    strategy: Strategy,
    approx: bool,
    limit: u64,
    node: u64,
) -> Result<u64, rivet::Error> {
    let sid = s.c.id;
    let mut deleted = 0u64;
    if !approx {
        let mut victims = Vec::new();
        let mut excess = match strategy {
            Strategy::MaxLen(n) => s.c.len.saturating_sub(n),
            Strategy::MinId(_) => u64::MAX,
        };
        if excess == 0 {
            return Ok(0);
        }
        scan_entries(v, sid, StreamId::default(), false, |id, _| {
            let go = match strategy {
                Strategy::MaxLen(_) => excess > 0,
                Strategy::MinId(min) => id < min,
            };
            if go {
                victims.push(id);
                excess = excess.saturating_sub(1);
            }
            Ok(go && excess > 0)
        })?;
        for id in &victims {
            v.coll_del(sid, &id.key())?;
        }
        s.c.len = s.c.len.saturating_sub(victims.len() as u64);
        return Ok(victims.len() as u64);
    }
    let node = if node == 0 { u64::MAX } else { node };
    let mut ordinal = s.m.added.saturating_sub(s.c.len);
    loop {
        if s.c.len == 0 {
            break;
        }
        if let Strategy::MaxLen(n) = strategy {
            if s.c.len <= n {
                break;
            }
        }
        let in_node = (node - ordinal % node).min(s.c.len);
        let mut ids = Vec::new();
        scan_entries(v, sid, StreamId::default(), false, |id, _| {
            ids.push(id);
            Ok((ids.len() as u64) < in_node)
        })?;
        if ids.is_empty() {
            // The count says entries remain but none are stored: nothing more to trim.
            break;
        }
        let remove = match strategy {
            Strategy::MaxLen(n) => in_node <= s.c.len - n,
            Strategy::MinId(min) => ids.last().is_some_and(|l| *l < min),
        };
        if !remove || (limit > 0 && deleted + in_node > limit) {
            break;
        }
        for id in &ids {
            v.coll_del(sid, &id.key())?;
        }
        s.c.len = s.c.len.saturating_sub(ids.len() as u64);
        deleted += ids.len() as u64;
        ordinal += in_node;
    }
    Ok(deleted)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] *|id field value [...]
pub fn xadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let o = arg!(parse_add_trim(ctx, a, true));
    if o.id_at >= a.len() {
        return Ok(arity_error("xadd"));
    }
    let idarg = &a[o.id_at];
    // The id: None for `*`, (ms, Some(seq)) or (ms, None) for `ms-*`.
    let given: Option<(u64, Option<u64>)> = if idarg.as_ref() == b"*" {
        None
    } else if let Some(ms) = idarg.strip_suffix(b"-*") {
        let id = arg!(parse_strict(ms));
        if ms.contains(&b'-') {
            return Ok(err(BAD_ID));
        }
        Some((id.ms, None))
    } else {
        let id = arg!(parse_strict(idarg));
        Some((id.ms, Some(id.seq)))
    };
    let fields = &a[o.id_at + 1..];
    if fields.len() < 2 || !fields.len().is_multiple_of(2) {
        return Ok(arity_error("xadd"));
    }
    if given == Some((0, Some(0))) {
        return Ok(err("ERR The ID specified in XADD must be greater than 0-0"));
    }
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::Stream));
    if found.is_none() && o.nomk {
        return Ok(Reply::Nil);
    }
    let m = found.as_ref().map(|f| Meta::of(&f.0)).unwrap_or_default();
    if m.last == StreamId::MAX {
        return Ok(err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    const SMALLER: &str =
        "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    let id = match given {
        None => {
            let ms = ctx.now_ms.max(0) as u64;
            if ms > m.last.ms {
                StreamId { ms, seq: 0 }
            } else {
                match m.last.next() {
                    Some(n) => n,
                    None => return Ok(err(SMALLER)),
                }
            }
        }
        Some((ms, None)) => {
            if ms == m.last.ms {
                if m.last.seq == u64::MAX {
                    return Ok(err(SMALLER));
                }
                StreamId {
                    ms,
                    seq: m.last.seq + 1,
                }
            } else if ms > m.last.ms {
                StreamId { ms, seq: 0 }
            } else {
                return Ok(err(SMALLER));
            }
        }
        Some((ms, Some(seq))) => {
            let id = StreamId { ms, seq };
            if id <= m.last {
                return Ok(err(SMALLER));
            }
            id
        }
    };
    let old = found.as_ref().map(|f| f.0);
    let c = or_new(&v, &found, Kind::Stream)?;
    let mut s = Stream {
        h: old.unwrap_or(Header {
            kind: Kind::Stream,
            expire_at: None,
            body: Body::Inline(&[]),
        }),
        c,
        m,
    };
    v.coll_put(s.c.id, &id.key(), &encode_fields(fields))?;
    s.c.len += 1;
    s.m.last = id;
    s.m.added += 1;
    if let Some(strategy) = o.strategy {
        trim(&v, &mut s, strategy, o.approx, o.limit, node_entries(ctx))?;
    }
    save(&v, &a[1], old.as_ref(), &s.c, &s.m)?;
    Ok(id.reply())
}

/// XLEN key
pub fn xlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let found = tri!(read(&v, &a[1], ctx.now_ms, Kind::Stream));
    Ok(Reply::Int(found.map(|f| f.1.len as i64).unwrap_or(0)))
}

/// XRANGE key start end [COUNT n] and XREVRANGE key end start [COUNT n]
pub fn xrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let rev = is(&a[0], "xrevrange");
    let (s_arg, e_arg) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    let start = arg!(parse_start(s_arg));
    let end = arg!(parse_end(e_arg));
    let mut count: i64 = -1;
    let mut j = 4;
    while j < a.len() {
        if is(&a[j], "count") && j + 1 < a.len() {
            count = arg!(int(&a[j + 1])).max(0);
            j += 2;
        } else {
            return Ok(err(SYNTAX));
        }
    }
    let v = ctx.view()?;
    let Some(s) = tri!(read_stream(&v, &a[1], ctx.now_ms)) else {
        return Ok(Reply::Array(vec![]));
    };
    if count == 0 {
        // Redis answers COUNT 0 on an existing stream with a null array.
        return Ok(Reply::NilArray);
    }
    let items = range(&v, s.c.id, start, end, rev, count.max(0) as usize)?;
    Ok(Reply::Array(
        items
            .iter()
            .map(|(id, val)| entry_reply(*id, val))
            .collect(),
    ))
}

/// XDEL key id [id ...]
pub fn xdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut ids = Vec::new();
    for x in &a[2..] {
        ids.push(arg!(parse_strict(x)));
    }
    let v = ctx.view()?;
    let Some(mut s) = tri!(write_stream(&v, &a[1], ctx.now_ms)) else {
        return Ok(Reply::Int(0));
    };
    let mut n = 0;
    for id in ids {
        if v.coll_del(s.c.id, &id.key())? {
            n += 1;
            if id > s.m.max_deleted {
                s.m.max_deleted = id;
            }
        }
    }
    if n > 0 {
        s.c.len = s.c.len.saturating_sub(n);
        // A stream stays when emptied (Redis keeps empty streams).
        s.save(&v, &a[1])?;
    }
    Ok(Reply::Int(n as i64))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT n]
pub fn xtrim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let o = arg!(parse_add_trim(ctx, a, false));
    let v = ctx.view()?;
    let Some(mut s) = tri!(write_stream(&v, &a[1], ctx.now_ms)) else {
        return Ok(Reply::Int(0));
    };
    let Some(strategy) = o.strategy else {
        return Ok(err(SYNTAX));
    };
    let n = trim(&v, &mut s, strategy, o.approx, o.limit, node_entries(ctx))?;
    if n > 0 {
        s.save(&v, &a[1])?;
    }
    Ok(Reply::Int(n as i64))
}

/// XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]
pub fn xsetid(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let id = arg!(parse_strict(&a[2]));
    let mut added: i64 = -1;
    let mut max_del = StreamId::default();
    let mut i = 3;
    while i < a.len() {
        let more = a.len() - 1 - i;
        if is(&a[i], "entriesadded") && more > 0 {
            added = arg!(int(&a[i + 1]));
            if added < 0 {
                return Ok(err("ERR entries_added must be positive"));
            }
        } else if is(&a[i], "maxdeletedid") && more > 0 {
            max_del = arg!(parse_strict(&a[i + 1]));
            if id < max_del {
                return Ok(err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
            }
        } else {
            return Ok(err(SYNTAX));
        }
        i += 2;
    }
    let v = ctx.view()?;
    let Some(mut s) = tri!(write_stream(&v, &a[1], ctx.now_ms)) else {
        return Ok(err(NO_SUCH_KEY));
    };
    if s.c.len > 0 {
        let top = last_entry(&v, s.c.id)?.unwrap_or_default();
        if id < top {
            return Ok(err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if added != -1 && s.c.len > added as u64 {
            return Ok(err(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    s.m.last = id;
    if added != -1 {
        s.m.added = added as u64;
    }
    if !max_del.is_zero() {
        s.m.max_deleted = max_del;
    }
    s.save(&v, &a[1])?;
    Ok(crate::resp::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis() {
        assert_eq!(parse_id(b"5", 0).ok(), Some(StreamId { ms: 5, seq: 0 }));
        assert_eq!(parse_id(b"5", u64::MAX).ok().map(|i| i.seq), Some(u64::MAX));
        assert_eq!(parse_id(b"-", 0).ok(), Some(StreamId::default()));
        assert_eq!(parse_id(b"+", 0).ok(), Some(StreamId::MAX));
        assert!(parse_strict(b"+").is_err());
        assert!(parse_strict(b"1-x").is_err());
        assert!(parse_strict(b"-1").is_err());
        assert!(parse_start(b"(18446744073709551615-18446744073709551615").is_err());
        assert!(parse_end(b"(0-0").is_err());
        assert_eq!(parse_start(b"(1-1").ok(), Some(StreamId { ms: 1, seq: 2 }));
        assert_eq!(
            parse_end(b"(2-0").ok(),
            Some(StreamId {
                ms: 1,
                seq: u64::MAX
            })
        );
    }

    #[test]
    fn meta_round_trips_and_reads_old_headers() {
        let m = Meta {
            last: StreamId { ms: 9, seq: 3 },
            added: 42,
            max_deleted: StreamId { ms: 7, seq: 1 },
        };
        let extra = m.encode();
        let h = Header {
            kind: Kind::Stream,
            expire_at: None,
            body: Body::Id {
                id: 1,
                len: 2,
                extra: &extra,
            },
        };
        assert_eq!(Meta::of(&h), m);
        // A header written before max-deleted-entry-id existed (24 bytes).
        let old = Header {
            body: Body::Id {
                id: 1,
                len: 2,
                extra: &extra[..24],
            },
            ..h
        };
        assert_eq!(
            Meta::of(&old),
            Meta {
                max_deleted: StreamId::default(),
                ..m
            }
        );
    }
}
