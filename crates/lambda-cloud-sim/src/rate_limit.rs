//! The server side of Lambda's documented limits, in simulated time: one request per second
//! and one launch per 12 seconds, as a generic cell-rate algorithm. A request may arrive early
//! by a little real-time jitter (25 ms, at most 90% of the interval): a client that spaces its
//! requests' starts by the interval is not refused for scheduling noise, which matters when
//! simulated time runs 100x faster and one simulated second is 10 ms. Bursts and a sustained
//! rate above the limit are always refused.

use crate::scenario::RateLimitSpec;

/// Real seconds of arrival jitter forgiven.
const JITTER_SECONDS: f64 = 0.025;
/// The most of an interval a request may be early, whatever the time scale.
const MAX_TOLERANCE: f64 = 0.9;

#[derive(Debug, Default)]
pub(crate) struct ServerLimiter {
    request_tat: f64,
    launch_tat: f64,
}

impl ServerLimiter {
    /// Admits a request at simulated second `now` on a clock running `time_scale` times real
    /// time, or says how many simulated seconds to wait.
    pub(crate) fn admit(
        &mut self,
        spec: &RateLimitSpec,
        now: f64,
        launch: bool,
        time_scale: f64,
    ) -> Result<(), f64> {
        if !spec.enabled {
            return Ok(());
        }
        let slack = JITTER_SECONDS * time_scale;
        let request_wait = wait(self.request_tat, spec.request_interval_seconds, slack, now);
        let launch_wait = if launch {
            wait(self.launch_tat, spec.launch_interval_seconds, slack, now)
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
fn wait(tat: f64, interval: f64, slack: f64, now: f64) -> f64 {
    let earliest = tat - slack.min(interval * MAX_TOLERANCE);
    (earliest - now).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn in_real_time_requests_need_the_full_interval_less_jitter() {
        let spec = RateLimitSpec::default();
        let mut limiter = ServerLimiter::default();
        assert_eq!(limiter.admit(&spec, 0.0, false, 1.0), Ok(()));
        assert!(
            close(limiter.admit(&spec, 0.0, false, 1.0).unwrap_err(), 0.975),
            "never two at once"
        );
        assert!(limiter.admit(&spec, 0.9, false, 1.0).is_err());
        assert_eq!(
            limiter.admit(&spec, 0.98, false, 1.0),
            Ok(()),
            "25 ms early is jitter"
        );
    }

    #[test]
    fn scaled_time_forgives_the_same_real_jitter_but_never_a_burst() {
        let spec = RateLimitSpec::default();
        let mut limiter = ServerLimiter::default();
        // At 100x, 25 ms of real jitter is 2.5 simulated seconds, capped at 0.9 s for requests.
        assert_eq!(limiter.admit(&spec, 0.0, false, 100.0), Ok(()));
        assert!(
            limiter.admit(&spec, 0.0, false, 100.0).is_err(),
            "never two at once"
        );
        assert_eq!(limiter.admit(&spec, 0.15, false, 100.0), Ok(()));
        let admitted = (0..1000)
            .filter(|i| {
                limiter
                    .admit(&spec, 1.0 + f64::from(*i) * 0.01, false, 100.0)
                    .is_ok()
            })
            .count();
        assert!(
            admitted <= 11,
            "at most one per simulated second over 10 s, got {admitted}"
        );
    }

    #[test]
    fn launches_need_twelve_seconds_and_a_request_slot() {
        let spec = RateLimitSpec::default();
        let mut limiter = ServerLimiter::default();
        assert_eq!(limiter.admit(&spec, 0.0, true, 100.0), Ok(()));
        assert_eq!(limiter.admit(&spec, 2.0, false, 100.0), Ok(()));
        // 2.5 s of forgiven jitter: the next launch may come from 9.5 s on.
        assert!(close(
            limiter.admit(&spec, 4.0, true, 100.0).unwrap_err(),
            5.5
        ));
        assert_eq!(limiter.admit(&spec, 9.6, true, 100.0), Ok(()));
        assert!(
            limiter.admit(&spec, 12.0, true, 100.0).is_err(),
            "a second launch 2.4 s later"
        );
    }

    #[test]
    fn disabled_limits_admit_everything() {
        let spec = RateLimitSpec {
            enabled: false,
            ..RateLimitSpec::default()
        };
        let mut limiter = ServerLimiter::default();
        for _ in 0..100 {
            assert_eq!(limiter.admit(&spec, 0.0, true, 1.0), Ok(()));
        }
    }
}
