//! A simulated machine that boots as real root: its program runs as root inside its own copy
//! of a Debian root filesystem (an overlay over one cached image, so a machine costs a
//! directory, not a copy), entered with `chroot` inside new mount, PID and UTS namespaces
//! (`unshare`). `useradd`, `sudo -u runner`, `chown`, file modes, umask and process owners then
//! behave as they do on a cloud machine, and ending the machine kills everything in its PID
//! namespace, however it was started.
//!
//! A VM ([`Program::UserData`]) is laid out as cloud-init lays it out on a real one (cloud-init's
//! documented `/var/lib/cloud` layout): the user data at
//! `/var/lib/cloud/instances/<id>/user-data.txt` (root, 0600), its shell script at
//! `…/scripts/part-001` (root, 0700), `/var/lib/cloud/instance` pointing at that directory, and
//! the script's output in `/var/log/cloud-init-output.log`; its PID 1 outlives the script. A
//! container ([`Program::Container`]) runs its start command as PID 1 (Docker's model: the
//! container lives as long as that process), its output in `/var/log/container.log` on the host
//! side of the machine's upper layer. Both get `nvidia-smi` in `/usr/bin` (where the NVIDIA
//! driver and the NVIDIA container toolkit put it), `/proc` showing the machine's processes
//! only, a fresh tmpfs on `/run`, and, simulator-only and named so, a read-only view of the
//! simulator's shared directory at `/var/lib/sim-machine/shared` and the machine's
//! non-secret variables in `/var/lib/sim-machine/machine.env`.
//!
//! On the host, the machine's sandbox directory is the overlay's upper layer: what the machine
//! wrote (its logs, its runner directories) is there, under the same paths as on the machine.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{Boot, HOLDER_FILE, Program, write_fake_nvidia_smi};

/// Where a root VM's user-data output goes, inside it (as cloud-init writes it).
pub const USER_DATA_LOG: &str = "var/log/cloud-init-output.log";
/// Where a root container's output goes, in its upper layer.
pub const CONTAINER_LOG: &str = "var/log/container.log";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Sets up the machine's mounts and hostname in its new namespaces, then becomes its PID 1
/// inside its root, with only the variables `SIM_MACHINE_VARS` names: a VM's init starts
/// cloud-init's script part and reaps orphans until the machine ends (bash reaps every child it
/// gets SIGCHLD for while it waits, adopted ones too); a container's PID 1 is its command.
const MACHINE_INIT: &str = r#"set -eu
lower=$1 upper=$2 work=$3 merged=$4 shared=$5 host=$6 kind=$7
shift 7
mount --make-rprivate /
mount -t overlay sim-machine -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
mount -t proc proc "$merged/proc"
mount --rbind /dev "$merged/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$merged/run"
mkdir -p "$merged/var/lib/sim-machine/shared"
mount --bind "$shared" "$merged/var/lib/sim-machine/shared"
mount -o remount,bind,ro "$merged/var/lib/sim-machine/shared"
# The machine's network filesystems: `source:target` a line, bound read-write.
while IFS=: read -r source target; do
  [ -n "$source" ] || continue
  mkdir -p "$merged$target"
  mount --bind "$source" "$merged$target"
done <<< "${SIM_MACHINE_MOUNTS:-}"
hostname "$host"
vars=()
for name in $SIM_MACHINE_VARS; do vars+=("$name=${!name}"); done
cd "$merged"
start=(/usr/bin/env -i "PATH=$PATH" HOME=/root LANG=C.UTF-8 "${vars[@]}")
if [ "$kind" = user-data ]; then
  exec chroot "$merged" "${start[@]}" /bin/bash -c '/bin/bash /var/lib/cloud/instance/scripts/part-001 < /dev/null &
while :; do sleep 3600 & wait || true; done' sim-machine-init
fi
exec chroot "$merged" "${start[@]}" "$@"
"#;

/// Checks that machines can boot as root from `rootfs`: the simulator runs as root and the
/// root filesystem has what a boot needs.
pub fn check_rootfs(rootfs: &Path) -> Result<(), String> {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("cannot read /proc/self: {e}"))?;
    if uid != 0 {
        return Err(
            "machines that boot as root need the simulator to run as root (mount and PID \
             namespaces, chroot); run as root, or leave out the root filesystem for sandboxes"
                .into(),
        );
    }
    for needed in [
        "bin/bash",
        "usr/bin/sudo",
        "usr/sbin/useradd",
        "usr/bin/curl",
    ] {
        if !rootfs.join(needed).exists() {
            return Err(format!(
                "{} has no {needed}: build the machines' root filesystem with `cargo xtask rootfs`",
                rootfs.display()
            ));
        }
    }
    Ok(())
}

/// One root machine's directories on the host.
pub(crate) struct RootMachine<'a> {
    /// The cached Debian root filesystem (the overlay's lower layer, never written).
    pub(crate) rootfs: &'a Path,
    /// The machine's sandbox: the overlay's upper layer.
    pub(crate) upper: PathBuf,
    /// The simulator's shared directory, read-only inside.
    pub(crate) shared: &'a Path,
}

impl RootMachine<'_> {
    /// Lays out the machine and boots it; `None` when there is nothing to run. The child is
    /// the namespaces' holder: killing its process group ends the machine.
    pub(crate) fn boot(&self, boot: &Boot<'_>) -> std::io::Result<Option<Child>> {
        write_fake_nvidia_smi(&self.under("/usr/bin"), &boot.gpus.model, boot.gpus.visible)?;
        crate::prepare_mounts(&boot.mounts)?;
        let Some(program) = &boot.program else {
            return Ok(None);
        };
        let id = boot.id;
        let parent = self
            .upper
            .parent()
            .ok_or_else(|| std::io::Error::other("the sandbox has no parent directory"))?;
        let work = parent.join(format!(".{id}.work"));
        let merged = parent.join(format!(".{id}.root"));
        for dir in [&self.upper, &work, &merged] {
            std::fs::create_dir_all(dir)?;
        }
        let (kind, argv) = match program {
            Program::UserData(script) => {
                self.lay_out_cloud_init(id, script)?;
                ("user-data", Vec::new())
            }
            Program::Container(argv) if argv.is_empty() => {
                return Err(std::io::Error::other("the start command is empty"));
            }
            Program::Container(argv) => ("container", argv.clone()),
        };
        let etc = self.under("/etc");
        std::fs::create_dir_all(&etc)?;
        std::fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n127.0.1.1 {}\n", boot.hostname),
        )?;
        std::fs::write(etc.join("hostname"), format!("{}\n", boot.hostname))?;
        let log_path = self.upper.join(program.log_file(&crate::MachineMode::Root {
            rootfs: self.rootfs.to_path_buf(),
        }));
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = File::create(&log_path)?;
        std::fs::set_permissions(&log_path, std::fs::Permissions::from_mode(0o640))?;
        let machine_dir = self.under(crate::MACHINE_DIR);
        std::fs::create_dir_all(&machine_dir)?;
        let machine_env: Vec<String> = boot
            .env
            .iter()
            .map(|(name, value)| format!("{name}={value}\n"))
            .collect();
        let machine_env = machine_env.concat();
        write_mode(&machine_dir.join("machine.env"), &machine_env, 0o644)?;
        let mut names = Vec::new();
        for (name, _) in boot.env.iter().chain(&boot.secret_env) {
            if name.is_empty()
                || name.starts_with(|c: char| c.is_ascii_digit())
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(std::io::Error::other(format!(
                    "{name:?} is not a variable name"
                )));
            }
            names.push(name.as_str());
        }
        let mut mounts = String::new();
        for mount in &boot.mounts {
            let _ = writeln!(mounts, "{}:{}", mount.source.display(), mount.target);
        }
        let holder = Command::new("unshare")
            .args(["--mount", "--pid", "--uts", "--fork", "--kill-child", "--"])
            .args(["bash", "-c", MACHINE_INIT, "machine-init"])
            .arg(self.rootfs)
            .arg(&self.upper)
            .arg(&work)
            .arg(&merged)
            .arg(self.shared)
            .arg(&boot.hostname)
            .arg(kind)
            .args(argv)
            .env_clear()
            .env("PATH", PATH)
            .envs(boot.env.iter().chain(&boot.secret_env).map(|(k, v)| (k, v)))
            .env("SIM_MACHINE_VARS", names.join(" "))
            .env("SIM_MACHINE_MOUNTS", mounts)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: killing it kills `unshare`, whose child (the machine's
            // PID 1) gets SIGKILL (`--kill-child`), and with it every process in the machine.
            .process_group(0)
            .spawn()?;
        // How a launcher's sandbox access enters the machine, as ssh enters a real one
        // (gha_runner_core::transport::Sandbox reads it; its child is the machine's PID 1).
        std::fs::write(
            parent.join(HOLDER_FILE.replace("{id}", id)),
            holder.id().to_string(),
        )?;
        Ok(Some(holder))
    }

    /// `path` on the machine, in the upper layer.
    fn under(&self, path: &str) -> PathBuf {
        self.upper.join(path.trim_start_matches('/'))
    }

    fn lay_out_cloud_init(&self, id: &str, script: &str) -> std::io::Result<()> {
        let instance = self.under(&format!("/var/lib/cloud/instances/{id}"));
        let scripts = instance.join("scripts");
        std::fs::create_dir_all(&scripts)?;
        write_mode(&instance.join("user-data.txt"), script, 0o600)?;
        write_mode(&scripts.join("part-001"), script, 0o700)?;
        let link = self.under("/var/lib/cloud/instance");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/var/lib/cloud/instances/{id}"), link)
    }
}

fn write_mode(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(text.as_bytes())
}
