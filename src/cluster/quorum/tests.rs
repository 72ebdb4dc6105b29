//! The quorum in one process: voters on loopback ports of their own, with their own
//! directories, stopped and started again as a broker would be.

use super::*;
use std::time::Instant;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn voters(count: u64) -> BTreeMap<u64, String> {
    (1..=count).map(|id| (id, format!("127.0.0.1:{}", free_port()))).collect()
}

fn config(dir: &std::path::Path, node_id: u64, voters: &BTreeMap<u64, String>) -> QuorumConfig {
    QuorumConfig {
        node_id,
        voters: voters.clone(),
        cluster_id: "test-cluster".into(),
        dir: dir.join(format!("node-{node_id}")),
        heartbeat_ms: 50,
        election_timeout_ms: 300,
        snapshot_every: 1_000,
        broker_session_ms: 600,
    }
}

fn reserve(end: i64) -> Command {
    Command::ReserveProducerIds { end }
}

/// Waits until every running node agrees on one leader; returns it.
fn leader(nodes: &BTreeMap<u64, QuorumHandle>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen: Vec<Option<u64>> = nodes.values().map(QuorumHandle::leader).collect();
        if let Some(Some(leader)) = seen.first() {
            if nodes.contains_key(leader) && seen.iter().all(|s| s == &Some(*leader)) {
                return *leader;
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader within 15 s: {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `node` has applied a state with producer ids reserved to `end`.
fn reaches(node: &QuorumHandle, end: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.state().producer_ids_end < end {
        assert!(Instant::now() < deadline, "node {} at {} of {end}", node.node_id(), node.state().producer_ids_end);
        std::thread::sleep(Duration::from_millis(20));
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn three_voters_elect_replicate_refuse_and_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let voters = voters(3);
    let mut nodes: BTreeMap<u64, QuorumHandle> =
        (1..=3).map(|id| (id, QuorumHandle::start(config(dir.path(), id, &voters)).unwrap())).collect();
    let first = leader(&nodes);
    let follower = *nodes.keys().find(|&&id| id != first).unwrap();

    // Proposed on a follower: handed to the leader, committed, applied everywhere.
    let state = nodes[&follower].propose_blocking(reserve(1_000), TIMEOUT).unwrap();
    assert_eq!(state.producer_ids_end, 1_000, "the proposer's own state has it when the call returns");
    nodes.values().for_each(|node| reaches(node, 1_000));
    // A command that no longer checks is applied as a refusal, on every voter alike.
    let refused = nodes[&first].propose_blocking(reserve(500), TIMEOUT);
    assert!(
        matches!(&refused, Err(ProposeError::Refused(reason)) if reason.contains("already reserved")),
        "{refused:?}"
    );
    assert!(nodes.values().all(|node| node.state().producer_ids_end == 1_000));

    // The leader stops: the other two elect one of themselves and go on.
    nodes.remove(&first).unwrap().shutdown();
    let second = leader(&nodes);
    assert_ne!(second, first);
    let survivor = *nodes.keys().next().unwrap();
    nodes[&survivor].propose_blocking(reserve(2_000), TIMEOUT).unwrap();

    // The old leader starts again from its files and catches up.
    nodes.insert(first, QuorumHandle::start(config(dir.path(), first, &voters)).unwrap());
    reaches(&nodes[&first], 2_000);
    assert_eq!(leader(&nodes), second, "a returning voter does not unseat a working leader");
}

#[test]
fn a_voter_keeps_its_state_across_restarts_and_a_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    let voters = voters(1);
    let node = QuorumHandle::start(config(dir.path(), 1, &voters)).unwrap();
    for end in 1..=50 {
        node.propose_blocking(reserve(end * 10), TIMEOUT).unwrap();
    }
    node.shutdown();
    // A crash in the middle of a record: the torn tail is cut at the next start.
    let log = dir.path().join("node-1/raft/log");
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut file, &[200, 0, 0, 0, 1, 2]).unwrap();
    drop(file);
    let node = QuorumHandle::start(config(dir.path(), 1, &voters)).unwrap();
    reaches(&node, 500);
    node.propose_blocking(reserve(510), TIMEOUT).unwrap();
    assert_eq!(node.state().producer_ids_end, 510);
}

#[test]
fn a_request_of_another_cluster_or_a_stranger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let voters = voters(1);
    let node = QuorumHandle::start(config(dir.path(), 1, &voters)).unwrap();
    node.propose_blocking(reserve(1), TIMEOUT).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ask = |cluster: &str, from: u64| {
        let mut known = voters.clone();
        known.insert(from, "127.0.0.1:1".into());
        let network = Network::new(from, cluster.into(), known);
        runtime.block_on(network.call_within(1, Rpc::Propose(Proposal(reserve(99))), Duration::from_secs(5)))
    };
    match ask("another-cluster", 2) {
        Ok(Reply::Refused(reason)) => assert!(reason.contains("\"another-cluster\""), "{reason}"),
        other => panic!("another cluster's request: {other:?}"),
    }
    match ask("test-cluster", 7) {
        Ok(Reply::Refused(reason)) => assert!(reason.contains("node id 7"), "{reason}"),
        other => panic!("a stranger's request: {other:?}"),
    }
    assert_eq!(node.state().producer_ids_end, 1, "neither took effect");
    // A length over the limit closes the connection; a message cut short, and bytes
    // that are not JSON, change nothing.
    use std::io::{Read, Write};
    let address = voters[&1].clone();
    let mut huge = std::net::TcpStream::connect(&address).unwrap();
    huge.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    huge.write_all(&u32::MAX.to_be_bytes()).unwrap();
    assert!(matches!(huge.read(&mut [0u8; 16]), Ok(0) | Err(_)), "closed");
    let mut short = std::net::TcpStream::connect(&address).unwrap();
    short.write_all(&1000u32.to_be_bytes()).unwrap();
    short.write_all(b"{\"cluster").unwrap();
    drop(short);
    let mut garbage = std::net::TcpStream::connect(&address).unwrap();
    garbage.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    garbage.write_all(&4u32.to_be_bytes()).unwrap();
    garbage.write_all(b"\xff\xfe\x00\x01").unwrap();
    assert!(matches!(garbage.read(&mut [0u8; 16]), Ok(0) | Err(_)), "closed");
    node.propose_blocking(reserve(2), TIMEOUT).expect("the voter serves on");
}

#[test]
fn a_voter_behind_the_snapshot_is_sent_it() {
    let dir = tempfile::tempdir().unwrap();
    let voters = voters(3);
    let small = |id| QuorumConfig { snapshot_every: 20, ..config(dir.path(), id, &voters) };
    let mut nodes: BTreeMap<u64, QuorumHandle> =
        (1..=3).map(|id| (id, QuorumHandle::start(small(id)).unwrap())).collect();
    let first = leader(&nodes);
    let away = *nodes.keys().find(|&&id| id != first).unwrap();
    nodes.remove(&away).unwrap().shutdown();
    // Enough for several snapshots, each dropping the log before it.
    for end in 1..=100 {
        nodes[&first].propose_blocking(reserve(end), TIMEOUT).unwrap();
    }
    let snapshot = dir.path().join(format!("node-{first}/raft/snapshot"));
    assert!(snapshot.exists(), "the leader took a snapshot");
    nodes.insert(away, QuorumHandle::start(small(away)).unwrap());
    reaches(&nodes[&away], 100);
    // Brought up by the snapshot: the entries it missed were never written to its log.
    let log = std::fs::read(dir.path().join(format!("node-{away}/raft/log"))).unwrap();
    let written = log.windows(9).filter(|w| w == b"{\"Entry\":").count();
    assert!(written < 50, "the returning voter wrote {written} entries: it was sent the log, not the snapshot");
    // And every voter, started again, comes back with the state.
    let ids: Vec<u64> = nodes.keys().copied().collect();
    for id in &ids {
        nodes.remove(id).unwrap().shutdown();
    }
    let nodes: BTreeMap<u64, QuorumHandle> =
        ids.iter().map(|&id| (id, QuorumHandle::start(small(id)).unwrap())).collect();
    nodes.values().for_each(|node| reaches(node, 100));
    let leader = leader(&nodes);
    nodes[&leader].propose_blocking(reserve(101), TIMEOUT).unwrap();
}

/// Registers broker `id` through `node` at incarnation 7.
fn register(node: &QuorumHandle, id: u32) -> u64 {
    register_as(node, id, 7)
}

fn register_as(node: &QuorumHandle, id: u32, epoch: u64) -> u64 {
    use crate::metadata::cluster::{BrokerListener, BrokerMeta};
    let broker = BrokerMeta {
        id,
        epoch,
        rack: None,
        listeners: vec![BrokerListener {
            name: "kafka".into(),
            host: "127.0.0.1".into(),
            port: 9092,
            shard_ports: Vec::new(),
        }],
        shards: 1,
        fenced: true,
    };
    node.propose_blocking(Command::RegisterBroker { broker }, TIMEOUT).unwrap();
    epoch
}

/// Waits until `check` holds of the state `node` applied.
fn until(node: &QuorumHandle, what: &str, check: impl Fn(&MetadataState) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check(&node.state()) {
        assert!(Instant::now() < deadline, "{what} within 15 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_silent_broker_is_fenced_its_partitions_move_and_it_returns_when_heard() {
    use crate::cluster::controller;
    use crate::storage::TopicConfig;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let voters = voters(3);
    let mut nodes: BTreeMap<u64, QuorumHandle> =
        (1..=3).map(|id| (id, QuorumHandle::start(config(dir.path(), id, &voters)).unwrap())).collect();
    leader(&nodes);
    for broker in 1..=3 {
        register(&nodes[&1], broker);
    }
    assert!(nodes[&1].state().brokers.values().all(|b| b.fenced), "registered fenced");
    let (stop, silent) = (AtomicBool::new(false), AtomicBool::new(false));
    // Stops the heartbeats however the scope ends: a failed assertion must not leave
    // the scope waiting for them forever.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    // Each broker heartbeats every 50 ms through a voter of its own (handed to the
    // leader from there); broker 3 only while `silent` is not set.
    let beat = |nodes: &BTreeMap<u64, QuorumHandle>, broker: u32| {
        let voters: Vec<&QuorumHandle> = nodes.values().collect();
        while !stop.load(Ordering::Relaxed) {
            if broker != 3 || !silent.load(Ordering::Relaxed) {
                // At the incarnation it last registered with, as a broker knows its own.
                let voter = voters[broker as usize % voters.len()];
                let epoch = voter.state().brokers.get(&broker).map_or(7, |b| b.epoch);
                let _ = voter.heartbeat_blocking(broker, epoch, TIMEOUT);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (any, beat, shared) = (&nodes[&1], &beat, &nodes);
    let led_by_3 = std::thread::scope(|scope| {
        for broker in 1..=3 {
            scope.spawn(move || beat(shared, broker));
        }
        let _stop = Stop(&stop);
        until(any, "every broker heard and unfenced", |s| s.brokers.values().all(|b| !b.fenced));
        let partitions = controller::place(&any.state(), 3, 3, 0).unwrap();
        let led_by_3 = partitions.iter().position(|p| p.leader == Some(3)).unwrap();
        let create = Command::CreateTopic {
            name: "orders".into(),
            config: TopicConfig::default(),
            placement: vec![0; 3],
            uuid: None,
            replicas: Vec::new(),
        };
        any.propose_blocking(create, TIMEOUT).unwrap();
        any.propose_blocking(Command::AssignReplicas { name: "orders".into(), from: 0, partitions }, TIMEOUT).unwrap();

        silent.store(true, Ordering::Relaxed);
        until(any, "broker 3 fenced, and its partition led by another in-sync replica", |s| {
            let partition = &s.topics["orders"].replicas[led_by_3];
            s.brokers[&3].fenced && partition.leader.is_some_and(|l| l != 3) && !partition.isr.contains(&3)
        });
        assert!(!any.state().brokers[&1].fenced && !any.state().brokers[&2].fenced, "the others stay");
        silent.store(false, Ordering::Relaxed);
        until(any, "broker 3 heard again and unfenced", |s| !s.brokers[&3].fenced);
        // Controlled shutdown of broker 2, asked of a voter that may not lead: its
        // leaderships are handed over before the call returns, and its heartbeats
        // (it is still stopping) do not unfence it.
        let led_by_2 = any.state().topics["orders"].replicas.iter().filter(|p| p.leader == Some(2)).count();
        let moved = nodes[&3].shut_down_blocking(2, 7, TIMEOUT).unwrap();
        assert!(moved >= led_by_2, "{moved} partition changes for {led_by_2} led by broker 2");
        // Applied on the leader when the call returns; on the voter asked, soon after.
        until(&nodes[&3], "broker 2 fenced and leading nothing", |s| {
            s.brokers[&2].fenced
                && s.topics["orders"].replicas.iter().all(|p| p.leader != Some(2) && !p.isr.contains(&2))
        });
        std::thread::sleep(Duration::from_millis(2 * 600));
        assert!(any.state().brokers[&2].fenced, "heartbeats of the stopped incarnation do not unfence it");
        assert_eq!(any.state().brokers[&2].epoch, 7);
        // Registered again (a restart): heard, unfenced.
        register_as(any, 2, 8);
        until(any, "broker 2 heard at its new incarnation and unfenced", |s| !s.brokers[&2].fenced);
        let refused = any.heartbeat_blocking(3, 8, TIMEOUT);
        assert!(matches!(&refused, Err(ProposeError::Refused(r)) if r.contains("incarnation")), "{refused:?}");
        let stranger = any.heartbeat_blocking(9, 7, TIMEOUT);
        assert!(matches!(&stranger, Err(ProposeError::Refused(r)) if r.contains("not registered")), "{stranger:?}");
        stop.store(true, Ordering::Relaxed);
        led_by_3
    });
    assert!(nodes[&1].state().topics["orders"].replicas[led_by_3].leader_epoch >= 1);

    // The controller's own failover: a new quorum leader has heard nobody yet, and
    // fences nobody who goes on heartbeating.
    let old = leader(&nodes);
    nodes.remove(&old).unwrap().shutdown();
    stop.store(false, Ordering::Relaxed);
    let shared = &nodes;
    std::thread::scope(|scope| {
        for broker in 1..=3 {
            scope.spawn(move || beat(shared, broker));
        }
        let _stop = Stop(&stop);
        let survivor = shared.values().next().unwrap();
        leader(&nodes);
        std::thread::sleep(Duration::from_millis(3 * 600));
        assert!(survivor.state().brokers.values().all(|b| !b.fenced), "{:?}", survivor.state().brokers);
        stop.store(true, Ordering::Relaxed);
    });
}
