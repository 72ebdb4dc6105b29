//! The types of the service's operations that cross the mesh between shards: each
//! partition's work with its slot, and what produce, fetch, list offsets and admin
//! requests take and answer. A leaf: `shard::message` carries these without
//! importing the operations themselves.

use super::error::Error;
use crate::partition::TopicPartition;
use crate::storage::Setting;
use bytes::Bytes;
use std::cell::Cell;

/// One partition's work, and its place in the answer.
#[derive(Debug)]
pub struct Slotted<T> {
    pub slot: usize,
    pub tp: TopicPartition,
    pub item: T,
}

/// Where a partition's first appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub base_offset: i64,
    /// The broker's clock stamped into the batch (-1 unless the topic uses
    /// log-append time).
    pub log_append_time_ms: i64,
}

/// What a forwarded produce answers, by slot.
pub type ProduceAnswers = Vec<(usize, Result<Produced, Error>)>;

/// How long a fetch may wait and how much it may return, in all.
#[derive(Debug, Clone, Copy)]
pub struct FetchWait {
    pub max_wait_ms: u32,
    pub min_bytes: u32,
    pub max_bytes: u32,
}

/// Where to read one partition from, and how much of it.
#[derive(Debug, Clone, Copy)]
pub struct FetchFrom {
    pub offset: u64,
    pub max_bytes: u32,
}

/// What a forwarded fetch answers, by slot. Across shards the stored bytes travel as
/// `Bytes` (cached batches are shared, disk reads copied once).
pub type FetchAnswers = Vec<(usize, Result<SentFetched, Error>)>;

/// `Fetched` as it crosses the mesh.
#[derive(Debug)]
pub struct SentFetched {
    pub high_watermark: u64,
    pub log_start_offset: u64,
    pub chunks: Vec<Bytes>,
}

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The first offset stored.
    Earliest,
    /// The high watermark: the offset after the last readable record.
    Latest,
    /// The first record with a timestamp at or after this one (ms).
    Timestamp(i64),
    /// The record with the newest timestamp (KIP-734).
    MaxTimestamp,
    /// Where a leader epoch ends (OffsetForLeaderEpoch, KIP-279): the largest epoch at
    /// or below it and the offset the next one starts at (the log end for the latest).
    EpochEnd(i32),
}

/// Work on one partition's records and state, beyond reading and writing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionOp {
    /// Move the partition's start to this offset (DeleteRecords); `None` is the high
    /// watermark (Kafka's -1).
    DeleteBefore(Option<u64>),
    /// The idempotent producers the partition remembers.
    DescribeProducers,
}

/// What a `PartitionOp` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionAnswer {
    /// The partition's start after the deletion (Kafka's low watermark).
    Start(u64),
    Producers(Vec<crate::partition::producers::ProducerState>),
}

/// What a forwarded `PartitionOp` answers, by slot.
pub type PartitionAnswers = Vec<(usize, Result<PartitionAnswer, Error>)>;

/// An offset found, and the timestamp it was found by (-1 when not by timestamp).
/// `offset` is -1 when no batch is that recent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub offset: i64,
    pub timestamp: i64,
    /// The leader epoch the answer is of: the partition's current one, or for
    /// `EpochEnd` the epoch whose end it is (-1: none).
    pub leader_epoch: i32,
}

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: u32,
    pub settings: Vec<Setting>,
    /// Replicas of each partition; `None`: the broker's default
    /// (`cluster.default_replication_factor`, 1 on a broker alone).
    pub replication_factor: Option<u32>,
}

/// Settings of one topic to change: `set` ones take the given values, `reset` ones go
/// back to the broker's default.
#[derive(Debug, Clone)]
pub struct TopicAlteration {
    pub name: String,
    pub set: Vec<Setting>,
    pub reset: Vec<String>,
}

/// A topic to grow to `count` partitions.
#[derive(Debug, Clone)]
pub struct NewPartitions {
    pub name: String,
    pub count: u32,
}

/// One admin request: a list of topics, each changed in turn.
#[derive(Debug, Clone)]
pub enum AdminRequest {
    CreateTopics(Vec<NewTopic>),
    DeleteTopics(Vec<String>),
    AlterTopicConfigs(Vec<TopicAlteration>),
    CreatePartitions(Vec<NewPartitions>),
    /// Outcomes by user, in the order users first appear.
    AlterScramCredentials(Vec<ScramAlteration>),
    /// Outcomes by entry, named by their place in the request ("0", "1", …).
    CreateAcls(Vec<crate::metadata::acl::AclBinding>),
    /// Exact entries to remove (a filter's matches, found on the asking shard);
    /// outcomes named as CreateAcls's.
    DeleteAcls(Vec<crate::metadata::acl::AclBinding>),
    /// Outcomes by entry, named as CreateAcls's.
    AlterClientQuotas(Vec<(crate::metadata::quota::QuotaEntity, QuotaChanges)>),
    /// In a cluster: creates `__consumer_offsets` if it is missing (the first
    /// FindCoordinator for a group does, as Kafka's does); for any principal.
    EnsureOffsetsTopic,
}

/// A change to one user's SCRAM credential for one mechanism (Kafka's numbers: 1
/// SCRAM-SHA-256, 2 SCRAM-SHA-512), as KIP-554's AlterUserScramCredentials carries it.
#[derive(Debug, Clone)]
pub enum ScramAlteration {
    /// Set from the client's salted password; the broker keeps only the keys derived.
    Upsert {
        user: String,
        mechanism: i8,
        iterations: i32,
        salt: Bytes,
        salted_password: Bytes,
    },
    Delete {
        user: String,
        mechanism: i8,
    },
}

impl ScramAlteration {
    pub fn user(&self) -> &str {
        match self {
            ScramAlteration::Upsert { user, .. } | ScramAlteration::Delete { user, .. } => user,
        }
    }

    pub fn mechanism(&self) -> i8 {
        match self {
            ScramAlteration::Upsert { mechanism, .. } | ScramAlteration::Delete { mechanism, .. } => *mechanism,
        }
    }
}

impl AdminRequest {
    pub fn names(&self) -> Vec<String> {
        match self {
            AdminRequest::CreateTopics(topics) => topics.iter().map(|t| t.name.clone()).collect(),
            AdminRequest::DeleteTopics(names) => names.clone(),
            AdminRequest::AlterTopicConfigs(topics) => topics.iter().map(|t| t.name.clone()).collect(),
            AdminRequest::CreatePartitions(topics) => topics.iter().map(|t| t.name.clone()).collect(),
            AdminRequest::CreateAcls(entries) | AdminRequest::DeleteAcls(entries) => {
                (0..entries.len()).map(|i| i.to_string()).collect()
            }
            AdminRequest::AlterClientQuotas(entries) => (0..entries.len()).map(|i| i.to_string()).collect(),
            AdminRequest::EnsureOffsetsTopic => vec![crate::group::OFFSETS_TOPIC.to_string()],
            AdminRequest::AlterScramCredentials(alterations) => {
                let mut seen = std::collections::HashSet::new();
                alterations
                    .iter()
                    .filter(|alteration| seen.insert(alteration.user()))
                    .map(|alteration| alteration.user().to_string())
                    .collect()
            }
        }
    }
}

/// One entity's quota changes: each key set to a value or removed.
pub type QuotaChanges = Vec<(crate::metadata::quota::QuotaKey, Option<crate::metadata::quota::QuotaValue>)>;

/// Each topic's name and how its change went, in request order.
pub type TopicOutcomes = Vec<(String, Result<(), Error>)>;

/// How many ids one reservation in the metadata store covers.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// Shard 0's block of producer ids (`service::producer_ids`): `next` up to (not
/// including) `end`.
#[derive(Default)]
pub struct ProducerIds {
    next: Cell<i64>,
    end: Cell<i64>,
}

impl ProducerIds {
    /// The next id of the block, if the block has one left.
    pub fn take(&self) -> Option<i64> {
        let next = self.next.get();
        (next < self.end.get()).then(|| {
            self.next.set(next + 1);
            next
        })
    }

    pub fn has_room(&self) -> bool {
        self.next.get() < self.end.get()
    }

    /// Where the next reservation starts: after this block, and after every block the
    /// store has (`reserved_end`, its `producer_ids_end`).
    pub fn next_block_start(&self, reserved_end: i64) -> i64 {
        self.end.get().max(reserved_end)
    }

    /// Takes `start..end`, reserved in the store, as the block.
    pub fn adopt(&self, start: i64, end: i64) {
        self.next.set(start);
        self.end.set(end);
    }
}
