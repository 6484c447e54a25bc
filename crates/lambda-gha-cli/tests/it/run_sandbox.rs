//! `run` through the library against the simulator, machines reached through their sandbox:
//! the paths that need no sshd (a run's own SSH key, a refused launch, the GPU check against
//! the simulated machine's `nvidia-smi`).

use std::path::PathBuf;
use std::time::Duration;

use gha_runner_core::health::GpuGate;
use gha_runner_lambda::LambdaProvider;
use lambda_cloud_sim::{InstanceBehavior, Scenario, Sim};
use lambda_gha_cli::launch::LaunchRequest;
use lambda_gha_cli::progress::Ui;
use lambda_gha_cli::project::Project;
use lambda_gha_cli::run::{MachineFate, Reach, ReplacedMachine, RunRequest, RunSummary, Step, run};

const SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(100.0);

struct Fixture {
    sim: Sim,
    provider: LambdaProvider,
    dir: PathBuf,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::with(Scenario::default()).await
    }

    async fn with(scenario: Scenario) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("lambda-gha-runlib-{:016x}", fastrand::u64(..)));
        let sim = Sim::builder()
            .scenario(scenario)
            .time_scale(SCALE)
            .user_data_sandbox(dir.join("machines"))
            .start()
            .await
            .unwrap();
        let provider = LambdaProvider::new(sim.client().unwrap());
        std::fs::create_dir_all(dir.join("proj")).unwrap();
        std::fs::write(dir.join("proj/go.sh"), "echo ok > done.txt\n").unwrap();
        Fixture { sim, provider, dir }
    }

    fn request(&self, instance_types: &[&str]) -> RunRequest {
        let project = Project::scan(&self.dir.join("proj")).unwrap();
        RunRequest {
            launch: LaunchRequest {
                instance_types: instance_types.iter().map(|t| (*t).to_owned()).collect(),
                ..LaunchRequest::default()
            },
            instance: None,
            steps: vec![Step::script(&project, "go.sh").unwrap()],
            project,
            withheld: Vec::new(),
            downloads: vec!["done.txt".into()],
            download_to: self.dir.join("proj"),
            keep: false,
            reach: Reach::Sandbox {
                root: self.dir.join("machines"),
            },
            gpu_gate: GpuGate::default(),
            replace_unhealthy: 0,
            boot_timeout: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(12 * 3600),
            isolated: false,
            cache: None,
            time_scale: SCALE,
            user: "tester".into(),
            state_dir: gha_runner_core::session::StateDir::new(self.dir.join("state")),
        }
    }

    async fn run(&self, request: &RunRequest) -> RunSummary {
        let (_tx, mut interrupts) = tokio::sync::mpsc::unbounded_channel();
        run(&self.provider, request, quiet(), &mut interrupts).await
    }

    fn key_files(&self) -> usize {
        std::fs::read_dir(self.dir.join("state/keys")).map_or(0, Iterator::count)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn quiet() -> Ui {
    Ui {
        quiet: true,
        json: true,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_finds_what_the_first_left_in_the_cache_filesystem() {
    let world = Fixture::new().await;
    // What `uv` leaves in its cache on the first run and finds on the next.
    std::fs::write(
        world.dir.join("proj/go.sh"),
        "cache=\"${UV_CACHE_DIR:?the run gives no UV_CACHE_DIR}\"\n\
         if [ -f \"$cache/torch.whl\" ]; then echo found > done.txt; \
         else echo fresh > done.txt; echo torch > \"$cache/torch.whl\"; fi\n",
    )
    .unwrap();
    let mut request = world.request(&["gpu_1x_a10"]);
    request.launch.regions = vec!["us-west-1".into()];
    request.cache = gha_runner_core::cache::CacheRequest::parse("true", "proj", "cache").unwrap();
    for expected in ["fresh", "found"] {
        let summary = world.run(&request).await;
        assert_eq!(summary.exit_code, 0, "{}", summary.render());
        let done = std::fs::read_to_string(world.dir.join("proj/done.txt")).unwrap();
        assert_eq!(done.trim(), expected);
    }
    let filesystems = world
        .sim
        .client()
        .unwrap()
        .filesystems()
        .list()
        .await
        .unwrap();
    let names: Vec<&str> = filesystems.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["gha-cache-proj-us-west-1"],
        "made once, in the run's region"
    );
    let launched = world
        .sim
        .client()
        .unwrap()
        .instances()
        .list()
        .await
        .unwrap();
    assert!(
        launched
            .iter()
            .all(|i| i.file_system_names == ["gha-cache-proj-us-west-1"]),
        "every machine mounted it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_named_key_the_run_makes_one_and_leaves_neither_it_nor_the_machine() {
    let world = Fixture::new().await;
    let (_tx, mut interrupts) = tokio::sync::mpsc::unbounded_channel();
    let summary = run(
        &world.provider,
        &world.request(&["gpu_1x_a10"]),
        quiet(),
        &mut interrupts,
    )
    .await;
    assert_eq!(summary.exit_code, 0, "{}", summary.render());
    assert_eq!(summary.machine, MachineFate::Terminated);
    assert_eq!(
        summary.gpu_check.as_deref(),
        Some("nvidia-smi sees all 1 GPUs"),
        "the simulated machine's nvidia-smi answered the check"
    );
    assert_eq!(summary.downloaded_files, 1);
    let keys = world.sim.client().unwrap().ssh_keys().list().await.unwrap();
    assert!(
        keys.is_empty(),
        "the run's key is deleted from the account: {keys:?}"
    );
    assert_eq!(world.key_files(), 0, "and its private half from the disk");
    assert!(world.sim.ledger().still_billing.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_launch_reports_the_fix_and_leaves_nothing() {
    let world = Fixture::new().await;
    let (_tx, mut interrupts) = tokio::sync::mpsc::unbounded_channel();
    let summary = run(
        &world.provider,
        &world.request(&["gpu_1x_a1O"]),
        quiet(),
        &mut interrupts,
    )
    .await;
    assert_eq!(summary.exit_code, 1);
    assert_eq!(summary.machine, MachineFate::NotLaunched);
    let error = summary.error.unwrap();
    assert!(error.contains("gpu_1x_a10"), "did you mean: {error}");
    assert!(world.sim.ledger().entries.is_empty(), "zero launches");
    let keys = world.sim.client().unwrap().ssh_keys().list().await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(world.key_files(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_with_a_missing_gpu_is_terminated_before_the_upload() {
    // The first machine comes up with 7 of its 8 GPUs visible.
    let world = Fixture::with(
        Scenario::default().with_behavior(1, InstanceBehavior::GpusMissing { count: 1 }),
    )
    .await;
    let summary = world.run(&world.request(&["gpu_8x_h100_sxm5"])).await;
    assert_eq!(summary.exit_code, 1, "{}", summary.render());
    let error = summary.error.clone().unwrap();
    assert!(
        error.contains("GPU health gate failed")
            && error.contains("nvidia-smi sees 7 of 8 GPUs")
            && error.contains("--no-gpu-gate"),
        "{error}"
    );
    assert_eq!(summary.machine, MachineFate::Terminated);
    assert_eq!(summary.upload, None, "nothing was uploaded to it");
    assert!(
        summary.phases.iter().any(|p| p.phase == "gpu check")
            && !summary.phases.iter().any(|p| p.phase == "upload"),
        "{:?}",
        summary.phases
    );
    assert!(world.sim.ledger().still_billing.is_empty());
    assert_eq!(world.key_files(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_users_gpu_check_gates_the_run_and_the_gate_can_be_skipped() {
    let world = Fixture::with(
        Scenario::default().with_behavior(2, InstanceBehavior::GpusMissing { count: 1 }),
    )
    .await;
    let mut request = world.request(&["gpu_1x_a10"]);
    request.gpu_gate = GpuGate::On {
        check: Some("echo 'CUDA error: no kernel image' >&2; exit 3".into()),
    };
    let summary = world.run(&request).await;
    assert_eq!(summary.exit_code, 1, "{}", summary.render());
    assert_eq!(
        summary.gpu_check.as_deref(),
        Some("gpu_check exit 3: CUDA error: no kernel image")
    );
    assert_eq!(summary.machine, MachineFate::Terminated);

    // The second machine shows no GPU at all: skipped, the run goes on.
    let mut request = world.request(&["gpu_1x_a10"]);
    request.gpu_gate = GpuGate::Off;
    let summary = world.run(&request).await;
    assert_eq!(summary.exit_code, 0, "{}", summary.render());
    assert_eq!(summary.gpu_check, None);
    assert_eq!(summary.downloaded_files, 1);
    assert!(world.sim.ledger().still_billing.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_that_fails_the_gpu_check_is_replaced_by_another_type() {
    let world = Fixture::with(
        Scenario::default().with_behavior(1, InstanceBehavior::GpusMissing { count: 1 }),
    )
    .await;
    let mut request = world.request(&["gpu_8x_h100_sxm5", "gpu_8x_a100_80gb_sxm4"]);
    request.replace_unhealthy = 1;
    let summary = world.run(&request).await;
    assert_eq!(summary.exit_code, 0, "{}", summary.render());
    let ledger = world.sim.ledger();
    assert_eq!(ledger.entries.len(), 2, "{ledger:?}");
    let (broken, replacement) = (&ledger.entries[0], &ledger.entries[1]);
    assert_eq!(
        summary.replaced,
        [ReplacedMachine {
            instance_id: broken.instance_id.to_string(),
            instance_type: "gpu_8x_h100_sxm5".into(),
            why: "nvidia-smi sees 7 of 8 GPUs".into(),
        }]
    );
    assert_eq!(
        replacement.instance_type.as_str(),
        "gpu_8x_a100_80gb_sxm4",
        "the other type went first"
    );
    assert_eq!(
        summary.instance_id.as_deref(),
        Some(replacement.instance_id.as_str())
    );
    assert_eq!(
        summary.gpu_check.as_deref(),
        Some("nvidia-smi sees all 8 GPUs")
    );
    assert_eq!(
        summary.downloaded_files, 1,
        "the work ran on the replacement"
    );
    let phases: Vec<&str> = summary.phases.iter().map(|p| p.phase).collect();
    assert_eq!(
        phases[..6],
        [
            "launch",
            "boot",
            "connect",
            "gpu check",
            "replace",
            "launch"
        ]
    );
    assert!(
        summary.render().contains("billed over 2 machines"),
        "{}",
        summary.render()
    );
    assert!(ledger.still_billing.is_empty());
    assert_eq!(world.key_files(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_every_replacement_fails_too_the_run_says_how_many_it_tried() {
    let world = Fixture::with(
        Scenario::default()
            .with_behavior(1, InstanceBehavior::GpusMissing { count: 1 })
            .with_behavior(2, InstanceBehavior::GpusMissing { count: 1 }),
    )
    .await;
    let mut request = world.request(&["gpu_1x_a10", "gpu_1x_a6000"]);
    request.replace_unhealthy = 1;
    let summary = world.run(&request).await;
    assert_eq!(summary.exit_code, 1, "{}", summary.render());
    let error = summary.error.clone().unwrap();
    assert!(
        error.contains("the last of 2 machines (--replace-unhealthy 1)"),
        "{error}"
    );
    assert_eq!(summary.replaced.len(), 1);
    assert_eq!(summary.machine, MachineFate::Terminated);
    let ledger = world.sim.ledger();
    assert_eq!(ledger.entries.len(), 2);
    assert!(ledger.still_billing.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_run_machine_expires_and_the_reaper_ends_it_then_and_not_before() {
    let world = Fixture::new().await;
    let mut request = world.request(&["gpu_1x_a10"]);
    request.keep = true;
    request.max_lifetime = Duration::from_secs(3600);
    let summary = world.run(&request).await;
    assert_eq!(summary.exit_code, 0, "{}", summary.render());
    assert_eq!(summary.machine, MachineFate::LeftRunning);
    let expires = summary
        .expires
        .clone()
        .expect("the summary names the expiry");
    assert!(
        summary
            .render()
            .contains(&format!("`lambda-gha reap` ends it after {expires}")),
        "{}",
        summary.render()
    );
    let id = summary.instance_id.clone().unwrap();
    let machine = world
        .sim
        .client()
        .unwrap()
        .instances()
        .get(id.as_str())
        .await
        .unwrap();
    assert_eq!(machine.tag("lambda-gha:expires"), Some(expires.as_str()));
    assert!(machine.tag("lambda-gha:session").is_some());
    assert_eq!(
        machine.tag("lambda-gha:run"),
        None,
        "not a runner launch: no reaper judges it by its runners"
    );

    // Before the expiry it stays.
    let reap = |now: jiff::Timestamp| gha_runner_core::reaper::ReapPolicy {
        now,
        ..gha_runner_core::reaper::ReapPolicy::now()
    };
    let report = gha_runner_core::reaper::reap(&world.provider, None, reap(jiff::Timestamp::now()))
        .await
        .unwrap();
    assert!(report.reaped.is_empty(), "{:?}", report.reaped);
    assert_eq!(world.sim.ledger().still_billing.len(), 1);

    // Past it, the reaper ends it.
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2);
    let report = gha_runner_core::reaper::reap(&world.provider, None, reap(later))
        .await
        .unwrap();
    assert_eq!(report.reaped.len(), 1, "{:?}", report.reaped);
    assert!(world.sim.ledger().still_billing.is_empty());
}
