//! Access control entries: described from any shard's copy of the metadata, created
//! and deleted on shard 0 through the admin path (`admin`), each entry one command in
//! the metadata log. Describing needs describe on the cluster, changing alter (as in
//! Kafka). A request names at most `ENTRIES_MAX` entries or filters.

use super::admin::{self, AdminRequest};
use super::{authorize, Error, RequestContext};
use crate::metadata::acl::{AclBinding, AclFilter, AclOperation};
use crate::shard::Shard;
use std::rc::Rc;

/// Entries one CreateAcls, or filters one DeleteAcls, may carry.
pub const ENTRIES_MAX: usize = 1000;
/// Entries one filter of a DeleteAcls may remove.
pub const MATCHES_MAX: usize = 10_000;

/// Every entry `filter` matches, in order.
pub fn describe(shard: &Shard, ctx: &RequestContext, filter: &AclFilter) -> Result<Vec<AclBinding>, Error> {
    authorize::check_cluster(shard, ctx, AclOperation::Describe)?;
    Ok(shard.metadata().acls.iter().filter(|acl| filter.matches(acl)).cloned().collect())
}

/// Creates each entry (one that exists already stays as it is): outcomes in order.
pub async fn create(shard: &Rc<Shard>, ctx: &RequestContext, entries: Vec<AclBinding>) -> Vec<Result<(), Error>> {
    if entries.len() > ENTRIES_MAX {
        let error = Error::InvalidRequest(format!("at most {ENTRIES_MAX} entries in one request"));
        return entries.iter().map(|_| Err(error.clone())).collect();
    }
    let checked: Vec<Result<(), Error>> =
        entries.iter().map(|entry| entry.validate().map_err(Error::InvalidRequest)).collect();
    let valid: Vec<AclBinding> =
        entries.into_iter().zip(&checked).filter(|(_, ok)| ok.is_ok()).map(|(entry, _)| entry).collect();
    let mut outcomes = admin::run(shard, ctx, AdminRequest::CreateAcls(valid)).await.into_iter();
    checked
        .into_iter()
        .map(|check| check.and_then(|()| outcomes.next().map_or(Err(Error::ShuttingDown), |(_, o)| o)))
        .collect()
}

/// Deletes what each filter matches: per filter, the entries it matched and how each
/// deletion went.
pub async fn delete(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    filters: Vec<AclFilter>,
) -> Vec<Result<Vec<(AclBinding, Result<(), Error>)>, Error>> {
    if let Err(error) = authorize::check_cluster(shard, ctx, AclOperation::Alter) {
        return filters.iter().map(|_| Err(error.clone())).collect();
    }
    if filters.len() > ENTRIES_MAX {
        let error = Error::InvalidRequest(format!("at most {ENTRIES_MAX} filters in one request"));
        return filters.iter().map(|_| Err(error.clone())).collect();
    }
    let state = shard.metadata();
    let mut matched: Vec<Vec<AclBinding>> = Vec::with_capacity(filters.len());
    let mut all: Vec<AclBinding> = Vec::new();
    for filter in &filters {
        let found: Vec<AclBinding> =
            state.acls.iter().filter(|acl| filter.matches(acl)).take(MATCHES_MAX).cloned().collect();
        // An entry two filters match is deleted once; both report it.
        all.extend(found.iter().filter(|acl| !all.contains(acl)).cloned().collect::<Vec<_>>());
        matched.push(found);
    }
    let outcomes: Vec<Result<(), Error>> = if all.is_empty() {
        Vec::new()
    } else {
        admin::run(shard, ctx, AdminRequest::DeleteAcls(all.clone())).await.into_iter().map(|(_, o)| o).collect()
    };
    let outcome_of = |acl: &AclBinding| {
        all.iter().position(|a| a == acl).and_then(|i| outcomes.get(i).cloned()).unwrap_or(Err(Error::ShuttingDown))
    };
    matched
        .into_iter()
        .map(|found| Ok(found.into_iter().map(|acl| (acl.clone(), outcome_of(&acl))).collect()))
        .collect()
}
