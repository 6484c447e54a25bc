//! The whole life of a runner machine on one computer: the rendered boot script runs under the
//! simulator, fetches a fake GitHub runner (release notes checksum) and the real `lambda-gha`
//! agent (pinned checksum) from a test server, the runner takes a scripted job through its
//! Worker with the real job hooks, and the agent terminates the instance after the grace.

use gha_runner_core::tags;
use std::time::Duration;

use gha_runner_core::{
    CloudProvider, agent_config::AgentConfig, agent_config::AgentTimings,
    boot_script::AgentDownload, boot_script::AgentSource, boot_script::BootScript,
    boot_script::RunnerBoot, boot_script::RunnerCredential, boot_script::RunnerPrivileges,
    naming::RunnerNaming, runner_release::RunnerDownload, runner_release::RunnerPackage,
};
use gha_runner_lambda::LambdaProvider;
use lambda_gha_tests::machine::{run_in_machine, spawn_in_machine};
use lambda_gha_tests::{FakeInternet, RUNNER_VERSION};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

const SCALE: f64 = 20.0;
/// One end-to-end run: what the runner's jobs are, how the agent is tuned, what the simulator
/// does wrong, what happens on the machine meanwhile, and when the machine must end.
struct Case {
    name: &'static str,
    /// The fake runner's jobs: `gap length [crash] [setup=S]` per line, simulated seconds.
    jobs: &'static str,
    timings: AgentTimings,
    faults: Vec<lambda_cloud_sim::FaultSpec>,
    during: During,
    reason: &'static str,
    /// The end must come this long (simulated s, up to 2 more; log lines trail the events
    /// they record by milliseconds, so 0.1 less is accepted) after the first log line
    /// matching `(key, value)`, the last one when `last`; `("job", "end")` is the last job's
    /// end as the agent learnt it, `("boot", _)` the machine's boot.
    after: (&'static str, &'static str, bool, f64),
}

/// Something done on the machine while it works.
#[derive(Clone, Copy, PartialEq, Eq)]
enum During {
    Nothing,
    /// `kill -9` of the agent once it heard the first job start.
    KillAgentMidJob,
    /// A connection to the agent's socket, as the runner user, held open for 10 minutes.
    HoldHookConnection,
}

/// A machine booted by the rendered boot script, as root, in a simulator of its own.
pub(crate) struct Booted {
    pub(crate) sim: lambda_cloud_sim::Sim,
    pub(crate) id: lambda_cloud::InstanceId,
    /// The machine's files as it wrote them (the overlay's upper layer).
    pub(crate) sandbox: std::path::PathBuf,
    /// What the machine downloads from.
    pub(crate) internet: FakeInternet,
    _cleanup: RemoveOnDrop,
}

/// What a booted machine is given.
pub(crate) struct Boot {
    pub(crate) name: &'static str,
    pub(crate) jobs: &'static str,
    pub(crate) timings: AgentTimings,
    pub(crate) faults: Vec<lambda_cloud_sim::FaultSpec>,
    pub(crate) user_script: Option<&'static str>,
    /// The credential each runner gets (its count is the machine's runners).
    pub(crate) credentials: Vec<RunnerCredential>,
    /// The API key, the simulator's and the agent's on the machine.
    pub(crate) agent_key: String,
    /// Simulated seconds per real second.
    pub(crate) scale: f64,
    /// How late the internet answers each download (real time).
    pub(crate) download_delay: Duration,
}

impl Boot {
    pub(crate) fn new(name: &'static str, jobs: &'static str) -> Boot {
        Boot {
            name,
            jobs,
            timings: AgentTimings::default(),
            faults: Vec::new(),
            user_script: None,
            credentials: vec![RunnerCredential::RegistrationToken(SecretString::from(
                "fake-registration-token",
            ))],
            agent_key: "boot-key".to_owned(),
            scale: SCALE,
            download_delay: Duration::ZERO,
        }
    }
}

/// A simulator whose machines boot as root in 10 simulated seconds, and the internet they
/// download from, in a directory removed at the end.
pub(crate) struct Computer {
    pub(crate) sim: lambda_cloud_sim::Sim,
    pub(crate) internet: FakeInternet,
    cleanup: RemoveOnDrop,
}

pub(crate) async fn computer(setup: &Boot) -> Computer {
    let binary = lambda_gha_tests::lambda_gha_binary();
    let work = std::env::temp_dir().join(format!("boot-e2e-{}-{}", setup.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // Removed however the test ends (a failed assertion too): each leaves ~50 MB otherwise.
    let cleanup = RemoveOnDrop(work.clone());

    // The internet, as far as the boot script is concerned.
    let internet = FakeInternet::start_slow(&binary, &work, setup.download_delay).await;

    // Machines that boot in 10 simulated seconds keep the suite short.
    let mut scenario = lambda_cloud_sim::Scenario::default().with_boot_seconds(10.0);
    scenario.faults.clone_from(&setup.faults);
    let sim = lambda_cloud_sim::Sim::builder()
        .scenario(scenario.with_ssh_key("ci"))
        .time_scale(lambda_cloud::TimeScale::new(setup.scale).unwrap())
        .api_key(setup.agent_key.clone())
        .user_data_sandbox(work.join("sandboxes"))
        .machine_rootfs(lambda_gha_tests::machine_rootfs())
        .start()
        .await
        .unwrap();
    Computer {
        sim,
        internet,
        cleanup,
    }
}

pub(crate) async fn boot(setup: Boot) -> Booted {
    let Computer {
        sim,
        internet,
        cleanup,
    } = computer(&setup).await;
    let client = sim.client().unwrap();

    let naming = RunnerNaming::with_label("lambda-5-boot").unwrap();
    let script = boot_script(&setup, &sim, &internet, 0, None);
    let id = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .tag(tags::MACHINE, naming.machine_tag(0))
        .user_data(script.expose_secret())
        .send()
        .await
        .unwrap()
        .remove(0);
    let sandbox = sim.sandbox_dir(&id).unwrap();
    std::fs::write(
        sim.shared_dir().unwrap().join(format!("{id}.jobs")),
        setup.jobs,
    )
    .unwrap();
    Booted {
        sim,
        id,
        sandbox,
        internet,
        _cleanup: cleanup,
    }
}

/// Machine `machine`'s boot script for `setup`, on `sim`, fetching from `internet`; with a
/// cache volume mounted at `cache_mount`, when given.
pub(crate) fn boot_script(
    setup: &Boot,
    sim: &lambda_cloud_sim::Sim,
    internet: &FakeInternet,
    machine: usize,
    cache_mount: Option<String>,
) -> SecretString {
    let naming = RunnerNaming::with_label("lambda-5-boot").unwrap();
    let client = sim.client().unwrap();
    let runners = setup.credentials.len();
    let jit = matches!(setup.credentials[0], RunnerCredential::Jit(_));
    let agent_config = AgentConfig {
        version: "0.1.0".into(),
        provider: "lambda".into(),
        api_url: Some(sim.base_url().to_owned()),
        api_key: Some(SecretString::from(setup.agent_key.clone())),
        key_variable: None,
        machine_tag: (tags::MACHINE.into(), naming.machine_tag(machine)),
        run_label: naming.label().into(),
        runner_count: runners,
        runner_mode: if jit { "jit" } else { "reusable" }.into(),
        timings: setup.timings,
        health: None,
    };
    BootScript {
        version: "0.1.0".into(),
        run_label: naming.label().into(),
        machine_tag: naming.machine_tag(machine),
        registration_url: "https://github.com/octo/gpu".into(),
        runner: RunnerPackage {
            x64: Some(RunnerDownload {
                version: RUNNER_VERSION.into(),
                url: internet.runner_url(),
                sha256: Some(internet.runner_sha256().to_owned()),
                token: None,
            }),
            arm64: None,
        },
        agent: AgentSource::x86_64(AgentDownload {
            url: internet.agent_url(),
            sha256: internet.agent_sha256().to_owned(),
        }),
        agent_config: agent_config.to_json(),
        runners: setup
            .credentials
            .iter()
            .enumerate()
            .map(|(i, credential)| RunnerBoot {
                name: naming.runner_name(machine, i),
                labels: vec![naming.label().into()],
                credential: credential.clone(),
                gpu_devices: None,
            })
            .collect(),
        privileges: RunnerPrivileges::default(),
        user_script: setup.user_script.map(str::to_owned),
        runner_group: None,
        self_terminate: LambdaProvider::new(client.clone())
            .self_terminate_script()
            .map(str::to_owned),
        max_lifetime_seconds: setup.timings.max_lifetime_seconds,
        cache_mount,
    }
    .render()
    .unwrap()
}

impl Booted {
    pub(crate) fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.sandbox.join(path)).unwrap_or_default()
    }

    /// The agent's decisions so far.
    pub(crate) fn decisions(&self) -> Vec<Value> {
        self.read("var/log/lambda-gha-agent.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits (up to `limit`, real) until `path` on the machine exists and contains `text`.
    pub(crate) async fn wait_for(&self, path: &str, text: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if std::fs::read_to_string(self.sandbox.join(path)).is_ok_and(|t| t.contains(text)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// Waits until the machine stopped billing (its termination was asked for), or panics
    /// with its logs after two minutes. Read from the simulator's ledger: no API request that
    /// would count against the machine's own.
    pub(crate) async fn wait_ended(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if self.sim.ledger().still_billing.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not terminated in time\n--- boot log\n{}\n--- agent log\n{}\n--- watchdog\n{}",
                self.read("var/log/lambda-gha-boot.log"),
                self.read("var/log/lambda-gha-agent.log"),
                self.read("var/log/lambda-gha-watchdog.log"),
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn run(case: Case) {
    let machine = boot(Boot {
        timings: case.timings,
        faults: case.faults,
        ..Boot::new(case.name, case.jobs)
    })
    .await;
    let (sim, sandbox) = (&machine.sim, &machine.sandbox);
    let mut held = None;
    match case.during {
        During::Nothing => {}
        During::KillAgentMidJob => {
            assert!(
                machine
                    .wait_for(
                        "var/log/lambda-gha-agent.jsonl",
                        "job-started",
                        Duration::from_secs(60)
                    )
                    .await,
                "no job started"
            );
            let killed = run_in_machine(sim, &machine.id, "root", "pkill -KILL -x lambda-gha");
            assert!(killed.status.success(), "{killed:?}");
        }
        During::HoldHookConnection => {
            assert!(
                machine
                    .wait_for(
                        "var/log/lambda-gha-agent.jsonl",
                        "listener-alive",
                        Duration::from_secs(60)
                    )
                    .await,
                "no runner"
            );
            // As any job could: connect, say nothing, hold on.
            held = Some(spawn_in_machine(
                sim,
                &machine.id,
                "runner",
                "exec python3 -c 'import socket, time\n\
                 s = socket.socket(socket.AF_UNIX)\n\
                 s.connect(\"/run/lambda-gha/agent.sock\")\n\
                 open(\"/tmp/connection-held\", \"w\").close()\n\
                 time.sleep(600)'",
            ));
            assert!(
                machine
                    .wait_for("tmp/connection-held", "", Duration::from_secs(30))
                    .await,
                "the runner user could not connect to the agent"
            );
        }
    }
    machine.wait_ended().await;
    if let Some(mut held) = held {
        let _ = held.kill();
        let _ = held.wait();
    }
    // The instance turns `terminating` a moment before the agent logs the call's answer.
    let mut decisions = machine.decisions();
    for _ in 0..100 {
        if decisions.iter().any(|l| l["terminate"] == "calling") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        decisions = machine.decisions();
    }
    println!("boot e2e timeline (simulated s since the machine booted):");
    for line in &decisions {
        println!("  {line}");
    }
    if case.during == During::KillAgentMidJob {
        let starts = decisions.iter().filter(|l| l["agent"] == "started").count();
        assert_eq!(starts, 2, "the killed agent was restarted once");
    }
    let ledger = sim.ledger();
    assert!(ledger.still_billing.is_empty(), "nothing left billing");
    let boot_log = std::fs::read_to_string(sandbox.join("var/log/lambda-gha-boot.log")).unwrap();
    assert!(
        boot_log.contains(&format!(
            "runner verified (sha256 {})",
            machine.internet.runner_sha256()
        )),
        "{boot_log}"
    );
    assert!(boot_log.contains("boot complete"), "{boot_log}");
    assert!(
        !boot_log.contains("fake-registration-token") && !boot_log.contains("boot-key"),
        "no secret in the boot log"
    );
    assert!(
        !sandbox.join("etc/lambda-gha/registration.token").is_file(),
        "the registration token outlived the boot"
    );
    if case.reason == "idle" && !case.jobs.contains("crash") {
        // Jobs create files as on any machine (umask 022), not the boot's private 077.
        assert_eq!(
            machine.read("home/runner/runner-0/_diag/umask").trim(),
            "0022"
        );
        // Every job ran to its end, hooks and all, as the runner's Worker reports it.
        let results = machine.read("home/runner/runner-0/_diag/jobs.log");
        assert_eq!(
            results.matches(": succeeded").count(),
            case.jobs.lines().count(),
            "{}: {results}",
            case.name
        );
    }
    let find = |key: &str, value: &str, last: bool| {
        let mut matching = decisions
            .iter()
            .filter(|l| l[key] == value)
            .map(|l| l["t"].as_f64().unwrap());
        if last {
            matching.next_back()
        } else {
            matching.next()
        }
    };
    let decided = decisions
        .iter()
        .find(|l| l["decision"] == "terminate")
        .expect("the agent decided");
    assert_eq!(decided["reason"], case.reason, "{}", case.name);
    let (key, value, last, expected) = case.after;
    let anchor = if key == "boot" {
        // The agent's clock counts from the machine's boot.
        0.0
    } else if (key, value) == ("job", "end") {
        // The last job ended when the agent first learnt it: its completed hook, or its worker
        // vanishing from the process table, whichever came first.
        let started = find("hook", "job-started", true).expect("a job started");
        decisions
            .iter()
            .filter(|l| l["hook"] == "job-completed" || l["event"] == "worker-gone")
            .map(|l| l["t"].as_f64().unwrap())
            .filter(|t| *t >= started)
            .fold(f64::MAX, f64::min)
    } else {
        find(key, value, last).unwrap_or_else(|| panic!("{}: no {key}={value}", case.name))
    };
    // Judged on the agent's own account: the deadline the decision came due at is the
    // policy's (exact); the wake-up for it is late only by scheduling, which a busy machine
    // stretches, so it is judged only against discovery at a later poll (half of 10 s).
    let due = decided["due"]
        .as_f64()
        .unwrap_or_else(|| panic!("{}: not decided at a deadline: {decided}", case.name));
    let decided_at = decided["t"].as_f64().unwrap();
    assert!(
        (due..due + 5.0).contains(&decided_at),
        "{}: decided at {decided_at}, due at {due}",
        case.name
    );
    let calling = find("terminate", "calling", false).expect("the agent called terminate");
    println!(
        "{}: {key}={value} -> due {:.1}, terminate call {:.1} simulated s (expected {expected})",
        case.name,
        due - anchor,
        calling - anchor
    );
    assert!(
        (expected - 0.1..=expected + 0.1).contains(&(due - anchor)),
        "{}: due {} after {key}={value}",
        case.name,
        due - anchor
    );
    assert!(
        calling >= decided_at,
        "{}: called terminate at {calling}, before deciding at {decided_at}",
        case.name
    );
    println!(
        "{}: billed {:.0} simulated s",
        case.name, ledger.entries[0].billable_seconds
    );
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn timings() -> AgentTimings {
    AgentTimings::default()
}

/// A case that must end the grace (60 s) after its last job.
fn idle_after_jobs(
    name: &'static str,
    jobs: &'static str,
    faults: Vec<lambda_cloud_sim::FaultSpec>,
) -> Case {
    Case {
        name,
        jobs,
        timings: timings(),
        faults,
        during: During::Nothing,
        reason: "idle",
        after: ("job", "end", true, 60.0),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_job_then_idle_ends_after_the_grace() {
    run(idle_after_jobs("one-job", "20 40\n", Vec::new())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_jobs_with_short_gaps_are_served_by_one_machine() {
    run(idle_after_jobs(
        "three-jobs",
        "10 20\n30 20\n30 20\n",
        Vec::new(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_job_ends_after_the_initial_grace() {
    run(Case {
        name: "no-job",
        jobs: "",
        timings: timings(),
        faults: Vec::new(),
        during: During::Nothing,
        reason: "no-job",
        after: ("event", "listener-alive", false, 180.0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_past_the_maximum_lifetime_is_ended_at_it() {
    run(Case {
        name: "max-lifetime",
        jobs: "10 1000\n",
        timings: AgentTimings {
            max_lifetime_seconds: 240,
            ..timings()
        },
        faults: Vec::new(),
        during: During::Nothing,
        reason: "max-lifetime",
        after: ("boot", "", false, 240.0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_job_starts_the_idle_clock() {
    run(Case {
        name: "worker-killed",
        jobs: "10 30 crash\n",
        timings: timings(),
        faults: Vec::new(),
        during: During::Nothing,
        reason: "idle",
        after: ("event", "worker-gone", false, 60.0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_failing_twice_with_5xx_still_terminates() {
    let failing =
        lambda_cloud_sim::FaultSpec::error("terminateInstance", 503, "global/internal-error")
            .message("Try again")
            .on_calls([1, 2]);
    run(idle_after_jobs("terminate-5xx", "20 20\n", vec![failing])).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_up_job_longer_than_the_initial_grace_is_not_cut_short() {
    // The job-started hook comes only after "set up job": 200 s here, past the 180 s grace.
    run(idle_after_jobs(
        "long-setup",
        "0 20 setup=200\n",
        Vec::new(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_agent_is_restarted_and_still_ends_the_machine_after_the_job() {
    run(Case {
        during: During::KillAgentMidJob,
        ..idle_after_jobs("agent-killed", "10 80\n", Vec::new())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_connection_held_open_does_not_delay_the_maximum_lifetime() {
    run(Case {
        name: "held-socket",
        jobs: "10 1000\n",
        timings: AgentTimings {
            max_lifetime_seconds: 240,
            ..timings()
        },
        faults: Vec::new(),
        during: During::HoldHookConnection,
        reason: "max-lifetime",
        after: ("boot", "", false, 240.0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_user_script_ends_the_machine_after_the_hold() {
    // Time ×5: the 2 s allowed past the hold are 400 ms of real time for curl to reach the
    // simulator on a loaded machine.
    let machine = boot(Boot {
        user_script: Some("echo 'setting up'\nexit 1"),
        scale: 5.0,
        ..Boot::new("user-script-fails", "")
    })
    .await;
    assert!(
        machine
            .wait_for(
                "var/log/lambda-gha-boot.log",
                "FAILED",
                Duration::from_secs(60)
            )
            .await,
        "the boot did not fail"
    );
    let failed_at = machine.sim.now();
    machine.wait_ended().await;
    let ended_at = machine.sim.ledger().entries[0]
        .billing_ended_at
        .expect("terminated");
    let hold = gha_runner_core::health::UNHEALTHY_HOLD.as_secs_f64();
    let waited = ended_at - failed_at;
    println!("user-script-fails: FAILED -> terminated: {waited:.1} simulated s (hold {hold})");
    assert!(
        (hold - 0.1..=hold + 2.0).contains(&waited),
        "ended {waited} simulated s after failing\n{}",
        machine.read("var/log/lambda-gha-failed-boot.log")
    );
    let boot_log = machine.read("var/log/lambda-gha-boot.log");
    assert!(
        boot_log.contains("the user's script failed") && !boot_log.contains("starting runner"),
        "{boot_log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_agent_gone_for_good_the_watchdog_ends_the_machine() {
    let machine = boot(Boot {
        timings: AgentTimings {
            max_lifetime_seconds: 240,
            ..timings()
        },
        ..Boot::new("watchdog", "10 1000\n")
    })
    .await;
    assert!(
        machine
            .wait_for(
                "var/log/lambda-gha-agent.jsonl",
                "listener-alive",
                Duration::from_secs(60)
            )
            .await,
        "no runner"
    );
    // Its respawn loop first, then the agent: nothing of lambda-gha's binary is left.
    let killed = run_in_machine(
        &machine.sim,
        &machine.id,
        "root",
        "pkill -KILL -f '^bash -c while :; do \"\\$1\" agent run' && pkill -KILL -x lambda-gha",
    );
    assert!(killed.status.success(), "{killed:?}");
    machine.wait_ended().await;
    let entry = &machine.sim.ledger().entries[0];
    let lived = entry.billing_ended_at.unwrap() - entry.launched_at;
    // 10 s of boot, then the watchdog's 240 + 120 s.
    let expected = 10.0 + 240.0 + gha_runner_core::boot_script::WATCHDOG_MARGIN.as_secs_f64();
    println!("watchdog: launch -> terminated: {lived:.1} simulated s (expected {expected})");
    assert!(
        (expected..=expected + 10.0).contains(&lived),
        "lived {lived} simulated s\n{}",
        machine.read("var/log/lambda-gha-watchdog.log")
    );
    assert!(
        machine
            .read("var/log/lambda-gha-watchdog.log")
            // Logged before the call: the machine may end before its answer.
            .contains("terminating"),
        "the watchdog did it"
    );
    assert!(
        !machine
            .read("var/log/lambda-gha-agent.jsonl")
            .contains("decision"),
        "not the agent"
    );
}
