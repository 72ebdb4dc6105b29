//! Repeated authentication failures from one address are answered ever later: the
//! first after `sasl.failure_delay_ms`, each one after it twice as late, up to
//! `sasl.failure_delay_max_ms`. The delay holds only the failing connection (its task
//! sleeps before the answer and the close), never a shard or anyone else's connection.
//! An address that has not failed for `QUIET` starts over.
//!
//! Shared by every shard (a client's connections land on any of them), behind a mutex
//! taken only when an authentication fails or succeeds. At most `ADDRESSES_MAX`
//! addresses are remembered; past that the one that failed longest ago is forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses remembered at once.
pub const ADDRESSES_MAX: usize = 10_000;
/// Without a failure for this long, an address's delay starts over.
const QUIET: Duration = Duration::from_secs(60);

/// Failures in a row by address.
pub struct FailureDelays {
    first: Duration,
    max: Duration,
    by_address: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureDelays {
    pub fn new(first_ms: u64, max_ms: u64) -> FailureDelays {
        FailureDelays {
            first: Duration::from_millis(first_ms),
            max: Duration::from_millis(max_ms),
            by_address: Mutex::default(),
        }
    }

    /// Counts a failure from `address`: how long to wait before answering it.
    pub fn failed(&self, address: Option<IpAddr>) -> Duration {
        let Some(address) = address else { return self.first };
        let now = Instant::now();
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= ADDRESSES_MAX && !map.contains_key(&address) {
            map.retain(|_, (_, last)| now.duration_since(*last) < QUIET);
            if map.len() >= ADDRESSES_MAX {
                let oldest = map.iter().min_by_key(|(_, (_, last))| *last).map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(address).or_insert((0, now));
        if now.duration_since(entry.1) >= QUIET {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let doublings = (entry.0 - 1).min(20);
        (self.first * 2u32.pow(doublings)).min(self.max)
    }

    /// An authentication from `address` succeeded: its count starts over.
    pub fn succeeded(&self, address: Option<IpAddr>) {
        if let Some(address) = address {
            self.by_address.lock().unwrap_or_else(|p| p.into_inner()).remove(&address);
        }
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.by_address.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_address_up_to_the_most() {
        let delays = FailureDelays::new(100, 1_000);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let seen: Vec<u64> = (0..6).map(|_| delays.failed(Some(a)).as_millis() as u64).collect();
        assert_eq!(seen, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(delays.failed(Some(b)), Duration::from_millis(100), "another address is not slowed");
        delays.succeeded(Some(a));
        assert_eq!(delays.failed(Some(a)), Duration::from_millis(100), "a success starts over");
    }

    #[test]
    fn the_addresses_remembered_are_bounded() {
        let delays = FailureDelays::new(1, 10);
        for i in 0..(ADDRESSES_MAX as u32 + 50) {
            delays.failed(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert_eq!(delays.len(), ADDRESSES_MAX);
    }
}
