//! Choosing a partition for a record, as Kafka's default partitioner does, so that a
//! keyed record lands on the same partition whether a Kafka client or Strand's
//! produced it.
//!
//! - Keyed records: `(murmur2(key) & 0x7fffffff) % partitions`, with Kafka's murmur2
//!   (seed 0x9747b28c), byte for byte.
//! - Unkeyed records: sticky (Kafka's KIP-480 and its successor): one partition takes
//!   every unkeyed record until `switch_after_bytes` have gone to it, then another is
//!   picked at random, so batches fill up instead of spraying one record per partition.

/// Kafka's murmur2 hash of `data` (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a record with this key.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions
}

/// Picks partitions for unkeyed records: sticky until `switch_after_bytes`.
#[derive(Debug, Clone)]
pub struct StickyPartitioner {
    current: Option<u32>,
    bytes_in_current: usize,
    switch_after_bytes: usize,
    random: u64,
}

impl StickyPartitioner {
    /// A partitioner that moves on after `switch_after_bytes` (the producer's batch size).
    pub fn new(switch_after_bytes: usize) -> StickyPartitioner {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        let seed = nanos ^ (&nanos as *const u64 as u64).rotate_left(32);
        StickyPartitioner { current: None, bytes_in_current: 0, switch_after_bytes, random: seed | 1 }
    }

    /// The partition for an unkeyed record of `record_bytes`.
    pub fn partition(&mut self, partitions: u32, record_bytes: usize) -> u32 {
        assert!(partitions > 0, "a topic has at least one partition");
        let stale = self.current.is_none_or(|current| current >= partitions);
        if stale || self.bytes_in_current >= self.switch_after_bytes {
            self.current = Some(self.pick_other(partitions));
            self.bytes_in_current = 0;
        }
        self.bytes_in_current += record_bytes;
        self.current.expect("picked above")
    }

    fn pick_other(&mut self, partitions: u32) -> u32 {
        if partitions == 1 {
            return 0;
        }
        // xorshift64*: enough to spread partitions, no dependency.
        let mut next = || {
            self.random ^= self.random >> 12;
            self.random ^= self.random << 25;
            self.random ^= self.random >> 27;
            (self.random.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
        };
        loop {
            let candidate = next() % partitions;
            if Some(candidate) != self.current {
                return candidate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // The cases of Kafka's own UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keyed_partition_is_positive_modulo() {
        // murmur2("21") = -973932308; & 0x7fffffff = 1173551340.
        assert_eq!(partition_for_key(b"21", 8), 1173551340 % 8);
        assert_eq!(partition_for_key(b"abc", 1), 0);
        for key in [&b"x"[..], b"order-17", b""] {
            assert_eq!(partition_for_key(key, 12), partition_for_key(key, 12), "deterministic");
        }
    }

    #[test]
    fn sticky_stays_then_moves_to_another_partition() {
        let mut sticky = StickyPartitioner::new(1000);
        let first = sticky.partition(6, 100);
        for _ in 0..9 {
            assert_eq!(sticky.partition(6, 100), first, "sticky within a batch");
        }
        let second = sticky.partition(6, 100);
        assert_ne!(second, first, "moves on after switch_after_bytes");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10_000 {
            seen.insert(sticky.partition(6, 1000));
        }
        assert_eq!(seen.len(), 6, "every partition gets used");
        assert_eq!(StickyPartitioner::new(10).partition(1, 5), 0);
        assert!(sticky.partition(2, 10) < 2, "a topic that shrank in metadata is handled");
    }
}
