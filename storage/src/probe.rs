//! Failure probes: hooks where storage tests inject I/O failures, so that the paths
//! that handle a failing disk are tested by construction (as Redpanda's storage
//! failure probes do). Compiled only for tests; in the product they are no-ops the
//! optimizer removes.

use std::io;

/// Makes every direct write after the next `allowed` ones fail with EIO, on this
/// thread; `None` disarms.
#[cfg(test)]
pub(crate) fn fail_writes_after(allowed: Option<u64>) {
    armed::WRITES_BEFORE_FAILURE.with(|cell| cell.set(allowed));
}

/// Makes every fdatasync after the next `allowed` ones fail with EIO, on this thread;
/// `None` disarms.
#[cfg(test)]
pub(crate) fn fail_syncs_after(allowed: Option<u64>) {
    armed::SYNCS_BEFORE_FAILURE.with(|cell| cell.set(allowed));
}

/// The injected failure of this direct write, if one is armed.
#[inline]
pub(crate) fn write() -> Option<io::Error> {
    #[cfg(test)]
    if armed::take(&armed::WRITES_BEFORE_FAILURE) {
        return Some(io::Error::from_raw_os_error(libc::EIO));
    }
    None
}

/// The injected failure of this fdatasync, if one is armed.
#[inline]
pub(crate) fn sync() -> Option<io::Error> {
    #[cfg(test)]
    if armed::take(&armed::SYNCS_BEFORE_FAILURE) {
        return Some(io::Error::from_raw_os_error(libc::EIO));
    }
    None
}

#[cfg(test)]
mod armed {
    use std::cell::Cell;

    thread_local! {
        /// Direct writes still allowed before every later one fails; `None`: no fault.
        pub static WRITES_BEFORE_FAILURE: Cell<Option<u64>> = const { Cell::new(None) };
        /// fdatasyncs still allowed before every later one fails.
        pub static SYNCS_BEFORE_FAILURE: Cell<Option<u64>> = const { Cell::new(None) };
    }

    pub fn take(counter: &'static std::thread::LocalKey<Cell<Option<u64>>>) -> bool {
        counter.with(|cell| match cell.get() {
            None => false,
            Some(0) => true,
            Some(left) => {
                cell.set(Some(left - 1));
                false
            }
        })
    }
}
