//! The brokers Kafka clients are told of, and who leads what. A broker alone is node 0
//! at its listener's advertised address, leader of every partition. In a cluster,
//! every unfenced broker that registered a listener of the name the client connected
//! to, by its `cluster.node_id`; a partition's leader, replicas and in-sync replicas
//! are the metadata's, and a partition without a leader is offline.

use super::Kafka;
use crate::metadata::{MetadataState, TopicMeta};

/// A broker alone's node id: the one node of a one-broker cluster.
pub const NODE_ID: i32 = 0;

/// A broker as Kafka clients see it.
pub(super) struct Node {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// This broker's node id.
pub(super) fn own_id(kafka: &Kafka) -> i32 {
    kafka.shard.broker.map_or(NODE_ID, |id| id as i32)
}

/// Every broker a client on this listener may connect to, this one first.
pub(super) fn nodes(kafka: &Kafka, state: &MetadataState) -> Vec<Node> {
    let (host, port) = kafka.advertised();
    let rack = kafka.shard.config.cluster.as_ref().map(|c| c.rack.clone()).filter(|rack| !rack.is_empty());
    let mut nodes = vec![Node { id: own_id(kafka), host, port, rack }];
    if kafka.shard.broker.is_none() {
        return nodes;
    }
    for broker in state.brokers.values() {
        if broker.fenced || broker.id as i32 == nodes[0].id {
            continue;
        }
        if let Some(listener) = broker.listeners.iter().find(|l| l.name == kafka.listener) {
            nodes.push(Node {
                id: broker.id as i32,
                host: listener.host.clone(),
                port: listener.port,
                rack: broker.rack.clone(),
            });
        }
    }
    nodes
}

/// The leader epoch of partition `index` of `meta` (KIP-320): the metadata's in a
/// cluster, `LEADER_EPOCH` on a broker alone.
pub(super) fn leader_epoch(kafka: &Kafka, meta: &TopicMeta, index: u32) -> i32 {
    match kafka.shard.broker {
        None => crate::storage::LEADER_EPOCH,
        Some(_) => meta.replicas.get(index as usize).map_or(crate::storage::LEADER_EPOCH, |p| p.leader_epoch as i32),
    }
}

/// A client's idea of a partition's leader epoch checked against the current one:
/// older is fenced (it must refresh its metadata), newer unknown here (this broker's
/// metadata is behind); -1 (not given) passes.
pub(super) fn check_epoch(kafka: &Kafka, topic: &str, index: u32, claimed: i32) -> Result<(), crate::service::Error> {
    if claimed < 0 {
        return Ok(());
    }
    let state = kafka.shard.metadata();
    let Some(meta) = state.topics.get(topic) else { return Ok(()) };
    let current = leader_epoch(kafka, meta, index);
    match claimed.cmp(&current) {
        std::cmp::Ordering::Less => Err(crate::service::Error::FencedLeaderEpoch),
        std::cmp::Ordering::Greater => Err(crate::service::Error::UnknownLeaderEpoch),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Partition `index` of `meta`: its leader (`None`: offline), replicas and in-sync
/// replicas, by node id.
pub(super) fn partition(kafka: &Kafka, meta: &TopicMeta, index: u32) -> (Option<i32>, Vec<i32>, Vec<i32>) {
    if kafka.shard.broker.is_none() {
        let id = NODE_ID;
        return (Some(id), vec![id], vec![id]);
    }
    match meta.replicas.get(index as usize) {
        Some(state) => (
            state.leader.map(|id| id as i32),
            state.replicas.iter().map(|replica| replica.broker as i32).collect(),
            state.isr.iter().map(|&id| id as i32).collect(),
        ),
        None => (None, Vec::new(), Vec::new()),
    }
}
