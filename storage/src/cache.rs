//! `BatchCache`: a shard's bounded cache of recently appended batches.
//!
//! Direct I/O bypasses the page cache, so without this every tail read would go to
//! disk. Batches are inserted at append, as the `Bytes` the producer sent (no copy), and
//! evicted oldest first across all logs of the shard. Because each log appends in
//! offset order and eviction is in append order, what a log has in the cache is always
//! a contiguous suffix of that log: a read at or after the oldest cached offset is
//! served entirely from memory, anything older goes to disk.
//!
//! The cache also keeps the shard's account of cold reads held ahead of their readers
//! (see `Log::read`): every log of the shard draws on one `read_ahead_bytes` budget, so
//! many partitions caught up at once cannot hold more than that between them.

use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

/// Names one log in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(u64);

struct CachedBatch {
    base_offset: u64,
    next_offset: u64,
    bytes: Bytes,
}

#[derive(Default)]
struct Inner {
    used_bytes: usize,
    /// Every cached batch in insertion order, to evict the oldest first.
    order: VecDeque<(CacheKey, u64)>,
    logs: HashMap<CacheKey, VecDeque<CachedBatch>>,
}

/// Hits and misses since the shard started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub used_bytes: usize,
    pub budget_bytes: usize,
    /// Bytes of cold reads held or under way ahead of their readers.
    pub read_ahead_bytes: usize,
}

/// The cache of one shard. Not `Send`.
pub struct BatchCache {
    budget_bytes: usize,
    inner: RefCell<Inner>,
    next_key: Cell<u64>,
    hits: Cell<u64>,
    misses: Cell<u64>,
    read_ahead_limit: Cell<usize>,
    read_ahead_used: std::rc::Rc<Cell<usize>>,
}

/// Bytes of read-ahead drawn from the shard's budget; given back when dropped.
pub(crate) struct ReadAheadClaim {
    used: std::rc::Rc<Cell<usize>>,
    bytes: usize,
}

impl Drop for ReadAheadClaim {
    fn drop(&mut self) {
        self.used.set(self.used.get() - self.bytes);
    }
}

/// Default of the shard's read-ahead budget (`storage.read_ahead_bytes`): room for
/// four logs read ahead at the largest size (a held read and one under way each).
pub const READ_AHEAD_BYTES_DEFAULT: usize = 256 << 20;

/// Batches served from the cache.
pub(crate) struct CachedRead {
    pub batches: Vec<Bytes>,
    pub bytes: usize,
    pub next_offset: u64,
}

impl BatchCache {
    /// A cache holding at most `budget_bytes` of batches.
    pub fn new(budget_bytes: usize) -> BatchCache {
        BatchCache {
            budget_bytes,
            inner: RefCell::default(),
            next_key: Cell::new(0),
            hits: Cell::new(0),
            misses: Cell::new(0),
            read_ahead_limit: Cell::new(READ_AHEAD_BYTES_DEFAULT),
            read_ahead_used: std::rc::Rc::default(),
        }
    }

    /// Sets the most bytes the shard's logs may hold or read ahead of their readers
    /// (0: no read-ahead).
    pub fn set_read_ahead_bytes(&self, limit: usize) {
        self.read_ahead_limit.set(limit);
    }

    /// Draws `bytes` of read-ahead from the shard's budget, if it has room.
    pub(crate) fn claim_read_ahead(&self, bytes: usize) -> Option<ReadAheadClaim> {
        let used = self.read_ahead_used.get();
        if used + bytes > self.read_ahead_limit.get() {
            return None;
        }
        self.read_ahead_used.set(used + bytes);
        Some(ReadAheadClaim { used: self.read_ahead_used.clone(), bytes })
    }

    /// A key for a newly opened log.
    pub fn register(&self) -> CacheKey {
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        CacheKey(key)
    }

    /// Adds a batch appended to `key`'s log, evicting the oldest batches over budget.
    pub(crate) fn insert(&self, key: CacheKey, base_offset: u64, next_offset: u64, bytes: Bytes) {
        if bytes.len() > self.budget_bytes {
            return;
        }
        let mut inner = self.inner.borrow_mut();
        inner.used_bytes += bytes.len();
        inner.order.push_back((key, base_offset));
        let log = inner.logs.entry(key).or_default();
        debug_assert!(log.back().is_none_or(|last| last.next_offset == base_offset));
        log.push_back(CachedBatch { base_offset, next_offset, bytes });
        while inner.used_bytes > self.budget_bytes {
            let Some((victim, victim_offset)) = inner.order.pop_front() else { break };
            let Some(log) = inner.logs.get_mut(&victim) else { continue };
            debug_assert_eq!(log.front().map(|batch| batch.base_offset), Some(victim_offset));
            if let Some(batch) = log.pop_front() {
                inner.used_bytes -= batch.bytes.len();
            }
        }
    }

    /// Whole batches of `key`'s log starting with the one that holds `offset`, up to
    /// `max_bytes` (at least one batch) and not past `visible_end`. `None` when
    /// `offset` is older than what the cache holds for this log.
    pub(crate) fn read(&self, key: CacheKey, offset: u64, max_bytes: usize, visible_end: u64) -> Option<CachedRead> {
        let inner = self.inner.borrow();
        let found = inner.logs.get(&key).filter(|log| log.front().is_some_and(|first| first.base_offset <= offset));
        let Some(log) = found else {
            self.misses.set(self.misses.get() + 1);
            return None;
        };
        self.hits.set(self.hits.get() + 1);
        let start = log.partition_point(|batch| batch.next_offset <= offset);
        let mut read = CachedRead { batches: Vec::new(), bytes: 0, next_offset: offset };
        for batch in log.range(start..) {
            if batch.next_offset > visible_end {
                break;
            }
            if !read.batches.is_empty() && read.bytes + batch.bytes.len() > max_bytes {
                break;
            }
            read.bytes += batch.bytes.len();
            read.next_offset = batch.next_offset;
            read.batches.push(batch.bytes.clone());
        }
        Some(read)
    }

    /// Forgets a log (closed or deleted).
    pub fn remove(&self, key: CacheKey) {
        let mut inner = self.inner.borrow_mut();
        if let Some(log) = inner.logs.remove(&key) {
            inner.used_bytes -= log.iter().map(|batch| batch.bytes.len()).sum::<usize>();
            inner.order.retain(|(owner, _)| *owner != key);
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            used_bytes: self.inner.borrow().used_bytes,
            budget_bytes: self.budget_bytes,
            read_ahead_bytes: self.read_ahead_used.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_and_keeps_a_suffix_per_log() {
        let cache = BatchCache::new(300);
        let (a, b) = (cache.register(), cache.register());
        for i in 0..4u64 {
            cache.insert(a, i * 10, i * 10 + 10, Bytes::from(vec![0u8; 50]));
            cache.insert(b, i, i + 1, Bytes::from(vec![1u8; 50]));
        }
        // 400 bytes inserted into 300: the two oldest batches (a@0, b@0) went.
        assert!(cache.read(a, 5, 1000, u64::MAX).is_none());
        let read = cache.read(a, 15, 1000, u64::MAX).unwrap();
        assert_eq!((read.batches.len(), read.next_offset), (3, 40));
        let read = cache.read(b, 1, 60, u64::MAX).unwrap();
        assert_eq!((read.batches.len(), read.next_offset), (1, 2), "max_bytes stops after one batch");
        let read = cache.read(b, 1, 1000, 3).unwrap();
        assert_eq!(read.next_offset, 3, "nothing past the visible end");
        cache.remove(a);
        assert_eq!(cache.stats().used_bytes, 150);
    }
}
