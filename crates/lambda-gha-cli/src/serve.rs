//! `lambda-gha serve`: the controller ([`gha_runner_controller`]) put together from its
//! configuration file and the environment, which holds every secret the file names by
//! variable (the GitHub token, the webhook secret, the provider's key).

use std::sync::Arc;

use gha_runner_controller::config::{GitHubAuth, ProviderSettings};
use gha_runner_controller::{
    AppKey, BootTemplate, Controller, ControllerConfig, ControllerError, GitHubSource, Parts,
    WebhookSecret,
};
use gha_runner_core::agent_config::AgentTimings;
use gha_runner_core::boot_log::MachineAccess;
use gha_runner_core::boot_script::RunnerPrivileges;
use gha_runner_core::health::GpuGate;
use gha_runner_core::provider::MachineKey;
use gha_runner_core::provisioner::BootSettings;
use gha_runner_core::runner_release::{RUNNER_DOWNLOAD_BASE, RUNNER_RELEASES_API, RunnerVersion};
use gha_runner_core::{CloudProvider, GitHub};
use secrecy::SecretString;

use crate::CliError;

/// A controller ready to serve, and its webhook secret.
pub struct Serving {
    /// The controller.
    pub controller: Controller,
    /// The key deliveries are checked with.
    pub secret: WebhookSecret,
}

/// Where the environment's values come from (the process's, or a test's).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn secret(env: Env<'_>, variable: &str, why: &str) -> Result<SecretString, CliError> {
    env(variable)
        .filter(|v| !v.trim().is_empty())
        .map(SecretString::from)
        .ok_or_else(|| {
            ControllerError::MissingSecret {
                variable: variable.to_owned(),
                why: why.to_owned(),
            }
            .into()
        })
}

/// The provider the configuration names, with its key from the environment, and its launch
/// interval in the time its API runs on (a simulator's is scaled).
fn provider(
    settings: &ProviderSettings,
    env: Env<'_>,
) -> Result<(Arc<dyn CloudProvider>, SecretString, std::time::Duration), CliError> {
    let key = secret(env, &settings.api_key_env, "the cloud provider's API key")?;
    let scale = lambda_cloud::TimeScale::from_env(env).map_err(CliError::TimeScale)?;
    let provider: Arc<dyn CloudProvider> = if settings.name == "runpod" {
        let mut builder = gha_runner_runpod::Client::builder()
            .api_key(key.clone())
            .time_scale(scale.factor());
        if let Some(url) = &settings.api_url {
            builder = builder.base_url(url.clone());
        }
        Arc::new(gha_runner_runpod::RunPodProvider::new(builder.build()?))
    } else {
        let mut builder = lambda_cloud::Client::builder()
            .api_key(key.clone())
            .user_agent(concat!("lambda-gha-serve/", env!("CARGO_PKG_VERSION")))
            .time_scale(scale);
        if let Some(url) = &settings.api_url {
            builder = builder.base_url(url);
        }
        Arc::new(gha_runner_lambda::LambdaProvider::new(builder.build()?))
    };
    let interval = provider
        .capabilities()
        .launch_interval
        .div_f64(scale.factor());
    Ok((provider, key, interval))
}

/// The boot settings of every machine: this version's agent from the configuration, the
/// runner GitHub serves, and, where the provider gives machines no key of their own, the
/// launcher's key for self-termination.
fn boot_template(
    config: &ControllerConfig,
    provider: &dyn CloudProvider,
    key: SecretString,
) -> Result<BootTemplate, CliError> {
    let agent = config
        .agent
        .clone()
        .ok_or_else(|| ControllerError::Config {
            path: "the configuration".to_owned(),
            message: "no `[agent]`: machines download the agent binary; set `url` and `sha256` \
                  from this version's release (its SHA256SUMS)"
                .to_owned(),
        })?;
    let launchers_key =
        matches!(provider.capabilities().machine_key, MachineKey::Launchers).then_some(key);
    let api_url = config.provider.api_url.clone();
    Ok(Arc::new(move || BootSettings {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        agent: agent.clone(),
        runner: RunnerVersion::Served,
        runner_releases_api: RUNNER_RELEASES_API.to_owned(),
        runner_download_base: RUNNER_DOWNLOAD_BASE.to_owned(),
        privileges: RunnerPrivileges::default(),
        user_script: None,
        agent_api_url: api_url.clone(),
        agent_api_key: launchers_key.clone(),
        self_terminate: true,
        timings: AgentTimings::default(),
        gpu_gate: GpuGate::default(),
    }))
}

/// The controller `config` describes, its secrets read from `env` (`PGPASSWORD` too, for a
/// PostgreSQL store). Every missing secret is named before anything starts; the store is
/// opened (and its schema brought up to date) last.
pub async fn controller(config: ControllerConfig, env: Env<'_>) -> Result<Serving, CliError> {
    let webhook = secret(
        env,
        &config.github.webhook_secret_env,
        "the webhook's secret, as set in GitHub's webhook settings",
    )?;
    let github = match &config.github.auth {
        GitHubAuth::Token { env: variable } => {
            let token = secret(
                env,
                variable,
                "a GitHub token that may manage self-hosted runners (Administration: write)",
            )?;
            GitHubSource::token(GitHub::new(
                &token,
                config.github.api_url.as_deref(),
                config.github.server_url.as_deref(),
                config.github.scope.clone(),
            )?)
        }
        GitHubAuth::App {
            app_id,
            installation_id,
            private_key_env,
        } => {
            let pem = secret(env, private_key_env, "the GitHub App's private key (PEM)")?;
            GitHubSource::app(
                AppKey::from_pem(*app_id, *installation_id, &pem)?,
                config.github.api_url.clone(),
                config.github.server_url.clone(),
                config.github.scope.clone(),
            )
        }
    };
    let (provider, key, launch_interval) = provider(&config.provider, env)?;
    let boot = boot_template(&config, provider.as_ref(), key)?;
    let password = env("PGPASSWORD")
        .filter(|p| !p.is_empty())
        .map(SecretString::from);
    let store = config.database.open(password.as_ref()).await?;
    Ok(Serving {
        controller: Controller::new(Parts {
            config,
            store,
            provider,
            github,
            boot,
            access: MachineAccess::Unavailable {
                why: "the controller does not log in to machines".to_owned(),
            },
            launch_interval,
        }),
        secret: WebhookSecret::new(&webhook),
    })
}
