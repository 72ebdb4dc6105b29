//! `Segment`: one log file of a partition, named by its base offset, with its indexes.
//!
//! The active segment is preallocated to `segment_bytes` (so writes inside it change no
//! file size and fdatasync flushes data only) and trimmed to its real length when it is
//! sealed. Bytes past the logical end of the active segment are zeros or, after a
//! crash, garbage that recovery cuts off.

use super::error::{from_glommio, Result, StorageError};
use super::index::SegmentIndex;
use glommio::io::{DmaFile, OpenOptions, ReadResult};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use strand_format::batch::{self, BatchHeader, BatchLimits};

/// The three files of a segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentPaths {
    pub log: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
}

impl SegmentPaths {
    pub fn new(dir: &Path, base_offset: u64) -> SegmentPaths {
        SegmentPaths {
            log: dir.join(format!("{base_offset:020}.log")),
            offset_index: dir.join(format!("{base_offset:020}.index")),
            time_index: dir.join(format!("{base_offset:020}.timeindex")),
        }
    }

    /// The files of a log's standby segment: the next segment, created ahead of its
    /// roll and renamed by it. Recovery removes them.
    pub fn standby(dir: &Path) -> SegmentPaths {
        SegmentPaths {
            log: dir.join("standby.log"),
            offset_index: dir.join("standby.index"),
            time_index: dir.join("standby.timeindex"),
        }
    }
}

/// Parses `00000000000000001234.log` into 1234.
pub(crate) fn parse_log_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// One segment. Shared by `Rc` so that a reader keeps a deleted segment's file open
/// until it is done.
pub(crate) struct Segment {
    pub base_offset: u64,
    pub paths: SegmentPaths,
    pub file: Rc<DmaFile>,
    /// Logical bytes: every batch appended, none of the preallocated tail.
    pub(crate) size: Cell<u64>,
    /// Offset after the last batch (the base offset while empty).
    pub(crate) next_offset: Cell<u64>,
    /// Max timestamp of the first batch: segment age for `segment_ms`, as Kafka does.
    pub(crate) first_timestamp: Cell<Option<i64>>,
    pub(crate) index: RefCell<SegmentIndex>,
    pub(crate) sealed: Cell<bool>,
}

impl Segment {
    pub fn new(base_offset: u64, paths: SegmentPaths, file: Rc<DmaFile>, index: SegmentIndex) -> Segment {
        Segment {
            base_offset,
            paths,
            file,
            size: Cell::new(0),
            next_offset: Cell::new(base_offset),
            first_timestamp: Cell::new(None),
            index: RefCell::new(index),
            sealed: Cell::new(false),
        }
    }

    /// Newest max timestamp of any batch, `i64::MIN` when empty.
    pub fn max_timestamp(&self) -> i64 {
        self.index.borrow().max_timestamp
    }

    /// Reads `len` bytes at `pos` (any alignment) with one direct read.
    pub async fn read_at(&self, pos: u64, len: usize) -> Result<ReadResult> {
        self.file.read_at(pos, len).await.map_err(|e| StorageError::io("reading", &self.paths.log, from_glommio(e)))
    }

    /// Walks the batches from `pos` up to `end`, reading `read_bytes` at a time, and
    /// calls `visit(position, header)` for each until it returns false. With `verify`,
    /// each batch is fully validated (CRC included); otherwise only its header.
    pub async fn scan(
        &self,
        mut pos: u64,
        end: u64,
        read_bytes: usize,
        verify: bool,
        mut visit: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<ScanStop> {
        let limits = BatchLimits::stored();
        while pos < end {
            let want = (end - pos).min(read_bytes as u64) as usize;
            let chunk = self.read_at(pos, want).await?;
            let mut at = 0usize;
            while at < chunk.len() {
                let rest = &chunk[at..];
                let here = pos + at as u64;
                let header = match BatchHeader::parse(rest) {
                    Ok(header) => header,
                    // A header cut by the end of this read: read again from here.
                    Err(batch::BatchError::Truncated { .. }) if at > 0 => break,
                    Err(error) => return Ok(ScanStop::Invalid { position: here, reason: error.to_string() }),
                };
                let total = header.total_bytes();
                if here + total as u64 > end {
                    return Ok(ScanStop::Invalid {
                        position: here,
                        reason: format!("batch of {total} bytes runs past the end of the data at {end}"),
                    });
                }
                let owned;
                let bytes = if rest.len() >= total {
                    &rest[..total]
                } else if at == 0 {
                    // One batch larger than the read size: read it whole.
                    owned = self.read_at(here, total).await?;
                    &owned[..]
                } else {
                    break;
                };
                if bytes.len() < total {
                    return Ok(ScanStop::Invalid { position: here, reason: "file ends inside a batch".into() });
                }
                let checked = if verify { batch::validate(bytes, limits).map(|_| ()) } else { Ok(()) };
                if let Err(error) = checked {
                    return Ok(ScanStop::Invalid { position: here, reason: error.to_string() });
                }
                if !visit(here, &header) {
                    return Ok(ScanStop::Visitor { position: here });
                }
                at += total;
            }
            if at == 0 {
                return Ok(ScanStop::Invalid { position: pos, reason: "file ends inside a batch header".into() });
            }
            pos += at as u64;
        }
        Ok(ScanStop::End { position: pos })
    }
}

/// Why a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanStop {
    /// Every batch up to `end` was visited.
    End { position: u64 },
    /// The visitor asked to stop at the batch at `position`.
    Visitor { position: u64 },
    /// The bytes at `position` are not a valid batch.
    Invalid { position: u64, reason: String },
}

/// Makes glommio's per-thread iopoll probe for `dir`'s device give the right answer.
///
/// glommio decides, the first time a thread opens a DMA file on a device, whether to
/// send that device's reads to an IOPOLL ring, by trying one read of the file. On a new,
/// empty file that read returns 0 bytes without reaching the device and counts as
/// support; on a device without poll queues (virtio disks among them) every read then
/// fails with EOPNOTSUPP. Opening a one-block file first makes the probe read reach the
/// device and get the device's real answer, which glommio caches for the thread.
pub async fn probe_device(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    thread_local!(static PROBED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) });
    let device = std::fs::metadata(dir).map_err(|e| StorageError::io("inspecting", dir, e))?.dev();
    if PROBED.with(|probed| probed.borrow().contains(&device)) {
        return Ok(());
    }
    // One name per thread: shards of one broker probe the same directory at once.
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let path = dir.join(format!(".strand-io-probe-{}-{thread}", std::process::id()));
    // The block must be on the device, not dirty in the page cache: a direct read of
    // dirty pages is served another way and would make the probe report support.
    let written = std::fs::File::create(&path).and_then(|mut file| {
        std::io::Write::write_all(&mut file, &[0u8; super::BLOCK_BYTES])?;
        file.sync_all()
    });
    written.map_err(|e| StorageError::io("writing", &path, e))?;
    let checked = async {
        let file = DmaFile::open(&path).await.map_err(|e| StorageError::io("opening", &path, from_glommio(e)))?;
        let read = file.read_at(0, super::BLOCK_BYTES).await;
        let _ = file.close().await;
        read.map(|_| ()).map_err(|e| StorageError::io("reading with direct I/O", &path, from_glommio(e)))
    }
    .await;
    let _ = std::fs::remove_file(&path);
    checked?;
    PROBED.with(|probed| probed.borrow_mut().push(device));
    Ok(())
}

/// Opens (creating if asked) a file for direct I/O, reads and writes.
pub(crate) async fn open_dma(path: &Path, create: bool) -> Result<DmaFile> {
    let op = if create { "creating" } else { "opening" };
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .dma_open(path)
        .await
        .map_err(|e| StorageError::io(op, path, from_glommio(e)))
}

/// Size of a file in bytes.
pub(crate) async fn file_size(file: &DmaFile, path: &Path) -> Result<u64> {
    file.file_size().await.map_err(|e| StorageError::io("reading the size of", path, from_glommio(e)))
}

/// Reads a whole (small) file.
pub(crate) async fn read_all(file: &DmaFile, path: &Path) -> Result<Vec<u8>> {
    let size = file_size(file, path).await?;
    if size == 0 {
        return Ok(Vec::new());
    }
    let bytes = file.read_at(0, size as usize).await.map_err(|e| StorageError::io("reading", path, from_glommio(e)))?;
    Ok(bytes.to_vec())
}

/// Reads the partial last block before `end`, which an appender rewrites.
pub(crate) async fn read_tail(file: &DmaFile, path: &Path, end: u64) -> Result<Vec<u8>> {
    let start = super::appender::align_down(end);
    if start == end {
        return Ok(Vec::new());
    }
    let bytes = file
        .read_at(start, (end - start) as usize)
        .await
        .map_err(|e| StorageError::io("reading", path, from_glommio(e)))?;
    if bytes.len() as u64 != end - start {
        return Err(StorageError::Corrupt { path: path.to_path_buf(), reason: format!("file ends before byte {end}") });
    }
    Ok(bytes.to_vec())
}

/// Sets a file's length.
pub(crate) async fn truncate(file: &DmaFile, path: &Path, len: u64) -> Result<()> {
    file.truncate(len).await.map_err(|e| StorageError::io("truncating", path, from_glommio(e)))
}

/// fdatasync.
pub(crate) async fn sync(file: &DmaFile, path: &Path) -> Result<()> {
    if let Some(injected) = super::probe::sync() {
        return Err(StorageError::io("syncing", path, injected));
    }
    file.fdatasync().await.map_err(|e| StorageError::io("syncing", path, from_glommio(e)))
}

/// Reserves `len` bytes for the file and sets its size to `len`.
pub(crate) async fn preallocate(file: &DmaFile, path: &Path, len: u64) -> Result<()> {
    file.pre_allocate(len, false).await.map_err(|e| StorageError::io("preallocating", path, from_glommio(e)))
}

/// fsyncs a directory, making file creations and removals in it durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<()> {
    let handle =
        glommio::io::Directory::open(dir).await.map_err(|e| StorageError::io("opening", dir, from_glommio(e)))?;
    handle.sync().await.map_err(|e| StorageError::io("syncing", dir, from_glommio(e)))?;
    let _ = handle.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let paths = SegmentPaths::new(Path::new("/d"), 1234);
        assert_eq!(paths.log, Path::new("/d/00000000000000001234.log"));
        assert_eq!(parse_log_file_name("00000000000000001234.log"), Some(1234));
        assert_eq!(parse_log_file_name("1234.log"), None);
        assert_eq!(parse_log_file_name("00000000000000001234.index"), None);
        assert_eq!(parse_log_file_name("0000000000000000123x.log"), None);
    }
}
