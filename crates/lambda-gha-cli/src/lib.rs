//! The `lambda-gha` command's library: settings, the everyday commands' tables and JSON, and
//! the client they share. `main.rs` parses arguments and prints.

pub mod config;
#[cfg(feature = "simulator")]
pub mod demo;
mod error;
pub mod launch;
pub mod progress;
pub mod project;
pub mod run;
pub mod ssh;
pub mod tables;
pub use gha_runner_core::transport;

pub use error::CliError;

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
