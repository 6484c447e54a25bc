//! The server side of Lambda's documented limits, in simulated time: one request per second
//! and one launch per 12 seconds. A generic cell-rate algorithm with half an interval of
//! tolerance, so a client that spaces its requests' starts exactly by the interval is never
//! refused for network jitter, while back-to-back requests are.

use crate::scenario::RateLimitSpec;

#[derive(Debug, Default)]
pub(crate) struct ServerLimiter {
    request_tat: f64,
    launch_tat: f64,
}

impl ServerLimiter {
    /// Admits a request at simulated second `now`, or says how many simulated seconds to wait.
    pub(crate) fn admit(
        &mut self,
        spec: &RateLimitSpec,
        now: f64,
        launch: bool,
    ) -> Result<(), f64> {
        if !spec.enabled {
            return Ok(());
        }
        let request_wait = wait(self.request_tat, spec.request_interval_seconds, now);
        let launch_wait = if launch {
            wait(self.launch_tat, spec.launch_interval_seconds, now)
        } else {
            0.0
        };
        let needed = request_wait.max(launch_wait);
        if needed > 0.0 {
            return Err(needed);
        }
        self.request_tat = self.request_tat.max(now) + spec.request_interval_seconds;
        if launch {
            self.launch_tat = self.launch_tat.max(now) + spec.launch_interval_seconds;
        }
        Ok(())
    }
}

/// How long until a request may pass, given the theoretical arrival time `tat`.
fn wait(tat: f64, interval: f64, now: f64) -> f64 {
    let earliest = tat - interval / 2.0;
    (earliest - now).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_spaced_by_the_interval_pass_and_bursts_do_not() {
        let spec = RateLimitSpec::default();
        let mut limiter = ServerLimiter::default();
        assert_eq!(limiter.admit(&spec, 0.0, false), Ok(()));
        assert_eq!(limiter.admit(&spec, 0.01, false), Err(0.49));
        // Up to half an interval early still passes: jitter is not a violation.
        assert_eq!(limiter.admit(&spec, 0.6, false), Ok(()));
        assert!(limiter.admit(&spec, 1.0, false).is_err());
        assert_eq!(limiter.admit(&spec, 1.6, false), Ok(()));
    }

    #[test]
    fn launches_need_twelve_seconds_and_a_request_slot() {
        let spec = RateLimitSpec::default();
        let mut limiter = ServerLimiter::default();
        assert_eq!(limiter.admit(&spec, 0.0, true), Ok(()));
        assert_eq!(limiter.admit(&spec, 2.0, false), Ok(()));
        assert_eq!(limiter.admit(&spec, 4.0, true), Err(2.0));
        assert_eq!(limiter.admit(&spec, 6.0, true), Ok(()));
    }

    #[test]
    fn disabled_limits_admit_everything() {
        let spec = RateLimitSpec {
            enabled: false,
            ..RateLimitSpec::default()
        };
        let mut limiter = ServerLimiter::default();
        for _ in 0..100 {
            assert_eq!(limiter.admit(&spec, 0.0, true), Ok(()));
        }
    }
}
