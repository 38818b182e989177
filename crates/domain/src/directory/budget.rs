//! A per-corp call budget: one token bucket per API on the injected `Clock`, so a sync stays under the
//! platform's per-company, per-API limit (10,000/min) instead of discovering it through 45009. One budget
//! can be shared (`Arc`) by every fetch of the same corp in the process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wx_api::clock::Clock;

/// `per_minute` calls per API, refilled continuously, with at most `burst` saved up. Callers reserve a slot
/// and wait until it is due: the balance may go negative, which queues reservations in arrival order, so
/// in any minute at most `per_minute + burst` calls to one API start.
#[derive(Debug)]
pub struct CallBudget {
    per_minute: u32,
    burst: f64,
    buckets: Mutex<HashMap<&'static str, Bucket>>,
    calls: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

impl CallBudget {
    /// `per_minute` of 0 means unlimited. Buckets start full.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        CallBudget {
            per_minute,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Calls admitted so far (all APIs).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Reserve one call to `api` at `now_ms`; returns how long the caller must wait before making it.
    pub fn reserve(&self, api: &'static str, now_ms: i64) -> Duration {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.per_minute == 0 {
            return Duration::ZERO;
        }
        let per_ms = f64::from(self.per_minute) / 60_000.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(api).or_insert(Bucket {
            tokens: self.burst,
            last_ms: now_ms,
        });
        // `now_ms` may be behind `last_ms` when callers read the clock before another reserved.
        let elapsed = (now_ms - b.last_ms).max(0) as f64;
        b.tokens = (b.tokens + elapsed * per_ms).min(self.burst);
        b.last_ms = b.last_ms.max(now_ms);
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_millis((-b.tokens / per_ms).ceil() as u64)
        }
    }

    /// Reserve a call to `api` and wait (on `clock`) until it is due.
    pub async fn acquire(&self, api: &'static str, clock: &dyn Clock) {
        let now = clock.now_ms();
        let wait = self.reserve(api, now);
        if wait.is_zero() {
            return;
        }
        // Wait until an absolute due time, so waits that overlap (other tasks sleeping meanwhile) do not
        // add up on a clock that moves when slept on.
        let due = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        loop {
            let now = clock.now_ms();
            if now >= due {
                return;
            }
            clock
                .sleep(Duration::from_millis(u64::try_from(due - now).unwrap_or(0)))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/cgi-bin/user/get";
    const B: &str = "/cgi-bin/user/list";

    #[test]
    fn reservations_beyond_the_burst_are_spaced_by_the_rate() {
        let b = CallBudget::new(60, 2);
        assert_eq!(b.reserve(A, 0), Duration::ZERO);
        assert_eq!(b.reserve(A, 0), Duration::ZERO);
        // One per second: the third waits 1 s, the fourth 2 s.
        assert_eq!(b.reserve(A, 0), Duration::from_millis(1000));
        assert_eq!(b.reserve(A, 0), Duration::from_millis(2000));
        // Another API has its own bucket.
        assert_eq!(b.reserve(B, 0), Duration::ZERO);
        // After 10 s the debt is repaid and the bucket holds its burst again.
        assert_eq!(b.reserve(A, 10_000), Duration::ZERO);
        assert_eq!(b.calls(), 6);
    }

    #[test]
    fn no_minute_admits_more_than_rate_plus_burst() {
        let b = CallBudget::new(100, 5);
        // 1,000 callers arriving together: the start times they are given.
        let starts: Vec<i64> = (0..1000)
            .map(|_| i64::try_from(b.reserve(A, 0).as_millis()).unwrap())
            .collect();
        for w in 0..10 {
            let from = w * 60_000;
            let n = starts
                .iter()
                .filter(|s| **s >= from && **s < from + 60_000)
                .count();
            assert!(n <= 105, "window {w}: {n}");
        }
    }

    #[test]
    fn zero_means_unlimited() {
        let b = CallBudget::new(0, 1);
        for _ in 0..100 {
            assert_eq!(b.reserve(A, 0), Duration::ZERO);
        }
    }
}
