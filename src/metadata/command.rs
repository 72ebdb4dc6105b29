//! The commands that change metadata. Each is self-contained (placement is decided
//! before the command is written), so replaying the log gives the same state anywhere.

use super::acl::AclBinding;
use super::cluster::{BrokerId, BrokerMeta, PartitionState};
use super::quota::{QuotaEntity, QuotaKey, QuotaValue};
use super::scram::{ScramCredential, ScramMechanism};
use super::uuid::TopicUuid;
use crate::storage::TopicConfig;
use serde::{Deserialize, Serialize};

/// One change to metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Creates a topic whose partition `i` is owned by shard `placement[i]`, with
    /// its UUID (absent in commands written before topics had UUIDs: the state then
    /// derives one from the topic's id and name).
    CreateTopic {
        name: String,
        config: TopicConfig,
        placement: Vec<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uuid: Option<TopicUuid>,
        /// In a cluster: each partition's replicas, leader and in-sync replicas
        /// (`placement[i]` is then the shard of partition `i`'s first replica).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replicas: Vec<PartitionState>,
    },
    /// Deletes a topic and its data.
    DeleteTopic {
        name: String,
    },
    /// Replaces a topic's configuration.
    AlterTopicConfig {
        name: String,
        config: TopicConfig,
    },
    /// Adds partitions to a topic: new partition `n + i` is owned by shard
    /// `placement[i]`, where `n` is the topic's partition count before.
    AddPartitions {
        name: String,
        placement: Vec<u32>,
        /// In a cluster: the new partitions' replicas, one for each of `placement`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        replicas: Vec<PartitionState>,
    },
    /// Removes a topic's last `count` partitions: undoes an `AddPartitions` whose
    /// partitions could not all be opened (a topic never shrinks otherwise).
    RemovePartitions {
        name: String,
        count: u32,
    },
    /// Producer ids below `end` may have been given out (`service::producer_ids`):
    /// after a restart, ids start at `end`.
    ReserveProducerIds {
        end: i64,
    },
    /// Sets `user`'s credential for `mechanism` (a user exists while it has one).
    UpsertScramCredential {
        user: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    /// Removes `user`'s credential for `mechanism`.
    DeleteScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    /// Adds an access control entry (kept once however often it is added).
    CreateAcl {
        binding: AclBinding,
    },
    /// Removes an access control entry.
    DeleteAcl {
        binding: AclBinding,
    },
    /// Sets (or, with no value, removes) one quota of one entity.
    AlterClientQuota {
        entity: QuotaEntity,
        key: QuotaKey,
        value: Option<QuotaValue>,
    },
    /// A broker (re)registers, fenced until it has caught up (KRaft's
    /// RegisterBrokerRecord).
    RegisterBroker {
        broker: BrokerMeta,
    },
    /// The broker of this incarnation may not lead or be in sync (its session ran
    /// out), or, unfenced, may again.
    FenceBroker {
        id: BrokerId,
        epoch: u64,
    },
    UnfenceBroker {
        id: BrokerId,
        epoch: u64,
    },
    /// A cluster topic's partitions' replicas, leaders and in-sync replicas, from the
    /// first partition on (at creation) or from `from` on (added partitions).
    AssignReplicas {
        name: String,
        from: u32,
        partitions: Vec<PartitionState>,
    },
    /// A leader's change of its partition's in-sync replicas (Kafka's AlterPartition),
    /// at the epochs it leads at.
    AlterIsr {
        name: String,
        partition: u32,
        leader: BrokerId,
        leader_epoch: u32,
        partition_epoch: u32,
        isr: Vec<BrokerId>,
    },
    /// The controller's change of a partition's leader (`None`: offline) and in-sync
    /// replicas; a new leader epoch when the leader changes.
    ChangePartition {
        name: String,
        partition: u32,
        leader: Option<BrokerId>,
        isr: Vec<BrokerId>,
    },
}
