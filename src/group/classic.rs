//! Kafka's classic group protocol on one coordinating shard: the group's leader
//! member assigns (the broker never reads the protocols' metadata or assignments), the
//! coordinator runs the rebalance barrier.
//!
//! States, as Kafka's coordinator has them: `Empty` (no members), `Preparing` (a
//! rebalance began: every known member is to join again; joins wait), `Completing`
//! (every member joined or the rebalance timeout passed: members are answered, the
//! leader with the member list, and syncs wait for the leader's assignments),
//! `Stable` (assignments handed out). A join, a leave or an expired session moves a
//! group to `Preparing`; heartbeats then answer REBALANCE_IN_PROGRESS, which is how
//! the other members learn to join again. Incremental protocols (the
//! cooperative-sticky assignor) run on the same barrier: the clients keep their
//! partitions across it and revoke by rejoining, as against Kafka.
//!
//! A new group waits `groups.initial_rebalance_delay_ms` before its first rebalance
//! completes (Kafka's `group.initial.rebalance.delay.ms`), so members started together
//! share the first assignment.

use super::api::*;
use crate::service::error::Error;
use bytes::Bytes;
use futures_channel::oneshot;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    Preparing,
    Completing,
    Stable,
}

impl State {
    /// Kafka's name for the state (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::Preparing => "PreparingRebalance",
            State::Completing => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

pub struct Member {
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_seen: Instant,
    /// The order members joined in: the first is leader when there is none.
    order: u64,
    joining: Option<oneshot::Sender<ClassicJoinResponse>>,
    syncing: Option<oneshot::Sender<ClassicSyncResponse>>,
}

impl Member {
    /// The metadata it joined with for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

pub struct ClassicGroup {
    pub state: State,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Ids given to new members (KIP-394) that have not joined with them yet.
    pending: HashSet<String>,
    /// While preparing: the rebalance completes once every member joined, not before
    /// `not_before` (the initial delay of a new group), and at `deadline` at the
    /// latest (members that did not join by then are removed).
    not_before: Instant,
    deadline: Instant,
    next_order: u64,
}

/// What a join asks of the caller: an answer now, or one to wait for.
pub enum Joined {
    Now(ClassicJoinResponse),
    Wait(oneshot::Receiver<ClassicJoinResponse>),
}

/// What a sync asks of the caller.
pub enum Synced {
    Now(ClassicSyncResponse),
    Wait(oneshot::Receiver<ClassicSyncResponse>),
}

fn join_refusal(error: Error, member_id: &str) -> ClassicJoinResponse {
    ClassicJoinResponse { error: Some(error), generation: -1, member_id: member_id.to_string(), ..Default::default() }
}

impl ClassicGroup {
    pub fn new(now: Instant) -> ClassicGroup {
        ClassicGroup {
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashSet::new(),
            not_before: now,
            deadline: now,
            next_order: 0,
        }
    }

    /// Whether the group holds nothing worth keeping: no members, no ids given out.
    pub fn is_idle(&self) -> bool {
        self.state == State::Empty && self.pending.is_empty()
    }

    /// Handles a join. `new_member_id` makes an id for a member that has none;
    /// `members_max` bounds the group; `initial_delay` is the wait of a new group.
    pub fn join(
        &mut self,
        request: ClassicJoinRequest,
        new_member_id: impl FnOnce() -> String,
        members_max: usize,
        initial_delay: Duration,
        now: Instant,
    ) -> Joined {
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Joined::Now(join_refusal(
                Error::InconsistentGroupProtocol("a join names a protocol type and at least one protocol".into()),
                &request.member_id,
            ));
        }
        if self.state != State::Empty {
            let same_type = self.protocol_type.as_deref() == Some(request.protocol_type.as_str());
            let shared = self.members.iter().filter(|(id, _)| **id != request.member_id).all(|(_, member)| {
                member.protocols.iter().any(|(name, _)| request.protocols.iter().any(|(asked, _)| asked == name))
            });
            if !same_type || !shared {
                return Joined::Now(join_refusal(
                    Error::InconsistentGroupProtocol(format!(
                        "the group's members use protocol type {:?} with protocols this member does not offer",
                        self.protocol_type.as_deref().unwrap_or("")
                    )),
                    &request.member_id,
                ));
            }
        }
        let member_id = if request.member_id.is_empty() {
            if self.members.len() + self.pending.len() >= members_max {
                return Joined::Now(join_refusal(Error::GroupFull, ""));
            }
            let id = new_member_id();
            if request.require_known_member {
                self.pending.insert(id.clone());
                return Joined::Now(join_refusal(Error::MemberIdRequired, &id));
            }
            id
        } else if self.members.contains_key(&request.member_id) || self.pending.remove(&request.member_id) {
            request.member_id.clone()
        } else {
            return Joined::Now(join_refusal(Error::UnknownMember, &request.member_id));
        };
        if !self.members.contains_key(&member_id) && self.members.len() >= members_max {
            return Joined::Now(join_refusal(Error::GroupFull, &member_id));
        }
        // A follower rejoining a stable group with what it had: nothing changes.
        if let Some(member) = self.members.get(&member_id) {
            let unchanged = member.protocols == request.protocols;
            if self.state == State::Stable && unchanged && self.leader.as_deref() != Some(member_id.as_str()) {
                return Joined::Now(self.join_answer(&member_id));
            }
        }
        let (reply, receiver) = oneshot::channel();
        let order = self.members.get(&member_id).map_or_else(
            || {
                self.next_order += 1;
                self.next_order
            },
            |member| member.order,
        );
        self.members.insert(
            member_id.clone(),
            Member {
                group_instance_id: request.group_instance_id,
                client_id: request.client_id,
                client_host: request.client_host,
                session_timeout: Duration::from_millis(u64::from(request.session_timeout_ms)),
                rebalance_timeout: Duration::from_millis(u64::from(request.rebalance_timeout_ms)),
                protocols: request.protocols,
                assignment: Bytes::new(),
                last_seen: now,
                order,
                joining: Some(reply),
                syncing: None,
            },
        );
        if self.state == State::Empty {
            self.protocol_type = Some(request.protocol_type);
            self.prepare(now, initial_delay);
        } else if self.state != State::Preparing {
            self.prepare(now, Duration::ZERO);
        }
        self.try_complete(now);
        Joined::Wait(receiver)
    }

    /// Begins a rebalance: every member is to join again; waiting syncs are told.
    fn prepare(&mut self, now: Instant, delay: Duration) {
        self.state = State::Preparing;
        let longest = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.not_before = now + delay;
        self.deadline = now + longest.max(delay);
        for member in self.members.values_mut() {
            if let Some(waiting) = member.syncing.take() {
                let _ =
                    waiting.send(ClassicSyncResponse { error: Some(Error::RebalanceInProgress), ..Default::default() });
            }
        }
    }

    /// Completes the rebalance if every member joined (after the initial delay), or
    /// its deadline passed.
    pub fn try_complete(&mut self, now: Instant) {
        if self.state != State::Preparing {
            return;
        }
        let all_joined = self.members.values().all(|m| m.joining.is_some());
        if !(all_joined && now >= self.not_before) && now < self.deadline {
            return;
        }
        // Members that did not join in time are out.
        self.members.retain(|_, member| member.joining.is_some());
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.protocol_type = None;
            self.leader = None;
            return;
        }
        self.protocol = Some(self.elect_protocol());
        if !self.leader.as_ref().is_some_and(|leader| self.members.contains_key(leader)) {
            self.leader = self.members.iter().min_by_key(|(_, m)| m.order).map(|(id, _)| id.clone());
        }
        self.state = State::Completing;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let answer = self.join_answer(&id);
            let member = self.members.get_mut(&id).expect("listed above");
            member.last_seen = now;
            member.assignment = Bytes::new();
            if let Some(reply) = member.joining.take() {
                let _ = reply.send(answer);
            }
        }
    }

    /// The protocol every member supports that most members prefer (each member's
    /// vote goes to the first of its protocols that all support); a tie goes to the
    /// one the longest-standing member prefers.
    fn elect_protocol(&self) -> String {
        let Some(eldest) = self.members.values().min_by_key(|m| m.order) else { return String::new() };
        let candidates: Vec<&String> = eldest
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == *name)))
            .collect();
        let votes = |name: &String| {
            self.members
                .values()
                .filter(|m| m.protocols.iter().find(|(n, _)| candidates.contains(&n)).is_some_and(|(n, _)| n == name))
                .count()
        };
        let mut best: Option<(&String, usize)> = None;
        for name in &candidates {
            let count = votes(name);
            if best.is_none_or(|(_, most)| count > most) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.clone()).unwrap_or_default()
    }

    fn join_answer(&self, member_id: &str) -> ClassicJoinResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .iter()
                .map(|(id, m)| ClassicMemberMetadata {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        ClassicJoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: Some(protocol),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Checks a member and its generation, refreshing its session.
    fn check(&mut self, member_id: &str, generation: i32, now: Instant) -> Result<(), Error> {
        let Some(member) = self.members.get_mut(member_id) else { return Err(Error::UnknownMember) };
        member.last_seen = now;
        if generation != self.generation {
            return Err(Error::StaleGeneration);
        }
        Ok(())
    }

    pub fn sync(&mut self, request: ClassicSyncRequest, now: Instant) -> Synced {
        let refuse = |error| Synced::Now(ClassicSyncResponse { error: Some(error), ..Default::default() });
        if let Err(error) = self.check(&request.member_id, request.generation, now) {
            return refuse(error);
        }
        let mismatch = |asked: &Option<String>, have: &Option<String>| asked.is_some() && asked != have;
        if mismatch(&request.protocol_type, &self.protocol_type) || mismatch(&request.protocol, &self.protocol) {
            return refuse(Error::InconsistentGroupProtocol("the sync names another protocol than the join".into()));
        }
        match self.state {
            State::Empty => refuse(Error::UnknownMember),
            State::Preparing => refuse(Error::RebalanceInProgress),
            State::Stable => Synced::Now(self.sync_answer(&request.member_id)),
            State::Completing => {
                let (reply, receiver) = oneshot::channel();
                self.members.get_mut(&request.member_id).expect("checked").syncing = Some(reply);
                if self.leader.as_deref() == Some(request.member_id.as_str()) {
                    let assignments: BTreeMap<String, Bytes> = request.assignments.into_iter().collect();
                    for (id, member) in self.members.iter_mut() {
                        member.assignment = assignments.get(id).cloned().unwrap_or_default();
                    }
                    self.state = State::Stable;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let answer = self.sync_answer(&id);
                        if let Some(waiting) = self.members.get_mut(&id).and_then(|m| m.syncing.take()) {
                            let _ = waiting.send(answer);
                        }
                    }
                }
                Synced::Wait(receiver)
            }
        }
    }

    fn sync_answer(&self, member_id: &str) -> ClassicSyncResponse {
        ClassicSyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            assignment: self.members.get(member_id).map(|m| m.assignment.clone()).unwrap_or_default(),
        }
    }

    pub fn heartbeat(&mut self, request: &ClassicHeartbeatRequest, now: Instant) -> Option<Error> {
        if let Err(error) = self.check(&request.member_id, request.generation, now) {
            return Some(error);
        }
        match self.state {
            State::Preparing => Some(Error::RebalanceInProgress),
            State::Empty => Some(Error::UnknownMember),
            State::Completing | State::Stable => None,
        }
    }

    pub fn leave(&mut self, request: ClassicLeaveRequest, now: Instant) -> ClassicLeaveResponse {
        let mut outcomes = Vec::with_capacity(request.members.len());
        let mut left = false;
        for id in request.members {
            if self.remove(&id) {
                left = true;
                outcomes.push((id, None));
            } else {
                outcomes.push((id, Some(Error::UnknownMember)));
            }
        }
        if left {
            self.prepare(now, Duration::ZERO);
            self.try_complete(now);
        }
        ClassicLeaveResponse { error: None, members: outcomes }
    }

    /// Removes a member; its waiting join or sync is answered UNKNOWN_MEMBER_ID.
    fn remove(&mut self, id: &str) -> bool {
        let Some(member) = self.members.remove(id) else { return false };
        if let Some(reply) = member.joining {
            let _ = reply.send(join_refusal(Error::UnknownMember, id));
        }
        if let Some(reply) = member.syncing {
            let _ = reply.send(ClassicSyncResponse { error: Some(Error::UnknownMember), ..Default::default() });
        }
        true
    }

    /// Removes members whose session expired (a member waiting for its join or sync
    /// answer is not expired: the broker owes it that answer) and completes a
    /// rebalance whose time is up. Returns the ids removed.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.joining.is_none() && m.syncing.is_none())
            .filter(|(_, m)| now.duration_since(m.last_seen) > m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove(id);
        }
        if !expired.is_empty() && self.state != State::Preparing {
            self.prepare(now, Duration::ZERO);
        }
        self.try_complete(now);
        expired
    }

    /// Whether a commit by `member_id` at `generation` may be stored: a member's at
    /// the current generation while the group is stable or preparing a rebalance
    /// (members keep consuming and committing until they join again; the
    /// cooperative protocol relies on it), not between the join answers and the
    /// leader's assignment; a client outside the group's (generation -1, no member
    /// id) only while it has no members. As Kafka's coordinator decides.
    pub fn may_commit(&mut self, member_id: &str, generation: i32, now: Instant) -> Result<(), Error> {
        if generation < 0 && member_id.is_empty() {
            return if self.members.is_empty() { Ok(()) } else { Err(Error::UnknownMember) };
        }
        self.check(member_id, generation, now)?;
        match self.state {
            State::Completing => Err(Error::RebalanceInProgress),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(member: &str, protocols: &[&str]) -> ClassicJoinRequest {
        ClassicJoinRequest {
            group: "g".into(),
            member_id: member.into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from(format!("meta-{member}")))).collect(),
            ..Default::default()
        }
    }

    fn answered(joined: Joined) -> ClassicJoinResponse {
        match joined {
            Joined::Now(answer) => answer,
            Joined::Wait(mut receiver) => receiver.try_recv().unwrap().expect("answered"),
        }
    }

    /// The barrier: two members join, the first is leader and sees both; the leader's
    /// sync hands each member its assignment; a third member's join sends the others
    /// back through REBALANCE_IN_PROGRESS to a new generation.
    #[test]
    fn a_rebalance_waits_for_every_member_and_the_leader_assigns() {
        let now = Instant::now();
        let mut group = ClassicGroup::new(now);
        let mut ids = ["a", "b", "c"].into_iter().map(String::from);
        let mut next = || ids.next().unwrap();
        // KIP-394: a new member is given its id first.
        let first = answered(group.join(
            ClassicJoinRequest { require_known_member: true, ..join("", &["range"]) },
            &mut next,
            10,
            Duration::ZERO,
            now,
        ));
        assert!(matches!(first.error, Some(Error::MemberIdRequired)));
        assert_eq!(first.member_id, "a");
        let a = group.join(join("a", &["cooperative-sticky", "range"]), &mut next, 10, Duration::ZERO, now);
        let Joined::Wait(mut a) = a else { panic!("a single member completes at once, answered through its receiver") };
        let a = a.try_recv().unwrap().unwrap();
        assert_eq!((a.generation, a.leader.as_str(), a.members.len()), (1, "a", 1));
        // b joins: a rebalance; a learns of it by heartbeat and joins again.
        let b = group.join(join("", &["range", "cooperative-sticky"]), &mut next, 10, Duration::ZERO, now);
        let Joined::Wait(mut b) = b else { panic!("b waits for a") };
        assert!(b.try_recv().unwrap().is_none());
        let beat = ClassicHeartbeatRequest { group: "g".into(), member_id: "a".into(), generation: 1 };
        assert!(matches!(group.heartbeat(&beat, now), Some(Error::RebalanceInProgress)));
        let a = answered(group.join(join("a", &["cooperative-sticky", "range"]), &mut next, 10, Duration::ZERO, now));
        let b = b.try_recv().unwrap().unwrap();
        assert_eq!((a.generation, b.generation), (2, 2));
        assert_eq!((a.members.len(), b.members.len()), (2, 0), "only the leader sees the members");
        assert_eq!(a.protocol.as_deref(), Some("cooperative-sticky"), "a tie, to the eldest member's choice");
        // b syncs first and waits; the leader's sync answers both.
        let sync = |member: &str, assignments: Vec<(String, Bytes)>| ClassicSyncRequest {
            group: "g".into(),
            member_id: member.into(),
            generation: 2,
            assignments,
            ..Default::default()
        };
        let Synced::Wait(mut waiting) = group.sync(sync(b.member_id.as_str(), vec![]), now) else { panic!("b waits") };
        let assignments = vec![("a".into(), Bytes::from_static(b"A")), (b.member_id.clone(), Bytes::from_static(b"B"))];
        let Synced::Wait(mut leader) = group.sync(sync("a", assignments), now) else { panic!() };
        assert_eq!(waiting.try_recv().unwrap().unwrap().assignment, Bytes::from_static(b"B"));
        assert_eq!(leader.try_recv().unwrap().unwrap().assignment, Bytes::from_static(b"A"));
        assert_eq!(group.state, State::Stable);
        assert!(group.may_commit("a", 2, now).is_ok());
        assert!(matches!(group.may_commit("a", 1, now), Err(Error::StaleGeneration)));
        assert!(matches!(group.may_commit("", -1, now), Err(Error::UnknownMember)), "not while it has members");
    }

    /// A member that stops heartbeating is removed after its session, and the rest
    /// rebalance without it; a member that does not rejoin in time is dropped.
    #[test]
    fn silent_members_expire_and_late_joiners_are_dropped() {
        let now = Instant::now();
        let mut group = ClassicGroup::new(now);
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("m{n}")
        };
        answered(group.join(join("", &["range"]), &mut next, 10, Duration::ZERO, now));
        let Joined::Wait(_second) = group.join(join("", &["range"]), &mut next, 10, Duration::ZERO, now) else {
            panic!()
        };
        // m1 never rejoins: at the rebalance deadline it is dropped.
        group.tick(now + Duration::from_secs(31));
        assert_eq!(group.members.keys().collect::<Vec<_>>(), vec!["m2"]);
        assert_eq!((group.state, group.generation), (State::Completing, 2));
        // m2 goes silent past its session.
        let removed = group.tick(now + Duration::from_secs(45));
        assert_eq!(removed, vec!["m2".to_string()]);
        assert_eq!(group.state, State::Empty);
        assert!(group.may_commit("", -1, now).is_ok(), "an empty group takes commits from outside");
    }

    #[test]
    fn a_member_sharing_no_protocol_or_type_is_refused() {
        let now = Instant::now();
        let mut group = ClassicGroup::new(now);
        answered(group.join(join("", &["range"]), || "m1".into(), 10, Duration::ZERO, now));
        let other = answered(group.join(join("", &["roundrobin"]), || "m2".into(), 10, Duration::ZERO, now));
        assert!(matches!(other.error, Some(Error::InconsistentGroupProtocol(_))));
        let connect = ClassicJoinRequest { protocol_type: "connect".into(), ..join("", &["range"]) };
        assert!(matches!(
            answered(group.join(connect, || "m3".into(), 10, Duration::ZERO, now)).error,
            Some(Error::InconsistentGroupProtocol(_))
        ));
    }
}
