//! The idempotent producer's state on one partition (Kafka's KIP-98 without
//! transactions): for each producer id, its epoch and the sequence numbers and
//! offsets of its last `BATCHES_KEPT` batches. A batch whose sequences match one of
//! those is a retry of a batch already stored: it is answered with the offsets the
//! original got and not appended again. A batch that does not follow the last one
//! (a gap) is refused with OUT_OF_ORDER_SEQUENCE_NUMBER; one of an older epoch than
//! the producer's is refused as fenced (INVALID_PRODUCER_EPOCH).
//!
//! A producer the partition has no state for (new, or whose batches are older than
//! the state rebuilt at open) is accepted at any sequence, as Kafka accepts it.
//! After a restart the state is rebuilt from the batches at the log's tail (the last
//! `REBUILD_OFFSETS` offsets, at most `REBUILD_BYTES`), which holds every batch a
//! producer could still be retrying.

use std::collections::{HashMap, VecDeque};

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection`
/// for an idempotent producer is at most 5).
pub const BATCHES_KEPT: usize = 5;

/// At most this many bytes at the end of a log are read at open to rebuild the
/// producers' state, from at most `REBUILD_OFFSETS` offsets before the end.
pub const REBUILD_BYTES: usize = 16 << 20;
pub const REBUILD_OFFSETS: u64 = 100_000;

/// Producers remembered per partition; past it the one silent longest is forgotten
/// (its retries are then accepted as a new producer's would be).
pub const PRODUCERS_MAX: usize = 10_000;

/// One stored batch of a producer: its sequence range and where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBatch {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub base_offset: u64,
    pub last_offset: u64,
    /// The batch's max timestamp (its producer's clock, or the broker's).
    pub max_timestamp: i64,
}

/// One producer as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

#[derive(Debug, Default)]
struct Producer {
    epoch: i16,
    batches: VecDeque<StoredBatch>,
    /// For forgetting the longest-silent producer first.
    touched: u64,
}

/// What a batch of an idempotent producer is, against the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    Append,
    /// Already stored: answer with these offsets.
    Duplicate(StoredBatch),
}

/// Why a batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id}: sequence {got} does not follow {last} (a batch is missing)")]
    OutOfOrder { producer_id: i64, last: i32, got: i32 },
    #[error("producer {producer_id}: epoch {got} is older than its current epoch {current} (fenced)")]
    Fenced { producer_id: i64, current: i16, got: i16 },
}

/// The sequence after `sequence` (Kafka's wrap at `i32::MAX` back to 0).
fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

/// The last sequence of a batch of `records` from `first`.
pub fn last_sequence(first: i32, records: i32) -> i32 {
    let span = i64::from(records.max(1)) - 1;
    ((i64::from(first) + span) % (i64::from(i32::MAX) + 1)) as i32
}

/// Every producer's state on one partition.
#[derive(Debug, Default)]
pub struct Producers {
    producers: HashMap<i64, Producer>,
    clock: u64,
}

impl Producers {
    /// Judges a batch of producer `id` at `epoch` with sequences `first..=last`.
    pub fn check(&self, id: i64, epoch: i16, first: i32, last: i32) -> Result<Verdict, ProducerError> {
        let Some(producer) = self.producers.get(&id) else { return Ok(Verdict::Append) };
        if epoch < producer.epoch {
            return Err(ProducerError::Fenced { producer_id: id, current: producer.epoch, got: epoch });
        }
        if epoch > producer.epoch {
            // A new epoch starts its sequences over.
            return if first == 0 {
                Ok(Verdict::Append)
            } else {
                let last = producer.batches.back().map_or(-1, |b| b.last_sequence);
                Err(ProducerError::OutOfOrder { producer_id: id, last, got: first })
            };
        }
        if let Some(stored) = producer.batches.iter().find(|b| b.first_sequence == first && b.last_sequence == last) {
            return Ok(Verdict::Duplicate(*stored));
        }
        match producer.batches.back() {
            Some(previous) if first != next_sequence(previous.last_sequence) => {
                Err(ProducerError::OutOfOrder { producer_id: id, last: previous.last_sequence, got: first })
            }
            _ => Ok(Verdict::Append),
        }
    }

    /// Records a batch stored for producer `id` at `epoch`.
    pub fn record(&mut self, id: i64, epoch: i16, batch: StoredBatch) {
        self.clock += 1;
        if !self.producers.contains_key(&id) && self.producers.len() >= PRODUCERS_MAX {
            if let Some(oldest) = self.producers.iter().min_by_key(|(_, p)| p.touched).map(|(id, _)| *id) {
                self.producers.remove(&oldest);
            }
        }
        let producer = self.producers.entry(id).or_default();
        if epoch != producer.epoch {
            producer.batches.clear();
            producer.epoch = epoch;
        }
        if producer.batches.len() == BATCHES_KEPT {
            producer.batches.pop_front();
        }
        producer.batches.push_back(batch);
        producer.touched = self.clock;
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Every producer remembered, by id, with its last batch.
    pub fn describe(&self) -> Vec<ProducerState> {
        let mut out: Vec<ProducerState> = self
            .producers
            .iter()
            .filter_map(|(&producer_id, producer)| {
                let last = producer.batches.back()?;
                Some(ProducerState {
                    producer_id,
                    epoch: producer.epoch,
                    last_sequence: last.last_sequence,
                    last_timestamp: last.max_timestamp,
                })
            })
            .collect();
        out.sort_by_key(|state| state.producer_id);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(first: i32, last: i32, base: u64) -> StoredBatch {
        StoredBatch {
            first_sequence: first,
            last_sequence: last,
            base_offset: base,
            last_offset: base + (last - first) as u64,
            max_timestamp: 1_000 + base as i64,
        }
    }

    #[test]
    fn retries_are_answered_with_the_original_offsets_and_gaps_are_refused() {
        let mut producers = Producers::default();
        assert_eq!(producers.check(7, 0, 0, 9), Ok(Verdict::Append));
        producers.record(7, 0, stored(0, 9, 100));
        assert_eq!(producers.check(7, 0, 10, 19), Ok(Verdict::Append));
        producers.record(7, 0, stored(10, 19, 110));
        assert_eq!(producers.check(7, 0, 0, 9), Ok(Verdict::Duplicate(stored(0, 9, 100))), "a retry");
        assert_eq!(
            producers.check(7, 0, 25, 30),
            Err(ProducerError::OutOfOrder { producer_id: 7, last: 19, got: 25 }),
            "a gap"
        );
        // A new epoch starts at 0; the old one is fenced from then on.
        assert!(producers.check(7, 1, 5, 6).is_err());
        assert_eq!(producers.check(7, 1, 0, 0), Ok(Verdict::Append));
        producers.record(7, 1, stored(0, 0, 120));
        assert_eq!(producers.check(7, 0, 20, 20), Err(ProducerError::Fenced { producer_id: 7, current: 1, got: 0 }));
        // Only the last five batches are remembered.
        for i in 1..=6 {
            producers.record(7, 1, stored(i, i, 120 + i as u64));
        }
        assert_eq!(producers.check(7, 1, 1, 1), Err(ProducerError::OutOfOrder { producer_id: 7, last: 6, got: 1 }));
        assert_eq!(producers.check(7, 1, 2, 2), Ok(Verdict::Duplicate(stored(2, 2, 122))));
        // An unknown producer is accepted at any sequence.
        assert_eq!(producers.check(8, 3, 40, 41), Ok(Verdict::Append));
        producers.record(3, 2, stored(0, 4, 200));
        assert_eq!(
            producers.describe(),
            vec![
                ProducerState { producer_id: 3, epoch: 2, last_sequence: 4, last_timestamp: 1_200 },
                ProducerState { producer_id: 7, epoch: 1, last_sequence: 6, last_timestamp: 1_126 },
            ]
        );
    }

    #[test]
    fn sequences_wrap_at_the_largest_int() {
        assert_eq!(last_sequence(i32::MAX, 1), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 2), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 5), 2);
        let mut producers = Producers::default();
        producers.record(1, 0, stored(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(producers.check(1, 0, 0, 3), Ok(Verdict::Append));
    }
}
