//! `strand serve`: the broker.

use std::io::Write;
use std::path::PathBuf;
use strand::config::{BrokerConfig, Cores};

/// The configuration file a broker started by systemd reads when given none.
pub const SYSTEM_CONFIG: &str = "/etc/strand/strand.toml";

/// The ports given on the command line.
pub struct Ports {
    pub port: Option<u16>,
    pub admin_port: Option<u16>,
    pub kafka_port: Option<u16>,
}

pub fn run(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    ports: Ports,
    cores: Option<Vec<usize>>,
) -> anyhow::Result<()> {
    let Ports { port, admin_port, kafka_port } = ports;
    // Under systemd the configuration lives in /etc/strand (the unit's
    // ConfigurationDirectory); elsewhere the embedded defaults apply.
    let config = config.or_else(|| {
        let system = PathBuf::from(SYSTEM_CONFIG);
        (strand::systemd::under_systemd() && system.exists()).then_some(system)
    });
    let mut broker = match &config {
        Some(path) => BrokerConfig::load(path)?,
        None => BrokerConfig::default(),
    };
    // What SIGHUP compares the file with: as read, before the flags below.
    let reload_from = config.map(|path| (path, broker.clone()));
    if let Some(dir) = data_dir {
        broker.data_dir = dir;
    }
    use strand::config::ListenerProtocol;
    if let Some(port) = port {
        if port == 0 {
            // "0: the kernel chooses every port": every listener's and the admin
            // endpoint's.
            broker.admin.port = 0;
            broker.listeners.iter_mut().for_each(|listener| listener.port = 0);
        }
        if let Some(native) = broker.listeners.iter_mut().find(|l| l.protocol == ListenerProtocol::Native) {
            native.port = port;
        }
    }
    if let Some(admin_port) = admin_port {
        broker.admin.port = admin_port;
    }
    if let Some(kafka_port) = kafka_port {
        match broker.listeners.iter_mut().find(|l| l.protocol == ListenerProtocol::Kafka) {
            Some(kafka) => kafka.port = kafka_port,
            None => anyhow::bail!("--kafka-port: the configuration has no listener with protocol = \"kafka\""),
        }
    }
    if let Some(cores) = cores {
        broker.cores = Cores::List(cores);
    }
    broker.validate().map_err(|message| anyhow::anyhow!("invalid setting: {message}"))?;
    strand::runtime::keep_large_allocations();
    strand::runtime::init_logging(&broker.log.level);
    let shards = match &broker.cores {
        Cores::List(list) => list.len(),
        Cores::All => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    super::tune::preflight(&broker.data_dir, shards)?;
    strand::boot::serve(broker, reload_from, |ready| {
        let shard_ports: Vec<String> = ready.shard_ports.iter().map(u16::to_string).collect();
        tracing::info!(port = ready.port, partitions = ready.partitions, "ready");
        // One line on stdout that scripts and tests wait for.
        let scheme = if ready.admin_tls { "https" } else { "http" };
        let admin = ready.admin.map(|a| format!(", admin {scheme}://{a}")).unwrap_or_default();
        let kafka = ready.kafka.map(|a| format!(", kafka {a}")).unwrap_or_default();
        let listeners: String = ready
            .listeners
            .iter()
            .map(|(name, address, security)| {
                format!(", listener {name} {address} {}", strand::config::security_name(*security))
            })
            .collect();
        println!(
            "strand: serving on {}:{} (shard ports {}), {} partitions{kafka}{listeners}{admin}",
            ready.address,
            ready.port,
            shard_ports.join(", "),
            ready.partitions
        );
        let _ = std::io::stdout().flush();
    })
}
