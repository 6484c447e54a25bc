//! `lambda-cloud-sim`: serve a simulated Lambda Cloud until Ctrl-C.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use lambda_cloud::TimeScale;
use lambda_cloud_sim::{Scenario, Sim};

/// A local, stateful Lambda Cloud API for tests and demos. Prints its base URL on one line
/// when ready; Ctrl-C stops it.
#[derive(Parser)]
#[command(name = "lambda-cloud-sim", version, about, long_about = None)]
struct Options {
    /// The address to serve on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    listen: SocketAddr,
    /// A TOML scenario: catalog, capacity timeline, faults (default: the embedded
    /// `scenarios/default.toml`).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Accept only this key (default: any non-empty key).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Simulated seconds per real second (100 runs 100x faster).
    #[arg(long, default_value = "1", value_parser = TimeScale::parse, value_name = "N")]
    time_scale: TimeScale,
    /// Never answer 429.
    #[arg(long)]
    no_rate_limits: bool,
    /// Run each instance's user data in a sandbox under DIR.
    #[arg(long, value_name = "DIR")]
    run_user_data: Option<PathBuf>,
    /// With --run-user-data: boot instances as root in their own copy of ROOTFS (`cargo xtask
    /// rootfs` builds one; needs root).
    #[arg(long, value_name = "ROOTFS", requires = "run_user_data")]
    rootfs: Option<PathBuf>,
}

async fn run(options: Options) -> Result<()> {
    let scenario = match &options.scenario {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::default(),
    };
    let mut builder = Sim::builder()
        .scenario(scenario)
        .listen(options.listen)
        .time_scale(options.time_scale);
    if options.no_rate_limits {
        // Only switched off here: a scenario's own setting stands otherwise.
        builder = builder.rate_limits(false);
    }
    if let Some(key) = options.api_key {
        builder = builder.api_key(key);
    }
    if let Some(sandbox) = options.run_user_data {
        builder = builder.user_data_sandbox(sandbox);
    }
    if let Some(rootfs) = options.rootfs {
        builder = builder.machine_rootfs(rootfs);
    }
    let sim = builder.start().await?;
    println!("{}", sim.base_url());
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("lambda-cloud-sim: stopping");
    sim.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("lambda_cloud_sim=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lambda-cloud-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}
