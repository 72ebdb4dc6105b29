//! Producer ids for the idempotent producer, the same for both protocols: every
//! InitProducerId without a transactional id gets an id no earlier request to this
//! broker was given, at epoch 0, whatever id and epoch it names. That is Kafka's rule
//! for producers that are not transactional: a producer that lost its sequence (KIP-360)
//! starts again under a new id, and no client can fence another by naming its id. (A
//! client may still bump its own epoch itself, as Kafka's Java client does; the
//! partitions accept a higher epoch that starts at sequence 0.)
//!
//! An id is the wall clock in milliseconds shifted left 16 bits, then the shard (8
//! bits) and a counter (8 bits): unique across the shards of a start, and across
//! starts while the clock does not go back by more than the broker's down time.

use std::cell::Cell;

/// Gives out this shard's producer ids.
pub struct ProducerIds {
    shard: u32,
    /// The millisecond and counter of the last id given.
    last: Cell<(u64, u16)>,
}

impl ProducerIds {
    pub fn new(shard: u32) -> ProducerIds {
        ProducerIds { shard, last: Cell::new((0, 0)) }
    }

    /// A fresh id at `now_ms`, after every id this shard gave before.
    pub fn next(&self, now_ms: u64) -> i64 {
        let (last_ms, counter) = self.last.get();
        let (ms, counter) = if now_ms > last_ms {
            (now_ms, 0)
        } else if counter == 255 {
            (last_ms + 1, 0)
        } else {
            (last_ms, counter + 1)
        };
        self.last.set((ms, counter));
        ((ms << 16) | (u64::from(self.shard & 0xff) << 8) | u64::from(counter)) as i64
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The id and epoch a producer that is not transactional is to use: a fresh id, at
/// epoch 0.
pub fn init_producer_id(ids: &ProducerIds) -> (i64, i16) {
    (ids.next(now_ms()), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids rise on each shard, even when many are asked for within one millisecond
    /// (the counter spills into the next), and two shards never give the same one.
    #[test]
    fn ids_are_unique_across_shards_and_rise() {
        let (a, b) = (ProducerIds::new(0), ProducerIds::new(1));
        let mut seen = std::collections::HashSet::new();
        let (mut last_a, mut last_b) = (i64::MIN, i64::MIN);
        for _ in 0..1000 {
            let (x, y) = (a.next(5), b.next(5));
            assert!(x > last_a && y > last_b);
            (last_a, last_b) = (x, y);
            assert!(seen.insert(x) && seen.insert(y));
        }
        assert!(a.next(1_000_000) > last_a);
        let (id, epoch) = init_producer_id(&a);
        assert!(id > last_a && epoch == 0, "InitProducerId: a fresh id at epoch 0");
    }
}
