//! GitHub as a stateful fake at its REST surface, for tests and `lambda-gha serve --demo`: the
//! self-hosted runner API for repository and organization scopes (registration and remove
//! tokens, JIT configurations, listing and deleting runners), and the workflow side (jobs
//! queued by `runs-on`, signed `workflow_job` webhook deliveries, the runs and jobs listings,
//! jobs run on online runners). Every token it issues carries a per-fake canary so tests can
//! prove that none of them leaks into output.

use std::sync::{Arc, Mutex, MutexGuard};

mod app;
mod webhooks;

/// The runner version the fake serves as GitHub's current one.
pub const RUNNER_VERSION: &str = "2.330.0";

pub use webhooks::{Deliveries, REPOSITORY, WebhookDelivery, get, post, signature};

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A runner the fake holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRunner {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Whether it is online: from registration (`online_on_register`), or while it reports
    /// itself through `POST /_fake/online` (body: its JIT configuration) every second or so.
    pub online: bool,
    /// Whether it runs a job: a runner killed mid-job stays busy on GitHub for a while.
    pub busy: bool,
}

/// A job of a workflow run, as the fake GitHub queues it for self-hosted runners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeJob {
    /// Its name (no spaces), unique in the workflow.
    pub name: String,
    /// Its `runs-on` labels: a runner must carry all of them.
    pub runs_on: Vec<String>,
    /// The jobs it `needs`: it is queued once they all succeeded.
    pub needs: Vec<String>,
    /// How long its steps take, in simulated seconds.
    pub seconds: u32,
}

impl FakeJob {
    /// A job on `runs_on` that needs `needs` and takes `seconds`.
    pub fn new(name: &str, runs_on: &[&str], needs: &[&str], seconds: u32) -> FakeJob {
        FakeJob {
            name: name.to_owned(),
            runs_on: runs_on.iter().map(|l| (*l).to_owned()).collect(),
            needs: needs.iter().map(|n| (*n).to_owned()).collect(),
            seconds,
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for the jobs it needs.
    Waiting,
    /// Queued: waiting for an online, idle runner whose labels match.
    Queued,
    /// Sent to the runner called this.
    Running(String),
    /// Done on the runner called this: whether it succeeded.
    Done {
        /// The runner's name.
        runner: String,
        /// Whether it succeeded.
        succeeded: bool,
    },
    /// Never run: a job it needs failed.
    Skipped,
    /// Cancelled before a runner took it.
    Cancelled,
}

/// A job of a queued workflow run, with the ids GitHub gave it.
#[derive(Debug, Clone)]
struct Job {
    spec: FakeJob,
    status: JobStatus,
    /// Its id, as `workflow_job` deliveries and the jobs API give it.
    id: u64,
    /// Its workflow run's id.
    run_id: u64,
    created_at: jiff::Timestamp,
    /// When the fake itself started running it ([`FakeGitHub::run_jobs_itself`]).
    started: Option<std::time::Instant>,
}

/// A GitHub endpoint the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitHubRoute {
    /// `POST …/actions/runners/generate-jitconfig`.
    JitConfig,
    /// `POST …/actions/runners/registration-token`.
    RegistrationToken,
    /// `GET …/actions/runners`.
    ListRunners,
    /// `DELETE …/actions/runners/{id}`.
    DeleteRunner,
    /// `PUT …/actions/runners/{id}/labels`.
    SetLabels,
    /// `GET …/actions/runners/downloads`.
    RunnerDownloads,
    /// `GET /repos/{owner}/{repo}/actions/runs`.
    ListRuns,
    /// `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs`.
    ListRunJobs,
}

/// How an injected failure answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitHubFailure {
    /// This HTTP status, with GitHub's error body.
    Status(u16),
    /// No answer for 40 s (past any sane client timeout), then the ordinary one.
    Hang,
    /// A secondary rate limit (docs.github.com, "Rate limits for the REST API": 403 or 429,
    /// its message, and `retry-after` in seconds).
    RateLimited {
        /// 403 or 429.
        status: u16,
        /// The `retry-after` header.
        retry_after: u64,
    },
}

/// What the token a request carries may do, as GitHub judges it (docs.github.com, "REST API
/// endpoints for self-hosted runners": the runner endpoints need the repository's
/// Administration permission, or the organization's Self-hosted runners permission; reading
/// them needs read, the rest write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPermission {
    /// Read and write: everything.
    Write,
    /// Read only: listing answers, the rest is 403.
    Read,
}

/// A failure injected into one route: on its first call only, or on every call until
/// [`FakeGitHub::clear_faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GitHubFault {
    /// Where.
    pub route: GitHubRoute,
    /// How.
    pub failure: GitHubFailure,
    /// Every call, not just the first.
    pub every_call: bool,
}

#[derive(Default)]
struct State {
    runners: Vec<FakeRunner>,
    next_id: u64,
    online_on_register: bool,
    jit_requests: usize,
    relabels: usize,
    tokens_issued: usize,
    /// Every `encoded_jit_config` issued.
    jit_configs: Vec<String>,
    /// The answer to "list runner applications".
    downloads: Value,
    /// How long a registration or remove token lasts (GitHub: one hour).
    token_lifetime: std::time::Duration,
    /// Faults, each with how many times its route was called.
    faults: Vec<(GitHubFault, u32)>,
    /// When each runner that reports itself (a fake runner on a simulated machine) last did.
    seen: std::collections::HashMap<u64, std::time::Instant>,
    /// Until when each busy runner stays busy.
    busy_until: std::collections::HashMap<u64, std::time::Instant>,
    /// The queued workflows' jobs, in the order given.
    jobs: Vec<Job>,
    /// Job and run ids handed out so far.
    next_job_id: u64,
    next_run_id: u64,
    /// `workflow_job` deliveries not yet sent ([`FakeGitHub::deliver_webhooks`]).
    outbox: Vec<webhooks::Event>,
    /// Whether the fake runs jobs on online runners itself, each taking its `seconds` divided
    /// by this scale ([`FakeGitHub::run_jobs_itself`]).
    runs_jobs: Option<f64>,
    /// Every registration token issued, with when it expires.
    registration_tokens: Vec<(String, std::time::Instant)>,
    /// How many deletes were refused because the runner was busy.
    busy_refusals: usize,
    /// The only token accepted, and what it may do (none set: any token, everything).
    token: Option<(String, TokenPermission)>,
    /// A registered GitHub App: then only its installation tokens are accepted.
    app: Option<app::FakeApp>,
}

/// How long a reporting runner counts as online after its last report: a runner whose machine
/// died goes offline, as GitHub sees its session end.
const ONLINE_FOR: std::time::Duration = std::time::Duration::from_secs(3);

/// How long a job stays assigned to a runner that stopped reporting before GitHub gives up on
/// it, fails the job and lets the runner go ("The self-hosted runner: NAME lost communication
/// with the server", as GitHub reports a runner whose machine vanished mid-job). Until then
/// the runner is busy, and deleting it is refused. The real runner renews its job's lock every
/// 60 s (actions/runner src/Runner.Listener/JobDispatcher.cs: RenewJobRequestAsync), so GitHub
/// notices after minutes; the fake, in real seconds, after a few.
const LOST_AFTER: std::time::Duration = std::time::Duration::from_secs(6);

/// The labels `config.sh` gives a runner unless told `--no-default-labels` (actions/runner
/// src/Runner.Listener/Configuration/ConfigurationManager.cs: `self-hosted`, the OS, the
/// architecture).
const DEFAULT_LABELS: [&str; 3] = ["self-hosted", "Linux", "X64"];

impl State {
    /// The id of the runner called `name`, registered (offline) if there is none.
    fn runner_named(&mut self, name: &str) -> u64 {
        if let Some(runner) = self.runners.iter().find(|r| r.name == name) {
            return runner.id;
        }
        self.next_id += 1;
        self.runners.push(FakeRunner {
            id: self.next_id,
            name: name.to_owned(),
            labels: Vec::new(),
            online: false,
            busy: false,
        });
        self.next_id
    }
    /// The runners as GitHub would list them now.
    fn listed(&self) -> Vec<FakeRunner> {
        self.runners
            .iter()
            .map(|r| FakeRunner {
                online: r.online
                    || self
                        .seen
                        .get(&r.id)
                        .is_some_and(|at| at.elapsed() < ONLINE_FOR),
                busy: self.is_busy(r.id),
                ..r.clone()
            })
            .collect()
    }

    fn is_busy(&self, id: u64) -> bool {
        let running = self.runners.iter().find(|r| r.id == id).is_some_and(|r| {
            self.jobs
                .iter()
                .any(|job| job.status == JobStatus::Running(r.name.clone()))
        });
        running
            || self
                .busy_until
                .get(&id)
                .is_some_and(|until| std::time::Instant::now() < *until)
    }

    /// The runner a report names (`<canary>-jit-<id>` from a JIT runner's key, `name:<name>`
    /// from a configured one), if it is registered.
    fn reporter(&self, report: &str) -> Option<u64> {
        let id = match report.strip_prefix("name:") {
            Some(name) => self.runners.iter().find(|r| r.name == name).map(|r| r.id),
            None => report
                .rsplit_once("-jit-")
                .and_then(|(_, id)| id.parse::<u64>().ok()),
        };
        id.filter(|id| self.runners.iter().any(|r| r.id == *id))
    }

    /// Moves the workflow on: jobs whose needs all succeeded are queued, jobs after a failure
    /// are skipped, and jobs on runners that stopped reporting fail.
    fn advance(&mut self) {
        let lost: Vec<String> = self
            .runners
            .iter()
            .filter(|r| {
                !r.online
                    && self
                        .seen
                        .get(&r.id)
                        .is_none_or(|at| at.elapsed() >= LOST_AFTER)
            })
            .map(|r| r.name.clone())
            .collect();
        let gone: Vec<usize> = self
            .jobs
            .iter()
            .enumerate()
            .filter_map(|(i, job)| match &job.status {
                JobStatus::Running(name)
                    if lost.contains(name) || !self.runners.iter().any(|r| &r.name == name) =>
                {
                    Some(i)
                }
                _ => None,
            })
            .collect();
        for i in gone {
            if let JobStatus::Running(name) = self.jobs[i].status.clone() {
                self.set_status(
                    i,
                    JobStatus::Done {
                        runner: name,
                        succeeded: false,
                    },
                );
            }
        }
        self.run_jobs();
        loop {
            let outcome = |state: &State, run: u64, name: &str| {
                state
                    .jobs
                    .iter()
                    .find(|job| job.run_id == run && job.spec.name == name)
                    .map(|job| job.status.clone())
            };
            let mut changed = false;
            for i in 0..self.jobs.len() {
                if self.jobs[i].status != JobStatus::Waiting {
                    continue;
                }
                let run = self.jobs[i].run_id;
                let needs: Vec<Option<JobStatus>> = self.jobs[i]
                    .spec
                    .needs
                    .iter()
                    .map(|n| outcome(self, run, n))
                    .collect();
                let next = if needs.iter().all(|s| {
                    matches!(
                        s,
                        Some(JobStatus::Done {
                            succeeded: true,
                            ..
                        })
                    )
                }) {
                    Some(JobStatus::Queued)
                } else if needs.iter().any(|s| {
                    matches!(
                        s,
                        Some(
                            JobStatus::Done {
                                succeeded: false,
                                ..
                            } | JobStatus::Skipped
                        )
                    )
                }) {
                    Some(JobStatus::Skipped)
                } else {
                    None
                };
                if let Some(next) = next {
                    self.set_status(i, next);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// The failure this call of `route` suffers, if any.
    fn injected(&mut self, route: GitHubRoute) -> Option<GitHubFailure> {
        let mut hit = None;
        for (fault, calls) in self.faults.iter_mut().filter(|(f, _)| f.route == route) {
            *calls += 1;
            if fault.every_call || *calls == 1 {
                hit = hit.or(Some(fault.failure));
            }
        }
        hit
    }
}

/// The fake. Cloning shares its state.
#[derive(Clone)]
pub struct FakeGitHub {
    state: Arc<Mutex<State>>,
    server: Arc<MockServer>,
    canary: String,
}

const SCOPE: &str = r"^/(repos/[^/]+/[^/]+|orgs/[^/]+)/actions/runners";

impl FakeGitHub {
    /// Starts a fake on a free port. With `online_on_register`, a registered runner is
    /// online at once (as if its machine booted instantly); otherwise it stays offline.
    pub async fn start(online_on_register: bool) -> FakeGitHub {
        let canary: String = (0..12).map(|_| fastrand::alphanumeric()).collect();
        let fake = FakeGitHub {
            state: Arc::new(Mutex::new(State {
                online_on_register,
                next_id: 100,
                downloads: default_downloads(),
                token_lifetime: std::time::Duration::from_secs(3600),
                ..State::default()
            })),
            server: Arc::new(MockServer::start().await),
            canary: format!("GHCANARY{canary}"),
        };
        let routes: [(&str, String, Handler); 16] = [
            // Not GitHub's: `config.sh` registering a runner (what the real one does through
            // GitHub's runner-registration service with the registration token).
            ("POST", "^/_fake/configure$".to_owned(), Handler::Configure),
            // Not GitHub's: a runner asking for a job (the real one long-polls GitHub's
            // broker for messages: actions/runner src/Runner.Listener/MessageListener.cs).
            ("POST", "^/_fake/acquire$".to_owned(), Handler::Acquire),
            // Not GitHub's: a runner reporting its job's result (body: report, then
            // `<job> Succeeded|Failed`).
            ("POST", "^/_fake/finish$".to_owned(), Handler::Finish),
            // Not GitHub's: what a fake runner calls when it starts (body: its JIT config).
            ("POST", "^/_fake/online$".to_owned(), Handler::Online),
            // Not GitHub's: a JIT runner's one job is done (body: as for `online`).
            ("POST", "^/_fake/job-done$".to_owned(), Handler::JobDone),
            ("POST", format!("{SCOPE}/generate-jitconfig$"), Handler::Jit),
            (
                "POST",
                format!("{SCOPE}/registration-token$"),
                Handler::Token("registration"),
            ),
            (
                "POST",
                format!("{SCOPE}/remove-token$"),
                Handler::Token("remove"),
            ),
            ("GET", format!("{SCOPE}$"), Handler::List),
            ("GET", format!("{SCOPE}/downloads$"), Handler::Downloads),
            (
                "GET",
                r"^/orgs/[^/]+/actions/runner-groups/[0-9]+$".to_owned(),
                Handler::RunnerGroup,
            ),
            ("DELETE", format!("{SCOPE}/[0-9]+$"), Handler::Delete),
            ("PUT", format!("{SCOPE}/[0-9]+/labels$"), Handler::SetLabels),
            (
                "GET",
                r"^/repos/[^/]+/[^/]+/actions/runs$".to_owned(),
                Handler::Runs,
            ),
            (
                "GET",
                r"^/repos/[^/]+/[^/]+/actions/runs/[0-9]+/jobs$".to_owned(),
                Handler::RunJobs,
            ),
            (
                "POST",
                r"^/app/installations/[0-9]+/access_tokens$".to_owned(),
                Handler::AppToken,
            ),
        ];
        for (verb, pattern, handler) in routes {
            Mock::given(method(verb))
                .and(path_regex(pattern))
                .respond_with(Route {
                    fake: fake.clone(),
                    handler,
                })
                .mount(&fake.server)
                .await;
        }
        fake
    }

    /// The base URL (`GITHUB_API_URL`).
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The text every token and JIT configuration this fake issues contains.
    pub fn canary(&self) -> &str {
        &self.canary
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The registered runners.
    pub fn runners(&self) -> Vec<FakeRunner> {
        self.lock().listed()
    }

    /// The registered runners' names.
    pub fn names(&self) -> Vec<String> {
        self.lock().runners.iter().map(|r| r.name.clone()).collect()
    }

    /// Serves `applications` as the runner GitHub offers ("list runner applications": an
    /// array of `{os, architecture, download_url, filename, sha256_checksum}`).
    pub fn serve_runner(&self, applications: Value) {
        self.lock().downloads = applications;
    }

    /// Makes runner `id` busy for `how_long`, as GitHub keeps a runner that was killed
    /// mid-job busy until it notices.
    pub fn busy_for(&self, id: u64, how_long: std::time::Duration) {
        self.lock()
            .busy_until
            .insert(id, std::time::Instant::now() + how_long);
    }

    /// Makes the tokens issued from now on last `lifetime` (GitHub's: one hour).
    pub fn token_lifetime(&self, lifetime: std::time::Duration) {
        self.lock().token_lifetime = lifetime;
    }

    /// Injects `fault`.
    pub fn inject(&self, fault: GitHubFault) {
        self.lock().faults.push((fault, 0));
    }

    /// Ends every injected fault (the outage is over).
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// How many registration and remove tokens were issued.
    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    /// The runner listings asked for so far: (by name, `?name=`; whole, page by page).
    pub async fn runner_lookups(&self) -> (usize, usize) {
        let requests = self.server.received_requests().await.unwrap_or_default();
        let listings = requests
            .iter()
            .filter(|r| r.method.as_str() == "GET" && r.url.path().ends_with("/actions/runners"));
        let (mut by_name, mut whole) = (0, 0);
        for request in listings {
            if request.url.query_pairs().any(|(k, _)| k == "name") {
                by_name += 1;
            } else {
                whole += 1;
            }
        }
        (by_name, whole)
    }

    /// How many times a runner's labels were replaced.
    pub fn relabels(&self) -> usize {
        self.lock().relabels
    }

    /// How many JIT configurations were requested.
    pub fn jit_requests(&self) -> usize {
        self.lock().jit_requests
    }

    /// Every `encoded_jit_config` this fake issued: secrets too, in their encoded form.
    pub fn jit_configs(&self) -> Vec<String> {
        self.lock().jit_configs.clone()
    }

    /// Queues a workflow run's jobs: each is queued for a runner once the jobs it needs
    /// succeeded, as GitHub does when the run starts.
    pub fn queue_workflow(&self, jobs: Vec<FakeJob>) {
        let mut state = self.lock();
        state.next_run_id += 1;
        let run_id = 9000 + state.next_run_id;
        for spec in jobs {
            state.next_job_id += 1;
            let id = 70_000 + state.next_job_id;
            state.jobs.push(Job {
                spec,
                status: JobStatus::Waiting,
                id,
                run_id,
                created_at: jiff::Timestamp::now(),
                started: None,
            });
        }
        state.advance();
    }

    /// The workflows' jobs and where each is.
    pub fn jobs(&self) -> Vec<(FakeJob, JobStatus)> {
        let mut state = self.lock();
        state.advance();
        state
            .jobs
            .iter()
            .map(|job| (job.spec.clone(), job.status.clone()))
            .collect()
    }

    /// From now on, accepts only `token` (`Authorization: Bearer` or `token`), allowed
    /// `permission`: another token, or none, is 401 "Bad credentials"; a write with a
    /// read-only token is 403.
    pub fn require_token(&self, token: &str, permission: TokenPermission) {
        self.lock().token = Some((token.to_owned(), permission));
    }

    /// How many deletes were refused (422) because the runner was busy with a job.
    pub fn busy_refusals(&self) -> usize {
        self.lock().busy_refusals
    }

    /// Registers a runner directly (as a reusable runner's `config.sh` would).
    pub fn register(&self, name: &str, online: bool) -> u64 {
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.runners.push(FakeRunner {
            id,
            name: name.to_owned(),
            labels: Vec::new(),
            online,
            busy: false,
        });
        id
    }
}

#[derive(Clone, Copy)]
enum Handler {
    Configure,
    Acquire,
    Finish,
    Online,
    JobDone,
    Jit,
    Token(&'static str),
    List,
    Delete,
    SetLabels,
    Downloads,
    RunnerGroup,
    Runs,
    RunJobs,
    AppToken,
}

struct Route {
    fake: FakeGitHub,
    handler: Handler,
}

fn runner_json(runner: &FakeRunner) -> Value {
    json!({
        "id": runner.id,
        "name": runner.name,
        "os": "Linux",
        "status": if runner.online { "online" } else { "offline" },
        "busy": runner.busy,
        "labels": runner.labels.iter().enumerate().map(|(i, name)| json!({"id": i + 1, "name": name, "type": "custom"})).collect::<Vec<_>>(),
    })
}

fn message(status: u16, text: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "message": text,
        "documentation_url": "https://docs.github.com/rest",
    }))
}

/// A JIT configuration in GitHub's format, as the runner decodes it (actions/runner
/// src/Runner.Listener/Runner.cs): base64 of a JSON map from the files the runner keeps in its
/// root to their base64 contents. Its secret, `<canary>-jit-<id>`, is the RSA key's private
/// exponent, by which a fake runner reports itself online.
fn encoded_jit_config(canary: &str, runner: &FakeRunner) -> String {
    use base64::Engine as _;
    let b64 = |value: &Value| base64::engine::general_purpose::STANDARD.encode(value.to_string());
    let files = json!({
        ".runner": b64(&json!({
            "agentId": runner.id,
            "agentName": runner.name,
            "poolId": 1,
            "poolName": "Default",
            "serverUrl": "https://pipelines.actions.githubusercontent.com/fake",
            "gitHubUrl": "https://github.com/octo/gpu",
            "workFolder": "_work",
            "ephemeral": true,
        })),
        ".credentials": b64(&json!({
            "scheme": "OAuth",
            "data": {"clientId": format!("fake-client-{}", runner.id), "authorizationUrl": "https://fake.invalid/token"},
        })),
        ".credentials_rsaparams": b64(&json!({
            "d": format!("{canary}-jit-{}", runner.id),
            "modulus": "fake",
            "exponent": "AQAB",
        })),
    });
    base64::engine::general_purpose::STANDARD.encode(files.to_string())
}

/// `config.sh` registering a runner. The body: `key=value` lines (`token`, `name`, `labels`
/// comma-separated, `no-default-labels`, `runnergroup`). The token must be a registration
/// token this fake issued that has not expired (docs.github.com, "Create a registration token
/// for a repository": it expires after one hour); the real runner reports a refused one as
/// "Http response code: NotFound from 'POST …/actions/runner-registration'".
fn configure(state: &mut State, body: &str) -> ResponseTemplate {
    let field = |key: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let token = field("token");
    let valid = state
        .registration_tokens
        .iter()
        .any(|(issued, until)| *issued == token && std::time::Instant::now() < *until);
    if !valid {
        return message(404, "Not Found");
    }
    let name = field("name");
    let mut labels: Vec<String> = if field("no-default-labels") == "true" {
        Vec::new()
    } else {
        DEFAULT_LABELS.iter().map(|l| (*l).to_owned()).collect()
    };
    labels.extend(
        field("labels")
            .split(',')
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    let id = state.runner_named(&name);
    if let Some(runner) = state.runners.iter_mut().find(|r| r.id == id) {
        runner.labels = labels;
    }
    ResponseTemplate::new(201).set_body_json(json!({"id": id, "name": name}))
}

/// The job GitHub sends runner `id` now, if any: the first queued job whose `runs-on` labels
/// the runner all carries, when the runner is idle (docs.github.com, "Using self-hosted
/// runners in a workflow", routing: a job goes to an online, idle runner whose labels match
/// all of its `runs-on`; otherwise it stays queued until one comes).
fn acquire(state: &mut State, id: u64) -> ResponseTemplate {
    let Some(runner) = state.runners.iter().find(|r| r.id == id).cloned() else {
        return message(404, "no such runner");
    };
    if state.is_busy(id) {
        return ResponseTemplate::new(204);
    }
    match state.next_job_for(&runner) {
        Some(i) => {
            state.set_status(i, JobStatus::Running(runner.name.clone()));
            let job = &state.jobs[i].spec;
            ResponseTemplate::new(200).set_body_string(format!("{} {}", job.name, job.seconds))
        }
        None => ResponseTemplate::new(204),
    }
}

/// What github.com answers "list runner applications" with (docs.github.com, REST, "List
/// runner applications for a repository"): a package per OS and CPU, with its SHA-256. The
/// URLs lead nowhere: machines that download them are given a test's own (the test crate's
/// `FakeInternet`).
fn default_downloads() -> Value {
    let version = RUNNER_VERSION;
    let app = |os: &str, arch: &str| {
        let filename = format!("actions-runner-{os}-{arch}-{version}.tar.gz");
        json!({
            "os": os,
            "architecture": arch,
            "download_url": format!("https://github.invalid/actions/runner/releases/download/v{version}/{filename}"),
            "filename": filename,
            "sha256_checksum": "0".repeat(64),
        })
    };
    json!([
        app("osx", "x64"),
        app("linux", "x64"),
        app("linux", "arm64"),
        app("win", "x64")
    ])
}

impl Route {
    fn github_route(&self) -> Option<GitHubRoute> {
        match self.handler {
            Handler::Jit => Some(GitHubRoute::JitConfig),
            Handler::Token("registration") => Some(GitHubRoute::RegistrationToken),
            Handler::Online
            | Handler::JobDone
            | Handler::Token(_)
            | Handler::RunnerGroup
            | Handler::Configure
            | Handler::Acquire
            | Handler::Finish
            | Handler::AppToken => None,
            Handler::List => Some(GitHubRoute::ListRunners),
            Handler::Delete => Some(GitHubRoute::DeleteRunner),
            Handler::SetLabels => Some(GitHubRoute::SetLabels),
            Handler::Downloads => Some(GitHubRoute::RunnerDownloads),
            Handler::Runs => Some(GitHubRoute::ListRuns),
            Handler::RunJobs => Some(GitHubRoute::ListRunJobs),
        }
    }
}

impl Route {
    /// Whether this is one of GitHub's own endpoints (not what a fake runner calls).
    fn is_githubs(&self) -> bool {
        !matches!(
            self.handler,
            Handler::Online
                | Handler::JobDone
                | Handler::Configure
                | Handler::Acquire
                | Handler::Finish
        )
    }

    /// GitHub's refusal of `request` before it looks at what is asked, if it refuses.
    fn refusal(&self, state: &State, request: &Request) -> Option<ResponseTemplate> {
        // docs.github.com, "Getting started with the REST API": a request without a
        // User-Agent header is rejected.
        if !request.headers.contains_key("user-agent") {
            return Some(message(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
            ));
        }
        let sent = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("token "))
            });
        if let Some(app) = &state.app {
            // The token exchange carries a JWT, checked by its handler.
            let ok =
                matches!(self.handler, Handler::AppToken) || sent.is_some_and(|t| app.accepts(t));
            return (!ok).then(|| message(401, "Bad credentials"));
        }
        let (token, permission) = state.token.as_ref()?;
        if sent != Some(token.as_str()) {
            return Some(message(401, "Bad credentials"));
        }
        let write = request.method.as_str() != "GET";
        (write && *permission == TokenPermission::Read)
            .then(|| message(403, "Resource not accessible by personal access token"))
    }
}

impl Respond for Route {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.fake.lock();
        // Jobs move on and lost runners are let go as time passes, whoever asks.
        state.advance();
        if self.is_githubs()
            && let Some(refusal) = self.refusal(&state, request)
        {
            return refusal;
        }
        let injected = self.github_route().and_then(|route| state.injected(route));
        let delay = match injected {
            Some(GitHubFailure::RateLimited {
                status,
                retry_after,
            }) => {
                return message(
                    status,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                )
                .insert_header("retry-after", retry_after.to_string().as_str());
            }
            Some(GitHubFailure::Status(status)) => {
                let text = match status {
                    401 => "Bad credentials",
                    403 => "Resource not accessible by personal access token",
                    422 => "Validation Failed",
                    _ => "Server Error",
                };
                return message(status, text);
            }
            Some(GitHubFailure::Hang) => std::time::Duration::from_secs(40),
            None => std::time::Duration::ZERO,
        };
        self.answer(&mut state, request).set_delay(delay)
    }
}

impl Route {
    fn answer(&self, state: &mut State, request: &Request) -> ResponseTemplate {
        match self.handler {
            Handler::Configure => configure(state, &String::from_utf8_lossy(&request.body)),
            Handler::Acquire => {
                let report = String::from_utf8_lossy(&request.body).trim().to_owned();
                let Some(id) = state.reporter(&report) else {
                    return message(404, "no such runner");
                };
                state.seen.insert(id, std::time::Instant::now());
                state.advance();
                acquire(state, id)
            }
            Handler::Finish => finish(state, request),
            Handler::Online => report_online(state, request),
            Handler::JobDone => job_done(state, request),
            Handler::Jit => jit_config(state, request, &self.fake.canary),
            Handler::Token(kind) => token(state, &self.fake.canary, kind),
            Handler::RunnerGroup => runner_group(request),
            Handler::Downloads => ResponseTemplate::new(200).set_body_json(state.downloads.clone()),
            Handler::Runs => webhooks::list_runs(state, request),
            Handler::AppToken => app::access_token(state, &self.fake.canary, request),
            Handler::RunJobs => webhooks::list_run_jobs(state, request),
            Handler::List => list_runners(state, request),
            Handler::Delete => delete_runner(state, request),
            Handler::SetLabels => set_labels(state, request),
        }
    }
}

/// A runner reporting its job's result (body: its report, then `<job> Succeeded|Failed`).
fn finish(state: &mut State, request: &Request) -> ResponseTemplate {
    let body = String::from_utf8_lossy(&request.body).into_owned();
    let (report, result) = body.split_once('\n').unwrap_or((&body, ""));
    let Some(id) = state.reporter(report.trim()) else {
        return message(404, "no such runner");
    };
    let runner = state
        .runners
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let mut words = result.split_whitespace();
    let (job, succeeded) = (words.next(), words.next() == Some("Succeeded"));
    let finished: Vec<usize> = state
        .jobs
        .iter()
        .enumerate()
        .filter(|(_, queued)| {
            Some(queued.spec.name.as_str()) == job
                && queued.status == JobStatus::Running(runner.clone())
        })
        .map(|(i, _)| i)
        .collect();
    for i in finished {
        state.set_status(
            i,
            JobStatus::Done {
                runner: runner.clone(),
                succeeded,
            },
        );
    }
    state.advance();
    ResponseTemplate::new(204)
}

/// A fake runner reporting itself online (body: its JIT secret, or `name:<name>`).
fn report_online(state: &mut State, request: &Request) -> ResponseTemplate {
    // `<canary>-jit-<id>`, the secret of a JIT configuration this fake issued, or
    // `name:<name>` from a runner
    // `config.sh` registered (with a registration token), registered at its first
    // report.
    let report = String::from_utf8_lossy(&request.body).trim().to_owned();
    let id = match report.strip_prefix("name:") {
        Some(name) => Some(state.runner_named(name)),
        None => report
            .rsplit("-jit-")
            .next()
            .and_then(|id| id.parse::<u64>().ok()),
    };
    match id.filter(|id| state.runners.iter().any(|r| r.id == *id)) {
        Some(id) => {
            state.seen.insert(id, std::time::Instant::now());
            ResponseTemplate::new(204)
        }
        None => message(404, "no runner has this JIT configuration"),
    }
}

/// A JIT runner's one job is done (body: as for `online`).
fn job_done(state: &mut State, request: &Request) -> ResponseTemplate {
    // docs.github.com, "Autoscaling with self-hosted runners" (ephemeral runners):
    // GitHub automatically unregisters the runner after it has processed one job.
    let report = String::from_utf8_lossy(&request.body).trim().to_owned();
    let id = report
        .rsplit_once("-jit-")
        .and_then(|(_, id)| id.parse::<u64>().ok());
    state.runners.retain(|r| Some(r.id) != id);
    ResponseTemplate::new(204)
}

/// `POST …/actions/runners/generate-jitconfig`.
fn jit_config(state: &mut State, request: &Request, canary: &str) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let Some(name) = body["name"].as_str().map(str::to_owned) else {
        return message(422, "Invalid request. \"name\" wasn't supplied.");
    };
    state.jit_requests += 1;
    if state.runners.iter().any(|r| r.name == name) {
        return message(
            409,
            "Already exists - A runner with the same name already exists.",
        );
    }
    state.next_id += 1;
    let runner = FakeRunner {
        id: state.next_id,
        name,
        labels: body["labels"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        online: state.online_on_register,
        busy: false,
    };
    state.runners.push(runner.clone());
    let config = encoded_jit_config(canary, &runner);
    state.jit_configs.push(config.clone());
    ResponseTemplate::new(201).set_body_json(json!({
        "runner": runner_json(&FakeRunner { online: false, ..runner }),
        "encoded_jit_config": config,
    }))
}

/// `POST …/actions/runners/registration-token` or `remove-token`.
fn token(state: &mut State, canary: &str, kind: &str) -> ResponseTemplate {
    state.tokens_issued += 1;
    let token = format!("{}-{kind}-{}", canary, state.tokens_issued);
    if kind == "registration" {
        let until = std::time::Instant::now() + state.token_lifetime;
        state.registration_tokens.push((token.clone(), until));
    }
    // docs.github.com, "Create a registration token for a repository": "The token
    // expires after one hour."
    let expires = expiry_after(state.token_lifetime);
    ResponseTemplate::new(201).set_body_json(json!({
        "token": token,
        "expires_at": expires.to_string(),
    }))
}

/// `GET /orgs/{org}/actions/runner-groups/{id}`.
fn runner_group(request: &Request) -> ResponseTemplate {
    // docs.github.com, "Get a self-hosted runner group for an organization".
    let id = request
        .url
        .path()
        .rsplit('/')
        .next()
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or_default();
    let name = if id == 1 {
        "Default".to_owned()
    } else {
        format!("group-{id}")
    };
    ResponseTemplate::new(200)
        .set_body_json(json!({"id": id, "name": name, "visibility": "all", "default": id == 1}))
}

/// `GET …/actions/runners`.
fn list_runners(state: &mut State, request: &Request) -> ResponseTemplate {
    // docs.github.com, "List self-hosted runners for a repository": `name` filters
    // by exact name; `per_page` defaults to 30, at most 100; `page` from 1; a
    // `Link` header names the next page.
    let query = |key: &str| {
        request
            .url
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let per_page = query("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let name = query("name");
    let matching: Vec<Value> = state
        .listed()
        .iter()
        .filter(|r| name.as_ref().is_none_or(|n| &r.name == n))
        .map(runner_json)
        .collect();
    let total = matching.len();
    let runners: Vec<Value> = matching
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let mut answer =
        ResponseTemplate::new(200).set_body_json(json!({"total_count": total, "runners": runners}));
    if page * per_page < total {
        let mut next = request.url.clone();
        next.query_pairs_mut()
            .clear()
            .extend_pairs(request.url.query_pairs().filter(|(k, _)| k != "page"))
            .append_pair("page", &(page + 1).to_string());
        answer = answer.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
    }
    answer
}

/// `DELETE …/actions/runners/{id}`.
/// `PUT …/actions/runners/{id}/labels` (docs.github.com, "Set custom labels for a self-hosted
/// runner for a repository"): replaces the runner's custom labels; 422 without `labels`, 404
/// for a runner that is not there; answers the labels it has now.
fn set_labels(state: &mut State, request: &Request) -> ResponseTemplate {
    let id: Option<u64> = request
        .url
        .path()
        .rsplit('/')
        .nth(1)
        .and_then(|s| s.parse().ok());
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let Some(labels) = body["labels"].as_array() else {
        return message(
            422,
            "Invalid request.\n\nInvalid input: object is missing required key: labels.",
        );
    };
    let labels: Vec<String> = labels
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    state.relabels += 1;
    let Some(runner) = state.runners.iter_mut().find(|r| Some(r.id) == id) else {
        return message(404, "Not Found");
    };
    runner.labels = labels;
    let answer = runner_json(runner);
    ResponseTemplate::new(200).set_body_json(json!({
        "total_count": runner.labels.len(),
        "labels": answer["labels"],
    }))
}

fn delete_runner(state: &mut State, request: &Request) -> ResponseTemplate {
    let id: Option<u64> = request
        .url
        .path()
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok());
    // GitHub refuses to delete a runner that is still busy with a job, for a while
    // after its machine is gone (reported by ec2-github-runner's users:
    // machulav/ec2-github-runner issue #23, "the runner was still busy and could
    // not be removed", fixed there by retrying).
    if let Some(busy) = id.filter(|id| state.is_busy(*id)) {
        state.busy_refusals += 1;
        let name = state
            .runners
            .iter()
            .find(|r| r.id == busy)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        return message(
            422,
            &format!("Bad request - Runner \"{name}\" is still running a job\""),
        );
    }
    let before = state.runners.len();
    state.runners.retain(|r| Some(r.id) != id);
    if state.runners.len() < before {
        ResponseTemplate::new(204)
    } else {
        message(404, "Not Found")
    }
}

/// When something issued now that lasts `lifetime` expires, to the second, as GitHub writes
/// `expires_at`.
fn expiry_after(lifetime: std::time::Duration) -> jiff::Timestamp {
    let lifetime = jiff::SignedDuration::try_from(lifetime).unwrap_or(jiff::SignedDuration::ZERO);
    jiff::Timestamp::now()
        .checked_add(lifetime)
        .unwrap_or(jiff::Timestamp::MAX)
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::MAX)
}
