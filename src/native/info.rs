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

/// DescribeCluster: the cluster's brokers (each with its listener of the name this
/// client connected to) and every topic the principal may describe, with each
/// partition's replicas, leader and in-sync replicas. A broker alone answers as broker
/// 0, leader of everything, with an empty cluster id.
pub fn describe_cluster(
    shard: &Shard,
    (listener, (host, port), shard_ports): (&str, &(String, u16), &[u16]),
    ctx: &RequestContext,
) -> Response {
    use crate::metadata::acl::AclOperation;
    let refusal = |error| {
        Response::DescribeCluster(DescribeClusterResponse {
            error,
            cluster_id: String::new(),
            node_id: 0,
            controller: -1,
            brokers: Vec::new(),
            topics: Vec::new(),
        })
    };
    if let Err(error) = crate::service::authorize::check_cluster(shard, ctx, AclOperation::Describe) {
        return refusal(code(&error));
    }
    let state = shard.metadata();
    let ports =
        |ports: &[u16]| ports.iter().enumerate().map(|(s, &port)| ShardPort { shard: s as u32, port }).collect();
    let (cluster_id, node_id, controller, brokers) = match (&shard.config.cluster, shard.broker) {
        (Some(cluster), Some(node_id)) => {
            let brokers = state
                .brokers
                .values()
                .map(|broker| {
                    let native = broker.listeners.iter().find(|l| l.name == listener);
                    ClusterBroker {
                        id: broker.id,
                        epoch: broker.epoch,
                        fenced: u8::from(broker.fenced),
                        rack: broker.rack.clone().unwrap_or_default(),
                        host: native.map(|l| l.host.clone()).unwrap_or_default(),
                        port: native.map_or(0, |l| l.port),
                        shard_ports: native.map(|l| ports(&l.shard_ports)).unwrap_or_default(),
                    }
                })
                .collect();
            let controller = shard.quorum_leader().map_or(-1, |leader| leader as i32);
            (cluster.cluster_id.clone(), node_id, controller, brokers)
        }
        _ => {
            let broker = ClusterBroker {
                id: 0,
                epoch: 0,
                fenced: 0,
                rack: String::new(),
                host: host.clone(),
                port: *port,
                shard_ports: ports(shard_ports),
            };
            (String::new(), 0, 0, vec![broker])
        }
    };
    let topics = state
        .topics
        .values()
        .filter(|topic| crate::service::authorize::may_describe_topic(shard, ctx, &topic.name))
        .map(|topic| TopicLayout {
            name: topic.name.clone(),
            partitions: (0..topic.partitions())
                .map(|index| match (shard.broker, topic.replicas.get(index as usize)) {
                    (Some(_), Some(layout)) => PartitionLayout {
                        partition: index,
                        leader: layout.leader.map_or(-1, |leader| leader as i32),
                        leader_epoch: layout.leader_epoch,
                        replicas: layout
                            .replicas
                            .iter()
                            .map(|replica| ReplicaPlace { broker: replica.broker, shard: replica.shard })
                            .collect(),
                        isr: layout.isr.clone(),
                    },
                    (Some(_), None) => PartitionLayout {
                        partition: index,
                        leader: -1,
                        leader_epoch: 0,
                        replicas: Vec::new(),
                        isr: Vec::new(),
                    },
                    (None, _) => PartitionLayout {
                        partition: index,
                        leader: 0,
                        leader_epoch: 0,
                        replicas: vec![ReplicaPlace { broker: 0, shard: topic.placement[index as usize] }],
                        isr: vec![0],
                    },
                })
                .collect(),
        })
        .collect();
    Response::DescribeCluster(DescribeClusterResponse {
        error: ErrorCode::None,
        cluster_id,
        node_id,
        controller,
        brokers,
        topics,
    })
}
