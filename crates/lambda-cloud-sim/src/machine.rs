//! One simulated machine as plain data: the instance the API shows, the timeline that drives
//! its status, its GPUs, its billing window, and the work a change of its state causes outside
//! the world's lock. No handler and no `World` here: the areas and the world build on it.

use lambda_cloud::{
    Instance, InstanceActionAvailability, InstanceActionAvailabilityDetails,
    InstanceActionUnavailableCode, InstanceId, InstanceStatus, Redacted,
};

/// Work that must happen outside the lock, after a change of state.
#[derive(Debug, PartialEq)]
pub(crate) enum Effect {
    /// An instance became active: prepare its sandbox (its `nvidia-smi`) and run its user
    /// data, if it has any.
    StartUserData {
        /// The instance that became active.
        id: InstanceId,
        /// The user data it was launched with, if any.
        script: Option<Redacted>,
        /// The GPUs its `nvidia-smi` shows.
        gpus: Gpus,
        /// The filesystems it was launched with: (id, where it mounts them).
        mounts: Vec<(lambda_cloud::FilesystemId, String)>,
    },
    /// An instance is terminating: stop its user-data processes.
    StopUserData {
        /// The instance that is terminating.
        id: InstanceId,
    },
}

/// One launched instance's billing window, kept after the instance leaves the listing.
#[derive(Debug, Clone)]
pub(crate) struct BillingRecord {
    pub(crate) id: InstanceId,
    /// The name it was launched with (a rename later does not change the bill).
    pub(crate) name: Option<String>,
    pub(crate) instance_type: lambda_cloud::InstanceTypeName,
    pub(crate) region: lambda_cloud::RegionName,
    pub(crate) price_cents_per_hour: u32,
    pub(crate) launched_at: f64,
    pub(crate) ended_at: Option<f64>,
}

/// The GPUs a machine's `nvidia-smi` shows: its type's, less any a scenario broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Gpus {
    /// The model, e.g. `A10 (24 GB PCIe)`.
    pub(crate) model: String,
    /// How many are visible.
    pub(crate) visible: u32,
}

/// An instance with the timeline that drives its status.
#[derive(Debug, Clone)]
pub(crate) struct SimInstance {
    pub(crate) instance: Instance,
    pub(crate) gpus: Gpus,
    pub(crate) user_data: Option<Redacted>,
    pub(crate) host: u32,
    /// The public IP it gets when active, when the scenario fixes one.
    pub(crate) public_ip: Option<String>,
    pub(crate) active_at: Option<f64>,
    pub(crate) unhealthy_at: Option<f64>,
    pub(crate) restart_until: Option<f64>,
    pub(crate) terminated_at: Option<f64>,
    pub(crate) terminate_requested: bool,
    pub(crate) user_data_started: bool,
}

impl SimInstance {
    /// Whether the instance occupies a machine at `now` (until it is fully terminated).
    pub(crate) fn holds_machine(&self, now: f64) -> bool {
        self.terminated_at.is_none_or(|at| now < at)
    }

    /// Moves the status to what the timeline says for `now`.
    pub(crate) fn advance(&mut self, now: f64) -> Option<Effect> {
        let reached = |at: Option<f64>| at.is_some_and(|at| at <= now);
        let status = if reached(self.terminated_at) {
            InstanceStatus::Terminated
        } else if self.terminate_requested {
            InstanceStatus::Terminating
        } else if self.restart_until.is_some_and(|until| now < until) {
            InstanceStatus::Booting
        } else if reached(self.unhealthy_at) {
            InstanceStatus::Unhealthy
        } else if reached(self.active_at) {
            InstanceStatus::Active
        } else {
            InstanceStatus::Booting
        };
        let becomes_reachable = status == InstanceStatus::Active && self.instance.ip.is_none();
        if becomes_reachable {
            let (a, b) = (self.host / 250, self.host % 250 + 2);
            let ip = self
                .public_ip
                .clone()
                .unwrap_or_else(|| format!("198.51.{}.{b}", 100 + a));
            self.instance.private_ip = Some(format!("10.0.{a}.{b}"));
            if self.instance.hostname.is_none() {
                self.instance.hostname = Some(ip.replace('.', "-"));
            }
            self.instance.ip = Some(ip);
        }
        self.instance.actions = availability(&status);
        self.instance.status = status;
        if self.instance.status == InstanceStatus::Active && !self.user_data_started {
            self.user_data_started = true;
            // Without user data too: what runs over SSH later finds the machine's programs.
            return Some(Effect::StartUserData {
                id: self.instance.id.clone(),
                script: self.user_data.clone(),
                gpus: self.gpus.clone(),
                mounts: self
                    .instance
                    .file_system_mounts
                    .iter()
                    .flatten()
                    .map(|m| (m.file_system_id.clone(), m.mount_point.clone()))
                    .collect(),
            });
        }
        None
    }
}

pub(crate) fn availability(status: &InstanceStatus) -> InstanceActionAvailability {
    use InstanceActionUnavailableCode::{VmHasNotLaunched, VmIsTerminating};
    let available = InstanceActionAvailabilityDetails::available;
    let blocked = InstanceActionAvailabilityDetails::blocked;
    match status {
        InstanceStatus::Booting => InstanceActionAvailability {
            migrate: blocked(VmHasNotLaunched, "The instance has not launched yet."),
            rebuild: blocked(VmHasNotLaunched, "The instance has not launched yet."),
            restart: blocked(VmHasNotLaunched, "The instance has not launched yet."),
            cold_reboot: blocked(VmHasNotLaunched, "The instance has not launched yet."),
            terminate: available(),
        },
        InstanceStatus::Terminating | InstanceStatus::Terminated | InstanceStatus::Preempted => {
            let gone = || blocked(VmIsTerminating, "The instance is terminating.");
            InstanceActionAvailability {
                migrate: gone(),
                rebuild: gone(),
                restart: gone(),
                cold_reboot: gone(),
                terminate: gone(),
            }
        }
        _ => InstanceActionAvailability {
            migrate: available(),
            rebuild: available(),
            restart: available(),
            cold_reboot: available(),
            terminate: available(),
        },
    }
}
