//! Metadata becomes logs: a shard adopting a new `MetadataState` opens the logs of the
//! partitions placed on it and closes (and deletes) the logs of topics that are gone.
//! Shard 0 applies first, then sends the same state to every other shard and waits
//! for each to finish, so an admin request is answered only once every shard agrees.

use super::{PartitionLog, Shard};
use crate::metadata::{MetadataState, TopicMeta};
use crate::storage::Log;
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

impl Shard {
    /// Adopts `state`: closes logs of topics gone, opens logs of partitions placed here,
    /// and hands changed topic configurations to open logs.
    pub async fn apply(&self, state: Arc<MetadataState>) {
        *self.metadata.borrow_mut() = state.clone();
        self.close_gone(&state).await;
        self.open_placed(&state).await;
    }

    async fn close_gone(&self, state: &MetadataState) {
        let gone: Vec<PartitionLog> = {
            let mut logs = self.logs.borrow_mut();
            let keys: Vec<(String, u32)> = logs
                .iter()
                .filter(|((topic, _), entry)| state.topics.get(topic).is_none_or(|meta| meta.id != entry.topic_id))
                .map(|(key, _)| key.clone())
                .collect();
            keys.iter().filter_map(|key| logs.remove(key)).collect()
        };
        for entry in gone {
            if let Err(error) = entry.log.close().await {
                tracing::warn!(log = entry.log.name(), %error, "closing the log of a deleted topic failed");
            }
            // Off the shard's thread: unlinking gigabytes of preallocated segments
            // (with online discard) takes milliseconds to seconds.
            let dir = entry.log.dir().to_path_buf();
            if let Err(error) = glommio::executor().spawn_blocking(move || std::fs::remove_dir_all(dir)).await {
                tracing::warn!(dir = %entry.log.dir().display(), %error, "could not remove a deleted partition");
            }
            tracing::info!(log = entry.log.name(), "partition deleted");
        }
    }

    async fn open_placed(&self, state: &MetadataState) {
        let retention_interval = Duration::from_millis(self.config.storage.retention_check_interval_ms);
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
                            tracing::error!(log = %name, dir = %dir.display(), %error, "partition could not be opened; it stays offline");
                        }
                    }
                }
            }
        }
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
