//! Injected failures: per operation, on chosen calls or with a probability, after a delay.

use std::collections::HashMap;
use std::time::Duration;

use crate::scenario::FaultSpec;

/// What a call should suffer.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Injection {
    pub(crate) latency: Duration,
    pub(crate) failure: Option<(u16, String, String)>,
    pub(crate) drop_connection: bool,
}

#[derive(Debug, Default)]
pub(crate) struct FaultCounters {
    calls: HashMap<String, u32>,
}

impl FaultCounters {
    /// How many calls of `operation` were counted so far.
    pub(crate) fn count(&self, operation: &str) -> u32 {
        self.calls.get(operation).copied().unwrap_or(0)
    }

    /// Counts a call of `operation` and decides its faults.
    pub(crate) fn on_call(
        &mut self,
        faults: &[FaultSpec],
        operation: &str,
        rng: &mut fastrand::Rng,
    ) -> Injection {
        let call = self.calls.entry(operation.to_owned()).or_default();
        *call += 1;
        let call = *call;
        let mut injection = Injection::default();
        for fault in faults.iter().filter(|f| f.operation == operation) {
            let chosen = fault.on_calls.contains(&call);
            let drawn = fault.probability.is_some_and(|p| rng.f64() < p);
            let always = fault.on_calls.is_empty() && fault.probability.is_none();
            if !(chosen || drawn || always) {
                continue;
            }
            injection.latency += Duration::from_millis(fault.latency_ms);
            injection.drop_connection |= fault.drop_connection;
            if let (Some(status), None) = (fault.status, &injection.failure) {
                injection.failure = Some((status, fault.code.clone(), fault.message.clone()));
            }
        }
        injection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(on_calls: Vec<u32>, probability: Option<f64>) -> FaultSpec {
        FaultSpec {
            operation: "launchInstance".into(),
            status: Some(500),
            code: "global/internal-error".into(),
            message: "boom".into(),
            on_calls,
            probability,
            latency_ms: 0,
            drop_connection: false,
        }
    }

    #[test]
    fn nth_call_faults_fire_on_those_calls_only() {
        let faults = [fault(vec![2, 4], None)];
        let mut counters = FaultCounters::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let fired: Vec<bool> = (0..5)
            .map(|_| {
                counters
                    .on_call(&faults, "launchInstance", &mut rng)
                    .failure
                    .is_some()
            })
            .collect();
        assert_eq!(fired, [false, true, false, true, false]);
        assert!(
            counters
                .on_call(&faults, "listInstances", &mut rng)
                .failure
                .is_none()
        );
    }

    #[test]
    fn probabilities_are_seeded_and_roughly_right() {
        let faults = [fault(Vec::new(), Some(0.25))];
        let run = || {
            let mut counters = FaultCounters::default();
            let mut rng = fastrand::Rng::with_seed(9);
            (0..1000)
                .filter(|_| {
                    counters
                        .on_call(&faults, "launchInstance", &mut rng)
                        .failure
                        .is_some()
                })
                .count()
        };
        let fired = run();
        assert_eq!(fired, run(), "same seed, same faults");
        assert!((200..300).contains(&fired), "{fired}");
    }

    #[test]
    fn latency_only_faults_delay_without_failing() {
        let mut latency = fault(Vec::new(), None);
        latency.status = None;
        latency.latency_ms = 30;
        let injection = FaultCounters::default().on_call(
            &[latency],
            "launchInstance",
            &mut fastrand::Rng::with_seed(1),
        );
        assert_eq!(
            injection,
            Injection {
                latency: Duration::from_millis(30),
                failure: None,
                drop_connection: false,
            }
        );
    }
}
