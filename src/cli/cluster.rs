//! `strand cluster status`: the cluster's brokers, the metadata quorum's leader, and
//! its under-replicated and offline partitions.

use super::connect;
use clap::Subcommand;
use strand_client::block_on;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// The brokers (alive or fenced, rack, address), the controller (the metadata
    /// quorum's leader), and every partition that is offline (no leader) or
    /// under-replicated (fewer replicas in sync than it has).
    Status {
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
}

pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status { broker } => {
            let client = connect(&broker)?;
            let cluster = block_on(client.describe_cluster())?;
            if cluster.cluster_id.is_empty() {
                println!("a single broker (no [cluster]): it leads every partition");
            } else {
                let controller = cluster
                    .controller
                    .map_or_else(|| "none (an election is under way)".into(), |id| format!("broker {id}"));
                println!("cluster {}: {} brokers, controller {controller}", cluster.cluster_id, cluster.brokers.len());
            }
            println!("broker\tstate\track\taddress");
            for broker in &cluster.brokers {
                let state = if broker.fenced { "fenced" } else { "alive" };
                let rack = broker.rack.as_deref().unwrap_or("-");
                let address = broker.address.as_deref().unwrap_or("-");
                println!("{}\t{state}\t{rack}\t{address}", broker.id);
            }
            let partitions: usize = cluster.topics.iter().map(|t| t.partitions.len()).sum();
            let mut offline = Vec::new();
            let mut under = Vec::new();
            for topic in &cluster.topics {
                for partition in &topic.partitions {
                    let name = format!("{}-{}", topic.name, partition.partition);
                    if partition.leader.is_none() {
                        offline.push(name);
                    } else if partition.under_replicated() {
                        under.push(name);
                    }
                }
            }
            println!("{partitions} partitions: {} offline, {} under-replicated", offline.len(), under.len());
            if !offline.is_empty() {
                println!("offline: {}", offline.join(" "));
            }
            if !under.is_empty() {
                println!("under-replicated: {}", under.join(" "));
            }
        }
    }
    Ok(())
}
