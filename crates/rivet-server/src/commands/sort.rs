//! SORT and SORT_RO (Redis `sort.c`): sort the elements of a list, set or sorted set
//! numerically or by bytes (ALPHA), optionally by external weights (BY pattern), with LIMIT,
//! GET patterns and STORE into a list. It reads the whole collection, as Redis does.

use std::cmp::Ordering;

use bytes::Bytes;

use super::args::{err, int, is, KEY_TOO_LONG, SYNTAX, WRONGTYPE};
use super::strings::arg;
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::collections::{list_pos, Coll};
use crate::store::keyspace::{Body, Kind, MAX_KEY_LEN};
use crate::store::DbView;

/// One element being sorted.
struct Item {
    obj: Vec<u8>,
    score: f64,
    cmp: Option<Vec<u8>>,
}

/// The elements of a list (in order), set (member order) or sorted set (score order).
fn elements(v: &DbView<'_>, c: &Coll) -> Result<Vec<Vec<u8>>, rivet::Error> {
    let mut out = Vec::with_capacity(c.len as usize);
    let prefix: &[u8] = if c.kind == Kind::ZSet { b"s" } else { b"" };
    v.coll_scan(c.id, prefix, None, false, |k, _| {
        out.push(if c.kind == Kind::ZSet {
            k.get(8..).unwrap_or(&[]).to_vec()
        } else {
            k.to_vec()
        });
        Ok(true)
    })?;
    if c.kind == Kind::List {
        // List entry keys are positions; the values are the elements.
        out.clear();
        v.coll_scan(c.id, &[], Some(&list_pos(c.head)), false, |_, e| {
            out.push(e.to_vec());
            Ok(true)
        })?;
    }
    Ok(out)
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the first `*` is
/// replaced by the element and the key read as a string, or as a hash field after `->`.
fn by_pattern(
    v: &DbView<'_>,
    now: i64,
    pattern: &[u8],
    elem: &[u8],
) -> Result<Option<Vec<u8>>, rivet::Error> {
    if pattern == b"#" {
        return Ok(Some(elem.to_vec()));
    }
    let Some(star) = pattern.iter().position(|&c| c == b'*') else {
        return Ok(None);
    };
    let rest = &pattern[star + 1..];
    let (suffix, field) = match rest.windows(2).position(|w| w == b"->") {
        Some(i) if i + 2 < rest.len() => (&rest[..i], Some(&rest[i + 2..])),
        _ => (rest, None),
    };
    let mut key = pattern[..star].to_vec();
    key.extend_from_slice(elem);
    key.extend_from_slice(suffix);
    let Some(h) = v.lookup(&key, now)? else {
        return Ok(None);
    };
    match (field, h.kind) {
        (None, Kind::String) => Ok(Some(v.string_bytes(&h)?)),
        (Some(f), Kind::Hash) => match h.body {
            Body::Id { id, .. } => Ok(v.coll_get(id, f)?.map(|x| x.to_vec())),
            Body::Inline(_) => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Parses a weight as `strtod` does for SORT (`None` when it is not a number).
fn weight(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    let v = s
        .parse::<f64>()
        .ok()
        .or_else(|| super::args::parse_f64(b))?;
    (!v.is_nan()).then_some(v)
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination], and SORT_RO (no STORE).
pub fn sort(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let readonly = is(&a[0], "sort_ro");
    let (mut desc, mut alpha, mut dontsort) = (false, false, false);
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let mut store: Option<&Bytes> = None;
    let mut by: Option<&Bytes> = None;
    let mut gets: Vec<&Bytes> = Vec::new();
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let o = &a[j];
        if is(o, "asc") {
            desc = false;
        } else if is(o, "desc") {
            desc = true;
        } else if is(o, "alpha") {
            alpha = true;
        } else if is(o, "limit") && left >= 2 {
            limit_start = arg!(int(&a[j + 1]));
            limit_count = arg!(int(&a[j + 2]));
            j += 2;
        } else if !readonly && is(o, "store") && left >= 1 {
            store = Some(&a[j + 1]);
            j += 1;
        } else if is(o, "by") && left >= 1 {
            by = Some(&a[j + 1]);
            dontsort = !a[j + 1].contains(&b'*');
            j += 1;
        } else if is(o, "get") && left >= 1 {
            gets.push(&a[j + 1]);
            j += 1;
        } else {
            return Ok(err(SYNTAX));
        }
        j += 1;
    }
    let v = ctx.view()?;
    let now = ctx.now_ms;
    let c = match v.lookup(&a[1], now)? {
        None => None,
        Some(h) if !matches!(h.kind, Kind::List | Kind::Set | Kind::ZSet) => {
            return Ok(err(WRONGTYPE))
        }
        Some(h) => Coll::of(&h),
    };
    let kind = c.map(|c| c.kind).unwrap_or(Kind::List);
    if dontsort && kind == Kind::Set && store.is_some() {
        // Redis sorts sets anyway when storing, so the stored list is deterministic.
        dontsort = false;
        alpha = true;
        by = None;
    }
    let mut elems = match &c {
        Some(c) => elements(&v, c)?,
        None => Vec::new(),
    };
    if dontsort && kind == Kind::ZSet && desc {
        elems.reverse();
    }
    let len = elems.len() as i64;
    let start = limit_start.max(0);
    let mut end = if limit_count < 0 {
        len - 1
    } else {
        start.saturating_add(limit_count) - 1
    };
    let start = if start >= len { len - 1 } else { start };
    if limit_start >= len {
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|obj| Item {
            obj,
            score: 0.0,
            cmp: None,
        })
        .collect();
    if !dontsort {
        let mut bad = false;
        for it in &mut items {
            let byval = match by {
                Some(p) => match by_pattern(&v, now, p, &it.obj)? {
                    Some(x) => x,
                    None => continue,
                },
                None => it.obj.clone(),
            };
            if alpha {
                if by.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match weight(&byval) {
                    Some(s) => it.score = s,
                    None => bad = true,
                }
            }
        }
        if bad {
            return Ok(err("ERR One or more scores can't be converted into double"));
        }
        let by_pattern_set = by.is_some();
        items.sort_by(|x, y| {
            let o = if !alpha {
                x.score
                    .partial_cmp(&y.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| x.obj.cmp(&y.obj))
            } else if by_pattern_set {
                match (&x.cmp, &y.cmp) {
                    (None, None) => Ordering::Equal,
                    (None, _) => Ordering::Less,
                    (_, None) => Ordering::Greater,
                    (Some(p), Some(q)) => p.cmp(q),
                }
            } else {
                x.obj.cmp(&y.obj)
            };
            if desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let picked: &[Item] = if start <= end && start >= 0 {
        &items[start as usize..=end as usize]
    } else {
        &[]
    };
    let mut out: Vec<Option<Vec<u8>>> = Vec::new();
    for it in picked {
        if gets.is_empty() {
            out.push(Some(it.obj.clone()));
        }
        for g in &gets {
            out.push(by_pattern(&v, now, g, &it.obj)?);
        }
    }
    let Some(dst) = store else {
        return Ok(Reply::Array(
            out.into_iter()
                .map(|x| x.map(Reply::Bulk).unwrap_or(Reply::Nil))
                .collect(),
        ));
    };
    let n = out.len();
    if n > 0 && dst.len() > MAX_KEY_LEN {
        v.delete_key(dst, now)?;
        return Ok(err(KEY_TOO_LONG));
    }
    v.replace_collection(dst, now, Kind::List, n as u64, |lc| {
        for (i, x) in out.into_iter().enumerate() {
            v.coll_put(lc.id, &list_pos(i as i64), &x.unwrap_or_default())?;
        }
        Ok(())
    })?;
    Ok(Reply::Int(n as i64))
}
