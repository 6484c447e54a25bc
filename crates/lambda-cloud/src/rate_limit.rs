//! Client-side pacing so that our own traffic never earns a 429.
//!
//! Lambda documents one request per second for the API and one launch per 12 seconds. The
//! limiter hands out time slots: each call reserves the earliest slot that keeps both
//! intervals, then sleeps until it. Clones of one [`Client`](crate::Client) share it.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The spacing the client keeps between its own requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct RateLimits {
    /// The least time between the starts of any two requests.
    pub min_request_interval: Duration,
    /// The least time between the starts of two launch requests.
    pub min_launch_interval: Duration,
}

impl RateLimits {
    /// The limits Lambda documents: 1 request per second, 1 launch per 12 seconds.
    pub const DOCUMENTED: RateLimits = RateLimits {
        min_request_interval: Duration::from_secs(1),
        min_launch_interval: Duration::from_secs(12),
    };

    /// No pacing at all, for servers that do not limit (tests, simulators without limits).
    pub const UNLIMITED: RateLimits = RateLimits {
        min_request_interval: Duration::ZERO,
        min_launch_interval: Duration::ZERO,
    };
}

impl RateLimits {
    /// These limits for a simulator whose clock runs `scale` times faster: every interval
    /// divided by it.
    #[cfg(feature = "simulator")]
    pub fn time_scaled(self, scale: crate::TimeScale) -> RateLimits {
        self.scaled(scale.factor())
    }

    pub(crate) fn scaled(self, time_scale: f64) -> RateLimits {
        let scale = valid_scale(time_scale);
        RateLimits {
            min_request_interval: self.min_request_interval.div_f64(scale),
            min_launch_interval: self.min_launch_interval.div_f64(scale),
        }
    }
}

/// `time_scale` when it can divide durations (finite and positive), else 1.
pub(crate) fn valid_scale(time_scale: f64) -> f64 {
    if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::DOCUMENTED
    }
}

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// Any request.
    Request,
    /// A launch: it counts as a request and against the launch interval.
    Launch,
}

#[derive(Debug, Default)]
struct Slots {
    next_request: Option<Instant>,
    next_launch: Option<Instant>,
}

/// Shared slot book-keeping. The mutex is never held across an await.
#[derive(Debug)]
pub(crate) struct Limiter {
    limits: RateLimits,
    slots: Mutex<Slots>,
    /// When the limiter was made: slots are traced as offsets from it.
    epoch: Instant,
}

impl Limiter {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Limiter {
            limits,
            slots: Mutex::new(Slots::default()),
            epoch: Instant::now(),
        }
    }

    /// Reserves the earliest slot the limits allow for `budget`, and returns when it has come.
    pub(crate) async fn acquire(&self, budget: Budget) {
        let slot = self.reserve(budget, Instant::now());
        // The pacing decision itself, which wake-up times on a loaded machine blur: a check of
        // the spacing reads these (target `lambda_cloud::pacing`).
        tracing::trace!(
            target: "lambda_cloud::pacing",
            launch = budget == Budget::Launch,
            slot_us = u64::try_from(slot.duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX),
            "slot reserved"
        );
        tokio::time::sleep_until(slot).await;
    }

    fn reserve(&self, budget: Budget, now: Instant) -> Instant {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut slot = slots.next_request.map_or(now, |next| next.max(now));
        if budget == Budget::Launch {
            slot = slots.next_launch.map_or(slot, |next| next.max(slot));
            slots.next_launch = Some(slot + self.limits.min_launch_interval);
        }
        slots.next_request = Some(slot + self.limits.min_request_interval);
        slot
    }

    /// Pushes every later request back by `wait` from now, after the server said to wait.
    pub(crate) fn back_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.next_request = Some(slots.next_request.map_or(until, |next| next.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_request_interval() {
        let limiter = Limiter::new(RateLimits::DOCUMENTED);
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..4 {
            limiter.acquire(Budget::Request).await;
            starts.push(start.elapsed());
        }
        assert_eq!(
            starts,
            [0, 1, 2, 3].map(Duration::from_secs).to_vec(),
            "first request immediately, then one per second"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn launches_are_spaced_by_twelve_seconds_and_other_calls_fit_between() {
        let limiter = Limiter::new(RateLimits::DOCUMENTED);
        let start = Instant::now();
        limiter.acquire(Budget::Launch).await;
        let first_launch = start.elapsed();
        limiter.acquire(Budget::Request).await;
        let list_between = start.elapsed();
        limiter.acquire(Budget::Launch).await;
        let second_launch = start.elapsed();
        assert_eq!(first_launch, Duration::ZERO);
        assert_eq!(list_between, Duration::from_secs(1));
        assert_eq!(second_launch, Duration::from_secs(12));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let limiter = std::sync::Arc::new(Limiter::new(RateLimits::DOCUMENTED));
        let start = Instant::now();
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter.acquire(Budget::Launch).await;
                    start.elapsed()
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times.sort();
        assert_eq!(times, [0, 12, 24].map(Duration::from_secs).to_vec());
    }

    #[tokio::test(start_paused = true)]
    async fn back_off_delays_the_next_request() {
        let limiter = Limiter::new(RateLimits::DOCUMENTED);
        let start = Instant::now();
        limiter.acquire(Budget::Request).await;
        limiter.back_off(Duration::from_secs(5));
        limiter.acquire(Budget::Request).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn time_scaling_divides_every_interval() {
        let scaled = RateLimits::DOCUMENTED.scaled(100.0);
        assert_eq!(scaled.min_request_interval, Duration::from_millis(10));
        assert_eq!(scaled.min_launch_interval, Duration::from_millis(120));
        assert_eq!(RateLimits::DOCUMENTED.scaled(0.0), RateLimits::DOCUMENTED);
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let limiter = Limiter::new(RateLimits::UNLIMITED);
        let start = Instant::now();
        for _ in 0..10 {
            limiter.acquire(Budget::Launch).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
