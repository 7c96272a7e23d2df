//! PUBLISH, SPUBLISH and PUBSUB. (SUBSCRIBE and its kin change the session: the connection
//! runs them.) Outside the writer a PUBLISH delivers at once (its connection has already
//! waited for its own earlier writes to commit); inside MULTI or a script it counts the
//! receivers and queues the message in the write log, delivered after the commit.

use bytes::Bytes;

use super::args::lower;
use super::{arity_error, unknown_subcommand, CmdResult, Ctx};
use crate::resp::Reply;

fn publish_any(ctx: &mut Ctx<'_>, a: &[Bytes], shard: bool) -> CmdResult {
    let ps = &ctx.state.pubsub;
    let limit = ctx.state.config.pubsub_limit();
    let n = match ctx.log {
        Some(log) => {
            let n = ps.publish(&a[1], &a[2], shard, limit, false);
            if shard {
                log.publish_shard(a[1].to_vec(), a[2].to_vec());
            } else {
                log.publish(a[1].to_vec(), a[2].to_vec());
            }
            n
        }
        None => ps.publish(&a[1], &a[2], shard, limit, true),
    };
    Ok(Reply::Int(n as i64))
}

/// PUBLISH channel message
pub fn publish(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    publish_any(ctx, a, false)
}

/// SPUBLISH shardchannel message
pub fn spublish(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    publish_any(ctx, a, true)
}

const HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// PUBSUB CHANNELS|NUMSUB|NUMPAT|SHARDCHANNELS|SHARDNUMSUB|HELP
pub fn pubsub(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ps = &ctx.state.pubsub;
    let sub = lower(&a[1]);
    let r = match (sub.as_str(), a.len()) {
        ("help", 2) => Reply::Array(
            HELP.iter()
                .map(|s| Reply::StatusOwned(s.to_string()))
                .collect(),
        ),
        ("channels" | "shardchannels", 2 | 3) => {
            let shard = sub == "shardchannels";
            let mut list = ps.channels(a.get(2).map(|p| p.as_ref()), shard);
            list.sort();
            Reply::Array(list.iter().map(|c| Reply::bulk(c)).collect())
        }
        ("numsub" | "shardnumsub", _) => {
            let shard = sub == "shardnumsub";
            let mut v = Vec::with_capacity(2 * (a.len() - 2));
            for c in &a[2..] {
                v.push(Reply::bulk(c));
                v.push(Reply::Int(ps.numsub(c, shard) as i64));
            }
            Reply::Array(v)
        }
        ("numpat", 2) => Reply::Int(ps.numpat() as i64),
        ("help" | "numpat", _) => arity_error(&format!("pubsub|{sub}")),
        ("channels" | "shardchannels", _) => Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&a[1])
        )),
        _ => unknown_subcommand("pubsub", &a[1]),
    };
    Ok(r)
}
