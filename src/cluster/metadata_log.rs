//! Where shard 0 writes metadata commands: the broker's own command log
//! (`metadata::MetadataStore`), or, in a cluster, the metadata quorum
//! (`quorum::QuorumHandle`). Either way a command is checked against the current
//! state, made durable, and applied before `submit` returns the state it left.

use super::quorum::{ProposeError, QuorumHandle};
use crate::metadata::{Command, MetadataError, MetadataState, MetadataStore};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a proposal may wait for the quorum (an election, a slow voter).
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// The metadata command log shard 0 writes to.
pub enum MetadataLog {
    /// One broker: its own command log and snapshot.
    Local(Mutex<MetadataStore>),
    /// A cluster: the Raft log of the controller voters.
    Quorum(QuorumHandle),
}

impl MetadataLog {
    /// Checks, persists and applies `command`; the state it left. Blocking: call it
    /// from a blocking thread, never from a shard's event loop.
    pub fn submit(&self, command: Command) -> Result<Arc<MetadataState>, MetadataError> {
        match self {
            MetadataLog::Local(store) => {
                let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                store.submit(command).map(|state| Arc::new(state.clone()))
            }
            MetadataLog::Quorum(quorum) => {
                // Checked here first, for the precise error; checked again when it is
                // applied, in case another command came first.
                quorum.state().check(&command)?;
                quorum.propose_blocking(command, PROPOSE_TIMEOUT).map_err(|error| match error {
                    ProposeError::Refused(reason) => MetadataError::InvalidConfig(reason),
                    other => MetadataError::Unavailable(other.to_string()),
                })
            }
        }
    }

    /// In a cluster, the quorum member.
    pub fn quorum(&self) -> Option<&QuorumHandle> {
        match self {
            MetadataLog::Local(_) => None,
            MetadataLog::Quorum(quorum) => Some(quorum),
        }
    }

    /// The current state.
    pub fn state(&self) -> Arc<MetadataState> {
        match self {
            MetadataLog::Local(store) => {
                Arc::new(store.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).state().clone())
            }
            MetadataLog::Quorum(quorum) => quorum.state(),
        }
    }
}
