//! Running an instance's user data as a local process when it becomes active, the way
//! cloud-init would run a script part on a real machine: with bash, in a per-instance sandbox
//! directory, in its own process group so that termination kills everything it started.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};

use lambda_cloud::InstanceId;

use crate::machine_env;

use crate::machine::Gpus;
use crate::root_machine::{MachineEnv, RootMachine};

/// File names inside an instance's sandbox.
pub const SCRIPT_FILE: &str = "user-data.sh";
/// The log of the user data's output (stdout and stderr).
pub const LOG_FILE: &str = "user-data.log";
/// The machine's own programs (its `nvidia-smi`), inside its sandbox: first on the user
/// data's `PATH`, and on the `PATH` of anything run in the sandbox as if over SSH.
pub const SANDBOX_BIN: &str = ".lambda-cloud-sim/bin";

/// The directory under the sandbox root whose files every root machine sees, read-only, at
/// `/var/lib/lambda-cloud-sim/shared`.
pub const SHARED_DIR: &str = "shared";

/// How a simulated machine runs its user data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MachineMode {
    /// bash as the simulator's own user, in the instance's sandbox directory
    /// (`LAMBDA_SIM_SANDBOX` tells scripts where their root is). Fast, and needs nothing, but
    /// users, owners and modes are not a machine's.
    #[default]
    Sandbox,
    /// As real root in the instance's own copy of this Debian root filesystem, in new mount,
    /// PID and UTS namespaces (see the `root_machine` module): the production path of a boot
    /// script, users and modes included. Needs the simulator to run as root; build the
    /// filesystem with `cargo xtask rootfs`.
    Root {
        /// The root filesystem (`debootstrap --variant=minbase` with bash, sudo, curl, …).
        rootfs: PathBuf,
    },
}

const NOT_A_SCRIPT: &str = "lambda-cloud-sim: user data not run: it is neither a `#!` script \
    nor a multipart message with a text/x-shellscript part (cloud-config is not simulated)";

/// Starts and stops user-data processes under one sandbox root.
#[derive(Debug)]
pub(crate) struct UserDataRunner {
    root: PathBuf,
    mode: MachineMode,
    children: Mutex<HashMap<InstanceId, Child>>,
}

impl UserDataRunner {
    pub(crate) fn new(root: PathBuf, mode: MachineMode) -> Self {
        UserDataRunner {
            root,
            mode,
            children: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn shared(&self) -> PathBuf {
        self.root.join(SHARED_DIR)
    }

    /// Where an instance's user-data output goes, under its sandbox.
    pub(crate) fn log_file(&self) -> &'static str {
        match self.mode {
            MachineMode::Sandbox => LOG_FILE,
            MachineMode::Root { .. } => crate::root_machine::ROOT_LOG_FILE,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn sandbox(&self, id: &InstanceId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Prepares instance `id`'s sandbox (its programs: `nvidia-smi`) and runs the shell script
    /// in `user_data`, if any; other user data is noted in the log and not run.
    pub(crate) fn start(
        &self,
        id: &InstanceId,
        user_data: Option<&str>,
        gpus: &Gpus,
        api_url: &str,
        time_scale: lambda_cloud::TimeScale,
    ) {
        let dir = self.sandbox(id);
        let env = MachineEnv {
            id,
            api_url,
            time_scale,
        };
        let started = std::fs::create_dir_all(&dir).and_then(|()| match &self.mode {
            MachineMode::Sandbox => Self::spawn_sandboxed(&dir, user_data, gpus, &env),
            MachineMode::Root { rootfs } => self.boot_root(rootfs, &dir, user_data, gpus, &env),
        });
        match started {
            Ok(Some(child)) => {
                tracing::info!(
                    instance = id.as_str(),
                    pid = child.id(),
                    "user data started"
                );
                self.children
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id.clone(), child);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(instance = id.as_str(), %error, "could not run user data");
                if let Ok(mut log) = File::options()
                    .create(true)
                    .append(true)
                    .open(dir.join(self.log_file()))
                {
                    let _ = writeln!(log, "lambda-cloud-sim: could not run user data: {error}");
                }
            }
        }
    }

    /// bash as this user in the sandbox `dir`; `None` when there is no script to run.
    fn spawn_sandboxed(
        dir: &Path,
        user_data: Option<&str>,
        gpus: &Gpus,
        env: &MachineEnv<'_>,
    ) -> std::io::Result<Option<Child>> {
        let bin = write_nvidia_smi(dir, gpus)?;
        let Some(user_data) = user_data else {
            return Ok(None);
        };
        let path = match std::env::var_os("PATH") {
            Some(path) => {
                let mut dirs = vec![bin];
                dirs.extend(std::env::split_paths(&path));
                std::env::join_paths(dirs).map_err(std::io::Error::other)?
            }
            None => bin.into_os_string(),
        };
        let mut log = File::create(dir.join(LOG_FILE))?;
        let Some(script) = shell_script(user_data) else {
            writeln!(log, "{NOT_A_SCRIPT}")?;
            return Ok(None);
        };
        let script_path = dir.join(SCRIPT_FILE);
        std::fs::write(&script_path, script)?;
        Command::new("bash")
            .arg(&script_path)
            .current_dir(dir)
            .env("HOME", dir)
            .env(machine_env::SIMULATED, "1")
            .env(machine_env::INSTANCE_ID, env.id.as_str())
            .env(machine_env::API_URL, env.api_url)
            .env(machine_env::SANDBOX, dir)
            // The machine's GPUs, as its `nvidia-smi` shows them.
            .env("PATH", path)
            // Programs that keep time (the lambda-gha agent) run on the simulator's clock.
            .env(machine_env::TIME_SCALE, env.time_scale.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: terminating the instance kills everything it started.
            .process_group(0)
            .spawn()
            .map(Some)
    }

    /// A machine booted as root from `rootfs` with `dir` as its upper layer (see
    /// `root_machine`); `None` when there is no script to run.
    fn boot_root(
        &self,
        rootfs: &Path,
        dir: &Path,
        user_data: Option<&str>,
        gpus: &Gpus,
        env: &MachineEnv<'_>,
    ) -> std::io::Result<Option<Child>> {
        // Lambda's image has the driver's `nvidia-smi` in /usr/bin.
        write_fake_nvidia_smi(&dir.join("usr/bin"), &gpus.model, gpus.visible)?;
        let Some(user_data) = user_data else {
            return Ok(None);
        };
        let Some(script) = shell_script(user_data) else {
            let log = dir.join(crate::root_machine::ROOT_LOG_FILE);
            if let Some(parent) = log.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(log, NOT_A_SCRIPT)?;
            return Ok(None);
        };
        let machine = RootMachine {
            rootfs,
            upper: dir.to_path_buf(),
            shared: &self.shared(),
        };
        machine.boot(&script, env).map(Some)
    }

    /// Kills the instance's user data and every process running in its sandbox.
    pub(crate) fn stop(&self, id: &InstanceId) {
        let child = self
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(child) = child {
            kill_group(child);
            tracing::info!(instance = id.as_str(), "user data stopped");
        }
        // Also what reached the machine another way (`lambda-gha run` through the sandbox).
        kill_sandboxed(&self.sandbox(id));
    }

    /// Kills every user-data process.
    pub(crate) fn stop_all(&self) {
        let children: Vec<Child> = self
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, child)| child)
            .collect();
        for child in children {
            kill_group(child);
        }
        kill_sandboxed(&self.root);
    }

    /// The host pid of a root machine's PID 1 (the child of its `unshare`), while it runs.
    pub(crate) fn machine_init(&self, id: &InstanceId) -> Option<u32> {
        if !matches!(self.mode, MachineMode::Root { .. }) {
            return None;
        }
        let holder = self
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)?
            .id();
        std::fs::read_to_string(format!("/proc/{holder}/task/{holder}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Ids of instances whose user data is still running.
    pub(crate) fn running(&self) -> Vec<InstanceId> {
        let mut children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        children
            .iter_mut()
            .filter_map(|(id, child)| matches!(child.try_wait(), Ok(None)).then(|| id.clone()))
            .collect()
    }
}

fn kill_group(mut child: Child) {
    // The group id is the child's pid (process_group(0)); `kill -KILL -- -PGID` reaches all.
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Kills every process whose environment places it in a sandbox under `dir`: what user data
/// started in a new session or process group (a daemonized agent, say) escapes the group kill
/// but still inherits `LAMBDA_SIM_SANDBOX`.
fn kill_sandboxed(dir: &Path) {
    let marker = format!("{}={}", machine_env::SANDBOX, dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.bytes().all(|b| b.is_ascii_digit())
            && let Ok(environ) = std::fs::read(entry.path().join("environ"))
            && environ
                .split(|b| *b == 0)
                .any(|var| var.starts_with(marker.as_bytes()))
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The shell script in user data: the whole text when it starts with `#!`, or the first
/// `text/x-shellscript` part of a MIME multipart message.
pub(crate) fn shell_script(user_data: &str) -> Option<String> {
    if user_data.starts_with("#!") {
        return Some(user_data.to_owned());
    }
    let header_end = user_data
        .find("\n\n")
        .or_else(|| user_data.find("\r\n\r\n"))?;
    let headers = &user_data[..header_end];
    if !headers.to_ascii_lowercase().contains("multipart/") {
        return None;
    }
    let boundary = headers
        .split([';', '\n'])
        .find_map(|part| part.trim().strip_prefix("boundary="))?
        .trim()
        .trim_matches('"')
        .to_owned();
    let delimiter = format!("--{boundary}");
    for part in user_data.split(&delimiter).skip(1) {
        let part = part.trim_start_matches(['\r', '\n']);
        let Some(split) = part
            .find("\n\n")
            .map(|i| (i, 2))
            .or_else(|| part.find("\r\n\r\n").map(|i| (i, 4)))
        else {
            continue;
        };
        let (part_headers, body) = (&part[..split.0], &part[split.0 + split.1..]);
        if part_headers
            .to_ascii_lowercase()
            .contains("text/x-shellscript")
        {
            return Some(body.trim_end_matches(['\r', '\n', '-']).to_owned() + "\n");
        }
    }
    None
}

/// Writes the sandbox's `nvidia-smi` (first on its PATH) for the GPUs `gpus` says are visible.
fn write_nvidia_smi(dir: &Path, gpus: &Gpus) -> std::io::Result<PathBuf> {
    let bin = dir.join(SANDBOX_BIN);
    write_fake_nvidia_smi(&bin, &gpus.model, gpus.visible)?;
    Ok(bin)
}

/// Writes an `nvidia-smi` into `bin` that shows `visible` GPUs of `model` (e.g.
/// `A10 (24 GB PCIe)`): `-L`, `--query-gpu=… --format=csv[,noheader]` (index, name) and the
/// bare table; none visible fails as the real one does without a driver or devices. The
/// simulator puts one in every machine's sandbox; tests that stand in for a machine another
/// way (an `sshd`) use it too.
pub fn write_fake_nvidia_smi(bin: &Path, model: &str, visible: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(bin)?;
    let model = model.replace(['\'', '"', '\\', '$', '`'], "");
    let script = format!(
        r#"#!/bin/bash
# lambda-cloud-sim: this machine's GPUs, as the scenario made them.
count={visible}
model="NVIDIA {model}"
if [ "$count" -eq 0 ]; then
  echo "No devices were found" >&2
  exit 6
fi
case " $* " in
  *" -L "*)
    for i in $(seq 0 $((count - 1))); do
      echo "GPU $i: $model (UUID: GPU-sim-$i)"
    done ;;
  *--query-gpu=*)
    case " $* " in *noheader*) ;; *) echo "index, name" ;; esac
    for i in $(seq 0 $((count - 1))); do echo "$i, $model"; done ;;
  *)
    echo "+-----------------------------------------------------------------------------+"
    echo "| NVIDIA-SMI (lambda-cloud-sim)                                               |"
    for i in $(seq 0 $((count - 1))); do echo "|   $i  $model"; done
    echo "+-----------------------------------------------------------------------------+" ;;
esac
"#
    );
    let path = bin.join("nvidia-smi");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_found_plain_or_in_multipart_messages() {
        assert_eq!(
            shell_script("#!/bin/bash\necho hi\n").as_deref(),
            Some("#!/bin/bash\necho hi\n")
        );
        assert_eq!(shell_script("#cloud-config\npackages: [jq]\n"), None);
        let multipart = "Content-Type: multipart/mixed; boundary=\"XX\"\nMIME-Version: 1.0\n\n\
            --XX\nContent-Type: text/cloud-config\n\npackages: [jq]\n\
            --XX\nContent-Type: text/x-shellscript\n\n#!/bin/bash\necho from-part\n\
            --XX--\n";
        assert_eq!(
            shell_script(multipart).as_deref(),
            Some("#!/bin/bash\necho from-part\n")
        );
    }
}
