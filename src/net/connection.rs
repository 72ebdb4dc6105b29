//! One client connection, whatever its protocol: a reader that splits frames (the
//! protocol's framing) and dispatches them (the protocol's handler), and a writer task
//! (`writer::write_loop`) that sends answers in the protocol's order.
//!
//! Bounds: a frame larger than `limits.frame_bytes_max` closes the connection before
//! its payload is read; request bytes in flight past `limits.in_flight_bytes_max` stop
//! the reader until responses go out; the receive buffer grows only as bytes arrive
//! (at most one read's worth beyond the frame being assembled); a connection silent for
//! `limits.idle_timeout_ms` with nothing in flight is closed.
//!
//! Across connections, a shard's partially received frames and in-flight requests
//! share one budget (`limits.receive_bytes_max`, `ReceiveBudget`): past it, a
//! connection whose partial frame is over `PARTIAL_FREE_BYTES` stops reading until
//! bytes are freed, while connections with small requests read on. A frame must
//! arrive whole within `limits.frame_timeout_ms` of its first byte, however slowly its
//! bytes trickle in, or the connection is closed with the reason logged.

use super::budget::ReceiveBudget;
use super::transport::{Transport, TransportRead};
use super::writer::{write_loop, ConnectionState};
use super::Protocol;
use crate::shard::Shard;
use bytes::BytesMut;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bytes asked of one read.
const READ_BYTES: usize = 256 * 1024;
/// Size of a fresh receive buffer (larger when one frame needs more).
const BUFFER_BYTES: usize = 8 << 20;
/// A partial frame up to this size is read whatever the shard's receive budget says,
/// so that small requests always get through.
const PARTIAL_FREE_BYTES: usize = 64 * 1024;

/// Serves one accepted connection until the peer closes it, it breaks a rule, or it
/// idles out.
pub async fn serve<P: Protocol, T: Transport + 'static>(shard: Rc<Shard>, protocol: Rc<P>, transport: T) {
    let peer = transport.peer();
    let peer_ip = transport.peer_ip();
    let certificate = transport.certificate_principal();
    let (reader, writer) = match transport.split() {
        Ok(halves) => halves,
        Err(error) => {
            if shard.warnings.accept_failed.allow() {
                tracing::warn!(%peer, %error, "cannot serve connection");
            }
            return;
        }
    };
    let in_flight_max = shard.config.limits.in_flight_bytes_max as usize;
    let state = Rc::new(ConnectionState::new(in_flight_max, shard.receive.clone(), protocol.order(), peer_ip));
    if let Some(name) = certificate {
        state.session.borrow_mut().principal = crate::auth::Principal::User(name);
    }
    let writing = glommio::spawn_local(write_loop(writer, state.clone()));
    let reason = read_loop(&shard, &*protocol, reader, &state).await;
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
async fn read_loop<P: Protocol, R: TransportRead>(
    shard: &Rc<Shard>,
    protocol: &P,
    mut stream: R,
    state: &Rc<ConnectionState>,
) -> String {
    let idle = Duration::from_millis(shard.config.limits.idle_timeout_ms);
    let frame_timeout = Duration::from_millis(shard.config.limits.frame_timeout_ms);
    let in_flight_max = shard.config.limits.in_flight_bytes_max as usize;
    let mut buf = BytesMut::with_capacity(BUFFER_BYTES);
    let mut partial = PartialClaim { budget: shard.receive.clone(), claimed: 0 };
    // When the first byte of the frame being assembled arrived.
    let mut frame_started: Option<Instant> = None;
    loop {
        if let Err(reason) = dispatch_whole_frames(shard, protocol, state, &mut buf).await {
            return reason;
        }
        if state.is_closed() {
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
        if state.in_flight_bytes() > in_flight_max {
            state.space.wait_until(|| state.in_flight_bytes() <= in_flight_max || state.is_closed()).await;
        }
        // The shard's budget (the partial frame's deadline still runs while it waits).
        let Some(want) = reserve_read(&shard.receive, state, &mut partial, &buf, read_size(&buf, protocol), wait).await
        else {
            continue;
        };
        ensure_room(&mut buf, want);
        let filled = buf.len();
        match stream.read_into(&mut buf, want, wait).await {
            Ok(0) => {
                // The peer is done sending; answer what it asked before closing.
                state.space.wait_until(|| state.in_flight_requests() == 0 || state.is_closed()).await;
                return if filled == 0 { "closed by peer".into() } else { "closed by peer mid-frame".into() };
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                // Silent for the whole idle timeout (a partial frame's deadline, when
                // that came first, is checked at the top of the loop).
                if wait == idle && state.in_flight_requests() == 0 {
                    return "idle timeout".into();
                }
            }
            Err(error) => return format!("read failed: {error}"),
        }
    }
}

/// Dispatches every whole frame at the front of `buf`; `Err` (the reason) closes the
/// connection.
async fn dispatch_whole_frames<P: Protocol>(
    shard: &Shard,
    protocol: &P,
    state: &Rc<ConnectionState>,
    buf: &mut BytesMut,
) -> Result<(), String> {
    loop {
        // A client over its quota is not read until its throttle time has passed.
        state.wait_unmuted().await;
        match protocol.split_frame(buf) {
            Ok(Some(frame)) => protocol.dispatch(state, frame).await?,
            Ok(None) => return Ok(()),
            Err(reason) => {
                if shard.warnings.bad_clients.allow() {
                    tracing::warn!(shard = shard.id, %reason, "closing a connection that sent a bad frame");
                }
                return Err(reason);
            }
        }
    }
}

/// How much the next read may take, `want` at most, under the shard's receive
/// budget: a partial frame reads on up to `PARTIAL_FREE_BYTES` whatever the budget
/// says; past that it waits (at most `wait`) for room and returns `None`, to be asked
/// again. The read is reserved (in `partial`) before it starts, so reads under way on
/// many connections cannot overshoot the budget together; a connection waiting for a
/// new frame, maybe for long, reserves nothing and reads only what it may hold
/// unreserved.
async fn reserve_read(
    budget: &ReceiveBudget,
    state: &ConnectionState,
    partial: &mut PartialClaim,
    buf: &BytesMut,
    mut want: usize,
    wait: Duration,
) -> Option<usize> {
    if !budget.has_room(want) {
        let free = PARTIAL_FREE_BYTES.saturating_sub(buf.len());
        if free == 0 {
            let room = budget.freed.wait_until(|| budget.has_room(want) || state.is_closed());
            let _ = glommio::timer::timeout(wait, async {
                room.await;
                Ok(())
            })
            .await;
            return None;
        }
        want = want.min(free);
    }
    if buf.is_empty() {
        want = want.min(PARTIAL_FREE_BYTES);
    } else {
        partial.set(buf.len() + want);
    }
    Some(want)
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
fn read_size<P: Protocol>(buf: &BytesMut, protocol: &P) -> usize {
    let frame_rest = protocol.frame_bytes(buf).map_or(0, |bytes| bytes.saturating_sub(buf.len()));
    frame_rest.clamp(READ_BYTES / 4, READ_BYTES)
}
