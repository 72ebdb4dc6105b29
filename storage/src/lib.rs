//! `strand-storage`: the partition log: direct-I/O segments, group commit, recovery,
//! retention. It depends on the batch format (`strand-format`) and on no wire
//! protocol, so a protocol type here does not compile.
//!
//! A `Log` is one partition: a directory of segments named by base offset, each a log
//! file of Kafka RecordBatch v2 batches stored byte for byte, a sparse offset index and
//! a time index. A shard owns its logs and the `BatchCache` they share; nothing here is
//! `Send`, and nothing here knows either wire protocol.
//!
//! Budget, per core, against this machine's limits (direct write 1.6 GB/s, direct read
//! 1.0 GB/s, memcpy 6-10 GB/s, fdatasync ~1,800/s preallocated):
//! - append: one CRC-32C pass (hardware, > 10 GB/s) and one memcpy per byte, one write
//!   syscall-free submission per `write_buffer_bytes` (1 MiB), four in flight: bound by
//!   the disk, target ≥ 80% of its direct write rate.
//! - `always`: one fdatasync per group of appends, not per append: with 64 appenders in
//!   flight the batch rate is a multiple of the fdatasync rate, target ≥ 10x.
//! - cold read: one direct read of `read_bytes` (1 MiB) per call, no copy (the read
//!   buffer is sliced): bound by the disk, target ≥ 80% of its direct read rate.
//! - tail read: served from the cache, no I/O, no copy.
//!
//! Code map: `log` (the `Log` and its state; `log/append`, `log/roll`, `log/read`,
//! `log/retention`, one concern each), `recovery` (open), `segment`
//! (one segment's files and scanning), `appender` (O_DIRECT append-only writer),
//! `index` (offset and time indexes), `epochs` (the leader epochs and where each
//! starts, for truncation by epoch), `cache` (recent batches), `progress` (waiting on
//! counters), `config`, `error`, `quota` (the task quota appends yield at), `space`
//! (free disk space).

mod appender;
mod cache;
mod config;
pub mod epochs;
mod error;
mod index;
mod log;
mod probe;
mod progress;
pub mod quota;
mod recovery;
mod segment;
pub mod settings;
pub mod space;
mod truncate;

pub use cache::{BatchCache, CacheKey, CacheStats, READ_AHEAD_BYTES_DEFAULT};
pub use config::{FsyncPolicy, IoOptions, TimestampSource, TopicConfig};
pub use error::{Result, StorageError};
pub use log::{now_ms, Appended, Batches, Chunk, Log, Offsets, Retained};
pub use recovery::{open_logs, LogSpec, OpenFailure, Opened, Recovery, Truncation};
pub use segment::probe_device;
pub use settings::{altered_config, config_entries, topic_config, Setting};

/// Alignment of every direct-I/O write and of segment preallocation.
pub const BLOCK_BYTES: usize = 4096;

/// The partition leader epoch stamped into every stored batch. A single broker leads
/// every partition in epoch 0; with replication this becomes the Raft term. Neither
/// the epoch nor the base offset is covered by the batch CRC, so recovery checks both
/// (offsets contiguous, epoch a known one) to notice damage there too.
pub const LEADER_EPOCH: i32 = 0;

#[cfg(test)]
mod tests;
