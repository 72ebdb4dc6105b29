//! What the metadata knows of a cluster: its brokers (`BrokerMeta`, as each
//! registered) and, for a topic of a cluster, where each partition's replicas live and
//! who leads them (`PartitionState`, as KRaft's PartitionRecord keeps it). A single
//! broker has neither: its topics' `placement` alone says which shard owns each
//! partition.
//!
//! The rules the commands must pass are here (`check_*`), so that every voter applies
//! the same log to the same state and comes to the same outcome; the controller's
//! decisions (where replicas go, who leads after a failure) are `cluster::controller`'s.

use super::error::MetadataError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A broker's id (Kafka's `node.id`).
pub type BrokerId = u32;

/// A listener a broker serves clients on, as clients are to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerListener {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// A native listener's port on each shard, by shard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shard_ports: Vec<u16>,
}

/// A broker of the cluster, as it last registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub id: BrokerId,
    /// Its incarnation: a new one each time it starts (a registration with another
    /// replaces the old, once that one's session has ended).
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    pub listeners: Vec<BrokerListener>,
    /// Its shard count: a replica lives on one of them.
    pub shards: u32,
    /// Fenced: not to lead or be in sync (it registered and has not caught up, or its
    /// session ran out). A broker registers fenced.
    pub fenced: bool,
}

/// One replica of a partition: the broker and the shard of it that holds the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Replica {
    pub broker: BrokerId,
    pub shard: u32,
}

/// A partition of a cluster's topic: its replicas (the first is the preferred
/// leader), its leader and the in-sync replicas, and the epochs that fence stale
/// leaders and stale changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub replicas: Vec<Replica>,
    /// `None`: offline (no in-sync replica is alive; unclean election is off).
    pub leader: Option<BrokerId>,
    /// Bumped at each change of leader; stamped in every batch the leader writes.
    pub leader_epoch: u32,
    /// The in-sync replicas, by broker. When the partition is offline, the last ones.
    pub isr: Vec<BrokerId>,
    /// Bumped at each change of this record: a change must name the current one.
    pub partition_epoch: u32,
}

impl PartitionState {
    /// A new partition on `replicas`, led by the first, every replica in sync.
    pub fn new(replicas: Vec<Replica>) -> PartitionState {
        let isr = replicas.iter().map(|r| r.broker).collect();
        PartitionState {
            leader: replicas.first().map(|r| r.broker),
            replicas,
            leader_epoch: 0,
            isr,
            partition_epoch: 0,
        }
    }

    /// The replica on `broker`, if it has one.
    pub fn replica_on(&self, broker: BrokerId) -> Option<Replica> {
        self.replicas.iter().copied().find(|r| r.broker == broker)
    }

    fn has(&self, broker: BrokerId) -> bool {
        self.replica_on(broker).is_some()
    }
}

/// A registration: listeners to reach it, shards to hold replicas.
pub fn check_register(broker: &BrokerMeta) -> Result<(), MetadataError> {
    if broker.listeners.is_empty() {
        return Err(MetadataError::InvalidConfig(format!("broker {} registers no listener", broker.id)));
    }
    if broker.shards == 0 {
        return Err(MetadataError::InvalidConfig(format!("broker {} registers no shard", broker.id)));
    }
    Ok(())
}

/// A fence or unfence must name the broker's current incarnation.
pub fn check_incarnation(
    brokers: &BTreeMap<BrokerId, BrokerMeta>,
    id: BrokerId,
    epoch: u64,
) -> Result<(), MetadataError> {
    match brokers.get(&id) {
        Some(broker) if broker.epoch == epoch => Ok(()),
        Some(broker) => Err(MetadataError::InvalidConfig(format!(
            "broker {id} incarnation {epoch} is stale: it registered again as {}",
            broker.epoch
        ))),
        None => Err(MetadataError::InvalidConfig(format!("broker {id} is not registered"))),
    }
}

/// Replicas for a topic's partitions: one per partition, on registered brokers, each
/// partition's on distinct brokers and shards the brokers have.
pub fn check_replicas(
    brokers: &BTreeMap<BrokerId, BrokerMeta>,
    partitions: usize,
    replicas: &[PartitionState],
) -> Result<(), MetadataError> {
    let invalid = |reason: String| Err(MetadataError::InvalidConfig(reason));
    if replicas.len() != partitions {
        return invalid(format!("{} replica assignments for {partitions} partitions", replicas.len()));
    }
    for (index, partition) in replicas.iter().enumerate() {
        if partition.replicas.is_empty() {
            return invalid(format!("partition {index} has no replica"));
        }
        for (i, replica) in partition.replicas.iter().enumerate() {
            let Some(broker) = brokers.get(&replica.broker) else {
                return invalid(format!("partition {index}: broker {} is not registered", replica.broker));
            };
            if replica.shard >= broker.shards {
                return invalid(format!(
                    "partition {index}: broker {} has {} shards, not shard {}",
                    replica.broker, broker.shards, replica.shard
                ));
            }
            if partition.replicas[..i].iter().any(|other| other.broker == replica.broker) {
                return invalid(format!("partition {index}: two replicas on broker {}", replica.broker));
            }
        }
        check_leader_and_isr(index, partition, partition.leader, &partition.isr)?;
    }
    Ok(())
}

/// A leader among the in-sync replicas, which are replicas, without repeats.
fn check_leader_and_isr(
    index: usize,
    partition: &PartitionState,
    leader: Option<BrokerId>,
    isr: &[BrokerId],
) -> Result<(), MetadataError> {
    let invalid = |reason: String| Err(MetadataError::InvalidConfig(reason));
    if isr.is_empty() {
        return invalid(format!("partition {index}: an empty in-sync replica set"));
    }
    if let Some(&stranger) = isr.iter().find(|&&b| !partition.has(b)) {
        return invalid(format!("partition {index}: broker {stranger} is in sync but holds no replica"));
    }
    if isr.iter().enumerate().any(|(i, b)| isr[..i].contains(b)) {
        return invalid(format!("partition {index}: a broker twice in the in-sync replicas"));
    }
    if let Some(leader) = leader {
        if !isr.contains(&leader) {
            return invalid(format!("partition {index}: leader {leader} is not in sync"));
        }
    }
    Ok(())
}

/// A leader's change of its in-sync replicas (Kafka's AlterPartition): it must lead at
/// the epochs it names, which fence a deposed leader and a change made since.
pub fn check_alter_isr(
    index: usize,
    partition: &PartitionState,
    leader: BrokerId,
    leader_epoch: u32,
    partition_epoch: u32,
    isr: &[BrokerId],
) -> Result<(), MetadataError> {
    if partition.leader != Some(leader) || partition.leader_epoch != leader_epoch {
        return Err(MetadataError::StaleEpoch(format!(
            "partition {index}: broker {leader} at leader epoch {leader_epoch}, but the leader is {:?} at epoch {}",
            partition.leader, partition.leader_epoch
        )));
    }
    if partition.partition_epoch != partition_epoch {
        return Err(MetadataError::StaleEpoch(format!(
            "partition {index}: partition epoch {partition_epoch}, but it is at {}",
            partition.partition_epoch
        )));
    }
    check_leader_and_isr(index, partition, Some(leader), isr)
}

/// A controller's change of leader and in-sync replicas.
pub fn check_change(
    index: usize,
    partition: &PartitionState,
    leader: Option<BrokerId>,
    isr: &[BrokerId],
) -> Result<(), MetadataError> {
    if let Some(leader) = leader {
        if !partition.has(leader) {
            return Err(MetadataError::InvalidConfig(format!("partition {index}: broker {leader} holds no replica")));
        }
    }
    check_leader_and_isr(index, partition, leader, isr)
}

/// Applies a change of leader (a new leader epoch when it changes) and in-sync
/// replicas.
pub fn apply_change(partition: &mut PartitionState, leader: Option<BrokerId>, isr: &[BrokerId]) {
    if partition.leader != leader {
        partition.leader_epoch += 1;
    }
    partition.leader = leader;
    partition.isr = isr.to_vec();
    partition.partition_epoch += 1;
}
