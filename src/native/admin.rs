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
use crate::storage::TopicConfig;
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
            Some(topic) => TopicConfigs { name, error: ErrorCode::None, entries: config_entries(&topic.config) },
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
        let config = match topic_config(&shard.live_config().topic_defaults, &topic.configs) {
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
        let config = match altered_config(&current, &shard.live_config().topic_defaults, &topic) {
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

/// `current` with `topic.reset` keys back at `defaults` and `topic.set` entries
/// applied; a key named twice is refused, as Kafka's IncrementalAlterConfigs does.
fn altered_config(
    current: &TopicConfig,
    defaults: &TopicConfig,
    topic: &AlterableTopic,
) -> Result<TopicConfig, String> {
    let mut seen = std::collections::HashSet::new();
    for key in topic.set.iter().map(|e| &e.key).chain(&topic.reset) {
        if !seen.insert(key.as_str()) {
            return Err(format!("topic setting {key:?} is named twice"));
        }
    }
    let default_entries = config_entries(defaults);
    let mut entries = Vec::with_capacity(topic.reset.len() + topic.set.len());
    for key in &topic.reset {
        match default_entries.iter().find(|e| &e.key == key) {
            Some(entry) => entries.push(entry.clone()),
            None => {
                let known: Vec<&str> = default_entries.iter().map(|e| e.key.as_str()).collect();
                return Err(format!("unknown topic setting {key:?}; known settings: {}", known.join(", ")));
            }
        }
    }
    entries.extend(topic.set.iter().cloned());
    topic_config(current, &entries)
}

/// Every key of `config` with its value as text, as [`topic_config`] reads it back
/// (retention keys `-1` for "keep forever"), in key order.
pub fn config_entries(config: &TopicConfig) -> Vec<ConfigEntry> {
    let serde_json::Value::Object(map) = serde_json::to_value(config).expect("topic config serializes") else {
        unreachable!("a struct serializes to an object")
    };
    let mut entries: Vec<ConfigEntry> = map
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::Null => "-1".to_string(),
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            ConfigEntry { key, value }
        })
        .collect();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries
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

/// A topic's configuration: the broker's `topic_defaults` with `entries` applied.
/// Keys are those of `[topic_defaults]` in the broker configuration; retention keys
/// take `-1` or `none` for "keep forever", as Kafka's `retention.ms = -1`.
pub fn topic_config(defaults: &TopicConfig, entries: &[ConfigEntry]) -> Result<TopicConfig, String> {
    let serde_json::Value::Object(mut map) = serde_json::to_value(defaults).expect("topic config serializes") else {
        unreachable!("a struct serializes to an object")
    };
    for entry in entries {
        let key = entry.key.as_str();
        if !map.contains_key(key) {
            let known: Vec<&str> = map.keys().map(String::as_str).collect();
            return Err(format!("unknown topic setting {key:?}; known settings: {}", known.join(", ")));
        }
        let value = entry.value.trim();
        let optional = key.starts_with("retention_");
        let numeric = optional || map[key].is_number();
        let parsed = if optional && (value == "-1" || value.eq_ignore_ascii_case("none")) {
            serde_json::Value::Null
        } else if let Ok(number) = value.parse::<u64>() {
            serde_json::Value::from(number)
        } else if numeric {
            let range = if optional { "-1 (no limit) or a whole number from 0" } else { "a whole number from 0" };
            return Err(format!("{key} = {value:?}: must be {range}"));
        } else {
            serde_json::Value::from(value)
        };
        map.insert(key.to_string(), parsed);
        // Each entry on its own, so that an error names its key.
        serde_json::from_value::<TopicConfig>(serde_json::Value::Object(map.clone()))
            .map_err(|error| format!("{key} = {value:?}: {error}"))?;
    }
    let config: TopicConfig = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|error| format!("bad topic setting: {error}"))?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> ConfigEntry {
        ConfigEntry { key: key.into(), value: value.into() }
    }

    #[test]
    fn bad_values_name_their_key_and_range() {
        let defaults = TopicConfig::default();
        let error = topic_config(&defaults, &[entry("retention_ms", "-5")]).unwrap_err();
        assert_eq!(error, "retention_ms = \"-5\": must be -1 (no limit) or a whole number from 0");
        let error = topic_config(&defaults, &[entry("segment_bytes", "big")]).unwrap_err();
        assert_eq!(error, "segment_bytes = \"big\": must be a whole number from 0");
        let error = topic_config(&defaults, &[entry("fsync", "sometimes")]).unwrap_err();
        assert!(error.starts_with("fsync = \"sometimes\": unknown variant"), "{error}");
    }

    #[test]
    fn topic_config_applies_entries_over_defaults() {
        let defaults = TopicConfig::default();
        let config = topic_config(
            &defaults,
            &[entry("fsync", "never"), entry("retention_ms", "-1"), entry("retention_bytes", "1048576")],
        )
        .unwrap();
        assert_eq!(config.fsync, crate::storage::FsyncPolicy::Never);
        assert_eq!(config.retention_ms, None);
        assert_eq!(config.retention_bytes, Some(1_048_576));
        assert_eq!(config.segment_bytes, defaults.segment_bytes);
    }

    #[test]
    fn config_entries_read_back_as_the_same_config() {
        let config = TopicConfig {
            fsync: crate::storage::FsyncPolicy::Interval,
            retention_ms: None,
            retention_bytes: Some(1 << 30),
            timestamp_source: crate::storage::TimestampSource::LogAppendTime,
            ..TopicConfig::default()
        };
        let entries = config_entries(&config);
        assert!(entries.windows(2).all(|w| w[0].key < w[1].key), "in key order");
        assert!(entries.contains(&entry("retention_ms", "-1")));
        assert!(entries.contains(&entry("fsync", "interval")));
        assert_eq!(topic_config(&TopicConfig::default(), &entries).unwrap(), config);
    }

    #[test]
    fn altered_config_sets_resets_and_refuses_whole() {
        let defaults = TopicConfig::default();
        let current = topic_config(&defaults, &[entry("fsync", "never"), entry("retention_bytes", "4096")]).unwrap();
        let alter = |set: Vec<ConfigEntry>, reset: Vec<&str>| {
            let topic = AlterableTopic { name: "t".into(), set, reset: reset.into_iter().map(String::from).collect() };
            altered_config(&current, &defaults, &topic)
        };
        let altered = alter(vec![entry("retention_ms", "-1")], vec!["fsync"]).unwrap();
        assert_eq!(altered.fsync, defaults.fsync, "reset to the broker's default");
        assert_eq!(altered.retention_ms, None);
        assert_eq!(altered.retention_bytes, Some(4096), "keys not named keep their value");
        let twice = alter(vec![entry("fsync", "always")], vec!["fsync"]).unwrap_err();
        assert!(twice.contains("named twice"), "{twice}");
        let unknown = alter(vec![], vec!["retention.ms"]).unwrap_err();
        assert!(unknown.contains("unknown topic setting"), "{unknown}");
        let bad = alter(vec![entry("retention_ms", "1"), entry("segment_bytes", "10")], vec![]).unwrap_err();
        assert!(bad.contains("segment_bytes"), "{bad}");
    }

    #[test]
    fn topic_config_refuses_unknown_keys_and_bad_values() {
        let defaults = TopicConfig::default();
        let unknown = topic_config(&defaults, &[entry("retention.ms", "1")]).unwrap_err();
        assert!(unknown.contains("unknown topic setting \"retention.ms\""), "{unknown}");
        let bad = topic_config(&defaults, &[entry("fsync", "sometimes")]).unwrap_err();
        assert!(bad.contains("sometimes"), "{bad}");
        let range = topic_config(&defaults, &[entry("segment_bytes", "10")]).unwrap_err();
        assert!(range.contains("segment_bytes"), "{range}");
    }
}
