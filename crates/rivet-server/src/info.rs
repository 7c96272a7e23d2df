//! INFO: Redis's sections (server, clients, memory, persistence, stats, replication, cpu,
//! errorstats, cluster, keyspace, commandstats) with the same field names clients parse,
//! plus the durability figures of this server (commits, fsyncs, writes per commit, commit
//! latency) in `persistence`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::commands::server::REDIS_COMPAT_VERSION;
use crate::state::ServerState;

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

/// Renders the requested sections (`args` as given to INFO; none = default).
pub fn render(state: &ServerState, tx: &rivet::Tx, args: &[Bytes]) -> Result<String, rivet::Error> {
    let mut wanted: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !wanted.iter().any(|w| w == s) {
            wanted.push(s.to_string());
        }
    };
    if args.is_empty() {
        DEFAULT.iter().for_each(|s| add(s));
    }
    for a in args {
        let s = String::from_utf8_lossy(a).to_ascii_lowercase();
        match s.as_str() {
            "default" => DEFAULT.iter().for_each(|s| add(s)),
            "all" | "everything" => {
                DEFAULT.iter().for_each(|s| add(s));
                add("commandstats");
                add("latencystats");
            }
            other => add(other),
        }
    }
    let mut out = String::new();
    for section in &wanted {
        let body = match section.as_str() {
            "server" => server(state),
            "clients" => clients(state),
            "memory" => memory(state, tx)?,
            "persistence" => persistence(state),
            "stats" => stats(state),
            "replication" => "role:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n".to_string(),
            "cpu" => cpu(),
            "modules" => String::new(),
            "errorstats" => errorstats(state),
            "cluster" => "cluster_enabled:0\r\n".to_string(),
            "keyspace" => keyspace(state, tx)?,
            "commandstats" => commandstats(state),
            "latencystats" => String::new(),
            _ => continue,
        };
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let title = match section.as_str() {
            "cpu" => "CPU".to_string(),
            s => {
                let mut c = s.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        };
        let _ = write!(out, "# {title}\r\n{body}");
    }
    Ok(out)
}

fn server(state: &ServerState) -> String {
    let up = state.started.elapsed().as_secs();
    format!(
        "redis_version:{REDIS_COMPAT_VERSION}\r\nrivet_server_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\nhz:10\r\nexecutable:{}\r\nconfig_file:{}\r\ndata_file:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::process::id(),
        state.port,
        crate::state::unix_now().as_micros(),
        up / 86400,
        std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        state.config.file.get().map(|p| p.display().to_string()).unwrap_or_default(),
        state.db_path.display(),
    )
}

fn clients(state: &ServerState) -> String {
    format!(
        "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:0\r\nclients_in_timeout_table:{}\r\n",
        state.client_count(),
        state.config.maxclients(),
        state.stats.blocked_clients.load(std::sync::atomic::Ordering::Relaxed),
        state.stats.blocked_clients.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// Resident and anonymous memory of this process from /proc (0 elsewhere).
pub fn rss_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Deleted big collections whose entries the writer is still freeing (Redis's
/// `lazyfree_pending_objects`).
fn trashed(state: &ServerState, tx: &rivet::Tx) -> Result<u64, rivet::Error> {
    let mut n = 0;
    for i in 0..state.store.databases() {
        for e in state.store.view(tx, i)?.trash()?.iter() {
            e?;
            n += 1;
        }
    }
    Ok(n)
}

fn memory(state: &ServerState, tx: &rivet::Tx) -> Result<String, rivet::Error> {
    let (rss, anon) = rss_bytes();
    let pending = trashed(state, tx)?;
    let scripts = state.scripts.cached_count();
    let (libraries, functions) = state.scripts.library_counts();
    Ok(format!(
        "used_memory:{anon}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{:.2}M\r\nused_memory_peak:{anon}\r\nused_memory_lua:0\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:1.00\r\nmem_allocator:system\r\nlazyfree_pending_objects:{pending}\r\nnumber_of_cached_scripts:{scripts}\r\nnumber_of_functions:{functions}\r\nnumber_of_libraries:{libraries}\r\n",
        anon as f64 / 1048576.0,
        rss as f64 / 1048576.0
    ))
}

fn persistence(state: &ServerState) -> String {
    let s = &state.stats;
    let commits = s.commits.load(Ordering::Relaxed);
    let writes = s.writes_committed.load(Ordering::Relaxed);
    let usec = s.commit_usec_total.load(Ordering::Relaxed);
    let avg = |n: u64| {
        if commits == 0 {
            0.0
        } else {
            n as f64 / commits as f64
        }
    };
    let file_size = std::fs::metadata(&state.db_path)
        .map(|m| m.len())
        .unwrap_or(0);
    format!(
        "loading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:ok\r\naof_enabled:0\r\naof_rewrite_in_progress:{}\r\naof_last_bgrewrite_status:{}\r\n\
durability:{}\r\ncompactions:{}\r\ncompaction_bytes_returned:{}\r\ndata_file_size:{file_size}\r\ncommits:{commits}\r\nfsyncs:{}\r\nwrites_committed:{writes}\r\nwrites_per_commit:{:.2}\r\ncommit_latency_avg_usec:{:.1}\r\ncommit_latency_max_usec:{}\r\nwrites_refused:{}\r\n",
        s.dirty.load(Ordering::Relaxed),
        state.bgsave_running.load(Ordering::Relaxed) as u8,
        s.lastsave.load(Ordering::Relaxed),
        state.compaction_running.load(Ordering::Relaxed) as u8,
        if s.compaction_failed.load(Ordering::Relaxed) {
            "err"
        } else {
            "ok"
        },
        if state.no_sync { "no-sync" } else { "always" },
        s.compactions.load(Ordering::Relaxed),
        s.compaction_bytes_returned.load(Ordering::Relaxed),
        s.fsyncs.load(Ordering::Relaxed),
        avg(writes),
        avg(usec),
        s.commit_usec_max.load(Ordering::Relaxed),
        state.writer.refused().is_some() as u8,
    )
}

/// `errorstat_<CODE>:count=<n>` per error code sent (Redis's errorstats section).
fn errorstats(state: &ServerState) -> String {
    let codes = state
        .stats
        .error_codes
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    codes
        .iter()
        .map(|(code, n)| format!("errorstat_{code}:count={n}\r\n"))
        .collect()
}

fn stats(state: &ServerState) -> String {
    let s = &state.stats;
    let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    format!(
        "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:0\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\ntotal_error_replies:{}\r\ntotal_reads_processed:0\r\ntotal_writes_processed:0\r\n",
        g(&s.connections_received),
        g(&s.commands_processed),
        g(&s.net_input_bytes),
        g(&s.net_output_bytes),
        g(&s.rejected_connections),
        g(&s.expired_keys),
        g(&s.keyspace_hits),
        g(&s.keyspace_misses),
        state.pubsub.numchannels(),
        state.pubsub.numpat(),
        g(&s.error_replies),
    )
}

/// User and system CPU seconds of this process, from /proc/self/stat.
fn cpu() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    format!(
        "used_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n",
        ticks(12),
        ticks(11)
    )
}

fn keyspace(state: &ServerState, tx: &rivet::Tx) -> Result<String, rivet::Error> {
    let mut out = String::new();
    for i in 0..state.store.databases() {
        let v = state.store.view(tx, i)?;
        let n = v.len()?;
        if n > 0 {
            let expires = v.volatile_len()?;
            let _ = write!(out, "db{i}:keys={n},expires={expires},avg_ttl=0\r\n");
        }
    }
    Ok(out)
}

fn commandstats(state: &ServerState) -> String {
    let mut out = String::new();
    for (name, s) in state.command_stats.snapshot() {
        let per = if s.calls == 0 {
            0.0
        } else {
            s.usec as f64 / s.calls as f64
        };
        let _ = write!(
            out,
            "cmdstat_{}:calls={},usec={},usec_per_call={per:.2},rejected_calls={},failed_calls={}\r\n",
            name,
            s.calls,
            s.usec,
            s.rejected,
            s.failed
        );
    }
    out
}
