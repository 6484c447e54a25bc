//! `login`, `logout`, `doctor`: the API key kept in the config file, and what is set up.

use std::io::{IsTerminal as _, Read as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use lambda_gha_cli::config::{self, Settings};
use lambda_gha_cli::doctor::{self, Status};
use lambda_gha_cli::prompt;
use secrecy::SecretString;

use super::{Out, env};

fn config_path(config: Option<&Path>) -> Result<&Path> {
    config.context("no config file to use: set HOME, or name one with --config FILE")
}

/// `login [--key-stdin]`: reads the key (hidden, or from stdin), checks it against the API,
/// and stores it 0600 in the config file. Nothing is stored when the API refuses it.
pub(crate) async fn login(
    key_stdin: bool,
    settings: &Settings,
    config: Option<&Path>,
    out: &Out,
) -> Result<()> {
    let path = config_path(config)?;
    let key = if key_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the key from stdin")?;
        text.trim().to_owned()
    } else if std::io::stdin().is_terminal() {
        prompt::read_hidden(
            "Lambda API key (typing is hidden; make one at https://cloud.lambda.ai/api-keys): ",
        )
        .context("cannot read the key from the terminal")?
        .trim()
        .to_owned()
    } else {
        bail!("stdin is not a terminal: pipe the key in with `lambda-gha login --key-stdin`");
    };
    if key.is_empty() {
        bail!("no key given: nothing stored");
    }
    let key = SecretString::from(key);
    let trial = Settings {
        api_key: Some(key.clone()),
        api_url: settings.api_url.clone(),
        ..Settings::default()
    };
    let check = doctor::api_check(&lambda_gha_cli::client(&trial)?).await;
    if check.status != Status::Ok {
        bail!("{}; nothing stored", check.detail);
    }
    config::store_api_key(path, &key)?;
    out.note(&format!(
        "{}. Stored the key in {} (mode 600).",
        check.detail,
        path.display()
    ));
    if let Some(source) = settings
        .api_key_source
        .as_deref()
        .filter(|_| !settings.api_key_from_file)
    {
        out.note(&format!(
            "LAMBDA_API_KEY from {source} still comes first while it is set."
        ));
    }
    Ok(())
}

/// `logout`: removes the key from the config file.
pub(crate) fn logout(settings: &Settings, config: Option<&Path>, out: &Out) -> Result<()> {
    let path = config_path(config)?;
    if config::remove_api_key(path)? {
        out.note(&format!("Removed the API key from {}.", path.display()));
    } else {
        out.note(&format!("No API key in {}.", path.display()));
    }
    if let Some(source) = settings
        .api_key_source
        .as_deref()
        .filter(|_| !settings.api_key_from_file)
    {
        out.note(&format!(
            "LAMBDA_API_KEY is still set in {source}: remove it there too."
        ));
    }
    Ok(())
}

/// `doctor`: the local checks, then the key against the API; exit 1 when one fails.
pub(crate) async fn doctor(
    settings: &Settings,
    config: Option<&Path>,
    out: &Out,
) -> Result<ExitCode> {
    let mut checks = doctor::local_checks(settings, config, &env("PATH").unwrap_or_default());
    if settings.api_key.is_some() {
        checks.push(doctor::api_check(&lambda_gha_cli::client(settings)?).await);
    }
    out.show(&checks, |c| doctor::table(c))?;
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
