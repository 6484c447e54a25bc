//! Simulated cloud machines as local processes, for the simulators of this workspace (Lambda's
//! and RunPod's): what a machine runs — cloud-init user data on a VM, or a container's start
//! command on a pod — runs here in one of two [`MachineMode`]s:
//!
//! - **Sandbox**: bash as the simulator's own user in the machine's sandbox directory. Fast and
//!   needs nothing; users, owners and modes are not a machine's.
//! - **Root**: as real root inside the machine's own copy-on-write view of a Debian root
//!   filesystem, in new mount, PID and UTS namespaces (see [`root`]): the production path of a
//!   boot script, `useradd`, `sudo -u runner`, file modes and all.
//!
//! Each machine gets an `nvidia-smi` showing the GPUs the simulator gave it, its own process
//! group (ending a machine kills everything it started), and a read-only view of a directory
//! shared by every machine.

#![deny(missing_docs)]

mod nvidia_smi;
pub mod root;

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};

pub use nvidia_smi::write_fake_nvidia_smi;
pub use root::check_rootfs;

/// Set in the environment of everything a sandboxed machine runs, to the machine's sandbox
/// directory (where its `/` would be): how its processes are found when it ends, and how the
/// lambda-gha agent and boot scripts find their files there.
pub const SANDBOX_ENV: &str = "SIM_MACHINE_SANDBOX";
/// A sandboxed machine's own programs (its `nvidia-smi`), inside its sandbox: first on the
/// `PATH` of what it runs, and of anything run in the sandbox as if over SSH.
pub const SANDBOX_BIN: &str = ".sim-machine/bin";
/// The directory under the machines' root whose files every root machine sees, read-only, at
/// [`MACHINE_SHARED_DIR`].
pub const SHARED_DIR: &str = "shared";
/// The simulator's own directory inside a root machine.
pub const MACHINE_DIR: &str = "/var/lib/sim-machine";
/// Where a root machine sees the shared directory.
pub const MACHINE_SHARED_DIR: &str = "/var/lib/sim-machine/shared";
/// The file beside a root machine's sandbox (`.<id>.holder`) holding the PID of the process
/// that holds its namespaces; the machine's PID 1 is that process's child.
pub const HOLDER_FILE: &str = ".{id}.holder";

/// How a simulated machine runs what it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MachineMode {
    /// bash as the simulator's own user, in the machine's sandbox directory
    /// ([`SANDBOX_ENV`] tells scripts where their root is).
    #[default]
    Sandbox,
    /// As real root in the machine's own copy of this Debian root filesystem, in new mount,
    /// PID and UTS namespaces (see [`root`]). Needs the simulator to run as root; build the
    /// filesystem with `cargo xtask rootfs`.
    Root {
        /// The root filesystem (`debootstrap --variant=minbase` with bash, sudo, curl, …).
        rootfs: PathBuf,
    },
}

/// The GPUs a machine has, as its `nvidia-smi` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpus {
    /// The model, e.g. `A10 (24 GB PCIe)`.
    pub model: String,
    /// How many are visible.
    pub visible: u32,
}

/// What a machine runs when it boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A shell script from cloud-init user data (a VM): on a root machine laid out as cloud-init
    /// lays it out (`/var/lib/cloud/instances/<id>/…`), run as root in the background of the
    /// machine's PID 1, which lives on when the script ends, as a VM does.
    UserData(String),
    /// A container's start command (a pod): the program and its arguments, run as the
    /// machine's PID 1 on a root machine; when it exits, the machine has exited, as a container
    /// does.
    Container(Vec<String>),
}

impl Program {
    /// Where the program's output goes, under the machine's sandbox directory.
    pub fn log_file(&self, mode: &MachineMode) -> &'static str {
        match (self, mode) {
            (Program::UserData(_), MachineMode::Sandbox) => "user-data.log",
            (Program::UserData(_), MachineMode::Root { .. }) => root::USER_DATA_LOG,
            (Program::Container(_), MachineMode::Sandbox) => "container.log",
            (Program::Container(_), MachineMode::Root { .. }) => root::CONTAINER_LOG,
        }
    }
}

/// One machine to boot.
#[derive(Debug, Clone)]
pub struct Boot<'a> {
    /// The machine's id at its provider: its sandbox directory's name.
    pub id: &'a str,
    /// What it runs; `None` boots a machine that runs nothing (its `nvidia-smi` is there).
    pub program: Option<Program>,
    /// Its GPUs.
    pub gpus: &'a Gpus,
    /// Environment its program gets (the provider's variables, the simulator's clock), besides
    /// `PATH`, `HOME` and, in a sandbox, [`SANDBOX_ENV`]. Names are shell identifiers. On a
    /// root machine these are also in `/var/lib/sim-machine/machine.env` (0644), for programs
    /// started later by other users (the fake runner reads the clock there).
    pub env: Vec<(String, String)>,
    /// Environment its program gets that is written nowhere (a provider's key for the machine).
    pub secret_env: Vec<(String, String)>,
    /// Its hostname, on a root machine.
    pub hostname: String,
    /// Host directories it sees as its own (a cloud's network filesystems).
    pub mounts: Vec<Mount>,
}

/// A host directory a machine sees at a path of its own, read-write: what several machines
/// mount is shared between them, as a network filesystem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory on the host (made when missing).
    pub source: PathBuf,
    /// Where the machine sees it: an absolute path without `:` or a newline.
    pub target: String,
}

/// Starts and stops machines under one directory: each machine's sandbox is `<root>/<id>`.
#[derive(Debug)]
pub struct Machines {
    root: PathBuf,
    mode: MachineMode,
    children: Mutex<HashMap<String, Child>>,
}

impl Machines {
    /// Machines under `root`, run in `mode`.
    pub fn new(root: PathBuf, mode: MachineMode) -> Self {
        Machines {
            root,
            mode,
            children: Mutex::new(HashMap::new()),
        }
    }

    /// The directory every machine's sandbox is in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How machines run.
    pub fn mode(&self) -> &MachineMode {
        &self.mode
    }

    /// The directory every root machine sees read-only at [`MACHINE_SHARED_DIR`].
    pub fn shared(&self) -> PathBuf {
        self.root.join(SHARED_DIR)
    }

    /// Machine `id`'s sandbox directory.
    pub fn sandbox(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Prepares the machine's sandbox (its `nvidia-smi`) and starts its program. A failure to
    /// start is logged and written to the machine's log, as a machine that does not come up
    /// shows it in its console output.
    pub fn start(&self, boot: &Boot<'_>) {
        let dir = self.sandbox(boot.id);
        let started = std::fs::create_dir_all(&dir).and_then(|()| match &self.mode {
            MachineMode::Sandbox => spawn_sandboxed(&dir, boot),
            MachineMode::Root { rootfs } => root::RootMachine {
                rootfs,
                upper: dir.clone(),
                shared: &self.shared(),
            }
            .boot(boot),
        });
        match started {
            Ok(Some(child)) => {
                tracing::info!(machine = boot.id, pid = child.id(), "machine started");
                self.children
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(boot.id.to_owned(), child);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(machine = boot.id, %error, "could not start the machine");
                let log = boot
                    .program
                    .as_ref()
                    .map_or("machine.log", |program| program.log_file(&self.mode));
                write_note(&dir.join(log), &format!("could not start: {error}"));
            }
        }
    }

    /// Kills machine `id`: its program and every process running in its sandbox.
    pub fn stop(&self, id: &str) {
        let child = self
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(child) = child {
            kill_group(child);
            tracing::info!(machine = id, "machine stopped");
        }
        // Also what reached the machine another way (`lambda-gha run` through the sandbox).
        kill_sandboxed(&self.sandbox(id));
    }

    /// Kills every machine.
    pub fn stop_all(&self) {
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
    pub fn machine_init(&self, id: &str) -> Option<u32> {
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

    /// Ids of machines whose program is still running.
    pub fn running(&self) -> Vec<String> {
        let mut children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        children
            .iter_mut()
            .filter_map(|(id, child)| matches!(child.try_wait(), Ok(None)).then(|| id.clone()))
            .collect()
    }
}

/// Appends a line from the simulator to a machine's log.
fn write_note(path: &Path, note: &str) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(mut log) = File::options().create(true).append(true).open(path) {
        let _ = writeln!(log, "sim-machine: {note}");
    }
}

/// The program as this user in the sandbox `dir`; `None` when there is nothing to run.
/// Checks each mount's target and makes its source.
fn prepare_mounts(mounts: &[Mount]) -> std::io::Result<()> {
    for mount in mounts {
        let source = mount.source.to_string_lossy();
        if !mount.target.starts_with('/')
            || mount.target.contains([':', '\n'])
            || source.contains([':', '\n'])
        {
            return Err(std::io::Error::other(format!(
                "{source:?} cannot be mounted at {:?} (no `:` or newline in either)",
                mount.target
            )));
        }
        std::fs::create_dir_all(&mount.source)?;
    }
    Ok(())
}

fn spawn_sandboxed(dir: &Path, boot: &Boot<'_>) -> std::io::Result<Option<Child>> {
    let bin = dir.join(SANDBOX_BIN);
    write_fake_nvidia_smi(&bin, &boot.gpus.model, boot.gpus.visible)?;
    prepare_mounts(&boot.mounts)?;
    // In a sandbox a mount is a link at its place under the sandbox's root.
    for mount in &boot.mounts {
        let at = dir.join(mount.target.trim_start_matches('/'));
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(&at);
        std::os::unix::fs::symlink(&mount.source, &at)?;
    }
    let Some(program) = &boot.program else {
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
    let mut command = match program {
        Program::UserData(script) => {
            let script_path = dir.join("user-data.sh");
            std::fs::write(&script_path, script)?;
            let mut command = Command::new("bash");
            command.arg(script_path);
            command
        }
        Program::Container(argv) => {
            let (executable, arguments) = argv
                .split_first()
                .ok_or_else(|| std::io::Error::other("the start command is empty"))?;
            let mut command = Command::new(executable);
            command.args(arguments);
            command
        }
    };
    let log = File::create(dir.join(program.log_file(&MachineMode::Sandbox)))?;
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env(SANDBOX_ENV, dir)
        // The machine's GPUs, as its `nvidia-smi` shows them.
        .env("PATH", path)
        .envs(boot.env.iter().chain(&boot.secret_env).map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: ending the machine kills everything it started.
        .process_group(0)
        .spawn()
        .map(Some)
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

/// Kills every process whose environment places it in a sandbox under `dir`: what a machine
/// started in a new session or process group (a daemonized agent, say) escapes the group kill
/// but still inherits [`SANDBOX_ENV`].
fn kill_sandboxed(dir: &Path) {
    let marker = format!("{SANDBOX_ENV}={}", dir.display());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sim-machine-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn wait_for(path: &Path) -> String {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.contains("done")
            {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("{} never said done", path.display());
    }

    #[test]
    fn a_container_command_runs_with_its_environment_and_gpus_in_the_sandbox() {
        let root = scratch("container");
        let machines = Machines::new(root.clone(), MachineMode::Sandbox);
        let gpus = Gpus {
            model: "H100 80GB HBM3".into(),
            visible: 2,
        };
        machines.start(&Boot {
            id: "pod1",
            program: Some(Program::Container(vec![
                "bash".into(),
                "-c".into(),
                "echo \"id=$RUNPOD_POD_ID key=${#RUNPOD_API_KEY}\"; nvidia-smi -L; echo \"sandbox=$SIM_MACHINE_SANDBOX\"; echo done".into(),
            ])),
            gpus: &gpus,
            env: vec![("RUNPOD_POD_ID".into(), "pod1".into())],
            secret_env: vec![("RUNPOD_API_KEY".into(), "pod-key".into())],
            hostname: "pod1".into(),
            mounts: Vec::new(),
        });
        let log = wait_for(&root.join("pod1/container.log"));
        assert!(log.contains("id=pod1 key=7"), "{log}");
        assert!(log.contains("GPU 1: NVIDIA H100 80GB HBM3"), "{log}");
        assert!(
            log.contains(&format!("sandbox={}", root.join("pod1").display())),
            "{log}"
        );
        machines.stop_all();
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn user_data_runs_as_a_script_and_stopping_kills_what_it_left_running() {
        let root = scratch("user-data");
        let machines = Machines::new(root.clone(), MachineMode::Sandbox);
        let gpus = Gpus {
            model: "A10 (24 GB PCIe)".into(),
            visible: 1,
        };
        machines.start(&Boot {
            id: "vm1",
            program: Some(Program::UserData(
                "#!/bin/bash\nsetsid sleep 300 & echo done\nwait\n".into(),
            )),
            gpus: &gpus,
            env: Vec::new(),
            secret_env: Vec::new(),
            hostname: "vm1".into(),
            mounts: Vec::new(),
        });
        wait_for(&root.join("vm1/user-data.log"));
        assert_eq!(machines.running(), ["vm1"]);
        machines.stop("vm1");
        assert!(machines.running().is_empty());
        // The detached `sleep` carried the sandbox marker and is gone too.
        let marker = format!("{SANDBOX_ENV}={}", root.join("vm1").display());
        let left = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
            })
            .count();
        assert_eq!(left, 0);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn an_empty_start_command_is_noted_in_the_machine_log() {
        let root = scratch("empty");
        let machines = Machines::new(root.clone(), MachineMode::Sandbox);
        let gpus = Gpus {
            model: "A10".into(),
            visible: 1,
        };
        machines.start(&Boot {
            id: "pod2",
            program: Some(Program::Container(Vec::new())),
            gpus: &gpus,
            env: Vec::new(),
            secret_env: Vec::new(),
            hostname: "pod2".into(),
            mounts: Vec::new(),
        });
        let log = std::fs::read_to_string(root.join("pod2/container.log")).unwrap();
        assert!(log.contains("the start command is empty"), "{log}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn machines_that_mount_one_directory_share_its_files() {
        let root = scratch("mounts");
        let machines = Machines::new(root.clone(), MachineMode::Sandbox);
        let gpus = Gpus {
            model: "A10".into(),
            visible: 1,
        };
        let shared = root.join("filesystems/fs1");
        let boot = |id: &'static str, script: &str| {
            machines.start(&Boot {
                id,
                program: Some(Program::UserData(script.to_owned())),
                gpus: &gpus,
                env: Vec::new(),
                secret_env: Vec::new(),
                hostname: id.into(),
                mounts: vec![Mount {
                    source: shared.clone(),
                    target: "/lambda/nfs/cache".into(),
                }],
            });
        };
        boot(
            "writer",
            "#!/bin/bash\necho wheels done > \"$SIM_MACHINE_SANDBOX/lambda/nfs/cache/uv\"\n",
        );
        wait_for(&shared.join("uv"));
        boot(
            "reader",
            "#!/bin/bash\necho \"read: $(cat \"$SIM_MACHINE_SANDBOX/lambda/nfs/cache/uv\")\"\n",
        );
        let log = wait_for(&root.join("reader/user-data.log"));
        assert!(log.contains("read: wheels"), "{log}");
        let refused = Machines::new(root.clone(), MachineMode::Sandbox);
        refused.start(&Boot {
            id: "bad",
            program: Some(Program::UserData("#!/bin/bash\n".into())),
            gpus: &gpus,
            env: Vec::new(),
            secret_env: Vec::new(),
            hostname: "bad".into(),
            mounts: vec![Mount {
                source: shared.clone(),
                target: "relative:path".into(),
            }],
        });
        let log = std::fs::read_to_string(root.join("bad/user-data.log")).unwrap();
        assert!(log.contains("cannot be mounted"), "{log}");
        machines.stop_all();
        let _ = std::fs::remove_dir_all(root);
    }
}
