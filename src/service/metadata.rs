//! Topics and their settings, answered from this shard's own copy of the metadata
//! (every shard holds the state shard 0 last applied everywhere).

use super::{Error, RequestContext};
use crate::shard::Shard;
use crate::storage::{config_entries, Setting};

/// Each topic asked for (every topic when `names` is `None`), with the shard that owns
/// each of its partitions, in partition order.
pub fn describe_topics(
    shard: &Shard,
    _ctx: &RequestContext,
    names: Option<Vec<String>>,
) -> Vec<(String, Result<Vec<u32>, Error>)> {
    let state = shard.metadata();
    let names = names.unwrap_or_else(|| state.topics.keys().cloned().collect());
    names
        .into_iter()
        .map(|name| {
            let placement = state.topics.get(&name).map(|topic| topic.placement.clone()).ok_or(Error::UnknownTopic);
            (name, placement)
        })
        .collect()
}

/// Each topic's settings, every key with its value as text, in key order.
pub fn describe_topic_configs(
    shard: &Shard,
    _ctx: &RequestContext,
    names: Vec<String>,
) -> Vec<(String, Result<Vec<Setting>, Error>)> {
    let state = shard.metadata();
    names
        .into_iter()
        .map(|name| {
            let settings =
                state.topics.get(&name).map(|topic| config_entries(&topic.config)).ok_or(Error::UnknownTopic);
            (name, settings)
        })
        .collect()
}
