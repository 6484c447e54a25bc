//! Where the CLI's settings come from, first found wins: the command line, the environment
//! (`LAMBDA_API_KEY`, `LAMBDA_API_URL`), a `.env` file in the working directory, and
//! `~/.config/lambda-gha/config.toml` (which may also hold a default type, region and SSH key).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use crate::error::CliError;

/// The config file's contents.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The Lambda API key.
    pub api_key: Option<String>,
    /// The Lambda API base URL.
    pub api_url: Option<String>,
    /// Default instance type(s) for `launch` and `run`, comma-separated.
    pub instance_type: Option<String>,
    /// Default region(s), comma-separated.
    pub region: Option<String>,
    /// Default SSH key name.
    pub ssh_key: Option<String>,
}

/// The settings in effect.
#[derive(Default)]
pub struct Settings {
    /// The API key, when one was found.
    pub api_key: Option<SecretString>,
    /// Where it was found (for messages; never the key).
    pub api_key_source: Option<String>,
    /// Whether it came from the config file (whose mode then matters).
    pub api_key_from_file: bool,
    /// The API base URL, when not the default.
    pub api_url: Option<String>,
    /// Where it was set (`LAMBDA_API_URL`, a `.env` path, the config file, `--api-url`).
    pub api_url_source: Option<String>,
    /// Default instance type(s).
    pub instance_type: Option<String>,
    /// Default region(s).
    pub region: Option<String>,
    /// Default SSH key name.
    pub ssh_key: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("api_key_source", &self.api_key_source)
            .field("api_key_from_file", &self.api_key_from_file)
            .field("api_url", &self.api_url)
            .field("api_url_source", &self.api_url_source)
            .field("instance_type", &self.instance_type)
            .field("region", &self.region)
            .field("ssh_key", &self.ssh_key)
            .finish()
    }
}

/// Reads `KEY=VALUE` lines (`export ` prefixes, quotes and comments allowed).
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = if let Some(inner) = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        {
            inner.to_owned()
        } else {
            // An unquoted value ends at a comment.
            value.split(" #").next().unwrap_or("").trim().to_owned()
        };
        vars.insert(key.trim().to_owned(), value);
    }
    vars
}

/// Whether the API key may be sent to `url`: `https://` anywhere, `http://` only to this
/// machine (the simulator on a loopback address).
pub fn safe_api_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    if lower.starts_with("https://") {
        return true;
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials in the URL (`user@host`) would hide the real host: refused.
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The default config file: `$XDG_CONFIG_HOME/lambda-gha/config.toml` or
/// `~/.config/lambda-gha/config.toml`.
pub fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config")))
        .map(|dir| dir.join("lambda-gha/config.toml"))
}

/// Resolves the settings from the environment `env`, the `.env` in `cwd` and `config_file`.
pub fn load(
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
    config_file: Option<&Path>,
) -> Result<Settings, CliError> {
    let dotenv = std::fs::read_to_string(cwd.join(".env"))
        .map(|text| parse_dotenv(&text))
        .unwrap_or_default();
    let file = match config_file {
        Some(path) if path.is_file() => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::Config {
                path: path.to_owned(),
                problem: e.to_string(),
            })?;
            toml::from_str::<ConfigFile>(&text).map_err(|e| CliError::Config {
                path: path.to_owned(),
                problem: e.to_string(),
            })?
        }
        _ => ConfigFile::default(),
    };
    let env_var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let from_dotenv = |name: &str| dotenv.get(name).filter(|v| !v.is_empty()).cloned();
    let (api_key, api_key_source) = if let Some(key) = env_var("LAMBDA_API_KEY") {
        (Some(key), Some("LAMBDA_API_KEY".to_owned()))
    } else if let Some(key) = from_dotenv("LAMBDA_API_KEY") {
        (Some(key), Some(cwd.join(".env").display().to_string()))
    } else if let Some(key) = file.api_key.clone() {
        let source = config_file.map(|p| p.display().to_string());
        (Some(key), source)
    } else {
        (None, None)
    };
    let api_url = if let Some(url) = env_var("LAMBDA_API_URL") {
        Some((url, "LAMBDA_API_URL".to_owned()))
    } else if let Some(url) = from_dotenv("LAMBDA_API_URL") {
        Some((url, cwd.join(".env").display().to_string()))
    } else {
        file.api_url.clone().map(|url| {
            let source = config_file
                .map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
            (url, source)
        })
    };
    if let Some((url, source)) = &api_url
        && !safe_api_url(url)
    {
        return Err(CliError::InsecureApiUrl {
            url: url.clone(),
            source_name: source.clone(),
        });
    }
    let api_key_from_file = env_var("LAMBDA_API_KEY").is_none()
        && from_dotenv("LAMBDA_API_KEY").is_none()
        && api_key.is_some();
    Ok(Settings {
        api_key_from_file,
        api_key: api_key.map(|k| SecretString::from(k.trim().to_owned())),
        api_key_source,
        api_url_source: api_url.as_ref().map(|(_, source)| source.clone()),
        api_url: api_url.map(|(url, _)| url),
        instance_type: file.instance_type,
        region: file.region,
        ssh_key: file.ssh_key,
    })
}

/// Whether `line` of the config file sets `api_key`.
fn sets_api_key(line: &str) -> bool {
    line.trim_start()
        .strip_prefix("api_key")
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// `text` without its `api_key` lines, each line ended by a newline.
fn without_api_key(text: &str) -> String {
    let mut kept = String::with_capacity(text.len() + 1);
    for line in text.lines().filter(|line| !sets_api_key(line)) {
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// Writes `text` to `path` readable by its owner alone (0600), through a temporary file
/// created 0600 and renamed into place: the key is never in a file others can read, even for
/// a moment, and a crash leaves the old file whole.
fn write_owner_only(path: &Path, text: &str) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let problem = |problem: String| CliError::Config {
        path: path.to_owned(),
        problem,
    };
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| problem(e.to_string()))?;
    }
    let temporary = path.with_extension(format!("toml.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let written = gha_runner_core::session::write_private(&temporary, text)
        .map_err(|e| e.to_string())
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| e.to_string()));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written.map_err(problem)
}

/// Stores `key` as the config file's `api_key` (replacing one there), keeping its other
/// lines as they are, mode 0600.
pub fn store_api_key(path: &Path, key: &SecretString) -> Result<(), CliError> {
    use secrecy::ExposeSecret as _;
    let key = key.expose_secret();
    // A Lambda key is one word of printable ASCII; anything else is a paste gone wrong.
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(CliError::BadKey);
    }
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(CliError::Config {
                path: path.to_owned(),
                problem: e.to_string(),
            });
        }
    };
    // Top-level keys must come before any `[table]`: the key goes first.
    let text = format!("api_key = \"{key}\"\n{}", without_api_key(&old));
    toml::from_str::<ConfigFile>(&text).map_err(|e| CliError::Config {
        path: path.to_owned(),
        problem: format!("would not read back after storing the key: {}", e.message()),
    })?;
    write_owner_only(path, &text)
}

/// Removes `api_key` from the config file; whether there was one.
pub fn remove_api_key(path: &Path) -> Result<bool, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(CliError::Config {
                path: path.to_owned(),
                problem: e.to_string(),
            });
        }
    };
    if !text.lines().any(sets_api_key) {
        return Ok(false);
    }
    write_owner_only(path, &without_api_key(&text))?;
    Ok(true)
}

/// Why the config file at `path` exposes the key it holds: readable or writable by others.
pub fn key_file_exposure(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is mode {mode:03o}, so others on this machine can read the key: chmod 600 it",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn dotenv_lines_are_read_like_a_shell_would() {
        let vars = parse_dotenv(
            "# comment\nexport LAMBDA_API_KEY=\"secret_a b\"\nLAMBDA_API_URL=http://x # local\nEMPTY=\nbroken line\n",
        );
        assert_eq!(vars["LAMBDA_API_KEY"], "secret_a b");
        assert_eq!(vars["LAMBDA_API_URL"], "http://x");
        assert_eq!(vars["EMPTY"], "");
        assert_eq!(vars.len(), 3);
    }

    #[test]
    fn the_key_goes_only_over_https_or_to_this_machine() {
        for url in [
            "https://cloud.lambda.ai/",
            "HTTPS://example.com",
            "http://127.0.0.1:8787",
            "http://127.9.9.9/api",
            "http://localhost:9000",
            "http://[::1]:8787/",
        ] {
            assert!(safe_api_url(url), "{url}");
        }
        for url in [
            "http://cloud.lambda.ai",
            "http://10.0.0.5:8787",
            "http://127.0.0.1.evil.com/",
            "http://localhost@evil.com/",
            "ftp://127.0.0.1",
            "cloud.lambda.ai",
        ] {
            assert!(!safe_api_url(url), "{url}");
        }
        let dir = std::env::temp_dir().join(format!("cfg-url-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".env"), "LAMBDA_API_URL=http://api.example.com\n").unwrap();
        let error = load(&|_| None, &dir, None).err().unwrap().to_string();
        assert!(
            error.contains("http://api.example.com") && error.contains(".env"),
            "{error}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_environment_beats_dotenv_which_beats_the_config_file() {
        let dir = std::env::temp_dir().join(format!("cli-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".env"), "LAMBDA_API_KEY=from_dotenv\n").unwrap();
        let file = dir.join("config.toml");
        std::fs::write(
            &file,
            "api_key = \"from_file\"\ninstance_type = \"gpu_1x_a10\"\n",
        )
        .unwrap();
        let none = |_: &str| None;
        let env = |name: &str| (name == "LAMBDA_API_KEY").then(|| "from_env".to_owned());
        let s = load(&env, &dir, Some(&file)).unwrap();
        assert_eq!(s.api_key.unwrap().expose_secret(), "from_env");
        let s = load(&none, &dir, Some(&file)).unwrap();
        assert_eq!(s.api_key.unwrap().expose_secret(), "from_dotenv");
        assert_eq!(s.instance_type.as_deref(), Some("gpu_1x_a10"));
        std::fs::remove_file(dir.join(".env")).unwrap();
        let s = load(&none, &dir, Some(&file)).unwrap();
        assert!(!format!("{s:?}").contains("from_file\""), "no key in Debug");
        assert_eq!(s.api_key.unwrap().expose_secret(), "from_file");
        std::fs::write(&file, "api_kee = 1\n").unwrap();
        assert!(load(&none, &dir, Some(&file)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod key_file_tests {
    use super::*;
    use secrecy::ExposeSecret as _;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_stored_key_is_0600_replaces_the_old_one_and_keeps_the_other_lines() {
        let dir = std::env::temp_dir().join(format!("cli-login-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("lambda-gha/config.toml");
        store_api_key(&path, &SecretString::from("secret_one")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        std::fs::write(
            &path,
            "# mine\napi_key = \"secret_one\"\nregion = \"us-east-1\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(key_file_exposure(&path).unwrap().contains("mode 644"));
        store_api_key(&path, &SecretString::from("secret_two")).unwrap();
        assert_eq!(mode(&path), 0o600, "a rewrite is 0600 again");
        assert!(key_file_exposure(&path).is_none());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "api_key = \"secret_two\"\n# mine\nregion = \"us-east-1\"\n"
        );
        let settings = load(&|_| None, &dir, Some(&path)).unwrap();
        assert_eq!(settings.api_key.unwrap().expose_secret(), "secret_two");
        assert!(matches!(
            store_api_key(&path, &SecretString::from("two words")),
            Err(CliError::BadKey)
        ));
        assert!(remove_api_key(&path).unwrap());
        assert!(!remove_api_key(&path).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# mine\nregion = \"us-east-1\"\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
