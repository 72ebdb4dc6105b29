//! The task quota: how long a task on a shard runs before the reactor gets the core
//! back to submit and reap I/O. Appends that never wait would otherwise hold the
//! shard for glommio's whole preemption period.

/// How long a task runs before it yields to the reactor (glommio's preempt timer, and
/// `yield_after_quota`) so I/O is submitted and reaped.
/// glommio's default is 100 ms, far too long for a broker whose appends wait on disk
/// completions; Seastar-style runtimes use about half a millisecond.
pub const TASK_QUOTA: std::time::Duration = std::time::Duration::from_micros(500);

thread_local! {
    /// When this shard's thread last yielded in `yield_after_quota`.
    static LAST_YIELD: std::cell::Cell<std::time::Instant> = std::cell::Cell::new(std::time::Instant::now());
}

/// Yields the current task once `TASK_QUOTA` has passed since this thread last
/// yielded here, so work that never waits (appends to `fsync = never` logs, back to
/// back) still lets the reactor submit writes and reap completions.
///
/// Not `glommio::yield_if_needed`: that yields whenever glommio's latency ring holds a
/// completion, and every completion of the main ring (each socket and disk operation)
/// puts one there through the rings' shared eventfd. Under load that is nearly every
/// call, and each yield is a full trip through the reactor (several io_uring_enter
/// calls, about 100 µs on this VM): measured at 200 MB/s of 40 KB produce requests,
/// appends spent 195 ms of every second yielding, 3 ms with this.
pub async fn yield_after_quota() {
    let now = std::time::Instant::now();
    if now.duration_since(LAST_YIELD.with(|last| last.get())) >= TASK_QUOTA {
        LAST_YIELD.with(|last| last.set(now));
        glommio::executor().yield_task_queue_now().await;
    }
}
