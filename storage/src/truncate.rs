//! Cutting a log's tail: a follower that diverged from its new leader drops its
//! batches from an offset on (KIP-101: where the leader's epoch ends, never the high
//! watermark). The log is closed, its files are cut, and it is opened again, so
//! recovery rebuilds what depends on them (indexes, the active segment's appender).
//!
//! Every step leaves a log recovery accepts: later segments are deleted newest first
//! (a crash leaves a contiguous prefix), the cut segment's index files go before its
//! log file is cut (an index pointing past the end is not trusted anyway), and
//! `leader-epochs` loses the epochs that started past the cut last.

use super::epochs::LeaderEpochs;
use super::error::{Result, StorageError};
use super::log::Log;
use super::recovery::Recovery;
use super::segment::SegmentPaths;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;
use strand_format::batch::{BatchHeader, HEADER_BYTES};

impl Log {
    /// Drops every batch from the one holding `offset` on, and opens the log again:
    /// the reopened log and what recovery found. `offset` must be within the log
    /// (from its start to its end; at the end nothing is dropped). Consumes this
    /// handle: it is closed, and the caller uses the one returned.
    pub async fn truncate_to(self: Rc<Self>, offset: u64) -> Result<(Rc<Log>, Recovery)> {
        let offsets = self.offsets();
        if offset < offsets.start || offset > offsets.end {
            return Err(StorageError::OffsetOutOfRange { offset, start: offsets.start, end: offsets.end });
        }
        let (dir, name, config, io, cache) =
            (self.dir.clone(), self.name.clone(), self.config(), self.io.clone(), self.cache.clone());
        self.close().await?;
        drop(self);
        if offset < offsets.end {
            let cut_dir = dir.clone();
            glommio::executor().spawn_blocking(move || cut_files(&cut_dir, offset)).await?;
            tracing::warn!(log = %name, offset, dropped = offsets.end - offset, "truncated the log's tail");
        }
        Log::open(&dir, &name, config, io, cache).await
    }
}

/// Cuts the files of the closed log in `dir` so that it ends before the batch holding
/// `offset`. Blocking.
fn cut_files(dir: &Path, offset: u64) -> Result<()> {
    let bases = super::recovery::list_segments(dir)?;
    let Some(&containing) = bases.iter().rev().find(|&&base| base <= offset) else {
        return Err(StorageError::Corrupt {
            path: dir.to_path_buf(),
            reason: format!("no segment holds offset {offset}"),
        });
    };
    for &base in bases.iter().rev().filter(|&&base| base > containing) {
        let paths = SegmentPaths::new(dir, base);
        for path in [&paths.offset_index, &paths.time_index, &paths.log] {
            remove(path)?;
        }
    }
    let paths = SegmentPaths::new(dir, containing);
    let position = batch_position(&paths.log, containing, offset)?;
    remove(&paths.offset_index)?;
    remove(&paths.time_index)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&paths.log)
        .map_err(|e| StorageError::io("opening", &paths.log, e))?;
    file.set_len(position).map_err(|e| StorageError::io("truncating", &paths.log, e))?;
    file.sync_all().map_err(|e| StorageError::io("syncing", &paths.log, e))?;
    let epochs_error = |error: super::epochs::EpochError| StorageError::Corrupt {
        path: dir.join("leader-epochs"),
        reason: error.to_string(),
    };
    let mut epochs = LeaderEpochs::read(dir).map_err(epochs_error)?;
    if epochs.latest().is_some_and(|(_, start)| start >= offset) {
        epochs.truncate_from_end(offset);
        epochs.write(dir).map_err(epochs_error)?;
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StorageError::io("syncing", dir, e))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io("removing", path, error)),
        _ => Ok(()),
    }
}

/// Where the batch holding `offset` starts in the segment file at `path` (whose first
/// batch is at `base`), walking the batch headers; the end of the batches when the
/// offset is past them.
fn batch_position(path: &Path, base: u64, offset: u64) -> Result<u64> {
    let mut file = std::fs::File::open(path).map_err(|e| StorageError::io("opening", path, e))?;
    let size = file.metadata().map_err(|e| StorageError::io("reading", path, e))?.len();
    let mut position = 0u64;
    let mut expected = base;
    let mut header = [0u8; HEADER_BYTES];
    while position + HEADER_BYTES as u64 <= size {
        file.seek(SeekFrom::Start(position)).map_err(|e| StorageError::io("reading", path, e))?;
        file.read_exact(&mut header).map_err(|e| StorageError::io("reading", path, e))?;
        let Ok(parsed) = BatchHeader::parse(&header) else { break };
        if parsed.base_offset as u64 != expected {
            break; // the zeros (or a torn batch) after the last batch
        }
        if parsed.next_offset() as u64 > offset {
            return Ok(position);
        }
        expected = parsed.next_offset() as u64;
        position += parsed.total_bytes() as u64;
    }
    Ok(position)
}
