//! The `lambda-gha` command's library: settings, the everyday commands' tables and JSON, and
//! the client they share. `main.rs` parses arguments and prints.

#![deny(missing_docs)]

pub mod config;
mod error;
pub mod launch;
pub mod ssh;
pub mod tables;

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
    if let Some(scale) = std::env::var("LAMBDA_API_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 1.0)
    {
        builder = builder.rate_limits(lambda_cloud::RateLimits::DOCUMENTED.time_scaled(scale));
    }
    Ok(builder.build()?)
}
