//! Bit commands (Redis `bitops.c`): SETBIT GETBIT BITCOUNT BITPOS BITOP. SETBIT and GETBIT
//! touch one byte of the value, however long it is.

use bytes::Bytes;

use super::args::{err, int, is, SYNTAX, WRONGTYPE};
use super::strings::{arg, read_string, tri, write_target};
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::keyspace::Kind;
use crate::store::strings::string_len;

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";

/// Parses a bit offset: 0 ≤ offset and offset/8 below `proto-max-bulk-len`.
fn bit_offset(ctx: &Ctx<'_>, raw: &[u8]) -> Result<u64, Reply> {
    let n = int(raw).map_err(|_| err(BAD_OFFSET))?;
    if n < 0 || (n >> 3) >= ctx.state.config.proto_max_bulk_len() {
        return Err(err(BAD_OFFSET));
    }
    Ok(n as u64)
}

/// SETBIT key offset 0|1: the previous bit.
pub fn setbit(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let off = arg!(bit_offset(ctx, &a[2]));
    let on = match a[3].as_ref() {
        b"0" => false,
        b"1" => true,
        _ => return Ok(err("ERR bit is not an integer or out of range")),
    };
    let v = ctx.view()?;
    let old = tri!(write_target(&v, &a[1], ctx.now_ms));
    let byte_at = off / 8;
    let cur = match &old {
        Some(h) => v
            .string_range(h, byte_at, byte_at + 1)?
            .first()
            .copied()
            .unwrap_or(0),
        None => 0,
    };
    let mask = 1u8 << (7 - (off % 8));
    let was = cur & mask != 0;
    let new = if on { cur | mask } else { cur & !mask };
    let len = old.as_ref().map(string_len).unwrap_or(0);
    if new != cur || byte_at >= len {
        v.string_set_range(&a[1], old.as_ref(), byte_at, &[new])?;
    }
    Ok(Reply::Int(was as i64))
}

/// GETBIT key offset
pub fn getbit(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let off = arg!(bit_offset(ctx, &a[2]));
    let v = ctx.view()?;
    let Some(h) = tri!(read_string(&v, &a[1], ctx.now_ms)) else {
        return Ok(Reply::Int(0));
    };
    let byte = v
        .string_range(&h, off / 8, off / 8 + 1)?
        .first()
        .copied()
        .unwrap_or(0);
    Ok(Reply::Int(((byte >> (7 - (off % 8))) & 1) as i64))
}

/// Resolves Redis's start/end (byte or bit units, negative from the end) into an inclusive
/// bit range; `None` when empty.
fn bit_range(len: u64, start: i64, end: i64, isbit: bool) -> Option<(u64, u64)> {
    let total = if isbit { len as i64 * 8 } else { len as i64 };
    let (s, e) = super::args::string_range(total, start, end)?;
    Some(if isbit {
        (s as u64, e as u64)
    } else {
        (s as u64 * 8, e as u64 * 8 + 7)
    })
}

fn unit(a: &[u8]) -> Result<bool, Reply> {
    if is(a, "bit") {
        Ok(true)
    } else if is(a, "byte") {
        Ok(false)
    } else {
        Err(err(SYNTAX))
    }
}

/// BITCOUNT key [start end [BYTE|BIT]]
pub fn bitcount(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some(h) = tri!(read_string(&v, &a[1], ctx.now_ms)) else {
        return Ok(Reply::Int(0));
    };
    let len = string_len(&h);
    let range = match a.len() {
        2 => {
            if len == 0 {
                None
            } else {
                Some((0, len * 8 - 1))
            }
        }
        4 | 5 => {
            let s = arg!(int(&a[2]));
            let e = arg!(int(&a[3]));
            if s < 0 && e < 0 && s > e {
                return Ok(Reply::Int(0));
            }
            let isbit = if a.len() == 5 {
                arg!(unit(&a[4]))
            } else {
                false
            };
            bit_range(len, s, e, isbit)
        }
        _ => return Ok(err(SYNTAX)),
    };
    let Some((sb, eb)) = range else {
        return Ok(Reply::Int(0));
    };
    let bytes = v.string_range(&h, sb / 8, eb / 8 + 1)?;
    let mut n: u64 = bytes.iter().map(|b| b.count_ones() as u64).sum();
    if let Some(first) = bytes.first() {
        let head = (sb % 8) as u32;
        if head > 0 {
            n -= (first >> (8 - head)).count_ones() as u64;
        }
    }
    if let Some(last) = bytes.last() {
        let tail = 7 - (eb % 8) as u32;
        if tail > 0 {
            n -= (last & ((1u8 << tail) - 1)).count_ones() as u64;
        }
    }
    Ok(Reply::Int(n as i64))
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
pub fn bitpos(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let bit = arg!(int(&a[2]));
    if bit != 0 && bit != 1 {
        return Ok(err("ERR The bit argument must be 1 or 0."));
    }
    let want = bit == 1;
    let v = ctx.view()?;
    let h = match v.lookup(&a[1], ctx.now_ms)? {
        None => return Ok(Reply::Int(if want { -1 } else { 0 })),
        Some(h) if h.kind != Kind::String => return Ok(err(WRONGTYPE)),
        Some(h) => h,
    };
    let len = string_len(&h);
    let mut end_given = false;
    let range = match a.len() {
        3 => {
            if len == 0 {
                None
            } else {
                Some((0, len * 8 - 1))
            }
        }
        4..=6 => {
            let s = arg!(int(&a[3]));
            let isbit = if a.len() == 6 {
                arg!(unit(&a[5]))
            } else {
                false
            };
            let e = if a.len() >= 5 {
                end_given = true;
                arg!(int(&a[4]))
            } else if isbit {
                len as i64 * 8 + 7
            } else {
                len as i64 - 1
            };
            bit_range(len, s, e, isbit)
        }
        _ => return Ok(err(SYNTAX)),
    };
    let Some((sb, eb)) = range else {
        return Ok(Reply::Int(-1));
    };
    let bytes = v.string_range(&h, sb / 8, eb / 8 + 1)?;
    let skip = if want { 0u8 } else { 0xff };
    let base = (sb / 8) * 8;
    for (i, &b) in bytes.iter().enumerate() {
        if b == skip {
            continue;
        }
        for j in 0..8u64 {
            let pos = base + i as u64 * 8 + j;
            if pos < sb || pos > eb {
                continue;
            }
            if ((b >> (7 - j)) & 1 == 1) == want {
                return Ok(Reply::Int(pos as i64));
            }
        }
    }
    if want || end_given {
        Ok(Reply::Int(-1))
    } else {
        Ok(Reply::Int(eb as i64 + 1))
    }
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]: the length of the result.
pub fn bitop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    #[derive(PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = if is(&a[1], "and") {
        Op::And
    } else if is(&a[1], "or") {
        Op::Or
    } else if is(&a[1], "xor") {
        Op::Xor
    } else if is(&a[1], "not") {
        Op::Not
    } else {
        return Ok(err(SYNTAX));
    };
    if op == Op::Not && a.len() != 4 {
        return Ok(err(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let v = ctx.view()?;
    let mut srcs = Vec::with_capacity(a.len() - 3);
    for k in &a[3..] {
        match v.lookup(k, ctx.now_ms)? {
            None => srcs.push(Vec::new()),
            Some(h) if h.kind != Kind::String => return Ok(err(WRONGTYPE)),
            Some(h) => srcs.push(v.string_bytes(&h)?),
        }
    }
    let maxlen = srcs.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![0u8; maxlen];
    for (i, o) in out.iter_mut().enumerate() {
        let byte = |s: &Vec<u8>| s.get(i).copied().unwrap_or(0);
        *o = match op {
            Op::Not => !byte(&srcs[0]),
            Op::And => srcs.iter().fold(0xff, |acc, s| acc & byte(s)),
            Op::Or => srcs.iter().fold(0, |acc, s| acc | byte(s)),
            Op::Xor => srcs.iter().fold(0, |acc, s| acc ^ byte(s)),
        };
    }
    let dst = &a[2];
    if maxlen == 0 {
        v.delete_key(dst, ctx.now_ms)?;
        return Ok(Reply::Int(0));
    }
    if dst.len() > crate::store::keyspace::MAX_KEY_LEN {
        return Ok(err(super::args::KEY_TOO_LONG));
    }
    let old = v.lookup_for_write(dst, ctx.now_ms)?;
    v.write_string(dst, old.as_ref(), &out, None)?;
    Ok(Reply::Int(maxlen as i64))
}
