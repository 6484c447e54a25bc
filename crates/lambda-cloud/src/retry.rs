//! How failed requests are tried again: exponential backoff with jitter (`backon`), the
//! server's `Retry-After` honoured, and a total deadline so a caller is never stuck.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// When and how often the client sends a failed request again.
///
/// Only retryable failures are retried (see [`Error::is_retryable`](crate::Error::is_retryable)),
/// and requests that create something (launch, create filesystem, add SSH key, …) only when the
/// failure proves nothing was created: a 429, a `provider/*` refusal, or a refused connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct RetryPolicy {
    /// The most retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff delay.
    pub min_delay: Duration,
    /// The largest backoff delay (a longer `Retry-After` from the server still wins).
    pub max_delay: Duration,
    /// No retry starts once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
    /// Whether delays are randomized, so that many clients do not retry in lockstep.
    pub jitter: bool,
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// This policy for a server whose clock runs `time_scale` times faster than real time (a
    /// simulator): every delay divided by the scale.
    pub(crate) fn time_scaled(self, time_scale: f64) -> RetryPolicy {
        let scale = crate::rate_limit::valid_scale(time_scale);
        RetryPolicy {
            min_delay: self.min_delay.div_f64(scale),
            max_delay: self.max_delay.div_f64(scale),
            max_elapsed: self.max_elapsed.div_f64(scale),
            ..self
        }
    }

    /// The backoff delays, one per allowed retry.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize);
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build()
    }
}

impl Default for RetryPolicy {
    /// Five retries from 1 s doubling to at most 30 s, within 2 minutes, with jitter.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(120),
            jitter: true,
        }
    }
}

/// Reads a `Retry-After` header: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = date.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stop_after_max_retries() {
        let policy = RetryPolicy {
            max_retries: 6,
            jitter: false,
            ..RetryPolicy::default()
        };
        let delays: Vec<_> = policy.delays().collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 30].map(Duration::from_secs).to_vec()
        );
        assert_eq!(RetryPolicy::none().delays().count(), 0);
    }

    #[test]
    fn a_time_scale_divides_every_delay() {
        let policy = RetryPolicy::default().time_scaled(50.0);
        assert_eq!(policy.min_delay, Duration::from_millis(20));
        assert_eq!(policy.max_delay, Duration::from_millis(600));
        assert_eq!(policy.max_elapsed, Duration::from_millis(2400));
        assert_eq!(policy.max_retries, 5);
        assert_eq!(
            RetryPolicy::default().time_scaled(f64::NAN),
            RetryPolicy::default()
        );
    }

    #[test]
    fn jittered_delays_stay_within_double_the_base() {
        let policy = RetryPolicy::default();
        for delay in policy.delays() {
            assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(60));
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 01 Jan 2025 00:00:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Tue, 31 Dec 2024 23:59:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
