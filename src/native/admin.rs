//! CreateTopics, DeleteTopics, AlterTopicConfigs and CreatePartitions (run by the
//! service layer through shard 0), and DescribeTopicConfigs (from the shard's copy of
//! the metadata): the native messages to and from the service's types.

use super::errors::{code, code_and_message};
use crate::service::admin::{self, AdminRequest, NewPartitions, NewTopic, TopicAlteration, TopicOutcomes};
use crate::service::{metadata, RequestContext};
use crate::shard::Shard;
use crate::storage::Setting;
use std::rc::Rc;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Response};

pub async fn create_topics(shard: &Rc<Shard>, ctx: &RequestContext, request: CreateTopicsRequest) -> Response {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            // `replication_factor` rides with the settings (SPEC.md, CreateTopics).
            let (factor, configs): (Vec<ConfigEntry>, Vec<ConfigEntry>) =
                t.configs.into_iter().partition(|entry| entry.key == "replication_factor");
            let replication_factor = factor.last().map(|entry| entry.value.trim().parse::<u32>().unwrap_or(0));
            NewTopic { name: t.name, partitions: t.partitions, settings: settings(configs), replication_factor }
        })
        .collect();
    let results = results(admin::run(shard, ctx, AdminRequest::CreateTopics(topics)).await);
    Response::CreateTopics(CreateTopicsResponse { results })
}

pub async fn delete_topics(shard: &Rc<Shard>, ctx: &RequestContext, request: DeleteTopicsRequest) -> Response {
    let results = results(admin::run(shard, ctx, AdminRequest::DeleteTopics(request.names)).await);
    Response::DeleteTopics(DeleteTopicsResponse { results })
}

pub async fn alter_topic_configs(
    shard: &Rc<Shard>,
    ctx: &RequestContext,
    request: AlterTopicConfigsRequest,
) -> Response {
    let topics = request
        .topics
        .into_iter()
        .map(|t| TopicAlteration { name: t.name, set: settings(t.set), reset: t.reset })
        .collect();
    let results = results(admin::run(shard, ctx, AdminRequest::AlterTopicConfigs(topics)).await);
    Response::AlterTopicConfigs(AlterTopicConfigsResponse { results })
}

pub async fn create_partitions(shard: &Rc<Shard>, ctx: &RequestContext, request: CreatePartitionsRequest) -> Response {
    let topics = request.topics.into_iter().map(|t| NewPartitions { name: t.name, count: t.count }).collect();
    let results = results(admin::run(shard, ctx, AdminRequest::CreatePartitions(topics)).await);
    Response::CreatePartitions(CreatePartitionsResponse { results })
}

fn results(outcomes: TopicOutcomes) -> Vec<TopicResult> {
    outcomes
        .into_iter()
        .map(|(name, outcome)| {
            let (error, message) = code_and_message(&outcome);
            TopicResult { name, error, message }
        })
        .collect()
}

/// Each topic's configuration, from this shard's copy of the metadata.
pub fn describe_topic_configs(shard: &Shard, ctx: &RequestContext, request: DescribeTopicConfigsRequest) -> Response {
    let topics = metadata::describe_topic_configs(shard, ctx, request.names)
        .into_iter()
        .map(|(name, settings)| match settings {
            Ok(settings) => TopicConfigs { name, error: ErrorCode::None, entries: entries(settings) },
            Err(error) => TopicConfigs { name, error: code(&error), entries: Vec::new() },
        })
        .collect();
    Response::DescribeTopicConfigs(DescribeTopicConfigsResponse { topics })
}

fn settings(entries: Vec<ConfigEntry>) -> Vec<Setting> {
    entries.into_iter().map(|entry| (entry.key, entry.value)).collect()
}

fn entries(settings: Vec<Setting>) -> Vec<ConfigEntry> {
    settings.into_iter().map(|(key, value)| ConfigEntry { key, value }).collect()
}
