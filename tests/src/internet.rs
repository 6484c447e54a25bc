//! The internet as a boot script sees it: GitHub's runner release (notes with the checksum,
//! the tarball) and the `lambda-gha` agent binary, served from one local server.
//!
//! The runner is a fake that behaves like the real one (`tests/fake-runner/`: `run.sh` →
//! `run-helper.sh` → `bin/Runner.Listener` → a `bin/Runner.Worker` per job, `config.sh`,
//! `env.sh`), for machines that boot as root in the simulator. Its listener reports itself
//! online to a [`FakeGitHub`](crate::FakeGitHub) every half second when the simulator's shared
//! directory has a [`FAKE_GITHUB_URL_FILE`], and runs the jobs listed in `<instance-id>.jobs`
//! there, or else in `fake-jobs` (`gap length [crash] [setup=S]` a line, simulated seconds).
//! It writes the `CUDA_VISIBLE_DEVICES` it was started with (or `unset`) to
//! `cuda-visible-devices` in its directory, and each job's result to `_diag/jobs.log`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The runner version the fake GitHub serves.
pub use github_fake::RUNNER_VERSION;
/// An older release, for pinning: the same fake runner under another version.
pub const PINNED_RUNNER_VERSION: &str = "2.329.0";

/// The file (next to the machines' sandboxes) that tells fake runners where GitHub is.
pub const FAKE_GITHUB_URL_FILE: &str = "fake-github-url";

/// The fake runner's files (`tests/fake-runner/`), each modelled on the real runner's file of
/// the same name; their comments name the source each behaviour comes from.
const RUNNER_FILES: [(&str, &str); 6] = [
    ("run.sh", include_str!("../fake-runner/run.sh")),
    (
        "run-helper.sh.template",
        include_str!("../fake-runner/run-helper.sh.template"),
    ),
    ("config.sh", include_str!("../fake-runner/config.sh")),
    ("env.sh", include_str!("../fake-runner/env.sh")),
    (
        "bin/Runner.Listener",
        include_str!("../fake-runner/bin/Runner.Listener"),
    ),
    (
        "bin/Runner.Worker",
        include_str!("../fake-runner/bin/Runner.Worker"),
    ),
];

/// The local server and what it serves.
pub struct FakeInternet {
    server: MockServer,
    agent_sha256: String,
    runner_sha256: String,
    /// While set, runner downloads are answered 503.
    runner_held: Arc<AtomicBool>,
}

/// A runner tarball, or a 503 while downloads are held.
struct RunnerDownload {
    tarball: Vec<u8>,
    delay: std::time::Duration,
    held: Arc<AtomicBool>,
}

impl wiremock::Respond for RunnerDownload {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        if self.held.load(Ordering::SeqCst) {
            return ResponseTemplate::new(503);
        }
        ResponseTemplate::new(200)
            .set_body_bytes(self.tarball.clone())
            .set_delay(self.delay)
    }
}

/// Runner downloads held until this is dropped ([`FakeInternet::hold_runner_downloads`]).
pub struct HeldDownloads(Arc<AtomicBool>);

impl Drop for HeldDownloads {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl FakeInternet {
    /// Serves the fake runner release and `agent` (the `lambda-gha` binary); `work` holds the
    /// files it builds.
    pub async fn start(agent: &Path, work: &Path) -> FakeInternet {
        FakeInternet::start_slow(agent, work, std::time::Duration::ZERO).await
    }

    /// As [`FakeInternet::start`], each download (runner and agent) answered `delay` late: a
    /// slow link, so that machines booting together download at the same time.
    pub async fn start_slow(agent: &Path, work: &Path, delay: std::time::Duration) -> FakeInternet {
        FakeInternet::start_modelled(agent, work, delay, delay).await
    }

    /// As [`FakeInternet::start`], the runner tarball answered `runner` late and the agent
    /// `agent` late: downloads of their size over a modelled link.
    pub async fn start_modelled(
        agent: &Path,
        work: &Path,
        runner: std::time::Duration,
        agent_delay: std::time::Duration,
    ) -> FakeInternet {
        let tarball = fake_runner_tarball(work);
        let agent = std::fs::read(agent)
            .unwrap_or_else(|e| panic!("cannot read the agent {}: {e}", agent.display()));
        let server = MockServer::start().await;
        let runner_sha256 = sha256(&tarball, work);
        let runner_held = Arc::new(AtomicBool::new(false));
        // A release as actions/runner's release workflow writes its notes: checksums in comments.
        let notes = format!(
            "## What's Changed\n<!-- BEGIN SHA linux-x64 -->{runner_sha256}<!-- END SHA linux-x64 -->"
        );
        for version in [RUNNER_VERSION, PINNED_RUNNER_VERSION] {
            Mock::given(method("GET"))
                .and(path(format!("/releases/tags/v{version}")))
                .respond_with(ResponseTemplate::new(200).set_body_json(
                    serde_json::json!({"tag_name": format!("v{version}"), "body": notes}),
                ))
                .mount(&server)
                .await;
            Mock::given(method("GET"))
                .and(path(format!(
                    "/download/v{version}/actions-runner-linux-x64-{version}.tar.gz"
                )))
                .respond_with(RunnerDownload {
                    tarball: tarball.clone(),
                    delay: runner,
                    held: runner_held.clone(),
                })
                .mount(&server)
                .await;
        }
        let agent_sha256 = sha256(&agent, work);
        // As the boot script gets a pinned URL, and as a release asset the action names.
        for route in [
            "/lambda-gha",
            "/release/lambda-gha-x86_64-unknown-linux-musl",
        ] {
            Mock::given(method("GET"))
                .and(path(route))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_bytes(agent.clone())
                        .set_delay(agent_delay),
                )
                .mount(&server)
                .await;
        }
        FakeInternet {
            server,
            agent_sha256,
            runner_sha256,
            runner_held,
        }
    }

    /// actions/runner's releases (`…/tags/v{version}` describes one).
    pub fn runner_releases_api(&self) -> String {
        format!("{}/releases", self.server.uri())
    }

    /// The fake runner's tarball (linux-x64) URL.
    pub fn runner_url(&self) -> String {
        format!(
            "{}/v{RUNNER_VERSION}/actions-runner-linux-x64-{RUNNER_VERSION}.tar.gz",
            self.runner_download_base()
        )
    }

    /// The fake runner tarball's SHA-256, hex.
    pub fn runner_sha256(&self) -> &str {
        &self.runner_sha256
    }

    /// GitHub's "list runner applications" answer for the fake runner, for
    /// [`FakeGitHub::serve_runner`](crate::FakeGitHub::serve_runner).
    pub fn runner_applications(&self) -> serde_json::Value {
        serde_json::json!([{
            "os": "linux",
            "architecture": "x64",
            "download_url": self.runner_url(),
            "filename": format!("actions-runner-linux-x64-{RUNNER_VERSION}.tar.gz"),
            "sha256_checksum": self.runner_sha256,
        }])
    }

    /// Where runner tarballs are downloaded from.
    pub fn runner_download_base(&self) -> String {
        format!("{}/download", self.server.uri())
    }

    /// The agent binary's URL.
    pub fn agent_url(&self) -> String {
        format!("{}/lambda-gha", self.server.uri())
    }

    /// Where this version's release assets live (`LAMBDA_GHA_RELEASE_URL`): the agent is
    /// `lambda-gha-x86_64-unknown-linux-musl` there.
    pub fn release_url(&self) -> String {
        format!("{}/release", self.server.uri())
    }

    /// The agent binary's SHA-256, hex.
    pub fn agent_sha256(&self) -> &str {
        &self.agent_sha256
    }

    /// How many times machines downloaded the agent.
    pub async fn agent_downloads(&self) -> usize {
        self.requests(|path| path == "/lambda-gha" || path.starts_with("/release/lambda-gha"))
            .await
    }

    /// Answers every runner download 503 (a CDN out of service) until the guard is dropped;
    /// `curl --retry-all-errors` on the machines tries again every 2 s meanwhile: what holds
    /// machines at their download, for a test that needs them there at once.
    pub fn hold_runner_downloads(&self) -> HeldDownloads {
        self.runner_held.store(true, Ordering::SeqCst);
        HeldDownloads(self.runner_held.clone())
    }

    /// How many times machines asked for a runner tarball (held answers too).
    pub async fn runner_downloads(&self) -> usize {
        self.requests(|path| path.starts_with("/download/")).await
    }

    async fn requests(&self, matching: impl Fn(&str) -> bool) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| matching(r.url.path()))
            .count()
    }
}

/// Lays the fake runner out in `dir`, as its release tarball unpacks.
pub fn write_fake_runner(dir: &Path) {
    for (name, text) in RUNNER_FILES {
        let file = dir.join(name);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create the fake runner's directories");
        }
        std::fs::write(&file, text).expect("write the fake runner");
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("make the fake runner executable");
    }
}

fn fake_runner_tarball(work: &Path) -> Vec<u8> {
    let source = work.join("runner");
    write_fake_runner(&source);
    let tarball = work.join("runner.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&source)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar failed");
    std::fs::read(tarball).expect("read the fake runner tarball")
}

fn sha256(bytes: &[u8], work: &Path) -> String {
    let file = work.join(format!("to-hash-{:016x}", fastrand::u64(..)));
    std::fs::write(&file, bytes).expect("write a file to hash");
    let output = std::process::Command::new("sha256sum")
        .arg(&file)
        .output()
        .expect("run sha256sum");
    let _ = std::fs::remove_file(&file);
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}
