//! What the broker counts requests by: the operation asked for and the listener it
//! came in on, whatever the protocol.

/// A listener: where a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The native protocol's listeners (the main port and each shard's own).
    Native,
    /// The Kafka protocol's listener.
    Kafka,
    /// The broker asking itself (the group coordinator); never counted.
    Internal,
}

impl Listener {
    /// The listeners clients connect to, for per-listener counters.
    pub const CLIENT: [Listener; 2] = [Listener::Native, Listener::Kafka];

    pub fn name(self) -> &'static str {
        match self {
            Listener::Native => "native",
            Listener::Kafka => "kafka",
            Listener::Internal => "internal",
        }
    }

    /// Its index in `CLIENT`, or `None` for the broker's own requests.
    pub fn index(self) -> Option<usize> {
        match self {
            Listener::Native => Some(0),
            Listener::Kafka => Some(1),
            Listener::Internal => None,
        }
    }
}

/// An operation a client asks of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Produce,
    Fetch,
    ListOffsets,
    Metadata,
    ApiVersions,
    CreateTopics,
    DeleteTopics,
    DescribeTopicConfigs,
    AlterTopicConfigs,
    CreatePartitions,
    JoinGroup,
    Heartbeat,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    ListGroups,
    DescribeGroup,
    SyncGroup,
    FindCoordinator,
    DeleteGroups,
    OffsetDelete,
    DeleteRecords,
    DescribeProducers,
    DescribeUsers,
    AlterUsers,
    /// A SASL handshake or one of its messages.
    Authenticate,
    DescribeAcls,
    AlterAcls,
    DescribeQuotas,
    AlterQuotas,
}

impl Operation {
    pub const ALL: [Operation; 30] = [
        Operation::Produce,
        Operation::Fetch,
        Operation::ListOffsets,
        Operation::Metadata,
        Operation::ApiVersions,
        Operation::CreateTopics,
        Operation::DeleteTopics,
        Operation::DescribeTopicConfigs,
        Operation::AlterTopicConfigs,
        Operation::CreatePartitions,
        Operation::JoinGroup,
        Operation::Heartbeat,
        Operation::LeaveGroup,
        Operation::OffsetCommit,
        Operation::OffsetFetch,
        Operation::ListGroups,
        Operation::DescribeGroup,
        Operation::SyncGroup,
        Operation::FindCoordinator,
        Operation::DeleteGroups,
        Operation::OffsetDelete,
        Operation::DeleteRecords,
        Operation::DescribeProducers,
        Operation::DescribeUsers,
        Operation::AlterUsers,
        Operation::Authenticate,
        Operation::DescribeAcls,
        Operation::AlterAcls,
        Operation::DescribeQuotas,
        Operation::AlterQuotas,
    ];

    /// Its index in `ALL`, for per-operation counters.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Operation::Produce => "Produce",
            Operation::Fetch => "Fetch",
            Operation::ListOffsets => "ListOffsets",
            Operation::Metadata => "Metadata",
            Operation::ApiVersions => "ApiVersions",
            Operation::CreateTopics => "CreateTopics",
            Operation::DeleteTopics => "DeleteTopics",
            Operation::DescribeTopicConfigs => "DescribeTopicConfigs",
            Operation::AlterTopicConfigs => "AlterTopicConfigs",
            Operation::CreatePartitions => "CreatePartitions",
            Operation::JoinGroup => "JoinGroup",
            Operation::Heartbeat => "Heartbeat",
            Operation::LeaveGroup => "LeaveGroup",
            Operation::OffsetCommit => "OffsetCommit",
            Operation::OffsetFetch => "OffsetFetch",
            Operation::ListGroups => "ListGroups",
            Operation::DescribeGroup => "DescribeGroup",
            Operation::SyncGroup => "SyncGroup",
            Operation::FindCoordinator => "FindCoordinator",
            Operation::DeleteGroups => "DeleteGroups",
            Operation::OffsetDelete => "OffsetDelete",
            Operation::DeleteRecords => "DeleteRecords",
            Operation::DescribeProducers => "DescribeProducers",
            Operation::DescribeUsers => "DescribeUsers",
            Operation::AlterUsers => "AlterUsers",
            Operation::Authenticate => "Authenticate",
            Operation::DescribeAcls => "DescribeAcls",
            Operation::AlterAcls => "AlterAcls",
            Operation::DescribeQuotas => "DescribeClientQuotas",
            Operation::AlterQuotas => "AlterClientQuotas",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_all() {
        for (i, op) in Operation::ALL.iter().enumerate() {
            assert_eq!(op.index(), i, "{}", op.name());
        }
    }
}
