//! Rolling: when a segment is full or old, the standby segment prepared ahead of time
//! takes its place and the old one is sealed (written, trimmed, fdatasynced, indexed)
//! in a task of its own; creating segment files and their disk-space check.

use super::*;

impl Log {
    pub(super) fn should_roll(&self, state: &LogState, len: u64, count: u64) -> bool {
        let segment = state.active();
        if segment.sealed.get() {
            return true;
        }
        let size = segment.size.get();
        if size == 0 {
            return false;
        }
        let config = self.config.borrow();
        let too_big = size + len > config.segment_bytes;
        let too_old = segment.first_timestamp.get().is_some_and(|first| now_ms() - first >= config.segment_ms as i64);
        too_big || too_old || !index_can_hold(segment.base_offset, size, state.next_offset, len, count)
    }

    /// Seals the active segment and opens the next one.
    pub(super) async fn roll(self: &Rc<Self>) -> Result<()> {
        self.rolling.set(true);
        let result = self.roll_inner().await;
        self.rolling.set(false);
        self.roll_epoch.advance(self.roll_epoch.get() + 1);
        result
    }

    /// A roll swaps in the next segment at once and leaves the old one to a task of
    /// its own: its last writes, trim, fdatasync and index are done there, off the
    /// append path (measured: 2 to 4 ms per roll on this host, during which every
    /// append to the partition used to wait). The next segment's writes are held
    /// until that task is done, so the disk never holds a byte of a segment whose
    /// predecessor is not sealed, and offsets become durable in order.
    pub(super) async fn roll_inner(self: &Rc<Self>) -> Result<()> {
        let started = Instant::now();
        // A segment that filled while its predecessor was still being sealed waits.
        self.wait_sealed().await?;
        let base_offset = self.state.borrow().next_offset;
        let (segment_bytes, index_interval) = {
            let config = self.config.borrow();
            (config.segment_bytes, config.index_interval_bytes)
        };
        // The next segment's files always start under the standby names and get their
        // own only after the old segment is sealed: a crash in between leaves the old
        // segment last, where recovery expects a torn end.
        while self.standby_pending.get() {
            let finished = self.standby_done.get() + 1;
            let _ = self.standby_done.wait_for(finished).await;
        }
        let (standby, from_standby) = match self.take_standby(segment_bytes).await {
            Some(standby) => (standby, true),
            None => (create_standby(&self.dir, segment_bytes, self.io.disk_reserve_bytes).await?, false),
        };
        let (segment, mut appender) = assemble_segment(
            SegmentPaths::new(&self.dir, base_offset),
            base_offset,
            (standby.log, standby.offsets, standby.times),
            index_interval,
            &self.io,
        );
        let gate = Rc::new(Progress::new(0));
        appender.hold_writes(gate.clone());
        let (old, tracker, end) = {
            let mut state = self.state.borrow_mut();
            state.appender.flush();
            let old = state.active().clone();
            let tracker = state.appender.tracker().clone();
            let end = state.appender.end();
            state.appender = appender;
            state.segments.insert(base_offset, segment.clone());
            (old, tracker, end)
        };
        let done = Rc::new(Progress::new(0));
        *self.sealing.borrow_mut() =
            Some(Sealing { segment: old.clone(), tracker: tracker.clone(), done: done.clone() });
        let log = self.clone();
        glommio::spawn_local(async move {
            let result = async {
                if !old.sealed.get() {
                    log.seal(&old, &tracker, end).await?;
                }
                place_standby(&log.dir, &segment).await?;
                Ok::<(), StorageError>(())
            }
            .await;
            match result {
                Ok(()) => {
                    gate.advance(1);
                    done.advance(1);
                    let mut sealing = log.sealing.borrow_mut();
                    if sealing.as_ref().is_some_and(|sealing| Rc::ptr_eq(&sealing.done, &done)) {
                        *sealing = None;
                    }
                }
                Err(error) => {
                    tracing::error!(log = %log.name, %error, "sealing a segment failed; the log refuses writes until reopened");
                    let failure = Failure { disk_full: matches!(error, StorageError::DiskFull { .. }), reason: error.to_string() };
                    gate.fail(failure.clone());
                    done.fail(failure.clone());
                    log.durable.fail(failure);
                }
            }
        })
        .detach();
        tracing::debug!(log = %self.name, base_offset, from_standby, micros = started.elapsed().as_micros() as u64, "rolled to a new segment");
        Ok(())
    }

    /// Resolves once the segment the last roll left behind is sealed.
    pub(super) async fn wait_sealed(&self) -> Result<()> {
        let done = self.sealing.borrow().as_ref().map(|sealing| sealing.done.clone());
        match done {
            Some(done) => done.wait_for(1).await.map_err(|failure| failure_error(failure, &self.dir)),
            None => Ok(()),
        }
    }

    /// Seals `segment`, which a roll left behind: all bytes written, file trimmed to
    /// its length and fdatasynced, final index entries written and index files trimmed.
    pub(super) async fn seal(&self, segment: &Segment, tracker: &WriteTracker, end: u64) -> Result<()> {
        wait_written(tracker, end, &self.dir).await?;
        segment::truncate(&segment.file, &segment.paths.log, segment.size.get()).await?;
        segment::sync(&segment.file, &segment.paths.log).await?;
        seal_index(segment).await;
        segment.sealed.set(true);
        self.durable.advance(segment.next_offset.get());
        Ok(())
    }

    /// Once the active segment is half full, creates the next segment's files in the
    /// background (preallocating them is most of a roll's cost).
    pub(super) fn prepare_standby(self: &Rc<Self>) {
        // Not while a roll renames the last standby: the new one takes the same names.
        if self.standby_pending.get() || self.standby.borrow().is_some() || self.sealing.borrow().is_some() {
            return;
        }
        let segment_bytes = self.config.borrow().segment_bytes;
        if self.state.borrow().active().size.get() < segment_bytes / 2 {
            return;
        }
        if self.standby_failed.get().is_some_and(|at| at.elapsed() < STANDBY_RETRY) {
            return;
        }
        self.standby_pending.set(true);
        let log = self.clone();
        glommio::spawn_local(async move {
            match create_standby(&log.dir, segment_bytes, log.io.disk_reserve_bytes).await {
                Ok(standby) if !log.closed.get() => *log.standby.borrow_mut() = Some(standby),
                Ok(standby) => discard_standby(&log.dir, standby).await,
                Err(error) => {
                    log.standby_failed.set(Some(Instant::now()));
                    tracing::warn!(log = %log.name, %error, "could not prepare the next segment; the roll creates it")
                }
            }
            // Only now: a roll or close waiting for this finds the outcome in place.
            log.standby_pending.set(false);
            log.standby_done.advance(log.standby_done.get() + 1);
        })
        .detach();
    }

    /// The standby segment if it was made for `segment_bytes`; one made for another
    /// size (the topic's config changed) is removed.
    pub(super) async fn take_standby(&self, segment_bytes: u64) -> Option<Standby> {
        let standby = self.standby.borrow_mut().take()?;
        if standby.segment_bytes == segment_bytes {
            return Some(standby);
        }
        discard_standby(&self.dir, standby).await;
        None
    }
}

/// Seals a segment's index: final time entry, all entries written, files trimmed.
/// Index files are rebuildable, so failures are logged, not returned.
pub(super) async fn seal_index(segment: &Segment) {
    segment.index.borrow_mut().seal();
    flush_index(segment).await;
    let (offset_bytes, time_bytes) = segment.index.borrow().file_bytes();
    let writers = segment.index.borrow_mut().writers.take();
    if let Some(writers) = writers {
        for (appender, path, len) in [
            (&writers.offsets, &segment.paths.offset_index, offset_bytes),
            (&writers.times, &segment.paths.time_index, time_bytes),
        ] {
            if let Err(error) = segment::truncate(appender.file(), path, len).await {
                tracing::warn!(path = %path.display(), %error, "could not trim an index file; it is rebuilt at the next start");
            }
        }
    }
}

/// Writes out an active segment's index entries (no fdatasync: indexes are rebuilt
/// from the log when they are stale).
pub(super) async fn flush_index(segment: &Segment) {
    let pending = {
        let mut index = segment.index.borrow_mut();
        index.writers.as_mut().map(|writers| {
            writers.offsets.flush();
            writers.times.flush();
            [
                (writers.offsets.tracker().clone(), writers.offsets.end()),
                (writers.times.tracker().clone(), writers.times.end()),
            ]
        })
    };
    for (tracker, end) in pending.into_iter().flatten() {
        if let Err(error) = wait_written(&tracker, end, &segment.paths.log).await {
            tracing::warn!(path = %segment.paths.log.display(), %error, "could not write an index; it is rebuilt at the next start");
        }
    }
}

/// Creates the files of a new, empty active segment at `base_offset`.
pub(crate) async fn create_segment(
    dir: &Path,
    base_offset: u64,
    segment_bytes: u64,
    index_interval_bytes: u32,
    io: &IoOptions,
) -> Result<(Rc<Segment>, Appender)> {
    let paths = SegmentPaths::new(dir, base_offset);
    let files = create_segment_files(&paths, segment_bytes, io.disk_reserve_bytes).await?;
    segment::sync_dir(dir).await?;
    Ok(assemble_segment(paths, base_offset, files, index_interval_bytes, io))
}

/// Creates (or empties) a segment's three files; the log file is preallocated, unless
/// that would leave less than the reserve free on the disk (`DiskFull` then: the last
/// of the disk is never taken by a reservation).
pub(super) async fn create_segment_files(
    paths: &SegmentPaths,
    segment_bytes: u64,
    reserve_bytes: u64,
) -> Result<SegmentFiles> {
    check_space(&paths.log, segment_bytes, reserve_bytes)?;
    let file = Rc::new(segment::open_dma(&paths.log, true).await?);
    segment::truncate(&file, &paths.log, 0).await?;
    segment::preallocate(&file, &paths.log, segment_bytes).await?;
    let offsets = Rc::new(segment::open_dma(&paths.offset_index, true).await?);
    let times = Rc::new(segment::open_dma(&paths.time_index, true).await?);
    segment::truncate(&offsets, &paths.offset_index, 0).await?;
    segment::truncate(&times, &paths.time_index, 0).await?;
    Ok((file, offsets, times))
}

pub(super) type SegmentFiles = (Rc<glommio::io::DmaFile>, Rc<glommio::io::DmaFile>, Rc<glommio::io::DmaFile>);

/// An empty active segment and its appender over freshly created files.
pub(super) fn assemble_segment(
    paths: SegmentPaths,
    base_offset: u64,
    (file, offsets, times): SegmentFiles,
    index_interval_bytes: u32,
    io: &IoOptions,
) -> (Rc<Segment>, Appender) {
    let mut index = SegmentIndex::new(index_interval_bytes);
    index.writers = Some(IndexWriters::new(
        (offsets, &paths.offset_index, &[]),
        (times, &paths.time_index, &[]),
        0,
        0,
        index_sizing(io),
    ));
    let appender = Appender::new(file.clone(), &paths.log, 0, &[], log_sizing(io));
    (Rc::new(Segment::new(base_offset, paths, file, index)), appender)
}

/// Refuses to reserve `len` bytes for `path` when the disk would keep less than its
/// reserve free: `reserve_bytes`, at most a tenth of the filesystem. The space is
/// counted only when the file does not hold it already.
pub(super) fn check_space(path: &Path, len: u64, reserve_bytes: u64) -> Result<()> {
    let held = std::fs::metadata(path).map_or(0, |meta| std::os::unix::fs::MetadataExt::blocks(&meta) * 512);
    let Some(space) = path.parent().and_then(crate::space::disk_space) else { return Ok(()) };
    let reserve = reserve_bytes.min(space.total_bytes / 10);
    if space.free_bytes + held < len + reserve {
        return Err(StorageError::DiskFull { op: "reserving a segment for", path: path.to_path_buf() });
    }
    Ok(())
}

/// Creates the standby segment's files in `dir`.
pub(super) async fn create_standby(dir: &Path, segment_bytes: u64, reserve_bytes: u64) -> Result<Standby> {
    let (log, offsets, times) = create_segment_files(&SegmentPaths::standby(dir), segment_bytes, reserve_bytes).await?;
    Ok(Standby { segment_bytes, log, offsets, times })
}

/// Gives a standby segment's files the names of `segment`, which was assembled from
/// them: the log file first (a crash between the renames leaves a segment whose index
/// is rebuilt), then the indexes; then makes the names durable.
pub(super) async fn place_standby(dir: &Path, segment: &Segment) -> Result<()> {
    let index_files = segment
        .index
        .borrow()
        .writers
        .as_ref()
        .map(|writers| (writers.offsets.file().clone(), writers.times.file().clone()));
    segment
        .file
        .rename(&segment.paths.log)
        .await
        .map_err(|e| StorageError::io("renaming", &segment.paths.log, from_glommio(e)))?;
    if let Some((offsets, times)) = index_files {
        for (file, path) in [(offsets, &segment.paths.offset_index), (times, &segment.paths.time_index)] {
            file.rename(path).await.map_err(|e| StorageError::io("renaming", path, from_glommio(e)))?;
        }
    }
    segment::sync_dir(dir).await
}

/// Removes a standby segment's files, off the shard's thread (best effort: the next
/// open removes leftovers).
pub(super) async fn discard_standby(dir: &Path, standby: Standby) {
    drop(standby);
    let paths = SegmentPaths::standby(dir);
    for path in [&paths.log, &paths.offset_index, &paths.time_index] {
        if let Err(error) = glommio::io::remove(path).await {
            tracing::warn!(path = %path.display(), %error, "could not remove a standby segment file");
        }
    }
}

/// Removes whatever standby files `dir` holds.
pub(crate) fn remove_standby_files(dir: &Path) {
    let paths = SegmentPaths::standby(dir);
    for path in [&paths.log, &paths.offset_index, &paths.time_index] {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(path = %path.display(), %error, "could not remove a standby segment file"),
        }
    }
}

/// Largest offset or byte position relative to its segment that the index can hold:
/// both are stored as `u32` (`SegmentIndex`).
pub(super) const INDEX_RELATIVE_MAX: u64 = u32::MAX as u64;

/// Whether a batch of `len` bytes and `count` offsets appended at `next_offset`, at
/// byte `size` of the segment starting at `base_offset`, keeps every offset and
/// position relative to the segment within the index's range. When it would not, the
/// segment rolls first (as Kafka rolls before a relative offset leaves an int).
pub(super) fn index_can_hold(base_offset: u64, size: u64, next_offset: u64, len: u64, count: u64) -> bool {
    let last_offset = next_offset + count.max(1) - 1;
    last_offset - base_offset <= INDEX_RELATIVE_MAX && size + len <= INDEX_RELATIVE_MAX
}

pub(crate) fn log_sizing(io: &IoOptions) -> AppenderSizing {
    AppenderSizing { buffer_bytes: io.write_buffer_bytes, buffers_in_flight: io.write_behind_buffers }
}

pub(crate) fn index_sizing(io: &IoOptions) -> AppenderSizing {
    AppenderSizing { buffer_bytes: io.index_buffer_bytes, buffers_in_flight: 2 }
}

#[cfg(test)]
mod index_range_tests {
    use super::{index_can_hold, INDEX_RELATIVE_MAX};

    #[test]
    fn a_segment_rolls_before_an_offset_or_position_leaves_the_index_range() {
        let base = 1_000;
        // The last offset of the batch lands exactly on the largest relative offset.
        let next = base + INDEX_RELATIVE_MAX - 9;
        assert!(index_can_hold(base, 4096, next, 100, 10));
        // One more record and it would not: the segment rolls first.
        assert!(!index_can_hold(base, 4096, next, 100, 11));
        // Three batches that each claim 2^31 records (the overflow the u32 cast hid).
        let claim = 1u64 << 31;
        assert!(index_can_hold(base, 0, base, 100, claim));
        assert!(index_can_hold(base, 100, base + claim, 100, claim));
        assert!(!index_can_hold(base, 200, base + 2 * claim, 100, claim));
        // Positions: a batch may end at the last byte the index can point into.
        assert!(index_can_hold(base, INDEX_RELATIVE_MAX - 100, base + 1, 100, 1));
        assert!(!index_can_hold(base, INDEX_RELATIVE_MAX - 100, base + 1, 101, 1));
    }
}
