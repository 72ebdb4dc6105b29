//! `Client`: a handle on a broker or a cluster: its metadata (topics, which shard owns
//! each partition, each shard's port; in a cluster, which broker leads each partition
//! and where every broker is), its connections, and the admin operations.
//!
//! Shard-aware by default: a partition's requests go to its owning shard's port, so
//! the broker never forwards them between cores; in a cluster they go to the shard of
//! the partition's leader, on the leader's broker (learnt from DescribeCluster, asked
//! again with the metadata whenever a broker answers NotLeader). Clones share
//! everything.

use crate::connection::{Connection, Security};
use crate::error::{ClientError, Result};
use crate::security::{Credentials, TlsClient, TlsConfig};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strand_protocol::native::messages::*;
use strand_protocol::native::{ErrorCode, Request, Response};

/// Settings of a `Client`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout_ms: u64,
    /// How long a request may wait for its response (a fetch adds its `max_wait_ms`).
    pub request_timeout_ms: u64,
    /// Send each partition's requests to its owning shard's port.
    pub shard_aware: bool,
    /// TLS, for a listener whose security is `tls` or `sasl_tls`.
    pub tls: Option<TlsConfig>,
    /// SCRAM credentials, for a listener whose security is `sasl_plaintext` or
    /// `sasl_tls`: every connection authenticates before its first request.
    pub credentials: Option<Credentials>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            shard_aware: true,
            tls: None,
            credentials: None,
        }
    }
}

/// Where to start reading a partition, as ListOffsets resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    /// The high watermark: the offset after the last record a consumer can read.
    Latest,
    /// The first offset whose batch's max timestamp is at least this (ms).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => LIST_EARLIEST,
            OffsetSpec::Latest => LIST_LATEST,
            OffsetSpec::Timestamp(ms) => ms.max(0),
        }
    }
}

/// A topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    /// The shard owning each partition, by partition.
    pub shards: Vec<u32>,
}

/// A cluster as DescribeCluster tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// Empty for a broker alone.
    pub cluster_id: String,
    /// The broker that answered.
    pub node_id: u32,
    /// The metadata quorum's leader, when one is known.
    pub controller: Option<u32>,
    pub brokers: Vec<BrokerDescription>,
    /// Every topic, by name, with its partitions' leaders and replicas.
    pub topics: Vec<TopicLayout>,
}

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerDescription {
    pub id: u32,
    /// Its incarnation (new at each start).
    pub epoch: u64,
    /// Fenced: down, or not yet caught up; it leads nothing.
    pub fenced: bool,
    pub rack: Option<String>,
    /// Its listener of the name this client connected to (`host:port`), if any.
    pub address: Option<String>,
    /// That listener's port on each shard.
    pub shard_ports: Vec<u16>,
}

/// A topic's partitions as the cluster places them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    pub name: String,
    pub partitions: Vec<PartitionLayout>,
}

/// One partition: its leader (`None`: offline), leader epoch, replicas as (broker,
/// shard), the first the preferred leader, and in-sync replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    pub partition: u32,
    pub leader: Option<u32>,
    pub leader_epoch: u32,
    pub replicas: Vec<(u32, u32)>,
    pub isr: Vec<u32>,
}

impl PartitionLayout {
    /// Fewer replicas in sync than there are replicas.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

#[derive(Default)]
struct Cluster {
    shard_ports: HashMap<u32, u16>,
    topics: HashMap<String, Vec<u32>>,
    /// In a cluster: where each broker's shards are.
    brokers: HashMap<u32, Vec<SocketAddr>>,
    /// In a cluster: each partition's leader and the shard of its replica there.
    leaders: HashMap<String, Vec<Option<(u32, u32)>>>,
}

struct Inner {
    bootstrap: SocketAddr,
    config: ClientConfig,
    security: Security,
    connections: Mutex<HashMap<SocketAddr, Arc<Connection>>>,
    cluster: Mutex<Cluster>,
}

/// A handle on a broker. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Client {
    /// Connects to the broker at `bootstrap` (`host:port`) and loads its metadata.
    /// Blocks the calling thread for the connection and one round trip.
    pub fn connect(bootstrap: &str) -> Result<Client> {
        Client::connect_with(bootstrap, ClientConfig::default())
    }

    /// `connect` with explicit settings.
    pub fn connect_with(bootstrap: &str, config: ClientConfig) -> Result<Client> {
        let address = bootstrap
            .to_socket_addrs()
            .map_err(|e| ClientError::Connect { address: bootstrap.to_string(), reason: e.to_string() })?
            .next()
            .ok_or_else(|| ClientError::Connect { address: bootstrap.into(), reason: "no address".into() })?;
        let host = bootstrap.rsplit_once(':').map_or(bootstrap, |(host, _)| host);
        let tls = config.tls.as_ref().map(|tls| TlsClient::new(tls, host)).transpose()?;
        let security = Security { tls, credentials: config.credentials.clone(), salted: Default::default() };
        let client = Client {
            inner: Arc::new(Inner {
                bootstrap: address,
                security,
                config,
                connections: Mutex::new(HashMap::new()),
                cluster: Mutex::new(Cluster::default()),
            }),
        };
        client.connection(address)?;
        futures_executor::block_on(client.refresh_metadata())?;
        Ok(client)
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The connection to `address`, opened (again) if needed.
    pub(crate) fn connection(&self, address: SocketAddr) -> Result<Arc<Connection>> {
        let mut connections = lock(&self.inner.connections);
        if let Some(connection) = connections.get(&address) {
            if connection.is_usable() {
                return Ok(connection.clone());
            }
        }
        let timeout = Duration::from_millis(self.inner.config.connect_timeout_ms);
        let connection = Connection::connect(address, timeout, &self.inner.security)?;
        connections.insert(address, connection.clone());
        Ok(connection)
    }

    /// The shard that owns a partition, from the cached metadata.
    pub fn shard_of(&self, topic: &str, partition: u32) -> Result<u32> {
        let cluster = lock(&self.inner.cluster);
        let shards = cluster.topics.get(topic).ok_or_else(|| ClientError::UnknownTopic(topic.to_string()))?;
        shards
            .get(partition as usize)
            .copied()
            .ok_or_else(|| ClientError::UnknownPartition { topic: topic.to_string(), partition })
    }

    /// The address requests for a partition go to: its shard's port when shard-aware;
    /// in a cluster, on its leader's broker (the bootstrap broker while it has none,
    /// which answers NotLeader).
    pub fn address_for(&self, topic: &str, partition: u32) -> Result<SocketAddr> {
        let shard = self.shard_of(topic, partition)?;
        {
            let cluster = lock(&self.inner.cluster);
            if let Some(leaders) = cluster.leaders.get(topic) {
                let leader = leaders.get(partition as usize).copied().flatten();
                let shards = leader.and_then(|(broker, shard)| Some((cluster.brokers.get(&broker)?, shard)));
                return Ok(match shards {
                    Some((shards, shard)) if self.inner.config.shard_aware => {
                        shards.get(1 + shard as usize).or(shards.first()).copied().unwrap_or(self.inner.bootstrap)
                    }
                    Some((shards, _)) => shards.first().copied().unwrap_or(self.inner.bootstrap),
                    None => self.inner.bootstrap,
                });
            }
        }
        if !self.inner.config.shard_aware {
            return Ok(self.inner.bootstrap);
        }
        let port = lock(&self.inner.cluster).shard_ports.get(&shard).copied();
        Ok(port.map_or(self.inner.bootstrap, |port| SocketAddr::new(self.inner.bootstrap.ip(), port)))
    }

    /// The connection for a partition's requests.
    pub(crate) fn connection_for(&self, topic: &str, partition: u32) -> Result<Arc<Connection>> {
        self.connection(self.address_for(topic, partition)?)
    }

    /// Sends `request` on the bootstrap connection and waits for the response.
    pub async fn request(&self, request: Request) -> Result<Response> {
        let connection = self.connection(self.inner.bootstrap)?;
        connection.send(&request, self.timeout()).await
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.inner.config.request_timeout_ms)
    }

    /// Reloads every topic's placement and every shard's port; in a cluster, every
    /// partition's leader and every broker's address too.
    pub async fn refresh_metadata(&self) -> Result<()> {
        let response = self.request(Request::Metadata(MetadataRequest { all_topics: 1, topics: Vec::new() })).await?;
        let Response::Metadata(metadata) = response else { return Err(unexpected(&response)) };
        // A broker that predates clusters does not serve DescribeCluster: it is alone.
        let layout = match self.describe_cluster().await {
            Ok(described) if !described.cluster_id.is_empty() => Some(described),
            _ => None,
        };
        let mut cluster = lock(&self.inner.cluster);
        cluster.brokers.clear();
        cluster.leaders.clear();
        if let Some(described) = layout {
            for broker in described.brokers.iter().filter(|b| !b.fenced) {
                let Some(address) = broker.address.as_deref().and_then(|a| a.to_socket_addrs().ok()?.next()) else {
                    continue;
                };
                let mut addresses = vec![address];
                addresses.extend(broker.shard_ports.iter().map(|&port| SocketAddr::new(address.ip(), port)));
                cluster.brokers.insert(broker.id, addresses);
            }
            for topic in described.topics {
                let leaders = topic
                    .partitions
                    .iter()
                    .map(|p| p.leader.and_then(|leader| p.replicas.iter().copied().find(|&(b, _)| b == leader)))
                    .collect();
                cluster.leaders.insert(topic.name, leaders);
            }
        }
        cluster.shard_ports = metadata.shards.iter().map(|s| (s.shard, s.port)).collect();
        cluster.topics = metadata
            .topics
            .into_iter()
            .filter(|t| t.error == ErrorCode::None)
            .map(|t| (t.name, t.partitions.iter().map(|p| p.shard).collect()))
            .collect();
        Ok(())
    }

    /// The cluster: its brokers, the quorum's leader, and every topic's partitions'
    /// leaders, replicas and in-sync replicas (a broker alone answers as broker 0).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let response = self.request(Request::DescribeCluster(DescribeClusterRequest {})).await?;
        let Response::DescribeCluster(described) = response else { return Err(unexpected(&response)) };
        if described.error != ErrorCode::None {
            return Err(ClientError::broker(described.error));
        }
        Ok(ClusterDescription {
            cluster_id: described.cluster_id,
            node_id: described.node_id,
            controller: u32::try_from(described.controller).ok(),
            brokers: described
                .brokers
                .into_iter()
                .map(|b| BrokerDescription {
                    id: b.id,
                    epoch: b.epoch,
                    fenced: b.fenced != 0,
                    rack: (!b.rack.is_empty()).then_some(b.rack),
                    address: (!b.host.is_empty()).then(|| format!("{}:{}", b.host, b.port)),
                    shard_ports: {
                        let mut ports: Vec<(u32, u16)> = b.shard_ports.iter().map(|p| (p.shard, p.port)).collect();
                        ports.sort();
                        ports.into_iter().map(|(_, port)| port).collect()
                    },
                })
                .collect(),
            topics: described
                .topics
                .into_iter()
                .map(|t| TopicLayout {
                    name: t.name,
                    partitions: t
                        .partitions
                        .into_iter()
                        .map(|p| PartitionLayout {
                            partition: p.partition,
                            leader: u32::try_from(p.leader).ok(),
                            leader_epoch: p.leader_epoch,
                            replicas: p.replicas.iter().map(|r| (r.broker, r.shard)).collect(),
                            isr: p.isr,
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    /// Partitions of `topic` as the last metadata said, without asking the broker.
    pub fn known_partitions(&self, topic: &str) -> Option<u32> {
        lock(&self.inner.cluster).topics.get(topic).map(|shards| shards.len() as u32)
    }

    /// Makes sure metadata knows `partition` of `topic`, asking the broker again if
    /// not (the topic may have grown since the last answer).
    pub async fn ensure_partition(&self, topic: &str, partition: u32) -> Result<()> {
        if self.shard_of(topic, partition).is_ok() {
            return Ok(());
        }
        self.refresh_metadata().await?;
        self.shard_of(topic, partition).map(|_| ())
    }

    /// Adds partitions to a topic so that it has `count` in all. Records with keys
    /// hash over the new count from then on, as with Kafka.
    pub async fn create_partitions(&self, topic: &str, count: u32) -> Result<()> {
        let topics = vec![PartitionsTopic { name: topic.to_string(), count }];
        let response = self.request(Request::CreatePartitions(CreatePartitionsRequest { topics })).await?;
        let Response::CreatePartitions(created) = response else { return Err(unexpected(&response)) };
        topic_result(created.results)?;
        self.refresh_metadata().await
    }

    /// Partitions of `topic`, loading metadata once if the topic is not known yet.
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(count) = self.known_partitions(topic) {
            return Ok(count);
        }
        self.refresh_metadata().await?;
        self.known_partitions(topic).ok_or_else(|| ClientError::UnknownTopic(topic.to_string()))
    }

    /// Every topic, by name.
    pub async fn topics(&self) -> Result<Vec<TopicDescription>> {
        self.refresh_metadata().await?;
        let cluster = lock(&self.inner.cluster);
        let mut topics: Vec<TopicDescription> = cluster
            .topics
            .iter()
            .map(|(name, shards)| TopicDescription { name: name.clone(), shards: shards.clone() })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// Creates a topic; `configs` are topic settings as `strand topic create` takes them
    /// (`fsync`, `retention_ms`, …).
    pub async fn create_topic(&self, name: &str, partitions: u32, configs: &[(&str, &str)]) -> Result<()> {
        let configs = configs.iter().map(|(k, v)| ConfigEntry { key: k.to_string(), value: v.to_string() }).collect();
        let topic = CreatableTopic { name: name.to_string(), partitions, configs };
        let response = self.request(Request::CreateTopics(CreateTopicsRequest { topics: vec![topic] })).await?;
        let Response::CreateTopics(created) = response else { return Err(unexpected(&response)) };
        topic_result(created.results)?;
        self.refresh_metadata().await
    }

    /// An id and epoch for an idempotent producer (InitProducerId). The broker gives a
    /// fresh id at epoch 0; `existing` names the id a producer gives up (KIP-360).
    pub async fn init_producer_id(&self, existing: Option<(i64, i16)>) -> Result<(i64, i16)> {
        let (producer_id, epoch) = existing.map_or((-1, -1), |(id, epoch)| (id, i32::from(epoch)));
        let response = self.request(Request::InitProducerId(InitProducerIdRequest { producer_id, epoch })).await?;
        let Response::InitProducerId(given) = response else { return Err(unexpected(&response)) };
        match given.error {
            ErrorCode::None => Ok((given.producer_id, given.epoch as i16)),
            code => Err(ClientError::broker(code)),
        }
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let response =
            self.request(Request::DeleteTopics(DeleteTopicsRequest { names: vec![name.to_string()] })).await?;
        let Response::DeleteTopics(deleted) = response else { return Err(unexpected(&response)) };
        topic_result(deleted.results)?;
        self.refresh_metadata().await
    }

    /// Changes a topic's configuration: each `(key, value)` of `set` takes its value
    /// and each key of `reset` goes back to the broker's default; the rest is kept.
    /// All of it applies, or none (a bad key or value is `InvalidConfig`).
    pub async fn alter_topic_config(&self, name: &str, set: &[(&str, &str)], reset: &[&str]) -> Result<()> {
        let set = set.iter().map(|(k, v)| ConfigEntry { key: k.to_string(), value: v.to_string() }).collect();
        let reset = reset.iter().map(|k| k.to_string()).collect();
        let topic = AlterableTopic { name: name.to_string(), set, reset };
        let response =
            self.request(Request::AlterTopicConfigs(AlterTopicConfigsRequest { topics: vec![topic] })).await?;
        let Response::AlterTopicConfigs(altered) = response else { return Err(unexpected(&response)) };
        topic_result(altered.results)
    }

    /// A topic's whole configuration, `(key, value)` in key order, values as text
    /// (retention keys `-1` for "keep forever").
    pub async fn describe_topic_config(&self, name: &str) -> Result<Vec<(String, String)>> {
        let request = Request::DescribeTopicConfigs(DescribeTopicConfigsRequest { names: vec![name.to_string()] });
        let response = self.request(request).await?;
        let Response::DescribeTopicConfigs(described) = response else { return Err(unexpected(&response)) };
        let topic = described
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol("DescribeTopicConfigs answered no topic".into()))?;
        match topic.error {
            ErrorCode::None => Ok(topic.entries.into_iter().map(|e| (e.key, e.value)).collect()),
            ErrorCode::UnknownTopic => Err(ClientError::UnknownTopic(topic.name)),
            code => Err(ClientError::broker(code)),
        }
    }

    /// Resolves `spec` to an offset of one partition (-1 when a timestamp is past
    /// every record).
    pub async fn list_offset(&self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<i64> {
        let request = Request::ListOffsets(ListOffsetsRequest {
            topics: vec![ListOffsetsTopic {
                name: topic.to_string(),
                partitions: vec![ListOffsetsPartition { partition, spec: spec.wire() }],
            }],
        });
        let connection = self.connection_for(topic, partition)?;
        let response = connection.send(&request, self.timeout()).await?;
        let Response::ListOffsets(list) = response else { return Err(unexpected(&response)) };
        let entry = list
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("ListOffsets answered no partition".into()))?;
        match entry.error {
            ErrorCode::None => Ok(entry.offset),
            ErrorCode::UnknownTopic => Err(ClientError::UnknownTopic(topic.to_string())),
            code => Err(ClientError::broker(code)),
        }
    }
}

fn topic_result(results: Vec<TopicResult>) -> Result<()> {
    let result = results.into_iter().next().ok_or_else(|| ClientError::Protocol("no result for the topic".into()))?;
    match result.error {
        ErrorCode::None => Ok(()),
        ErrorCode::UnknownTopic => Err(ClientError::UnknownTopic(result.name)),
        code => Err(ClientError::Broker { code, message: result.message }),
    }
}

pub(crate) fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected {:?} response", response.api_key()))
}
