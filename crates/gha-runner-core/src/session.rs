//! One machine a person uses directly, rather than through runners: what `lambda-gha run`,
//! `launch --wait`, `wait` and `ssh` share — where its keys and host keys are kept, the one
//! wait until it runs, and its bill.
//!
//! The launch itself (preflight, candidates, capacity fallback, the key made for one launch)
//! is the same [`LaunchPlan`](crate::LaunchPlan) and provider calls the action uses.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::SessionError;
use crate::provider::{CloudProvider, Machine, MachineId, MachineState};

/// Where a person's machine keys and pinned host keys live: `~/.local/state/lambda-gha` (or
/// `$XDG_STATE_HOME/lambda-gha`), private to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// The directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> StateDir {
        StateDir(path.into())
    }

    /// The user's state directory, from `XDG_STATE_HOME` or `HOME` as read through `env`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> StateDir {
        StateDir(
            env("XDG_STATE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".local/state")))
                .unwrap_or_else(std::env::temp_dir)
                .join("lambda-gha"),
        )
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The known-hosts file of one machine. Lambda reuses addresses, so a host key is pinned
    /// per machine, never per address.
    pub fn known_hosts(&self, machine: &str) -> Result<PathBuf, SessionError> {
        let dir = self.0.join("known_hosts");
        create_private_dir(&dir)?;
        Ok(dir.join(machine))
    }

    /// Where the private key of a machine launched with a key of its own is kept, so that a
    /// later `run --instance` or `ssh` finds it by the machine's id.
    pub fn machine_key(&self, machine: &str) -> PathBuf {
        self.0.join("keys").join(machine)
    }

    /// The machine's kept key, if there is one.
    pub fn existing_machine_key(&self, machine: &str) -> Option<PathBuf> {
        let path = self.machine_key(machine);
        path.exists().then_some(path)
    }

    /// Writes the private half of a key made for one launch (named `name`, 0600 in a 0700
    /// directory); once the machine exists, [`StateDir::keep_for`] files it under its id.
    pub fn write_launch_key(&self, name: &str, private: &str) -> Result<PathBuf, SessionError> {
        let dir = self.0.join("keys");
        create_private_dir(&dir)?;
        let path = dir.join(name);
        write_private(&path, private)?;
        Ok(path)
    }

    /// Files a launch key under the machine it opens; where it stays when that fails.
    pub fn keep_for(&self, key_file: PathBuf, machine: &MachineId) -> PathBuf {
        let kept = self.machine_key(machine.as_str());
        if std::fs::rename(&key_file, &kept).is_ok() {
            kept
        } else {
            key_file
        }
    }
}

/// Creates `dir` (and its parents) readable by its owner only.
pub fn create_private_dir(dir: &Path) -> Result<(), SessionError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| SessionError::Files(format!("cannot create {}: {e}", dir.display())))
}

/// Writes a private key to a new file readable by its owner only; an existing file is never
/// overwritten.
pub fn write_private(path: &Path, text: &str) -> Result<(), SessionError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SessionError::Files(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| SessionError::Files(format!("cannot write {}: {e}", path.display())))
}

/// Waits until `id` runs with an address, calling `progress` with each state seen. Fails when
/// it ends or `timeout` passes (the machine then still bills: the caller ends it or says how).
pub async fn wait_running(
    provider: &dyn CloudProvider,
    id: &MachineId,
    timeout: Duration,
    poll: Duration,
    progress: &mut dyn FnMut(&Machine),
) -> Result<Machine, SessionError> {
    let started = Instant::now();
    loop {
        let machine = provider
            .describe(id)
            .await
            .map_err(|e| SessionError::Provider {
                machine: id.to_string(),
                message: e.to_string(),
            })?;
        progress(&machine);
        match (&machine.state, &machine.ip) {
            (MachineState::Running, Some(_)) => return Ok(machine),
            (MachineState::Pending | MachineState::Running, _) => {}
            (other, _) => {
                return Err(SessionError::Ended {
                    machine: id.to_string(),
                    state: other.word().to_owned(),
                });
            }
        }
        if started.elapsed() >= timeout {
            return Err(SessionError::NotActiveWithin {
                machine: id.to_string(),
                within: crate::duration::format_duration(timeout),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// What `billed` of machine time costs at `price_cents_per_hour`, in US dollars.
pub fn cost_usd(billed: Duration, price_cents_per_hour: u32) -> f64 {
    billed.as_secs_f64() / 3600.0 * f64::from(price_cents_per_hour) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_private_and_kept_under_their_machine() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = std::env::temp_dir().join(format!("session-{}", fastrand::u64(..)));
        let dir = StateDir::new(&root);
        let file = dir.write_launch_key("run-1", "PRIVATE").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert!(write_private(&file, "again").is_err(), "never overwritten");
        let kept = dir.keep_for(file, &MachineId::new("i-1"));
        assert_eq!(dir.existing_machine_key("i-1"), Some(kept.clone()));
        assert_eq!(std::fs::read_to_string(kept).unwrap(), "PRIVATE");
        let hosts = dir.known_hosts("i-1").unwrap();
        assert_eq!(mode(hosts.parent().unwrap()), 0o700);
        assert_eq!(
            StateDir::from_env(&|n| (n == "HOME").then(|| "/h".to_owned())).path(),
            Path::new("/h/.local/state/lambda-gha")
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_hour_costs_its_price() {
        assert!((cost_usd(Duration::from_secs(3600), 75) - 0.75).abs() < 1e-9);
        assert!((cost_usd(Duration::from_secs(1800), 200) - 1.0).abs() < 1e-9);
    }
}
