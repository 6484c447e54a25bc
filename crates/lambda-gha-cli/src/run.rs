//! `lambda-gha run`: launch → wait active → SSH → upload → setup → run → download →
//! terminate. What it launched is terminated on every path out (success, failure, SIGINT,
//! SIGTERM, SIGHUP) unless `--keep`; a second signal during the cleanup gives up on it and
//! says what may be left billing.

mod interrupt;
mod machine;
mod steps;
mod summary;
mod transfer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gha_runner_core::cache::CacheRequest;
use gha_runner_core::session::{self, StateDir};
use gha_runner_core::{Candidate, CloudProvider, MachineId, health::GpuGate, tags};
use gha_runner_lambda::LambdaProvider;
use gha_runner_lambda::LaunchKey;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::launch::LaunchRequest;
use crate::progress::Ui;
use crate::project::Project;
use crate::transport::Transport;

pub use interrupt::Interrupt;
use machine::{
    connect, delete_launch_key, gate_failed, gpu_check, launch_machine, retire, terminate,
    wait_active,
};
use steps::ENSURE_UV;
pub use steps::Step;
use summary::human_bytes;
pub use summary::{MachineFate, PhaseTime, ReplacedMachine, RunSummary, UploadReport};
use transfer::{download, stream};
pub use transfer::{remote_dir, upload};

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
    /// A cache on a filesystem per region, mounted on the machine this run launches: the
    /// steps get `UV_CACHE_DIR`, `PIP_CACHE_DIR`, `HF_HOME` and `TORCH_HOME` there.
    pub cache: Option<CacheRequest>,
    /// Simulated seconds per real second (1 on a real cloud): scales polling and the cost.
    pub time_scale: lambda_cloud::TimeScale,
    /// Who runs it (the `lambda-gha:cli` tag).
    pub user: String,
    /// Where keys and host keys are kept (`~/.local/state/lambda-gha`).
    pub state_dir: StateDir,
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
    /// Where the launched machine mounts the cache's filesystem, when the run has a cache.
    cache_mount: Option<String>,
}

impl State {
    /// A run's state before anything is done.
    fn new(request: &RunRequest) -> State {
        State {
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
                time_scale: request.time_scale.factor(),
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
            cache_mount: None,
        }
    }

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
    let mut state = State::new(request);
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
    // The candidate whose machine failed the GPU check: the next launch tries it last.
    let mut failed_on: Option<Candidate> = None;
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
            let offering = launch_machine(provider, request, failed_on.as_ref(), ui, state).await?;
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
        let transport = connect(request, state, &id, ip, ui).await?;

        // --- gpu check (before the upload: a broken GPU costs no transfer) ---------------------
        if request.gpu_gate != GpuGate::Off {
            state.begin("gpu check");
            if let Some(failed) =
                gpu_check(provider, request, transport.as_ref(), &id, gpus, ui, state).await?
            {
                let ours = state.target.as_ref().is_some_and(|t| t.ours);
                let replaced = u32::try_from(state.summary.replaced.len()).unwrap_or(u32::MAX);
                if ours && replaced < request.replace_unhealthy {
                    failed_on = Some(Candidate {
                        instance_type: state.summary.instance_type.clone().unwrap_or_default(),
                        region: state.summary.region.clone().unwrap_or_default(),
                    });
                    retire(provider, request, ui, state, failed).await?;
                    continue;
                }
                return Err(gate_failed(&id, &failed, ours, request, replaced));
            }
        }
        break transport;
    };
    project_work(transport.as_ref(), request, ui, state).await
}

/// Upload, setup, the steps and the downloads, on a machine that passed its checks.
/// The shell that gives a step the cache's directories (made when missing), when the machine
/// mounts the cache; empty otherwise. A simulated sandbox machine sees its mount under its
/// sandbox (`SIM_MACHINE_SANDBOX`, unset on a real machine).
fn cache_env(state: &State) -> String {
    let Some(mount) = &state.cache_mount else {
        return String::new();
    };
    let jobs = format!(
        "\"${{SIM_MACHINE_SANDBOX:-}}\"{}",
        crate::transport::shell_quote(&format!("{mount}/lambda-gha/jobs"))
    );
    format!(
        "c={jobs} && if mkdir -p \"$c/uv\" \"$c/pip\" \"$c/huggingface\" \"$c/torch\" 2>/dev/null; then \
         export UV_CACHE_DIR=\"$c/uv\" PIP_CACHE_DIR=\"$c/pip\" HF_HOME=\"$c/huggingface\" \
         TORCH_HOME=\"$c/torch\"; else echo \"cache: cannot write to $c; going on without it\" >&2; fi && "
    )
}

async fn project_work(
    transport: &dyn Transport,
    request: &RunRequest,
    ui: Ui,
    state: &mut State,
) -> Result<i32, String> {
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
        let mut script = format!("cd {dir} && {}{ENSURE_UV}", cache_env(state));
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
                "cd {dir} && {}export PATH=\"$HOME/.local/bin:$PATH\" PYTHONUNBUFFERED=1 && {line}",
                cache_env(state)
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

async fn cleanup(provider: &LambdaProvider, request: &RunRequest, ui: Ui, state: &mut State) {
    if let Some(transport) = state.transport.take() {
        transport.close().await;
    }
    delete_launch_key(provider, state).await;
    // A launch cut short may have made a machine whose id never reached us: find it by tag.
    if state.launch_started
        && state.target.is_none()
        && let Ok(machines) = provider
            .list_tagged(tags::SESSION, Some(&state.run_id))
            .await
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
        let billed = request.time_scale.simulated(billed);
        state.summary.billed_seconds = round(billed.as_secs_f64() + state.retired_seconds);
        if let Some(price) = state.summary.price_cents_per_hour {
            state.summary.cost_usd = session::cost_usd(billed, price) + state.retired_cost_usd;
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
