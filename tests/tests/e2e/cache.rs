//! The cache on a Lambda filesystem, on machines that boot as root under the simulator: the
//! rendered boot script keeps the runner and the agent on the filesystem every machine of the
//! region mounts, several machines fill it at once safely, a corrupt entry is fetched again,
//! and a job on one machine finds what a job on another left in its `uv` cache.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gha_runner_core::{naming::RunnerNaming, tags};
use secrecy::ExposeSecret;

use crate::boot::{Boot, Computer, boot_script, computer};

const FILESYSTEM: &str = "gha-cache-octo-gpu-us-east-1";

/// A machine launched with the cache filesystem, and where its files are.
struct CacheMachine {
    id: lambda_cloud::InstanceId,
    sandbox: PathBuf,
}

impl CacheMachine {
    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.sandbox.join(path)).unwrap_or_default()
    }

    /// Waits until `path` on the machine contains `text`, or panics with its boot log.
    async fn wait_for(&self, path: &str, text: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while !self.read(path).contains(text) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never said {text:?} in {path}\n--- boot log\n{}\n--- runner log\n{}",
                self.id,
                self.read("var/log/lambda-gha-boot.log"),
                self.read("home/runner/runner-0/runner.log"),
            );

            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The cache's filesystem in us-east-1, and where its files are on this computer.
async fn filesystem(computer: &Computer) -> PathBuf {
    let client = computer.sim.client().unwrap();
    let fs = client
        .filesystems()
        .create(FILESYSTEM, "us-east-1")
        .await
        .unwrap();
    computer.sim.filesystem_dir(&fs.id).unwrap()
}

/// Launches machine `machine` of `setup` with the cache filesystem mounted, its runner's jobs
/// `jobs`.
async fn launch(computer: &Computer, setup: &Boot, machine: usize, jobs: &str) -> CacheMachine {
    let sim = &computer.sim;
    let mount = format!("/lambda/nfs/{FILESYSTEM}");
    let script = boot_script(setup, sim, &computer.internet, machine, Some(mount));
    let naming = RunnerNaming::with_label("lambda-5-boot").unwrap();
    let id = sim
        .client()
        .unwrap()
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .tag(tags::MACHINE, naming.machine_tag(machine))
        .file_system(FILESYSTEM)
        .user_data(script.expose_secret())
        .send()
        .await
        .unwrap()
        .remove(0);
    std::fs::write(sim.shared_dir().unwrap().join(format!("{id}.jobs")), jobs).unwrap();
    let sandbox = sim.sandbox_dir(&id).unwrap();
    CacheMachine { id, sandbox }
}

/// The cache's entries: file names in `lambda-gha/files`.
fn entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join("lambda-gha/files"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_machines_filling_the_cache_at_once_leave_one_good_copy_of_each() {
    let setup = Boot::new("cache-fill", "");
    let computer = computer(&setup).await;
    let cache = filesystem(&computer).await;
    // Both machines are held at their runner download (past their look into the cache) until
    // both are there: then both fetch and keep it at once, whatever the load on this computer.
    let held = computer.internet.hold_runner_downloads();
    let first = launch(&computer, &setup, 0, "").await;
    let second = launch(&computer, &setup, 1, "").await;
    for machine in [&first, &second] {
        machine
            .wait_for("var/log/lambda-gha-boot.log", "fetching the GitHub runner")
            .await;
    }
    let asked_while_held = computer.internet.runner_downloads().await;

    drop(held);
    for machine in [&first, &second] {
        machine
            .wait_for("var/log/lambda-gha-boot.log", "boot complete")
            .await;
        assert!(
            machine
                .read("var/log/lambda-gha-boot.log")
                .contains("cache: kept"),
            "both missed the cache and kept what they fetched:\n{}",
            machine.read("var/log/lambda-gha-boot.log")
        );
    }
    assert_eq!(
        computer.internet.runner_downloads().await - asked_while_held,
        2,
        "one download each once released"
    );
    let internet = &computer.internet;
    let runner = format!(
        "{}-{}",
        internet.runner_sha256(),
        internet.runner_url().rsplit('/').next().unwrap()
    );
    let agent = format!("{}-lambda-gha-0.1.0-x64", internet.agent_sha256());
    let mut expected = vec![agent.clone(), runner.clone()];
    expected.sort();
    assert_eq!(
        entries(&cache),
        expected,
        "one copy of each, nothing partial left"
    );
    let files = cache.join("lambda-gha/files");
    assert_eq!(sha256(&files.join(&runner)), internet.runner_sha256());
    assert_eq!(sha256(&files.join(&agent)), internet.agent_sha256());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_cached_runner_is_detected_and_replaced() {
    let setup = Boot::new("cache-corrupt", "");
    let computer = computer(&setup).await;
    let cache = filesystem(&computer).await;
    let internet = &computer.internet;
    let runner = format!(
        "{}-{}",
        internet.runner_sha256(),
        internet.runner_url().rsplit('/').next().unwrap()
    );
    let files = cache.join("lambda-gha/files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join(&runner), b"a truncated download").unwrap();
    let machine = launch(&computer, &setup, 0, "").await;
    machine
        .wait_for("var/log/lambda-gha-boot.log", "boot complete")
        .await;
    let log = machine.read("var/log/lambda-gha-boot.log");
    assert!(
        log.contains(&format!("cache: {runner} does not match its SHA-256")),
        "{log}"
    );
    assert_eq!(sha256(&files.join(&runner)), internet.runner_sha256());
    assert_eq!(internet.runner_downloads().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_on_the_second_machine_finds_the_first_machines_uv_cache() {
    let setup = Boot::new("cache-uv", "");
    let computer = computer(&setup).await;
    let cache = filesystem(&computer).await;
    let steps = computer.sim.shared_dir().unwrap().join("steps");
    std::fs::create_dir_all(&steps).unwrap();
    // What `uv pip install torch` leaves in its cache, and what the next install looks for.
    std::fs::write(
        steps.join("install.sh"),
        "mkdir -p \"$UV_CACHE_DIR/wheels-v5\"\n\
         echo torch-2.9 > \"$UV_CACHE_DIR/wheels-v5/torch.whl\"\n\
         echo \"installed as $(id -un) into $UV_CACHE_DIR\"\n",
    )
    .unwrap();
    std::fs::write(
        steps.join("reuse.sh"),
        "test \"$(cat \"$UV_CACHE_DIR/wheels-v5/torch.whl\")\" = torch-2.9\n\
         test -d \"$HF_HOME\" && test -d \"$TORCH_HOME\" && test -d \"$PIP_CACHE_DIR\"\n\
         echo \"found torch in $UV_CACHE_DIR\"\n",
    )
    .unwrap();
    let first = launch(&computer, &setup, 0, "0 1 step=install\n").await;
    first
        .wait_for("home/runner/runner-0/_diag/jobs.log", "job 1:")
        .await;
    assert!(
        first
            .read("home/runner/runner-0/_diag/jobs.log")
            .contains("job 1: succeeded"),
        "{}\n{}",
        first.read("home/runner/runner-0/_diag/jobs.log"),
        first.read("home/runner/runner-0/_diag/steps.log")
    );
    assert!(
        cache
            .join("lambda-gha/jobs/uv/wheels-v5/torch.whl")
            .exists()
    );
    let second = launch(&computer, &setup, 1, "0 1 step=reuse\n").await;
    second
        .wait_for("home/runner/runner-0/_diag/jobs.log", "job 1:")
        .await;
    assert!(
        second
            .read("home/runner/runner-0/_diag/jobs.log")
            .contains("job 1: succeeded"),
        "{}\n{}",
        second.read("home/runner/runner-0/_diag/jobs.log"),
        second.read("home/runner/runner-0/_diag/steps.log")
    );
    assert!(
        second
            .read("home/runner/runner-0/_diag/steps.log")
            .contains("found torch in /lambda/nfs/"),
        "{}",
        second.read("home/runner/runner-0/_diag/steps.log")
    );
    // The second machine found the runner and the agent there too: warm, no download.
    let log = second.read("var/log/lambda-gha-boot.log");
    assert!(log.contains("from the cache"), "{log}");
    assert_eq!(computer.internet.runner_downloads().await, 1);
    assert_eq!(computer.internet.agent_downloads().await, 1);
}
