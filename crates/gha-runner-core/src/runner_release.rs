//! Which GitHub runner a machine installs, decided by the launcher once per launch and pinned
//! into every boot script as a URL and a SHA-256 per CPU architecture. By default it is the
//! runner GitHub serves the repository or organization (the "list runner applications"
//! endpoint, `GET /repos/{owner}/{repo}/actions/runners/downloads` or the org one: it follows
//! GitHub's staged rollouts, and a GitHub Enterprise Server answers with its own runner);
//! with `runner_version`, that release of `actions/runner`, its checksums read from the
//! release notes (`<!-- BEGIN SHA linux-x64 -->…<!-- END SHA linux-x64 -->`, as the runner's
//! release workflow writes them). Machines no longer ask GitHub anything themselves: no
//! unauthenticated rate limit, no unretried 403.

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Field, InputError};

/// Where a pinned runner version is described (its release notes hold the checksums).
pub const RUNNER_RELEASES_API: &str = "https://api.github.com/repos/actions/runner/releases";
/// Where `actions/runner` release assets are downloaded from.
pub const RUNNER_DOWNLOAD_BASE: &str = "https://github.com/actions/runner/releases/download";

/// One runner package for one CPU architecture.
#[derive(Clone)]
pub struct RunnerDownload {
    /// The runner version, e.g. `2.330.0`.
    pub version: String,
    /// The tarball's URL.
    pub url: String,
    /// Its SHA-256, hex, when GitHub gives one (github.com always does).
    pub sha256: Option<String>,
    /// A short-lived token the download needs (some GHES servers): secret.
    pub token: Option<SecretString>,
}

impl std::fmt::Debug for RunnerDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerDownload")
            .field("version", &self.version)
            .field("url", &self.url)
            .field("sha256", &self.sha256)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The runner for each CPU a machine may have (Lambda: x86_64; GH200: arm64).
#[derive(Debug, Clone, Default)]
pub struct RunnerPackage {
    /// For x86_64 machines (`linux-x64`).
    pub x64: Option<RunnerDownload>,
    /// For aarch64 machines (`linux-arm64`).
    pub arm64: Option<RunnerDownload>,
}

/// Which runner machines get.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunnerVersion {
    /// The one GitHub serves this repository or organization now.
    #[default]
    Served,
    /// This release of `actions/runner` (`2.330.0`).
    Pinned(String),
}

impl RunnerVersion {
    /// Reads the `runner_version` input: empty or `latest` for [`RunnerVersion::Served`], or a
    /// version such as `2.330.0` (a leading `v` is allowed).
    pub fn parse(text: &str) -> Result<RunnerVersion, InputError> {
        let text = text.trim();
        if text.is_empty() || text == "latest" {
            return Ok(RunnerVersion::Served);
        }
        let version = text.strip_prefix('v').unwrap_or(text);
        let parts: Vec<&str> = version.split('.').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            Ok(RunnerVersion::Pinned(version.to_owned()))
        } else {
            Err(InputError::new(
                Field::RunnerVersion,
                format!(
                    "{text:?} is not a runner version: use one like `2.330.0` (see \
                     github.com/actions/runner/releases), or leave it empty for the one GitHub serves"
                ),
            ))
        }
    }
}

/// One entry of GitHub's "list runner applications" answer.
#[derive(Debug, Deserialize)]
pub(crate) struct RunnerApplication {
    os: String,
    architecture: String,
    download_url: String,
    filename: String,
    #[serde(default)]
    sha256_checksum: Option<String>,
    #[serde(default)]
    temp_download_token: Option<String>,
}

impl RunnerPackage {
    /// The Linux packages among GitHub's runner applications; `None` when there is none.
    pub(crate) fn from_applications(applications: Vec<RunnerApplication>) -> Option<RunnerPackage> {
        let mut package = RunnerPackage::default();
        for app in applications.into_iter().filter(|a| a.os == "linux") {
            let download = RunnerDownload {
                // `actions-runner-linux-x64-2.330.0.tar.gz`
                version: app
                    .filename
                    .trim_end_matches(".tar.gz")
                    .rsplit('-')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                url: app.download_url,
                sha256: app
                    .sha256_checksum
                    .filter(|s| is_sha256(s))
                    .map(|s| s.to_ascii_lowercase()),
                token: app
                    .temp_download_token
                    .filter(|t| !t.is_empty())
                    .map(SecretString::from),
            };
            match app.architecture.as_str() {
                "x64" => package.x64 = Some(download),
                "arm64" => package.arm64 = Some(download),
                _ => {}
            }
        }
        (package.x64.is_some() || package.arm64.is_some()).then_some(package)
    }

    /// Release `version` of `actions/runner` from its release notes (`body`), downloaded from
    /// `download_base`; `None` when the notes carry no Linux checksum.
    pub fn from_release_notes(
        version: &str,
        body: &str,
        download_base: &str,
    ) -> Option<RunnerPackage> {
        let download = |arch: &str| {
            let begin = format!("<!-- BEGIN SHA linux-{arch} -->");
            let start = body.find(&begin)? + begin.len();
            let sha256 = body[start..].get(..64)?;
            is_sha256(sha256).then(|| RunnerDownload {
                version: version.to_owned(),
                url: format!(
                    "{}/v{version}/actions-runner-linux-{arch}-{version}.tar.gz",
                    download_base.trim_end_matches('/')
                ),
                sha256: Some(sha256.to_ascii_lowercase()),
                token: None,
            })
        };
        let package = RunnerPackage {
            x64: download("x64"),
            arm64: download("arm64"),
        };
        (package.x64.is_some() || package.arm64.is_some()).then_some(package)
    }

    /// The version machines get (x86_64's, else arm64's), for messages.
    pub fn version(&self) -> &str {
        self.x64
            .as_ref()
            .or(self.arm64.as_ref())
            .map_or("", |d| d.version.as_str())
    }
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_s_applications_give_one_package_per_linux_cpu() {
        let answer = r#"[
          {"os": "osx", "architecture": "x64", "download_url": "https://x/osx.tar.gz",
           "filename": "actions-runner-osx-x64-2.330.0.tar.gz"},
          {"os": "linux", "architecture": "x64", "download_url": "https://x/linux-x64.tar.gz",
           "filename": "actions-runner-linux-x64-2.330.0.tar.gz", "sha256_checksum": "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"},
          {"os": "linux", "architecture": "arm64", "download_url": "https://x/linux-arm64.tar.gz",
           "filename": "actions-runner-linux-arm64-2.330.0.tar.gz", "temp_download_token": "tmp"},
          {"os": "linux", "architecture": "arm", "download_url": "https://x/linux-arm.tar.gz",
           "filename": "actions-runner-linux-arm-2.330.0.tar.gz"}
        ]"#;
        let package =
            RunnerPackage::from_applications(serde_json::from_str(answer).unwrap()).unwrap();
        let x64 = package.x64.as_ref().unwrap();
        assert_eq!(
            (x64.version.as_str(), x64.url.as_str()),
            ("2.330.0", "https://x/linux-x64.tar.gz")
        );
        assert!(x64.sha256.is_some() && x64.token.is_none());
        let arm64 = package.arm64.as_ref().unwrap();
        assert!(arm64.sha256.is_none() && arm64.token.is_some());
        assert!(
            !format!("{package:?}").contains("tmp"),
            "the token is redacted"
        );
        assert!(RunnerPackage::from_applications(Vec::new()).is_none());
    }

    #[test]
    fn a_pinned_release_is_read_from_its_notes() {
        let sha = "a".repeat(64);
        let notes =
            format!("## Changes\n<!-- BEGIN SHA linux-x64 -->{sha}<!-- END SHA linux-x64 -->");
        let package = RunnerPackage::from_release_notes("2.329.0", &notes, "https://dl/").unwrap();
        let x64 = package.x64.unwrap();
        assert_eq!(
            x64.url,
            "https://dl/v2.329.0/actions-runner-linux-x64-2.329.0.tar.gz"
        );
        assert_eq!(x64.sha256.as_deref(), Some(sha.as_str()));
        assert!(package.arm64.is_none());
        assert!(RunnerPackage::from_release_notes("2.329.0", "no sums", "https://dl").is_none());
    }

    #[test]
    fn runner_versions_are_checked() {
        assert_eq!(RunnerVersion::parse(""), Ok(RunnerVersion::Served));
        assert_eq!(RunnerVersion::parse("latest"), Ok(RunnerVersion::Served));
        assert_eq!(
            RunnerVersion::parse("v2.330.0"),
            Ok(RunnerVersion::Pinned("2.330.0".into()))
        );
        for bad in ["2.330", "2.330.0-beta", "two", "2..1"] {
            let error = RunnerVersion::parse(bad).unwrap_err().to_string();
            assert!(error.contains("runner version"), "{error}");
        }
    }
}
