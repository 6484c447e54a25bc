//! A simulator's faster clock (feature `simulator`).
//!
//! `lambda-cloud-sim --time-scale 60` runs a three-minute boot in three seconds. Everything that
//! waits on that cloud — this client's pacing, retries and timeouts, and the programs above it —
//! divides its waits by the same factor, through this one type, so that no caller divides
//! durations by a raw number of its own.

use std::fmt;
use std::time::Duration;

/// Simulated seconds per real second: 1 on a real cloud, more on a simulator.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct TimeScale(f64);

/// The variable programs read a simulator's time scale from, to pace themselves to its clock.
pub const TIME_SCALE_ENV: &str = "LAMBDA_API_TIME_SCALE";

impl TimeScale {
    /// Real time: a real cloud.
    pub const REAL: TimeScale = TimeScale(1.0);

    /// `factor` simulated seconds per real second, or why it is not a finite number ≥ 1.
    pub fn new(factor: f64) -> Result<TimeScale, String> {
        if factor.is_finite() && factor >= 1.0 {
            Ok(TimeScale(factor))
        } else {
            Err(format!(
                "a time scale must be a number ≥ 1 (simulated seconds per real second), not {factor}"
            ))
        }
    }

    /// `factor` as a constant, e.g. `const SCALE: TimeScale = TimeScale::of(100.0);`.
    ///
    /// # Panics
    ///
    /// When `factor` is not a finite number ≥ 1 (at compile time, in a constant).
    pub const fn of(factor: f64) -> TimeScale {
        assert!(
            factor.is_finite() && factor >= 1.0,
            "a time scale is a number ≥ 1"
        );
        TimeScale(factor)
    }

    /// The scale written in `text` (the value of [`TIME_SCALE_ENV`] or a `--time-scale`).
    pub fn parse(text: &str) -> Result<TimeScale, String> {
        text.trim()
            .parse::<f64>()
            .ok()
            .and_then(|factor| TimeScale::new(factor).ok())
            .ok_or_else(|| {
                format!("{TIME_SCALE_ENV}={text:?} must be a number ≥ 1 (a simulator's time scale)")
            })
    }

    /// The scale in [`TIME_SCALE_ENV`] through `env`, real time when it is unset, or why its
    /// value is not a scale.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<TimeScale, String> {
        env(TIME_SCALE_ENV).map_or(Ok(TimeScale::REAL), |text| TimeScale::parse(&text))
    }

    /// Simulated seconds per real second.
    pub fn factor(self) -> f64 {
        self.0
    }

    /// Whether this is real time.
    pub fn is_real(self) -> bool {
        (self.0 - 1.0).abs() < f64::EPSILON
    }

    /// The real time that `simulated` takes on the simulator's clock.
    pub fn real(self, simulated: Duration) -> Duration {
        simulated.div_f64(self.0)
    }

    /// The simulated time that passes during `real`.
    pub fn simulated(self, real: Duration) -> Duration {
        real.mul_f64(self.0)
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::REAL
    }
}

impl fmt::Display for TimeScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_divides_waits_and_refuses_what_is_not_a_scale() {
        let scale = TimeScale::parse(" 60 ").unwrap();
        assert_eq!(scale.real(Duration::from_secs(180)), Duration::from_secs(3));
        assert_eq!(
            scale.simulated(Duration::from_secs(3)),
            Duration::from_secs(180)
        );
        assert!(TimeScale::REAL.is_real() && !scale.is_real());
        for bad in ["0.5", "0", "-2", "inf", "NaN", "fast", ""] {
            let error = TimeScale::parse(bad).unwrap_err();
            assert!(error.contains(TIME_SCALE_ENV), "{error}");
        }
        assert_eq!(TimeScale::from_env(|_| None), Ok(TimeScale::REAL));
        assert_eq!(
            TimeScale::from_env(|_| Some("10".to_owned())),
            Ok(TimeScale::of(10.0))
        );
    }
}
