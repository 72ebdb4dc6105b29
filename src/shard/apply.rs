//! Metadata becomes logs: a shard adopting a new `MetadataState` opens the logs of the
//! partitions placed on it and closes (and deletes) the logs of topics that are gone.
//! Shard 0 applies first, then sends the same state to every other shard and waits
//! for each to finish, so an admin request is answered only once every shard agrees.

use super::{PartitionLog, Shard};
use crate::metadata::{MetadataState, TopicMeta};
use crate::storage::{Log, StorageError};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The directory of a topic's partitions: `topics/<id>-<name>`. The id keeps a topic
/// created again under a deleted one's name from ever seeing the old data.
pub fn topic_dir(data_dir: &Path, topic: &TopicMeta) -> PathBuf {
    data_dir.join("topics").join(format!("{}-{}", topic.id, topic.name))
}

/// Removes topic directories that metadata no longer lists (a deletion that crashed
/// between the metadata command and the file removal). Runs before shards start.
pub fn remove_orphan_topic_dirs(data_dir: &Path, state: &MetadataState) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("topics")) else { return };
    let live: std::collections::HashSet<PathBuf> = state.topics.values().map(|t| topic_dir(data_dir, t)).collect();
    for entry in entries.flatten() {
        let path = entry.path();
        if !live.contains(&path) {
            tracing::info!(dir = %path.display(), "removing the data of a deleted topic");
            if let Err(error) = std::fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), %error, "could not remove the data of a deleted topic");
            }
        }
    }
}

/// A partition placed on a shard that the shard could not open.
#[derive(Debug, Clone)]
pub struct OpenFailure {
    pub topic: String,
    pub partition: u32,
    pub cause: OpenFailureCause,
    /// The storage error, as text.
    pub reason: String,
}

/// What an [`OpenFailure`] lacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailureCause {
    /// Disk space (the reservation of its first segment).
    DiskFull,
    /// File descriptors (EMFILE, ENFILE).
    Descriptors,
    /// Anything else: an I/O error, corrupt data.
    Storage,
}

impl OpenFailure {
    fn new(topic: &str, partition: u32, error: &StorageError) -> OpenFailure {
        let cause = match error {
            StorageError::DiskFull { .. } => OpenFailureCause::DiskFull,
            StorageError::Io { source, .. } if matches!(source.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                OpenFailureCause::Descriptors
            }
            _ => OpenFailureCause::Storage,
        };
        OpenFailure { topic: topic.to_string(), partition, cause, reason: error.to_string() }
    }
}

impl Shard {
    /// Adopts `state`: closes logs of topics gone, opens logs of partitions placed here,
    /// and hands changed topic configurations to open logs. Returns the partitions
    /// placed here that could not be opened (they are retried: `reopen_offline`).
    pub async fn apply(&self, state: Arc<MetadataState>) -> Vec<OpenFailure> {
        let before = std::mem::replace(&mut *self.metadata.borrow_mut(), state.clone());
        let closed = self.close_gone(&state).await;
        self.remove_unopened(&before, &state, &closed).await;
        self.open_placed(&state).await
    }

    /// Opens again the partitions placed here that could not be opened before (a
    /// passing lack of descriptors or disk space); called every few seconds while
    /// any are offline.
    pub async fn reopen_offline(&self) {
        if self.offline.get() > 0 {
            let state = self.metadata();
            let failures = self.open_placed(&state).await;
            if failures.is_empty() {
                tracing::info!(shard = self.id, "every partition placed on this shard is open again");
            }
        }
    }

    /// Removes what partitions that were placed here but never opened left on disk,
    /// once metadata no longer lists them (a creation rolled back).
    async fn remove_unopened(&self, before: &MetadataState, after: &MetadataState, closed: &HashSet<(String, u32)>) {
        if self.offline.get() == 0 {
            return; // every partition placed here was open: close_gone removed them
        }
        for topic in before.topics.values() {
            let kept = after.topics.get(&topic.name).filter(|meta| meta.id == topic.id);
            for (partition, &owner) in topic.placement.iter().enumerate() {
                let gone = kept.is_none_or(|meta| partition >= meta.placement.len());
                let key = (topic.name.clone(), partition as u32);
                let open = self.logs.borrow().contains_key(&key);
                if owner != self.id || !gone || open || closed.contains(&key) {
                    continue;
                }
                let dir = topic_dir(&self.config.data_dir, topic).join(partition.to_string());
                let removed = glommio::executor().spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                    _ => Ok(()),
                });
                if let Err(error) = removed.await {
                    tracing::warn!(topic = %topic.name, partition, %error, "could not remove a partition that never opened");
                }
            }
        }
    }

    /// Takes the logs of partitions metadata no longer lists out of the shard at once
    /// (requests for them fail from now on), then closes them and removes their files
    /// in a task of its own, one partition at a time, so that deleting a topic of any
    /// size answers at once and never stalls the shard. Returns the partitions taken.
    async fn close_gone(&self, state: &MetadataState) -> HashSet<(String, u32)> {
        let gone: Vec<((String, u32), PartitionLog)> = {
            let mut logs = self.logs.borrow_mut();
            let keys: Vec<(String, u32)> = logs
                .iter()
                .filter(|((topic, partition), entry)| {
                    state
                        .topics
                        .get(topic)
                        .is_none_or(|meta| meta.id != entry.topic_id || *partition as usize >= meta.placement.len())
                })
                .map(|(key, _)| key.clone())
                .collect();
            keys.into_iter().filter_map(|key| logs.remove(&key).map(|entry| (key, entry))).collect()
        };
        let taken: HashSet<(String, u32)> = gone.iter().map(|(key, _)| key.clone()).collect();
        if !gone.is_empty() {
            glommio::spawn_local(close_and_remove(gone.into_iter().map(|(_, entry)| entry).collect())).detach();
        }
        taken
    }

    async fn open_placed(&self, state: &MetadataState) -> Vec<OpenFailure> {
        let retention_interval = Duration::from_millis(self.config.storage.retention_check_interval_ms);
        let mut failures = Vec::new();
        for topic in state.topics.values() {
            for (partition, &owner) in topic.placement.iter().enumerate() {
                if owner != self.id {
                    continue;
                }
                let key = (topic.name.clone(), partition as u32);
                if let Some(entry) = self.logs.borrow().get(&key) {
                    if entry.log.config() != topic.config {
                        entry.log.set_config(topic.config.clone());
                    }
                    continue;
                }
                let dir = topic_dir(&self.config.data_dir, topic).join(partition.to_string());
                let name = format!("{}-{partition}", topic.name);
                let io = self.config.storage.io.clone();
                match Log::open(&dir, &name, topic.config.clone(), io, self.cache.clone()).await {
                    Ok((log, recovery)) => {
                        if let Some(cut) = &recovery.truncation {
                            tracing::warn!(log = %name, offset = cut.offset, position = cut.position, bytes = cut.bytes, reason = %cut.reason, "recovery cut a torn tail");
                        }
                        tracing::debug!(log = %name, next_offset = recovery.next_offset, segments = recovery.segments, "partition open");
                        log.start_retention(retention_interval);
                        self.logs.borrow_mut().insert(key, PartitionLog { topic_id: topic.id, log });
                    }
                    Err(error) => {
                        if self.warnings.partitions_offline.allow() {
                            tracing::error!(log = %name, dir = %dir.display(), %error, "partition could not be opened; it stays offline and is retried every few seconds");
                        }
                        failures.push(OpenFailure::new(&topic.name, partition as u32, &error));
                    }
                }
            }
        }
        self.offline.set(failures.len() as u32);
        failures
    }

    /// Closes every log: writes out and fdatasyncs what they hold. For shutdown.
    pub async fn close_all(&self) {
        let logs: Vec<PartitionLog> = self.logs.borrow_mut().drain().map(|(_, entry)| entry).collect();
        for entry in logs {
            if let Err(error) = entry.log.close().await {
                tracing::error!(log = entry.log.name(), %error, "closing a log failed");
            }
        }
    }

    /// Refreshes the gauges only this shard can read: cache, partitions, segments.
    pub fn refresh_metrics(&self) {
        use crate::metrics::ShardMetrics;
        let cache = self.cache.stats();
        ShardMetrics::set(&self.metrics.cache_hits, cache.hits);
        ShardMetrics::set(&self.metrics.cache_misses, cache.misses);
        ShardMetrics::set(&self.metrics.cache_bytes, cache.used_bytes as u64);
        ShardMetrics::set(&self.metrics.read_ahead_bytes, cache.read_ahead_bytes as u64);
        let logs = self.logs.borrow();
        ShardMetrics::set(&self.metrics.partitions, logs.len() as u64);
        ShardMetrics::set(&self.metrics.segments, logs.values().map(|e| e.log.segment_count() as u64).sum());
        ShardMetrics::set(&self.metrics.log_bytes, logs.values().map(|e| e.log.size_bytes()).sum());
    }

    /// Number of logs open on this shard.
    pub fn log_count(&self) -> usize {
        self.logs.borrow().len()
    }
}

/// Closes deleted partitions' logs and removes their directories, one at a time.
async fn close_and_remove(gone: Vec<PartitionLog>) {
    let count = gone.len();
    for entry in gone {
        if let Err(error) = entry.log.close().await {
            tracing::warn!(log = entry.log.name(), %error, "closing the log of a deleted partition failed");
        }
        // Off the shard's thread: unlinking gigabytes of preallocated segments (with
        // online discard) takes milliseconds to seconds.
        let dir = entry.log.dir().to_path_buf();
        let removed = glommio::executor().spawn_blocking(move || {
            std::fs::remove_dir_all(&dir)?;
            // The topic's directory goes with its last partition (whichever shard
            // removes that one); while others remain this fails, as it should.
            if let Some(topic_dir) = dir.parent() {
                let _ = std::fs::remove_dir(topic_dir);
            }
            Ok::<(), std::io::Error>(())
        });
        match removed.await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %entry.log.dir().display(), %error, "could not remove a deleted partition")
            }
            _ => tracing::debug!(log = entry.log.name(), "partition deleted"),
        }
    }
    tracing::info!(partitions = count, "deleted partitions closed and removed");
}
