//! `strand topic create|list|describe|delete`.

use super::{connect, BOOTSTRAP_DEFAULT};
use clap::{Subcommand, ValueEnum};
use strand_client::{block_on, OffsetSpec};

#[derive(Clone, Copy, ValueEnum)]
pub enum Fsync {
    Always,
    Interval,
    Never,
}

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long)]
        partitions: u32,
        /// Durability: `always` acknowledges after fdatasync (the default).
        #[arg(long, value_enum)]
        fsync: Option<Fsync>,
        /// With --fsync interval: the longest between an append and its fdatasync.
        #[arg(long)]
        fsync_interval_ms: Option<u64>,
        /// Delete data older than this (-1: keep forever).
        #[arg(long, allow_negative_numbers = true)]
        retention_ms: Option<i64>,
        /// Delete the oldest data past this many bytes per partition (-1: no limit).
        #[arg(long, allow_negative_numbers = true)]
        retention_bytes: Option<i64>,
        /// Any other topic setting, as KEY=VALUE (see `strand config defaults`).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
        bootstrap: String,
    },
    /// List topics (internal ones, such as `__consumer_offsets`, with --internal).
    List {
        /// Also list the broker's internal topics (names starting with `__`).
        #[arg(long)]
        internal: bool,
        #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
        bootstrap: String,
    },
    /// Show a topic's partitions: owning shard, earliest and latest offsets.
    Describe {
        name: String,
        #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
        bootstrap: String,
    },
    /// Delete a topic and its data.
    Delete {
        name: String,
        #[arg(long, default_value = BOOTSTRAP_DEFAULT)]
        bootstrap: String,
    },
}

pub fn run(command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            fsync,
            fsync_interval_ms,
            retention_ms,
            retention_bytes,
            configs,
            bootstrap,
        } => {
            let mut entries: Vec<(String, String)> = Vec::new();
            if let Some(fsync) = fsync {
                let value = match fsync {
                    Fsync::Always => "always",
                    Fsync::Interval => "interval",
                    Fsync::Never => "never",
                };
                entries.push(("fsync".into(), value.into()));
            }
            if let Some(ms) = fsync_interval_ms {
                entries.push(("fsync_interval_ms".into(), ms.to_string()));
            }
            if let Some(ms) = retention_ms {
                entries.push(("retention_ms".into(), ms.to_string()));
            }
            if let Some(bytes) = retention_bytes {
                entries.push(("retention_bytes".into(), bytes.to_string()));
            }
            for config in configs {
                let (key, value) =
                    config.split_once('=').ok_or_else(|| anyhow::anyhow!("--config {config:?}: expected KEY=VALUE"))?;
                entries.push((key.trim().into(), value.trim().into()));
            }
            let client = connect(&bootstrap)?;
            let pairs: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            block_on(client.create_topic(&name, partitions, &pairs))?;
            println!("created topic {name} with {partitions} partitions");
        }
        TopicCommand::List { internal, bootstrap } => {
            let client = connect(&bootstrap)?;
            for topic in block_on(client.topics())?.into_iter().filter(|t| internal || !t.name.starts_with("__")) {
                println!("{}\t{} partitions", topic.name, topic.shards.len());
            }
        }
        TopicCommand::Describe { name, bootstrap } => {
            let client = connect(&bootstrap)?;
            let topic = block_on(client.topics())?
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| anyhow::anyhow!("unknown topic {name:?}"))?;
            println!("topic {}: {} partitions", topic.name, topic.shards.len());
            println!("partition\tshard\tearliest\tlatest");
            for (partition, shard) in topic.shards.iter().enumerate() {
                let partition = partition as u32;
                let earliest = block_on(client.list_offset(&name, partition, OffsetSpec::Earliest))?;
                let latest = block_on(client.list_offset(&name, partition, OffsetSpec::Latest))?;
                println!("{partition}\t{shard}\t{earliest}\t{latest}");
            }
        }
        TopicCommand::Delete { name, bootstrap } => {
            let client = connect(&bootstrap)?;
            block_on(client.delete_topic(&name))?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
