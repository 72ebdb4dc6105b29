//! Warnings that a flood can repeat, rate-limited per shard and kind.
//!
//! One client can cause the same warning thousands of times a second (connections
//! refused past `limits.connections_max`, accept failures while descriptors run out,
//! bad frames, partitions that cannot open). Each kind logs at most
//! `LINES_PER_WINDOW` lines per `WINDOW`; the rest are counted and summarised in one
//! line when the window ends ("1,024 more connections refused in the last 10 s"), so
//! a flood grows the log by at most `LINES_PER_WINDOW + 1` lines per kind per window.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Length of one rate-limiting window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Lines one kind of warning logs per window before it only counts.
pub const LINES_PER_WINDOW: u32 = 10;

/// One kind of warning's window: lines logged and events left unlogged.
pub struct Throttle {
    /// What the summary line counts, in the plural ("connections refused").
    what: &'static str,
    window_start: Cell<Option<Instant>>,
    logged: Cell<u32>,
    suppressed: Cell<u64>,
}

impl Throttle {
    /// A throttle whose summary says "N more `what` in the last 10 s".
    pub const fn new(what: &'static str) -> Throttle {
        Throttle { what, window_start: Cell::new(None), logged: Cell::new(0), suppressed: Cell::new(0) }
    }

    /// Whether this occurrence may be logged; if not, it is counted for the summary.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        self.roll(now);
        if self.window_start.get().is_none() {
            self.window_start.set(Some(now));
        }
        if self.logged.get() < LINES_PER_WINDOW {
            self.logged.set(self.logged.get() + 1);
            true
        } else {
            self.suppressed.set(self.suppressed.get() + 1);
            false
        }
    }

    /// Ends the window if it is over, logging the summary of what it left unlogged.
    /// Called on the shard's periodic tick, so a summary comes even after a flood
    /// stops.
    pub fn tick(&self) {
        self.roll(Instant::now());
    }

    fn roll(&self, now: Instant) -> Option<u64> {
        let start = self.window_start.get()?;
        if now.duration_since(start) < WINDOW {
            return None;
        }
        let suppressed = self.suppressed.replace(0);
        if suppressed > 0 {
            tracing::warn!(
                "{} more {} in the last {} s (not logged one by one)",
                thousands(suppressed),
                self.what,
                WINDOW.as_secs()
            );
        }
        self.window_start.set(None);
        self.logged.set(0);
        Some(suppressed)
    }
}

/// The kinds of warning a shard rate-limits.
pub struct Warnings {
    pub connections_refused: Throttle,
    pub accept_failed: Throttle,
    pub bad_clients: Throttle,
    pub tls_failures: Throttle,
    pub auth_failures: Throttle,
    pub authorization_denials: Throttle,
}

impl Default for Warnings {
    fn default() -> Self {
        Warnings {
            connections_refused: Throttle::new("connections refused"),
            accept_failed: Throttle::new("accept failures"),
            bad_clients: Throttle::new("connections closed for bad frames or requests"),
            tls_failures: Throttle::new("failed TLS handshakes"),
            auth_failures: Throttle::new("failed authentications"),
            authorization_denials: Throttle::new("authorization denials"),
        }
    }
}

impl Warnings {
    /// Ends every window that is over (see [`Throttle::tick`]).
    pub fn tick(&self) {
        for throttle in [
            &self.connections_refused,
            &self.accept_failed,
            &self.bad_clients,
            &self.tls_failures,
            &self.auth_failures,
            &self.authorization_denials,
        ] {
            throttle.tick();
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_a_bounded_number_of_lines_per_window() {
        let throttle = Throttle::new("things");
        let start = Instant::now();
        let allowed = (0..5_000).filter(|_| throttle.allow_at(start)).count();
        assert_eq!(allowed, LINES_PER_WINDOW as usize);
        // Within the window nothing changes; once it is over, the count is reported
        // and a new window allows lines again.
        assert_eq!(throttle.roll(start + WINDOW / 2), None);
        assert_eq!(throttle.roll(start + WINDOW), Some(5_000 - u64::from(LINES_PER_WINDOW)));
        assert!(throttle.allow_at(start + WINDOW));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_024), "1,024");
        assert_eq!(thousands(21_048_000), "21,048,000");
    }
}
