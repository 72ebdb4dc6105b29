//! Shards: one pinned core with its own glommio executor, the partitions placed on it,
//! its batch cache and its listeners. Nothing here is shared between shards; they talk
//! only by the messages of `message`, over glommio's channel mesh.
//!
//! Code map: `message` (what one shard asks of another), `warnings` (rate-limited
//! warnings), `capacity` (descriptors, disk and partition limits). The partitions a
//! shard serves are its `Logs` (`partition`); starting shards is `boot`'s.

pub mod capacity;
pub mod capacity_error;
mod message;
pub mod warnings;

pub use message::ShardMessage;

use crate::config::BrokerConfig;
use crate::metadata::MetadataState;
use crate::partition::{Logs, OpenFailure};
use glommio::channels::channel_mesh::Senders;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// One shard's state. Lives in an `Rc` on its own thread.
pub struct Shard {
    pub id: u32,
    pub count: u32,
    /// In a cluster, this broker's id (`cluster.node_id`); `None` for a broker alone.
    pub broker: Option<crate::metadata::cluster::BrokerId>,
    pub config: Arc<BrokerConfig>,
    /// SASL's settings and the failure delays, shared by every shard.
    pub sasl: Arc<crate::auth::sasl::SaslShared>,
    /// Every client quota's bucket, shared by every shard.
    pub quotas: Arc<crate::service::quota_meter::QuotaMeter>,
    /// Replaced only by `apply` (the boot sets the first, empty state).
    pub(crate) metadata: RefCell<Arc<MetadataState>>,
    /// The partitions placed on this shard.
    pub logs: Logs,
    pub(crate) mesh: Senders<ShardMessage>,
    /// The mesh index of each shard (the mesh numbers its peers in its own order).
    pub(crate) peers: Vec<usize>,
    /// The metadata log (the broker's own, or the quorum): on shard 0 only. Blocking;
    /// used from `spawn_blocking`.
    pub(crate) store: Option<Arc<crate::cluster::MetadataLog>>,
    /// In a cluster, on every shard: the quorum member, read for who leads it (writes
    /// go through shard 0's `store`).
    pub(crate) quorum: Option<Arc<crate::cluster::MetadataLog>>,
    /// Serializes admin commands on shard 0, so each sees the state the last one left.
    pub(crate) admin: glommio::sync::Semaphore,
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
    /// What this shard's connections have received and not yet answered, bounded by
    /// `limits.receive_bytes_max`.
    pub receive: Rc<crate::net::budget::ReceiveBudget>,
    /// The block of idempotent producers' ids being given out, on either protocol
    /// (used on shard 0 only: other shards forward InitProducerId there).
    pub producer_ids: crate::service::types::ProducerIds,
}

impl Shard {
    /// The current live settings (reloaded by SIGHUP).
    pub fn live_config(&self) -> Arc<BrokerConfig> {
        self.live.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// In a cluster, the metadata quorum's leader this broker knows of.
    pub fn quorum_leader(&self) -> Option<u64> {
        self.quorum.as_ref()?.quorum()?.leader()
    }

    /// The current metadata.
    pub fn metadata(&self) -> Arc<MetadataState> {
        self.metadata.borrow().clone()
    }

    /// The shard that owns `partition` of `topic`, or why there is none. In a cluster,
    /// the shard of this broker's replica, when this broker leads the partition.
    pub fn owner(&self, topic: &str, partition: u32) -> Result<u32, OwnerError> {
        let metadata = self.metadata.borrow();
        let meta = metadata.topics.get(topic).ok_or(OwnerError::UnknownTopic)?;
        if partition >= meta.partitions() {
            return Err(OwnerError::UnknownPartition);
        }
        let Some(broker) = self.broker else {
            return Ok(meta.placement[partition as usize]);
        };
        let state = meta.replicas.get(partition as usize).ok_or(OwnerError::NotLeader)?;
        match state.replica_on(broker) {
            Some(replica) if state.leader == Some(broker) => Ok(replica.shard),
            _ => Err(OwnerError::NotLeader),
        }
    }

    /// Adopts `state`: closes partitions gone, opens partitions placed here, and hands
    /// changed topic settings to open logs. Returns the partitions placed here that
    /// could not be opened (retried every few seconds).
    pub async fn apply(&self, state: Arc<MetadataState>) -> Vec<OpenFailure> {
        // States only move forward (in a cluster two paths apply them).
        if state.applied_index < self.metadata.borrow().applied_index {
            return Vec::new();
        }
        let before = std::mem::replace(&mut *self.metadata.borrow_mut(), state.clone());
        self.logs.apply(&before, &state).await
    }

    /// Opens again the partitions placed here that could not be opened before.
    pub async fn reopen_offline(&self) {
        self.logs.reopen_offline(&self.metadata()).await
    }

    /// Refreshes the gauges only this shard can read: cache, partitions, segments.
    pub fn refresh_metrics(&self) {
        use crate::metrics::ShardMetrics;
        let cache = self.logs.cache().stats();
        ShardMetrics::set(&self.metrics.cache_hits, cache.hits);
        ShardMetrics::set(&self.metrics.cache_misses, cache.misses);
        ShardMetrics::set(&self.metrics.cache_bytes, cache.used_bytes as u64);
        ShardMetrics::set(&self.metrics.read_ahead_bytes, cache.read_ahead_bytes as u64);
        let (segments, bytes) = self.logs.totals();
        ShardMetrics::set(&self.metrics.partitions, self.logs.count() as u64);
        ShardMetrics::set(&self.metrics.segments, segments);
        ShardMetrics::set(&self.metrics.log_bytes, bytes);
    }

    /// Sends `message` to shard `target` over the mesh, waiting while its queue is full.
    pub async fn forward(&self, target: u32, message: ShardMessage) {
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
    /// In a cluster: another broker leads it, or none does for now.
    NotLeader,
}
