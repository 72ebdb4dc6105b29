//! A cluster of real `strand` brokers on loopback, each with its own ports and data
//! directory, sharing this machine's cores: the metadata quorum, registration and
//! fencing, partitions placed over the brokers and served by their leaders, Kafka
//! clients finding every broker, and what a broker of another cluster, a node id in
//! use, a killed broker and a stopped one come to.

mod common;

use common::kafka::{batch, latest_offset, metadata, KafkaConnection};
use common::{free_ports, wait_for, Broker};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataResponse};
use std::path::PathBuf;
use std::time::Duration;

/// One broker's ports: its native listener (its shard's port follows), its Kafka
/// listener and its quorum address.
#[derive(Clone, Copy)]
struct Ports {
    native: u16,
    kafka: u16,
    quorum: u16,
    admin: u16,
}

/// The brokers of one cluster: their configuration files, data directories and, when
/// running, the processes.
struct Cluster {
    dir: tempfile::TempDir,
    ports: Vec<Ports>,
    brokers: Vec<Option<Broker>>,
}

/// How long the cluster may take to notice a broker gone or back (its session is
/// 1.5 s; a loaded machine stretches everything).
const SETTLE: Duration = Duration::from_secs(30);

impl Cluster {
    /// Configures `n` brokers (node ids 1 to `n`, every one a voter).
    fn new(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = (0..n)
            .map(|_| {
                // native, its shard port, kafka, quorum, admin: five in a row.
                let base = free_ports(4);
                Ports { native: base, kafka: base + 2, quorum: base + 3, admin: base + 4 }
            })
            .collect();
        let cluster = Cluster { dir, ports, brokers: (0..n).map(|_| None).collect() };
        for node in 1..=n {
            cluster.write_config(node, "test-cluster", node);
        }
        cluster
    }

    fn voters(&self) -> String {
        let voters: Vec<String> =
            self.ports.iter().enumerate().map(|(i, p)| format!("\"{}@127.0.0.1:{}\"", i + 1, p.quorum)).collect();
        voters.join(", ")
    }

    fn config_path(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("strand-{node}.toml"))
    }

    fn data_dir(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("data-{node}"))
    }

    /// Writes broker `node`'s configuration, naming `cluster_id`, with node id `id`.
    fn write_config(&self, node: usize, cluster_id: &str, id: usize) {
        let ports = self.ports[node - 1];
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let text = format!(
            "cores = [{core}]\n\
             [[listeners]]\nname = \"native\"\nprotocol = \"native\"\nport = {native}\n\
             [[listeners]]\nname = \"kafka\"\nprotocol = \"kafka\"\nport = {kafka}\n\
             [admin]\nport = {admin}\n\
             [topic_defaults]\nsegment_bytes = 1048576\n\
             [groups]\noffsets_segment_bytes = 1048576\ninitial_rebalance_delay_ms = 0\n\
             [cluster]\nnode_id = {id}\ncluster_id = \"{cluster_id}\"\nvoters = [{voters}]\n",
            core = (node - 1) % cores,
            native = ports.native,
            kafka = ports.kafka,
            admin = ports.admin,
            voters = self.voters(),
        );
        std::fs::write(self.config_path(node), text).unwrap();
    }

    /// Starts broker `node` (it reports ready once it has registered, which takes a
    /// majority of voters up: start those together with `start_all`).
    fn try_start(&self, node: usize) -> Result<Broker, String> {
        let config = self.config_path(node);
        Broker::try_as_configured(
            &self.data_dir(node),
            &["--config", config.to_str().unwrap()],
            &[("RUST_LOG", "info")],
        )
    }

    fn start(&mut self, node: usize) {
        let broker = self.try_start(node).unwrap_or_else(|message| panic!("broker {node}: {message}"));
        self.brokers[node - 1] = Some(broker);
    }

    /// Starts every broker at once.
    fn start_all(&mut self) {
        let nodes: Vec<usize> = (1..=self.ports.len()).collect();
        let this = &*self;
        let started: Vec<Result<Broker, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = nodes.iter().map(|&node| scope.spawn(move || this.try_start(node))).collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        for (node, started) in nodes.into_iter().zip(started) {
            self.brokers[node - 1] = Some(started.unwrap_or_else(|message| panic!("broker {node}: {message}")));
        }
    }

    fn broker(&mut self, node: usize) -> &mut Broker {
        self.brokers[node - 1].as_mut().expect("running")
    }

    fn kafka(&self, node: usize) -> KafkaConnection {
        KafkaConnection::connect(self.ports[node - 1].kafka)
    }

    fn bootstrap(&self) -> String {
        let all: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{}", p.kafka)).collect();
        all.join(",")
    }
}

/// Creates `name` with `partitions` partitions through broker `node`'s Kafka listener.
fn create_topic(conn: &mut KafkaConnection, name: &str, partitions: i32, replication_factor: i16) -> (i16, String) {
    let mut topic = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
    topic.name = common::kafka::name(name);
    topic.num_partitions = partitions;
    topic.replication_factor = replication_factor;
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = 30_000;
    let response: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 5, &request);
    let result = &response.topics[0];
    (result.error_code, result.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default())
}

/// Each partition's leader (-1: none) in `response`'s topic `name`.
fn leaders(response: &MetadataResponse, name: &str) -> Vec<i32> {
    let topic = response.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name)).unwrap();
    let mut partitions: Vec<_> = topic.partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
    partitions.sort();
    partitions.into_iter().map(|(_, leader)| leader).collect()
}

fn broker_ids(response: &MetadataResponse) -> Vec<i32> {
    let mut ids: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    ids
}

#[test]
fn three_brokers_share_metadata_and_kafka_clients_reach_every_leader() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    // Every broker registered and was unfenced: each lists all three.
    for node in 1..=3 {
        let mut conn = cluster.kafka(node);
        wait_for("every broker listed", SETTLE, || broker_ids(&metadata(&mut conn, 12, &[], false)) == [1, 2, 3]);
        let response = metadata(&mut conn, 12, &[], false);
        let own = response.brokers.iter().find(|b| b.node_id.0 == node as i32).unwrap();
        assert_eq!(own.port, i32::from(cluster.ports[node - 1].kafka), "each broker at its own Kafka listener");
        assert_eq!(response.cluster_id.as_ref().unwrap().as_str(), "test-cluster");
    }
    // A topic created through one broker is known to every broker, its partitions
    // led by all three.
    let mut first = cluster.kafka(1);
    assert_eq!(create_topic(&mut first, "orders", 6, 1), (0, String::new()));
    let mut seen = Vec::new();
    for node in 1..=3 {
        let mut conn = cluster.kafka(node);
        wait_for("the topic on every broker", SETTLE, || {
            let response = metadata(&mut conn, 12, &["orders"], false);
            response.topics[0].error_code == 0 && leaders(&response, "orders").iter().all(|&l| l > 0)
        });
        seen.push(leaders(&metadata(&mut conn, 12, &["orders"], false), "orders"));
    }
    assert!(seen.windows(2).all(|pair| pair[0] == pair[1]), "every broker tells the same leaders: {seen:?}");
    let mut led: Vec<i32> = seen[0].clone();
    led.sort();
    led.dedup();
    assert_eq!(led, [1, 2, 3], "partitions spread over the brokers: {:?}", seen[0]);
    // A broker that does not lead a partition says so (the client then asks metadata).
    let partition_led_by_2 = seen[0].iter().position(|&leader| leader == 2).unwrap() as i32;
    let request = common::kafka::produce_request("orders", partition_led_by_2, -1, batch(&[("k", "v")]));
    let response: kafka_protocol::messages::ProduceResponse = first.call(ApiKey::Produce, 9, &request);
    let code = response.responses[0].partition_responses[0].error_code;
    assert_eq!(code, kafka_protocol::ResponseError::NotLeaderOrFollower.code());

    // confluent-kafka produces with acks=all to every leader and consumes in a group
    // whose coordinator is one of the brokers: every acknowledged value read back
    // once, at the offset it was acknowledged at.
    let script = common::clients::script("cluster.py");
    let args = [script.to_str().unwrap(), &cluster.bootstrap(), "orders", "cluster-group", "3000"];
    let (ok, stdout, stderr) = common::run_tool(common::clients::python().to_str().unwrap(), &args, "");
    assert!(ok, "cluster.py failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let mut acked: Vec<(i64, i64, String)> = rows(&summary["acked"]);
    let mut consumed = rows(&summary["consumed"]);
    assert_eq!(acked.len(), 3000, "every value acknowledged: {}", summary["errors"]);
    acked.sort();
    consumed.sort();
    assert_eq!(consumed, acked, "read back exactly as acknowledged");
    let partitions: std::collections::BTreeSet<i64> = acked.iter().map(|row| row.0).collect();
    assert_eq!(partitions.len(), 6, "the client spread the values over every partition");

    // The native client and the CLI, through any broker: the producer sends each
    // record to its partition's leader, and `strand topic describe` asks each leader
    // for its offsets.
    let native = format!("127.0.0.1:{}", cluster.ports[2].native);
    let lines: String = (0..60).map(|i| format!("key-{i}:native-{i}\n")).collect();
    let (ok, _, err) = common::strand(&["produce", "orders", "--key-separator", ":", "--bootstrap", &native], &lines);
    assert!(ok && err.contains("produced 60 records"), "{err}");
    let (ok, out, err) = common::strand(&["topic", "describe", "orders", "--bootstrap", &native], "");
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> =
        out.lines().skip(2).take_while(|l| *l != "config:").map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 6, "{out}");
    for row in &rows {
        let partition: usize = row[0].parse().unwrap();
        assert_eq!(row[1], seen[0][partition].to_string(), "the leader: {out}");
        assert_eq!((row[2], row[3]), (row[1], row[1]), "one replica, in sync: {out}");
    }
    let total: u64 = rows.iter().map(|row| row[6].parse::<u64>().unwrap()).sum();
    assert_eq!(total, 3060, "every record counted at its leader: {out}");
    let (ok, out, err) = common::strand(&["cluster", "status", "--bootstrap", &native], "");
    assert!(ok, "{err}");
    assert!(out.contains("cluster test-cluster: 3 brokers, controller broker "), "{out}");
    for node in 1..=3 {
        let row = format!("{node}\talive\t-\t127.0.0.1:{}", cluster.ports[node - 1].native);
        assert!(out.contains(&row), "{row:?} in {out}");
    }
    assert!(out.contains("0 offline, 0 under-replicated"), "{out}");
    for node in 1..=3 {
        assert!(cluster.broker(node).stop(), "broker {node} stops cleanly:\n{}", cluster.broker(node).stderr());
    }
}

fn rows(value: &serde_json::Value) -> Vec<(i64, i64, String)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row[0].as_i64().unwrap(), row[1].as_i64().unwrap(), row[2].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_killed_broker_s_partitions_go_offline_and_return_with_their_data() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let mut first = cluster.kafka(1);
    wait_for("every broker listed", SETTLE, || broker_ids(&metadata(&mut first, 12, &[], false)) == [1, 2, 3]);
    assert_eq!(create_topic(&mut first, "events", 3, 1), (0, String::new()));
    wait_for("every partition led", SETTLE, || {
        leaders(&metadata(&mut first, 12, &["events"], false), "events").iter().all(|&l| l > 0)
    });
    let led = leaders(&metadata(&mut first, 12, &["events"], false), "events");
    // Ten records to each partition, through its leader.
    for (partition, &leader) in led.iter().enumerate() {
        let mut conn = cluster.kafka(leader as usize);
        wait_for("the leader serves its partition", SETTLE, || {
            let records: Vec<(String, String)> =
                (0..10).map(|i| (format!("k{i}"), format!("v{partition}-{i}"))).collect();
            let records: Vec<(&str, &str)> = records.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let request = common::kafka::produce_request("events", partition as i32, -1, batch(&records));
            let response: kafka_protocol::messages::ProduceResponse = conn.call(ApiKey::Produce, 9, &request);
            response.responses[0].partition_responses[0].error_code == 0
        });
    }
    let victim = led[0] as usize;
    let survivor = (1..=3).find(|&n| n != victim).unwrap();
    cluster.broker(victim).kill();
    // The controller fences it once its session runs out: it leaves the broker list,
    // and the partition it held has no leader (one replica: offline, not lost).
    let mut conn = cluster.kafka(survivor);
    wait_for("the killed broker fenced", SETTLE, || {
        !broker_ids(&metadata(&mut conn, 12, &[], false)).contains(&(victim as i32))
    });
    wait_for("its partition offline", SETTLE, || {
        leaders(&metadata(&mut conn, 12, &["events"], false), "events")[0] == -1
    });
    let response = metadata(&mut conn, 12, &["events"], false);
    let offline = response.topics[0].partitions.iter().find(|p| p.partition_index == 0).unwrap();
    assert_eq!(offline.error_code, kafka_protocol::ResponseError::LeaderNotAvailable.code());
    let native = format!("127.0.0.1:{}", cluster.ports[survivor - 1].native);
    let (ok, out, err) = common::strand(&["cluster", "status", "--bootstrap", &native], "");
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{victim}\tfenced\t")), "{out}");
    assert!(out.contains("1 offline") && out.contains("offline: events-0"), "{out}");
    let admin = format!("127.0.0.1:{}", cluster.ports[survivor - 1].admin);
    assert_eq!(common::metric(&admin, "strand_cluster_partitions_offline"), 1.0);
    assert_eq!(common::metric(&admin, "strand_cluster_brokers"), 3.0, "alive and fenced");
    let (_, body) = common::get(&admin, "/metrics");
    assert!(body.contains("strand_cluster_brokers{state=\"fenced\"} 1"), "{body}");
    let active: f64 = (1..=3)
        .filter(|&n| n != victim)
        .map(|n| {
            common::metric(&format!("127.0.0.1:{}", cluster.ports[n - 1].admin), "strand_cluster_controller_active")
        })
        .sum();
    assert_eq!(active, 1.0, "one of the two live brokers leads the quorum");
    // The other partitions are still served.
    for (partition, &leader) in led.iter().enumerate().skip(1) {
        if leader as usize == victim {
            continue;
        }
        let mut conn = cluster.kafka(leader as usize);
        let (code, _, _) = produce_to(&mut conn, "events", partition as i32);
        assert_eq!(code, 0, "partition {partition} on broker {leader} still takes writes");
    }
    // Back: it registers anew, is unfenced, leads its partition again, with its data.
    cluster.start(victim);
    wait_for("the partition led again", SETTLE, || {
        leaders(&metadata(&mut conn, 12, &["events"], false), "events")[0] == victim as i32
    });
    let mut back = cluster.kafka(victim);
    wait_for("its records served", SETTLE, || latest_offset(&mut back, "events") == 10);
    for node in 1..=3 {
        assert!(cluster.broker(node).stop(), "broker {node} stops cleanly");
    }
}

/// One record to `partition`: the error code, base offset and message.
fn produce_to(conn: &mut KafkaConnection, topic: &str, partition: i32) -> (i16, i64, Option<String>) {
    let request = common::kafka::produce_request(topic, partition, -1, batch(&[("k", "v")]));
    let response: kafka_protocol::messages::ProduceResponse = conn.call(ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset, answer.error_message.as_ref().map(|m| m.to_string()))
}

#[test]
fn a_stopped_broker_hands_over_before_it_exits() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let mut first = cluster.kafka(1);
    wait_for("every broker listed", SETTLE, || broker_ids(&metadata(&mut first, 12, &[], false)) == [1, 2, 3]);
    // SIGTERM: the controller fences it at once (controlled shutdown), and it exits 0.
    assert!(cluster.broker(3).stop(), "broker 3 stops cleanly:\n{}", cluster.broker(3).stderr());
    let said = cluster.brokers[2].as_ref().unwrap().stderr();
    assert!(said.contains("controlled shutdown: leaderships handed over"), "{said}");
    wait_for("broker 3 gone from the list", SETTLE, || broker_ids(&metadata(&mut first, 12, &[], false)) == [1, 2]);
    // Two of three voters still make a quorum: metadata still changes.
    assert_eq!(create_topic(&mut first, "after", 2, 1), (0, String::new()));
    let led = leaders(&metadata(&mut first, 12, &["after"], false), "after");
    assert!(led.iter().all(|&l| l == 1 || l == 2), "placed on the live brokers only: {led:?}");
    // And it comes back as a new incarnation.
    cluster.start(3);
    wait_for("broker 3 back", SETTLE, || broker_ids(&metadata(&mut first, 12, &[], false)) == [1, 2, 3]);
    for node in 1..=3 {
        assert!(cluster.broker(node).stop(), "broker {node} stops cleanly");
    }
}

#[test]
fn a_broker_of_another_cluster_or_with_a_node_id_in_use_is_refused() {
    let mut cluster = Cluster::new(3);
    // Broker 3 names another cluster: the others refuse it, and it stops with why.
    cluster.write_config(3, "other-cluster", 3);
    let nodes = [1usize, 2, 3];
    let started: Vec<Result<Broker, String>> = std::thread::scope(|scope| {
        let cluster = &cluster;
        let handles: Vec<_> = nodes.iter().map(|&node| scope.spawn(move || cluster.try_start(node))).collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    let mut started = started.into_iter();
    cluster.brokers[0] = Some(started.next().unwrap().expect("broker 1 joins"));
    cluster.brokers[1] = Some(started.next().unwrap().expect("broker 2 joins"));
    let refused = started.next().unwrap().err().expect("broker 3 is refused");
    let line = refused.lines().find(|line| line.contains("refused this node")).unwrap_or_else(|| panic!("{refused}"));
    assert!(line.contains("other-cluster") && line.contains("test-cluster"), "{line}");
    // The two that agree make a quorum without it, and say who refused them.
    let warned = (0..2).any(|i| cluster.brokers[i].as_ref().unwrap().stderr().contains("voter 3 at"));
    assert!(warned, "a healthy broker names the voter of another cluster");

    // A second broker configured as node 2 (with a quorum address of its own) is
    // refused by the controller while node 2 is alive.
    let imposter = PathBuf::from(cluster.dir.path()).join("imposter.toml");
    let text = std::fs::read_to_string(cluster.config_path(2)).unwrap();
    let ports = free_ports(4);
    let text = text
        .replace(&format!("port = {}", cluster.ports[1].admin), &format!("port = {}", ports + 4))
        .replace(&format!("port = {}", cluster.ports[1].native), &format!("port = {ports}"))
        .replace(&format!("port = {}", cluster.ports[1].kafka), &format!("port = {}", ports + 2))
        .replace(&format!("2@127.0.0.1:{}", cluster.ports[1].quorum), &format!("2@127.0.0.1:{}", ports + 3));
    std::fs::write(&imposter, text).unwrap();
    let data = cluster.dir.path().join("imposter-data");
    let refused = Broker::try_as_configured(&data, &["--config", imposter.to_str().unwrap()], &[])
        .err()
        .expect("the second node 2 is refused");
    assert!(refused.contains("node id 2 is in use"), "{refused}");
    // The real node 2 is still a member.
    let mut conn = cluster.kafka(1);
    wait_for("brokers 1 and 2 listed", SETTLE, || broker_ids(&metadata(&mut conn, 12, &[], false)) == [1, 2]);

    // A data directory that held a single broker is not taken into a cluster.
    let single = cluster.data_dir(3);
    std::fs::create_dir_all(single.join("metadata")).unwrap();
    cluster.write_config(3, "test-cluster", 3);
    let refused = cluster.try_start(3).err().expect("a single broker's directory is refused");
    assert!(refused.contains("holds a single broker's metadata"), "{refused}");
    for node in 1..=2 {
        assert!(cluster.broker(node).stop(), "broker {node} stops cleanly");
    }
}

/// Each partition's (leader, in-sync replicas) in `response`'s topic `name`.
fn layout(response: &MetadataResponse, name: &str) -> Vec<(i32, Vec<i32>)> {
    let topic = response.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name)).unwrap();
    let mut partitions: Vec<_> = topic
        .partitions
        .iter()
        .map(|p| {
            let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
            isr.sort();
            (p.partition_index, p.leader_id.0, isr)
        })
        .collect();
    partitions.sort();
    partitions.into_iter().map(|(_, leader, isr)| (leader, isr)).collect()
}

/// Every record of `topic` through the native client of broker `node`, as
/// (partition, offset, value), sorted.
fn read_all(cluster: &Cluster, node: usize, topic: &str, count: usize) -> Vec<(i64, i64, String)> {
    let native = format!("127.0.0.1:{}", cluster.ports[node - 1].native);
    let count = count.to_string();
    let args = ["consume", topic, "--from", "earliest", "--count", &count, "--format", "json", "--bootstrap", &native];
    let (ok, out, err) = common::strand(&args, "");
    assert!(ok, "{err}");
    let mut rows: Vec<(i64, i64, String)> = out
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let value = record["value"].as_str().unwrap().to_string();
            (record["partition"].as_i64().unwrap(), record["offset"].as_i64().unwrap(), value)
        })
        .collect();
    rows.sort();
    rows
}

/// `count` records to `partition` through its leader with acks=all: each one's offset.
fn produce_acked(
    conn: &mut KafkaConnection,
    topic: &str,
    partition: i32,
    first: usize,
    count: usize,
) -> Vec<(i64, i64, String)> {
    let mut acked = Vec::new();
    for i in first..first + count {
        let value = format!("{topic}-{partition}-{i}");
        let request = common::kafka::produce_request(topic, partition, -1, batch(&[("k", &value)]));
        // A leader whose metadata just arrived may not have opened the log yet
        // (KAFKA_STORAGE_ERROR, retriable): try again, as a client does.
        let deadline = std::time::Instant::now() + SETTLE;
        let offset = loop {
            let response: kafka_protocol::messages::ProduceResponse = conn.call(ApiKey::Produce, 9, &request);
            let answer = &response.responses[0].partition_responses[0];
            let retriable = answer.error_code == kafka_protocol::ResponseError::KafkaStorageError.code();
            if retriable && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            assert_eq!(answer.error_code, 0, "{value}: {:?}", answer.error_message);
            break answer.base_offset;
        };
        acked.push((i64::from(partition), offset, value));
    }
    acked
}

#[test]
fn a_replicated_partition_survives_its_leaders_death_with_every_acknowledged_record() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let mut first = cluster.kafka(1);
    wait_for("every broker listed", SETTLE, || broker_ids(&metadata(&mut first, 12, &[], false)) == [1, 2, 3]);
    assert_eq!(create_topic(&mut first, "ledger", 3, 3), (0, String::new()));
    // A factor above the live brokers is refused, with why.
    let (code, message) = create_topic(&mut first, "too-many", 1, 4);
    assert_eq!(code, kafka_protocol::ResponseError::InvalidReplicationFactor.code(), "{message}");
    let full = |layout: &[(i32, Vec<i32>)]| layout.iter().all(|(leader, isr)| *leader > 0 && isr == &[1, 2, 3]);
    wait_for("every replica in sync", SETTLE, || {
        full(&layout(&metadata(&mut first, 12, &["ledger"], false), "ledger"))
    });
    let led = layout(&metadata(&mut first, 12, &["ledger"], false), "ledger");
    let mut acked = Vec::new();
    for (partition, (leader, _)) in led.iter().enumerate() {
        let mut conn = cluster.kafka(*leader as usize);
        acked.extend(produce_acked(&mut conn, "ledger", partition as i32, 0, 50));
    }
    // The leader of partition 0 dies: an in-sync follower takes over, with every
    // record the old one acknowledged, and takes writes.
    let victim = led[0].0 as usize;
    cluster.broker(victim).kill();
    let survivor = (1..=3).find(|&n| n != victim).unwrap();
    let mut conn = cluster.kafka(survivor);
    wait_for("a new leader for partition 0", SETTLE, || {
        let now = layout(&metadata(&mut conn, 12, &["ledger"], false), "ledger");
        now[0].0 > 0 && now[0].0 != victim as i32
    });
    let now = layout(&metadata(&mut conn, 12, &["ledger"], false), "ledger");
    assert!(!now[0].1.contains(&(victim as i32)), "the dead broker left the in-sync replicas: {now:?}");
    let mut new_leader = cluster.kafka(now[0].0 as usize);
    acked.extend(produce_acked(&mut new_leader, "ledger", 0, 50, 20));
    acked.sort();
    let mut expected = acked.clone();
    expected.retain(|row| row.0 == 0);
    let read: Vec<_> = read_all(&cluster, survivor, "ledger", acked.len()).into_iter().filter(|r| r.0 == 0).collect();
    assert_eq!(read, expected, "partition 0 holds every acknowledged record, each once, at its offset");
    // The dead broker comes back, catches up from the new leader and is in sync
    // again; then the new leader dies too, and it can take over with everything.
    cluster.start(victim);
    wait_for("the returned broker in sync again", SETTLE, || {
        layout(&metadata(&mut conn, 12, &["ledger"], false), "ledger").iter().all(|(_, isr)| isr == &[1, 2, 3])
    });
    let second = now[0].0 as usize;
    cluster.broker(second).kill();
    let last = (1..=3).find(|&n| n != second && n != victim).unwrap();
    let mut conn = cluster.kafka(last);
    wait_for("a third leader for partition 0", SETTLE, || {
        let now = layout(&metadata(&mut conn, 12, &["ledger"], false), "ledger");
        now[0].0 > 0 && now[0].0 != second as i32
    });
    let all = read_all(&cluster, last, "ledger", acked.len());
    assert_eq!(all, acked, "every acknowledged record of every partition, each once, at its offset");
    for node in [victim, last] {
        assert!(cluster.broker(node).stop(), "broker {node} stops cleanly");
    }
}

#[test]
fn confluent_kafka_produces_and_consumes_through_a_leader_kill_with_only_retriable_errors() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let mut first = cluster.kafka(1);
    wait_for("every broker listed", SETTLE, || broker_ids(&metadata(&mut first, 12, &[], false)) == [1, 2, 3]);
    assert_eq!(create_topic(&mut first, "payments", 3, 3), (0, String::new()));
    let full = |layout: &[(i32, Vec<i32>)]| layout.iter().all(|(leader, isr)| *leader > 0 && isr == &[1, 2, 3]);
    wait_for("every replica in sync", SETTLE, || {
        full(&layout(&metadata(&mut first, 12, &["payments"], false), "payments"))
    });
    let led = layout(&metadata(&mut first, 12, &["payments"], false), "payments");
    let script = common::clients::script("failover.py");
    let bootstrap = cluster.bootstrap();
    let python = common::clients::python();
    let run = std::thread::spawn(move || {
        let args = [script.to_str().unwrap(), &bootstrap, "payments", "failover-group", "8"];
        common::run_tool(python.to_str().unwrap(), &args, "")
    });
    // Two seconds in, partition 0's leader dies; it comes back three seconds later.
    std::thread::sleep(Duration::from_secs(2));
    let victim = led[0].0 as usize;
    cluster.broker(victim).kill();
    std::thread::sleep(Duration::from_secs(3));
    cluster.start(victim);
    let (ok, stdout, stderr) = run.join().unwrap();
    assert!(ok, "failover.py failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let errors = summary["errors"].as_array().unwrap();
    let fatal: Vec<_> =
        errors.iter().filter(|e| !e["retriable"].as_bool().unwrap_or(false) && !is_transport(e)).collect();
    assert!(fatal.is_empty(), "only retriable errors: {fatal:?}");
    assert!(summary["failed"].as_array().unwrap().is_empty(), "every value delivered: {}", summary["failed"]);
    let mut acked = rows(&summary["acked"]);
    let mut consumed = rows(&summary["consumed"]);
    assert_eq!(acked.len() as u64, summary["sent"].as_u64().unwrap(), "every value acknowledged");
    acked.sort();
    consumed.sort();
    let values: std::collections::BTreeSet<&String> = consumed.iter().map(|row| &row.2).collect();
    assert_eq!(values.len(), consumed.len(), "no value read twice");
    assert_eq!(consumed, acked, "every acknowledged value read back once, at its offset");
    eprintln!(
        "{} values acknowledged and read back through a leader kill; {} retriable errors",
        acked.len(),
        errors.len()
    );
    for node in 1..=3 {
        assert!(cluster.broker(node).stop(), "broker {node} stops cleanly");
    }
}

/// A connection-level report (a broker down, all brokers down for a moment): what
/// librdkafka logs while it reconnects, not an error of a request.
fn is_transport(error: &serde_json::Value) -> bool {
    let text = error["error"].as_str().unwrap_or_default();
    ["_TRANSPORT", "_ALL_BROKERS_DOWN", "Connection refused", "Disconnected", "_RESOLVE"]
        .iter()
        .any(|t| text.contains(t))
}

#[test]
fn acks_all_is_refused_while_fewer_than_min_insync_replicas_are_in_sync() {
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let mut first = cluster.kafka(1);
    wait_for("every broker listed", SETTLE, || broker_ids(&metadata(&mut first, 12, &[], false)) == [1, 2, 3]);
    let mut topic = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
    topic.name = common::kafka::name("strict");
    topic.num_partitions = 1;
    topic.replication_factor = 3;
    let mut config = kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default();
    config.name = kafka_protocol::protocol::StrBytes::from_static_str("min.insync.replicas");
    config.value = Some(kafka_protocol::protocol::StrBytes::from_static_str("3"));
    topic.configs = vec![config];
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = 30_000;
    let response: CreateTopicsResponse = first.call(ApiKey::CreateTopics, 5, &request);
    assert_eq!(response.topics[0].error_code, 0, "{:?}", response.topics[0].error_message);
    let full = |layout: &[(i32, Vec<i32>)]| layout.iter().all(|(leader, isr)| *leader > 0 && isr == &[1, 2, 3]);
    wait_for("every replica in sync", SETTLE, || {
        full(&layout(&metadata(&mut first, 12, &["strict"], false), "strict"))
    });
    let leader = layout(&metadata(&mut first, 12, &["strict"], false), "strict")[0].0 as usize;
    let mut conn = cluster.kafka(leader);
    assert_eq!(produce_acked(&mut conn, "strict", 0, 0, 3).len(), 3, "all three in sync: acks=all is taken");
    // A follower dies: the in-sync set shrinks to two, below the topic's three.
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    cluster.broker(follower).kill();
    wait_for("the in-sync set shrunk", SETTLE, || {
        layout(&metadata(&mut conn, 12, &["strict"], false), "strict")[0].1.len() == 2
    });
    let request = common::kafka::produce_request("strict", 0, -1, batch(&[("k", "refused")]));
    let response: kafka_protocol::messages::ProduceResponse = conn.call(ApiKey::Produce, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(
        answer.error_code,
        kafka_protocol::ResponseError::NotEnoughReplicas.code(),
        "{:?}",
        answer.error_message
    );
    // acks=1 asks for no more than the leader: taken.
    let request = common::kafka::produce_request("strict", 0, 1, batch(&[("k", "leader only")]));
    let response: kafka_protocol::messages::ProduceResponse = conn.call(ApiKey::Produce, 9, &request);
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(response.responses[0].partition_responses[0].base_offset, 3, "the refused batch was not appended");
    // The follower returns and catches up: acks=all is taken again.
    cluster.start(follower);
    wait_for("all three in sync again", SETTLE, || {
        full(&layout(&metadata(&mut conn, 12, &["strict"], false), "strict"))
    });
    assert_eq!(produce_acked(&mut conn, "strict", 0, 10, 1)[0].1, 4);
    for node in 1..=3 {
        assert!(cluster.broker(node).stop(), "broker {node} stops cleanly");
    }
}

/// What the nemesis does to one broker in a round.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL, then a restart.
    Kill,
    /// SIGSTOP for a while (past its session), then SIGCONT.
    Pause,
    /// SIGTERM (controlled shutdown), then a restart.
    Stop,
}

/// Rounds of faults the nemesis test runs: `STRAND_FAULT_ROUNDS` (the documented long
/// run sets 100), 6 by default.
fn fault_rounds() -> usize {
    std::env::var("STRAND_FAULT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6)
}

#[test]
fn a_nemesis_kills_pauses_and_stops_brokers_while_idempotent_producers_write_and_nothing_acknowledged_is_lost() {
    let rounds = fault_rounds();
    let mut cluster = Cluster::new(3);
    cluster.start_all();
    let mut first = cluster.kafka(1);
    wait_for("every broker listed", SETTLE, || broker_ids(&metadata(&mut first, 12, &[], false)) == [1, 2, 3]);
    assert_eq!(create_topic(&mut first, "history", 3, 3), (0, String::new()));
    let full = |layout: &[(i32, Vec<i32>)]| layout.iter().all(|(leader, isr)| *leader > 0 && isr == &[1, 2, 3]);
    wait_for("every replica in sync", SETTLE, || {
        full(&layout(&metadata(&mut first, 12, &["history"], false), "history"))
    });
    // The writer: confluent-kafka, idempotent, acks=all, for as long as the faults last.
    let seconds = rounds * 8 + 4;
    let script = common::clients::script("failover.py");
    let (bootstrap, python) = (cluster.bootstrap(), common::clients::python());
    let writer = std::thread::spawn(move || {
        let args = [script.to_str().unwrap(), &bootstrap, "history", "history-group", &seconds.to_string()];
        // The writing, then its flush and the read back (a minute each at most).
        let limit = Duration::from_secs(seconds as u64 * 2 + 180);
        common::run_tool_within(python.to_str().unwrap(), &args, "", limit)
    });
    let mut random = rand::thread_rng();
    let mut done = Vec::new();
    for round in 0..rounds {
        std::thread::sleep(Duration::from_secs(1));
        let node = rand::Rng::gen_range(&mut random, 1..=3usize);
        let fault = [Fault::Kill, Fault::Pause, Fault::Stop][rand::Rng::gen_range(&mut random, 0..3usize)];
        let pid = cluster.broker(node).pid() as i32;
        match fault {
            Fault::Kill => cluster.broker(node).kill(),
            // SAFETY: signals to a PID this test started and has not reaped.
            Fault::Pause => unsafe {
                libc::kill(pid, libc::SIGSTOP);
            },
            Fault::Stop => assert!(cluster.broker(node).stop(), "round {round}: broker {node} stops cleanly"),
        }
        std::thread::sleep(Duration::from_secs(3));
        match fault {
            Fault::Kill | Fault::Stop => cluster.start(node),
            // SAFETY: as above.
            Fault::Pause => unsafe {
                libc::kill(pid, libc::SIGCONT);
            },
        }
        // Healed: every replica back in sync before the next fault.
        let other = if node == 1 { 2 } else { 1 };
        let mut conn = cluster.kafka(other);
        let healed = std::time::Instant::now() + Duration::from_secs(60);
        while !full(&layout(&metadata(&mut conn, 12, &["history"], false), "history")) {
            if std::time::Instant::now() > healed {
                let now = layout(&metadata(&mut conn, 12, &["history"], false), "history");
                let said: Vec<String> = (1..=3).map(|n| cluster.brokers[n - 1].as_ref().unwrap().stderr()).collect();
                panic!(
                    "round {round} ({fault:?} {node}): not all in sync within 60 s: {now:?}\n{}",
                    said.join("\n----\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        done.push(format!("{fault:?} {node}"));
    }
    let (ok, stdout, stderr) = writer.join().unwrap();
    assert!(ok, "failover.py failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let mut acked = rows(&summary["acked"]);
    acked.sort();
    assert!(
        summary["failed"].as_array().unwrap().is_empty(),
        "every value delivered in the end: {}",
        summary["failed"]
    );
    // The checker, over the whole history: every acknowledged value read back once, at
    // the offset it was acknowledged at; no value twice; the same answer on a second
    // read through another broker (offsets do not move or change value between reads).
    let first_read = read_all(&cluster, 1, "history", acked.len());
    let second_read = read_all(&cluster, 3, "history", acked.len());
    let values: std::collections::BTreeSet<&String> = first_read.iter().map(|row| &row.2).collect();
    assert_eq!(values.len(), first_read.len(), "no value stored twice");
    assert_eq!(first_read, acked, "every acknowledged value, once, at its offset ({} rounds: {done:?})", rounds);
    assert_eq!(second_read, first_read, "a second read through another broker finds the same history");
    eprintln!("{rounds} fault rounds ({done:?}): {} values acknowledged, 0 lost, 0 divergent offsets", acked.len());
    for node in 1..=3 {
        assert!(cluster.broker(node).stop(), "broker {node} stops cleanly");
    }
}
