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
}
