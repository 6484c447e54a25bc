//! `lambda-gha serve --demo`: the controller's whole loop offline. The embedded simulator is
//! the cloud; a fake GitHub (`github-fake`) queues a small workflow, sends its signed
//! `workflow_job` deliveries to the controller, and runs each job on an online runner whose
//! labels match. The simulated machines run no boot script: their runners are online while
//! the simulator says they are active. The status page is served while it runs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gha_runner_controller::{Controller, ControllerConfig, GitHubSource, Parts, WebhookSecret};
use gha_runner_core::agent_config::AgentTimings;
use gha_runner_core::boot_log::MachineAccess;
use gha_runner_core::boot_script::{AgentDownload, AgentSource, RunnerPrivileges};
use gha_runner_core::health::GpuGate;
use gha_runner_core::provisioner::BootSettings;
use gha_runner_core::runner_release::RunnerVersion;
use gha_runner_core::{GitHub, RunnerScope, tags};
use github_fake::{FakeGitHub, FakeJob, JobStatus, WebhookDelivery};
use lambda_cloud_sim::{Ledger, Scenario, Sim};
use secrecy::SecretString;
use tokio::time::Instant;

use crate::progress::Ui;

/// Simulated seconds per real second: a 12 s launch interval takes 0.2 s.
pub const TIME_SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(60.0);

/// The SSH key the simulated account starts with, named by the pools.
const KEY: &str = "demo";

/// The demo's pools: what a team with two kinds of GPU writes.
const POOLS: &str = r#"
[[pool]]
name = "a10"
labels = ["self-hosted", "gpu-a10"]
types = ["gpu_1x_a10", "gpu_1x_a6000"]
regions = ["us-east-1", "us-west-1"]
ssh_key = "demo"
max_machines = 3
idle_grace = "2s"
[[pool]]
name = "h100"
labels = ["self-hosted", "gpu-h100"]
types = ["gpu_1x_h100_pcie"]
regions = ["us-east-1", "us-west-1"]
ssh_key = "demo"
max_machines = 2
idle_grace = "2s"
"#;

/// What the demo did.
#[derive(Debug)]
pub struct ServeDemoReport {
    /// Jobs queued, and how many succeeded.
    pub jobs: (usize, usize),
    /// Machines the controller launched.
    pub machines: usize,
    /// The decisions it took, oldest first.
    pub decisions: Vec<String>,
    /// Runner registrations left at the end.
    pub runners_left: usize,
    /// The simulated cloud's bill.
    pub ledger: Ledger,
}

/// The demo's workflow: four training jobs on A10s, two on an H100, and one job no pool serves
/// (left alone, then cancelled).
fn workflow() -> Vec<FakeJob> {
    let mut jobs: Vec<FakeJob> = (0..4)
        .map(|i| FakeJob::new(&format!("train-{i}"), &["self-hosted", "gpu-a10"], &[], 240))
        .collect();
    jobs.extend((0..2).map(|i| {
        FakeJob::new(
            &format!("finetune-{i}"),
            &["self-hosted", "gpu-h100"],
            &[],
            420,
        )
    }));
    jobs.push(FakeJob::new("lint", &["ubuntu-latest"], &[], 30));
    jobs
}

fn boot_settings() -> BootSettings {
    BootSettings {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        // Simulated machines run no boot script: the agent is never downloaded.
        agent: AgentSource::x86_64(AgentDownload {
            url: "https://example.invalid/lambda-gha".to_owned(),
            sha256: "0".repeat(64),
        }),
        runner: RunnerVersion::Served,
        runner_releases_api: "https://example.invalid/releases".to_owned(),
        runner_download_base: "https://example.invalid/download".to_owned(),
        privileges: RunnerPrivileges::default(),
        user_script: None,
        agent_api_url: None,
        agent_api_key: None,
        self_terminate: true,
        timings: AgentTimings::default(),
        gpu_gate: GpuGate::default(),
    }
}

/// Runs the demo, printing the controller's decisions as it takes them.
pub async fn demo(ui: Ui) -> Result<ServeDemoReport, String> {
    let dir = std::env::temp_dir().join(format!("lambda-gha-serve-demo-{:08x}", fastrand::u32(..)));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let result = run(ui, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The controller of the demo: the demo's pools over a SQLite file in `dir`, the simulator
/// as its cloud, the fake GitHub as its GitHub.
async fn controller(
    dir: &std::path::Path,
    sim: &Sim,
    github: &FakeGitHub,
) -> Result<Controller, String> {
    let config = ControllerConfig::parse(&format!(
        "name = \"demo\"\ndatabase = {:?}\n[github]\nscope = \"octo/gpu\"\n\
         [timing]\nreconcile_every = \"1s\"\nobserve_every = \"500ms\"\npoll_jobs_every = \"5s\"\n\
         registration_timeout = \"1m\"\nfailed_launch_pause = \"2s\"\n{POOLS}",
        dir.join("state.db").display().to_string()
    ))?;
    let store = config
        .database
        .open(None)
        .await
        .map_err(|e| e.to_string())?;
    let client = sim.client().map_err(|e| e.to_string())?;
    let gh = GitHub::new(
        &SecretString::from("demo-token"),
        Some(&github.uri()),
        None,
        RunnerScope::Repo {
            owner: "octo".into(),
            repo: "gpu".into(),
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(Controller::new(Parts {
        config,
        store,
        provider: Arc::new(gha_runner_lambda::LambdaProvider::new(client)),
        github: GitHubSource::token(gh),
        boot: Arc::new(boot_settings),
        access: MachineAccess::Unavailable {
            why: "simulated machines".to_owned(),
        },
        launch_interval: std::time::Duration::from_secs(12).div_f64(TIME_SCALE.factor()),
    }))
}

async fn run(ui: Ui, dir: &std::path::Path) -> Result<ServeDemoReport, String> {
    let sim = Sim::builder()
        .scenario(Scenario::default().with_ssh_key(KEY))
        .time_scale(TIME_SCALE)
        .start()
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let github = FakeGitHub::start(false).await;
    github.run_jobs_itself(TIME_SCALE.factor());
    let view = sim.view();
    let machines = github.play_machines(move || view.tagged(tags::RUN));
    let controller = controller(dir, &sim, &github).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let secret: String = (0..32).map(|_| fastrand::alphanumeric()).collect();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(gha_runner_controller::serve(
        controller.clone(),
        WebhookSecret::new(&SecretString::from(secret.clone())),
        listener,
        stopped,
    ));
    let deliveries = github.deliver_webhooks(
        &format!("{url}/webhook"),
        &secret,
        WebhookDelivery::default(),
    );
    ui.line(format!(
        "lambda-gha serve --demo: the controller at {url}/ (status page; /metrics), a simulated Lambda Cloud at {} (time runs {TIME_SCALE}× faster), a fake GitHub sending signed workflow_job webhooks",
        sim.base_url()
    ));
    let jobs = workflow();
    let queued = jobs.len();
    ui.line(
        "queued: 4 jobs on [self-hosted, gpu-a10], 2 on [self-hosted, gpu-h100], 1 on \
         [ubuntu-latest] (no pool serves it)",
    );
    github.queue_workflow(jobs);
    let decisions = follow(&ui, &controller, &github, &sim).await;
    github.cancel("lint");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    deliveries.stop();
    machines.abort();
    let succeeded = github
        .jobs()
        .iter()
        .filter(|(_, s)| {
            matches!(
                s,
                JobStatus::Done {
                    succeeded: true,
                    ..
                }
            )
        })
        .count();
    let report = ServeDemoReport {
        jobs: (queued, succeeded),
        machines: sim.ledger().entries.len(),
        decisions,
        runners_left: github.runners().len(),
        ledger: sim.ledger(),
    };
    sim.shutdown().await;
    Ok(report)
}

/// Prints each new decision until the served jobs ran and nothing bills (at most 2 minutes);
/// returns them all, oldest first.
async fn follow(ui: &Ui, controller: &Controller, github: &FakeGitHub, sim: &Sim) -> Vec<String> {
    let mut seen: BTreeSet<(i64, String)> = BTreeSet::new();
    let mut all = Vec::new();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let mut fresh = controller
            .store()
            .recent_decisions(50)
            .await
            .unwrap_or_default();
        fresh.reverse();
        for decision in fresh {
            if seen.insert((decision.at, decision.text.clone())) {
                ui.line(format!(
                    "  {} {}",
                    decision.pool.as_deref().unwrap_or("-"),
                    decision.text
                ));
                all.push(decision.text);
            }
        }
        let served_done = github.jobs().iter().all(|(job, status)| {
            job.runs_on.iter().any(|l| l == "ubuntu-latest")
                || matches!(status, JobStatus::Done { .. })
        });
        if (served_done && sim.ledger().still_billing.is_empty() && github.runners().is_empty())
            || Instant::now() >= until
        {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_serve_demo_runs_every_served_job_and_leaves_nothing() {
        let report = demo(Ui {
            quiet: true,
            json: true,
        })
        .await
        .unwrap();
        assert_eq!(
            report.jobs,
            (7, 6),
            "every job a pool serves ran: {report:#?}"
        );
        assert_eq!(report.machines, 6, "one machine per job: {report:#?}");
        assert!(report.ledger.still_billing.is_empty(), "{report:#?}");
        assert_eq!(report.runners_left, 0);
        assert!(
            report
                .decisions
                .iter()
                .any(|d| d.contains("the pool is at its 3 machine(s)")),
            "four A10 jobs for three machines: one waits: {:#?}",
            report.decisions
        );
    }
}
