//! Consumer group commands (Redis `t_stream.c`): XGROUP (CREATE, SETID, DESTROY,
//! CREATECONSUMER, DELCONSUMER, HELP), XACK, XPENDING, XCLAIM and XAUTOCLAIM, over the
//! records of [`super::stream_groups`].

use bytes::Bytes;

use crate::notify;

use super::args::{err, int, is, lower, SYNTAX};
use super::stream_groups::{create_group, destroy_group, GroupEdit, Nack};
use super::streams::{
    create_empty, entry_reply, parse_end, parse_id, parse_start, parse_strict, read_stream,
    write_stream, StreamId,
};
use super::strings::{arg, tri};
use super::{arity_error, arity_ok, unknown_subcommand, CmdResult, Ctx};
use crate::resp::{Reply, OK};

/// Redis's `addReplySubcommandSyntaxError`.
pub fn sub_syntax(cmd: &str, sub: &[u8]) -> Reply {
    let sub: String = String::from_utf8_lossy(sub).chars().take(128).collect();
    Reply::err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {} HELP.",
        cmd.to_ascii_uppercase()
    ))
}

/// Redis's `addReplyHelp`.
pub fn help(cmd: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::StatusOwned(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        cmd.to_ascii_uppercase()
    ))];
    out.extend(lines.iter().map(|l| Reply::StatusOwned(l.to_string())));
    out.push(Reply::StatusOwned("HELP".into()));
    out.push(Reply::StatusOwned("    Prints this help.".into()));
    Reply::Array(out)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn nogroup_for_key(g: &[u8], key: &[u8]) -> Reply {
    Reply::err(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        lossy(g),
        lossy(key)
    ))
}

fn nogroup(key: &[u8], g: &[u8]) -> Reply {
    Reply::err(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        lossy(key),
        lossy(g)
    ))
}

/// XGROUP subcommand ...
pub fn xgroup(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = lower(&a[1]);
    let arity = match sub.as_str() {
        "create" => -5,
        "setid" => -5,
        "destroy" => 4,
        "createconsumer" | "delconsumer" => 5,
        "help" => 2,
        _ => return Ok(unknown_subcommand("xgroup", &a[1])),
    };
    if !arity_ok(arity, a.len()) {
        return Ok(arity_error(&format!("xgroup|{sub}")));
    }
    if sub == "help" {
        return Ok(help(
            "xgroup",
            &[
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ],
        ));
    }
    let mut mkstream = false;
    let mut entries_read: i64 = -1;
    let mut i = 5;
    while i < a.len() {
        if sub == "create" && is(&a[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (sub == "create" || sub == "setid") && is(&a[i], "entriesread") && i + 1 < a.len()
        {
            entries_read = arg!(int(&a[i + 1]));
            if entries_read < -1 {
                return Ok(err("ERR value for ENTRIESREAD must be positive or -1"));
            }
            i += 2;
        } else {
            return Ok(sub_syntax("xgroup", &a[1]));
        }
    }
    let key = &a[2];
    let g = &a[3];
    let v = ctx.view()?;
    let s = tri!(write_stream(&v, key, ctx.now_ms));
    if !mkstream {
        let Some(s) = &s else {
            return Ok(err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
        };
        if matches!(sub.as_str(), "setid" | "createconsumer" | "delconsumer")
            && GroupEdit::load(&v, s.c.id, g)?.is_none()
        {
            return Ok(nogroup_for_key(g, key));
        }
    }
    match sub.as_str() {
        "create" if a.len() <= 8 => {
            let id = if a[4].as_ref() == b"$" {
                s.as_ref().map(|s| s.m.last).unwrap_or_default()
            } else {
                arg!(parse_strict(&a[4]))
            };
            let sid = match &s {
                Some(s) => s.c.id,
                None => create_empty(&v, key)?.id,
            };
            if !create_group(&v, sid, g, id, entries_read)? {
                return Ok(err("BUSYGROUP Consumer Group name already exists"));
            }
            notify::event(ctx, notify::STREAM, "xgroup-create", key);
            Ok(OK)
        }
        "setid" if a.len() == 5 || a.len() == 7 => {
            let Some(s) = s else {
                return Ok(sub_syntax("xgroup", &a[1]));
            };
            let id = if a[4].as_ref() == b"$" {
                s.m.last
            } else {
                arg!(parse_id(&a[4], 0))
            };
            let Some(mut ge) = GroupEdit::load(&v, s.c.id, g)? else {
                return Ok(nogroup_for_key(g, key));
            };
            ge.g.last = id;
            ge.g.entries_read = entries_read;
            ge.touch();
            ge.save()?;
            notify::event(ctx, notify::STREAM, "xgroup-setid", key);
            Ok(OK)
        }
        "destroy" => {
            let Some(s) = s else {
                return Ok(Reply::Int(0));
            };
            if destroy_group(&v, s.c.id, g)? {
                // Touching the key wakes XREADGROUP clients parked on the group (-NOGROUP).
                s.save(&v, key)?;
                notify::event(ctx, notify::STREAM, "xgroup-destroy", key);
                Ok(Reply::Int(1))
            } else {
                Ok(Reply::Int(0))
            }
        }
        "createconsumer" => {
            let Some(s) = s else {
                return Ok(Reply::Int(0));
            };
            let Some(mut ge) = GroupEdit::load(&v, s.c.id, g)? else {
                return Ok(nogroup_for_key(g, key));
            };
            let created = ge.ensure_consumer(&a[4], ctx.now_ms, false)?;
            ge.save()?;
            if created {
                notify::event(ctx, notify::STREAM, "xgroup-createconsumer", key);
            }
            Ok(Reply::Int(created as i64))
        }
        "delconsumer" => {
            let Some(s) = s else {
                return Ok(Reply::Int(0));
            };
            let Some(mut ge) = GroupEdit::load(&v, s.c.id, g)? else {
                return Ok(nogroup_for_key(g, key));
            };
            let pending = ge.delete_consumer(&a[4])?;
            ge.save()?;
            if pending.is_some() {
                notify::event(ctx, notify::STREAM, "xgroup-delconsumer", key);
            }
            Ok(Reply::Int(pending.unwrap_or(0) as i64))
        }
        _ => Ok(sub_syntax("xgroup", &a[1])),
    }
}

/// XACK key group id [id ...]
pub fn xack(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let Some(s) = tri!(read_stream(&v, &a[1], ctx.now_ms)) else {
        return Ok(Reply::Int(0));
    };
    let Some(mut ge) = GroupEdit::load(&v, s.c.id, &a[2])? else {
        return Ok(Reply::Int(0));
    };
    let mut ids = Vec::with_capacity(a.len() - 3);
    for x in &a[3..] {
        ids.push(arg!(parse_strict(x)));
    }
    let mut n = 0;
    for id in ids {
        if let Some(old) = ge.nack(id)? {
            ge.remove_nack(id, &old)?;
            n += 1;
        }
    }
    ge.save()?;
    Ok(Reply::Int(n))
}

/// XPENDING key group [[IDLE min-idle] start end count [consumer]]
pub fn xpending(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let justinfo = a.len() == 3;
    if a.len() != 3 && (a.len() < 6 || a.len() > 9) {
        return Ok(err(SYNTAX));
    }
    let (mut start, mut end, mut count, mut minidle) =
        (StreamId::default(), StreamId::MAX, 0i64, 0i64);
    let mut consumer: Option<&Bytes> = None;
    if a.len() >= 6 {
        let mut at = 3;
        if is(&a[3], "idle") {
            minidle = arg!(int(&a[4]));
            if a.len() < 8 {
                return Ok(err(SYNTAX));
            }
            at += 2;
        }
        count = arg!(int(&a[at + 2])).max(0);
        start = arg!(parse_start(&a[at]));
        end = arg!(parse_end(&a[at + 1]));
        consumer = a.get(at + 3);
    }
    let v = ctx.view()?;
    let s = tri!(read_stream(&v, &a[1], ctx.now_ms));
    let Some(mut ge) = (match &s {
        Some(s) => GroupEdit::load(&v, s.c.id, &a[2])?,
        None => None,
    }) else {
        return Ok(nogroup(&a[1], &a[2]));
    };
    if justinfo {
        let Some((first, last)) = ge.pel_edges()? else {
            return Ok(Reply::Array(vec![
                Reply::Int(0),
                Reply::Nil,
                Reply::Nil,
                Reply::NilArray,
            ]));
        };
        let mut per = Vec::new();
        for (name, c) in ge.consumers()? {
            if c.pel > 0 {
                per.push(Reply::Array(vec![
                    Reply::Bulk(name),
                    Reply::Bulk(c.pel.to_string().into_bytes()),
                ]));
            }
        }
        return Ok(Reply::Array(vec![
            Reply::Int(ge.g.pel as i64),
            first.reply(),
            last.reply(),
            Reply::Array(per),
        ]));
    }
    let now = ctx.now_ms;
    let mut out = Vec::new();
    if count == 0 {
        return Ok(Reply::Array(out));
    }
    let ids: Vec<(StreamId, Nack)> = match consumer {
        Some(c) => {
            if ge.consumer(c)?.is_none() {
                return Ok(Reply::Array(vec![]));
            }
            let mut v2 = Vec::new();
            // Without an idle filter the count bounds the scan; with one, filter as we go.
            let mut from = start;
            loop {
                let batch = ge.consumer_pel(c, from, end, 256)?;
                let done = batch.len() < 256;
                for id in &batch {
                    if let Some(n) = ge.nack(*id)? {
                        v2.push((*id, n));
                    }
                }
                if done || minidle == 0 && v2.len() as i64 >= count {
                    break;
                }
                match batch.last().and_then(|l| l.next()) {
                    Some(n) => from = n,
                    None => break,
                }
                if minidle > 0 {
                    let fresh = v2.iter().filter(|(_, n)| now - n.time >= minidle).count();
                    if fresh as i64 >= count {
                        break;
                    }
                }
            }
            v2
        }
        None => {
            if minidle == 0 {
                ge.group_pel(start, end, count as usize)?
            } else {
                let mut v2 = Vec::new();
                let mut from = start;
                loop {
                    let batch = ge.group_pel(from, end, 256)?;
                    let done = batch.len() < 256;
                    let next = batch.last().and_then(|(l, _)| l.next());
                    v2.extend(batch.into_iter().filter(|(_, n)| now - n.time >= minidle));
                    if done || v2.len() as i64 >= count {
                        break;
                    }
                    match next {
                        Some(n) => from = n,
                        None => break,
                    }
                }
                v2
            }
        }
    };
    for (id, n) in ids {
        if minidle > 0 && now - n.time < minidle {
            continue;
        }
        if out.len() as i64 >= count {
            break;
        }
        out.push(Reply::Array(vec![
            id.reply(),
            Reply::Bulk(n.consumer.clone()),
            Reply::Int((now - n.time).max(0)),
            Reply::Int(n.count as i64),
        ]));
    }
    Ok(Reply::Array(out))
}

/// Parses a "long long" option argument with XCLAIM's own error text.
fn ll(a: &[u8], what: &str) -> Result<i64, Reply> {
    int(a).map_err(|_| Reply::err(format!("ERR {what}")))
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms] [RETRYCOUNT n]
/// [FORCE] [JUSTID] [LASTID id]
pub fn xclaim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let v = ctx.view()?;
    let s = tri!(read_stream(&v, &a[1], ctx.now_ms));
    let Some(s) = s else {
        return Ok(nogroup(&a[1], &a[2]));
    };
    let Some(mut ge) = GroupEdit::load(&v, s.c.id, &a[2])? else {
        return Ok(nogroup(&a[1], &a[2]));
    };
    let minidle = arg!(ll(&a[4], "Invalid min-idle-time argument for XCLAIM")).max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < a.len() {
        match parse_strict(&a[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = ctx.now_ms;
    let (mut retry, mut time, mut force, mut justid) = (-1i64, -1i64, false, false);
    let mut lastid = StreamId::default();
    while j < a.len() {
        let more = a.len() - 1 - j;
        let o = &a[j];
        if is(o, "force") {
            force = true;
        } else if is(o, "justid") {
            justid = true;
        } else if is(o, "idle") && more > 0 {
            j += 1;
            time = now - arg!(ll(&a[j], "Invalid IDLE option argument for XCLAIM"));
        } else if is(o, "time") && more > 0 {
            j += 1;
            time = arg!(ll(&a[j], "Invalid TIME option argument for XCLAIM"));
        } else if is(o, "retrycount") && more > 0 {
            j += 1;
            retry = arg!(ll(&a[j], "Invalid RETRYCOUNT option argument for XCLAIM"));
        } else if is(o, "lastid") && more > 0 {
            j += 1;
            lastid = arg!(parse_strict(&a[j]));
        } else {
            return Ok(Reply::err(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                lossy(o)
            )));
        }
        j += 1;
    }
    if lastid > ge.g.last {
        ge.g.last = lastid;
        ge.touch();
    }
    if time == -1 || time < 0 || time > now {
        time = now;
    }
    let name = &a[3];
    let mut have_consumer = false;
    let mut out = Vec::new();
    for id in ids {
        let nack = ge.nack(id)?;
        let entry = v.coll_get(s.c.id, &id.key())?;
        let Some(val) = entry else {
            if let Some(n) = nack {
                ge.remove_nack(id, &n)?;
            }
            continue;
        };
        let (old, stored) = match nack {
            Some(n) => (n, true),
            None if force => (
                Nack {
                    time: 0,
                    count: 0,
                    consumer: Vec::new(),
                },
                false,
            ),
            None => continue,
        };
        if !old.consumer.is_empty() && minidle > 0 && now - old.time < minidle {
            continue;
        }
        if !have_consumer {
            if ge.ensure_consumer(name, now, true)? {
                notify::event(ctx, notify::STREAM, "xgroup-createconsumer", &a[1]);
            }
            have_consumer = true;
        }
        let count = if retry >= 0 {
            retry as u64
        } else if !justid {
            old.count + 1
        } else {
            old.count
        };
        let new = Nack {
            time,
            count,
            consumer: name.to_vec(),
        };
        ge.put_nack(id, stored.then_some(&old), &new)?;
        out.push(if justid {
            id.reply()
        } else {
            entry_reply(id, val)
        });
    }
    ge.save()?;
    Ok(Reply::Array(out))
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
pub fn xautoclaim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let minidle = arg!(ll(&a[4], "Invalid min-idle-time argument for XAUTOCLAIM")).max(0);
    let start = arg!(parse_start(&a[5]));
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < a.len() {
        let more = a.len() - 1 - j;
        if is(&a[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            count = match int(&a[j + 1]) {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => return Ok(err("ERR COUNT must be > 0")),
            };
            j += 1;
        } else if is(&a[j], "justid") {
            justid = true;
        } else {
            return Ok(err(SYNTAX));
        }
        j += 1;
    }
    let v = ctx.view()?;
    let s = tri!(read_stream(&v, &a[1], ctx.now_ms));
    let Some(s) = s else {
        return Ok(nogroup(&a[1], &a[2]));
    };
    let Some(mut ge) = GroupEdit::load(&v, s.c.id, &a[2])? else {
        return Ok(nogroup(&a[1], &a[2]));
    };
    let now = ctx.now_ms;
    let name = &a[3];
    let mut attempts = count.saturating_mul(10);
    let mut left = count;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut have_consumer = false;
    let mut from = Some(start);
    let mut next_id = StreamId::default();
    'outer: while let Some(f) = from {
        let batch = ge.group_pel(f, StreamId::MAX, 128)?;
        let exhausted = batch.len() < 128;
        from = batch.last().and_then(|(l, _)| l.next());
        for (id, n) in batch {
            if attempts == 0 || left == 0 {
                next_id = id;
                break 'outer;
            }
            attempts -= 1;
            let Some(val) = v.coll_get(s.c.id, &id.key())? else {
                ge.remove_nack(id, &n)?;
                deleted.push(id.reply());
                left -= 1;
                continue;
            };
            if minidle > 0 && now - n.time < minidle {
                continue;
            }
            if !have_consumer {
                if ge.ensure_consumer(name, now, true)? {
                    notify::event(ctx, notify::STREAM, "xgroup-createconsumer", &a[1]);
                }
                have_consumer = true;
            }
            let new = Nack {
                time: now,
                count: if justid { n.count } else { n.count + 1 },
                consumer: name.to_vec(),
            };
            ge.put_nack(id, Some(&n), &new)?;
            claimed.push(if justid {
                id.reply()
            } else {
                entry_reply(id, val)
            });
            left -= 1;
        }
        if exhausted {
            break;
        }
    }
    ge.save()?;
    Ok(Reply::Array(vec![
        next_id.reply(),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ]))
}
