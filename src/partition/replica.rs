//! A replicated partition's state on one broker, as the metadata places it: whether
//! this broker leads it or follows, at which leader epoch, the in-sync replicas, and
//! on the leader each follower's position and the high watermark they make.
//!
//! The leader's high watermark is the lowest of its own acknowledged end (its log's
//! visible end: durable under `fsync = always`) and each other in-sync replica's
//! acknowledged offset (what its log holds under its own policy, as its fetches say).
//! It never moves back. Consumers read below it; `acks = all` waits for it to pass a
//! batch. A follower learns it from its leader's answers.

use crate::metadata::cluster::{BrokerId, PartitionState};
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Instant;

/// What this broker is for the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    /// Following `leader` (`None`: the partition is offline; nothing to fetch from).
    Follower(Option<BrokerId>),
}

/// The partition as the metadata last said, seen from this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub me: BrokerId,
    pub role: Role,
    pub leader_epoch: i32,
    pub partition_epoch: u32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// The leader's replica's shard (where a follower fetches).
    pub leader_shard: Option<u32>,
}

impl Placement {
    /// This broker's view of `state`.
    pub fn of(state: &PartitionState, me: BrokerId) -> Placement {
        let role = if state.leader == Some(me) { Role::Leader } else { Role::Follower(state.leader) };
        let leader_shard = state.leader.and_then(|leader| state.replica_on(leader)).map(|replica| replica.shard);
        Placement {
            me,
            role,
            leader_epoch: state.leader_epoch as i32,
            partition_epoch: state.partition_epoch,
            replicas: state.replicas.iter().map(|replica| replica.broker).collect(),
            isr: state.isr.clone(),
            leader_shard,
        }
    }
}

/// Where a follower is, as its last fetch said.
#[derive(Debug, Clone, Copy)]
pub struct FollowerView {
    /// Its log end (where it fetched from).
    pub fetched: u64,
    /// How far its log meets the topic's policy: what the high watermark may count.
    pub acked: u64,
    /// When its fetch last reached the leader's end.
    pub caught_up_at: Instant,
}

/// A replicated partition's live state on this broker.
pub struct Replication {
    placement: RefCell<Placement>,
    followers: RefCell<HashMap<BrokerId, FollowerView>>,
    high_watermark: Watermark,
    /// When this broker became leader at the current epoch: a follower not heard from
    /// counts as caught up at that moment (it has had no chance to fetch yet).
    leading_since: Cell<Instant>,
    /// An ISR change proposed and not yet seen in the metadata.
    pub isr_pending: Cell<bool>,
}

impl Replication {
    pub fn new(placement: Placement, high_watermark: u64) -> Replication {
        Replication {
            placement: RefCell::new(placement),
            followers: RefCell::default(),
            high_watermark: Watermark::new(high_watermark),
            leading_since: Cell::new(Instant::now()),
            isr_pending: Cell::new(false),
        }
    }

    pub fn placement(&self) -> Placement {
        self.placement.borrow().clone()
    }

    /// Adopts a new placement. A new leader epoch starts afresh: followers' positions
    /// are forgotten (they fetch again from the new leader).
    pub fn set_placement(&self, placement: Placement) {
        let mut current = self.placement.borrow_mut();
        if current.leader_epoch != placement.leader_epoch || current.role != placement.role {
            self.followers.borrow_mut().clear();
            self.leading_since.set(Instant::now());
        }
        if current.isr != placement.isr || current.partition_epoch != placement.partition_epoch {
            self.isr_pending.set(false);
        }
        *current = placement;
    }

    pub fn high_watermark(&self) -> u64 {
        self.high_watermark.get()
    }

    /// Resolves once the high watermark reaches `offset`.
    pub async fn wait_high_watermark(&self, offset: u64) {
        self.high_watermark.wait_for(offset).await
    }

    /// A follower learnt the leader's high watermark (bounded by its own log end).
    pub fn follower_high_watermark(&self, high_watermark: u64) {
        self.high_watermark.advance(high_watermark);
    }

    /// On the leader: `broker` fetched from `fetched` and holds `acked` under its
    /// policy, the leader's log ending at `leader_end` and acknowledged to
    /// `leader_acked`. Recomputes the high watermark.
    pub fn follower_fetched(&self, broker: BrokerId, fetched: u64, acked: u64, leader_end: u64, leader_acked: u64) {
        let now = Instant::now();
        {
            let mut followers = self.followers.borrow_mut();
            let caught_up_at = match followers.get(&broker) {
                _ if fetched >= leader_end => now,
                Some(view) => view.caught_up_at,
                None => self.leading_since.get(),
            };
            followers.insert(broker, FollowerView { fetched, acked: acked.min(fetched), caught_up_at });
        }
        self.update_high_watermark(leader_acked);
    }

    /// On the leader: the high watermark from its own acknowledged end and its
    /// in-sync followers'.
    pub fn update_high_watermark(&self, leader_acked: u64) {
        let placement = self.placement.borrow();
        if placement.role != Role::Leader {
            return;
        }
        let followers = self.followers.borrow();
        let lowest = placement
            .isr
            .iter()
            .filter(|&&broker| broker != placement.me)
            .map(|broker| followers.get(broker).map_or(0, |view| view.acked))
            .fold(leader_acked, u64::min);
        self.high_watermark.advance(lowest);
    }

    /// On the leader: the in-sync set it should propose, if it differs from the
    /// current one: followers caught up to the high watermark join; those not caught
    /// up to the leader's end within `lag` leave.
    pub fn wanted_isr(&self, lag: std::time::Duration) -> Option<Vec<BrokerId>> {
        let placement = self.placement.borrow();
        if placement.role != Role::Leader || self.isr_pending.get() {
            return None;
        }
        let followers = self.followers.borrow();
        let high_watermark = self.high_watermark.get();
        let now = Instant::now();
        let mut isr = Vec::new();
        for &broker in &placement.replicas {
            if broker == placement.me {
                isr.push(broker);
                continue;
            }
            let view = followers.get(&broker);
            let in_sync = placement.isr.contains(&broker);
            let lagging = now.duration_since(view.map_or(self.leading_since.get(), |v| v.caught_up_at)) > lag;
            let keep = in_sync && !lagging;
            let join = !in_sync && view.is_some_and(|v| v.acked >= high_watermark && !lagging);
            if keep || join {
                isr.push(broker);
            }
        }
        let mut current = placement.isr.clone();
        current.sort_unstable();
        let mut wanted = isr.clone();
        wanted.sort_unstable();
        (current != wanted).then_some(isr)
    }
}

/// An offset that only moves forward, with tasks waiting for it to reach theirs.
pub struct Watermark {
    value: Cell<u64>,
    waiters: RefCell<Vec<(u64, oneshot::Sender<()>)>>,
}

impl Watermark {
    pub fn new(value: u64) -> Watermark {
        Watermark { value: Cell::new(value), waiters: RefCell::default() }
    }

    pub fn get(&self) -> u64 {
        self.value.get()
    }

    /// Moves to `value` if that is forward; wakes those it reached.
    pub fn advance(&self, value: u64) {
        if value <= self.value.get() {
            return;
        }
        self.value.set(value);
        let mut waiters = self.waiters.borrow_mut();
        let (reached, waiting): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|(target, _)| *target <= value);
        *waiters = waiting;
        drop(waiters);
        for (_, waiter) in reached {
            let _ = waiter.send(());
        }
    }

    /// Resolves once the value is at least `target`.
    pub async fn wait_for(&self, target: u64) {
        if self.value.get() >= target {
            return;
        }
        let (sender, receiver) = oneshot::channel();
        {
            let mut waiters = self.waiters.borrow_mut();
            // Waits given up (a produce past its deadline) leave no entry behind.
            waiters.retain(|(_, waiter)| !waiter.is_canceled());
            waiters.push((target, sender));
        }
        let _ = receiver.await;
    }
}
