//! Simulated time: real time multiplied by a scale, so a four-minute boot can take
//! milliseconds in a test while every ratio (boot time to launch spacing, say) is kept.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use lambda_cloud::TimeScale;
use tokio::time::Instant;

/// Converts between real time and simulated seconds since the simulator started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SimClock {
    origin: Instant,
    wall_origin: Timestamp,
    scale: TimeScale,
}

impl SimClock {
    pub(crate) fn new(scale: TimeScale) -> Self {
        SimClock {
            origin: Instant::now(),
            wall_origin: Timestamp::now(),
            scale,
        }
    }

    /// Simulated seconds per real second.
    pub(crate) fn scale(&self) -> TimeScale {
        self.scale
    }

    /// Simulated seconds since the start.
    pub(crate) fn now(&self) -> f64 {
        self.scale.simulated(self.origin.elapsed()).as_secs_f64()
    }

    /// The real time that `seconds` of simulated time take.
    pub(crate) fn real(&self, seconds: f64) -> Duration {
        self.scale.real(Duration::from_secs_f64(seconds.max(0.0)))
    }

    /// The wall-clock timestamp of simulated second `at`, for `created` fields and the like.
    pub(crate) fn timestamp(&self, at: f64) -> Timestamp {
        let offset = SignedDuration::try_from_secs_f64(at).unwrap_or(SignedDuration::ZERO);
        self.wall_origin
            .checked_add(offset)
            .unwrap_or(self.wall_origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn scaled_time_runs_faster_by_the_scale() {
        let clock = SimClock::new(TimeScale::of(100.0));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!((clock.now() - 12.0).abs() < 1e-6, "{}", clock.now());
        assert_eq!(clock.real(12.0), Duration::from_millis(120));
        let stamp = clock.timestamp(90.0);
        assert_eq!(stamp.duration_since(clock.timestamp(0.0)).as_secs(), 90);
    }
}
