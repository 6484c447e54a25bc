//! `serve`: the controller, until Ctrl-C or SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use gha_runner_controller::{ControllerConfig, Database};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Where the state lives, over the file's `database`: a SQLite file, or
    /// `postgres://user@host:5432/dbname` for several replicas behind a load balancer (the
    /// password, if any, in PGPASSWORD).
    #[arg(long, value_name = "PATH_OR_URL")]
    database: Option<String>,
    /// The whole loop offline: the embedded simulator, a fake GitHub sending signed webhooks
    /// for a small workflow, and the controller with its status page; nothing to set up.
    #[cfg(feature = "simulator")]
    #[arg(long)]
    demo: bool,
}

/// Loads the controller's file, starts it on its `listen` address, and serves until
/// interrupted; or, with `--demo`, runs the demo.
pub(crate) async fn serve(
    args: &ServeArgs,
    config: Option<&Path>,
    out: &super::Out,
) -> Result<ExitCode> {
    #[cfg(feature = "simulator")]
    if args.demo {
        return demo(out).await;
    }
    let _ = (args, out);
    let path = config.context(
        "`serve` needs its configuration: `lambda-gha serve --config controller.toml` \
         (README, \"Just change runs-on\")",
    )?;
    let mut config = ControllerConfig::load(path)?;
    if let Some(database) = &args.database {
        config.database =
            Database::parse(database).map_err(|e| anyhow::anyhow!("--database: {e}"))?;
    }
    let listen = config.listen;
    let serving = lambda_gha_cli::serve::controller(config, &super::env).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!(
        "lambda-gha serve: webhooks at http://{listen}/webhook, status at http://{listen}/, metrics at http://{listen}/metrics"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Installed before serving: a signal from here on is never missed.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("lambda-gha serve: stopping (launches in flight are ended at the next start)");
        let _ = stop.send(true);
    });
    gha_runner_controller::serve(serving.controller, serving.secret, listener, stopped).await?;
    Ok(ExitCode::SUCCESS)
}

/// `serve --demo`: runs it, then says what it proved.
#[cfg(feature = "simulator")]
async fn demo(out: &super::Out) -> Result<ExitCode> {
    let report = lambda_gha_cli::serve_demo::demo(out.ui())
        .await
        .map_err(anyhow::Error::msg)?;
    let (queued, ran) = report.jobs;
    let billing = report.ledger.still_billing.len();
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{ran} of the {} jobs a pool serves ran on {} machines; {} job left alone (no pool serves ubuntu-latest); simulated bill ${:.2}; still billing: {billing}; runners registered: {}",
            queued - 1,
            report.machines,
            1,
            report.ledger.total_cost_cents / 100.0,
            report.runners_left
        );
    }
    Ok(
        if ran == queued - 1 && billing == 0 && report.runners_left == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}
