//! Appending: validation, offsets stamped in arrival order, the copy into the active
//! segment's write buffer, and waiting for the topic's durability policy (group
//! commit for `always`, the interval and write-behind timers).

use super::*;

impl Log {
    /// Appends one batch (exactly one, as Kafka RecordBatch v2 bytes) and resolves
    /// once the topic's durability policy is met. The log is unchanged if the batch
    /// is invalid.
    pub async fn append(self: &Rc<Self>, batch: BytesMut) -> Result<Appended> {
        let appended = self.append_leader(batch, crate::LEADER_EPOCH).await?;
        self.wait_policy(&appended).await?;
        Ok(appended)
    }

    /// Appends one batch and resolves as soon as it has its offsets (acks `leader`):
    /// the bytes are in the log's write buffer, on their way to the device under the
    /// topic's policy, but not yet known durable. Appends resolve in call order, so a
    /// caller that awaits each before the next keeps its batches in order.
    /// `wait_policy` then waits for the policy. The batch is stamped with `leader_epoch`
    /// (the partition layer's: `LEADER_EPOCH` on a single broker).
    pub async fn append_leader(self: &Rc<Self>, mut batch: BytesMut, leader_epoch: i32) -> Result<Appended> {
        let (limits, source, policy, interval_ms) = {
            let config = self.config.borrow();
            let limits = BatchLimits::new(config.batch_bytes_max as usize, self.io.decompression_ratio_max);
            (limits, config.timestamp_source, config.fsync, config.fsync_interval_ms)
        };
        let header = validate_appended(&batch, limits)?;
        self.enter_epoch(leader_epoch).await?;
        // Let the reactor submit queued writes and reap completions between appends that
        // would otherwise never wait (`never`, `interval`), once per task quota.
        crate::quota::yield_after_quota().await;
        self.ready_for(batch.len() as u64, header.last_offset_delta as u64 + 1).await?;
        // No await from here to the append: a later epoch entered meanwhile refuses it.
        self.check_epoch(leader_epoch)?;
        let appended = self.append_ready(&mut batch, &header, Some((source, leader_epoch)));
        self.after_append(&appended, policy, interval_ms);
        Ok(appended)
    }

    /// Appends one batch a follower fetched from its partition's leader, as the leader
    /// stored it: its base offset (which must be where this log ends), its leader epoch
    /// (recorded first when it is a new one) and its timestamps are kept. Resolves once
    /// the batch has its place, as `append_leader` does; `wait_policy` then waits for
    /// the topic's policy.
    pub async fn append_replica(self: &Rc<Self>, mut batch: BytesMut) -> Result<Appended> {
        let (limits, policy, interval_ms) = {
            let config = self.config.borrow();
            // The leader took it within its limits; a follower takes what its leader has.
            let limits =
                BatchLimits::new(batch.len().max(config.batch_bytes_max as usize), self.io.decompression_ratio_max);
            (limits, config.fsync, config.fsync_interval_ms)
        };
        let header = validate_appended(&batch, limits)?;
        let epoch = header.partition_leader_epoch;
        if epoch < 0 {
            return Err(StorageError::StaleEpoch { epoch, latest: self.latest_epoch() });
        }
        let found = header.base_offset as u64;
        let at_end = |log: &Log| {
            let expected = log.state.borrow().next_offset;
            if found == expected {
                Ok(())
            } else {
                Err(StorageError::OffsetMismatch { expected, found })
            }
        };
        at_end(self)?;
        self.enter_epoch(epoch).await?;
        crate::quota::yield_after_quota().await;
        self.ready_for(batch.len() as u64, header.last_offset_delta as u64 + 1).await?;
        self.check_epoch(epoch)?;
        at_end(self)?;
        let appended = self.append_ready(&mut batch, &header, None);
        self.after_append(&appended, policy, interval_ms);
        Ok(appended)
    }

    /// What follows an append: the standby segment prepared, the policy's sync or
    /// timer started.
    fn after_append(self: &Rc<Self>, appended: &Appended, policy: FsyncPolicy, interval_ms: u64) {
        self.prepare_standby();
        match policy {
            FsyncPolicy::Always => self.request_sync(appended.last_offset + 1),
            FsyncPolicy::Interval => self.arm_timer(interval_ms, true),
            FsyncPolicy::Never => self.arm_timer(self.io.write_behind_ms, false),
        }
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

    /// The synchronous part of an append: offset assignment, copy, index, cache. A
    /// leader's batch (`stamp`: its timestamp source and epoch) is stamped with its
    /// offset, epoch and, for `log_append_time`, the time; a replicated one is stored as
    /// it came (its offset is checked to be this log's end).
    pub(super) fn append_ready(
        &self,
        batch: &mut BytesMut,
        header: &BatchHeader,
        stamp: Option<(TimestampSource, i32)>,
    ) -> Appended {
        let mut state = self.state.borrow_mut();
        let base_offset = state.next_offset;
        let count = header.last_offset_delta as u64 + 1;
        let mut max_timestamp = header.max_timestamp;
        let mut log_append_time_ms = None;
        if let Some((source, leader_epoch)) = stamp {
            batch::stamp_base_offset(batch, base_offset as i64);
            batch::stamp_leader_epoch(batch, leader_epoch);
            if source == TimestampSource::LogAppendTime {
                let now = now_ms();
                batch::stamp_log_append_time(batch, now);
                max_timestamp = now;
                log_append_time_ms = Some(now);
            }
        }
        // The write side of the offset invariant `read` checks: this batch starts
        // right after the last one appended.
        debug_assert_eq!(BatchHeader::parse(batch).map(|h| h.base_offset as u64), Ok(base_offset));
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
    pub(super) async fn ready_for(self: &Rc<Self>, len: u64, count: u64) -> Result<()> {
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

    /// Resolves once every offset below `next_offset` is durable.
    pub(super) async fn wait_durable(self: &Rc<Self>, next_offset: u64) -> Result<()> {
        if self.durable.get() >= next_offset {
            return Ok(());
        }
        self.request_sync(next_offset);
        self.durable.wait_for(next_offset).await.map_err(|failure| failure_error(failure, &self.dir))
    }

    /// Makes sure a sync task runs until `target` is durable. The task is spawned,
    /// not run by the caller, so a caller that goes away cannot strand the others.
    pub(super) fn request_sync(self: &Rc<Self>, target: u64) {
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
                    log.durable.fail(crate::progress::Failure { disk_full, reason: error.to_string() });
                }
            }
            log.sync_running.set(false);
        })
        .detach();
    }

    /// One group commit: write out everything appended so far, fdatasync, publish.
    pub(super) async fn sync_once(&self) -> Result<()> {
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
    pub(super) fn arm_timer(self: &Rc<Self>, delay_ms: u64, fsync: bool) {
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
}

thread_local! {
    /// The shard's buffer for the decompressed records of the batch being validated:
    /// appends on one shard run one validation at a time.
    static DECOMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Validates a batch a producer sent, as [`batch::validate`] does (compressed records
/// decompressed and walked), and refuses what this broker cannot store yet: bytes
/// after the batch, and transactional and control batches (no transactions yet).
pub(super) fn validate_appended(bytes: &[u8], limits: BatchLimits) -> Result<BatchHeader> {
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
