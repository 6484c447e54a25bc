//! One run of the real binaries against a simulator and a fake GitHub: the world they see
//! (canary secrets, a workflow step's environment), how they are run (output to files, an
//! optional kill at a chosen moment), and what they left behind. The fault matrix and the
//! end-to-end tests of whole flows share it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lambda_cloud_sim::{Scenario, Sim};

use crate::{FAKE_GITHUB_URL_FILE, FakeGitHub, FakeInternet};

/// Simulated seconds per real second: a 12 s launch interval takes 0.24 s.
pub const SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(50.0);
/// How long a "held" call makes the caller wait, so a kill lands inside it.
pub const HOLD: Duration = Duration::from_secs(3);

/// A world whose machines boot in 10 simulated seconds (0.2 s).
pub fn quick_boot_scenario() -> Scenario {
    Scenario::default().with_boot_seconds(10.0)
}

/// What was left: billing machines, runner registrations, SSH keys in the account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Left {
    /// Machines still billing.
    pub machines: usize,
    /// Runner registrations.
    pub runners: usize,
    /// SSH keys in the account (it starts with none).
    pub keys: usize,
}

impl Left {
    /// Whether nothing was left.
    pub fn is_clear(self) -> bool {
        self == Left::default()
    }
}

/// Everything a program run wrote.
#[derive(Debug, Default)]
pub struct Captured {
    /// The exit code (`None`: a signal ended it).
    pub code: Option<i32>,
    /// Whether the run killed it.
    pub killed: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// What it wrote to `GITHUB_OUTPUT`.
    pub output: String,
    /// What it wrote to `GITHUB_STEP_SUMMARY`.
    pub summary: String,
}

impl Captured {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `ok`, `killed`, or `exit N: <error>` with ids masked.
    pub fn outcome(&self) -> String {
        if self.killed {
            return "killed".to_owned();
        }
        if self.success() {
            return "ok".to_owned();
        }
        let error = self
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("::error title="))
            .map(|e| {
                e.replacen("::", ": ", 1)
                    .replace("%3A", ":")
                    .replace("%2C", ",")
                    .replace("%0A", " ")
                    .replace("%25", "%")
            })
            .or_else(|| {
                let lines = || self.stderr.lines().rev().map(str::trim);
                lines()
                    .find(|l| l.starts_with("error"))
                    .or_else(|| lines().find(|l| l.contains("COULD NOT")))
                    .or_else(|| lines().find(|l| !l.is_empty()))
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let code = self.code.map_or("signal".to_owned(), |c| c.to_string());
        format!("exit {code}: {}", mask(&error))
    }

    /// The texts to scan for secrets, named; `::add-mask::` lines are where secrets belong.
    pub fn places(&self, name: &str) -> Vec<(String, String)> {
        let stdout: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect();
        vec![
            (format!("{name} stdout"), stdout.join("\n")),
            (format!("{name} stderr"), self.stderr.clone()),
            (format!("{name} GITHUB_OUTPUT"), self.output.clone()),
            (format!("{name} step summary"), self.summary.clone()),
        ]
    }
}

/// A simulator and a fake GitHub for one run, with its own secrets and directory.
pub struct Rig {
    /// The simulated Lambda Cloud.
    pub sim: Sim,
    /// The fake GitHub.
    pub github: FakeGitHub,
    /// Where the run's files go (machines' sandboxes under `machines/`).
    pub dir: PathBuf,
    /// The Lambda API key (a canary).
    pub lambda_key: String,
    /// The GitHub token (a canary).
    pub pat: String,
    /// `GITHUB_RUN_ID`.
    pub run_id: String,
}

/// How the simulator's machines run their user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machines {
    /// As real root in their own root filesystem: every flow whose machines boot.
    Root,
    /// In sandboxes as this user: for `lambda-gha run`, whose machines run no user data and
    /// which reaches them through their sandbox.
    Sandbox,
}

impl Rig {
    /// Starts a simulator of `world` (time ×[`SCALE`], machines under `dir/machines`, booting
    /// as `machines` says) and a fake GitHub, with fresh canary secrets; with `reporting`, fake
    /// runners report themselves online to that GitHub.
    pub async fn start(
        world: Scenario,
        dir: &Path,
        run_id: String,
        reporting: bool,
        machines: Machines,
    ) -> Rig {
        std::fs::create_dir_all(dir.join("machines")).expect("create the run's directory");
        let lambda_key = format!("LAMBDACANARY{:016x}", fastrand::u64(..));
        let builder = Sim::builder()
            .scenario(world)
            .time_scale(SCALE)
            .api_key(lambda_key.clone())
            .user_data_sandbox(dir.join("machines"));
        let builder = match machines {
            Machines::Root => builder.machine_rootfs(crate::machine_rootfs()),
            Machines::Sandbox => builder,
        };
        let sim = builder.start().await.expect("start the simulator");
        // Every machine boots for real: its boot script fetches the runner and the agent, the
        // runner reports itself online while it runs, and the agent ends the machine.
        let github = FakeGitHub::start(false).await;
        if reporting {
            let shared = sim.shared_dir().expect("user data runs");
            std::fs::write(shared.join(FAKE_GITHUB_URL_FILE), github.uri())
                .expect("tell fake runners where GitHub is");
        }
        let pat = format!("PATCANARY{:016x}", fastrand::u64(..));
        // GitHub accepts this run's token, and only it: every call must carry it.
        github.require_token(&pat, crate::TokenPermission::Write);
        Rig {
            sim,
            github,
            dir: dir.to_owned(),
            lambda_key,
            pat,
            run_id,
        }
    }

    /// The secrets of this scenario: the keys, the fake GitHub's canary (in every token and
    /// JIT secret it issues), and each JIT configuration it issued, encoded as it was sent.
    pub fn canaries(&self) -> Vec<(&'static str, String)> {
        let mut canaries = vec![("the Lambda API key", self.lambda_key.clone())];
        canaries.extend(github_canaries(&self.github, &self.pat));
        canaries
    }

    /// What is left in the simulator and the fake GitHub.
    pub async fn left(&self) -> Left {
        let keys = match self.sim.client() {
            Ok(client) => client
                .ssh_keys()
                .list()
                .await
                .map_or(usize::MAX, |k| k.len()),
            Err(_) => usize::MAX,
        };
        Left {
            machines: self.sim.ledger().still_billing.len(),
            runners: self.github.runners().len(),
            keys,
        }
    }

    /// The CLI's environment: the key, the simulator, its clock.
    pub fn cli_env(&self) -> Vec<(String, String)> {
        vec![
            ("LAMBDA_API_KEY".to_owned(), self.lambda_key.clone()),
            ("LAMBDA_API_URL".to_owned(), self.sim.base_url().to_owned()),
            ("LAMBDA_API_TIME_SCALE".to_owned(), SCALE.to_string()),
        ]
    }

    /// Ends every injected fault, Lambda's and GitHub's.
    pub fn end_outage(&self) {
        self.sim.clear_faults();
        self.github.clear_faults();
    }

    /// The action's environment for `inputs`, as a workflow step gets it; the fake GitHub
    /// serves `internet`'s runner from then on.
    pub fn action_env(
        &self,
        internet: &FakeInternet,
        inputs: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("LAMBDA_API_KEY", self.lambda_key.clone()),
            ("LAMBDA_API_URL", self.sim.base_url().to_owned()),
            ("LAMBDA_API_TIME_SCALE", SCALE.to_string()),
            ("GH_PAT", self.pat.clone()),
            ("GITHUB_API_URL", self.github.uri()),
            ("GITHUB_REPOSITORY", "octo/gpu".to_owned()),
            ("GITHUB_RUN_ID", self.run_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        env.extend(release_env(&self.dir, &self.github, internet));
        for (name, value) in inputs {
            env.push((
                format!("INPUT_{}", name.to_ascii_uppercase()),
                (*value).to_owned(),
            ));
        }
        env
    }
}

/// The GitHub side of a run's secrets: the token, the fake GitHub's canary (in every token and
/// JIT secret it issues), and each JIT configuration it issued, encoded as it was sent.
pub fn github_canaries(github: &FakeGitHub, pat: &str) -> Vec<(&'static str, String)> {
    let mut canaries = vec![
        ("the GitHub token", pat.to_owned()),
        ("a registration or JIT token", github.canary().to_owned()),
    ];
    canaries.extend(
        github
            .jit_configs()
            .into_iter()
            .map(|config| ("a JIT configuration", config)),
    );
    canaries
}

/// What every launch's step environment has besides the keys: this version's release (its
/// `SHA256SUMS` written under `dir`, served by `internet`), the runner `github` serves (from
/// `internet`), and the machines' directories under `dir/machines`, from which boot logs are
/// read as over SSH on a real cloud.
pub fn release_env(
    dir: &Path,
    github: &FakeGitHub,
    internet: &FakeInternet,
) -> Vec<(String, String)> {
    github.serve_runner(internet.runner_applications());
    let sums = dir.join("SHA256SUMS");
    std::fs::write(
        &sums,
        format!(
            "{}  lambda-gha-x86_64-unknown-linux-musl\n",
            internet.agent_sha256()
        ),
    )
    .expect("write SHA256SUMS");
    [
        ("LAMBDA_GHA_SHA256SUMS", sums.display().to_string()),
        (
            "LAMBDA_GHA_SIM_SANDBOX",
            dir.join("machines").display().to_string(),
        ),
        ("LAMBDA_GHA_RELEASE_URL", internet.release_url()),
        (
            "LAMBDA_GHA_RUNNER_RELEASES_API",
            internet.runner_releases_api(),
        ),
        (
            "LAMBDA_GHA_RUNNER_DOWNLOAD_BASE",
            internet.runner_download_base(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// When to kill a program, given what it printed so far.
pub type KillWhen<'a> = Box<dyn Fn(&str) -> bool + Send + Sync + 'a>;

/// Runs `program` with exactly `env` (plus PATH and HOME), output to files; with `kill_when`,
/// sends SIGKILL once it returns true (checked every 20 ms), a moment later.
pub async fn run_program(
    program: &Path,
    args: &[&str],
    env: Vec<(String, String)>,
    dir: &Path,
    name: &str,
    kill_when: Option<KillWhen<'_>>,
) -> Captured {
    run_program_signalled(program, args, env, dir, name, kill_when, "KILL").await
}

/// [`run_program`], sending `signal` (`TERM`, `INT`, `KILL`) instead, as a cancelled
/// workflow does; the program then runs on to its end.
pub async fn run_program_signalled(
    program: &Path,
    args: &[&str],
    env: Vec<(String, String)>,
    dir: &Path,
    name: &str,
    kill_when: Option<KillWhen<'_>>,
    signal: &str,
) -> Captured {
    let files = |what: &str| dir.join(format!("{name}.{what}"));
    let (stdout, stderr, output, summary) = (
        files("stdout"),
        files("stderr"),
        files("output"),
        files("summary"),
    );
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("create a stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("create a stderr file"));
    let mut child = command.spawn().expect("start the program");
    let started = Instant::now();
    let mut signalled = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the program") {
            break status;
        }
        if let Some(condition) = &kill_when
            && !signalled
            && condition(&std::fs::read_to_string(&stdout).unwrap_or_default())
        {
            // Inside the held call by now: everything before it is fast.
            tokio::time::sleep(HOLD / 4).await;
            if signal == "KILL" {
                let _ = child.kill();
            } else {
                let _ = Command::new("kill")
                    .arg(format!("-{signal}"))
                    .arg(child.id().to_string())
                    .status();
            }
            signalled = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{} {name} ran over 5 minutes",
            program.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    Captured {
        code: status.code(),
        killed: signalled && signal == "KILL",
        stdout: read(&stdout),
        stderr: read(&stderr),
        output: read(&output),
        summary: read(&summary),
    }
}

impl Rig {
    /// Whether the flow made anything that must be ended: a machine, a registration, a key.
    pub fn made_anything(&self) -> bool {
        !self.sim.ledger().entries.is_empty()
            || self.github.jit_requests() > 0
            || self.github.tokens_issued() > 0
            || self
                .sim
                .request_log()
                .iter()
                .any(|l| l.starts_with("POST /api/v1/ssh-keys 200"))
    }
}

/// Every file under `roots` (recursively) that `wanted` accepts.
pub fn files_where(roots: &[PathBuf], wanted: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = roots.to_vec();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if wanted(&path) {
                files.push(path);
            }
        }
    }
    files
}

/// Masks what changes per run (ids, labels, key names, durations, retries) so an outcome can
/// be compared across runs. Whether a call was retried at all depends on timing: on a loaded
/// machine two paced requests can arrive bunched, the simulator answers one 429, and the
/// client retries it — the outcome is the same, so the table says only `failed`.
pub fn mask(text: &str) -> String {
    let rules: [(&str, &str); 6] = [
        (r"\b[0-9a-f]{32}\b", "<id>"),
        (r"lambda-gha-[a-z0-9-]+-t[0-9]+", "<launch-key>"),
        (r"lambda-[0-9]+-[a-z0-9]{6}", "<label>"),
        (r"\b[0-9]+(\.[0-9]+)?\s?(ms|s)\b", "<t>"),
        (r"failed after [0-9]+ retr(y|ies)", "failed"),
        (r"http://127\.0\.0\.1:[0-9]+", "<url>"),
    ];
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for (pattern, replacement) in rules {
        let re = regex::Regex::new(pattern).expect("a valid pattern");
        text = re.replace_all(&text, replacement).into_owned();
    }
    text
}
