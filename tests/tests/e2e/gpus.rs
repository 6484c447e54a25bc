//! GPU-first runners, end to end: the real action starts machines in the simulator whose boot
//! scripts fetch a fake runner and the real agent, and the fake runner records what its jobs
//! would see. Pinning: runners on an 8-GPU machine get disjoint devices.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lambda_gha_tests::FakeInternet;
use lambda_gha_tests::faults::Programs;
use lambda_gha_tests::rig::{
    Captured, Machines, Rig, files_where, quick_boot_scenario, run_program,
};

/// A fresh directory for one test, removed when it ends (however it ends).
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(name: &str) -> WorkDir {
        let dir = std::env::temp_dir().join(format!("gpus-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var_os("GPUS_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The action's start inputs every test shares: registration within 10 simulated minutes,
/// and no machine ending itself before its start is over.
const BASE_INPUTS: [(&str, &str); 3] = [
    ("region", "us-east-1"),
    ("runner_registration_timeout", "10m"),
    ("runner_initial_grace_period", "45m"),
];

async fn start(
    rig: &Rig,
    programs: &Programs,
    internet: &FakeInternet,
    inputs: &[(&str, &str)],
) -> Captured {
    let mut all: Vec<(&str, &str)> = BASE_INPUTS.to_vec();
    all.extend_from_slice(inputs);
    run_program(
        &programs.action,
        &[],
        rig.action_env(internet, &all),
        &rig.dir,
        "start",
        None,
    )
    .await
}

async fn stop(rig: &Rig, programs: &Programs, internet: &FakeInternet, start: &Captured) {
    let mtx = start
        .output
        .lines()
        .find_map(|l| l.strip_prefix("mtx="))
        .expect("the start wrote mtx");
    let stop = run_program(
        &programs.action,
        &[],
        rig.action_env(internet, &[("mode", "stop"), ("mtx", mtx)]),
        &rig.dir,
        "stop",
        None,
    )
    .await;
    assert!(stop.success(), "{}\n{}", stop.stdout, stop.stderr);
    assert!(rig.left().await.is_clear(), "{:?}", rig.left().await);
}

/// Everything one test needs: the programs, its directory, the internet the machines see,
/// and the simulator with the fake GitHub.
pub(crate) struct Stage {
    programs: Programs,
    pub(crate) internet: FakeInternet,
    pub(crate) rig: Rig,
    _work: WorkDir,
}

impl Stage {
    pub(crate) async fn new(
        name: &str,
        world: lambda_cloud_sim::Scenario,
        run_id: &str,
        reporting: bool,
    ) -> Stage {
        let programs = Programs::build();
        let work = WorkDir::new(name);
        let internet = FakeInternet::start(&programs.cli, &work.0).await;
        let rig = Rig::start(
            world,
            &work.0.join("run"),
            run_id.to_owned(),
            reporting,
            Machines::Root,
        )
        .await;
        Stage {
            programs,
            internet,
            rig,
            _work: work,
        }
    }

    pub(crate) async fn start(&self, inputs: &[(&str, &str)]) -> Captured {
        start(&self.rig, &self.programs, &self.internet, inputs).await
    }

    /// The start with these inputs and nothing else, as at a ref with no release: no
    /// release checksums, and the agent that fetch-binary.sh would have built beside the
    /// action (the test's own `lambda-gha`) for the launcher to deliver.
    pub(crate) async fn start_without_release(&self, inputs: &[(&str, &str)]) -> Captured {
        let mut env = self.rig.action_env(&self.internet, inputs);
        env.retain(|(k, _)| k != "LAMBDA_GHA_SHA256SUMS" && k != "LAMBDA_GHA_RELEASE_URL");
        env.push((
            "LAMBDA_GHA_AGENT_BINARY".to_owned(),
            self.programs.cli.display().to_string(),
        ));
        env.push((
            "LAMBDA_GHA_AGENT_SHA256".to_owned(),
            self.internet.agent_sha256().to_owned(),
        ));
        run_program(
            &self.programs.action,
            &[],
            env,
            &self.rig.dir,
            "start",
            None,
        )
        .await
    }

    /// The start with these inputs and nothing else: the action's defaults for the rest.
    pub(crate) async fn start_with_only(&self, inputs: &[(&str, &str)]) -> Captured {
        run_program(
            &self.programs.action,
            &[],
            self.rig.action_env(&self.internet, inputs),
            &self.rig.dir,
            "start",
            None,
        )
        .await
    }

    pub(crate) async fn stop(&self, started: &Captured) {
        stop(&self.rig, &self.programs, &self.internet, started).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runners_on_an_8_gpu_machine_get_disjoint_devices() {
    let stage = Stage::new("pinning", quick_boot_scenario(), "9100", true).await;
    let rig = &stage.rig;
    let started = stage
        .start(&[
            ("instance_type", "gpu_8x_h100_sxm5"),
            ("runners_per_instance", "4"),
        ])
        .await;
    assert!(started.success(), "{}\n{}", started.stdout, started.stderr);

    // What each runner was started with, from the runner itself.
    let mut files = files_where(&[rig.dir.join("machines")], |path| {
        path.file_name()
            .is_some_and(|n| n == "cuda-visible-devices")
    });
    files.sort();
    let seen: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().trim().to_owned())
        .collect();
    assert_eq!(seen, ["0,1", "2,3", "4,5", "6,7"], "runner-0 … runner-3");
    let devices: Vec<&str> = seen.iter().flat_map(|s| s.split(',')).collect();
    let distinct: BTreeSet<&str> = devices.iter().copied().collect();
    assert_eq!(devices.len(), distinct.len(), "no device is shared");
    assert_eq!(distinct.len(), 8, "every GPU is used");

    // The label says the slice size, so a job can ask for it.
    let runners = rig.github.runners();
    assert_eq!(runners.len(), 4);
    assert!(
        runners
            .iter()
            .all(|r| r.labels.iter().any(|l| l == "gpus-2")),
        "{runners:?}"
    );
    stage.stop(&started).await;
}

/// The first line of the file at `path` containing `marker`, once it does (up to `timeout`).
async fn wait_for_line(path: &Path, marker: &str, timeout: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|text| text.contains(marker)) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_with_a_broken_gpu_is_replaced_by_the_next_candidate() {
    // The first machine launched comes up with 7 of its 8 GPUs.
    let world = quick_boot_scenario().with_behavior(
        1,
        lambda_cloud_sim::InstanceBehavior::GpusMissing { count: 1 },
    );
    let stage = Stage::new("gate", world, "9200", true).await;
    let rig = &stage.rig;
    // One job, on whichever machine's runner comes online: 10 s after it starts, 20 s long.
    std::fs::write(rig.sim.shared_dir().unwrap().join("fake-jobs"), "10 20\n").unwrap();

    // When the first machine's gate fails, on the simulator's clock, watched as the start runs.
    let watch = async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let first = loop {
            if let Some(entry) = rig.sim.ledger().entries.first() {
                break entry.instance_id.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "nothing launched");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let log = rig
            .dir
            .join("machines")
            .join(first.as_str())
            .join("var/log/lambda-gha-boot.log");
        let failed = wait_for_line(
            &log,
            "GPU HEALTH GATE FAILED",
            std::time::Duration::from_secs(60),
        )
        .await;
        assert!(failed, "the first machine's gate did not fail");
        (first, rig.sim.now())
    };
    let inputs = [
        ("instance_type", "gpu_8x_h100_sxm5,gpu_8x_a100_80gb_sxm4"),
        (
            "gpu_check",
            "nvidia-smi --query-gpu=name --format=csv,noheader | grep -q NVIDIA",
        ),
        // A JIT runner, which GitHub unregisters after its one job (checked below).
        ("runner_mode", "jit"),
    ];
    let (started, (first, gate_failed_at)) = tokio::join!(stage.start(&inputs), watch);
    assert!(started.success(), "{}\n{}", started.stdout, started.stderr);

    // The replacement is on the next candidate, and it is what the outputs name.
    let ledger = rig.sim.ledger();
    assert_eq!(ledger.entries.len(), 2, "one machine and its replacement");
    let (broken, replacement) = (&ledger.entries[0], &ledger.entries[1]);
    assert_eq!(broken.instance_id, first);
    assert_eq!(broken.instance_type.as_str(), "gpu_8x_h100_sxm5");
    assert_eq!(replacement.instance_type.as_str(), "gpu_8x_a100_80gb_sxm4");
    assert!(
        started
            .output
            .contains(&format!("instance-id={}", replacement.instance_id)),
        "{}",
        started.output
    );
    // Billed only until the gate failed: the action ended it at once, well before the
    // machine's own agent would have (after a 60 s hold).
    let ended = broken
        .billing_ended_at
        .expect("the broken machine was terminated");
    let after_gate = ended - gate_failed_at;
    println!(
        "broken machine: billed {:.1} simulated s; terminated {after_gate:.1} s after its gate failed",
        broken.billable_seconds
    );
    assert!(
        after_gate < 20.0,
        "terminated {after_gate} s after the gate failed"
    );

    // The action says which machine was replaced and why, with its boot log.
    let why = "failed its GPU health gate: nvidia-smi sees 7 of 8 GPUs";
    assert!(started.stdout.contains(why), "{}", started.stdout);
    assert!(
        started
            .stdout
            .contains(&format!("::group::Boot log of machine 0 {first}")),
        "{}",
        started.stdout
    );
    assert!(
        started
            .stdout
            .contains("  GPU HEALTH GATE FAILED: nvidia-smi sees 7 of 8 GPUs")
    );
    assert!(
        started.summary.contains("### Machines given up on"),
        "{}",
        started.summary
    );
    assert!(
        started
            .summary
            .contains(&format!("| {why} | `{}` |", replacement.instance_id)),
        "{}",
        started.summary
    );
    // The broken machine's runners never started; the job ran on the replacement.
    let sandbox = |id: &lambda_cloud::InstanceId| rig.dir.join("machines").join(id.as_str());
    assert!(
        !sandbox(&first)
            .join("home/runner/runner-0/runner.log")
            .exists()
    );
    let jobs = sandbox(&replacement.instance_id).join("var/log/lambda-gha-agent.jsonl");
    assert!(
        wait_for_line(&jobs, "job-completed", std::time::Duration::from_secs(30)).await,
        "the job ran on the replacement"
    );
    // Its JIT runner served its one job, and GitHub unregisters such a runner after it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !rig.github.runners().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the JIT runner is still registered: {:?}",
            rig.github.names()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stage.stop(&started).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_gate_turned_off_a_machine_short_of_gpus_is_used() {
    let world = quick_boot_scenario().with_behavior(
        1,
        lambda_cloud_sim::InstanceBehavior::GpusMissing { count: 1 },
    );
    let stage = Stage::new("gate-off", world, "9300", true).await;
    let rig = &stage.rig;
    let started = stage
        .start(&[
            ("instance_type", "gpu_8x_h100_sxm5,gpu_8x_a100_80gb_sxm4"),
            ("gpu_health_gate", "false"),
        ])
        .await;
    assert!(started.success(), "{}\n{}", started.stdout, started.stderr);
    let ledger = rig.sim.ledger();
    assert_eq!(ledger.entries.len(), 1, "no replacement: {ledger:?}");
    let machine = rig
        .dir
        .join("machines")
        .join(ledger.entries[0].instance_id.as_str());
    let boot_log = std::fs::read_to_string(machine.join("var/log/lambda-gha-boot.log")).unwrap();
    assert!(
        boot_log.contains("GPU health gate: none configured")
            && !boot_log.contains("GPU HEALTH GATE FAILED"),
        "{boot_log}"
    );
    assert_eq!(rig.github.runners().len(), 1, "its runner came online");
    stage.stop(&started).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runner_that_never_registers_shows_the_boot_log_and_its_machine_ends() {
    // The runner never reports to GitHub: nothing comes online.
    let stage = Stage::new("never", quick_boot_scenario(), "9300", false).await;
    let rig = &stage.rig;
    let inputs = [
        ("instance_type", "gpu_1x_a10"),
        // Later inputs win: 2 simulated minutes.
        ("runner_registration_timeout", "2m"),
    ];
    let started = stage.start(&inputs).await;
    assert!(!started.success(), "{}", started.stdout);
    assert!(
        started.stdout.contains("did not come online within 2s"),
        "{}",
        started.stdout
    );
    let group = started
        .stdout
        .split("::group::Boot log of machine 0 ")
        .nth(1)
        .and_then(|rest| rest.split("::endgroup::").next())
        .unwrap_or_else(|| panic!("no boot log group:\n{}", started.stdout));
    assert!(group.contains("its runners did not come online"), "{group}");
    assert!(group.contains("  [lambda-gha boot"), "{group}");
    assert!(group.contains("boot complete"), "{group}");
    assert!(
        started.summary.contains("<details><summary>Boot log of"),
        "{}",
        started.summary
    );
    assert!(
        started.summary.contains("boot complete"),
        "{}",
        started.summary
    );
    assert!(
        rig.sim.ledger().still_billing.is_empty(),
        "the machine was terminated"
    );
    assert!(rig.left().await.is_clear(), "{:?}", rig.left().await);
}
