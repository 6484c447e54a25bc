//! The on-machine agent: feeds job hooks (over a unix socket, the moment they happen) and
//! runner process state (polled as a backstop) into the [`TerminationPolicy`], logs every
//! decision as a JSON line, and when the policy says so stops the runners and terminates the
//! machine through its provider, retrying for as long as the provider accepts its key. It is
//! restarted when it dies (by systemd or the boot script's respawn loop): its clock counts from
//! the machine's boot, and a decision once made is kept on disk.
//!
//! Paths live under a root (empty on a real machine; the sandbox under the simulator), and the
//! clock can run faster than real time (the simulator's time scale), so the same code runs on
//! a GPU machine and in the end-to-end tests.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::agent_config::AgentConfig;
use crate::health::{HealthReport, UNHEALTHY_HOLD, read_report};
use crate::provider::{CloudProvider, MachineId, ProviderError, ProviderErrorKind};
use crate::termination::{Decision, Event, PolicyConfig, Reason, TerminationPolicy};

/// How long past its maximum lifetime a machine may still be billing (its `expires` tag): the
/// agent's stop and the watchdog come first; the reaper ends what is left after this.
pub const TERMINATE_MARGIN: Duration = Duration::from_secs(600);
/// How long one hook connection may take to send its message (real time): a client that
/// holds its connection open cannot hold up the agent, which reads each one apart.
pub const HOOK_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes read from one hook connection (a message is under 100).
pub const HOOK_MAX_BYTES: u64 = 4096;

/// Where the agent's files are, under a root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPaths {
    root: PathBuf,
}

impl AgentPaths {
    /// Paths under `root` (`/` on a machine).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        AgentPaths { root: root.into() }
    }

    fn under(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The socket hooks talk to.
    pub fn socket(&self) -> PathBuf {
        self.under("/run/lambda-gha/agent.sock")
    }

    /// The JSON-lines decision log.
    pub fn log(&self) -> PathBuf {
        self.under("/var/log/lambda-gha-agent.jsonl")
    }

    /// The health gate's verdict ([`HealthReport`]), written before the agent starts.
    pub fn health(&self) -> PathBuf {
        self.under("/run/lambda-gha/health.json")
    }

    /// When the machine booted (Unix seconds with a fraction, written by the boot script): a restarted agent
    /// counts the machine's life from there, not from its own start.
    pub fn booted_at(&self) -> PathBuf {
        self.under("/var/lib/lambda-gha/booted-at")
    }

    /// Written once the agent decided the machine ends (the reason, JSON): an agent restarted
    /// after that goes straight to ending it.
    pub fn ended(&self) -> PathBuf {
        self.under("/var/lib/lambda-gha/ended")
    }

    /// Runner `index`'s directory.
    pub fn runner_dir(&self, index: usize) -> PathBuf {
        self.under(&format!("/home/runner/runner-{index}"))
    }
}

/// A job hook's message to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    /// `ACTIONS_RUNNER_HOOK_JOB_STARTED`.
    JobStarted,
    /// `ACTIONS_RUNNER_HOOK_JOB_COMPLETED`.
    JobCompleted,
}

#[derive(Debug, Serialize, Deserialize)]
struct HookMessage {
    hook: HookKind,
    runner: usize,
}

/// Tells the running agent that a job started or completed on `runner`. A missing agent is
/// not the job's problem: the error is returned for the caller to print, never to fail on.
pub async fn send_hook(paths: &AgentPaths, hook: HookKind, runner: usize) -> std::io::Result<()> {
    let mut stream = UnixStream::connect(paths.socket()).await?;
    let mut line =
        serde_json::to_vec(&HookMessage { hook, runner }).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await
}

/// Which of a runner's processes are alive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunnerProcesses {
    /// `Runner.Listener`: the runner takes jobs.
    pub listener: bool,
    /// `Runner.Worker`: a job is executing.
    pub worker: bool,
}

/// Scans `/proc` for each runner's Listener and Worker, recognised by their executable under
/// the runner's directory.
pub fn scan_processes(paths: &AgentPaths, runners: usize) -> Vec<RunnerProcesses> {
    let mut found = vec![RunnerProcesses::default(); runners];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    let dirs: Vec<String> = (0..runners)
        .map(|i| format!("{}/", paths.runner_dir(i).display()))
        .collect();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        for (index, dir) in dirs.iter().enumerate() {
            if cmdline.contains(dir.as_str()) {
                found[index].listener |= cmdline.contains("Runner.Listener");
                found[index].worker |= cmdline.contains("Runner.Worker");
            }
        }
    }
    found
}

/// A monotonic clock since the agent started, optionally running `scale` times real time.
#[derive(Debug, Clone, Copy)]
pub struct AgentClock {
    started: Instant,
    scale: f64,
}

impl AgentClock {
    /// A clock from now, at `scale` (1 on a real machine).
    pub fn new(scale: f64) -> Self {
        AgentClock {
            started: Instant::now(),
            scale: if scale > 0.0 { scale } else { 1.0 },
        }
    }

    /// A clock from the machine's boot, as the boot script wrote it to `paths.booted_at()`
    /// (from now when it did not, or when the file is unreadable or in the future).
    pub fn since_boot(paths: &AgentPaths, scale: f64) -> Self {
        let mut clock = AgentClock::new(scale);
        let booted = std::fs::read_to_string(paths.booted_at())
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .map(|since_epoch| std::time::UNIX_EPOCH + since_epoch);
        if let Some(up) = booted.and_then(|at| at.elapsed().ok())
            && let Some(started) = clock.started.checked_sub(up)
        {
            clock.started = started;
        }
        clock
    }

    /// (Simulated) time since start.
    pub fn now(&self) -> Duration {
        self.started.elapsed().mul_f64(self.scale)
    }

    /// The real time `duration` of (simulated) time takes.
    pub fn real(&self, duration: Duration) -> Duration {
        duration.div_f64(self.scale)
    }
}

/// Builds the provider an agent ends its machine with, from its configuration and its clock
/// (simulated seconds per real second); `Ok(None)` when the machine may not end itself (no
/// key for it).
pub type ProviderFactory =
    fn(&AgentConfig, f64) -> Result<Option<Box<dyn CloudProvider>>, ProviderError>;

/// The providers an agent binary knows, by name: the agent picks one by its configuration's
/// `provider`.
#[derive(Clone, Copy)]
pub struct ProviderFactories<'a>(pub &'a [(&'static str, ProviderFactory)]);

impl ProviderFactories<'_> {
    /// The provider `config` names, built; an error names the ones this binary knows.
    pub fn build(
        &self,
        config: &AgentConfig,
        time_scale: f64,
    ) -> Result<Option<Box<dyn CloudProvider>>, ProviderError> {
        let Some((_, factory)) = self.0.iter().find(|(name, _)| *name == config.provider) else {
            let known: Vec<&str> = self.0.iter().map(|(name, _)| *name).collect();
            return Err(ProviderError::new(
                ProviderErrorKind::InvalidRequest,
                format!(
                    "this agent knows no provider {:?} (it knows {}): use a lambda-gha release that does",
                    config.provider,
                    known.join(", ")
                ),
            ));
        };
        factory(config, time_scale)
    }
}

/// How the agent's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOutcome {
    /// The machine was terminated through the provider.
    Terminated {
        /// Why.
        reason: Reason,
        /// The machine the agent ended (itself).
        machine: MachineId,
    },
    /// Key-less mode: runners stopped, termination left to the action's `stop` and the reaper.
    StoppedWithoutKey {
        /// Why.
        reason: Reason,
    },
    /// The provider refused the key: the machine may still be billing.
    TerminationFailed {
        /// Why it was to end.
        reason: Reason,
        /// The terminate call's last failure, as the provider said it.
        error: String,
    },
}

/// Appends JSON lines to the decision log (and mirrors them on stderr).
struct DecisionLog {
    file: Option<std::fs::File>,
}

impl DecisionLog {
    fn open(path: &Path) -> Self {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok();
        DecisionLog { file }
    }

    fn write(&mut self, now: Duration, record: serde_json::Value) {
        let mut line = serde_json::json!({"t": log_seconds(now)});
        if let (Some(map), serde_json::Value::Object(fields)) = (line.as_object_mut(), record) {
            map.extend(fields);
        }
        let text = line.to_string();
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{text}");
        }
        tracing::info!(target: "lambda_gha_agent", "{text}");
    }
}

/// A time on the agent's clock as its log writes it: seconds, to the millisecond.
fn log_seconds(at: Duration) -> f64 {
    (at.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The agent for one machine.
pub struct Agent<'a> {
    config: AgentConfig,
    provider: Option<&'a dyn CloudProvider>,
    paths: AgentPaths,
    clock: AgentClock,
}

impl<'a> Agent<'a> {
    /// An agent. Without a provider (no key on the machine) it stops the runners but cannot
    /// terminate the machine.
    pub fn new(
        config: AgentConfig,
        provider: Option<&'a dyn CloudProvider>,
        paths: AgentPaths,
        clock: AgentClock,
    ) -> Self {
        Agent {
            config,
            provider,
            paths,
            clock,
        }
    }

    /// Runs until the machine is to end, then ends it.
    pub async fn run(self) -> std::io::Result<AgentOutcome> {
        let runners = self.config.runner_count.max(1);
        let policy_config = PolicyConfig::from(self.config.timings);
        let mut policy = TerminationPolicy::new(policy_config, runners);
        let mut log = DecisionLog::open(&self.paths.log());
        let socket = self.paths.socket();
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        // The runner user's hooks connect: the boot script makes the directory the runner
        // group's (setgid), so the socket is too; nobody else may.
        set_mode(&socket, 0o660);
        log.write(self.clock.now(), serde_json::json!({"agent": "started", "runners": runners, "label": self.config.run_label}));

        if let Some(report) = read_report(&self.paths.health())
            && !report.passed
        {
            log.write(
                self.clock.now(),
                serde_json::json!({"health": "failed", "why": report.summary}),
            );
            drop(listener);
            let _ = std::fs::remove_file(&socket);
            return Ok(self.end_unhealthy(&report, &mut log).await);
        }
        if let Some(reason) = std::fs::read(self.paths.ended())
            .ok()
            .and_then(|text| serde_json::from_slice::<Reason>(&text).ok())
        {
            // Restarted after deciding: what is left is ending the machine.
            log.write(self.clock.now(), serde_json::json!({"agent": "restarted", "decision": "terminate", "reason": reason}));
            drop(listener);
            let _ = std::fs::remove_file(&socket);
            return Ok(self.terminate(reason, &mut log).await);
        }
        let (hooks, mut heard) = mpsc::channel(64);
        let accepting = tokio::spawn(accept_hooks(listener, hooks));
        let mut seen = vec![RunnerProcesses::default(); runners];
        let mut tick = tokio::time::interval(self.clock.real(policy_config.poll_interval));
        let reason = loop {
            // Wake at the policy's next deadline, not a poll later.
            let deadline = policy
                .next_deadline(self.clock.now())
                .unwrap_or(policy_config.max_lifetime);
            let until_deadline = self.clock.real(deadline.saturating_sub(self.clock.now()));
            tokio::select! {
                () = tokio::time::sleep(until_deadline) => {}
                Some(message) = heard.recv() => {
                    let event = match message.hook {
                        HookKind::JobStarted => Event::JobStarted { runner: message.runner },
                        HookKind::JobCompleted => Event::JobCompleted { runner: message.runner },
                    };
                    let now = self.clock.now();
                    policy.observe(event, now);
                    log.write(now, serde_json::json!({"hook": message.hook, "runner": message.runner}));
                }
                _ = tick.tick() => {
                    let now = self.clock.now();
                    let current = scan_processes(&self.paths, runners);
                    for (runner, (before, now_seen)) in seen.iter().zip(&current).enumerate() {
                        for event in process_events(runner, *before, *now_seen) {
                            policy.observe(event, now);
                            // Log changes, not every tick's confirmation.
                            let change = match event {
                                Event::Heartbeat { .. } => false,
                                Event::ListenerAlive { .. } => !before.listener,
                                _ => true,
                            };
                            if change {
                                log.write(now, serde_json::to_value(event).unwrap_or_default());
                            }
                        }
                    }
                    seen = current;
                }
            }
            let now = self.clock.now();
            if let Decision::Terminate(reason) = policy.decide(now) {
                self.record_decision(reason, now, deadline, &mut log);
                break reason;
            }
        };
        accepting.abort();
        let _ = std::fs::remove_file(&socket);
        let paths = self.paths.clone();
        let _ = tokio::task::spawn_blocking(move || stop_runners(&paths, runners)).await;
        log.write(self.clock.now(), serde_json::json!({"runners": "stopped"}));
        Ok(self.terminate(reason, &mut log).await)
    }

    /// Logs the decision — with the deadline it came due at, when it was the one this turn
    /// waited for: the policy's own time, which a late wake-up on a busy machine does not
    /// move — and keeps it on disk, so a restarted agent does not reopen it.
    fn record_decision(
        &self,
        reason: Reason,
        now: Duration,
        deadline: Duration,
        log: &mut DecisionLog,
    ) {
        let mut decided = serde_json::json!({"decision": "terminate", "reason": reason, "why": reason.to_string()});
        if now >= deadline {
            decided["due"] = serde_json::json!(log_seconds(deadline));
        }
        log.write(now, decided);
        if let Some(dir) = self.paths.ended().parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(
            self.paths.ended(),
            serde_json::to_vec(&reason).unwrap_or_default(),
        );
    }

    /// A machine whose health gate failed: says why where the launcher sees it, gives the
    /// launcher [`UNHEALTHY_HOLD`] to read the boot log (and end the machine itself), then
    /// ends it.
    async fn end_unhealthy(&self, report: &HealthReport, log: &mut DecisionLog) -> AgentOutcome {
        if let Some(provider) = self.provider {
            let reported = match self.own_machine(provider).await {
                Ok(id) => provider.report_unhealthy(&id, &report.summary).await,
                Err(error) => Err(error),
            };
            let now = self.clock.now();
            let ending_at = log_seconds(now + UNHEALTHY_HOLD);
            match reported {
                Ok(()) => log.write(
                    now,
                    serde_json::json!({"health": "reported", "ending_at": ending_at}),
                ),
                Err(error) => log.write(
                    now,
                    serde_json::json!({"health": "not-reported", "error": error.message, "ending_at": ending_at}),
                ),
            }
        }
        tokio::time::sleep(self.clock.real(UNHEALTHY_HOLD)).await;
        self.terminate(Reason::Unhealthy, log).await
    }

    /// This machine's id: as the provider tells the machine, or else found by its tag (Lambda
    /// has no metadata service).
    async fn own_machine(&self, provider: &dyn CloudProvider) -> Result<MachineId, ProviderError> {
        if let Some(id) = provider.this_machine() {
            return Ok(id);
        }
        let (key, value) = &self.config.machine_tag;
        provider
            .list_tagged(key, Some(value))
            .await?
            .into_iter()
            .find(|m| m.state.may_bill())
            .map(|m| m.id)
            .ok_or_else(|| {
                ProviderError::new(
                    ProviderErrorKind::NotFound,
                    format!("no running machine tagged {key}={value}"),
                )
            })
    }

    async fn terminate(&self, reason: Reason, log: &mut DecisionLog) -> AgentOutcome {
        let Some(provider) = self.provider else {
            log.write(self.clock.now(), serde_json::json!({"terminate": "skipped", "why": "no API key on this machine: the action's stop mode or the reaper terminates it"}));
            return AgentOutcome::StoppedWithoutKey { reason };
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Logged before the call: a successful terminate may end this process with the
            // machine before the answer arrives.
            log.write(
                self.clock.now(),
                serde_json::json!({"terminate": "calling", "attempt": attempt}),
            );
            let result = match self.own_machine(provider).await {
                Ok(id) => provider
                    .terminate(std::slice::from_ref(&id))
                    .await
                    .map(|()| id),
                Err(error) => Err(error),
            };
            let now = self.clock.now();
            match result {
                Ok(machine) => {
                    log.write(now, serde_json::json!({"terminate": "called", "machine": machine, "attempt": attempt}));
                    return AgentOutcome::Terminated { reason, machine };
                }
                // Only a refused key is final: an outage, however long, ends some time.
                Err(error) if error.kind == ProviderErrorKind::Unauthorized => {
                    log.write(now, serde_json::json!({"terminate": "gave-up", "attempt": attempt, "error": error.message, "warning": "THIS MACHINE MAY STILL BE BILLING"}));
                    return AgentOutcome::TerminationFailed {
                        reason,
                        error: error.message,
                    };
                }
                Err(error) => {
                    log.write(now, serde_json::json!({"terminate": "failed", "attempt": attempt, "error": error.message}));
                    let backoff = Duration::from_secs(u64::from(attempt.min(6)) * 5);
                    tokio::time::sleep(self.clock.real(backoff)).await;
                }
            }
        }
    }
}

/// Accepts hook connections for as long as the agent listens, each read in its own task.
async fn accept_hooks(listener: UnixListener, hooks: mpsc::Sender<HookMessage>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(read_hook(stream, hooks.clone()));
    }
}

/// Reads one connection's messages: at most [`HOOK_MAX_BYTES`] within [`HOOK_READ_TIMEOUT`];
/// whatever a slow or oversized client sent after that is dropped with its connection.
async fn read_hook(stream: UnixStream, hooks: mpsc::Sender<HookMessage>) {
    let mut lines = BufReader::new(stream.take(HOOK_MAX_BYTES)).lines();
    let _ = tokio::time::timeout(HOOK_READ_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(message) = serde_json::from_str::<HookMessage>(&line) {
                let _ = hooks.send(message).await;
            }
        }
    })
    .await;
}

/// Events implied by a runner's processes changing between two scans.
fn process_events(runner: usize, before: RunnerProcesses, now: RunnerProcesses) -> Vec<Event> {
    let mut events = Vec::new();
    if now.listener {
        events.push(Event::ListenerAlive { runner });
    } else if before.listener {
        events.push(Event::ListenerGone { runner });
    }
    if now.worker {
        events.push(Event::Heartbeat { runner });
    } else if before.worker {
        events.push(Event::WorkerGone { runner });
    }
    events
}

/// The pids of the runners' processes (`Runner.*` and `run.sh` under a runner directory).
fn runner_pids(paths: &AgentPaths, runners: usize) -> Vec<String> {
    let dirs: Vec<String> = (0..runners)
        .map(|i| format!("{}/", paths.runner_dir(i).display()))
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let ours = dirs.iter().any(|dir| cmdline.contains(dir.as_str()));
            (ours && (cmdline.contains("Runner.") || cmdline.contains("run.sh"))).then_some(pid)
        })
        .collect()
}

/// Stops every runner process: SIGTERM, then SIGKILL for whatever is left after 10 s.
fn stop_runners(paths: &AgentPaths, runners: usize) {
    let signal = |name: &str, pids: &[String]| {
        for pid in pids {
            let _ = std::process::Command::new("kill")
                .args([name, pid])
                .stderr(std::process::Stdio::null())
                .status();
        }
    };
    signal("-TERM", &runner_pids(paths, runners));
    for _ in 0..200 {
        if runner_pids(paths, runners).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal("-KILL", &runner_pids(paths, runners));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_changes_become_events() {
        let up = RunnerProcesses {
            listener: true,
            worker: true,
        };
        let idle = RunnerProcesses {
            listener: true,
            worker: false,
        };
        let none = RunnerProcesses::default();
        assert_eq!(
            process_events(0, none, up),
            [
                Event::ListenerAlive { runner: 0 },
                Event::Heartbeat { runner: 0 }
            ]
        );
        assert_eq!(
            process_events(1, up, idle),
            [
                Event::ListenerAlive { runner: 1 },
                Event::WorkerGone { runner: 1 }
            ]
        );
        assert_eq!(
            process_events(2, idle, none),
            [Event::ListenerGone { runner: 2 }]
        );
        assert!(process_events(0, none, none).is_empty());
    }

    #[test]
    fn paths_live_under_the_root() {
        let paths = AgentPaths::new("/tmp/sandbox");
        assert_eq!(
            paths.socket(),
            PathBuf::from("/tmp/sandbox/run/lambda-gha/agent.sock")
        );
        assert_eq!(
            paths.runner_dir(2),
            PathBuf::from("/tmp/sandbox/home/runner/runner-2")
        );
        assert_eq!(
            AgentPaths::new("/").log(),
            PathBuf::from("/var/log/lambda-gha-agent.jsonl")
        );
    }
}
