//! Shards: one pinned core with its own glommio executor, the partitions placed on it,
//! its batch cache and its listeners. Nothing here is shared between shards; they talk
//! only by the messages of `message`, over glommio's channel mesh.
//!
//! Code map: `message` (what one shard asks of another), `apply` (metadata changes
//! become opened and closed logs), `start` (threads, listeners, readiness, shutdown),
//! `warnings` (rate-limited warnings), `capacity` (descriptors, disk and partition
//! limits).

mod apply;
pub mod capacity;
mod message;
mod start;
pub mod warnings;

pub use apply::{remove_orphan_topic_dirs, OpenFailure, OpenFailureCause};
pub use message::{FetchItem, FetchItemResult, FetchWait, ListItem, ProduceItem, ProduceItemResult, ShardMessage};
pub use start::{serve, Ready};

use crate::config::BrokerConfig;
use crate::metadata::{MetadataState, MetadataStore};
use crate::storage::{BatchCache, Log};
use glommio::channels::channel_mesh::Senders;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use strand_protocol::native::messages::ShardPort;
use strand_protocol::native::Limits;

/// One partition's log on its shard, with the id of the topic it belongs to (a topic
/// deleted and created again under the same name gets a new id and new logs).
pub struct PartitionLog {
    pub topic_id: u64,
    pub log: Rc<Log>,
}

/// Per-shard counters, read by the metrics endpoint and by tests.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub connections: Cell<u64>,
    pub connections_refused: Cell<u64>,
    pub forwards_out: Cell<u64>,
    pub forwards_in: Cell<u64>,
}

/// One shard's state. Lives in an `Rc` on its own thread.
pub struct Shard {
    pub id: u32,
    pub count: u32,
    pub config: Arc<BrokerConfig>,
    pub limits: Limits,
    /// Every shard's own port, for Metadata responses.
    pub ports: Vec<ShardPort>,
    metadata: RefCell<Arc<MetadataState>>,
    logs: RefCell<HashMap<(String, u32), PartitionLog>>,
    pub cache: Rc<BatchCache>,
    mesh: Senders<ShardMessage>,
    /// The mesh index of each shard (the mesh numbers its peers in its own order).
    peers: Vec<usize>,
    /// The metadata store: on shard 0 only. Blocking I/O; used from `spawn_blocking`.
    pub(crate) store: Option<Arc<Mutex<MetadataStore>>>,
    /// Serializes admin commands on shard 0, so each sees the state the last one left.
    pub(crate) admin: glommio::sync::Semaphore,
    pub stats: ShardStats,
    /// The consumer groups this shard coordinates.
    pub groups: crate::group::GroupCoordinator,
    /// What this shard counts, read by the admin endpoint.
    pub metrics: Arc<crate::metrics::ShardMetrics>,
    /// The settings SIGHUP can change (`config::LIVE_KEYS`), shared by every shard;
    /// read on admin and group paths only, never per record.
    pub live: Arc<std::sync::RwLock<Arc<BrokerConfig>>>,
    /// Warnings a flood could repeat, rate-limited.
    pub warnings: warnings::Warnings,
    /// The process's descriptor limit (RLIMIT_NOFILE, raised at start).
    pub descriptors_max: u64,
    /// Every shard's metrics, for the broker-wide descriptor estimate (`capacity`).
    pub all_metrics: Arc<Vec<Arc<crate::metrics::ShardMetrics>>>,
    /// Partitions placed here that could not be opened (retried every few seconds).
    pub offline: Cell<u32>,
    /// What this shard's connections have received and not yet answered, bounded by
    /// `limits.receive_bytes_max`.
    pub receive: Rc<crate::native::ReceiveBudget>,
}

impl Shard {
    /// The current live settings (reloaded by SIGHUP).
    pub fn live_config(&self) -> Arc<BrokerConfig> {
        self.live.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The current metadata.
    pub fn metadata(&self) -> Arc<MetadataState> {
        self.metadata.borrow().clone()
    }

    /// The shard that owns `partition` of `topic`, or why there is none.
    pub fn owner(&self, topic: &str, partition: u32) -> Result<u32, OwnerError> {
        let metadata = self.metadata.borrow();
        let meta = metadata.topics.get(topic).ok_or(OwnerError::UnknownTopic)?;
        meta.placement.get(partition as usize).copied().ok_or(OwnerError::UnknownPartition)
    }

    /// The log of a partition this shard owns.
    pub fn log(&self, topic: &str, partition: u32) -> Option<Rc<Log>> {
        // Lookups by (String, u32) need an owned key; topic names are short.
        self.logs.borrow().get(&(topic.to_string(), partition)).map(|entry| entry.log.clone())
    }

    /// Sends `message` to shard `target` over the mesh, waiting while its queue is full.
    pub async fn forward(&self, target: u32, message: ShardMessage) {
        self.stats.forwards_out.set(self.stats.forwards_out.get() + 1);
        crate::metrics::ShardMetrics::count(&self.metrics.forwards_out, 1);
        let peer = self.peers[target as usize];
        if self.mesh.send_to(peer, message).await.is_err() {
            // The peer's receiver is gone only while the broker shuts down; the reply
            // channel inside the message is dropped with it and the caller sees NotReady.
            tracing::debug!(shard = self.id, target, "forward to a stopped shard dropped");
        }
    }
}

/// Why a partition has no owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerError {
    UnknownTopic,
    UnknownPartition,
}
