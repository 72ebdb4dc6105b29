//! Waiting for room: `Signal` (wakers to wake together) and `ReceiveBudget`, one
//! shard's bound on what its connections have received and not yet answered.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

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
