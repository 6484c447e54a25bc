//! `lambda-cloud-sim`: serve a simulated Lambda Cloud until Ctrl-C.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use lambda_cloud_sim::{Scenario, Sim};

const USAGE: &str = "\
lambda-cloud-sim: a local, stateful Lambda Cloud API for tests and demos

usage: lambda-cloud-sim [options]

options:
  --listen ADDR        address to serve on (default 127.0.0.1:8787; port 0 picks a free one)
  --scenario FILE      TOML scenario: catalog, capacity timeline, faults (see README)
  --api-key KEY        accept only this key (default: any non-empty key)
  --time-scale N       simulated seconds per real second (default 1; 100 = 100x faster)
  --no-rate-limits     never answer 429
  --run-user-data DIR  run each instance's user data in a sandbox under DIR
  --rootfs ROOTFS      with --run-user-data: boot instances as root in their own copy of
                       ROOTFS (`cargo xtask rootfs` builds one; needs root)
  -h, --help           this help

Prints its base URL on one line when ready; Ctrl-C stops it.";

struct Options {
    listen: SocketAddr,
    scenario: Option<PathBuf>,
    api_key: Option<String>,
    time_scale: f64,
    rate_limits: bool,
    sandbox: Option<PathBuf>,
    rootfs: Option<PathBuf>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
        scenario: None,
        api_key: None,
        time_scale: 1.0,
        rate_limits: true,
        sandbox: None,
        rootfs: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("`{name}` needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let text = value("--listen")?;
                options.listen = text.parse().with_context(|| {
                    format!("`--listen {text}`: expected an address such as 127.0.0.1:8787")
                })?;
            }
            "--scenario" => options.scenario = Some(value("--scenario")?.into()),
            "--api-key" => options.api_key = Some(value("--api-key")?),
            "--time-scale" => {
                let text = value("--time-scale")?;
                options.time_scale = text.parse().with_context(|| {
                    format!("`--time-scale {text}`: expected a number such as 1 or 100")
                })?;
            }
            "--no-rate-limits" => options.rate_limits = false,
            "--run-user-data" => options.sandbox = Some(value("--run-user-data")?.into()),
            "--rootfs" => options.rootfs = Some(value("--rootfs")?.into()),
            other => bail!("unknown option `{other}` (see --help)"),
        }
    }
    Ok(Some(options))
}

async fn run(options: Options) -> Result<()> {
    let scenario = match &options.scenario {
        Some(path) => Scenario::from_file(path)?,
        None => Scenario::default(),
    };
    let mut builder = Sim::builder()
        .scenario(scenario)
        .listen(options.listen)
        .time_scale(options.time_scale)
        .rate_limits(options.rate_limits);
    if let Some(key) = options.api_key {
        builder = builder.api_key(key);
    }
    match (options.sandbox, options.rootfs) {
        (Some(sandbox), rootfs) => {
            builder = builder.user_data_sandbox(sandbox);
            if let Some(rootfs) = rootfs {
                builder = builder.machine_rootfs(rootfs);
            }
        }
        (None, Some(_)) => {
            bail!("`--rootfs` boots machines under `--run-user-data DIR`: give both")
        }
        (None, None) => {}
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("lambda_cloud_sim=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("lambda-cloud-sim: {error:#}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lambda-cloud-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}
