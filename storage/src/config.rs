//! Settings of one partition's log: per-topic policy and per-broker I/O sizing.

use serde::{Deserialize, Serialize};

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// An append resolves only after an fdatasync covers it. Appends that arrive while
    /// one fdatasync runs share the next one (group commit).
    Always,
    /// fdatasync at most `fsync_interval_ms` after the first unsynced append; appends
    /// resolve once written to the segment's buffer.
    Interval,
    /// Never fdatasync on the append path (only when a segment is sealed or the log is
    /// closed); data reaches the device within `write_behind_ms`.
    Never,
}

/// Where a batch's max timestamp comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampSource {
    /// The producer's timestamps are kept.
    CreateTime,
    /// The broker stamps its clock at append.
    LogAppendTime,
}

/// Per-topic log policy, stored in the topic's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// Durability policy of appends.
    pub fsync: FsyncPolicy,
    /// With `fsync = "interval"`: the longest an append waits for its fdatasync.
    pub fsync_interval_ms: u64,
    /// Delete sealed segments whose newest record is older than this. `None`: keep.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the partition is larger. `None`: keep.
    pub retention_bytes: Option<u64>,
    /// Seal the active segment when the next batch would take it past this size.
    pub segment_bytes: u64,
    /// Seal the active segment once it is this old and not empty.
    pub segment_ms: u64,
    /// Bytes of log between two sparse index entries.
    pub index_interval_bytes: u32,
    /// Largest batch accepted, header included.
    pub batch_bytes_max: u32,
    /// Which timestamp a batch keeps.
    pub timestamp_source: TimestampSource,
    /// In a cluster, `acks = all` is refused (nothing appended) while fewer replicas
    /// than this are in sync (Kafka's `min.insync.replicas`).
    pub min_insync_replicas: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 1_000,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            segment_bytes: 256 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            batch_bytes_max: 1_048_588,
            timestamp_source: TimestampSource::CreateTime,
            min_insync_replicas: 1,
        }
    }
}

impl TopicConfig {
    /// Checks every value against its allowed range; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
        if self.min_insync_replicas == 0 {
            return Err("min_insync_replicas = 0: must be at least 1".into());
        }
        if self.segment_bytes < SEGMENT_BYTES_MIN {
            return Err(format!("segment_bytes = {}: must be at least {SEGMENT_BYTES_MIN}", self.segment_bytes));
        }
        // A segment can pass segment_bytes by one batch, and index positions are 32-bit.
        let segment_bytes_max = u64::from(u32::MAX) - u64::from(self.batch_bytes_max);
        if self.segment_bytes > segment_bytes_max {
            return Err(format!(
                "segment_bytes = {}: must be at most {segment_bytes_max} (4 GiB less batch_bytes_max; index positions are 32-bit)",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err("index_interval_bytes = 0: must be at least 1".into());
        }
        if self.fsync == FsyncPolicy::Interval && self.fsync_interval_ms == 0 {
            return Err(
                "fsync_interval_ms = 0: must be at least 1 with fsync = \"interval\" (use \"always\" instead)".into()
            );
        }
        let batch_bytes_min = strand_format::batch::HEADER_BYTES;
        if (self.batch_bytes_max as usize) < batch_bytes_min {
            return Err(format!("batch_bytes_max = {}: must be at least {batch_bytes_min}", self.batch_bytes_max));
        }
        if self.segment_ms == 0 {
            return Err("segment_ms = 0: must be at least 1".into());
        }
        Ok(())
    }
}

/// Per-broker I/O sizing of every log on a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IoOptions {
    /// Size of a log's first direct-I/O write buffer; a full one is written in one
    /// operation. Buffers that keep filling grow to 4 times this.
    pub write_buffer_bytes: usize,
    /// Write buffers one log may have in flight before appends wait.
    pub write_behind_buffers: usize,
    /// With `fsync = "never"`: buffered data is written at most this long after append.
    pub write_behind_ms: u64,
    /// Size of a direct read when a fetch misses the cache.
    pub read_bytes: usize,
    /// Size of the write buffer of each index file.
    pub index_buffer_bytes: usize,
    /// How many times its topic's `batch_bytes_max` the records of a compressed batch
    /// may take once decompressed; a batch that expands further is refused.
    pub decompression_ratio_max: usize,
    /// Free space a segment's preallocation never takes: creating a segment that would
    /// leave less free (at most a tenth of the filesystem) fails with `DiskFull`.
    pub disk_reserve_bytes: u64,
}

impl Default for IoOptions {
    fn default() -> Self {
        IoOptions {
            write_buffer_bytes: 256 * 1024,
            write_behind_buffers: 16,
            write_behind_ms: 10,
            read_bytes: 1024 * 1024,
            index_buffer_bytes: 64 * 1024,
            decompression_ratio_max: strand_format::batch::DECOMPRESSION_RATIO_MAX_DEFAULT,
            disk_reserve_bytes: 512 << 20,
        }
    }
}

impl IoOptions {
    /// Checks every value against its allowed range; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let block = super::BLOCK_BYTES;
        for (key, value) in [
            ("write_buffer_bytes", self.write_buffer_bytes),
            ("read_bytes", self.read_bytes),
            ("index_buffer_bytes", self.index_buffer_bytes),
        ] {
            if value < block || value % block != 0 {
                return Err(format!("{key} = {value}: must be a non-zero multiple of {block}"));
            }
        }
        if self.write_behind_buffers == 0 {
            return Err("write_behind_buffers = 0: must be at least 1".into());
        }
        if self.write_behind_ms == 0 {
            return Err("write_behind_ms = 0: must be at least 1".into());
        }
        if !(1..=1024).contains(&self.decompression_ratio_max) {
            return Err(format!("decompression_ratio_max = {}: must be 1 to 1024", self.decompression_ratio_max));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        assert!(TopicConfig::default().validate().is_ok());
        assert!(IoOptions::default().validate().is_ok());
        let cases = [
            ("segment_bytes", TopicConfig { segment_bytes: 1000, ..TopicConfig::default() }),
            ("segment_bytes", TopicConfig { segment_bytes: u64::from(u32::MAX), ..TopicConfig::default() }),
            ("index_interval_bytes", TopicConfig { index_interval_bytes: 0, ..TopicConfig::default() }),
            (
                "fsync_interval_ms",
                TopicConfig { fsync: FsyncPolicy::Interval, fsync_interval_ms: 0, ..TopicConfig::default() },
            ),
            ("batch_bytes_max", TopicConfig { batch_bytes_max: 10, ..TopicConfig::default() }),
            ("segment_ms", TopicConfig { segment_ms: 0, ..TopicConfig::default() }),
        ];
        for (key, config) in cases {
            let error = config.validate().expect_err(key);
            assert!(error.starts_with(key), "{key}: {error}");
        }
        let error = IoOptions { write_buffer_bytes: 5000, ..IoOptions::default() }.validate().unwrap_err();
        assert!(error.starts_with("write_buffer_bytes"), "{error}");
        let error = IoOptions { write_behind_buffers: 0, ..IoOptions::default() }.validate().unwrap_err();
        assert!(error.starts_with("write_behind_buffers"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = serde_json::from_str::<TopicConfig>(r#"{"fsync":"always","retention_msec":5}"#).unwrap_err();
        assert!(error.to_string().contains("retention_msec"), "{error}");
        let error = serde_json::from_str::<TopicConfig>(r#"{"fsync":"sometimes"}"#).unwrap_err();
        assert!(error.to_string().contains("sometimes"), "{error}");
    }
}
