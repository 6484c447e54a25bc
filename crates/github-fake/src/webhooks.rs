//! The fake's workflow side, for the controller (`lambda-gha serve`): `workflow_job`
//! deliveries, signed as GitHub signs them and sent to a webhook URL (some dropped, some sent
//! twice, when asked); the REST listing of workflow runs and their jobs; and, when asked, the
//! fake running jobs on online runners itself, for harnesses whose machines run no runner.
//!
//! Shapes are GitHub's: the delivery's headers and payload from docs.github.com, "Webhook
//! events and payloads" (`workflow_job`) and "Validating webhook deliveries"; the listings from
//! "REST API endpoints for workflow runs" ("List workflow runs for a repository": `status`
//! filter, `workflow_runs`) and "REST API endpoints for workflow jobs" ("List jobs for a
//! workflow run": `jobs`, each with `labels`, `status`, `runner_name`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::{Request, ResponseTemplate};

use super::{FakeGitHub, FakeRunner, JobStatus, State};

/// The repository every job of the fake belongs to.
pub const REPOSITORY: &str = "octo/gpu";

/// One delivery waiting to be sent.
#[derive(Debug, Clone)]
pub(super) struct Event {
    /// `X-GitHub-Delivery`.
    id: String,
    /// The payload.
    body: String,
}

/// How deliveries are made.
#[derive(Debug, Clone, Copy)]
pub struct WebhookDelivery {
    /// The share of deliveries never sent (GitHub does not redeliver on its own:
    /// docs.github.com, "Handling failed webhook deliveries").
    pub drop_fraction: f64,
    /// How many extra times each delivery is sent, with the same delivery id (a redelivery).
    pub duplicates: u32,
    /// The seed of the drop decisions.
    pub seed: u64,
}

impl Default for WebhookDelivery {
    fn default() -> Self {
        WebhookDelivery {
            drop_fraction: 0.0,
            duplicates: 0,
            seed: 1,
        }
    }
}

/// The sending task and what it did.
#[derive(Clone)]
pub struct Deliveries {
    sent: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    refused: Arc<std::sync::Mutex<Vec<(u16, String)>>>,
    stop: Arc<AtomicBool>,
    /// Every delivery made, with its headers, for replays.
    made: Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

impl Deliveries {
    /// Deliveries not started yet.
    pub fn idle() -> Deliveries {
        Deliveries {
            sent: Arc::default(),
            dropped: Arc::default(),
            refused: Arc::default(),
            stop: Arc::default(),
            made: Arc::default(),
        }
    }

    /// Deliveries sent (duplicates included).
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    /// Deliveries dropped on purpose.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Deliveries the receiver answered with anything but 2xx: status and body.
    pub fn refused(&self) -> Vec<(u16, String)> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every delivery sent: its id, signature header and body.
    pub fn made(&self) -> Vec<(String, String, String)> {
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops sending (the outbox keeps filling).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub signs a delivery.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let mut text = String::from("sha256=");
    for byte in tag.as_ref() {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Sends one webhook-style POST to `url` (`http://host:port/path`) and returns the status and
/// body. A plain HTTP/1.1 exchange on loopback, as GitHub's sender makes it.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    exchange("POST", url, headers, body).await
}

/// `GET url`: the status and body.
pub async fn get(url: &str) -> Result<(u16, String), String> {
    exchange("GET", url, &[], b"").await
}

async fn exchange(
    verb: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not http://"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| format!("connect {host}: {e}"))?;
    let mut head = format!(
        "{verb} /{path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: GitHub-Hookshot/fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // A receiver may answer (413) before reading a large body and close: what it said counts.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

impl State {
    /// Moves job `i` to `status`, and queues the delivery GitHub would send for it.
    pub(super) fn set_status(&mut self, i: usize, status: JobStatus) {
        if self.jobs[i].status == status {
            return;
        }
        self.jobs[i].status = status;
        let job = &self.jobs[i];
        let (action, runner, conclusion) = match &job.status {
            JobStatus::Waiting => return,
            JobStatus::Queued => ("queued", None, None),
            JobStatus::Running(runner) => ("in_progress", Some(runner.clone()), None),
            JobStatus::Done { runner, succeeded } => (
                "completed",
                Some(runner.clone()),
                Some(if *succeeded { "success" } else { "failure" }),
            ),
            JobStatus::Skipped => ("completed", None, Some("skipped")),
            JobStatus::Cancelled => ("completed", None, Some("cancelled")),
        };
        let runner_id = runner
            .as_ref()
            .and_then(|name| self.runners.iter().find(|r| &r.name == name))
            .map(|r| r.id);
        let status_word = match action {
            "queued" => "queued",
            "in_progress" => "in_progress",
            _ => "completed",
        };
        let (owner, repo) = REPOSITORY.split_once('/').unwrap_or(("octo", "gpu"));
        let body = json!({
            "action": action,
            "workflow_job": {
                "id": job.id,
                "run_id": job.run_id,
                "run_attempt": 1,
                "workflow_name": "ci",
                "head_branch": "main",
                "name": job.spec.name,
                "status": status_word,
                "conclusion": conclusion,
                "created_at": job.created_at.to_string(),
                "labels": job.spec.runs_on,
                "runner_id": runner_id,
                "runner_name": runner,
                "runner_group_id": runner_id.map(|_| 1),
                "runner_group_name": runner_id.map(|_| "Default"),
            },
            "repository": {"id": 1, "name": repo, "full_name": REPOSITORY, "owner": {"login": owner}},
            "sender": {"login": owner},
        });
        let id = format!(
            "{:08x}-{:04x}-fake-{}-{action}",
            fastrand::u32(..),
            fastrand::u16(..),
            job.id
        );
        self.outbox.push(Event {
            id,
            body: body.to_string(),
        });
    }

    /// The first queued job whose `runs-on` labels `runner` all carries (GitHub's routing,
    /// docs.github.com, "Using self-hosted runners in a workflow").
    pub(super) fn next_job_for(&self, runner: &FakeRunner) -> Option<usize> {
        self.jobs.iter().position(|job| {
            job.status == JobStatus::Queued
                && job
                    .spec
                    .runs_on
                    .iter()
                    .all(|l| runner.labels.iter().any(|own| own.eq_ignore_ascii_case(l)))
        })
    }

    /// When the fake runs jobs itself: finishes jobs whose time is up (their ephemeral
    /// runners are then removed, as GitHub removes a JIT runner after its job), and gives
    /// queued jobs to online, idle runners that match.
    pub(super) fn run_jobs(&mut self) {
        let Some(scale) = self.runs_jobs else {
            return;
        };
        let done: Vec<usize> = self
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, job)| {
                matches!(job.status, JobStatus::Running(_))
                    && job.started.is_some_and(|at| {
                        at.elapsed() >= Duration::from_secs_f64(f64::from(job.spec.seconds) / scale)
                    })
            })
            .map(|(i, _)| i)
            .collect();
        for i in done {
            if let JobStatus::Running(runner) = self.jobs[i].status.clone() {
                self.set_status(
                    i,
                    JobStatus::Done {
                        runner: runner.clone(),
                        succeeded: true,
                    },
                );
                self.runners.retain(|r| r.name != runner);
            }
        }
        let idle: Vec<FakeRunner> = self
            .runners
            .iter()
            .filter(|r| r.online && !self.is_busy(r.id))
            .cloned()
            .collect();
        for runner in idle {
            if let Some(i) = self.next_job_for(&runner) {
                self.jobs[i].started = Some(Instant::now());
                self.set_status(i, JobStatus::Running(runner.name.clone()));
            }
        }
    }
}

impl FakeGitHub {
    /// From now on the fake runs jobs itself: an online, idle runner whose labels match gets
    /// the first queued job, which takes its `seconds` divided by `scale` of real time; then
    /// the job succeeds and the runner is removed (a JIT runner's one job).
    pub fn run_jobs_itself(&self, scale: f64) {
        self.lock().runs_jobs = Some(scale);
    }

    /// Marks every runner whose name starts with `prefix` online or offline, as a runner is
    /// once its machine booted, and is not once its machine is gone.
    pub fn set_online(&self, prefix: &str, online: bool) {
        let mut state = self.lock();
        for runner in state
            .runners
            .iter_mut()
            .filter(|r| r.name.starts_with(prefix))
        {
            runner.online = online;
        }
        state.advance();
    }

    /// Cancels the queued job called `name` (of the latest run that has one): it completes
    /// as `cancelled` without a runner.
    pub fn cancel(&self, name: &str) -> bool {
        let mut state = self.lock();
        let Some(i) = state
            .jobs
            .iter()
            .rposition(|job| job.spec.name == name && job.status == JobStatus::Queued)
        else {
            return false;
        };
        state.set_status(i, JobStatus::Cancelled);
        true
    }

    /// Plays the machines' part for GitHub until the task is aborted: every 25 ms, the runners
    /// of each machine `machines` names (by its launch label) are online while it is active
    /// and offline once it is not, as a runner's session with GitHub lives and dies with its
    /// machine; and the workflows move on.
    pub fn play_machines<F>(&self, machines: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Vec<(String, bool)> + Send + 'static,
    {
        let github = self.clone();
        tokio::spawn(async move {
            loop {
                for (label, active) in machines() {
                    github.set_online(&format!("{label}-"), active);
                }
                github.tick();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    }

    /// Moves the workflows on (jobs queued, run, finished) as time passes.
    pub fn tick(&self) {
        self.lock().advance();
    }

    /// Sends every `workflow_job` delivery from now on to `url`, signed with `secret`, as
    /// `how` says, until [`Deliveries::stop`]. Deliveries go one at a time, in order, as GitHub
    /// sends a hook's deliveries.
    pub fn deliver_webhooks(&self, url: &str, secret: &str, how: WebhookDelivery) -> Deliveries {
        let deliveries = Deliveries::idle();
        let fake = self.clone();
        let out = deliveries.clone();
        let url = url.to_owned();
        let secret = secret.to_owned();
        tokio::spawn(async move {
            let mut dice = fastrand::Rng::with_seed(how.seed);
            while !out.stop.load(Ordering::SeqCst) {
                let batch = {
                    let mut state = fake.lock();
                    state.advance();
                    std::mem::take(&mut state.outbox)
                };
                for event in batch {
                    if dice.f64() < how.drop_fraction {
                        out.dropped.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let sig = signature(&secret, event.body.as_bytes());
                    for _ in 0..=how.duplicates {
                        let headers = [
                            ("X-GitHub-Event", "workflow_job"),
                            ("X-GitHub-Delivery", event.id.as_str()),
                            ("X-GitHub-Hook-ID", "4242"),
                            ("X-Hub-Signature-256", sig.as_str()),
                        ];
                        match post(&url, &headers, event.body.as_bytes()).await {
                            Ok((status, _)) if (200..300).contains(&status) => {}
                            Ok((status, body)) => out
                                .refused
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((status, body)),
                            Err(error) => out
                                .refused
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push((0, error)),
                        }
                        out.sent.fetch_add(1, Ordering::SeqCst);
                    }
                    out.made
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((event.id.clone(), sig.clone(), event.body.clone()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        deliveries
    }
}

fn query(request: &Request, key: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// GitHub's status of a run: `queued` while no job of it has started, `in_progress` while
/// any job is queued or running after one started, `completed` when all are done.
fn run_status(state: &State, run: u64) -> &'static str {
    let jobs: Vec<&JobStatus> = state
        .jobs
        .iter()
        .filter(|j| j.run_id == run)
        .map(|j| &j.status)
        .collect();
    let finished = |s: &&JobStatus| {
        matches!(
            s,
            JobStatus::Done { .. } | JobStatus::Skipped | JobStatus::Cancelled
        )
    };
    if jobs.iter().all(finished) {
        "completed"
    } else if jobs
        .iter()
        .any(|s| matches!(s, JobStatus::Running(_)) || finished(s))
    {
        "in_progress"
    } else {
        "queued"
    }
}

/// "List workflow runs for a repository": newest first, `status` filters, pages.
pub(super) fn list_runs(state: &State, request: &Request) -> ResponseTemplate {
    let mut runs: Vec<u64> = state.jobs.iter().map(|j| j.run_id).collect();
    runs.sort_unstable();
    runs.dedup();
    runs.reverse();
    let wanted = query(request, "status");
    let matching: Vec<Value> = runs
        .into_iter()
        .filter(|run| {
            wanted
                .as_deref()
                .is_none_or(|w| run_status(state, *run) == w)
        })
        .map(|run| json!({"id": run, "status": run_status(state, run), "name": "ci"}))
        .collect();
    page(request, "workflow_runs", matching)
}

/// "List jobs for a workflow run".
pub(super) fn list_run_jobs(state: &State, request: &Request) -> ResponseTemplate {
    let run: Option<u64> = request
        .url
        .path()
        .trim_end_matches("/jobs")
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok());
    let jobs: Vec<Value> = state
        .jobs
        .iter()
        .filter(|j| Some(j.run_id) == run && j.status != JobStatus::Waiting)
        .map(|j| {
            let (status, conclusion, runner) = match &j.status {
                JobStatus::Queued | JobStatus::Waiting => ("queued", None, None),
                JobStatus::Running(r) => ("in_progress", None, Some(r.clone())),
                JobStatus::Done { runner, succeeded } => (
                    "completed",
                    Some(if *succeeded { "success" } else { "failure" }),
                    Some(runner.clone()),
                ),
                JobStatus::Skipped => ("completed", Some("skipped"), None),
                JobStatus::Cancelled => ("completed", Some("cancelled"), None),
            };
            json!({
                "id": j.id,
                "run_id": j.run_id,
                "name": j.spec.name,
                "status": status,
                "conclusion": conclusion,
                "labels": j.spec.runs_on,
                "runner_name": runner,
                "created_at": j.created_at.to_string(),
            })
        })
        .collect();
    page(request, "jobs", jobs)
}

fn page(request: &Request, key: &str, items: Vec<Value>) -> ResponseTemplate {
    let per_page = query(request, "per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query(request, "page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let shown: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({"total_count": total, key: shown}))
}
