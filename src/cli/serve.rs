//! `strand serve`: the broker.

use std::io::Write;
use std::path::PathBuf;
use strand::config::{BrokerConfig, Cores};

pub fn run(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    port: Option<u16>,
    cores: Option<Vec<usize>>,
) -> anyhow::Result<()> {
    let mut broker = match &config {
        Some(path) => BrokerConfig::load(path)?,
        None => BrokerConfig::default(),
    };
    if let Some(dir) = data_dir {
        broker.data_dir = dir;
    }
    if let Some(port) = port {
        broker.listen.port = port;
    }
    if let Some(cores) = cores {
        broker.cores = Cores::List(cores);
    }
    broker.validate().map_err(|message| anyhow::anyhow!("invalid setting: {message}"))?;
    strand::runtime::keep_large_allocations();
    strand::runtime::init_logging("info");
    strand::shard::serve(broker, |ready| {
        let shard_ports: Vec<String> = ready.shard_ports.iter().map(u16::to_string).collect();
        tracing::info!(port = ready.port, partitions = ready.partitions, "ready");
        // One line on stdout that scripts and tests wait for.
        println!(
            "strand: serving on {}:{} (shard ports {}), {} partitions",
            ready.address,
            ready.port,
            shard_ports.join(", "),
            ready.partitions
        );
        let _ = std::io::stdout().flush();
    })
}
