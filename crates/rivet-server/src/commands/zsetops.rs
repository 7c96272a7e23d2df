//! Sorted-set algebra (Redis `t_zset.c`, `zunionInterDiffGenericCommand`): ZUNION, ZINTER,
//! ZDIFF, their STORE forms, and ZINTERCARD. Inputs may be sets (every member scores 1) or
//! sorted sets. Intersections walk the smallest input and probe the others point by point;
//! unions and the result gather in memory, as the result must be sorted by score.

use std::collections::HashMap;

use bytes::Bytes;

use super::args::{err, int, is, parse_f64, KEY_TOO_LONG, SYNTAX, WRONGTYPE};
use super::strings::arg;
use super::zrange::store_zset;
use super::zsets::{scored_reply, Scored};
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::collections::{split_order_key, Coll, ZSET_ORDER};
use crate::store::keyspace::{Kind, MAX_KEY_LEN};
use crate::store::DbView;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// One input: a set or sorted set (or nothing), with its weight.
struct Source {
    coll: Option<Coll>,
    weight: f64,
}

impl Source {
    fn len(&self) -> u64 {
        self.coll.map_or(0, |c| c.len)
    }

    /// Every (member, score) of the input.
    fn each(
        &self,
        v: &DbView<'_>,
        mut f: impl FnMut(&[u8], f64) -> Result<bool, rivet::Error>,
    ) -> Result<(), rivet::Error> {
        let Some(c) = self.coll else {
            return Ok(());
        };
        if c.kind == Kind::ZSet {
            v.coll_scan(c.id, ZSET_ORDER, None, false, |k, _| {
                let (s, m) = split_order_key(k);
                f(m, s)
            })
        } else {
            v.coll_scan(c.id, b"", None, false, |m, _| f(m, 1.0))
        }
    }

    /// The score of `m` in this input.
    fn score(&self, v: &DbView<'_>, m: &[u8]) -> Result<Option<f64>, rivet::Error> {
        match self.coll {
            None => Ok(None),
            Some(c) if c.kind == Kind::ZSet => v.zset_score(c.id, m),
            Some(c) => Ok(v.coll_get(c.id, m)?.map(|_| 1.0)),
        }
    }
}

fn aggregate(acc: &mut f64, x: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *acc += x;
            if acc.is_nan() {
                *acc = 0.0;
            }
        }
        Aggregate::Min => *acc = acc.min(x),
        Aggregate::Max => *acc = acc.max(x),
    }
}

/// `weight * score`, with Redis's rule that `0 * inf` counts as 0.
fn weighted(score: f64, weight: f64) -> f64 {
    let x = score * weight;
    if x.is_nan() {
        0.0
    } else {
        x
    }
}

/// ZUNION/ZINTER/ZDIFF numkeys key... [WEIGHTS w...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES],
/// ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE dst numkeys key..., ZINTERCARD numkeys key... [LIMIT n].
pub fn zsetop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
    let store = name.ends_with("store");
    let card_only = name == "zintercard";
    let op = match &name[1..5] {
        "unio" => Op::Union,
        "inte" => Op::Inter,
        _ => Op::Diff,
    };
    let at = if store { 2 } else { 1 };
    let n = arg!(int(&a[at]));
    if n < 1 {
        return Ok(err(&format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if n as u64 > (a.len() - at - 1) as u64 {
        return Ok(err(SYNTAX));
    }
    let n = n as usize;
    let keys = &a[at + 1..at + 1 + n];
    // Redis looks the inputs up (WRONGTYPE) before it reads the options.
    let v = ctx.view()?;
    let mut colls = Vec::with_capacity(n);
    for k in keys {
        colls.push(match v.lookup(k, ctx.now_ms)? {
            None => None,
            Some(h) if h.kind == Kind::ZSet || h.kind == Kind::Set => Coll::of(&h),
            Some(_) => return Ok(err(WRONGTYPE)),
        });
    }
    let mut weights = vec![1.0f64; n];
    let mut how = Aggregate::Sum;
    let (mut withscores, mut limit) = (false, 0u64);
    let mut j = at + 1 + n;
    while j < a.len() {
        let left = a.len() - j;
        if op != Op::Diff && !card_only && left > n && is(&a[j], "weights") {
            for (i, w) in weights.iter_mut().enumerate() {
                match parse_f64(&a[j + 1 + i]) {
                    Some(x) => *w = x,
                    None => return Ok(err("ERR weight value is not a float")),
                }
            }
            j += 1 + n;
        } else if op != Op::Diff && !card_only && left >= 2 && is(&a[j], "aggregate") {
            let x = &a[j + 1];
            how = if is(x, "sum") {
                Aggregate::Sum
            } else if is(x, "min") {
                Aggregate::Min
            } else if is(x, "max") {
                Aggregate::Max
            } else {
                return Ok(err(SYNTAX));
            };
            j += 2;
        } else if !store && !card_only && is(&a[j], "withscores") {
            withscores = true;
            j += 1;
        } else if card_only && left >= 2 && is(&a[j], "limit") {
            // Redis answers a non-number with the same message.
            match int(&a[j + 1]) {
                Ok(l) if l >= 0 => limit = l as u64,
                _ => return Ok(err("ERR LIMIT can't be negative")),
            }
            j += 2;
        } else {
            return Ok(err(SYNTAX));
        }
    }
    if store && a[1].len() > MAX_KEY_LEN {
        return Ok(err(KEY_TOO_LONG));
    }
    let mut srcs: Vec<Source> = colls
        .into_iter()
        .zip(&weights)
        .map(|(coll, w)| Source { coll, weight: *w })
        .collect();
    let result = match op {
        Op::Inter => {
            srcs.sort_by_key(Source::len);
            inter(&v, &srcs, how, card_only, limit)?
        }
        Op::Union => union(&v, &srcs, how)?,
        Op::Diff => diff(&v, &srcs)?,
    };
    let (count, mut items) = result;
    if card_only {
        return Ok(Reply::Int(count as i64));
    }
    if store {
        let n = store_zset(&v, &a[1], ctx.now_ms, items)?;
        return Ok(Reply::Int(n as i64));
    }
    // Redis orders by score with -0 equal to 0 (no NaN can get here), then by member.
    items.sort_by(|x, y| {
        x.1.partial_cmp(&y.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| x.0.cmp(&y.0))
    });
    if withscores {
        return Ok(Reply::Array(scored_reply(items, ctx.proto, true)));
    }
    Ok(Reply::Array(
        items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect(),
    ))
}

fn same(a: &Source, b: &Source) -> bool {
    matches!((a.coll, b.coll), (Some(x), Some(y)) if x.id == y.id)
}

/// Members in every input (sources sorted smallest first): (count, members with scores).
fn inter(
    v: &DbView<'_>,
    srcs: &[Source],
    how: Aggregate,
    card_only: bool,
    limit: u64,
) -> Result<(u64, Vec<Scored>), rivet::Error> {
    let mut out = Vec::new();
    let mut count = 0u64;
    if srcs[0].len() == 0 {
        return Ok((0, out));
    }
    srcs[0].each(v, |m, s| {
        let mut score = weighted(s, srcs[0].weight);
        for other in &srcs[1..] {
            let x = if same(other, &srcs[0]) {
                Some(s)
            } else {
                other.score(v, m)?
            };
            match x {
                // Redis turns NaN into 0 only in the first operand and in a sum's result.
                Some(x) => aggregate(&mut score, x * other.weight, how),
                None => return Ok(true),
            }
        }
        count += 1;
        if card_only {
            return Ok(limit == 0 || count < limit);
        }
        out.push((m.to_vec(), score));
        Ok(true)
    })?;
    Ok((count, out))
}

/// Members of any input with aggregated scores.
fn union(
    v: &DbView<'_>,
    srcs: &[Source],
    how: Aggregate,
) -> Result<(u64, Vec<Scored>), rivet::Error> {
    let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
    for src in srcs {
        src.each(v, |m, s| {
            let x = weighted(s, src.weight);
            match acc.get_mut(m) {
                Some(cur) => aggregate(cur, x, how),
                None => {
                    acc.insert(m.to_vec(), x);
                }
            }
            Ok(true)
        })?;
    }
    let out: Vec<Scored> = acc.into_iter().collect();
    Ok((out.len() as u64, out))
}

/// Members of the first input found in no other, with their scores.
fn diff(v: &DbView<'_>, srcs: &[Source]) -> Result<(u64, Vec<Scored>), rivet::Error> {
    let mut out = Vec::new();
    if srcs[1..].iter().any(|o| same(o, &srcs[0])) {
        return Ok((0, out));
    }
    srcs[0].each(v, |m, s| {
        for other in &srcs[1..] {
            if other.score(v, m)?.is_some() {
                return Ok(true);
            }
        }
        out.push((m.to_vec(), s));
        Ok(true)
    })?;
    Ok((out.len() as u64, out))
}
