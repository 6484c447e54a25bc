//! `lambda-gha run`: launch → wait active → SSH → upload → setup → run → download →
//! terminate. What it launched is terminated on every path out (success, failure, SIGINT,
//! SIGTERM, SIGHUP) unless `--keep`; a second signal during the cleanup gives up on it and
//! says what may be left billing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use gha_runner_core::{
    CloudProvider, GpuGate, HealthReport, LambdaProvider, LaunchKey, MachineId, MachineState,
};
use serde::Serialize;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::launch::{self, LaunchRequest};
use crate::progress::Ui;
use crate::project::{Codec, Project, RemoteListing, unpack_archive, write_archive};
use crate::transport::{self, OpenSsh, Sandbox, Transport, capture, shell_quote};

/// The tag that marks one run's machine, so an interrupted launch can still be found, and the
/// reaper knows it serves no runners.
pub use gha_runner_core::SESSION_TAG;

/// A signal that stops a run: Ctrl-C, a `kill`, a closed terminal or a CI job's timeout. The
/// first stops the work and cleans up; a second during the cleanup abandons it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Interrupt {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM (`kill`, a CI runner ending a job, tmux killing its pane).
    Term,
    /// SIGHUP (the terminal closed, an SSH session to the laptop dropped).
    Hup,
}

impl Interrupt {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
            Interrupt::Hup => "SIGHUP",
        }
    }

    /// The exit code a shell gives a process that this signal ended: 128 + its number.
    pub fn exit_code(self) -> i32 {
        match self {
            Interrupt::Int => 130,
            Interrupt::Term => 143,
            Interrupt::Hup => 129,
        }
    }
}

/// One thing to run in the project directory on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A project file: `.py` runs with `uv run`, `.sh` with bash, anything else executable
    /// as itself.
    Script(PathBuf),
    /// A shell command line.
    Command(String),
}

impl Step {
    /// Checks that `script` is a file of `project` (not ignored) that `run` knows how to run.
    pub fn script(project: &Project, script: &str) -> Result<Step, String> {
        let path = PathBuf::from(script.trim_start_matches("./"));
        if path.is_absolute() {
            return Err(format!(
                "{script}: name the script by its path inside the project ({})",
                project.root().display()
            ));
        }
        if !project.contains(&path) {
            return Err(if project.root().join(&path).exists() {
                format!(
                    "{script} is ignored (.gitignore or .ignore), so it would not be uploaded: un-ignore it or use --cmd"
                )
            } else {
                format!(
                    "{script} is not in the project {}: give a path inside it, or --project DIR",
                    project.root().display()
                )
            });
        }
        let known = matches!(path.extension().and_then(|e| e.to_str()), Some("py" | "sh"));
        let executable = project
            .files
            .iter()
            .any(|f| f.path == path && f.mode & 0o111 != 0);
        if !known && !executable {
            return Err(format!(
                "{script}: cannot tell how to run it: use a .py or .sh file, make it executable, or use --cmd"
            ));
        }
        Ok(Step::Script(path))
    }

    /// The shell command on the machine, run from the project directory.
    pub fn shell(&self) -> String {
        match self {
            Step::Script(path) => {
                let quoted = shell_quote(&path.display().to_string());
                match path.extension().and_then(|e| e.to_str()) {
                    Some("py") => format!("uv run {quoted}"),
                    Some("sh") => format!("bash {quoted}"),
                    _ => format!("./{quoted}"),
                }
            }
            Step::Command(line) => line.clone(),
        }
    }

    fn needs_uv(&self) -> bool {
        matches!(self, Step::Script(p) if p.extension().is_some_and(|e| e == "py"))
    }
}

/// How commands reach the machine.
#[derive(Debug, Clone)]
pub enum Reach {
    /// OpenSSH to the machine's public IP.
    Ssh {
        /// The login user (`ubuntu` on Lambda).
        user: String,
        /// The SSH port (22 on Lambda).
        port: u16,
        /// The private key, when not ssh's own choice (an ephemeral key's file otherwise).
        identity: Option<PathBuf>,
    },
    /// A simulated machine's sandbox directory: `<root>/<instance id>`.
    Sandbox {
        /// The simulator's sandbox root.
        root: PathBuf,
    },
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// What to launch (an empty `ssh_key` makes a key for this run).
    pub launch: LaunchRequest,
    /// Run on this existing machine instead of launching one (it is left running).
    pub instance: Option<String>,
    /// The project to upload.
    pub project: Project,
    /// Project files left out of the upload because they hold the API key.
    pub withheld: Vec<PathBuf>,
    /// What to run, in order; the first failure stops the rest.
    pub steps: Vec<Step>,
    /// Paths (relative to the project) to bring back.
    pub downloads: Vec<PathBuf>,
    /// Where downloads land (the project directory by default).
    pub download_to: PathBuf,
    /// Leave the machine running.
    pub keep: bool,
    /// How to reach it.
    pub reach: Reach,
    /// The GPU check between connecting and uploading (the action's health gate, over SSH).
    pub gpu_gate: GpuGate,
    /// How many launched machines that fail the GPU check are terminated and replaced, the
    /// other types first, before the run fails.
    pub replace_unhealthy: u32,
    /// How long to wait for `active` and then for SSH.
    pub boot_timeout: Duration,
    /// How long the machine may live: its `lambda-gha:expires` tag, which the reaper honours.
    pub max_lifetime: Duration,
    /// A Python project's venv without the machine's system packages (by default it sees
    /// them: Lambda Stack's PyTorch).
    pub isolated: bool,
    /// Simulated seconds per real second (1 on a real cloud): scales polling and the cost.
    pub time_scale: f64,
    /// Who runs it (the `lambda-gha:cli` tag).
    pub user: String,
    /// Where keys and host keys are kept (`~/.local/state/lambda-gha`).
    pub state_dir: PathBuf,
}

/// The time one phase took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseTime {
    /// `launch`, `boot`, `connect`, `gpu check`, `upload`, `setup`, `run`, `download`,
    /// `terminate`.
    pub phase: &'static str,
    /// Wall seconds.
    pub seconds: f64,
}

/// What an upload sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UploadReport {
    /// Files in the project.
    pub files: usize,
    /// Files sent (changed or new on the machine).
    pub files_sent: usize,
    /// Bytes of those files.
    pub bytes_sent: u64,
    /// Bytes on the wire (compressed tar stream).
    pub wire_bytes: u64,
}

/// A machine that failed the GPU check, terminated so that another could take its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplacedMachine {
    /// Its id.
    pub instance_id: String,
    /// Its type.
    pub instance_type: String,
    /// The check's verdict.
    pub why: String,
}

/// What became of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum MachineFate {
    /// Nothing was launched.
    NotLaunched,
    /// Terminated: billing stopped.
    Terminated,
    /// Left running on purpose (`--keep`, or a machine this run did not launch).
    LeftRunning,
    /// The terminate call failed: it may be billing.
    TerminateFailed(String),
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The machine, once launched or named.
    pub instance_id: Option<String>,
    /// Its type.
    pub instance_type: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// Its price, US cents per hour.
    pub price_cents_per_hour: Option<u32>,
    /// Wall time per phase, in order.
    pub phases: Vec<PhaseTime>,
    /// What the GPU check found (its one-line verdict), when it ran.
    pub gpu_check: Option<String>,
    /// Machines that failed the GPU check and were replaced, in order.
    pub replaced: Vec<ReplacedMachine>,
    /// The upload.
    pub upload: Option<UploadReport>,
    /// Project files never uploaded because they hold the API key.
    pub withheld: Vec<String>,
    /// Files brought back.
    pub downloaded_files: usize,
    /// Download paths the machine did not have.
    pub missing_downloads: Vec<String>,
    /// The failing step, if one failed.
    pub failed_step: Option<String>,
    /// When the reaper ends the machine this run launched, if it is still running (its
    /// `lambda-gha:expires` tag).
    pub expires: Option<String>,
    /// Billed time of the machine this run launched, seconds (until now if left running).
    pub billed_seconds: f64,
    /// Billed time × price, US dollars.
    pub cost_usd: f64,
    /// What became of the machine.
    pub machine: MachineFate,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
    /// Whether a signal stopped it.
    pub interrupted: bool,
    /// The signal that stopped it (`SIGINT`, `SIGTERM`, `SIGHUP`).
    pub signal: Option<&'static str>,
    /// Simulated seconds per real second (1 on a real cloud): phases are real time, the
    /// billed time is the cloud's.
    pub time_scale: f64,
    /// The exit code: the failing step's, else 1 for an error (or a machine that could not
    /// be terminated), 128 + the signal's number for a signal (130 Ctrl-C, 143 SIGTERM, 129
    /// SIGHUP), else 0.
    pub exit_code: i32,
}

impl RunSummary {
    /// The summary for people.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let machine = match (&self.instance_id, &self.instance_type, &self.region) {
            (Some(id), Some(t), Some(r)) => format!("{id} ({t} in {r})"),
            (Some(id), _, _) => id.clone(),
            _ => "none".to_owned(),
        };
        let _ = writeln!(text, "machine   {machine}");
        for phase in &self.phases {
            let _ = writeln!(text, "{:<9} {:>8.1} s", phase.phase, phase.seconds);
        }
        let total: f64 = self.phases.iter().map(|p| p.seconds).sum();
        let _ = writeln!(text, "{:<9} {total:>8.1} s", "total");
        for replaced in &self.replaced {
            let _ = writeln!(
                text,
                "replaced  {} ({}): {}",
                replaced.instance_id, replaced.instance_type, replaced.why
            );
        }
        if let Some(verdict) = &self.gpu_check {
            let _ = writeln!(text, "gpus      {verdict}");
        }
        if let Some(upload) = &self.upload {
            let _ = writeln!(
                text,
                "upload    {} of {} files, {} ({} on the wire)",
                upload.files_sent,
                upload.files,
                human_bytes(upload.bytes_sent),
                human_bytes(upload.wire_bytes)
            );
        }
        if !self.withheld.is_empty() {
            let _ = writeln!(
                text,
                "withheld  {} (hold the API key; not uploaded)",
                self.withheld.join(", ")
            );
        }
        if self.downloaded_files > 0 || !self.missing_downloads.is_empty() {
            let _ = write!(text, "download  {} files", self.downloaded_files);
            if !self.missing_downloads.is_empty() {
                let _ = write!(
                    text,
                    " (not on the machine: {})",
                    self.missing_downloads.join(", ")
                );
            }
            text.push('\n');
        }
        if let Some(price) = self.price_cents_per_hour {
            let simulated = if (self.time_scale - 1.0).abs() > f64::EPSILON {
                format!(", simulated time x{}", self.time_scale)
            } else {
                String::new()
            };
            let billed = gha_runner_core::format_duration(Duration::from_secs_f64(
                self.billed_seconds.max(0.0).round(),
            ));
            let _ = if self.replaced.is_empty() {
                writeln!(
                    text,
                    "cost      ${:.4} ({billed} billed × ${:.2}/h{simulated})",
                    self.cost_usd,
                    f64::from(price) / 100.0
                )
            } else {
                writeln!(
                    text,
                    "cost      ${:.4} ({billed} billed over {} machines{simulated})",
                    self.cost_usd,
                    self.replaced.len() + 1
                )
            };
        }
        let id = self.instance_id.as_deref().unwrap_or("?");
        let fate = match &self.machine {
            MachineFate::NotLaunched => "nothing launched".to_owned(),
            MachineFate::Terminated => "terminated (billing stopped)".to_owned(),
            MachineFate::LeftRunning => format!(
                "LEFT RUNNING, still billing: `lambda-gha run --instance {id} ...` reuses it, `lambda-gha terminate {id}` ends it{}",
                self.expires
                    .as_deref()
                    .map(|at| format!("; `lambda-gha reap` ends it after {at}"))
                    .unwrap_or_default()
            ),
            MachineFate::TerminateFailed(why) => format!(
                "COULD NOT TERMINATE ({why}); it may be billing: `lambda-gha terminate {id}`"
            ),
        };
        let _ = writeln!(text, "machine   {fate}");
        if let Some(step) = &self.failed_step {
            let _ = writeln!(text, "failed    {step} (exit {})", self.exit_code);
        }
        if let Some(error) = &self.error {
            let _ = writeln!(text, "error     {error}");
        }
        text
    }
}

fn human_bytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // For people.
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// A machine this run knows about.
struct Target {
    id: MachineId,
    ours: bool,
    launched_at: Instant,
}

/// What the run has done so far: what the cleanup reads after the work stopped, however it
/// stopped.
struct State {
    run_id: String,
    summary: RunSummary,
    target: Option<Target>,
    launch_started: bool,
    launch_key: Option<LaunchKey>,
    key_file: Option<PathBuf>,
    transport: Option<std::sync::Arc<dyn Transport>>,
    phase: Option<(&'static str, Instant)>,
    /// Billed seconds (on the cloud's clock) of the machines replaced so far.
    retired_seconds: f64,
    /// And their cost, US dollars (each at its own type's price).
    retired_cost_usd: f64,
}

impl State {
    fn begin(&mut self, phase: &'static str) {
        self.end();
        self.phase = Some((phase, Instant::now()));
    }

    fn end(&mut self) {
        if let Some((phase, started)) = self.phase.take() {
            self.summary.phases.push(PhaseTime {
                phase,
                seconds: round(started.elapsed().as_secs_f64()),
            });
        }
    }
}

fn round(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}

/// Runs the whole flow. `interrupts` receives one message per signal: the first stops the
/// work and cleans up, a second during the cleanup abandons it.
pub async fn run(
    provider: &LambdaProvider,
    request: &RunRequest,
    ui: Ui,
    interrupts: &mut UnboundedReceiver<Interrupt>,
) -> RunSummary {
    let mut state = State {
        run_id: format!("{:016x}", fastrand::u64(..)),
        summary: RunSummary {
            instance_id: None,
            instance_type: None,
            region: None,
            price_cents_per_hour: None,
            phases: Vec::new(),
            gpu_check: None,
            replaced: Vec::new(),
            upload: None,
            withheld: request
                .withheld
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            downloaded_files: 0,
            missing_downloads: Vec::new(),
            failed_step: None,
            expires: None,
            billed_seconds: 0.0,
            cost_usd: 0.0,
            machine: MachineFate::NotLaunched,
            error: None,
            interrupted: false,
            signal: None,
            time_scale: request.time_scale,
            exit_code: 0,
        },
        target: None,
        launch_started: false,
        launch_key: None,
        key_file: None,
        transport: None,
        phase: None,
        retired_seconds: 0.0,
        retired_cost_usd: 0.0,
    };
    let result = {
        let work = work(provider, request, ui, &mut state);
        tokio::pin!(work);
        tokio::select! {
            result = &mut work => Ok(result),
            // A closed channel is no signal: the pattern then disables this branch.
            Some(signal) = interrupts.recv() => Err(signal),
        }
        // The work is dropped here: its children (ssh, tar) are killed with it.
    };
    match result {
        Ok(Ok(code)) => state.summary.exit_code = code,
        Ok(Err(error)) => {
            state.summary.exit_code = 1;
            state.summary.error = Some(error);
        }
        Err(signal) => {
            ui.line(format!(
                "interrupted by {}: cleaning up (a second signal or Ctrl-C abandons the cleanup)",
                signal.name()
            ));
            state.summary.interrupted = true;
            state.summary.signal = Some(signal.name());
            state.summary.exit_code = signal.exit_code();
        }
    }
    state.end();
    let aborted = {
        let cleanup = cleanup(provider, request, ui, &mut state);
        tokio::pin!(cleanup);
        tokio::select! {
            () = &mut cleanup => None,
            Some(signal) = interrupts.recv() => Some(signal),
        }
    };
    if matches!(state.summary.machine, MachineFate::TerminateFailed(_))
        && state.summary.exit_code == 0
    {
        // The scripts succeeded, but a machine may be billing: that is not a success.
        state.summary.exit_code = 1;
    }
    if let Some(signal) = aborted {
        let id = state
            .target
            .as_ref()
            .map_or_else(|| "?".to_owned(), |t| t.id.to_string());
        state.summary.machine = MachineFate::TerminateFailed("cleanup abandoned".to_owned());
        state.summary.error = Some(format!(
            "cleanup abandoned by a second signal ({}): {id} may still be billing: `lambda-gha terminate {id}` (or `lambda-gha terminate --mine`)",
            signal.name()
        ));
        state.summary.exit_code = signal.exit_code();
    }
    state.end();
    state.summary
}

async fn work(
    provider: &LambdaProvider,
    request: &RunRequest,
    ui: Ui,
    state: &mut State,
) -> Result<i32, String> {
    // Types in the order the next launch tries them: one whose machine failed the GPU check
    // goes last.
    let mut types = request.launch.instance_types.clone();
    let transport = loop {
        // --- launch (or take the named machine) ---------------------------------------------
        let (price, gpus) = if let Some(id) = &request.instance {
            let machine = provider
                .describe(&MachineId::new(id.as_str()))
                .await
                .map_err(|e| format!("{id}: {e}"))?;
            state.target = Some(Target {
                id: machine.id.clone(),
                ours: false,
                launched_at: Instant::now(),
            });
            state.summary.instance_id = Some(machine.id.to_string());
            state.summary.instance_type = Some(machine.instance_type.clone());
            state.summary.region = Some(machine.region.clone());
            (machine.price_cents_per_hour, None)
        } else {
            state.begin("launch");
            let offering = launch_machine(provider, request, &types, ui, state).await?;
            (
                offering.as_ref().map(|o| o.price_cents_per_hour),
                offering.map(|o| o.gpus),
            )
        };
        state.summary.price_cents_per_hour = price;
        let Some(id) = state.target.as_ref().map(|t| t.id.clone()) else {
            return Err("nothing was launched".to_owned());
        };

        // --- boot -------------------------------------------------------------------------------
        state.begin("boot");
        let ip = wait_active(provider, &id, request, ui).await?;

        // --- connect ----------------------------------------------------------------------------
        state.begin("connect");
        let transport: std::sync::Arc<dyn Transport> = match &request.reach {
            Reach::Ssh {
                user,
                port,
                identity,
            } => {
                let identity = identity
                    .clone()
                    .or_else(|| state.key_file.clone())
                    .or_else(|| {
                        let kept = kept_key(&request.state_dir, id.as_str());
                        kept.exists().then_some(kept)
                    });
                let known_hosts = known_hosts_file(&request.state_dir, id.as_str())?;
                std::sync::Arc::new(OpenSsh {
                    host: ip,
                    port: *port,
                    user: user.clone(),
                    identity,
                    known_hosts,
                    // Unix socket paths are short (108 bytes): keep it in /tmp.
                    control_path: std::env::temp_dir().join(format!("lgha-{}", state.run_id)),
                })
            }
            Reach::Sandbox { root } => std::sync::Arc::new(Sandbox::new(root.join(id.as_str()))),
        };
        let bar = ui.spinner(format!("waiting for SSH on {}", transport.describe()));
        let ready = transport.wait_ready(request.boot_timeout).await;
        bar.finish_and_clear();
        state.transport = Some(transport.clone());
        ready?;

        // --- gpu check (before the upload: a broken GPU costs no transfer) ---------------------
        if request.gpu_gate != GpuGate::Off {
            state.begin("gpu check");
            if let Some(failed) =
                gpu_check(provider, request, transport.as_ref(), &id, gpus, ui, state).await?
            {
                let ours = state.target.as_ref().is_some_and(|t| t.ours);
                let replaced = u32::try_from(state.summary.replaced.len()).unwrap_or(u32::MAX);
                if ours && replaced < request.replace_unhealthy {
                    let failed_type = state.summary.instance_type.clone().unwrap_or_default();
                    retire(provider, request, ui, state, failed).await?;
                    if let Some(at) = types.iter().position(|t| *t == failed_type) {
                        let failed_type = types.remove(at);
                        types.push(failed_type);
                    }
                    continue;
                }
                return Err(gate_failed(&id, &failed, ours, request, replaced));
            }
        }
        break transport;
    };
    let transport = transport.as_ref();
    let dir = remote_dir(&request.project);

    // --- upload -----------------------------------------------------------------------------
    state.begin("upload");
    let report = upload(transport, &request.project, &dir, ui).await?;
    ui.line(format!(
        "uploaded {} of {} files ({}) to {}",
        report.files_sent,
        report.files,
        human_bytes(report.bytes_sent),
        transport.describe()
    ));
    state.summary.upload = Some(report);

    // --- setup ------------------------------------------------------------------------------
    let pyproject = request.project.contains(Path::new("pyproject.toml"));
    if pyproject || request.steps.iter().any(Step::needs_uv) {
        state.begin("setup");
        let mut script = format!("cd {dir} && {ENSURE_UV}");
        if pyproject && !request.isolated {
            // On Lambda Stack, PyTorch and CUDA's Python packages are installed system-wide:
            // the project's venv sees them, instead of downloading gigabytes again.
            script.push_str(
                " && { [ -d .venv ] || uv venv --quiet --system-site-packages --python python3; }",
            );
        }
        if pyproject {
            script.push_str(" && uv sync");
        }
        ui.line(if pyproject {
            "setup: uv sync"
        } else {
            "setup: installing uv"
        });
        let code = stream(transport, &script, ui).await?;
        if code != 0 {
            state.summary.failed_step = Some("setup".to_owned());
            return Ok(code);
        }
    }

    // --- run --------------------------------------------------------------------------------
    state.begin("run");
    let mut exit = 0;
    for step in &request.steps {
        let line = step.shell();
        ui.line(format!("run: {line}"));
        let code = stream(
            transport,
            &format!(
                "cd {dir} && export PATH=\"$HOME/.local/bin:$PATH\" PYTHONUNBUFFERED=1 && {line}"
            ),
            ui,
        )
        .await?;
        if code != 0 {
            ui.line(format!("{line} exited with {code}"));
            state.summary.failed_step = Some(line);
            exit = code;
            break;
        }
    }

    // --- download (after a failure too: its logs are what explain it) -----------------------
    if !request.downloads.is_empty() {
        state.begin("download");
        let (count, missing) = download(transport, &dir, request, ui).await?;
        state.summary.downloaded_files = count;
        if !missing.is_empty() {
            ui.line(format!(
                "not on the machine, not downloaded: {}",
                missing.join(", ")
            ));
        }
        state.summary.missing_downloads = missing;
        ui.line(format!(
            "downloaded {count} files to {}",
            request.download_to.display()
        ));
    }
    state.end();
    Ok(exit)
}

/// Installs uv for the login user unless it is there.
const ENSURE_UV: &str = "export PATH=\"$HOME/.local/bin:$PATH\" && \
    { command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh; }";

/// The action's health gate over the run's transport: `nvidia-smi` sees every GPU of the
/// machine's type (`gpus`, or the catalog's word for a named machine), and `--gpu-check`
/// passes. The failed verdict, if it failed.
async fn gpu_check(
    provider: &LambdaProvider,
    request: &RunRequest,
    transport: &dyn Transport,
    id: &MachineId,
    gpus: Option<u32>,
    ui: Ui,
    state: &mut State,
) -> Result<Option<HealthReport>, String> {
    let instance_type = state.summary.instance_type.clone().unwrap_or_default();
    let expected_gpus = match gpus {
        Some(gpus) => gpus,
        None => provider
            .catalog()
            .await
            .map_err(|e| {
                format!("cannot read the catalog for the GPU check: {e} (--no-gpu-gate skips it)")
            })?
            .offering(&instance_type)
            .map_or(0, |o| o.gpus),
    };
    let Some(gate) = request.gpu_gate.for_machine(&instance_type, expected_gpus) else {
        return Ok(None);
    };
    let bar = ui.spinner(format!("checking the GPUs of {id}"));
    let report = gate.run_over(transport, request.time_scale).await;
    bar.finish_and_clear();
    state.summary.gpu_check = Some(report.summary.clone());
    if report.passed {
        ui.line(format!("gpu check: {}", report.summary));
        return Ok(None);
    }
    ui.line(format!(
        "GPU health gate failed on {id}: {}",
        report.summary
    ));
    for line in report.detail.lines() {
        ui.line(format!("  {line}"));
    }
    Ok(Some(report))
}

/// Terminates machine `id` — the call that stops the billing: tried again, and checked when
/// its answer is lost — and forgets its private key and host key. Why it failed, if it did.
async fn terminate(
    provider: &LambdaProvider,
    request: &RunRequest,
    ui: Ui,
    state: &mut State,
    id: &MachineId,
) -> Result<(), String> {
    let bar = ui.spinner(format!("terminating {id}"));
    let (_, mut failed) = gha_runner_core::terminate_all(provider, std::slice::from_ref(id)).await;
    bar.finish_and_clear();
    if let Some(file) = state.key_file.take() {
        let _ = std::fs::remove_file(file);
    }
    let _ = std::fs::remove_file(request.state_dir.join("known_hosts").join(id.as_str()));
    failed.pop().map_or(Ok(()), |(_, why)| Err(why))
}

/// What `seconds` billed cost at `price_cents` per hour, US dollars.
fn cost_usd(seconds: f64, price_cents: u32) -> f64 {
    seconds / 3600.0 * f64::from(price_cents) / 100.0
}

/// The error of a run whose machine failed the GPU check with no replacement left: what
/// became of the machine, and what to do.
fn gate_failed(
    id: &MachineId,
    failed: &HealthReport,
    ours: bool,
    request: &RunRequest,
    replaced: u32,
) -> String {
    let next = match (ours, request.keep) {
        (false, _) => "fix the machine, or skip the check with --no-gpu-gate".to_owned(),
        (true, true) => format!(
            "it is left running (--keep; `lambda-gha terminate {id}` ends it); skip the check \
             with --no-gpu-gate"
        ),
        (true, false) => {
            let tried = if replaced > 0 {
                format!(
                    ", the last of {} machines (--replace-unhealthy {})",
                    replaced + 1,
                    request.replace_unhealthy
                )
            } else {
                String::new()
            };
            format!(
                "it is terminated{tried}; run again for another machine (or put another type \
                 first in --type), or skip the check with --no-gpu-gate"
            )
        }
    };
    format!(
        "GPU health gate failed on {id} ({}): {next}",
        failed.summary
    )
}

/// Ends a launched machine that failed the GPU check so that another can take its place:
/// closes the connection, terminates it (the run stops if that fails; the cleanup tries
/// again), forgets its key, and keeps what it was billed.
async fn retire(
    provider: &LambdaProvider,
    request: &RunRequest,
    ui: Ui,
    state: &mut State,
    failed: HealthReport,
) -> Result<(), String> {
    if let Some(transport) = state.transport.take() {
        transport.close().await;
    }
    let Some(target) = state.target.take() else {
        return Ok(());
    };
    let id = target.id.clone();
    state.begin("replace");
    if let Err(why) = terminate(provider, request, ui, state, &id).await {
        state.target = Some(target);
        return Err(format!(
            "GPU health gate failed on {id} ({}), and it could not be terminated for a \
             replacement: {why}",
            failed.summary
        ));
    }
    let billed = target.launched_at.elapsed().as_secs_f64() * request.time_scale;
    state.retired_seconds += billed;
    state.retired_cost_usd += state
        .summary
        .price_cents_per_hour
        .map_or(0.0, |price| cost_usd(billed, price));
    state.summary.replaced.push(ReplacedMachine {
        instance_id: id.to_string(),
        instance_type: state.summary.instance_type.clone().unwrap_or_default(),
        why: failed.summary,
    });
    state.summary.gpu_check = None;
    ui.line(format!("terminated {id}; launching a replacement"));
    Ok(())
}

async fn launch_machine(
    provider: &LambdaProvider,
    request: &RunRequest,
    types: &[String],
    ui: Ui,
    state: &mut State,
) -> Result<Option<gha_runner_core::Offering>, String> {
    let mut launch_request: LaunchRequest = request.launch.clone();
    launch_request.instance_types = types.to_vec();
    launch_request
        .tags
        .insert(SESSION_TAG.to_owned(), state.run_id.clone());
    // A run that is forgotten (`--keep`, or a laptop that died mid-run) still ends: the reaper
    // terminates it past this expiry.
    launch_request
        .tags
        .extend(gha_runner_core::lifetime_tags(request.max_lifetime));
    state.summary.expires = launch_request
        .tags
        .get(gha_runner_core::EXPIRES_TAG)
        .cloned();
    // Types, regions and the API key are checked before anything (a key, a machine) is made.
    let checked = launch::check(provider, &launch_request)
        .await
        .map_err(|e| e.to_string())?;
    if launch_request.ssh_key.is_empty() {
        // No key named: one for this run, its private half kept locally (0600).
        let key = provider
            .create_launch_key(&format!("run-{}", state.run_id), None)
            .await
            .map_err(|e| format!("cannot create an SSH key for this run: {e}"))?;
        let path = request.state_dir.join("keys").join(&key.name);
        if let Some(private) = &key.private_key {
            create_private_dir(path.parent().unwrap_or(&request.state_dir))?;
            write_private(&path, secrecy::ExposeSecret::expose_secret(private))?;
            state.key_file = Some(path);
        }
        launch_request.ssh_key.clone_from(&key.name);
        state.launch_key = Some(key);
    }
    let bar = ui.spinner(format!(
        "launching {}",
        launch_request.instance_types.join(" or ")
    ));
    state.launch_started = true;
    let outcome = launch::launch_checked(provider, &launch_request, checked, &request.user).await;
    bar.finish_and_clear();
    // A key is only read at launch: it can go now, whatever happened.
    delete_launch_key(provider, state).await;
    let outcome = outcome.map_err(|e| e.to_string())?;
    for attempt in &outcome.attempts {
        ui.line(attempt.to_string());
    }
    let launched = outcome.launched.map_err(|failure| failure.to_string())?;
    state.summary.instance_id = Some(launched.machine.to_string());
    state.summary.instance_type = Some(launched.candidate.instance_type.clone());
    state.summary.region = Some(launched.candidate.region.clone());
    state.target = Some(Target {
        id: launched.machine.clone(),
        ours: true,
        launched_at: Instant::now(),
    });
    // The key file is the machine's now: `run --instance` and `ssh` find it by id.
    if let Some(file) = state.key_file.take() {
        let kept = kept_key(&request.state_dir, launched.machine.as_str());
        state.key_file = Some(if std::fs::rename(&file, &kept).is_ok() {
            kept
        } else {
            file
        });
    }
    Ok(outcome.offering)
}

async fn delete_launch_key(provider: &LambdaProvider, state: &mut State) {
    if let Some(key) = state.launch_key.take()
        && provider.delete_launch_key(&key).await.is_err()
    {
        // Harmless (a key bills nothing) but untidy: try again in the cleanup.
        state.launch_key = Some(key);
    }
}

/// The known-hosts file for one instance: Lambda reuses addresses, so a host key is pinned
/// per instance, never per address (`run` and `ssh` share it).
pub fn known_hosts_file(state_dir: &Path, instance_id: &str) -> Result<PathBuf, String> {
    let dir = state_dir.join("known_hosts");
    create_private_dir(&dir)?;
    Ok(dir.join(instance_id))
}

/// Where the private key of a machine launched with a run's own key is kept.
pub fn kept_key(state_dir: &Path, instance_id: &str) -> PathBuf {
    state_dir.join("keys").join(instance_id)
}

async fn wait_active(
    provider: &LambdaProvider,
    id: &MachineId,
    request: &RunRequest,
    ui: Ui,
) -> Result<String, String> {
    let bar = ui.spinner(format!("waiting for {id} to boot"));
    let started = Instant::now();
    let poll = Duration::from_secs_f64((5.0 / request.time_scale).clamp(0.05, 5.0));
    let result = loop {
        let machine = provider
            .describe(id)
            .await
            .map_err(|e| format!("{id}: {e}"))?;
        bar.set_message(format!("{id} is {:?}", machine.state).to_lowercase());
        match (&machine.state, machine.ip) {
            (MachineState::Running, Some(ip)) => break Ok(ip),
            (MachineState::Pending | MachineState::Running, _) => {}
            (other, _) => break Err(format!("{id} is {other:?}: it will not become active")),
        }
        if started.elapsed() > request.boot_timeout {
            break Err(format!(
                "{id} was not active within {}",
                gha_runner_core::format_duration(request.boot_timeout)
            ));
        }
        tokio::time::sleep(poll).await;
    };
    bar.finish_and_clear();
    result
}

/// The project's directory on the machine, as a shell word: `"$HOME"/<name>`.
pub fn remote_dir(project: &Project) -> String {
    let name = project.root().file_name().map_or_else(
        || "project".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("\"$HOME\"/{}", shell_quote(&name))
}

/// Sends what the machine's copy of the project lacks, as one compressed tar stream.
pub async fn upload(
    transport: &dyn Transport,
    project: &Project,
    dir: &str,
    ui: Ui,
) -> Result<UploadReport, String> {
    let listing = capture(
        transport,
        &format!(
            "{} && mkdir -p {dir} && cd {dir} && {}",
            Codec::PROBE,
            RemoteListing::COMMAND
        ),
    )
    .await?;
    let (codec, listing) = Codec::split(&listing);
    let remote = RemoteListing::parse(listing);
    let changed: Vec<_> = project.changed(&remote).into_iter().cloned().collect();
    let bytes: u64 = changed.iter().map(|f| f.size).sum();
    let mut report = UploadReport {
        files: project.files.len(),
        files_sent: changed.len(),
        bytes_sent: bytes,
        wire_bytes: 0,
    };
    if changed.is_empty() {
        return Ok(report);
    }
    let bar = ui.bytes("uploading", bytes);
    let progress = bar.clone();
    let root = project.root().to_path_buf();
    let sent = transport::feed(
        transport,
        &format!(
            "cd {dir} && tar --no-same-owner {} -xf -",
            codec.tar_option()
        ),
        move |pipe| {
            let files: Vec<_> = changed.iter().collect();
            write_archive(&root, &files, codec, pipe, &mut |n| {
                progress.set_position(n);
            })
        },
    )
    .await;
    bar.finish_and_clear();
    report.wire_bytes = sent?;
    Ok(report)
}

/// Runs `script`, its output streamed live (stdout to stderr with `--json`, so stdout stays
/// the summary's); returns its exit code.
async fn stream(transport: &dyn Transport, script: &str, ui: Ui) -> Result<i32, String> {
    let stdout = if ui.json {
        use std::os::fd::AsFd as _;
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("cannot pass on output: {e}"))?;
        Stdio::from(stderr)
    } else {
        Stdio::inherit()
    };
    let status = transport
        .command(script)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .status()
        .await
        .map_err(|e| format!("cannot start the command: {e}"))?;
    // ssh says 255 for its own failures; a signal has no code.
    Ok(status.code().unwrap_or(255))
}

/// Brings `request.downloads` back as one compressed tar stream; returns the files unpacked
/// and the paths the machine did not have.
async fn download(
    transport: &dyn Transport,
    dir: &str,
    request: &RunRequest,
    ui: Ui,
) -> Result<(usize, Vec<String>), String> {
    let wanted: Vec<String> = request
        .downloads
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let words: Vec<String> = wanted.iter().map(|p| shell_quote(p)).collect();
    let present = capture(
        transport,
        &format!(
            "{} && cd {dir} && for p in {}; do [ -e \"$p\" ] && printf '%s\\n' \"$p\"; done; true",
            Codec::PROBE,
            words.join(" ")
        ),
    )
    .await?;
    let (codec, present) = Codec::split(&present);
    let present: Vec<String> = String::from_utf8_lossy(present)
        .lines()
        .map(str::to_owned)
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|p| !present.contains(p))
        .cloned()
        .collect();
    if present.is_empty() {
        return Ok((0, missing));
    }
    let words: Vec<String> = present.iter().map(|p| shell_quote(p)).collect();
    let dest = request.download_to.clone();
    let allowed: Vec<PathBuf> = present.iter().map(PathBuf::from).collect();
    let bar = ui.spinner("downloading");
    let count = transport::drain(
        transport,
        &format!(
            "cd {dir} && tar {} -cf - -- {}",
            codec.tar_option(),
            words.join(" ")
        ),
        move |pipe| unpack_archive(pipe, codec, &dest, &allowed),
    )
    .await;
    bar.finish_and_clear();
    Ok((count?, missing))
}

async fn cleanup(provider: &LambdaProvider, request: &RunRequest, ui: Ui, state: &mut State) {
    if let Some(transport) = state.transport.take() {
        transport.close().await;
    }
    delete_launch_key(provider, state).await;
    // A launch cut short may have made a machine whose id never reached us: find it by tag.
    if state.launch_started
        && state.target.is_none()
        && let Ok(machines) = provider.list_tagged(SESSION_TAG, Some(&state.run_id)).await
        && let Some(machine) = machines.into_iter().find(|m| {
            m.state.may_bill()
                && !state
                    .summary
                    .replaced
                    .iter()
                    .any(|r| r.instance_id == m.id.as_str())
        })
    {
        state.summary.instance_id = Some(machine.id.to_string());
        state.target = Some(Target {
            id: machine.id,
            ours: true,
            launched_at: Instant::now(),
        });
    }
    if state.target.is_none()
        && let Some(file) = state.key_file.take()
    {
        // Nothing was launched with the run's key: its private half has nothing to open.
        let _ = std::fs::remove_file(file);
    }
    let Some(target) = state
        .target
        .as_ref()
        .map(|t| (t.id.clone(), t.ours, t.launched_at))
    else {
        return;
    };
    let (id, ours, launched_at) = target;
    let keep = request.keep || !ours;
    let billed = launched_at.elapsed();
    if keep {
        state.summary.machine = MachineFate::LeftRunning;
    } else {
        state.begin("terminate");
        state.summary.machine = match terminate(provider, request, ui, state, &id).await {
            Ok(()) => MachineFate::Terminated,
            Err(why) => MachineFate::TerminateFailed(why),
        };
    }
    if ours {
        let billed = billed.as_secs_f64() * request.time_scale;
        state.summary.billed_seconds = round(billed + state.retired_seconds);
        if let Some(price) = state.summary.price_cents_per_hour {
            state.summary.cost_usd = cost_usd(billed, price) + state.retired_cost_usd;
        }
    }
    if let (MachineFate::LeftRunning, Some(file)) = (&state.summary.machine, &state.key_file) {
        ui.line(format!(
            "the machine's private key: {} (`lambda-gha ssh {} -i {}`)",
            file.display(),
            id,
            file.display()
        ));
    }
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Writes a private key readable by its owner only (a new file).
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `~/.local/state/lambda-gha` (or `$XDG_STATE_HOME/lambda-gha`).
pub fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    env("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("lambda-gha")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, u32)]) -> (PathBuf, Project) {
        let root = std::env::temp_dir().join(format!("lambda-gha-steps-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join(".gitignore"), "out/\n").expect("write");
        for (name, mode) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "x").expect("write");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(*mode))
                .expect("chmod");
        }
        let scanned = Project::scan(&root).expect("scan");
        (root, scanned)
    }

    #[test]
    fn steps_say_how_they_run_and_refuse_what_cannot_run() {
        let (root, p) = project(&[
            ("train.py", 0o644),
            ("setup.sh", 0o644),
            ("bin/go", 0o755),
            ("notes.txt", 0o644),
            ("out/x.py", 0o644),
        ]);
        assert_eq!(
            Step::script(&p, "train.py").expect("py").shell(),
            "uv run train.py"
        );
        assert_eq!(
            Step::script(&p, "./setup.sh").expect("sh").shell(),
            "bash setup.sh"
        );
        assert_eq!(Step::script(&p, "bin/go").expect("exe").shell(), "./bin/go");
        let unknown = Step::script(&p, "notes.txt").expect_err("txt");
        assert!(unknown.contains("use a .py or .sh file"), "{unknown}");
        let ignored = Step::script(&p, "out/x.py").expect_err("ignored");
        assert!(ignored.contains("is ignored"), "{ignored}");
        let missing = Step::script(&p, "nope.py").expect_err("missing");
        assert!(missing.contains("is not in the project"), "{missing}");
        assert_eq!(Step::Command("nvidia-smi".into()).shell(), "nvidia-smi");
        std::fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn the_summary_names_every_phase_the_cost_and_what_became_of_the_machine() {
        let summary = RunSummary {
            instance_id: Some("i-1".into()),
            instance_type: Some("gpu_1x_a10".into()),
            region: Some("us-east-1".into()),
            price_cents_per_hour: Some(86),
            phases: vec![
                PhaseTime {
                    phase: "launch",
                    seconds: 1.2,
                },
                PhaseTime {
                    phase: "boot",
                    seconds: 180.0,
                },
                PhaseTime {
                    phase: "gpu check",
                    seconds: 0.4,
                },
                PhaseTime {
                    phase: "run",
                    seconds: 61.5,
                },
            ],
            gpu_check: Some("nvidia-smi sees all 1 GPUs".into()),
            replaced: Vec::new(),
            upload: Some(UploadReport {
                files: 120,
                files_sent: 3,
                bytes_sent: 20_480,
                wire_bytes: 4_100,
            }),
            withheld: vec![".env".into()],
            downloaded_files: 2,
            missing_downloads: vec!["plots".into()],
            failed_step: Some("uv run train.py".into()),
            expires: Some("2026-11-30T08:00:00Z".into()),
            billed_seconds: 250.0,
            cost_usd: 250.0 / 3600.0 * 0.86,
            machine: MachineFate::Terminated,
            error: None,
            interrupted: false,
            signal: None,
            time_scale: 1.0,
            exit_code: 3,
        };
        insta::assert_snapshot!(summary.render(), @r"
        machine   i-1 (gpu_1x_a10 in us-east-1)
        launch         1.2 s
        boot         180.0 s
        gpu check      0.4 s
        run           61.5 s
        total        243.1 s
        gpus      nvidia-smi sees all 1 GPUs
        upload    3 of 120 files, 20.5 kB (4.1 kB on the wire)
        withheld  .env (hold the API key; not uploaded)
        download  2 files (not on the machine: plots)
        cost      $0.0597 (4m10s billed × $0.86/h)
        machine   terminated (billing stopped)
        failed    uv run train.py (exit 3)
        ");
    }
}
