//! The controller's decisions, as pure functions of the metadata: where a new
//! partition's replicas go, and which partition changes follow when a broker is fenced
//! or comes back. The quorum leader runs them and proposes what they return; every
//! voter then applies the same commands (`metadata::cluster` checks them).
//!
//! Placement is Kafka's: brokers in an order that alternates racks, each partition's
//! replicas on consecutive brokers of it from a start that moves one broker per
//! partition, so leaders (the first replica) spread evenly and no two replicas share a
//! rack while racks remain; on each broker, the shard holding the fewest replicas.
//! Election is clean only: a new leader comes from the in-sync replicas that are not
//! fenced, and a partition with none stays offline, keeping its last in-sync replica
//! so that it leads again when it returns.

use crate::metadata::cluster::{BrokerId, BrokerMeta, PartitionState, Replica};
use crate::metadata::{Command, MetadataState};
use std::collections::{BTreeMap, HashMap};

/// The brokers in Kafka's rack-alternating order: the first of each rack, then the
/// second of each, and so on (brokers without a rack count as one rack each).
fn rack_alternating(brokers: &[&BrokerMeta]) -> Vec<BrokerId> {
    let mut racks: BTreeMap<String, Vec<BrokerId>> = BTreeMap::new();
    for broker in brokers {
        let rack = broker.rack.clone().unwrap_or_else(|| format!("\0broker-{}", broker.id));
        racks.entry(rack).or_default().push(broker.id);
    }
    let longest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..longest).flat_map(|i| racks.values().filter_map(move |ids| ids.get(i).copied())).collect()
}

/// Replicas for `count` new partitions at `replication_factor`, on the unfenced
/// brokers, after the partitions `state` already places (`start` varies the first
/// broker, as Kafka picks a random one).
pub fn place(
    state: &MetadataState,
    count: u32,
    replication_factor: u32,
    start: u32,
) -> Result<Vec<PartitionState>, String> {
    let live: Vec<&BrokerMeta> = state.brokers.values().filter(|b| !b.fenced).collect();
    if replication_factor == 0 {
        return Err("a replication factor of 0".into());
    }
    if replication_factor as usize > live.len() {
        return Err(format!(
            "a replication factor of {replication_factor} needs as many live brokers; {} are",
            live.len()
        ));
    }
    let order = rack_alternating(&live);
    let shards: HashMap<BrokerId, u32> = live.iter().map(|b| (b.id, b.shards)).collect();
    let mut load: HashMap<Replica, u32> = HashMap::new();
    for replica in state.topics.values().flat_map(|t| &t.replicas).flat_map(|p| &p.replicas) {
        *load.entry(*replica).or_default() += 1;
    }
    let rack = |id: BrokerId| live.iter().find(|b| b.id == id).and_then(|b| b.rack.clone());
    let racks = live.iter().map(|b| b.rack.clone()).collect::<std::collections::BTreeSet<_>>().len();
    let n = order.len();
    let mut placed = Vec::with_capacity(count as usize);
    for partition in 0..count as usize {
        let first = (start as usize + partition) % n;
        // Followers are walked from a shift that grows by one every round of
        // partitions, as Kafka's are, so the same brokers do not always pair up.
        let shift = if n > 1 { (start as usize / n + partition / n) % (n - 1) } else { 0 };
        let mut chosen = vec![order[first]];
        let mut k = 0;
        while chosen.len() < replication_factor as usize {
            // The next broker in the walk not yet chosen, whose rack holds no replica
            // yet unless every rack does.
            let candidate = order[(first + 1 + (shift + k) % (n - 1)) % n];
            k += 1;
            let racks_used: std::collections::BTreeSet<Option<String>> = chosen.iter().map(|&b| rack(b)).collect();
            let rack_free = racks_used.len() >= racks || !racks_used.contains(&rack(candidate));
            if !chosen.contains(&candidate) && (rack_free || k > n) {
                chosen.push(candidate);
            }
        }
        let mut replicas = Vec::with_capacity(chosen.len());
        for broker in chosen {
            let shard = (0..shards[&broker])
                .min_by_key(|&shard| (load.get(&Replica { broker, shard }).copied().unwrap_or(0), shard))
                .expect("a broker has a shard");
            let replica = Replica { broker, shard };
            *load.entry(replica).or_default() += 1;
            replicas.push(replica);
        }
        placed.push(PartitionState::new(replicas));
    }
    Ok(placed)
}

/// The changes once `broker` is fenced: it leaves every in-sync set, and the
/// partitions it led get a new leader from the rest of their in-sync replicas that are
/// not fenced, or go offline keeping it as their last in-sync replica.
pub fn on_fenced(state: &MetadataState, broker: BrokerId) -> Vec<Command> {
    let alive = |id: &BrokerId| *id != broker && state.brokers.get(id).is_some_and(|b| !b.fenced);
    let mut changes = Vec::new();
    for (name, topic) in &state.topics {
        for (index, partition) in topic.replicas.iter().enumerate() {
            if !partition.isr.contains(&broker) {
                continue;
            }
            let rest: Vec<BrokerId> = partition.isr.iter().copied().filter(|id| *id != broker).collect();
            let (leader, isr) = if partition.leader == Some(broker) {
                match rest.iter().copied().find(alive) {
                    Some(leader) => (Some(leader), rest),
                    None if rest.is_empty() => (None, vec![broker]),
                    None => (None, rest),
                }
            } else {
                (partition.leader, if rest.is_empty() { vec![broker] } else { rest })
            };
            if leader != partition.leader || isr != partition.isr {
                changes.push(Command::ChangePartition { name: name.clone(), partition: index as u32, leader, isr });
            }
        }
    }
    changes
}

/// The changes once `broker` is unfenced: the offline partitions it was last in sync
/// for are led by it again.
pub fn on_unfenced(state: &MetadataState, broker: BrokerId) -> Vec<Command> {
    let mut changes = Vec::new();
    for (name, topic) in &state.topics {
        for (index, partition) in topic.replicas.iter().enumerate() {
            if partition.leader.is_none() && partition.isr.contains(&broker) {
                changes.push(Command::ChangePartition {
                    name: name.clone(),
                    partition: index as u32,
                    leader: Some(broker),
                    isr: partition.isr.clone(),
                });
            }
        }
    }
    changes
}

/// Preferred leader election: every partition whose first replica is in sync, not
/// fenced and not leading is handed to it.
pub fn preferred_leaders(state: &MetadataState) -> Vec<Command> {
    let mut changes = Vec::new();
    for (name, topic) in &state.topics {
        for (index, partition) in topic.replicas.iter().enumerate() {
            let Some(preferred) = partition.replicas.first().map(|r| r.broker) else { continue };
            let live = state.brokers.get(&preferred).is_some_and(|b| !b.fenced);
            if live && partition.leader != Some(preferred) && partition.isr.contains(&preferred) {
                changes.push(Command::ChangePartition {
                    name: name.clone(),
                    partition: index as u32,
                    leader: Some(preferred),
                    isr: partition.isr.clone(),
                });
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests;
