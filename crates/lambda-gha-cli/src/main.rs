//! The `lambda-gha` command. It parses, calls the libraries, and prints; the logic lives in
//! `gha-runner-core` and `lambda-cloud`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use gha_runner_core::{
    Agent, AgentClock, AgentConfig, AgentOutcome, AgentPaths, CloudProvider, GitHub, HookKind,
    LambdaProvider, ReapPolicy, RunnerScope, send_hook,
};
use secrecy::SecretString;

/// Ephemeral GitHub Actions runners and GPU runs on Lambda Cloud.
#[derive(Parser)]
#[command(name = "lambda-gha", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The on-machine agent that ends a runner machine when its work is done.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Terminate machines this project launched that are past their expiry (or, with
    /// GitHub, whose runners are gone) and delete runner registrations whose machines are
    /// gone: the backstop for anything an agent could not end. Key from LAMBDA_API_KEY;
    /// GitHub token from GH_PAT or GITHUB_TOKEN.
    Reap(ReapArgs),
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
    /// The Lambda API base URL (default: Lambda's public API, or LAMBDA_API_URL).
    #[arg(long, env = "LAMBDA_API_URL")]
    api_url: Option<String>,
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
                .rate_limits(lambda_cloud::RateLimits::DOCUMENTED.time_scaled(scale));
            if let Some(url) = &config.api_url {
                builder = builder.base_url(url);
            }
            Some(LambdaProvider::new(builder.build()?))
        }
        _ => None,
    };
    let agent = Agent::new(
        config,
        provider.as_ref().map(|p| p as &dyn CloudProvider),
        AgentPaths::new(args.root.root),
        AgentClock::new(scale),
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

async fn reap(args: ReapArgs) -> Result<ExitCode> {
    let mut builder = lambda_cloud::Client::builder();
    if let Some(url) = &args.api_url {
        builder = builder.base_url(url);
    }
    let provider = LambdaProvider::new(builder.build()?);
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
    for (id, why) in &report.cleanup.not_terminated {
        eprintln!("  COULD NOT TERMINATE {id}: {why}; it may be billing");
    }
    for (id, why) in &report.cleanup.runners_not_deleted {
        eprintln!("  could not delete runner {id}: {why}");
    }
    Ok(if report.cleanup.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(AgentCommand::Run(args)) => agent_run(args).await,
        Command::Agent(AgentCommand::Hook(args)) => Ok(agent_hook(args).await),
        Command::Reap(args) => reap(args).await,
    };
    result.unwrap_or_else(|error| {
        eprintln!("lambda-gha: {error:#}");
        ExitCode::FAILURE
    })
}
