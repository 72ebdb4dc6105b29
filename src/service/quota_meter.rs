//! The token buckets behind client quotas (`quotas`), shared by every shard: one per
//! quota and name, refilled at the quota's rate, at most one second deep, starting
//! empty. A leaf module: shards hold the meter, and `quotas` (which reads the shard's
//! metadata) fills it.

use crate::metadata::quota::QuotaKey;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets remembered at once; past it, the idlest are forgotten.
pub const BUCKETS_MAX: usize = 100_000;
/// The longest a client is told to wait for one request.
pub const THROTTLE_MAX: Duration = Duration::from_secs(30);
/// A bucket holds at most this much of its rate (the burst a quiet client may send).
const BURST: Duration = Duration::from_secs(1);

/// Which bucket a request's bytes go to: the key, and the user and client id the
/// entity that set the quota names (a default entity gets one bucket per name).
pub(super) type BucketKey = (QuotaKey, Option<String>, Option<String>);

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Every quota's bucket, shared by the shards.
#[derive(Default)]
pub struct QuotaMeter {
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
}

impl QuotaMeter {
    /// Takes `bytes` from the bucket of `key` at `rate` per second: how long the client
    /// must wait.
    pub(super) fn take(&self, key: BucketKey, rate: f64, bytes: u64, now: Instant) -> Duration {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(&key) {
            let idle = now.checked_sub(BURST * 60).unwrap_or(now);
            buckets.retain(|_, bucket| bucket.last > idle);
            if buckets.len() >= BUCKETS_MAX {
                if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.last).map(|(k, _)| k.clone()) {
                    buckets.remove(&oldest);
                }
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: 0.0, last: now });
        let refilled = now.saturating_duration_since(bucket.last).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refilled).min(rate * BURST.as_secs_f64()) - bytes as f64;
        bucket.last = now;
        if bucket.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-bucket.tokens / rate).min(THROTTLE_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_rate_through_and_tells_the_rest_to_wait() {
        let meter = QuotaMeter::default();
        let key: BucketKey = (QuotaKey::ProducerByteRate, Some("alice".into()), None);
        let start = Instant::now();
        // Starts empty: 100 KB at 1 MB/s is 100 ms of debt.
        assert_eq!(meter.take(key.clone(), 1e6, 100_000, start), Duration::from_millis(100));
        // 100 ms later the debt is paid; another 100 KB is 100 ms again.
        let later = start + Duration::from_millis(100);
        assert_eq!(meter.take(key.clone(), 1e6, 100_000, later), Duration::from_millis(100));
        // A quiet second refills at most one second's worth.
        let quiet = later + Duration::from_secs(5);
        assert_eq!(meter.take(key.clone(), 1e6, 900_000, quiet), Duration::ZERO);
        assert_eq!(meter.take(key, 1e6, 200_000, quiet), Duration::from_millis(100));
    }
}
