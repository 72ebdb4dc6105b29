//! Topic administration on the Kafka listener: CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and
//! DescribeCluster, through the same service functions as the native protocol's,
//! with Kafka's config names (`configs`).
//!
//! One broker: a replication factor other than 1 (or -1, the default) is refused
//! with INVALID_REPLICATION_FACTOR, a manual replica assignment with
//! INVALID_REQUEST. `validate_only` checks the names, counts and configs and changes
//! nothing.

use super::configs::{strand_key, to_kafka, to_strand};
use super::errors::{client_message, kafka_error};
use super::Kafka;
use crate::service::admin::{self, AdminRequest, NewPartitions, NewTopic, TopicAlteration};
use crate::service::{metadata as topics, Error, RequestContext};
use crate::storage::{altered_config, config_entries, topic_config, Setting};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// Kafka's resource types in config requests.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// A failure's code and message for the client.
type Failure = (ResponseError, Option<String>);

fn failure(error: &Error) -> Failure {
    (kafka_error(error), client_message(error))
}

fn invalid_config(message: String) -> Failure {
    (ResponseError::InvalidConfig, Some(message))
}

/// Strand settings for Kafka config entries (fixed ones left out).
fn settings<'a>(entries: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> Result<Vec<Setting>, Failure> {
    let mut out = Vec::new();
    for (name, value) in entries {
        let Some(value) = value else {
            return Err(invalid_config(format!(
                "{name}: a null value (to reset a config, use IncrementalAlterConfigs)"
            )));
        };
        if let Some(setting) = to_strand(name, value).map_err(invalid_config)? {
            out.push(setting);
        }
    }
    Ok(out)
}

/// Runs one admin request on shard 0 and returns each topic's outcome.
async fn run(kafka: &Kafka, ctx: &RequestContext, request: AdminRequest) -> Vec<Result<(), Failure>> {
    admin::run(&kafka.shard, ctx, request)
        .await
        .into_iter()
        .map(|(_, outcome)| outcome.map_err(|e| failure(&e)))
        .collect()
}

pub async fn create_topics(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let defaults = kafka.shard.live_config().topic_defaults.clone();
    let default_partitions = kafka.shard.config.kafka.auto_create_partitions;
    // Each topic checked here first; those that pass go to the service together.
    let checked: Vec<Result<NewTopic, Failure>> = request
        .topics
        .iter()
        .map(|topic| {
            let replication_factor = match (topic.replication_factor, kafka.shard.broker) {
                (-1, _) => None,
                (1, None) => Some(1),
                (n, None) => {
                    let message = format!("replication factor {n}: one broker holds one replica");
                    return Err((ResponseError::InvalidReplicationFactor, Some(message)));
                }
                (n, Some(_)) if n >= 1 => Some(n as u32),
                (n, Some(_)) => {
                    let message = format!("replication factor {n}: at least 1, or -1 for the default");
                    return Err((ResponseError::InvalidReplicationFactor, Some(message)));
                }
            };
            if !topic.assignments.is_empty() {
                return Err((ResponseError::InvalidRequest, Some("manual replica assignment is not served".into())));
            }
            let partitions = match topic.num_partitions {
                -1 => default_partitions,
                n if n >= 1 => n as u32,
                n => return Err((ResponseError::InvalidPartitions, Some(format!("{n} partitions: at least 1")))),
            };
            let settings = settings(topic.configs.iter().map(|c| (c.name.as_str(), c.value.as_deref())))?;
            topic_config(&defaults, &settings).map_err(invalid_config)?;
            Ok(NewTopic { name: topic.name.0.to_string(), partitions, settings, replication_factor })
        })
        .collect();
    let mut outcomes: Vec<Result<(), Failure>> = Vec::with_capacity(checked.len());
    if request.validate_only {
        let state = kafka.shard.metadata();
        for topic in &checked {
            outcomes.push(match topic {
                Err(failure) => Err(failure.clone()),
                Ok(topic) => match crate::metadata::validate_topic_name(&topic.name) {
                    Err(error) => Err(failure(&Error::from(error))),
                    Ok(()) if state.topics.contains_key(&topic.name) => {
                        Err((ResponseError::TopicAlreadyExists, Some(format!("topic {} exists", topic.name))))
                    }
                    Ok(()) => Ok(()),
                },
            });
        }
    } else {
        let valid: Vec<NewTopic> = checked.iter().filter_map(|t| t.as_ref().ok().cloned()).collect();
        let mut created = run(kafka, ctx, AdminRequest::CreateTopics(valid)).await.into_iter();
        for topic in &checked {
            outcomes.push(match topic {
                Err(failure) => Err(failure.clone()),
                Ok(_) => created.next().unwrap_or(Err((ResponseError::UnknownServerError, None))),
            });
        }
    }
    let state = kafka.shard.metadata();
    let mut response = CreateTopicsResponse::default();
    response.topics = request
        .topics
        .iter()
        .zip(outcomes)
        .map(|(topic, outcome)| {
            let mut result = CreatableTopicResult::default();
            result.name = topic.name.clone();
            match outcome {
                Err((error, message)) => {
                    result.error_code = error.code();
                    result.error_message = message.map(|m| text(&m));
                    result.num_partitions = -1;
                    result.replication_factor = -1;
                }
                Ok(()) if version >= 5 => {
                    result.replication_factor = 1;
                    match state.topics.get(topic.name.as_str()) {
                        Some(meta) => {
                            result.topic_id = uuid::Uuid::from_bytes(meta.uuid().0);
                            result.num_partitions = meta.partitions() as i32;
                            let defaults = config_entries(&defaults);
                            let entries = config_entries(&meta.config);
                            result.configs = Some(
                                described(&entries, &defaults)
                                    .into_iter()
                                    .map(|(name, value, read_only, source)| {
                                        let mut config = CreatableTopicConfigs::default();
                                        config.name = text(&name);
                                        config.value = Some(text(&value));
                                        config.read_only = read_only;
                                        config.config_source = source;
                                        config
                                    })
                                    .collect(),
                            );
                        }
                        // validate_only: what it would have.
                        None => result.num_partitions = checked_partitions(topic, kafka),
                    }
                }
                Ok(()) => {}
            }
            result
        })
        .collect();
    response
}

fn checked_partitions(topic: &create_topics_request::CreatableTopic, kafka: &Kafka) -> i32 {
    if topic.num_partitions == -1 {
        kafka.shard.config.kafka.auto_create_partitions as i32
    } else {
        topic.num_partitions
    }
}

/// Kafka config entries of a topic: (name, value, read-only, source).
fn described(entries: &[Setting], defaults: &[Setting]) -> Vec<(String, String, bool, i8)> {
    let kafka_defaults = to_kafka(defaults);
    to_kafka(entries)
        .into_iter()
        .map(|(name, value, read_only)| {
            let is_default = kafka_defaults.iter().any(|(n, v, _)| *n == name && *v == value);
            let source = if is_default || read_only { SOURCE_DEFAULT } else { SOURCE_TOPIC };
            (name, value, read_only, source)
        })
        .collect()
}

pub async fn delete_topics(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let state = kafka.shard.metadata();
    // v6 names topics by name or id; earlier versions by name.
    let asked: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match &t.name {
                Some(name) => (Some(name.0.to_string()), t.topic_id),
                None => (kafka.topic_by_id(&state, t.topic_id).map(|m| m.name.clone()), t.topic_id),
            })
            .collect()
    } else {
        request.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    let names: Vec<String> = asked.iter().filter_map(|(name, _)| name.clone()).collect();
    let mut deleted = run(kafka, ctx, AdminRequest::DeleteTopics(names)).await.into_iter();
    let mut response = DeleteTopicsResponse::default();
    response.responses = asked
        .into_iter()
        .map(|(name, id)| {
            let mut result = DeletableTopicResult::default();
            result.topic_id = id;
            let outcome = match &name {
                Some(_) => deleted.next().unwrap_or(Err((ResponseError::UnknownServerError, None))),
                None => Err((ResponseError::UnknownTopicId, None)),
            };
            result.name = name.map(|n| TopicName(text(&n)));
            if let Err((error, message)) = outcome {
                result.error_code = error.code();
                if version >= 5 {
                    result.error_message = message.map(|m| text(&m));
                }
            }
            result
        })
        .collect();
    response
}

pub async fn create_partitions(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let state = kafka.shard.metadata();
    let checked: Vec<Result<NewPartitions, Failure>> = request
        .topics
        .iter()
        .map(|topic| {
            if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
                return Err((ResponseError::InvalidRequest, Some("manual replica assignment is not served".into())));
            }
            let count = u32::try_from(topic.count)
                .map_err(|_| (ResponseError::InvalidPartitions, Some(format!("{} partitions", topic.count))))?;
            Ok(NewPartitions { name: topic.name.0.to_string(), count })
        })
        .collect();
    let outcomes: Vec<Result<(), Failure>> = if request.validate_only {
        checked
            .iter()
            .map(|topic| {
                let topic = topic.as_ref().map_err(Clone::clone)?;
                match state.topics.get(&topic.name) {
                    None => Err((ResponseError::UnknownTopicOrPartition, None)),
                    Some(meta) if topic.count <= meta.partitions() => Err((
                        ResponseError::InvalidPartitions,
                        Some(format!("{} has {} partitions; a topic only grows", topic.name, meta.partitions())),
                    )),
                    Some(_) => Ok(()),
                }
            })
            .collect()
    } else {
        let valid: Vec<NewPartitions> = checked.iter().filter_map(|t| t.as_ref().ok().cloned()).collect();
        let mut grown = run(kafka, ctx, AdminRequest::CreatePartitions(valid)).await.into_iter();
        checked
            .iter()
            .map(|topic| match topic {
                Err(failure) => Err(failure.clone()),
                Ok(_) => grown.next().unwrap_or(Err((ResponseError::UnknownServerError, None))),
            })
            .collect()
    };
    let mut response = CreatePartitionsResponse::default();
    response.results = request
        .topics
        .iter()
        .zip(outcomes)
        .map(|(topic, outcome)| {
            let mut result = CreatePartitionsTopicResult::default();
            result.name = topic.name.clone();
            if let Err((error, message)) = outcome {
                result.error_code = error.code();
                result.error_message = message.map(|m| text(&m));
            }
            result
        })
        .collect();
    response
}

pub fn describe_configs(
    kafka: &Kafka,
    ctx: &RequestContext,
    version: i16,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let defaults = config_entries(&kafka.shard.live_config().topic_defaults);
    let mut response = DescribeConfigsResponse::default();
    response.results = request
        .resources
        .into_iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default();
            result.resource_type = resource.resource_type;
            result.resource_name = resource.resource_name.clone();
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => {
                    let name = resource.resource_name.to_string();
                    match topics::describe_topic_configs(&kafka.shard, ctx, vec![name]).pop() {
                        Some((_, Ok(entries))) => described(&entries, &defaults),
                        Some((_, Err(error))) => {
                            result.error_code = kafka_error(&error).code();
                            result.error_message = client_message(&error).map(|m| text(&m));
                            Vec::new()
                        }
                        None => Vec::new(),
                    }
                }
                // The broker's own configs are Strand's file, not Kafka's names.
                RESOURCE_BROKER => Vec::new(),
                other => {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message = Some(text(&format!("resource type {other} has no configs here")));
                    Vec::new()
                }
            };
            let wanted = resource.configuration_keys.map(|keys| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>());
            result.configs = entries
                .into_iter()
                .filter(|(name, ..)| wanted.as_ref().is_none_or(|keys| keys.contains(name)))
                .map(|(name, value, read_only, source)| {
                    let mut config = DescribeConfigsResourceResult::default();
                    config.name = text(&name);
                    config.value = Some(text(&value));
                    config.read_only = read_only;
                    config.config_source = source;
                    if version >= 3 {
                        config.config_type = config_type(&name);
                    }
                    config
                })
                .collect();
            result
        })
        .collect();
    response
}

/// Kafka's config type: 1 boolean, 2 string, 3 int, 4 short, 5 long.
fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" | "message.timestamp.type" | "fsync" => 2,
        "min.insync.replicas" | "index.interval.bytes" | "max.message.bytes" | "segment.bytes" => 3,
        _ => 5,
    }
}

/// A topic's alteration from Kafka config entries: `set` and `reset` in Strand's keys.
async fn alter(
    kafka: &Kafka,
    ctx: &RequestContext,
    alterations: Vec<(String, Result<TopicAlteration, Failure>)>,
    validate_only: bool,
) -> Vec<Result<(), Failure>> {
    let state = kafka.shard.metadata();
    let defaults = kafka.shard.live_config().topic_defaults.clone();
    if validate_only {
        return alterations
            .iter()
            .map(|(name, alteration)| {
                let alteration = alteration.as_ref().map_err(Clone::clone)?;
                let meta = state.topics.get(name).ok_or((ResponseError::UnknownTopicOrPartition, None))?;
                altered_config(&meta.config, &defaults, &alteration.set, &alteration.reset).map_err(invalid_config)?;
                Ok(())
            })
            .collect();
    }
    let valid: Vec<TopicAlteration> = alterations.iter().filter_map(|(_, a)| a.as_ref().ok().cloned()).collect();
    let mut altered = run(kafka, ctx, AdminRequest::AlterTopicConfigs(valid)).await.into_iter();
    alterations
        .into_iter()
        .map(|(_, alteration)| match alteration {
            Err(failure) => Err(failure),
            Ok(_) => altered.next().unwrap_or(Err((ResponseError::UnknownServerError, None))),
        })
        .collect()
}

fn topic_resource(resource_type: i8, name: &StrBytes) -> Result<String, Failure> {
    if resource_type == RESOURCE_TOPIC {
        Ok(name.to_string())
    } else {
        Err((
            ResponseError::InvalidRequest,
            Some(format!("resource type {resource_type}: only topics are altered here")),
        ))
    }
}

/// Each resource's answer as `$result`: AlterConfigs and IncrementalAlterConfigs answer
/// with the same fields in two types.
macro_rules! resource_results {
    ($result:ty, $resources:expr, $outcomes:expr) => {
        $resources
            .iter()
            .zip($outcomes)
            .map(|(resource, outcome)| {
                let mut result = <$result>::default();
                result.resource_type = resource.resource_type;
                result.resource_name = resource.resource_name.clone();
                if let Err((error, message)) = outcome {
                    result.error_code = error.code();
                    result.error_message = message.map(|m| text(&m));
                }
                result
            })
            .collect()
    };
}

/// AlterConfigs: the topic's configs become exactly those given (the rest back at
/// their defaults), as Kafka's AlterConfigs replaces them.
pub async fn alter_configs(kafka: &Kafka, ctx: &RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let defaults = config_entries(&kafka.shard.live_config().topic_defaults);
    let alterations: Vec<(String, Result<TopicAlteration, Failure>)> = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let alteration = topic_resource(resource.resource_type, &resource.resource_name).and_then(|name| {
                let set = settings(resource.configs.iter().map(|c| (c.name.as_str(), c.value.as_deref())))?;
                let reset =
                    defaults.iter().map(|(key, _)| key.clone()).filter(|key| !set.iter().any(|(k, _)| k == key));
                Ok(TopicAlteration { name, set: set.clone(), reset: reset.collect() })
            });
            (name, alteration)
        })
        .collect();
    let outcomes = alter(kafka, ctx, alterations, request.validate_only).await;
    let mut response = AlterConfigsResponse::default();
    response.responses =
        resource_results!(alter_configs_response::AlterConfigsResourceResponse, request.resources, outcomes);
    response
}

/// Kafka's IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn incremental_alter_configs(
    kafka: &Kafka,
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let alterations: Vec<(String, Result<TopicAlteration, Failure>)> = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let alteration = topic_resource(resource.resource_type, &resource.resource_name).and_then(|name| {
                let mut alteration = TopicAlteration { name, set: Vec::new(), reset: Vec::new() };
                for config in &resource.configs {
                    match config.config_operation {
                        OP_SET => alteration.set.extend(settings(std::iter::once((
                            config.name.as_str(),
                            config.value.as_deref(),
                        )))?),
                        OP_DELETE => alteration.reset.extend(strand_key(config.name.as_str()).map_err(invalid_config)?),
                        other => {
                            return Err(invalid_config(format!(
                                "{}: operation {other} (APPEND, SUBTRACT) applies to list configs, which topics here have none of",
                                config.name.as_str()
                            )))
                        }
                    }
                }
                Ok(alteration)
            });
            (name, alteration)
        })
        .collect();
    let outcomes = alter(kafka, ctx, alterations, request.validate_only).await;
    let mut response = IncrementalAlterConfigsResponse::default();
    response.responses = resource_results!(IncrementalResult, request.resources, outcomes);
    response
}

/// DescribeCluster: this broker, for a principal that may describe the cluster.
pub fn describe_cluster(kafka: &Kafka, ctx: &RequestContext) -> DescribeClusterResponse {
    use crate::metadata::acl::AclOperation;
    if let Err(error) = crate::service::authorize::check_cluster(&kafka.shard, ctx, AclOperation::Describe) {
        let mut response = DescribeClusterResponse::default();
        response.error_code = kafka_error(&error).code();
        response.error_message = Some(text(&error.to_string()));
        return response;
    }
    let state = kafka.shard.metadata();
    let nodes = super::brokers::nodes(kafka, &state);
    let mut response = DescribeClusterResponse::default();
    response.controller_id = BrokerId(nodes[0].id);
    response.brokers = nodes
        .into_iter()
        .map(|node| {
            let mut broker = DescribeClusterBroker::default();
            broker.broker_id = BrokerId(node.id);
            broker.host = text(&node.host);
            broker.port = i32::from(node.port);
            broker.rack = node.rack.as_deref().map(text);
            broker
        })
        .collect();
    response.cluster_id = text(&super::metadata::cluster_id(kafka, &state));
    response.cluster_authorized_operations = super::metadata::OPERATIONS_OMITTED;
    response
}
