//! Metadata: this broker as the one node and leader of every partition, at the
//! advertised address; topics by name or (v10 and later) by id; topics a client names
//! created when missing, when `kafka.auto_create_topics` is on and the client allows
//! it (as Kafka's `auto.create.topics.enable`).

use super::errors::kafka_error;
use super::Kafka;
use crate::metadata::{MetadataState, TopicMeta};
use crate::service::admin::{self, AdminRequest, NewTopic};
use crate::service::{authorize, Error, RequestContext};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::sync::Arc;

/// Kafka's value for "authorized operations not asked for".
pub(super) const OPERATIONS_OMITTED: i32 = i32::MIN;

/// What a topic in a Metadata request asks for.
enum Wanted {
    Name(String),
    Id(uuid::Uuid),
}

/// Answers a Metadata request, creating the topics it names that are missing first
/// when allowed.
pub async fn handle(kafka: &Kafka, ctx: &RequestContext, version: i16, request: MetadataRequest) -> MetadataResponse {
    // v0: an empty list means every topic; later versions send null for that.
    let wanted: Option<Vec<Wanted>> = match request.topics {
        None => None,
        Some(topics) if version == 0 && topics.is_empty() => None,
        Some(topics) => Some(
            topics
                .into_iter()
                .map(|topic| match topic.name {
                    Some(name) => Wanted::Name(name.0.to_string()),
                    None => Wanted::Id(topic.topic_id),
                })
                .collect(),
        ),
    };
    let shard = &kafka.shard;
    let mut created: Vec<(String, Result<(), Error>)> = Vec::new();
    let allowed = version < 4 || request.allow_auto_topic_creation;
    if let (Some(wanted), true) = (&wanted, allowed && shard.config.kafka.auto_create_topics) {
        let state = shard.metadata();
        let missing: Vec<String> = wanted
            .iter()
            .filter_map(|want| match want {
                Wanted::Name(name)
                    if !state.topics.contains_key(name) && authorize::may_create_topic(shard, ctx, name) =>
                {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect();
        if !missing.is_empty() {
            created = auto_create(kafka, ctx, missing).await;
        }
    }
    let state = shard.metadata();
    let nodes = super::brokers::nodes(kafka, &state);
    let up: Vec<i32> = nodes.iter().map(|node| node.id).collect();
    let layout = |meta: &TopicMeta, index: u32| {
        let (leader, replicas, isr) = super::brokers::partition(kafka, meta, index);
        // A leader that is not up (fenced, its change not committed yet) is no leader.
        let epoch = super::brokers::leader_epoch(kafka, meta, index);
        (leader.filter(|id| up.contains(id)), replicas, isr, epoch)
    };
    let describe = |version, found, name| describe(version, found, name, &layout);
    let visible = |name: &str| authorize::may_describe_topic(shard, ctx, name);
    let topics = match wanted {
        // Every topic the principal may describe; the others are left out.
        None => state
            .topics
            .values()
            .filter(|meta| visible(&meta.name))
            .map(|meta| describe(version, Ok(meta), meta.name.clone()))
            .collect(),
        Some(wanted) => wanted
            .into_iter()
            .map(|want| match want {
                Wanted::Name(name) if !visible(&name) => {
                    describe(version, Err(ResponseError::TopicAuthorizationFailed), name)
                }
                Wanted::Name(name) => {
                    let found = state.topics.get(&name).ok_or_else(|| {
                        // A creation that failed says why; otherwise it is unknown.
                        created
                            .iter()
                            .find(|(created, _)| *created == name)
                            .and_then(|(_, outcome)| outcome.clone().err())
                            .map_or(ResponseError::UnknownTopicOrPartition, |error| kafka_error(&error))
                    });
                    describe(version, found, name)
                }
                Wanted::Id(id) => {
                    let found = kafka.topic_by_id(&state, id).filter(|meta| visible(&meta.name));
                    let name = found.map(|meta| meta.name.clone()).unwrap_or_default();
                    let mut topic = describe(version, found.ok_or(ResponseError::UnknownTopicId), name);
                    topic.topic_id = id;
                    if found.is_none() {
                        topic.name = None;
                    }
                    topic
                }
            })
            .collect(),
    };
    assemble(nodes, cluster_id(kafka, &state), topics)
}

/// The response around `topics`: the brokers (this one first, which is also the
/// controller clients send admin requests to), the cluster's id.
fn assemble(
    nodes: Vec<super::brokers::Node>,
    cluster_id: String,
    topics: Vec<MetadataResponseTopic>,
) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    response.controller_id = BrokerId(nodes[0].id);
    response.brokers = nodes
        .into_iter()
        .map(|node| {
            let mut broker = MetadataResponseBroker::default();
            broker.node_id = BrokerId(node.id);
            broker.host = StrBytes::from_string(node.host);
            broker.port = i32::from(node.port);
            broker.rack = node.rack.map(StrBytes::from_string);
            broker
        })
        .collect();
    response.cluster_id = Some(StrBytes::from_string(cluster_id));
    response.topics = topics;
    response
}

/// Creates `names` with the auto-creation defaults; each name's outcome.
pub async fn auto_create(kafka: &Kafka, ctx: &RequestContext, names: Vec<String>) -> Vec<(String, Result<(), Error>)> {
    let partitions = kafka.shard.config.kafka.auto_create_partitions;
    let topics = names
        .into_iter()
        .map(|name| NewTopic { name, partitions, settings: Vec::new(), replication_factor: None })
        .collect();
    let outcomes = admin::run(&kafka.shard, ctx, AdminRequest::CreateTopics(topics)).await;
    for (name, outcome) in &outcomes {
        match outcome {
            Ok(()) => tracing::info!(topic = %name, partitions, "created a topic a Kafka client asked for"),
            // Another request created it in the meantime: as good as created.
            Err(Error::Metadata(error)) if matches!(**error, crate::metadata::MetadataError::TopicExists(_)) => {}
            Err(error) => tracing::debug!(topic = %name, %error, "could not create a topic a Kafka client asked for"),
        }
    }
    outcomes
}

/// The cluster id Kafka clients see: `cluster.cluster_id` in a cluster; for a broker
/// alone, fixed for the life of the data directory (the id of `__consumer_offsets`,
/// created at its first start).
pub(super) fn cluster_id(kafka: &Kafka, state: &Arc<MetadataState>) -> String {
    if let Some(cluster) = &kafka.shard.config.cluster {
        return cluster.cluster_id.clone();
    }
    state.topics.get(crate::group::OFFSETS_TOPIC).map_or_else(|| "strand".to_string(), |meta| meta.uuid().to_string())
}

/// Each partition's leader (`None`: offline), replicas, in-sync replicas and leader
/// epoch.
type Layout<'a> = dyn Fn(&TopicMeta, u32) -> (Option<i32>, Vec<i32>, Vec<i32>, i32) + 'a;

fn describe(
    version: i16,
    found: Result<&TopicMeta, ResponseError>,
    name: String,
    layout: &Layout<'_>,
) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.name = Some(TopicName(StrBytes::from_string(name)));
    topic.topic_authorized_operations = OPERATIONS_OMITTED;
    match found {
        Err(error) => topic.error_code = error.code(),
        Ok(meta) => {
            topic.topic_id = uuid::Uuid::from_bytes(meta.uuid().0);
            topic.is_internal = meta.name == crate::group::OFFSETS_TOPIC;
            topic.partitions = (0..meta.partitions())
                .map(|index| {
                    let mut partition = MetadataResponsePartition::default();
                    partition.partition_index = index as i32;
                    let (leader, replicas, isr, epoch) = layout(meta, index);
                    partition.leader_id = BrokerId(leader.unwrap_or(-1));
                    if leader.is_none() {
                        partition.error_code = ResponseError::LeaderNotAvailable.code();
                    }
                    if version >= 7 {
                        partition.leader_epoch = epoch;
                    }
                    partition.replica_nodes = replicas.into_iter().map(BrokerId).collect();
                    partition.isr_nodes = isr.into_iter().map(BrokerId).collect();
                    partition
                })
                .collect();
        }
    }
    topic
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::TopicUuid;
    use kafka_protocol::protocol::Encodable;

    /// Every field set is one the version carries (the crate refuses to encode a
    /// field set that a version does not have).
    #[test]
    fn answers_encode_at_every_version_served() {
        let (_, min, max) = *super::super::versions::SUPPORTED
            .iter()
            .find(|(api, ..)| *api == kafka_protocol::messages::ApiKey::Metadata)
            .unwrap();
        let meta = TopicMeta {
            id: 1,
            name: crate::group::OFFSETS_TOPIC.into(),
            config: Default::default(),
            placement: vec![0, 1],
            uuid: Some(TopicUuid::random()),
            replicas: Vec::new(),
        };
        use super::super::brokers::NODE_ID;
        let layout = |_: &TopicMeta, _: u32| (Some(NODE_ID), vec![NODE_ID], vec![NODE_ID], 0);
        for version in min..=max {
            let topics = vec![
                describe(version, Ok(&meta), meta.name.clone(), &layout),
                describe(version, Err(ResponseError::UnknownTopicOrPartition), "gone".into(), &layout),
            ];
            let node = super::super::brokers::Node { id: 0, host: "127.0.0.1".into(), port: 9092, rack: None };
            let response = assemble(vec![node], "c".into(), topics);
            let mut out = Vec::new();
            response.encode(&mut out, version).unwrap_or_else(|error| panic!("v{version}: {error}"));
        }
    }
}
