//! Accepting connections on a shard's listening socket, each served by a task of its
//! own, within `limits.connections_max` and the descriptors the logs keep in reserve.

use super::transport::Tcp;
use super::{connection, tls, ListenerInfo, Protocol};
use crate::shard::Shard;
use glommio::net::TcpListener;
use std::rc::Rc;

/// First and longest pause after a failed accept. An accept fails when the process
/// is out of descriptors (EMFILE) and keeps failing until some close: retrying at once
/// would spin the shard, so each failure in a row doubles the pause.
const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Accepts connections on `listener` until the shard stops, each served by its own
/// task with `protocol` (after a TLS handshake, on a TLS listener). Past
/// `limits.connections_max` open connections (handshakes under way included), new ones
/// are closed at once.
pub async fn accept_loop<P: Protocol>(
    shard: Rc<Shard>,
    listener: TcpListener,
    protocol: Rc<P>,
    info: Rc<ListenerInfo>,
) {
    let open = Rc::new(std::cell::Cell::new(0u64));
    let max = u64::from(shard.config.limits.connections_max);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                if shard.warnings.accept_failed.allow() {
                    tracing::warn!(shard = shard.id, %error, pause_ms = backoff.as_millis() as u64, "accept failed");
                }
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = ACCEPT_BACKOFF_MIN;
        let full = open.get() >= max;
        if full || !shard.may_accept() {
            refuse(&shard, full, max);
            drop(stream);
            continue;
        }
        open.set(open.get() + 1);
        crate::metrics::ShardMetrics::set(&shard.metrics.connections, open.get());
        let (shard, open, protocol, info) = (shard.clone(), open.clone(), protocol.clone(), info.clone());
        glommio::spawn_local(async move {
            match &info.tls {
                None => connection::serve(shard.clone(), protocol, Tcp(stream)).await,
                Some(acceptor) => {
                    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
                    match tls::handshake(stream, acceptor, info.client_auth).await {
                        Ok(tls) => connection::serve(shard.clone(), protocol, tls).await,
                        Err(reason) => {
                            crate::metrics::ShardMetrics::count(&shard.metrics.tls_handshake_failures, 1);
                            if shard.warnings.tls_failures.allow() {
                                tracing::warn!(shard = shard.id, listener = %info.name, %peer, %reason, "closing a connection whose TLS handshake failed");
                            }
                        }
                    }
                }
            }
            open.set(open.get() - 1);
            crate::metrics::ShardMetrics::set(&shard.metrics.connections, open.get());
        })
        .detach();
    }
}

/// Counts and (rate-limited) logs a connection refused.
fn refuse(shard: &Shard, full: bool, max: u64) {
    crate::metrics::ShardMetrics::count(&shard.metrics.connections_refused, 1);
    if !shard.warnings.connections_refused.allow() {
        return;
    }
    if full {
        tracing::warn!(shard = shard.id, max, "refusing a connection: limits.connections_max reached");
    } else {
        let (in_use, limit) = (shard.descriptors_in_use(), shard.descriptors_max);
        tracing::warn!(
            shard = shard.id,
            in_use,
            limit,
            reserved = shard.config.limits.descriptors_reserved,
            "refusing a connection: the last descriptors are kept for the logs (limits.descriptors_reserved)"
        );
    }
}
