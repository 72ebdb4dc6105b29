//! The group coordinator of one shard: the groups whose offsets partition this shard
//! owns, their members, generations and assignments, and their committed offsets.
//!
//! Membership lives in memory (members rejoin after a broker restart); committed
//! offsets are appended to the shard's partition of `__consumer_offsets` with
//! `fsync = always` before a commit is acknowledged, and replayed from it on start.
//!
//! Rebalances are incremental. A join, a leave, an expired session, a changed
//! subscription or a changed partition count computes a new target assignment
//! (`assign`) and a new generation. A partition moves only once its current owner has
//! released it: a member is told, in each heartbeat response, the partitions it may
//! consume, which leaves out the ones it must give up; its next heartbeat reports what
//! it still owns, and only then is a released partition handed to its new member.
//! Partitions that stay with their member are never interrupted.
//!
//! A new group first waits `groups.initial_rebalance_delay_ms` (Kafka's
//! `group.initial.rebalance.delay.ms`) before its first assignment, each join in that
//! time pushing it back by the delay again (at most `FORMING_STRETCH_MAX` times the
//! delay after the first join), so members started together get a balanced first
//! assignment instead of the first taking every partition.

use super::api::*;
use super::assign::{assign, Assignment, Strategy, Subscriptions, Tp};
use super::classic::{ClassicGroup, Joined, Synced};
use super::host::GroupHost;
use super::naming::{offsets_partition, OFFSETS_TOPIC};
use crate::partition::{Acks, Partition, TopicPartition};
use crate::service::error::Error;
use bytes::BytesMut;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand_protocol::{BatchBuilder, RecordIter};

/// Longest metadata string a commit may carry.
pub const COMMIT_METADATA_BYTES_MAX: usize = 4096;

struct Member {
    client_id: String,
    client_host: String,
    topics: BTreeSet<String>,
    session_timeout: Duration,
    last_seen: Instant,
}

/// The longest a new group waits for its first assignment, in delays after its first
/// join.
const FORMING_STRETCH_MAX: u32 = 3;

/// A new group waiting for its first members before it assigns anything.
struct Forming {
    /// The first assignment happens then, unless another member joins before.
    until: Instant,
    /// However many members keep joining, no later than this.
    latest: Instant,
}

struct Group {
    generation: u32,
    /// Set while the group is new and waits for its first members to join.
    forming: Option<Forming>,
    strategy: Strategy,
    members: BTreeMap<String, Member>,
    /// Where each member's partitions are to be once every move completes.
    target: Assignment,
    /// Who consumes each partition now (handed out and not yet released).
    owner: HashMap<Tp, String>,
    /// Partition counts the target was computed for.
    counts: BTreeMap<String, u32>,
}

impl Group {
    /// A new group whose generations continue from `generation` (the last one of an
    /// earlier group of the same name), forming for `delay` first.
    fn new(strategy: Strategy, generation: u32, delay: Duration, now: Instant) -> Group {
        let forming =
            (!delay.is_zero()).then(|| Forming { until: now + delay, latest: now + delay * FORMING_STRETCH_MAX });
        Group {
            generation,
            forming,
            strategy,
            members: BTreeMap::new(),
            target: Assignment::new(),
            owner: HashMap::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Ends the forming wait if it is over (with the first assignment); returns whether
    /// the group is still forming.
    fn still_forming<H: GroupHost>(&mut self, now: Instant, host: &H) -> bool {
        match &self.forming {
            Some(forming) if now < forming.until => true,
            Some(_) => {
                self.forming = None;
                let counts = counts_of(host, subscribed_topics(self).into_iter());
                self.rebalance(counts);
                false
            }
            None => false,
        }
    }

    /// Computes a new target assignment and generation (not while forming: the first
    /// assignment waits for the members that join meanwhile).
    fn rebalance(&mut self, counts: BTreeMap<String, u32>) {
        if self.forming.is_some() {
            return;
        }
        let subscriptions: Subscriptions = self.members.iter().map(|(id, m)| (id.clone(), m.topics.clone())).collect();
        self.target = assign(self.strategy, &subscriptions, &counts, &self.target);
        self.counts = counts;
        self.generation += 1;
        // Partitions that no longer exist, or whose owner left, have no owner.
        let members = &self.members;
        let counts = &self.counts;
        self.owner.retain(|(topic, partition), member| {
            members.contains_key(member) && counts.get(topic).is_some_and(|&n| *partition < n)
        });
    }

    /// Hands `member` every partition of its target nobody else holds; returns what it
    /// may consume now.
    fn hand_out(&mut self, member: &str) -> Vec<TopicPartitions> {
        let mut now: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for tp in self.target.get(member).into_iter().flatten() {
            let holder = self.owner.entry(tp.clone()).or_insert_with(|| member.to_string());
            if holder == member {
                now.entry(tp.0.clone()).or_default().push(tp.1);
            }
        }
        now.into_iter().map(|(topic, partitions)| TopicPartitions { topic, partitions }).collect()
    }

    fn remove(&mut self, member: &str) {
        self.members.remove(member);
        self.owner.retain(|_, holder| holder != member);
        self.target.remove(member);
    }

    fn owned_by(&self, member: &str) -> Vec<TopicPartitions> {
        let mut by_topic: BTreeMap<&String, Vec<u32>> = BTreeMap::new();
        for ((topic, partition), holder) in &self.owner {
            if holder == member {
                by_topic.entry(topic).or_default().push(*partition);
            }
        }
        by_topic
            .into_iter()
            .map(|(topic, mut partitions)| {
                partitions.sort_unstable();
                TopicPartitions { topic: topic.clone(), partitions }
            })
            .collect()
    }
}

fn listed(set: Option<&BTreeSet<Tp>>) -> Vec<TopicPartitions> {
    let mut by_topic: BTreeMap<&String, Vec<u32>> = BTreeMap::new();
    for (topic, partition) in set.into_iter().flatten() {
        by_topic.entry(topic).or_default().push(*partition);
    }
    by_topic.into_iter().map(|(topic, partitions)| TopicPartitions { topic: topic.clone(), partitions }).collect()
}

/// A group's committed offsets: the next offset to consume and the metadata string,
/// per partition.
type Committed = BTreeMap<Tp, (u64, String)>;

/// One shard's groups and committed offsets.
pub struct GroupCoordinator {
    groups: RefCell<HashMap<String, Group>>,
    /// Kafka classic groups (the leader member assigns); a group id is in one map or
    /// the other while it has members.
    classic: RefCell<HashMap<String, ClassicGroup>>,
    /// Committed offset and metadata, per group and partition.
    offsets: RefCell<HashMap<String, Committed>>,
    /// The last generation of groups whose members all left, so `group describe`
    /// shows it and a group formed again under the name counts on from it (as Kafka
    /// keeps an empty group's generation). At most `groups.groups_max` entries.
    ended: RefCell<HashMap<String, u32>>,
    next_member: Cell<u64>,
    /// One writer of `__consumer_offsets` at a time: a commit holds it from its
    /// append to its map update, compaction from its snapshot to its append, so a
    /// snapshot never lands after a newer commit it does not contain.
    writer: glommio::sync::Semaphore,
}

impl Default for GroupCoordinator {
    fn default() -> Self {
        GroupCoordinator {
            groups: RefCell::default(),
            classic: RefCell::default(),
            offsets: RefCell::default(),
            ended: RefCell::default(),
            next_member: Cell::default(),
            writer: glommio::sync::Semaphore::new(1),
        }
    }
}

/// The partition counts of `topics` in the shard's current metadata (absent topics
/// are left out).
fn counts_of<H: GroupHost>(host: &H, topics: impl Iterator<Item = String>) -> BTreeMap<String, u32> {
    let metadata = host.metadata();
    topics.filter_map(|t| metadata.topics.get(&t).map(|m| (t, m.partitions()))).collect()
}

fn subscribed_topics(group: &Group) -> BTreeSet<String> {
    group.members.values().flat_map(|m| m.topics.iter().cloned()).collect()
}

/// Kafka's state name for a broker-assigned group: it rebalances incrementally,
/// without a barrier, so it is `Stable` whenever it has members.
fn native_state(group: Option<&Group>) -> &'static str {
    match group {
        Some(group) if group.forming.is_some() => "PreparingRebalance",
        Some(group) if !group.members.is_empty() => "Stable",
        _ => "Empty",
    }
}

fn put_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as i16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A member's subscription in Kafka's consumer protocol (v0: topics, no user data),
/// as Kafka's tools read a group member's metadata.
fn consumer_subscription<'a>(topics: impl ExactSizeIterator<Item = &'a String>) -> bytes::Bytes {
    let mut out = vec![0, 0];
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for topic in topics {
        put_string(&mut out, topic);
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    bytes::Bytes::from(out)
}

/// A member's partitions in Kafka's consumer protocol (assignment v0).
fn consumer_assignment(owned: &[TopicPartitions]) -> bytes::Bytes {
    let mut out = vec![0, 0];
    out.extend_from_slice(&(owned.len() as i32).to_be_bytes());
    for topic in owned {
        put_string(&mut out, &topic.topic);
        out.extend_from_slice(&(topic.partitions.len() as i32).to_be_bytes());
        for partition in &topic.partitions {
            out.extend_from_slice(&(*partition as i32).to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    bytes::Bytes::from(out)
}

/// The key of a committed offset in `__consumer_offsets`.
fn record_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(group.len() + topic.len() + 6);
    key.extend_from_slice(group.as_bytes());
    key.push(0);
    key.extend_from_slice(topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

fn parse_key(key: &[u8]) -> Option<(String, String, u32)> {
    let first = key.iter().position(|&b| b == 0)?;
    let rest = &key[first + 1..];
    let second = rest.iter().position(|&b| b == 0)?;
    let partition = u32::from_be_bytes(rest.get(second + 1..second + 5)?.try_into().ok()?);
    Some((String::from_utf8(key[..first].to_vec()).ok()?, String::from_utf8(rest[..second].to_vec()).ok()?, partition))
}

impl GroupCoordinator {
    /// Replays committed offsets from this shard's partitions of `__consumer_offsets`.
    pub async fn recover<H: GroupHost>(&self, host: &H) {
        let partitions = host.metadata().topics.get(OFFSETS_TOPIC).map_or(0, |t| t.partitions());
        let mut replayed = 0u64;
        for partition in 0..partitions {
            let Some(log) = host.partition(OFFSETS_TOPIC, partition) else { continue };
            let mut offset = log.offsets().start;
            loop {
                let read = match log.read(offset, 1 << 20).await {
                    Ok(read) => read,
                    Err(error) => {
                        tracing::warn!(partition, %error, "cannot replay committed offsets");
                        break;
                    }
                };
                if read.chunks.is_empty() || read.next_offset <= offset {
                    break;
                }
                for chunk in &read.chunks {
                    replayed += self.apply_batches(chunk);
                }
                offset = read.next_offset;
            }
        }
        if replayed > 0 {
            tracing::info!(shard = host.shard_id(), records = replayed, "committed offsets replayed");
        }
    }

    /// Applies every commit record in `bytes` (whole batches); returns how many.
    /// (Public for the fuzz target that replays arbitrary bytes as a partition of
    /// `__consumer_offsets`: whatever they hold, replay never panics.)
    pub fn apply_batches(&self, mut bytes: &[u8]) -> u64 {
        let mut applied = 0;
        let mut offsets = self.offsets.borrow_mut();
        while let Some(len) = strand_protocol::batch::batch_bytes(bytes) {
            if len > bytes.len() {
                break;
            }
            if let Ok(records) = RecordIter::new(&bytes[..len]) {
                for record in records.flatten() {
                    let Some(key) = record.key else { continue };
                    let Some((group, topic, partition)) = parse_key(key) else { continue };
                    // A tombstone: the group was deleted (DeleteGroups).
                    let Some(value) = record.value else {
                        if let Some(committed) = offsets.get_mut(&group) {
                            committed.remove(&(topic, partition));
                            if committed.is_empty() {
                                offsets.remove(&group);
                            }
                        }
                        applied += 1;
                        continue;
                    };
                    if value.len() < 8 {
                        continue;
                    }
                    let offset = u64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
                    let metadata = String::from_utf8_lossy(&value[8..]).into_owned();
                    offsets.entry(group).or_default().insert((topic, partition), (offset, metadata));
                    applied += 1;
                }
            }
            bytes = &bytes[len..];
        }
        applied
    }

    /// Removes members whose session expired; rebalances their groups.
    pub fn expire<H: GroupHost>(&self, host: &H) {
        let now = Instant::now();
        self.classic.borrow_mut().retain(|name, group| {
            for id in group.tick(now) {
                tracing::info!(group = %name, member = %id, "member session expired");
            }
            !group.is_idle()
        });
        let mut groups = self.groups.borrow_mut();
        for (name, group) in groups.iter_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| now.duration_since(m.last_seen) > m.session_timeout)
                .map(|(id, _)| id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                tracing::info!(group = %name, member = %id, "member session expired");
                group.remove(id);
            }
            let counts = counts_of(host, subscribed_topics(group).into_iter());
            group.rebalance(counts);
        }
        let groups_max = host.live_config().groups.groups_max as usize;
        groups.retain(|name, group| {
            if group.members.is_empty() {
                self.remember_generation(name, group.generation, groups_max);
            }
            !group.members.is_empty()
        });
    }

    /// Keeps the last generation of a group that ended (see `ended`).
    fn remember_generation(&self, name: &str, generation: u32, groups_max: usize) {
        let mut ended = self.ended.borrow_mut();
        if ended.len() < groups_max || ended.contains_key(name) {
            ended.insert(name.to_string(), generation);
        }
    }

    /// Answers one group request.
    pub async fn handle<H: GroupHost>(&self, host: &H, request: GroupRequest) -> GroupResponse {
        match request {
            GroupRequest::Join(request) => GroupResponse::Join(self.join(host, request)),
            GroupRequest::Heartbeat(request) => GroupResponse::Heartbeat(self.heartbeat(host, request)),
            GroupRequest::Leave(request) => GroupResponse::Leave(self.leave(host, request)),
            GroupRequest::Commit(request) => GroupResponse::Commit(self.commit(host, request).await),
            GroupRequest::FetchOffsets(request) => GroupResponse::FetchOffsets(self.fetch_offsets(request)),
            GroupRequest::List => GroupResponse::List(ListGroupsResponse { groups: self.list() }),
            GroupRequest::Describe(request) => GroupResponse::Describe(self.describe(request)),
            GroupRequest::ClassicJoin(request) => GroupResponse::ClassicJoin(self.classic_join(host, request).await),
            GroupRequest::ClassicSync(request) => GroupResponse::ClassicSync(self.classic_sync(request).await),
            GroupRequest::ClassicHeartbeat(request) => {
                let mut classic = self.classic.borrow_mut();
                let error = match classic.get_mut(&request.group) {
                    Some(group) => group.heartbeat(&request, Instant::now()),
                    None => Some(Error::UnknownMember),
                };
                GroupResponse::ClassicHeartbeat(error)
            }
            GroupRequest::ClassicLeave(request) => {
                let mut classic = self.classic.borrow_mut();
                let response = match classic.get_mut(&request.group) {
                    Some(group) => group.leave(request, Instant::now()),
                    None => ClassicLeaveResponse {
                        error: None,
                        members: request.members.into_iter().map(|id| (id, Some(Error::UnknownMember))).collect(),
                    },
                };
                GroupResponse::ClassicLeave(response)
            }
            GroupRequest::ClassicCommit(request) => GroupResponse::Commit(self.classic_commit(host, request).await),
            GroupRequest::Summarize(name) => GroupResponse::Summary(self.summarize(&name)),
            GroupRequest::Delete(name) => GroupResponse::Deleted(self.delete_group(host, &name).await.err()),
            GroupRequest::DeleteOffsets { group, topics } => {
                GroupResponse::OffsetsDeleted(self.delete_offsets(host, &group, topics).await)
            }
        }
    }

    /// A classic join: answered at once, or once the rebalance it waits for completes.
    async fn classic_join<H: GroupHost>(&self, host: &H, request: ClassicJoinRequest) -> ClassicJoinResponse {
        let live = host.live_config();
        let limits = &live.groups;
        let refuse = |error| ClassicJoinResponse {
            error: Some(error),
            generation: -1,
            member_id: request.member_id.clone(),
            ..Default::default()
        };
        let timeout = request.session_timeout_ms;
        if !(limits.session_timeout_min_ms..=limits.session_timeout_max_ms).contains(&timeout) {
            return refuse(Error::InvalidSessionTimeout);
        }
        if self.groups.borrow().get(&request.group).is_some_and(|g| !g.members.is_empty()) {
            return refuse(Error::InconsistentGroupProtocol(format!(
                "group {} is assigned by the broker (a native or KIP-848 group); a classic member cannot join it",
                request.group
            )));
        }
        let joined = {
            let mut classic = self.classic.borrow_mut();
            let known = classic.contains_key(&request.group) || self.groups.borrow().contains_key(&request.group);
            if !known && classic.len() + self.groups.borrow().len() >= limits.groups_max as usize {
                return refuse(Error::TooManyGroups);
            }
            let now = Instant::now();
            let group = classic.entry(request.group.clone()).or_insert_with(|| ClassicGroup::new(now));
            let delay = if group.generation == 0 {
                Duration::from_millis(u64::from(limits.initial_rebalance_delay_ms))
            } else {
                Duration::ZERO
            };
            let n = self.next_member.get() + 1;
            self.next_member.set(n);
            let prefix = if request.client_id.is_empty() { "member".to_string() } else { request.client_id.clone() };
            let shard = host.shard_id();
            let name = request.group.clone();
            let joined = group.join(
                request.clone(),
                || format!("{prefix}-{shard}-{n}-{:08x}", rand_u32()),
                limits.members_max as usize,
                delay,
                now,
            );
            if let Joined::Wait(_) = &joined {
                tracing::debug!(group = %name, "classic member joining");
            }
            joined
        };
        match joined {
            Joined::Now(answer) => answer,
            // Dropped only when the group is removed under it.
            Joined::Wait(receiver) => receiver.await.unwrap_or_else(|_| refuse(Error::RebalanceInProgress)),
        }
    }

    async fn classic_sync(&self, request: ClassicSyncRequest) -> ClassicSyncResponse {
        let synced = match self.classic.borrow_mut().get_mut(&request.group) {
            Some(group) => group.sync(request, Instant::now()),
            None => Synced::Now(ClassicSyncResponse { error: Some(Error::UnknownMember), ..Default::default() }),
        };
        match synced {
            Synced::Now(answer) => answer,
            Synced::Wait(receiver) => receiver.await.unwrap_or_else(|_| ClassicSyncResponse {
                error: Some(Error::RebalanceInProgress),
                ..Default::default()
            }),
        }
    }

    /// A Kafka client's commit: checked against its classic group (or, outside any
    /// group, against the group having no members), then stored as any commit.
    async fn classic_commit<H: GroupHost>(&self, host: &H, request: ClassicCommitRequest) -> OffsetCommitResponse {
        let now = Instant::now();
        let outside = request.generation < 0 && request.member_id.is_empty();
        let generation =
            self.groups.borrow().get(&request.group).filter(|g| !g.members.is_empty()).map(|g| g.generation);
        let broker_assigned = generation.is_some();
        if let (Some(generation), false) = (generation, outside) {
            // A KIP-848 member, for partitions it owns. Its member epoch is the group's
            // generation it was last told; the group's moves on with every other
            // member's join, while the partitions it owns stay its own, so an older
            // epoch commits as long as it owns them (a newer one than the group's is
            // stale all the same).
            let epoch = u32::try_from(request.generation).unwrap_or(u32::MAX);
            let native = OffsetCommitRequest {
                group: request.group.clone(),
                member_id: request.member_id.clone(),
                generation: if epoch <= generation { generation } else { epoch },
                topics: request.topics.clone(),
            };
            let mut answer = self.commit(host, native).await;
            if matches!(answer.error, Some(Error::StaleGeneration)) {
                answer.error = Some(Error::StaleMemberEpoch);
            }
            return answer;
        }
        let allowed = match self.classic.borrow_mut().get_mut(&request.group) {
            Some(group) => group.may_commit(&request.member_id, request.generation, now),
            None if broker_assigned => Err(Error::UnknownMember),
            None if outside => Ok(()),
            None => Err(Error::UnknownMember),
        };
        if let Err(error) = allowed {
            return OffsetCommitResponse { error: Some(error), topics: Vec::new() };
        }
        self.store(host, &request.group, &request.topics, |_| true).await
    }

    fn join<H: GroupHost>(&self, host: &H, request: JoinGroupRequest) -> JoinGroupResponse {
        let live = host.live_config();
        let limits = &live.groups;
        let refuse = |error| JoinGroupResponse {
            error,
            member_id: request.member_id.clone(),
            generation: 0,
            heartbeat_interval_ms: 0,
            assigned: Vec::new(),
        };
        let timeout = request.session_timeout_ms;
        if !(limits.session_timeout_min_ms..=limits.session_timeout_max_ms).contains(&timeout) {
            return refuse(Some(Error::InvalidSessionTimeout));
        }
        let Some(strategy) = Strategy::parse(&request.strategy) else {
            return refuse(Some(Error::InvalidConfig(format!("unknown assignment strategy {:?}", request.strategy))));
        };
        if request.topics.is_empty() || request.topics.len() > 10_000 {
            return refuse(Some(Error::InvalidConfig("a member subscribes to 1 to 10,000 topics".into())));
        }
        if self.classic.borrow().get(&request.group).is_some_and(|g| !g.members.is_empty()) {
            return refuse(Some(Error::InconsistentGroupProtocol(format!(
                "group {} is a Kafka classic group (its leader member assigns); join it with a Kafka client or use another group id",
                request.group
            ))));
        }
        let mut groups = self.groups.borrow_mut();
        if !groups.contains_key(&request.group) && groups.len() >= limits.groups_max as usize {
            return refuse(Some(Error::TooManyGroups));
        }
        let now = Instant::now();
        let delay = Duration::from_millis(u64::from(limits.initial_rebalance_delay_ms));
        let group = groups.entry(request.group.clone()).or_insert_with(|| {
            let generation = self.ended.borrow_mut().remove(&request.group).unwrap_or(0);
            Group::new(strategy, generation, delay, now)
        });
        let member_id = if request.member_id.is_empty() {
            if group.members.len() >= limits.members_max as usize {
                return refuse(Some(Error::GroupFull));
            }
            let n = self.next_member.get() + 1;
            self.next_member.set(n);
            format!("{}-{}-{n}-{:08x}", request.group, host.shard_id(), rand_u32())
        } else if group.members.contains_key(&request.member_id) {
            request.member_id.clone()
        } else if request.chosen_id {
            if group.members.len() >= limits.members_max as usize {
                return refuse(Some(Error::GroupFull));
            }
            request.member_id.clone()
        } else {
            return refuse(Some(Error::UnknownMember));
        };
        let topics: BTreeSet<String> = request.topics.iter().cloned().collect();
        let changed = group.members.get(&member_id).is_none_or(|m| m.topics != topics);
        group.members.insert(
            member_id.clone(),
            Member {
                client_id: request.client_id.clone(),
                client_host: request.client_host.clone(),
                topics,
                session_timeout: Duration::from_millis(u64::from(timeout)),
                last_seen: Instant::now(),
            },
        );
        if group.members.len() == 1 {
            group.strategy = strategy;
        }
        if let (true, Some(forming)) = (changed, &mut group.forming) {
            forming.until = (now + delay).min(forming.latest);
        }
        if changed {
            let counts = counts_of(host, subscribed_topics(group).into_iter());
            group.rebalance(counts);
            tracing::info!(group = %request.group, member = %member_id, generation = group.generation, "member joined");
        }
        let forming = group.still_forming(now, host);
        let assigned = if forming { Vec::new() } else { group.hand_out(&member_id) };
        JoinGroupResponse {
            error: None,
            member_id,
            generation: group.generation,
            // Frequent enough that a released partition reaches its new member within
            // about a second, whatever the session timeout.
            heartbeat_interval_ms: (timeout / 3).clamp(100, 1000),
            assigned,
        }
    }

    fn heartbeat<H: GroupHost>(&self, host: &H, request: HeartbeatRequest) -> HeartbeatResponse {
        let refuse = |error| HeartbeatResponse { error, generation: 0, assigned: Vec::new() };
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(&request.group) else { return refuse(Some(Error::UnknownMember)) };
        let Some(member) = group.members.get_mut(&request.member_id) else { return refuse(Some(Error::UnknownMember)) };
        member.last_seen = Instant::now();
        // What the member no longer reports owning, it has released.
        let id = &request.member_id;
        if let Some(owned) = &request.owned {
            let owned: BTreeSet<Tp> =
                owned.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.topic.clone(), p))).collect();
            group.owner.retain(|tp, holder| holder != id || owned.contains(tp));
        }
        if group.still_forming(Instant::now(), host) {
            return HeartbeatResponse { error: None, generation: group.generation, assigned: Vec::new() };
        }
        // A topic created, deleted or grown since the last assignment rebalances.
        let counts = counts_of(host, subscribed_topics(group).into_iter());
        if counts != group.counts {
            group.rebalance(counts);
        }
        let assigned = group.hand_out(id);
        HeartbeatResponse { error: None, generation: group.generation, assigned }
    }

    fn leave<H: GroupHost>(&self, host: &H, request: LeaveGroupRequest) -> LeaveGroupResponse {
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(&request.group) else {
            return LeaveGroupResponse { error: Some(Error::UnknownMember) };
        };
        if !group.members.contains_key(&request.member_id) {
            return LeaveGroupResponse { error: Some(Error::UnknownMember) };
        }
        group.remove(&request.member_id);
        tracing::info!(group = %request.group, member = %request.member_id, "member left");
        if group.members.is_empty() {
            let groups_max = host.live_config().groups.groups_max as usize;
            self.remember_generation(&request.group, group.generation, groups_max);
            groups.remove(&request.group);
        } else {
            let counts = counts_of(host, subscribed_topics(group).into_iter());
            group.rebalance(counts);
        }
        LeaveGroupResponse { error: None }
    }

    /// Whether `request` may commit at all: an administrative commit (no member, no
    /// generation) only while the group has no members, a member's only at the
    /// group's current generation.
    fn may_commit(&self, request: &OffsetCommitRequest, admin: bool) -> Result<(), Error> {
        let groups = self.groups.borrow();
        match (groups.get(&request.group), admin) {
            (Some(group), true) if !group.members.is_empty() => Err(Error::GroupNotEmpty),
            (_, true) => Ok(()),
            (None, false) => Err(Error::UnknownMember),
            (Some(group), false) if !group.members.contains_key(&request.member_id) => Err(Error::UnknownMember),
            (Some(group), false) if request.generation != group.generation => Err(Error::StaleGeneration),
            (Some(_), false) => Ok(()),
        }
    }

    async fn commit<H: GroupHost>(&self, host: &H, request: OffsetCommitRequest) -> OffsetCommitResponse {
        let whole = |error| OffsetCommitResponse { error, topics: Vec::new() };
        let admin = request.member_id.is_empty() && request.generation == 0;
        // Who may commit what, checked before anything is written.
        if let Err(error) = self.may_commit(&request, admin) {
            return whole(Some(error));
        }
        let owner = self.groups.borrow().get(&request.group).map(|g| g.owner.clone());
        let member = request.member_id.clone();
        self.store(host, &request.group, &request.topics, move |tp| {
            admin || owner.as_ref().is_some_and(|owner| owner.get(tp) == Some(&member))
        })
        .await
    }

    /// Stores the commits of `topics` for `group` that `owns` allows and that are
    /// within their partition's end; every partition's outcome.
    async fn store<H: GroupHost>(
        &self,
        host: &H,
        group_name: &str,
        topics: &[CommitTopic],
        owns: impl Fn(&Tp) -> bool,
    ) -> OffsetCommitResponse {
        let whole = |error| OffsetCommitResponse { error, topics: Vec::new() };
        // Offsets past a partition's end are refused; the ends come from the owners.
        let ends = end_offsets(host, topics).await;
        let mut results = Vec::with_capacity(topics.len());
        let mut accepted: Vec<(String, u32, u64, String)> = Vec::new();
        {
            for topic in topics {
                let mut partitions = Vec::with_capacity(topic.partitions.len());
                for part in &topic.partitions {
                    let tp = (topic.topic.clone(), part.partition);
                    let error = match ends.get(&tp) {
                        None => Some(Error::UnknownTopic),
                        // In a cluster, another broker leads it: its end is not known
                        // here, and the commit is taken as Kafka takes any.
                        Some(Err(Error::NotLeader))
                            if part.metadata.len() <= COMMIT_METADATA_BYTES_MAX && owns(&tp) =>
                        {
                            None
                        }
                        Some(Err(error)) => Some(error.clone()),
                        Some(Ok(_)) if part.metadata.len() > COMMIT_METADATA_BYTES_MAX => Some(Error::InvalidConfig(
                            format!("commit metadata is longer than {COMMIT_METADATA_BYTES_MAX} bytes"),
                        )),
                        Some(Ok(end)) if part.offset > *end => {
                            Some(Error::OffsetOutOfRange { offset: part.offset, end: *end })
                        }
                        Some(Ok(_)) if owns(&tp) => None,
                        Some(Ok(_)) => Some(Error::NotAssigned),
                    };
                    if error.is_none() {
                        accepted.push((topic.topic.clone(), part.partition, part.offset, part.metadata.clone()));
                    }
                    partitions.push(CommitPartitionResult { partition: part.partition, error });
                }
                results.push(CommitTopicResult { topic: topic.topic.clone(), partitions });
            }
        }
        if !accepted.is_empty() {
            // Sequenced and applied to the map under the writer, in log order; the
            // fdatasync is awaited after, so commits of many groups share one.
            let appended = {
                let Ok(_writer) = self.writer.acquire_permit(1).await else {
                    return whole(Some(Error::NotReady));
                };
                let appended = match self.persist(host, group_name, &accepted).await {
                    Ok(appended) => appended,
                    Err(error) => {
                        tracing::warn!(group = %group_name, %error, "cannot store committed offsets");
                        return whole(Some(Error::StorageFailed(format!("committed offsets not stored: {error}"))));
                    }
                };
                let mut offsets = self.offsets.borrow_mut();
                let stored = offsets.entry(group_name.to_string()).or_default();
                for (topic, partition, offset, metadata) in accepted {
                    stored.insert((topic, partition), (offset, metadata));
                }
                appended
            };
            let (log, appended) = appended;
            if let Err(error) = log.wait_acked(&appended, Acks::Durable).await {
                // The log refuses appends until restart; replay then shows what is on disk.
                tracing::warn!(group = %group_name, %error, "committed offsets not made durable");
                return whole(Some(Error::StorageFailed(format!("committed offsets not stored: {error}"))));
            }
        }
        OffsetCommitResponse { error: None, topics: results }
    }

    /// Appends the commits to the group's partition of `__consumer_offsets`; resolves
    /// once they are sequenced (the caller waits for the fdatasync).
    async fn persist<H: GroupHost>(
        &self,
        host: &H,
        group: &str,
        commits: &[(String, u32, u64, String)],
    ) -> anyhow::Result<(Rc<Partition>, crate::storage::Appended)> {
        let partitions = host.metadata().topics.get(OFFSETS_TOPIC).map_or(0, |t| t.partitions());
        anyhow::ensure!(partitions > 0, "{} does not exist", OFFSETS_TOPIC);
        let partition = offsets_partition(group, partitions);
        let log = host
            .partition(OFFSETS_TOPIC, partition)
            .ok_or_else(|| anyhow::anyhow!("partition {partition} of {} is not on this shard", OFFSETS_TOPIC))?;
        let mut builder = BatchBuilder::new();
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        for (topic, partition, offset, metadata) in commits {
            let mut value = offset.to_le_bytes().to_vec();
            value.extend_from_slice(metadata.as_bytes());
            builder.push(Some(&record_key(group, topic, *partition)), Some(&value), &[], now_ms);
        }
        let appended = log.append(BytesMut::from(&builder.finish()[..])).await?;
        Ok((log, appended))
    }

    /// Compacts each of this shard's `__consumer_offsets` partitions that stores more
    /// than `groups.offsets_compact_bytes`: appends every current commit of the groups
    /// it holds, then deletes the sealed segments before them. Replay then finds the
    /// same state in a bounded log.
    pub async fn compact<H: GroupHost>(&self, host: &H) {
        let limit = host.live_config().groups.offsets_compact_bytes;
        let partitions = host.metadata().topics.get(OFFSETS_TOPIC).map_or(0, |t| t.partitions());
        for partition in 0..partitions {
            let Some(log) = host.partition(OFFSETS_TOPIC, partition) else { continue };
            if log.size_bytes() <= limit || log.segment_count() < 2 {
                continue;
            }
            let Ok(_writer) = self.writer.acquire_permit(1).await else { return };
            let entries: Vec<(String, String, u32, u64, String)> = self
                .offsets
                .borrow()
                .iter()
                .filter(|(group, _)| offsets_partition(group, partitions) == partition)
                .flat_map(|(group, committed)| {
                    committed.iter().map(move |((topic, p), (offset, metadata))| {
                        (group.clone(), topic.clone(), *p, *offset, metadata.clone())
                    })
                })
                .collect();
            let mut first = log.offsets().end;
            let mut builder = BatchBuilder::new();
            let now_ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let mut appended_any = false;
            for (i, (group, topic, p, offset, metadata)) in entries.iter().enumerate() {
                let mut value = offset.to_le_bytes().to_vec();
                value.extend_from_slice(metadata.as_bytes());
                builder.push(Some(&record_key(group, topic, *p)), Some(&value), &[], now_ms);
                let last = i + 1 == entries.len();
                if builder.size_bytes() >= 256 * 1024 || last {
                    let batch = std::mem::take(&mut builder).finish();
                    builder = BatchBuilder::new();
                    let appended = log.append(BytesMut::from(&batch[..])).await;
                    let durable = match appended {
                        Ok(appended) => log.wait_acked(&appended, Acks::Durable).await.map(|()| appended),
                        Err(error) => Err(error),
                    };
                    match durable {
                        Ok(appended) if !appended_any => {
                            first = appended.base_offset;
                            appended_any = true;
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(partition, %error, "compacting committed offsets failed; the log is kept");
                            return;
                        }
                    }
                }
            }
            match log.delete_segments_before(first).await {
                Ok(deleted) => tracing::info!(
                    shard = host.shard_id(),
                    partition,
                    commits = entries.len(),
                    segments = deleted.segments_deleted,
                    bytes = deleted.bytes_deleted,
                    "compacted committed offsets"
                ),
                Err(error) => tracing::warn!(partition, %error, "deleting compacted segments failed"),
            }
        }
    }

    fn fetch_offsets(&self, request: OffsetFetchRequest) -> OffsetFetchResponse {
        let offsets = self.offsets.borrow();
        let stored = offsets.get(&request.group);
        let known = stored.is_some()
            || self.groups.borrow().contains_key(&request.group)
            || self.classic.borrow().contains_key(&request.group);
        if !known && request.topics.is_empty() {
            return OffsetFetchResponse { error: Some(Error::UnknownGroup), topics: Vec::new() };
        }
        let lookup = |topic: &String, partition: u32| -> CommittedPartition {
            match stored.and_then(|s| s.get(&(topic.clone(), partition))) {
                Some((offset, metadata)) => {
                    CommittedPartition { partition, offset: *offset as i64, metadata: metadata.clone(), error: None }
                }
                None => CommittedPartition { partition, offset: -1, metadata: String::new(), error: None },
            }
        };
        let topics = if request.topics.is_empty() {
            let mut by_topic: BTreeMap<&String, Vec<CommittedPartition>> = BTreeMap::new();
            for ((topic, partition), _) in stored.into_iter().flatten() {
                by_topic.entry(topic).or_default().push(lookup(topic, *partition));
            }
            by_topic
                .into_iter()
                .map(|(topic, partitions)| CommittedTopic { topic: topic.clone(), partitions })
                .collect()
        } else {
            request
                .topics
                .iter()
                .map(|t| CommittedTopic {
                    topic: t.topic.clone(),
                    partitions: t.partitions.iter().map(|&p| lookup(&t.topic, p)).collect(),
                })
                .collect()
        };
        OffsetFetchResponse { error: None, topics }
    }

    fn list(&self) -> Vec<GroupListing> {
        let groups = self.groups.borrow();
        let classic = self.classic.borrow();
        let offsets = self.offsets.borrow();
        let names: BTreeSet<&String> = groups.keys().chain(classic.keys()).chain(offsets.keys()).collect();
        names
            .into_iter()
            .map(|name| {
                if let Some(group) = classic.get(name).filter(|g| !g.members.is_empty()) {
                    return GroupListing {
                        group: name.clone(),
                        members: group.members.len() as u32,
                        generation: group.generation.max(0) as u32,
                        state: group.state.name().to_string(),
                        protocol_type: group.protocol_type.clone().unwrap_or_default(),
                        classic: true,
                    };
                }
                let group = groups.get(name);
                let members = group.map_or(0, |g| g.members.len() as u32);
                GroupListing {
                    group: name.clone(),
                    members,
                    generation: group.map_or(0, |g| g.generation),
                    state: native_state(group).to_string(),
                    protocol_type: if members > 0 { "consumer".into() } else { String::new() },
                    classic: false,
                }
            })
            .collect()
    }

    /// Forgets a group with no members: a tombstone for each of its committed offsets
    /// in `__consumer_offsets` (fdatasynced before the answer), then the group.
    async fn delete_group<H: GroupHost>(&self, host: &H, name: &str) -> Result<(), Error> {
        let has_members = self.groups.borrow().get(name).is_some_and(|g| !g.members.is_empty())
            || self.classic.borrow().get(name).is_some_and(|g| !g.members.is_empty());
        if has_members {
            return Err(Error::GroupNotEmpty);
        }
        let committed: Vec<Tp> =
            self.offsets.borrow().get(name).map(|c| c.keys().cloned().collect()).unwrap_or_default();
        let known =
            !committed.is_empty() || self.ended.borrow().contains_key(name) || self.groups.borrow().contains_key(name);
        if !known {
            return Err(Error::UnknownGroup);
        }
        if !committed.is_empty() {
            self.write_tombstones(host, name, &committed).await?;
        }
        self.ended.borrow_mut().remove(name);
        self.groups.borrow_mut().remove(name);
        self.classic.borrow_mut().remove(name);
        tracing::info!(group = %name, offsets = committed.len(), "group deleted");
        Ok(())
    }

    /// Forgets `committed` offsets of group `name`: a tombstone for each in
    /// `__consumer_offsets`, fdatasynced before they leave memory.
    async fn write_tombstones<H: GroupHost>(&self, host: &H, name: &str, committed: &[Tp]) -> Result<(), Error> {
        let Ok(_writer) = self.writer.acquire_permit(1).await else { return Err(Error::NotReady) };
        let partitions = host.metadata().topics.get(OFFSETS_TOPIC).map_or(0, |t| t.partitions());
        let log = host
            .partition(OFFSETS_TOPIC, offsets_partition(name, partitions))
            .ok_or_else(|| Error::StorageFailed(format!("{OFFSETS_TOPIC} is not open on this shard")))?;
        let mut builder = BatchBuilder::new();
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        for (topic, partition) in committed {
            builder.push(Some(&record_key(name, topic, *partition)), None, &[], now_ms);
        }
        let appended = log.append(BytesMut::from(&builder.finish()[..])).await.map_err(Error::from)?;
        log.wait_acked(&appended, Acks::Durable).await.map_err(Error::from)?;
        let mut offsets = self.offsets.borrow_mut();
        if let Some(stored) = offsets.get_mut(name) {
            for tp in committed {
                stored.remove(tp);
            }
            if stored.is_empty() {
                offsets.remove(name);
            }
        }
        Ok(())
    }

    /// Kafka's OffsetDelete: forgets the group's committed offsets of `topics`' partitions,
    /// except those of topics its members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC). A
    /// classic group of another protocol type than `consumer` must be empty, as its
    /// subscriptions cannot be read. A partition with no committed offset succeeds.
    async fn delete_offsets<H: GroupHost>(
        &self,
        host: &H,
        name: &str,
        topics: Vec<TopicPartitions>,
    ) -> OffsetCommitResponse {
        let refused = |error: Error| OffsetCommitResponse { error: Some(error), topics: Vec::new() };
        let subscribed: BTreeSet<String> = {
            let classic = self.classic.borrow();
            let groups = self.groups.borrow();
            let live_classic = classic.get(name).filter(|g| !g.members.is_empty());
            let known = live_classic.is_some() || groups.contains_key(name) || self.offsets.borrow().contains_key(name);
            if !known {
                return refused(Error::UnknownGroup);
            }
            match live_classic {
                Some(group) if group.protocol_type.as_deref() != Some("consumer") => {
                    return refused(Error::GroupNotEmpty)
                }
                Some(group) => {
                    let protocol = group.protocol.clone().unwrap_or_default();
                    group.members.values().flat_map(|member| subscription_topics(&member.metadata(&protocol))).collect()
                }
                None => groups.get(name).map(subscribed_topics).unwrap_or_default(),
            }
        };
        let mut doomed = Vec::new();
        let results: Vec<CommitTopicResult> = {
            let offsets = self.offsets.borrow();
            let stored = offsets.get(name);
            topics
                .into_iter()
                .map(|topic| {
                    let is_subscribed = subscribed.contains(&topic.topic);
                    let partitions = topic
                        .partitions
                        .iter()
                        .map(|&partition| {
                            let key = (topic.topic.clone(), partition);
                            let error = if is_subscribed {
                                Some(Error::GroupSubscribedToTopic)
                            } else {
                                if stored.is_some_and(|s| s.contains_key(&key)) {
                                    doomed.push(key);
                                }
                                None
                            };
                            CommitPartitionResult { partition, error }
                        })
                        .collect();
                    CommitTopicResult { topic: topic.topic, partitions }
                })
                .collect()
        };
        if !doomed.is_empty() {
            if let Err(error) = self.write_tombstones(host, name, &doomed).await {
                return refused(error);
            }
            tracing::info!(group = %name, offsets = doomed.len(), "committed offsets deleted");
        }
        OffsetCommitResponse { error: None, topics: results }
    }

    /// Kafka's DescribeGroups of `name`: `None` when the broker knows nothing of it.
    fn summarize(&self, name: &str) -> Option<GroupSummary> {
        if let Some(group) = self.classic.borrow().get(name).filter(|g| !g.members.is_empty()) {
            let protocol = group.protocol.clone().unwrap_or_default();
            let members = group
                .members
                .iter()
                .map(|(id, member)| MemberSummary {
                    member_id: id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    metadata: member.metadata(&protocol),
                    assignment: member.assignment.clone(),
                })
                .collect();
            return Some(GroupSummary {
                group: name.to_string(),
                state: group.state.name().to_string(),
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocol,
                members,
                classic: true,
            });
        }
        let groups = self.groups.borrow();
        let group = groups.get(name);
        if group.is_none() && !self.offsets.borrow().contains_key(name) && !self.ended.borrow().contains_key(name) {
            return None;
        }
        let members = group
            .map(|group| {
                group
                    .members
                    .iter()
                    .map(|(id, member)| MemberSummary {
                        member_id: id.clone(),
                        metadata: consumer_subscription(member.topics.iter()),
                        assignment: consumer_assignment(&group.owned_by(id)),
                        ..MemberSummary::default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(GroupSummary {
            group: name.to_string(),
            state: native_state(group).to_string(),
            protocol_type: if group.is_some_and(|g| !g.members.is_empty()) { "consumer".into() } else { String::new() },
            protocol: group
                .filter(|g| !g.members.is_empty())
                .map(|g| g.strategy.name().to_string())
                .unwrap_or_default(),
            members,
            classic: false,
        })
    }

    fn describe(&self, request: DescribeGroupRequest) -> DescribeGroupResponse {
        let groups = self.groups.borrow();
        let Some(group) = groups.get(&request.group) else {
            let error =
                if self.offsets.borrow().contains_key(&request.group) { None } else { Some(Error::UnknownGroup) };
            let generation = self.ended.borrow().get(&request.group).copied();
            let error = if generation.is_some() { None } else { error };
            return DescribeGroupResponse {
                error,
                group: request.group,
                generation: generation.unwrap_or(0),
                strategy: String::new(),
                members: Vec::new(),
            };
        };
        let members = group
            .members
            .iter()
            .map(|(id, member)| GroupMemberDescription {
                member_id: id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                topics: member.topics.iter().cloned().collect(),
                session_timeout_ms: member.session_timeout.as_millis() as u32,
                owned: group.owned_by(id),
                target: listed(group.target.get(id)),
            })
            .collect();
        DescribeGroupResponse {
            error: None,
            group: request.group,
            generation: group.generation,
            strategy: group.strategy.name().to_string(),
            members,
        }
    }
}

/// The topics of a Kafka consumer protocol subscription (ConsumerProtocolSubscription,
/// any version: they all start with the version and the topic names); nothing if the
/// bytes are not one.
fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut at = 2usize; // the version
    let read_i32 = |at: &mut usize| -> Option<i32> {
        let bytes = metadata.get(*at..*at + 4)?;
        *at += 4;
        Some(i32::from_be_bytes(bytes.try_into().ok()?))
    };
    let Some(count) = read_i32(&mut at).filter(|&n| n >= 0) else { return Vec::new() };
    let mut topics = Vec::new();
    for _ in 0..count {
        let Some(len) = metadata.get(at..at + 2).map(|b| i16::from_be_bytes([b[0], b[1]])) else { break };
        at += 2;
        let Some(name) = usize::try_from(len).ok().and_then(|len| metadata.get(at..at + len)) else { break };
        at += name.len();
        topics.push(String::from_utf8_lossy(name).into_owned());
    }
    topics
}

/// Each committed partition's end (high watermark), or why it has none, from the
/// partitions' owning shards.
async fn end_offsets<H: GroupHost>(host: &H, topics: &[CommitTopic]) -> HashMap<Tp, Result<u64, Error>> {
    let tps: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| TopicPartition::new(t.topic.clone(), p.partition)))
        .collect();
    let keys: Vec<Tp> = tps.iter().map(|tp| (tp.topic.clone(), tp.partition)).collect();
    let ends = host.end_offsets(tps).await;
    keys.into_iter().zip(ends).collect()
}

/// A random u32 for member ids (not security-sensitive: ids only need to differ).
fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos.wrapping_mul(2_654_435_761)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_keys_round_trip() {
        let key = record_key("billing", "orders.v2", 17);
        assert_eq!(parse_key(&key), Some(("billing".into(), "orders.v2".into(), 17)));
        assert_eq!(parse_key(b"no-separators"), None);
        assert_eq!(parse_key(b"a\0b\0\x01"), None);
    }

    #[test]
    fn commits_replay_from_their_batches() {
        let coordinator = GroupCoordinator::default();
        let mut builder = BatchBuilder::new();
        let mut value = 42u64.to_le_bytes().to_vec();
        value.extend_from_slice(b"host-a");
        builder.push(Some(&record_key("g", "t", 3)), Some(&value), &[], 1);
        builder.push(Some(&record_key("g", "t", 3)), Some(&43u64.to_le_bytes()), &[], 2);
        builder.push(Some(b"garbage"), Some(&1u64.to_le_bytes()), &[], 3);
        let batch = builder.finish();
        let mut two = batch.clone();
        two.extend_from_slice(&batch);
        assert_eq!(coordinator.apply_batches(&two), 4);
        let offsets = coordinator.offsets.borrow();
        assert_eq!(offsets["g"][&("t".to_string(), 3)], (43, String::new()));
    }

    #[test]
    fn a_rebalance_waits_for_the_release_of_moving_partitions() {
        let counts: BTreeMap<String, u32> = [("t".to_string(), 4)].into_iter().collect();
        let mut group = Group::new(Strategy::Sticky, 0, Duration::ZERO, Instant::now());
        let member = |topics: &[&str]| Member {
            client_id: String::new(),
            client_host: String::new(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout: Duration::from_secs(10),
            last_seen: Instant::now(),
        };
        group.members.insert("a".into(), member(&["t"]));
        group.rebalance(counts.clone());
        let all = group.hand_out("a");
        assert_eq!(all[0].partitions, [0, 1, 2, 3]);
        group.members.insert("b".into(), member(&["t"]));
        group.rebalance(counts.clone());
        // b's share is still a's: b gets nothing until a lets go.
        assert!(group.hand_out("b").is_empty());
        let keep = group.hand_out("a");
        assert_eq!(keep[0].partitions.len(), 2, "a is told to keep two and give up two");
        // a releases (its heartbeat reports only what it kept); b then gets the rest.
        let kept: BTreeSet<Tp> = keep[0].partitions.iter().map(|&p| ("t".to_string(), p)).collect();
        group.owner.retain(|tp, holder| holder != "a" || kept.contains(tp));
        let moved = group.hand_out("b");
        assert_eq!(moved[0].partitions.len(), 2);
        assert!(moved[0].partitions.iter().all(|p| !keep[0].partitions.contains(p)));
        // a leaving hands b everything at once.
        group.remove("a");
        group.rebalance(counts);
        assert_eq!(group.hand_out("b")[0].partitions, [0, 1, 2, 3]);
    }
}
