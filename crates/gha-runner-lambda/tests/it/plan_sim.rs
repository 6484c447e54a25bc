//! Launch plans with the Lambda provider against the simulator over HTTP, on a 100x clock.

use std::time::Duration;

use gha_runner_core::{
    AttemptOutcome, CapacityPolicy, CloudProvider, LaunchPlan, MachineSpec, plan::LaunchSetup,
    plan::candidates,
};
use gha_runner_lambda::LambdaProvider;
use lambda_cloud_sim::{Scenario, Sim};

use crate::sim::SCALE;

/// A setup that launches each candidate with the simulator's SSH key.
struct SimSetup;

#[async_trait::async_trait]
impl LaunchSetup for SimSetup {
    async fn prepare(
        &mut self,
        _: usize,
        candidate: &gha_runner_core::Candidate,
    ) -> Result<MachineSpec, String> {
        let mut spec = MachineSpec::new(&candidate.instance_type, &candidate.region);
        spec.tags.insert("lambda-gha:run".into(), "test".into());
        spec.ssh_key = Some("ci".into());
        Ok(spec)
    }

    async fn abandon(&mut self, _: usize) {}
}

async fn start(scenario: Scenario) -> (Sim, LambdaProvider) {
    crate::sim::lambda_on_sim(scenario).await
}

/// Simulated seconds as real time on this clock.
fn sim_seconds(seconds: u64) -> Duration {
    SCALE.real(Duration::from_secs(seconds))
}

fn setup() -> SimSetup {
    SimSetup
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_only_in_the_third_candidate_is_launched_there_without_a_miss() {
    let scenario = Scenario::default()
        .with_capacity("gpu_1x_a10", "us-east-1", &[(0, 0)])
        .with_capacity("gpu_1x_a10", "us-west-1", &[(0, 0)]);
    let (sim, provider) = start(scenario).await;
    let plan = LaunchPlan::new(
        candidates("gpu_1x_a10,gpu_1x_a100_sxm4", "us-east-1,us-west-1").unwrap(),
        1,
        CapacityPolicy::FailFast,
    )
    .unwrap();
    let (launched, attempts) = plan.execute(&provider, &mut setup()).await.unwrap();
    assert_eq!(
        launched[0].candidate.to_string(),
        "gpu_1x_a100_sxm4 in us-east-1"
    );
    // Lambda's listing (`GET /instance-types`) shows no capacity for the first two: no launch
    // is spent on them.
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(matches!(attempts[0].outcome, AttemptOutcome::Launched(_)));
    assert_eq!(sim.ledger().entries.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_that_appears_while_waiting_is_taken_within_one_poll() {
    let scenario =
        Scenario::default().with_capacity("gpu_1x_h100_pcie", "us-east-1", &[(0, 0), (90, 1)]);
    let (sim, provider) = start(scenario).await;
    let poll = sim_seconds(30);
    let plan = LaunchPlan::new(
        candidates("gpu_1x_h100_pcie", "us-east-1").unwrap(),
        1,
        CapacityPolicy::WaitUntil(sim_seconds(300)),
    )
    .unwrap()
    .with_poll_interval(poll);
    let listings_before = sim.calls("listInstanceTypes");
    let (launched, _) = plan.execute(&provider, &mut setup()).await.unwrap();
    assert_eq!(launched.len(), 1);
    let launched_at = sim.ledger().entries[0].launched_at;
    assert!(
        launched_at >= 90.0,
        "launched at simulated second {launched_at:.1}, before capacity appeared"
    );
    // The plan's own decisions, which a loaded machine cannot blur: it lists availability
    // twice in its first round (before its blind try and after it), then every 30 s, so the
    // listing at 90 s shows the capacity at the latest (a late arrival only shows it sooner). When the launch reaches the
    // simulator is not judged; the plan's timing is, on a paused clock, in gha-runner-core's
    // `plan.rs`.
    let listings = sim.calls("listInstanceTypes") - listings_before;
    assert!(
        (1..=5).contains(&listings),
        "{listings} availability listings: the one at 90 s shows the capacity"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_that_never_appears_ends_with_every_attempt_listed_and_nothing_launched() {
    let scenario = Scenario::default().with_capacity("gpu_1x_h100_pcie", "us-east-1", &[(0, 0)]);
    let (sim, provider) = start(scenario).await;
    let plan = LaunchPlan::new(
        candidates("gpu_1x_h100_pcie", "us-east-1").unwrap(),
        1,
        CapacityPolicy::WaitUntil(sim_seconds(120)),
    )
    .unwrap()
    .with_poll_interval(sim_seconds(30));
    let failure = plan.execute(&provider, &mut setup()).await.unwrap_err();
    assert!(
        failure
            .reason
            .contains("no capacity for machine 0 of 1 within"),
        "{failure}"
    );
    assert!(!failure.attempts.is_empty());
    assert!(
        failure
            .to_string()
            .contains("gpu_1x_h100_pcie in us-east-1: no capacity")
    );
    assert!(sim.ledger().entries.is_empty(), "nothing launched");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_second_of_three_launches_fails_the_first_is_terminated() {
    let quota = crate::sim::quota_on_launch(2);
    let (sim, provider) = start(Scenario::default().with_fault(quota)).await;
    let plan = LaunchPlan::new(
        candidates("gpu_1x_a10", "us-east-1").unwrap(),
        3,
        CapacityPolicy::FailFast,
    )
    .unwrap();
    let failure = plan.execute(&provider, &mut setup()).await.unwrap_err();
    assert_eq!(failure.terminated.len(), 1);
    assert!(failure.reason.contains("Quota exceeded"), "{failure}");
    let ledger = sim.ledger();
    assert_eq!(ledger.entries.len(), 1);
    assert!(
        ledger.still_billing.is_empty(),
        "the first machine was terminated"
    );
}

/// The client's launch slots (µs from its limiter's start), as it reserved them.
#[derive(Clone, Default)]
struct LaunchSlots(std::sync::Arc<std::sync::Mutex<Vec<u64>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LaunchSlots {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Slot(bool, Option<u64>);
        impl tracing::field::Visit for Slot {
            fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
                self.0 |= field.name() == "launch" && value;
            }
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "slot_us" {
                    self.1 = Some(value);
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        if event.metadata().target() == "lambda_cloud::pacing" {
            let mut slot = Slot(false, None);
            event.record(&mut slot);
            if let Slot(true, Some(at)) = slot {
                self.0.lock().unwrap().push(at);
            }
        }
    }
}

// On one thread, so the subscriber sees every task's events.
#[tokio::test]
async fn four_launches_are_paced_twelve_seconds_apart() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let slots = LaunchSlots::default();
    let _traced =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(slots.clone()));
    let (sim, provider) = start(Scenario::default()).await;
    let plan = LaunchPlan::new(
        candidates("gpu_1x_a10", "us-east-1,us-west-1").unwrap(),
        4,
        CapacityPolicy::FailFast,
    )
    .unwrap();
    let (launched, _) = plan.execute(&provider, &mut setup()).await.unwrap();
    assert_eq!(launched.len(), 4);
    // Judged on the sender's own decisions: when each launch was to go. (When requests
    // arrive depends on how loaded the machine is; a late arrival earns a 429 the client
    // answers by waiting, which is no pacing decision of ours.)
    let slots = slots.0.lock().unwrap().clone();
    let interval = sim_seconds(12).as_micros();
    assert_eq!(slots.len(), 4, "{slots:?}");
    assert!(
        slots
            .windows(2)
            .all(|w| u128::from(w[1] - w[0]) >= interval),
        "launch slots (µs): {slots:?}, {interval} µs apart at least"
    );
    let ids: Vec<_> = launched.into_iter().map(|l| l.machine).collect();
    provider.terminate(&ids).await.unwrap();
    assert!(sim.ledger().still_billing.is_empty());
}
