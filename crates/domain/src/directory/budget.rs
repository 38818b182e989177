//! A per-corp call budget: token buckets per API on the injected `Clock`, so a sync stays under the
//! platform's per-company, per-API limits (10,000/min and 150,000/hour) instead of discovering them through
//! 45009 (whose hourly block lasts an hour). One budget can be shared (`Arc`) by every fetch of the same
//! corp in the process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wx_api::clock::Clock;

/// `per_minute` calls per API, refilled continuously, with at most `burst` saved up. Callers reserve a slot
/// and wait until it is due: the balance may go negative, which queues reservations in arrival order, so
/// in any minute at most `per_minute + burst` calls to one API start.
///
/// With [`CallBudget::with_hourly`], a second bucket per API holds 90% of `per_hour` and refills the other
/// 10% per hour, so no hour admits more than `per_hour` while a single big sync (under 90%) is not slowed.
#[derive(Debug)]
pub struct CallBudget {
    per_minute: u32,
    burst: f64,
    per_hour: u32,
    buckets: Mutex<HashMap<&'static str, Buckets>>,
    calls: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

impl Bucket {
    /// Take one token, refilling `per_ms` up to `cap` first; the wait until the balance is back to zero.
    fn take(&mut self, now_ms: i64, per_ms: f64, cap: f64) -> f64 {
        // `now_ms` may be behind `last_ms` when callers read the clock before another reserved.
        let elapsed = (now_ms - self.last_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(cap);
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            0.0
        } else {
            -self.tokens / per_ms
        }
    }
}

#[derive(Debug)]
struct Buckets {
    minute: Bucket,
    hour: Option<Bucket>,
}

/// The share of the hourly budget a full bucket holds; the rest refills over the hour.
const HOURLY_SAVED: f64 = 0.9;

impl CallBudget {
    /// `per_minute` of 0 means unlimited. Buckets start full.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        CallBudget {
            per_minute,
            burst: f64::from(burst.max(1)),
            per_hour: 0,
            buckets: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    /// Also keep every API under `per_hour` calls in any hour (0: no hourly budget).
    pub fn with_hourly(mut self, per_hour: u32) -> Self {
        self.per_hour = per_hour;
        self
    }

    pub fn per_hour(&self) -> u32 {
        self.per_hour
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
        if self.per_minute == 0 && self.per_hour == 0 {
            return Duration::ZERO;
        }
        let hour_cap = f64::from(self.per_hour) * HOURLY_SAVED;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(api).or_insert_with(|| Buckets {
            minute: Bucket {
                tokens: self.burst,
                last_ms: now_ms,
            },
            hour: (self.per_hour > 0).then_some(Bucket {
                tokens: hour_cap,
                last_ms: now_ms,
            }),
        });
        let mut wait_ms: f64 = 0.0;
        if self.per_minute > 0 {
            let per_ms = f64::from(self.per_minute) / 60_000.0;
            wait_ms = b.minute.take(now_ms, per_ms, self.burst);
        }
        if let Some(h) = &mut b.hour {
            let per_ms = f64::from(self.per_hour) * (1.0 - HOURLY_SAVED) / 3_600_000.0;
            wait_ms = wait_ms.max(h.take(now_ms, per_ms, hour_cap));
        }
        Duration::from_millis(wait_ms.ceil() as u64)
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
    fn no_hour_admits_more_than_the_hourly_budget() {
        // A minute budget that alone would allow 6,000/hour, under an hourly budget of 1,000.
        let b = CallBudget::new(100, 5).with_hourly(1_000);
        let starts: Vec<i64> = (0..3_000)
            .map(|_| i64::try_from(b.reserve(A, 0).as_millis()).unwrap())
            .collect();
        // The saved 90% goes at the minute rate, then the hourly refill (100/hour) governs.
        assert!(starts[899] < 10 * 60_000, "{}", starts[899]);
        let last = *starts.last().unwrap();
        for from in (0..last).step_by(60_000) {
            let n = starts
                .iter()
                .filter(|s| **s >= from && **s < from + 3_600_000)
                .count();
            assert!(n <= 1_000, "hour from {from}: {n}");
        }
        // Another API has its own hourly bucket.
        assert_eq!(b.reserve(B, 0), Duration::ZERO);
    }

    #[test]
    fn zero_means_unlimited() {
        let b = CallBudget::new(0, 1);
        for _ in 0..100 {
            assert_eq!(b.reserve(A, 0), Duration::ZERO);
        }
    }
}
