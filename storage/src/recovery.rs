//! Opening a partition's log: find its segments, check or rebuild their indexes, and
//! recover the active (last) segment.
//!
//! Sealed segments were trimmed and fdatasynced when sealed. Their index is trusted
//! once it checks out against the log: entries strictly increasing and inside the file,
//! and the last time entry pointing at a batch that ends exactly at the end of the file.
//! Otherwise the index is rebuilt by scanning the segment.
//!
//! The active segment may end in a torn write. Recovery starts from the last offset
//! index entry whose batch validates, scans forward validating every batch (CRC
//! included, and offsets contiguous), and cuts the segment at the first batch that
//! fails. What was cut is logged with its position and offset. The cut region is
//! removed from the file (truncate, then preallocate again), so no stale batch beyond
//! the cut can ever be read back as if it followed the new ones.

use super::appender::Appender;
use super::cache::BatchCache;
use super::config::{IoOptions, TopicConfig};
use super::error::{Result, StorageError};
use super::index::{decode_offset_entries, decode_time_entries, IndexWriters, SegmentIndex};
use super::log::{create_segment, index_sizing, log_sizing, now_ms, Log, LogState};
use super::segment::{self, ScanStop, Segment, SegmentPaths};
use super::LEADER_EPOCH;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;
use strand_format::batch::{self, BatchHeader, BatchLimits, HEADER_BYTES};

/// Index entries tried, newest first, before recovery scans the whole active segment.
const RECOVERY_ENTRY_TRIES_MAX: usize = 8;

/// What opening a log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    pub next_offset: u64,
    /// Set when the active segment ended in bytes that were not a valid batch.
    pub truncation: Option<Truncation>,
    /// Segments whose index files were rebuilt from the log.
    pub indexes_rebuilt: usize,
    /// Bytes of the active segment validated by scanning.
    pub bytes_scanned: u64,
    pub duration_ms: u64,
}

/// Where recovery cut the active segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub position: u64,
    pub offset: u64,
    /// Non-zero bytes found after the cut (read up to `IoOptions::read_bytes`).
    pub bytes: u64,
    pub reason: String,
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it as described in the
    /// module documentation. `name` names the partition in logs and errors.
    pub async fn open(
        dir: &Path,
        name: &str,
        config: TopicConfig,
        io: IoOptions,
        cache: Rc<BatchCache>,
    ) -> Result<(Rc<Log>, Recovery)> {
        config.validate().map_err(|reason| StorageError::Corrupt { path: dir.to_path_buf(), reason })?;
        let started = Instant::now();
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("creating", dir, e))?;
        segment::probe_device(dir).await?;
        // A standby segment never holds data: its writes wait for its rename.
        super::log::remove_standby_files(dir);
        let bases = list_segments(dir)?;
        let epochs = crate::epochs::LeaderEpochs::read(dir)
            .map_err(|error| StorageError::Corrupt { path: dir.join("leader-epochs"), reason: error.to_string() })?;
        let mut recovery = Recovery::default();
        let mut segments = BTreeMap::new();
        let mut active_appender = None;
        if bases.is_empty() {
            let (segment, fresh) =
                create_segment(dir, 0, config.segment_bytes, config.index_interval_bytes, &io).await?;
            segments.insert(0, segment);
            active_appender = Some(fresh);
        } else {
            let mut expected = None;
            for (i, &base) in bases.iter().enumerate() {
                if let Some(expected) = expected.filter(|&next| next != base) {
                    return Err(StorageError::Corrupt {
                        path: SegmentPaths::new(dir, base).log,
                        reason: format!("segment starts at offset {base} but the one before it ends at {expected}"),
                    });
                }
                let segment = if i + 1 < bases.len() {
                    open_sealed(dir, base, &config, &io, &epochs, &mut recovery).await?
                } else {
                    let (segment, active) = open_active(dir, name, base, &config, &io, &epochs, &mut recovery).await?;
                    active_appender = Some(active);
                    segment
                };
                expected = Some(segment.next_offset.get());
                segments.insert(base, segment);
            }
        }
        let appender = active_appender.expect("the last segment is opened as active");
        let active = segments.values().next_back().expect("one segment at least");
        let next_offset = active.next_offset.get();
        let first_base = *segments.keys().next().expect("one segment at least");
        // DeleteRecords may have moved the start inside the first segment. A start past
        // the recovered end (the tail a crash took back under a relaxed fsync policy)
        // leaves the log empty at its end.
        let start_offset = match super::log::read_start_offset(dir)? {
            Some(moved) if moved > next_offset => {
                tracing::warn!(
                    log = name,
                    start = moved,
                    end = next_offset,
                    "the log start DeleteRecords left is past the recovered end; the log is empty from its end"
                );
                next_offset
            }
            Some(moved) => moved.max(first_base),
            None => first_base,
        };
        let state = LogState {
            next_offset,
            start_offset,
            size_bytes: segments.values().map(|segment| segment.size.get()).sum(),
            segments,
            appender,
        };
        recovery.segments = state.segments.len();
        recovery.next_offset = state.next_offset;
        recovery.duration_ms = started.elapsed().as_millis() as u64;
        // An epoch recorded past the recovered end started no batch that survived.
        let mut epochs = epochs;
        epochs.truncate_from_end(state.next_offset + 1);
        let log = Log::from_parts(dir.to_path_buf(), name.to_string(), config, io, cache, state, epochs);
        Ok((Rc::new(log), recovery))
    }
}

/// Base offsets of the segments in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io("listing", dir, e))?;
    let mut bases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("listing", dir, e))?;
        if let Some(base) = entry.file_name().to_str().and_then(segment::parse_log_file_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Loads an index file's bytes, or nothing if it is missing.
async fn load_index_file(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let file = segment::open_dma(path, false).await?;
    let bytes = segment::read_all(&file, path).await;
    let _ = file.close().await;
    bytes
}

/// Opens the segment at `base` with the index entries its files hold (hints, checked
/// by the caller) that point inside its log file; also returns the file's size.
async fn load_segment(dir: &Path, base: u64, config: &TopicConfig) -> Result<(Segment, u64)> {
    let paths = SegmentPaths::new(dir, base);
    let file = Rc::new(segment::open_dma(&paths.log, false).await?);
    let file_bytes = segment::file_size(&file, &paths.log).await?;
    let mut index = SegmentIndex::new(config.index_interval_bytes);
    index.offsets = decode_offset_entries(&load_index_file(&paths.offset_index).await?, file_bytes);
    index.times = decode_time_entries(&load_index_file(&paths.time_index).await?, file_bytes);
    Ok((Segment::new(base, paths, file, index), file_bytes))
}

async fn open_sealed(
    dir: &Path,
    base: u64,
    config: &TopicConfig,
    io: &IoOptions,
    epochs: &crate::epochs::LeaderEpochs,
    recovery: &mut Recovery,
) -> Result<Rc<Segment>> {
    let (segment, size) = load_segment(dir, base, config).await?;
    segment.size.set(size);
    segment.sealed.set(true);
    match check_sealed_index(&segment, size).await? {
        Some(next_offset) => {
            segment.next_offset.set(next_offset);
            let mut index = segment.index.borrow_mut();
            index.max_timestamp = index.times.last().map_or(i64::MIN, |entry| entry.timestamp);
        }
        None => {
            rebuild_sealed(&segment, size, io, epochs).await?;
            recovery.indexes_rebuilt += 1;
        }
    }
    Ok(Rc::new(segment))
}

/// The segment's next offset if its index checks out against the log, else `None`.
async fn check_sealed_index(segment: &Segment, size: u64) -> Result<Option<u64>> {
    let (last_time, has_offsets) = {
        let index = segment.index.borrow();
        (index.times.last().copied(), !index.offsets.is_empty())
    };
    let Some(last) = last_time.filter(|_| has_offsets) else { return Ok(None) };
    let position = u64::from(last.position);
    let head = segment.read_at(position, HEADER_BYTES).await?;
    let Ok(header) = BatchHeader::parse(&head) else { return Ok(None) };
    let consistent = position + header.total_bytes() as u64 == size
        && header.base_offset as u64 == segment.base_offset + u64::from(last.relative_offset)
        && header.max_timestamp <= last.timestamp;
    Ok(consistent.then_some(header.next_offset() as u64))
}

/// Rebuilds a sealed segment's index by scanning it whole, trims zeros left past its
/// end by a crash during sealing, and writes fresh index files.
async fn rebuild_sealed(
    segment: &Segment,
    size: u64,
    io: &IoOptions,
    epochs: &crate::epochs::LeaderEpochs,
) -> Result<()> {
    segment.index.borrow_mut().truncate_from(0);
    segment.size.set(0);
    segment.next_offset.set(segment.base_offset);
    let stop = scan_into_index(segment, 0, size, io, epochs).await?;
    let end = match stop {
        ScanStop::End { position } => position,
        ScanStop::Invalid { position, reason } => {
            if !only_zeros_after(segment, position, size, io.read_bytes).await? {
                return Err(StorageError::Corrupt {
                    path: segment.paths.log.clone(),
                    reason: format!("sealed segment holds an invalid batch at byte {position}: {reason}"),
                });
            }
            segment::truncate(&segment.file, &segment.paths.log, position).await?;
            segment::sync(&segment.file, &segment.paths.log).await?;
            position
        }
        ScanStop::Visitor { position } => position,
    };
    if end == 0 {
        return Err(StorageError::Corrupt {
            path: segment.paths.log.clone(),
            reason: "sealed segment holds no batch".into(),
        });
    }
    segment.size.set(end);
    segment.index.borrow_mut().seal();
    write_index_files(segment, io).await;
    tracing::warn!(path = %segment.paths.log.display(), "rebuilt the indexes of a sealed segment");
    Ok(())
}

/// Scans batches from `from` to `end` with full validation, appending index entries and
/// advancing the segment's next offset; stops at the first invalid or non-contiguous
/// batch, or one whose leader epoch is not the one `epochs` says its offset was
/// written at (neither offset nor epoch is under the batch CRC).
async fn scan_into_index(
    segment: &Segment,
    from: u64,
    end: u64,
    io: &IoOptions,
    epochs: &crate::epochs::LeaderEpochs,
) -> Result<ScanStop> {
    let mut expected = segment.next_offset.get();
    let mut discontinuity = None;
    let stop = segment
        .scan(from, end, io.read_bytes, true, |position, header| {
            let epoch = header.partition_leader_epoch;
            if header.base_offset as u64 != expected || !epoch_fits(epochs, expected, epoch) {
                discontinuity = Some((header.base_offset, epoch));
                return false;
            }
            expected = header.next_offset() as u64;
            let relative = (header.base_offset as u64 - segment.base_offset) as u32;
            let mut index = segment.index.borrow_mut();
            index.on_append(relative, position as u32, header.total_bytes() as u32, header.max_timestamp);
            segment.next_offset.set(expected);
            segment.size.set(position + header.total_bytes() as u64);
            true
        })
        .await?;
    Ok(match (stop, discontinuity) {
        (ScanStop::Visitor { position }, Some((found, epoch))) => ScanStop::Invalid {
            position,
            reason: format!(
                "batch has base offset {found} and leader epoch {epoch}, expected offset {expected} at epoch {}",
                epoch_at(epochs, expected).map_or_else(|| format!("0 to {LEADER_EPOCH}"), |e| e.to_string())
            ),
        },
        (stop, _) => stop,
    })
}

/// The epoch the batch at `offset` was written at, as `epochs` records it: the latest
/// epoch starting at or before it. `None` when none does (no epoch recorded: every
/// batch at epoch 0; or an offset before the first recorded start, which retention may
/// leave in the first segment).
fn epoch_at(epochs: &crate::epochs::LeaderEpochs, offset: u64) -> Option<i32> {
    epochs.entries().iter().rev().find(|&&(_, start)| start <= offset).map(|&(epoch, _)| epoch)
}

/// Whether a batch at `offset` may carry `epoch`.
fn epoch_fits(epochs: &crate::epochs::LeaderEpochs, offset: u64, epoch: i32) -> bool {
    match (epoch_at(epochs, offset), epochs.entries().first()) {
        (Some(recorded), _) => epoch == recorded,
        (None, Some(&(first, _))) => (0..=first).contains(&epoch),
        (None, None) => (0..=LEADER_EPOCH).contains(&epoch),
    }
}

/// Whether the file holds only zero bytes from `from` to `end`.
async fn only_zeros_after(segment: &Segment, mut from: u64, end: u64, read_bytes: usize) -> Result<bool> {
    while from < end {
        let chunk = segment.read_at(from, (end - from).min(read_bytes as u64) as usize).await?;
        if chunk.is_empty() {
            break;
        }
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        from += chunk.len() as u64;
    }
    Ok(true)
}

/// Writes a sealed segment's in-memory index to fresh files. Best effort: a failure
/// only means the next start rebuilds again.
async fn write_index_files(segment: &Segment, io: &IoOptions) {
    let result: Result<()> = async {
        let paths = &segment.paths;
        let offsets = Rc::new(segment::open_dma(&paths.offset_index, true).await?);
        let times = Rc::new(segment::open_dma(&paths.time_index, true).await?);
        segment::truncate(&offsets, &paths.offset_index, 0).await?;
        segment::truncate(&times, &paths.time_index, 0).await?;
        let mut writers = IndexWriters::new(
            (offsets, &paths.offset_index, &[]),
            (times, &paths.time_index, &[]),
            0,
            0,
            index_sizing(io),
        );
        let (offset_bytes, time_bytes) = {
            let index = segment.index.borrow();
            let offset_bytes: Vec<u8> = index.offsets.iter().flat_map(|entry| entry.encode()).collect();
            let time_bytes: Vec<u8> = index.times.iter().flat_map(|entry| entry.encode()).collect();
            (offset_bytes, time_bytes)
        };
        for (appender, bytes, path) in [
            (&mut writers.offsets, &offset_bytes, &paths.offset_index),
            (&mut writers.times, &time_bytes, &paths.time_index),
        ] {
            appender.append(bytes);
            appender.flush();
            super::appender::wait_written(appender.tracker(), appender.end(), path).await?;
            segment::truncate(appender.file(), path, bytes.len() as u64).await?;
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(path = %segment.paths.log.display(), %error, "could not write rebuilt index files");
    }
}

async fn open_active(
    dir: &Path,
    name: &str,
    base: u64,
    config: &TopicConfig,
    io: &IoOptions,
    epochs: &crate::epochs::LeaderEpochs,
    recovery: &mut Recovery,
) -> Result<(Rc<Segment>, Appender)> {
    let (segment, file_bytes) = load_segment(dir, base, config).await?;
    let (paths, file) = (segment.paths.clone(), segment.file.clone());

    let (start_position, start_offset) = recovery_start(&segment, file_bytes).await?;
    segment.index.borrow_mut().truncate_from(start_position as u32);
    segment.size.set(start_position);
    segment.next_offset.set(start_offset);
    attach_index_writers(&segment, io).await?;

    let stop = scan_into_index(&segment, start_position, file_bytes, io, epochs).await?;
    let end = segment.size.get();
    recovery.bytes_scanned = end - start_position;
    if let ScanStop::Invalid { position, reason } = stop {
        debug_assert_eq!(position, end);
        let garbage = nonzero_span(&segment, end, file_bytes, io.read_bytes).await?;
        if garbage > 0 {
            let offset = segment.next_offset.get();
            tracing::warn!(log = name, path = %paths.log.display(), position, offset, bytes = garbage, %reason,
                "recovery cut the log at a torn or corrupt batch");
            recovery.truncation = Some(Truncation { position, offset, bytes: garbage, reason });
        }
    }
    if end < file_bytes || file_bytes < config.segment_bytes {
        // Remove everything past the recovered end, then reserve the segment again.
        segment::truncate(&file, &paths.log, end).await?;
        segment::preallocate(&file, &paths.log, config.segment_bytes.max(end)).await?;
    }
    segment::sync(&file, &paths.log).await?;
    if end > 0 {
        segment.first_timestamp.set(Some(now_ms()));
    }
    let tail = segment::read_tail(&file, &paths.log, end).await?;
    let appender = Appender::new(file, &paths.log, end, &tail, log_sizing(io));
    Ok((Rc::new(segment), appender))
}

/// Where to start scanning the active segment: the newest offset index entry whose
/// batch validates, or the segment's start.
async fn recovery_start(segment: &Segment, file_bytes: u64) -> Result<(u64, u64)> {
    let entries: Vec<_> = segment.index.borrow().offsets.iter().rev().take(RECOVERY_ENTRY_TRIES_MAX).copied().collect();
    for entry in entries {
        let position = u64::from(entry.position);
        let head = segment.read_at(position, HEADER_BYTES).await?;
        let Ok(header) = BatchHeader::parse(&head) else { continue };
        let expected = segment.base_offset + u64::from(entry.relative_offset);
        if header.base_offset as u64 != expected || position + header.total_bytes() as u64 > file_bytes {
            continue;
        }
        let whole = segment.read_at(position, header.total_bytes()).await?;
        if batch::validate(&whole, BatchLimits::stored()).is_ok() {
            return Ok((position, expected));
        }
    }
    Ok((0, segment.base_offset))
}

/// Opens the active segment's index files, trims them to the entries kept, and
/// attaches writers so that entries rebuilt by the scan are written too.
async fn attach_index_writers(segment: &Segment, io: &IoOptions) -> Result<()> {
    let paths = &segment.paths;
    let offsets = Rc::new(segment::open_dma(&paths.offset_index, true).await?);
    let times = Rc::new(segment::open_dma(&paths.time_index, true).await?);
    let (offset_bytes, time_bytes) = segment.index.borrow().file_bytes();
    segment::truncate(&offsets, &paths.offset_index, offset_bytes).await?;
    segment::truncate(&times, &paths.time_index, time_bytes).await?;
    let offset_tail = segment::read_tail(&offsets, &paths.offset_index, offset_bytes).await?;
    let time_tail = segment::read_tail(&times, &paths.time_index, time_bytes).await?;
    let (offset_count, time_count) = {
        let index = segment.index.borrow();
        (index.offsets.len(), index.times.len())
    };
    let writers = IndexWriters::new(
        (offsets, &paths.offset_index, &offset_tail),
        (times, &paths.time_index, &time_tail),
        offset_count,
        time_count,
        index_sizing(io),
    );
    segment.index.borrow_mut().writers = Some(writers);
    Ok(())
}

/// How many bytes after `from` up to the last non-zero byte in one read: the size of
/// what recovery cut, as far as one read shows it.
async fn nonzero_span(segment: &Segment, from: u64, end: u64, read_bytes: usize) -> Result<u64> {
    if from >= end {
        return Ok(0);
    }
    let chunk = segment.read_at(from, (end - from).min(read_bytes as u64) as usize).await?;
    Ok(chunk.iter().rposition(|&b| b != 0).map_or(0, |last| last as u64 + 1))
}

/// A directory that could not be opened as a log, with the reason.
#[derive(Debug)]
pub struct OpenFailure {
    pub name: String,
    pub dir: PathBuf,
    pub error: StorageError,
}

/// One log to open: its name in logs and errors, its directory and its policy.
#[derive(Debug, Clone)]
pub struct LogSpec {
    pub name: String,
    pub dir: PathBuf,
    pub config: TopicConfig,
}

/// A log that opened, with what its recovery did.
pub struct Opened {
    pub name: String,
    pub log: Rc<Log>,
    pub recovery: Recovery,
}

/// Opens every log in `specs`, one after another. A log that fails to open is logged
/// and returned by name with its error; it never stops the others from opening.
pub async fn open_logs(specs: Vec<LogSpec>, io: &IoOptions, cache: &Rc<BatchCache>) -> (Vec<Opened>, Vec<OpenFailure>) {
    let mut opened = Vec::with_capacity(specs.len());
    let mut failures = Vec::new();
    for spec in specs {
        match Log::open(&spec.dir, &spec.name, spec.config, io.clone(), cache.clone()).await {
            Ok((log, recovery)) => opened.push(Opened { name: spec.name, log, recovery }),
            Err(error) => {
                tracing::error!(log = %spec.name, dir = %spec.dir.display(), %error, "partition could not be opened; it stays offline");
                failures.push(OpenFailure { name: spec.name, dir: spec.dir, error });
            }
        }
    }
    (opened, failures)
}
