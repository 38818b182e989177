//! A per-corp call budget: a token bucket on the injected `Clock`, so a sync stays under the platform's
//! per-minute limits (10,000/min per API) instead of discovering them through 45009.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wx_api::clock::Clock;

/// `calls_per_minute` calls, refilled continuously, with at most `burst` saved up. Callers reserve a slot
/// and wait until it is due: the balance may go negative, which queues the reservations in arrival order,
/// so in any minute at most `calls_per_minute + burst` calls start.
#[derive(Debug)]
pub struct CallBudget {
    per_minute: u32,
    burst: f64,
    state: Mutex<Bucket>,
    calls: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

impl CallBudget {
    /// `per_minute` of 0 means unlimited. The bucket starts full.
    pub fn new(per_minute: u32, burst: u32, now_ms: i64) -> Self {
        let burst = f64::from(burst.max(1));
        CallBudget {
            per_minute,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                last_ms: now_ms,
            }),
            calls: AtomicU64::new(0),
        }
    }

    /// Calls admitted so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// How long the caller must wait before its reserved call may start (zero when a token is free).
    pub fn reserve(&self, now_ms: i64) -> Duration {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.per_minute == 0 {
            return Duration::ZERO;
        }
        let per_ms = f64::from(self.per_minute) / 60_000.0;
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Elapsed time may be negative if another caller's reservation already moved `last_ms` ahead.
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

    /// Reserve a call and wait (on `clock`) until it is due.
    pub async fn acquire(&self, clock: &dyn Clock) {
        let wait = self.reserve(clock.now_ms());
        if !wait.is_zero() {
            clock.sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_beyond_the_burst_are_spaced_by_the_rate() {
        let b = CallBudget::new(60, 2, 0);
        assert_eq!(b.reserve(0), Duration::ZERO);
        assert_eq!(b.reserve(0), Duration::ZERO);
        // One per second: the third waits 1 s, the fourth 2 s.
        assert_eq!(b.reserve(0), Duration::from_millis(1000));
        assert_eq!(b.reserve(0), Duration::from_millis(2000));
        // After 10 s the debt is repaid and the bucket holds its burst again.
        assert_eq!(b.reserve(10_000), Duration::ZERO);
        assert_eq!(b.calls(), 5);
    }

    #[test]
    fn zero_means_unlimited() {
        let b = CallBudget::new(0, 1, 0);
        for _ in 0..100 {
            assert_eq!(b.reserve(0), Duration::ZERO);
        }
    }
}
