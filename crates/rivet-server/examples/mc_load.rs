//! A bounded Memcached text-protocol load generator (std threads, blocking sockets).
//!
//! ```text
//! cargo run --release -p rivet-server --example mc_load -- \
//!     --port 11211 --conns 50 --pipeline 16 --op get --value-bytes 100 --keys 100000 \
//!     --seconds 5 [--preload] [--header] [--host 127.0.0.1]
//! ```
//!
//! Every connection is one thread. It sends `--pipeline` requests at a time (`set k 0 0 B` with a
//! B-byte value, or `get k`; keys `key:%012d` uniformly random over `--keys`), then reads the
//! replies of that batch before it sends the next one. The latency of a request is the time from
//! writing its batch to parsing its reply. Every reply is checked: `STORED` for a set; for a get
//! `VALUE key 0 B` + data + `END` (a hit: key, flags, length and the value's bytes are checked)
//! or a bare `END` (a miss, counted). `SERVER_ERROR`, `CLIENT_ERROR` and `ERROR` replies are
//! counted as errors; anything else (a reply that is not the protocol, a wrong key or value, a
//! closed connection) is a protocol error: the program says what it saw and exits with status 2.
//!
//! `--preload` first stores every key `key:000000000000` .. `key:%012d(K-1)` (value of
//! `--value-bytes`), split over the connections, 100 sets per batch, each reply checked; with
//! `--seconds 0` the program only preloads.
//!
//! Output (stdout), one CSV line (`--header` prints the column names first):
//! `op,conns,pipeline,value_bytes,requests,seconds,rps,p50_us,p99_us,errors,misses`.
//! `seconds` is the measured wall time from the start of the first batch to the end of the last
//! one (every thread stops after the batch in flight when `--seconds` have passed); `requests`
//! counts completed requests (errors and misses included); p50 and p99 are exact (every
//! latency is kept, in nanoseconds).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::exit;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Op {
    Get,
    Set,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Memcached text-protocol load generator (get/set, pipelined, latency percentiles)"
)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port (Memcached protocol).
    #[arg(long)]
    port: u16,
    /// Connections (one thread each).
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Requests sent at a time per connection before its replies are read.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Operation to measure.
    #[arg(long, value_enum)]
    op: Op,
    /// Value size in bytes (set; and the size every get hit must have).
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Key space: keys key:%012d over 0..K, uniformly random.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Measured duration (0 with --preload: preload only).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Store all K keys first (pipelined, checked), before the measurement.
    #[arg(long)]
    preload: bool,
    /// Print the CSV header line before the result line.
    #[arg(long)]
    header: bool,
}

/// A protocol error: what was expected, what came instead. Ends the program (status 2).
fn protocol_error(conn: usize, what: &str, line: &[u8]) -> ! {
    let shown: String = String::from_utf8_lossy(&line[..line.len().min(200)]).into();
    eprintln!("mc_load: PROTOCOL ERROR on connection {conn}: {what}; got {shown:?}");
    exit(2);
}

fn io_fail(conn: usize, what: &str, e: io::Error) -> ! {
    eprintln!("mc_load: I/O error on connection {conn} while {what}: {e}");
    exit(2);
}

/// splitmix64: a small, fast, seedable generator (keys need only be uniform, not secure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (multiply-shift; the bias is below 2^-40 for any n used here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

fn push_key(buf: &mut Vec<u8>, k: u64) {
    write!(buf, "key:{k:012}").expect("write to Vec");
}

/// One connection: a buffered reader and the socket to write batches to.
struct Conn {
    id: usize,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: Vec<u8>,
    value_bytes: usize,
}

/// What one reply was.
enum Reply {
    Ok,
    Miss,
    Error,
}

impl Conn {
    fn open(addr: &str, id: usize, value_bytes: usize) -> Conn {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| io_fail(id, "connecting", e));
        s.set_nodelay(true)
            .unwrap_or_else(|e| io_fail(id, "setting TCP_NODELAY", e));
        let w = s
            .try_clone()
            .unwrap_or_else(|e| io_fail(id, "cloning the socket", e));
        Conn {
            id,
            reader: BufReader::with_capacity(256 * 1024, s),
            writer: w,
            line: Vec::with_capacity(256),
            value_bytes,
        }
    }

    fn send(&mut self, batch: &[u8]) {
        self.writer
            .write_all(batch)
            .unwrap_or_else(|e| io_fail(self.id, "sending a batch", e));
    }

    /// Reads one line (with its CRLF) into self.line.
    fn read_line(&mut self) {
        self.line.clear();
        match self.reader.read_until(b'\n', &mut self.line) {
            Ok(0) => protocol_error(self.id, "connection closed by the server", b""),
            Ok(_) => {}
            Err(e) => io_fail(self.id, "reading a reply", e),
        }
        if !self.line.ends_with(b"\r\n") {
            let l = self.line.clone();
            protocol_error(self.id, "a reply line not ended by CRLF", &l);
        }
    }

    /// Error replies are counted, not fatal (the server said why); returns true for them.
    fn is_error_line(&self) -> bool {
        let l = &self.line;
        l.starts_with(b"SERVER_ERROR") || l.starts_with(b"CLIENT_ERROR") || l == b"ERROR\r\n"
    }

    fn read_set_reply(&mut self) -> Reply {
        self.read_line();
        if self.line == b"STORED\r\n" {
            Reply::Ok
        } else if self.is_error_line() {
            report_error_line(self.id, &self.line);
            Reply::Error
        } else {
            let l = self.line.clone();
            protocol_error(self.id, "expected STORED after set", &l)
        }
    }

    /// The reply to `get key`; `key` is the requested key (checked against VALUE's).
    fn read_get_reply(&mut self, key: &[u8]) -> Reply {
        self.read_line();
        if self.line == b"END\r\n" {
            return Reply::Miss;
        }
        if self.is_error_line() {
            report_error_line(self.id, &self.line);
            return Reply::Error;
        }
        // VALUE <key> <flags> <bytes>\r\n
        let line = self.line.clone();
        let body = &line[..line.len() - 2];
        let mut parts = body.split(|&b| b == b' ');
        if parts.next() != Some(b"VALUE") {
            protocol_error(self.id, "expected VALUE or END after get", &line);
        }
        if parts.next() != Some(key) {
            protocol_error(
                self.id,
                &format!(
                    "VALUE for another key (asked {})",
                    String::from_utf8_lossy(key)
                ),
                &line,
            );
        }
        if parts.next() != Some(b"0") {
            protocol_error(self.id, "VALUE with flags other than 0", &line);
        }
        let n: usize = parts
            .next()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| protocol_error(self.id, "VALUE without a byte count", &line));
        if parts.next().is_some() {
            protocol_error(
                self.id,
                "VALUE with extra fields (cas not asked for)",
                &line,
            );
        }
        if n != self.value_bytes {
            protocol_error(
                self.id,
                &format!("value of {n} bytes, expected {}", self.value_bytes),
                &line,
            );
        }
        // <data>\r\n then END\r\n
        let mut data = vec![0u8; n + 2];
        self.reader
            .read_exact(&mut data)
            .unwrap_or_else(|e| io_fail(self.id, "reading a value", e));
        if &data[n..] != b"\r\n" || data[..n].iter().any(|&b| b != VALUE_BYTE) {
            protocol_error(
                self.id,
                "value data not as stored (or not ended by CRLF)",
                &data,
            );
        }
        self.read_line();
        if self.line != b"END\r\n" {
            let l = self.line.clone();
            protocol_error(self.id, "expected END after the value", &l);
        }
        Reply::Ok
    }
}

const VALUE_BYTE: u8 = b'v';

fn report_error_line(conn: usize, line: &[u8]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SHOWN: AtomicUsize = AtomicUsize::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!(
            "mc_load: error reply on connection {conn}: {:?}",
            String::from_utf8_lossy(line).trim_end()
        );
    }
}

fn push_set(buf: &mut Vec<u8>, k: u64, value: &[u8]) {
    buf.extend_from_slice(b"set ");
    push_key(buf, k);
    write!(buf, " 0 0 {}\r\n", value.len()).expect("write to Vec");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// Stores keys lo..hi over one connection, 100 per batch; returns the error replies.
fn preload_range(conn: &mut Conn, lo: u64, hi: u64, value: &[u8]) -> u64 {
    let mut errors = 0;
    let mut buf = Vec::with_capacity(100 * (value.len() + 48));
    let mut k = lo;
    while k < hi {
        let end = (k + 100).min(hi);
        buf.clear();
        for i in k..end {
            push_set(&mut buf, i, value);
        }
        conn.send(&buf);
        for _ in k..end {
            if let Reply::Error = conn.read_set_reply() {
                errors += 1;
            }
        }
        k = end;
    }
    errors
}

struct ThreadResult {
    requests: u64,
    errors: u64,
    misses: u64,
    lat_ns: Vec<u32>,
    first_send: Instant,
    last_reply: Instant,
}

fn run_conn(mut conn: Conn, args: Args, seed: u64, barrier: Arc<Barrier>) -> ThreadResult {
    let mut rng = Rng(seed);
    let value = vec![VALUE_BYTE; args.value_bytes];
    let d = args.pipeline;
    let mut buf = Vec::with_capacity(d * (args.value_bytes + 48));
    let mut keys: Vec<u64> = Vec::with_capacity(d);
    let mut key_text = Vec::with_capacity(16);
    // room for about 200,000 requests/s over all connections before the Vec grows
    let expected = 200_000.0 * args.seconds / args.conns as f64;
    let mut lat_ns: Vec<u32> = Vec::with_capacity(expected.min(5e7) as usize);
    let (mut requests, mut errors, mut misses) = (0u64, 0u64, 0u64);
    barrier.wait();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let mut last = start;
    loop {
        buf.clear();
        keys.clear();
        for _ in 0..d {
            let k = rng.below(args.keys);
            keys.push(k);
            match args.op {
                Op::Set => push_set(&mut buf, k, &value),
                Op::Get => {
                    buf.extend_from_slice(b"get ");
                    push_key(&mut buf, k);
                    buf.extend_from_slice(b"\r\n");
                }
            }
        }
        let t0 = Instant::now();
        conn.send(&buf);
        for &k in &keys {
            let reply = match args.op {
                Op::Set => conn.read_set_reply(),
                Op::Get => {
                    key_text.clear();
                    push_key(&mut key_text, k);
                    conn.read_get_reply(&key_text)
                }
            };
            let now = Instant::now();
            lat_ns.push(u32::try_from(now.duration_since(t0).as_nanos()).unwrap_or(u32::MAX));
            last = now;
            requests += 1;
            match reply {
                Reply::Ok => {}
                Reply::Miss => misses += 1,
                Reply::Error => errors += 1,
            }
        }
        if last >= deadline {
            break;
        }
    }
    let _ = conn.writer.shutdown(Shutdown::Both);
    ThreadResult {
        requests,
        errors,
        misses,
        lat_ns,
        first_send: start,
        last_reply: last,
    }
}

fn percentile_us(sorted_ns: &[u32], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    // nearest-rank
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_ns.len()) - 1;
    f64::from(sorted_ns[i]) / 1000.0
}

fn main() {
    let args = Args::parse();
    if args.conns == 0 || args.pipeline == 0 || args.keys == 0 {
        eprintln!("mc_load: --conns, --pipeline and --keys must be at least 1");
        exit(1);
    }
    if args.seconds < 0.0 || !args.seconds.is_finite() || (args.seconds == 0.0 && !args.preload) {
        eprintln!("mc_load: --seconds must be > 0 (0 only with --preload)");
        exit(1);
    }
    let addr = format!("{}:{}", args.host, args.port);
    let mut conns: Vec<Conn> = (0..args.conns)
        .map(|i| Conn::open(&addr, i, args.value_bytes))
        .collect();

    let mut preload_errors = 0;
    if args.preload {
        let t = Instant::now();
        let n = conns.len() as u64;
        let per = args.keys.div_ceil(n);
        let value = vec![VALUE_BYTE; args.value_bytes];
        let results: Vec<(Conn, u64)> = thread::scope(|s| {
            let handles: Vec<_> = conns
                .drain(..)
                .enumerate()
                .map(|(i, mut c)| {
                    let (lo, hi) = (
                        (i as u64 * per).min(args.keys),
                        ((i as u64 + 1) * per).min(args.keys),
                    );
                    let value = &value;
                    s.spawn(move || {
                        let e = preload_range(&mut c, lo, hi, value);
                        (c, e)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("preload thread"))
                .collect()
        });
        for (c, e) in results {
            preload_errors += e;
            conns.push(c);
        }
        eprintln!(
            "mc_load: preloaded {} keys of {} bytes in {:.2} s ({} error replies)",
            args.keys,
            args.value_bytes,
            t.elapsed().as_secs_f64(),
            preload_errors
        );
        if preload_errors > 0 {
            eprintln!("mc_load: preload had error replies; the GETs would miss");
            exit(3);
        }
        if args.seconds == 0.0 {
            return;
        }
    }

    let barrier = Arc::new(Barrier::new(conns.len()));
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let a = args.clone();
            let b = Arc::clone(&barrier);
            let seed = 0x5eed_0000_0000_0000 ^ (i as u64).wrapping_mul(0x1000_0000_01b3);
            thread::Builder::new()
                .name(format!("conn{i}"))
                .spawn(move || run_conn(c, a, seed, b))
                .expect("spawn a connection thread")
        })
        .collect();
    let results: Vec<ThreadResult> = handles
        .into_iter()
        .map(|h| h.join().expect("connection thread"))
        .collect();

    let first = results.iter().map(|r| r.first_send).min().expect("≥1 conn");
    let last = results.iter().map(|r| r.last_reply).max().expect("≥1 conn");
    let secs = last.duration_since(first).as_secs_f64();
    let requests: u64 = results.iter().map(|r| r.requests).sum();
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    let misses: u64 = results.iter().map(|r| r.misses).sum();
    let mut lat: Vec<u32> = Vec::with_capacity(requests as usize);
    for r in &results {
        lat.extend_from_slice(&r.lat_ns);
    }
    lat.sort_unstable();
    let rps = if secs > 0.0 {
        requests as f64 / secs
    } else {
        0.0
    };
    if args.header {
        println!("op,conns,pipeline,value_bytes,requests,seconds,rps,p50_us,p99_us,errors,misses");
    }
    println!(
        "{},{},{},{},{},{:.3},{:.0},{:.1},{:.1},{},{}",
        args.op.name(),
        args.conns,
        args.pipeline,
        args.value_bytes,
        requests,
        secs,
        rps,
        percentile_us(&lat, 50.0),
        percentile_us(&lat, 99.0),
        errors,
        misses
    );
}
