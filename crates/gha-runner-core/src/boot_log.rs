//! Reading the end of a machine's boot log, for a report of why it failed: over SSH with the
//! key the launcher made for the launch, from a simulated machine's sandbox, or, when no key
//! of ours is on the machine, the command that reads it by hand.

use std::path::PathBuf;
use std::time::Duration;

use crate::provider::Machine;
use crate::transport::{OpenSsh, Sandbox, Transport, capture, shell_quote};

/// Where the boot script logs on a machine (under a simulated machine's sandbox there).
pub const BOOT_LOG: &str = "/var/log/lambda-gha-boot.log";

/// How many lines of a boot log a report shows.
pub const BOOT_LOG_LINES: usize = 40;

/// How long reading one log may take (connecting included).
const READ_TIMEOUT: Duration = Duration::from_secs(45);
/// How long delivering a file may take, connection included (a ~10 MB agent over the
/// internet takes seconds).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// How the launcher reaches its machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineAccess {
    /// OpenSSH to the machine's public IP with a key the launcher holds.
    Ssh {
        /// The login user (`ubuntu` on Lambda's images).
        user: String,
        /// The SSH port (22).
        port: u16,
        /// The private key file.
        identity: PathBuf,
        /// A private directory for the machines' host keys and the connection sockets.
        state_dir: PathBuf,
    },
    /// Simulated machines: each one's sandbox is `<root>/<instance id>`.
    Sandbox {
        /// The simulator's sandbox root.
        root: PathBuf,
    },
    /// No key of ours is on the machines (the user named their own).
    Unavailable {
        /// Why not, for the report.
        why: String,
    },
}

impl MachineAccess {
    /// The last `lines` lines of `machine`'s boot log, or why they cannot be read (with the
    /// command that reads them by hand).
    pub async fn boot_log_tail(&self, machine: &Machine, lines: usize) -> Result<String, String> {
        self.tail(machine, BOOT_LOG, lines).await
    }

    /// The last `lines` lines of the file at `path` on `machine` (a path on the machine; under
    /// the sandbox for a simulated one).
    pub async fn tail(
        &self,
        machine: &Machine,
        path: &str,
        lines: usize,
    ) -> Result<String, String> {
        let by_hand = |ip: &str| {
            format!(
                "read it with `ssh ubuntu@{ip} sudo tail -n 100 {path}` before the machine ends"
            )
        };
        let ip = machine.ip.as_deref().unwrap_or("<its IP>");
        let transport = self
            .transport(machine)
            .map_err(|why| format!("{why}: {}", by_hand(ip)))?;
        // Root-only on a machine: the login user reads it with sudo (passwordless on Lambda).
        let quoted = shell_quote(path);
        let script = format!(
            "f=\"${{SIM_MACHINE_SANDBOX:-}}\"{quoted}; \
             if [ \"$(id -u)\" = 0 ] || [ -r \"$f\" ]; then tail -n {lines} \"$f\"; \
             else sudo -n tail -n {lines} \"$f\"; fi"
        );
        let read = tokio::time::timeout(READ_TIMEOUT, capture(transport.as_ref(), &script)).await;
        transport.close().await;
        match read {
            Ok(Ok(bytes)) => Ok(String::from_utf8_lossy(&bytes).trim_end().to_owned()),
            Ok(Err(why)) => Err(format!("{why}; {}", by_hand(ip))),
            Err(_) => Err(format!(
                "no answer from {} within {}s; {}",
                transport.describe(),
                READ_TIMEOUT.as_secs(),
                by_hand(ip)
            )),
        }
    }

    /// Puts the local file `local` on `machine` at `path` (root-only directory, mode 0700 file),
    /// whole or not at all: it is written beside and renamed into place, so a reader polling
    /// for `path` never sees half of it.
    pub async fn deliver(
        &self,
        machine: &Machine,
        local: &std::path::Path,
        path: &str,
    ) -> Result<(), String> {
        let transport = self.transport(machine)?;
        let ready = transport.wait_ready(DELIVERY_TIMEOUT).await;
        if let Err(why) = ready {
            transport.close().await;
            return Err(why);
        }
        let quoted = shell_quote(path);
        let script = format!(
            "f=\"${{SIM_MACHINE_SANDBOX:-}}\"{quoted}; s=; [ \"$(id -u)\" = 0 ] || s='sudo -n'; \
             $s install -d -m 0700 \"$(dirname \"$f\")\" && \
             $s sh -c 'umask 077; cat > \"$1.part\" && mv \"$1.part\" \"$1\"' deliver \"$f\""
        );
        let file = std::fs::File::open(local)
            .map_err(|e| format!("cannot read {}: {e}", local.display()))?;
        let sent = tokio::time::timeout(
            DELIVERY_TIMEOUT,
            crate::transport::feed(transport.as_ref(), &script, move |pipe| {
                std::io::copy(&mut std::io::BufReader::new(file), pipe).map(|_| ())
            }),
        )
        .await;
        transport.close().await;
        match sent {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer from {} within {}s",
                transport.describe(),
                DELIVERY_TIMEOUT.as_secs()
            )),
        }
    }

    /// How commands reach `machine`, or why they cannot.
    fn transport(&self, machine: &Machine) -> Result<Box<dyn Transport>, String> {
        Ok(match self {
            MachineAccess::Unavailable { why } => return Err(why.clone()),
            MachineAccess::Sandbox { root } => {
                Box::new(Sandbox::new(root.join(machine.id.as_str())))
            }
            MachineAccess::Ssh {
                user,
                port,
                identity,
                state_dir,
            } => {
                let Some(host) = machine.ip.clone() else {
                    return Err(format!("{} has no IP address yet", machine.id));
                };
                let _ = std::fs::create_dir_all(state_dir);
                Box::new(OpenSsh {
                    host,
                    port: *port,
                    user: user.clone(),
                    identity: Some(identity.clone()),
                    known_hosts: state_dir.join(format!("known_hosts-{}", machine.id)),
                    // Unix socket paths are short: the machine id's first 12 digits do.
                    control_path: state_dir.join(format!(
                        "c-{}",
                        machine.id.as_str().chars().take(12).collect::<String>()
                    )),
                })
            }
        })
    }
}
