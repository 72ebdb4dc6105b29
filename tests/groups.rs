//! Consumer groups against the real broker: assignment across members, take-over of a
//! member killed with SIGKILL, committed offsets across a restart, refused commits,
//! bounds, lag, and an incremental rebalance that leaves unmoved partitions alone.

mod common;

use common::{strand, Broker};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strand_client::{
    block_on, Acks, Client, Consumer, ConsumerConfig, GroupConfig, GroupEvent, Producer, ProducerConfig,
    ProducerRecord, Reset,
};
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Request, Response};

/// A `strand consume --group` process, its JSON records collected as they arrive.
struct Member {
    child: Child,
    records: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Member {
    fn start(bootstrap: &str, topic: &str, group: &str) -> Member {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(["consume", topic, "--group", group, "--from", "earliest", "--format", "json"])
            .args(["--session-timeout-ms", "2000", "--bootstrap", bootstrap])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = records.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(value);
                }
            }
        });
        Member { child, records }
    }

    fn kill(&mut self) {
        // SAFETY: SIGKILL to a child this test started and has not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// SIGTERM: the member commits and leaves.
    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "a member did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn values(&self) -> Vec<String> {
        self.records.lock().unwrap().iter().map(|r| r["value"].as_str().unwrap().to_string()).collect()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

fn produce(bootstrap: &str, topic: &str, from: u64, count: u64) {
    let producer =
        // Durable: on `fsync = always` topics the high watermark (what commits are
        // checked against) is the durable offset.
        Producer::new(Client::connect(bootstrap).unwrap(), ProducerConfig { acks: Acks::Durable, ..Default::default() });
    for i in from..from + count {
        let key = format!("key-{i}");
        producer.send(ProducerRecord::new(topic, format!("v{i}").as_bytes()).key(key.as_bytes())).unwrap();
    }
    producer.flush();
}

/// One row of `strand group describe`: committed, log end, lag, owner.
type Row = (Option<i64>, i64, i64, String);

/// `strand group describe`: its output, and its rows by partition (one topic).
fn describe(bootstrap: &str, group: &str) -> (String, BTreeMap<u32, Row>) {
    try_describe(bootstrap, group).unwrap_or_else(|err| panic!("{err}"))
}

/// `describe`, or its error (the group may not exist yet while members start).
fn try_describe(bootstrap: &str, group: &str) -> Result<(String, BTreeMap<u32, Row>), String> {
    let (ok, out, err) = strand(&["group", "describe", group, "--bootstrap", bootstrap], "");
    if !ok {
        return Err(err);
    }
    let mut rows = BTreeMap::new();
    for line in out.lines().skip_while(|l| !l.starts_with("TOPIC")).skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        rows.insert(
            f[1].parse().unwrap(),
            (f[2].parse().ok(), f[3].parse().unwrap(), f[4].parse().unwrap(), f[5].to_string()),
        );
    }
    Ok((out, rows))
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_members_share_twelve_partitions_and_take_over_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let bootstrap = broker.bootstrap();
    let (ok, _, err) = strand(&["topic", "create", "events", "--partitions", "12", "--bootstrap", &bootstrap], "");
    assert!(ok, "{err}");
    produce(&bootstrap, "events", 0, 3000);
    let mut members: Vec<Member> = (0..3).map(|_| Member::start(&bootstrap, "events", "workers")).collect();
    // Disjoint assignments that cover every partition, four each.
    wait_until("three members owning four partitions each", Duration::from_secs(30), || {
        let Ok((_, rows)) = try_describe(&bootstrap, "workers") else { return false };
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for (_, _, _, owner) in rows.values() {
            *per.entry(owner.clone()).or_default() += 1;
        }
        rows.len() == 12 && !per.contains_key("-") && per.len() == 3 && per.values().all(|&n| n == 4)
    });
    let all: Vec<String> = (0..3000).map(|i| format!("v{i}")).collect();
    wait_until("the first 3,000 records consumed", Duration::from_secs(20), || {
        let seen: BTreeSet<String> = members.iter().flat_map(Member::values).collect();
        all.iter().all(|v| seen.contains(v))
    });
    // Commits land within a second (auto-commit interval) of consumption.
    wait_until("every partition committed to its end", Duration::from_secs(10), || {
        describe(&bootstrap, "workers").1.values().all(|(c, end, lag, _)| *c == Some(*end) && *lag == 0)
    });

    // Kill one with SIGKILL: no leave, no commit. Its partitions move once its
    // 2 s session expires.
    members[2].kill();
    let dead = members.remove(2);
    produce(&bootstrap, "events", 3000, 3000);
    let started = Instant::now();
    let all: Vec<String> = (0..6000).map(|i| format!("v{i}")).collect();
    wait_until("all 6,000 records consumed by the survivors", Duration::from_secs(30), || {
        let seen: BTreeSet<String> = members.iter().flat_map(Member::values).chain(dead.values()).collect();
        all.iter().all(|v| seen.contains(v))
    });
    let taken_over = started.elapsed();
    let (out, rows) = describe(&bootstrap, "workers");
    let owners: BTreeSet<&String> = rows.values().map(|r| &r.3).collect();
    assert_eq!(owners.len(), 2, "two members own everything:\n{out}");
    assert!(out.contains("2 members"), "{out}");
    // Session (2 s) plus a rebalance round (heartbeats at most every second).
    assert!(taken_over < Duration::from_secs(15), "took {taken_over:?}");
    // Each record at least once; within a partition, in order per member.
    for member in &members {
        let records = member.records.lock().unwrap();
        let mut last: BTreeMap<u64, u64> = BTreeMap::new();
        for r in records.iter() {
            let (p, o) = (r["partition"].as_u64().unwrap(), r["offset"].as_u64().unwrap());
            if let Some(prev) = last.insert(p, o) {
                assert!(o > prev, "partition {p}: offset {o} after {prev}");
            }
        }
    }
    for member in &mut members {
        member.stop();
    }
    // Stopped members leave: the group has no members, its offsets remain.
    let (ok, out, _) = strand(&["group", "list", "--bootstrap", &bootstrap], "");
    assert!(ok);
    assert!(out.contains("workers\t0 members"), "{out}");
}

fn group_consumer(bootstrap: &str, group: &str, topic: &str) -> Consumer {
    let mut consumer = Consumer::new(
        Client::connect(bootstrap).unwrap(),
        ConsumerConfig { reset: Reset::Earliest, fetch_max_wait_ms: 100, ..ConsumerConfig::default() },
    );
    let config = GroupConfig { session_timeout: Duration::from_secs(3), auto_commit: false, ..GroupConfig::default() };
    block_on(consumer.subscribe(group, &[topic], config)).unwrap();
    consumer
}

fn poll_values(consumer: &mut Consumer, want: usize, limit: Duration) -> Vec<String> {
    let mut values = Vec::new();
    let deadline = Instant::now() + limit;
    while values.len() < want {
        assert!(Instant::now() < deadline, "{} of {want} records in {limit:?}", values.len());
        for record in consumer.poll(Duration::from_millis(200)).unwrap() {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}

#[test]
fn committed_offsets_survive_a_restart_and_a_new_member_resumes_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = Broker::start(&data, &[]);
    let bootstrap = broker.bootstrap();
    block_on(Client::connect(&bootstrap).unwrap().create_topic("ledger", 2, &[])).unwrap();
    produce(&bootstrap, "ledger", 0, 100);
    let mut consumer = group_consumer(&bootstrap, "audit", "ledger");
    let first = poll_values(&mut consumer, 100, Duration::from_secs(20));
    assert_eq!(first.len(), 100);
    block_on(consumer.commit()).unwrap();
    block_on(consumer.close()).unwrap();
    produce(&bootstrap, "ledger", 100, 50);
    assert!(broker.stop(), "clean shutdown");

    let broker = Broker::start(&data, &[]);
    let bootstrap = broker.bootstrap();
    let mut consumer = group_consumer(&bootstrap, "audit", "ledger");
    let rest = poll_values(&mut consumer, 50, Duration::from_secs(20));
    let mut got: Vec<u64> = rest.iter().map(|v| v[1..].parse().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (100..150).collect::<Vec<u64>>(), "resumed exactly after the commit");
    // Nothing older comes back.
    assert!(consumer.poll(Duration::from_millis(500)).unwrap().is_empty());
}

fn request(client: &Client, request: Request) -> Response {
    block_on(client.request(request)).unwrap()
}

fn join(client: &Client, group: &str, member: &str, timeout_ms: u32) -> JoinGroupResponse {
    let Response::JoinGroup(joined) = request(
        client,
        Request::JoinGroup(JoinGroupRequest {
            group: group.into(),
            member_id: member.into(),
            topics: vec!["t".into()],
            session_timeout_ms: timeout_ms,
            strategy: String::new(),
        }),
    ) else {
        panic!("not a JoinGroup response")
    };
    joined
}

fn commit(
    client: &Client,
    group: &str,
    member: &str,
    generation: u32,
    partition: u32,
    offset: u64,
) -> OffsetCommitResponse {
    let Response::OffsetCommit(response) = request(
        client,
        Request::OffsetCommit(OffsetCommitRequest {
            group: group.into(),
            member_id: member.into(),
            generation,
            topics: vec![CommitTopic {
                topic: "t".into(),
                partitions: vec![CommitPartition { partition, offset, metadata: "m".into() }],
            }],
        }),
    ) else {
        panic!("not an OffsetCommit response")
    };
    response
}

#[test]
fn bad_group_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strand.toml");
    std::fs::write(&config, "[groups]\nmembers_max = 3\ninitial_rebalance_delay_ms = 0\n").unwrap();
    let broker = Broker::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    block_on(client.create_topic("t", 4, &[])).unwrap();
    produce(&broker.bootstrap(), "t", 0, 40);

    let a = join(&client, "g", "", 5000);
    assert_eq!(a.error, ErrorCode::None);
    let a_partitions: Vec<u32> = a.assigned.iter().flat_map(|t| t.partitions.clone()).collect();
    assert_eq!(a_partitions, [0, 1, 2, 3]);
    // A commit by the owner, at the current generation, within the log: accepted.
    let ok = commit(&client, "g", &a.member_id, a.generation, 0, 5);
    assert_eq!((ok.error, ok.topics[0].partitions[0].error), (ErrorCode::None, ErrorCode::None));
    // b joins: a new generation; a's commit with the old one is refused.
    let b = join(&client, "g", "", 5000);
    assert_eq!(b.generation, a.generation + 1);
    assert_eq!(commit(&client, "g", &a.member_id, a.generation, 0, 6).error, ErrorCode::StaleGeneration);
    // b owns nothing yet (a has not released): its commit is refused per partition.
    let not_owner = commit(&client, "g", &b.member_id, b.generation, 0, 6);
    assert_eq!(not_owner.topics[0].partitions[0].error, ErrorCode::NotAssigned);
    // Out of range, unknown topic partition, unknown member, admin commit with members.
    let beyond = commit(&client, "g", &a.member_id, b.generation, 1, 1_000_000);
    assert_eq!(beyond.topics[0].partitions[0].error, ErrorCode::OffsetOutOfRange);
    let missing = commit(&client, "g", &a.member_id, b.generation, 9, 0);
    assert_eq!(missing.topics[0].partitions[0].error, ErrorCode::UnknownPartition);
    assert_eq!(commit(&client, "g", "nobody", b.generation, 0, 1).error, ErrorCode::UnknownMember);
    assert_eq!(commit(&client, "g", "", 0, 0, 1).error, ErrorCode::GroupNotEmpty);
    // Joins: bad session timeouts, bad ids, unknown member ids, and the member bound.
    assert_eq!(join(&client, "g", "", 10).error, ErrorCode::InvalidSessionTimeout);
    assert_eq!(join(&client, "bad\tid", "", 5000).error, ErrorCode::InvalidGroupId);
    assert_eq!(join(&client, &"g".repeat(250), "", 5000).error, ErrorCode::InvalidGroupId);
    assert_eq!(join(&client, "g", "forged", 5000).error, ErrorCode::UnknownMember);
    assert_eq!(join(&client, "g", "", 5000).error, ErrorCode::None);
    assert_eq!(join(&client, "g", "", 5000).error, ErrorCode::GroupFull, "members_max = 3");
    // Unknown groups.
    let Response::DescribeGroup(unknown) =
        request(&client, Request::DescribeGroup(DescribeGroupRequest { group: "nope".into() }))
    else {
        panic!()
    };
    assert_eq!(unknown.error, ErrorCode::UnknownGroup);
    let (ok, _, err) = strand(&["group", "describe", "nope", "--bootstrap", &broker.bootstrap()], "");
    assert!(!ok);
    assert_eq!(err.trim(), "strand: unknown group \"nope\"");
    let (ok, _, err) = strand(
        &["group", "reset-offsets", "g", "--topic", "t", "--to", "earliest", "--bootstrap", &broker.bootstrap()],
        "",
    );
    assert!(!ok);
    assert!(err.contains("has live members"), "{err}");
    let Response::Heartbeat(beat) = request(
        &client,
        Request::Heartbeat(HeartbeatRequest { group: "g".into(), member_id: "nobody".into(), owned: vec![] }),
    ) else {
        panic!()
    };
    assert_eq!(beat.error, ErrorCode::UnknownMember);
}

#[test]
fn describe_shows_lag_while_a_producer_runs_and_reset_moves_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let bootstrap = broker.bootstrap();
    block_on(Client::connect(&bootstrap).unwrap().create_topic("clicks", 3, &[])).unwrap();
    produce(&bootstrap, "clicks", 0, 300);
    let mut consumer = group_consumer(&bootstrap, "stats", "clicks");
    poll_values(&mut consumer, 1, Duration::from_secs(20));
    block_on(consumer.commit_offsets(&[("clicks", 0, 10), ("clicks", 1, 20), ("clicks", 2, 30)])).unwrap();
    // A producer keeps writing while describe runs.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producing = {
        let (bootstrap, running) = (bootstrap.clone(), running.clone());
        std::thread::spawn(move || {
            let mut next = 300;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                produce(&bootstrap, "clicks", next, 30);
                next += 30;
            }
        })
    };
    let mut ends_before = BTreeMap::new();
    for _ in 0..3 {
        let (out, rows) = describe(&bootstrap, "stats");
        assert!(out.contains("1 member,"), "{out}");
        for (p, (committed, end, lag, owner)) in &rows {
            assert_eq!(*committed, Some(10 * (*p as i64 + 1)), "{out}");
            assert_eq!(*lag, end - committed.unwrap(), "{out}");
            assert!(*end >= *ends_before.get(p).unwrap_or(&0), "log end moves forward");
            assert_ne!(owner, "-");
            ends_before.insert(*p, *end);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    producing.join().unwrap();
    drop(consumer);
    let (ok, out, err) = strand(
        &["group", "reset-offsets", "stats", "--topic", "clicks", "--to", "earliest", "--bootstrap", &bootstrap],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "group stats: clicks-0: 0, clicks-1: 0, clicks-2: 0");
    let (_, rows) = describe(&bootstrap, "stats");
    assert!(rows.values().all(|(c, end, lag, owner)| *c == Some(0) && lag == end && owner == "-"));
}

#[test]
fn an_incremental_rebalance_leaves_unmoved_partitions_flowing() {
    let dir = tempfile::tempdir().unwrap();
    // This test is about later rebalances: the first member gets its partitions at once.
    let config = dir.path().join("strand.toml");
    std::fs::write(&config, "[groups]\ninitial_rebalance_delay_ms = 0\n").unwrap();
    let broker = Broker::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let bootstrap = broker.bootstrap();
    block_on(Client::connect(&bootstrap).unwrap().create_topic("ticks", 4, &[])).unwrap();
    // A steady stream: one record per partition every 10 ms.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producing = {
        let (bootstrap, running) = (bootstrap.clone(), running.clone());
        std::thread::spawn(move || {
            let producer = Producer::new(
                Client::connect(&bootstrap).unwrap(),
                ProducerConfig { linger: Duration::ZERO, ..ProducerConfig::default() },
            );
            let mut i = 0u64;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                for partition in 0..4 {
                    producer
                        .send(ProducerRecord::new("ticks", format!("v{i}").as_bytes()).partition(partition))
                        .unwrap();
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            producer.flush();
        })
    };
    let mut a = group_consumer(&bootstrap, "flow", "ticks");
    // a alone: all four partitions. Record when each partition's records arrive.
    let mut arrivals: BTreeMap<u32, Vec<Instant>> = BTreeMap::new();
    let pump = |consumer: &mut Consumer, arrivals: &mut BTreeMap<u32, Vec<Instant>>, for_: Duration| {
        let until = Instant::now() + for_;
        while Instant::now() < until {
            for record in consumer.poll(Duration::from_millis(50)).unwrap() {
                arrivals.entry(record.partition).or_default().push(Instant::now());
            }
        }
    };
    pump(&mut a, &mut arrivals, Duration::from_secs(2));
    assert_eq!(arrivals.len(), 4);
    // b joins from another thread; a keeps polling through the rebalance.
    let joining = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            let mut b = group_consumer(&bootstrap, "flow", "ticks");
            let mut got = BTreeSet::new();
            let until = Instant::now() + Duration::from_secs(6);
            while Instant::now() < until {
                for record in b.poll(Duration::from_millis(50)).unwrap() {
                    got.insert(record.partition);
                }
            }
            got
        })
    };
    let rebalance_started = Instant::now();
    arrivals.clear();
    pump(&mut a, &mut arrivals, Duration::from_secs(6));
    let events = a.events();
    let b_partitions = joining.join().unwrap();
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    producing.join().unwrap();
    assert_eq!(b_partitions.len(), 2, "b took two partitions: {b_partitions:?}");
    let revoked: BTreeSet<u32> = events
        .iter()
        .filter_map(|e| match e {
            GroupEvent::Revoked(tps) => Some(tps.iter().map(|tp| tp.1)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(revoked, b_partitions, "a gave up exactly what b took");
    // The partitions that stayed with a flowed without a pause through the rebalance:
    // records every 10 ms, never a gap near a heartbeat round or a session.
    for (partition, times) in &arrivals {
        if revoked.contains(partition) {
            continue;
        }
        let mut previous = rebalance_started;
        let mut gap = Duration::ZERO;
        for t in times {
            gap = gap.max(t.duration_since(previous));
            previous = *t;
        }
        assert!(gap < Duration::from_millis(700), "partition {partition} paused {gap:?} during the rebalance");
        assert!(times.len() > 100, "partition {partition}: {} records in 6 s", times.len());
    }
}

#[test]
fn commits_are_compacted_and_the_last_of_each_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strand.toml");
    std::fs::write(&config, "[groups]\noffsets_segment_bytes = 65536\noffsets_compact_bytes = 262144\n").unwrap();
    let data = dir.path().join("data");
    let args = ["--config", config.to_str().unwrap(), "--cores", "0"];
    let mut broker = Broker::start(&data, &args);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    block_on(client.create_topic("t", 2, &[])).unwrap();
    produce(&broker.bootstrap(), "t", 0, 600);
    // 400 administrative commits of 2 KiB each: 800 KiB of commit records, three
    // times the compaction threshold.
    let metadata = "m".repeat(2048);
    for i in 0..400u64 {
        let Response::OffsetCommit(done) = request(
            &client,
            Request::OffsetCommit(OffsetCommitRequest {
                group: "compacted".into(),
                member_id: String::new(),
                generation: 0,
                topics: vec![CommitTopic {
                    topic: "t".into(),
                    partitions: vec![
                        CommitPartition { partition: 0, offset: i % 200, metadata: format!("{i}:{metadata}") },
                        CommitPartition { partition: 1, offset: 7, metadata: "fixed".into() },
                    ],
                }],
            }),
        ) else {
            panic!()
        };
        assert_eq!(done.error, ErrorCode::None);
    }
    // The offsets partition is compacted within a few seconds: its earliest offset
    // moves past the first commits, and once the deleted segments' files are gone
    // (they leave the log at once and are unlinked after), it stays far below what
    // was written. The standby segment (the next one, created ahead of its roll)
    // holds no data and is not counted.
    let stored_bytes = || -> u64 {
        std::fs::read_dir(data.join("topics"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("__consumer_offsets"))
            .flat_map(|topic| walk(&topic.path()))
            .filter(|(path, _)| !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("standby.")))
            .map(|(_, size)| size)
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let earliest =
            block_on(client.list_offset("__consumer_offsets", 0, strand_client::OffsetSpec::Earliest)).unwrap();
        let stored = stored_bytes();
        if earliest > 100 && stored < 600 * 1024 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in 20 s: earliest offset {earliest}, {stored} bytes kept for 800 KiB of commits\n{}",
            broker.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(broker.stop());
    // After a restart, each partition's last commit is the one that counts.
    let broker = Broker::start(&data, &args);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    let Response::OffsetFetch(fetched) =
        request(&client, Request::OffsetFetch(OffsetFetchRequest { group: "compacted".into(), topics: vec![] }))
    else {
        panic!()
    };
    let parts = &fetched.topics[0].partitions;
    assert_eq!((parts[0].partition, parts[0].offset), (0, 399 % 200));
    assert!(parts[0].metadata.starts_with("399:"));
    assert_eq!((parts[1].offset, parts[1].metadata.as_str()), (7, "fixed"));
}

/// Bytes of the files under `dir`.
fn walk(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut sizes = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sizes.extend(walk(&path));
        } else {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            sizes.push((path, size));
        }
    }
    sizes
}

#[test]
fn a_topic_grows_and_producers_consumers_and_groups_take_in_its_new_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut broker = Broker::start(&data, &["--cores", "0,1"]);
    let bootstrap = broker.bootstrap();
    let client = Client::connect(&bootstrap).unwrap();
    block_on(client.create_topic("grows", 2, &[("fsync", "never")])).unwrap();
    // A group member and two producers that know the topic with 2 partitions: one
    // asks for metadata every 200 ms, the other only when a partition is unknown.
    let mut member = group_consumer(&bootstrap, "growers", "grows");
    let refreshing = Producer::new(
        Client::connect(&bootstrap).unwrap(),
        ProducerConfig {
            acks: Acks::Leader,
            batch_bytes: 1024,
            linger: Duration::ZERO,
            metadata_max_age: Duration::from_millis(200),
            ..Default::default()
        },
    );
    let explicit = Producer::new(Client::connect(&bootstrap).unwrap(), ProducerConfig::default());
    let send = |producer: &Producer, value: &str, partition: Option<u32>| {
        let record = ProducerRecord::new("grows", value.as_bytes());
        let record = match partition {
            Some(p) => record.partition(p),
            None => record,
        };
        block_on(producer.send(record).unwrap()).unwrap().partition
    };
    assert!((0..20).all(|i| send(&refreshing, &format!("before-{i}"), None) < 2));
    poll_values(&mut member, 20, Duration::from_secs(20));

    let (ok, out, err) = strand(&["topic", "alter", "grows", "--partitions", "4", "--bootstrap", &bootstrap], "");
    assert!(ok, "{err}");
    assert!(out.contains("topic grows has 4 partitions"), "{out}");
    let (ok, out, err) = strand(&["topic", "describe", "grows", "--bootstrap", &bootstrap], "");
    assert!(ok, "{err}");
    assert!(out.contains("4 partitions") && out.contains("\n3\t"), "{out}");

    // A record for a partition the producer has not heard of makes it ask again.
    assert_eq!(send(&explicit, "explicit-3", Some(3)), 3);
    // The refreshing producer spreads unkeyed records over all four partitions.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut landed = BTreeSet::new();
    let mut sent = 0;
    while landed.len() < 4 {
        assert!(Instant::now() < deadline, "records landed in {landed:?} only");
        landed.insert(send(&refreshing, &format!("after-{sent}"), None));
        sent += 1;
    }
    // The member takes in the new partitions and reads what went to them.
    let values = poll_values(&mut member, sent + 1, Duration::from_secs(20));
    assert!(values.contains(&"explicit-3".to_string()), "{values:?}");
    let assigned: BTreeSet<u32> = member.assignment().iter().map(|(_, p, _)| *p).collect();
    assert_eq!(assigned, BTreeSet::from([0, 1, 2, 3]));

    // A count never shrinks or stays; the internal topic and unknown topics are refused.
    let refused = |topic: &str, count: u32| match block_on(client.create_partitions(topic, count)) {
        Err(strand_client::ClientError::Broker { code, message }) => (code, message),
        Err(strand_client::ClientError::UnknownTopic(_)) => (ErrorCode::UnknownTopic, String::new()),
        other => panic!("{topic} to {count}: {other:?}"),
    };
    let (code, message) = refused("grows", 3);
    assert_eq!(code, ErrorCode::InvalidPartitions);
    assert!(message.contains("has 4 partitions") && message.contains("only grow"), "{message}");
    assert_eq!(refused("grows", 4).0, ErrorCode::InvalidPartitions);
    assert_eq!(refused("grows", 100_001).0, ErrorCode::InvalidPartitions);
    assert_eq!(refused("nope", 4).0, ErrorCode::UnknownTopic);
    assert_eq!(refused("__consumer_offsets", 8).0, ErrorCode::InvalidTopicName);

    // The new partitions and their records survive a restart.
    drop((member, refreshing, explicit));
    assert!(broker.stop());
    let broker = Broker::start(&data, &["--cores", "0,1"]);
    let client = Client::connect(&broker.bootstrap()).unwrap();
    assert_eq!(block_on(client.partition_count("grows")).unwrap(), 4);
    let latest = block_on(client.list_offset("grows", 3, strand_client::OffsetSpec::Latest)).unwrap();
    assert!(latest >= 1, "partition 3 kept its records: {latest}");
}

#[test]
fn members_started_together_share_the_first_assignment_and_the_group_keeps_its_generation() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]);
    let bootstrap = broker.bootstrap();
    let (ok, _, err) = strand(&["topic", "create", "burst", "--partitions", "12", "--bootstrap", &bootstrap], "");
    assert!(ok, "{err}");
    produce(&bootstrap, "burst", 0, 24_000);
    // Started at the same moment: without the initial rebalance delay the first to
    // join took all 12 partitions and read all 24,000 records before the others joined.
    let mut members: Vec<Member> = (0..3).map(|_| Member::start(&bootstrap, "burst", "together")).collect();
    wait_until("all 24,000 records consumed", Duration::from_secs(60), || {
        members.iter().map(|m| m.values().len()).sum::<usize>() >= 24_000
    });
    let partitions_of = |member: &Member| -> BTreeSet<u64> {
        member.records.lock().unwrap().iter().map(|r| r["partition"].as_u64().unwrap()).collect()
    };
    let mut seen = BTreeSet::new();
    for member in &members {
        let partitions = partitions_of(member);
        assert_eq!(partitions.len(), 4, "each member read four partitions from the start: {partitions:?}");
        assert!(partitions.iter().all(|p| seen.insert(*p)), "disjoint");
    }
    let (out, _) = describe(&bootstrap, "together");
    let generation = |out: &str| -> u64 {
        out.split("generation ").nth(1).unwrap().split(',').next().unwrap().trim().parse().unwrap()
    };
    let live_generation = generation(&out);
    assert!(live_generation >= 1, "{out}");
    for member in &mut members {
        member.stop();
    }
    // The last member left: the group keeps its last generation.
    let (out, _) = describe(&bootstrap, "together");
    assert!(out.contains("0 members"), "{out}");
    assert!(generation(&out) >= live_generation, "{out}");
}
