//! The `rivet-server` binary: flags and config file, logging, signals.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use rivet_server::config::Config;
use rivet_server::listener::{self, Options};

/// A durable Redis-compatible server that keeps all its data in one Rivet (bbolt-format)
/// file. Every write is on stable storage before it is acknowledged (group commit), unless
/// --no-sync is given.
#[derive(Parser, Debug)]
#[command(name = "rivet-server", version, about, long_about = None)]
struct Args {
    /// Optional Redis-style config file (`name value` per line); flags override it.
    config_file: Option<PathBuf>,

    /// TCP port to listen on (0 picks a free port and logs it) [default: 6379].
    #[arg(long)]
    port: Option<u16>,

    /// Address to bind. Binding anything but a loopback address without --requirepass
    /// prints a warning [default: 127.0.0.1].
    #[arg(long)]
    bind: Option<String>,

    /// The data file: one bbolt-format file holding every database; created if missing
    /// [default: `dir`/`dbfilename` from the config file, else ./rivet-server.db].
    #[arg(long)]
    db: Option<PathBuf>,

    /// Password clients must send with AUTH (or HELLO ... AUTH) before any other command.
    #[arg(long)]
    requirepass: Option<String>,

    /// Acknowledge writes once they are in the OS page cache, without fsync: survives a
    /// process crash, NOT a power loss or kernel crash.
    #[arg(long)]
    no_sync: bool,

    /// Number of logical databases (SELECT 0..N-1) [default: 16].
    #[arg(long)]
    databases: Option<usize>,

    /// Most clients connected at once; further connections get an error and are closed
    /// [default: 10000].
    #[arg(long)]
    maxclients: Option<u64>,

    /// Close a client after this many idle seconds (0 = never) [default: 0].
    #[arg(long)]
    timeout: Option<u64>,

    /// Log level: debug, verbose, notice, warning (Redis names) or trace/info/warn/error
    /// [default: notice].
    #[arg(long)]
    loglevel: Option<String>,

    /// Largest size the data file may grow to (bytes, or with a unit: 512mb, 10gb). Writes
    /// whose commit would grow it further fail with an OOM error; reads and smaller writes go
    /// on. 0 = no limit.
    #[arg(long, default_value = "0", value_parser = parse_size)]
    max_file_size: u64,

    /// Do not write the engine's freelist at commit; rebuild it by walking the whole file at
    /// start-up instead. Keeps commits fast while many pages are free (after a huge DEL),
    /// but start-up reads the whole file (56 s for a 3.5 GB file from a cold page cache).
    #[arg(long)]
    no_freelist_sync: bool,

    /// Also serve the Memcached text and meta protocol on this port (0 picks a free port
    /// and logs it), same bind address and password. Items live in their own namespace of
    /// the same file. Off unless given.
    #[arg(long)]
    memcached_port: Option<u16>,

    /// Largest Memcached item, as memcached's -I counts it (value + key + ~60 bytes of
    /// header): bytes, or with k/m/g (1024-based, like memcached); 1k..1g.
    #[arg(short = 'I', long, default_value = "1m", value_parser = parse_item_size)]
    max_item_size: usize,
}

fn parse_item_size(s: &str) -> Result<usize, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.strip_suffix(['k', 'm', 'g']) {
        Some(n) if t.ends_with('k') => (n, 1usize << 10),
        Some(n) if t.ends_with('m') => (n, 1 << 20),
        Some(n) => (n, 1 << 30),
        None => (t.as_str(), 1),
    };
    let n = num
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("not a size: {s:?} (examples: 1048576, 512k, 2m)"))?;
    if !(1024..=1 << 30).contains(&n) {
        return Err(format!(
            "item size {n} out of range: memcached allows 1k..1g"
        ));
    }
    Ok(n)
}

fn parse_size(s: &str) -> Result<u64, String> {
    rivet_server::config::parse_memory(s)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("not a size: {s:?} (examples: 1048576, 512mb, 10gb)"))
}

fn tracing_level(redis: &str) -> &str {
    match redis {
        "debug" => "debug",
        "verbose" => "debug",
        "notice" => "info",
        "warning" => "warn",
        "nothing" => "error",
        other => other,
    }
}

fn setup(args: &Args) -> Result<(Options, Config, Vec<String>), String> {
    let config = Config::default();
    let mut ignored = Vec::new();
    if let Some(f) = &args.config_file {
        ignored = config.load_file(f)?;
    }
    let set = |name: &str, v: String| {
        config
            .set_startup(name, &v)
            .map_err(|e| format!("--{name}: {e}"))
    };
    if let Some(p) = args.port {
        set("port", p.to_string())?;
    }
    if let Some(b) = &args.bind {
        set("bind", b.clone())?;
    }
    if let Some(p) = &args.requirepass {
        set("requirepass", p.clone())?;
    }
    if let Some(d) = args.databases {
        set("databases", d.to_string())?;
    }
    if let Some(m) = args.maxclients {
        set("maxclients", m.to_string())?;
    }
    if let Some(t) = args.timeout {
        set("timeout", t.to_string())?;
    }
    if let Some(l) = &args.loglevel {
        config
            .set_startup("loglevel", l)
            .or_else(|_| match l.as_str() {
                "trace" | "info" | "warn" | "error" => Ok(()),
                _ => Err(format!("--loglevel: unknown level {l:?}")),
            })?;
    }
    let get = |n: &str| config.get(n).unwrap_or_default();
    // Both were range-checked when they were set.
    let port: u16 = get("port")
        .parse()
        .map_err(|_| "port must be 0..65535".to_string())?;
    let databases: usize = get("databases")
        .parse()
        .map_err(|_| "databases must be 1..255".to_string())?;
    // The data file: --db, else the config file's dir/dbfilename; CONFIG GET reports the truth.
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| PathBuf::from(get("dir")).join(get("dbfilename")));
    if let Some(name) = db.file_name() {
        config.set_startup("dbfilename", &name.to_string_lossy())?;
    }
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    config.set_startup("dir", &dir.to_string_lossy())?;
    // Redis's `bind` may list several addresses, `-` marking optional ones; this server
    // listens on one: the first.
    let bind_all = get("bind");
    let mut binds = bind_all
        .split_whitespace()
        .map(|b| b.trim_start_matches('-'));
    let bind = binds.next().unwrap_or("127.0.0.1").to_string();
    if binds.next().is_some() {
        ignored.push(format!(
            "bind {bind_all}: rivet-server listens on the first address only ({bind})"
        ));
    }
    let opts = Options {
        bind,
        port,
        db,
        no_sync: args.no_sync,
        databases,
        lock_timeout: Duration::from_millis(500),
        max_file_size: args.max_file_size,
        no_freelist_sync: args.no_freelist_sync,
        memcached_port: args.memcached_port,
        max_item_size: args.max_item_size,
    };
    Ok((opts, config, ignored))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (opts, config, ignored) = match setup(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("rivet-server: {e}");
            return ExitCode::from(2);
        }
    };
    let level = args
        .loglevel
        .clone()
        .or_else(|| config.get("loglevel"))
        .unwrap_or_else(|| "notice".into());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(tracing_level(&level)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    for line in ignored {
        tracing::warn!("{line}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rivet-server: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(serve(opts, config))
}

async fn serve(opts: Options, config: Config) -> ExitCode {
    let loopback = matches!(opts.bind.as_str(), "127.0.0.1" | "::1" | "localhost");
    if !loopback && config.requirepass().is_none() {
        tracing::warn!(
            bind = %opts.bind,
            "listening on a non-loopback address without a password: anyone who can reach this port can read and change all data (set --requirepass)"
        );
    }
    if opts.no_sync {
        tracing::warn!("--no-sync: writes are acknowledged before they reach stable storage; a power loss or kernel crash can lose acknowledged writes");
    }
    let db = opts.db.clone();
    let server = match listener::start(opts, config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(addr = %server.addr(), file = %db.display(), "ready to accept connections");
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGTERM handler");
            return ExitCode::from(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = server.wait_for_shutdown_request() => tracing::info!("shutting down"),
    }
    server.shutdown(Duration::from_secs(10)).await;
    ExitCode::SUCCESS
}
