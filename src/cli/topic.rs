//! `strand topic create|list|describe|alter|delete`.

use super::{connect, plural};
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
        /// The topic's name: 1 to 249 of a-z A-Z 0-9 . _ -
        name: String,
        /// How many partitions (1 to 100000); each reserves its segment size on disk.
        #[arg(long, allow_negative_numbers = true, value_parser = super::parse_partitions)]
        partitions: u32,
        /// Replicas of each partition, on as many brokers of a cluster (default: the
        /// cluster's default_replication_factor; a broker alone holds one).
        #[arg(long, allow_negative_numbers = true, value_parser = super::parse_u32)]
        replication_factor: Option<u32>,
        #[command(flatten)]
        settings: Settings,
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
    /// List topics (internal ones, such as `__consumer_offsets`, with --internal).
    List {
        /// Also list the broker's internal topics (names starting with `__`).
        #[arg(long)]
        internal: bool,
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
    /// Show a topic's partitions (leader, replicas, in-sync replicas, the leader's
    /// shard, earliest and latest offsets) and its configuration.
    Describe {
        /// The topic to describe.
        name: String,
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
    /// Change a topic's settings (those not named keep their value) or add partitions.
    /// Retention and durability apply to the existing data at once, segment settings
    /// from the next segment.
    Alter {
        /// The topic to change.
        name: String,
        /// Grow the topic to this many partitions in all (a count never shrinks; keys
        /// hash over the new count from then on).
        #[arg(long, allow_negative_numbers = true, value_parser = super::parse_partitions)]
        partitions: Option<u32>,
        #[command(flatten)]
        settings: Settings,
        /// Put a setting back to the broker's default (repeatable).
        #[arg(long = "reset", value_name = "KEY")]
        resets: Vec<String>,
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
    /// Delete a topic and its data.
    Delete {
        /// The topic to delete.
        name: String,
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
}

/// Topic settings, as `topic create` and `topic alter` take them.
#[derive(clap::Args)]
pub struct Settings {
    /// Durability: `always` acknowledges after fdatasync (the default).
    #[arg(long, value_enum)]
    fsync: Option<Fsync>,
    /// With --fsync interval: the longest between an append and its fdatasync.
    #[arg(long, allow_negative_numbers = true, value_parser = super::parse_u64)]
    fsync_interval_ms: Option<u64>,
    /// Delete data older than this (-1: keep forever).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_limit)]
    retention_ms: Option<i64>,
    /// Delete the oldest data past this many bytes per partition (-1: no limit).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_limit)]
    retention_bytes: Option<i64>,
    /// Any other topic setting, as KEY=VALUE (see `strand config defaults`).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
}

/// A retention limit: -1 (none) or a whole number from 0.
fn parse_limit(value: &str) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(n) if n >= -1 => Ok(n),
        _ => Err(format!("{value}: must be -1 (no limit) or a whole number from 0")),
    }
}

impl Settings {
    /// The settings given, as (key, value) entries.
    fn entries(self) -> anyhow::Result<Vec<(String, String)>> {
        let mut entries: Vec<(String, String)> = Vec::new();
        if let Some(fsync) = self.fsync {
            let value = match fsync {
                Fsync::Always => "always",
                Fsync::Interval => "interval",
                Fsync::Never => "never",
            };
            entries.push(("fsync".into(), value.into()));
        }
        if let Some(ms) = self.fsync_interval_ms {
            entries.push(("fsync_interval_ms".into(), ms.to_string()));
        }
        if let Some(ms) = self.retention_ms {
            entries.push(("retention_ms".into(), ms.to_string()));
        }
        if let Some(bytes) = self.retention_bytes {
            entries.push(("retention_bytes".into(), bytes.to_string()));
        }
        for config in self.configs {
            let (key, value) =
                config.split_once('=').ok_or_else(|| anyhow::anyhow!("--config {config:?}: expected KEY=VALUE"))?;
            entries.push((key.trim().into(), value.trim().into()));
        }
        Ok(entries)
    }
}

pub fn run(command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create { name, partitions, replication_factor, settings, broker } => {
            let mut entries = settings.entries()?;
            if let Some(factor) = replication_factor {
                entries.push(("replication_factor".into(), factor.to_string()));
            }
            let client = connect(&broker)?;
            let pairs: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            block_on(client.create_topic(&name, partitions, &pairs))?;
            println!("created topic {name} with {}", plural(u64::from(partitions), "partition"));
        }
        TopicCommand::List { internal, broker } => {
            let client = connect(&broker)?;
            for topic in block_on(client.topics())?.into_iter().filter(|t| internal || !t.name.starts_with("__")) {
                println!("{}\t{}", topic.name, plural(topic.shards.len() as u64, "partition"));
            }
        }
        TopicCommand::Describe { name, broker } => {
            let client = connect(&broker)?;
            let topic = block_on(client.topics())?
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| anyhow::anyhow!("unknown topic {name:?}"))?;
            // Each partition's leader, replicas and in-sync replicas (a broker alone
            // leads every partition itself).
            let layout = block_on(client.describe_cluster())
                .ok()
                .and_then(|cluster| cluster.topics.into_iter().find(|t| t.name == name));
            // Everything is asked for before anything is printed, so an error (a
            // partition not ready) never leaves half a table.
            let mut rows = Vec::with_capacity(topic.shards.len());
            for (partition, shard) in topic.shards.iter().enumerate() {
                let partition = partition as u32;
                let placed = layout.as_ref().and_then(|l| l.partitions.iter().find(|p| p.partition == partition));
                let ids = |ids: Vec<u32>| ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
                let (leader, replicas, isr, shard) = match placed {
                    Some(p) => {
                        let shard = p.leader.and_then(|l| p.replicas.iter().find(|r| r.0 == l)).map(|r| r.1);
                        (
                            p.leader.map_or_else(|| "none".to_string(), |l| l.to_string()),
                            ids(p.replicas.iter().map(|r| r.0).collect()),
                            ids(p.isr.clone()),
                            shard.map_or_else(|| "-".to_string(), |s| s.to_string()),
                        )
                    }
                    None => ("0".into(), "0".into(), "0".into(), shard.to_string()),
                };
                let offsets = if leader == "none" {
                    // Offline: no broker can answer for it until one of its replicas leads.
                    ("-".to_string(), "-".to_string())
                } else {
                    let earliest = block_on(client.list_offset(&name, partition, OffsetSpec::Earliest))
                        .map_err(|error| anyhow::anyhow!("partition {partition}: {error}"))?;
                    let latest = block_on(client.list_offset(&name, partition, OffsetSpec::Latest))
                        .map_err(|error| anyhow::anyhow!("partition {partition}: {error}"))?;
                    (earliest.to_string(), latest.to_string())
                };
                rows.push(format!("{partition}\t{leader}\t{replicas}\t{isr}\t{shard}\t{}\t{}", offsets.0, offsets.1));
            }
            let config = block_on(client.describe_topic_config(&name))?;
            println!("topic {}: {}", topic.name, plural(topic.shards.len() as u64, "partition"));
            println!("partition\tleader\treplicas\tisr\tshard\tearliest\tlatest");
            for row in rows {
                println!("{row}");
            }
            println!("config:");
            for (key, value) in config {
                println!("  {key} = {value}");
            }
        }
        TopicCommand::Alter { name, partitions, settings, resets, broker } => {
            let entries = settings.entries()?;
            if entries.is_empty() && resets.is_empty() && partitions.is_none() {
                anyhow::bail!(
                    "nothing to change: give --partitions N, a setting (such as --retention-ms) or --reset KEY"
                );
            }
            let client = connect(&broker)?;
            if let Some(count) = partitions {
                block_on(client.create_partitions(&name, count))?;
                println!("topic {name} has {}", plural(u64::from(count), "partition"));
                if entries.is_empty() && resets.is_empty() {
                    return Ok(());
                }
            }
            let pairs: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let resets: Vec<&str> = resets.iter().map(String::as_str).collect();
            block_on(client.alter_topic_config(&name, &pairs, &resets))?;
            let changes: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .chain(resets.iter().map(|k| format!("{k} reset to the default")))
                .collect();
            println!("altered topic {name}: {}", changes.join(", "));
        }
        TopicCommand::Delete { name, broker } => {
            let client = connect(&broker)?;
            block_on(client.delete_topic(&name))?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
