//! Real Kafka clients run by the tests, unchanged: the Python clients from the virtual
//! environment `scripts/test` creates (`target/py-venv`, or `STRAND_TEST_VENV`), kafkajs
//! from `target/kafka-node` (`STRAND_TEST_NODE_MODULES`), the scripts in
//! `tests/kafka_clients/`, and a group member in its own process whose events
//! (assignments, records, errors) arrive as JSON lines.

use super::kafka::KafkaConnection;
use super::wait_for;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub fn python() -> PathBuf {
    let venv = std::env::var_os("STRAND_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: scripts/test creates it with the Kafka clients", python.display());
    python
}

pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kafka_clients").join(name)
}

/// Produces `count` keyed records from `first` with `codec` through confluent-kafka.
pub fn produce(bootstrap: &str, topic: &str, first: u64, count: u64, codec: &str) {
    let (first, count) = (first.to_string(), count.to_string());
    let path = script("produce.py");
    let args = [path.to_str().unwrap(), bootstrap, topic, &first, &count, codec];
    let (ok, stdout, stderr) = super::run_tool(python().to_str().unwrap(), &args, "");
    assert!(ok, "produce.py failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["delivered"], count.parse::<u64>().unwrap(), "{codec}: every record delivered: {summary}");
}

/// A record a member consumed and committed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Consumed {
    pub partition: u32,
    pub offset: i64,
    pub key: String,
    pub value: String,
}

/// One group member: a confluent-kafka consumer in its own process.
pub struct Member {
    child: Option<Child>,
    assigned: Arc<Mutex<Option<Vec<u32>>>>,
    records: Arc<Mutex<Vec<Consumed>>>,
    errors: Arc<Mutex<Vec<String>>>,
    closed: Arc<Mutex<bool>>,
}

impl Member {
    /// A confluent-kafka member (`member.py`) with `strategy`.
    pub fn start(bootstrap: &str, group: &str, topic: &str, strategy: &str) -> Member {
        let mut command = Command::new(python());
        command.arg(script("member.py")).args([bootstrap, group, topic, strategy]);
        Member::spawn(command)
    }

    /// The member `child` is, nothing heard from it yet.
    fn of(child: Child) -> Member {
        Member {
            child: Some(child),
            assigned: Arc::default(),
            records: Arc::default(),
            errors: Arc::default(),
            closed: Arc::default(),
        }
    }

    /// A member run by `command`, which prints the events of `member.py` on stdout.
    pub fn spawn(mut command: Command) -> Member {
        let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let member = Member::of(child);
        let (assigned, records, closed) = (member.assigned.clone(), member.records.clone(), member.closed.clone());
        let errors = member.errors.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // A line that is not a JSON object is a test harness's of its own (the
                // rdkafka client is a test binary run again).
                if !line.starts_with('{') {
                    continue;
                }
                let event: serde_json::Value = serde_json::from_str(&line).unwrap();
                if let Some(partitions) = event.get("assigned") {
                    let partitions = partitions.as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32);
                    *assigned.lock().unwrap() = Some(partitions.collect());
                } else if let Some(record) = event.get("record") {
                    records.lock().unwrap().push(Consumed {
                        partition: record[0].as_u64().unwrap() as u32,
                        offset: record[1].as_i64().unwrap(),
                        key: record[2].as_str().unwrap().to_string(),
                        value: record[3].as_str().unwrap().to_string(),
                    });
                } else if let Some(error) = event.get("error") {
                    errors.lock().unwrap().push(error.as_str().unwrap_or_default().to_string());
                } else if event.get("closed").is_some() {
                    *closed.lock().unwrap() = true;
                }
            }
        });
        member
    }

    /// A kcat balanced consumer (`kcat -G`), itself the child: its records arrive on
    /// stdout (`-f`), its assignments as librdkafka's rebalance lines on stderr, and it
    /// commits as librdkafka's auto commit does (every 200 ms here, and when it
    /// leaves). It closes (leaves the group) on SIGTERM.
    pub fn kcat(bootstrap: &str, group: &str, topic: &str) -> Member {
        let mut child = Command::new("kcat")
            // -u: unbuffered, so each record is seen as kcat prints it.
            .args(["-u", "-b", bootstrap, "-G", group, topic, "-f", "%p\t%o\t%k\t%s\n"])
            .args(["-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=200"])
            .args(["-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500"])
            .args(["-X", "partition.assignment.strategy=roundrobin"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let member = Member::of(child);
        let records = member.records.clone();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            // A line without its end is the last, cut short by a kill: not a record.
            while stdout.read_line(&mut line).is_ok_and(|_| line.ends_with('\n')) {
                let fields: Vec<&str> = line.trim_end_matches('\n').splitn(4, '\t').collect();
                let [partition, offset, key, value] = fields[..] else { panic!("kcat printed {line:?}") };
                records.lock().unwrap().push(Consumed {
                    partition: partition.parse().unwrap(),
                    offset: offset.parse().unwrap(),
                    key: key.to_string(),
                    value: value.to_string(),
                });
                line.clear();
            }
        });
        let (assigned, errors, closed) = (member.assigned.clone(), member.errors.clone(), member.closed.clone());
        std::thread::spawn(move || {
            // "% Group G rebalanced (memberid M): assigned: T [0], T [3]" or "…: revoked: …".
            let mut revoked_last = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, partitions)) = line.split_once("): assigned: ") {
                    let partitions = partitions.split(", ").filter_map(|p| {
                        p.rsplit_once('[').and_then(|(_, n)| n.trim_end_matches(']').parse::<u32>().ok())
                    });
                    *assigned.lock().unwrap() = Some(partitions.collect());
                    revoked_last = false;
                } else if line.contains("): revoked: ") {
                    *assigned.lock().unwrap() = Some(Vec::new());
                    revoked_last = true;
                } else if line.contains("ERROR") {
                    errors.lock().unwrap().push(line);
                }
            }
            // It ended having given its partitions back: it left the group.
            *closed.lock().unwrap() = revoked_last;
        });
        member
    }

    pub fn assigned(&self) -> Vec<u32> {
        self.assigned.lock().unwrap().clone().unwrap_or_default()
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    pub fn records(&self) -> Vec<Consumed> {
        self.records.lock().unwrap().clone()
    }

    pub fn signal(&mut self, signal: i32) -> Option<Child> {
        let child = self.child.take()?;
        // SAFETY: a signal to a child this test started and has not reaped.
        unsafe { libc::kill(child.id() as i32, signal) };
        Some(child)
    }

    /// Kills the member as a crash would: no LeaveGroup, no last commit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.signal(libc::SIGKILL) {
            let _ = child.wait();
        }
    }

    /// Stops the member cleanly: it leaves the group.
    pub fn stop(&mut self) {
        let Some(mut child) = self.signal(libc::SIGTERM) else { return };
        wait_for("the member to leave its group", Duration::from_secs(30), || child.try_wait().unwrap().is_some());
        assert!(*self.closed.lock().unwrap(), "the member closed its consumer");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn union(members: &[&Member]) -> BTreeSet<u32> {
    members.iter().flat_map(|m| m.assigned()).collect()
}

/// Every record consumed, once per (partition, offset).
pub fn distinct(members: &[&Member]) -> BTreeMap<(u32, i64), Consumed> {
    members.iter().flat_map(|m| m.records()).map(|r| ((r.partition, r.offset), r)).collect()
}

/// Waits until `members` consumed `count` distinct records; on timeout, says where
/// each partition stands and what each member holds.
pub fn wait_for_every_record(members: &[&Member], count: usize, context: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while distinct(members).len() < count {
        if std::time::Instant::now() > deadline {
            let mut partitions: BTreeMap<u32, (usize, i64)> = BTreeMap::new();
            for (partition, offset) in distinct(members).keys() {
                let seen = partitions.entry(*partition).or_default();
                seen.0 += 1;
                seen.1 = seen.1.max(*offset);
            }
            let held: Vec<(Vec<u32>, usize)> = members.iter().map(|m| (m.assigned(), m.records().len())).collect();
            panic!(
                "{count} records not consumed in time: (records, highest offset) by partition {partitions:?}; (assigned, records) by member {held:?}; {}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The group's committed offsets, through the Kafka wire.
pub fn committed(kafka_port: u16, group: &str, topic: &str, partitions: u32) -> BTreeMap<u32, i64> {
    let mut conn = KafkaConnection::connect(kafka_port);
    let mut asked = OffsetFetchRequestTopic::default();
    asked.name = TopicName(StrBytes::from_string(topic.to_string()));
    asked.partition_indexes = (0..partitions as i32).collect();
    let mut request = OffsetFetchRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_string()));
    request.topics = Some(vec![asked]);
    let response: OffsetFetchResponse = conn.call(ApiKey::OffsetFetch, 7, &request);
    assert_eq!(response.error_code, 0);
    response.topics[0].partitions.iter().map(|p| (p.partition_index as u32, p.committed_offset)).collect()
}

pub fn admin(bootstrap: &str, step: &str, topic: &str) -> serde_json::Value {
    let path = script("admin.py");
    let (ok, stdout, stderr) =
        super::run_tool(python().to_str().unwrap(), &[path.to_str().unwrap(), bootstrap, step, topic], "");
    assert!(ok, "admin.py {step} failed: {stderr}");
    serde_json::from_str(stdout.trim()).unwrap()
}

pub fn value_seq(record: &Consumed) -> u64 {
    record.value.trim_start_matches("value-").parse().unwrap()
}

pub fn node_modules() -> PathBuf {
    let dir = std::env::var_os("STRAND_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/kafka-node/node_modules"));
    assert!(dir.join("kafkajs").exists(), "{} has no kafkajs: scripts/test installs it", dir.display());
    dir
}

/// Kills `members[0]` as a crash would and waits for the others to take every one of
/// `partitions`, each of the killed member's among them.
pub fn kill_first_and_take_over(members: &mut [Member], partitions: usize) {
    let victim = members[0].assigned();
    members[0].kill();
    let survivors: Vec<&Member> = members[1..].iter().collect();
    wait_for("the survivors to take every partition", Duration::from_secs(60), || {
        union(&survivors).len() == partitions
    });
    for partition in &victim {
        assert!(survivors.iter().any(|m| m.assigned().contains(partition)), "partition {partition} taken over");
    }
}

/// Each partition's end as `members` consumed it: the offset after its last record.
pub fn consumed_ends(members: &[&Member]) -> BTreeMap<u32, i64> {
    let mut ends = BTreeMap::new();
    for record in distinct(members).values() {
        let end = ends.entry(record.partition).or_insert(0);
        *end = (*end).max(record.offset + 1);
    }
    ends
}
