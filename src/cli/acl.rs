//! `strand acl add|list|remove`: access control entries, through a Kafka listener's
//! CreateAcls, DescribeAcls and DeleteAcls, as `kafka-acls.sh` manages them.

use super::kafka_admin::{KafkaAdmin, KafkaArgs};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strand::metadata::acl::{AclOperation, PatternType, Permission, ResourceType, CLUSTER_RESOURCE};

#[derive(Subcommand)]
pub enum AclCommand {
    /// Allow (or with --deny, deny) a principal operations on a resource.
    Add(Entry),
    /// List the entries, every one or those on a resource.
    List {
        #[command(flatten)]
        resource: Resource,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Remove the entries that `add` with the same arguments made.
    Remove(Entry),
}

/// The resource of an entry: exactly one of these.
#[derive(Args, Debug, Clone, Default)]
pub struct Resource {
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// The cluster itself (topic creation, users, ACLs, quotas).
    #[arg(long)]
    pub cluster: bool,
    /// The name is a prefix: the entry covers every resource whose name starts with it.
    #[arg(long)]
    pub prefixed: bool,
}

#[derive(Args, Debug, Clone)]
pub struct Entry {
    /// `User:name`, or `User:*` for everyone.
    #[arg(long)]
    pub principal: String,
    /// Operations: all, read, write, create, delete, alter, describe, cluster-action,
    /// describe-configs, alter-configs, idempotent-write (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub operation: Vec<String>,
    /// The client's address, or * for any.
    #[arg(long, default_value = "*")]
    pub host: String,
    /// Deny rather than allow.
    #[arg(long)]
    pub deny: bool,
    #[command(flatten)]
    pub resource: Resource,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

impl Resource {
    /// The type, name and pattern named, if one was.
    fn named(&self) -> anyhow::Result<Option<(ResourceType, String, PatternType)>> {
        let pattern = if self.prefixed { PatternType::Prefixed } else { PatternType::Literal };
        let mut named = Vec::new();
        if let Some(topic) = &self.topic {
            named.push((ResourceType::Topic, topic.clone()));
        }
        if let Some(group) = &self.group {
            named.push((ResourceType::Group, group.clone()));
        }
        if let Some(id) = &self.transactional_id {
            named.push((ResourceType::TransactionalId, id.clone()));
        }
        if self.cluster {
            named.push((ResourceType::Cluster, CLUSTER_RESOURCE.to_string()));
        }
        match named.len() {
            0 => Ok(None),
            1 => Ok(named.pop().map(|(kind, name)| (kind, name, pattern))),
            _ => bail!("name one resource: --topic, --group, --transactional-id or --cluster"),
        }
    }
}

fn operations(names: &[String]) -> anyhow::Result<Vec<AclOperation>> {
    names
        .iter()
        .map(|name| {
            AclOperation::parse(name).ok_or_else(|| {
                let every: Vec<&str> = AclOperation::EVERY.iter().map(|op| op.name()).collect();
                anyhow::anyhow!("--operation {name}: one of {}", every.join(", "))
            })
        })
        .collect()
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

pub fn run(command: AclCommand) -> anyhow::Result<()> {
    match command {
        AclCommand::Add(entry) => add(entry),
        AclCommand::Remove(entry) => remove(entry),
        AclCommand::List { resource, kafka } => list(&resource, &kafka),
    }
}

fn add(entry: Entry) -> anyhow::Result<()> {
    let (kind, name, pattern) =
        entry.resource.named()?.context("name the resource: --topic, --group, --transactional-id or --cluster")?;
    let permission = if entry.deny { Permission::Deny } else { Permission::Allow };
    let mut request = CreateAclsRequest::default();
    request.creations = operations(&entry.operation)?
        .into_iter()
        .map(|operation| {
            let mut creation = AclCreation::default();
            creation.resource_type = kind.kafka();
            creation.resource_name = text(&name);
            creation.resource_pattern_type = pattern.kafka();
            creation.principal = text(&entry.principal);
            creation.host = text(&entry.host);
            creation.operation = operation.kafka();
            creation.permission_type = permission.kafka();
            creation
        })
        .collect();
    let answer: CreateAclsResponse = KafkaAdmin::connect(&entry.kafka)?.call(ApiKey::CreateAcls, 3, &request)?;
    for result in &answer.results {
        if result.error_code != 0 {
            bail!(
                "refused (Kafka error {}): {}",
                result.error_code,
                result.error_message.as_deref().unwrap_or_default()
            );
        }
    }
    println!("{} entr{} added", answer.results.len(), if answer.results.len() == 1 { "y" } else { "ies" });
    Ok(())
}

fn remove(entry: Entry) -> anyhow::Result<()> {
    let (kind, name, pattern) =
        entry.resource.named()?.context("name the resource: --topic, --group, --transactional-id or --cluster")?;
    let permission = if entry.deny { Permission::Deny } else { Permission::Allow };
    let mut request = DeleteAclsRequest::default();
    request.filters = operations(&entry.operation)?
        .into_iter()
        .map(|operation| {
            let mut filter = DeleteAclsFilter::default();
            filter.resource_type_filter = kind.kafka();
            filter.resource_name_filter = Some(text(&name));
            filter.pattern_type_filter = pattern.kafka();
            filter.principal_filter = Some(text(&entry.principal));
            filter.host_filter = Some(text(&entry.host));
            filter.operation = operation.kafka();
            filter.permission_type = permission.kafka();
            filter
        })
        .collect();
    let answer: DeleteAclsResponse = KafkaAdmin::connect(&entry.kafka)?.call(ApiKey::DeleteAcls, 3, &request)?;
    let mut removed = 0;
    for result in &answer.filter_results {
        if result.error_code != 0 {
            bail!(
                "refused (Kafka error {}): {}",
                result.error_code,
                result.error_message.as_deref().unwrap_or_default()
            );
        }
        removed += result.matching_acls.iter().filter(|acl| acl.error_code == 0).count();
    }
    println!("{removed} entr{} removed", if removed == 1 { "y" } else { "ies" });
    Ok(())
}

fn list(resource: &Resource, kafka: &KafkaArgs) -> anyhow::Result<()> {
    const ANY: i8 = 1;
    let mut request = DescribeAclsRequest::default();
    (request.resource_type_filter, request.pattern_type_filter, request.operation, request.permission_type) =
        (ANY, ANY, ANY, ANY);
    // The crate's defaults are empty strings, which would match only empty names.
    (request.resource_name_filter, request.principal_filter, request.host_filter) = (None, None, None);
    if let Some((kind, name, pattern)) = resource.named()? {
        request.resource_type_filter = kind.kafka();
        request.resource_name_filter = Some(text(&name));
        request.pattern_type_filter = pattern.kafka();
    }
    let answer: DescribeAclsResponse = KafkaAdmin::connect(kafka)?.call(ApiKey::DescribeAcls, 3, &request)?;
    if answer.error_code != 0 {
        bail!("refused (Kafka error {}): {}", answer.error_code, answer.error_message.as_deref().unwrap_or_default());
    }
    for resource in answer.resources {
        let kind = ResourceType::from_kafka(resource.resource_type).map_or("?", ResourceType::name);
        let pattern = if resource.pattern_type == PatternType::Prefixed.kafka() { " (prefixed)" } else { "" };
        for acl in resource.acls {
            let permission = if acl.permission_type == Permission::Deny.kafka() { "deny" } else { "allow" };
            let operation = AclOperation::from_kafka(acl.operation).map_or("?", AclOperation::name);
            println!(
                "{permission}\t{}\t{operation}\t{kind}:{}{pattern}\tfrom {}",
                acl.principal, resource.resource_name, acl.host
            );
        }
    }
    Ok(())
}
