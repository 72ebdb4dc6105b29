//! `Log`: one partition's log, owned by one shard.
//!
//! Appends are validated, stamped with their base offset, copied into the active
//! segment's direct-I/O buffer and inserted into the shard's batch cache, all without
//! an await in between, so offsets are assigned in arrival order. What the append then
//! waits for is the topic's durability policy:
//!
//! - `always`: an fdatasync that covers it. One sync task per log runs fdatasync in a
//!   loop while appends wait; every append that arrives during one fdatasync is covered
//!   by the next (group commit), so 64 concurrent appenders share one fdatasync instead
//!   of queueing 64.
//! - `interval`: nothing; a timer runs one fdatasync `fsync_interval_ms` after the first
//!   unsynced append.
//! - `never`: nothing; a timer writes buffered bytes to the device `write_behind_ms`
//!   after append, without fdatasync.
//!
//! Reads serve whole stored batches as they are: from the cache when the offset is
//! recent enough, otherwise with one direct read into an aligned buffer.
//!
//! Visibility: a batch is readable once appended (`never`, `interval`), or once durable
//! (`always`), so a consumer never sees a record that a crash could take back while its
//! producer was still waiting.

use super::appender::{failure_error, wait_written, Appender, AppenderSizing, WriteTracker};
use super::cache::{BatchCache, CacheKey};
use super::config::{FsyncPolicy, IoOptions, TimestampSource, TopicConfig};
use super::error::{from_glommio, Result, StorageError};
use super::index::{IndexWriters, SegmentIndex};
use super::progress::{Failure, Progress};
use super::segment::{self, Segment, SegmentPaths};
use bytes::{Bytes, BytesMut};
use glommio::io::ReadResult;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand_protocol::batch::{self, BatchError, BatchHeader, BatchLimits};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
    /// The broker's timestamp, when the topic uses log-append time.
    pub log_append_time_ms: Option<i64>,
}

/// The largest direct read one `read` call makes (a larger batch is still read whole).
pub const COLD_READ_BYTES_MAX: usize = 32 << 20;
/// Reads ahead are this many times the size of the read that started them.
const READ_AHEAD_FACTOR: usize = 4;

/// A piece of a read: bytes of one or more whole batches.
#[derive(Clone)]
pub enum Chunk {
    /// From the batch cache: the bytes the producer sent, shared.
    Cached(Bytes),
    /// From a direct read: a slice of the aligned read buffer.
    Disk(ReadResult),
}

impl std::ops::Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Cached(bytes) => bytes,
            Chunk::Disk(read) => read,
        }
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if matches!(self, Chunk::Cached(_)) { "cached" } else { "disk" };
        write!(f, "Chunk({kind}, {} bytes)", self.len())
    }
}

/// The answer to a read: whole batches, in offset order.
#[derive(Debug, Clone, Default)]
pub struct Batches {
    pub chunks: Vec<Chunk>,
    pub bytes: usize,
    /// The offset after the last batch returned (the requested offset if none).
    pub next_offset: u64,
    /// The offset after the last visible batch when the read ran.
    pub high_watermark: u64,
    /// The earliest offset still stored.
    pub start_offset: u64,
}

/// Offsets of a log, as ListOffsets reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    /// Earliest offset still stored.
    pub start: u64,
    /// Offset the next append gets (log end offset).
    pub end: u64,
    /// Offset after the last batch readers may see.
    pub high_watermark: u64,
    /// Offset after the last batch made durable by fdatasync.
    pub durable: u64,
}

/// What retention deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

pub(crate) struct LogState {
    /// Every segment by base offset; the last one is active.
    pub segments: BTreeMap<u64, Rc<Segment>>,
    pub appender: Appender,
    pub next_offset: u64,
    pub start_offset: u64,
    pub size_bytes: u64,
}

impl LogState {
    pub fn active(&self) -> &Rc<Segment> {
        self.segments.values().next_back().expect("a log always has an active segment")
    }
}

/// One partition's log. Use it through `Rc<Log>` on the shard that opened it.
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
    pub(crate) config: RefCell<TopicConfig>,
    pub(crate) io: IoOptions,
    pub(crate) cache: Rc<BatchCache>,
    pub(crate) cache_key: CacheKey,
    pub(crate) state: RefCell<LogState>,
    /// Offsets below this are on stable storage.
    pub(crate) durable: Progress,
    /// Offsets below this are appended (the log end offset), for long-poll readers.
    appended: Progress,
    sync_target: Cell<u64>,
    sync_running: Cell<bool>,
    timer_armed: Cell<bool>,
    rolling: Cell<bool>,
    /// Counts finished rolls, so appends that found a roll under way can wait for it.
    roll_epoch: Progress,
    closed: Cell<bool>,
    /// What a reader continuing after the last cold read will want next, in order:
    /// the unread rest of that read (whole batches), then the disk read after it.
    read_ahead: RefCell<VecDeque<ReadAhead>>,
    /// fdatasyncs of segment files issued by this log, for metrics.
    fdatasyncs: Cell<u64>,
    /// The segment the last roll left behind, while it is sealed in the background.
    sealing: RefCell<Option<Sealing>>,
    /// The next segment's files, made ready before the roll that needs them.
    standby: RefCell<Option<Standby>>,
    standby_pending: Cell<bool>,
    /// Counts finished standby creations, so a roll can wait for one under way.
    standby_done: Progress,
    /// When the last standby creation failed (a full disk, say): retried after
    /// `STANDBY_RETRY`, not at every append.
    standby_failed: Cell<Option<Instant>>,
    /// The log's end when the topic last switched to `fsync = "always"`: offsets
    /// visible before the switch stay visible while its fdatasync catches up, so the
    /// high watermark never moves back.
    visible_floor: Cell<u64>,
}

const STANDBY_RETRY: Duration = Duration::from_secs(5);

/// A segment a roll left behind, being sealed in the background while appends go on
/// into the next one.
struct Sealing {
    segment: Rc<Segment>,
    tracker: Rc<WriteTracker>,
    /// Reaches 1 once the segment is sealed and the next one's files are in place;
    /// fails if either fails.
    done: Rc<Progress>,
}

/// The files of the next segment, created, preallocated and trimmed to nothing ahead
/// of the roll, under names recovery ignores (`standby.*`). A roll renames them.
pub(crate) struct Standby {
    segment_bytes: u64,
    log: Rc<glommio::io::DmaFile>,
    offsets: Rc<glommio::io::DmaFile>,
    times: Rc<glommio::io::DmaFile>,
}

/// Bytes of `segment` from `position`, where the batch holding `offset` starts, held
/// or being read for a reader that continues there.
struct ReadAhead {
    segment: Rc<Segment>,
    position: u64,
    offset: u64,
    data: AheadData,
    /// Its bytes in the shard's read-ahead budget, given back when it is dropped.
    _claim: super::cache::ReadAheadClaim,
}

enum AheadData {
    /// The rest of an earlier read: whole batches, already in memory.
    Held(ReadResult),
    /// A direct read under way.
    Reading(glommio::task::JoinHandle<Result<ReadResult>>),
}

impl Log {
    pub(crate) fn from_parts(
        dir: PathBuf,
        name: String,
        config: TopicConfig,
        io: IoOptions,
        cache: Rc<BatchCache>,
        state: LogState,
    ) -> Log {
        let durable = Progress::new(state.next_offset);
        let appended = Progress::new(state.next_offset);
        Log {
            dir,
            name,
            config: RefCell::new(config),
            io,
            cache_key: cache.register(),
            cache,
            state: RefCell::new(state),
            durable,
            appended,
            sync_target: Cell::new(0),
            sync_running: Cell::new(false),
            timer_armed: Cell::new(false),
            rolling: Cell::new(false),
            roll_epoch: Progress::new(0),
            closed: Cell::new(false),
            read_ahead: RefCell::new(VecDeque::new()),
            fdatasyncs: Cell::new(0),
            sealing: RefCell::new(None),
            standby: RefCell::new(None),
            standby_pending: Cell::new(false),
            standby_done: Progress::new(0),
            standby_failed: Cell::new(None),
            visible_floor: Cell::new(0),
        }
    }

    /// The partition's name, as used in logs and errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The topic policy in force.
    pub fn config(&self) -> TopicConfig {
        self.config.borrow().clone()
    }

    /// Replaces the topic policy: durability and segment size apply from the next
    /// append and roll. Tighter retention runs at once (it frees disk), looser at the
    /// next check. A switch to `fsync = "always"` starts an fdatasync of what the
    /// earlier policy left unsynced, and what was visible stays visible meanwhile.
    pub fn set_config(self: &Rc<Self>, config: TopicConfig) {
        let was = std::mem::replace(&mut *self.config.borrow_mut(), config);
        let now = self.config();
        let tighter = |old: Option<u64>, new: Option<u64>| new.is_some_and(|n| old.is_none_or(|o| n < o));
        if !self.closed.get()
            && (tighter(was.retention_ms, now.retention_ms) || tighter(was.retention_bytes, now.retention_bytes))
        {
            let log = self.clone();
            glommio::spawn_local(async move {
                if let Err(error) = log.enforce_retention(now_ms()).await {
                    tracing::warn!(log = %log.name, %error, "retention failed; it runs again at the next check");
                }
            })
            .detach();
        }
        if was.fsync != FsyncPolicy::Always && now.fsync == FsyncPolicy::Always {
            let end = self.state.borrow().next_offset;
            self.visible_floor.set(end);
            if self.durable.get() < end && !self.closed.get() {
                self.request_sync(end);
            }
        }
    }

    /// fdatasyncs of segment files this log has issued since it was opened.
    pub fn fdatasync_count(&self) -> u64 {
        self.fdatasyncs.get()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Bytes stored, over every segment.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().size_bytes
    }

    /// Earliest, latest, visible and durable offsets.
    pub fn offsets(&self) -> Offsets {
        let state = self.state.borrow();
        Offsets {
            start: state.start_offset,
            end: state.next_offset,
            high_watermark: self.visible_end(state.next_offset),
            durable: self.durable.get().min(state.next_offset),
        }
    }

    fn visible_end(&self, next_offset: u64) -> u64 {
        match self.config.borrow().fsync {
            FsyncPolicy::Always => self.durable.get().max(self.visible_floor.get()).min(next_offset),
            FsyncPolicy::Interval | FsyncPolicy::Never => next_offset,
        }
    }

    /// Appends one batch (exactly one, as Kafka RecordBatch v2 bytes) and resolves
    /// once the topic's durability policy is met. The log is unchanged if the batch
    /// is invalid.
    pub async fn append(self: &Rc<Self>, batch: BytesMut) -> Result<Appended> {
        let appended = self.append_leader(batch).await?;
        self.wait_policy(&appended).await?;
        Ok(appended)
    }

    /// Appends one batch and resolves as soon as it has its offsets (acks `leader`):
    /// the bytes are in the log's write buffer, on their way to the device under the
    /// topic's policy, but not yet known durable. Appends resolve in call order, so a
    /// caller that awaits each before the next keeps its batches in order.
    /// `wait_policy` then waits for the policy.
    pub async fn append_leader(self: &Rc<Self>, mut batch: BytesMut) -> Result<Appended> {
        let (limits, source, policy, interval_ms) = {
            let config = self.config.borrow();
            let limits = BatchLimits::new(config.batch_bytes_max as usize, self.io.decompression_ratio_max);
            (limits, config.timestamp_source, config.fsync, config.fsync_interval_ms)
        };
        let header = validate_appended(&batch, limits)?;
        // Let the reactor submit queued writes and reap completions between appends that
        // would otherwise never wait (`never`, `interval`), once per task quota.
        crate::runtime::yield_after_quota().await;
        self.ready_for(batch.len() as u64, header.last_offset_delta as u64 + 1).await?;
        let appended = self.append_ready(&mut batch, &header, source);
        self.prepare_standby();
        match policy {
            FsyncPolicy::Always => self.request_sync(appended.last_offset + 1),
            FsyncPolicy::Interval => self.arm_timer(interval_ms, true),
            FsyncPolicy::Never => self.arm_timer(self.io.write_behind_ms, false),
        }
        Ok(appended)
    }

    /// Resolves once the topic's durability policy is met for `appended`: after the
    /// fdatasync that covers it for `always`, at once for `interval` and `never`.
    pub async fn wait_policy(self: &Rc<Self>, appended: &Appended) -> Result<()> {
        match self.config.borrow().fsync {
            FsyncPolicy::Always => {}
            FsyncPolicy::Interval | FsyncPolicy::Never => return Ok(()),
        }
        self.wait_durable(appended.last_offset + 1).await
    }

    /// Resolves once a reader at `offset` has something to read (the high watermark
    /// is past it), or the log has failed or closed. Long-poll fetches wait here.
    pub async fn wait_visible(&self, offset: u64) {
        let progress = match self.config.borrow().fsync {
            FsyncPolicy::Always => &self.durable,
            FsyncPolicy::Interval | FsyncPolicy::Never => &self.appended,
        };
        if self.closed.get() {
            return;
        }
        let _ = progress.wait_for(offset + 1).await;
    }

    /// The synchronous part of an append: offset assignment, copy, index, cache.
    fn append_ready(&self, batch: &mut BytesMut, header: &BatchHeader, source: TimestampSource) -> Appended {
        let mut state = self.state.borrow_mut();
        let base_offset = state.next_offset;
        let count = header.last_offset_delta as u64 + 1;
        batch::stamp_base_offset(batch, base_offset as i64);
        batch::stamp_leader_epoch(batch, super::LEADER_EPOCH);
        let mut max_timestamp = header.max_timestamp;
        let mut log_append_time_ms = None;
        if source == TimestampSource::LogAppendTime {
            let now = now_ms();
            batch::stamp_log_append_time(batch, now);
            max_timestamp = now;
            log_append_time_ms = Some(now);
        }
        let bytes = std::mem::take(batch).freeze();
        let len = bytes.len() as u64;
        let segment = state.active().clone();
        debug_assert!(!segment.sealed.get());
        let position = segment.size.get();
        state.appender.append(&bytes);
        segment.size.set(position + len);
        segment.next_offset.set(base_offset + count);
        if segment.first_timestamp.get().is_none() {
            segment.first_timestamp.set(Some(now_ms()));
        }
        let relative = (base_offset - segment.base_offset) as u32;
        segment.index.borrow_mut().on_append(relative, position as u32, len as u32, max_timestamp);
        state.next_offset = base_offset + count;
        state.size_bytes += len;
        self.appended.advance(base_offset + count);
        self.cache.insert(self.cache_key, base_offset, base_offset + count, bytes);
        Appended { base_offset, last_offset: base_offset + count - 1, log_append_time_ms }
    }

    /// Waits until an append of `len` bytes may proceed: no roll under way, the active
    /// segment has room (for `len` bytes and `count` offsets), and the write-behind
    /// queue is below its bound.
    async fn ready_for(self: &Rc<Self>, len: u64, count: u64) -> Result<()> {
        enum Next {
            Ready,
            Roll,
            WaitRoll(u64),
            WaitWrites(Rc<WriteTracker>, u64),
        }
        loop {
            if self.closed.get() {
                return Err(StorageError::Closed { dir: self.dir.clone() });
            }
            let next = {
                let state = self.state.borrow();
                // A failed write or fdatasync leaves the log's state on disk unknown:
                // refuse appends until the log is reopened and recovered.
                if let Some(failure) = state.appender.failure().or_else(|| self.durable.failure()) {
                    return Err(failure_error(failure, &self.dir));
                }
                if self.rolling.get() {
                    Next::WaitRoll(self.roll_epoch.get() + 1)
                } else if self.should_roll(&state, len, count) {
                    Next::Roll
                } else if !state.appender.has_room() {
                    let tracker = state.appender.tracker().clone();
                    let oldest = tracker.oldest_end().unwrap_or(0);
                    Next::WaitWrites(tracker, oldest)
                } else {
                    Next::Ready
                }
            };
            match next {
                Next::Ready => return Ok(()),
                Next::Roll => self.roll().await?,
                Next::WaitRoll(epoch) => {
                    let _ = self.roll_epoch.wait_for(epoch).await;
                }
                Next::WaitWrites(tracker, end) => wait_written(&tracker, end, &self.dir).await?,
            }
        }
    }

    fn should_roll(&self, state: &LogState, len: u64, count: u64) -> bool {
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
    async fn roll(self: &Rc<Self>) -> Result<()> {
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
    async fn roll_inner(self: &Rc<Self>) -> Result<()> {
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
    async fn wait_sealed(&self) -> Result<()> {
        let done = self.sealing.borrow().as_ref().map(|sealing| sealing.done.clone());
        match done {
            Some(done) => done.wait_for(1).await.map_err(|failure| failure_error(failure, &self.dir)),
            None => Ok(()),
        }
    }

    /// Seals `segment`, which a roll left behind: all bytes written, file trimmed to
    /// its length and fdatasynced, final index entries written and index files trimmed.
    async fn seal(&self, segment: &Segment, tracker: &WriteTracker, end: u64) -> Result<()> {
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
    fn prepare_standby(self: &Rc<Self>) {
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
    async fn take_standby(&self, segment_bytes: u64) -> Option<Standby> {
        let standby = self.standby.borrow_mut().take()?;
        if standby.segment_bytes == segment_bytes {
            return Some(standby);
        }
        discard_standby(&self.dir, standby).await;
        None
    }

    /// Resolves once every offset below `next_offset` is durable.
    async fn wait_durable(self: &Rc<Self>, next_offset: u64) -> Result<()> {
        if self.durable.get() >= next_offset {
            return Ok(());
        }
        self.request_sync(next_offset);
        self.durable.wait_for(next_offset).await.map_err(|failure| failure_error(failure, &self.dir))
    }

    /// Makes sure a sync task runs until `target` is durable. The task is spawned,
    /// not run by the caller, so a caller that goes away cannot strand the others.
    fn request_sync(self: &Rc<Self>, target: u64) {
        self.sync_target.set(self.sync_target.get().max(target));
        if self.sync_running.replace(true) {
            return;
        }
        let log = self.clone();
        glommio::spawn_local(async move {
            while log.durable.get() < log.sync_target.get() && log.durable.failure().is_none() {
                // Let the appenders the last sync released append first, so this sync
                // covers them too instead of only those that arrived while it ran.
                glommio::executor().yield_now().await;
                if let Err(error) = log.sync_once().await {
                    tracing::error!(log = %log.name, %error, "fdatasync failed; the log refuses writes until reopened");
                    let disk_full = matches!(error, StorageError::DiskFull { .. });
                    log.durable.fail(super::progress::Failure { disk_full, reason: error.to_string() });
                }
            }
            log.sync_running.set(false);
        })
        .detach();
    }

    /// One group commit: write out everything appended so far, fdatasync, publish.
    async fn sync_once(&self) -> Result<()> {
        let (target, file, path, tracker, end) = {
            let mut state = self.state.borrow_mut();
            state.appender.flush();
            let active = state.active();
            (
                state.next_offset,
                active.file.clone(),
                active.paths.log.clone(),
                state.appender.tracker().clone(),
                state.appender.end(),
            )
        };
        wait_written(&tracker, end, &self.dir).await?;
        segment::sync(&file, &path).await?;
        self.fdatasyncs.set(self.fdatasyncs.get() + 1);
        self.durable.advance(target);
        Ok(())
    }

    /// Arms the log's timer: after `delay_ms`, fdatasync (`interval`) or write the
    /// buffered bytes out (`never`). One timer per log at most.
    fn arm_timer(self: &Rc<Self>, delay_ms: u64, fsync: bool) {
        if self.timer_armed.replace(true) {
            return;
        }
        let log = self.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(delay_ms)).await;
            log.timer_armed.set(false);
            if log.closed.get() {
                return;
            }
            if fsync {
                let target = log.state.borrow().next_offset;
                log.request_sync(target);
            } else {
                log.state.borrow_mut().appender.flush();
            }
        })
        .detach();
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` but always at
    /// least one batch, and never past the high watermark or the end of a segment.
    pub async fn read(self: &Rc<Self>, offset: u64, max_bytes: usize) -> Result<Batches> {
        let (start, end) = {
            let state = self.state.borrow();
            (state.start_offset, state.next_offset)
        };
        let high_watermark = self.visible_end(end);
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        }
        let mut batches = Batches { next_offset: offset, high_watermark, start_offset: start, ..Batches::default() };
        if offset >= high_watermark {
            return Ok(batches);
        }
        if let Some(read) = self.cache.read(self.cache_key, offset, max_bytes, high_watermark) {
            batches.bytes = read.bytes;
            batches.next_offset = read.next_offset;
            batches.chunks = read.batches.into_iter().map(Chunk::Cached).collect();
            return Ok(batches);
        }
        let segment = {
            let state = self.state.borrow();
            state.segments.range(..=offset).next_back().map(|(_, segment)| segment.clone())
        };
        let Some(segment) = segment else {
            return Err(StorageError::OffsetOutOfRange { offset, start, end });
        };
        self.read_segment(&segment, offset, max_bytes, high_watermark, &mut batches).await?;
        Ok(batches)
    }

    async fn read_segment(
        &self,
        segment: &Rc<Segment>,
        offset: u64,
        max_bytes: usize,
        high_watermark: u64,
        out: &mut Batches,
    ) -> Result<()> {
        let segment_end = segment.size.get();
        self.ensure_written(segment, segment_end).await?;
        // The reader's limit sizes a read that finds nothing ahead, between
        // `read_bytes` and COLD_READ_BYTES_MAX; reads ahead are larger, since large
        // reads move more (on this virtio disk one 32 MiB read moves 1.33 GB/s where
        // back-to-back 8 MiB reads move 0.9 and 2 MiB reads 0.66), and the readers that
        // follow take their share from memory.
        let want = max_bytes.min(COLD_READ_BYTES_MAX).max(self.io.read_bytes);
        let ahead_bytes = (want * READ_AHEAD_FACTOR).clamp(self.io.read_bytes, COLD_READ_BYTES_MAX);
        let (mut start, mut buf) = match self.take_read_ahead(segment, offset).await {
            Some(ahead) => ahead,
            None => {
                let relative = (offset - segment.base_offset) as u32;
                let start = u64::from(segment.index.borrow().position_for_offset(relative));
                let len = aligned_read_len(start, segment_end, want);
                (start, segment.read_at(start, len).await?)
            }
        };
        let (mut from, mut to) = (None, 0usize);
        let mut at = 0usize;
        let mut expected_base = None;
        while at < buf.len() {
            let header = match BatchHeader::parse(&buf[at..]) {
                Ok(header) => header,
                Err(BatchError::Truncated { .. }) if at > 0 => break,
                Err(error) => return Err(self.corrupt(segment, start + at as u64, &error.to_string())),
            };
            if expected_base.is_some_and(|base| base != header.base_offset as u64) {
                return Err(self.corrupt(segment, start + at as u64, "batch offsets are not contiguous"));
            }
            expected_base = Some(header.next_offset() as u64);
            let total = header.total_bytes();
            let batch_next = header.next_offset() as u64;
            if batch_next <= offset {
                at += total;
                continue;
            }
            if batch_next > high_watermark {
                break;
            }
            if from.is_some_and(|from| to - from + total > max_bytes) {
                break;
            }
            if at + total > buf.len() {
                if from.is_some() {
                    break;
                }
                // The first wanted batch is larger than this read: read it whole.
                start += at as u64;
                buf = segment.read_at(start, total).await?;
                if buf.len() < total {
                    return Err(self.corrupt(segment, start, "segment ends inside a batch"));
                }
                from = Some(0);
                to = total;
                out.next_offset = batch_next;
                break;
            }
            if cfg!(debug_assertions) {
                if let Err(error) = batch::validate(&buf[at..at + total], BatchLimits::stored()) {
                    return Err(self.corrupt(segment, start + at as u64, &error.to_string()));
                }
            }
            from.get_or_insert(at);
            to = at + total;
            out.next_offset = batch_next;
            at += total;
        }
        if let Some(from) = from {
            let slice = ReadResult::slice(&buf, from, to - from).expect("range inside the read");
            out.bytes = to - from;
            out.chunks.push(Chunk::Disk(slice));
            self.read_on(segment, start, &buf, to, segment_end, ahead_bytes, out.next_offset);
        }
        Ok(())
    }

    /// After a cold read that used `buf` (read at `start`) up to `to`: holds the whole
    /// batches left in it for the next reader, and makes sure the disk read after them
    /// is under way, so that a consumer reading on finds its next chunk in memory while
    /// the disk keeps working. Only bytes already on the device (below `written_end`)
    /// are read.
    #[allow(clippy::too_many_arguments)]
    fn read_on(
        &self,
        segment: &Rc<Segment>,
        start: u64,
        buf: &ReadResult,
        to: usize,
        written_end: u64,
        len: usize,
        offset: u64,
    ) {
        let (mut end, mut end_offset) = (to, offset);
        while let Ok(header) = BatchHeader::parse(&buf[end..]) {
            if end + header.total_bytes() > buf.len() {
                break;
            }
            end += header.total_bytes();
            end_offset = header.next_offset() as u64;
        }
        let mut queue = self.read_ahead.borrow_mut();
        if end > to {
            // A held slice keeps its whole read buffer alive: that is what it costs.
            // Without it held, a read after it would only be dropped unused.
            let Some(claim) = self.cache.claim_read_ahead(buf.len()) else { return };
            let held = ReadResult::slice(buf, to, end - to).expect("range inside the read");
            let ahead = ReadAhead {
                segment: segment.clone(),
                position: start + to as u64,
                offset,
                data: AheadData::Held(held),
                _claim: claim,
            };
            queue.push_front(ahead);
        }
        let reading = queue.iter().any(|ahead| matches!(ahead.data, AheadData::Reading(_)));
        let position = start + end as u64;
        if reading || position >= written_end {
            return;
        }
        let len = aligned_read_len(position, written_end, len);
        let Some(claim) = self.cache.claim_read_ahead(len) else { return };
        let reader = segment.clone();
        let task = glommio::spawn_local(async move { reader.read_at(position, len).await }).detach();
        let data = AheadData::Reading(task);
        queue.push_back(ReadAhead { segment: segment.clone(), position, offset: end_offset, data, _claim: claim });
    }

    /// The bytes held or read ahead for a read of `offset` in `segment`, if any. A
    /// read anywhere else drops what was ahead.
    async fn take_read_ahead(&self, segment: &Rc<Segment>, offset: u64) -> Option<(u64, ReadResult)> {
        let ahead = {
            let mut queue = self.read_ahead.borrow_mut();
            let matches = queue.front().is_some_and(|a| Rc::ptr_eq(&a.segment, segment) && a.offset == offset);
            if !matches {
                queue.clear();
                return None;
            }
            queue.pop_front()?
        };
        let read = match ahead.data {
            AheadData::Held(read) => read,
            AheadData::Reading(task) => task.await?.ok()?,
        };
        Some((ahead.position, read))
    }

    fn corrupt(&self, segment: &Segment, position: u64, reason: &str) -> StorageError {
        tracing::error!(log = %self.name, path = %segment.paths.log.display(), position, reason, "corrupt batch on read");
        StorageError::Corrupt { path: segment.paths.log.clone(), reason: format!("at byte {position}: {reason}") }
    }

    /// Makes sure the bytes of `segment` below `end` are on the device, writing out
    /// the active segment's buffer if a read needs it (a read that missed the cache
    /// near the tail; rare).
    async fn ensure_written(&self, segment: &Segment, end: u64) -> Result<()> {
        if segment.sealed.get() {
            return Ok(());
        }
        let sealing = self
            .sealing
            .borrow()
            .as_ref()
            .filter(|s| std::ptr::eq(Rc::as_ptr(&s.segment), segment))
            .map(|s| s.tracker.clone());
        if let Some(tracker) = sealing {
            return wait_written(&tracker, end, &self.dir).await;
        }
        let tracker = {
            let mut state = self.state.borrow_mut();
            if !Rc::ptr_eq(state.appender.file(), &segment.file) {
                return Ok(());
            }
            if state.appender.tracker().written.get() < end {
                state.appender.flush();
            }
            state.appender.tracker().clone()
        };
        wait_written(&tracker, end, &self.dir).await
    }

    /// The first batch whose max timestamp is at least `timestamp`: its base offset
    /// and max timestamp. `None` if every visible batch is older.
    pub async fn offset_for_timestamp(self: &Rc<Self>, timestamp: i64) -> Result<Option<(u64, i64)>> {
        let segments: Vec<Rc<Segment>> = self.state.borrow().segments.values().cloned().collect();
        let high_watermark = self.offsets().high_watermark;
        for segment in segments {
            if segment.max_timestamp() < timestamp {
                continue;
            }
            let end = segment.size.get();
            self.ensure_written(&segment, end).await?;
            let start = u64::from(segment.index.borrow().position_for_timestamp(timestamp));
            let mut found = None;
            segment
                .scan(start, end, self.io.read_bytes, false, |_, header| {
                    if header.max_timestamp >= timestamp {
                        found = Some((header.base_offset as u64, header.max_timestamp));
                        return false;
                    }
                    true
                })
                .await?;
            if let Some((offset, max_timestamp)) = found {
                return Ok((offset < high_watermark).then_some((offset, max_timestamp)));
            }
        }
        Ok(None)
    }

    /// Deletes the oldest sealed segments that retention no longer keeps: by age (the
    /// newest timestamp in the segment is older than `retention_ms`) and by size (the
    /// log stays at most `retention_bytes` without it). The active segment is never
    /// deleted. Appends go on meanwhile: the segments leave the log at once and their
    /// files are unlinked afterwards.
    pub async fn enforce_retention(self: &Rc<Self>, now_ms: i64) -> Result<Retained> {
        let (retention_ms, retention_bytes) = {
            let config = self.config.borrow();
            (config.retention_ms, config.retention_bytes)
        };
        self.delete_oldest_while(|oldest, size_bytes, _| {
            let by_age = retention_ms.is_some_and(|ms| oldest.max_timestamp() < now_ms.saturating_sub(ms as i64));
            let by_size = retention_bytes.is_some_and(|bytes| size_bytes - oldest.size.get() >= bytes);
            by_age || by_size
        })
        .await
    }

    /// Deletes the sealed segments that hold only offsets below `offset` (a log
    /// compacted by rewriting its live records at its end, as `__consumer_offsets`).
    pub async fn delete_segments_before(self: &Rc<Self>, offset: u64) -> Result<Retained> {
        self.delete_oldest_while(|_, _, next_base| next_base <= offset).await
    }

    /// Deletes sealed segments from the oldest while `delete(oldest, log bytes, the
    /// next segment's base offset)` says so; the active segment always stays.
    async fn delete_oldest_while(self: &Rc<Self>, delete: impl Fn(&Rc<Segment>, u64, u64) -> bool) -> Result<Retained> {
        // The segment the last roll left behind counts once it is sealed.
        let _ = self.wait_sealed().await;
        if self.closed.get() {
            // A closed log's files belong to whoever closed it (a deletion, say).
            return Ok(Retained::default());
        }
        let mut victims = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            while state.segments.len() > 1 {
                let mut oldest_two = state.segments.values();
                let oldest = oldest_two.next().expect("more than one segment").clone();
                let next_base = oldest_two.next().expect("more than one segment").base_offset;
                if !oldest.sealed.get() || !delete(&oldest, state.size_bytes, next_base) {
                    break;
                }
                state.segments.remove(&oldest.base_offset);
                state.size_bytes -= oldest.size.get();
                state.start_offset = *state.segments.keys().next().expect("the active segment remains");
                victims.push(oldest);
            }
        }
        let mut retained = Retained::default();
        for victim in victims {
            retained.segments_deleted += 1;
            retained.bytes_deleted += victim.size.get();
            tracing::info!(log = %self.name, base_offset = victim.base_offset, bytes = victim.size.get(), "deleted a segment");
            for path in [&victim.paths.log, &victim.paths.offset_index, &victim.paths.time_index] {
                if let Err(error) = glommio::io::remove(path).await {
                    tracing::warn!(path = %path.display(), %error, "could not remove a deleted segment's file");
                }
            }
        }
        Ok(retained)
    }

    /// Runs retention every `check_interval` in a task of its own until the log is
    /// closed (Kafka's `log.retention.check.interval.ms`). Deleting segments never
    /// blocks appends: they leave the log at once and their files go afterwards.
    pub fn start_retention(self: &Rc<Self>, check_interval: Duration) {
        let log = Rc::downgrade(self);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(check_interval).await;
                let Some(log) = log.upgrade() else { return };
                if log.closed.get() {
                    return;
                }
                if let Err(error) = log.enforce_retention(now_ms()).await {
                    tracing::warn!(log = %log.name, %error, "retention failed; it runs again at the next check");
                }
            }
        })
        .detach();
    }

    /// Writes everything out, fdatasyncs, writes the active segment's index and stops
    /// accepting appends. Reads of data already returned stay valid.
    pub async fn close(self: &Rc<Self>) -> Result<()> {
        if self.closed.replace(true) {
            return Ok(());
        }
        // Wake long-poll readers: nothing more will be appended.
        self.appended.fail(super::progress::Failure { disk_full: false, reason: "log closed".into() });
        while self.rolling.get() {
            let epoch = self.roll_epoch.get() + 1;
            let _ = self.roll_epoch.wait_for(epoch).await;
        }
        self.wait_sealed().await?;
        // A standby being created is waited for, so its files go with this log.
        while self.standby_pending.get() {
            let finished = self.standby_done.get() + 1;
            let _ = self.standby_done.wait_for(finished).await;
        }
        let standby = self.standby.borrow_mut().take();
        if let Some(standby) = standby {
            discard_standby(&self.dir, standby).await;
        }
        let (segment, tracker, end, next_offset) = {
            let mut state = self.state.borrow_mut();
            state.appender.flush();
            (state.active().clone(), state.appender.tracker().clone(), state.appender.end(), state.next_offset)
        };
        wait_written(&tracker, end, &self.dir).await?;
        segment::sync(&segment.file, &segment.paths.log).await?;
        self.durable.advance(next_offset);
        flush_index(&segment).await;
        self.cache.remove(self.cache_key);
        Ok(())
    }
}

/// Bytes to read from `start` so that the aligned request the device sees is exactly
/// `want` bytes (a request of `want` plus one block can be split in two), and never
/// past `end`.
fn aligned_read_len(start: u64, end: u64, want: usize) -> usize {
    let skew = start % super::BLOCK_BYTES as u64;
    (end - start).min(want as u64 - skew) as usize
}

/// Seals a segment's index: final time entry, all entries written, files trimmed.
/// Index files are rebuildable, so failures are logged, not returned.
async fn seal_index(segment: &Segment) {
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
async fn flush_index(segment: &Segment) {
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
async fn create_segment_files(paths: &SegmentPaths, segment_bytes: u64, reserve_bytes: u64) -> Result<SegmentFiles> {
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

type SegmentFiles = (Rc<glommio::io::DmaFile>, Rc<glommio::io::DmaFile>, Rc<glommio::io::DmaFile>);

/// An empty active segment and its appender over freshly created files.
fn assemble_segment(
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
fn check_space(path: &Path, len: u64, reserve_bytes: u64) -> Result<()> {
    let held = std::fs::metadata(path).map_or(0, |meta| std::os::unix::fs::MetadataExt::blocks(&meta) * 512);
    let Some(space) = path.parent().and_then(crate::host::disk_space) else { return Ok(()) };
    let reserve = reserve_bytes.min(space.total_bytes / 10);
    if space.free_bytes + held < len + reserve {
        return Err(StorageError::DiskFull { op: "reserving a segment for", path: path.to_path_buf() });
    }
    Ok(())
}

/// Creates the standby segment's files in `dir`.
async fn create_standby(dir: &Path, segment_bytes: u64, reserve_bytes: u64) -> Result<Standby> {
    let (log, offsets, times) = create_segment_files(&SegmentPaths::standby(dir), segment_bytes, reserve_bytes).await?;
    Ok(Standby { segment_bytes, log, offsets, times })
}

/// Gives a standby segment's files the names of `segment`, which was assembled from
/// them: the log file first (a crash between the renames leaves a segment whose index
/// is rebuilt), then the indexes; then makes the names durable.
async fn place_standby(dir: &Path, segment: &Segment) -> Result<()> {
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
async fn discard_standby(dir: &Path, standby: Standby) {
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
const INDEX_RELATIVE_MAX: u64 = u32::MAX as u64;

/// Whether a batch of `len` bytes and `count` offsets appended at `next_offset`, at
/// byte `size` of the segment starting at `base_offset`, keeps every offset and
/// position relative to the segment within the index's range. When it would not, the
/// segment rolls first (as Kafka rolls before a relative offset leaves an int).
fn index_can_hold(base_offset: u64, size: u64, next_offset: u64, len: u64, count: u64) -> bool {
    let last_offset = next_offset + count.max(1) - 1;
    last_offset - base_offset <= INDEX_RELATIVE_MAX && size + len <= INDEX_RELATIVE_MAX
}

thread_local! {
    /// The shard's buffer for the decompressed records of the batch being validated:
    /// appends on one shard run one validation at a time.
    static DECOMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Validates a batch a producer sent, as [`batch::validate`] does (compressed records
/// decompressed and walked), and refuses what this broker cannot store yet: bytes
/// after the batch, and transactional and control batches (no transactions yet).
fn validate_appended(bytes: &[u8], limits: BatchLimits) -> Result<BatchHeader> {
    let header = DECOMPRESSED.with_borrow_mut(|scratch| batch::validate_with(bytes, limits, scratch))?;
    if bytes.len() != header.total_bytes() {
        return Err(BatchError::TrailingBytes { records_end: header.total_bytes(), batch_bytes: bytes.len() }.into());
    }
    if header.is_control() {
        return Err(BatchError::Unsupported { what: "control" }.into());
    }
    if header.is_transactional() {
        return Err(BatchError::Unsupported { what: "transactional" }.into());
    }
    Ok(header)
}

pub(crate) fn log_sizing(io: &IoOptions) -> AppenderSizing {
    AppenderSizing { buffer_bytes: io.write_buffer_bytes, buffers_in_flight: io.write_behind_buffers }
}

pub(crate) fn index_sizing(io: &IoOptions) -> AppenderSizing {
    AppenderSizing { buffer_bytes: io.index_buffer_bytes, buffers_in_flight: 2 }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
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
