//! GitHub's self-hosted runner API: registration and remove tokens, JIT configurations,
//! listing (paged past 100) and deleting runners, for a repository or an organization (with a
//! runner group). `GITHUB_API_URL` is honoured, so GitHub Enterprise Server works.

use std::time::Duration;

use octocrab::Octocrab;
use octocrab::models::RunnerGroupId;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Field, GitHubError, InputError};
use crate::runner_release::{RunnerApplication, RunnerPackage};

/// Where runners are registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "scope")]
pub enum RunnerScope {
    /// One repository.
    Repo {
        /// The user or organization that owns it (`octo` in `octo/gpu`).
        owner: String,
        /// The repository's name (`gpu` in `octo/gpu`).
        repo: String,
    },
    /// A whole organization, optionally in a runner group.
    Org {
        /// The organization's login, as in its URL.
        org: String,
        /// The runner group id (the default group is 1).
        group_id: Option<u64>,
    },
}

impl RunnerScope {
    /// Reads `owner/repo` (from `GITHUB_REPOSITORY`) for repo scope, or the owner for org scope.
    pub fn parse(
        scope: &str,
        repository: &str,
        group_id: Option<u64>,
    ) -> Result<RunnerScope, InputError> {
        let Some((owner, repo)) = repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
        else {
            return Err(InputError::new(
                Field::Repository,
                format!("{repository:?} is not `owner/repo`"),
            ));
        };
        match scope {
            "repo" => Ok(RunnerScope::Repo {
                owner: owner.to_owned(),
                repo: repo.to_owned(),
            }),
            "org" => Ok(RunnerScope::Org {
                org: owner.to_owned(),
                group_id,
            }),
            other => Err(InputError::new(
                Field::Scope,
                format!("{other:?} must be `repo` or `org`"),
            )),
        }
    }

    /// The scope as a machine's owner tag: `repo:<owner>/<repo>` or `org:<org>`.
    pub fn owner(&self) -> String {
        match self {
            RunnerScope::Repo { owner, repo } => format!("repo:{owner}/{repo}"),
            RunnerScope::Org { org, .. } => format!("org:{org}"),
        }
    }

    fn group(&self) -> RunnerGroupId {
        match self {
            RunnerScope::Org {
                group_id: Some(id), ..
            } => RunnerGroupId(*id),
            _ => RunnerGroupId(1),
        }
    }
}

/// A runner as GitHub lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerInfo {
    /// GitHub's id of the registration, for deleting it.
    pub id: u64,
    /// The runner's name, unique in its scope: how this project finds it.
    pub name: String,
    /// `online` or `offline`.
    pub status: String,
    /// Whether it runs a job.
    pub busy: bool,
    /// The labels jobs are routed by (`runs-on`).
    pub labels: Vec<String>,
}

impl RunnerInfo {
    /// Whether the runner is connected to GitHub.
    pub fn is_online(&self) -> bool {
        self.status == "online"
    }
}

/// A runner group, as "Get a self-hosted runner group for an organization" answers.
#[derive(Deserialize)]
struct RunnerGroup {
    name: String,
}

/// A registration token and when GitHub lets it expire (an hour after it was made).
pub struct RegistrationToken {
    /// The token, for `config.sh`. Secret.
    pub token: SecretString,
    /// When it stops working.
    pub expires_at: jiff::Timestamp,
}

impl std::fmt::Debug for RegistrationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A just-in-time runner: registered at creation, configured by its one-use config.
pub struct JitRunner {
    /// Its id, for deleting it.
    pub id: u64,
    /// The name it was registered under.
    pub name: String,
    /// The encoded configuration for `run.sh --jitconfig`. Secret.
    pub config: SecretString,
}

impl std::fmt::Debug for JitRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitRunner")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("config", &"[redacted]")
            .finish()
    }
}

/// A job GitHub holds queued for a self-hosted runner, as "List jobs for a workflow run"
/// describes it (docs.github.com, REST API endpoints for workflow jobs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    /// The job's id: the same as a `workflow_job` webhook's.
    pub id: u64,
    /// Its workflow run.
    pub run_id: u64,
    /// `owner/repo`.
    pub repository: String,
    /// The job's name.
    pub name: String,
    /// Its `runs-on` labels.
    pub labels: Vec<String>,
    /// When it was queued, as GitHub says (RFC 3339).
    pub created_at: Option<String>,
}

/// A page of "List workflow runs for a repository".
#[derive(Deserialize)]
struct RunsPage {
    workflow_runs: Vec<RunSummary>,
}

#[derive(Deserialize)]
struct RunSummary {
    id: u64,
}

/// A page of "List jobs for a workflow run".
#[derive(Deserialize)]
struct JobsPage {
    jobs: Vec<JobSummary>,
}

#[derive(Deserialize)]
struct JobSummary {
    id: u64,
    run_id: u64,
    name: String,
    status: String,
    #[serde(default)]
    labels: Vec<String>,
    created_at: Option<String>,
}

/// The runner API for one scope.
#[derive(Clone)]
pub struct GitHub {
    octocrab: Octocrab,
    scope: RunnerScope,
    server_url: String,
    /// How long a delete waits for a busy runner to be let go.
    busy_wait: Duration,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("scope", &self.scope)
            .field("server_url", &self.server_url)
            .finish_non_exhaustive()
    }
}

/// How long deleting a runner that is still running a job is tried again: GitHub keeps a
/// runner killed mid-job busy for a few minutes.
pub const BUSY_RUNNER_WAIT: Duration = Duration::from_secs(120);

/// How many times a call is sent when GitHub failed on its side (5xx, 429, no answer).
const ATTEMPTS: u32 = 3;
/// How long one request may wait for GitHub to connect, and to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the failure is GitHub's or the network's, and may pass.
fn transient(error: &octocrab::Error) -> bool {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            source.status_code.is_server_error() || source.status_code.as_u16() == 429
        }
        octocrab::Error::Hyper { .. }
        | octocrab::Error::Service { .. }
        | octocrab::Error::Http { .. } => true,
        _ => false,
    }
}

/// The longest rate-limit wait a call sits out before it fails instead (a launch waits for no
/// hour-long reset).
const RATE_LIMIT_WAIT_MAX: Duration = Duration::from_secs(120);

/// How long GitHub asks for before the call is sent again, when it refused it for a rate limit
/// (docs.github.com, "Rate limits for the REST API": a secondary limit answers 403 or 429; wait
/// `retry-after` seconds when given; when `x-ratelimit-remaining` is 0, until
/// `x-ratelimit-reset`; otherwise at least a minute).
fn rate_limit_wait(error: &octocrab::Error) -> Option<Duration> {
    let octocrab::Error::GitHub { source, .. } = error else {
        return None;
    };
    let header = |name: &str| -> Option<u64> {
        source
            .headers
            .as_ref()?
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let status = source.status_code.as_u16();
    let secondary = source
        .message
        .to_ascii_lowercase()
        .contains("secondary rate limit");
    let exhausted = header("x-ratelimit-remaining") == Some(0);
    if !(status == 429 || (status == 403 && (secondary || exhausted))) {
        return None;
    }
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
    Some(match (header("retry-after"), header("x-ratelimit-reset")) {
        (Some(seconds), _) => Duration::from_secs(seconds),
        (None, Some(reset)) if exhausted => Duration::from_secs(reset.saturating_sub(now).max(1)),
        _ => Duration::from_secs(60),
    })
}

/// Sends `call` until it succeeds, fails for good, or `ATTEMPTS` transient failures, 1 s then
/// 2 s apart; a rate limit is waited out as GitHub asks, up to [`RATE_LIMIT_WAIT_MAX`].
async fn retrying<T, F, Fut>(action: &str, mut call: F) -> Result<T, GitHubError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, octocrab::Error>>,
{
    let mut attempt = 1;
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let failed = failure(action, &error);
        let pause = match rate_limit_wait(&error) {
            Some(wait) if wait > RATE_LIMIT_WAIT_MAX => {
                return Err(GitHubError {
                    message: format!(
                        "{}; GitHub's rate limit asks for {} s before the next call: try again later",
                        failed.message,
                        wait.as_secs()
                    ),
                    ..failed
                });
            }
            Some(wait) => wait,
            None if transient(&error) => Duration::from_secs(1 << (attempt - 1)),
            None => return Err(failed),
        };
        if attempt >= ATTEMPTS {
            return Err(failed);
        }
        tracing::warn!(error = %failed, seconds = pause.as_secs_f64(), attempt, "GitHub call failed; sending it again after a pause");
        tokio::time::sleep(pause).await;
        attempt += 1;
    }
}

fn failure(action: &str, error: &octocrab::Error) -> GitHubError {
    match error {
        octocrab::Error::GitHub { source, .. } => GitHubError {
            action: action.to_owned(),
            message: format!("HTTP {}: {}", source.status_code.as_u16(), source.message),
            status: Some(source.status_code.as_u16()),
        },
        other => GitHubError {
            action: action.to_owned(),
            message: other.to_string(),
            status: None,
        },
    }
}

impl GitHub {
    /// A client for `scope`, authenticated with `token` (a PAT or the workflow token),
    /// talking to `api_url` (`GITHUB_API_URL`, default `https://api.github.com`) for a server
    /// at `server_url` (`GITHUB_SERVER_URL`, default `https://github.com`). Call it inside a
    /// Tokio runtime.
    pub fn new(
        token: &SecretString,
        api_url: Option<&str>,
        server_url: Option<&str>,
        scope: RunnerScope,
    ) -> Result<GitHub, GitHubError> {
        let setup = |message: String| GitHubError {
            action: "set up the GitHub client".into(),
            message,
            status: None,
        };
        // Octocrab's TLS (hyper-rustls) takes rustls's provider from its crate features: `ring`
        // is the only one in the tree, so nothing needs installing.
        let mut builder = Octocrab::builder()
            .personal_token(token.expose_secret().to_owned())
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .set_write_timeout(Some(ANSWER_TIMEOUT));
        if let Some(url) = api_url {
            builder = builder
                .base_uri(url)
                .map_err(|e| setup(format!("invalid GITHUB_API_URL {url:?}: {e}")))?;
        }
        let octocrab = builder.build().map_err(|e| setup(e.to_string()))?;
        Ok(GitHub {
            octocrab,
            scope,
            busy_wait: BUSY_RUNNER_WAIT,
            server_url: server_url
                .unwrap_or("https://github.com")
                .trim_end_matches('/')
                .to_owned(),
        })
    }

    /// Waits at most `wait` for a busy runner to be let go before a delete gives up (default
    /// [`BUSY_RUNNER_WAIT`]).
    #[must_use]
    pub fn with_busy_wait(mut self, wait: Duration) -> GitHub {
        self.busy_wait = wait;
        self
    }

    /// Whose runners this client registers and lists.
    pub fn scope(&self) -> &RunnerScope {
        &self.scope
    }

    /// The URL a runner registers against (`config.sh --url`).
    pub fn registration_url(&self) -> String {
        match &self.scope {
            RunnerScope::Repo { owner, repo } => format!("{}/{owner}/{repo}", self.server_url),
            RunnerScope::Org { org, .. } => format!("{}/{org}", self.server_url),
        }
    }

    /// A registration token (valid one hour) for `config.sh --token`.
    pub async fn registration_token(&self) -> Result<RegistrationToken, GitHubError> {
        let token = retrying("create a registration token", || async {
            let actions = self.octocrab.actions();
            match &self.scope {
                RunnerScope::Repo { owner, repo } => {
                    actions
                        .create_repo_runner_registration_token(owner, repo)
                        .await
                }
                RunnerScope::Org { org, .. } => {
                    actions.create_org_runner_registration_token(org).await
                }
            }
        })
        .await?;
        Ok(RegistrationToken {
            token: SecretString::from(token.token),
            // An unreadable time counts as expiring now: a fresh token is asked for next time.
            expires_at: jiff::Timestamp::from_second(token.expires_at.timestamp())
                .unwrap_or_else(|_| jiff::Timestamp::now()),
        })
    }

    /// The name of the organization's runner group `id` (`config.sh --runnergroup` takes a
    /// name; the API, and this project's `runner_group` input, an id).
    pub async fn runner_group_name(&self, id: u64) -> Result<String, GitHubError> {
        let RunnerScope::Org { org, .. } = &self.scope else {
            return Err(GitHubError {
                action: "look up a runner group".into(),
                message: "runner groups exist only for organization runners".into(),
                status: None,
            });
        };
        let route = format!("/orgs/{org}/actions/runner-groups/{id}");
        let group: RunnerGroup = retrying(&format!("look up runner group {id}"), || async {
            self.octocrab.get(&route, None::<&()>).await
        })
        .await?;
        Ok(group.name)
    }

    /// A remove token (valid one hour) for `config.sh remove --token`.
    pub async fn remove_token(&self) -> Result<SecretString, GitHubError> {
        let token = retrying("create a remove token", || async {
            let actions = self.octocrab.actions();
            match &self.scope {
                RunnerScope::Repo { owner, repo } => {
                    actions.create_repo_runner_remove_token(owner, repo).await
                }
                RunnerScope::Org { org, .. } => actions.create_org_runner_remove_token(org).await,
            }
        })
        .await?;
        Ok(SecretString::from(token.token))
    }

    /// Registers a just-in-time runner and returns its one-use configuration. A runner of
    /// the same name already there (registered by an attempt whose answer was lost) is
    /// deleted and registered again: its configuration cannot be read back.
    pub async fn jit_config(
        &self,
        name: &str,
        labels: &[String],
    ) -> Result<JitRunner, GitHubError> {
        let action = format!("register the JIT runner {name}");
        let register = || async {
            let actions = self.octocrab.actions();
            let labels = labels.to_vec();
            match &self.scope {
                RunnerScope::Repo { owner, repo } => {
                    actions
                        .create_repo_jit_runner_config(
                            owner,
                            repo,
                            name,
                            self.scope.group(),
                            labels,
                        )
                        .send()
                        .await
                }
                RunnerScope::Org { org, .. } => {
                    actions
                        .create_org_jit_runner_config(org, name, self.scope.group(), labels)
                        .send()
                        .await
                }
            }
        };
        let config = match retrying(&action, register).await {
            Err(error) if error.status == Some(409) => {
                let runners = self.list_runners().await?;
                for runner in runners.iter().filter(|r| r.name == name) {
                    self.delete_runner(runner.id).await?;
                }
                retrying(&action, register).await?
            }
            other => other?,
        };
        Ok(JitRunner {
            id: config.runner.id.0,
            name: config.runner.name,
            config: SecretString::from(config.encoded_jit_config),
        })
    }

    /// Replaces runner `id`'s custom labels (GitHub's "Set custom labels for a self-hosted
    /// runner", `PUT …/actions/runners/{id}/labels`). How a JIT registration made for a
    /// candidate that had no capacity serves the next one: its configuration names no labels
    /// (actions/runner src/Runner.Common/ConfigurationStore.cs, `RunnerSettings`), GitHub
    /// routes jobs by the labels it keeps.
    pub async fn set_labels(&self, id: u64, labels: &[String]) -> Result<(), GitHubError> {
        let route = match &self.scope {
            RunnerScope::Repo { owner, repo } => {
                format!("/repos/{owner}/{repo}/actions/runners/{id}/labels")
            }
            RunnerScope::Org { org, .. } => format!("/orgs/{org}/actions/runners/{id}/labels"),
        };
        let body = serde_json::json!({ "labels": labels });
        let _: serde_json::Value = retrying(&format!("relabel runner {id}"), || async {
            self.octocrab.put(&route, Some(&body)).await
        })
        .await?;
        Ok(())
    }

    /// The runner named `name`, if the scope has one (GitHub's `name` filter: one small
    /// answer however many runners the repository or organization has).
    pub async fn runner_named(&self, name: &str) -> Result<Option<RunnerInfo>, GitHubError> {
        let route = match &self.scope {
            RunnerScope::Repo { owner, repo } => format!("/repos/{owner}/{repo}/actions/runners"),
            RunnerScope::Org { org, .. } => format!("/orgs/{org}/actions/runners"),
        };
        let query = [("name", name), ("per_page", "100")];
        let answer: octocrab::Page<octocrab::models::actions::SelfHostedRunner> =
            retrying(&format!("look up runner {name}"), || async {
                self.octocrab.get(&route, Some(&query)).await
            })
            .await?;
        Ok(answer
            .items
            .into_iter()
            .find(|r| r.name == name)
            .map(|r| RunnerInfo {
                id: r.id.0,
                name: r.name,
                status: r.status,
                busy: r.busy,
                labels: r.labels.into_iter().map(|l| l.name).collect(),
            }))
    }

    /// Every runner of the scope, following pages of 100.
    pub async fn list_runners(&self) -> Result<Vec<RunnerInfo>, GitHubError> {
        let actions = self.octocrab.actions();
        let mut runners = Vec::new();
        for page in 1u32.. {
            let result = retrying("list runners", || async {
                match &self.scope {
                    RunnerScope::Repo { owner, repo } => {
                        actions
                            .list_repo_self_hosted_runners(owner, repo)
                            .per_page(100)
                            .page(page)
                            .send()
                            .await
                    }
                    RunnerScope::Org { org, .. } => {
                        actions
                            .list_org_self_hosted_runners(org)
                            .per_page(100)
                            .page(page)
                            .send()
                            .await
                    }
                }
            })
            .await?;
            let count = result.items.len();
            runners.extend(result.items.into_iter().map(|r| RunnerInfo {
                id: r.id.0,
                name: r.name,
                status: r.status,
                busy: r.busy,
                labels: r.labels.into_iter().map(|l| l.name).collect(),
            }));
            if count < 100 || result.next.is_none() {
                break;
            }
        }
        Ok(runners)
    }

    /// Every job of `owner/repo` that is queued now. A queued job's run is itself `queued`,
    /// or `in_progress` when another of its jobs already runs, so both are listed
    /// (docs.github.com, "List workflow runs for a repository": `status` filters one value),
    /// then each run's latest attempt's jobs, keeping the `queued` ones. Pages of 100; at most
    /// `max_runs` runs of each status are read, newest first.
    pub async fn queued_jobs(
        &self,
        owner: &str,
        repo: &str,
        max_runs: usize,
    ) -> Result<Vec<QueuedJob>, GitHubError> {
        let mut runs: Vec<u64> = Vec::new();
        for status in ["queued", "in_progress"] {
            let route = format!("/repos/{owner}/{repo}/actions/runs");
            for page in 1u32.. {
                let page_text = page.to_string();
                let query = [
                    ("status", status),
                    ("per_page", "100"),
                    ("page", &page_text),
                ];
                let answer: RunsPage = retrying(
                    &format!("list {status} workflow runs of {owner}/{repo}"),
                    || async { self.octocrab.get(&route, Some(&query)).await },
                )
                .await?;
                let count = answer.workflow_runs.len();
                for run in answer.workflow_runs {
                    if !runs.contains(&run.id) {
                        runs.push(run.id);
                    }
                }
                if count < 100 || runs.len() >= max_runs {
                    break;
                }
            }
        }
        let mut queued = Vec::new();
        for run in runs {
            let route = format!("/repos/{owner}/{repo}/actions/runs/{run}/jobs");
            for page in 1u32.. {
                let page_text = page.to_string();
                let query = [
                    ("filter", "latest"),
                    ("per_page", "100"),
                    ("page", &page_text),
                ];
                let answer: JobsPage = retrying(&format!("list the jobs of run {run}"), || async {
                    self.octocrab.get(&route, Some(&query)).await
                })
                .await?;
                let count = answer.jobs.len();
                queued.extend(
                    answer
                        .jobs
                        .into_iter()
                        .filter(|job| job.status == "queued")
                        .map(|job| QueuedJob {
                            id: job.id,
                            run_id: job.run_id,
                            repository: format!("{owner}/{repo}"),
                            name: job.name,
                            labels: job.labels,
                            created_at: job.created_at,
                        }),
                );
                if count < 100 {
                    break;
                }
            }
        }
        Ok(queued)
    }

    /// The runner GitHub serves this scope now, for every Linux CPU it has one for.
    pub async fn served_runner(&self) -> Result<RunnerPackage, GitHubError> {
        let action = "list the runner applications";
        let route = match &self.scope {
            RunnerScope::Repo { owner, repo } => {
                format!("/repos/{owner}/{repo}/actions/runners/downloads")
            }
            RunnerScope::Org { org, .. } => format!("/orgs/{org}/actions/runners/downloads"),
        };
        let applications: Vec<RunnerApplication> = retrying(action, || async {
            self.octocrab.get(&route, None::<&()>).await
        })
        .await?;
        RunnerPackage::from_applications(applications).ok_or_else(|| GitHubError {
            action: action.to_owned(),
            message: "GitHub lists no Linux runner".into(),
            status: None,
        })
    }

    /// Release `version` of `actions/runner`, described at `releases_api` (its release notes
    /// hold the checksums) and downloaded from `download_base`. Asked without this client's
    /// token: the releases are public, and a GHES token is no business of github.com's.
    pub async fn pinned_runner(
        version: &str,
        releases_api: &str,
        download_base: &str,
    ) -> Result<RunnerPackage, GitHubError> {
        let action = format!("read the runner v{version} release");
        let anonymous = Octocrab::builder()
            .set_connect_timeout(Some(CONNECT_TIMEOUT))
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .build()
            .map_err(|e| GitHubError {
                action: action.clone(),
                message: e.to_string(),
                status: None,
            })?;
        let url = format!("{}/tags/v{version}", releases_api.trim_end_matches('/'));
        let release: serde_json::Value =
            retrying(&action, || async { anonymous.get(&url, None::<&()>).await })
                .await
                .map_err(|mut error| {
                    if error.status == Some(404) {
                        error.message = format!(
                            "there is no runner v{version}: see github.com/actions/runner/releases"
                        );
                    }
                    error
                })?;
        let notes = release["body"].as_str().unwrap_or_default();
        RunnerPackage::from_release_notes(version, notes, download_base).ok_or_else(|| {
            GitHubError {
                action,
                message: "its release notes carry no Linux checksum".into(),
                status: None,
            }
        })
    }

    /// Deletes a runner; one that is already gone is not an error. A runner still running a
    /// job (GitHub answers 422) is tried again, 2 s then doubling up to 30 s apart, for up to
    /// the busy wait; then the error says the reaper deletes it once it is offline.
    pub async fn delete_runner(&self, id: u64) -> Result<(), GitHubError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_secs(2);
        loop {
            match self.delete_runner_once(id).await {
                Err(error)
                    if error.status == Some(422) && error.message.contains("running a job") =>
                {
                    if started.elapsed() + pause > self.busy_wait {
                        return Err(GitHubError {
                            message: format!(
                                "{}; the reaper deletes it once GitHub sees it offline",
                                error.message
                            ),
                            ..error
                        });
                    }
                    tracing::info!(id, "runner still running a job; deleting it again soon");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
                other => return other,
            }
        }
    }

    async fn delete_runner_once(&self, id: u64) -> Result<(), GitHubError> {
        let result = retrying(&format!("delete runner {id}"), || async {
            let actions = self.octocrab.actions();
            match &self.scope {
                RunnerScope::Repo { owner, repo } => {
                    actions.delete_repo_runner(owner, repo, id.into()).await
                }
                RunnerScope::Org { org, .. } => actions.delete_org_runner(org, id.into()).await,
            }
        })
        .await;
        match result {
            Err(error) if error.status == Some(404) => Ok(()),
            other => other,
        }
    }
}
