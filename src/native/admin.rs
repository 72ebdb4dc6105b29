//! CreateTopics, DeleteTopics, AlterTopicConfigs and CreatePartitions, and
//! DescribeTopicConfigs. Shard 0 owns the metadata store: other shards forward the
//! changes to it (DescribeTopicConfigs is answered from any shard's copy). Shard 0 runs one admin command at a time, writes it to the
//! store (blocking I/O, off the event loop), applies the new state to itself and then
//! to every other shard, and answers only once every shard has opened or closed its
//! logs.

use super::errors::metadata_code;
use crate::metadata::{place_partitions, Command, MetadataError, MetadataState, PARTITIONS_MAX};
use crate::shard::capacity::CapacityError;
use crate::shard::{OpenFailure, OpenFailureCause, Shard, ShardMessage};
use crate::storage::{altered_config, config_entries, topic_config, Setting};
use futures_channel::oneshot;
use std::rc::Rc;
use std::sync::Arc;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Request, Response};

/// Runs an admin request (CreateTopics, DeleteTopics, AlterTopicConfigs,
/// CreatePartitions) on shard 0, which owns the metadata store: here when this is
/// shard 0, else forwarded there.
pub async fn handle_anywhere(shard: &Rc<Shard>, request: Request) -> Response {
    if shard.id == 0 {
        return handle(shard, request).await;
    }
    let gone = not_ready(&request);
    let (reply, receiver) = oneshot::channel();
    shard.forward(0, ShardMessage::Admin { request, reply }).await;
    receiver.await.unwrap_or(gone)
}

/// On shard 0: runs one admin request.
pub async fn handle(shard: &Rc<Shard>, request: Request) -> Response {
    match request {
        Request::CreateTopics(request) => Response::CreateTopics(create_topics(shard, request).await),
        Request::DeleteTopics(request) => Response::DeleteTopics(delete_topics(shard, request).await),
        Request::AlterTopicConfigs(request) => Response::AlterTopicConfigs(alter_topic_configs(shard, request).await),
        Request::CreatePartitions(request) => Response::CreatePartitions(create_partitions(shard, request).await),
        other => unreachable!("not an admin request: {:?}", other.api_key()),
    }
}

/// The answer to `request` when shard 0 is gone (the broker is shutting down).
fn not_ready(request: &Request) -> Response {
    let results = |names: Vec<&String>| -> Vec<TopicResult> {
        let message = "the broker is shutting down".to_string();
        names
            .into_iter()
            .map(|name| TopicResult { name: name.clone(), error: ErrorCode::NotReady, message: message.clone() })
            .collect()
    };
    match request {
        Request::CreateTopics(r) => Response::CreateTopics(CreateTopicsResponse {
            results: results(r.topics.iter().map(|t| &t.name).collect()),
        }),
        Request::DeleteTopics(r) => {
            Response::DeleteTopics(DeleteTopicsResponse { results: results(r.names.iter().collect()) })
        }
        Request::AlterTopicConfigs(r) => Response::AlterTopicConfigs(AlterTopicConfigsResponse {
            results: results(r.topics.iter().map(|t| &t.name).collect()),
        }),
        Request::CreatePartitions(r) => Response::CreatePartitions(CreatePartitionsResponse {
            results: results(r.topics.iter().map(|t| &t.name).collect()),
        }),
        other => unreachable!("not an admin request: {:?}", other.api_key()),
    }
}

/// Each topic's configuration, from this shard's copy of the metadata (every shard
/// holds the state shard 0 last broadcast).
pub fn describe_topic_configs(shard: &Shard, request: DescribeTopicConfigsRequest) -> Response {
    let state = shard.metadata();
    let topics = request
        .names
        .into_iter()
        .map(|name| match state.topics.get(&name) {
            Some(topic) => TopicConfigs { name, error: ErrorCode::None, entries: wire_entries(config_entries(&topic.config)) },
            None => TopicConfigs { name, error: ErrorCode::UnknownTopic, entries: Vec::new() },
        })
        .collect();
    Response::DescribeTopicConfigs(DescribeTopicConfigsResponse { topics })
}

fn ok(name: String) -> TopicResult {
    TopicResult { name, error: ErrorCode::None, message: String::new() }
}

/// On shard 0: creates each topic in turn. A topic is answered success only once
/// every one of its partitions is open on its shard; before anything is created its
/// partitions are checked against the limits and what the broker has room for
/// (`shard::capacity`), and a topic some of whose partitions still fail to open is
/// deleted again, with the cause in its error.
pub async fn create_topics(shard: &Rc<Shard>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let _permit = shard.admin.acquire_permit(1).await;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let config = match topic_config(&shard.live_config().topic_defaults, &settings(&topic.configs)) {
            Ok(config) => config,
            Err(message) => {
                results.push(TopicResult { name: topic.name, error: ErrorCode::InvalidConfig, message });
                continue;
            }
        };
        if topic.partitions == 0 || topic.partitions > PARTITIONS_MAX {
            let error = MetadataError::InvalidPartitions { count: u64::from(topic.partitions) };
            results.push(TopicResult {
                name: topic.name,
                error: ErrorCode::InvalidPartitions,
                message: error.to_string(),
            });
            continue;
        }
        let state = shard.metadata();
        if let Err(error) = shard.check_new_partitions(&state, topic.partitions, topic.partitions, config.segment_bytes)
        {
            results.push(TopicResult { name: topic.name, error: capacity_code(&error), message: error.to_string() });
            continue;
        }
        let placement = place_partitions(&state, topic.partitions, shard.count);
        let command = Command::CreateTopic { name: topic.name.clone(), config, placement };
        let state = match submit(shard, command).await {
            Ok(state) => state,
            Err(error) => {
                results.push(TopicResult {
                    name: topic.name,
                    error: metadata_code(&error),
                    message: error.to_string(),
                });
                continue;
            }
        };
        let mut failures = broadcast(shard, state).await;
        failures.retain(|failure| failure.topic == topic.name);
        if failures.is_empty() {
            tracing::info!(topic = %topic.name, partitions = topic.partitions, "topic created");
            results.push(ok(topic.name));
            continue;
        }
        // Nothing is created: the partitions that did open are deleted with the topic.
        let undo = Command::DeleteTopic { name: topic.name.clone() };
        if let Ok(state) = submit(shard, undo).await {
            broadcast(shard, state).await;
        }
        results.push(not_opened(topic.name, topic.partitions, &failures));
    }
    CreateTopicsResponse { results }
}

/// The error of a creation undone because `failures` (of `count` new partitions)
/// could not be opened: the code and message of the first cause.
fn not_opened(name: String, count: u32, failures: &[OpenFailure]) -> TopicResult {
    let first = &failures[0];
    let error = match first.cause {
        OpenFailureCause::DiskFull => ErrorCode::DiskFull,
        OpenFailureCause::Descriptors => ErrorCode::ResourceLimit,
        OpenFailureCause::Storage => ErrorCode::StorageFailed,
    };
    let message = format!(
        "{} of {count} new partitions could not be opened (partition {}: {}); nothing was created",
        failures.len(),
        first.partition,
        first.reason
    );
    tracing::warn!(topic = %name, %message, "creation undone");
    TopicResult { name, error, message }
}

fn capacity_code(error: &CapacityError) -> ErrorCode {
    match error {
        CapacityError::TopicPartitions { .. } | CapacityError::BrokerPartitions { .. } => ErrorCode::InvalidPartitions,
        CapacityError::Disk { .. } => ErrorCode::DiskFull,
        CapacityError::Descriptors { .. } => ErrorCode::ResourceLimit,
    }
}

/// On shard 0: deletes each topic in turn; its data goes once every shard closed it.
pub async fn delete_topics(shard: &Rc<Shard>, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let _permit = shard.admin.acquire_permit(1).await;
    let mut results = Vec::with_capacity(request.names.len());
    let mut latest = None;
    for name in request.names {
        if name == crate::group::OFFSETS_TOPIC {
            let message = format!("{name} is internal: it holds the consumer groups' committed offsets");
            results.push(TopicResult { name, error: ErrorCode::InvalidTopicName, message });
            continue;
        }
        match submit(shard, Command::DeleteTopic { name: name.clone() }).await {
            Ok(state) => {
                tracing::info!(topic = %name, "topic deleted");
                latest = Some(state);
                results.push(ok(name));
            }
            Err(error) => results.push(TopicResult { name, error: metadata_code(&error), message: error.to_string() }),
        }
    }
    if let Some(state) = latest {
        // The topics are gone from every shard's metadata once this returns; their
        // files go in the background (`Shard::apply`).
        broadcast(shard, state).await;
    }
    DeleteTopicsResponse { results }
}

/// On shard 0: alters each topic's configuration in turn. A topic's changes apply
/// whole or not at all; open logs take the new policy once every shard has the new
/// metadata, and it survives restarts as any other metadata command.
pub async fn alter_topic_configs(shard: &Rc<Shard>, request: AlterTopicConfigsRequest) -> AlterTopicConfigsResponse {
    let _permit = shard.admin.acquire_permit(1).await;
    let mut results = Vec::with_capacity(request.topics.len());
    let mut latest: Option<Arc<MetadataState>> = None;
    for topic in request.topics {
        let name = topic.name.clone();
        if name == crate::group::OFFSETS_TOPIC {
            let message = format!("{name} is internal: its settings come from the broker's [groups] configuration");
            results.push(TopicResult { name, error: ErrorCode::InvalidTopicName, message });
            continue;
        }
        let state = latest.clone().unwrap_or_else(|| shard.metadata());
        let current = match state.topic(&name) {
            Ok(meta) => meta.config.clone(),
            Err(error) => {
                results.push(TopicResult { name, error: metadata_code(&error), message: error.to_string() });
                continue;
            }
        };
        let config = match altered_config(&current, &shard.live_config().topic_defaults, &settings(&topic.set), &topic.reset) {
            Ok(config) => config,
            Err(message) => {
                results.push(TopicResult { name, error: ErrorCode::InvalidConfig, message });
                continue;
            }
        };
        if config == current {
            results.push(ok(name));
            continue;
        }
        match submit(shard, Command::AlterTopicConfig { name: name.clone(), config }).await {
            Ok(state) => {
                let changes: Vec<String> = topic
                    .set
                    .iter()
                    .map(|e| format!("{}={}", e.key, e.value))
                    .chain(topic.reset.iter().map(|key| format!("{key} reset")))
                    .collect();
                tracing::info!(topic = %name, changes = %changes.join(", "), "topic configuration altered");
                latest = Some(state);
                results.push(ok(name));
            }
            Err(error) => results.push(TopicResult { name, error: metadata_code(&error), message: error.to_string() }),
        }
    }
    if let Some(state) = latest {
        broadcast(shard, state).await;
    }
    AlterTopicConfigsResponse { results }
}

/// On shard 0: grows each topic to its asked partition count, placing the new
/// partitions on the shards that own the fewest; they are open on every owning shard
/// before the answer.
pub async fn create_partitions(shard: &Rc<Shard>, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let _permit = shard.admin.acquire_permit(1).await;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name;
        if name == crate::group::OFFSETS_TOPIC {
            let message = format!("{name} is internal: it has one partition per shard, fixed when the broker first started, and groups hash onto them");
            results.push(TopicResult { name, error: ErrorCode::InvalidTopicName, message });
            continue;
        }
        let state = shard.metadata();
        let (current, segment_bytes) = match state.topic(&name) {
            Ok(meta) => (meta.partitions(), meta.config.segment_bytes),
            Err(error) => {
                results.push(TopicResult { name, error: metadata_code(&error), message: error.to_string() });
                continue;
            }
        };
        if topic.count > PARTITIONS_MAX {
            let error = MetadataError::InvalidPartitions { count: u64::from(topic.count) };
            results.push(TopicResult { name, error: ErrorCode::InvalidPartitions, message: error.to_string() });
            continue;
        }
        let added = topic.count.saturating_sub(current);
        if added > 0 {
            if let Err(error) = shard.check_new_partitions(&state, added, topic.count, segment_bytes) {
                results.push(TopicResult { name, error: capacity_code(&error), message: error.to_string() });
                continue;
            }
        }
        let placement = place_partitions(&state, added, shard.count);
        let state = match submit(shard, Command::AddPartitions { name: name.clone(), placement }).await {
            Ok(state) => state,
            Err(error) => {
                let message = match error {
                    MetadataError::PartitionsShrink { .. } => format!("{error}; asked for {}", topic.count),
                    _ => error.to_string(),
                };
                results.push(TopicResult { name, error: metadata_code(&error), message });
                continue;
            }
        };
        let mut failures = broadcast(shard, state).await;
        failures.retain(|failure| failure.topic == name && failure.partition >= current);
        if failures.is_empty() {
            tracing::info!(topic = %name, from = current, to = topic.count, "partitions added");
            results.push(ok(name));
            continue;
        }
        let undo = Command::RemovePartitions { name: name.clone(), count: added };
        if let Ok(state) = submit(shard, undo).await {
            broadcast(shard, state).await;
        }
        results.push(not_opened(name, added, &failures));
    }
    CreatePartitionsResponse { results }
}

/// Writes one command to the store, off the event loop; returns the new state.
async fn submit(shard: &Shard, command: Command) -> Result<Arc<MetadataState>, MetadataError> {
    let store = shard.store.clone().expect("admin commands run on shard 0, which holds the store");
    glommio::executor()
        .spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            store.submit(command).map(|state| Arc::new(state.clone()))
        })
        .await
}

/// Applies `state` here, then on every other shard, and waits for all of them;
/// returns the partitions any shard could not open.
async fn broadcast(shard: &Rc<Shard>, state: Arc<MetadataState>) -> Vec<OpenFailure> {
    let mut failures = shard.apply(state.clone()).await;
    let mut replies = Vec::new();
    for other in (0..shard.count).filter(|&other| other != shard.id) {
        let (reply, receiver) = oneshot::channel();
        shard.forward(other, ShardMessage::Apply { state: state.clone(), reply }).await;
        replies.push(receiver);
    }
    for receiver in replies {
        failures.extend(receiver.await.unwrap_or_default());
    }
    failures
}

fn settings(entries: &[ConfigEntry]) -> Vec<Setting> {
    entries.iter().map(|entry| (entry.key.clone(), entry.value.clone())).collect()
}

fn wire_entries(settings: Vec<Setting>) -> Vec<ConfigEntry> {
    settings.into_iter().map(|(key, value)| ConfigEntry { key, value }).collect()
}
