//! Responses on their way out: a response is a list of pieces, owned bytes (headers
//! and small fields, encoded once) and stored chunks (batches as the log holds them,
//! never re-encoded or copied into a response buffer). A connection's writer task
//! drains its queue, gathering small pieces into one send and sending large chunks
//! straight from the cache or the direct-read buffer.

use crate::storage::Chunk;
use futures_lite::io::AsyncWriteExt;
use glommio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

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
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Owned(bytes) => bytes,
            Piece::Stored(chunk) => chunk,
        }
    }
}

/// A response ready to send, and the request bytes it releases once sent.
pub struct Outgoing {
    pub pieces: Vec<Piece>,
    pub request_bytes: usize,
    /// Response bytes held against the connection's budget until this is sent.
    pub budget: Option<glommio::sync::StaticPermit>,
}

/// A set of wakers to wake together: the writer waiting for work, the reader waiting
/// for in-flight bytes to fall.
#[derive(Default)]
pub struct Signal {
    waiters: RefCell<Vec<Waker>>,
}

impl Signal {
    pub fn notify(&self) {
        for waker in std::mem::take(&mut *self.waiters.borrow_mut()) {
            waker.wake();
        }
    }

    /// Waits until `ready()` holds, re-checking after each notification.
    pub async fn wait_until(&self, ready: impl Fn() -> bool) {
        poll_fn(|cx| {
            if ready() {
                return Poll::Ready(());
            }
            let mut waiters = self.waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// One shard's budget for what its connections have received and not yet answered:
/// partially received frames and requests in flight, over every connection
/// (`limits.receive_bytes_max`). Past it, connections holding more than a small
/// partial frame stop reading until bytes are freed, so many large frames arriving
/// slowly cannot grow the shard, while small requests keep getting through.
pub struct ReceiveBudget {
    used: Cell<usize>,
    max: usize,
    /// Notified whenever bytes are given back.
    pub freed: Signal,
}

impl ReceiveBudget {
    pub fn new(max: usize) -> ReceiveBudget {
        ReceiveBudget { used: Cell::new(0), max, freed: Signal::default() }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.get()
    }

    /// Whether `more` bytes fit.
    pub fn has_room(&self, more: usize) -> bool {
        self.used.get() + more <= self.max
    }

    pub fn claim(&self, bytes: usize) {
        self.used.set(self.used.get() + bytes);
    }

    /// Gives `bytes` back. Waiting connections are woken only once an eighth of the
    /// budget is free (a low-water mark): waking every waiter at each small release
    /// (the answer to one small request) costs the shard a pass over all of them.
    pub fn release(&self, bytes: usize) {
        debug_assert!(self.used.get() >= bytes);
        self.used.set(self.used.get().saturating_sub(bytes));
        if self.used.get() <= self.max - self.max / 8 {
            self.freed.notify();
        }
    }
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
    queue: RefCell<VecDeque<Outgoing>>,
    pub work: Signal,
    /// Request bytes read whose response has not been sent yet.
    pub in_flight_bytes: Cell<usize>,
    /// Requests read whose response has not been sent yet.
    pub in_flight_requests: Cell<usize>,
    pub space: Signal,
    pub closed: Cell<bool>,
    /// The shard's receive budget, which in-flight request bytes count against.
    pub budget: Rc<ReceiveBudget>,
}

impl ConnectionState {
    /// The state of a new connection with `response_budget_bytes` for fetch responses.
    pub fn new(response_budget_bytes: usize, budget: Rc<ReceiveBudget>) -> ConnectionState {
        ConnectionState {
            response_budget: Rc::new(glommio::sync::Semaphore::new(response_budget_bytes as u64)),
            response_budget_bytes,
            queue: RefCell::default(),
            work: Signal::default(),
            in_flight_bytes: Cell::new(0),
            in_flight_requests: Cell::new(0),
            space: Signal::default(),
            closed: Cell::new(false),
            budget,
        }
    }

    /// Counts a request read off the socket.
    pub fn start_request(&self, bytes: usize) {
        self.in_flight_bytes.set(self.in_flight_bytes.get() + bytes);
        self.in_flight_requests.set(self.in_flight_requests.get() + 1);
        self.budget.claim(bytes);
    }

    /// Releases a request that needs no response (acks = 0).
    pub fn finish_request(&self, bytes: usize) {
        self.in_flight_bytes.set(self.in_flight_bytes.get() - bytes);
        self.in_flight_requests.set(self.in_flight_requests.get() - 1);
        self.budget.release(bytes);
        self.space.notify();
    }

    /// Queues a response for the writer.
    pub fn send(&self, outgoing: Outgoing) {
        if self.closed.get() {
            self.finish_request(outgoing.request_bytes);
            return;
        }
        self.queue.borrow_mut().push_back(outgoing);
        self.work.notify();
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
pub async fn write_loop(mut stream: TcpStream, state: Rc<ConnectionState>) {
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
            released += outgoing.request_bytes;
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
        state.in_flight_bytes.set(state.in_flight_bytes.get() - released);
        state.in_flight_requests.set(state.in_flight_requests.get() - requests);
        state.budget.release(released);
        state.space.notify();
        if let Err(error) = result {
            tracing::debug!(%error, "send failed; closing the connection");
            state.close();
            // Responses that will never be sent give their bytes back.
            let unsent: Vec<Outgoing> = state.queue.borrow_mut().drain(..).collect();
            for outgoing in unsent {
                state.finish_request(outgoing.request_bytes);
            }
            let _ = stream.shutdown(std::net::Shutdown::Both).await;
            return;
        }
        if state.closed.get() && state.queue.borrow().is_empty() {
            let _ = stream.shutdown(std::net::Shutdown::Write).await;
            return;
        }
    }
}

async fn send_gathered(stream: &mut TcpStream, gathered: &mut Vec<u8>) -> std::io::Result<()> {
    if gathered.is_empty() {
        return Ok(());
    }
    let result = stream.write_all(gathered).await;
    gathered.clear();
    result
}
