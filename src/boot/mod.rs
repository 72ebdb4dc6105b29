//! Booting and stopping the broker: the metadata store, one pinned executor per
//! configured core, the listeners, readiness, and shutdown on SIGINT or SIGTERM
//! (SIGHUP reloads the live settings).
//!
//! Code map: this file (`serve`: the steps in order), `listeners` (sockets bound
//! before any shard starts), `shard` (one shard's life on its executor), `signals`
//! (SIGINT, SIGTERM, SIGHUP and the reload).

mod cluster;
mod listeners;
mod shard;
mod signals;

use crate::config::{BrokerConfig, Cores, ListenerProtocol};
use crate::metadata::{MetadataState, MetadataStore};
use crate::runtime;
use anyhow::{bail, Context};
use futures_channel::oneshot;
use glommio::channels::channel_mesh::MeshBuilder;
use listeners::ShardListener;
use shard::{now_ms, run_shard, ShardInit};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};

/// Messages one shard may queue for another before the sender waits.
const MESH_QUEUE_MESSAGES: usize = 1024;

/// What `serve` reports once every shard has recovered its logs and listens.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The first native listener: its address, port and each shard's own port.
    pub address: IpAddr,
    pub port: u16,
    pub shard_ports: Vec<u16>,
    pub partitions: usize,
    /// Where the admin endpoint listens, when enabled.
    pub admin: Option<std::net::SocketAddr>,
    /// Whether it is HTTPS.
    pub admin_tls: bool,
    /// Where the first Kafka listener listens, when there is one.
    pub kafka: Option<std::net::SocketAddr>,
    /// Every listener: its name, where it listens, and its security.
    pub listeners: Vec<(String, std::net::SocketAddr, crate::config::Security)>,
}

impl Ready {
    fn new(bound: &[listeners::BoundListener], partitions: usize, admin: Option<std::net::SocketAddr>) -> Ready {
        let native =
            bound.iter().find(|l| l.config.protocol == ListenerProtocol::Native).expect("validated: a native listener");
        let kafka = bound.iter().find(|l| l.config.protocol == ListenerProtocol::Kafka).map(|l| l.address);
        Ready {
            address: native.address.ip(),
            port: native.address.port(),
            shard_ports: native.shard_ports.clone(),
            partitions,
            admin,
            admin_tls: false,
            kafka,
            listeners: bound.iter().map(|l| (l.config.name.clone(), l.address, l.config.security)).collect(),
        }
    }
}

/// Runs the broker until SIGINT or SIGTERM. `on_ready` is called once every shard
/// serves; then the process waits for a signal, closes every log and returns.
/// Under systemd (`Type=notify`) it reports `STATUS=` while recovering, `READY=1`
/// once every shard serves, `WATCHDOG=1` while every shard's event loop turns, and
/// `STOPPING=1` on shutdown.
pub fn serve(
    config: BrokerConfig,
    mut reload_from: Option<(std::path::PathBuf, BrokerConfig)>,
    on_ready: impl FnOnce(&Ready),
) -> anyhow::Result<()> {
    let mut opened = open_data(config)?;
    let (config, count) = (opened.config.clone(), opened.cores.len());
    let (sockets, bound) = listeners::bind_all(&config.listeners, &config.tls, count)?;
    let mut member = match &config.cluster {
        Some(cluster) => {
            let (member, state) = cluster::register(&opened.store, cluster, &bound, count as u32)?;
            crate::partition::remove_orphan_topic_dirs(&config.data_dir, &state);
            opened.state = state;
            Some(member)
        }
        None => None,
    };
    let tls = tls_acceptor(&config)?;
    let sasl = Arc::new(crate::auth::sasl::SaslShared::new(&config.sasl));
    signals::block_shutdown_signals();
    let alive: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(now_ms())).collect());
    let live = Arc::new(std::sync::RwLock::new(config.clone()));
    let registry = Arc::new(crate::metrics::Registry {
        shards: (0..count).map(|_| Arc::new(crate::metrics::ShardMetrics::default())).collect(),
        data_dir: config.data_dir.clone(),
        ready: AtomicBool::new(false),
        alive: alive.clone(),
        cluster: config.cluster.as_ref().map(|cluster| (cluster.node_id, opened.store.clone())),
    });
    let limits = &config.limits;
    if let Some(warning) = crate::shard::capacity::descriptor_warning(
        opened.descriptors_max,
        count as u64,
        limits.connections_max,
        limits.partitions_max,
    ) {
        tracing::warn!("{warning}");
    }
    // Bound before the shards start, so a port in use stops the start at once.
    let admin = start_admin(&config, &registry, tls.clone())?;
    let quotas = Arc::new(crate::service::quota_meter::QuotaMeter::default());
    let security = SharedSecurity { tls: tls.clone(), sasl, quotas };
    let (ready_tx, ready_rx) = mpsc::channel();
    let started = start_shards(&opened, sockets, &security, &registry, &alive, &live, ready_tx)?;
    let partitions = wait_ready(&ready_rx, count)?;
    registry.ready.store(true, Ordering::Relaxed);
    let ready = Ready { admin_tls: config.admin.tls, ..Ready::new(&bound, partitions, admin) };
    on_ready(&ready);
    crate::systemd::notify(&format!("READY=1\nSTATUS=Serving {partitions} partitions on port {}", ready.port));
    let stopping = Arc::new(AtomicBool::new(false));
    start_watchdog(&alive, &stopping)?;
    let signal = loop {
        match signals::wait_for_signal() {
            libc::SIGHUP => {
                signals::reload(reload_from.as_mut(), &live);
                signals::reload_tls(tls.as_deref());
            }
            libc::SIGINT => break "SIGINT",
            _ => break "SIGTERM",
        }
    };
    stopping.store(true, Ordering::Relaxed);
    registry.ready.store(false, Ordering::Relaxed);
    if let Some(member) = member.as_mut() {
        crate::systemd::notify("STOPPING=1\nSTATUS=Handing over leaderships");
        member.shut_down();
    }
    crate::systemd::notify("STOPPING=1\nSTATUS=Closing every partition");
    tracing::info!(signal, "shutting down: closing every partition");
    started.stop()?;
    tracing::info!("stopped");
    Ok(())
}

/// What every shard's secured listeners share: the TLS settings (reloaded on SIGHUP),
/// SASL's, and the quotas' buckets.
#[derive(Clone)]
struct SharedSecurity {
    tls: Option<Arc<crate::net::tls::TlsAcceptor>>,
    sasl: Arc<crate::auth::sasl::SaslShared>,
    /// Client quotas' buckets (a client's connections land on any shard).
    quotas: Arc<crate::service::quota_meter::QuotaMeter>,
}

/// The TLS settings, when a listener uses TLS: the files read now, so that a missing
/// or bad certificate stops the start with the file named.
fn tls_acceptor(config: &BrokerConfig) -> anyhow::Result<Option<Arc<crate::net::tls::TlsAcceptor>>> {
    if !config.listeners.iter().any(|l| l.security.is_tls()) && !config.admin.tls {
        return Ok(None);
    }
    let acceptor = crate::net::tls::TlsAcceptor::new(&config.tls).map_err(|message| anyhow::anyhow!(message))?;
    Ok(Some(Arc::new(acceptor)))
}

/// The data directory opened: locked, its metadata loaded and `__consumer_offsets`
/// in it, with what the shards start from.
struct Opened {
    config: Arc<BrokerConfig>,
    /// Held until `serve` returns: a second broker on this directory refuses to start.
    _lock: crate::lock::DataDirLock,
    store: Arc<crate::cluster::MetadataLog>,
    state: Arc<MetadataState>,
    cores: Vec<usize>,
    descriptors_max: u64,
}

fn open_data(mut config: BrokerConfig) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    // glommio opens files relative to their directory's descriptor and fails on a
    // relative path (the default `strand-data` is one): resolve it once, here.
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .with_context(|| format!("cannot resolve the data directory {}", config.data_dir.display()))?;
    let lock = crate::lock::DataDirLock::acquire(&config.data_dir)?;
    let descriptors_max =
        crate::host::raise_descriptor_limit().context("cannot read the descriptor limit (RLIMIT_NOFILE)")?;
    let config = Arc::new(config);
    let data_dir = &config.data_dir;
    let cores = shard_cores(&config.cores)?;
    if let Some(cluster) = &config.cluster {
        // The state comes with the registration, once the quorum has a leader.
        let store = Arc::new(cluster::start_quorum(&config, cluster)?);
        let state = Arc::new(MetadataState::default());
        return Ok(Opened { config, _lock: lock, store, state, cores, descriptors_max });
    }
    let (mut store, recovery) = MetadataStore::open(&data_dir.join("metadata"))
        .with_context(|| format!("cannot open the metadata in {}", data_dir.display()))?;
    tracing::info!(topics = store.state().topics.len(), replayed = recovery.commands_replayed, "metadata loaded");
    ensure_offsets_topic(&mut store, cores.len(), config.groups.offsets_segment_bytes)?;
    let state = Arc::new(store.state().clone());
    crate::partition::remove_orphan_topic_dirs(data_dir, &state);
    let partitions_stored: u32 = state.topics.values().map(|t| t.partitions()).sum();
    crate::systemd::notify(&format!(
        "STATUS=Recovering {} partitions of {} topics in {}",
        partitions_stored,
        state.topics.len(),
        data_dir.display()
    ));
    let store = Arc::new(crate::cluster::MetadataLog::Local(Mutex::new(store)));
    Ok(Opened { config, _lock: lock, store, state, cores, descriptors_max })
}

/// The admin endpoint, when enabled: where it listens.
fn start_admin(
    config: &BrokerConfig,
    registry: &Arc<crate::metrics::Registry>,
    tls: Option<Arc<crate::net::tls::TlsAcceptor>>,
) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if !config.admin.enabled {
        return Ok(None);
    }
    let token = match config.admin.token_file.as_str() {
        "" => None,
        file => {
            let text = std::fs::read_to_string(file).with_context(|| format!("admin.token_file {file:?}"))?;
            let token = text.lines().next().unwrap_or_default().trim().to_string();
            if token.len() < 16 {
                bail!("admin.token_file {file:?}: the token's first line must be at least 16 characters");
            }
            Some(Arc::from(token.as_str()))
        }
    };
    let security = crate::admin::AdminSecurity { tls: if config.admin.tls { tls } else { None }, token };
    let address: IpAddr = config.admin.address.parse().context("admin.address")?;
    let listener = std::net::TcpListener::bind((address, config.admin.port))
        .with_context(|| format!("cannot listen on {address}:{} (admin.port)", config.admin.port))?;
    let bound = listener.local_addr()?;
    crate::admin::serve_admin(listener, registry.clone(), security)?;
    Ok(Some(bound))
}

/// The shards' threads, and how to stop them.
struct Started {
    shutdowns: Vec<oneshot::Sender<()>>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl Started {
    /// Tells every shard to close its partitions, and waits for them.
    fn stop(self) -> anyhow::Result<()> {
        for shutdown in self.shutdowns {
            let _ = shutdown.send(());
        }
        for handle in self.threads {
            if handle.join().is_err() {
                bail!("a shard panicked while shutting down");
            }
        }
        Ok(())
    }
}

/// Starts one pinned executor per core, each running its shard on its `sockets`.
fn start_shards(
    opened: &Opened,
    sockets: Vec<Vec<ShardListener>>,
    security: &SharedSecurity,
    registry: &crate::metrics::Registry,
    alive: &Arc<Vec<AtomicU64>>,
    live: &Arc<std::sync::RwLock<Arc<BrokerConfig>>>,
    ready: mpsc::Sender<Result<usize, String>>,
) -> anyhow::Result<Started> {
    let count = opened.cores.len();
    let cache_bytes = batch_cache_bytes(&opened.config, count);
    let io_memory = runtime::io_memory_bytes(count, runtime::IO_MEMORY_BYTES_DEFAULT);
    let mesh = MeshBuilder::full(count, MESH_QUEUE_MESSAGES);
    let peer_of: Arc<Vec<AtomicUsize>> = Arc::new((0..count).map(|_| AtomicUsize::new(usize::MAX)).collect());
    let joined = Arc::new(Barrier::new(count));
    let all_metrics = Arc::new(registry.shards.clone());
    let mut started = Started { shutdowns: Vec::new(), threads: Vec::new() };
    for ((id, &core), listeners) in opened.cores.iter().enumerate().zip(sockets) {
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        started.shutdowns.push(shutdown_tx);
        let init = ShardInit {
            id: id as u32,
            config: opened.config.clone(),
            tls: security.tls.clone(),
            sasl: security.sasl.clone(),
            quotas: security.quotas.clone(),
            state: opened.state.clone(),
            store: (id == 0).then(|| opened.store.clone()),
            quorum: opened.store.quorum().is_some().then(|| opened.store.clone()),
            cache_bytes,
            listeners,
            mesh: mesh.clone(),
            peer_of: peer_of.clone(),
            joined: joined.clone(),
            ready: ready.clone(),
            shutdown: shutdown_rx,
            alive: alive.clone(),
            metrics: registry.shards[id].clone(),
            all_metrics: all_metrics.clone(),
            descriptors_max: opened.descriptors_max,
            live: live.clone(),
        };
        let handle = runtime::executor(&format!("shard-{id}"), Some(core), io_memory)
            .spawn(move || {
                let ready = init.ready.clone();
                // A shard that panics while starting reports it, so `serve` fails
                // instead of waiting for it forever.
                async move {
                    let run = futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run_shard(init)));
                    if run.await.is_err() {
                        let _ = ready.send(Err(format!("shard {id} stopped on a bug (see the panic above)")));
                    }
                }
            })
            .map_err(|error| {
                anyhow::anyhow!("cannot start shard {id} on core {core}: {error} (is io_uring available, and RLIMIT_MEMLOCK at least 512 KiB?)")
            })?;
        started.threads.push(handle);
    }
    Ok(started)
}

/// Waits until every shard has recovered and listens; the partitions they opened.
fn wait_ready(ready: &mpsc::Receiver<Result<usize, String>>, count: usize) -> anyhow::Result<usize> {
    let mut partitions = 0;
    for started in 1..=count {
        match ready.recv() {
            Ok(Ok(opened)) => partitions += opened,
            Ok(Err(message)) => bail!(message),
            Err(_) => bail!("a shard stopped while starting"),
        }
        crate::systemd::notify(&format!("STATUS=Recovered {started} of {count} shards ({partitions} partitions)"));
    }
    Ok(partitions)
}

/// Under systemd's watchdog: pings at half the interval, and only while every shard's
/// loop turns, so a shard stuck for longer than the interval lets systemd restart us.
fn start_watchdog(alive: &Arc<Vec<AtomicU64>>, stopping: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let Some(interval) = crate::systemd::watchdog_interval() else { return Ok(()) };
    let (alive, stopping) = (alive.clone(), stopping.clone());
    std::thread::Builder::new().name("watchdog".into()).spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            std::thread::sleep(interval / 2);
            let oldest = alive.iter().map(|a| a.load(Ordering::Relaxed)).min().unwrap_or(0);
            if now_ms().saturating_sub(oldest) < interval.as_millis() as u64 {
                crate::systemd::notify("WATCHDOG=1");
            } else {
                tracing::warn!("a shard has not turned its event loop within the watchdog interval");
            }
        }
    })?;
    Ok(())
}

/// Creates `__consumer_offsets` on first start: one partition per shard, partition
/// `i` on shard `i`, every commit fdatasynced before it is acknowledged.
fn ensure_offsets_topic(store: &mut MetadataStore, shards: usize, segment_bytes: u64) -> anyhow::Result<()> {
    use crate::group::OFFSETS_TOPIC;
    if store.state().topics.contains_key(OFFSETS_TOPIC) {
        return Ok(());
    }
    let config = crate::storage::TopicConfig {
        fsync: crate::storage::FsyncPolicy::Always,
        retention_ms: None,
        retention_bytes: None,
        segment_bytes,
        ..crate::storage::TopicConfig::default()
    };
    let placement = (0..shards as u32).collect();
    store
        .submit(crate::metadata::Command::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            config,
            placement,
            uuid: Some(crate::metadata::TopicUuid::random()),
            replicas: Vec::new(),
        })
        .with_context(|| format!("cannot create {OFFSETS_TOPIC}"))?;
    Ok(())
}

/// The cores to run shards on: the configured list, or every core this process may
/// run on.
fn shard_cores(cores: &Cores) -> anyhow::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
    }
    let available: Vec<usize> =
        (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect();
    match cores {
        Cores::List(list) => {
            for (i, core) in list.iter().enumerate() {
                if !available.contains(core) {
                    let names: Vec<String> = available.iter().map(usize::to_string).collect();
                    bail!(
                        "cores (--cores): core {core} is not available to this process; it may run on cores {}",
                        names.join(",")
                    );
                }
                if list[..i].contains(core) {
                    bail!("cores (--cores): core {core} is named twice; one shard per core");
                }
            }
            Ok(list.clone())
        }
        Cores::All => Ok(available),
    }
}

/// The batch cache of each shard: as configured, or a quarter of memory split evenly.
fn batch_cache_bytes(config: &BrokerConfig, shards: usize) -> usize {
    if config.storage.batch_cache_bytes > 0 {
        return config.storage.batch_cache_bytes as usize;
    }
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let memory = (pages.max(0) as usize).saturating_mul(page.max(0) as usize);
    (memory / 4 / shards.max(1)).max(64 << 20)
}
