//! One client connection: a reader that splits frames and dispatches requests, and a
//! writer task (`out::write_loop`) that sends responses as they complete, in any
//! order, matched by correlation id.
//!
//! Bounds: a frame larger than `limits.frame_bytes_max` closes the connection before
//! its payload is read; request bytes in flight past `limits.in_flight_bytes_max` stop
//! the reader until responses go out; the receive buffer grows only as bytes arrive
//! (at most one read's worth beyond the frame being assembled); a connection silent for
//! `limits.idle_timeout_ms` with nothing in flight is closed.
//!
//! Across connections, a shard's partially received frames and in-flight requests
//! share one budget (`limits.receive_bytes_max`, `out::ReceiveBudget`): past it, a
//! connection whose partial frame is over `PARTIAL_FREE_BYTES` stops reading until
//! bytes are freed, while connections with small requests read on. A frame must
//! arrive whole within `limits.frame_timeout_ms` of its first byte, however slowly its
//! bytes trickle in, or the connection is closed with the reason logged.

use super::out::{write_loop, ConnectionState, ReceiveBudget};
use super::route;
use crate::shard::Shard;
use bytes::BytesMut;
use glommio::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};
use strand_protocol::native::{split_frame_mut, FrameHeader};

/// Bytes asked of one read.
const READ_BYTES: usize = 256 * 1024;
/// Size of a fresh receive buffer (larger when one frame needs more).
const BUFFER_BYTES: usize = 8 << 20;
/// A partial frame up to this size is read whatever the shard's receive budget says,
/// so that small requests always get through.
const PARTIAL_FREE_BYTES: usize = 64 * 1024;

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
        let error = std::io::Error::last_os_error();
        if shard.warnings.accept_failed.allow() {
            tracing::warn!(%peer, %error, "cannot serve connection");
        }
        return;
    }
    let writer = unsafe { TcpStream::from_raw_fd(write_fd) };
    let state = Rc::new(ConnectionState::new(shard.config.limits.in_flight_bytes_max as usize, shard.receive.clone()));
    let writing = glommio::spawn_local(write_loop(writer, state.clone()));
    let reason = read_loop(&shard, stream, &state).await;
    tracing::debug!(shard = shard.id, %peer, reason, "connection closed");
    state.close();
    writing.await;
}

/// The bytes of a connection's partial frame counted against its shard's receive
/// budget; given back when dropped.
struct PartialClaim {
    budget: Rc<ReceiveBudget>,
    claimed: usize,
}

impl PartialClaim {
    /// Counts `bytes` as this connection's partial frame now.
    fn set(&mut self, bytes: usize) {
        if bytes > self.claimed {
            self.budget.claim(bytes - self.claimed);
        } else if bytes < self.claimed {
            self.budget.release(self.claimed - bytes);
        }
        self.claimed = bytes;
    }
}

impl Drop for PartialClaim {
    fn drop(&mut self) {
        self.budget.release(self.claimed);
    }
}

/// Reads and dispatches frames; returns why it stopped.
async fn read_loop(shard: &Rc<Shard>, stream: TcpStream, state: &Rc<ConnectionState>) -> String {
    let idle = Duration::from_millis(shard.config.limits.idle_timeout_ms);
    let frame_timeout = Duration::from_millis(shard.config.limits.frame_timeout_ms);
    let in_flight_max = shard.config.limits.in_flight_bytes_max as usize;
    let mut buf = BytesMut::with_capacity(BUFFER_BYTES);
    let mut partial = PartialClaim { budget: shard.receive.clone(), claimed: 0 };
    // When the first byte of the frame being assembled arrived.
    let mut frame_started: Option<Instant> = None;
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
                    if shard.warnings.bad_clients.allow() {
                        tracing::warn!(shard = shard.id, %error, "closing a connection that sent a bad frame");
                    }
                    return format!("bad frame: {error}");
                }
            }
        }
        if state.closed.get() {
            return "send failed".into();
        }
        partial.set(buf.len());
        // How long the next wait may last: the idle timeout, or what is left of the
        // partial frame's deadline.
        let wait = if buf.is_empty() {
            frame_started = None;
            idle
        } else {
            let started = *frame_started.get_or_insert_with(Instant::now);
            match frame_timeout.checked_sub(started.elapsed()).filter(|left| !left.is_zero()) {
                Some(left) => left.min(idle),
                None => return frame_too_slow(shard, buf.len(), frame_timeout),
            }
        };
        // Back-pressure: stop reading while too many request bytes await responses.
        if state.in_flight_bytes.get() > in_flight_max {
            state.space.wait_until(|| state.in_flight_bytes.get() <= in_flight_max || state.closed.get()).await;
        }
        // The shard's budget: a partial frame reads on up to PARTIAL_FREE_BYTES
        // whatever it says; past that it waits for room (the deadline still runs).
        // The read is reserved before it starts, so reads under way on many
        // connections cannot overshoot the budget together.
        let budget = &shard.receive;
        let mut want = read_size(&buf, shard);
        if !budget.has_room(want) {
            let free = PARTIAL_FREE_BYTES.saturating_sub(buf.len());
            if free == 0 {
                let room = budget.freed.wait_until(|| budget.has_room(want) || state.closed.get());
                let _ = glommio::timer::timeout(wait, async {
                    room.await;
                    Ok(())
                })
                .await;
                continue;
            }
            want = want.min(free);
        }
        if buf.is_empty() {
            // Waiting for a new frame, maybe for long: reserve nothing, and read
            // only what a connection may hold unreserved.
            want = want.min(PARTIAL_FREE_BYTES);
        } else {
            partial.set(buf.len() + want);
        }
        ensure_room(&mut buf, want);
        let filled = buf.len();
        match recv_into(&stream, &mut buf, want, wait).await {
            Ok(0) => {
                // The peer is done sending; answer what it asked before closing.
                state.space.wait_until(|| state.in_flight_requests.get() == 0 || state.closed.get()).await;
                return if filled == 0 { "closed by peer".into() } else { "closed by peer mid-frame".into() };
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                // Silent for the whole idle timeout (a partial frame's deadline, when
                // that came first, is checked at the top of the loop).
                if wait == idle && state.in_flight_requests.get() == 0 {
                    return "idle timeout".into();
                }
            }
            Err(error) => return format!("read failed: {error}"),
        }
    }
}

/// Closes a connection whose frame did not arrive whole in time: the reason.
fn frame_too_slow(shard: &Shard, received: usize, timeout: Duration) -> String {
    let reason = format!(
        "a frame did not arrive whole within {} ms of its first byte (limits.frame_timeout_ms); {received} bytes of it came",
        timeout.as_millis()
    );
    if shard.warnings.bad_clients.allow() {
        tracing::warn!(shard = shard.id, %reason, "closing a connection");
    }
    reason
}

/// Receives up to `want` bytes into `buf`'s spare capacity (which `ensure_room`
/// made), without zeroing it first: `recv` writes straight into the buffer and only
/// the bytes it wrote become part of it. Waits, at most `idle`, for bytes to arrive.
/// `Ok(0)` when the peer closed its side.
async fn recv_into(stream: &TcpStream, buf: &mut BytesMut, want: usize, idle: Duration) -> std::io::Result<usize> {
    debug_assert!(buf.capacity() - buf.len() >= want);
    loop {
        let spare = buf.spare_capacity_mut();
        let len = want.min(spare.len());
        // SAFETY: recv writes at most `len` bytes into this spare capacity, which the
        // buffer owns; it initializes exactly the bytes it reports, and only those are
        // added to the buffer's length.
        let received = unsafe { libc::recv(stream.as_raw_fd(), spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
        if received >= 0 {
            unsafe { buf.set_len(buf.len() + received as usize) };
            return Ok(received as usize);
        }
        let error = std::io::Error::last_os_error();
        match error.kind() {
            std::io::ErrorKind::WouldBlock => {}
            std::io::ErrorKind::Interrupted => continue,
            _ => return Err(error),
        }
        // Nothing yet: wait until the socket is readable (a byte or the peer's close).
        let mut probe = [0u8; 1];
        let readable = glommio::timer::timeout(idle, stream.peek(&mut probe)).await;
        match readable {
            Ok(_) => {}
            Err(glommio::GlommioError::TimedOut(_)) => return Err(std::io::ErrorKind::TimedOut.into()),
            Err(error) => return Err(error.into()),
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
    // One size in the common case, so the allocator hands back the buffers the batch
    // cache has let go of instead of fresh pages (each a fault and a zeroing).
    let capacity = if buf.len() + want <= BUFFER_BYTES { BUFFER_BYTES } else { 2 * buf.len() + want };
    let mut fresh = BytesMut::with_capacity(capacity);
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
    frame_rest.clamp(READ_BYTES / 4, READ_BYTES)
}
