//! Launch plans against the fake provider: fallback order, waiting, failure cleanup, and the
//! property that a plan never exceeds N and ends with N machines or none.

use std::time::Duration;

use gha_runner_core::{
    AttemptOutcome, CapacityPolicy, LaunchPlan, ProviderErrorKind, plan::candidates,
};
use proptest::prelude::*;

use crate::fake::{CountingSetup, FakeProvider, Outcome};

fn plan(count: usize, policy: CapacityPolicy) -> LaunchPlan {
    LaunchPlan::new(candidates("a,b,c", "r1").unwrap(), count, policy)
        .unwrap()
        .with_poll_interval(Duration::from_secs(30))
}

fn paused<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn capacity_errors_fall_back_to_the_next_candidate_in_order() {
    let provider = FakeProvider::new(vec![Outcome::NoCapacity, Outcome::NoCapacity], vec![]);
    let mut setup = CountingSetup::default();
    let (launched, attempts) =
        paused(plan(1, CapacityPolicy::FailFast).execute(&provider, &mut setup)).unwrap();
    assert_eq!(launched[0].candidate.instance_type, "c");
    let tried: Vec<&str> = attempts
        .iter()
        .map(|a| a.candidate.instance_type.as_str())
        .collect();
    assert_eq!(tried, ["a", "b", "c"]);
    assert_eq!(
        setup.not_launched,
        [0, 0],
        "each capacity miss is told, its preparation kept for the next try"
    );
    assert!(setup.abandoned.is_empty());
}

#[test]
fn candidates_listed_with_capacity_go_first_and_unlisted_ones_are_not_tried() {
    // The catalog lists only `c`: `a` and `b` are not spent a launch on.
    let provider = FakeProvider::new(vec![], vec![]).listing(&["c"]);
    let (launched, attempts) =
        paused(plan(2, CapacityPolicy::FailFast).execute(&provider, &mut CountingSetup::default()))
            .unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(launched.iter().all(|l| l.candidate.instance_type == "c"));
    assert_eq!(provider.catalog_reads(), 2, "one read before each attempt");

    // Listed `b` has none after all; `c` is listed too and is next; `a` is never tried.
    let provider = FakeProvider::new(vec![Outcome::NoCapacity], vec![]).listing(&["b", "c"]);
    let (launched, attempts) =
        paused(plan(1, CapacityPolicy::FailFast).execute(&provider, &mut CountingSetup::default()))
            .unwrap();
    let tried: Vec<&str> = attempts
        .iter()
        .map(|a| a.candidate.instance_type.as_str())
        .collect();
    assert_eq!(tried, ["b", "c"]);
    assert_eq!(launched[0].candidate.instance_type, "c");

    // Every listed one failed: the unlisted one is still not tried, the plan says no capacity.
    let provider = FakeProvider::new(vec![Outcome::NoCapacity; 2], vec![]).listing(&["b", "c"]);
    let failure =
        paused(plan(1, CapacityPolicy::FailFast).execute(&provider, &mut CountingSetup::default()))
            .unwrap_err();
    assert_eq!(failure.attempts.len(), 2, "{failure}");
    assert_eq!(provider.launched(), 0);
}

#[test]
fn fail_fast_with_no_capacity_anywhere_reports_every_attempt_and_launches_nothing() {
    let provider = FakeProvider::new(vec![Outcome::NoCapacity; 3], vec![]);
    let failure =
        paused(plan(2, CapacityPolicy::FailFast).execute(&provider, &mut CountingSetup::default()))
            .unwrap_err();
    assert_eq!(failure.attempts.len(), 3);
    assert!(
        failure
            .attempts
            .iter()
            .all(|a| matches!(a.outcome, AttemptOutcome::NoCapacity(_)))
    );
    let text = failure.to_string();
    assert!(
        text.contains("no capacity for machine 0 of 2 in any of the 3 candidates"),
        "{text}"
    );
    assert!(
        text.contains("a in r1") && text.contains("c in r1"),
        "{text}"
    );
    assert_eq!(provider.launched(), 0);
}

#[test]
fn waiting_polls_availability_and_retries_only_what_is_shown_available() {
    // Nothing listed the first round (read before each of its 3 attempts and once after);
    // the 3rd poll shows capacity.
    let mut hints = vec![false; 4];
    hints.extend([false, false, true]);
    let provider = FakeProvider::new(vec![Outcome::NoCapacity; 3], hints);
    let started = paused(async {
        let start = tokio::time::Instant::now();
        let result = plan(1, CapacityPolicy::WaitUntil(Duration::from_secs(600)))
            .execute(&provider, &mut CountingSetup::default())
            .await;
        (result, start.elapsed())
    });
    let ((launched, attempts), elapsed) = (started.0.unwrap(), started.1);
    assert_eq!(launched.len(), 1);
    assert_eq!(
        elapsed,
        Duration::from_secs(90),
        "launched right after the poll that showed capacity"
    );
    assert_eq!(
        attempts.len(),
        4,
        "three misses in the first round, then one launch"
    );
}

#[test]
fn waiting_gives_up_at_the_deadline() {
    let provider = FakeProvider::new(vec![Outcome::NoCapacity; 3], vec![]);
    let failure = paused(
        plan(1, CapacityPolicy::WaitUntil(Duration::from_secs(120)))
            .execute(&provider, &mut CountingSetup::default()),
    )
    .unwrap_err();
    assert!(
        failure.reason.contains("within wait-until=2m"),
        "{}",
        failure.reason
    );
}

#[test]
fn a_later_failure_terminates_what_was_launched() {
    let provider = FakeProvider::new(
        vec![Outcome::Launch, Outcome::Fail(ProviderErrorKind::Quota)],
        vec![],
    );
    let failure =
        paused(plan(3, CapacityPolicy::FailFast).execute(&provider, &mut CountingSetup::default()))
            .unwrap_err();
    assert_eq!(failure.terminated.len(), 1);
    assert!(provider.alive().is_empty(), "nothing left billing");
    assert!(
        failure
            .reason
            .contains("launching machine 1 on a in r1 failed"),
        "{}",
        failure.reason
    );
}

#[test]
fn a_setup_failure_also_cleans_up() {
    let provider = FakeProvider::new(vec![], vec![]);
    let mut setup = CountingSetup {
        fail_on_prepare: Some(1),
        ..CountingSetup::default()
    };
    let failure =
        paused(plan(2, CapacityPolicy::FailFast).execute(&provider, &mut setup)).unwrap_err();
    assert!(failure.reason.contains("preparing machine 1 failed"));
    assert!(provider.alive().is_empty());
}

#[test]
fn machines_that_cannot_be_terminated_are_named_loudly() {
    let provider = FakeProvider::new(
        vec![Outcome::Launch, Outcome::Fail(ProviderErrorKind::Other)],
        vec![],
    )
    .failing_terminations(10);
    let failure =
        paused(plan(2, CapacityPolicy::FailFast).execute(&provider, &mut CountingSetup::default()))
            .unwrap_err();
    assert_eq!(failure.not_terminated.len(), 1);
    assert!(
        failure.to_string().contains("COULD NOT TERMINATE m1"),
        "{failure}"
    );
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        4 => Just(Outcome::Launch),
        4 => Just(Outcome::NoCapacity),
        1 => Just(Outcome::Fail(ProviderErrorKind::Quota)),
        1 => Just(Outcome::Fail(ProviderErrorKind::Unavailable)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn never_more_than_n_and_ends_with_n_or_none(
        outcomes in proptest::collection::vec(outcome(), 0..30),
        hints in proptest::collection::vec(any::<bool>(), 0..10),
        count in 1usize..5,
        wait in prop_oneof![Just(None), (60u64..600).prop_map(Some)],
        flaky_terminations in 0usize..3,
    ) {
        let provider = FakeProvider::new(outcomes, hints).failing_terminations(flaky_terminations);
        let policy = wait.map_or(CapacityPolicy::FailFast, |s| CapacityPolicy::WaitUntil(Duration::from_secs(s)));
        let result = paused(plan(count, policy).execute(&provider, &mut CountingSetup::default()));
        prop_assert!(provider.max_alive() <= count, "{} alive at once, N = {count}", provider.max_alive());
        match result {
            Ok((launched, _)) => {
                prop_assert_eq!(launched.len(), count);
                prop_assert_eq!(provider.alive().len(), count);
            }
            Err(failure) => {
                // Termination is retried 3 times; fewer scripted outages than that always clear.
                prop_assert!(failure.not_terminated.is_empty());
                prop_assert!(provider.alive().is_empty(), "left alive: {:?}", provider.alive());
            }
        }
    }
}

#[test]
fn a_replacement_tries_the_candidates_after_the_failed_one_first_and_it_last() {
    let whole = plan(3, CapacityPolicy::FailFast);
    let order = |failed: usize| {
        let replacement = whole.replacement(2, &whole.candidates[failed]);
        assert_eq!((replacement.count, replacement.first_index), (1, 2));
        replacement
            .candidates
            .iter()
            .map(|c| c.instance_type.clone())
            .collect::<Vec<_>>()
            .join(",")
    };
    assert_eq!(order(0), "b,c,a");
    assert_eq!(order(1), "c,a,b");
    assert_eq!(order(2), "a,b,c");

    // Another type before the failed type's other regions.
    let grid = gha_runner_core::plan::candidates("a,b", "r1,r2").unwrap();
    let order: Vec<String> = gha_runner_core::plan::replacement_order(&grid, &grid[0])
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(order, ["b in r1", "b in r2", "a in r2", "a in r1"]);

    // It launches machine 2, not machine 0.
    let provider = FakeProvider::new(vec![], vec![]);
    let mut setup = CountingSetup::default();
    let (launched, _) = paused(
        whole
            .replacement(2, &whole.candidates[0])
            .execute(&provider, &mut setup),
    )
    .unwrap();
    assert_eq!(launched[0].instance_index, 2);
    assert_eq!(launched[0].candidate.instance_type, "b");
}
