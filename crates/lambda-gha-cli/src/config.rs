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
    /// The API base URL, when not the default.
    pub api_url: Option<String>,
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
            .field("api_url", &self.api_url)
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
    Ok(Settings {
        api_key: api_key.map(|k| SecretString::from(k.trim().to_owned())),
        api_key_source,
        api_url: api_url.map(|(url, _)| url),
        instance_type: file.instance_type,
        region: file.region,
        ssh_key: file.ssh_key,
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
