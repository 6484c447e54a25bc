//! One world per test: a simulator, a fake GitHub, canary secrets, and the binary run with a
//! clean environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use lambda_cloud_sim::{Scenario, Sim};
use lambda_gha_tests::FakeGitHub;

pub(crate) const SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(50.0);

pub(crate) struct Fixture {
    pub(crate) sim: Sim,
    pub(crate) github: FakeGitHub,
    pub(crate) lambda_key: String,
    pub(crate) pat: String,
    pub(crate) dir: PathBuf,
}

/// What one run of the binary left.
pub(crate) struct Run {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) output: String,
    pub(crate) summary: String,
}

impl Run {
    pub(crate) fn outputs(&self) -> BTreeMap<String, String> {
        self.output
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The one error annotation, as `(title, message)`.
    pub(crate) fn error(&self) -> Option<(String, String)> {
        self.stdout.lines().find_map(|l| {
            let rest = l.strip_prefix("::error title=")?;
            let (title, message) = rest.split_once("::")?;
            Some((
                title.replace("%3A", ":").replace("%2C", ","),
                message.replace("%0A", "\n").replace("%25", "%"),
            ))
        })
    }
}

impl Fixture {
    pub(crate) async fn new(scenario: Scenario) -> Fixture {
        let lambda_key = format!("LAMBDACANARY{}", fastrand_hex());
        let sim = Sim::builder()
            .scenario(scenario)
            .time_scale(SCALE)
            .api_key(lambda_key.clone())
            .start()
            .await
            .unwrap();
        let github = FakeGitHub::start(true).await;
        let dir = std::env::temp_dir().join(format!("action-it-{}", fastrand_hex()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("SHA256SUMS"),
            format!(
                "{}  lambda-gha-x86_64-unknown-linux-musl\n{}  lambda-gha-aarch64-unknown-linux-musl\n",
                "a".repeat(64),
                "b".repeat(64)
            ),
        )
        .unwrap();
        Fixture {
            sim,
            github,
            lambda_key,
            pat: format!("PATCANARY{}", fastrand_hex()),
            dir,
        }
    }

    /// The environment GitHub would give the step, with `inputs` as `INPUT_*`.
    pub(crate) fn env(&self, inputs: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            ("LAMBDA_API_KEY", self.lambda_key.as_str()),
            ("LAMBDA_API_URL", self.sim.base_url()),
            ("GH_PAT", self.pat.as_str()),
            ("GITHUB_API_URL", &self.github.uri()),
            ("GITHUB_REPOSITORY", "octo/gpu"),
            ("GITHUB_RUN_ID", "4242"),
            (
                "LAMBDA_GHA_SHA256SUMS",
                self.dir.join("SHA256SUMS").to_str().unwrap(),
            ),
            (
                "LAMBDA_GHA_RELEASE_URL",
                "https://github.com/lambda-gha/lambda-gha/releases/download/v0.1.0",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        env.insert("LAMBDA_API_TIME_SCALE".into(), SCALE.to_string());
        for (name, value) in inputs {
            env.insert(
                format!("INPUT_{}", name.to_ascii_uppercase()),
                (*value).to_owned(),
            );
        }
        env
    }

    /// Runs the binary with exactly `env` (plus PATH), collecting everything it wrote.
    pub(crate) async fn run(&self, env: BTreeMap<String, String>) -> Run {
        let n = fastrand_hex();
        let output = self.dir.join(format!("output-{n}"));
        let summary = self.dir.join(format!("summary-{n}"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-gha-action"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .envs(env);
        let out = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            output: std::fs::read_to_string(output).unwrap_or_default(),
            summary: std::fs::read_to_string(summary).unwrap_or_default(),
        }
    }

    /// Every secret of this world: the Lambda key, the PAT, and what the fake GitHub issued.
    pub(crate) fn canaries(&self) -> Vec<String> {
        let mut canaries = vec![
            self.lambda_key.clone(),
            self.pat.clone(),
            self.github.canary().to_owned(),
        ];
        // JIT configurations carry the canary only encoded.
        canaries.extend(self.github.jit_configs());
        canaries
    }

    /// Asserts no secret appears anywhere but in `::add-mask::` commands.
    pub(crate) fn assert_no_secrets(&self, run: &Run) {
        let stdout: String = run
            .stdout
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .collect::<Vec<_>>()
            .join("\n");
        for canary in self.canaries() {
            for (what, text) in [
                ("stdout", &stdout),
                ("stderr", &run.stderr),
                ("GITHUB_OUTPUT", &run.output),
                ("summary", &run.summary),
            ] {
                assert!(!text.contains(&canary), "a secret leaked into {what}");
            }
        }
    }

    /// Instances launched so far.
    pub(crate) fn launches(&self) -> usize {
        self.sim.ledger().entries.len()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn fastrand_hex() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Filters for values that change per run.
pub(crate) fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"lambda-4242-[a-z0-9]{6}", "[label]");
    settings.add_filter(r"\b[0-9a-f]{32}\b", "[instance-id]");
    settings.add_filter(r"\| [0-9]+\.[0-9] s \|", "| [t] s |");
    settings
}
