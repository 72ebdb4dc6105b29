//! The quorum's RPCs between voters, over TCP: a request is `[length u32][JSON]`
//! (big-endian length) carrying the cluster id and the sender's node id, and its
//! answer the same. A voter refuses, in one logged line and one answer, a request of
//! another cluster or from a node id that is not a voter; either closes the
//! connection. Messages are bounded (`MESSAGE_BYTES_MAX`) and every read and write has
//! a deadline, so a silent or slow peer holds nothing but its own connection.
//!
//! A peer's connection is opened on first use and again after a failure; calls to one
//! peer go one at a time over it.

use super::types::{Applied, Proposal, Quorum};
use super::ProposeError;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type NodeId = u64;

/// Largest message taken: a snapshot chunk or a batch of entries fits well within it.
const MESSAGE_BYTES_MAX: usize = 64 << 20;
/// A peer must accept a connection within this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A proposal forwarded to the leader must be answered within this long.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle incoming connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What one voter asks of another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Rpc {
    AppendEntries(AppendEntriesRequest<Quorum>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<Quorum>),
    /// A proposal made on a follower, for the leader to write.
    Propose(Proposal),
    /// A broker's heartbeat, for the leader's controller.
    Heartbeat {
        broker: u32,
        epoch: u64,
    },
    /// A broker about to stop: its leaderships handed over first.
    ShutDown {
        broker: u32,
        epoch: u64,
    },
    /// A broker's registration, for the leader's controller: refused while another
    /// incarnation of the same id is alive.
    Register {
        broker: crate::metadata::cluster::BrokerMeta,
    },
    /// A request for the controller that a voter which does not lead handed on to the
    /// leader it knows: answered there, never handed on again.
    Forwarded(Box<Rpc>),
}

/// The answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// The Raft index the proposal was written at, and what applying it came to.
    Proposed(Result<(u64, Applied), ProposeError>),
    /// Whether the broker is fenced (`NoLeader`: this voter does not lead).
    Heartbeat(Result<bool, ProposeError>),
    /// How many partitions changed for the broker's shutdown.
    ShutDown(Result<usize, ProposeError>),
    /// The registration, written and applied on the leader.
    Registered(Result<(), ProposeError>),
    /// The request was not taken: another cluster's, or from a node id that is not a
    /// voter.
    Refused(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    cluster_id: String,
    from: NodeId,
    body: T,
}

/// Writes one message.
async fn write_message<T: Serialize>(stream: &mut TcpStream, message: &T) -> std::io::Result<()> {
    let json = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    if json.len() > MESSAGE_BYTES_MAX {
        return Err(std::io::Error::other(format!("a message of {} bytes", json.len())));
    }
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&json);
    stream.write_all(&frame).await
}

/// Reads one message.
async fn read_message<T: for<'de> Deserialize<'de>>(stream: &mut TcpStream) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MESSAGE_BYTES_MAX {
        return Err(std::io::Error::other(format!("a message of {len} bytes, over the limit of {MESSAGE_BYTES_MAX}")));
    }
    // Grown as the bytes arrive, not reserved from the length a peer claims.
    let mut json = Vec::with_capacity(len.min(64 * 1024));
    (&mut *stream).take(len as u64).read_to_end(&mut json).await?;
    if json.len() < len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the peer closed within a message"));
    }
    serde_json::from_slice(&json).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The connection to one peer, opened on first use; calls take turns on it.
type Connection = Arc<tokio::sync::Mutex<Option<TcpStream>>>;

/// The voters, how to reach them, and the connections open to them.
#[derive(Clone)]
pub struct Network {
    node_id: NodeId,
    cluster_id: String,
    voters: Arc<BTreeMap<NodeId, String>>,
    connections: Arc<Mutex<HashMap<NodeId, Connection>>>,
    serving: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// The refusal each peer last answered this node with (another cluster's id, a
    /// node id that is not its voter).
    refused: Arc<Mutex<BTreeMap<NodeId, String>>>,
}

impl Network {
    pub fn new(node_id: NodeId, cluster_id: String, voters: BTreeMap<NodeId, String>) -> Network {
        Network {
            node_id,
            cluster_id,
            voters: Arc::new(voters),
            connections: Arc::default(),
            serving: Arc::default(),
            refused: Arc::default(),
        }
    }

    /// Every other voter's id.
    pub fn others(&self) -> Vec<NodeId> {
        self.voters.keys().copied().filter(|&id| id != self.node_id).collect()
    }

    /// Why this node cannot join, if the voters that refuse it leave too few to make a
    /// quorum with it: the first refusal.
    pub fn refusal(&self) -> Option<String> {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let majority = self.voters.len() / 2 + 1;
        if self.voters.len() - refused.len() >= majority {
            return None;
        }
        refused.values().next().cloned()
    }

    /// Sends `rpc` to `target` and waits at most `timeout` for its answer.
    pub async fn call_within(&self, target: NodeId, rpc: Rpc, timeout: Duration) -> std::io::Result<Reply> {
        let address = self.voters.get(&target).ok_or_else(|| std::io::Error::other(format!("no voter {target}")))?;
        let slot = self.connections.lock().unwrap_or_else(|p| p.into_inner()).entry(target).or_default().clone();
        let mut connection = slot.lock().await;
        let exchange = async {
            if connection.is_none() {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
                    .await
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
                let _ = stream.set_nodelay(true);
                *connection = Some(stream);
            }
            let stream = connection.as_mut().expect("connected above");
            let envelope = Envelope { cluster_id: self.cluster_id.clone(), from: self.node_id, body: rpc };
            write_message(stream, &envelope).await?;
            read_message::<Reply>(stream).await
        };
        let result = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time")));
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(Reply::Refused(reason)) => {
                let reason = format!("voter {target} at {address} refused this node: {reason}");
                if refused.insert(target, reason.clone()).is_none() {
                    tracing::warn!("{reason}");
                }
            }
            Ok(_) => {
                refused.remove(&target);
            }
            Err(_) => {}
        }
        drop(refused);
        if result.is_err() || matches!(result, Ok(Reply::Refused(_))) {
            *connection = None;
        }
        result
    }

    /// `call_within` for a proposal forwarded to the leader.
    pub async fn call(&self, target: NodeId, rpc: Rpc) -> std::io::Result<Reply> {
        self.call_within(target, rpc, PROPOSE_TIMEOUT).await
    }

    /// Serves the quorum's RPCs on `address` for `server`.
    pub async fn serve(&self, server: Server, address: &str) -> anyhow::Result<()> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cluster: cannot listen for the quorum on {address}: {e}"))?;
        let network = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors, say: wait rather than spin on the error.
                        tracing::warn!(%error, "the quorum cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (server, network) = (server.clone(), network.clone());
                tokio::spawn(async move {
                    if let Err(reason) = network.answer(server, stream).await {
                        tracing::debug!(%peer, %reason, "quorum connection closed");
                    }
                });
            }
        });
        *self.serving.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(())
    }

    /// Stops serving.
    pub fn stop(&self) {
        if let Some(task) = self.serving.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    /// Answers one connection's requests until it closes or breaks a rule.
    async fn answer(&self, server: Server, mut stream: TcpStream) -> Result<(), String> {
        let raft = &server.raft;
        loop {
            let envelope: Envelope<Rpc> = match tokio::time::timeout(IDLE_TIMEOUT, read_message(&mut stream)).await {
                Err(_) => return Err("idle".into()),
                Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(error)) => return Err(error.to_string()),
                Ok(Ok(envelope)) => envelope,
            };
            let refusal = if envelope.cluster_id != self.cluster_id {
                Some(format!(
                    "a quorum request of cluster {:?} from node {}, but this is cluster {:?}",
                    envelope.cluster_id, envelope.from, self.cluster_id
                ))
            } else if !self.voters.contains_key(&envelope.from) || envelope.from == self.node_id {
                Some(format!(
                    "a quorum request from node id {}, which is not another voter of this cluster",
                    envelope.from
                ))
            } else {
                None
            };
            if let Some(reason) = refusal {
                tracing::warn!(node = self.node_id, "refused {reason}");
                let _ = write_message(&mut stream, &Reply::Refused(reason.clone())).await;
                return Err(reason);
            }
            let reply = match envelope.body {
                Rpc::AppendEntries(request) => Reply::AppendEntries(raft.append_entries(request).await),
                Rpc::Vote(request) => Reply::Vote(raft.vote(request).await),
                Rpc::InstallSnapshot(request) => Reply::InstallSnapshot(raft.install_snapshot(request).await),
                Rpc::Propose(proposal) => Reply::Proposed(match raft.client_write(proposal).await {
                    Ok(written) => Ok((written.log_id.index, written.data)),
                    Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(_))) => {
                        Err(ProposeError::NoLeader)
                    }
                    Err(error) => Err(ProposeError::Failed(error.to_string())),
                }),
                rpc @ (Rpc::Heartbeat { .. } | Rpc::ShutDown { .. } | Rpc::Register { .. }) => {
                    server.controller(rpc, Some(self)).await
                }
                // Handed on once already: answered here, never handed on again.
                Rpc::Forwarded(rpc) => server.controller(*rpc, None).await,
            };
            write_message(&mut stream, &reply).await.map_err(|e| e.to_string())?;
        }
    }
}

/// What a voter's RPC server answers with.
#[derive(Clone)]
pub struct Server {
    pub raft: openraft::Raft<Quorum>,
    /// The member, once it is built (weak: the member owns this server's task).
    pub member: Arc<std::sync::OnceLock<std::sync::Weak<super::QuorumHandleInner>>>,
}

impl Server {
    /// The member, if this voter leads.
    fn leading(&self) -> Result<Arc<super::QuorumHandleInner>, ProposeError> {
        let member = self.member.get().and_then(std::sync::Weak::upgrade).ok_or(ProposeError::NoLeader)?;
        if self.raft.metrics().borrow().current_leader != Some(member.node_id) {
            return Err(ProposeError::NoLeader);
        }
        Ok(member)
    }

    /// A request for the controller, handed here: answered if this voter leads, else
    /// handed on once through `forward` to the leader this voter knows (a broker
    /// that cannot reach the leader itself reaches it through any voter).
    async fn controller(&self, rpc: Rpc, forward: Option<&Network>) -> Reply {
        match self.leading() {
            Ok(member) => member.as_controller(rpc).await,
            Err(error) => {
                let leader = self.raft.metrics().borrow().current_leader;
                if let (Some(leader), Some(network)) = (leader, forward) {
                    let forwarded = Rpc::Forwarded(Box::new(rpc.clone()));
                    if let Ok(reply) = network.call(leader, forwarded).await {
                        return reply;
                    }
                }
                Self::not_leading(rpc, error)
            }
        }
    }

    fn not_leading(rpc: Rpc, error: ProposeError) -> Reply {
        match rpc {
            Rpc::ShutDown { .. } => Reply::ShutDown(Err(error)),
            Rpc::Register { .. } => Reply::Registered(Err(error)),
            _ => Reply::Heartbeat(Err(error)),
        }
    }
}

/// openraft's connection to one peer.
pub struct Peer {
    network: Network,
    target: NodeId,
}

impl RaftNetworkFactory<Quorum> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Peer {
        Peer { network: self.clone(), target }
    }
}

/// A failed exchange as openraft takes it: a peer that cannot be reached (backs off),
/// or one that refused.
fn failed<E: std::error::Error>(error: std::io::Error) -> RPCError<NodeId, BasicNode, E> {
    if matches!(error.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::TimedOut) {
        RPCError::Unreachable(Unreachable::new(&error))
    } else {
        RPCError::Network(NetworkError::new(&error))
    }
}

fn unexpected<E: std::error::Error>(reply: Reply) -> RPCError<NodeId, BasicNode, E> {
    let error = std::io::Error::other(match reply {
        Reply::Refused(reason) => format!("refused: {reason}"),
        other => format!("an unexpected answer: {other:?}"),
    });
    RPCError::Network(NetworkError::new(&error))
}

impl RaftNetwork<Quorum> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Quorum>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.network.call_within(self.target, Rpc::AppendEntries(rpc), option.hard_ttl()).await {
            Ok(Reply::AppendEntries(Ok(response))) => Ok(response),
            Ok(Reply::AppendEntries(Err(error))) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(failed(error)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Quorum>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        match self.network.call_within(self.target, Rpc::InstallSnapshot(rpc), option.hard_ttl()).await {
            Ok(Reply::InstallSnapshot(Ok(response))) => Ok(response),
            Ok(Reply::InstallSnapshot(Err(error))) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(failed(error)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self.network.call_within(self.target, Rpc::Vote(rpc), option.hard_ttl()).await {
            Ok(Reply::Vote(Ok(response))) => Ok(response),
            Ok(Reply::Vote(Err(error))) => Err(RPCError::RemoteError(RemoteError::new(self.target, error))),
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(failed(error)),
        }
    }
}
