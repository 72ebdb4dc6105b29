//! The net layer: listeners, connections and their bounds, for any protocol. A
//! protocol plugs in as a `Protocol` (its framing, its answer order and its request
//! handler); the bytes move through a `Transport` (plain TCP, or TLS); the
//! bounds (frame size and arrival time, in-flight bytes and requests, the shard's
//! receive budget, idle timeout, connection and descriptor limits) are the same for
//! every protocol.
//!
//! Code map: `accept` (the accept loop and its refusals), `connection` (the read loop
//! and its bounds), `writer` (answers as pieces, the writer task, the answer order),
//! `budget` (`ReceiveBudget`, `Signal`), `transport` (`Transport`, `Tcp`), `tls` (the
//! TLS handshake and `Tls`, its transport).

mod accept;
pub mod budget;
mod connection;
pub mod tls;
pub mod transport;
mod writer;

pub use accept::accept_loop;
pub use budget::{ReceiveBudget, Signal};
pub use writer::{ConnectionState, Outgoing, Piece, RequestSlot, ResponseOrder};

use bytes::BytesMut;
use std::rc::Rc;

/// A listener as its connections see it.
pub struct ListenerInfo {
    /// Its name in the configuration, for logs.
    pub name: String,
    pub security: crate::config::Security,
    /// The certificate and client checks, on a TLS listener.
    pub tls: Option<std::sync::Arc<tls::TlsAcceptor>>,
    /// What it asks of client certificates (its own setting, else `tls.client_auth`).
    pub client_auth: crate::config::ClientAuth,
}

/// A protocol a listener speaks: how its frames are cut from the byte stream, in
/// what order it answers, and what it does with a frame. Runs on one shard's thread.
#[allow(async_fn_in_trait)]
pub trait Protocol: 'static {
    /// One whole frame, split off the receive buffer (the payload stays owned, so
    /// produced batches are never copied).
    type Frame;

    fn order(&self) -> ResponseOrder;

    /// Splits the first whole frame off `buf` once it has arrived. `Err` (the reason)
    /// closes the connection: a frame over the size limit is refused from its header.
    fn split_frame(&self, buf: &mut BytesMut) -> Result<Option<Self::Frame>, String>;

    /// The size of the frame `buf` starts with, once its header is there (to size the
    /// next read).
    fn frame_bytes(&self, buf: &[u8]) -> Option<usize>;

    /// Handles one frame: answers through `connection`. Returns once the next frame
    /// may be read (a produce's appends are sequenced); `Err` closes the connection.
    async fn dispatch(&self, connection: &Rc<ConnectionState>, frame: Self::Frame) -> Result<(), String>;
}
