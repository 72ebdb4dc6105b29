//! ApiVersions and Metadata: answered from the shard's own copy of the metadata.

use super::errors::code;
use crate::service::{metadata, RequestContext};
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

/// The shards' ports (on the listener asked) and the topics asked for (all of them
/// when `all_topics` is 1).
pub fn metadata(shard: &Shard, shard_ports: &[u16], ctx: &RequestContext, request: MetadataRequest) -> Response {
    let names = (request.all_topics != 1).then_some(request.topics);
    let topics = metadata::describe_topics(shard, ctx, names)
        .into_iter()
        .map(|(name, placement)| match placement {
            Ok(placement) => TopicMetadata {
                error: ErrorCode::None,
                name,
                partitions: placement
                    .into_iter()
                    .enumerate()
                    .map(|(partition, shard)| PartitionMetadata { partition: partition as u32, shard })
                    .collect(),
            },
            Err(error) => TopicMetadata { error: code(&error), name, partitions: Vec::new() },
        })
        .collect();
    let shards = shard_ports.iter().enumerate().map(|(shard, &port)| ShardPort { shard: shard as u32, port }).collect();
    Response::Metadata(MetadataResponse { shards, topics })
}
