//! `strand-bench cluster`: a cluster of brokers from the same build on this machine,
//! measured two ways.
//!
//! - Throughput: 1 KiB records (by default) produced with `acks = durable` (Kafka's
//!   acks=all) through `strand-client` to a topic of one partition per broker, at
//!   replication factor 1 and then 3, in alternating rounds, so both see the same
//!   machine; the ratio is the cost of replication.
//! - Failover: a partition of three replicas whose leader is killed with SIGKILL, again
//!   and again: the time from the kill to the first acknowledged produce (durable) on
//!   the new leader, each round's figure; the killed broker is started again and back
//!   in sync before the next round.

use crate::limits::Rate;
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strand_client::{block_on, Acks, Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};

/// Settings of one `strand-bench cluster` run.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub dir: PathBuf,
    pub brokers: usize,
    pub record_bytes: usize,
    /// Bytes produced per throughput round and factor.
    pub bytes: u64,
    pub rounds: usize,
    pub failovers: usize,
    /// The topics' fsync policy.
    pub fsync: String,
    /// Core of the load generator (the brokers spread over every core).
    pub load_cpu: usize,
}

/// One broker of the cluster: its process and ports.
struct Node {
    id: usize,
    child: Option<Child>,
    config: PathBuf,
    native: u16,
}

impl Node {
    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.native)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill with the PID of a child this process started, not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: as in `kill`.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A run of `count` ports free together, below the ephemeral range, and clear of the
/// runs `taken` already.
fn free_ports(count: u16, taken: &[u16]) -> anyhow::Result<u16> {
    for attempt in 0..2000u32 {
        let base = 20_000 + ((std::process::id().wrapping_mul(7919) + attempt * 104_729) % 10_000) as u16;
        let clear = taken.iter().all(|&other| base + count <= other || other + count <= base);
        let all = clear && (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all {
            return Ok(base);
        }
    }
    anyhow::bail!("no run of {count} free ports found")
}

/// Writes each broker's configuration: one shard each, on the cores in turn.
fn configure(settings: &Settings) -> anyhow::Result<Vec<Node>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut ports: Vec<u16> = Vec::new();
    for _ in 0..settings.brokers {
        let base = free_ports(5, &ports)?;
        ports.push(base);
    }
    let voters: Vec<String> =
        ports.iter().enumerate().map(|(i, base)| format!("\"{}@127.0.0.1:{}\"", i + 1, base + 3)).collect();
    let _ = std::fs::remove_dir_all(&settings.dir);
    std::fs::create_dir_all(&settings.dir)?;
    let mut nodes = Vec::new();
    for (i, &base) in ports.iter().enumerate() {
        let id = i + 1;
        let data = settings.dir.join(format!("broker-{id}"));
        let text = format!(
            "data_dir = {data:?}\ncores = [{core}]\n\
             [[listeners]]\nname = \"native\"\nprotocol = \"native\"\nport = {base}\n\
             [[listeners]]\nname = \"kafka\"\nprotocol = \"kafka\"\nport = {kafka}\n\
             [admin]\nport = {admin}\n\
             [storage]\nbatch_cache_bytes = 268435456\n\
             [cluster]\nnode_id = {id}\ncluster_id = \"bench\"\nvoters = [{voters}]\n",
            core = i % cores,
            kafka = base + 2,
            admin = base + 4,
            voters = voters.join(", "),
        );
        let config = settings.dir.join(format!("broker-{id}.toml"));
        std::fs::write(&config, text)?;
        nodes.push(Node { id, child: None, config, native: base });
    }
    Ok(nodes)
}

/// Starts the brokers not running, together (each reports ready once a majority has
/// a quorum), and waits for their ready lines.
fn start(nodes: &mut [Node]) -> anyhow::Result<()> {
    let binary = crate::spawn::default_binary()?;
    let mut waiting = Vec::new();
    for node in nodes.iter_mut().filter(|node| node.child.is_none()) {
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(&node.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        crate::spawn::tie_to_this_run(&mut command);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let ready = reader.read_line(&mut line).map(|_| line.clone());
            let _ = sender.send(ready);
            // Keep reading so the broker never blocks on a full pipe.
            let mut rest = String::new();
            while reader.read_line(&mut rest).unwrap_or(0) > 0 {
                rest.clear();
            }
        });
        node.child = Some(child);
        waiting.push((node.id, receiver));
    }
    for (id, receiver) in waiting {
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) if line.contains("serving on") => {}
            other => anyhow::bail!("broker {id} did not report ready: {other:?}"),
        }
    }
    Ok(())
}

/// Waits until every partition of `topic` has a leader and every replica in sync.
fn wait_in_sync(client: &Client, topic: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(cluster) = block_on(client.describe_cluster()) {
            let settled = cluster
                .topics
                .iter()
                .find(|t| t.name == topic)
                .is_some_and(|t| t.partitions.iter().all(|p| p.leader.is_some() && !p.under_replicated()));
            if settled {
                block_on(client.refresh_metadata())?;
                return Ok(());
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{topic} not in sync within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One throughput round's figure.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    pub round: usize,
    pub replication_factor: u32,
    pub rate: Rate,
}

/// One failover's time, from the kill to the first acknowledged produce after it.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverRow {
    pub round: usize,
    pub killed: u32,
    pub new_leader: Option<u32>,
    pub seconds: f64,
    /// When the metadata (from a surviving broker) first named another leader.
    pub metadata_seconds: f64,
}

fn client(bootstrap: &str) -> anyhow::Result<Client> {
    let config = ClientConfig { request_timeout_ms: 5_000, ..ClientConfig::default() };
    Ok(Client::connect_with(bootstrap, config)?)
}

/// Produces `settings.bytes` of records over the topic's partitions (one per broker),
/// durable acks; the rate from the first send to the last acknowledgement.
fn produce(bootstrap: &str, topic: &str, partitions: u32, settings: &Settings) -> anyhow::Result<Rate> {
    let client = client(bootstrap)?;
    let config = ProducerConfig {
        acks: Acks::Durable,
        batch_bytes: 256 * 1024,
        linger: Duration::from_millis(2),
        in_flight_max: 16,
        buffer_bytes_max: 128 << 20,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    let mut payload = vec![0u8; 1 << 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut payload);
    let size = settings.record_bytes;
    let records = settings.bytes / size as u64;
    let started = Instant::now();
    let mut last = Vec::new();
    for i in 0..records {
        let at = (i as usize * 61) % (payload.len() - size);
        let record = ProducerRecord::new(topic, &payload[at..at + size]).partition((i % u64::from(partitions)) as u32);
        let delivery = producer.send(record)?;
        if i + u64::from(partitions) >= records {
            last.push(delivery);
        }
    }
    producer.flush();
    for delivery in last {
        delivery.wait()?;
    }
    Ok(Rate { bytes: records * size as u64, operations: records, seconds: started.elapsed().as_secs_f64() })
}

/// Runs the throughput rounds and the failovers; prints each figure as it comes.
pub fn run(settings: &Settings) -> anyhow::Result<(Vec<ThroughputRow>, Vec<FailoverRow>)> {
    let mut nodes = configure(settings)?;
    start(&mut nodes)?;
    let bootstrap = nodes[0].bootstrap();
    let admin = client(&bootstrap)?;
    // Registered brokers are fenced until the controller hears their heartbeats.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cluster = block_on(admin.describe_cluster())?;
        if cluster.brokers.len() == settings.brokers && cluster.brokers.iter().all(|b| !b.fenced) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the brokers were not all alive within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::limits::pin_to(settings.load_cpu)?;
    let partitions = settings.brokers as u32;
    let mut rows = Vec::new();
    for round in 0..settings.rounds {
        for factor in [1u32, 3] {
            let topic = format!("rf{factor}-{round}");
            let factor_text = factor.to_string();
            let configs = [("replication_factor", factor_text.as_str()), ("fsync", settings.fsync.as_str())];
            block_on(admin.create_topic(&topic, partitions, &configs))?;
            wait_in_sync(&admin, &topic, Duration::from_secs(30))?;
            let rate = produce(&bootstrap, &topic, partitions, settings)?;
            println!(
                "round {round}: replication factor {factor}: {:.1} MB/s ({:.0} records/s)",
                rate.bytes_per_s() / 1e6,
                rate.ops_per_s()
            );
            rows.push(ThroughputRow { round, replication_factor: factor, rate });
            block_on(admin.delete_topic(&topic))?;
        }
    }
    let failovers = failovers(settings, &mut nodes)?;
    Ok((rows, failovers))
}

fn failovers(settings: &Settings, nodes: &mut [Node]) -> anyhow::Result<Vec<FailoverRow>> {
    let mut rows = Vec::new();
    if settings.failovers == 0 {
        return Ok(rows);
    }
    let topic = "failover";
    {
        let admin = client(&nodes[0].bootstrap())?;
        block_on(admin.create_topic(topic, 1, &[("replication_factor", "3"), ("fsync", settings.fsync.as_str())]))?;
    }
    for round in 0..settings.failovers {
        // Any live broker serves as bootstrap; the producer follows the leader.
        let bootstrap = nodes.iter().find(|n| n.child.is_some()).expect("a live broker").bootstrap();
        let admin = client(&bootstrap)?;
        wait_in_sync(&admin, topic, Duration::from_secs(60))?;
        let leader = leader_of(&admin, topic)?.ok_or_else(|| anyhow::anyhow!("no leader"))?;
        // The producer's bootstrap is a broker that is not killed.
        let survivor =
            nodes.iter().find(|n| n.id as u32 != leader && n.child.is_some()).expect("a survivor").bootstrap();
        let producer_client = client(&survivor)?;
        let config = ProducerConfig {
            acks: Acks::Durable,
            linger: Duration::ZERO,
            retries: u32::MAX,
            retry_backoff_ms: 10,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(producer_client.clone(), config);
        // One acknowledged produce first, so the connection to the leader is warm.
        producer.send(ProducerRecord::new(topic, b"before".as_slice()).partition(0))?.wait()?;
        let killed_at = Instant::now();
        nodes[leader as usize - 1].kill();
        // When the metadata names another leader (seen from the producer's broker).
        let watcher = {
            let (survivor, leader) = (survivor.clone(), leader);
            std::thread::spawn(move || -> Option<Duration> {
                let client = client(&survivor).ok()?;
                while killed_at.elapsed() < Duration::from_secs(60) {
                    if leader_of(&client, topic).ok().flatten().is_some_and(|now| now != leader) {
                        return Some(killed_at.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                None
            })
        };
        let mut acked = None;
        while acked.is_none() {
            anyhow::ensure!(killed_at.elapsed() < Duration::from_secs(60), "no produce acknowledged within 60 s");
            let sent = producer.send(ProducerRecord::new(topic, b"after".as_slice()).partition(0))?;
            if sent.wait().is_ok() {
                acked = Some(killed_at.elapsed());
            }
        }
        let moved = watcher.join().ok().flatten().map_or(-1.0, |d| d.as_secs_f64());
        let seconds = acked.expect("set above").as_secs_f64();
        let new_leader = leader_of(&producer_client, topic).ok().flatten();
        println!(
            "failover {round}: broker {leader} killed; the metadata named another leader after {moved:.3} s; broker {new_leader:?} acknowledged after {seconds:.3} s"
        );
        rows.push(FailoverRow { round, killed: leader, new_leader, seconds, metadata_seconds: moved });
        drop(producer);
        start(nodes)?;
    }
    Ok(rows)
}

fn leader_of(client: &Client, topic: &str) -> anyhow::Result<Option<u32>> {
    let cluster = block_on(client.describe_cluster())?;
    Ok(cluster.topics.iter().find(|t| t.name == topic).and_then(|t| t.partitions.first()).and_then(|p| p.leader))
}

/// The median and the worst of `values`.
pub fn median_and_worst(values: &[f64]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return (0.0, 0.0);
    }
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 0 { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] };
    (median, *sorted.last().expect("not empty"))
}

/// Where the run keeps its brokers' data.
pub fn default_dir(dir: &Path) -> PathBuf {
    dir.join("cluster")
}
