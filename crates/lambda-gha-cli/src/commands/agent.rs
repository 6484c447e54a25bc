//! `agent`: the on-machine agent that ends a runner machine when its work is done.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use gha_runner_core::{
    agent::Agent, agent::AgentClock, agent::AgentOutcome, agent::AgentPaths, agent::HookKind,
    agent::ProviderFactories, agent::ProviderFactory, agent::send_hook, agent_config::AgentConfig,
};
use lambda_cloud::TimeScale;
use secrecy::SecretString;

#[derive(Subcommand)]
pub(crate) enum AgentCommand {
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
pub(crate) struct AgentUnpackJit {
    /// The file holding the encoded JIT configuration (root-only).
    #[arg(long)]
    from: PathBuf,
    /// The runner's directory.
    #[arg(long)]
    into: PathBuf,
}

#[derive(Args)]
pub(crate) struct AgentRun {
    /// The agent's configuration, written by the boot script.
    #[arg(long, default_value = "/etc/lambda-gha/agent.json")]
    config: PathBuf,
    #[command(flatten)]
    root: Root,
}

#[derive(Args)]
pub(crate) struct AgentHook {
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
    #[arg(long, env = "SIM_MACHINE_SANDBOX", default_value = "/")]
    root: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum HookEvent {
    /// `ACTIONS_RUNNER_HOOK_JOB_STARTED`.
    JobStarted,
    /// `ACTIONS_RUNNER_HOOK_JOB_COMPLETED`.
    JobCompleted,
}

pub(crate) async fn agent(command: AgentCommand) -> Result<ExitCode> {
    match command {
        AgentCommand::Run(args) => run(args).await,
        AgentCommand::Hook(args) => Ok(hook(args).await),
        AgentCommand::Gate(args) => gate(args).await,
        AgentCommand::UnpackJit(args) => unpack_jit(&args),
    }
}

/// The simulator's time scale, when the agent runs under one (real time otherwise, and when the
/// variable is unreadable: the agent must end its machine whatever else is wrong).
fn time_scale() -> TimeScale {
    TimeScale::from_env(super::env).unwrap_or_default()
}

fn config(path: &PathBuf) -> Result<AgentConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not an agent configuration", path.display()))
}

async fn gate(args: AgentRun) -> Result<ExitCode> {
    let Some(gate) = config(&args.config)?.health else {
        println!("GPU health gate: none configured");
        return Ok(ExitCode::SUCCESS);
    };
    let report = gate.run(&args.root.root, time_scale().factor()).await;
    let verdict = AgentPaths::new(&args.root.root).health();
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

fn unpack_jit(args: &AgentUnpackJit) -> Result<ExitCode> {
    let encoded = std::fs::read_to_string(&args.from)
        .with_context(|| format!("cannot read {}", args.from.display()))?;
    gha_runner_core::jit::unpack_jit_config(&SecretString::from(encoded), &args.into)?;
    Ok(ExitCode::SUCCESS)
}

/// The providers this agent can end its machine through, by the name in its configuration.
const PROVIDERS: ProviderFactories<'static> = ProviderFactories(&[
    (
        "lambda",
        gha_runner_lambda::agent_provider as ProviderFactory,
    ),
    ("runpod", gha_runner_runpod::agent_provider),
]);

async fn run(args: AgentRun) -> Result<ExitCode> {
    let config = config(&args.config)?;
    let scale = time_scale();
    // Whatever is wrong with the provider, the agent still stops the runners when they are
    // done; only the terminate is then left to the action's stop job or the reaper.
    let provider = PROVIDERS
        .build(&config, scale.factor())
        .unwrap_or_else(|error| {
            eprintln!("lambda-gha agent: {error}");
            None
        });
    let paths = AgentPaths::new(args.root.root);
    let clock = AgentClock::since_boot(&paths, scale.factor());
    let agent = Agent::new(config, provider.as_deref(), paths, clock);
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

async fn hook(args: AgentHook) -> ExitCode {
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
