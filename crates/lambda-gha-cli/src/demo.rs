//! `lambda-gha demo`: the whole `run` flow on the embedded simulator, with a small project
//! shipped inside the binary, reaching the simulated machine through its sandbox directory.
//! Nothing but this binary and bash is needed: no account, no network, no sshd.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gha_runner_lambda::LambdaProvider;
use lambda_cloud_sim::{Ledger, Scenario, Sim};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::launch::LaunchRequest;
use crate::progress::Ui;
use crate::project::Project;
use crate::run::{Reach, RunRequest, RunSummary, Step};
use gha_runner_core::health::GpuGate;

/// The demo project's files: path and contents.
pub const PROJECT: &[(&str, &str)] = &[
    (".gitignore", include_str!("../demo/.gitignore")),
    ("README.md", include_str!("../demo/README.md")),
    ("train.sh", include_str!("../demo/train.sh")),
    ("data/points.csv", include_str!("../demo/data/points.csv")),
];

/// Simulated seconds per real second: a three-minute boot takes three seconds.
pub const TIME_SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(60.0);

/// The SSH key the simulated account starts with, named by the demo's launch.
const KEY: &str = "demo";

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    pub summary: RunSummary,
    /// The project directory (removed when the report is dropped).
    pub project: PathBuf,
    /// `results/metrics.json` as downloaded, if it was.
    pub metrics: Option<String>,
    /// The simulated cloud's bill at the end.
    pub ledger: Ledger,
}

impl Drop for DemoReport {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.project);
    }
}

/// Writes the demo project under `dir` (with an ignored `cache/`), returning its root.
pub fn write_project(dir: &Path) -> std::io::Result<PathBuf> {
    let root = dir.join("lambda-gha-demo");
    for (path, text) in PROJECT {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    std::fs::set_permissions(
        root.join("train.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    // A local cache a real project would have: .gitignore keeps it off the machine.
    std::fs::create_dir_all(root.join("cache"))?;
    std::fs::write(root.join("cache/features.bin"), vec![0u8; 4 << 20])?;
    Ok(root)
}

/// Runs the demo. `interrupts` as for [`crate::run::run`].
pub async fn demo(
    ui: Ui,
    interrupts: &mut UnboundedReceiver<crate::run::Interrupt>,
) -> Result<DemoReport, String> {
    let work = std::env::temp_dir().join(format!("lambda-gha-demo-{:08x}", fastrand::u32(..)));
    let sandboxes = work.join("machines");
    let root = write_project(&work).map_err(|e| format!("cannot write the demo project: {e}"))?;
    let sim = Sim::builder()
        .scenario(Scenario::default().with_ssh_key(KEY))
        .time_scale(TIME_SCALE)
        .user_data_sandbox(&sandboxes)
        .start()
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let api_url = sim.base_url().to_owned();
    let client = lambda_cloud::Client::builder()
        .base_url(&api_url)
        .api_key("demo")
        .time_scale(sim.time_scale())
        .build()
        .map_err(|e| e.to_string())?;
    let provider = LambdaProvider::new(client);
    let project = Project::scan(&root).map_err(|e| format!("cannot read the project: {e}"))?;
    let steps = vec![Step::script(&project, "train.sh")?];
    let request = RunRequest {
        launch: LaunchRequest {
            instance_types: vec!["gpu_1x_a10".into(), "gpu_1x_a100_sxm4".into()],
            ssh_key: KEY.to_owned(),
            name: Some("lambda-gha-demo".into()),
            ..LaunchRequest::default()
        },
        instance: None,
        project,
        withheld: Vec::new(),
        steps,
        downloads: vec![PathBuf::from("results")],
        download_to: root.clone(),
        keep: false,
        reach: Reach::Sandbox {
            root: sandboxes.clone(),
        },
        gpu_gate: GpuGate::default(),
        replace_unhealthy: 1,
        boot_timeout: Duration::from_secs(60),
        max_lifetime: Duration::from_secs(12 * 3600),
        isolated: false,
        cache: None,
        time_scale: TIME_SCALE,
        user: "demo".to_owned(),
        state_dir: gha_runner_core::session::StateDir::new(work.join("state")),
    };
    ui.line(format!(
        "lambda-gha demo: `lambda-gha run train.sh --download results` on a simulated Lambda Cloud at {api_url} (time runs {TIME_SCALE}× faster)"
    ));
    ui.line(format!(
        "project {}: {} files to upload, cache/ ignored",
        root.display(),
        request.project.files.len()
    ));
    let summary = crate::run::run(&provider, &request, ui, interrupts).await;
    let ledger = sim.ledger();
    sim.shutdown().await;
    let metrics = std::fs::read_to_string(root.join("results/metrics.json")).ok();
    Ok(DemoReport {
        summary,
        project: work,
        metrics,
        ledger,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_runs_the_project_brings_results_back_and_leaves_nothing_billing() {
        let (_tx, mut interrupts) = tokio::sync::mpsc::unbounded_channel();
        let report = demo(
            Ui {
                quiet: true,
                json: true,
            },
            &mut interrupts,
        )
        .await
        .expect("demo");
        let summary = &report.summary;
        assert_eq!(summary.exit_code, 0, "{}", summary.render());
        assert_eq!(summary.machine, crate::run::MachineFate::Terminated);
        let upload = summary.upload.expect("uploaded");
        assert_eq!(upload.files, PROJECT.len(), "cache/ stayed home");
        assert_eq!(upload.files_sent, PROJECT.len());
        let metrics = report.metrics.as_deref().expect("metrics downloaded");
        assert!(metrics.contains("\"epochs\": 200"), "{metrics}");
        assert_eq!(summary.downloaded_files, 2, "loss.csv and metrics.json");
        assert!(
            report.ledger.still_billing.is_empty(),
            "{:?}",
            report.ledger
        );
        assert_eq!(report.ledger.entries.len(), 1);
        let phases: Vec<&str> = summary.phases.iter().map(|p| p.phase).collect();
        assert_eq!(
            phases,
            [
                "launch",
                "boot",
                "connect",
                "gpu check",
                "upload",
                "run",
                "download",
                "terminate"
            ]
        );
        assert_eq!(
            summary.gpu_check.as_deref(),
            Some("nvidia-smi sees all 1 GPUs")
        );
        assert!(summary.cost_usd > 0.0);
    }
}
