//! Kafka's authorization rules over the ACLs in the metadata (`metadata::acl`), with
//! `[authorization]`'s settings:
//!
//! - without `authorization.enabled`, everything is allowed (as Kafka without an
//!   authorizer); the broker itself and the super users are always allowed;
//! - an entry applies when its pattern covers the resource, its principal is the
//!   client's or `User:*`, and its host the client's address or `*`;
//! - a deny entry for the operation (or `all`) wins over any allow;
//! - an allow entry for the operation, for `all`, or for one that implies it allows
//!   (read, write, delete and alter imply describe; alter-configs implies
//!   describe-configs);
//! - with no entry at all on a resource, `allow_everyone_if_no_acl_found` decides.
//!
//! A decision walks the entries once: O(entries). Fine for hundreds; an index by
//! resource comes when deployments hold thousands.

use super::Principal;
use crate::config::AuthorizationConfig;
use crate::metadata::acl::{AclBinding, AclOperation, Permission, ResourceType};
use std::net::IpAddr;

/// Who asks, for a decision.
pub struct Requester<'a> {
    pub principal: &'a Principal,
    pub host: Option<IpAddr>,
}

/// Who the entries are matched against: `None` when no entry needs looking at
/// (authorization off, the broker itself, a super user).
struct Subject {
    principal: String,
    host: Option<String>,
}

impl Subject {
    fn of(config: &AuthorizationConfig, requester: &Requester) -> Option<Subject> {
        if !config.enabled || *requester.principal == Principal::Broker {
            return None;
        }
        let principal = requester.principal.kafka_name();
        if config.super_users.contains(&principal) {
            return None;
        }
        Some(Subject { principal, host: requester.host.map(|ip| ip.to_string()) })
    }

    /// Whether `acl` is about this principal from this host.
    fn named_by(&self, acl: &AclBinding) -> bool {
        (acl.principal == self.principal || acl.principal == "User:*")
            && (acl.host == "*" || self.host.as_deref() == Some(acl.host.as_str()))
    }
}

/// Whether `requester` may do `operation` on the resource `name` of `kind`.
pub fn allowed<'a>(
    config: &AuthorizationConfig,
    acls: impl IntoIterator<Item = &'a AclBinding>,
    requester: &Requester,
    kind: ResourceType,
    name: &str,
    operation: AclOperation,
) -> bool {
    let Some(subject) = Subject::of(config, requester) else { return true };
    let mut any_on_resource = false;
    let mut allow = false;
    for acl in acls.into_iter().filter(|acl| acl.covers(kind, name)) {
        any_on_resource = true;
        if !subject.named_by(acl) {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation == operation || acl.operation == AclOperation::All => return false,
            Permission::Deny => {}
            Permission::Allow => allow |= grants(acl.operation, operation),
        }
    }
    allow || (!any_on_resource && config.allow_everyone_if_no_acl_found)
}

/// Whether `requester` is allowed `operation` on some resource of `kind` (Kafka's
/// "authorize by resource type", as an idempotent producer's InitProducerId needs
/// write on any topic): an allow entry for it that no deny entry of the same pattern
/// takes back.
pub fn allows_some<'a>(
    config: &AuthorizationConfig,
    acls: impl IntoIterator<Item = &'a AclBinding> + Clone,
    requester: &Requester,
    kind: ResourceType,
    operation: AclOperation,
) -> bool {
    let Some(subject) = Subject::of(config, requester) else { return true };
    let applies = |acl: &AclBinding| acl.resource_type == kind && subject.named_by(acl);
    acls.clone().into_iter().filter(|acl| applies(acl) && acl.permission == Permission::Allow).any(|allow| {
        grants(allow.operation, operation)
            && !acls.clone().into_iter().any(|deny| {
                applies(deny)
                    && deny.permission == Permission::Deny
                    && (deny.operation == operation || deny.operation == AclOperation::All)
                    && deny.covers(kind, &allow.resource_name)
            })
    })
}

/// Whether an allow entry for `granted` allows `wanted`.
fn grants(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == wanted
        || granted == All
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::acl::PatternType;

    fn acl(
        pattern: PatternType,
        name: &str,
        principal: &str,
        operation: AclOperation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            pattern_type: pattern,
            resource_name: name.into(),
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    fn on() -> AuthorizationConfig {
        AuthorizationConfig {
            enabled: true,
            super_users: vec!["User:root".into()],
            allow_everyone_if_no_acl_found: false,
        }
    }

    fn may(acls: &[AclBinding], user: &str, topic: &str, operation: AclOperation) -> bool {
        let principal = Principal::User(user.into());
        let requester = Requester { principal: &principal, host: Some("10.0.0.1".parse().unwrap()) };
        allowed(&on(), acls, &requester, ResourceType::Topic, topic, operation)
    }

    #[test]
    fn deny_wins_and_describe_is_implied_by_read_or_write() {
        use AclOperation::*;
        use PatternType::*;
        let acls = [
            acl(Prefixed, "orders.", "User:alice", Write, Permission::Allow),
            acl(Literal, "orders.secret", "User:alice", All, Permission::Deny),
            acl(Literal, "*", "User:*", Read, Permission::Allow),
        ];
        assert!(may(&acls, "alice", "orders.eu", Write));
        assert!(may(&acls, "alice", "orders.eu", Describe), "write implies describe");
        assert!(!may(&acls, "alice", "orders.secret", Write), "deny wins");
        assert!(!may(&acls, "alice", "orders.secret", Read), "a deny of all denies read too");
        assert!(may(&acls, "bob", "payments", Read), "the wildcard literal, for every principal");
        assert!(!may(&acls, "bob", "orders.eu", Write));
        assert!(may(&acls, "root", "orders.secret", Write), "a super user");
        assert!(!may(&[], "bob", "fresh", Read), "no entry: denied unless allow_everyone_if_no_acl_found");
    }

    /// An idempotent producer's InitProducerId: write on some topic, unless a deny of
    /// the same pattern takes it back.
    #[test]
    fn write_on_some_topic_is_found_and_a_deny_takes_it_back() {
        use AclOperation::*;
        let principal = Principal::User("alice".into());
        let requester = Requester { principal: &principal, host: None };
        let some = |acls: &[AclBinding]| allows_some(&on(), acls, &requester, ResourceType::Topic, Write);
        let write = acl(PatternType::Prefixed, "orders.", "User:alice", Write, Permission::Allow);
        assert!(some(std::slice::from_ref(&write)));
        assert!(
            !some(&[acl(PatternType::Literal, "orders", "User:alice", Read, Permission::Allow)]),
            "read is not write"
        );
        assert!(
            !some(&[write, acl(PatternType::Literal, "*", "User:alice", All, Permission::Deny)]),
            "denied everywhere"
        );
        assert!(!some(&[]));
    }

    #[test]
    fn off_allows_everything_and_hosts_must_match() {
        let principal = Principal::User("bob".into());
        let requester = Requester { principal: &principal, host: Some("10.0.0.2".parse().unwrap()) };
        let off = AuthorizationConfig::default();
        assert!(allowed(&off, &[], &requester, ResourceType::Cluster, "kafka-cluster", AclOperation::Alter));
        let mut only_there = acl(PatternType::Literal, "t", "User:bob", AclOperation::Read, Permission::Allow);
        only_there.host = "10.0.0.1".into();
        assert!(!allowed(&on(), [&only_there], &requester, ResourceType::Topic, "t", AclOperation::Read));
        let open = AuthorizationConfig { allow_everyone_if_no_acl_found: true, ..on() };
        assert!(allowed(&open, &[], &requester, ResourceType::Topic, "t", AclOperation::Read));
        assert!(
            !allowed(&open, [&only_there], &requester, ResourceType::Topic, "t", AclOperation::Read),
            "an entry exists"
        );
    }
}
