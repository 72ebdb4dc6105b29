//! Broker liveness, on the quorum leader: each broker heartbeats to the leader (any
//! voter forwards it there), and a controller task on the leader fences a broker not
//! heard from within its session timeout and unfences one that is heard again, at the
//! incarnation it registered with, proposing the partition changes
//! `cluster::controller` decides for each (new leaders for what it led; the offline
//! partitions it was last in sync for, back to it).
//!
//! Heartbeats are not in the log: a new leader has heard nobody yet, so it counts
//! every broker as heard at the moment it took over (a broker is fenced one session
//! after the new leader last heard it, never sooner).

use super::{ProposeError, QuorumHandleInner};
use crate::cluster::controller;
use crate::metadata::cluster::{BrokerId, BrokerMeta};
use crate::metadata::Command;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When each broker was last heard, at which incarnation.
pub struct Liveness {
    /// A broker not heard for this long is fenced.
    pub session: Duration,
    heard: Mutex<HashMap<BrokerId, (u64, Instant)>>,
    /// Brokers that shut down under control, and the incarnation that did: only a new
    /// one (a new registration) is heard again.
    stopped: Mutex<HashMap<BrokerId, u64>>,
}

impl Liveness {
    pub fn new(session: Duration) -> Liveness {
        Liveness { session, heard: Mutex::default(), stopped: Mutex::default() }
    }

    /// Records a heartbeat.
    pub fn heard(&self, broker: BrokerId, epoch: u64) {
        if self.stopped.lock().unwrap_or_else(|p| p.into_inner()).get(&broker) == Some(&epoch) {
            return;
        }
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).insert(broker, (epoch, Instant::now()));
    }

    /// Forgets a broker that shut down: only a new registration brings it back.
    fn forget(&self, broker: BrokerId, epoch: u64) {
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).remove(&broker);
        self.stopped.lock().unwrap_or_else(|p| p.into_inner()).insert(broker, epoch);
    }

    fn last(&self, broker: BrokerId) -> Option<(u64, Instant)> {
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).get(&broker).copied()
    }
}

/// The controller's loop: while this voter leads, fences and unfences by heartbeat.
pub async fn run(quorum: Arc<QuorumHandleInner>, session: Duration) {
    let tick = (session / 4).max(Duration::from_millis(10));
    let mut leading_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        let leads = quorum.raft.metrics().borrow().current_leader == Some(quorum.node_id);
        if !leads {
            leading_since = None;
            continue;
        }
        let since = *leading_since.get_or_insert_with(Instant::now);
        let state = quorum.state();
        for broker in state.brokers.values() {
            let heard = quorum.liveness.last(broker.id).filter(|&(epoch, _)| epoch == broker.epoch);
            let last = heard.map_or(since, |(_, at)| at.max(since));
            let alive = last.elapsed() < session;
            let mut commands = Vec::new();
            if alive && broker.fenced && heard.is_some() {
                commands.push(Command::UnfenceBroker { id: broker.id, epoch: broker.epoch });
            } else if !alive && !broker.fenced {
                commands.push(Command::FenceBroker { id: broker.id, epoch: broker.epoch });
            } else {
                continue;
            }
            let fence = !broker.fenced;
            if let Err(error) = propose_all(&quorum, commands).await {
                tracing::warn!(broker = broker.id, %error, "the controller could not change a broker's fence");
                continue;
            }
            // The partition changes, decided on the state the fence left.
            let after = quorum.state();
            let changes = if fence {
                controller::on_fenced(&after, broker.id)
            } else {
                controller::on_unfenced(&after, broker.id)
            };
            tracing::info!(
                broker = broker.id,
                fenced = fence,
                partitions = changes.len(),
                "controller: broker fence changed"
            );
            if let Err(error) = propose_all(&quorum, changes).await {
                tracing::warn!(broker = broker.id, %error, "the controller could not move a fenced broker's partitions");
            }
        }
    }
}

/// Controlled shutdown (on the leader): the broker is fenced at once, and its
/// partitions handed to other in-sync replicas, before it stops; its heartbeats from
/// then on do not unfence it until it registers again.
pub async fn shut_down(quorum: &QuorumHandleInner, broker: BrokerId, epoch: u64) -> Result<usize, ProposeError> {
    let state = quorum.state();
    match state.brokers.get(&broker) {
        Some(registered) if registered.epoch == epoch => {}
        _ => return Err(ProposeError::Refused(format!("broker {broker} is not registered at incarnation {epoch}"))),
    }
    quorum.liveness.forget(broker, epoch);
    if !state.brokers[&broker].fenced {
        propose_all(quorum, vec![Command::FenceBroker { id: broker, epoch }]).await?;
    }
    let changes = controller::on_fenced(&quorum.state(), broker);
    let moved = changes.len();
    propose_all(quorum, changes).await?;
    tracing::info!(broker, partitions = moved, "controller: controlled shutdown");
    Ok(moved)
}

/// A registration (on the leader): refused while another incarnation of the id has
/// been heard within its session (two brokers configured with one node id), written
/// otherwise. A broker that stopped under control, or whose session ran out, may
/// register again at once.
pub async fn register(quorum: &QuorumHandleInner, broker: BrokerMeta) -> Result<(), ProposeError> {
    if let Some((epoch, at)) = quorum.liveness.last(broker.id) {
        let alive = at.elapsed() < quorum.liveness.session;
        let current = quorum.state().brokers.get(&broker.id).is_some_and(|b| b.epoch == epoch && !b.fenced);
        if epoch != broker.epoch && alive && current {
            return Err(ProposeError::Refused(format!(
                "node id {} is in use: a broker with that id (incarnation {epoch}) was heard {} ms ago",
                broker.id,
                at.elapsed().as_millis()
            )));
        }
    }
    let outcome = tokio::time::timeout(PROPOSE_TIMEOUT, quorum.propose(Command::RegisterBroker { broker }))
        .await
        .unwrap_or_else(|_| Err(ProposeError::Failed("no quorum within 10 s".into())));
    outcome.map(|_| ())
}

/// How long the controller waits for one of its proposals (a leader that lost its
/// quorum must not stall the loop).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

async fn propose_all(quorum: &QuorumHandleInner, commands: Vec<Command>) -> Result<(), ProposeError> {
    for command in commands {
        let outcome = tokio::time::timeout(PROPOSE_TIMEOUT, quorum.propose(command))
            .await
            .unwrap_or_else(|_| Err(ProposeError::Failed("no quorum within 10 s".into())));
        match outcome {
            Ok(_) | Err(ProposeError::Refused(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
