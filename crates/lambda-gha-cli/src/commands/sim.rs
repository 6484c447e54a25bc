//! `sim` and `demo`: the embedded simulator.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use lambda_cloud::TimeScale;

use super::{Out, exit_code, run::print_summary};

#[derive(Args)]
pub(crate) struct SimArgs {
    /// The address to serve on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: std::net::SocketAddr,
    /// A TOML scenario: catalog, capacity over time, faults (see the README).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Simulated seconds per real second (60: a three-minute boot takes three seconds).
    #[arg(long, default_value = "1", value_parser = TimeScale::parse)]
    time_scale: TimeScale,
    /// Run instances' user data, and let `run --sim-sandbox DIR` reach them, in DIR.
    #[arg(long, value_name = "DIR")]
    sandbox: Option<PathBuf>,
    /// Never answer 429.
    #[arg(long)]
    no_rate_limits: bool,
}

pub(crate) async fn sim(args: SimArgs) -> Result<ExitCode> {
    let scenario = match &args.scenario {
        Some(path) => lambda_cloud_sim::Scenario::from_file(path)?,
        None => lambda_cloud_sim::Scenario::default(),
    };
    let mut builder = lambda_cloud_sim::Sim::builder()
        .scenario(scenario)
        .listen(args.listen)
        .time_scale(args.time_scale);
    if args.no_rate_limits {
        // Only switched off here: a scenario's own setting stands otherwise.
        builder = builder.rate_limits(false);
    }
    if let Some(dir) = &args.sandbox {
        builder = builder.user_data_sandbox(dir);
    }
    let sim = builder.start().await?;
    let url = sim.base_url();
    let scale = if args.time_scale.is_real() {
        String::new()
    } else {
        format!(" {}={}", lambda_cloud::TIME_SCALE_ENV, args.time_scale)
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

pub(crate) async fn demo(out: &Out) -> Result<ExitCode> {
    let report = lambda_gha_cli::demo::demo(out.ui(), &mut super::run::interrupts())
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
