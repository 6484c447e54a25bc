//! The `lambda-gha` command. It parses, calls the libraries, and prints; the logic lives in
//! `gha-runner-core` and `lambda-cloud`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use gha_runner_core::{
    Agent, AgentClock, AgentConfig, AgentOutcome, AgentPaths, CloudProvider, GitHub, HookKind,
    LambdaProvider, ReapPolicy, RunnerScope, send_hook,
};
use lambda_gha_cli::config::{self, Settings};
use lambda_gha_cli::launch::{CLI_TAG, LaunchRequest};
use lambda_gha_cli::progress::Ui;
use lambda_gha_cli::tables;
use secrecy::SecretString;

/// Ephemeral GitHub Actions runners and GPU runs on Lambda Cloud.
#[derive(Parser)]
#[command(name = "lambda-gha", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Machine-readable JSON on stdout (human text goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// The Lambda API base URL (also LAMBDA_API_URL; default: Lambda's public API).
    #[arg(long, global = true, value_name = "URL")]
    api_url: Option<String>,
    /// The config file (default ~/.config/lambda-gha/config.toml): api_key, api_url,
    /// instance_type, region, ssh_key.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// More logging (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Instance types: GPU, price, size and where they have capacity, cheapest first.
    Types(TypesArgs),
    /// Regions.
    Regions,
    /// Machine images.
    Images,
    /// Your instances.
    #[command(visible_alias = "ls")]
    Instances,
    /// One instance.
    Get {
        /// Its id.
        id: String,
    },
    /// Launch one instance, trying types and regions in order.
    Launch(LaunchArgs),
    /// Run project scripts on a new machine: launch, upload, set up, run, download, and
    /// terminate (always, unless --keep), then print the time and cost of each phase.
    Run(Box<RunArgs>),
    /// Serve a simulated Lambda Cloud locally until Ctrl-C.
    #[cfg(feature = "simulator")]
    Sim(SimArgs),
    /// The whole `run` flow on a simulated cloud with a small example project: nothing to
    /// set up, nothing billed.
    #[cfg(feature = "simulator")]
    Demo,
    /// Wait until an instance is active.
    Wait {
        /// Its id.
        id: String,
        /// Give up after this long.
        #[arg(long, default_value = "20m", value_parser = parse_duration_arg)]
        timeout: std::time::Duration,
    },
    /// Open a shell on an instance, or run a command there (after `--`).
    Ssh {
        /// Its id.
        id: String,
        /// The private key to use (default: ssh's own choice).
        #[arg(short, long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The login user.
        #[arg(long, default_value = "ubuntu")]
        user: String,
        /// The SSH port.
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// The command to run instead of a shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Terminate instances (billing stops).
    Terminate {
        /// Their ids.
        ids: Vec<String>,
        /// Every instance this tool launched for you (tag `lambda-gha:cli`).
        #[arg(long, conflicts_with = "ids")]
        mine: bool,
    },
    /// SSH keys of the account.
    #[command(subcommand)]
    SshKeys(SshKeysCommand),
    /// Persistent filesystems.
    #[command(subcommand)]
    Filesystems(FilesystemsCommand),
    /// The on-machine agent that ends a runner machine when its work is done.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Terminate machines this project launched that are past their expiry (or, with
    /// GitHub, whose runners are gone) and delete runner registrations whose machines are
    /// gone: the backstop for anything an agent could not end. Key from LAMBDA_API_KEY;
    /// GitHub token from GH_PAT or GITHUB_TOKEN.
    Reap(ReapArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct TypesArgs {
    /// Only types with capacity somewhere now.
    #[arg(long)]
    available: bool,
    /// Only types whose name or GPU contains this, e.g. `h100`.
    #[arg(long)]
    gpu: Option<String>,
}

/// What to launch: shared by `launch` and `run`.
#[derive(Args)]
struct MachineArgs {
    /// Instance types, comma-separated, tried in order (default: the config file's).
    #[arg(long = "type", value_name = "TYPES")]
    instance_type: Option<String>,
    /// Regions, comma-separated, tried in order (default: the config file's, or any).
    #[arg(long)]
    region: Option<String>,
    /// The SSH key to install (default: the config file's).
    #[arg(long)]
    ssh_key: Option<String>,
    /// A name for the instance.
    #[arg(long)]
    name: Option<String>,
    /// Image family or id.
    #[arg(long)]
    image: Option<String>,
    /// Filesystems to mount, comma-separated.
    #[arg(long)]
    filesystem: Option<String>,
    /// Tags, `key=value`, repeatable.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
    /// Keep retrying for capacity this long (e.g. `10m`).
    #[arg(long, value_parser = parse_duration_arg)]
    capacity_wait: Option<std::time::Duration>,
}

#[derive(Args)]
struct LaunchArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// A cloud-init user-data file.
    #[arg(long, value_name = "FILE")]
    user_data: Option<PathBuf>,
    /// Wait until the instance is active.
    #[arg(long)]
    wait: bool,
}

#[derive(Args)]
struct RunArgs {
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
    /// Leave the machine running (a later `run --instance ID` re-uploads only what changed).
    #[arg(long)]
    keep: bool,
    /// Run on this running instance instead of launching one (it is left running).
    #[arg(long, value_name = "ID")]
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
    boot_timeout: std::time::Duration,
    /// How long the machine may live, even with --keep or if this command dies: it is tagged
    /// to expire then, and `lambda-gha reap` terminates it after that.
    #[arg(long, default_value = "12h", value_parser = parse_duration_arg)]
    max_lifetime: std::time::Duration,
    /// Give a Python project a venv of its own only: without it, the venv also sees the
    /// machine's system-wide packages (Lambda Stack's PyTorch), so they are not downloaded again.
    #[arg(long)]
    isolated: bool,
    /// Your own GPU check, run on the machine before the upload; a failure ends the run
    /// (e.g. `python3 -c 'import torch; assert torch.cuda.is_available()'`).
    #[arg(long, value_name = "COMMAND")]
    gpu_check: Option<String>,
    /// Skip the GPU check (`nvidia-smi` must see every GPU of the type), e.g. on an image
    /// without the NVIDIA driver.
    #[arg(long, conflicts_with = "gpu_check")]
    no_gpu_gate: bool,
    /// How many launched machines that fail the GPU check are terminated and replaced (the
    /// other types first) before the run fails.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=5))]
    replace_unhealthy: u32,
    /// Reach machines of `lambda-gha sim --sandbox DIR` through their sandbox directories
    /// instead of SSH.
    #[arg(long, value_name = "DIR")]
    sim_sandbox: Option<PathBuf>,
}

#[derive(Args)]
struct SimArgs {
    /// The address to serve on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: std::net::SocketAddr,
    /// A TOML scenario: catalog, capacity over time, faults (see the README).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Simulated seconds per real second (60: a three-minute boot takes three seconds).
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Run instances' user data, and let `run --sim-sandbox DIR` reach them, in DIR.
    #[arg(long, value_name = "DIR")]
    sandbox: Option<PathBuf>,
    /// Never answer 429.
    #[arg(long)]
    no_rate_limits: bool,
}

#[derive(Subcommand)]
enum SshKeysCommand {
    /// List the keys.
    List,
    /// Add a public key.
    Add {
        /// Its name.
        name: String,
        /// The public key file (e.g. ~/.ssh/id_ed25519.pub).
        public_key_file: PathBuf,
    },
    /// Delete a key, by name or id.
    Rm {
        /// Its name or id.
        key: String,
    },
    /// Have Lambda generate a key pair; the private key is written to FILE (mode 0600).
    Generate {
        /// Its name.
        name: String,
        /// Where to write the private key.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum FilesystemsCommand {
    /// List the filesystems.
    List,
    /// Create a filesystem.
    Create {
        /// Its name.
        name: String,
        /// Its region.
        #[arg(long)]
        region: String,
    },
    /// Delete a filesystem, by name or id.
    Rm {
        /// Its name or id.
        filesystem: String,
    },
}

#[derive(Args)]
struct ReapArgs {
    /// Also check GitHub for this repository's runners (`owner/repo`).
    #[arg(long, value_name = "OWNER/REPO")]
    github_repository: Option<String>,
    /// Whose runners: the repository's or its organization's.
    #[arg(long, default_value = "repo", value_parser = ["repo", "org"])]
    scope: String,
    /// How long after launch a machine must have a registered runner.
    #[arg(long, default_value = "30m", value_parser = parse_duration_arg)]
    orphan_after: std::time::Duration,
    /// Say what would be done, do nothing.
    #[arg(long)]
    dry_run: bool,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    gha_runner_core::parse_duration(text, "duration").map_err(|e| e.problem)
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Run the agent until the machine is to end, then end it.
    Run(AgentRun),
    /// Tell the running agent that a job started or completed (the runner's job hooks).
    Hook(AgentHook),
    /// Check the machine's GPUs before its runners start (the boot script's health gate);
    /// exits 1 when they fail, leaving the verdict for the agent.
    Gate(AgentRun),
    /// Unpack a JIT runner configuration into the runner's directory (the boot script, as
    /// root), as the runner itself would from `--jitconfig`.
    UnpackJit(AgentUnpackJit),
}

#[derive(Args)]
struct AgentUnpackJit {
    /// The file holding the encoded JIT configuration (root-only).
    #[arg(long)]
    from: PathBuf,
    /// The runner's directory.
    #[arg(long)]
    into: PathBuf,
}

#[derive(Args)]
struct AgentRun {
    /// The agent's configuration, written by the boot script.
    #[arg(long, default_value = "/etc/lambda-gha/agent.json")]
    config: PathBuf,
    #[command(flatten)]
    root: Root,
}

#[derive(Args)]
struct AgentHook {
    /// Which hook.
    event: HookEvent,
    /// The runner's index on this machine.
    #[arg(long, default_value_t = 0)]
    runner: usize,
    #[command(flatten)]
    root: Root,
}

#[derive(Args)]
struct Root {
    /// The root the agent's files live under (`/` on a machine; the simulator's sandbox).
    #[arg(long, env = "LAMBDA_SIM_SANDBOX", default_value = "/")]
    root: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum HookEvent {
    /// `ACTIONS_RUNNER_HOOK_JOB_STARTED`.
    JobStarted,
    /// `ACTIONS_RUNNER_HOOK_JOB_COMPLETED`.
    JobCompleted,
}

/// The simulator's time scale, when the agent runs under it.
fn time_scale() -> f64 {
    std::env::var("LAMBDA_SIM_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0)
}

async fn agent_gate(args: AgentRun) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config: AgentConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an agent configuration", args.config.display()))?;
    let Some(gate) = config.health else {
        println!("GPU health gate: none configured");
        return Ok(ExitCode::SUCCESS);
    };
    let report = gate.run(&args.root.root, time_scale()).await;
    let paths = AgentPaths::new(&args.root.root);
    let verdict = paths.health();
    if let Some(dir) = verdict.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&verdict, serde_json::to_string(&report)?)
        .with_context(|| format!("cannot write {}", verdict.display()))?;
    if report.passed {
        println!("GPU health gate passed: {}", report.summary);
    } else {
        println!("GPU HEALTH GATE FAILED: {}", report.summary);
    }
    for line in report.detail.lines() {
        println!("  {line}");
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn agent_unpack_jit(args: &AgentUnpackJit) -> Result<ExitCode> {
    let encoded = std::fs::read_to_string(&args.from)
        .with_context(|| format!("cannot read {}", args.from.display()))?;
    gha_runner_core::unpack_jit_config(&SecretString::from(encoded), &args.into)?;
    Ok(ExitCode::SUCCESS)
}

async fn agent_run(args: AgentRun) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config: AgentConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an agent configuration", args.config.display()))?;
    let scale = time_scale();
    let provider = match (config.provider.as_str(), &config.api_key) {
        ("lambda", Some(key)) => {
            let mut builder = lambda_cloud::Client::builder()
                .api_key(key.clone())
                .time_scale(scale);
            if let Some(url) = &config.api_url {
                builder = builder.base_url(url);
            }
            Some(LambdaProvider::new(builder.build()?))
        }
        _ => None,
    };
    let paths = AgentPaths::new(args.root.root);
    let clock = AgentClock::since_boot(&paths, scale);
    let agent = Agent::new(
        config,
        provider.as_ref().map(|p| p as &dyn CloudProvider),
        paths,
        clock,
    );
    match agent.run().await? {
        AgentOutcome::Terminated { reason, machine } => {
            eprintln!("lambda-gha agent: terminated {machine}: {reason}");
            Ok(ExitCode::SUCCESS)
        }
        AgentOutcome::StoppedWithoutKey { reason } => {
            eprintln!(
                "lambda-gha agent: runners stopped ({reason}); no API key here, so the action's stop job or the reaper terminates this machine"
            );
            Ok(ExitCode::SUCCESS)
        }
        AgentOutcome::TerminationFailed { reason, error } => {
            eprintln!(
                "lambda-gha agent: COULD NOT TERMINATE this machine ({reason}): {error}; it may still be billing"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn reap(args: ReapArgs, settings: &Settings) -> Result<ExitCode> {
    let provider = LambdaProvider::new(lambda_gha_cli::client(settings)?);
    let github = match &args.github_repository {
        Some(repository) => {
            let token = ["GH_PAT", "GITHUB_TOKEN"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
                .map(SecretString::from)
                .context("--github-repository needs a token in GH_PAT or GITHUB_TOKEN")?;
            let scope = RunnerScope::parse(&args.scope, repository, None)?;
            Some(GitHub::new(
                &token,
                std::env::var("GITHUB_API_URL").ok().as_deref(),
                std::env::var("GITHUB_SERVER_URL").ok().as_deref(),
                scope,
            )?)
        }
        None => None,
    };
    let policy = ReapPolicy {
        orphan_after: args.orphan_after,
        dry_run: args.dry_run,
        ..ReapPolicy::now()
    };
    let report = gha_runner_core::reap(&provider, github.as_ref(), policy).await?;
    let verb = if args.dry_run {
        "would terminate"
    } else {
        "terminated"
    };
    println!(
        "reap: {} machine(s) of lambda-gha alive, {} to end",
        report.examined,
        report.reaped.len()
    );
    for (machine, reason) in &report.reaped {
        println!(
            "  {verb} {} ({} in {}): {reason}",
            machine.id, machine.instance_type, machine.region
        );
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for (id, name) in &report.ghost_runners {
        println!("  {verb} runner {name} ({id}): its machine is gone");
    }
    let keys = provider.reap_launch_keys(&policy).await;
    for name in keys.iter().flatten() {
        println!("  {verb} SSH key {name}: made for a launch that was cut short");
    }
    if let Err(error) = &keys {
        eprintln!("  could not list SSH keys to delete stale launch keys: {error}");
    }
    for (id, why) in &report.cleanup.not_terminated {
        eprintln!("  COULD NOT TERMINATE {id}: {why}; it may be billing");
    }
    for (id, why) in &report.cleanup.runners_not_deleted {
        eprintln!("  could not delete runner {id}: {why}");
    }
    Ok(if report.cleanup.is_complete() && keys.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How the command prints.
struct Out {
    json: bool,
    quiet: bool,
}

impl Out {
    /// JSON on stdout with `--json`, otherwise the table for people.
    fn show<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        table: impl FnOnce(&T) -> tables::Table,
    ) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            print!("{}", table(value).render());
        }
        Ok(())
    }

    /// Progress for people, as the library draws it.
    fn ui(&self) -> Ui {
        Ui {
            quiet: self.quiet,
            json: self.json,
        }
    }

    /// A message for people: stderr, so stdout stays clean for `--json`; none with `-q`.
    fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// Waits until `id` is active; fails if it ends or `timeout` passes.
async fn wait_active(
    client: &lambda_cloud::Client,
    id: &lambda_cloud::InstanceId,
    timeout: std::time::Duration,
    ui: Ui,
) -> Result<lambda_cloud::Instance> {
    let bar = ui.spinner(format!("waiting for {id} to become active"));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let instance = client.instances().get(id).await?;
        bar.set_message(format!("{id} is {}", instance.status));
        match instance.status {
            lambda_cloud::InstanceStatus::Active => {
                bar.finish_and_clear();
                return Ok(instance);
            }
            lambda_cloud::InstanceStatus::Booting => {}
            other => {
                bar.finish_and_clear();
                bail!("{id} is {other}, not booting: it will not become active");
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bar.finish_and_clear();
            bail!(
                "{id} was not active within {}; it is still billing: `lambda-gha terminate {id}`",
                gha_runner_core::format_duration(timeout)
            );
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}

async fn everyday(command: Command, settings: &Settings, out: &Out) -> Result<ExitCode> {
    let client = lambda_gha_cli::client(settings)?;
    match command {
        Command::Types(args) => {
            let catalog = client.instance_types().list().await?;
            let views = tables::types(
                &catalog,
                &tables::TypeFilter {
                    available: args.available,
                    gpu: args.gpu,
                },
            );
            out.show(&views, |v| tables::types_table(v))?;
        }
        Command::Regions => {
            let regions = client.regions().list().await?;
            out.show(&regions, |v| tables::regions_table(v))?;
        }
        Command::Images => {
            let images = client.images().list().await?;
            out.show(&images, |v| tables::images_table(v))?;
        }
        Command::Instances => {
            let views: Vec<tables::InstanceView> = client
                .instances()
                .list()
                .await?
                .iter()
                .map(tables::InstanceView::from)
                .collect();
            out.show(&views, |v| tables::instances_table(v))?;
        }
        Command::Get { id } => {
            let instance = client.instances().get(&id.as_str().into()).await?;
            let view = tables::InstanceView::from(&instance);
            out.show(&view, |v| tables::instances_table(std::slice::from_ref(v)))?;
        }
        Command::Wait { id, timeout } => {
            let instance = wait_active(&client, &id.as_str().into(), timeout, out.ui()).await?;
            let view = tables::InstanceView::from(&instance);
            out.note(&format!(
                "{id} is active at {}",
                view.ip.as_deref().unwrap_or("(no IP yet)")
            ));
            if out.json {
                out.show(&view, |v| tables::instances_table(std::slice::from_ref(v)))?;
            }
        }
        Command::Terminate { ids, mine } => {
            let ids: Vec<String> = if mine {
                let me = user();
                client
                    .instances()
                    .list()
                    .await?
                    .into_iter()
                    .filter(|i| !i.status.is_gone() && i.tag(CLI_TAG) == Some(me.as_str()))
                    .map(|i| i.id.to_string())
                    .collect()
            } else {
                ids
            };
            if ids.is_empty() {
                out.note(if mine {
                    "nothing to terminate: no instance of yours carries the lambda-gha:cli tag"
                } else {
                    "name instances to terminate, or use --mine"
                });
                return Ok(if mine {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                });
            }
            let ended = client
                .instances()
                .terminate(ids.iter().map(String::as_str))
                .await?;
            let views: Vec<tables::InstanceView> =
                ended.iter().map(tables::InstanceView::from).collect();
            for view in &views {
                out.note(&format!("terminated {} ({})", view.id, view.instance_type));
            }
            if out.json {
                out.show(&views, |v| tables::instances_table(v))?;
            }
        }
        Command::Launch(args) => return launch(&client, args, settings, out).await,
        Command::Ssh {
            id,
            identity,
            user,
            port,
            command,
        } => {
            let instance = client.instances().get(&id.as_str().into()).await?;
            let ip = instance.ip.as_deref().with_context(|| {
                format!(
                    "{id} has no IP yet (it is {}): `lambda-gha wait {id}` first",
                    instance.status
                )
            })?;
            // A machine `run --keep` launched with its own key: that key.
            let env = |name: &str| std::env::var(name).ok();
            let state_dir = lambda_gha_cli::run::default_state_dir(&env);
            let identity = identity.or_else(|| {
                let kept = lambda_gha_cli::run::kept_key(&state_dir, &id);
                kept.exists().then_some(kept)
            });
            let known_hosts = lambda_gha_cli::run::known_hosts_file(&state_dir, &id)
                .map_err(anyhow::Error::msg)?;
            let args = lambda_gha_cli::ssh::ssh_args(
                &lambda_gha_cli::ssh::SshTarget {
                    ip,
                    port,
                    user: &user,
                    identity: identity.as_deref(),
                    known_hosts: &known_hosts,
                },
                &command,
            );
            let status = std::process::Command::new("ssh")
                .args(&args)
                .status()
                .context("cannot run ssh: install OpenSSH's client")?;
            // The remote command's exit code is ours.
            return Ok(ExitCode::from(
                u8::try_from(status.code().unwrap_or(255)).unwrap_or(255),
            ));
        }
        Command::SshKeys(command) => ssh_keys(&client, command, out).await?,
        Command::Filesystems(command) => filesystems(&client, command, out).await?,
        Command::Run(args) => return run(*args, settings, out).await,
        other => unreachable!("dispatched in main: {}", command_name(&other)),
    }
    Ok(ExitCode::SUCCESS)
}

async fn launch(
    client: &lambda_cloud::Client,
    args: LaunchArgs,
    settings: &Settings,
    out: &Out,
) -> Result<ExitCode> {
    let mut request = launch_request(args.machine, settings)?;
    if request.ssh_key.is_empty() {
        bail!(
            "name an SSH key: --ssh-key NAME (see `lambda-gha ssh-keys list`), or ssh_key in the config file"
        );
    }
    request.user_data = match &args.user_data {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => None,
    };
    let provider = LambdaProvider::new(client.clone());
    let bar = out.ui().spinner("launching");
    let outcome = lambda_gha_cli::launch::launch(&provider, &request, &user()).await;
    bar.finish_and_clear();
    let outcome = outcome?;
    for attempt in &outcome.attempts {
        out.note(&attempt.to_string());
    }
    let launched = outcome
        .launched
        .map_err(|failure| anyhow::anyhow!("{failure}"))?;
    let id: lambda_cloud::InstanceId = launched.machine.as_str().into();
    let instance = if args.wait {
        wait_active(
            client,
            &id,
            std::time::Duration::from_secs(20 * 60),
            out.ui(),
        )
        .await?
    } else {
        client.instances().get(&id).await?
    };
    let view = tables::InstanceView::from(&instance);
    out.show(&view, |v| tables::instances_table(std::slice::from_ref(v)))?;
    Ok(ExitCode::SUCCESS)
}

/// What `args` (and the config file's defaults) ask to launch; an empty `ssh_key` when none
/// is named.
fn launch_request(args: MachineArgs, settings: &Settings) -> Result<LaunchRequest> {
    let types = args
        .instance_type
        .or_else(|| settings.instance_type.clone())
        .context(
            "name an instance type: --type gpu_1x_a10 (or instance_type in the config file; see `lambda-gha types --available`)",
        )?;
    let regions = args.region.or_else(|| settings.region.clone());
    let mut tags = std::collections::BTreeMap::new();
    for tag in &args.tags {
        let (key, value) = tag
            .split_once('=')
            .with_context(|| format!("--tag {tag:?}: write key=value"))?;
        tags.insert(key.to_owned(), value.to_owned());
    }
    Ok(LaunchRequest {
        instance_types: gha_runner_core::parse_list(&types, "--type")?,
        regions: match &regions {
            Some(r) => gha_runner_core::parse_list(r, "--region")?,
            None => Vec::new(),
        },
        ssh_key: args
            .ssh_key
            .or_else(|| settings.ssh_key.clone())
            .unwrap_or_default(),
        name: args.name,
        image: args.image,
        filesystems: match &args.filesystem {
            Some(f) => gha_runner_core::parse_list(f, "--filesystem")?,
            None => Vec::new(),
        },
        tags,
        user_data: None,
        capacity: args.capacity_wait,
    })
}

/// SIGINT, SIGTERM and SIGHUP as they arrive, for `run` and `demo`, which clean up before
/// they exit: each stops a run the same way.
fn interrupts() -> tokio::sync::mpsc::UnboundedReceiver<lambda_gha_cli::run::Interrupt> {
    use lambda_gha_cli::run::Interrupt;
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

async fn run(args: RunArgs, settings: &Settings, out: &Out) -> Result<ExitCode> {
    use gha_runner_core::GpuGate;
    use lambda_gha_cli::run::{Reach, RunRequest, Step};
    // Everything that can be wrong with the request is found before anything is launched.
    let project_root = args
        .project
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
        .with_context(|| format!("--project {}: no such directory", args.project.display()))?;
    let mut project = lambda_gha_cli::project::Project::scan(&project_root)
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
    let launch = if args.instance.is_some() {
        LaunchRequest::default()
    } else {
        launch_request(args.machine, settings)?
    };
    let env = |name: &str| std::env::var(name).ok();
    let time_scale = match std::env::var(lambda_cloud::TIME_SCALE_ENV) {
        Ok(text) => {
            lambda_cloud::RateLimits::parse_time_scale(&text).map_err(anyhow::Error::msg)?
        }
        Err(_) => 1.0,
    };
    let request = RunRequest {
        launch,
        instance: args.instance,
        download_to: project_root.clone(),
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
        time_scale,
        user: user(),
        state_dir: lambda_gha_cli::run::default_state_dir(&env),
    };
    let provider = LambdaProvider::new(lambda_gha_cli::client(settings)?);
    let ui = out.ui();
    let summary = lambda_gha_cli::run::run(&provider, &request, ui, &mut interrupts()).await;
    print_summary(&summary, out)?;
    Ok(exit_code(summary.exit_code))
}

fn print_summary(summary: &lambda_gha_cli::run::RunSummary, out: &Out) -> Result<()> {
    if out.json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else if !out.quiet || summary.exit_code != 0 {
        eprint!("{}", summary.render());
    }
    Ok(())
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(feature = "simulator")]
async fn sim(args: SimArgs) -> Result<ExitCode> {
    let scenario = match &args.scenario {
        Some(path) => lambda_cloud_sim::Scenario::from_file(path)?,
        None => lambda_cloud_sim::Scenario::default(),
    };
    let mut builder = lambda_cloud_sim::Sim::builder()
        .scenario(scenario)
        .listen(args.listen)
        .time_scale(args.time_scale);
    if args.no_rate_limits {
        builder = builder.rate_limits(false);
    }
    if let Some(dir) = &args.sandbox {
        builder = builder.user_data_sandbox(dir);
    }
    let sim = builder.start().await?;
    let url = sim.base_url();
    let scale = if (args.time_scale - 1.0).abs() > f64::EPSILON {
        format!(" {}={}", lambda_cloud::TIME_SCALE_ENV, args.time_scale)
    } else {
        String::new()
    };
    println!(
        "simulated Lambda Cloud at {url} (time x{}); Ctrl-C stops it",
        args.time_scale
    );
    println!("in another shell:\n  export LAMBDA_API_URL={url} LAMBDA_API_KEY=sim{scale}");
    println!("  lambda-gha types --available");
    if let Some(dir) = &args.sandbox {
        println!(
            "  lambda-gha ssh-keys add me ~/.ssh/id_ed25519.pub\n  lambda-gha run train.py --type gpu_1x_a10 --ssh-key me --sim-sandbox {}",
            dir.display()
        );
    }
    tokio::signal::ctrl_c().await?;
    let ledger = sim.ledger();
    sim.shutdown().await;
    eprintln!(
        "simulator stopped: {} instance(s) launched, {} still billing when stopped, ${:.2} billed",
        ledger.entries.len(),
        ledger.still_billing.len(),
        ledger.total_cost_cents / 100.0
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "simulator")]
async fn demo(out: &Out) -> Result<ExitCode> {
    let ui = out.ui();
    let report = lambda_gha_cli::demo::demo(ui, &mut interrupts())
        .await
        .map_err(anyhow::Error::msg)?;
    print_summary(&report.summary, out)?;
    if !out.json {
        if let Some(metrics) = &report.metrics {
            println!("results/metrics.json (downloaded): {}", metrics.trim());
        }
        println!(
            "simulated bill: {} instance(s) launched, {} still billing, ${:.4}",
            report.ledger.entries.len(),
            report.ledger.still_billing.len(),
            report.ledger.total_cost_cents / 100.0
        );
        println!(
            "next: `lambda-gha sim` serves this simulator for you to explore; with a Lambda API key, `lambda-gha run train.py --type gpu_1x_a10 --download results` does this on a real GPU"
        );
    }
    Ok(exit_code(report.summary.exit_code))
}

async fn ssh_keys(client: &lambda_cloud::Client, command: SshKeysCommand, out: &Out) -> Result<()> {
    let keys = client.ssh_keys();
    match command {
        SshKeysCommand::List => {
            let list = keys.list().await?;
            out.show(&list, |v| tables::ssh_keys_table(v))?;
        }
        SshKeysCommand::Add {
            name,
            public_key_file,
        } => {
            let text = std::fs::read_to_string(&public_key_file)
                .with_context(|| format!("cannot read {}", public_key_file.display()))?;
            let key = keys.add(name, text.trim()).await?;
            out.note(&format!("added SSH key {} ({})", key.name, key.id));
            if out.json {
                out.show(&key, |k| tables::ssh_keys_table(std::slice::from_ref(k)))?;
            }
        }
        SshKeysCommand::Rm { key } => {
            let list = keys.list().await?;
            let found = list
                .iter()
                .find(|k| k.name == key || k.id.as_str() == key)
                .with_context(|| {
                    format!("no SSH key named {key:?} (see `lambda-gha ssh-keys list`)")
                })?;
            keys.delete(&found.id).await?;
            out.note(&format!("deleted SSH key {} ({})", found.name, found.id));
        }
        SshKeysCommand::Generate { name, out: path } => {
            if path.exists() {
                bail!("{} exists; choose another --out", path.display());
            }
            let key = keys.generate(name).await?;
            lambda_gha_cli::run::write_private(&path, key.private_key.expose())
                .map_err(anyhow::Error::msg)?;
            out.note(&format!(
                "generated SSH key {} ({}); private key in {}",
                key.name,
                key.id,
                path.display()
            ));
        }
    }
    Ok(())
}

async fn filesystems(
    client: &lambda_cloud::Client,
    command: FilesystemsCommand,
    out: &Out,
) -> Result<()> {
    let api = client.filesystems();
    match command {
        FilesystemsCommand::List => {
            let list = api.list().await?;
            out.show(&list, |v| tables::filesystems_table(v))?;
        }
        FilesystemsCommand::Create { name, region } => {
            let created = api.create(name, region.as_str()).await?;
            out.show(&created, |v| {
                tables::filesystems_table(std::slice::from_ref(v))
            })?;
        }
        FilesystemsCommand::Rm { filesystem } => {
            let list = api.list().await?;
            let found = list
                .iter()
                .find(|f| f.name == filesystem || f.id.as_str() == filesystem)
                .with_context(|| {
                    format!(
                        "no filesystem named {filesystem:?} (see `lambda-gha filesystems list`)"
                    )
                })?;
            api.delete(&found.id).await?;
            out.note(&format!("deleted filesystem {} ({})", found.name, found.id));
        }
    }
    Ok(())
}

async fn agent_hook(args: AgentHook) -> ExitCode {
    let kind = match args.event {
        HookEvent::JobStarted => HookKind::JobStarted,
        HookEvent::JobCompleted => HookKind::JobCompleted,
    };
    if let Err(error) = send_hook(&AgentPaths::new(args.root.root), kind, args.runner).await {
        // A hook must never fail the job; the agent's process polling is the backstop.
        eprintln!("lambda-gha agent hook: could not reach the agent ({error}); continuing");
    }
    ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let out = Out {
        json: cli.global.json,
        quiet: cli.global.quiet,
    };
    let result = match cli.command {
        Command::Agent(AgentCommand::Run(args)) => agent_run(args).await,
        Command::Agent(AgentCommand::Hook(args)) => Ok(agent_hook(args).await),
        Command::Agent(AgentCommand::Gate(args)) => agent_gate(args).await,
        Command::Agent(AgentCommand::UnpackJit(args)) => agent_unpack_jit(&args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "lambda-gha",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "simulator")]
        Command::Sim(args) => sim(args).await,
        #[cfg(feature = "simulator")]
        Command::Demo => demo(&out).await,
        command => match settings(&cli.global) {
            Ok(settings) => match command {
                Command::Reap(args) => reap(args, &settings).await,
                other => everyday(other, &settings, &out).await,
            },
            Err(error) => Err(error),
        },
    };
    result.unwrap_or_else(|error| {
        eprintln!("lambda-gha: {error:#}");
        ExitCode::FAILURE
    })
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Agent(_) => "agent",
        Command::Reap(_) => "reap",
        Command::Completions { .. } => "completions",
        _ => "an everyday command",
    }
}

fn settings(global: &Global) -> Result<Settings> {
    let env = |name: &str| std::env::var(name).ok();
    let config = global
        .config
        .clone()
        .or_else(|| config::default_config_path(&env));
    let cwd = std::env::current_dir()?;
    let mut settings = config::load(&env, &cwd, config.as_deref())?;
    if let Some(url) = &global.api_url {
        settings.api_url = Some(url.clone());
    }
    Ok(settings)
}
