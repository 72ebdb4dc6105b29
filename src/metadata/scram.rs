//! SCRAM credentials as Kafka stores them (salt, StoredKey, ServerKey, iterations;
//! never the password), kept in the metadata log. Defined in `strand_protocol::scram`,
//! which the client shares.

pub use strand_protocol::scram::{ScramCredential, ScramMechanism};
