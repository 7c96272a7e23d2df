//! The command-line grammar: every subcommand, its arguments and its help text.
//!
//! Only `put`, `delete`, `import`, `compact` (its destination) and `surgery` (its output copy,
//! or the file itself with `--in-place`) write; every other command opens the file read-only.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::open::parse_duration;

/// Inspect, query, check, export/import, compact, benchmark and repair bbolt (BoltDB) files.
#[derive(Debug, Parser)]
#[command(
    name = "rivet",
    version,
    after_help = "Only put, delete, import, compact (DST) and surgery ever write; every other \
command opens the file read-only and never changes a byte of it.\n\n\
Exit status: 0 success, 1 problems found (check, surgery meta validate) or key/bucket not \
found, 2 usage or I/O error (missing, locked, damaged or non-bbolt file).\n\n\
Examples:\n  rivet info my.db\n  rivet check my.db\n  rivet get my.db widgets foo\n  \
rivet export my.db -o my.jsonl"
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show page size, txid, high-water mark, file size, free pages and freelist mode.
    #[command(after_help = "Example:\n  rivet info my.db\n  rivet info --json my.db")]
    Info(JsonDbArgs),

    /// Check the whole file's consistency: prints OK (exit 0) or every problem (exit 1).
    #[command(after_help = "Example:\n  rivet check my.db && echo healthy")]
    Check(JsonDbArgs),

    /// Bucket statistics aggregated over the top-level buckets whose name starts with PREFIX.
    #[command(after_help = "Example:\n  rivet stats my.db\n  rivet stats my.db user --json")]
    Stats(StatsArgs),

    /// List the buckets at a (possibly nested) path; top-level buckets when no path is given.
    #[command(after_help = "Example:\n  rivet buckets my.db\n  rivet buckets my.db widgets parts")]
    Buckets(PathArgs),

    /// List the keys (sub-bucket names included) of a bucket.
    #[command(
        override_usage = "rivet keys [OPTIONS] <DB> <BUCKET>...",
        after_help = "Example:\n  rivet keys my.db widgets\n  rivet keys --hex my.db 776964676574"
    )]
    Keys(PathArgs),

    /// Print the value of KEY in the bucket at BUCKET... (exit 1 when missing).
    #[command(
        override_usage = "rivet get [OPTIONS] <DB> <BUCKET>... <KEY>",
        after_help = "Example:\n  rivet get my.db widgets foo\n  rivet get --raw my.db images logo.png > logo.png"
    )]
    Get(GetArgs),

    /// Store VALUE under KEY in the bucket at BUCKET... (buckets and file are created if missing).
    #[command(
        override_usage = "rivet put [OPTIONS] <DB> <BUCKET>... <KEY> <VALUE>",
        after_help = "Example:\n  rivet put my.db widgets foo bar\n  rivet put --hex my.db 77 00ff 0102"
    )]
    Put(PutArgs),

    /// Delete KEY (or, with --bucket, the sub-bucket KEY) from the bucket at BUCKET...
    #[command(
        override_usage = "rivet delete [OPTIONS] <DB> <BUCKET>... <KEY>",
        after_help = "Example:\n  rivet delete my.db widgets foo\n  rivet delete --bucket my.db widgets parts"
    )]
    Delete(DeleteArgs),

    /// Table of every page: id, type, items, overflow; free pages are marked `free`.
    #[command(after_help = "Example:\n  rivet pages my.db\n  rivet pages --json my.db")]
    Pages(JsonDbArgs),

    /// Decoded view of pages: meta fields, branch/leaf elements, freelist ids.
    #[command(after_help = "Example:\n  rivet page my.db 0 1 3")]
    Page(PageArgs),

    /// Hex dump of pages (with their overflow pages).
    #[command(after_help = "Example:\n  rivet dump my.db 3")]
    Dump(DumpArgs),

    /// Write everything as JSON Lines (the canonical export format).
    #[command(
        after_help = "One object per line, depth-first, keys in byte order:\n  \
{\"bucket\":[\"widgets\"],\"sequence\":3}\n  \
{\"bucket\":[\"widgets\"],\"key\":\"foo\",\"value\":\"bar\"}\n\
Byte strings that are not UTF-8 are written as {\"base64\":\"...\"}.\n\n\
Example:\n  rivet export my.db -o my.jsonl\n  rivet export my.db | grep widgets"
    )]
    Export(ExportArgs),

    /// Load JSON Lines (as written by export) into a database, committing every --batch lines.
    #[command(
        after_help = "Reads stdin when FILE is missing. Creates the database when missing. \
A malformed line stops the import with its line number; the lines committed before it stay.\n\n\
Example:\n  rivet import new.db my.jsonl\n  rivet export old.db | rivet import new.db"
    )]
    Import(ImportArgs),

    /// Copy-compact SRC into a new file DST, or compact SRC in place (--in-place).
    #[command(
        after_help = "Examples:\n  rivet compact my.db my-compacted.db --tx-max-size 1048576\n  \
rivet compact --in-place my.db"
    )]
    Compact(CompactArgs),

    /// Quick synthetic write/read benchmark (like `bbolt bench`).
    #[command(
        after_help = "Example:\n  rivet bench --count 100000 --batch-size 1000 --write-mode rnd --no-sync"
    )]
    Bench(BenchArgs),

    /// Repair tools; they write to --output FILE (a copy) unless --in-place is given.
    #[command(
        subcommand,
        after_help = "Examples:\n  rivet surgery meta validate my.db\n  \
rivet surgery revert-meta my.db --output reverted.db\n  \
rivet surgery freelist rebuild my.db --in-place"
    )]
    Surgery(SurgeryCommand),

    /// Print the version.
    #[command(after_help = "Example:\n  rivet version")]
    Version,
}

/// `--timeout`, on every command that opens a database file.
#[derive(Debug, Args, Clone, Copy)]
pub struct Lock {
    /// How long to wait for a file lock held by another process before failing (e.g. 1s,
    /// 250ms, 0 to fail at once).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// A database path and `--json`.
#[derive(Debug, Args)]
pub struct JsonDbArgs {
    /// The database file.
    pub db: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The database file.
    pub db: PathBuf,
    /// Only top-level buckets whose name starts with this prefix.
    pub prefix: Option<OsString>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// How byte strings are given and shown.
#[derive(Debug, Args, Clone, Copy)]
pub struct Encoding {
    /// Bucket names, keys and values are given and shown as hex.
    #[arg(long)]
    pub hex: bool,
    /// Show output bytes unescaped (binary data reaches the terminal as is).
    #[arg(long, conflicts_with = "hex")]
    pub raw: bool,
}

/// Arguments of `buckets` and `keys`.
#[derive(Debug, Args)]
pub struct PathArgs {
    /// The database file.
    pub db: PathBuf,
    /// Bucket path, outermost first.
    #[arg(value_name = "BUCKET")]
    pub path: Vec<OsString>,
    #[command(flatten)]
    pub enc: Encoding,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The database file.
    pub db: PathBuf,
    /// Bucket path, outermost first, then the key.
    #[arg(value_name = "BUCKET... KEY", required = true)]
    pub args: Vec<OsString>,
    #[command(flatten)]
    pub enc: Encoding,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The database file.
    pub db: PathBuf,
    /// Bucket path, outermost first, then the key and the value (`-` reads the value from
    /// stdin; with --file there is no VALUE).
    #[arg(value_name = "BUCKET... KEY VALUE", required = true)]
    pub args: Vec<OsString>,
    /// Bucket names, key and value are given as hex (a value from stdin or --file is taken
    /// as it is).
    #[arg(long)]
    pub hex: bool,
    /// Read the value from this file (byte for byte: the inverse of `get --raw`).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Page size when the file is created (an existing file keeps its own).
    #[arg(long, value_name = "BYTES")]
    pub page_size: Option<usize>,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The database file.
    pub db: PathBuf,
    /// Bucket path, outermost first, then the key.
    #[arg(value_name = "BUCKET... KEY", required = true)]
    pub args: Vec<OsString>,
    /// Bucket names and key are given as hex.
    #[arg(long)]
    pub hex: bool,
    /// KEY names a sub-bucket: delete it with everything in it.
    #[arg(long)]
    pub bucket: bool,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `page`.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// The database file.
    pub db: PathBuf,
    /// Page ids.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<u64>,
    /// Show keys and values as hex.
    #[arg(long)]
    pub hex: bool,
    /// Show at most this many bytes of each key and value.
    #[arg(long, value_name = "BYTES", default_value_t = 128)]
    pub max_bytes: usize,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The database file.
    pub db: PathBuf,
    /// Page ids.
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<u64>,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The database file.
    pub db: PathBuf,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The database file (created when missing).
    pub db: PathBuf,
    /// JSON Lines input; stdin when missing.
    pub file: Option<PathBuf>,
    /// Commit after this many lines.
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Page size when the file is created.
    #[arg(long, value_name = "BYTES")]
    pub page_size: Option<usize>,
    /// Skip fdatasync at each commit (sync once at the end).
    #[arg(long)]
    pub no_sync: bool,
    /// Report each commit on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Arguments of `compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// The database to compact (opened read-only; read-write with --in-place).
    pub src: PathBuf,
    /// The new file (must not exist, or be empty); not given with --in-place.
    #[arg(required_unless_present = "in_place")]
    pub dst: Option<PathBuf>,
    /// Compact SRC itself, online: move its pages toward the start of the file and pack
    /// them, in small transactions that other processes' readers and writers of the same
    /// handle interleave with, then cut the file (a crash loses nothing).
    #[arg(long, conflicts_with = "dst")]
    pub in_place: bool,
    /// With --in-place: leaves moved per transaction.
    #[arg(
        long,
        value_name = "LEAVES",
        default_value_t = 256,
        requires = "in_place"
    )]
    pub round_leaves: usize,
    /// Commit the destination every this many bytes of keys and values (0: one transaction).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = 65536,
        conflicts_with = "in_place"
    )]
    pub tx_max_size: u64,
    /// Skip fdatasync at each commit (sync once at the end).
    #[arg(long)]
    pub no_sync: bool,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// Key order of a benchmark phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Order {
    // Ascending keys. (Plain comments: documented variants would switch `bench --help` to
    // clap's long layout, unlike every other command.)
    Seq,
    // Shuffled keys.
    Rnd,
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Number of keys to write.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Keys per write transaction (0: all in one).
    #[arg(long, default_value_t = 0)]
    pub batch_size: u64,
    /// Key size in bytes (at least 4; the key number is stored big-endian at the start).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
    /// Order of the writes: seq (ascending keys) or rnd (shuffled).
    #[arg(long, value_enum, default_value_t = Order::Seq)]
    pub write_mode: Order,
    /// Order of the reads: seq or rnd.
    #[arg(long, value_enum, default_value_t = Order::Seq)]
    pub read_mode: Order,
    /// Repeat the read phase until it has run this long (0: read every key once).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub read_time: Duration,
    /// Skip fdatasync at commit.
    #[arg(long)]
    pub no_sync: bool,
    /// Keep the database at this path (must not exist) instead of a deleted temporary file.
    #[arg(long, value_name = "FILE")]
    pub path: Option<PathBuf>,
    /// Page size of the new file.
    #[arg(long, value_name = "BYTES")]
    pub page_size: Option<usize>,
}

/// Where a surgery writes.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["output", "in_place"])))]
pub struct Target {
    /// The database file.
    pub db: PathBuf,
    /// Write the repaired file here (must not exist); the original is left untouched.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Modify DB itself.
    #[arg(long)]
    pub in_place: bool,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}

/// `surgery` subcommands.
#[derive(Debug, Subcommand)]
pub enum SurgeryCommand {
    /// Undo the last commit: copy the older valid meta page over the newer one.
    #[command(after_help = "Example:\n  rivet surgery revert-meta my.db --output reverted.db")]
    RevertMeta(Target),
    /// Freelist repairs.
    #[command(
        subcommand,
        after_help = "Examples:\n  rivet surgery freelist abandon my.db --output copy.db\n  \
rivet surgery freelist rebuild my.db --in-place"
    )]
    Freelist(FreelistCommand),
    /// Meta page tools.
    #[command(
        subcommand,
        after_help = "Example:\n  rivet surgery meta validate my.db"
    )]
    Meta(MetaCommand),
}

/// `surgery freelist` subcommands.
#[derive(Debug, Subcommand)]
pub enum FreelistCommand {
    /// Rebuild the freelist from the pages the tree reaches, and persist it.
    #[command(after_help = "Example:\n  rivet surgery freelist rebuild my.db --output fixed.db")]
    Rebuild(Target),
    /// Drop the freelist (both metas record "no freelist"); the next read-write open rebuilds it.
    #[command(after_help = "Example:\n  rivet surgery freelist abandon my.db --in-place")]
    Abandon(Target),
}

/// `surgery meta` subcommands.
#[derive(Debug, Subcommand)]
pub enum MetaCommand {
    /// Report whether each meta page is valid (exit 1 when one is not).
    #[command(after_help = "Example:\n  rivet surgery meta validate my.db")]
    Validate(DbArg),
}

/// Just a database path.
#[derive(Debug, Args)]
pub struct DbArg {
    /// The database file.
    pub db: PathBuf,
    /// Lock waiting.
    #[command(flatten)]
    pub lock: Lock,
}
