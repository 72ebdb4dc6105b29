//! Retention: deleting the oldest sealed segments past the topic's age or size
//! limit, and the background task that checks it.

use super::*;

impl Log {
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

    /// Moves the log's start to `offset` (Kafka's DeleteRecords): offsets below it are
    /// no longer readable, and the sealed segments wholly below it are deleted. The new
    /// start is made durable (the `log-start-offset` file) before it takes effect, so a
    /// restart never brings deleted records back. `offset` may be at most the high
    /// watermark; a start already past it is left alone. Answers the log's start.
    pub async fn delete_records_before(self: &Rc<Self>, offset: u64) -> Result<u64> {
        let (start, end) = {
            let state = self.state.borrow();
            (state.start_offset, state.next_offset)
        };
        let high_watermark = self.visible_end(end);
        if offset > high_watermark {
            return Err(StorageError::OffsetOutOfRange { offset, start, end: high_watermark });
        }
        if offset <= start {
            return Ok(start);
        }
        write_start_offset(&self.dir, offset)?;
        {
            let mut state = self.state.borrow_mut();
            state.start_offset = state.start_offset.max(offset);
        }
        self.delete_oldest_while(|_, _, next_base| next_base <= offset).await?;
        Ok(self.state.borrow().start_offset)
    }

    /// Deletes sealed segments from the oldest while `delete(oldest, log bytes, the
    /// next segment's base offset)` says so; the active segment always stays.
    pub(super) async fn delete_oldest_while(
        self: &Rc<Self>,
        delete: impl Fn(&Rc<Segment>, u64, u64) -> bool,
    ) -> Result<Retained> {
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
                let first = *state.segments.keys().next().expect("the active segment remains");
                state.start_offset = state.start_offset.max(first);
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
}

/// The file that keeps a log start moved by DeleteRecords past its first segment's
/// base offset (Kafka's `log-start-offset-checkpoint`, one per log).
pub(crate) const START_OFFSET_FILE: &str = "log-start-offset";

/// Writes `offset` as the log's start, durably: a new file, fdatasync, rename over
/// the old one, fsync of the directory. One small synchronous write on the shard, as
/// DeleteRecords is an administrator's request, not a data path.
fn write_start_offset(dir: &Path, offset: u64) -> Result<()> {
    use std::io::Write;
    let path = dir.join(START_OFFSET_FILE);
    let tmp = dir.join(format!("{START_OFFSET_FILE}.tmp"));
    let io = |op, path: &Path, e| StorageError::io(op, path, e);
    let mut file = std::fs::File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
    file.write_all(format!("{offset}\n").as_bytes()).map_err(|e| io("writing", &tmp, e))?;
    file.sync_data().map_err(|e| io("syncing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("renaming", &tmp, e))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("syncing", dir, e))?;
    Ok(())
}

/// The start DeleteRecords left, if it ever ran on this log. A file that does not
/// hold a number is corruption, reported as such rather than guessed around.
pub(crate) fn read_start_offset(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(START_OFFSET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().map(Some).map_err(|_| StorageError::Corrupt {
            path: path.clone(),
            reason: format!("expected an offset, found {:?}", text.chars().take(40).collect::<String>()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("reading", &path, e)),
    }
}
