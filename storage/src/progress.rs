//! `Progress`: a monotonic counter that tasks on the same shard can wait on.
//!
//! Used for "bytes written to the device" and "offsets made durable". Waiting costs a
//! waker in a list; advancing wakes every waiter, which re-checks its own target. The
//! list is bounded by the number of waiting appends, which the network layer bounds.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// A failure that every present and future waiter sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub disk_full: bool,
    pub reason: String,
}

#[derive(Debug, Default)]
pub(crate) struct Progress {
    value: Cell<u64>,
    failure: RefCell<Option<Failure>>,
    waiters: RefCell<Vec<Waker>>,
}

impl Progress {
    pub fn new(value: u64) -> Progress {
        Progress { value: Cell::new(value), ..Progress::default() }
    }

    pub fn get(&self) -> u64 {
        self.value.get()
    }

    pub fn failure(&self) -> Option<Failure> {
        self.failure.borrow().clone()
    }

    /// Moves the counter forward (never back) and wakes the waiters.
    pub fn advance(&self, value: u64) {
        if value > self.value.get() {
            self.value.set(value);
            self.wake_all();
        }
    }

    /// Records a failure; every waiter returns it.
    pub fn fail(&self, failure: Failure) {
        self.failure.borrow_mut().get_or_insert(failure);
        self.wake_all();
    }

    /// Resolves once the counter reaches `target`, or with the recorded failure.
    pub async fn wait_for(&self, target: u64) -> Result<(), Failure> {
        poll_fn(|cx| {
            if self.value.get() >= target {
                return Poll::Ready(Ok(()));
            }
            if let Some(failure) = self.failure.borrow().as_ref() {
                return Poll::Ready(Err(failure.clone()));
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }
}
