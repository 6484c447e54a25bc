//! `serve`: the controller, until Ctrl-C or SIGTERM.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use gha_runner_controller::ControllerConfig;
use tokio::signal::unix::{SignalKind, signal};

/// Loads the controller's file, starts it on its `listen` address, and serves until
/// interrupted.
pub(crate) async fn serve(config: Option<&Path>) -> Result<ExitCode> {
    let path = config.context(
        "`serve` needs its configuration: `lambda-gha serve --config controller.toml` \
         (README, \"Just change runs-on\")",
    )?;
    let config = ControllerConfig::load(path)?;
    let listen = config.listen;
    let serving = lambda_gha_cli::serve::controller(config, &super::env)?;
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
