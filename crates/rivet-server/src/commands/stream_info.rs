//! XINFO (Redis `t_stream.c` `xinfoCommand`): STREAM [FULL [COUNT n]], GROUPS, CONSUMERS,
//! HELP, in Redis 7.0.15's shape. The radix tree figures are estimates from the entry count
//! and `stream-node-max-entries` (this server keeps no radix tree).

use bytes::Bytes;

use super::args::{int, is, lower, NO_SUCH_KEY};
use super::stream_cg::{help, sub_syntax};
use super::stream_groups::{groups, GroupEdit};
use super::stream_read::State;
use super::streams::{entry_reply, range, read_stream, Stream, StreamId};
use super::strings::{arg, tri};
use super::{arity_error, arity_ok, unknown_subcommand, CmdResult, Ctx};
use crate::resp::Reply;
use crate::store::DbView;

fn s(t: &str) -> Reply {
    Reply::Bulk(t.as_bytes().to_vec())
}

fn lag_reply(l: Option<i64>) -> Reply {
    l.map(Reply::Int).unwrap_or(Reply::Nil)
}

fn read_reply(r: i64) -> Reply {
    if r == -1 {
        Reply::Nil
    } else {
        Reply::Int(r)
    }
}

/// XINFO subcommand ...
pub fn xinfo(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = lower(&a[1]);
    let arity = match sub.as_str() {
        "stream" => -3,
        "groups" => 3,
        "consumers" => 4,
        "help" => 2,
        _ => return Ok(unknown_subcommand("xinfo", &a[1])),
    };
    if !arity_ok(arity, a.len()) {
        return Ok(arity_error(&format!("xinfo|{sub}")));
    }
    if sub == "help" {
        return Ok(help(
            "xinfo",
            &[
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ],
        ));
    }
    let v = ctx.view()?;
    let Some(st) = tri!(read_stream(&v, &a[2], ctx.now_ms)) else {
        return Ok(Reply::err(NO_SUCH_KEY));
    };
    let now = ctx.now_ms;
    match sub.as_str() {
        "consumers" => {
            let Some(mut ge) = GroupEdit::load(&v, st.c.id, &a[3])? else {
                return Ok(Reply::err(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(&a[3]),
                    String::from_utf8_lossy(&a[2])
                )));
            };
            let mut out = Vec::new();
            for (name, c) in ge.consumers()? {
                out.push(Reply::Map(vec![
                    (s("name"), Reply::Bulk(name)),
                    (s("pending"), Reply::Int(c.pel as i64)),
                    (s("idle"), Reply::Int((now - c.seen).max(0))),
                ]));
            }
            Ok(Reply::Array(out))
        }
        "groups" => {
            let state = State::of(&v, &st)?;
            let mut out = Vec::new();
            for (name, g) in groups(&v, st.c.id)? {
                out.push(Reply::Map(vec![
                    (s("name"), Reply::Bulk(name)),
                    (s("consumers"), Reply::Int(g.consumers as i64)),
                    (s("pending"), Reply::Int(g.pel as i64)),
                    (s("last-delivered-id"), g.last.reply()),
                    (s("entries-read"), read_reply(g.entries_read)),
                    (s("lag"), lag_reply(state.lag(&g))),
                ]));
            }
            Ok(Reply::Array(out))
        }
        _ => stream_info(ctx, &v, &st, a),
    }
}

fn stream_info(ctx: &Ctx<'_>, v: &DbView<'_>, st: &Stream<'_>, a: &[Bytes]) -> CmdResult {
    let opts = &a[3..];
    let full = !opts.is_empty();
    let mut count: i64 = 10;
    if full {
        if (opts.len() != 1 && opts.len() != 3) || !is(&opts[0], "full") {
            return Ok(sub_syntax("xinfo", &a[1]));
        }
        if opts.len() == 3 {
            if !is(&opts[1], "count") {
                return Ok(sub_syntax("xinfo", &a[1]));
            }
            count = arg!(int(&opts[2]));
            if count < 0 {
                count = 10;
            }
        }
    }
    let node = ctx
        .state
        .config
        .get("stream-node-max-entries")
        .and_then(|x| x.parse::<u64>().ok())
        .unwrap_or(100)
        .max(1);
    let keys = st.c.len.div_ceil(node);
    let first = st.first_id(v)?;
    let mut m = vec![
        (s("length"), Reply::Int(st.c.len as i64)),
        (s("radix-tree-keys"), Reply::Int(keys as i64)),
        (s("radix-tree-nodes"), Reply::Int((keys * 2).max(1) as i64)),
        (s("last-generated-id"), st.m.last.reply()),
        (s("max-deleted-entry-id"), st.m.max_deleted.reply()),
        (s("entries-added"), Reply::Int(st.m.added as i64)),
        (s("recorded-first-entry-id"), first.reply()),
    ];
    let gs = groups(v, st.c.id)?;
    if !full {
        m.push((s("groups"), Reply::Int(gs.len() as i64)));
        let one = |rev: bool| -> Result<Reply, rivet::Error> {
            let r = range(v, st.c.id, StreamId::default(), StreamId::MAX, rev, 1)?;
            Ok(r.first()
                .map(|(id, val)| entry_reply(*id, val))
                .unwrap_or(Reply::Nil))
        };
        m.push((s("first-entry"), one(false)?));
        m.push((s("last-entry"), one(true)?));
        return Ok(Reply::Map(m));
    }
    let n = count as usize;
    let entries = range(v, st.c.id, StreamId::default(), StreamId::MAX, false, n)?;
    m.push((
        s("entries"),
        Reply::Array(
            entries
                .iter()
                .map(|(id, val)| entry_reply(*id, val))
                .collect(),
        ),
    ));
    let state = State::of(v, st)?;
    let mut greplies = Vec::new();
    for (name, g) in gs {
        let Some(mut ge) = GroupEdit::load(v, st.c.id, &name)? else {
            continue;
        };
        let pel = ge.group_pel(StreamId::default(), StreamId::MAX, n)?;
        let pending = pel
            .into_iter()
            .map(|(id, nk)| {
                Reply::Array(vec![
                    id.reply(),
                    Reply::Bulk(nk.consumer),
                    Reply::Int(nk.time),
                    Reply::Int(nk.count as i64),
                ])
            })
            .collect();
        let mut consumers = Vec::new();
        for (cname, c) in ge.consumers()? {
            let mut cp = Vec::new();
            for id in ge.consumer_pel(&cname, StreamId::default(), StreamId::MAX, n)? {
                if let Some(nk) = ge.nack(id)? {
                    cp.push(Reply::Array(vec![
                        id.reply(),
                        Reply::Int(nk.time),
                        Reply::Int(nk.count as i64),
                    ]));
                }
            }
            consumers.push(Reply::Map(vec![
                (s("name"), Reply::Bulk(cname)),
                (s("seen-time"), Reply::Int(c.seen)),
                (s("pel-count"), Reply::Int(c.pel as i64)),
                (s("pending"), Reply::Array(cp)),
            ]));
        }
        greplies.push(Reply::Map(vec![
            (s("name"), Reply::Bulk(name)),
            (s("last-delivered-id"), g.last.reply()),
            (s("entries-read"), read_reply(g.entries_read)),
            (s("lag"), lag_reply(state.lag(&g))),
            (s("pel-count"), Reply::Int(g.pel as i64)),
            (s("pending"), Reply::Array(pending)),
            (s("consumers"), Reply::Array(consumers)),
        ]));
    }
    m.push((s("groups"), Reply::Array(greplies)));
    Ok(Reply::Map(m))
}
