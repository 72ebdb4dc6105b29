//! Binding the listening sockets, before any shard starts, so that every port (chosen
//! by the kernel when `listen.port = 0`) is known to every shard's Metadata answers
//! and printed in the ready line. The main port gets one socket per shard, all bound
//! with SO_REUSEPORT so the kernel spreads connections across shards; each shard also
//! owns one port of its own (`port + 1 + shard`) for shard-aware clients.

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr};

/// The listening sockets one shard is handed.
pub(super) struct ShardSockets {
    /// The native main port's socket and the shard's own port.
    pub(super) native: Vec<i32>,
    /// Its socket on the Kafka port, when the Kafka listener is on.
    pub(super) kafka: Option<i32>,
    pub(super) kafka_advertised: Option<(String, u16)>,
}

pub(super) fn listener_socket(address: SocketAddr, reuse_port: bool) -> anyhow::Result<Socket> {
    let domain = if address.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&address.into()).with_context(|| format!("cannot listen on {address}"))?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

pub(super) fn local_port(socket: &Socket) -> u16 {
    socket.local_addr().ok().and_then(|a| a.as_socket()).map_or(0, |a| a.port())
}

/// One socket per shard on the main port (the first one picks it when `port` is 0).
pub(super) fn bind_main(address: IpAddr, port: u16, count: usize) -> anyhow::Result<(Vec<Socket>, u16)> {
    let first = listener_socket(SocketAddr::new(address, port), true)?;
    let port = local_port(&first);
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(listener_socket(SocketAddr::new(address, port), true)?);
    }
    Ok((sockets, port))
}

/// Each shard's own port: `port + 1 + shard`, or kernel-chosen when `port` is 0.
pub(super) fn bind_shard_ports(address: IpAddr, port: u16, count: usize) -> anyhow::Result<Vec<Socket>> {
    (0..count)
        .map(|shard| {
            let own = if port == 0 { 0 } else { port + 1 + shard as u16 };
            listener_socket(SocketAddr::new(address, own), false)
        })
        .collect()
}
