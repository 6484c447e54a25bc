//! `lambda-gha doctor`: what is set up and what is not, each with the fix. The checks that
//! need no network are separate from the one call that proves the key.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{self, Settings};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Ok,
    /// Works, but should be fixed.
    Warn,
    /// Does not work until fixed.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found, and the fix when it is not ok. Never a secret.
    pub detail: String,
}

impl Check {
    fn new(check: &'static str, status: Status, detail: impl Into<String>) -> Check {
        Check {
            check,
            status,
            detail: detail.into(),
        }
    }
}

/// Where `program` is on `path` (a `PATH` value), if anywhere.
pub fn find_on_path(program: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The checks that need no network: the config file, where the key and URL come from, and
/// the tools `ssh` and `run` call.
pub fn local_checks(settings: &Settings, config_file: Option<&Path>, path: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match config_file {
        Some(file) if file.is_file() => match config::key_file_exposure(file) {
            Some(problem) if settings.api_key_from_file => {
                Check::new("config file", Status::Warn, problem)
            }
            _ => Check::new("config file", Status::Ok, file.display().to_string()),
        },
        Some(file) => Check::new(
            "config file",
            Status::Ok,
            format!("{} (none; `lambda-gha login` makes it)", file.display()),
        ),
        None => Check::new(
            "config file",
            Status::Warn,
            "no HOME or XDG_CONFIG_HOME: name one with --config",
        ),
    });
    checks.push(match (&settings.api_key, &settings.api_key_source) {
        (Some(_), source) => Check::new(
            "API key",
            Status::Ok,
            format!("from {}", source.as_deref().unwrap_or("the config file")),
        ),
        (None, _) => Check::new(
            "API key",
            Status::Fail,
            "none: run `lambda-gha login`, or set LAMBDA_API_KEY",
        ),
    });
    checks.push(Check::new(
        "API URL",
        Status::Ok,
        match (&settings.api_url, &settings.api_url_source) {
            (Some(url), Some(source)) => format!("{url} (from {source})"),
            (Some(url), None) => url.clone(),
            (None, _) => format!("{} (Lambda's)", lambda_cloud::DEFAULT_BASE_URL),
        },
    ));
    checks.push(defaults(settings));
    checks.push(match find_on_path("ssh", path) {
        Some(found) => Check::new("ssh", Status::Ok, found.display().to_string()),
        None => Check::new(
            "ssh",
            Status::Fail,
            "not on PATH: `ssh` and `run` need OpenSSH's client (apt install openssh-client, \
             or brew install openssh)",
        ),
    });
    checks
}

/// The config file's defaults for `launch` and `run`, or that flags must name them.
fn defaults(settings: &Settings) -> Check {
    let set: Vec<String> = [
        ("instance_type", &settings.instance_type),
        ("region", &settings.region),
        ("ssh_key", &settings.ssh_key),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} = {v}")))
    .collect();
    Check::new(
        "defaults",
        Status::Ok,
        if set.is_empty() {
            "none in the config file: `launch` and `run` take --type (and --region, --ssh-key)"
                .to_owned()
        } else {
            format!("from the config file: {}", set.join(", "))
        },
    )
}

/// The one network check: the key against the API, by listing instance types.
pub async fn api_check(client: &lambda_cloud::Client) -> Check {
    match client.instance_types().list().await {
        Ok(types) => Check::new(
            "API",
            Status::Ok,
            format!(
                "key accepted; {} instance types, {} with capacity now",
                types.len(),
                types.available().len()
            ),
        ),
        Err(error) if matches!(error.status(), Some(401 | 403)) => Check::new(
            "API",
            Status::Fail,
            format!(
                "the key was refused (HTTP {}): make a new one at \
                 https://cloud.lambda.ai/api-keys and `lambda-gha login`",
                error.status().unwrap_or_default()
            ),
        ),
        Err(error) => Check::new("API", Status::Fail, format!("cannot use the API: {error}")),
    }
}

/// The report's table.
pub fn table(checks: &[Check]) -> crate::tables::Table {
    let mut table = crate::tables::Table::new(&["CHECK", "STATUS", "DETAIL"]);
    for c in checks {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        table.row(vec![
            c.check.to_owned(),
            status.to_owned(),
            c.detail.clone(),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_only_when_executable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("doctor-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ssh"), "").unwrap();
        let path = dir.display().to_string();
        assert_eq!(find_on_path("ssh", &path), None, "not executable");
        std::fs::set_permissions(dir.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_on_path("ssh", &path), Some(dir.join("ssh")));
        let checks = local_checks(&Settings::default(), None, &path);
        let statuses: Vec<_> = checks.iter().map(|c| (c.check, c.status)).collect();
        assert_eq!(
            statuses,
            [
                ("config file", Status::Warn),
                ("API key", Status::Fail),
                ("API URL", Status::Ok),
                ("defaults", Status::Ok),
                ("ssh", Status::Ok)
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
