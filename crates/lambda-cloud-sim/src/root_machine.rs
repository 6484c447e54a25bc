//! A simulated machine that boots as real root: the instance's user data runs as root inside
//! its own copy of a Debian root filesystem (an overlay over one cached image, so a machine
//! costs a directory, not a copy), entered with `chroot` inside new mount, PID and UTS
//! namespaces (`unshare`). `useradd`, `sudo -u runner`, `chown`, file modes, umask and process
//! owners then behave as they do on a Lambda machine, and terminating the machine kills
//! everything in its PID namespace, however it was started.
//!
//! What the machine gets, as cloud-init lays it out on a real one (cloud-init's documented
//! `/var/lib/cloud` layout): the user data at `/var/lib/cloud/instances/<id>/user-data.txt`
//! (root, 0600), its shell script at `…/scripts/part-001` (root, 0700), `/var/lib/cloud/instance`
//! pointing at that directory, and the script's output in `/var/log/cloud-init-output.log`.
//! Lambda's image puts `nvidia-smi` in `/usr/bin`; so does the simulator (for the scenario's
//! GPUs). `/proc` shows the machine's processes only; `/run` is a fresh tmpfs.
//!
//! Simulator-only, and named so: `/var/lib/lambda-cloud-sim/machine.env` (0644) holds the
//! instance id, the API URL and the time scale for programs that keep time, and
//! `/var/lib/lambda-cloud-sim/shared` is a read-only view of the simulator's shared directory,
//! through which tests hand files to every machine.
//!
//! On the host, the instance's sandbox directory is the overlay's upper layer: what the machine
//! wrote (its logs, its runner directories) is there, under the same paths as on the machine.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lambda_cloud::InstanceId;

use crate::machine_env;

/// Where a root machine's user-data output goes, inside it (as cloud-init writes it).
pub const ROOT_LOG_FILE: &str = "var/log/cloud-init-output.log";
/// The simulator's own directory inside a root machine.
pub const MACHINE_SIM_DIR: &str = "/var/lib/lambda-cloud-sim";

/// Sets up the machine's mounts and hostname in its new namespaces, then becomes its PID 1,
/// inside its root: it starts cloud-init's script part and reaps orphans until the machine ends.
const MACHINE_INIT: &str = r#"set -eu
lower=$1 upper=$2 work=$3 merged=$4 shared=$5 host=$6
mount --make-rprivate /
mount -t overlay lambda-cloud-sim -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
mount -t proc proc "$merged/proc"
mount --rbind /dev "$merged/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$merged/run"
mkdir -p "$merged/var/lib/lambda-cloud-sim/shared"
mount --bind "$shared" "$merged/var/lib/lambda-cloud-sim/shared"
mount -o remount,bind,ro "$merged/var/lib/lambda-cloud-sim/shared"
hostname "$host"
set -a
. "$merged/var/lib/lambda-cloud-sim/machine.env"
set +a
cd "$merged"
# The machine's PID 1, inside it: starts cloud-init's script part, then reaps orphans (bash
# reaps every child it gets SIGCHLD for while it waits, adopted ones too) until the machine ends.
exec chroot "$merged" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 LAMBDA_SIM=1 LAMBDA_SIM_INSTANCE_ID="$LAMBDA_SIM_INSTANCE_ID" \
  LAMBDA_SIM_API_URL="$LAMBDA_SIM_API_URL" LAMBDA_API_TIME_SCALE="$LAMBDA_API_TIME_SCALE" \
  /bin/bash -c '/bin/bash /var/lib/cloud/instance/scripts/part-001 < /dev/null &
while :; do sleep 3600 & wait || true; done' lambda-cloud-sim-init
"#;

/// Checks that machines can boot as root from `rootfs`: the simulator runs as root and the
/// root filesystem has what a boot needs.
pub(crate) fn check(rootfs: &Path) -> Result<(), String> {
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
    /// The instance's sandbox: the overlay's upper layer.
    pub(crate) upper: PathBuf,
    /// The simulator's shared directory, read-only inside.
    pub(crate) shared: &'a Path,
}

/// What a booting machine is told about itself.
pub(crate) struct MachineEnv<'a> {
    pub(crate) id: &'a InstanceId,
    pub(crate) api_url: &'a str,
    pub(crate) time_scale: lambda_cloud::TimeScale,
}

impl RootMachine<'_> {
    /// Lays out the machine as cloud-init would and boots it: `script` runs as root in the
    /// machine's PID 1 namespace. The child is the namespace's holder: killing its process
    /// group ends the machine.
    pub(crate) fn boot(&self, script: &str, env: &MachineEnv<'_>) -> std::io::Result<Child> {
        let id = env.id.as_str();
        let parent = self
            .upper
            .parent()
            .ok_or_else(|| std::io::Error::other("the sandbox has no parent directory"))?;
        let work = parent.join(format!(".{id}.work"));
        let merged = parent.join(format!(".{id}.root"));
        for dir in [&self.upper, &work, &merged] {
            std::fs::create_dir_all(dir)?;
        }
        self.lay_out_cloud_init(id, script)?;
        let sim_dir = self.under(MACHINE_SIM_DIR);
        std::fs::create_dir_all(&sim_dir)?;
        std::fs::write(
            sim_dir.join("machine.env"),
            format!(
                "{}={id}\n{}={}\n{}={}\n",
                machine_env::INSTANCE_ID,
                machine_env::API_URL,
                env.api_url,
                machine_env::TIME_SCALE,
                env.time_scale
            ),
        )?;
        std::fs::set_permissions(
            sim_dir.join("machine.env"),
            std::fs::Permissions::from_mode(0o644),
        )?;
        // A hostname like Lambda's, which sudo can resolve.
        let host = format!("lambda-{}", id.chars().take(12).collect::<String>());
        let etc = self.under("/etc");
        std::fs::create_dir_all(&etc)?;
        std::fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n127.0.1.1 {host}\n"),
        )?;
        std::fs::write(etc.join("hostname"), format!("{host}\n"))?;
        let log_path = self.upper.join(ROOT_LOG_FILE);
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = File::create(&log_path)?;
        std::fs::set_permissions(&log_path, std::fs::Permissions::from_mode(0o640))?;
        let holder = Command::new("unshare")
            .args(["--mount", "--pid", "--uts", "--fork", "--kill-child", "--"])
            .args(["bash", "-c", MACHINE_INIT, "machine-init"])
            .arg(self.rootfs)
            .arg(&self.upper)
            .arg(&work)
            .arg(&merged)
            .arg(self.shared)
            .arg(&host)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
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
            parent.join(format!(".{id}.holder")),
            holder.id().to_string(),
        )?;
        Ok(holder)
    }

    /// `path` on the machine, in the upper layer.
    pub(crate) fn under(&self, path: &str) -> PathBuf {
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
