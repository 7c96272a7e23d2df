//! Start-up, the accept loop and shutdown.
//!
//! [`start`] opens the file (failing fast if another process holds its lock), starts the
//! writer thread, binds the port and returns a [`Running`] server. Shutdown (SIGINT/SIGTERM
//! in the binary, SHUTDOWN, or [`Running::shutdown`]) stops accepting, lets every connection
//! finish the requests it has read, commits what the writer holds, and closes the file.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::state::{lock, ClientHandle, ClientInfo, ServerState, Stats, Watches};
use crate::store::Store;
use crate::writer::{self, Job, WriterHandle};

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind.
    pub bind: String,
    /// Port (0 = any free port).
    pub port: u16,
    /// The data file (created if missing).
    pub db: PathBuf,
    /// Skip fsync at commit.
    pub no_sync: bool,
    /// Number of logical databases.
    pub databases: usize,
    /// How long to wait for the file lock before giving up.
    pub lock_timeout: Duration,
    /// Largest size the data file may grow to, in bytes (0 = no limit).
    pub max_file_size: u64,
    /// Open the file without freelist sync (see `--no-freelist-sync`).
    pub no_freelist_sync: bool,
    /// Also serve the Memcached protocol on this port (0 = any free port), same bind address.
    pub memcached_port: Option<u16>,
    /// Largest Memcached item, in memcached's accounting (`-I`).
    pub max_item_size: usize,
}

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Redis,
    Memcached,
}

/// A started server.
pub struct Running {
    state: Arc<ServerState>,
    addr: SocketAddr,
    memcached_addr: Option<SocketAddr>,
    accept: tokio::task::JoinHandle<()>,
    memcached_accept: Option<tokio::task::JoinHandle<()>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound Memcached address, when `--memcached-port` was given.
    pub fn memcached_addr(&self) -> Option<SocketAddr> {
        self.memcached_addr
    }

    /// Shared state (for tests and INFO).
    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// Resolves when shutdown has been requested (SHUTDOWN or [`Running::request_shutdown`]).
    pub async fn wait_for_shutdown_request(&self) {
        let mut rx = self.state.shutdown.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Asks the server to stop.
    pub fn request_shutdown(&self) {
        let _ = self.state.shutdown.send(true);
    }

    /// Stops accepting, waits (up to `grace`) for connections to finish what they have read,
    /// commits the writer's queue and closes the file.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.state.shutdown.send(true);
        let _ = (&mut self.accept).await;
        if let Some(a) = self.memcached_accept.as_mut() {
            let _ = a.await;
        }
        let deadline = Instant::now() + grace;
        while self.state.client_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (tx, rx) = oneshot::channel();
        if self.state.writer.send(Job::Shutdown(tx)) {
            let _ = rx.await;
        }
        if let Some(w) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        tracing::info!("shut down; data file closed");
    }
}

/// Opens the store, starts the writer and binds the listener. `config` holds the runtime
/// parameters (requirepass, limits...).
pub async fn start(opts: Options, config: Config) -> Result<Running, String> {
    // Bind first, so a port in use does not leave a new data file behind.
    let listener = bind(&opts).await?;
    let mc = bind_memcached(&opts).await?;
    let engine = engine_options(&opts);
    let store = Store::open(&opts.db, opts.databases, engine).map_err(|e| match e {
        rivet::Error::Timeout(p) => format!(
            "{}: the file is locked by another process (is another rivet-server using it?)",
            p.display()
        ),
        other => format!("{}: {other}", opts.db.display()),
    })?;
    start_store(listener, mc, store, opts, config).await
}

async fn bind_memcached(opts: &Options) -> Result<Option<TcpListener>, String> {
    let Some(port) = opts.memcached_port else {
        return Ok(None);
    };
    TcpListener::bind((opts.bind.as_str(), port))
        .await
        .map(Some)
        .map_err(|e| format!("cannot listen for memcached on {}:{port}: {e}", opts.bind))
}

async fn bind(opts: &Options) -> Result<TcpListener, String> {
    TcpListener::bind((opts.bind.as_str(), opts.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", opts.bind, opts.port))
}

/// The engine options a server with `opts` opens its file with.
pub fn engine_options(opts: &Options) -> rivet::Options {
    rivet::Options {
        no_sync: opts.no_sync,
        timeout: Some(opts.lock_timeout),
        max_size: opts.max_file_size,
        no_freelist_sync: opts.no_freelist_sync,
        ..rivet::Options::default()
    }
}

/// Like [`start`] on an engine handle opened by the caller (tests use this to run the server
/// on storage that injects faults).
pub async fn start_on(db: rivet::Db, opts: Options, config: Config) -> Result<Running, String> {
    let listener = bind(&opts).await?;
    let mc = bind_memcached(&opts).await?;
    let store = Store::from_db(db, opts.databases).map_err(|e| e.to_string())?;
    start_store(listener, mc, store, opts, config).await
}

async fn start_store(
    listener: TcpListener,
    mc: Option<TcpListener>,
    store: Store,
    opts: Options,
    config: Config,
) -> Result<Running, String> {
    if store.stored_databases() > store.databases() {
        tracing::warn!(
            in_file = store.stored_databases(),
            reachable = store.databases(),
            "the data file holds more databases than --databases; the extra ones are kept but unreachable (FLUSHALL empties them)"
        );
    }
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let memcached_addr = match &mc {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let memcached = crate::memcached::Shared::new(opts.max_item_size, opts.max_file_size);
    {
        let tx = store.db().begin_read().map_err(|e| e.to_string())?;
        memcached
            .load(&store.memcached(&tx))
            .map_err(|e| format!("{}: {e}", opts.db.display()))?;
    }
    if let Some(a) = memcached_addr {
        memcached.port.store(a.port(), Ordering::Relaxed);
    }
    let scripts = crate::scripting::Scripts::default();
    {
        let tx = store.db().begin_read().map_err(|e| e.to_string())?;
        let libs = crate::functions::load_stored(&tx)
            .map_err(|e| format!("{}: {e}", opts.db.display()))?;
        *crate::state::lock(&scripts.libs) = libs;
    }
    let (handle, rx) = WriterHandle::new();
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let now_unix = crate::state::unix_now().as_secs();
    let stats = Stats::default();
    stats.lastsave.store(now_unix, Ordering::Relaxed);
    let state = Arc::new(ServerState {
        config,
        store: Arc::new(store),
        writer: handle,
        stats,
        command_stats: Default::default(),
        clients: Mutex::new(HashMap::new()),
        next_client_id: AtomicU64::new(1),
        watches: Watches::default(),
        pubsub: Default::default(),
        started: Instant::now(),
        started_unix: now_unix,
        port: addr.port(),
        db_path: opts.db.clone(),
        no_sync: opts.no_sync,
        active_expire: AtomicBool::new(true),
        shutdown,
        bgsave_running: AtomicBool::new(false),
        compaction_running: AtomicBool::new(false),
        scripts,
        memcached,
    });
    let ws = state.clone();
    let writer = std::thread::Builder::new()
        .name("rivet-writer".into())
        .spawn(move || writer::run(ws, rx))
        .map_err(|e| format!("cannot start the writer thread: {e}"))?;
    let accept = tokio::spawn(accept_loop(listener, state.clone(), Protocol::Redis));
    let memcached_accept = mc.map(|l| {
        if let Some(a) = memcached_addr {
            tracing::info!(addr = %a, "memcached protocol listening");
        }
        tokio::spawn(accept_loop(l, state.clone(), Protocol::Memcached))
    });
    Ok(Running {
        state,
        addr,
        memcached_addr,
        accept,
        memcached_accept,
        writer: Some(writer),
    })
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>, proto: Protocol) {
    let mut shutdown = state.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        state
            .stats
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        if state.client_count() as u64 >= state.config.maxclients() {
            state
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut s = socket;
                let msg: &[u8] = match proto {
                    Protocol::Redis => b"-ERR max number of clients reached\r\n",
                    Protocol::Memcached => b"SERVER_ERROR Too many open connections\r\n",
                };
                let _ = s.write_all(msg).await;
            });
            continue;
        }
        let id = state.next_client_id.fetch_add(1, Ordering::Relaxed);
        let laddr = socket
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let handle = Arc::new(ClientHandle {
            id,
            addr: peer.to_string(),
            laddr,
            created: Instant::now(),
            info: Mutex::new(ClientInfo::new()),
            killed: AtomicBool::new(false),
            kill_notify: tokio::sync::Notify::new(),
        });
        lock(&state.clients).insert(id, handle.clone());
        match proto {
            Protocol::Redis => {
                tokio::spawn(crate::connection::serve(socket, state.clone(), handle));
            }
            Protocol::Memcached => {
                tokio::spawn(crate::memcached::conn::serve(socket, state.clone(), handle));
            }
        }
    }
}
