//! Why new partitions cannot be created (checked by `capacity` before a creation).

/// Descriptors a partition needs: its active segment's log and two index files, and
/// the three files of the next segment prepared ahead of a roll.
pub const DESCRIPTORS_PER_PARTITION: u64 = 6;

/// Why new partitions cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    #[error("a topic may have at most {max} partitions (limits.topic_partitions_max); asked for {asked}")]
    TopicPartitions { asked: u64, max: u32 },
    #[error("the broker may hold at most {max} partitions (limits.partitions_max); it holds {held}, and {added} more were asked for")]
    BrokerPartitions { held: u64, added: u64, max: u32 },
    #[error("{added} new partitions reserve {needed} bytes on disk (segment_bytes = {segment_bytes} each), but only {free} bytes are free beyond the {reserve}-byte reserve (storage.disk_reserve_bytes); free space, or create them with a smaller segment_bytes")]
    Disk { added: u64, segment_bytes: u64, needed: u64, free: u64, reserve: u64 },
    #[error("{added} new partitions need about {needed} file descriptors ({DESCRIPTORS_PER_PARTITION} each), but the broker holds about {in_use} of its limit of {limit} (RLIMIT_NOFILE); raise LimitNOFILE (systemd) or ulimit -n")]
    Descriptors { added: u64, needed: u64, in_use: u64, limit: u64 },
}
