//! `ErrorCode`: every error the native protocol reports, one u16 each.

/// An error carried in a response. Codes are stable: new ones are only ever added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorCode {
    /// 0: success.
    #[default]
    None,
    /// 1: the request could not be decoded; the connection is closed after the reply.
    MalformedRequest,
    /// 2: the api key is not one this broker serves.
    UnknownApi,
    /// 3: the api version is outside what ApiVersions advertises.
    UnsupportedVersion,
    /// 4: the topic does not exist.
    UnknownTopic,
    /// 5: the partition does not exist in the topic.
    UnknownPartition,
    /// 6: CreateTopics: the topic exists.
    TopicExists,
    /// 7: the topic name breaks the rule `[a-zA-Z0-9._-]{1,249}`, not `.` or `..`.
    InvalidTopicName,
    /// 8: the partition count is outside 1 to 100,000.
    InvalidPartitions,
    /// 9: a topic configuration key is unknown or its value out of range.
    InvalidConfig,
    /// 10: a record batch failed validation (CRC, magic, length, record count, the
    /// records, decompressed where compressed), or is transactional or a control batch.
    InvalidBatch,
    /// 11: a record batch is larger than the topic's `batch_bytes_max`.
    BatchTooLarge,
    /// 12: the offset is outside the partition's stored range.
    OffsetOutOfRange,
    /// 13: the disk is full; retriable, the broker resumes when space returns.
    DiskFull,
    /// 14: the partition's storage failed; it refuses writes until the broker restarts.
    StorageFailed,
    /// 15: the request timed out before it completed; it may still take effect.
    Timeout,
    /// 16: the broker is shutting down or still recovering; retriable.
    NotReady,
    /// 17: a server-side bug; the message says more.
    Internal,
    /// 18: the group has no members and no committed offsets.
    UnknownGroup,
    /// 19: the member id is not (or no longer) in the group: rejoin.
    UnknownMember,
    /// 20: the generation is not the group's current one: heartbeat, then retry.
    StaleGeneration,
    /// 21: the member does not own the partition it commits.
    NotAssigned,
    /// 22: the group has live members (an administrative commit needs none).
    GroupNotEmpty,
    /// 23: the group has as many members as `groups.members_max` allows.
    GroupFull,
    /// 24: the shard coordinates as many groups as `groups.groups_max` allows.
    TooManyGroups,
    /// 25: the session timeout is outside the range the broker allows.
    InvalidSessionTimeout,
    /// 26: the group id is empty, too long or has a character outside `[a-zA-Z0-9._-]`.
    InvalidGroupId,
    /// 27: Produce: `acks` is not 0, 1 or 2; nothing was appended.
    InvalidAcks,
    /// 28: the broker lacks a resource the request needs (file descriptors); the
    /// message names it. Retriable once the resource frees up.
    ResourceLimit,
    /// 29: a batch of an idempotent producer does not follow the producer's last batch
    /// on the partition (one before it is missing); nothing was appended. A producer
    /// sends it again once the batches before it are stored.
    OutOfOrderSequence,
    /// 30: a batch of an idempotent producer is of an older epoch than the producer's
    /// (fenced by a newer InitProducerId); nothing was appended.
    ProducerFenced,
    /// 31: the principal may not do this to the topic (an ACL denies it, or none allows
    /// it, with authorization on).
    TopicAuthorizationFailed,
    /// 32: the principal may not do this to the group.
    GroupAuthorizationFailed,
    /// 33: the principal may not do this to the cluster (topic creation, users, ACLs).
    ClusterAuthorizationFailed,
    /// 34: the SASL exchange failed (a wrong password, an unknown user, a malformed
    /// message); the broker closes the connection after answering.
    AuthenticationFailed,
    /// 35: the listener authenticates with SASL and the connection has not (or its
    /// session ran out): only ApiVersions and Authenticate are served. Sent as an error
    /// frame; the connection is closed.
    AuthenticationRequired,
    /// 36: Authenticate named a mechanism the listener does not offer, or the listener
    /// does not authenticate with SASL; the message lists what is offered.
    UnsupportedMechanism,
    /// 37: a partition change or request of a leader epoch older than the partition's
    /// (a deposed leader, a stale client): refresh metadata and retry.
    StaleEpoch,
    /// 38: in a cluster, the partition is led by another broker, or by none for now
    /// (its broker is down): refresh metadata and retry there.
    NotLeader,
    /// 39: `durable` acks with fewer replicas in sync than the topic's
    /// `min_insync_replicas`; nothing was appended.
    NotEnoughReplicas,
    /// A code this version of the crate does not know.
    Other(u16),
}

impl ErrorCode {
    /// The code on the wire.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::None => 0,
            ErrorCode::MalformedRequest => 1,
            ErrorCode::UnknownApi => 2,
            ErrorCode::UnsupportedVersion => 3,
            ErrorCode::UnknownTopic => 4,
            ErrorCode::UnknownPartition => 5,
            ErrorCode::TopicExists => 6,
            ErrorCode::InvalidTopicName => 7,
            ErrorCode::InvalidPartitions => 8,
            ErrorCode::InvalidConfig => 9,
            ErrorCode::InvalidBatch => 10,
            ErrorCode::BatchTooLarge => 11,
            ErrorCode::OffsetOutOfRange => 12,
            ErrorCode::DiskFull => 13,
            ErrorCode::StorageFailed => 14,
            ErrorCode::Timeout => 15,
            ErrorCode::NotReady => 16,
            ErrorCode::Internal => 17,
            ErrorCode::UnknownGroup => 18,
            ErrorCode::UnknownMember => 19,
            ErrorCode::StaleGeneration => 20,
            ErrorCode::NotAssigned => 21,
            ErrorCode::GroupNotEmpty => 22,
            ErrorCode::GroupFull => 23,
            ErrorCode::TooManyGroups => 24,
            ErrorCode::InvalidSessionTimeout => 25,
            ErrorCode::InvalidGroupId => 26,
            ErrorCode::InvalidAcks => 27,
            ErrorCode::ResourceLimit => 28,
            ErrorCode::OutOfOrderSequence => 29,
            ErrorCode::ProducerFenced => 30,
            ErrorCode::TopicAuthorizationFailed => 31,
            ErrorCode::GroupAuthorizationFailed => 32,
            ErrorCode::ClusterAuthorizationFailed => 33,
            ErrorCode::AuthenticationFailed => 34,
            ErrorCode::AuthenticationRequired => 35,
            ErrorCode::UnsupportedMechanism => 36,
            ErrorCode::StaleEpoch => 37,
            ErrorCode::NotLeader => 38,
            ErrorCode::NotEnoughReplicas => 39,
            ErrorCode::Other(code) => code,
        }
    }

    /// The error with this code.
    pub fn from_code(code: u16) -> ErrorCode {
        const KNOWN: [ErrorCode; 40] = [
            ErrorCode::None,
            ErrorCode::MalformedRequest,
            ErrorCode::UnknownApi,
            ErrorCode::UnsupportedVersion,
            ErrorCode::UnknownTopic,
            ErrorCode::UnknownPartition,
            ErrorCode::TopicExists,
            ErrorCode::InvalidTopicName,
            ErrorCode::InvalidPartitions,
            ErrorCode::InvalidConfig,
            ErrorCode::InvalidBatch,
            ErrorCode::BatchTooLarge,
            ErrorCode::OffsetOutOfRange,
            ErrorCode::DiskFull,
            ErrorCode::StorageFailed,
            ErrorCode::Timeout,
            ErrorCode::NotReady,
            ErrorCode::Internal,
            ErrorCode::UnknownGroup,
            ErrorCode::UnknownMember,
            ErrorCode::StaleGeneration,
            ErrorCode::NotAssigned,
            ErrorCode::GroupNotEmpty,
            ErrorCode::GroupFull,
            ErrorCode::TooManyGroups,
            ErrorCode::InvalidSessionTimeout,
            ErrorCode::InvalidGroupId,
            ErrorCode::InvalidAcks,
            ErrorCode::ResourceLimit,
            ErrorCode::OutOfOrderSequence,
            ErrorCode::ProducerFenced,
            ErrorCode::TopicAuthorizationFailed,
            ErrorCode::GroupAuthorizationFailed,
            ErrorCode::ClusterAuthorizationFailed,
            ErrorCode::AuthenticationFailed,
            ErrorCode::AuthenticationRequired,
            ErrorCode::UnsupportedMechanism,
            ErrorCode::StaleEpoch,
            ErrorCode::NotLeader,
            ErrorCode::NotEnoughReplicas,
        ];
        KNOWN.get(code as usize).copied().unwrap_or(ErrorCode::Other(code))
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::DiskFull
                | ErrorCode::Timeout
                | ErrorCode::NotReady
                | ErrorCode::StaleGeneration
                | ErrorCode::ResourceLimit
                | ErrorCode::StaleEpoch
                | ErrorCode::NotLeader
                | ErrorCode::NotEnoughReplicas
        )
    }
}

impl super::codec::Wire for ErrorCode {
    fn encode(&self, out: &mut Vec<u8>) {
        self.code().encode(out);
    }
    fn decode(reader: &mut super::codec::Reader<'_>) -> Result<Self, super::api::DecodeError> {
        Ok(ErrorCode::from_code(u16::decode(reader)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..40u16 {
            assert_eq!(ErrorCode::from_code(code).code(), code);
        }
        assert_eq!(ErrorCode::from_code(13), ErrorCode::DiskFull);
        assert_eq!(ErrorCode::from_code(999), ErrorCode::Other(999));
    }
}
