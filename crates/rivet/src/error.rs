//! The engine's error type.
//!
//! Every fallible operation returns [`Result`]; variants mirror bbolt's errors where bbolt has
//! one, and add context (file, page id, reason) where a user needs it to act.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Rivet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a bbolt database (both meta pages invalid, or too short).
    #[error("{path}: not a bbolt database: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// The file was written on a big-endian machine.
    #[error("{0}: big-endian bbolt file; only little-endian files are supported")]
    BigEndian(PathBuf),
    /// The file's format version is not 2.
    #[error("{path}: unsupported bbolt format version {version}")]
    VersionMismatch {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// Both meta pages failed their checksum.
    #[error("{0}: meta page checksum mismatch on both meta pages")]
    Checksum(PathBuf),
    /// The file lock could not be taken within the timeout.
    #[error("{0}: timed out waiting for the file lock (another process has the database open)")]
    Timeout(PathBuf),
    /// This process already has the file open read-write (or read-only, and this open is
    /// read-write): a second open would wait for ever for the lock this process holds.
    #[error("{0}: already open in this process; a second open would wait for ever for the lock this process holds (share the Db handle instead: it is Clone)")]
    AlreadyOpen(PathBuf),
    /// A write transaction was requested on a read-only database.
    #[error("database is open read-only")]
    DatabaseReadOnly,
    /// A write operation was attempted in a read-only transaction.
    #[error("transaction is read-only")]
    TxNotWritable,
    /// The transaction has already been committed or rolled back.
    #[error("transaction is closed")]
    TxClosed,
    /// `try_begin_write` found another write transaction open.
    #[error("another write transaction is open")]
    WriterBusy,
    /// The bucket does not exist.
    #[error("bucket not found")]
    BucketNotFound,
    /// The bucket already exists.
    #[error("bucket already exists")]
    BucketExists,
    /// Bucket names must not be empty.
    #[error("bucket name required")]
    BucketNameRequired,
    /// Keys must not be empty.
    #[error("key required")]
    KeyRequired,
    /// The key is longer than 32768 bytes.
    #[error("key too large ({0} bytes, limit 32768)")]
    KeyTooLarge(usize),
    /// The value is longer than 2^31-2 bytes.
    #[error("value too large ({0} bytes, limit 2147483646)")]
    ValueTooLarge(usize),
    /// A bucket operation on a plain key, or a key operation on a bucket.
    #[error("incompatible value (bucket vs plain key)")]
    IncompatibleValue,
    /// Source and destination of a bucket move are the same bucket.
    #[error("source and destination buckets are the same")]
    SameBuckets,
    /// The bucket handle belongs to another transaction or database.
    #[error("bucket belongs to a different transaction")]
    DifferentTx,
    /// Growing the file would exceed `Options::max_size`.
    #[error("database size limit reached ({limit} bytes)")]
    MaxSizeReached {
        /// The configured limit.
        limit: u64,
    },
    /// The file is damaged.
    #[error("corrupted database: page {page}: {reason}")]
    Corrupted {
        /// The page where the damage was found.
        page: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier fsync failed; the database refuses further writes until it is reopened.
    #[error("database refuses writes after a failed sync ({0}); reopen it to recover")]
    Poisoned(String),
    /// An option was out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// An error returned by a user callback (for example inside `batch`).
    #[error("{0}")]
    Callback(String),
}

impl Error {
    /// Builds a [`Error::Corrupted`].
    pub fn corrupted(page: u64, reason: impl Into<String>) -> Error {
        Error::Corrupted {
            page,
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error with a description of the operation.
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            op: op.into(),
            source,
        }
    }
}
