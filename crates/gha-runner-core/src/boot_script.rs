//! The per-machine boot script (cloud-init user data), rendered from `templates/boot.sh`.
//!
//! Every value is shell-quoted; secrets go only into quoted heredocs that write root-only
//! files; the result is checked against Lambda's 1 MB limit. A placeholder left unfilled, or a
//! value no placeholder takes, is an error, so the template and the renderer cannot drift.

use std::fmt::Write as _;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::CoreError;
use crate::runner_release::{RunnerDownload, RunnerPackage};

const TEMPLATE: &str = include_str!("../templates/boot.sh");
/// The most bytes of user data a provider accepts (Lambda: 1 MB).
pub const MAX_USER_DATA_BYTES: usize = 1_000_000;
const SECRET_DELIMITER: &str = "LAMBDA_GHA_SECRET";
const USER_SCRIPT_DELIMITER: &str = "LAMBDA_GHA_USER_SCRIPT";
const TERMINATE_SELF_DELIMITER: &str = "LAMBDA_GHA_TERMINATE_SELF";
/// How long after its maximum lifetime the watchdog ends a machine: the agent's orderly stop
/// (runners stopped, then terminate) comes first.
pub const WATCHDOG_MARGIN: std::time::Duration = std::time::Duration::from_secs(120);
/// Below this much free space (KiB) a machine does not use its cache volume: a full volume
/// would fail the jobs' writes to their caches.
pub const CACHE_MIN_FREE_KIB: u64 = 1024 * 1024;

/// Where the agent binary comes from, with its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentDownload {
    /// The download URL of the `lambda-gha` binary for the machine.
    pub url: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// Where a machine gets the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AgentSource {
    /// Release binaries, one per CPU architecture; a machine whose CPU has none fails its
    /// boot with that reason.
    Release {
        /// For x86_64 machines.
        x86_64: Option<AgentDownload>,
        /// For aarch64 machines (GH200).
        aarch64: Option<AgentDownload>,
    },
    /// For refs with no release (branches, commits, forks): an x86_64 binary the launcher
    /// built once, delivered to each machine over its access (SSH with the launch key) as
    /// soon as the machine answers; the boot waits for it at [`AGENT_DELIVERY_PATH`] and
    /// checks its SHA-256. No machine compiles anything.
    Delivered {
        /// The binary on the launcher.
        path: std::path::PathBuf,
        /// Its SHA-256, hex.
        sha256: String,
    },
}

/// Where the launcher puts a delivered agent on a machine (root-only directory).
pub const AGENT_DELIVERY_PATH: &str = "/var/lib/lambda-gha/incoming/lambda-gha";
/// How long a boot waits for a delivered agent before it fails.
pub const AGENT_DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

impl AgentSource {
    /// One x86_64 binary (most instance types).
    pub fn x86_64(download: AgentDownload) -> AgentSource {
        AgentSource::Release {
            x86_64: Some(download),
            aarch64: None,
        }
    }
}

/// How a runner proves itself to GitHub.
#[derive(Clone)]
pub enum RunnerCredential {
    /// A just-in-time configuration (one runner, one job).
    Jit(SecretString),
    /// A registration token shared by the machine's runners (reusable runners).
    RegistrationToken(SecretString),
}

/// One runner on the machine.
pub struct RunnerBoot {
    /// The name it registers under (its machine's label and index, then `-rN`).
    pub name: String,
    /// The labels it registers with, the launch's own label first.
    pub labels: Vec<String>,
    /// How it registers: a JIT configuration or the launch's registration token.
    pub credential: RunnerCredential,
    /// The GPUs it sees (`CUDA_VISIBLE_DEVICES`, e.g. `2,3`); `None` for every GPU.
    pub gpu_devices: Option<String>,
}

/// Privileges of the runner user, each of which exposes the agent's API key to job code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunnerPrivileges {
    /// Passwordless sudo.
    pub sudo: bool,
    /// Membership of the `docker` group.
    pub docker: bool,
}

/// Everything one machine's boot script needs.
pub struct BootScript {
    /// This project's version, pinned for everything the script fetches.
    pub version: String,
    /// The launch's label.
    pub run_label: String,
    /// The machine's tag value.
    pub machine_tag: String,
    /// `config.sh --url`.
    pub registration_url: String,
    /// The GitHub runner, as the launcher resolved it.
    pub runner: RunnerPackage,
    /// Where the agent comes from.
    pub agent: AgentSource,
    /// The agent's configuration (JSON); it may hold the provider API key, so it is secret.
    pub agent_config: SecretString,
    /// The runners the machine starts, one service each.
    pub runners: Vec<RunnerBoot>,
    /// Extra privileges for the runner user.
    pub privileges: RunnerPrivileges,
    /// A script of the user's, run as root before the runners start.
    pub user_script: Option<String>,
    /// The organization runner group, by name, reusable runners join (`--runnergroup`); JIT
    /// runners get theirs from their configuration.
    pub runner_group: Option<String>,
    /// How the machine ends itself without the agent (the provider's
    /// [`CloudProvider::self_terminate_script`](crate::CloudProvider::self_terminate_script)):
    /// its watchdog at the maximum lifetime, and a failed boot after a hold. `None` leaves
    /// that to the agent, the action's stop and the reaper.
    pub self_terminate: Option<String>,
    /// The machine's maximum lifetime (seconds); the watchdog fires [`WATCHDOG_MARGIN`] later.
    pub max_lifetime_seconds: u64,
    /// Where the machine's cache volume is mounted ([`crate::cache`]), if it has one.
    pub cache_mount: Option<String>,
}

/// Quotes `value` for bash: single quotes, with embedded single quotes closed and escaped.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn heredoc(secret_text: &str, path: &str, out: &mut String) -> Result<(), CoreError> {
    if secret_text
        .lines()
        .any(|line| line.trim() == SECRET_DELIMITER)
    {
        return Err(CoreError::BootScript(
            "a secret contains the heredoc delimiter".into(),
        ));
    }
    let _ = writeln!(out, "cat > \"$ETC/{path}\" <<'{SECRET_DELIMITER}'");
    out.push_str(secret_text.trim_end_matches('\n'));
    let _ = writeln!(out, "\n{SECRET_DELIMITER}");
    let _ = writeln!(out, "chmod 0600 \"$ETC/{path}\"");
    Ok(())
}

impl BootScript {
    /// Whether the runners take JIT configurations (else one registration token): all alike.
    fn credential_kind(&self) -> Result<bool, CoreError> {
        if self.runners.is_empty() {
            return Err(CoreError::BootScript(
                "a machine needs at least one runner".into(),
            ));
        }
        let jit = matches!(self.runners[0].credential, RunnerCredential::Jit(_));
        if self
            .runners
            .iter()
            .any(|r| matches!(r.credential, RunnerCredential::Jit(_)) != jit)
        {
            return Err(CoreError::BootScript(
                "all runners of a machine use the same kind of credential".into(),
            ));
        }
        Ok(jit)
    }

    /// The heredocs that write the machine's secrets (runner credentials, the agent's
    /// configuration, download tokens), each file 0600.
    fn secrets(&self) -> Result<String, CoreError> {
        let mut secrets = String::new();
        for (index, runner) in self.runners.iter().enumerate() {
            match &runner.credential {
                RunnerCredential::Jit(config) => heredoc(
                    config.expose_secret(),
                    &format!("runner-{index}.jit"),
                    &mut secrets,
                )?,
                RunnerCredential::RegistrationToken(token) if index == 0 => {
                    heredoc(token.expose_secret(), "registration.token", &mut secrets)?;
                }
                RunnerCredential::RegistrationToken(_) => {}
            }
        }
        heredoc(
            self.agent_config.expose_secret(),
            "agent.json",
            &mut secrets,
        )?;
        for (arch, download) in [("x64", &self.runner.x64), ("arm64", &self.runner.arm64)] {
            if let Some(token) = download.as_ref().and_then(|d| d.token.as_ref()) {
                // A curl config line: the download's token never goes on a command line.
                let header = format!(
                    "header = \"Authorization: Bearer {}\"",
                    token.expose_secret()
                );
                heredoc(&header, &format!("runner-{arch}.curl"), &mut secrets)?;
            }
        }
        Ok(secrets)
    }

    /// The step that runs the user's script, as root, before the runners start.
    fn user_script_section(&self) -> Result<String, CoreError> {
        Ok(match &self.user_script {
            Some(script) if script.lines().any(|l| l.trim() == USER_SCRIPT_DELIMITER) => {
                return Err(CoreError::BootScript(
                    "the user script contains the heredoc delimiter".into(),
                ));
            }
            Some(script) => format!(
                "# --- the user's script, as root, before the runners start ---------------------------------\n\
                 step \"running the user's script\"\n\
                 cat > \"$ETC/user-script.sh\" <<'{USER_SCRIPT_DELIMITER}'\n{}\n{USER_SCRIPT_DELIMITER}\n\
                 bash \"$ETC/user-script.sh\" || fail \"the user's script failed\"",
                script.trim_end_matches('\n')
            ),
            None => "# (no user script)".to_owned(),
        })
    }

    /// The provider's self-terminate script, written where the watchdog finds it.
    fn self_terminate_section(&self) -> Result<String, CoreError> {
        Ok(match &self.self_terminate {
            Some(script) if script.lines().any(|l| l.trim() == TERMINATE_SELF_DELIMITER) => {
                return Err(CoreError::BootScript(
                    "the self-terminate script contains its heredoc delimiter".into(),
                ));
            }
            Some(script) => format!(
                "cat > \"$TERMINATE_SELF\" <<'{TERMINATE_SELF_DELIMITER}'\n{}\n{TERMINATE_SELF_DELIMITER}\n\
                 chmod 0700 \"$TERMINATE_SELF\"",
                script.trim_end_matches('\n')
            ),
            None => "# (this provider has no self-terminate script)".to_owned(),
        })
    }

    /// The value of each `{{name}}` of the template.
    // Long: one row per variable of `templates/boot.sh`, in its order; split, the table would
    // no longer read against the template.
    fn template_values(
        &self,
        jit: bool,
        secrets: &str,
        user_script: String,
        self_terminate: String,
    ) -> Result<Vec<(&'static str, String)>, CoreError> {
        let list = |values: Vec<String>| {
            values
                .iter()
                .map(|v| shell_quote(v))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let flag = |on: bool| if on { "1" } else { "0" }.to_owned();
        let (x86_64, aarch64, delivered) = match &self.agent {
            AgentSource::Release { x86_64, aarch64 } => (x86_64.as_ref(), aarch64.as_ref(), ""),
            AgentSource::Delivered { sha256, .. } => {
                if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(CoreError::BootScript(format!(
                        "a delivered agent needs its SHA-256 in hex, not {sha256:?}"
                    )));
                }
                (None, None, sha256.as_str())
            }
        };
        let release = |download: Option<&AgentDownload>| match download {
            Some(d) => (d.url.clone(), d.sha256.clone()),
            None => (String::new(), String::new()),
        };
        let values: Vec<(&'static str, String)> = vec![
            ("version", shell_quote(&self.version)),
            ("runner_count", self.runners.len().to_string()),
            ("run_label", shell_quote(&self.run_label)),
            ("machine_tag", shell_quote(&self.machine_tag)),
            (
                "runner_mode",
                if jit { "jit" } else { "reusable" }.to_owned(),
            ),
            ("registration_url", shell_quote(&self.registration_url)),
            (
                "runner_x64_url",
                shell_quote(&runner_url(self.runner.x64.as_ref())),
            ),
            (
                "runner_x64_sha256",
                shell_quote(&runner_sha256(self.runner.x64.as_ref())),
            ),
            (
                "runner_arm64_url",
                shell_quote(&runner_url(self.runner.arm64.as_ref())),
            ),
            (
                "runner_arm64_sha256",
                shell_quote(&runner_sha256(self.runner.arm64.as_ref())),
            ),
            ("agent_x86_64_url", shell_quote(&release(x86_64).0)),
            ("agent_x86_64_sha256", shell_quote(&release(x86_64).1)),
            ("agent_aarch64_url", shell_quote(&release(aarch64).0)),
            ("agent_aarch64_sha256", shell_quote(&release(aarch64).1)),
            ("agent_delivered_sha256", shell_quote(delivered)),
            ("agent_delivery_path", shell_quote(AGENT_DELIVERY_PATH)),
            (
                "agent_delivery_wait",
                AGENT_DELIVERY_WAIT.as_secs().to_string(),
            ),
            (
                "runner_group",
                shell_quote(self.runner_group.as_deref().unwrap_or_default()),
            ),
            ("grant_sudo", flag(self.privileges.sudo)),
            ("grant_docker", flag(self.privileges.docker)),
            (
                "runner_names",
                list(self.runners.iter().map(|r| r.name.clone()).collect()),
            ),
            (
                "runner_labels",
                list(self.runners.iter().map(|r| r.labels.join(",")).collect()),
            ),
            (
                "runner_gpus",
                list(
                    self.runners
                        .iter()
                        .map(|r| r.gpu_devices.clone().unwrap_or_default())
                        .collect(),
                ),
            ),
            (
                "cache_mount",
                shell_quote(self.cache_mount.as_deref().unwrap_or_default()),
            ),
            ("cache_min_free_kib", CACHE_MIN_FREE_KIB.to_string()),
            ("secrets", secrets.trim_end().to_owned()),
            ("self_terminate", self_terminate),
            (
                "watchdog_seconds",
                (self.max_lifetime_seconds + WATCHDOG_MARGIN.as_secs()).to_string(),
            ),
            (
                "failed_boot_hold_seconds",
                crate::health::UNHEALTHY_HOLD.as_secs().to_string(),
            ),
            ("user_script", user_script),
        ];
        Ok(values)
    }

    /// Renders the script as user data, or says why it cannot be sent.
    pub fn render(&self) -> Result<SecretString, CoreError> {
        let jit = self.credential_kind()?;
        let secrets = self.secrets()?;
        let user_script = self.user_script_section()?;
        let self_terminate = self.self_terminate_section()?;
        let values = self.template_values(jit, &secrets, user_script, self_terminate)?;
        let script = fill(TEMPLATE, &values)?;
        if script.len() > MAX_USER_DATA_BYTES {
            return Err(CoreError::BootScript(format!(
                "the boot script is {} bytes, over the {MAX_USER_DATA_BYTES}-byte limit; shorten the user script",
                script.len()
            )));
        }
        Ok(SecretString::from(script))
    }
}

fn runner_url(download: Option<&RunnerDownload>) -> String {
    download.map(|d| d.url.clone()).unwrap_or_default()
}

fn runner_sha256(download: Option<&RunnerDownload>) -> String {
    download.and_then(|d| d.sha256.clone()).unwrap_or_default()
}

/// Replaces every `{{name}}`; an unknown name or an unused value is an error.
fn fill(template: &str, values: &[(&str, String)]) -> Result<String, CoreError> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut used = vec![false; values.len()];
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| CoreError::BootScript("unclosed placeholder in the template".into()))?;
        let name = &after[..end];
        let (index, (_, value)) = values
            .iter()
            .enumerate()
            .find(|(_, (key, _))| *key == name)
            .ok_or_else(|| {
                CoreError::BootScript(format!(
                    "the template names {{{{{name}}}}}, which has no value"
                ))
            })?;
        used[index] = true;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if let Some((name, _)) = values
        .iter()
        .zip(&used)
        .find(|(_, used)| !**used)
        .map(|(v, _)| v)
    {
        return Err(CoreError::BootScript(format!(
            "the template does not use {name}"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_expansions() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's $HOME `x`"), r"'it'\''s $HOME `x`'");
    }

    #[test]
    fn placeholders_and_values_must_match() {
        assert_eq!(fill("a {{x}} b", &[("x", "1".into())]).unwrap(), "a 1 b");
        assert!(fill("a {{y}}", &[("x", "1".into())]).is_err());
        assert!(fill("a", &[("x", "1".into())]).is_err());
        assert!(fill("a {{x", &[("x", "1".into())]).is_err());
    }
}
