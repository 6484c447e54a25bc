//! The controller (`lambda-gha serve`) in one process against the Lambda simulator and a fake
//! GitHub that delivers signed `workflow_job` webhooks and runs jobs on online runners itself.
//!
//! The simulated machines run no boot script: the rig plays their part for GitHub, marking a
//! machine's runners online while the simulator says it is active and offline once it is not,
//! as a runner's session with GitHub lives and dies with its machine. A real machine's agent
//! also ends the machine after its jobs; here the controller does (it does both in
//! production, whichever comes first).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gha_runner_controller::{
    AppKey, BootTemplate, Controller, ControllerConfig, GitHubSource, Parts, SqliteStore,
    WebhookSecret,
};
use gha_runner_core::agent_config::AgentTimings;
use gha_runner_core::boot_log::MachineAccess;
use gha_runner_core::boot_script::{AgentDownload, AgentSource, RunnerPrivileges};
use gha_runner_core::provisioner::BootSettings;
use gha_runner_core::runner_release::RunnerVersion;
use gha_runner_core::{GitHub, RunnerScope, tags};
use gha_runner_lambda::LambdaProvider;
use lambda_cloud_sim::{Scenario, Sim};
use secrecy::SecretString;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::rig::SCALE;
use crate::{Deliveries, FakeGitHub, JobStatus, WebhookDelivery};

/// Two pools, as a team with two kinds of GPU would write them.
pub const TWO_POOLS: &str = r#"
[[pool]]
name = "a10"
labels = ["self-hosted", "gpu-a10"]
types = ["gpu_1x_a10", "gpu_1x_a6000"]
regions = ["us-east-1", "us-west-1"]
ssh_key = "ci"
max_machines = 8
idle_grace = "2s"
[[pool]]
name = "a100"
labels = ["self-hosted", "gpu-a100"]
types = ["gpu_1x_a100_sxm4", "gpu_1x_h100_pcie"]
regions = ["us-east-1", "us-west-1"]
ssh_key = "ci"
max_machines = 8
idle_grace = "2s"
"#;

/// Where the controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Host {
    /// In this process: its state and metrics can be read directly.
    #[default]
    InProcess,
    /// As `lambda-gha serve --config …`, a child process that can be killed with SIGKILL.
    Process,
}

/// How a rig starts.
pub struct RigOptions {
    /// Where the controller runs.
    pub host: Host,
    /// The `[[pool]]` sections.
    pub pools: String,
    /// The simulated cloud.
    pub scenario: Scenario,
    /// How webhooks are delivered.
    pub delivery: WebhookDelivery,
    /// How often the controller lists GitHub's queued jobs.
    pub poll_jobs_every: &'static str,
    /// The `lambda-gha` binary a [`Host::Process`] controller runs (default: the workspace's
    /// debug build).
    pub binary: Option<PathBuf>,
    /// Authenticate as a GitHub App (a fresh key, registered with the fake) whose installation
    /// tokens last this long; `None`: a token. In process only.
    pub app_token_lifetime: Option<Duration>,
}

impl Default for RigOptions {
    fn default() -> Self {
        RigOptions {
            host: Host::InProcess,
            pools: TWO_POOLS.to_owned(),
            scenario: crate::rig::quick_boot_scenario(),
            delivery: WebhookDelivery::default(),
            poll_jobs_every: "1m",
            binary: None,
            app_token_lifetime: None,
        }
    }
}

/// A running controller and its world.
pub struct ControllerRig {
    /// The simulated Lambda Cloud.
    pub sim: Sim,
    /// The fake GitHub.
    pub github: FakeGitHub,
    /// The webhook secret.
    pub secret: String,
    /// The Lambda API key (a canary).
    pub lambda_key: String,
    /// The GitHub token (a canary).
    pub github_token: String,
    /// The controller's base URL.
    pub url: String,
    /// The webhook deliveries.
    pub deliveries: Deliveries,
    /// The state file.
    pub database: PathBuf,
    dir: PathBuf,
    config: String,
    host: Host,
    binary: Option<PathBuf>,
    app_token_lifetime: Option<Duration>,
    controller: Option<Running>,
    machines: JoinHandle<()>,
}

enum Running {
    InProcess {
        controller: Controller,
        shutdown: watch::Sender<bool>,
        server: JoinHandle<()>,
    },
    Process(std::process::Child),
}

/// The boot settings of the rig's machines (they run nothing; the settings are checked and
/// rendered as for a real machine).
fn boot_template() -> BootTemplate {
    std::sync::Arc::new(|| BootSettings {
        version: "0.1.0".into(),
        agent: AgentSource::x86_64(AgentDownload {
            url: "https://example.invalid/lambda-gha".into(),
            sha256: "0".repeat(64),
        }),
        runner: RunnerVersion::Served,
        runner_releases_api: "https://example.invalid/releases".into(),
        runner_download_base: "https://example.invalid/download".into(),
        privileges: RunnerPrivileges::default(),
        user_script: None,
        agent_api_url: None,
        agent_api_key: Some(SecretString::from("rig-agent-key")),
        self_terminate: true,
        timings: AgentTimings::default(),
        gpu_gate: gha_runner_core::health::GpuGate::default(),
    })
}

impl ControllerRig {
    /// Starts a simulator, a fake GitHub and a controller on a free port.
    pub async fn start(options: RigOptions) -> ControllerRig {
        let world = World::start(options.scenario).await;
        let dir = std::env::temp_dir().join(format!("lgc-rig-{:08x}", fastrand::u32(..)));
        std::fs::create_dir_all(&dir).expect("rig directory");
        let database = dir.join("state.db");
        let port = free_port();
        let config = world.controller_toml(
            port,
            &database.display().to_string(),
            ("300ms", options.poll_jobs_every),
            &options.pools,
        );
        let mut rig = ControllerRig {
            sim: world.sim,
            github: world.github,
            secret: world.secret,
            lambda_key: world.lambda_key,
            github_token: world.github_token,
            url: format!("http://127.0.0.1:{port}"),
            deliveries: Deliveries::idle(),
            database,
            dir,
            config,
            host: options.host,
            binary: options.binary,
            app_token_lifetime: options.app_token_lifetime,
            controller: None,
            machines: world.machines,
        };
        rig.boot().await;
        rig.deliveries = rig.github.deliver_webhooks(
            &format!("{}/webhook", rig.url),
            &rig.secret,
            options.delivery,
        );
        rig
    }

    /// The environment of a `lambda-gha serve` child: the secrets its file names.
    pub fn serve_env(&self) -> Vec<(String, String)> {
        serve_env(&self.lambda_key, &self.github_token, &self.secret)
    }

    /// Starts the controller over the rig's state file and port.
    async fn boot(&mut self) {
        if self.host == Host::Process {
            self.boot_process().await;
        } else {
            self.boot_in_process().await;
        }
    }

    async fn boot_process(&mut self) {
        let file = self.dir.join("controller.toml");
        std::fs::write(&file, &self.config).expect("controller.toml");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .expect("serve log");
        let binary = self.binary.clone().unwrap_or_else(crate::lambda_gha_binary);
        let child = std::process::Command::new(binary)
            .args(["serve", "--config"])
            .arg(&file)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.serve_env())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("lambda-gha serve");
        self.controller = Some(Running::Process(child));
        let health = format!("{}/healthz", self.url);
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if crate::http_get(&health)
                .await
                .is_ok_and(|(status, _)| status == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "lambda-gha serve did not answer /healthz: {}",
            self.serve_log()
        );
    }

    /// The `serve` child's process id, when the controller is one.
    pub fn serve_pid(&self) -> Option<u32> {
        match &self.controller {
            Some(Running::Process(child)) => Some(child.id()),
            _ => None,
        }
    }

    /// What the `serve` child wrote.
    pub fn serve_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// The state, read from the controller's file (as another process can).
    pub fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.database).expect("state")
    }

    async fn boot_in_process(&mut self) {
        let config = ControllerConfig::parse(&self.config).expect("rig configuration");
        let store = SqliteStore::open(&self.database).expect("state");
        let provider = LambdaProvider::new(self.sim.client().expect("client"));
        let scope = RunnerScope::Repo {
            owner: "octo".into(),
            repo: "gpu".into(),
        };
        let github = match self.app_token_lifetime {
            Some(lifetime) => {
                let pem = SecretString::from(app_key_pem());
                let key = AppKey::from_pem(42, 7, &pem).expect("the App's key");
                self.github
                    .register_app(42, 7, key.public_key_der(), lifetime);
                GitHubSource::app(key, Some(self.github.uri()), None, scope)
            }
            None => GitHubSource::token(
                GitHub::new(
                    &SecretString::from(self.github_token.clone()),
                    Some(&self.github.uri()),
                    None,
                    scope,
                )
                .expect("GitHub client")
                .with_busy_wait(Duration::from_secs(2)),
            ),
        };
        let controller = Controller::new(Parts {
            config,
            store: std::sync::Arc::new(store),
            provider: std::sync::Arc::new(provider),
            github,
            boot: boot_template(),
            access: MachineAccess::Unavailable {
                why: "simulated machines".into(),
            },
            launch_interval: Duration::from_secs(12).div_f64(SCALE.factor()),
        });
        let address = self
            .url
            .strip_prefix("http://")
            .unwrap_or("127.0.0.1:0")
            .to_owned();
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .expect("listen");
        let (shutdown, stop) = watch::channel(false);
        let secret = WebhookSecret::new(&SecretString::from(self.secret.clone()));
        let server = tokio::spawn({
            let controller = controller.clone();
            async move {
                let _ = gha_runner_controller::serve(controller, secret, listener, stop).await;
            }
        });
        self.controller = Some(Running::InProcess {
            controller,
            shutdown,
            server,
        });
    }

    /// This rig's secrets, named: none may appear in what the controller writes or shows.
    pub fn canaries(&self) -> Vec<(&'static str, String)> {
        let mut canaries = crate::rig::github_canaries(&self.github, &self.github_token);
        canaries.push(("the Lambda API key", self.lambda_key.clone()));
        canaries.extend(
            self.github
                .installation_tokens()
                .into_iter()
                .map(|token| ("an installation token", token)),
        );
        canaries.push(("the webhook secret", self.secret.clone()));
        canaries
    }

    /// Everything the controller wrote or shows, named: its log, `/metrics`, `/status.json`,
    /// the status page, its state file, and the simulator's request log.
    pub async fn places(&self) -> Vec<(String, String)> {
        let mut places = vec![("the controller's log".to_owned(), self.serve_log())];
        for (name, path) in [
            ("/metrics", "/metrics"),
            ("/status.json", "/status.json"),
            ("the status page", "/"),
        ] {
            let text = crate::http_get(&format!("{}{path}", self.url))
                .await
                .map_or_else(|e| e, |(_, body)| body);
            places.push((name.to_owned(), text));
        }
        for file in ["state.db", "state.db-wal"] {
            let bytes = std::fs::read(self.dir.join(file)).unwrap_or_default();
            places.push((
                format!("the state file {file}"),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        places.push((
            "the simulator's request log".to_owned(),
            self.sim.request_log().join("\n"),
        ));
        places
    }

    /// The controller, when it runs in this process.
    pub fn controller(&self) -> &Controller {
        match &self.controller {
            Some(Running::InProcess { controller, .. }) => controller,
            _ => panic!("the controller runs in another process: read rig.store()"),
        }
    }

    /// Kills the controller where it stands and starts a new one over the same state file
    /// and port. A child process gets SIGKILL; one in this process has every task aborted at
    /// its next await (nothing flushed but what SQLite committed, as SIGKILL leaves it).
    pub async fn crash_and_restart(&mut self) {
        match self.controller.take() {
            Some(Running::Process(mut child)) => {
                child.kill().expect("SIGKILL");
                let _ = child.wait();
            }
            Some(Running::InProcess {
                controller,
                shutdown,
                server,
            }) => {
                controller.kill();
                server.abort();
                let _ = server.await;
                drop(shutdown);
            }
            None => {}
        }
        self.boot().await;
    }

    /// Waits until `done` holds, checking every 100 ms, for at most `timeout`.
    pub async fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if done(self) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        done(self)
    }

    /// Whether every job of the fake GitHub finished (succeeded, failed or cancelled).
    pub fn all_jobs_finished(&self) -> bool {
        all_jobs_finished(&self.github)
    }

    /// Jobs that succeeded.
    pub fn jobs_succeeded(&self) -> usize {
        jobs_succeeded(&self.github)
    }

    /// Machines still billing.
    pub fn billing(&self) -> usize {
        self.sim.ledger().still_billing.len()
    }

    /// Machines ever launched.
    pub fn launched(&self) -> usize {
        self.sim.ledger().entries.len()
    }

    /// Stops the controller and removes the state file.
    pub async fn stop(mut self) {
        match self.controller.take() {
            Some(Running::InProcess {
                shutdown, server, ..
            }) => {
                let _ = shutdown.send(true);
                let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
            }
            Some(Running::Process(mut child)) => {
                // SIGTERM: the controller stops serving and exits.
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                crate::wait_for_exit(&mut child, Duration::from_secs(10), "lambda-gha serve");
            }
            None => {}
        }
        self.deliveries.stop();
        self.machines.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether every job of `github` finished (succeeded, failed or cancelled).
pub(crate) fn all_jobs_finished(github: &FakeGitHub) -> bool {
    github.jobs().iter().all(|(_, status)| {
        matches!(
            status,
            JobStatus::Done { .. } | JobStatus::Skipped | JobStatus::Cancelled
        )
    })
}

/// How many jobs of `github` succeeded.
pub(crate) fn jobs_succeeded(github: &FakeGitHub) -> usize {
    github
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
        .count()
}

/// A free port on 127.0.0.1 (kept across a controller's restarts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The environment of a `lambda-gha serve` child: the secrets its file names.
pub(crate) fn serve_env(
    lambda_key: &str,
    github_token: &str,
    secret: &str,
) -> Vec<(String, String)> {
    vec![
        ("LAMBDA_API_KEY".into(), lambda_key.to_owned()),
        ("GITHUB_TOKEN".into(), github_token.to_owned()),
        ("LAMBDA_GHA_WEBHOOK_SECRET".into(), secret.to_owned()),
        ("LAMBDA_API_TIME_SCALE".into(), SCALE.factor().to_string()),
        ("RUST_LOG".into(), "info".into()),
    ]
}

/// What a controller works against: the simulated cloud, the fake GitHub playing the
/// machines' runners, and the secrets (canaries) between them.
pub(crate) struct World {
    pub(crate) sim: Sim,
    pub(crate) github: FakeGitHub,
    pub(crate) secret: String,
    pub(crate) lambda_key: String,
    pub(crate) github_token: String,
    pub(crate) machines: JoinHandle<()>,
}

impl World {
    pub(crate) async fn start(scenario: Scenario) -> World {
        let canary: String = (0..12).map(|_| fastrand::alphanumeric()).collect();
        let lambda_key = format!("LAMBDACANARY{canary}");
        let sim = Sim::builder()
            .scenario(scenario.with_ssh_key("ci"))
            .time_scale(SCALE)
            .api_key(lambda_key.clone())
            .start()
            .await
            .expect("simulator");
        let github = FakeGitHub::start(false).await;
        github.run_jobs_itself(SCALE.factor());
        let view = sim.view();
        let machines = github.play_machines(move || view.tagged(tags::RUN));
        World {
            sim,
            github,
            secret: format!("WHCANARY{canary}"),
            lambda_key,
            github_token: format!("PATCANARY{canary}"),
            machines,
        }
    }

    /// `controller.toml` for a controller listening on `port` over `database`.
    pub(crate) fn controller_toml(
        &self,
        port: u16,
        database: &str,
        (observe_every, poll_jobs_every): (&str, &str),
        pools: &str,
    ) -> String {
        format!(
            "name = \"rig\"\nlisten = \"127.0.0.1:{port}\"\ndatabase = {database:?}\n\
             [github]\nscope = \"octo/gpu\"\napi_url = {:?}\n\
             [provider]\nname = \"lambda\"\napi_url = {:?}\n\
             [agent]\nurl = \"https://example.invalid/lambda-gha\"\nsha256 = \"{}\"\n\
             [timing]\nreconcile_every = \"500ms\"\nobserve_every = {observe_every:?}\npoll_jobs_every = {poll_jobs_every:?}\nregistration_timeout = \"60s\"\nfailed_launch_pause = \"500ms\"\n{pools}",
            self.github.uri(),
            self.sim.base_url(),
            "0".repeat(64),
        )
    }
}

/// A fresh 2048-bit RSA key in PEM (PKCS#8), as a GitHub App's: from `openssl`, which
/// `cargo xtask ci` installs.
fn app_key_pem() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl genpkey failed");
    String::from_utf8(out.stdout).expect("PEM is text")
}
