//! The `lambda-gha` command. It parses, calls the libraries, and prints: each group of
//! subcommands is a module of `commands/`; the logic lives in this crate's library,
//! `gha-runner-core` and `lambda-cloud`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use commands::agent::AgentCommand;
use commands::catalog::TypesArgs;
use commands::filesystems::FilesystemsCommand;
use commands::instances::{JupyterArgs, LaunchArgs, SshArgs};
use commands::reap::ReapArgs;
use commands::run::RunArgs;
#[cfg(feature = "simulator")]
use commands::sim::SimArgs;
use commands::ssh_keys::SshKeysCommand;
use commands::{Out, parse_duration_arg};
use lambda_gha_cli::ProviderChoice;
use lambda_gha_cli::config::{self, Settings};

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
    /// The cloud: `lambda` (key in LAMBDA_API_KEY) or `runpod` (key in RUNPOD_API_KEY; types,
    /// instances, terminate and reap).
    #[arg(long, global = true, value_enum, default_value = "lambda")]
    provider: Provider,
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

#[derive(Clone, Copy, clap::ValueEnum)]
enum Provider {
    Lambda,
    #[value(name = "runpod")]
    RunPod,
}

impl From<Provider> for ProviderChoice {
    fn from(provider: Provider) -> Self {
        match provider {
            Provider::Lambda => ProviderChoice::Lambda,
            Provider::RunPod => ProviderChoice::RunPod,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Store the API key in the config file (mode 600) after checking it with the API. The
    /// key is asked for with typing hidden, or read from stdin with --key-stdin.
    Login {
        /// Read the key from stdin (for scripts): `lambda-gha login --key-stdin < key.txt`.
        #[arg(long)]
        key_stdin: bool,
    },
    /// Remove the API key from the config file.
    Logout,
    /// Check the set-up: config file, where the API key comes from, that the API accepts it,
    /// and the tools `ssh` and `run` call. Exits 1 when something fails.
    Doctor,
    /// Instance types: GPU, price, size and where they have capacity, cheapest first.
    Types(TypesArgs),
    /// Regions.
    Regions,
    /// Machine images.
    Images,
    /// Your instances.
    #[command(visible_alias = "ls")]
    Instances,
    /// What is billing now: each machine's $/hour, time running and cost so far, and the
    /// totals per hour, day and month (an estimate from the prices; see README).
    Cost,
    /// One instance.
    Get {
        /// The instance's id or name.
        instance: String,
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
        /// The instance's id or name.
        instance: String,
        /// Give up after this long.
        #[arg(long, default_value = "20m", value_parser = parse_duration_arg)]
        timeout: std::time::Duration,
    },
    /// Open a shell on an instance, or run a command there (after `--`).
    Ssh(SshArgs),
    /// Wait until an instance's JupyterLab answers, then print its URL (the token only with
    /// --show-token) or open it in the browser (--open).
    Jupyter(JupyterArgs),
    /// Rename an instance (named by its id or its name).
    Rename {
        /// The instance's id or name.
        instance: String,
        /// Its new name.
        name: String,
    },
    /// Restart instances (named by id or name): they reboot and keep billing.
    Restart {
        /// The instances' ids or names.
        #[arg(required = true)]
        instances: Vec<String>,
    },
    /// Terminate instances (billing stops).
    Terminate {
        /// The instances' ids or names.
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
    /// Firewall rulesets (per region) and the global ruleset.
    #[command(subcommand)]
    Firewall(commands::firewall::FirewallCommand),
    /// The on-machine agent that ends a runner machine when its work is done.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Terminate machines this project launched that are past their expiry (or, with
    /// GitHub, whose runners are gone) and delete runner registrations whose machines are
    /// gone: the backstop for anything an agent could not end. Key from LAMBDA_API_KEY;
    /// GitHub token from GH_PAT or GITHUB_TOKEN.
    Reap(ReapArgs),
    /// The controller: GPU runners on demand from GitHub's `workflow_job` webhooks, so that
    /// workflows only change `runs-on`. `--config` names its file (README, "Just change
    /// runs-on"); its secrets come from the environment variables the file names.
    Serve(commands::serve::ServeArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Runs `command`: those that need no account first, then those that read the settings.
async fn dispatch(command: Command, global: &Global, out: &Out) -> Result<ExitCode> {
    use commands::{catalog, filesystems, instances, ssh_keys};
    let done = |()| ExitCode::SUCCESS;
    match command {
        Command::Agent(command) => return commands::agent::agent(command).await,
        Command::Serve(args) => {
            return commands::serve::serve(&args, global.config.as_deref(), out).await;
        }
        Command::Completions { shell } => {
            let mut cli = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cli, "lambda-gha", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        #[cfg(feature = "simulator")]
        Command::Sim(args) => return commands::sim::sim(args).await,
        #[cfg(feature = "simulator")]
        Command::Demo => return commands::sim::demo(out).await,
        _ => {}
    }
    let choice = ProviderChoice::from(global.provider);
    if choice == ProviderChoice::RunPod {
        return on_runpod(command, global, out).await;
    }
    let settings = settings(global)?;
    let config = config_path(global);
    match command {
        Command::Login { key_stdin } => {
            commands::account::login(key_stdin, &settings, config.as_deref(), out).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Logout => {
            commands::account::logout(&settings, config.as_deref(), out)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Doctor => {
            return commands::account::doctor(&settings, config.as_deref(), out).await;
        }
        _ => {}
    }
    if let Command::Reap(args) = command {
        return commands::reap::reap(args, &settings, choice).await;
    }
    if let Command::Run(args) = command {
        return commands::run::run(*args, &settings, out).await;
    }
    let client = lambda_gha_cli::client(&settings)?;
    let client = &client;
    match command {
        Command::Types(args) => catalog::types(client, args, out).await.map(done),
        Command::Regions => catalog::regions(client, out).await.map(done),
        Command::Images => catalog::images(client, out).await.map(done),
        Command::Instances => instances::list(client, out).await.map(done),
        Command::Cost => instances::cost(client, out).await.map(done),
        Command::Get { instance } => instances::get(client, &instance, out).await.map(done),
        Command::Wait { instance, timeout } => instances::wait(client, &instance, timeout, out)
            .await
            .map(done),
        Command::Terminate { ids, mine } => instances::terminate(client, ids, mine, out).await,
        Command::Rename { instance, name } => instances::rename(client, &instance, &name, out)
            .await
            .map(done),
        Command::Restart { instances } => {
            instances::restart(client, &instances, out).await.map(done)
        }
        Command::Launch(args) => instances::launch(client, args, &settings, out)
            .await
            .map(done),
        Command::Ssh(args) => instances::ssh(client, args).await,
        Command::Jupyter(args) => instances::jupyter(client, args, out).await.map(done),
        Command::SshKeys(command) => ssh_keys::ssh_keys(client, command, out).await.map(done),
        Command::Filesystems(command) => filesystems::filesystems(client, command, out)
            .await
            .map(done),
        Command::Firewall(command) => commands::firewall::firewall(client, command, out)
            .await
            .map(done),
        // Dispatched above: they need no client of their own.
        Command::Login { .. }
        | Command::Logout
        | Command::Doctor
        | Command::Agent(_)
        | Command::Completions { .. }
        | Command::Reap(_)
        | Command::Run(_)
        | Command::Serve(_) => Ok(ExitCode::SUCCESS),
        #[cfg(feature = "simulator")]
        Command::Sim(_) | Command::Demo => Ok(ExitCode::SUCCESS),
    }
}

/// The commands `--provider runpod` has; the others are Lambda's alone.
async fn on_runpod(command: Command, global: &Global, out: &Out) -> Result<ExitCode> {
    use commands::runpod;
    let lambda_only = |command| Err(lambda_gha_cli::CliError::LambdaOnly { command }.into());
    match command {
        Command::Types(_) => runpod::types(out).await,
        Command::Instances => runpod::instances(out).await,
        Command::Terminate { ids, mine: false } => runpod::terminate(ids, out).await,
        Command::Reap(args) => {
            commands::reap::reap(args, &settings(global)?, ProviderChoice::RunPod).await
        }
        Command::Terminate { mine: true, .. } => lambda_only("terminate --mine"),
        Command::Regions => lambda_only("regions"),
        Command::Images => lambda_only("images"),
        Command::Get { .. } => lambda_only("get"),
        Command::Cost => lambda_only("cost"),
        Command::Rename { .. } => lambda_only("rename"),
        Command::Restart { .. } => lambda_only("restart"),
        Command::Wait { .. } => lambda_only("wait"),
        Command::Launch(_) => lambda_only("launch"),
        Command::Run(_) => lambda_only("run"),
        Command::Ssh(_) => lambda_only("ssh"),
        Command::Jupyter(_) => lambda_only("jupyter"),
        Command::SshKeys(_) => lambda_only("ssh-keys"),
        Command::Filesystems(_) => lambda_only("filesystems"),
        Command::Firewall(_) => lambda_only("firewall"),
        Command::Login { .. } => lambda_only("login"),
        Command::Logout => lambda_only("logout"),
        Command::Doctor => lambda_only("doctor"),
        // Dispatched before any provider is chosen.
        Command::Agent(_) | Command::Completions { .. } | Command::Serve(_) => {
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "simulator")]
        Command::Sim(_) | Command::Demo => Ok(ExitCode::SUCCESS),
    }
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
        // Colour for a person at a terminal; none in a file, journald or a container's log
        // (`serve` runs there), and none when NO_COLOR asks (no-color.org).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let out = Out {
        json: cli.global.json,
        quiet: cli.global.quiet,
    };
    dispatch(cli.command, &cli.global, &out)
        .await
        .unwrap_or_else(|error| {
            eprintln!("lambda-gha: {error:#}");
            ExitCode::FAILURE
        })
}

/// The config file: `--config`, or the default path.
fn config_path(global: &Global) -> Option<PathBuf> {
    global
        .config
        .clone()
        .or_else(|| config::default_config_path(&commands::env))
}

/// The settings in effect: the config file, `.env`, the environment, then `--api-url`.
fn settings(global: &Global) -> Result<Settings> {
    let config = config_path(global);
    let cwd = std::env::current_dir()?;
    let mut settings = config::load(&commands::env, &cwd, config.as_deref())?;
    if let Some(url) = &global.api_url {
        settings.api_url = Some(url.clone());
        settings.api_url_source = Some("--api-url".to_owned());
    }
    Ok(settings)
}
