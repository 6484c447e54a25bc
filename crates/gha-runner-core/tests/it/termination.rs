//! Property tests of the termination policy, ticked like the agent ticks it.

use std::time::Duration;

use gha_runner_core::{
    termination::Decision, termination::Event, termination::PolicyConfig, termination::Reason,
    termination::TerminationPolicy,
};
use proptest::prelude::*;

const POLL: u64 = 10;

fn event(runners: usize) -> impl Strategy<Value = Event> {
    (0..runners, 0..7u8).prop_map(|(runner, kind)| match kind {
        0 => Event::RunnerRegistered { runner },
        1 => Event::JobStarted { runner },
        2 => Event::JobCompleted { runner },
        3 => Event::Heartbeat { runner },
        4 => Event::WorkerGone { runner },
        5 => Event::ListenerAlive { runner },
        _ => Event::ListenerGone { runner },
    })
}

/// Events at increasing whole seconds.
fn soup() -> impl Strategy<Value = (usize, Vec<(u64, Event)>)> {
    (1usize..4).prop_flat_map(|runners| {
        (
            Just(runners),
            proptest::collection::vec((0u64..60, event(runners)), 0..80),
        )
            .prop_map(|(runners, steps)| {
                let mut time = 0;
                let events = steps
                    .into_iter()
                    .map(|(gap, event)| {
                        time += gap;
                        (time, event)
                    })
                    .collect();
                (runners, events)
            })
    })
}

/// Ticks the policy every poll interval up to `until`, applying events as their time comes.
/// Calls `check(tick, running_before, decision, policy)` at each tick.
fn tick(
    mut policy: TerminationPolicy,
    events: &[(u64, Event)],
    until: u64,
    mut check: impl FnMut(u64, bool, Decision) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut next = 0;
    for t in (0..=until).filter(|t| t % POLL == 0) {
        while next < events.len() && events[next].0 <= t {
            policy.observe(events[next].1, Duration::from_secs(events[next].0));
            next += 1;
        }
        let running = policy.job_running(Duration::from_secs(t));
        let decision = policy.decide(Duration::from_secs(t));
        check(t, running, decision)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn never_ends_a_live_job_before_max_lifetime_always_ends_by_it_and_never_changes_its_mind(
        (runners, events) in soup()
    ) {
        let config = PolicyConfig::default();
        let max = config.max_lifetime.as_secs();
        let mut decided: Option<Decision> = None;
        tick(TerminationPolicy::new(config, runners), &events, max + 2 * POLL, |t, running, decision| {
            // Judged when the decision is made: a job that starts after it is cancelled by
            // the agent stopping the runners, which is what a final decision means.
            let deciding_now = decided.is_none();
            if deciding_now && running && matches!(decision, Decision::Terminate(r) if r != Reason::MaxLifetime) {
                return Err(TestCaseError::fail(format!("terminated a live job at {t}s: {decision:?}")));
            }
            if t >= max {
                prop_assert!(matches!(decision, Decision::Terminate(_)), "still kept at {t}s");
            }
            match decided {
                Some(first) => prop_assert_eq!(decision, first, "changed its mind at {}s", t),
                None if matches!(decision, Decision::Terminate(_)) => decided = Some(decision),
                None => {}
            }
            Ok(())
        })?;
    }

    #[test]
    fn ends_within_grace_and_one_tick_of_the_last_job(
        jobs in proptest::collection::vec((0usize..3, 0u64..300, 1u64..600), 1..6),
    ) {
        // Well-formed schedules: per runner, jobs one after another with heartbeats each poll.
        let config = PolicyConfig::default();
        let mut events = vec![(0, Event::RunnerRegistered { runner: 0 })];
        let mut free_at = [5u64; 3];
        let mut last_end = 0;
        for (runner, gap, length) in jobs {
            let start = free_at[runner] + gap;
            let end = start + length;
            events.push((start, Event::JobStarted { runner }));
            let mut beat = start + POLL;
            while beat < end {
                events.push((beat, Event::Heartbeat { runner }));
                beat += POLL;
            }
            events.push((end, Event::JobCompleted { runner }));
            free_at[runner] = end + 1;
            last_end = last_end.max(end);
        }
        events.sort_by_key(|(t, _)| *t);
        let max = config.max_lifetime.as_secs();
        prop_assume!(last_end + config.grace.as_secs() + POLL < max);
        let deadline = last_end + config.grace.as_secs() + POLL;
        let mut ended_at = None;
        tick(TerminationPolicy::new(config, 3), &events, deadline, |t, _, decision| {
            if ended_at.is_none() && matches!(decision, Decision::Terminate(_)) {
                ended_at = Some(t);
            }
            Ok(())
        })?;
        prop_assert!(ended_at.is_some(), "not ended by {deadline}s (last job ended at {last_end}s)");
    }
}
