//! The Kafka wire protocol, as far as it is built: `codec` (request frames
//! cut into header and body, bounded decoding with the patched `kafka-protocol`
//! crate in `vendor/kafka-protocol`). The listener (a second `net::Protocol`, see
//! `docs/ARCHITECTURE.md`, "How the next pieces plug in") is not built yet; nothing
//! here is reachable from a socket until it is.

pub mod codec;
