//! The quorum's Raft types: a proposal is one metadata command, its answer the outcome
//! of applying it.

use crate::metadata::Command;
use serde::{Deserialize, Serialize};

/// A metadata command proposed to the quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal(pub Command);

/// What applying a proposal came to: the count of commands the state has applied
/// (`MetadataState::applied_index`), or why the command was refused (it no longer
/// checked against the state when its turn came: two proposals raced). Every voter
/// applies the same log to the same state, so every voter comes to the same outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied(pub Result<u64, String>);

openraft::declare_raft_types!(
    /// The metadata quorum's Raft.
    pub Quorum:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<Quorum>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
