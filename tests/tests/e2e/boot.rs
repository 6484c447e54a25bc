//! The whole life of a runner machine on one computer: the rendered boot script runs under the
//! simulator, fetches a fake GitHub runner (release notes checksum) and the real `lambda-gha`
//! agent (pinned checksum) from a test server, the runner takes a scripted job through its
//! Worker with the real job hooks, and the agent terminates the instance after the grace.

use std::time::Duration;

use gha_runner_core::{
    AgentConfig, AgentDownload, AgentSource, AgentTimings, BootScript, CloudProvider,
    LambdaProvider, MACHINE_TAG, RunnerBoot, RunnerCredential, RunnerNaming, RunnerPrivileges,
};
use lambda_cloud::InstanceStatus;
use lambda_gha_tests::{FakeInternet, RUNNER_VERSION};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

const SCALE: f64 = 20.0;
/// One end-to-end run: what the runner's jobs are, how the agent is tuned, what the simulator
/// does wrong, and when the machine must end.
struct Case {
    name: &'static str,
    /// The fake runner's jobs: `gap length [crash]` per line, simulated seconds.
    jobs: &'static str,
    timings: AgentTimings,
    faults: Vec<lambda_cloud_sim::FaultSpec>,
    reason: &'static str,
    /// The end must come this long (simulated s, up to 2 more; log lines trail the events
    /// they record by milliseconds, so 0.1 less is accepted) after the first log line
    /// matching `(key, value)`, the last one when `last`; `("job", "end")` is the last job's
    /// end as the agent learnt it, `("boot", _)` the machine's boot.
    after: (&'static str, &'static str, bool, f64),
}

async fn run(case: Case) {
    let binary = lambda_gha_tests::lambda_gha_binary();
    let work = std::env::temp_dir().join(format!("boot-e2e-{}-{}", case.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    // Removed however the test ends (a failed assertion too): each leaves ~50 MB otherwise.
    let _cleanup = RemoveOnDrop(work.clone());

    // The internet, as far as the boot script is concerned.
    let internet = FakeInternet::start(&binary, &work).await;

    // Machines that boot in 10 simulated seconds keep the suite short.
    let mut scenario = lambda_cloud_sim::Scenario::default();
    for ty in &mut scenario.instance_types {
        ty.boot_seconds = lambda_cloud_sim::SecondsRange {
            min: 10.0,
            max: 10.0,
        };
    }
    scenario.faults = case.faults;
    let sim = lambda_cloud_sim::Sim::builder()
        .scenario(scenario.with_ssh_key("ci"))
        .time_scale(SCALE)
        .api_key("boot-key")
        .user_data_sandbox(work.join("sandboxes"))
        .machine_rootfs(lambda_gha_tests::machine_rootfs())
        .start()
        .await
        .unwrap();
    let client = sim.client().unwrap();

    let naming = RunnerNaming::with_label("lambda-5-boot").unwrap();
    let agent_config = AgentConfig {
        version: "0.1.0".into(),
        provider: "lambda".into(),
        api_url: Some(sim.base_url().to_owned()),
        api_key: Some(SecretString::from("boot-key")),
        machine_tag: (MACHINE_TAG.into(), naming.machine_tag(0)),
        run_label: naming.label().into(),
        runner_count: 1,
        runner_mode: "reusable".into(),
        timings: case.timings,
        health: None,
    };
    let script = BootScript {
        version: "0.1.0".into(),
        run_label: naming.label().into(),
        machine_tag: naming.machine_tag(0),
        registration_url: "https://github.com/octo/gpu".into(),
        runner_releases_api: internet.runner_releases_api(),
        runner_download_base: internet.runner_download_base(),
        agent: AgentSource::x86_64(AgentDownload {
            url: internet.agent_url(),
            sha256: internet.agent_sha256().to_owned(),
        }),
        agent_config: agent_config.to_json(),
        runners: vec![RunnerBoot {
            name: naming.runner_name(0, 0),
            labels: vec![naming.label().into()],
            credential: RunnerCredential::RegistrationToken(SecretString::from(
                "fake-registration-token",
            )),
            gpu_devices: None,
        }],
        privileges: RunnerPrivileges::default(),
        user_script: None,
        self_terminate: LambdaProvider::new(client.clone())
            .self_terminate_script()
            .map(str::to_owned),
        max_lifetime_seconds: case.timings.max_lifetime_seconds,
    }
    .render()
    .unwrap();
    let id = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .tag(MACHINE_TAG, naming.machine_tag(0))
        .user_data(script.expose_secret())
        .send()
        .await
        .unwrap()
        .remove(0);
    let sandbox = sim.sandbox_dir(&id).unwrap();
    std::fs::write(
        sim.shared_dir().unwrap().join(format!("{id}.jobs")),
        case.jobs,
    )
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let instance = client.instances().get(&id).await;
        if matches!(
            instance.as_ref().map(|i| &i.status),
            Ok(InstanceStatus::Terminating | InstanceStatus::Terminated)
        ) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let boot = std::fs::read_to_string(sandbox.join("var/log/lambda-gha-boot.log"))
                .unwrap_or_default();
            let agent = std::fs::read_to_string(sandbox.join("var/log/lambda-gha-agent.log"))
                .unwrap_or_default();
            panic!("not terminated in time\n--- boot log\n{boot}\n--- agent log\n{agent}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The instance turns `terminating` a moment before the agent logs the call's answer.
    let read = || -> Vec<Value> {
        std::fs::read_to_string(sandbox.join("var/log/lambda-gha-agent.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut decisions = read();
    for _ in 0..100 {
        if decisions.iter().any(|l| l["terminate"] == "calling") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        decisions = read();
    }
    println!("boot e2e timeline (simulated s since the agent started):");
    for line in &decisions {
        println!("  {line}");
    }
    let ledger = sim.ledger();
    assert!(ledger.still_billing.is_empty(), "nothing left billing");
    let boot_log = std::fs::read_to_string(sandbox.join("var/log/lambda-gha-boot.log")).unwrap();
    assert!(
        boot_log.contains(&format!("runner v{RUNNER_VERSION} verified")),
        "{boot_log}"
    );
    assert!(boot_log.contains("boot complete"), "{boot_log}");
    assert!(
        !boot_log.contains("fake-registration-token") && !boot_log.contains("boot-key"),
        "no secret in the boot log"
    );
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
    let latency = find("terminate", "calling", false).expect("the agent called terminate") - anchor;
    println!(
        "{}: {key}={value} -> terminate call: {latency:.1} simulated s (expected {expected})",
        case.name
    );
    assert!(
        (expected - 0.1..=expected + 2.0).contains(&latency),
        "{}: {latency}",
        case.name
    );
    println!(
        "{}: billed {:.0} simulated s",
        case.name, ledger.entries[0].billable_seconds
    );
    sim.shutdown().await;
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
        reason: "idle",
        after: ("event", "worker-gone", false, 60.0),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_failing_twice_with_5xx_still_terminates() {
    let failing = lambda_cloud_sim::FaultSpec {
        operation: "terminateInstance".into(),
        status: Some(503),
        code: "global/internal-error".into(),
        message: "Try again".into(),
        on_calls: vec![1, 2],
        probability: None,
        latency_ms: 0,
        drop_connection: false,
    };
    run(idle_after_jobs("terminate-5xx", "20 20\n", vec![failing])).await;
}
