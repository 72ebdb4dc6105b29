//! Group membership for a `Consumer` (`Consumer::subscribe`): join, a heartbeat
//! thread, and the partitions the coordinator lets this member consume.
//!
//! The broker assigns. Each heartbeat reports the partitions this member still owns
//! and receives those it may own now; the consumer applies the difference at its next
//! poll: revoked partitions are committed (with auto-commit), reported as
//! `GroupEvent::Revoked` and dropped, and only then reported released by the next
//! heartbeat, after which the coordinator hands them to their new member. New
//! partitions start at their committed offset (or the reset policy) and are reported
//! as `GroupEvent::Assigned`.

use crate::client::{unexpected, Client};
use crate::error::{ClientError, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Request, Response};

/// A topic partition.
pub type TopicPartition = (String, u32);

/// Settings of a group member.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// A member silent this long is removed and its partitions go to the others.
    pub session_timeout: Duration,
    /// `sticky` (incremental: only partitions that must move are revoked), `range` or
    /// `round-robin`.
    pub strategy: String,
    /// Commit consumed positions every `auto_commit_interval`, and before giving up a
    /// partition or closing.
    pub auto_commit: bool,
    pub auto_commit_interval: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout: Duration::from_secs(10),
            strategy: "sticky".into(),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
        }
    }
}

/// A change of the partitions this member consumes, reported by `Consumer::events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// Partitions added, each starting at its committed offset (or the reset policy).
    Assigned(Vec<TopicPartition>),
    /// Partitions given up (after their positions were committed, with auto-commit).
    Revoked(Vec<TopicPartition>),
    /// The member's session expired and it joined again: its partitions were given to
    /// others without a commit, and records since its last commit may be delivered
    /// twice.
    Lost(Vec<TopicPartition>),
}

/// What the heartbeat thread and the consumer share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub member_id: String,
    pub generation: u32,
    /// What the coordinator last said this member may consume.
    pub assigned: BTreeSet<TopicPartition>,
    /// What the consumer holds (reported in heartbeats).
    pub owned: BTreeSet<TopicPartition>,
    /// Set when the member was removed and rejoined: everything owned is lost.
    pub lost: bool,
    /// A failure the consumer reports from its next poll.
    pub error: Option<String>,
}

/// One consumer's membership in a group.
pub(crate) struct Membership {
    pub group: String,
    pub topics: Vec<String>,
    pub config: GroupConfig,
    pub shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn to_set(lists: &[TopicPartitions]) -> BTreeSet<TopicPartition> {
    lists.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.topic.clone(), p))).collect()
}

pub(crate) fn to_lists(set: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    let mut by_topic: BTreeMap<&String, Vec<u32>> = BTreeMap::new();
    for (topic, partition) in set {
        by_topic.entry(topic).or_default().push(*partition);
    }
    by_topic.into_iter().map(|(topic, partitions)| TopicPartitions { topic: topic.clone(), partitions }).collect()
}

fn broker_error(code: ErrorCode, what: &str) -> ClientError {
    ClientError::Broker { code, message: what.to_string() }
}

/// Sends a JoinGroup; returns the response if it succeeded.
async fn join(
    client: &Client,
    group: &str,
    member_id: &str,
    topics: &[String],
    config: &GroupConfig,
) -> Result<JoinGroupResponse> {
    let request = Request::JoinGroup(JoinGroupRequest {
        group: group.to_string(),
        member_id: member_id.to_string(),
        topics: topics.to_vec(),
        session_timeout_ms: config.session_timeout.as_millis() as u32,
        strategy: config.strategy.clone(),
    });
    let response = client.request(request).await?;
    let Response::JoinGroup(joined) = response else { return Err(unexpected(&response)) };
    if joined.error != ErrorCode::None {
        return Err(broker_error(joined.error, &format!("joining group {group}")));
    }
    Ok(joined)
}

impl Membership {
    /// Joins `group` and starts heartbeating.
    pub async fn start(client: &Client, group: &str, topics: &[String], config: GroupConfig) -> Result<Membership> {
        let joined = join(client, group, "", topics, &config).await?;
        let shared = Arc::new(Mutex::new(Shared {
            member_id: joined.member_id,
            generation: joined.generation,
            assigned: to_set(&joined.assigned),
            ..Shared::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_millis(u64::from(joined.heartbeat_interval_ms.max(50)));
        let heartbeat = {
            let (client, shared, stop) = (client.clone(), shared.clone(), stop.clone());
            let (group, topics, config) = (group.to_string(), topics.to_vec(), config.clone());
            std::thread::Builder::new()
                .name("strand-heartbeat".into())
                .spawn(move || heartbeat_loop(&client, &group, &topics, &config, &shared, &stop, interval))
                .map_err(|e| ClientError::Invalid(format!("cannot start the heartbeat thread: {e}")))?
        };
        Ok(Membership {
            group: group.to_string(),
            topics: topics.to_vec(),
            config,
            shared,
            stop,
            heartbeat: Some(heartbeat),
        })
    }

    /// One heartbeat now (after a StaleGeneration commit, or to hurry a rebalance).
    pub async fn heartbeat_now(&self, client: &Client) -> Result<()> {
        heartbeat_once(client, &self.group, &self.topics, &self.config, &self.shared).await
    }

    /// Stops heartbeating and leaves the group.
    pub async fn leave(&mut self, client: &Client) {
        self.stop_heartbeat();
        let member_id = lock(&self.shared).member_id.clone();
        let request = Request::LeaveGroup(LeaveGroupRequest { group: self.group.clone(), member_id });
        let _ = client.request(request).await;
    }

    fn stop_heartbeat(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

/// Heartbeats until `stop`; rejoins when the coordinator no longer knows the member.
fn heartbeat_loop(
    client: &Client,
    group: &str,
    topics: &[String],
    config: &GroupConfig,
    shared: &Mutex<Shared>,
    stop: &AtomicBool,
    interval: Duration,
) {
    let tick = Duration::from_millis(20);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        waited += tick;
        if waited < interval {
            continue;
        }
        waited = Duration::ZERO;
        if let Err(error) = futures_executor::block_on(heartbeat_once(client, group, topics, config, shared)) {
            if !error.is_retriable() && !matches!(error, ClientError::Timeout { .. } | ClientError::Disconnected { .. })
            {
                lock(shared).error = Some(error.to_string());
            }
        }
    }
}

async fn heartbeat_once(
    client: &Client,
    group: &str,
    topics: &[String],
    config: &GroupConfig,
    shared: &Mutex<Shared>,
) -> Result<()> {
    let (member_id, owned) = {
        let shared = lock(shared);
        (shared.member_id.clone(), to_lists(&shared.owned))
    };
    let request = Request::Heartbeat(HeartbeatRequest { group: group.to_string(), member_id, owned });
    let response = client.request(request).await?;
    let Response::Heartbeat(beat) = response else { return Err(unexpected(&response)) };
    match beat.error {
        ErrorCode::None => {
            let mut shared = lock(shared);
            shared.generation = beat.generation;
            shared.assigned = to_set(&beat.assigned);
            shared.error = None;
            Ok(())
        }
        ErrorCode::UnknownMember => {
            // The session expired (or the broker restarted): join as a new member.
            // Whatever this member owned has been given away.
            let joined = join(client, group, "", topics, config).await?;
            let mut shared = lock(shared);
            shared.member_id = joined.member_id;
            shared.generation = joined.generation;
            shared.assigned = to_set(&joined.assigned);
            shared.lost = true;
            Ok(())
        }
        code => Err(broker_error(code, &format!("heartbeat to group {group}"))),
    }
}
