//! Joining a cluster at start (`[cluster]`): the metadata quorum started on
//! `data_dir/cluster`, this broker registered with the listeners it bound and its
//! shards, its heartbeats to the controller for as long as it runs, and at SIGTERM
//! its controlled shutdown (its leaderships handed over before it stops).

use super::listeners::BoundListener;
use crate::cluster::quorum::{ProposeError, QuorumConfig, QuorumHandle};
use crate::cluster::MetadataLog;
use crate::config::{BrokerConfig, ClusterConfig};
use crate::metadata::cluster::{BrokerListener, BrokerMeta};
use crate::metadata::MetadataState;
use anyhow::bail;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a start waits for the quorum to elect a leader before it says so again.
const WAITING_NOTE: Duration = Duration::from_secs(5);

/// Starts this broker's quorum member on `data_dir/cluster`. A data directory that
/// holds a single broker's metadata is refused: its topics are not the cluster's.
pub(super) fn start_quorum(config: &BrokerConfig, cluster: &ClusterConfig) -> anyhow::Result<MetadataLog> {
    let local = config.data_dir.join("metadata");
    if local.exists() {
        bail!(
            "{} holds a single broker's metadata (it ran without [cluster]); a broker joins a cluster on a data directory of its own: move it aside or set data_dir",
            local.display()
        );
    }
    let quorum = QuorumHandle::start(QuorumConfig {
        node_id: u64::from(cluster.node_id),
        voters: cluster.voter_addresses().map_err(|e| anyhow::anyhow!(e))?,
        cluster_id: cluster.cluster_id.clone(),
        dir: config.data_dir.join("cluster"),
        heartbeat_ms: cluster.quorum_heartbeat_ms,
        election_timeout_ms: cluster.election_timeout_ms,
        snapshot_every: cluster.snapshot_every,
        broker_session_ms: cluster.broker_session_ms,
    })?;
    Ok(MetadataLog::Quorum(quorum))
}

/// This broker as it registers: its listeners as clients reach them, its shards, a
/// new incarnation.
fn meta(cluster: &ClusterConfig, bound: &[BoundListener], shards: u32) -> BrokerMeta {
    let listeners = bound
        .iter()
        .map(|listener| {
            let (host, port) = match listener.config.protocol {
                crate::config::ListenerProtocol::Kafka => listener.advertised.clone(),
                crate::config::ListenerProtocol::Native => (listener.address.ip().to_string(), listener.address.port()),
            };
            let shard_ports = listener.shard_ports.clone();
            BrokerListener { name: listener.config.name.clone(), host, port, shard_ports }
        })
        .collect();
    // A new incarnation at every start: the time in microseconds, which a restart
    // cannot repeat.
    let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_micros() as u64);
    BrokerMeta {
        id: cluster.node_id,
        epoch,
        rack: (!cluster.rack.is_empty()).then(|| cluster.rack.clone()),
        listeners,
        shards,
        fenced: true,
    }
}

/// A registered broker: what it heartbeats as, and the heartbeats' thread.
pub(super) struct Member {
    log: Arc<MetadataLog>,
    id: u32,
    epoch: u64,
    stop: Arc<AtomicBool>,
    heartbeats: Option<std::thread::JoinHandle<()>>,
}

/// Registers this broker through the quorum leader and starts its heartbeats; the
/// state once the registration is applied here (every command before it is too).
/// Waits for a leader as long as it takes, saying so every few seconds; a peer's
/// refusal (another cluster's id) or a node id in use by a live broker stops the start.
pub(super) fn register(
    log: &Arc<MetadataLog>,
    cluster: &ClusterConfig,
    bound: &[BoundListener],
    shards: u32,
) -> anyhow::Result<(Member, Arc<MetadataState>)> {
    let quorum = log.quorum().expect("a cluster's metadata log is the quorum");
    let broker = meta(cluster, bound, shards);
    let (id, epoch) = (broker.id, broker.epoch);
    let started = Instant::now();
    let mut noted = Instant::now();
    // A broker restarted after a crash is refused while its last incarnation's session
    // runs; past two sessions, the id is another live broker's.
    let in_use_for = Duration::from_millis(2 * cluster.broker_session_ms) + Duration::from_secs(2);
    let state = loop {
        if let Some(refusal) = quorum.refusal() {
            bail!("cluster: {refusal}");
        }
        match quorum.register_blocking(broker.clone(), Duration::from_secs(2)) {
            Ok(state) => break state,
            Err(ProposeError::Refused(reason)) if reason.contains("is in use") => {
                if started.elapsed() > in_use_for {
                    bail!("cluster: {reason}; every broker needs its own cluster.node_id");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(ProposeError::Refused(reason)) => bail!("cluster: the registration was refused: {reason}"),
            Err(error) => {
                if noted.elapsed() > WAITING_NOTE {
                    tracing::warn!(%error, voters = ?cluster.voters, "waiting for the metadata quorum (a majority of the voters must be up)");
                    crate::systemd::notify("STATUS=Waiting for the metadata quorum");
                    noted = Instant::now();
                }
            }
        }
    };
    tracing::info!(node_id = id, epoch, leader = ?quorum.leader(), "registered with the cluster");
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeats = {
        let (log, stop) = (log.clone(), stop.clone());
        let interval = Duration::from_millis(cluster.broker_heartbeat_ms);
        std::thread::Builder::new()
            .name("heartbeats".into())
            .spawn(move || heartbeat(&log, id, epoch, interval, &stop))?
    };
    Ok((Member { log: log.clone(), id, epoch, stop, heartbeats: Some(heartbeats) }, state))
}

/// Heartbeats to the controller until told to stop, logging when the broker is
/// fenced or unfenced and when the controller cannot be reached.
fn heartbeat(log: &MetadataLog, id: u32, epoch: u64, interval: Duration, stop: &AtomicBool) {
    let quorum = log.quorum().expect("a cluster's metadata log is the quorum");
    let mut fenced = None;
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        match quorum.heartbeat_blocking(id, epoch, interval * 4) {
            Ok(now) => {
                if fenced != Some(now) {
                    tracing::info!(
                        node_id = id,
                        fenced = now,
                        "the controller counts this broker as {}",
                        if now { "fenced" } else { "alive" }
                    );
                    fenced = Some(now);
                }
                failing = false;
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(node_id = id, %error, "a heartbeat did not reach the controller");
                    failing = true;
                }
            }
        }
        std::thread::sleep(interval.saturating_sub(sent.elapsed()));
    }
}

impl Member {
    /// Controlled shutdown: the controller fences this broker and moves its
    /// leaderships before the shards stop (bounded: a controller out of reach does not
    /// hold the stop).
    pub(super) fn shut_down(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(heartbeats) = self.heartbeats.take() {
            let _ = heartbeats.join();
        }
        let quorum = self.log.quorum().expect("a cluster's metadata log is the quorum");
        match quorum.shut_down_blocking(self.id, self.epoch, Duration::from_secs(5)) {
            Ok(moved) => {
                tracing::info!(node_id = self.id, partitions = moved, "controlled shutdown: leaderships handed over")
            }
            Err(error) => tracing::warn!(node_id = self.id, %error, "controlled shutdown did not reach the controller"),
        }
    }
}
