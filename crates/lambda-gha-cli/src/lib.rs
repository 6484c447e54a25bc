//! The `lambda-gha` command's library: settings, the everyday commands' tables and JSON, and
//! the client they share. `main.rs` parses arguments and prints.

pub mod config;
pub mod cost;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod doctor;
mod error;
pub mod firewall;
pub mod guided;
pub mod jupyter;
pub mod launch;
pub mod names;
pub mod progress;
pub mod project;
pub mod prompt;
pub mod run;
pub mod serve;
#[cfg(feature = "simulator")]
pub mod serve_demo;
pub mod ssh;
pub mod tables;
pub use gha_runner_core::transport;

pub use error::CliError;

/// Which cloud a command works on (`--provider`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProviderChoice {
    /// Lambda Cloud (the default).
    #[default]
    Lambda,
    /// RunPod GPU pods (key in `RUNPOD_API_KEY`).
    RunPod,
}

/// The RunPod provider: the key in `RUNPOD_API_KEY`, `RUNPOD_API_URL` when set (https, or
/// http to a loopback address), paced to `LAMBDA_API_TIME_SCALE` for a fake.
pub fn runpod_provider() -> Result<gha_runner_runpod::RunPodProvider, CliError> {
    let var = |name| {
        std::env::var(name)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    let key = var("RUNPOD_API_KEY").ok_or(CliError::MissingRunPodKey)?;
    let scale = lambda_cloud::TimeScale::from_env(|name| std::env::var(name).ok())
        .map_err(CliError::TimeScale)?;
    let mut builder = gha_runner_runpod::Client::builder()
        .api_key(key)
        .time_scale(scale.factor());
    if let Some(url) = var("RUNPOD_API_URL") {
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|prefix| url.starts_with(prefix));
        if !url.starts_with("https://") && !loopback {
            return Err(CliError::InsecureRunPodUrl(url));
        }
        builder = builder.base_url(url);
    }
    Ok(gha_runner_runpod::RunPodProvider::new(builder.build()?))
}

/// A Lambda client from `settings` (and `LAMBDA_API_TIME_SCALE`, which paces the client to a
/// simulator's scaled clock).
pub fn client(settings: &config::Settings) -> Result<lambda_cloud::Client, CliError> {
    let key = settings
        .api_key
        .clone()
        .ok_or_else(|| CliError::MissingKey {
            config: "~/.config/lambda-gha/config.toml".to_owned(),
        })?;
    let mut builder = lambda_cloud::Client::builder()
        .api_key(key)
        .user_agent(concat!("lambda-gha/", env!("CARGO_PKG_VERSION")));
    if let Some(url) = &settings.api_url {
        builder = builder.base_url(url);
    }
    let scale = lambda_cloud::TimeScale::from_env(|name| std::env::var(name).ok())
        .map_err(CliError::TimeScale)?;
    builder = builder.time_scale(scale);
    Ok(builder.build()?)
}
