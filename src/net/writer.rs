//! Responses on their way out: a response is a list of pieces, owned bytes (headers
//! and small fields, encoded once) and stored chunks (batches as the log holds them,
//! never re-encoded or copied into a response buffer). A connection's writer task
//! drains its queue, gathering small pieces into one send and sending large chunks
//! straight from the cache or the direct-read buffer.
//!
//! Each protocol says in what order its answers go out (`ResponseOrder`): the native
//! protocol matches answers to requests by correlation id, so they go as they
//! complete; Kafka requires them in request order on each connection, so an answer
//! that completes early waits for the ones before it.

use super::budget::{ReceiveBudget, Signal};
use super::transport::TransportWrite;
use crate::storage::Chunk;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// In what order a connection's answers are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseOrder {
    /// As each completes (the client matches them by correlation id).
    AsCompleted,
    /// In the order the requests arrived.
    RequestOrder,
}

/// A request read off a connection: its place in the connection's order and the
/// bytes it holds until answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSlot {
    pub sequence: u64,
    pub bytes: usize,
}

/// Requests one connection may have in flight before the shard stops reading it
/// (each in-flight request holds a task; this bounds tasks as in-flight bytes bound
/// memory).
pub const IN_FLIGHT_REQUESTS_MAX: usize = 4096;

/// Pieces of a response at least this large are sent on their own, not gathered.
const DIRECT_SEND_BYTES_MIN: usize = 16 * 1024;
/// Bytes gathered before one send.
const GATHER_BYTES_MAX: usize = 256 * 1024;

/// One piece of a response.
pub enum Piece {
    Owned(Vec<u8>),
    Stored(Chunk),
}

impl Piece {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Owned(bytes) => bytes,
            Piece::Stored(chunk) => chunk,
        }
    }
}

/// A response ready to send, and the request it answers (whose bytes it releases
/// once sent).
pub struct Outgoing {
    pub pieces: Vec<Piece>,
    pub slot: RequestSlot,
    /// Response bytes held against the connection's budget until this is sent.
    pub budget: Option<glommio::sync::StaticPermit>,
}

/// The state a connection's reader, handlers and writer share.
pub struct ConnectionState {
    /// Bytes of fetch responses the connection may hold at once (a fetch takes its
    /// `max_bytes` before it reads, and gives it back once its response is sent), so
    /// a client that pipelines fetches and never reads cannot make the shard buffer
    /// more than `limits.in_flight_bytes_max`. Fetches wait for it; the socket keeps
    /// being read, so produce requests on the same connection are not held up.
    pub response_budget: Rc<glommio::sync::Semaphore>,
    pub response_budget_bytes: usize,
    order: ResponseOrder,
    queue: RefCell<VecDeque<Outgoing>>,
    /// With `RequestOrder`: answers that completed before an earlier one, by sequence.
    held: RefCell<BTreeMap<u64, Outgoing>>,
    /// The sequence of the next request read, and of the next answer to queue.
    next_request: Cell<u64>,
    next_answer: Cell<u64>,
    work: Signal,
    /// Request bytes read whose response has not been sent yet.
    in_flight_bytes: Cell<usize>,
    /// Requests read whose response has not been sent yet.
    in_flight_requests: Cell<usize>,
    /// Notified when in-flight requests are answered or the connection closes.
    pub space: Signal,
    closed: Cell<bool>,
    /// The shard's receive budget, which in-flight request bytes count against.
    budget: Rc<ReceiveBudget>,
    /// The client's IP address, when the transport knows it.
    pub peer: Option<std::net::IpAddr>,
    /// Who the client has proven to be (a client certificate, SASL).
    pub session: RefCell<crate::auth::Session>,
    /// Until when no request of the connection is read: a client over its quota
    /// (`service::quotas`).
    muted_until: Cell<Option<std::time::Instant>>,
}

impl ConnectionState {
    /// The state of a new connection from `peer` with `response_budget_bytes` for
    /// fetch responses, answering in `order`.
    pub fn new(
        response_budget_bytes: usize,
        budget: Rc<ReceiveBudget>,
        order: ResponseOrder,
        peer: Option<std::net::IpAddr>,
    ) -> ConnectionState {
        ConnectionState {
            response_budget: Rc::new(glommio::sync::Semaphore::new(response_budget_bytes as u64)),
            response_budget_bytes,
            order,
            queue: RefCell::default(),
            held: RefCell::default(),
            next_request: Cell::new(0),
            next_answer: Cell::new(0),
            work: Signal::default(),
            in_flight_bytes: Cell::new(0),
            in_flight_requests: Cell::new(0),
            space: Signal::default(),
            closed: Cell::new(false),
            budget,
            peer,
            session: RefCell::default(),
            muted_until: Cell::new(None),
        }
    }

    /// Counts a request of `bytes` read off the socket; its answer is to be sent for
    /// the slot returned.
    pub fn start_request(&self, bytes: usize) -> RequestSlot {
        self.in_flight_bytes.set(self.in_flight_bytes.get() + bytes);
        self.in_flight_requests.set(self.in_flight_requests.get() + 1);
        self.budget.claim(bytes);
        let sequence = self.next_request.get();
        self.next_request.set(sequence + 1);
        RequestSlot { sequence, bytes }
    }

    /// Waits while the connection has `IN_FLIGHT_REQUESTS_MAX` requests unanswered.
    pub async fn wait_for_request_slot(&self) {
        if self.in_flight_requests() >= IN_FLIGHT_REQUESTS_MAX {
            self.space.wait_until(|| self.in_flight_requests() < IN_FLIGHT_REQUESTS_MAX || self.is_closed()).await;
        }
    }

    /// Releases a request that gets no answer (a produce with acks = 0).
    pub fn finish_request(&self, slot: RequestSlot) {
        if self.order == ResponseOrder::RequestOrder && !self.closed.get() {
            // Later answers may be waiting on this one's turn.
            self.send(Outgoing { pieces: Vec::new(), slot, budget: None });
            return;
        }
        self.release(slot.bytes, 1);
    }

    fn release(&self, bytes: usize, requests: usize) {
        self.in_flight_bytes.set(self.in_flight_bytes.get() - bytes);
        self.in_flight_requests.set(self.in_flight_requests.get() - requests);
        self.budget.release(bytes);
        self.space.notify();
    }

    /// Queues an answer for the writer (with `RequestOrder`, once every earlier one is
    /// queued).
    pub fn send(&self, outgoing: Outgoing) {
        if self.closed.get() {
            self.release(outgoing.slot.bytes, 1);
            return;
        }
        match self.order {
            ResponseOrder::AsCompleted => self.queue.borrow_mut().push_back(outgoing),
            ResponseOrder::RequestOrder => {
                let mut held = self.held.borrow_mut();
                held.insert(outgoing.slot.sequence, outgoing);
                let mut queue = self.queue.borrow_mut();
                while let Some(next) = held.remove(&self.next_answer.get()) {
                    self.next_answer.set(self.next_answer.get() + 1);
                    queue.push_back(next);
                }
            }
        }
        self.work.notify();
    }

    /// Reads no further request for `throttle` (a client over its quota); the
    /// longer of this and an earlier mute holds.
    pub fn mute_for(&self, throttle: std::time::Duration) {
        if throttle.is_zero() {
            return;
        }
        let until = std::time::Instant::now() + throttle;
        if self.muted_until.get().is_none_or(|earlier| earlier < until) {
            self.muted_until.set(Some(until));
        }
    }

    /// Waits out a mute, if one holds.
    pub async fn wait_unmuted(&self) {
        while let Some(until) = self.muted_until.get() {
            let now = std::time::Instant::now();
            if until <= now || self.is_closed() {
                self.muted_until.set(None);
                return;
            }
            glommio::timer::sleep(until - now).await;
        }
    }

    /// Request bytes read and not yet answered.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes.get()
    }

    /// Requests read and not yet answered.
    pub fn in_flight_requests(&self) -> usize {
        self.in_flight_requests.get()
    }

    /// Whether the connection is closing (the peer left, or a send failed).
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Stops the writer once its queue is empty.
    pub fn close(&self) {
        self.closed.set(true);
        self.response_budget.close();
        self.work.notify();
        self.space.notify();
    }
}

/// Sends queued responses until the connection closes or a send fails.
pub async fn write_loop<W: TransportWrite>(mut stream: W, state: Rc<ConnectionState>) {
    let mut gathered: Vec<u8> = Vec::with_capacity(GATHER_BYTES_MAX);
    loop {
        state.work.wait_until(|| !state.queue.borrow().is_empty() || state.closed.get()).await;
        let mut released = 0usize;
        let mut requests = 0usize;
        let mut result = Ok(());
        loop {
            // Not `while let`: its temporary borrow would live across the sends below,
            // while handlers queue more responses.
            let next = state.queue.borrow_mut().pop_front();
            let Some(outgoing) = next else { break };
            // Held until this response's bytes are handed to the socket.
            let _budget = outgoing.budget;
            released += outgoing.slot.bytes;
            requests += 1;
            for piece in outgoing.pieces {
                let bytes = piece.bytes();
                if bytes.len() >= DIRECT_SEND_BYTES_MIN {
                    result = send_gathered(&mut stream, &mut gathered).await;
                    if result.is_ok() {
                        result = stream.write_all(bytes).await;
                    }
                } else {
                    gathered.extend_from_slice(bytes);
                    if gathered.len() >= GATHER_BYTES_MAX {
                        result = send_gathered(&mut stream, &mut gathered).await;
                    }
                }
                if result.is_err() {
                    break;
                }
            }
            if result.is_err() || released >= GATHER_BYTES_MAX {
                break;
            }
        }
        if result.is_ok() {
            result = send_gathered(&mut stream, &mut gathered).await;
        }
        state.release(released, requests);
        if let Err(error) = result {
            tracing::debug!(%error, "send failed; closing the connection");
            state.close();
            // Responses that will never be sent give their bytes back.
            let mut unsent: Vec<Outgoing> = state.queue.borrow_mut().drain(..).collect();
            unsent.extend(std::mem::take(&mut *state.held.borrow_mut()).into_values());
            for outgoing in unsent {
                state.release(outgoing.slot.bytes, 1);
            }
            stream.shutdown(true).await;
            return;
        }
        if state.closed.get() && state.queue.borrow().is_empty() {
            stream.shutdown(false).await;
            return;
        }
    }
}

async fn send_gathered<W: TransportWrite>(stream: &mut W, gathered: &mut Vec<u8>) -> std::io::Result<()> {
    if gathered.is_empty() {
        return Ok(());
    }
    let result = stream.write_all(gathered).await;
    gathered.clear();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(slot: RequestSlot) -> Outgoing {
        Outgoing { pieces: vec![Piece::Owned(vec![slot.sequence as u8])], slot, budget: None }
    }

    fn queued(state: &ConnectionState) -> Vec<u64> {
        state.queue.borrow().iter().map(|outgoing| outgoing.slot.sequence).collect()
    }

    fn connection(order: ResponseOrder) -> ConnectionState {
        ConnectionState::new(1 << 20, Rc::new(ReceiveBudget::new(1 << 30)), order, None)
    }

    /// Kafka's rule: an answer that completes early waits for those before it, and a
    /// request that gets no answer (acks 0) still takes its turn.
    #[test]
    fn request_order_holds_an_early_answer_until_those_before_it() {
        let state = connection(ResponseOrder::RequestOrder);
        let (first, second, third) = (state.start_request(10), state.start_request(20), state.start_request(30));
        state.send(answer(third));
        assert!(queued(&state).is_empty(), "the third waits for the first two");
        state.finish_request(first);
        assert_eq!(queued(&state), vec![0], "the unanswered first passes its turn");
        state.send(answer(second));
        assert_eq!(queued(&state), vec![0, 1, 2]);
        assert_eq!(state.in_flight_requests(), 3, "released only once the writer sends them");
    }

    /// The native protocol's rule: answers go as they complete.
    #[test]
    fn as_completed_sends_each_answer_at_once() {
        let state = connection(ResponseOrder::AsCompleted);
        let (first, second) = (state.start_request(10), state.start_request(20));
        state.send(answer(second));
        assert_eq!(queued(&state), vec![1]);
        state.finish_request(first);
        assert_eq!(queued(&state), vec![1], "an unanswered request is released, not queued");
        assert_eq!((state.in_flight_requests(), state.in_flight_bytes()), (1, 20));
    }
}
