//! SSCAN, HSCAN and ZSCAN: stateless cursors over a collection's members.
//!
//! Members are stored in byte order, so the cursor is the first 8 bytes of the next member
//! (zero-padded, big-endian). Members sharing those 8 bytes are always returned in the same
//! page, so a member present for the whole scan is returned at least once, and the cursor
//! survives restarts like SCAN's.

use bytes::Bytes;

use super::access::read;

use super::strings::{arg, tri};
use super::{CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::keyspace::Kind;

fn group_of(member: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = member.len().min(8);
    b[..n].copy_from_slice(&member[..n]);
    u64::from_be_bytes(b)
}

fn seek_bytes(cursor: u64) -> Vec<u8> {
    let b = cursor.to_be_bytes();
    let end = b.iter().rposition(|&x| x != 0).map(|i| i + 1).unwrap_or(0);
    b[..end].to_vec()
}

fn scan_generic(ctx: &mut Ctx<'_>, a: &[Bytes], kind: Kind) -> CmdResult {
    let o = arg!(super::args::scan_options(a, 2, false));
    let (cursor, count, pattern) = (o.cursor, o.count, o.pattern);
    let v = ctx.view()?;
    let Some((_, c)) = tri!(read(&v, &a[1], ctx.now_ms, kind)) else {
        return Ok(Reply::Array(vec![Reply::bulk(b"0"), Reply::Array(vec![])]));
    };
    let prefix: &[u8] = if kind == Kind::ZSet { b"m" } else { b"" };
    let from = seek_bytes(cursor);
    let mut items = Vec::new();
    let mut visited = 0usize;
    let mut last: Option<u64> = None;
    let mut next = 0u64;
    v.coll_scan(c.id, prefix, Some(&from), false, |m, val| {
        let g = group_of(m);
        if visited >= count && last != Some(g) {
            next = g;
            return Ok(false);
        }
        visited += 1;
        last = Some(g);
        if pattern.is_none_or(|p| crate::glob::matches(p, m, false)) {
            items.push(Reply::bulk(m));
            match kind {
                Kind::Hash => items.push(Reply::bulk(val)),
                Kind::ZSet => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&val[..8.min(val.len())]);
                    items.push(Reply::Double(f64::from_bits(u64::from_be_bytes(b))));
                }
                _ => {}
            }
        }
        Ok(true)
    })?;
    Ok(Reply::Array(vec![
        Reply::Bulk(next.to_string().into_bytes()),
        Reply::Array(items),
    ]))
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
pub fn sscan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    scan_generic(ctx, a, Kind::Set)
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
pub fn hscan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    scan_generic(ctx, a, Kind::Hash)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
pub fn zscan(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    scan_generic(ctx, a, Kind::ZSet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_groups() {
        assert_eq!(seek_bytes(group_of(b"5")), b"5".to_vec());
        assert_eq!(group_of(b"abcdefghij"), group_of(b"abcdefgh"));
        assert!(group_of(b"a") < group_of(b"b"));
        assert_eq!(group_of(b""), 0);
    }
}
