//! What the broker has room for: descriptors, disk space and partition counts.
//!
//! A partition holds a descriptor per segment file and, while its active segment is
//! half full, three more for the next segment prepared ahead of the roll; a connection
//! holds two (its socket, and the duplicate its writer owns). The process's limit
//! (RLIMIT_NOFILE, raised to its hard limit at start) is shared by all of them, so:
//! - a shard refuses connections once the broker's descriptors in use come within
//!   `limits.descriptors_reserved` of the limit: the last descriptors are kept for the
//!   logs (new segments, new partitions), which a flood of idle connections must never
//!   starve;
//! - CreateTopics and CreatePartitions are refused, before anything is created, when
//!   their partitions would pass `limits.topic_partitions_max` or
//!   `limits.partitions_max`, need more descriptors than are left, or would reserve
//!   disk space (`segment_bytes` each) the disk does not have beyond
//!   `storage.disk_reserve_bytes`.
//!
//! Descriptors in use are estimated from every shard's gauges (connections at once,
//! segments and partitions as of each shard's last 100 ms tick), which is cheap
//! enough to do on every accept.

use super::Shard;
use crate::metadata::MetadataState;
use std::sync::atomic::Ordering;

pub use super::capacity_error::DESCRIPTORS_PER_PARTITION;
/// Descriptors a connection holds: the socket and its writer's duplicate.
pub const DESCRIPTORS_PER_CONNECTION: u64 = 2;
/// Descriptors the process holds whatever it serves: metadata files, listeners,
/// io_uring rings and eventfds, standard streams, the admin endpoint.
const DESCRIPTORS_BASE: u64 = 64;
/// Standby files per partition beyond its segments (counted in the gauges).
const DESCRIPTORS_PER_PARTITION_BEYOND_SEGMENTS: u64 = 5;

pub use super::capacity_error::CapacityError;

impl Shard {
    /// The broker's descriptors in use, estimated from every shard's gauges.
    pub fn descriptors_in_use(&self) -> u64 {
        let get = |gauge: &std::sync::atomic::AtomicU64| gauge.load(Ordering::Relaxed);
        DESCRIPTORS_BASE
            + self
                .all_metrics
                .iter()
                .map(|m| {
                    DESCRIPTORS_PER_CONNECTION * get(&m.connections)
                        + get(&m.segments)
                        + DESCRIPTORS_PER_PARTITION_BEYOND_SEGMENTS * get(&m.partitions)
                })
                .sum::<u64>()
    }

    /// Whether one more connection leaves the logs their reserve of descriptors.
    pub fn may_accept(&self) -> bool {
        let reserved = u64::from(self.config.limits.descriptors_reserved);
        self.descriptors_in_use() + DESCRIPTORS_PER_CONNECTION + reserved <= self.descriptors_max
    }

    /// Checks that `added` new partitions (bringing their topic to `topic_total`),
    /// each reserving `segment_bytes`, fit what the broker has, before anything is
    /// created.
    pub fn check_new_partitions(
        &self,
        state: &MetadataState,
        added: u32,
        topic_total: u32,
        segment_bytes: u64,
    ) -> Result<(), CapacityError> {
        let limits = &self.config.limits;
        let added = u64::from(added);
        if u64::from(topic_total) > u64::from(limits.topic_partitions_max) {
            return Err(CapacityError::TopicPartitions {
                asked: u64::from(topic_total),
                max: limits.topic_partitions_max,
            });
        }
        let held: u64 = state.topics.values().map(|topic| u64::from(topic.partitions())).sum();
        if held + added > u64::from(limits.partitions_max) {
            return Err(CapacityError::BrokerPartitions { held, added, max: limits.partitions_max });
        }
        let needed = added * DESCRIPTORS_PER_PARTITION;
        let in_use = self.descriptors_in_use();
        if in_use + needed > self.descriptors_max {
            return Err(CapacityError::Descriptors { added, needed, in_use, limit: self.descriptors_max });
        }
        if let Some(space) = crate::host::disk_space(&self.config.data_dir) {
            let reserve = self.config.storage.io.disk_reserve_bytes.min(space.total_bytes / 10);
            let needed = added.saturating_mul(segment_bytes);
            let free = space.free_bytes.saturating_sub(reserve);
            if needed > free {
                return Err(CapacityError::Disk { added, segment_bytes, needed, free, reserve });
            }
        }
        Ok(())
    }
}

/// What `serve` says at start when the limits could not hold everything at once:
/// every shard's `limits.connections_max` connections and the configured partitions.
pub fn descriptor_warning(
    descriptors_max: u64,
    shards: u64,
    connections_max: u32,
    partitions_max: u32,
) -> Option<String> {
    let connections = shards * u64::from(connections_max) * DESCRIPTORS_PER_CONNECTION;
    let partitions = u64::from(partitions_max) * DESCRIPTORS_PER_PARTITION;
    let wanted = DESCRIPTORS_BASE + connections + partitions;
    (wanted > descriptors_max).then(|| {
        format!(
            "RLIMIT_NOFILE is {descriptors_max} descriptors, but {shards} shards x limits.connections_max {connections_max} connections x {DESCRIPTORS_PER_CONNECTION} plus limits.partitions_max {partitions_max} partitions x {DESCRIPTORS_PER_PARTITION} can need {wanted}; connections are refused once the broker comes within limits.descriptors_reserved of the limit. Raise LimitNOFILE (systemd) or ulimit -n, or lower those limits"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_warning_names_the_numbers() {
        assert_eq!(descriptor_warning(1 << 20, 2, 10_000, 20_000), None);
        let warning = descriptor_warning(20_000, 2, 10_000, 20_000).unwrap();
        assert!(warning.contains("RLIMIT_NOFILE is 20000"), "{warning}");
        assert!(warning.contains("can need 160064"), "{warning}");
    }
}
