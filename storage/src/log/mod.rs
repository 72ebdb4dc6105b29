//! `Log`: one partition's log, owned by one shard. This file holds its state and
//! accessors; `append`, `roll`, `read` and `retention` hold one concern each.
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

use crate::appender::{failure_error, wait_written, Appender, AppenderSizing, WriteTracker};
use crate::cache::{BatchCache, CacheKey};
use crate::config::{FsyncPolicy, IoOptions, TimestampSource, TopicConfig};
use crate::error::{from_glommio, Result, StorageError};
use crate::index::{IndexWriters, SegmentIndex};
use crate::progress::{Failure, Progress};
use crate::segment::{self, Segment, SegmentPaths};
use bytes::{Bytes, BytesMut};
use glommio::io::ReadResult;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand_format::batch::{self, BatchError, BatchHeader, BatchLimits};

mod append;
mod read;
mod retention;
mod roll;

pub(crate) use retention::read_start_offset;
pub(crate) use roll::{create_segment, index_sizing, log_sizing, remove_standby_files};
use roll::{discard_standby, flush_index};

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
    /// The leader epochs its batches were written at (`leader-epochs`; none written
    /// while every batch is at epoch 0, as on a broker alone).
    pub(crate) epochs: RefCell<crate::epochs::LeaderEpochs>,
    /// The lowest epoch an append may still be at: raised as soon as a later epoch
    /// starts being recorded, so no batch of an older one lands after its start.
    epoch_floor: Cell<i32>,
    /// One epoch change recorded at a time.
    epoch_lock: glommio::sync::Semaphore,
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
    _claim: crate::cache::ReadAheadClaim,
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
        epochs: crate::epochs::LeaderEpochs,
    ) -> Log {
        let durable = Progress::new(state.next_offset);
        let epoch_floor = Cell::new(epochs.latest().map_or(crate::LEADER_EPOCH, |(epoch, _)| epoch));
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
            epochs: RefCell::new(epochs),
            epoch_floor,
            epoch_lock: glommio::sync::Semaphore::new(1),
        }
    }

    /// The leader epochs its batches were written at, each with the offset it starts
    /// at (empty while every batch is at epoch 0).
    pub fn leader_epochs(&self) -> crate::epochs::LeaderEpochs {
        self.epochs.borrow().clone()
    }

    /// The latest leader epoch a batch was (or may now be) written at.
    pub fn latest_epoch(&self) -> i32 {
        self.epochs.borrow().latest().map_or(crate::LEADER_EPOCH, |(epoch, _)| epoch)
    }

    /// Makes `epoch` the log's latest before a batch of it is appended: the new
    /// epoch and the offset it starts at are written to `leader-epochs` durably first,
    /// so recovery knows every epoch a stored batch has. An epoch the log has already
    /// is nothing to do; an older one is left for the append to refuse.
    pub(crate) async fn enter_epoch(self: &Rc<Self>, epoch: i32) -> Result<()> {
        if self.latest_epoch() >= epoch {
            return Ok(());
        }
        let _turn = self.epoch_lock.acquire_permit(1).await.expect("the epoch lock is never closed");
        if self.latest_epoch() >= epoch {
            return Ok(());
        }
        let previous_floor = self.epoch_floor.replace(epoch);
        let mut epochs = self.epochs.borrow().clone();
        let (start, next) = {
            let state = self.state.borrow();
            (state.start_offset, state.next_offset)
        };
        if epochs.latest().is_none() && next > start {
            // The batches so far are at epoch 0, which the file did not need to say.
            epochs.assign(crate::LEADER_EPOCH, start).expect("the first epoch");
        }
        let assigned = epochs.assign(epoch, next);
        let dir = self.dir.clone();
        let written = match assigned {
            Ok(()) => {
                let to_write = epochs.clone();
                glommio::executor().spawn_blocking(move || to_write.write(&dir)).await
            }
            Err(error) => Err(error),
        };
        match written {
            Ok(()) => {
                *self.epochs.borrow_mut() = epochs;
                Ok(())
            }
            Err(error) => {
                self.epoch_floor.set(previous_floor);
                Err(StorageError::Corrupt { path: self.dir.join("leader-epochs"), reason: error.to_string() })
            }
        }
    }

    /// Refuses an append at an epoch older than the latest (checked with no await
    /// between it and the append).
    pub(crate) fn check_epoch(&self, epoch: i32) -> Result<()> {
        let latest = self.latest_epoch().max(self.epoch_floor.get());
        if epoch < latest {
            return Err(StorageError::StaleEpoch { epoch, latest });
        }
        Ok(())
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

    /// Writes everything out, fdatasyncs, writes the active segment's index and stops
    /// accepting appends. Reads of data already returned stay valid.
    pub async fn close(self: &Rc<Self>) -> Result<()> {
        if self.closed.replace(true) {
            return Ok(());
        }
        // Wake long-poll readers: nothing more will be appended.
        self.appended.fail(crate::progress::Failure { disk_full: false, reason: "log closed".into() });
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

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
