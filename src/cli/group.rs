//! `strand group list|describe|reset-offsets`: consumer groups, their members,
//! assignments, committed offsets and lag.

use super::connect;
use clap::Subcommand;
use std::collections::{BTreeMap, BTreeSet};
use strand_client::{block_on, Client, OffsetSpec};
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Request, Response};

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List the groups the broker knows (with members, or with committed offsets).
    List {
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
    /// Show a group's members and, per partition, its owner, committed offset, log
    /// end offset and lag.
    Describe {
        group: String,
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
    /// Move a group's committed offsets for a topic; the group must have no live
    /// members.
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or @MS (the first offset at or after a
        /// timestamp in ms).
        #[arg(long)]
        to: String,
        /// Only this partition (default: every partition of the topic).
        #[arg(long)]
        partition: Option<u32>,
        #[command(flatten)]
        broker: super::BrokerArgs,
    },
}

fn request(client: &Client, request: Request) -> anyhow::Result<Response> {
    Ok(block_on(client.request(request))?)
}

fn refused(code: ErrorCode, group: &str) -> anyhow::Error {
    match code {
        ErrorCode::UnknownGroup => anyhow::anyhow!("unknown group {group:?}"),
        ErrorCode::InvalidGroupId => {
            anyhow::anyhow!("invalid group id {group:?}: 1 to 249 bytes of text without control characters")
        }
        ErrorCode::GroupNotEmpty => {
            anyhow::anyhow!("group {group:?} has live members: stop them before resetting its offsets")
        }
        code => anyhow::anyhow!("the broker answered {code:?} for group {group:?}"),
    }
}

pub fn run(command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::List { broker } => {
            let client = connect(&broker)?;
            let Response::ListGroups(list) = request(&client, Request::ListGroups(ListGroupsRequest {}))? else {
                anyhow::bail!("unexpected response to ListGroups");
            };
            for group in list.groups {
                println!(
                    "{}\t{}\tgeneration {}",
                    group.group,
                    super::plural(u64::from(group.members), "member"),
                    group.generation
                );
            }
        }
        GroupCommand::Describe { group, broker } => describe(&connect(&broker)?, &group)?,
        GroupCommand::ResetOffsets { group, topic, to, partition, broker } => {
            let client = connect(&broker)?;
            let spec = match to.as_str() {
                "earliest" => OffsetSpec::Earliest,
                "latest" => OffsetSpec::Latest,
                at if at.starts_with('@') => OffsetSpec::Timestamp(
                    at[1..].parse().map_err(|_| anyhow::anyhow!("--to {at:?}: expected @ and milliseconds"))?,
                ),
                offset => {
                    let _: u64 = offset
                        .parse()
                        .map_err(|_| anyhow::anyhow!("--to {offset:?}: expected earliest, latest, OFFSET or @MS"))?;
                    OffsetSpec::Latest
                }
            };
            let count = block_on(client.partition_count(&topic))?;
            let partitions: Vec<u32> = match partition {
                Some(p) if p >= count => anyhow::bail!("topic {topic} has no partition {p}"),
                Some(p) => vec![p],
                None => (0..count).collect(),
            };
            let mut commits = Vec::new();
            for p in partitions {
                let offset = match to.parse::<u64>() {
                    Ok(offset) => offset,
                    Err(_) => {
                        let found = block_on(client.list_offset(&topic, p, spec))?;
                        if found >= 0 {
                            found as u64
                        } else {
                            block_on(client.list_offset(&topic, p, OffsetSpec::Latest))?.max(0) as u64
                        }
                    }
                };
                commits.push(CommitPartition { partition: p, offset, metadata: String::new() });
            }
            let shown: Vec<String> = commits.iter().map(|c| format!("{topic}-{}: {}", c.partition, c.offset)).collect();
            let commit = Request::OffsetCommit(OffsetCommitRequest {
                group: group.clone(),
                member_id: String::new(),
                generation: 0,
                topics: vec![CommitTopic { topic: topic.clone(), partitions: commits }],
            });
            let Response::OffsetCommit(result) = request(&client, commit)? else {
                anyhow::bail!("unexpected response to OffsetCommit");
            };
            if result.error != ErrorCode::None {
                return Err(refused(result.error, &group));
            }
            for topic_result in &result.topics {
                for part in &topic_result.partitions {
                    if part.error != ErrorCode::None {
                        anyhow::bail!("partition {}-{}: {:?}", topic_result.topic, part.partition, part.error);
                    }
                }
            }
            println!("group {group}: {}", shown.join(", "));
        }
    }
    Ok(())
}

fn describe(client: &Client, group: &str) -> anyhow::Result<()> {
    let Response::DescribeGroup(described) =
        request(client, Request::DescribeGroup(DescribeGroupRequest { group: group.to_string() }))?
    else {
        anyhow::bail!("unexpected response to DescribeGroup");
    };
    if described.error != ErrorCode::None {
        return Err(refused(described.error, group));
    }
    let Response::OffsetFetch(committed) =
        request(client, Request::OffsetFetch(OffsetFetchRequest { group: group.to_string(), topics: Vec::new() }))?
    else {
        anyhow::bail!("unexpected response to OffsetFetch");
    };
    println!(
        "group {group}: {}, generation {}, strategy {}",
        super::plural(described.members.len() as u64, "member"),
        described.generation,
        if described.strategy.is_empty() { "-" } else { &described.strategy }
    );
    let mut owner: BTreeMap<(String, u32), String> = BTreeMap::new();
    let mut topics: BTreeSet<String> = BTreeSet::new();
    for member in &described.members {
        let owned: Vec<String> =
            member.owned.iter().flat_map(|t| t.partitions.iter().map(move |p| format!("{}-{p}", t.topic))).collect();
        println!("member {}\ttopics {}\towns {}", member.member_id, member.topics.join(","), owned.join(","));
        for t in &member.owned {
            for p in &t.partitions {
                owner.insert((t.topic.clone(), *p), member.member_id.clone());
            }
        }
        topics.extend(member.topics.iter().cloned());
    }
    let mut offsets: BTreeMap<(String, u32), i64> = BTreeMap::new();
    for topic in committed.topics {
        for part in topic.partitions {
            offsets.insert((topic.topic.clone(), part.partition), part.offset);
        }
        topics.insert(topic.topic);
    }
    println!("TOPIC\tPARTITION\tCOMMITTED\tLOG-END\tLAG\tOWNER");
    for topic in topics {
        let Ok(count) = block_on(client.partition_count(&topic)) else { continue };
        for partition in 0..count {
            let end = block_on(client.list_offset(&topic, partition, OffsetSpec::Latest))?.max(0);
            let key = (topic.clone(), partition);
            let committed = offsets.get(&key).copied().filter(|&o| o >= 0);
            let lag = committed.map_or(end, |c| (end - c).max(0));
            println!(
                "{topic}\t{partition}\t{}\t{end}\t{lag}\t{}",
                committed.map_or("-".to_string(), |c| c.to_string()),
                owner.get(&key).map_or("-", String::as_str)
            );
        }
    }
    Ok(())
}
