//! SCRAM's exchanges (RFC 5802, RFC 7677): the server's side against the stored
//! credentials and the client's side, defined in `strand_protocol::scram` so that
//! `strand-client` speaks the same code.

pub use strand_protocol::scram::{ScramClient, ScramError, ScramExchange, MESSAGE_BYTES_MAX};
