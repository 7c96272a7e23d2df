//! LCS: the longest common subsequence of two strings and Redis's reply shapes for it
//! (plain string, LEN, IDX with MINMATCHLEN and WITHMATCHLEN), following Redis 7.0's
//! dynamic-programming table and backwards walk so that the ranges reported are the same.

use crate::resp::Reply;

/// Computes the LCS of `a` and `b` and builds the reply for the given options.
pub fn reply(a: &[u8], b: &[u8], getlen: bool, getidx: bool, withlen: bool, minlen: u64) -> Reply {
    let (alen, blen) = (a.len(), b.len());
    let w = blen + 1;
    let mut t = vec![0u32; (alen + 1) * w];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    if getlen && !getidx {
        return Reply::Int(total as i64);
    }
    let mut result = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    // `None` = no range open; otherwise (a_start, a_end, b_start, b_end).
    let mut range: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            match range {
                None => range = Some((i - 1, i - 1, j - 1, j - 1)),
                Some((as_, ae, bs, be)) if as_ == i && bs == j => {
                    range = Some((as_ - 1, ae, bs - 1, be));
                }
                Some(_) => emit = true,
            }
            if let Some((as_, _, bs, _)) = range {
                if as_ == 0 || bs == 0 {
                    emit = true;
                }
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if range.is_some() {
                emit = true;
            }
        }
        if emit {
            if let Some((as_, ae, bs, be)) = range {
                let len = (ae - as_ + 1) as u64;
                if minlen == 0 || len >= minlen {
                    let mut m = vec![
                        Reply::Array(vec![Reply::Int(as_ as i64), Reply::Int(ae as i64)]),
                        Reply::Array(vec![Reply::Int(bs as i64), Reply::Int(be as i64)]),
                    ];
                    if withlen {
                        m.push(Reply::Int(len as i64));
                    }
                    matches.push(Reply::Array(m));
                }
            }
            range = None;
        }
    }
    if getidx {
        Reply::Map(vec![
            (Reply::bulk(b"matches"), Reply::Array(matches)),
            (Reply::bulk(b"len"), Reply::Int(total as i64)),
        ])
    } else {
        Reply::Bulk(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_documentation_example() {
        let a = b"ohmytext";
        let b = b"mynewtext";
        assert_eq!(reply(a, b, false, false, false, 0), Reply::bulk(b"mytext"));
        assert_eq!(reply(a, b, true, false, false, 0), Reply::Int(6));
        let Reply::Map(m) = reply(a, b, false, true, true, 4) else {
            panic!()
        };
        let Reply::Array(ms) = &m[0].1 else { panic!() };
        assert_eq!(ms.len(), 1);
        assert_eq!(
            ms[0],
            Reply::Array(vec![
                Reply::Array(vec![Reply::Int(4), Reply::Int(7)]),
                Reply::Array(vec![Reply::Int(5), Reply::Int(8)]),
                Reply::Int(4),
            ])
        );
    }
}
