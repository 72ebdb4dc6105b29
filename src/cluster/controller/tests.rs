use super::*;
use crate::metadata::cluster::{BrokerListener, BrokerMeta};
use crate::metadata::MetadataError;
use crate::storage::TopicConfig;

fn broker(id: BrokerId, rack: Option<&str>, shards: u32) -> BrokerMeta {
    BrokerMeta {
        id,
        epoch: 1,
        rack: rack.map(str::to_string),
        listeners: vec![BrokerListener {
            name: "kafka".into(),
            host: "127.0.0.1".into(),
            port: 9092 + id as u16,
            shard_ports: Vec::new(),
        }],
        shards,
        fenced: true,
    }
}

/// Applies `command` as every voter does: checked first.
fn run(state: &mut MetadataState, command: Command) -> Result<(), MetadataError> {
    state.check(&command)?;
    state.apply(&command);
    Ok(())
}

/// A cluster of `brokers`, registered and unfenced.
fn cluster(brokers: Vec<BrokerMeta>) -> MetadataState {
    let mut state = MetadataState::default();
    for broker in brokers {
        let (id, epoch) = (broker.id, broker.epoch);
        run(&mut state, Command::RegisterBroker { broker }).unwrap();
        assert!(state.brokers[&id].fenced, "a broker registers fenced");
        run(&mut state, Command::UnfenceBroker { id, epoch }).unwrap();
    }
    state
}

/// Creates `name` with `count` partitions placed by `place`.
fn topic(state: &mut MetadataState, name: &str, count: u32, replication_factor: u32) {
    let partitions = place(state, count, replication_factor, 0).unwrap();
    let placement = partitions.iter().map(|p| p.replicas[0].shard).collect();
    run(
        state,
        Command::CreateTopic {
            name: name.into(),
            config: TopicConfig::default(),
            placement,
            uuid: None,
            replicas: Vec::new(),
        },
    )
    .unwrap();
    run(state, Command::AssignReplicas { name: name.into(), from: 0, partitions }).unwrap();
}

#[test]
fn leaders_and_replicas_spread_over_brokers_and_shards() {
    let mut state = cluster((1..=3).map(|id| broker(id, None, 2)).collect());
    topic(&mut state, "orders", 12, 3);
    let partitions = &state.topics["orders"].replicas;
    let mut leaders: BTreeMap<BrokerId, u32> = BTreeMap::new();
    let mut per_shard: BTreeMap<Replica, u32> = BTreeMap::new();
    for partition in partitions {
        let mut brokers: Vec<BrokerId> = partition.replicas.iter().map(|r| r.broker).collect();
        brokers.sort();
        assert_eq!(brokers, [1, 2, 3], "three replicas on three brokers");
        *leaders.entry(partition.leader.unwrap()).or_default() += 1;
        partition.replicas.iter().for_each(|r| *per_shard.entry(*r).or_default() += 1);
        assert_eq!(partition.isr.len(), 3);
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), [4, 4, 4], "leaders spread: {leaders:?}");
    assert!(per_shard.values().all(|&n| n == 6), "every shard holds as many replicas: {per_shard:?}");
}

#[test]
fn replicas_span_racks_while_racks_remain() {
    let racks = ["a", "a", "b", "b", "c", "c"];
    let mut state = cluster((1..=6).map(|id| broker(id, Some(racks[id as usize - 1]), 1)).collect());
    topic(&mut state, "events", 30, 3);
    for partition in &state.topics["events"].replicas {
        let mut seen: Vec<&str> = partition.replicas.iter().map(|r| racks[r.broker as usize - 1]).collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"], "{partition:?}");
    }
}

#[test]
fn a_replication_factor_beyond_the_live_brokers_is_refused() {
    let mut state = cluster((1..=3).map(|id| broker(id, None, 1)).collect());
    run(&mut state, Command::FenceBroker { id: 3, epoch: 1 }).unwrap();
    let refused = place(&state, 1, 3, 0).unwrap_err();
    assert!(refused.contains("2 are"), "{refused}");
    let placed = place(&state, 4, 2, 0).unwrap();
    assert!(placed.iter().all(|p| p.replicas.iter().all(|r| r.broker != 3)), "a fenced broker gets no replica");
}

#[test]
fn a_fenced_leader_is_replaced_from_the_isr_and_an_offline_partition_returns_with_its_last_replica() {
    let mut state = cluster((1..=3).map(|id| broker(id, None, 1)).collect());
    topic(&mut state, "orders", 3, 3);
    let led_by_1 = state.topics["orders"].replicas.iter().position(|p| p.leader == Some(1)).unwrap() as u32;
    let before = state.partition_state("orders", led_by_1).unwrap().clone();

    run(&mut state, Command::FenceBroker { id: 1, epoch: 1 }).unwrap();
    for change in on_fenced(&state, 1) {
        run(&mut state, change).unwrap();
    }
    let after = state.partition_state("orders", led_by_1).unwrap();
    assert!(matches!(after.leader, Some(2 | 3)), "{after:?}");
    assert_eq!(after.leader_epoch, before.leader_epoch + 1, "a new leader, a new epoch");
    assert!(!after.isr.contains(&1), "the fenced broker left the in-sync replicas");
    assert!(state.topics["orders"].replicas.iter().all(|p| p.leader != Some(1) && !p.isr.contains(&1)));

    // The other two go: the partitions go offline, each keeping its last in-sync
    // replica; the last one back leads again.
    for id in [2, 3] {
        run(&mut state, Command::FenceBroker { id, epoch: 1 }).unwrap();
        for change in on_fenced(&state, id) {
            run(&mut state, change).unwrap();
        }
    }
    let offline = state.partition_state("orders", led_by_1).unwrap().clone();
    assert_eq!(offline.leader, None, "no clean leader: offline");
    assert_eq!(offline.isr.len(), 1);
    let last = offline.isr[0];
    let this_partition = |c: &Command| matches!(c, Command::ChangePartition { name, partition, .. } if name == "orders" && *partition == led_by_1);
    let other = (1..=3).find(|&id| id != last).unwrap();
    run(&mut state, Command::UnfenceBroker { id: other, epoch: 1 }).unwrap();
    assert!(
        !on_unfenced(&state, other).iter().any(this_partition),
        "a replica that was not the last in sync does not lead it (no unclean election)"
    );
    run(&mut state, Command::UnfenceBroker { id: last, epoch: 1 }).unwrap();
    for change in on_unfenced(&state, last) {
        run(&mut state, change).unwrap();
    }
    assert_eq!(state.partition_state("orders", led_by_1).unwrap().leader, Some(last));
}

#[test]
fn stale_and_malformed_partition_changes_are_refused() {
    let mut state = cluster((1..=3).map(|id| broker(id, None, 1)).collect());
    topic(&mut state, "orders", 1, 3);
    let current = state.partition_state("orders", 0).unwrap().clone();
    let leader = current.leader.unwrap();
    let follower = *current.isr.iter().find(|&&b| b != leader).unwrap();
    let alter = |leader: BrokerId, leader_epoch, partition_epoch, isr: Vec<BrokerId>| Command::AlterIsr {
        name: "orders".into(),
        partition: 0,
        leader,
        leader_epoch,
        partition_epoch,
        isr,
    };
    let shrunk: Vec<BrokerId> = current.isr.iter().copied().filter(|&b| b != follower).collect();
    // From a broker that does not lead, or at an old leader epoch: fenced.
    let stale = run(&mut state, alter(follower, current.leader_epoch, current.partition_epoch, shrunk.clone()));
    assert!(matches!(stale, Err(MetadataError::StaleEpoch(_))), "{stale:?}");
    let old_epoch = run(&mut state, alter(leader, current.leader_epoch + 1, current.partition_epoch, shrunk.clone()));
    assert!(matches!(old_epoch, Err(MetadataError::StaleEpoch(_))), "{old_epoch:?}");
    // The leader's change applies once; the same change again names an old partition epoch.
    run(&mut state, alter(leader, current.leader_epoch, current.partition_epoch, shrunk.clone())).unwrap();
    let again = run(&mut state, alter(leader, current.leader_epoch, current.partition_epoch, shrunk));
    assert!(matches!(again, Err(MetadataError::StaleEpoch(_))), "{again:?}");
    let now = state.partition_state("orders", 0).unwrap().clone();
    assert_eq!((now.leader_epoch, now.partition_epoch), (current.leader_epoch, current.partition_epoch + 1));
    // An in-sync set without its leader, or with a broker that holds no replica.
    let without_leader = run(&mut state, alter(leader, now.leader_epoch, now.partition_epoch, vec![follower]));
    assert!(matches!(without_leader, Err(MetadataError::InvalidConfig(_))), "{without_leader:?}");
    let stranger = run(&mut state, alter(leader, now.leader_epoch, now.partition_epoch, vec![leader, 9]));
    assert!(matches!(stranger, Err(MetadataError::InvalidConfig(_))), "{stranger:?}");
    // Replicas twice on one broker, or on a broker that never registered.
    let twice = vec![PartitionState::new(vec![Replica { broker: 1, shard: 0 }, Replica { broker: 1, shard: 0 }])];
    run(
        &mut state,
        Command::CreateTopic {
            name: "t".into(),
            config: TopicConfig::default(),
            placement: vec![0],
            uuid: None,
            replicas: Vec::new(),
        },
    )
    .unwrap();
    assert!(run(&mut state, Command::AssignReplicas { name: "t".into(), from: 0, partitions: twice }).is_err());
    let unknown = vec![PartitionState::new(vec![Replica { broker: 7, shard: 0 }])];
    assert!(run(&mut state, Command::AssignReplicas { name: "t".into(), from: 0, partitions: unknown }).is_err());
    // A fence of an old incarnation.
    let mut again = broker(2, None, 1);
    again.epoch = 2;
    run(&mut state, Command::RegisterBroker { broker: again }).unwrap();
    assert!(run(&mut state, Command::FenceBroker { id: 2, epoch: 1 }).is_err(), "an old incarnation is not fenced");
}

#[test]
fn preferred_leaders_return_to_the_first_replica() {
    let mut state = cluster((1..=3).map(|id| broker(id, None, 1)).collect());
    topic(&mut state, "orders", 3, 3);
    run(&mut state, Command::FenceBroker { id: 1, epoch: 1 }).unwrap();
    for change in on_fenced(&state, 1) {
        run(&mut state, change).unwrap();
    }
    run(&mut state, Command::UnfenceBroker { id: 1, epoch: 1 }).unwrap();
    assert!(preferred_leaders(&state).is_empty(), "not while it is out of sync");
    // Caught up: its leaders add it back to the in-sync set.
    for index in 0..3u32 {
        let p = state.partition_state("orders", index).unwrap().clone();
        let mut isr = p.isr.clone();
        isr.push(1);
        let leader = p.leader.unwrap();
        let command = Command::AlterIsr {
            name: "orders".into(),
            partition: index,
            leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        };
        run(&mut state, command).unwrap();
    }
    let changes = preferred_leaders(&state);
    assert_eq!(changes.len(), 1, "the one partition broker 1 is first replica of: {changes:?}");
    for change in changes {
        run(&mut state, change).unwrap();
    }
    let leaders: Vec<Option<BrokerId>> = state.topics["orders"].replicas.iter().map(|p| p.leader).collect();
    let preferred: Vec<Option<BrokerId>> =
        state.topics["orders"].replicas.iter().map(|p| Some(p.replicas[0].broker)).collect();
    assert_eq!(leaders, preferred);
}

#[test]
fn cluster_state_round_trips_and_a_single_broker_snapshot_is_unchanged() {
    let single = MetadataState::default();
    let json = serde_json::to_string(&single).unwrap();
    assert!(!json.contains("brokers") && !json.contains("replicas"), "{json}");
    let mut state = cluster((1..=3).map(|id| broker(id, Some("r1"), 2)).collect());
    topic(&mut state, "orders", 4, 2);
    let back: MetadataState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(back, state);
}
