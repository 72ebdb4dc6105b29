//! Binding every listener's sockets (`[[listeners]]`), before any shard starts, so
//! that every port (chosen by the kernel when a listener's `port = 0`) is known to
//! every shard's Metadata answers and printed in the ready line. A listener's port
//! gets one socket per shard, all bound with SO_REUSEPORT so the kernel spreads
//! connections across shards; on a native listener each shard also owns one port of
//! its own (`port + 1 + shard`) for shard-aware clients.

use crate::config::{ListenerConfig, ListenerProtocol, TlsConfig};
use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::IntoRawFd;

/// One listener's sockets for one shard, and what its connections need to know.
pub(super) struct ShardListener {
    pub(super) config: ListenerConfig,
    /// The shared port's socket and, on a native listener, the shard's own port.
    pub(super) fds: Vec<i32>,
    /// A native listener's port on each shard.
    pub(super) shard_ports: Vec<u16>,
    /// What a Kafka listener tells clients to connect to.
    pub(super) advertised: (String, u16),
}

/// A listener bound: where, for the ready line.
pub(super) struct BoundListener {
    pub(super) config: ListenerConfig,
    pub(super) address: SocketAddr,
    pub(super) shard_ports: Vec<u16>,
    /// Where clients are told to connect (a Kafka listener's advertised host and port).
    pub(super) advertised: (String, u16),
}

/// Binds every listener; each shard's sockets (in listener order) and what was bound.
pub(super) fn bind_all(
    listeners: &[ListenerConfig],
    tls: &TlsConfig,
    count: usize,
) -> anyhow::Result<(Vec<Vec<ShardListener>>, Vec<BoundListener>)> {
    let mut per_shard: Vec<Vec<ShardListener>> = (0..count).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for config in listeners {
        let context = || format!("listener {:?} ({}:{})", config.name, config.address, config.port);
        let address: IpAddr = config.address.parse().with_context(context)?;
        let (main, port) = bind_main(address, config.port, count).with_context(context)?;
        let own = match config.protocol {
            ListenerProtocol::Native => bind_shard_ports(address, config.port, count).with_context(context)?,
            ListenerProtocol::Kafka => Vec::new(),
        };
        let shard_ports: Vec<u16> = own.iter().map(local_port).collect();
        let host =
            if config.advertised_host.is_empty() { config.address.clone() } else { config.advertised_host.clone() };
        let advertised = (host, if config.advertised_port == 0 { port } else { config.advertised_port });
        warn_if_exposed(config, address, tls);
        let mut own = own.into_iter();
        for (shard, socket) in main.into_iter().enumerate() {
            let mut fds = vec![socket.into_raw_fd()];
            fds.extend(own.next().map(IntoRawFd::into_raw_fd));
            per_shard[shard].push(ShardListener {
                config: config.clone(),
                fds,
                shard_ports: shard_ports.clone(),
                advertised: advertised.clone(),
            });
        }
        let address = SocketAddr::new(address, port);
        bound.push(BoundListener { config: config.clone(), address, shard_ports, advertised });
    }
    Ok((per_shard, bound))
}

/// Warns about a listener that other hosts can reach without authenticating, and a
/// Kafka listener that tells clients an address only this host can use.
fn warn_if_exposed(config: &ListenerConfig, address: IpAddr, tls: &TlsConfig) {
    if !address.is_loopback() && config.is_open(tls) {
        tracing::warn!(
            listener = %config.name,
            address = %config.address,
            port = config.port,
            security = crate::config::security_name(config.security),
            "listener {:?} accepts clients from other hosts without authenticating them: anyone who reaches it may read, write and delete; set security = \"sasl_tls\" (or \"tls\" with client_auth = \"required\", on the listener or in [tls]), or bind it to 127.0.0.1",
            config.name
        );
    }
    if config.protocol == ListenerProtocol::Kafka && address.is_unspecified() && config.advertised_host.is_empty() {
        tracing::warn!(
            listener = %config.name,
            "listener {:?} binds {address} and has no advertised_host: clients are told to connect to {address}, which only works on this host; set advertised_host",
            config.name
        );
    }
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
