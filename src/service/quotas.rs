//! Client quotas, counted here once for every listener: bytes produced and fetched per
//! second, and the share of a shard's time its requests take, by a user, a client id,
//! or both (Kafka's `producer_byte_rate`, `consumer_byte_rate` and
//! `request_percentage`, with Kafka's precedence between entities), set with
//! AlterClientQuotas and kept in the metadata.
//!
//! A request's time is the time the shard's thread spends polling it (`timed`): its
//! decoding, its work on this shard and its answer, never the time it waits, so a
//! long-poll fetch costs what it does, not its wait. 100 is one shard's whole time, as
//! Kafka's 100 is one thread's; work another shard does for a request (a forwarded
//! partition) is not counted.
//!
//! Each quota is a token bucket shared by every shard (a client's connections land on
//! any of them): it refills at the quota's rate, holds at most one second of it, and
//! starts empty. A request's bytes are taken from it even when that leaves it in
//! debt; the debt, over the rate, is how long the client must wait: its answer says so
//! (`throttle_time_ms`) and its connection is not read again until then (KIP-219), so
//! a client over its quota is slowed, never disconnected. Produce is counted before it
//! is appended (a throttled producer's batch is still stored), fetch after its answer
//! is read.
//!
//! Without any quota in the metadata a check is one branch. With some, a request takes
//! a mutex once; the buckets are bounded (`BUCKETS_MAX`, idle ones forgotten first).

use super::RequestContext;
use crate::auth::Principal;
use crate::metadata::quota::{EntityName, QuotaEntity, QuotaKey};
use crate::shard::Shard;
use std::time::{Duration, Instant};

pub use super::quota_meter::QuotaMeter;

/// The user a quota sees: the principal's name (`ANONYMOUS` for a client that has not
/// authenticated, as Kafka names it).
fn user_of(ctx: &RequestContext) -> Option<String> {
    match &ctx.principal {
        Principal::Anonymous => Some("ANONYMOUS".into()),
        Principal::User(name) => Some(name.clone()),
        Principal::Broker => None,
    }
}

/// Counts `bytes` against `key`'s quota for `ctx`'s client: how long it must wait
/// (zero when no quota applies or it is within it).
pub fn record(shard: &Shard, ctx: &RequestContext, key: QuotaKey, bytes: u64) -> Duration {
    let state = shard.metadata();
    if state.quotas.is_empty() {
        return Duration::ZERO;
    }
    let Some(user) = user_of(ctx) else { return Duration::ZERO };
    let client_id = ctx.client_id.clone().unwrap_or_default();
    let Some((entity, rate)) = state.quota_for(key, &user, &client_id) else { return Duration::ZERO };
    // A request share is a percentage of one shard's second, counted in microseconds.
    let rate = if key == QuotaKey::RequestPercentage { rate * 10_000.0 } else { rate };
    let named = |component: &Option<EntityName>, name: &str| component.as_ref().map(|_| name.to_string());
    let bucket = (key, named(&entity.user, &user), named(&entity.client_id, &client_id));
    let throttle = shard.quotas.take(bucket, rate, bytes, Instant::now());
    if !throttle.is_zero() {
        crate::metrics::ShardMetrics::count(&shard.metrics.throttled, 1);
    }
    throttle
}

/// Counts `spent` of this shard's time on one of `ctx`'s client's requests against its
/// `request_percentage` (100: one shard's whole time; the bucket holds microseconds):
/// how long it must wait.
pub fn record_time(shard: &Shard, ctx: &RequestContext, spent: Duration) -> Duration {
    record(shard, ctx, QuotaKey::RequestPercentage, spent.as_micros() as u64)
}

/// Runs `work`, adding up the time the shard spends polling it: the time its request
/// took of the shard's thread, without the time it waited (for a long-poll fetch, a
/// flush, another shard). What `record_time` counts.
pub async fn timed<F: std::future::Future>(work: F) -> (F::Output, Duration) {
    let mut work = std::pin::pin!(work);
    let mut spent = Duration::ZERO;
    let output = std::future::poll_fn(|cx| {
        let started = Instant::now();
        let poll = work.as_mut().poll(cx);
        spent += started.elapsed();
        poll
    })
    .await;
    (output, spent)
}

/// The quota entity `record` would count a client against, for describing.
pub fn entity_for(shard: &Shard, key: QuotaKey, user: &str, client_id: &str) -> Option<(QuotaEntity, f64)> {
    shard.metadata().quota_for(key, user, client_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_precedence_picks_the_most_specific_entity() {
        use crate::metadata::quota::QuotaValue;
        use crate::metadata::MetadataState;
        let mut state = MetadataState::default();
        let mut set = |user: Option<EntityName>, client_id: Option<EntityName>, value: f64| {
            state
                .quotas
                .entry(QuotaEntity { user, client_id })
                .or_default()
                .insert(QuotaKey::ProducerByteRate, QuotaValue(value));
        };
        set(Some(EntityName::Default), None, 1.0);
        set(Some(EntityName::Named("alice".into())), None, 2.0);
        set(None, Some(EntityName::Named("loader".into())), 3.0);
        set(Some(EntityName::Named("alice".into())), Some(EntityName::Named("loader".into())), 4.0);
        let rate = |user: &str, client: &str| state.quota_for(QuotaKey::ProducerByteRate, user, client).map(|(_, v)| v);
        assert_eq!(rate("alice", "loader"), Some(4.0));
        assert_eq!(rate("alice", "other"), Some(2.0));
        assert_eq!(rate("bob", "loader"), Some(1.0), "a user's default comes before a client id's");
        assert_eq!(state.quota_for(QuotaKey::ConsumerByteRate, "alice", "loader"), None);
    }
}

pub use super::types::QuotaChanges;

/// Changes each entity's quotas on shard 0 (one command per key): outcomes in order.
/// Needs alter-configs on the cluster, as Kafka's AlterClientQuotas does.
pub async fn alter(
    shard: &std::rc::Rc<Shard>,
    ctx: &RequestContext,
    entries: Vec<(QuotaEntity, QuotaChanges)>,
    validate_only: bool,
) -> Vec<Result<(), super::Error>> {
    use super::admin::{self, AdminRequest};
    use crate::metadata::acl::AclOperation;
    if let Err(error) = super::authorize::check_cluster(shard, ctx, AclOperation::AlterConfigs) {
        return entries.iter().map(|_| Err(error.clone())).collect();
    }
    if entries.len() > super::acls::ENTRIES_MAX {
        let error =
            super::Error::InvalidRequest(format!("at most {} entries in one request", super::acls::ENTRIES_MAX));
        return entries.iter().map(|_| Err(error.clone())).collect();
    }
    let checked: Vec<Result<(), super::Error>> =
        entries.iter().map(|(entity, _)| entity.validate().map_err(super::Error::InvalidRequest)).collect();
    if validate_only {
        return checked;
    }
    let valid: Vec<(QuotaEntity, QuotaChanges)> =
        entries.into_iter().zip(&checked).filter(|(_, ok)| ok.is_ok()).map(|(entry, _)| entry).collect();
    let mut outcomes = if valid.is_empty() {
        Vec::new()
    } else {
        admin::run(shard, ctx, AdminRequest::AlterClientQuotas(valid)).await
    }
    .into_iter();
    checked
        .into_iter()
        .map(|check| check.and_then(|()| outcomes.next().map_or(Err(super::Error::ShuttingDown), |(_, o)| o)))
        .collect()
}

/// How a DescribeClientQuotas component matches an entity's: a name, the default, or
/// any entity that has the component.
#[derive(Debug, Clone)]
pub enum ComponentMatch {
    Exact(String),
    Default,
    Any,
}

/// An entity and its quotas' values.
pub type DescribedQuota = (QuotaEntity, Vec<(QuotaKey, f64)>);

/// The entities whose components match: each `(is user, match)` must match its
/// component; with `strict`, an entity has no other components.
pub fn describe(
    shard: &Shard,
    ctx: &RequestContext,
    components: &[(bool, ComponentMatch)],
    strict: bool,
) -> Result<Vec<DescribedQuota>, super::Error> {
    super::authorize::check_cluster(shard, ctx, crate::metadata::acl::AclOperation::DescribeConfigs)?;
    let matches = |component: &Option<EntityName>, wanted: &ComponentMatch| match (component, wanted) {
        (None, _) => false,
        (Some(_), ComponentMatch::Any) => true,
        (Some(EntityName::Default), ComponentMatch::Default) => true,
        (Some(EntityName::Named(name)), ComponentMatch::Exact(wanted)) => name == wanted,
        _ => false,
    };
    let state = shard.metadata();
    Ok(state
        .quotas
        .iter()
        .filter(|(entity, _)| {
            components
                .iter()
                .all(|(user, wanted)| matches(if *user { &entity.user } else { &entity.client_id }, wanted))
                && (!strict
                    || (entity.user.is_some() == components.iter().any(|(user, _)| *user)
                        && entity.client_id.is_some() == components.iter().any(|(user, _)| !*user)))
        })
        .map(|(entity, keys)| (entity.clone(), keys.iter().map(|(key, value)| (*key, value.0)).collect()))
        .collect())
}
