//! One client connection: a reader that splits frames and dispatches requests, and a
//! writer task (`out::write_loop`) that sends responses as they complete, in any
//! order, matched by correlation id.
//!
//! Bounds: a frame larger than `limits.frame_bytes_max` closes the connection before
//! its payload is read; request bytes in flight past `limits.in_flight_bytes_max` stop
//! the reader until responses go out; the receive buffer grows only as bytes arrive
//! (at most one read's worth beyond the frame being assembled); a connection silent for
//! `limits.idle_timeout_ms` with nothing in flight is closed.

use super::out::{write_loop, ConnectionState};
use super::route;
use crate::shard::Shard;
use bytes::BytesMut;
use futures_lite::io::AsyncReadExt;
use glommio::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::Duration;
use strand_protocol::native::{split_frame_mut, FrameHeader, HEADER_BYTES};

/// Bytes asked of one read.
const READ_BYTES: usize = 256 * 1024;
/// Size of a fresh receive buffer (larger when one frame needs more).
const BUFFER_BYTES: usize = 1 << 20;

/// Serves one accepted connection until the peer closes it, it breaks a rule, or it
/// idles out.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let _ = stream.set_nodelay(true);
    // The writer gets its own descriptor for the same socket, so reads and writes
    // proceed independently without a lock.
    // SAFETY: dup returns a new descriptor for the same open socket, which the second
    // TcpStream then owns and closes.
    let write_fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if write_fd < 0 {
        tracing::warn!(%peer, error = %std::io::Error::last_os_error(), "cannot serve connection");
        return;
    }
    let writer = unsafe { TcpStream::from_raw_fd(write_fd) };
    let state = Rc::new(ConnectionState::new(shard.config.limits.in_flight_bytes_max as usize));
    let writing = glommio::spawn_local(write_loop(writer, state.clone()));
    let reason = read_loop(&shard, stream, &state).await;
    tracing::debug!(shard = shard.id, %peer, reason, "connection closed");
    state.close();
    writing.await;
}

/// Reads and dispatches frames; returns why it stopped.
async fn read_loop(shard: &Rc<Shard>, mut stream: TcpStream, state: &Rc<ConnectionState>) -> String {
    let idle = Duration::from_millis(shard.config.limits.idle_timeout_ms);
    let _ = stream.set_read_timeout(Some(idle));
    let in_flight_max = shard.config.limits.in_flight_bytes_max as usize;
    let mut buf = BytesMut::with_capacity(BUFFER_BYTES);
    loop {
        loop {
            match split_frame_mut(&mut buf, &shard.limits) {
                Ok(Some((header, payload))) => {
                    if let Err(reason) = route::dispatch(shard, state, header, payload).await {
                        return reason;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(shard = shard.id, %error, "closing a connection that sent a bad frame");
                    return format!("bad frame: {error}");
                }
            }
        }
        if state.closed.get() {
            return "send failed".into();
        }
        // Back-pressure: stop reading while too many request bytes await responses.
        if state.in_flight_bytes.get() > in_flight_max {
            state.space.wait_until(|| state.in_flight_bytes.get() <= in_flight_max || state.closed.get()).await;
        }
        let want = read_size(&buf, shard);
        ensure_room(&mut buf, want);
        let filled = buf.len();
        buf.resize(filled + want, 0);
        match stream.read(&mut buf[filled..]).await {
            Ok(0) => {
                buf.truncate(filled);
                // The peer is done sending; answer what it asked before closing.
                state.space.wait_until(|| state.in_flight_requests.get() == 0 || state.closed.get()).await;
                return if filled == 0 { "closed by peer".into() } else { "closed by peer mid-frame".into() };
            }
            Ok(read) => buf.truncate(filled + read),
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                buf.truncate(filled);
                if state.in_flight_requests.get() == 0 {
                    return "idle timeout".into();
                }
            }
            Err(error) => return format!("read failed: {error}"),
        }
    }
}

/// Makes room for `want` more bytes without reallocating in place: frames already
/// split off (produced batches held by the cache among them) keep the old allocation,
/// and only the partial frame at the end moves to the new one. The new buffer is at
/// least twice the partial frame, so a large frame is copied O(1) times in all (not
/// once per read), while memory still follows the bytes that actually arrived.
fn ensure_room(buf: &mut BytesMut, want: usize) {
    if buf.capacity() - buf.len() >= want {
        return;
    }
    let mut fresh = BytesMut::with_capacity((2 * buf.len() + want).max(BUFFER_BYTES));
    fresh.extend_from_slice(buf);
    *buf = fresh;
}

/// How much to read next: up to the rest of the frame being assembled (so a large
/// frame arrives in few reads), but never more than `READ_BYTES` beyond what is here,
/// so memory follows the bytes actually received.
fn read_size(buf: &BytesMut, shard: &Shard) -> usize {
    let frame_rest = FrameHeader::parse(buf, &shard.limits)
        .ok()
        .flatten()
        .map_or(0, |header| header.frame_bytes().saturating_sub(buf.len()));
    frame_rest.clamp(HEADER_BYTES, READ_BYTES).max(READ_BYTES / 4)
}
