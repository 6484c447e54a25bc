//! The controller's configuration file (`controller.toml`): where GitHub and the provider are,
//! which environment variables hold their secrets (never the file), and the pools of machines
//! that serve jobs by their `runs-on` labels.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use gha_runner_core::RunnerScope;
use gha_runner_core::boot_script::{AgentDownload, AgentSource};
use gha_runner_core::cache::CacheRequest;
use gha_runner_core::duration::parse_duration;
use gha_runner_core::health::GpuGate;
use gha_runner_core::plan::Candidate;
use serde::Deserialize;

use crate::error::ControllerError;

/// The whole file.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This controller's name, tagged on its machines: its reaper ends only its own.
    pub name: String,
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Where the state lives: a SQLite file (one replica), or a PostgreSQL URL (several).
    pub database: crate::store::Database,
    /// GitHub.
    pub github: GitHubSettings,
    /// The cloud.
    pub provider: ProviderSettings,
    /// How often things happen.
    pub timing: Timing,
    /// The pools, in the order a job's labels are matched against them.
    pub pools: Vec<Pool>,
    /// Where machines download the agent (this version's release binaries), when set.
    pub agent: Option<AgentSource>,
}

/// How the controller reaches GitHub.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    /// Where runners are registered.
    pub scope: RunnerScope,
    /// The repositories whose queued jobs are listed to recover dropped webhooks
    /// (`owner/repo`).
    pub repositories: Vec<String>,
    /// `GITHUB_API_URL` (GitHub Enterprise Server), when not github.com.
    pub api_url: Option<String>,
    /// The web URL runners register against, when not github.com.
    pub server_url: Option<String>,
    /// How the controller authenticates.
    pub auth: GitHubAuth,
    /// The variable holding the webhook secret.
    pub webhook_secret_env: String,
}

/// A token, or a GitHub App's installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitHubAuth {
    /// A token (fine-grained PAT) in this environment variable.
    Token {
        /// The variable.
        env: String,
    },
    /// A GitHub App installation: installation tokens are made from the App's private key
    /// and refreshed before they expire.
    App {
        /// The App's id.
        app_id: u64,
        /// The installation's id.
        installation_id: u64,
        /// The variable holding the App's private key (PEM).
        private_key_env: String,
    },
}

/// Which cloud, and the variable holding its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// `lambda` or `runpod`.
    pub name: String,
    /// The variable holding the API key.
    pub api_key_env: String,
    /// The API's base URL, when not the provider's own.
    pub api_url: Option<String>,
}

/// The controller's clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How often the loop decides even without a webhook.
    pub reconcile_every: Duration,
    /// How often it lists the provider's machines and GitHub's runners.
    pub observe_every: Duration,
    /// How often it lists GitHub's queued jobs (the recovery of dropped webhooks).
    pub poll_jobs_every: Duration,
    /// How long runners may take to come online after a launch.
    pub registration_timeout: Duration,
    /// How long a job stays queued before GitHub gives up on it (docs.github.com, "Actions
    /// limits": a job for a self-hosted runner may be queued for at most 24 hours).
    pub queued_job_expiry: Duration,
    /// How long a pool waits after a failed launch before it launches again: without it, a
    /// pool whose every candidate lacks capacity would try again at once, forever.
    pub failed_launch_pause: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            reconcile_every: Duration::from_secs(5),
            observe_every: Duration::from_secs(10),
            poll_jobs_every: Duration::from_secs(60),
            registration_timeout: Duration::from_secs(600),
            queued_job_expiry: Duration::from_secs(24 * 3600),
            failed_launch_pause: Duration::from_secs(60),
        }
    }
}

/// Machines that serve jobs whose `runs-on` labels they all carry.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Its name: letters, digits and `-`; part of its machines' labels.
    pub name: String,
    /// The labels its runners carry; a job is this pool's when it asks for no other.
    pub labels: Vec<String>,
    /// Types × regions, in order of preference (types first).
    pub candidates: Vec<Candidate>,
    /// Image family or id.
    pub image: Option<String>,
    /// A filesystem (volume) to attach.
    pub filesystem: Option<String>,
    /// A cache on a filesystem per region (`cache_filesystem`), for the runner, the agent
    /// and the jobs' package and model caches.
    pub cache: Option<CacheRequest>,
    /// The SSH key to install (Lambda needs one per launch).
    pub ssh_key: Option<String>,
    /// The user's boot script, run before the runners start.
    pub userdata: Option<String>,
    /// The GPU health gate.
    pub gpu_gate: GpuGate,
    /// Runners per machine.
    pub runners_per_machine: usize,
    /// The most machines alive at once.
    pub max_machines: usize,
    /// The hard limit on a machine's life.
    pub max_lifetime: Duration,
    /// How long a machine whose runners are online but unused may wait for a job when no job
    /// is queued for its pool.
    pub idle_grace: Duration,
    /// The most this pool may cost in a UTC day, in US dollars.
    pub daily_cost_cap_usd: Option<f64>,
}

impl Pool {
    /// Whether a job asking for `labels` is this pool's: its runners carry every one
    /// (GitHub's routing, docs.github.com, "Using self-hosted runners in a workflow": a job
    /// goes to a runner that has all of its `runs-on` labels). Labels compare
    /// case-insensitively, as GitHub's do.
    pub fn serves(&self, labels: &[String]) -> bool {
        !labels.is_empty()
            && labels
                .iter()
                .all(|l| self.labels.iter().any(|own| own.eq_ignore_ascii_case(l)))
    }
}

impl ControllerConfig {
    /// The pool that serves a job asking for `labels`: the first that does.
    pub fn pool_for(&self, labels: &[String]) -> Option<&Pool> {
        self.pools.iter().find(|p| p.serves(labels))
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<ControllerConfig, ControllerError> {
        let text = std::fs::read_to_string(path).map_err(|e| ControllerError::Config {
            path: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        ControllerConfig::parse(&text).map_err(|message| ControllerError::Config {
            path: path.display().to_string(),
            message,
        })
    }

    /// Reads and checks a configuration; the error names the setting and the fix.
    pub fn parse(text: &str) -> Result<ControllerConfig, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.check()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "default_name")]
    name: String,
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_database")]
    database: String,
    github: GitHubFile,
    #[serde(default)]
    provider: ProviderFile,
    #[serde(default)]
    timing: TimingFile,
    #[serde(default, rename = "pool")]
    pools: Vec<PoolFile>,
    agent: Option<AgentFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    /// The x86_64 binary's URL and SHA-256 (from the release's `SHA256SUMS`).
    url: Option<String>,
    sha256: Option<String>,
    /// The aarch64 binary's (GH200 machines).
    url_aarch64: Option<String>,
    sha256_aarch64: Option<String>,
}

impl AgentFile {
    fn check(self) -> Result<AgentSource, String> {
        let download = |url: Option<String>, sha: Option<String>, which: &str| match (url, sha) {
            (None, None) => Ok(None),
            (Some(url), Some(sha256))
                if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                if !url.starts_with("https://") && !url.starts_with("http://127.0.0.1") {
                    return Err(format!("`agent.url{which}` must be an https URL"));
                }
                Ok(Some(AgentDownload { url, sha256 }))
            }
            (Some(_), Some(_)) => Err(format!(
                "`agent.sha256{which}` must be 64 hex digits: the binary's line in the release's SHA256SUMS"
            )),
            _ => Err(format!(
                "`agent.url{which}` and `agent.sha256{which}` go together: set both"
            )),
        };
        let x86_64 = download(self.url, self.sha256, "")?;
        let aarch64 = download(self.url_aarch64, self.sha256_aarch64, "_aarch64")?;
        if x86_64.is_none() && aarch64.is_none() {
            return Err("`[agent]` names no binary: set `url` and `sha256`".to_owned());
        }
        Ok(AgentSource::Release { x86_64, aarch64 })
    }
}

fn default_name() -> String {
    "lambda-gha".to_owned()
}
fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}
fn default_database() -> String {
    "lambda-gha-controller.db".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GitHubFile {
    /// `owner/repo`, or `org:<org>`.
    scope: String,
    runner_group: Option<u64>,
    #[serde(default)]
    repositories: Vec<String>,
    api_url: Option<String>,
    server_url: Option<String>,
    token_env: Option<String>,
    app_id: Option<u64>,
    installation_id: Option<u64>,
    private_key_env: Option<String>,
    #[serde(default = "default_webhook_secret_env")]
    webhook_secret_env: String,
}

fn default_webhook_secret_env() -> String {
    "LAMBDA_GHA_WEBHOOK_SECRET".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    #[serde(default = "default_provider")]
    name: String,
    api_key_env: Option<String>,
    api_url: Option<String>,
}

impl Default for ProviderFile {
    fn default() -> Self {
        ProviderFile {
            name: default_provider(),
            api_key_env: None,
            api_url: None,
        }
    }
}

fn default_provider() -> String {
    "lambda".to_owned()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TimingFile {
    reconcile_every: Option<String>,
    observe_every: Option<String>,
    poll_jobs_every: Option<String>,
    registration_timeout: Option<String>,
    queued_job_expiry: Option<String>,
    failed_launch_pause: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    name: String,
    labels: Vec<String>,
    types: Vec<String>,
    regions: Vec<String>,
    image: Option<String>,
    filesystem: Option<String>,
    cache_filesystem: Option<String>,
    ssh_key: Option<String>,
    userdata: Option<String>,
    #[serde(default = "yes")]
    gpu_health_gate: bool,
    gpu_check: Option<String>,
    #[serde(default = "one")]
    runners_per_machine: usize,
    max_machines: usize,
    #[serde(default = "default_lifetime")]
    max_lifetime: String,
    #[serde(default = "default_idle_grace")]
    idle_grace: String,
    daily_cost_cap_usd: Option<f64>,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn default_lifetime() -> String {
    "2h".to_owned()
}
fn default_idle_grace() -> String {
    "5m".to_owned()
}

/// A duration setting, or the error naming it.
fn duration(value: Option<&str>, default: Duration, name: &str) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(text) => parse_duration(text, name)
            .map_err(|e| format!("`{name}`: {e} (write e.g. \"30s\", \"5m\", \"2h\")")),
    }
}

fn label_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl File {
    fn check(self) -> Result<ControllerConfig, String> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            format!(
                "`listen` = {:?} is not an address: write e.g. \"127.0.0.1:8080\"",
                self.listen
            )
        })?;
        if !label_safe(&self.name) {
            return Err(format!(
                "`name` = {:?} may contain only letters, digits, `-`, `_` and `.`",
                self.name
            ));
        }
        let github = self.github.check()?;
        let provider = self.provider.check()?;
        let defaults = Timing::default();
        let t = &self.timing;
        let timing = Timing {
            reconcile_every: duration(
                t.reconcile_every.as_deref(),
                defaults.reconcile_every,
                "timing.reconcile_every",
            )?,
            observe_every: duration(
                t.observe_every.as_deref(),
                defaults.observe_every,
                "timing.observe_every",
            )?,
            poll_jobs_every: duration(
                t.poll_jobs_every.as_deref(),
                defaults.poll_jobs_every,
                "timing.poll_jobs_every",
            )?,
            registration_timeout: duration(
                t.registration_timeout.as_deref(),
                defaults.registration_timeout,
                "timing.registration_timeout",
            )?,
            queued_job_expiry: duration(
                t.queued_job_expiry.as_deref(),
                defaults.queued_job_expiry,
                "timing.queued_job_expiry",
            )?,
            failed_launch_pause: duration(
                t.failed_launch_pause.as_deref(),
                defaults.failed_launch_pause,
                "timing.failed_launch_pause",
            )?,
        };
        if self.pools.is_empty() {
            return Err(
                "no `[[pool]]`: add one with `name`, `labels`, `types`, `regions` and `max_machines`"
                    .to_owned(),
            );
        }
        let mut pools: Vec<Pool> = Vec::new();
        for file in self.pools {
            let pool = file.check(&github.scope)?;
            if pools.iter().any(|p| p.name == pool.name) {
                return Err(format!(
                    "two pools are called {:?}: give each its own `name`",
                    pool.name
                ));
            }
            if let Some(earlier) = pools.iter().find(|p| p.serves(&pool.labels)) {
                return Err(format!(
                    "pool {:?} can never get a job: pool {:?} comes first and carries all of its labels, so it takes every job {:?} could; put {:?} before {:?}",
                    pool.name, earlier.name, pool.name, pool.name, earlier.name
                ));
            }
            pools.push(pool);
        }
        let agent = self.agent.map(AgentFile::check).transpose()?;
        Ok(ControllerConfig {
            name: self.name,
            listen,
            database: crate::store::Database::parse(&self.database)
                .map_err(|e| format!("`database`: {e}"))?,
            github,
            provider,
            timing,
            pools,
            agent,
        })
    }
}

impl GitHubFile {
    fn check(self) -> Result<GitHubSettings, String> {
        let scope = match self.scope.strip_prefix("org:") {
            Some(org) if label_safe(org) => RunnerScope::Org {
                org: org.to_owned(),
                group_id: self.runner_group,
            },
            None => match self.scope.split_once('/') {
                Some((owner, repo)) if label_safe(owner) && label_safe(repo) => RunnerScope::Repo {
                    owner: owner.to_owned(),
                    repo: repo.to_owned(),
                },
                _ => {
                    return Err(format!(
                        "`github.scope` = {:?}: write \"owner/repo\" for a repository's runners or \"org:<org>\" for an organization's",
                        self.scope
                    ));
                }
            },
            Some(_) => {
                return Err(format!(
                    "`github.scope` = {:?}: the organization's login may contain only letters, digits and `-`",
                    self.scope
                ));
            }
        };
        let mut repositories = self.repositories;
        for repository in &repositories {
            if !matches!(repository.split_once('/'), Some((o, r)) if label_safe(o) && label_safe(r))
            {
                return Err(format!(
                    "`github.repositories`: {repository:?} is not \"owner/repo\""
                ));
            }
        }
        if repositories.is_empty()
            && let RunnerScope::Repo { owner, repo } = &scope
        {
            repositories.push(format!("{owner}/{repo}"));
        }
        let auth = match (
            self.token_env,
            self.app_id,
            self.installation_id,
            self.private_key_env,
        ) {
            (Some(_), Some(_), _, _) => {
                return Err(
                    "`github`: set either `token_env` or the App's `app_id`, `installation_id` and `private_key_env`, not both"
                        .to_owned(),
                );
            }
            (None, Some(app_id), Some(installation_id), Some(private_key_env)) => GitHubAuth::App {
                app_id,
                installation_id,
                private_key_env,
            },
            (None, Some(_), _, _) => {
                return Err(
                    "`github`: a GitHub App needs `app_id`, `installation_id` and `private_key_env` (the variable holding its PEM key)"
                        .to_owned(),
                );
            }
            (token_env, None, _, _) => GitHubAuth::Token {
                env: token_env.unwrap_or_else(|| "GITHUB_TOKEN".to_owned()),
            },
        };
        Ok(GitHubSettings {
            scope,
            repositories,
            api_url: self.api_url,
            server_url: self.server_url,
            auth,
            webhook_secret_env: self.webhook_secret_env,
        })
    }
}

impl ProviderFile {
    fn check(self) -> Result<ProviderSettings, String> {
        let default_key = match self.name.as_str() {
            "lambda" => "LAMBDA_API_KEY",
            "runpod" => "RUNPOD_API_KEY",
            other => {
                return Err(format!(
                    "`provider.name` = {other:?}: the controller knows \"lambda\" and \"runpod\""
                ));
            }
        };
        Ok(ProviderSettings {
            api_key_env: self.api_key_env.unwrap_or_else(|| default_key.to_owned()),
            name: self.name,
            api_url: self.api_url,
        })
    }
}

impl PoolFile {
    /// `max_lifetime` (at least a minute) and `idle_grace`.
    fn durations(&self, name: &str) -> Result<(Duration, Duration), String> {
        let max_lifetime = duration(
            Some(&self.max_lifetime),
            Duration::ZERO,
            &format!("pool {name}: max_lifetime"),
        )?;
        if max_lifetime < Duration::from_secs(60) {
            return Err(format!("pool {name:?}: `max_lifetime`: at least 1m"));
        }
        let idle_grace = duration(
            Some(&self.idle_grace),
            Duration::ZERO,
            &format!("pool {name}: idle_grace"),
        )?;
        Ok((max_lifetime, idle_grace))
    }

    /// The pool's name (`name`, taken out of it) and its labels, checked.
    fn check_name_and_labels(&self, name: &str) -> Result<(), String> {
        let at = |setting: &str| format!("pool {name:?}: `{setting}`");
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || name.is_empty()
            || name.len() > 20
        {
            return Err(format!(
                "{}: 1 to 20 letters, digits and `-` (it becomes part of runner names)",
                at("name")
            ));
        }
        if self.labels.is_empty() {
            return Err(format!(
                "{}: name the `runs-on` labels this pool serves, e.g. [\"self-hosted\", \"gpu-a10\"]",
                at("labels")
            ));
        }
        if let Some(bad) = self.labels.iter().find(|l| !label_safe(l)) {
            return Err(format!(
                "{}: {bad:?} may contain only letters, digits, `-`, `_` and `.`",
                at("labels")
            ));
        }
        Ok(())
    }

    /// The pool, checked; its cache is named for `scope`'s repository (or organization).
    fn check(mut self, scope: &RunnerScope) -> Result<Pool, String> {
        let name = std::mem::take(&mut self.name);
        let at = |setting: &str| format!("pool {name:?}: `{setting}`");
        self.check_name_and_labels(&name)?;
        if self.types.is_empty() || self.regions.is_empty() {
            return Err(format!(
                "{}: name at least one machine type and one region",
                at(if self.types.is_empty() {
                    "types"
                } else {
                    "regions"
                })
            ));
        }
        let candidates = self
            .types
            .iter()
            .flat_map(|t| {
                self.regions.iter().map(move |r| Candidate {
                    instance_type: t.clone(),
                    region: r.clone(),
                })
            })
            .collect();
        if !(1..=16).contains(&self.runners_per_machine) {
            return Err(format!(
                "{}: 1 to 16 (got {})",
                at("runners_per_machine"),
                self.runners_per_machine
            ));
        }
        if !(1..=100).contains(&self.max_machines) {
            return Err(format!(
                "{}: 1 to 100 (got {})",
                at("max_machines"),
                self.max_machines
            ));
        }
        if let Some(cap) = self.daily_cost_cap_usd
            && !(cap.is_finite() && cap > 0.0)
        {
            return Err(format!(
                "{}: a positive number of dollars (got {cap})",
                at("daily_cost_cap_usd")
            ));
        }
        let (max_lifetime, idle_grace) = self.durations(&name)?;
        let gpu_gate = if self.gpu_health_gate {
            GpuGate::On {
                check: self.gpu_check,
            }
        } else if self.gpu_check.is_some() {
            return Err(format!(
                "{}: set with `gpu_health_gate = false`; drop one of them",
                at("gpu_check")
            ));
        } else {
            GpuGate::Off
        };
        let cache = pool_cache(
            self.cache_filesystem.as_deref(),
            scope,
            at("cache_filesystem"),
        )?;
        Ok(Pool {
            name,
            labels: self.labels,
            candidates,
            image: self.image,
            filesystem: self.filesystem,
            cache,
            ssh_key: self.ssh_key,
            userdata: self.userdata,
            gpu_gate,
            runners_per_machine: self.runners_per_machine,
            max_machines: self.max_machines,
            max_lifetime,
            idle_grace,
            daily_cost_cap_usd: self.daily_cost_cap_usd,
        })
    }
}

/// A pool's `cache_filesystem`, its filesystems named for `scope`'s repository (or
/// organization).
fn pool_cache(
    input: Option<&str>,
    scope: &RunnerScope,
    field: String,
) -> Result<Option<CacheRequest>, String> {
    let repository = match scope {
        RunnerScope::Repo { owner, repo } => format!("{owner}/{repo}"),
        RunnerScope::Org { org, .. } => org.clone(),
    };
    CacheRequest::parse(input.unwrap_or_default(), &repository, field).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "ci"
listen = "127.0.0.1:9000"
[github]
scope = "octo/gpu"
[[pool]]
name = "a10"
labels = ["self-hosted", "gpu"]
types = ["gpu_1x_a10", "gpu_1x_a6000"]
regions = ["us-east-1"]
max_machines = 4
daily_cost_cap_usd = 50
[[pool]]
name = "a100"
labels = ["self-hosted", "gpu", "a100"]
types = ["gpu_1x_a100_sxm4"]
regions = ["us-east-1", "us-west-2"]
max_machines = 2
"#;

    #[test]
    fn a_job_goes_to_the_first_pool_carrying_all_its_labels() {
        let config = ControllerConfig::parse(GOOD).unwrap();
        let labels = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let pool = |l: &[&str]| config.pool_for(&labels(l)).map(|p| p.name.as_str());
        assert_eq!(pool(&["self-hosted", "gpu", "a100"]), Some("a100"));
        assert_eq!(pool(&["self-hosted", "GPU"]), Some("a10"));
        assert_eq!(
            pool(&["gpu"]),
            Some("a10"),
            "the first pool that carries it"
        );
        assert_eq!(pool(&["ubuntu-latest"]), None, "left alone");
        assert_eq!(pool(&[]), None);
        assert_eq!(config.pools[0].candidates.len(), 2);
        assert_eq!(
            config.github.repositories,
            ["octo/gpu"],
            "the scope's repository is polled"
        );
        assert_eq!(
            config.github.auth,
            GitHubAuth::Token {
                env: "GITHUB_TOKEN".into()
            }
        );
        assert_eq!(config.provider.api_key_env, "LAMBDA_API_KEY");
    }

    #[test]
    fn a_pool_may_keep_a_cache_named_for_the_repository() {
        let text = GOOD.replace(
            "daily_cost_cap_usd = 50",
            "daily_cost_cap_usd = 50\ncache_filesystem = \"true\"",
        );
        let config = ControllerConfig::parse(&text).unwrap();
        let cache = config.pools[0].cache.as_ref().unwrap();
        assert_eq!(
            cache.volume_name("us-east-1"),
            "gha-cache-octo-gpu-us-east-1"
        );
        assert_eq!(config.pools[1].cache, None);
        let bad = GOOD.replace(
            "daily_cost_cap_usd = 50",
            "daily_cost_cap_usd = 50\ncache_filesystem = \"no spaces\"",
        );
        let error = ControllerConfig::parse(&bad).unwrap_err();
        assert!(
            error.contains("pool \"a10\": `cache_filesystem`")
                && error.contains("starting with a letter"),
            "{error}"
        );
    }

    /// The example the README and the deployment files point to is a working configuration.
    #[test]
    fn the_deployment_example_is_a_valid_configuration() {
        let example = include_str!("../../../deploy/controller.toml");
        let config = ControllerConfig::parse(example).unwrap();
        assert_eq!(config.pools.len(), 2);
        assert!(config.agent.is_some());
        assert_eq!(config.pools[1].filesystem.as_deref(), Some("datasets"));
        assert_eq!(config.timing.poll_jobs_every, Duration::from_secs(60));
    }

    #[test]
    fn mistakes_are_named_with_their_fix() {
        let cases = [
            (GOOD.replace("octo/gpu", "octo"), "write \"owner/repo\""),
            (
                GOOD.replace("max_machines = 2", "max_machines = 0"),
                "`max_machines`: 1 to 100",
            ),
            (
                GOOD.replace("name = \"a10\"", "name = \"a100\""),
                "two pools are called",
            ),
            (
                GOOD.replace("[\"self-hosted\", \"gpu\", \"a100\"]", "[\"gpu\"]"),
                "put \"a100\" before \"a10\"",
            ),
            (
                GOOD.replace("listen = \"127.0.0.1:9000\"", "listen = \"nine\""),
                "is not an address",
            ),
            (
                GOOD.replace("[github]", "[github]\napp_id = 1"),
                "needs `app_id`, `installation_id`",
            ),
            (
                GOOD.replace(
                    "max_machines = 4",
                    "max_machines = 4\nidle_grace = \"soon\"",
                ),
                "idle_grace",
            ),
            (
                GOOD.replace("name = \"ci\"", "name = \"ci\"\ncolour = 1"),
                "unknown field `colour`",
            ),
        ];
        for (text, wanted) in cases {
            let error = ControllerConfig::parse(&text).unwrap_err();
            assert!(error.contains(wanted), "{wanted:?} not in {error:?}");
        }
    }
}
