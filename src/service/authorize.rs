//! Authorization, checked here once for every listener: whether a request's principal
//! may do an operation on a resource (`auth::authorizer` over the metadata's ACLs,
//! `[authorization]`). A denial is Kafka's error for the resource type, counted in
//! `strand_authorization_denials_total` and logged (rate-limited) with the principal,
//! host, resource and operation.
//!
//! With `authorization.enabled` off (the default) every check is one branch.

use super::{Error, RequestContext};
use crate::auth::authorizer::{self, Requester};
use crate::metadata::acl::{AclOperation, ResourceType, CLUSTER_RESOURCE};
use crate::shard::Shard;

/// Whether `ctx`'s principal may do `operation` on `name` of `kind`; a denial is
/// counted and logged.
pub fn allowed(shard: &Shard, ctx: &RequestContext, kind: ResourceType, name: &str, operation: AclOperation) -> bool {
    if !shard.config.authorization.enabled {
        return true;
    }
    let ok = decide(shard, ctx, kind, name, operation);
    if !ok {
        crate::metrics::ShardMetrics::count(&shard.metrics.authorization_denials, 1);
        if shard.warnings.authorization_denials.allow() {
            tracing::warn!(
                shard = shard.id,
                principal = %ctx.principal,
                host = %ctx.host.map(|ip| ip.to_string()).unwrap_or_default(),
                resource = %format!("{}:{name}", kind.name()),
                operation = operation.name(),
                "authorization denied"
            );
        }
    }
    ok
}

/// `allowed` as a `Result`: the denial as the resource type's error.
pub fn check(
    shard: &Shard,
    ctx: &RequestContext,
    kind: ResourceType,
    name: &str,
    operation: AclOperation,
) -> Result<(), Error> {
    if allowed(shard, ctx, kind, name, operation) {
        Ok(())
    } else {
        Err(denied(kind))
    }
}

/// `check` on the cluster resource.
pub fn check_cluster(shard: &Shard, ctx: &RequestContext, operation: AclOperation) -> Result<(), Error> {
    check(shard, ctx, ResourceType::Cluster, CLUSTER_RESOURCE, operation)
}

/// Whether the principal may see `topic` (describe): for listings, which leave out
/// what it may not see without counting that as a denial.
pub fn may_describe_topic(shard: &Shard, ctx: &RequestContext, topic: &str) -> bool {
    !shard.config.authorization.enabled || decide(shard, ctx, ResourceType::Topic, topic, AclOperation::Describe)
}

/// Whether the principal may create `topic`: create on the cluster, or on the topic.
pub fn may_create_topic(shard: &Shard, ctx: &RequestContext, topic: &str) -> bool {
    !shard.config.authorization.enabled
        || decide(shard, ctx, ResourceType::Cluster, CLUSTER_RESOURCE, AclOperation::Create)
        || allowed(shard, ctx, ResourceType::Topic, topic, AclOperation::Create)
}

/// Whether the principal may ask for an idempotent producer id: idempotent-write on
/// the cluster, or write on some topic (Kafka's rule since KIP-679).
pub fn check_idempotent_producer(shard: &Shard, ctx: &RequestContext) -> Result<(), Error> {
    if !shard.config.authorization.enabled
        || decide(shard, ctx, ResourceType::Cluster, CLUSTER_RESOURCE, AclOperation::IdempotentWrite)
    {
        return Ok(());
    }
    let state = shard.metadata();
    let requester = Requester { principal: &ctx.principal, host: ctx.host };
    if authorizer::allows_some(
        &shard.config.authorization,
        &state.acls,
        &requester,
        ResourceType::Topic,
        AclOperation::Write,
    ) {
        return Ok(());
    }
    // Counted and logged as a denial of the cluster resource.
    check_cluster(shard, ctx, AclOperation::IdempotentWrite)
}

fn decide(shard: &Shard, ctx: &RequestContext, kind: ResourceType, name: &str, operation: AclOperation) -> bool {
    let state = shard.metadata();
    let requester = Requester { principal: &ctx.principal, host: ctx.host };
    authorizer::allowed(&shard.config.authorization, &state.acls, &requester, kind, name, operation)
}

/// One request's checks of `operation` on its topics, each topic decided once however
/// many of its partitions the request names (they come grouped by topic).
pub struct TopicGate<'a> {
    shard: &'a Shard,
    ctx: &'a RequestContext,
    operation: AclOperation,
    last: Option<(String, bool)>,
}

impl<'a> TopicGate<'a> {
    pub fn new(shard: &'a Shard, ctx: &'a RequestContext, operation: AclOperation) -> TopicGate<'a> {
        TopicGate { shard, ctx, operation, last: None }
    }

    pub fn check(&mut self, topic: &str) -> Result<(), Error> {
        if !self.shard.config.authorization.enabled {
            return Ok(());
        }
        let ok = match &self.last {
            Some((name, ok)) if name == topic => *ok,
            _ => {
                let ok = allowed(self.shard, self.ctx, ResourceType::Topic, topic, self.operation);
                self.last = Some((topic.to_string(), ok));
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::TopicAuthorizationFailed)
        }
    }
}

/// The error a denial on `kind` is answered with.
pub fn denied(kind: ResourceType) -> Error {
    match kind {
        ResourceType::Topic => Error::TopicAuthorizationFailed,
        ResourceType::Group => Error::GroupAuthorizationFailed,
        ResourceType::Cluster => Error::ClusterAuthorizationFailed,
        ResourceType::TransactionalId => Error::TransactionalIdAuthorizationFailed,
    }
}
