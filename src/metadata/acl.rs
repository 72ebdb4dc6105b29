//! Access control entries as Kafka's authorizer models them: on a resource (a topic, a
//! group, the cluster, a transactional id) named literally (`*` for every one) or by
//! prefix, a principal (`User:name`, `User:*`) from a host (`*` for any) is allowed or
//! denied an operation. Stored in the metadata command log, so they survive restarts
//! and will be replicated with the rest of the metadata.

use serde::{Deserialize, Serialize};

/// What an entry protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl ResourceType {
    /// Kafka's number for it (`ResourceType` in its admin API).
    pub fn from_kafka(code: i8) -> Option<ResourceType> {
        Some(match code {
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            _ => return None,
        })
    }

    pub fn kafka(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::Cluster => "cluster",
            ResourceType::TransactionalId => "transactional-id",
        }
    }

    pub fn parse(name: &str) -> Option<ResourceType> {
        [ResourceType::Topic, ResourceType::Group, ResourceType::Cluster, ResourceType::TransactionalId]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// How an entry's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// The name itself, or every resource when the name is `*`.
    Literal,
    /// Every resource whose name starts with it.
    Prefixed,
}

impl PatternType {
    pub fn kafka(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PatternType::Literal => "literal",
            PatternType::Prefixed => "prefixed",
        }
    }
}

/// What an entry allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl AclOperation {
    pub const EVERY: [AclOperation; 11] = [
        AclOperation::All,
        AclOperation::Read,
        AclOperation::Write,
        AclOperation::Create,
        AclOperation::Delete,
        AclOperation::Alter,
        AclOperation::Describe,
        AclOperation::ClusterAction,
        AclOperation::DescribeConfigs,
        AclOperation::AlterConfigs,
        AclOperation::IdempotentWrite,
    ];

    /// Kafka's number for it (`AclOperation`: 2 is ALL, 3 READ … 12 IDEMPOTENT_WRITE).
    pub fn kafka(self) -> i8 {
        AclOperation::EVERY.iter().position(|op| *op == self).expect("listed") as i8 + 2
    }

    pub fn from_kafka(code: i8) -> Option<AclOperation> {
        usize::try_from(code - 2).ok().and_then(|i| AclOperation::EVERY.get(i).copied())
    }

    /// The name `strand acl` takes and prints (Kafka's, in kebab case).
    pub fn name(self) -> &'static str {
        match self {
            AclOperation::All => "all",
            AclOperation::Read => "read",
            AclOperation::Write => "write",
            AclOperation::Create => "create",
            AclOperation::Delete => "delete",
            AclOperation::Alter => "alter",
            AclOperation::Describe => "describe",
            AclOperation::ClusterAction => "cluster-action",
            AclOperation::DescribeConfigs => "describe-configs",
            AclOperation::AlterConfigs => "alter-configs",
            AclOperation::IdempotentWrite => "idempotent-write",
        }
    }

    pub fn parse(name: &str) -> Option<AclOperation> {
        AclOperation::EVERY.into_iter().find(|op| op.name() == name)
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn kafka(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    pub fn from_kafka(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }
}

/// One access control entry on its resource pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub pattern_type: PatternType,
    /// The resource's name (`kafka-cluster` for the cluster), `*` with a literal
    /// pattern for every resource of the type.
    pub resource_name: String,
    /// `User:name`, or `User:*` for every principal.
    pub principal: String,
    /// An IP address, or `*` for any.
    pub host: String,
    pub operation: AclOperation,
    pub permission: Permission,
}

/// The cluster's name as a resource, as Kafka names it.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";
/// Longest resource name, principal or host an entry may hold.
pub const ACL_FIELD_BYTES_MAX: usize = 1024;

impl AclBinding {
    /// Checks the entry's fields: what Kafka's CreateAcls refuses with
    /// INVALID_REQUEST.
    pub fn validate(&self) -> Result<(), String> {
        if self.resource_name.is_empty() {
            return Err("the resource name is empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_RESOURCE {
            return Err(format!("the cluster resource is named {CLUSTER_RESOURCE:?}"));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return Err("a prefixed pattern of \"*\" would be a literal \"*\"".into());
        }
        let Some(name) = self.principal.strip_prefix("User:") else {
            return Err(format!("principal {:?}: must be User:name or User:*", self.principal));
        };
        if name.is_empty() {
            return Err("the principal's name is empty".into());
        }
        if self.host != "*" && self.host.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("host {:?}: must be an IP address or \"*\"", self.host));
        }
        for field in [&self.resource_name, &self.principal, &self.host] {
            if field.len() > ACL_FIELD_BYTES_MAX {
                return Err(format!("a field is longer than {ACL_FIELD_BYTES_MAX} bytes"));
            }
        }
        Ok(())
    }

    /// Whether the entry's pattern covers the resource `name` of `kind`.
    pub fn covers(&self, kind: ResourceType, name: &str) -> bool {
        self.resource_type == kind
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }
}

/// A filter over entries (Kafka's AclBindingFilter): `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    /// `None`: any pattern; `Some(Literal)` or `Some(Prefixed)` as stored.
    pub pattern_type: Option<PatternType>,
    pub resource_name: Option<String>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<Permission>,
    /// Kafka's MATCH pattern type: entries whose pattern covers `resource_name`
    /// (literal, the `*` literal, and prefixes of it).
    pub matching: bool,
}

impl AclFilter {
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let resource = match (&self.resource_name, self.matching) {
            (None, _) => true,
            (Some(name), true) => acl.covers(acl.resource_type, name),
            (Some(name), false) => &acl.resource_name == name,
        };
        self.resource_type.is_none_or(|kind| kind == acl.resource_type)
            && self.pattern_type.is_none_or(|pattern| pattern == acl.pattern_type)
            && resource
            && self.principal.as_ref().is_none_or(|p| p == &acl.principal)
            && self.host.as_ref().is_none_or(|h| h == &acl.host)
            && self.operation.is_none_or(|op| op == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}
