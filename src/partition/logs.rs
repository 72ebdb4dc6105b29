//! `Logs`, one shard's log manager: metadata becomes open partitions. Adopting a new
//! `MetadataState` opens the partitions placed on this shard, hands changed topic
//! settings to open logs, and closes (and deletes) the partitions metadata no longer
//! lists. Shard 0 applies first, then sends the same state to every other shard and
//! waits for each, so an admin request is answered only once every shard agrees.

use super::{Partition, TopicPartition};
use crate::metadata::{MetadataState, TopicMeta};
use crate::shard::warnings::Throttle;
use crate::storage::{BatchCache, IoOptions, Log, StorageError};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
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
    let live: HashSet<PathBuf> = state.topics.values().map(|t| topic_dir(data_dir, t)).collect();
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

/// The partitions one shard has open, and what it needs to open more.
pub struct Logs {
    shard: u32,
    /// In a cluster, this broker's id: the partitions held here are the replicas the
    /// metadata places on this broker and shard.
    broker: Option<crate::metadata::cluster::BrokerId>,
    data_dir: PathBuf,
    io: IoOptions,
    retention_interval: Duration,
    cache: Rc<BatchCache>,
    open: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
    /// Partitions placed here that could not be opened (retried every few seconds).
    offline: Cell<u32>,
    /// Open failures, rate-limited: a full disk would repeat them for every partition.
    offline_warnings: Throttle,
}

impl Logs {
    pub fn new(
        shard: u32,
        data_dir: PathBuf,
        io: IoOptions,
        retention_interval: Duration,
        cache: Rc<BatchCache>,
        broker: Option<crate::metadata::cluster::BrokerId>,
    ) -> Logs {
        Logs {
            shard,
            broker,
            data_dir,
            io,
            retention_interval,
            cache,
            open: RefCell::default(),
            offline: Cell::new(0),
            offline_warnings: Throttle::new("partitions that could not be opened"),
        }
    }

    /// The partition `tp`, if it is open on this shard.
    pub fn get(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.open.borrow().get(tp).cloned()
    }

    /// The partition `partition` of `topic`, if it is open on this shard.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<Rc<Partition>> {
        // Lookups need an owned key; topic names are short.
        self.get(&TopicPartition::new(topic, partition))
    }

    /// In a cluster, a replicated partition's placement as this broker sees it (`None`
    /// on a broker alone, and for a partition of one replica: nothing to replicate).
    fn placement(&self, topic: &crate::metadata::TopicMeta, partition: u32) -> Option<super::replica::Placement> {
        let me = self.broker?;
        let state = topic.replicas.get(partition as usize).filter(|state| state.replicas.len() > 1)?;
        Some(super::replica::Placement::of(state, me))
    }

    /// Every partition open on this shard.
    pub fn all(&self) -> Vec<Rc<Partition>> {
        self.open.borrow().values().cloned().collect()
    }

    /// Partitions open on this shard.
    pub fn count(&self) -> usize {
        self.open.borrow().len()
    }

    /// Partitions placed here that are not open.
    pub fn offline(&self) -> u32 {
        self.offline.get()
    }

    /// The batch cache every partition of this shard shares.
    pub fn cache(&self) -> &Rc<BatchCache> {
        &self.cache
    }

    /// The rate limit on open-failure warnings (ticked with the shard's others).
    pub fn offline_warnings(&self) -> &Throttle {
        &self.offline_warnings
    }

    /// Adopts `after` (replacing `before`): closes partitions gone, opens partitions
    /// placed here, and hands changed topic settings to open logs. Returns the
    /// partitions placed here that could not be opened (they are retried:
    /// `reopen_offline`).
    pub async fn apply(&self, before: &MetadataState, after: &MetadataState) -> Vec<OpenFailure> {
        let closed = self.close_gone(after);
        self.remove_unopened(before, after, &closed).await;
        self.open_placed(after).await
    }

    /// Opens again the partitions placed here that could not be opened before (a
    /// passing lack of descriptors or disk space); called every few seconds while
    /// any are offline.
    pub async fn reopen_offline(&self, state: &MetadataState) {
        if self.offline.get() > 0 {
            let failures = self.open_placed(state).await;
            if failures.is_empty() {
                tracing::info!(shard = self.shard, "every partition placed on this shard is open again");
            }
        }
    }

    /// Removes what partitions that were placed here but never opened left on disk,
    /// once metadata no longer lists them (a creation rolled back).
    async fn remove_unopened(&self, before: &MetadataState, after: &MetadataState, closed: &HashSet<TopicPartition>) {
        if self.offline.get() == 0 {
            return; // every partition placed here was open: close_gone removed them
        }
        for topic in before.topics.values() {
            let kept = after.topics.get(&topic.name).filter(|meta| meta.id == topic.id);
            for partition in 0..topic.partitions() {
                let here = topic.local_shard(partition, self.broker) == Some(self.shard);
                let gone = kept.is_none_or(|meta| meta.local_shard(partition, self.broker) != Some(self.shard));
                let key = TopicPartition::new(topic.name.clone(), partition);
                let open = self.open.borrow().contains_key(&key);
                if !here || !gone || open || closed.contains(&key) {
                    continue;
                }
                let dir = topic_dir(&self.data_dir, topic).join(partition.to_string());
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

    /// Takes the partitions metadata no longer lists out of the shard at once
    /// (requests for them fail from now on), then closes them and removes their files
    /// in a task of its own, one partition at a time, so that deleting a topic of any
    /// size answers at once and never stalls the shard. Returns the partitions taken.
    fn close_gone(&self, state: &MetadataState) -> HashSet<TopicPartition> {
        let gone: Vec<Rc<Partition>> = {
            let mut open = self.open.borrow_mut();
            let keys: Vec<TopicPartition> = open
                .iter()
                .filter(|(tp, partition)| {
                    state.topics.get(&tp.topic).is_none_or(|meta| {
                        meta.id != partition.topic_id || meta.local_shard(tp.partition, self.broker) != Some(self.shard)
                    })
                })
                .map(|(tp, _)| tp.clone())
                .collect();
            keys.into_iter().filter_map(|key| open.remove(&key)).collect()
        };
        let taken: HashSet<TopicPartition> = gone.iter().map(|partition| partition.tp.clone()).collect();
        if !gone.is_empty() {
            glommio::spawn_local(close_and_remove(gone)).detach();
        }
        taken
    }

    async fn open_placed(&self, state: &MetadataState) -> Vec<OpenFailure> {
        let mut failures = Vec::new();
        for topic in state.topics.values() {
            for partition in 0..topic.partitions() {
                if topic.local_shard(partition, self.broker) != Some(self.shard) {
                    continue;
                }
                let key = TopicPartition::new(topic.name.clone(), partition);
                let placement = self.placement(topic, partition);
                if let Some(open) = self.open.borrow().get(&key) {
                    let log = open.log();
                    if log.config() != topic.config {
                        log.set_config(topic.config.clone());
                    }
                    open.set_placement(placement);
                    continue;
                }
                let dir = topic_dir(&self.data_dir, topic).join(partition.to_string());
                let name = key.to_string();
                match Log::open(&dir, &name, topic.config.clone(), self.io.clone(), self.cache.clone()).await {
                    Ok((log, recovery)) => {
                        if let Some(cut) = &recovery.truncation {
                            tracing::warn!(log = %name, offset = cut.offset, position = cut.position, bytes = cut.bytes, reason = %cut.reason, "recovery cut a torn tail");
                        }
                        tracing::debug!(log = %name, next_offset = recovery.next_offset, segments = recovery.segments, "partition open");
                        log.start_retention(self.retention_interval);
                        let opened = Rc::new(Partition::new(key.clone(), topic.id, log));
                        opened.set_placement(placement);
                        opened.rebuild_producers().await;
                        self.open.borrow_mut().insert(key, opened);
                    }
                    Err(error) => {
                        if self.offline_warnings.allow() {
                            tracing::error!(log = %name, dir = %dir.display(), %error, "partition could not be opened; it stays offline and is retried every few seconds");
                        }
                        failures.push(OpenFailure::new(&topic.name, partition, &error));
                    }
                }
            }
        }
        self.offline.set(failures.len() as u32);
        failures
    }

    /// Closes every partition: writes out and fdatasyncs what they hold. For shutdown.
    pub async fn close_all(&self) {
        let open: Vec<Rc<Partition>> = self.open.borrow_mut().drain().map(|(_, partition)| partition).collect();
        for partition in open {
            if let Err(error) = partition.log().close().await {
                tracing::error!(log = partition.name(), %error, "closing a log failed");
            }
        }
    }

    /// Segments and bytes over every open partition.
    pub fn totals(&self) -> (u64, u64) {
        let open = self.open.borrow();
        let segments = open.values().map(|p| p.segment_count() as u64).sum();
        let bytes = open.values().map(|p| p.size_bytes()).sum();
        (segments, bytes)
    }
}

/// Closes deleted partitions' logs and removes their directories, one at a time.
async fn close_and_remove(gone: Vec<Rc<Partition>>) {
    let count = gone.len();
    for partition in gone {
        let log = partition.log();
        if let Err(error) = log.close().await {
            tracing::warn!(log = log.name(), %error, "closing the log of a deleted partition failed");
        }
        // Off the shard's thread: unlinking gigabytes of preallocated segments (with
        // online discard) takes milliseconds to seconds.
        let dir = log.dir().to_path_buf();
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
                tracing::warn!(dir = %log.dir().display(), %error, "could not remove a deleted partition")
            }
            _ => tracing::debug!(log = log.name(), "partition deleted"),
        }
    }
    tracing::info!(partitions = count, "deleted partitions closed and removed");
}
