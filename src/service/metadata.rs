//! Topics and their settings, answered from this shard's own copy of the metadata
//! (every shard holds the state shard 0 last applied everywhere).

use super::{authorize, Error, RequestContext};
use crate::metadata::acl::AclOperation;
use crate::shard::Shard;
use crate::storage::{config_entries, Setting};

/// Each topic asked for (every topic the principal may describe when `names` is
/// `None`), with the shard that owns each of its partitions, in partition order. A
/// topic named that the principal may not describe is TopicAuthorizationFailed,
/// whether or not it exists.
pub fn describe_topics(
    shard: &Shard,
    ctx: &RequestContext,
    names: Option<Vec<String>>,
) -> Vec<(String, Result<Vec<u32>, Error>)> {
    let state = shard.metadata();
    let Some(names) = names else {
        return state
            .topics
            .values()
            .filter(|topic| authorize::may_describe_topic(shard, ctx, &topic.name))
            .map(|topic| (topic.name.clone(), Ok(topic.placement.clone())))
            .collect();
    };
    let mut gate = authorize::TopicGate::new(shard, ctx, AclOperation::Describe);
    names
        .into_iter()
        .map(|name| {
            let placement = gate
                .check(&name)
                .and_then(|()| state.topics.get(&name).map(|topic| topic.placement.clone()).ok_or(Error::UnknownTopic));
            (name, placement)
        })
        .collect()
}

/// Each topic's settings, every key with its value as text, in key order.
pub fn describe_topic_configs(
    shard: &Shard,
    ctx: &RequestContext,
    names: Vec<String>,
) -> Vec<(String, Result<Vec<Setting>, Error>)> {
    let state = shard.metadata();
    let mut gate = authorize::TopicGate::new(shard, ctx, AclOperation::DescribeConfigs);
    names
        .into_iter()
        .map(|name| {
            let settings = gate.check(&name).and_then(|()| {
                state.topics.get(&name).map(|topic| config_entries(&topic.config)).ok_or(Error::UnknownTopic)
            });
            (name, settings)
        })
        .collect()
}
