//! The agent with real processes and its real socket: hooks end jobs at once, the policy
//! decides, runners are stopped and the machine terminated through the provider. On a 100x
//! clock, so a 60 s grace takes 0.6 s.

use gha_runner_core::tags;
use std::process::{Child, Command};
use std::time::Duration;

use gha_runner_core::{
    CloudProvider, MachineId, MachineSpec, MachineState, agent::Agent, agent::AgentClock,
    agent::AgentOutcome, agent::AgentPaths, agent::HookKind, agent::send_hook,
    agent_config::AgentConfig, agent_config::AgentTimings, termination::Reason,
};
use serde_json::Value;

use crate::fake::FakeProvider;

const SCALE: f64 = 100.0;

/// A root directory with fake runner processes in it, all killed and removed on drop.
struct Sandbox {
    root: std::path::PathBuf,
    children: Vec<Child>,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let root = std::env::temp_dir().join(format!("agent-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Sandbox {
            root,
            children: Vec::new(),
        }
    }

    fn paths(&self) -> AgentPaths {
        AgentPaths::new(&self.root)
    }

    /// A process whose command line is `<runner dir>/bin/<name>`, like the real runner's.
    fn process(&mut self, runner: usize, name: &str) -> u32 {
        let exe = format!("{}/bin/{name}", self.paths().runner_dir(runner).display());
        let child = Command::new("bash")
            .arg("-c")
            .arg(format!("exec -a {exe} sleep 1000"))
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn kill(&mut self, pid: u32) {
        for child in self.children.iter_mut().filter(|c| c.id() == pid) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The fake runner processes still alive once those that are exiting have exited. A
    /// process the agent signalled leaves `/proc`'s command lines at once (the agent then counts
    /// it gone) but may take a while to finish exiting on a loaded machine: wait up to 5 s.
    fn alive(&mut self) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut alive = 0;
            for child in &mut self.children {
                if matches!(child.try_wait(), Ok(None)) {
                    alive += 1;
                }
            }
            if alive == 0 || std::time::Instant::now() >= deadline {
                return alive;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.paths().log())
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn config(tag: &str, timings: AgentTimings) -> AgentConfig {
    AgentConfig {
        version: "0.1.0".into(),
        provider: "fake".into(),
        api_url: None,
        api_key: None,
        key_variable: None,
        machine_tag: (tags::MACHINE.into(), tag.into()),
        run_label: "lambda-1-test".into(),
        runner_count: 1,
        runner_mode: "jit".into(),
        timings,
        health: None,
    }
}

async fn machine(provider: &FakeProvider, tag: &str) -> MachineId {
    let mut spec = MachineSpec::new("a", "r1");
    spec.tags.insert(tags::MACHINE.into(), tag.into());
    provider.launch(&spec).await.unwrap()
}

/// Simulated seconds of the first log line with `key` = `value`.
fn at(log: &[Value], key: &str, value: &str) -> f64 {
    log.iter()
        .find(|l| l[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value} in {log:#?}"))["t"]
        .as_f64()
        .unwrap()
}

/// Runs `agent` until it ends the machine (at most 10 s).
async fn run_to_end(agent: Agent<'_>) -> AgentOutcome {
    tokio::time::timeout(Duration::from_secs(10), agent.run())
        .await
        .unwrap()
        .unwrap()
}

async fn sleep_sim(seconds: f64) {
    sleep_at(seconds, SCALE).await;
}

async fn sleep_at(seconds: f64, scale: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds / scale)).await;
}

/// The latency test measures simulated seconds against a 2 s bound; at 20x that is 100 ms of
/// real slack, enough for a loaded two-core machine.
const LATENCY_SCALE: f64 = 20.0;

#[tokio::test(flavor = "multi_thread")]
async fn one_job_then_idle_stops_the_runner_and_terminates_after_the_grace() {
    let mut sandbox = Sandbox::new("idle");
    let provider = FakeProvider::new(vec![], vec![]);
    let id = machine(&provider, "m-0").await;
    sandbox.process(0, "Runner.Listener");
    let hooks = sandbox.paths();
    let agent = Agent::new(
        config("m-0", AgentTimings::default()),
        Some(&provider),
        sandbox.paths(),
        AgentClock::new(LATENCY_SCALE),
    );
    let (outcome, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(20), agent.run()),
        async {
            sleep_at(30.0, LATENCY_SCALE).await;
            send_hook(&hooks, HookKind::JobStarted, 0).await.unwrap();
            let worker = sandbox.process(0, "Runner.Worker");
            sleep_at(45.0, LATENCY_SCALE).await;
            sandbox.kill(worker);
            send_hook(&hooks, HookKind::JobCompleted, 0).await.unwrap();
        }
    );
    let outcome = outcome.unwrap().unwrap();
    assert_eq!(
        outcome,
        AgentOutcome::Terminated {
            reason: Reason::Idle,
            machine: id.clone()
        }
    );
    assert_eq!(
        provider.describe(&id).await.unwrap().state,
        MachineState::Gone
    );
    assert_eq!(sandbox.alive(), 0, "the listener was stopped");
    let log = sandbox.log();
    let ended = at(&log, "hook", "job-completed");
    let (due, decided) = decided_when_due(&log);
    println!(
        "last job end -> due {:.1}, decided {:.1}, terminate call {:.1} simulated s (grace 60 s, poll 10 s)",
        due - ended,
        decided - ended,
        at(&log, "terminate", "calling") - ended
    );
    assert!(
        (due - ended - 60.0).abs() < 0.002,
        "due the grace after the last job: {}",
        due - ended
    );
    assert!(at(&log, "terminate", "calling") >= due);
}

/// When the decision to terminate came due, by the agent's own account (the policy's
/// deadline, exact), and when it was taken: at the wake-up for that deadline, which a busy
/// machine delays, so judged only against discovery at a later poll — within half a poll
/// (5 of 10 simulated s).
fn decided_when_due(log: &[Value]) -> (f64, f64) {
    let decision = log
        .iter()
        .find(|l| l["decision"] == "terminate")
        .unwrap_or_else(|| panic!("no decision in {log:#?}"));
    let due = decision["due"]
        .as_f64()
        .unwrap_or_else(|| panic!("not decided at a deadline: {decision}"));
    let decided = decision["t"].as_f64().unwrap();
    assert!(
        (due..due + 5.0).contains(&decided),
        "decided at {decided}, due at {due}"
    );
    (due, decided)
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_the_agent_stops_the_runners_and_says_who_terminates() {
    let mut sandbox = Sandbox::new("keyless");
    sandbox.process(0, "Runner.Listener");
    let timings = AgentTimings {
        initial_grace_seconds: 20,
        ..AgentTimings::default()
    };
    let agent = Agent::new(
        config("m-0", timings),
        None,
        sandbox.paths(),
        AgentClock::new(SCALE),
    );
    let outcome = run_to_end(agent).await;
    assert_eq!(
        outcome,
        AgentOutcome::StoppedWithoutKey {
            reason: Reason::NoJob
        }
    );
    assert_eq!(sandbox.alive(), 0);
    assert!(sandbox.log().iter().any(|l| l["terminate"] == "skipped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_starts_the_idle_clock_and_failed_terminate_calls_are_retried() {
    let mut sandbox = Sandbox::new("worker");
    let provider = FakeProvider::new(vec![], vec![]).failing_terminations(2);
    let id = machine(&provider, "m-3").await;
    sandbox.process(0, "Runner.Listener");
    let hooks = sandbox.paths();
    let agent = Agent::new(
        config("m-3", AgentTimings::default()),
        Some(&provider),
        sandbox.paths(),
        AgentClock::new(SCALE),
    );
    let (outcome, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(15), agent.run()),
        async {
            sleep_sim(15.0).await;
            send_hook(&hooks, HookKind::JobStarted, 0).await.unwrap();
            let worker = sandbox.process(0, "Runner.Worker");
            sleep_sim(35.0).await;
            sandbox.kill(worker); // no job-completed hook: the worker died
        }
    );
    assert_eq!(
        outcome.unwrap().unwrap(),
        AgentOutcome::Terminated {
            reason: Reason::Idle,
            machine: id
        }
    );
    let log = sandbox.log();
    assert!(log.iter().any(|l| l["event"] == "worker-gone"), "{log:#?}");
    assert_eq!(log.iter().filter(|l| l["terminate"] == "failed").count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_health_gate_is_reported_held_for_the_launcher_then_ended() {
    let sandbox = Sandbox::new("unhealthy");
    let provider = FakeProvider::new(vec![], vec![]);
    let id = machine(&provider, "m-0").await;
    let paths = sandbox.paths();
    std::fs::create_dir_all(paths.health().parent().unwrap()).unwrap();
    let report = gha_runner_core::health::HealthReport {
        passed: false,
        summary: "nvidia-smi sees 7 of 8 GPUs".into(),
        detail: String::new(),
    };
    std::fs::write(paths.health(), serde_json::to_string(&report).unwrap()).unwrap();
    let agent = Agent::new(
        config("m-0", AgentTimings::default()),
        Some(&provider),
        paths,
        AgentClock::new(SCALE),
    );
    let outcome = run_to_end(agent).await;
    assert_eq!(
        outcome,
        AgentOutcome::Terminated {
            reason: Reason::Unhealthy,
            machine: id.clone()
        }
    );
    let described = provider.describe(&id).await.unwrap();
    assert_eq!(
        described.health_failure.as_deref(),
        Some("nvidia-smi sees 7 of 8 GPUs"),
        "the launcher can read why"
    );
    let log = sandbox.log();
    let reported = log
        .iter()
        .find(|l| l["health"] == "reported")
        .unwrap_or_else(|| panic!("not reported: {log:#?}"));
    let ending_at = reported["ending_at"].as_f64().unwrap();
    let hold = gha_runner_core::health::UNHEALTHY_HOLD.as_secs_f64();
    assert!(
        (ending_at - reported["t"].as_f64().unwrap() - hold).abs() < 0.002,
        "ends the hold after reporting: {reported}"
    );
    // The wake-up after the hold is late only by scheduling: within 10 simulated s.
    let calling = at(&log, "terminate", "calling");
    assert!(
        (ending_at..ending_at + 10.0).contains(&calling),
        "called terminate at {calling}, the hold ending at {ending_at}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_longer_than_the_machine_s_life_is_outlasted_but_a_refused_key_is_final() {
    // No runner ever: the decision comes at 5 s; the outage lasts past the 30 s lifetime and
    // the old give-up point (lifetime + 10 min), some 650 simulated seconds of failed calls.
    let timings = AgentTimings {
        registration_timeout_seconds: 5,
        max_lifetime_seconds: 30,
        ..AgentTimings::default()
    };
    let sandbox = Sandbox::new("outage");
    let provider = FakeProvider::new(vec![], vec![]).failing_terminations(24);
    let id = machine(&provider, "m-0").await;
    let agent = Agent::new(
        config("m-0", timings),
        Some(&provider),
        sandbox.paths(),
        AgentClock::new(SCALE),
    );
    let outcome = tokio::time::timeout(Duration::from_secs(60), agent.run())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        AgentOutcome::Terminated {
            reason: Reason::RegistrationTimeout,
            machine: id
        }
    );
    let log = sandbox.log();
    assert_eq!(
        log.iter().filter(|l| l["terminate"] == "failed").count(),
        24
    );
    assert!(at(&log, "terminate", "called") > 630.0, "{log:#?}");

    let sandbox = Sandbox::new("refused");
    let provider = FakeProvider::new(vec![], vec![]).refusing_the_key();
    machine(&provider, "m-0").await;
    let agent = Agent::new(
        config("m-0", timings),
        Some(&provider),
        sandbox.paths(),
        AgentClock::new(SCALE),
    );
    let outcome = run_to_end(agent).await;
    assert!(
        matches!(
            outcome,
            AgentOutcome::TerminationFailed {
                reason: Reason::RegistrationTimeout,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(
        sandbox
            .log()
            .iter()
            .filter(|l| l["terminate"] == "calling")
            .count(),
        1
    );
}
