//! When a runner machine ends itself: one pure state machine, fed events (runners registering,
//! jobs starting and ending, heartbeats, processes disappearing) and the time since boot, and
//! answering `Keep` or `Terminate(reason)`. The agent on the machine and the action off it use
//! this same policy. Several runners on one machine share one idle clock.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent_config::AgentTimings;

/// The knobs, with ec2-gha-compatible defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// How long to wait for the first job after the first runner registered (180 s).
    pub initial_grace: Duration,
    /// How long to stay idle after a job before ending (60 s).
    pub grace: Duration,
    /// How often the agent checks (10 s).
    pub poll_interval: Duration,
    /// How long runners may take to register (300 s).
    pub registration_timeout: Duration,
    /// The hard maximum life (120 min).
    pub max_lifetime: Duration,
    /// How long a running job may go without a heartbeat before it counts as dead (3 × poll).
    pub heartbeat_staleness: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig::from(AgentTimings::default())
    }
}

impl From<AgentTimings> for PolicyConfig {
    fn from(t: AgentTimings) -> Self {
        PolicyConfig {
            initial_grace: Duration::from_secs(t.initial_grace_seconds),
            grace: Duration::from_secs(t.grace_seconds),
            poll_interval: Duration::from_secs(t.poll_seconds),
            registration_timeout: Duration::from_secs(t.registration_timeout_seconds),
            max_lifetime: Duration::from_secs(t.max_lifetime_seconds),
            heartbeat_staleness: Duration::from_secs(3 * t.poll_seconds),
        }
    }
}

/// Something that happened to runner `runner` (0-based index on this machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
pub enum Event {
    /// The runner's listener is up and registered with GitHub.
    RunnerRegistered {
        /// The runner's index on the machine (0-based, as in its name's `-rN`).
        runner: usize,
    },
    /// A job started (the job-started hook ran).
    JobStarted {
        /// The runner's index on the machine (0-based, as in its name's `-rN`).
        runner: usize,
    },
    /// A job ended (the job-completed hook ran).
    JobCompleted {
        /// The runner's index on the machine (0-based, as in its name's `-rN`).
        runner: usize,
    },
    /// The runner's worker process was seen alive.
    Heartbeat {
        /// The runner's index on the machine (0-based, as in its name's `-rN`).
        runner: usize,
    },
    /// The runner's worker process is gone (crashed or killed mid-job).
    WorkerGone {
        /// The runner's index on the machine (0-based, as in its name's `-rN`).
        runner: usize,
    },
    /// The runner's listener is running (again).
    ListenerAlive {
        /// The runner's index on the machine (0-based, as in its name's `-rN`).
        runner: usize,
    },
    /// The runner's listener process is gone: it takes no more jobs.
    ListenerGone {
        /// The runner's index on the machine (0-based, as in its name's `-rN`).
        runner: usize,
    },
}

impl Event {
    fn runner(self) -> usize {
        match self {
            Event::RunnerRegistered { runner }
            | Event::JobStarted { runner }
            | Event::JobCompleted { runner }
            | Event::Heartbeat { runner }
            | Event::WorkerGone { runner }
            | Event::ListenerAlive { runner }
            | Event::ListenerGone { runner } => runner,
        }
    }
}

/// Why the machine ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// No runner registered within the registration timeout.
    RegistrationTimeout,
    /// No job arrived within the initial grace period.
    NoJob,
    /// Idle for the grace period after the last job.
    Idle,
    /// Every runner's listener is gone, so no job can arrive.
    RunnersGone,
    /// The maximum lifetime was reached, job or not.
    MaxLifetime,
    /// The GPU health gate failed, so no runner started.
    Unhealthy,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::RegistrationTimeout => "no runner registered within the registration timeout",
            Reason::NoJob => "no job arrived within the initial grace period",
            Reason::Idle => "idle for the grace period after the last job",
            Reason::RunnersGone => "every runner has exited, so no job can arrive",
            Reason::MaxLifetime => "the maximum lifetime was reached",
            Reason::Unhealthy => "the GPU health gate failed, so no runner started",
        })
    }
}

/// The policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "decision", content = "reason")]
pub enum Decision {
    /// Keep the machine.
    Keep,
    /// End it, for this reason.
    Terminate(Reason),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RunnerState {
    registered: bool,
    listener_gone_since: Option<Duration>,
    /// When the running job started and when its worker was last seen.
    job: Option<(Duration, Duration)>,
    /// When this runner's last job ended.
    last_end: Option<Duration>,
}

/// The state machine. Times are durations since the machine booted (a monotonic clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminationPolicy {
    config: PolicyConfig,
    runners: Vec<RunnerState>,
    first_registered: Option<Duration>,
    jobs_seen: u32,
    last_job_end: Option<Duration>,
    decided: Option<Reason>,
}

impl TerminationPolicy {
    /// A policy for a machine with `runners` runners.
    pub fn new(config: PolicyConfig, runners: usize) -> Self {
        TerminationPolicy {
            config,
            runners: vec![RunnerState::default(); runners.max(1)],
            first_registered: None,
            jobs_seen: 0,
            last_job_end: None,
            decided: None,
        }
    }

    /// The grace periods and limits this policy decides by.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Takes in an event that happened at `now`. Events for unknown runners are ignored.
    pub fn observe(&mut self, event: Event, now: Duration) {
        let Some(state) = self.runners.get_mut(event.runner()) else {
            return;
        };
        match event {
            Event::RunnerRegistered { .. } | Event::ListenerAlive { .. } => {
                state.registered = true;
                state.listener_gone_since = None;
                self.first_registered.get_or_insert(now);
            }
            Event::JobStarted { .. } => {
                state.registered = true;
                self.first_registered.get_or_insert(now);
                // Opened by its worker already, maybe: the hook comes after "set up job".
                if let Some((_, seen)) = &mut state.job {
                    *seen = (*seen).max(now);
                } else {
                    state.job = Some((now, now));
                    self.jobs_seen += 1;
                }
            }
            Event::Heartbeat { .. } => match &mut state.job {
                Some((_, seen)) => *seen = (*seen).max(now),
                // A live worker is a job, hook or not: the real Worker runs the job-started
                // hook only after "set up job" (actions/runner JobExtension.cs), and a hook
                // may never arrive. Not the tail of the job that just completed, though: its
                // worker outlives the completed hook by a moment.
                None if state.last_end.is_none_or(|end| {
                    now.saturating_sub(end) > self.config.heartbeat_staleness
                }) =>
                {
                    state.registered = true;
                    state.job = Some((now, now));
                    self.first_registered.get_or_insert(now);
                    self.jobs_seen += 1;
                }
                None => {}
            },
            Event::JobCompleted { .. } | Event::WorkerGone { .. } => {
                if state.job.take().is_some() {
                    state.last_end = Some(now);
                    self.last_job_end = Some(self.last_job_end.map_or(now, |t| t.max(now)));
                }
            }
            Event::ListenerGone { .. } => {
                state.listener_gone_since.get_or_insert(now);
            }
        }
    }

    /// Whether a job is running with a fresh heartbeat on any runner at `now`.
    pub fn job_running(&self, now: Duration) -> bool {
        self.runners.iter().any(|r| {
            r.job.is_some_and(|(_, seen)| {
                now.saturating_sub(seen) <= self.config.heartbeat_staleness
            })
        })
    }

    /// The earliest time after `now` at which the decision can change without a new event: the
    /// agent sleeps until then (or the next event) instead of discovering it a poll later.
    pub fn next_deadline(&self, now: Duration) -> Option<Duration> {
        let c = self.config;
        let mut deadlines = vec![c.max_lifetime];
        match self.first_registered {
            None => deadlines.push(c.registration_timeout),
            Some(at) if self.jobs_seen == 0 => deadlines.push(at + c.initial_grace),
            Some(_) => {}
        }
        if let Some(end) = self.last_job_end {
            deadlines.push(end + c.grace);
        }
        for runner in &self.runners {
            if let Some((_, seen)) = runner.job {
                deadlines.push(seen + c.heartbeat_staleness + Duration::from_millis(1));
            }
            if let Some(since) = runner.listener_gone_since {
                deadlines.push(since + c.heartbeat_staleness);
            }
        }
        deadlines.into_iter().filter(|d| *d > now).min()
    }

    /// The decision at `now`. Once it is `Terminate`, it stays the same `Terminate`.
    pub fn decide(&mut self, now: Duration) -> Decision {
        if let Some(reason) = self.decided {
            return Decision::Terminate(reason);
        }
        let reason = self.reason(now);
        self.decided = reason;
        reason.map_or(Decision::Keep, Decision::Terminate)
    }

    fn reason(&mut self, now: Duration) -> Option<Reason> {
        let c = self.config;
        if now >= c.max_lifetime {
            return Some(Reason::MaxLifetime);
        }
        // A job whose worker went silent counts as ended when its heartbeat went stale.
        for runner in &mut self.runners {
            if let Some((_, seen)) = runner.job
                && now.saturating_sub(seen) > c.heartbeat_staleness
            {
                runner.job = None;
                let ended = seen + c.heartbeat_staleness;
                self.last_job_end = Some(self.last_job_end.map_or(ended, |t| t.max(ended)));
            }
        }
        if self.job_running(now) {
            return None;
        }
        let Some(registered_at) = self.first_registered else {
            return (now >= c.registration_timeout).then_some(Reason::RegistrationTimeout);
        };
        let all_gone = self.runners.iter().all(|r| {
            !r.registered
                || r.listener_gone_since
                    .is_some_and(|since| now.saturating_sub(since) >= c.heartbeat_staleness)
        });
        if all_gone && self.runners.iter().any(|r| r.registered) {
            return Some(Reason::RunnersGone);
        }
        match self.last_job_end {
            Some(end) if now >= end + c.grace => Some(Reason::Idle),
            None if self.jobs_seen == 0 && now >= registered_at + c.initial_grace => {
                Some(Reason::NoJob)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn policy() -> TerminationPolicy {
        TerminationPolicy::new(PolicyConfig::default(), 2)
    }

    #[test]
    fn one_job_then_idle_ends_after_the_grace() {
        let mut p = policy();
        p.observe(Event::RunnerRegistered { runner: 0 }, s(30));
        p.observe(Event::JobStarted { runner: 0 }, s(40));
        for t in (50..100).step_by(10) {
            p.observe(Event::Heartbeat { runner: 0 }, s(t));
            assert_eq!(p.decide(s(t)), Decision::Keep);
        }
        p.observe(Event::JobCompleted { runner: 0 }, s(100));
        assert_eq!(
            p.next_deadline(s(100)),
            Some(s(160)),
            "the agent wakes exactly at the grace's end"
        );
        assert_eq!(p.decide(s(159)), Decision::Keep);
        assert_eq!(p.decide(s(160)), Decision::Terminate(Reason::Idle));
        assert_eq!(
            p.decide(s(161)),
            Decision::Terminate(Reason::Idle),
            "decisions are final"
        );
    }

    #[test]
    fn no_job_ends_after_the_initial_grace_and_no_runner_after_the_registration_timeout() {
        let mut p = policy();
        p.observe(Event::RunnerRegistered { runner: 1 }, s(20));
        assert_eq!(p.decide(s(199)), Decision::Keep);
        assert_eq!(p.decide(s(200)), Decision::Terminate(Reason::NoJob));
        let mut p = policy();
        assert_eq!(p.decide(s(299)), Decision::Keep);
        assert_eq!(
            p.decide(s(300)),
            Decision::Terminate(Reason::RegistrationTimeout)
        );
    }

    #[test]
    fn runners_share_one_idle_clock() {
        let mut p = policy();
        p.observe(Event::JobStarted { runner: 0 }, s(10));
        p.observe(Event::JobStarted { runner: 1 }, s(20));
        p.observe(Event::JobCompleted { runner: 0 }, s(30));
        p.observe(Event::Heartbeat { runner: 1 }, s(80));
        assert_eq!(p.decide(s(95)), Decision::Keep, "runner 1 still works");
        p.observe(Event::JobCompleted { runner: 1 }, s(100));
        assert_eq!(p.decide(s(159)), Decision::Keep);
        assert_eq!(p.decide(s(160)), Decision::Terminate(Reason::Idle));
    }

    #[test]
    fn a_silent_worker_counts_as_ended_when_its_heartbeat_went_stale() {
        let mut p = policy();
        p.observe(Event::JobStarted { runner: 0 }, s(10));
        p.observe(Event::Heartbeat { runner: 0 }, s(50));
        assert_eq!(p.decide(s(80)), Decision::Keep);
        // Stale from 80 s on; the idle clock runs from then.
        assert_eq!(p.decide(s(139)), Decision::Keep);
        assert_eq!(p.decide(s(140)), Decision::Terminate(Reason::Idle));
    }

    #[test]
    fn a_worker_seen_before_its_hook_opens_the_job() {
        let mut p = policy();
        p.observe(Event::ListenerAlive { runner: 0 }, s(0));
        // "Set up job" from 170 s; the started hook only at 200 s.
        for t in (170..=190).step_by(10) {
            p.observe(Event::Heartbeat { runner: 0 }, s(t));
            assert_eq!(p.decide(s(t)), Decision::Keep, "no 'no job' at {t}s");
        }
        p.observe(Event::JobStarted { runner: 0 }, s(200));
        p.observe(Event::Heartbeat { runner: 0 }, s(210));
        p.observe(Event::JobCompleted { runner: 0 }, s(220));
        assert_eq!(p.decide(s(279)), Decision::Keep);
        assert_eq!(p.decide(s(280)), Decision::Terminate(Reason::Idle));
    }

    #[test]
    fn the_worker_outliving_its_completed_hook_is_no_new_job() {
        let mut p = policy();
        p.observe(Event::JobStarted { runner: 0 }, s(10));
        p.observe(Event::JobCompleted { runner: 0 }, s(100));
        p.observe(Event::Heartbeat { runner: 0 }, s(101));
        assert_eq!(p.decide(s(160)), Decision::Terminate(Reason::Idle));
        // Past the staleness window a live worker is a job again.
        let mut p = policy();
        p.observe(Event::JobStarted { runner: 0 }, s(10));
        p.observe(Event::JobCompleted { runner: 0 }, s(100));
        p.observe(Event::Heartbeat { runner: 0 }, s(140));
        assert_eq!(p.decide(s(160)), Decision::Keep);
    }

    #[test]
    fn max_lifetime_ends_even_a_running_job() {
        let mut p = policy();
        p.observe(Event::JobStarted { runner: 0 }, s(10));
        p.observe(Event::Heartbeat { runner: 0 }, s(7199));
        assert_eq!(p.decide(s(7199)), Decision::Keep);
        assert_eq!(p.decide(s(7200)), Decision::Terminate(Reason::MaxLifetime));
    }

    #[test]
    fn exited_jit_runners_end_the_machine_without_waiting_for_the_grace() {
        let mut p = TerminationPolicy::new(PolicyConfig::default(), 1);
        p.observe(Event::RunnerRegistered { runner: 0 }, s(10));
        p.observe(Event::JobStarted { runner: 0 }, s(20));
        p.observe(Event::JobCompleted { runner: 0 }, s(30));
        p.observe(Event::ListenerGone { runner: 0 }, s(31));
        assert_eq!(
            p.decide(s(40)),
            Decision::Keep,
            "a listener may restart (self-update)"
        );
        assert_eq!(p.decide(s(61)), Decision::Terminate(Reason::RunnersGone));
    }
}
