//! Stream commands (Redis `t_stream.c`), the core subset: XADD (with MAXLEN/MINID trimming)
//! XLEN XRANGE XREVRANGE XDEL XTRIM. Each entry is its own record under the stream's id,
//! keyed by its 128-bit entry id, so XADD is an append and XRANGE a range scan. Consumer
//! groups and XREAD are not implemented yet.

use bytes::Bytes;

use super::access::{or_new, read, write};
use super::args::{err, int, is, SYNTAX};
use super::strings::{arg, tri};
use super::{arity_error, CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::collections::Coll;
use crate::store::keyspace::{Body, Kind};
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
    fn key(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.ms.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }

    fn from_key(k: &[u8]) -> StreamId {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&k[..8.min(k.len())]);
        if k.len() >= 16 {
            seq.copy_from_slice(&k[8..16]);
        }
        StreamId {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }

    fn text(self) -> Vec<u8> {
        format!("{}-{}", self.ms, self.seq).into_bytes()
    }

    fn next(self) -> Option<StreamId> {
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

    fn prev(self) -> Option<StreamId> {
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
}

const BAD_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// Parses `ms[-seq]`; a missing seq is `missing_seq`. `-`/`+` are the extremes.
fn parse_id(a: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    match a {
        b"-" => return Ok(StreamId::default()),
        b"+" => {
            return Ok(StreamId {
                ms: u64::MAX,
                seq: u64::MAX,
            })
        }
        _ => {}
    }
    let s = std::str::from_utf8(a).map_err(|_| err(BAD_ID))?;
    let (ms, seq) = match s.split_once('-') {
        Some((m, q)) => (m, Some(q)),
        None => (s, None),
    };
    let ms: u64 = ms.parse().map_err(|_| err(BAD_ID))?;
    let seq = match seq {
        Some(q) => q.parse().map_err(|_| err(BAD_ID))?,
        None => missing_seq,
    };
    Ok(StreamId { ms, seq })
}

/// Parses a range bound, with `(` for exclusive (Redis 6.2+).
fn parse_bound(a: &[u8], start: bool) -> Result<Option<StreamId>, Reply> {
    if let Some(rest) = a.strip_prefix(b"(") {
        let id = parse_id(rest, if start { 0 } else { u64::MAX })?;
        return Ok(if start { id.next() } else { id.prev() });
    }
    Ok(Some(parse_id(a, if start { 0 } else { u64::MAX })?))
}

/// The stream's last id and entries-added counter, from the header's extra bytes.
fn meta(extra: &[u8]) -> (StreamId, u64) {
    let last = if extra.len() >= 16 {
        StreamId::from_key(&extra[..16])
    } else {
        StreamId::default()
    };
    let added = extra
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    (last, added)
}

fn encode_fields(pairs: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
    for p in pairs {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn decode_fields(mut v: &[u8]) -> Vec<Reply> {
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

/// Writes the stream header with its metadata.
fn save(
    v: &DbView<'_>,
    key: &[u8],
    old: Option<&crate::store::Header<'_>>,
    c: &Coll,
    last: StreamId,
    added: u64,
) -> Result<(), rivet::Error> {
    let mut extra = Vec::with_capacity(24);
    extra.extend_from_slice(&last.key());
    extra.extend_from_slice(&added.to_be_bytes());
    let h = crate::store::Header {
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

/// Trimming options of XADD/XTRIM.
enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// Parses `MAXLEN|MINID [=|~] threshold [LIMIT n]` at `a[i..]`; returns the trim and the
/// next index.
fn parse_trim(a: &[Bytes], mut i: usize) -> Result<(Trim, usize), Reply> {
    let maxlen = is(&a[i], "maxlen");
    i += 1;
    if i < a.len() && (a[i].as_ref() == b"=" || a[i].as_ref() == b"~") {
        i += 1;
    }
    let Some(t) = a.get(i) else {
        return Err(err(SYNTAX));
    };
    let trim = if maxlen {
        let n = int(t)?;
        if n < 0 {
            return Err(err("ERR The MAXLEN argument must be >= 0."));
        }
        Trim::MaxLen(n as u64)
    } else {
        Trim::MinId(parse_id(t, 0)?)
    };
    i += 1;
    if i + 1 < a.len() && is(&a[i], "limit") {
        int(&a[i + 1])?;
        i += 2;
    }
    Ok((trim, i))
}

/// Deletes entries from the front per `trim`; returns how many.
fn apply_trim(v: &DbView<'_>, c: &mut Coll, trim: &Trim) -> Result<u64, rivet::Error> {
    let mut victims = Vec::new();
    let mut excess = match trim {
        Trim::MaxLen(n) => c.len.saturating_sub(*n),
        Trim::MinId(_) => u64::MAX,
    };
    v.coll_scan(c.id, &[], None, false, |k, _| {
        let id = StreamId::from_key(k);
        let go = match trim {
            Trim::MaxLen(_) => excess > 0,
            Trim::MinId(min) => id < *min,
        };
        if go {
            victims.push(k.to_vec());
            excess = excess.saturating_sub(1);
        }
        Ok(go)
    })?;
    for k in &victims {
        v.coll_del(c.id, k)?;
    }
    c.len -= victims.len() as u64;
    Ok(victims.len() as u64)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] *|id field value [...]
pub fn xadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut i = 2;
    let mut nomk = false;
    let mut trim = None;
    loop {
        let Some(o) = a.get(i) else {
            return Ok(arity_error("xadd"));
        };
        if is(o, "nomkstream") {
            nomk = true;
            i += 1;
        } else if is(o, "maxlen") || is(o, "minid") {
            let (t, next) = arg!(parse_trim(a, i));
            trim = Some(t);
            i = next;
        } else {
            break;
        }
    }
    let fields = &a[i + 1..];
    if fields.is_empty() || !fields.len().is_multiple_of(2) {
        return Ok(arity_error("xadd"));
    }
    let idarg = &a[i];
    let v = ctx.view()?;
    let found = tri!(write(&v, &a[1], ctx.now_ms, Kind::Stream));
    if found.is_none() && nomk {
        return Ok(Reply::Nil);
    }
    let (last, added) = match &found {
        Some((h, _)) => match h.body {
            Body::Id { extra, .. } => meta(extra),
            _ => (StreamId::default(), 0),
        },
        None => (StreamId::default(), 0),
    };
    let id = if idarg.as_ref() == b"*" {
        let ms = ctx.now_ms.max(0) as u64;
        if ms > last.ms {
            StreamId { ms, seq: 0 }
        } else {
            match last.next() {
                Some(n) => n,
                None => return Ok(err(
                    "ERR The stream has exhausted the last possible ID, unable to add more items",
                )),
            }
        }
    } else if let Some(ms) = idarg.strip_suffix(b"-*") {
        let ms: u64 = match std::str::from_utf8(ms).ok().and_then(|s| s.parse().ok()) {
            Some(m) => m,
            None => return Ok(err(BAD_ID)),
        };
        if ms == last.ms {
            match last.next() {
                Some(n) if n.ms == ms => n,
                _ => return Ok(err("ERR The ID specified in XADD is equal or smaller than the target stream top item")),
            }
        } else {
            StreamId { ms, seq: 0 }
        }
    } else {
        arg!(parse_id(idarg, 0))
    };
    if id == StreamId::default() {
        return Ok(err("ERR The ID specified in XADD must be greater than 0-0"));
    }
    if id <= last {
        return Ok(err(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        ));
    }
    let mut c = or_new(&v, &found, Kind::Stream)?;
    v.coll_put(c.id, &id.key(), &encode_fields(fields))?;
    c.len += 1;
    if let Some(t) = &trim {
        apply_trim(&v, &mut c, t)?;
    }
    save(&v, &a[1], found.as_ref().map(|f| &f.0), &c, id, added + 1)?;
    Ok(Reply::Bulk(id.text()))
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
    let start = arg!(parse_bound(s_arg, true));
    let end = arg!(parse_bound(e_arg, false));
    let mut count = None;
    if a.len() == 6 && is(&a[4], "count") {
        let n = arg!(int(&a[5]));
        count = Some(n.max(0) as usize);
    } else if a.len() != 4 {
        return Ok(err(SYNTAX));
    }
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, Kind::Stream)) else {
        return Ok(Reply::Array(vec![]));
    };
    let (Some(start), Some(end)) = (start, end) else {
        return Ok(Reply::Array(vec![]));
    };
    if start > end || count == Some(0) {
        return Ok(Reply::Array(vec![]));
    }
    let mut out = Vec::new();
    let from = if rev { end.key() } else { start.key() };
    v.coll_scan(c.id, &[], Some(&from), rev, |k, val| {
        let id = StreamId::from_key(k);
        if (rev && id < start) || (!rev && id > end) {
            return Ok(false);
        }
        out.push(Reply::Array(vec![
            Reply::Bulk(id.text()),
            Reply::Array(decode_fields(val)),
        ]));
        Ok(count.is_none_or(|n| out.len() < n))
    })?;
    Ok(Reply::Array(out))
}

/// XDEL key id [id ...]
pub fn xdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut ids = Vec::new();
    for x in &a[2..] {
        ids.push(arg!(parse_id(x, 0)));
    }
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::Stream)) else {
        return Ok(Reply::Int(0));
    };
    let (last, added) = match h.body {
        Body::Id { extra, .. } => meta(extra),
        _ => (StreamId::default(), 0),
    };
    let mut n = 0;
    for id in ids {
        if v.coll_del(c.id, &id.key())? {
            n += 1;
        }
    }
    c.len -= n;
    // A stream stays when emptied (Redis keeps empty streams).
    save(&v, &a[1], Some(&h), &c, last, added)?;
    Ok(Reply::Int(n as i64))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT n]
pub fn xtrim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !(is(&a[2], "maxlen") || is(&a[2], "minid")) {
        return Ok(err(SYNTAX));
    }
    let (trim, next) = arg!(parse_trim(a, 2));
    if next != a.len() {
        return Ok(err(SYNTAX));
    }
    let v = ctx.view()?;
    let Some((h, mut c)) = tri!(write(&v, &a[1], ctx.now_ms, Kind::Stream)) else {
        return Ok(Reply::Int(0));
    };
    let (last, added) = match h.body {
        Body::Id { extra, .. } => meta(extra),
        _ => (StreamId::default(), 0),
    };
    let n = apply_trim(&v, &mut c, &trim)?;
    save(&v, &a[1], Some(&h), &c, last, added)?;
    Ok(Reply::Int(n as i64))
}
