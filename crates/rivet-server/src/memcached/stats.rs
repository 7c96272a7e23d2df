//! `stats`: memcached's general counters that mean something here, `stats settings`, and
//! empty answers for the slab-allocator groups this server does not have.

use std::sync::atomic::Ordering;

use crate::state::ServerState;

use super::proto::line;

/// Appends the reply to `stats [group]` (`args` are the words after `stats`).
pub fn reply(state: &ServerState, args: &[Vec<u8>], out: &mut Vec<u8>) {
    let mut stat = |name: &str, value: String| {
        out.extend_from_slice(format!("STAT {name} {value}\r\n").as_bytes());
    };
    match args.first().map(|a| a.as_slice()) {
        None => {
            let s = &state.memcached.stats;
            let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
            let now = crate::state::unix_now();
            let usage = rusage();
            let (items, bytes) = items(state);
            stat("pid", std::process::id().to_string());
            stat("uptime", state.started.elapsed().as_secs().to_string());
            stat("time", now.as_secs().to_string());
            stat("version", super::VERSION.to_string());
            stat("pointer_size", (usize::BITS).to_string());
            stat("rusage_user", format!("{:.6}", usage.0));
            stat("rusage_system", format!("{:.6}", usage.1));
            stat("max_connections", state.config.maxclients().to_string());
            stat("curr_connections", g(&s.curr_connections));
            stat("total_connections", g(&s.total_connections));
            stat("cmd_get", g(&s.cmd_get));
            stat("cmd_set", g(&s.cmd_set));
            stat("cmd_flush", g(&s.cmd_flush));
            stat("cmd_touch", g(&s.cmd_touch));
            stat("get_hits", g(&s.get_hits));
            stat("get_misses", g(&s.get_misses));
            stat("delete_misses", g(&s.delete_misses));
            stat("delete_hits", g(&s.delete_hits));
            stat("incr_misses", g(&s.incr_misses));
            stat("incr_hits", g(&s.incr_hits));
            stat("decr_misses", g(&s.decr_misses));
            stat("decr_hits", g(&s.decr_hits));
            stat("cas_misses", g(&s.cas_misses));
            stat("cas_hits", g(&s.cas_hits));
            stat("cas_badval", g(&s.cas_badval));
            stat("touch_hits", g(&s.touch_hits));
            stat("touch_misses", g(&s.touch_misses));
            stat("auth_cmds", g(&s.auth_cmds));
            stat("auth_errors", g(&s.auth_errors));
            stat(
                "bytes_read",
                state
                    .stats
                    .net_input_bytes
                    .load(Ordering::Relaxed)
                    .to_string(),
            );
            stat(
                "bytes_written",
                state
                    .stats
                    .net_output_bytes
                    .load(Ordering::Relaxed)
                    .to_string(),
            );
            stat("limit_maxbytes", state.memcached.max_bytes.to_string());
            stat("threads", "1".into());
            stat("curr_items", items.to_string());
            stat("total_items", g(&s.total_items));
            stat("store_too_large", g(&s.store_too_large));
            stat("accepting_conns", "1".into());
            stat(
                "rejected_connections",
                state
                    .stats
                    .rejected_connections
                    .load(Ordering::Relaxed)
                    .to_string(),
            );
            stat("bytes", bytes.to_string());
            stat("expired_unfetched", "0".into());
            stat("evictions", "0".into());
        }
        Some(b"settings") => {
            stat("maxbytes", state.memcached.max_bytes.to_string());
            stat("maxconns", state.config.maxclients().to_string());
            stat(
                "tcpport",
                state.memcached.port.load(Ordering::Relaxed).to_string(),
            );
            stat("item_size_max", state.memcached.max_item_size.to_string());
            stat("cas_enabled", "yes".into());
            stat("flush_enabled", "yes".into());
            stat("evictions", "off".into());
            stat("binding_protocol", "ascii".into());
        }
        Some(b"reset") => {
            out.extend(line("RESET", false));
            return;
        }
        Some(b"cachedump") => {
            // No slabs: every slab class is empty.
            let msg = match (args.get(1), args.get(2)) {
                (Some(a), Some(b)) => match (super::proto::strtoul(a), super::proto::strtoul(b)) {
                    (Some(id), Some(_)) if id >= 64 => "CLIENT_ERROR Illegal slab id",
                    (Some(_), Some(_)) => "END",
                    _ => "CLIENT_ERROR bad command line format",
                },
                _ => "CLIENT_ERROR bad command line",
            };
            out.extend(line(msg, false));
            return;
        }
        Some(b"items" | b"slabs" | b"sizes" | b"conns") => {}
        Some(_) => {
            out.extend(line("ERROR", false));
            return;
        }
    }
    out.extend_from_slice(b"END\r\n");
}

/// Items in the namespace and the file's size in bytes (what holds them).
fn items(state: &ServerState) -> (u64, u64) {
    let Ok(tx) = state.store.db().begin_read() else {
        return (0, 0);
    };
    let n = state.store.memcached(&tx).len().unwrap_or(0);
    let bytes = std::fs::metadata(&state.db_path)
        .map(|m| m.len())
        .unwrap_or(0);
    (n, bytes)
}

/// User and system CPU seconds of this process.
fn rusage() -> (f64, f64) {
    // /proc/self/stat fields 14 and 15 are utime and stime in clock ticks (100 per second
    // on Linux).
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (tick(11), tick(12))
}
