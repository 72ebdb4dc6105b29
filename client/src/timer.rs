//! A runtime-agnostic sleep: one process-wide thread wakes futures at their
//! deadlines, so the client's async calls can time out under any executor (tokio,
//! async-std, `block_on`) without depending on one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

struct Entry {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

struct Timers {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    changed: Condvar,
}

fn timers() -> &'static Timers {
    static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let timers: &'static Timers =
            Box::leak(Box::new(Timers { heap: Mutex::new(BinaryHeap::new()), changed: Condvar::new() }));
        std::thread::Builder::new()
            .name("strand-client-timer".into())
            .spawn(move || run(timers))
            .expect("spawning the client's timer thread");
        timers
    })
}

fn run(timers: &'static Timers) {
    let mut heap = timers.heap.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(entry)| entry.at <= now) {
            let Reverse(entry) = heap.pop().expect("peeked");
            entry.waker.wake();
        }
        heap = match heap.peek() {
            Some(Reverse(entry)) => {
                let wait = entry.at.saturating_duration_since(now);
                timers.changed.wait_timeout(heap, wait).unwrap_or_else(|p| p.into_inner()).0
            }
            None => timers.changed.wait(heap).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

/// Resolves at `at`.
pub struct Sleep {
    at: Instant,
    /// The waker last registered; a poll with the same waker registers nothing new.
    registered: Option<Waker>,
}

/// A future that resolves at `at`.
pub fn sleep_until(at: Instant) -> Sleep {
    Sleep { at, registered: None }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        // A replaced waker stays in the heap until the deadline and then costs one
        // spurious wake-up; a poll with the same waker adds nothing.
        if !self.registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let timers = timers();
            let entry = Entry { at: self.at, waker: cx.waker().clone() };
            timers.heap.lock().unwrap_or_else(|p| p.into_inner()).push(Reverse(entry));
            timers.changed.notify_one();
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}
