//! The partition layer: what a shard serves a partition through. A `Partition` owns
//! what replication will change: the leader epoch stamped into appended batches, the
//! high watermark readers see, and what an acknowledgement waits for. `Logs` is the
//! shard's log manager: it opens, closes and deletes partitions as metadata changes.
//!
//! Handlers (the service layer, the group coordinator) talk to `Partition`, never to
//! the storage `Log` beneath it. On a single broker a partition leads in epoch
//! `LEADER_EPOCH`, its high watermark is the log's, and `acks = durable` waits for
//! the topic's fsync policy; with replication the same methods will stamp the Raft
//! term, return the replicated high watermark and wait for a quorum.
//!
//! Code map: `logs` (the log manager and what it could not open), `producers` (the
//! idempotent producer's sequence state per partition).

mod logs;
pub mod producers;
pub mod replica;

pub use logs::{remove_orphan_topic_dirs, topic_dir, Logs, OpenFailure, OpenFailureCause};

use crate::storage::{Appended, Batches, Log, Offsets, Result, StorageError, LEADER_EPOCH};
use bytes::BytesMut;
use producers::{last_sequence, ProducerError, Producers, StoredBatch, Verdict};
use std::cell::RefCell;
use std::rc::Rc;
use strand_protocol::batch::BatchHeader;

/// A partition of a topic, by name: the key of every per-partition operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> TopicPartition {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// What a produce waits for before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Nothing: the producer is not answered.
    None,
    /// The leader appended it (offsets assigned).
    Leader,
    /// The topic's durability policy is met (an fdatasync for `fsync = always`).
    Durable,
}

/// One partition held on this shard: led, or (in a cluster) followed.
pub struct Partition {
    tp: TopicPartition,
    /// The topic's id: a topic deleted and created again under its name gets a new
    /// id, and new partitions.
    topic_id: u64,
    /// Replaced when a follower truncates its tail (the log is reopened).
    log: RefCell<Rc<Log>>,
    /// The idempotent producers' last batches (`producers`).
    producers: RefCell<Producers>,
    /// In a cluster, for a partition with more than one replica: its role, epochs,
    /// in-sync replicas and replicated high watermark.
    replication: RefCell<Option<Rc<replica::Replication>>>,
    /// A follower's fetcher runs for this leader epoch (`cluster::replication`).
    pub(crate) fetching: std::cell::Cell<Option<i32>>,
}

/// Why a produced batch was not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

impl Partition {
    pub(crate) fn new(tp: TopicPartition, topic_id: u64, log: Rc<Log>) -> Partition {
        Partition {
            tp,
            topic_id,
            log: RefCell::new(log),
            producers: RefCell::default(),
            replication: RefCell::new(None),
            fetching: std::cell::Cell::new(None),
        }
    }

    /// The log beneath (a handle: a follower's truncation replaces it).
    pub fn log(&self) -> Rc<Log> {
        self.log.borrow().clone()
    }

    /// The replication state, for a replicated partition.
    pub fn replication(&self) -> Option<Rc<replica::Replication>> {
        self.replication.borrow().clone()
    }

    /// Adopts the metadata's placement of this replicated partition (`None`: not
    /// replicated).
    pub fn set_placement(&self, placement: Option<replica::Placement>) {
        let mut replication = self.replication.borrow_mut();
        match (placement, replication.as_ref()) {
            (None, _) => *replication = None,
            (Some(placement), Some(current)) => current.set_placement(placement),
            (Some(placement), None) => {
                // A replica starts from what its log holds durably, no further.
                let start = self.log().offsets().high_watermark;
                let follower = placement.role != replica::Role::Leader;
                let state = replica::Replication::new(placement, if follower { 0 } else { start });
                *replication = Some(Rc::new(state));
            }
        }
    }

    /// For `acks = all`: the in-sync replicas and the topic's `min_insync_replicas`,
    /// when there are fewer in sync (a replicated partition only).
    pub fn short_of_min_isr(&self) -> Option<(u32, u32)> {
        let replication = self.replication()?;
        let in_sync = replication.placement().isr.len() as u32;
        let required = self.log().config().min_insync_replicas;
        (in_sync < required).then_some((in_sync, required))
    }

    /// A follower's append of a batch its leader stored, kept as it is; an idempotent
    /// producer's batch is recorded as the leader recorded it, so that this replica,
    /// once it leads, answers that producer's retries as the old leader would have.
    pub async fn append_replica(&self, batch: BytesMut) -> Result<Appended> {
        let header = BatchHeader::parse(&batch).ok();
        let appended = self.log().append_replica(batch).await?;
        if let Some(header) = header.filter(|h| h.producer_id >= 0) {
            let first = header.base_sequence;
            let stored = StoredBatch {
                first_sequence: first,
                last_sequence: last_sequence(first, header.last_offset_delta.saturating_add(1)),
                base_offset: appended.base_offset,
                last_offset: appended.last_offset,
                max_timestamp: header.max_timestamp,
            };
            self.producers.borrow_mut().record(header.producer_id, header.producer_epoch, stored);
        }
        Ok(appended)
    }

    /// A follower's truncation: the log cut before `offset` and reopened; the
    /// idempotent producers' state rebuilt from what is left.
    pub async fn truncate_to(&self, offset: u64, retention_interval: std::time::Duration) -> Result<()> {
        let log = self.log();
        let (reopened, _) = log.truncate_to(offset).await?;
        reopened.start_retention(retention_interval);
        *self.log.borrow_mut() = reopened;
        self.rebuild_producers().await;
        Ok(())
    }

    pub fn tp(&self) -> &TopicPartition {
        &self.tp
    }

    pub fn topic_id(&self) -> u64 {
        self.topic_id
    }

    /// The epoch this shard leads the partition in, stamped into every batch it
    /// appends.
    pub fn leader_epoch(&self) -> i32 {
        self.replication().map_or(LEADER_EPOCH, |r| r.placement().leader_epoch)
    }

    /// Appends one validated batch, stamped with this partition's leader epoch;
    /// resolves once it has its offsets. Appends resolve in call order.
    pub async fn append(&self, batch: BytesMut) -> Result<Appended> {
        if let Some(replication) = self.replication() {
            let placement = replication.placement();
            if placement.role != replica::Role::Leader {
                return Err(StorageError::StaleEpoch { epoch: placement.leader_epoch, latest: placement.leader_epoch });
            }
        }
        self.log().append_leader(batch, self.leader_epoch()).await
    }

    /// Appends a batch a client produced: a batch of an idempotent producer (a
    /// producer id set) is checked against that producer's last batches first. A
    /// retry of a stored batch resolves with the offsets the original got, without a
    /// second copy; a gap or an older epoch is refused. Appends of one producer to
    /// one partition arrive in order (one connection's requests are sequenced, and a
    /// shard's forwarded appends are applied one message at a time).
    pub async fn append_produced(&self, batch: BytesMut) -> std::result::Result<Appended, AppendError> {
        let Ok(header) = BatchHeader::parse(&batch) else {
            // The log refuses it, saying why.
            return Ok(self.append(batch).await?);
        };
        if header.producer_id < 0 {
            return Ok(self.append(batch).await?);
        }
        let (id, epoch, first) = (header.producer_id, header.producer_epoch, header.base_sequence);
        let last = last_sequence(first, header.last_offset_delta.saturating_add(1));
        let verdict = self.producers.borrow().check(id, epoch, first, last)?;
        match verdict {
            Verdict::Duplicate(stored) => {
                tracing::debug!(log = %self.tp, producer = id, sequence = first, "a retried batch answered with its offsets");
                Ok(Appended {
                    base_offset: stored.base_offset,
                    last_offset: stored.last_offset,
                    log_append_time_ms: None,
                })
            }
            Verdict::Append => {
                let appended = self.append(batch).await?;
                let stored = StoredBatch {
                    first_sequence: first,
                    last_sequence: last,
                    base_offset: appended.base_offset,
                    last_offset: appended.last_offset,
                    max_timestamp: appended.log_append_time_ms.unwrap_or(header.max_timestamp),
                };
                self.producers.borrow_mut().record(id, epoch, stored);
                Ok(appended)
            }
        }
    }

    /// Rebuilds the idempotent producers' state from the batches at the log's tail
    /// (the last `producers::REBUILD_BYTES`, read by whole batches from
    /// `producers::REBUILD_OFFSETS` offsets before the end).
    pub async fn rebuild_producers(&self) {
        let offsets = self.log().offsets();
        let mut offset = offsets.end.saturating_sub(producers::REBUILD_OFFSETS).max(offsets.start);
        let mut read_bytes = 0usize;
        let mut producers = Producers::default();
        while offset < offsets.end && read_bytes < producers::REBUILD_BYTES {
            let Ok(read) = self.log().read(offset, 1 << 20).await else { break };
            if read.chunks.is_empty() || read.next_offset <= offset {
                break;
            }
            for chunk in &read.chunks {
                read_bytes += chunk.len();
                let mut at = 0;
                while let Ok(header) = BatchHeader::parse(&chunk[at..]) {
                    if header.producer_id >= 0 && header.base_offset >= 0 {
                        let first = header.base_sequence;
                        let stored = StoredBatch {
                            first_sequence: first,
                            last_sequence: last_sequence(first, header.last_offset_delta.saturating_add(1)),
                            base_offset: header.base_offset as u64,
                            last_offset: header.last_offset().max(0) as u64,
                            max_timestamp: header.max_timestamp,
                        };
                        producers.record(header.producer_id, header.producer_epoch, stored);
                    }
                    at += header.total_bytes();
                    if at >= chunk.len() {
                        break;
                    }
                }
            }
            offset = read.next_offset;
        }
        if !producers.is_empty() {
            tracing::debug!(log = %self.tp, producers = producers.len(), "idempotent producers' state rebuilt");
        }
        *self.producers.borrow_mut() = producers;
    }

    /// Waits until `appended` may be acknowledged under `acks`: for `Durable`, the
    /// topic's policy met here, and for a replicated partition the high watermark past
    /// it (every in-sync replica holds it under its own policy).
    pub async fn wait_acked(&self, appended: &Appended, acks: Acks) -> Result<()> {
        match acks {
            Acks::None | Acks::Leader => Ok(()),
            Acks::Durable => {
                let log = self.log();
                log.wait_policy(appended).await?;
                if let Some(replication) = self.replication() {
                    replication.update_high_watermark(log.offsets().high_watermark);
                    replication.wait_high_watermark(appended.last_offset + 1).await;
                }
                Ok(())
            }
        }
    }

    /// The offset below which consumers may read.
    pub fn high_watermark(&self) -> u64 {
        self.offsets().high_watermark
    }

    /// The log's start, end, durable offset and high watermark (the replicated one
    /// for a replicated partition).
    pub fn offsets(&self) -> Offsets {
        let mut offsets = self.log().offsets();
        if let Some(replication) = self.replication() {
            offsets.high_watermark = replication.high_watermark().min(offsets.end);
        }
        offsets
    }

    /// Whole stored batches from `offset`, up to about `max_bytes`, never past the
    /// high watermark.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> Result<Batches> {
        let log = self.log();
        match self.replication() {
            Some(replication) => log.read_up_to(offset, max_bytes, replication.high_watermark()).await,
            None => log.read(offset, max_bytes).await,
        }
    }

    /// What a follower fetches: whole batches from `offset` up to the log's own
    /// visible end (past the high watermark, which the followers move).
    pub async fn read_for_follower(&self, offset: u64, max_bytes: usize) -> Result<Batches> {
        self.log().read(offset, max_bytes).await
    }

    /// Resolves once a batch at or after `offset` is visible (or the log closes).
    pub async fn wait_visible(&self, offset: u64) {
        match self.replication() {
            Some(replication) => replication.wait_high_watermark(offset + 1).await,
            None => self.log().wait_visible(offset).await,
        }
    }

    /// The first record with a timestamp at or after `timestamp`: its offset and
    /// timestamp.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(u64, i64)>> {
        self.log().offset_for_timestamp(timestamp).await
    }

    /// The record with the newest timestamp: its offset and timestamp.
    pub async fn offset_of_max_timestamp(&self) -> Result<Option<(u64, i64)>> {
        self.log().offset_of_max_timestamp().await
    }

    /// Moves the partition's start to `offset` (DeleteRecords); answers the start.
    pub async fn delete_records_before(&self, offset: u64) -> Result<u64> {
        self.log().delete_records_before(offset).await
    }

    /// The idempotent producers this partition remembers.
    pub fn producers(&self) -> Vec<producers::ProducerState> {
        self.producers.borrow().describe()
    }

    /// Deletes sealed segments that end at or before `offset`.
    pub async fn delete_segments_before(&self, offset: u64) -> Result<crate::storage::Retained> {
        self.log().delete_segments_before(offset).await
    }

    /// Bytes stored, over every segment.
    pub fn size_bytes(&self) -> u64 {
        self.log().size_bytes()
    }

    /// Segments on disk.
    pub fn segment_count(&self) -> usize {
        self.log().segment_count()
    }

    /// The partition's name in logs and errors.
    pub fn name(&self) -> String {
        self.log().name().to_string()
    }
}
