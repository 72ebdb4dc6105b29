//! Errors of the storage layer. A client's bad batch and a failing disk are expected
//! errors with their own variants; neither panics.

use std::io;
use std::path::PathBuf;
use strand_format::BatchError;
use thiserror::Error;

/// What went wrong in a log operation.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("offset {offset} is out of range: the log holds offsets {start} to {end} (exclusive)")]
    OffsetOutOfRange { offset: u64, start: u64, end: u64 },
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("disk full while {op} {path}: free space and the log resumes by itself")]
    DiskFull { op: &'static str, path: PathBuf },
    #[error("log {dir} stopped accepting writes after an I/O error ({reason}); reopen it to recover")]
    Failed { dir: PathBuf, reason: String },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("log {dir} is closed")]
    Closed { dir: PathBuf },
    /// An append at a leader epoch older than the log's latest: a deposed leader's.
    #[error("leader epoch {epoch} is older than the log's latest, {latest}")]
    StaleEpoch { epoch: i32, latest: i32 },
    /// A replicated batch that does not start where the log ends.
    #[error("a replicated batch starts at offset {found}, but the log ends at {expected}")]
    OffsetMismatch { expected: u64, found: u64 },
}

impl StorageError {
    /// Wraps an I/O error with the operation and file, classifying a full disk.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> StorageError {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENOSPC) || source.kind() == io::ErrorKind::StorageFull {
            StorageError::DiskFull { op, path }
        } else {
            StorageError::Io { op, path, source }
        }
    }

    /// Whether the same request may succeed later without anything else changing.
    pub fn is_retriable(&self) -> bool {
        matches!(self, StorageError::DiskFull { .. })
    }
}

/// Converts glommio's error into the `std::io::Error` it wraps.
pub(crate) fn from_glommio<T>(error: glommio::GlommioError<T>) -> io::Error {
    io::Error::from(error)
}

/// Result of a storage operation.
pub type Result<T> = std::result::Result<T, StorageError>;
