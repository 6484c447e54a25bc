//! `reap`: the backstop that ends what an agent could not.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use gha_runner_core::{CloudProvider, GitHub, RunnerScope, reaper::ReapPolicy};
use gha_runner_lambda::LambdaProvider;
use lambda_gha_cli::ProviderChoice;
use lambda_gha_cli::config::Settings;
use secrecy::SecretString;

use super::parse_duration_arg;

#[derive(Args)]
pub(crate) struct ReapArgs {
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

fn github(args: &ReapArgs) -> Result<Option<GitHub>> {
    let Some(repository) = &args.github_repository else {
        return Ok(None);
    };
    let token = ["GH_PAT", "GITHUB_TOKEN"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .map(SecretString::from)
        .context("--github-repository needs a token in GH_PAT or GITHUB_TOKEN")?;
    let scope = RunnerScope::parse(&args.scope, repository, None)?;
    Ok(Some(GitHub::new(
        &token,
        std::env::var("GITHUB_API_URL").ok().as_deref(),
        std::env::var("GITHUB_SERVER_URL").ok().as_deref(),
        scope,
    )?))
}

pub(crate) async fn reap(
    args: ReapArgs,
    settings: &Settings,
    choice: ProviderChoice,
) -> Result<ExitCode> {
    let (lambda, runpod);
    // Lambda's launch keys are reaped too; RunPod has none.
    let (provider, launch_keys): (&dyn CloudProvider, Option<&LambdaProvider>) = match choice {
        ProviderChoice::Lambda => {
            lambda = LambdaProvider::new(lambda_gha_cli::client(settings)?);
            (&lambda, Some(&lambda))
        }
        ProviderChoice::RunPod => {
            runpod = lambda_gha_cli::runpod_provider()?;
            (&runpod, None)
        }
    };
    let github = github(&args)?;
    let policy = ReapPolicy {
        orphan_after: args.orphan_after,
        dry_run: args.dry_run,
        ..ReapPolicy::now()
    };
    let report = gha_runner_core::reaper::reap(provider, github.as_ref(), policy).await?;
    let (end, delete) = if args.dry_run {
        ("would terminate", "would delete")
    } else {
        ("terminated", "deleted")
    };
    println!(
        "reap: {} machine(s) of lambda-gha alive, {} to end",
        report.examined,
        report.reaped.len()
    );
    for (machine, reason) in &report.reaped {
        println!(
            "  {end} {} ({} in {}): {reason}",
            machine.id, machine.instance_type, machine.region
        );
    }
    for (id, name) in &report.ghost_runners {
        println!("  {delete} runner {name} ({id}): its machine is gone");
    }
    let keys = match launch_keys {
        Some(lambda) => lambda.reap_launch_keys(&policy).await,
        None => Ok(Vec::new()),
    };
    for name in keys.iter().flatten() {
        println!("  {delete} SSH key {name}: made for a launch that was cut short");
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
