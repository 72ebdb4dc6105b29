//! The metadata quorum: the metadata commands (`metadata::Command`) as the log of a
//! Raft group, on openraft, replicated on the controller voters (1, 3 or 5 brokers)
//! and applied to a `MetadataState` on each, the same state a single broker keeps in
//! its own command log.
//!
//! openraft needs a tokio runtime; the quorum runs on one of its own, on a thread of
//! its own (`strand-quorum`), off the shards' cores, and talks to the rest of the
//! broker through `QuorumHandle` (blocking or async calls, and a watch of the applied
//! state). Its parts:
//!
//! - `types`: the Raft type configuration: a proposal is one `Command`, its answer
//!   the outcome of applying it;
//! - `log_store`: the Raft log and vote in files of the data directory, fdatasynced
//!   before openraft is told;
//! - `state_machine`: commands applied in log order, a command that no longer checks
//!   (two proposals raced) applied as a refusal on every voter alike; snapshots of the
//!   state as the metadata store writes them;
//! - `liveness`: brokers' heartbeats on the leader, and the controller's loop that
//!   fences the silent and unfences the returning, moving their partitions;
//! - `network`: the voters' RPCs (openraft's, a proposal forwarded to the leader, a
//!   heartbeat) over TCP, each message JSON in a length-prefixed frame carrying the cluster id,
//!   which a voter of another cluster is refused by.

mod liveness;
mod log_store;
mod network;
mod state_machine;
#[cfg(test)]
mod tests;
mod types;

pub use types::{Applied, Proposal, Quorum};

use crate::metadata::cluster::BrokerId;
use crate::metadata::{Command, MetadataState};
use liveness::Liveness;
use network::{Network, Reply, Rpc};
use openraft::error::{ClientWriteError, RaftError};
use state_machine::{Published, StateMachine};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a broker takes part in the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This broker's node id: one of `voters`.
    pub node_id: u64,
    /// Every voter's node id and the `host:port` its quorum RPCs are served on.
    pub voters: BTreeMap<u64, String>,
    /// The cluster's name: a voter of another cluster is refused.
    pub cluster_id: String,
    /// Where the Raft log, vote and snapshot are kept.
    pub dir: PathBuf,
    /// A leader heartbeats this often; a follower that hears none for a random time
    /// between `election_timeout_ms` and twice it stands for election.
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// A snapshot is taken after this many entries, and the log before it dropped but
    /// for a tenth of that (a voter further behind is sent the snapshot).
    pub snapshot_every: u64,
    /// A broker not heard from for this long is fenced (Kafka's
    /// `broker.session.timeout.ms`).
    pub broker_session_ms: u64,
}

impl QuorumConfig {
    /// Checks what Raft needs of the settings: an odd count of voters including this
    /// node, distinct addresses, and timeouts heartbeats fit in.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.voters.len(), 1 | 3 | 5) {
            return Err(format!("{} voters: a quorum has 1, 3 or 5", self.voters.len()));
        }
        if !self.voters.contains_key(&self.node_id) {
            return Err(format!("node id {} is not one of the voters {:?}", self.node_id, self.voters.keys()));
        }
        let mut addresses: Vec<&String> = self.voters.values().collect();
        addresses.sort();
        if let Some(pair) = addresses.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(format!("two voters share the address {}", pair[0]));
        }
        if self.cluster_id.is_empty() {
            return Err("the cluster id is empty".into());
        }
        if self.broker_session_ms < 2 * self.heartbeat_ms {
            return Err(format!(
                "a broker session of {} ms: at least two heartbeats ({} ms each)",
                self.broker_session_ms, self.heartbeat_ms
            ));
        }
        if self.snapshot_every < 10 {
            return Err(format!("a snapshot every {} entries: at least 10", self.snapshot_every));
        }
        if self.heartbeat_ms == 0 || self.election_timeout_ms < 3 * self.heartbeat_ms {
            return Err(format!(
                "election timeout {} ms: at least three heartbeats ({} ms each)",
                self.election_timeout_ms, self.heartbeat_ms
            ));
        }
        Ok(())
    }
}

/// Why a proposal did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ProposeError {
    /// No leader is known (an election is under way, or too few voters are up).
    #[error("no quorum leader is known (an election is under way, or too few voters are reachable)")]
    NoLeader,
    /// The command was applied as a refusal: it no longer checked against the state.
    #[error("refused by the metadata: {0}")]
    Refused(String),
    /// The quorum failed (storage, a stopped runtime) or did not answer in time.
    #[error("the metadata quorum failed: {0}")]
    Failed(String),
}

/// A running quorum member. Dropping it stops it.
pub struct QuorumHandle {
    inner: Arc<QuorumHandleInner>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// What the member's tasks share.
pub(crate) struct QuorumHandleInner {
    raft: openraft::Raft<Quorum>,
    network: Network,
    published: watch::Receiver<Published>,
    liveness: Arc<Liveness>,
    node_id: u64,
}

impl QuorumHandle {
    /// Opens the log and state machine in `config.dir`, serves the quorum's RPCs on
    /// this node's voter address, and joins the quorum (the first start of a voter
    /// proposes the configured voters as the membership; every voter proposes the
    /// same, so whichever is first, the membership is one). The controller's loop runs
    /// beside it, acting while this voter leads.
    pub fn start(config: QuorumConfig) -> anyhow::Result<QuorumHandle> {
        config.validate().map_err(|e| anyhow::anyhow!("cluster: {e}"))?;
        std::fs::create_dir_all(&config.dir)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strand-quorum")
            .enable_all()
            .build()?;
        let (inner, member) = runtime.block_on(start(&config))?;
        let inner = Arc::new(inner);
        let _ = member.set(Arc::downgrade(&inner));
        let session = Duration::from_millis(config.broker_session_ms);
        runtime.spawn(liveness::run(inner.clone(), session));
        Ok(QuorumHandle { inner, runtime: Some(runtime) })
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// The state as applied on this node.
    pub fn state(&self) -> Arc<MetadataState> {
        self.inner.state()
    }

    /// The applied state, each time it changes (for the shards).
    pub fn subscribe(&self) -> watch::Receiver<Published> {
        self.inner.published.clone()
    }

    /// Proposes `command` and waits (at most `timeout`) until it is committed by the
    /// quorum and applied here: the state it left. From any voter: a follower hands the
    /// proposal to the leader.
    pub fn propose_blocking(&self, command: Command, timeout: Duration) -> Result<Arc<MetadataState>, ProposeError> {
        self.block_on(timeout, self.inner.propose(command))
    }

    /// A heartbeat of `broker` at incarnation `epoch`, to the quorum leader: whether
    /// the broker is fenced.
    pub fn heartbeat_blocking(&self, broker: BrokerId, epoch: u64, timeout: Duration) -> Result<bool, ProposeError> {
        self.block_on(timeout, self.inner.heartbeat(broker, epoch))
    }

    /// Registers `broker` (fenced) through the quorum leader, which refuses it while
    /// another incarnation of the same id is alive; waits until this node has applied it.
    pub fn register_blocking(
        &self,
        broker: crate::metadata::cluster::BrokerMeta,
        timeout: Duration,
    ) -> Result<Arc<MetadataState>, ProposeError> {
        let epoch = broker.epoch;
        let id = broker.id;
        self.block_on(timeout, async {
            match self.inner.to_controller(|| Rpc::Register { broker: broker.clone() }).await {
                Reply::Registered(answer) => answer?,
                other => return Err(ProposeError::Failed(format!("the leader answered {other:?}"))),
            }
            let mut published = self.inner.published.clone();
            let state = published
                .wait_for(|p| p.state.brokers.get(&id).is_some_and(|b| b.epoch == epoch))
                .await
                .map_err(|_| ProposeError::Failed("the state machine stopped".into()))?
                .state
                .clone();
            Ok(state)
        })
    }

    /// Waits at most `timeout` for a state newer than `after` (an applied index): the
    /// newest, or `None` if none came.
    pub fn wait_newer_blocking(&self, after: u64, timeout: Duration) -> Option<Arc<MetadataState>> {
        let mut published = self.inner.published.clone();
        let runtime = self.runtime.as_ref()?;
        runtime.block_on(async {
            let newer = tokio::time::timeout(timeout, published.wait_for(|p| p.state.applied_index > after)).await;
            match newer {
                Ok(Ok(published)) => Some(published.state.clone()),
                _ => None,
            }
        })
    }

    /// Why a peer refused this node, if one did (another cluster, not a voter there).
    pub fn refusal(&self) -> Option<String> {
        self.inner.network.refusal()
    }

    /// Controlled shutdown of `broker` at incarnation `epoch`, before it stops: the
    /// quorum leader fences it and hands its leaderships to other in-sync replicas;
    /// the count of partitions changed.
    pub fn shut_down_blocking(&self, broker: BrokerId, epoch: u64, timeout: Duration) -> Result<usize, ProposeError> {
        self.block_on(timeout, self.inner.shut_down(broker, epoch))
    }

    fn block_on<T>(
        &self,
        timeout: Duration,
        work: impl std::future::Future<Output = Result<T, ProposeError>>,
    ) -> Result<T, ProposeError> {
        let runtime = self.runtime.as_ref().expect("running");
        runtime.block_on(async {
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| Err(ProposeError::Failed(format!("no answer within {} ms", timeout.as_millis()))))
        })
    }

    /// Stops the quorum member (its peers see it as gone).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.block_on(async {
                let _ = self.inner.raft.shutdown().await;
                self.inner.network.stop();
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

impl Drop for QuorumHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl QuorumHandleInner {
    fn state(&self) -> Arc<MetadataState> {
        self.published.borrow().state.clone()
    }

    /// `QuorumHandle::propose_blocking`, on the quorum's runtime.
    pub(crate) async fn propose(&self, command: Command) -> Result<Arc<MetadataState>, ProposeError> {
        let proposal = Proposal(command);
        let applied = loop {
            match self.raft.client_write(proposal.clone()).await {
                Ok(written) => break (written.log_id.index, written.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    let Some(leader) = forward.leader_id else {
                        // An election: wait for its outcome, then try again.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    match self.network.call(leader, Rpc::Propose(proposal.clone())).await {
                        Ok(Reply::Proposed(Ok((index, applied)))) => break (index, applied),
                        Ok(Reply::Proposed(Err(ProposeError::NoLeader))) | Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                        Ok(Reply::Proposed(Err(error))) => return Err(error),
                        Ok(other) => return Err(ProposeError::Failed(format!("the leader answered {other:?}"))),
                    }
                }
                Err(error) => return Err(ProposeError::Failed(error.to_string())),
            }
        };
        let (index, Applied(outcome)) = applied;
        outcome.map_err(ProposeError::Refused)?;
        // Applied on the leader; wait for this node to have applied it too.
        let mut published = self.published.clone();
        let state = published
            .wait_for(|published| published.last_applied >= index)
            .await
            .map_err(|_| ProposeError::Failed("the state machine stopped".into()))?
            .state
            .clone();
        Ok(state)
    }

    /// A controlled shutdown, carried out by the quorum leader.
    async fn shut_down(&self, broker: BrokerId, epoch: u64) -> Result<usize, ProposeError> {
        match self.to_controller(|| Rpc::ShutDown { broker, epoch }).await {
            Reply::ShutDown(answer) => answer,
            other => Err(ProposeError::Failed(format!("the leader answered {other:?}"))),
        }
    }

    /// A heartbeat, taken by the quorum leader: whether the broker is fenced.
    async fn heartbeat(&self, broker: BrokerId, epoch: u64) -> Result<bool, ProposeError> {
        match self.to_controller(|| Rpc::Heartbeat { broker, epoch }).await {
            Reply::Heartbeat(answer) => answer,
            other => Err(ProposeError::Failed(format!("the leader answered {other:?}"))),
        }
    }

    /// A request for the controller, answered here when this voter leads, else handed
    /// to the leader (again after an election).
    async fn to_controller(&self, rpc: impl Fn() -> Rpc) -> Reply {
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            match leader {
                Some(leader) if leader == self.node_id => return self.as_controller(rpc()).await,
                Some(leader) => {
                    if let Ok(reply) = self.network.call(leader, rpc()).await {
                        if !no_leader(&reply) {
                            return reply;
                        }
                    }
                }
                // Not heard from a leader (just started, or cut off from it): ask every
                // voter; the one that leads answers.
                None => {
                    for voter in self.network.others() {
                        if let Ok(reply) = self.network.call_within(voter, rpc(), Duration::from_secs(1)).await {
                            if !no_leader(&reply) {
                                return reply;
                            }
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Answers a request for the controller, on the leader.
    pub(crate) async fn as_controller(&self, rpc: Rpc) -> Reply {
        match rpc {
            Rpc::Heartbeat { broker, epoch } => Reply::Heartbeat(heard(&self.liveness, &self.state(), broker, epoch)),
            Rpc::ShutDown { broker, epoch } => Reply::ShutDown(liveness::shut_down(self, broker, epoch).await),
            Rpc::Register { broker } => Reply::Registered(liveness::register(self, broker).await),
            other => Reply::Refused(format!("{other:?} is not a request for the controller")),
        }
    }
}

/// Whether a voter answered that it does not lead.
fn no_leader(reply: &Reply) -> bool {
    matches!(
        reply,
        Reply::Heartbeat(Err(ProposeError::NoLeader))
            | Reply::ShutDown(Err(ProposeError::NoLeader))
            | Reply::Registered(Err(ProposeError::NoLeader))
            | Reply::Refused(_)
    )
}

/// Records a heartbeat on the leader: whether the broker is fenced, or why the
/// heartbeat is refused (a broker that did not register, or not at this incarnation).
fn heard(liveness: &Liveness, state: &MetadataState, broker: BrokerId, epoch: u64) -> Result<bool, ProposeError> {
    match state.brokers.get(&broker) {
        Some(registered) if registered.epoch == epoch => {
            liveness.heard(broker, epoch);
            Ok(registered.fenced)
        }
        Some(registered) => Err(ProposeError::Refused(format!(
            "broker {broker} heartbeats at incarnation {epoch}, but registered as {}",
            registered.epoch
        ))),
        None => Err(ProposeError::Refused(format!("broker {broker} has not registered"))),
    }
}

/// Where the RPC server finds the member once it is built (weak: the member owns the
/// server's task).
type Member = Arc<std::sync::OnceLock<std::sync::Weak<QuorumHandleInner>>>;

/// Builds the member on the quorum's runtime.
async fn start(config: &QuorumConfig) -> anyhow::Result<(QuorumHandleInner, Member)> {
    let raft_config = openraft::Config {
        cluster_name: config.cluster_id.clone(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_ms,
        election_timeout_max: 2 * config.election_timeout_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
        max_in_snapshot_log_to_keep: config.snapshot_every / 10,
        purge_batch_size: 1,
        ..openraft::Config::default()
    }
    .validate()?;
    let log = log_store::LogStore::open(&config.dir.join("raft"))?;
    let fresh = log.is_empty();
    let (machine, published) = StateMachine::open(&config.dir.join("raft"))?;
    let network = Network::new(config.node_id, config.cluster_id.clone(), config.voters.clone());
    let raft = openraft::Raft::new(config.node_id, Arc::new(raft_config), network.clone(), log, machine).await?;
    let member = Arc::new(std::sync::OnceLock::new());
    let server = network::Server { raft: raft.clone(), member: member.clone() };
    network.serve(server, &config.voters[&config.node_id]).await?;
    if fresh {
        let members: BTreeMap<u64, openraft::BasicNode> =
            config.voters.iter().map(|(&id, address)| (id, openraft::BasicNode::new(address))).collect();
        match raft.initialize(members).await {
            Ok(()) => {}
            // Another voter's membership arrived first: the same one.
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
            Err(error) => return Err(anyhow::anyhow!("cluster: cannot initialize the quorum: {error}")),
        }
    }
    let liveness = Arc::new(Liveness::new(Duration::from_millis(config.broker_session_ms)));
    Ok((QuorumHandleInner { raft, network, published, liveness, node_id: config.node_id }, member))
}
