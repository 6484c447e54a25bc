//! `run` through the library against the simulator, machines reached through their sandbox:
//! the paths that need no sshd (a run's own SSH key, a refused launch).

use std::path::PathBuf;
use std::time::Duration;

use gha_runner_core::LambdaProvider;
use lambda_cloud_sim::{Scenario, Sim};
use lambda_gha_cli::launch::LaunchRequest;
use lambda_gha_cli::progress::Ui;
use lambda_gha_cli::project::Project;
use lambda_gha_cli::run::{MachineFate, Reach, RunRequest, Step, run};

const SCALE: f64 = 100.0;

struct World {
    sim: Sim,
    provider: LambdaProvider,
    dir: PathBuf,
}

impl World {
    async fn new() -> World {
        let dir =
            std::env::temp_dir().join(format!("lambda-gha-runlib-{:016x}", fastrand::u64(..)));
        let sim = Sim::builder()
            .scenario(Scenario::default())
            .time_scale(SCALE)
            .user_data_sandbox(dir.join("machines"))
            .start()
            .await
            .unwrap();
        let provider = LambdaProvider::new(sim.client().unwrap());
        std::fs::create_dir_all(dir.join("proj")).unwrap();
        std::fs::write(dir.join("proj/go.sh"), "echo ok > done.txt\n").unwrap();
        World { sim, provider, dir }
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
            downloads: vec!["done.txt".into()],
            download_to: self.dir.join("proj"),
            keep: false,
            reach: Reach::Sandbox {
                root: self.dir.join("machines"),
            },
            boot_timeout: Duration::from_secs(60),
            time_scale: SCALE,
            user: "tester".into(),
            state_dir: self.dir.join("state"),
        }
    }

    fn key_files(&self) -> usize {
        std::fs::read_dir(self.dir.join("state/keys")).map_or(0, Iterator::count)
    }
}

impl Drop for World {
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
async fn without_a_named_key_the_run_makes_one_and_leaves_neither_it_nor_the_machine() {
    let world = World::new().await;
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
    let world = World::new().await;
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
