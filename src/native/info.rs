//! ApiVersions and Metadata: answered from the shard's own copy of the metadata.

use crate::shard::Shard;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ApiKey, ErrorCode, Response, API_VERSION_MAX};

/// Every api this broker serves, with its versions.
pub fn api_versions() -> Response {
    let apis = ApiKey::ALL
        .iter()
        .map(|&api| ApiVersion { api_key: api as u16, min_version: 0, max_version: API_VERSION_MAX })
        .collect();
    Response::ApiVersions(ApiVersionsResponse { error: ErrorCode::None, apis })
}

/// The shards' ports and the topics asked for (all of them when `all_topics` is 1).
pub fn metadata(shard: &Shard, request: MetadataRequest) -> Response {
    let state = shard.metadata();
    let describe = |name: &String| match state.topics.get(name) {
        Some(topic) => TopicMetadata {
            error: ErrorCode::None,
            name: name.clone(),
            partitions: topic
                .placement
                .iter()
                .enumerate()
                .map(|(partition, &shard)| PartitionMetadata { partition: partition as u32, shard })
                .collect(),
        },
        None => TopicMetadata { error: ErrorCode::UnknownTopic, name: name.clone(), partitions: Vec::new() },
    };
    let topics = if request.all_topics == 1 {
        state.topics.keys().map(describe).collect()
    } else {
        request.topics.iter().map(describe).collect()
    };
    Response::Metadata(MetadataResponse { shards: shard.ports.clone(), topics })
}
