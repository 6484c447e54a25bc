//! `run`: a project's scripts on a new machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use gha_runner_core::cache::CacheRequest;
use gha_runner_core::health::GpuGate;
use gha_runner_core::session::StateDir;
use gha_runner_lambda::LambdaProvider;
use lambda_gha_cli::config::Settings;
use lambda_gha_cli::launch::LaunchRequest;
use lambda_gha_cli::project::Project;
use lambda_gha_cli::run::{Interrupt, Reach, RunRequest, RunSummary, Step};

use super::instances::{MachineArgs, launch_request};
use super::{Out, env, exit_code, parse_duration_arg, user};

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Project files to run, in order: `.py` with `uv run`, `.sh` with bash, executables as
    /// themselves. The first failure stops the rest; its exit code is ours.
    scripts: Vec<String>,
    /// A shell command to run in the project directory (after the scripts), repeatable.
    #[arg(long = "cmd", value_name = "COMMAND")]
    commands: Vec<String>,
    /// The project directory to upload (files ignored by .gitignore or .ignore stay home).
    #[arg(long, default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// A path (relative to the project) to bring back afterwards, repeatable; it lands at
    /// the same place in the local project.
    #[arg(long = "download", value_name = "PATH")]
    downloads: Vec<PathBuf>,
    /// Leave the machine running (a later `run --instance INSTANCE` re-uploads only what
    /// changed).
    #[arg(long)]
    keep: bool,
    /// Run on this running instance (id or name) instead of launching one (it is left
    /// running).
    #[arg(long, value_name = "INSTANCE")]
    instance: Option<String>,
    #[command(flatten)]
    machine: MachineArgs,
    /// The private key for SSH (default: the key this run makes, or ssh's own choice when
    /// --ssh-key names one of yours).
    #[arg(short, long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// The SSH login user.
    #[arg(long, default_value = "ubuntu")]
    ssh_user: String,
    /// The SSH port.
    #[arg(long, default_value_t = 22)]
    ssh_port: u16,
    /// How long to wait for the machine to boot and then to accept SSH.
    #[arg(long, default_value = "20m", value_parser = parse_duration_arg)]
    boot_timeout: Duration,
    /// How long the machine may live, even with --keep or if this command dies: it is tagged
    /// to expire then, and `lambda-gha reap` terminates it after that.
    #[arg(long, default_value = "12h", value_parser = parse_duration_arg)]
    max_lifetime: Duration,
    /// Give a Python project a venv of its own only: without it, the venv also sees the
    /// machine's system-wide packages (Lambda Stack's PyTorch), so they are not downloaded again.
    #[arg(long)]
    isolated: bool,
    /// A cache on a Lambda filesystem per region, mounted on the machine: `true` names it for
    /// the project's directory (`gha-cache-<dir>-<region>`), any other value is its name (the
    /// region is appended). Made on first use; the steps get UV_CACHE_DIR, PIP_CACHE_DIR,
    /// HF_HOME and TORCH_HOME there. Only regions that have it or can make it are launched in.
    #[arg(long, value_name = "NAME|true", conflicts_with = "instance")]
    cache_filesystem: Option<String>,
    /// Your own GPU check, run on the machine before the upload; a failure ends the run
    /// (e.g. `python3 -c 'import torch; assert torch.cuda.is_available()'`).
    #[arg(long, value_name = "COMMAND")]
    gpu_check: Option<String>,
    /// Skip the GPU check (`nvidia-smi` must see every GPU of the type), e.g. on an image
    /// without the NVIDIA driver.
    #[arg(long, conflicts_with = "gpu_check")]
    no_gpu_gate: bool,
    /// How many launched machines that fail the GPU check are terminated and replaced (other
    /// types first) before the run fails.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=5))]
    replace_unhealthy: u32,
    /// Reach machines of `lambda-gha sim --sandbox DIR` through their sandbox directories
    /// instead of SSH.
    #[arg(long, value_name = "DIR")]
    sim_sandbox: Option<PathBuf>,
}

pub(crate) async fn run(args: RunArgs, settings: &Settings, out: &Out) -> Result<ExitCode> {
    let mut request = request(args, settings)?;
    let client = lambda_gha_cli::client(settings)?;
    if let Some(wanted) = &request.instance {
        // By id or name, as everywhere.
        let found = super::instances::find_instance(&client, wanted).await?;
        request.instance = Some(found.id.to_string());
    } else {
        super::instances::named_as_launch_wants(&client, &mut request.launch).await?;
    }
    let provider = LambdaProvider::new(client);
    let summary = lambda_gha_cli::run::run(&provider, &request, out.ui(), &mut interrupts()).await;
    print_summary(&summary, out)?;
    Ok(exit_code(summary.exit_code))
}

/// The run `args` ask for. Everything that can be wrong with it is found here, before
/// anything is launched.
fn request(args: RunArgs, settings: &Settings) -> Result<RunRequest> {
    let project_root = args
        .project
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
        .with_context(|| format!("--project {}: no such directory", args.project.display()))?;
    let mut project = Project::scan(&project_root)
        .with_context(|| format!("cannot read the project {}", project_root.display()))?;
    // A file holding the API key (a `.env`, a config) never leaves this machine.
    let withheld = settings.api_key.as_ref().map_or_else(Vec::new, |key| {
        project.withhold_containing(secrecy::ExposeSecret::expose_secret(key))
    });
    if args.scripts.is_empty() && args.commands.is_empty() {
        bail!(
            "name what to run: a project script (`lambda-gha run train.py`) or --cmd \"nvidia-smi\""
        );
    }
    let mut steps = Vec::new();
    for script in &args.scripts {
        steps.push(Step::script(&project, script).map_err(anyhow::Error::msg)?);
    }
    steps.extend(args.commands.iter().cloned().map(Step::Command));
    for path in &args.downloads {
        if path.is_absolute()
            || path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            bail!(
                "--download {}: give a path inside the project, like `results` or `out/model.pt`",
                path.display()
            );
        }
    }
    if let Some(identity) = &args.identity
        && !identity.is_file()
    {
        bail!("--identity {}: no such file", identity.display());
    }
    let project_name = project_root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cache = match &args.cache_filesystem {
        Some(value) => CacheRequest::parse(value, &project_name, "--cache-filesystem")?,
        None => None,
    };
    let launch = if args.instance.is_some() {
        LaunchRequest::default()
    } else {
        launch_request(args.machine, settings, None, false)?
    };
    Ok(RunRequest {
        launch,
        instance: args.instance,
        download_to: project_root,
        project,
        withheld,
        steps,
        downloads: args.downloads,
        keep: args.keep,
        reach: match args.sim_sandbox {
            Some(root) => Reach::Sandbox { root },
            None => Reach::Ssh {
                user: args.ssh_user,
                port: args.ssh_port,
                identity: args.identity,
            },
        },
        gpu_gate: if args.no_gpu_gate {
            GpuGate::Off
        } else {
            GpuGate::On {
                check: args.gpu_check,
            }
        },
        replace_unhealthy: args.replace_unhealthy,
        boot_timeout: args.boot_timeout,
        max_lifetime: args.max_lifetime,
        isolated: args.isolated,
        cache,
        time_scale: lambda_cloud::TimeScale::from_env(env).map_err(anyhow::Error::msg)?,
        user: user(),
        state_dir: StateDir::from_env(&env),
    })
}

pub(crate) fn print_summary(summary: &RunSummary, out: &Out) -> Result<()> {
    if out.json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else if !out.quiet || summary.exit_code != 0 {
        eprint!("{}", summary.render());
    }
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP as they arrive, for `run` and `demo`, which clean up before
/// they exit: each stops a run the same way.
pub(crate) fn interrupts() -> tokio::sync::mpsc::UnboundedReceiver<Interrupt> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // Installed now, before anything is launched: a signal from here on is never missed.
    let streams = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    if let (Ok(mut int), Ok(mut term), Ok(mut hup)) = streams {
        tokio::spawn(async move {
            loop {
                let got = tokio::select! {
                    Some(()) = int.recv() => Interrupt::Int,
                    Some(()) = term.recv() => Interrupt::Term,
                    Some(()) = hup.recv() => Interrupt::Hup,
                    else => break,
                };
                if tx.send(got).is_err() {
                    break;
                }
            }
        });
    }
    rx
}
