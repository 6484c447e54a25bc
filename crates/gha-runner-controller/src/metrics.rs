//! What the controller counts in memory (the rest of `/metrics` comes from the store):
//! deliveries by outcome, and the time from a delivery (received by any replica) to the
//! decision pass that read it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// How many latency samples are kept for the quantiles: the latest, in a ring.
const SAMPLES: usize = 1 << 16;

/// In-memory counters.
#[derive(Default)]
pub struct Metrics {
    deliveries: Mutex<BTreeMap<&'static str, u64>>,
    launches: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<Latency>,
}

#[derive(Default)]
struct Latency {
    samples: Vec<f64>,
    next: usize,
    count: u64,
    sum: f64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// Counts a delivery by its outcome (`accepted`, `duplicate`, `ignored`, `bad_signature`,
    /// …).
    pub fn count_delivery(&self, outcome: &'static str) {
        *lock(&self.deliveries).entry(outcome).or_default() += 1;
    }

    /// Deliveries by outcome.
    pub fn deliveries(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.deliveries).clone()
    }

    pub(crate) fn count_launch(&self, pool: &str) {
        *lock(&self.launches).entry(pool.to_owned()).or_default() += 1;
    }

    pub(crate) fn count_failure(&self, pool: &str) {
        *lock(&self.failures).entry(pool.to_owned()).or_default() += 1;
    }

    /// Launches decided and failed by this process, per pool.
    pub fn launches(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        (lock(&self.launches).clone(), lock(&self.failures).clone())
    }

    pub(crate) fn record_decision_latency(&self, latency: Duration) {
        let mut l = lock(&self.latency);
        let seconds = latency.as_secs_f64();
        if l.samples.len() < SAMPLES {
            l.samples.push(seconds);
        } else {
            let at = l.next;
            l.samples[at] = seconds;
        }
        l.next = (l.next + 1) % SAMPLES;
        l.count += 1;
        l.sum += seconds;
    }

    /// The decision latency's quantiles `qs` over the latest samples, its count and sum.
    pub fn decision_latency(&self, qs: &[f64]) -> (Vec<f64>, u64, f64) {
        let l = lock(&self.latency);
        let mut sorted = l.samples.clone();
        sorted.sort_by(f64::total_cmp);
        let quantiles = qs.iter().map(|q| quantile(&sorted, *q)).collect();
        (quantiles, l.count, l.sum)
    }
}

/// The `q` quantile of `sorted` (ascending): the smallest value with at least `q` of the
/// values at or below it; 0 when there are none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}
