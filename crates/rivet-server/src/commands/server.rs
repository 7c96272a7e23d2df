//! Server commands (Redis `server.c`, `config.c`, `debug.c`): PING ECHO TIME LASTSAVE
//! SAVE/BGSAVE INFO CONFIG COMMAND WAIT DEBUG MEMORY.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::args::{err, int, is, lower, SYNTAX};
use super::strings::arg;
use super::{arity_error, unknown_subcommand, CmdResult, Ctx, COMMANDS};
use crate::resp::{Reply, OK};
use crate::state::ServerState;

/// Redis version reported to clients (the command surface this server follows).
pub const REDIS_COMPAT_VERSION: &str = "7.0.15";

/// UNWATCH queued inside MULTI: EXEC unwatches every key anyway, so inside EXEC it only
/// answers OK (outside MULTI the connection runs UNWATCH itself).
pub fn unwatch_in_exec(_ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    Ok(OK)
}

/// PING [message]
pub fn ping(_ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    match a.len() {
        1 => Ok(Reply::Status("PONG")),
        2 => Ok(Reply::Bulk(a[1].to_vec())),
        _ => Ok(arity_error("ping")),
    }
}

/// ECHO message
pub fn echo(_ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(a[1].to_vec()))
}

/// TIME: [unix seconds, microseconds]
pub fn time(_ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    let d = crate::state::unix_now();
    Ok(Reply::Array(vec![
        Reply::Bulk(d.as_secs().to_string().into_bytes()),
        Reply::Bulk(d.subsec_micros().to_string().into_bytes()),
    ]))
}

/// LASTSAVE
pub fn lastsave(ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(
        ctx.state.stats.lastsave.load(Ordering::Relaxed) as i64
    ))
}

/// Where SAVE/BGSAVE put the backup: beside the data file, `<file>.backup`.
pub fn backup_path(state: &ServerState) -> std::path::PathBuf {
    let mut p = state.db_path.clone().into_os_string();
    p.push(".backup");
    p.into()
}

/// Writes a hot backup from a read snapshot to a temporary name, then renames it in place.
pub fn write_backup(state: &ServerState) -> Result<u64, rivet::Error> {
    let dst = backup_path(state);
    let tmp = dst.with_extension("backup.tmp");
    let tx = state.store.db().begin_read()?;
    let n = tx.copy_file(&tmp)?;
    drop(tx);
    std::fs::rename(&tmp, &dst)
        .map_err(|e| rivet::Error::io(format!("rename to {}", dst.display()), e))?;
    let now = crate::state::unix_now().as_secs();
    state.stats.lastsave.store(now, Ordering::Relaxed);
    state.stats.dirty.store(0, Ordering::Relaxed);
    Ok(n)
}

/// SAVE / BGSAVE [SCHEDULE]: a hot backup of the data file next to it (every write is
/// already durable in the file; this makes a consistent copy).
pub fn save(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let bg = is(&a[0], "bgsave");
    if a.len() > 2 || (a.len() == 2 && !is(&a[1], "schedule")) {
        return Ok(err(SYNTAX));
    }
    if !bg {
        return Ok(match write_backup(ctx.state) {
            Ok(_) => OK,
            Err(e) => Reply::err(format!("ERR backup failed: {e}")),
        });
    }
    if ctx.state.bgsave_running.swap(true, Ordering::AcqRel) {
        return Ok(err("ERR Background save already in progress"));
    }
    let state = ctx.state.clone();
    std::thread::spawn(move || {
        if let Err(e) = write_backup(&state) {
            tracing::error!(error = %e, "BGSAVE failed");
        }
        state.bgsave_running.store(false, Ordering::Release);
    });
    Ok(Reply::Status("Background saving started"))
}

/// Leaves an online compaction round moves per write transaction: small, so that the
/// clients' commits queued behind a round wait about as long as behind one of their own.
const COMPACTION_ROUND_LEAVES: usize = 64;

/// BGREWRITEAOF: Redis rewrites its append-only log into a compact one in the background;
/// here the data file is compacted online (`rivet::Db::compact_in_place`): its pages move
/// toward the start and are packed, in small write transactions that the writer's commits
/// interleave with (reads never wait), and the file is cut. Replies as Redis does; INFO
/// persistence reports `aof_rewrite_in_progress`, `aof_last_bgrewrite_status`,
/// `compactions` and `compaction_bytes_returned`.
pub fn bgrewriteaof(ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    if ctx.state.compaction_running.swap(true, Ordering::AcqRel) {
        return Ok(err(
            "ERR Background append only file rewriting already in progress",
        ));
    }
    let state = ctx.state.clone();
    std::thread::spawn(move || {
        let stats = &state.stats;
        stats.compaction_bytes_returned.store(0, Ordering::Relaxed);
        let r = state
            .store
            .db()
            .compact_in_place(COMPACTION_ROUND_LEAVES, |p| {
                stats
                    .compaction_bytes_returned
                    .store(p.bytes_returned(), Ordering::Relaxed);
            });
        match r {
            Ok(p) => {
                stats
                    .compaction_bytes_returned
                    .store(p.bytes_returned(), Ordering::Relaxed);
                tracing::info!(
                    before = p.start_bytes,
                    after = p.file_bytes,
                    rounds = p.rounds,
                    leaves_moved = p.leaves_moved,
                    "online compaction (BGREWRITEAOF) done"
                );
                stats.compaction_failed.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, "online compaction (BGREWRITEAOF) failed");
                stats.compaction_failed.store(true, Ordering::Relaxed);
            }
        }
        stats.compactions.fetch_add(1, Ordering::Relaxed);
        state.compaction_running.store(false, Ordering::Release);
    });
    Ok(Reply::Status(
        "Background append only file rewriting started",
    ))
}

/// WAIT numreplicas timeout: there are no replicas, so 0 at once.
pub fn wait(_ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    arg!(int(&a[1]));
    let t = arg!(int(&a[2]));
    if t < 0 {
        return Ok(err("ERR timeout is negative"));
    }
    Ok(Reply::Int(0))
}

/// MEMORY USAGE key [SAMPLES n] | MEMORY HELP
pub fn memory(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if is(&a[1], "usage") && a.len() >= 3 {
        let v = ctx.view()?;
        return Ok(match v.lookup(&a[2], ctx.now_ms)? {
            Some(h) => Reply::Int(
                (a[2].len() + 16 + crate::store::strings::string_len(&h) as usize) as i64,
            ),
            None => Reply::Nil,
        });
    }
    Ok(unknown_subcommand("memory", &a[1]))
}

/// DEBUG SET-ACTIVE-EXPIRE|RELOAD|OBJECT|JMAP|... (DEBUG SLEEP runs on the connection).
pub fn debug(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    match lower(&a[1]).as_str() {
        "set-active-expire" if a.len() == 3 => {
            ctx.state
                .active_expire
                .store(a[2].as_ref() != b"0", Ordering::Relaxed);
            Ok(OK)
        }
        "reload"
        | "jmap"
        | "change-repl-id"
        | "quicklist-packed-threshold"
        | "stringmatch-len"
        | "set-disable-deny-scripts"
        | "replybuffer"
        | "dict-resizing" => Ok(OK),
        "object" if a.len() == 3 => {
            let v = ctx.view()?;
            match v.lookup(&a[2], ctx.now_ms)? {
                None => Ok(err("ERR no such key")),
                Some(h) => Ok(Reply::StatusOwned(format!(
                    "Value at:0x0 refcount:1 encoding:raw serializedlength:{} lru:0 lru_seconds_idle:0",
                    crate::store::strings::string_len(&h)
                ))),
            }
        }
        _ => Ok(unknown_subcommand("debug", &a[1])),
    }
}

/// CONFIG GET pattern [pattern ...] | SET name value [name value ...] | RESETSTAT | REWRITE
pub fn config(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let cfg = &ctx.state.config;
    match lower(&a[1]).as_str() {
        "get" => {
            if a.len() < 3 {
                return Ok(arity_error("config|get"));
            }
            let mut seen = std::collections::BTreeMap::new();
            for p in &a[2..] {
                for (k, v) in cfg.matching(p) {
                    seen.insert(k, v);
                }
            }
            Ok(Reply::Map(
                seen.into_iter()
                    .map(|(k, v)| (Reply::Bulk(k.into_bytes()), Reply::Bulk(v.into_bytes())))
                    .collect(),
            ))
        }
        "set" => {
            if a.len() < 4 || !a.len().is_multiple_of(2) {
                return Ok(arity_error("config|set"));
            }
            let mut checked = Vec::new();
            for p in a[2..].chunks(2) {
                let name = String::from_utf8_lossy(&p[0]).to_string();
                let value = String::from_utf8_lossy(&p[1]).to_string();
                match cfg.check(&name, &value, false) {
                    Ok(nv) => checked.push(nv),
                    Err(e) if e == "unknown" => {
                        return Ok(Reply::err(format!(
                            "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                        )))
                    }
                    Err(e) => {
                        return Ok(Reply::err(format!(
                            "ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"
                        )))
                    }
                }
            }
            for (n, v) in checked {
                cfg.apply(n, v);
            }
            Ok(OK)
        }
        "resetstat" if a.len() == 2 => {
            ctx.state.command_stats.reset();
            ctx.state
                .stats
                .error_codes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            let s = &ctx.state.stats;
            for c in [
                &s.commands_processed,
                &s.connections_received,
                &s.rejected_connections,
                &s.expired_keys,
                &s.error_replies,
                &s.keyspace_hits,
                &s.keyspace_misses,
                &s.commits,
                &s.fsyncs,
                &s.writes_committed,
                &s.commit_usec_total,
                &s.commit_usec_max,
            ] {
                c.store(0, Ordering::Relaxed);
            }
            Ok(OK)
        }
        "rewrite" if a.len() == 2 => Ok(match ctx.state.config.file.get() {
            None => err("ERR The server is running without a config file"),
            Some(_) => {
                err("ERR CONFIG REWRITE is not supported by rivet-server; edit the config file")
            }
        }),
        "help" => Ok(Reply::Array(
            [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Reply::StatusOwned(s.to_string()))
            .collect(),
        )),
        _ => Ok(unknown_subcommand("config", &a[1])),
    }
}

fn flag_names(flags: u32) -> Vec<Reply> {
    use super::*;
    let mut out = Vec::new();
    for (bit, name) in [
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENY_OOM, "denyoom"),
        (ADMIN, "admin"),
        (NO_AUTH, "no_auth"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (BLOCKING, "blocking"),
    ] {
        if flags & bit != 0 {
            out.push(Reply::Status(name));
        }
    }
    out
}

fn command_info(s: &super::Spec) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(s.name.as_bytes().to_vec()),
        Reply::Int(s.arity as i64),
        Reply::Set(flag_names(s.flags)),
        Reply::Int(s.first_key as i64),
        Reply::Int(s.last_key as i64),
        Reply::Int(s.step as i64),
        Reply::Set(vec![Reply::StatusOwned(format!("@{}", s.group))]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// COMMAND [COUNT | INFO name... | DOCS name... | LIST | GETKEYS cmd args...]
pub fn command(_ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() == 1 {
        return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
    }
    match lower(&a[1]).as_str() {
        "count" => Ok(Reply::Int(COMMANDS.len() as i64)),
        "list" => Ok(Reply::Array(
            COMMANDS
                .iter()
                .map(|c| Reply::Bulk(c.name.as_bytes().to_vec()))
                .collect(),
        )),
        "info" => {
            if a.len() == 2 {
                return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
            }
            Ok(Reply::Array(
                a[2..]
                    .iter()
                    .map(|n| {
                        super::lookup(n)
                            .map(command_info)
                            .unwrap_or(Reply::NilArray)
                    })
                    .collect(),
            ))
        }
        "docs" => {
            let names: Vec<&super::Spec> = if a.len() == 2 {
                COMMANDS.iter().collect()
            } else {
                a[2..].iter().filter_map(|n| super::lookup(n)).collect()
            };
            Ok(Reply::Map(
                names
                    .into_iter()
                    .map(|s| {
                        (
                            Reply::Bulk(s.name.as_bytes().to_vec()),
                            Reply::Map(vec![
                                (Reply::bulk(b"summary"), Reply::bulk(b"")),
                                (Reply::bulk(b"since"), Reply::bulk(b"1.0.0")),
                                (Reply::bulk(b"group"), Reply::bulk(s.group.as_bytes())),
                            ]),
                        )
                    })
                    .collect(),
            ))
        }
        "getkeys" if a.len() >= 3 => {
            let Some(s) = super::lookup(&a[2]) else {
                return Ok(err("ERR Invalid command specified"));
            };
            let args = &a[2..];
            if !super::arity_ok(s.arity, args.len()) {
                return Ok(err("ERR Invalid number of arguments specified for command"));
            }
            if let Some(keys) = movable_keys(s.name, args) {
                return Ok(match keys {
                    Some(k) => Reply::Array(k.into_iter().map(Reply::bulk).collect()),
                    None => err("ERR Invalid arguments specified for command"),
                });
            }
            if s.first_key == 0 {
                return Ok(err("ERR The command has no key arguments"));
            }
            let last = if s.last_key < 0 {
                args.len() as i32 + s.last_key
            } else {
                s.last_key
            };
            let mut keys = Vec::new();
            let mut i = s.first_key;
            while i <= last && (i as usize) < args.len() {
                keys.push(Reply::Bulk(args[i as usize].to_vec()));
                i += s.step.max(1);
            }
            Ok(Reply::Array(keys))
        }
        _ => Ok(unknown_subcommand("command", &a[1])),
    }
}

/// The keys of commands whose key positions depend on their arguments (Redis's
/// `movablekeys`): `None` for other commands; `Some(None)` when the arguments are invalid.
fn movable_keys<'a>(name: &str, args: &'a [Bytes]) -> Option<Option<Vec<&'a [u8]>>> {
    // Commands whose keys follow a `numkeys` argument at `at`, with `dst` keys before it.
    let numkeys = |at: usize, dst: usize| -> Option<Vec<&'a [u8]>> {
        let n = std::str::from_utf8(args.get(at)?)
            .ok()?
            .parse::<usize>()
            .ok()?;
        let ks = args.get(at + 1..at + 1 + n)?;
        let mut out: Vec<&[u8]> = args[1..1 + dst].iter().map(|k| &k[..]).collect();
        out.extend(ks.iter().map(|k| &k[..]));
        Some(out)
    };
    Some(match name {
        "sort" | "sort_ro" => {
            // Only the last STORE counts, as in Redis's sortGetKeys.
            let mut store = None;
            let mut i = 2;
            while i < args.len() {
                let o = &args[i];
                if super::args::is(o, "store") && i + 1 < args.len() {
                    store = Some(&args[i + 1][..]);
                    i += 1;
                } else if super::args::is(o, "limit") {
                    i += 2;
                } else if super::args::is(o, "by") || super::args::is(o, "get") {
                    i += 1;
                }
                i += 1;
            }
            Some(std::iter::once(&args[1][..]).chain(store).collect())
        }
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "zmpop" | "lmpop" => {
            numkeys(1, 0)
        }
        "zunionstore" | "zinterstore" | "zdiffstore" => numkeys(2, 1),
        "bzmpop" | "blmpop" | "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall"
        | "fcall_ro" => numkeys(2, 0),
        _ => return None,
    })
}

/// INFO [section ...]
pub fn info(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let text = crate::info::render(ctx.state, ctx.tx, &a[1..])?;
    Ok(Reply::Verbatim(text))
}
