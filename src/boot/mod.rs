//! Booting and stopping the broker: the metadata store, one pinned executor per
//! configured core, the listeners, readiness, and shutdown on SIGINT or SIGTERM
//! (SIGHUP reloads the live settings).
//!
//! Listeners are bound here, before any shard starts, so that every port (chosen by
//! the kernel when `listen.port = 0`) is known to every shard's Metadata answers and
//! printed in the ready line. The main port gets one socket per shard, all bound with
//! SO_REUSEPORT so the kernel spreads connections across shards; each shard also owns
//! one port of its own (`port + 1 + shard`) for shard-aware clients.

use crate::config::{BrokerConfig, Cores};
use crate::metadata::{MetadataState, MetadataStore};
use crate::partition::Logs;
use crate::runtime;
use crate::shard::{Shard, ShardMessage};
use crate::storage::{probe_device, BatchCache};
use anyhow::{bail, Context};
use futures_channel::oneshot;
use glommio::channels::channel_mesh::MeshBuilder;
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};

/// Messages one shard may queue for another before the sender waits.
const MESH_QUEUE_MESSAGES: usize = 1024;

/// What `serve` reports once every shard has recovered its logs and listens.
#[derive(Debug, Clone)]
pub struct Ready {
    pub address: IpAddr,
    pub port: u16,
    pub shard_ports: Vec<u16>,
    pub partitions: usize,
    /// Where the admin endpoint listens, when enabled.
    pub admin: Option<std::net::SocketAddr>,
}

/// Everything one shard starts from.
struct ShardInit {
    id: u32,
    config: Arc<BrokerConfig>,
    ports: Vec<u16>,
    state: Arc<MetadataState>,
    store: Option<Arc<Mutex<MetadataStore>>>,
    cache_bytes: usize,
    listeners: Vec<i32>,
    mesh: MeshBuilder<ShardMessage, glommio::channels::channel_mesh::Full>,
    peer_of: Arc<Vec<AtomicUsize>>,
    joined: Arc<Barrier>,
    ready: mpsc::Sender<Result<usize, String>>,
    shutdown: oneshot::Receiver<()>,
    /// When this shard's event loop last ran its periodic tick (ms since the epoch):
    /// what the systemd watchdog checks.
    alive: Arc<Vec<AtomicU64>>,
    metrics: Arc<crate::metrics::ShardMetrics>,
    all_metrics: Arc<Vec<Arc<crate::metrics::ShardMetrics>>>,
    descriptors_max: u64,
    live: Arc<std::sync::RwLock<Arc<BrokerConfig>>>,
}

/// How often a shard looks for group members whose session ran out (and marks
/// itself alive for the watchdog).
const GROUP_EXPIRY_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// How often a shard tries again to open partitions placed on it that could not be.
const OFFLINE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Runs the broker until SIGINT or SIGTERM. `on_ready` is called once every shard
/// serves; then the process waits for a signal, closes every log and returns.
/// Under systemd (`Type=notify`) it reports `STATUS=` while recovering, `READY=1`
/// once every shard serves, `WATCHDOG=1` while every shard's event loop turns, and
/// `STOPPING=1` on shutdown.
pub fn serve(
    mut config: BrokerConfig,
    mut reload_from: Option<(std::path::PathBuf, BrokerConfig)>,
    on_ready: impl FnOnce(&Ready),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    // glommio opens files relative to their directory's descriptor and fails on a
    // relative path (the default `strand-data` is one): resolve it once, here.
    config.data_dir = std::fs::canonicalize(&config.data_dir)
        .with_context(|| format!("cannot resolve the data directory {}", config.data_dir.display()))?;
    // Held until `serve` returns: a second broker on this directory refuses to start.
    let _lock = crate::lock::DataDirLock::acquire(&config.data_dir)?;
    let descriptors_max =
        crate::host::raise_descriptor_limit().context("cannot read the descriptor limit (RLIMIT_NOFILE)")?;
    let config = Arc::new(config);
    let data_dir = &config.data_dir;
    let (mut store, recovery) = MetadataStore::open(&data_dir.join("metadata"))
        .with_context(|| format!("cannot open the metadata in {}", data_dir.display()))?;
    tracing::info!(topics = store.state().topics.len(), replayed = recovery.commands_replayed, "metadata loaded");
    let cores = shard_cores(&config.cores)?;
    let count = cores.len();
    ensure_offsets_topic(&mut store, count, config.groups.offsets_segment_bytes)?;
    let state = Arc::new(store.state().clone());
    crate::partition::remove_orphan_topic_dirs(data_dir, &state);
    let partitions_stored: u32 = state.topics.values().map(|t| t.partitions()).sum();
    crate::systemd::notify(&format!(
        "STATUS=Recovering {} partitions of {} topics in {}",
        partitions_stored,
        state.topics.len(),
        data_dir.display()
    ));
    let address: IpAddr = config.listen.address.parse().context("listen.address")?;
    let (main_sockets, port) = bind_main(address, config.listen.port, count)?;
    let shard_sockets = bind_shard_ports(address, config.listen.port, count)?;
    let shard_ports: Vec<u16> = shard_sockets.iter().map(local_port).collect();
    block_shutdown_signals();

    let cache_bytes = batch_cache_bytes(&config, count);
    let io_memory = runtime::io_memory_bytes(count, runtime::IO_MEMORY_BYTES_DEFAULT);
    let mesh = MeshBuilder::full(count, MESH_QUEUE_MESSAGES);
    let peer_of: Arc<Vec<AtomicUsize>> = Arc::new((0..count).map(|_| AtomicUsize::new(usize::MAX)).collect());
    let joined = Arc::new(Barrier::new(count));
    let store = Arc::new(Mutex::new(store));
    let (ready_tx, ready_rx) = mpsc::channel();
    let alive: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(now_ms())).collect());
    let live = Arc::new(std::sync::RwLock::new(config.clone()));
    let registry = Arc::new(crate::metrics::Registry {
        shards: (0..count).map(|_| Arc::new(crate::metrics::ShardMetrics::default())).collect(),
        data_dir: config.data_dir.clone(),
        ready: AtomicBool::new(false),
        alive: alive.clone(),
    });
    let all_metrics = Arc::new(registry.shards.clone());
    let limits_config = &config.limits;
    if let Some(warning) = crate::shard::capacity::descriptor_warning(
        descriptors_max,
        count as u64,
        limits_config.connections_max,
        limits_config.partitions_max,
    ) {
        tracing::warn!("{warning}");
    }
    // Bound before the shards start, so a port in use stops the start at once.
    let admin = if config.admin.enabled {
        let address: IpAddr = config.admin.address.parse().context("admin.address")?;
        let listener = std::net::TcpListener::bind((address, config.admin.port))
            .with_context(|| format!("cannot listen on {address}:{} (admin.port)", config.admin.port))?;
        let bound = listener.local_addr()?;
        crate::admin::serve_admin(listener, registry.clone())?;
        Some(bound)
    } else {
        None
    };
    let mut shutdowns = Vec::new();
    let mut threads = Vec::new();
    let mut main_sockets = main_sockets.into_iter();
    let mut shard_sockets = shard_sockets.into_iter();
    for (id, &core) in cores.iter().enumerate() {
        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        shutdowns.push(shutdown_tx);
        let listeners = vec![
            main_sockets.next().expect("one main socket per shard").into_raw_fd(),
            shard_sockets.next().expect("one port per shard").into_raw_fd(),
        ];
        let init = ShardInit {
            id: id as u32,
            config: config.clone(),
            ports: shard_ports.clone(),
            state: state.clone(),
            store: (id == 0).then(|| store.clone()),
            cache_bytes,
            listeners,
            mesh: mesh.clone(),
            peer_of: peer_of.clone(),
            joined: joined.clone(),
            ready: ready_tx.clone(),
            shutdown: shutdown_rx,
            alive: alive.clone(),
            metrics: registry.shards[id].clone(),
            all_metrics: all_metrics.clone(),
            descriptors_max,
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
        threads.push(handle);
    }
    drop(ready_tx);
    let mut partitions = 0;
    for started in 1..=count {
        match ready_rx.recv() {
            Ok(Ok(opened)) => partitions += opened,
            Ok(Err(message)) => bail!(message),
            Err(_) => bail!("a shard stopped while starting"),
        }
        crate::systemd::notify(&format!("STATUS=Recovered {started} of {count} shards ({partitions} partitions)"));
    }
    registry.ready.store(true, Ordering::Relaxed);
    on_ready(&Ready { address, port, shard_ports, partitions, admin });
    crate::systemd::notify(&format!("READY=1\nSTATUS=Serving {partitions} partitions on port {port}"));
    let stopping = Arc::new(AtomicBool::new(false));
    if let Some(interval) = crate::systemd::watchdog_interval() {
        let (alive, stopping) = (alive.clone(), stopping.clone());
        std::thread::Builder::new().name("watchdog".into()).spawn(move || {
            // Ping at half the interval, and only while every shard's loop turns: a
            // shard stuck for longer than the interval lets systemd restart us.
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
    }
    let signal = loop {
        match wait_for_signal() {
            libc::SIGHUP => reload(reload_from.as_mut(), &live),
            libc::SIGINT => break "SIGINT",
            _ => break "SIGTERM",
        }
    };
    stopping.store(true, Ordering::Relaxed);
    registry.ready.store(false, Ordering::Relaxed);
    crate::systemd::notify("STOPPING=1\nSTATUS=Closing every partition");
    tracing::info!(signal, "shutting down: closing every partition");
    for shutdown in shutdowns {
        let _ = shutdown.send(());
    }
    for handle in threads {
        if handle.join().is_err() {
            bail!("a shard panicked while shutting down");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

async fn run_shard(init: ShardInit) {
    let ShardInit {
        id,
        config,
        ports,
        state,
        store,
        cache_bytes,
        listeners,
        mesh,
        peer_of,
        joined,
        ready,
        shutdown,
        alive,
        metrics,
        all_metrics,
        descriptors_max,
        live,
    } = init;
    if let Err(error) = probe_device(&config.data_dir).await {
        let _ = ready.send(Err(format!(
            "shard {id}: the data directory {} cannot do direct I/O ({error}); fix: put data_dir on ext4 or XFS (not tmpfs or overlayfs)",
            config.data_dir.display()
        )));
        return;
    }
    let Ok((senders, mut receivers)) = mesh.join().await else {
        let _ = ready.send(Err(format!("shard {id}: could not join the shard mesh")));
        return;
    };
    peer_of[id as usize].store(senders.peer_id(), Ordering::Release);
    // Every shard records its mesh index before any uses the table; nothing else runs
    // on these threads yet, so blocking here is harmless.
    joined.wait();
    let peers: Vec<usize> = peer_of.iter().map(|peer| peer.load(Ordering::Acquire)).collect();
    let cache = BatchCache::new(cache_bytes);
    cache.set_read_ahead_bytes(usize::try_from(config.storage.read_ahead_bytes).unwrap_or(usize::MAX));
    let receive_bytes_max = config.limits.receive_bytes_max as usize;
    let retention_interval = std::time::Duration::from_millis(config.storage.retention_check_interval_ms);
    let logs = Logs::new(id, config.data_dir.clone(), config.storage.io.clone(), retention_interval, Rc::new(cache));
    let shard = Rc::new(Shard {
        id,
        count: peers.len() as u32,
        config,
        ports,
        metadata: RefCell::new(Arc::new(MetadataState::default())),
        logs,
        mesh: senders,
        peers,
        store,
        admin: glommio::sync::Semaphore::new(1),
        groups: crate::group::GroupCoordinator::default(),
        metrics,
        live,
        warnings: crate::shard::warnings::Warnings::default(),
        descriptors_max,
        all_metrics,
        receive: Rc::new(crate::net::ReceiveBudget::new(receive_bytes_max)),
    });
    shard.apply(state).await;
    shard.groups.recover(&shard).await;
    {
        // Partitions that could not be opened (no descriptor or disk space left)
        // open once the resource is back.
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(OFFLINE_RETRY).await;
                shard.reopen_offline().await;
            }
        })
        .detach();
    }
    {
        // Committed offsets stay bounded on disk.
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(std::time::Duration::from_secs(1)).await;
                shard.groups.compact(&shard).await;
            }
        })
        .detach();
    }
    {
        // Members whose session ran out leave their groups.
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(GROUP_EXPIRY_TICK).await;
                shard.groups.expire(&shard);
                shard.refresh_metrics();
                shard.warnings.tick();
                shard.logs.offline_warnings().tick();
                alive[shard.id as usize].store(now_ms(), Ordering::Relaxed);
            }
        })
        .detach();
    }
    for (_, receiver) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(message) = receiver.recv().await {
                crate::service::forwarded::handle(&shard, message).await;
            }
        })
        .detach();
    }
    let native = Rc::new(crate::native::Native::new(shard.clone()));
    let mut accepting = Vec::new();
    for fd in listeners {
        // SAFETY: the fd is a listening TCP socket this process bound and handed to
        // this shard alone; the glommio listener takes ownership of it.
        let listener = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
        accepting.push(glommio::spawn_local(crate::net::accept_loop(shard.clone(), listener, native.clone())));
    }
    let _ = ready.send(Ok(shard.logs.count()));
    let _ = shutdown.await;
    drop(accepting);
    shard.logs.close_all().await;
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
        .submit(crate::metadata::Command::CreateTopic { name: OFFSETS_TOPIC.to_string(), config, placement })
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

fn listener_socket(address: SocketAddr, reuse_port: bool) -> anyhow::Result<Socket> {
    let domain = if address.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&address.into()).with_context(|| format!("cannot listen on {address}"))?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn local_port(socket: &Socket) -> u16 {
    socket.local_addr().ok().and_then(|a| a.as_socket()).map_or(0, |a| a.port())
}

/// One socket per shard on the main port (the first one picks it when `port` is 0).
fn bind_main(address: IpAddr, port: u16, count: usize) -> anyhow::Result<(Vec<Socket>, u16)> {
    let first = listener_socket(SocketAddr::new(address, port), true)?;
    let port = local_port(&first);
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(listener_socket(SocketAddr::new(address, port), true)?);
    }
    Ok((sockets, port))
}

/// Each shard's own port: `port + 1 + shard`, or kernel-chosen when `port` is 0.
fn bind_shard_ports(address: IpAddr, port: u16, count: usize) -> anyhow::Result<Vec<Socket>> {
    (0..count)
        .map(|shard| {
            let own = if port == 0 { 0 } else { port + 1 + shard as u16 };
            listener_socket(SocketAddr::new(address, own), false)
        })
        .collect()
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

fn shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialized by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGINT and SIGTERM in this thread and every thread it starts afterwards, so
/// that `wait_for_shutdown_signal` receives them.
fn block_shutdown_signals() {
    let set = shutdown_signals();
    // SAFETY: the set is valid; a null old set is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits for SIGINT, SIGTERM or SIGHUP; returns which.
fn wait_for_signal() -> i32 {
    let set = shutdown_signals();
    let mut signal = 0;
    // SAFETY: the set is valid and `signal` is ours to write.
    unsafe { libc::sigwait(&set, &mut signal) };
    signal
}

/// SIGHUP: reads the configuration file again and applies what can change live
/// (`config::LIVE_KEYS`); logs what changed, what was applied and what waits for a
/// restart. An invalid file changes nothing.
/// `from` is the file and what it held when last read (before command-line
/// overrides, which stay).
fn reload(from: Option<&mut (std::path::PathBuf, BrokerConfig)>, live: &std::sync::RwLock<Arc<BrokerConfig>>) {
    let Some((path, read)) = from else {
        tracing::warn!("SIGHUP: the broker started without a configuration file; nothing to reload");
        return;
    };
    let fresh = match BrokerConfig::load(path) {
        Ok(fresh) => fresh,
        Err(error) => {
            tracing::error!(%error, "SIGHUP: configuration refused; the running settings stay");
            return;
        }
    };
    let current = live.read().unwrap_or_else(|p| p.into_inner()).clone();
    let changed = read.changed_keys(&fresh);
    let (applied, later): (Vec<String>, Vec<String>) =
        changed.into_iter().partition(|key| crate::config::LIVE_KEYS.iter().any(|prefix| key.starts_with(prefix)));
    // Keys that wait for a restart keep their running values.
    let mut next = (*current).clone();
    next.log = fresh.log.clone();
    next.topic_defaults = fresh.topic_defaults.clone();
    next.groups = fresh.groups.clone();
    if applied.iter().any(|k| k.starts_with("log.")) {
        match crate::runtime::set_log_level(&next.log.level) {
            Ok(true) => {}
            Ok(false) => tracing::warn!("SIGHUP: RUST_LOG is set and keeps precedence over log.level"),
            Err(error) => tracing::error!(%error, "SIGHUP: the log filter could not be replaced"),
        }
    }
    *live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    *read = fresh;
    tracing::info!(
        file = %path.display(),
        applied = ?applied,
        at_restart = ?later,
        "SIGHUP: configuration reloaded"
    );
}
