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
