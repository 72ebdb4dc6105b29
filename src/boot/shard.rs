//! One shard's life on its executor: joining the mesh, recovering its partitions and
//! committed offsets, its periodic tasks, serving the mesh and its listeners, and
//! closing every partition at shutdown.

use crate::config::BrokerConfig;
use crate::metadata::MetadataState;
use crate::partition::Logs;
use crate::shard::{Shard, ShardMessage};
use crate::storage::{probe_device, BatchCache};
use futures_channel::oneshot;
use glommio::channels::channel_mesh::MeshBuilder;
use std::cell::RefCell;
use std::os::fd::FromRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

/// Everything one shard starts from.
pub(super) struct ShardInit {
    pub(super) id: u32,
    pub(super) config: Arc<BrokerConfig>,
    pub(super) tls: Option<Arc<crate::net::tls::TlsAcceptor>>,
    pub(super) sasl: Arc<crate::auth::sasl::SaslShared>,
    pub(super) quotas: Arc<crate::service::quota_meter::QuotaMeter>,
    pub(super) state: Arc<MetadataState>,
    pub(super) store: Option<Arc<crate::cluster::MetadataLog>>,
    /// In a cluster, the quorum member (every shard reads who leads it).
    pub(super) quorum: Option<Arc<crate::cluster::MetadataLog>>,
    pub(super) cache_bytes: usize,
    pub(super) listeners: Vec<super::listeners::ShardListener>,
    pub(super) mesh: MeshBuilder<ShardMessage, glommio::channels::channel_mesh::Full>,
    pub(super) peer_of: Arc<Vec<AtomicUsize>>,
    pub(super) joined: Arc<Barrier>,
    pub(super) ready: mpsc::Sender<Result<usize, String>>,
    pub(super) shutdown: oneshot::Receiver<()>,
    /// When this shard's event loop last ran its periodic tick (ms since the epoch):
    /// what the systemd watchdog checks.
    pub(super) alive: Arc<Vec<AtomicU64>>,
    pub(super) metrics: Arc<crate::metrics::ShardMetrics>,
    pub(super) all_metrics: Arc<Vec<Arc<crate::metrics::ShardMetrics>>>,
    pub(super) descriptors_max: u64,
    pub(super) live: Arc<std::sync::RwLock<Arc<BrokerConfig>>>,
}

/// How often a shard looks for group members whose session ran out (and marks
/// itself alive for the watchdog).
const GROUP_EXPIRY_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// How often a shard tries again to open partitions placed on it that could not be.
const OFFLINE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs one shard until shutdown: recovers, serves, then closes every partition.
pub(super) async fn run_shard(init: ShardInit) {
    let ready = init.ready.clone();
    let (id, state, listeners, shutdown, alive) =
        (init.id, init.state.clone(), init.listeners, init.shutdown, init.alive.clone());
    let rest = ShardParts {
        id,
        config: init.config,
        sasl: init.sasl,
        quotas: init.quotas,
        store: init.store,
        quorum: init.quorum,
        cache_bytes: init.cache_bytes,
        metrics: init.metrics,
        all_metrics: init.all_metrics,
        descriptors_max: init.descriptors_max,
        live: init.live,
    };
    if let Err(error) = probe_device(&rest.config.data_dir).await {
        let _ = ready.send(Err(format!(
            "shard {id}: the data directory {} cannot do direct I/O ({error}); fix: put data_dir on ext4 or XFS (not tmpfs or overlayfs)",
            rest.config.data_dir.display()
        )));
        return;
    }
    let Ok((senders, mut receivers)) = init.mesh.join().await else {
        let _ = ready.send(Err(format!("shard {id}: could not join the shard mesh")));
        return;
    };
    init.peer_of[id as usize].store(senders.peer_id(), Ordering::Release);
    // Every shard records its mesh index before any uses the table; nothing else runs
    // on these threads yet, so blocking here is harmless.
    init.joined.wait();
    let peers: Vec<usize> = init.peer_of.iter().map(|peer| peer.load(Ordering::Acquire)).collect();
    let shard = Rc::new(build_shard(rest, senders, peers));
    shard.apply(state).await;
    shard.groups.recover(&shard).await;
    spawn_periodic(&shard, alive);
    for (_, receiver) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(message) = receiver.recv().await {
                crate::service::forwarded::handle(&shard, message).await;
            }
        })
        .detach();
    }
    follow_quorum(&shard);
    let accepting = listen(&shard, listeners, init.tls);
    let _ = ready.send(Ok(shard.logs.count()));
    let _ = shutdown.await;
    drop(accepting);
    shard.logs.close_all().await;
}

/// In a cluster, on shard 0: applies on every shard each state the quorum commits,
/// whichever broker proposed it.
fn follow_quorum(shard: &Rc<Shard>) {
    let Some(log) = shard.store.clone().filter(|log| log.quorum().is_some()) else { return };
    let shard = shard.clone();
    glommio::spawn_local(async move {
        loop {
            let after = shard.metadata().applied_index;
            let log = log.clone();
            let wait = std::time::Duration::from_secs(1);
            let newer = glommio::executor()
                .spawn_blocking(move || log.quorum().and_then(|quorum| quorum.wait_newer_blocking(after, wait)))
                .await;
            if let Some(state) = newer {
                crate::service::admin::apply_committed(&shard, state).await;
            }
        }
    })
    .detach();
}

/// Starts accepting on every listener's sockets: the accept loops, dropped to stop.
fn listen(
    shard: &Rc<Shard>,
    listeners: Vec<super::listeners::ShardListener>,
    tls: Option<Arc<crate::net::tls::TlsAcceptor>>,
) -> Vec<glommio::Task<()>> {
    use crate::config::ListenerProtocol;
    let mut accepting = Vec::new();
    for listener in listeners {
        let security = listener.config.security;
        let info = Rc::new(crate::net::ListenerInfo {
            name: listener.config.name.clone(),
            security,
            tls: if security.is_tls() { tls.clone() } else { None },
            client_auth: listener.config.client_auth(&shard.config.tls),
        });
        let native = Rc::new(crate::native::Native::new(
            shard.clone(),
            (listener.config.name.clone(), listener.advertised.clone()),
            listener.shard_ports.clone(),
            security,
        ));
        let (name, advertised) = (listener.config.name.clone(), listener.advertised.clone());
        let kafka = Rc::new(crate::kafka::Kafka::new(shard.clone(), name, advertised, security));
        for fd in listener.fds {
            // SAFETY: the fd is a listening TCP socket this process bound and handed to
            // this shard alone; the glommio listener takes ownership of it.
            let socket = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
            let (shard, info) = (shard.clone(), info.clone());
            accepting.push(match listener.config.protocol {
                ListenerProtocol::Native => {
                    glommio::spawn_local(crate::net::accept_loop(shard, socket, native.clone(), info))
                }
                ListenerProtocol::Kafka => {
                    glommio::spawn_local(crate::net::accept_loop(shard, socket, kafka.clone(), info))
                }
            });
        }
    }
    accepting
}

/// What a shard is built from once it has joined the mesh.
struct ShardParts {
    id: u32,
    config: Arc<BrokerConfig>,
    sasl: Arc<crate::auth::sasl::SaslShared>,
    quotas: Arc<crate::service::quota_meter::QuotaMeter>,
    store: Option<Arc<crate::cluster::MetadataLog>>,
    quorum: Option<Arc<crate::cluster::MetadataLog>>,
    cache_bytes: usize,
    metrics: Arc<crate::metrics::ShardMetrics>,
    all_metrics: Arc<Vec<Arc<crate::metrics::ShardMetrics>>>,
    descriptors_max: u64,
    live: Arc<std::sync::RwLock<Arc<BrokerConfig>>>,
}

fn build_shard(
    parts: ShardParts,
    mesh: glommio::channels::channel_mesh::Senders<ShardMessage>,
    peers: Vec<usize>,
) -> Shard {
    let ShardParts {
        id,
        config,
        sasl,
        quotas,
        store,
        quorum,
        cache_bytes,
        metrics,
        all_metrics,
        descriptors_max,
        live,
    } = parts;
    let cache = BatchCache::new(cache_bytes);
    cache.set_read_ahead_bytes(usize::try_from(config.storage.read_ahead_bytes).unwrap_or(usize::MAX));
    let receive_bytes_max = config.limits.receive_bytes_max as usize;
    let retention_interval = std::time::Duration::from_millis(config.storage.retention_check_interval_ms);
    let broker = config.cluster.as_ref().map(|cluster| cluster.node_id);
    let io = config.storage.io.clone();
    let logs = Logs::new(id, config.data_dir.clone(), io, retention_interval, Rc::new(cache), broker);
    Shard {
        id,
        count: peers.len() as u32,
        broker,
        config,
        sasl,
        quotas,
        metadata: RefCell::new(Arc::new(MetadataState::default())),
        logs,
        mesh,
        peers,
        store,
        quorum,
        admin: glommio::sync::Semaphore::new(1),
        groups: crate::group::GroupCoordinator::default(),
        metrics,
        live,
        warnings: crate::shard::warnings::Warnings::default(),
        descriptors_max,
        all_metrics,
        receive: Rc::new(crate::net::budget::ReceiveBudget::new(receive_bytes_max)),
        producer_ids: crate::service::types::ProducerIds::default(),
    }
}

/// Runs `work` every `period` on this shard, for as long as the shard lives.
fn every<F, Fut>(period: std::time::Duration, shard: &Rc<Shard>, work: F)
where
    F: Fn(Rc<Shard>) -> Fut + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let shard = shard.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(period).await;
            work(shard.clone()).await;
        }
    })
    .detach();
}

/// The shard's periodic tasks: offline partitions retried, committed offsets
/// compacted, expired group members removed, gauges and warnings refreshed, and the
/// watchdog's sign of life.
fn spawn_periodic(shard: &Rc<Shard>, alive: Arc<Vec<AtomicU64>>) {
    // Partitions that could not be opened (no descriptor or disk space left) open
    // once the resource is back.
    every(OFFLINE_RETRY, shard, |shard| async move { shard.reopen_offline().await });
    // In a cluster: followers fetch, leaders keep their high watermark and in-sync set.
    if shard.broker.is_some() {
        every(crate::cluster::replication::TICK, shard, |shard| async move {
            crate::cluster::replication::tick(&shard).await
        });
    }
    // Committed offsets stay bounded on disk.
    every(std::time::Duration::from_secs(1), shard, |shard| async move { shard.groups.compact(&shard).await });
    every(GROUP_EXPIRY_TICK, shard, move |shard| {
        let alive = alive.clone();
        async move {
            // Members whose session ran out leave their groups.
            shard.groups.expire(&shard);
            shard.refresh_metrics();
            shard.warnings.tick();
            shard.logs.offline_warnings().tick();
            alive[shard.id as usize].store(now_ms(), Ordering::Relaxed);
        }
    });
}

/// Milliseconds since the Unix epoch: what a shard's last tick is marked with.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
