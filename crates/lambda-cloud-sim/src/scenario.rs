//! What the simulated cloud looks like: its catalog, capacity over time, boot times, limits,
//! faults and misbehaving instances. Read from TOML (`--scenario FILE`) or built in code; both
//! are the same [`Scenario`] value.

use std::path::Path;

use lambda_cloud::{ErrorCode, ImageArchitecture};
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// Everything that shapes a simulated cloud. `Scenario::default()` is a realistic catalog with
/// capacity everywhere; a scenario file overrides any part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed for every random choice (boot times, ids, fault probabilities): same seed, same run.
    pub seed: u64,
    /// Regions of the cloud.
    pub regions: Vec<RegionSpec>,
    /// Instance types on offer.
    pub instance_types: Vec<InstanceTypeSpec>,
    /// Machines available per (type, region) over time. A pair with no entry has
    /// [`Scenario::default_capacity`] machines.
    pub capacity: Vec<CapacitySpec>,
    /// Machines available for a (type, region) pair the scenario does not list.
    pub default_capacity: u32,
    /// Image families offered in every region, for both architectures.
    pub image_families: Vec<String>,
    /// Server-side rate limits.
    pub rate_limits: RateLimitSpec,
    /// Injected failures.
    pub faults: Vec<FaultSpec>,
    /// Launches that misbehave.
    pub instance_behaviors: Vec<InstanceBehaviorSpec>,
    /// Simulated seconds from `terminating` to `terminated`.
    pub terminate_seconds: f64,
    /// Simulated seconds a terminated instance stays in `GET /instances`.
    pub terminated_visible_seconds: f64,
    /// Simulated seconds a restart keeps an instance `booting`.
    pub restart_seconds: f64,
    /// The most instances alive at once before launches fail with `global/quota-exceeded`.
    pub max_instances: Option<u32>,
    /// Entries per page of audit events and tickets.
    pub page_size: usize,
    /// SSH keys the account has from the start.
    pub ssh_keys: Vec<SshKeySpec>,
    /// The public IP every active instance reports, e.g. `127.0.0.1` so that SSH reaches an
    /// `sshd` a test started (default: a distinct documentation address per instance).
    pub public_ip: Option<String>,
}

/// An SSH key the account starts with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKeySpec {
    /// Its name, as launches name it.
    pub name: String,
    /// Its OpenSSH public key line.
    pub public_key: String,
}

/// A region of the simulated cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Its code, e.g. `us-east-1`.
    pub name: String,
    /// Its description, e.g. `Virginia, USA`.
    pub description: String,
}

/// An instance type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceTypeSpec {
    /// Its name, e.g. `gpu_1x_a10`.
    pub name: String,
    /// Its description, e.g. `1x A10 (24 GB PCIe)`.
    pub description: String,
    /// Its GPU, e.g. `A10 (24 GB PCIe)`.
    pub gpu_description: String,
    /// US cents per hour.
    pub price_cents_per_hour: u32,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// RAM in GiB.
    pub memory_gib: u32,
    /// Storage in GiB.
    pub storage_gib: u32,
    /// GPUs.
    pub gpus: u32,
    /// CPU architecture.
    #[serde(default = "x86_64")]
    pub architecture: ImageArchitecture,
    /// Simulated seconds from launch to `active`, drawn uniformly from this range.
    #[serde(default = "default_boot")]
    pub boot_seconds: SecondsRange,
}

fn x86_64() -> ImageArchitecture {
    ImageArchitecture::X86_64
}

fn default_boot() -> SecondsRange {
    SecondsRange {
        min: 150.0,
        max: 270.0,
    }
}

/// A range of simulated seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondsRange {
    /// The least, in simulated seconds.
    pub min: f64,
    /// The most, in simulated seconds.
    pub max: f64,
}

/// How many machines of one type are available in one region, over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySpec {
    /// The instance type.
    pub instance_type: String,
    /// The region, by its code.
    pub region: String,
    /// From which simulated second on how many machines exist; the latest step at or before
    /// now applies (none before the first step). Running instances take machines from it.
    pub timeline: Vec<CapacityStep>,
}

/// One step of a capacity timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityStep {
    /// From this simulated second on…
    pub at: u32,
    /// …this many machines exist.
    pub available: u32,
}

/// The limits the server enforces, in simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Whether to answer 429 at all.
    pub enabled: bool,
    /// Least simulated seconds between requests (Lambda documents 1).
    pub request_interval_seconds: f64,
    /// Least simulated seconds between launches (Lambda documents 12).
    pub launch_interval_seconds: f64,
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        RateLimitSpec {
            enabled: true,
            request_interval_seconds: 1.0,
            launch_interval_seconds: 12.0,
        }
    }
}

/// A failure injected into one operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The spec's `operationId`, e.g. `launchInstance`.
    pub operation: String,
    /// The HTTP status to answer with; absent for a latency-only fault.
    #[serde(default)]
    pub status: Option<u16>,
    /// The error code, e.g. `global/internal-error`.
    #[serde(default = "internal_error")]
    pub code: String,
    /// The error message.
    #[serde(default = "injected")]
    pub message: String,
    /// Fire on these calls of the operation (1 = the first); with `probability`, either fires.
    #[serde(default)]
    pub on_calls: Vec<u32>,
    /// Fire with this probability per call. With neither `on_calls` nor `probability`, always.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Real milliseconds to wait before answering.
    #[serde(default)]
    pub latency_ms: u64,
    /// The operation runs, then the connection breaks before the answer is complete: the
    /// caller cannot tell whether it happened (with `status`, the failure wins and nothing
    /// runs).
    #[serde(default)]
    pub drop_connection: bool,
}

impl FaultSpec {
    /// `operation` answers `status` with the error `code` on every call, until narrowed with
    /// [`FaultSpec::on_calls`].
    pub fn error(operation: &str, status: u16, code: &str) -> FaultSpec {
        FaultSpec {
            operation: operation.to_owned(),
            status: Some(status),
            code: code.to_owned(),
            message: injected(),
            on_calls: Vec::new(),
            probability: None,
            latency_ms: 0,
            drop_connection: false,
        }
    }

    /// `operation` runs, then its connection breaks before the answer is complete.
    pub fn dropped(operation: &str) -> FaultSpec {
        FaultSpec {
            status: None,
            drop_connection: true,
            ..FaultSpec::error(operation, 0, "")
        }
    }

    /// `operation` answers as usual, `latency` later.
    pub fn delayed(operation: &str, latency: std::time::Duration) -> FaultSpec {
        FaultSpec {
            status: None,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            ..FaultSpec::error(operation, 0, "")
        }
    }

    /// Only on these calls of the operation (1 = the first).
    #[must_use]
    pub fn on_calls(mut self, calls: impl IntoIterator<Item = u32>) -> FaultSpec {
        self.on_calls = calls.into_iter().collect();
        self
    }

    /// With this error message.
    #[must_use]
    pub fn message(mut self, message: &str) -> FaultSpec {
        message.clone_into(&mut self.message);
        self
    }
}

fn internal_error() -> String {
    ErrorCode::InternalError.as_str().into_owned()
}

fn injected() -> String {
    "Injected by the simulator's scenario.".to_owned()
}

/// A launch that misbehaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceBehaviorSpec {
    /// Which launch, counting successful launches from 1.
    pub launch: u32,
    /// What goes wrong.
    pub behavior: InstanceBehavior,
}

/// Ways an instance can misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum InstanceBehavior {
    /// Stays `booting` until terminated.
    NeverActive,
    /// Boots, but `count` of its GPUs are invisible to its `nvidia-smi` (a broken GPU).
    GpusMissing {
        /// How many of the type's GPUs are missing.
        count: u32,
    },
    /// Becomes `active`, then `unhealthy` this many simulated seconds later.
    UnhealthyAfter {
        /// Simulated seconds after becoming active.
        seconds: f64,
    },
}

/// The default cloud, as TOML: every field of a [`Scenario`], with where its numbers come from.
pub(crate) const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.toml");

impl Default for Scenario {
    fn default() -> Self {
        #[allow(clippy::expect_used)] // A constant of this crate, parsed by a test.
        Scenario::merged(toml::Table::new()).expect("scenarios/default.toml is a whole scenario")
    }
}

impl Scenario {
    /// Reads a scenario from TOML text; what the text leaves out keeps its default.
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let invalid = |error: toml::de::Error| SimError::Scenario {
            message: error.to_string(),
        };
        let scenario = Scenario::merged(toml::from_str(text).map_err(invalid)?).map_err(invalid)?;
        scenario.check()?;
        Ok(scenario)
    }

    /// `overrides` over the default scenario: each top-level key given replaces the default's
    /// whole.
    fn merged(overrides: toml::Table) -> Result<Scenario, toml::de::Error> {
        let mut table: toml::Table = toml::from_str(DEFAULT_SCENARIO)?;
        table.extend(overrides);
        toml::Value::Table(table).try_into()
    }

    /// Reads a scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path).map_err(|error| SimError::Scenario {
            message: format!("cannot read {}: {error}", path.display()),
        })?;
        Scenario::from_toml(&text).map_err(|error| match error {
            SimError::Scenario { message } => SimError::Scenario {
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// Sets the machines available for one (type, region) pair from now on.
    pub fn with_capacity(
        mut self,
        instance_type: &str,
        region: &str,
        timeline: &[(u32, u32)],
    ) -> Self {
        self.capacity
            .retain(|c| !(c.instance_type == instance_type && c.region == region));
        self.capacity.push(CapacitySpec {
            instance_type: instance_type.to_owned(),
            region: region.to_owned(),
            timeline: timeline
                .iter()
                .map(|&(at, available)| CapacityStep { at, available })
                .collect(),
        });
        self
    }

    /// Every instance type boots in exactly `seconds` (simulated), so a test's timeline does
    /// not depend on a random draw.
    pub fn with_boot_seconds(mut self, seconds: f64) -> Self {
        for ty in &mut self.instance_types {
            ty.boot_seconds = SecondsRange {
                min: seconds,
                max: seconds,
            };
        }
        self
    }

    /// Adds an SSH key the account starts with (a placeholder public key).
    pub fn with_ssh_key(mut self, name: &str) -> Self {
        self.ssh_keys.push(SshKeySpec {
            name: name.to_owned(),
            public_key: format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI {name}"),
        });
        self
    }

    /// Adds an SSH key the account starts with, with its real public key.
    pub fn with_public_key(mut self, name: &str, public_key: &str) -> Self {
        self.ssh_keys.push(SshKeySpec {
            name: name.to_owned(),
            public_key: public_key.trim().to_owned(),
        });
        self
    }

    /// Every active instance reports `ip` as its public IP.
    pub fn with_public_ip(mut self, ip: &str) -> Self {
        self.public_ip = Some(ip.to_owned());
        self
    }

    /// Adds an injected failure.
    pub fn with_fault(mut self, fault: FaultSpec) -> Self {
        self.faults.push(fault);
        self
    }

    /// Makes the `launch`-th successful launch misbehave.
    pub fn with_behavior(mut self, launch: u32, behavior: InstanceBehavior) -> Self {
        self.instance_behaviors
            .push(InstanceBehaviorSpec { launch, behavior });
        self
    }

    /// Checks that the scenario is coherent, naming what to fix.
    pub fn check(&self) -> Result<(), SimError> {
        let fail = |message: String| Err(SimError::Scenario { message });
        if self.regions.is_empty() || self.instance_types.is_empty() {
            return fail("a scenario needs at least one region and one instance type".into());
        }
        for (i, key) in self.ssh_keys.iter().enumerate() {
            if key.name.is_empty() || self.ssh_keys[..i].iter().any(|k| k.name == key.name) {
                return fail(format!(
                    "SSH key names must be non-empty and unique ({:?})",
                    key.name
                ));
            }
        }
        for ty in &self.instance_types {
            if !(ty.boot_seconds.min >= 0.0 && ty.boot_seconds.min <= ty.boot_seconds.max) {
                return fail(format!(
                    "instance type `{}`: boot_seconds needs 0 <= min <= max",
                    ty.name
                ));
            }
        }
        for capacity in &self.capacity {
            if !self
                .instance_types
                .iter()
                .any(|t| t.name == capacity.instance_type)
            {
                return fail(format!(
                    "capacity names instance type `{}`, which the scenario does not offer",
                    capacity.instance_type
                ));
            }
            if !self.regions.iter().any(|r| r.name == capacity.region) {
                return fail(format!(
                    "capacity names region `{}`, which the scenario does not have",
                    capacity.region
                ));
            }
            if capacity.timeline.windows(2).any(|w| w[0].at >= w[1].at) {
                return fail(format!(
                    "capacity for `{}` in `{}`: timeline steps must be in increasing `at` order",
                    capacity.instance_type, capacity.region
                ));
            }
        }
        for fault in &self.faults {
            if !lambda_cloud::OPERATIONS
                .iter()
                .any(|op| op.id == fault.operation)
            {
                return fail(format!(
                    "fault names operation `{}`, which is not an operationId of the API (e.g. `launchInstance`)",
                    fault.operation
                ));
            }
            if fault.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
                return fail(format!(
                    "fault on `{}`: probability must be within 0..=1",
                    fault.operation
                ));
            }
            if fault.status.is_some_and(|s| !(400..=599).contains(&s)) {
                return fail(format!(
                    "fault on `{}`: status must be 400..=599",
                    fault.operation
                ));
            }
        }
        if self.page_size == 0 {
            return fail("page_size must be at least 1".into());
        }
        Ok(())
    }

    /// The machines of `instance_type` in `region` at simulated second `at`.
    pub(crate) fn capacity_at(&self, instance_type: &str, region: &str, at: f64) -> u32 {
        match self
            .capacity
            .iter()
            .find(|c| c.instance_type == instance_type && c.region == region)
        {
            Some(capacity) => capacity
                .timeline
                .iter()
                .take_while(|step| f64::from(step.at) <= at)
                .last()
                .map_or(0, |step| step.available),
            None => self.default_capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario_is_coherent() {
        Scenario::default().check().unwrap();
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let scenario = Scenario::from_toml(
            r#"
            seed = 7
            [[capacity]]
            instance_type = "gpu_1x_a10"
            region = "us-east-1"
            timeline = [{ at = 0, available = 0 }, { at = 90, available = 2 }]

            [[faults]]
            operation = "launchInstance"
            status = 503
            code = "provider/internal-unavailable"
            on_calls = [1]

            [[instance_behaviors]]
            launch = 2
            behavior = { kind = "never-active" }
            "#,
        )
        .unwrap();
        assert_eq!(scenario.seed, 7);
        assert_eq!(scenario.regions, Scenario::default().regions);
        assert_eq!(scenario.capacity_at("gpu_1x_a10", "us-east-1", 89.0), 0);
        assert_eq!(scenario.capacity_at("gpu_1x_a10", "us-east-1", 90.0), 2);
        assert_eq!(scenario.capacity_at("gpu_1x_a10", "us-west-1", 0.0), 4);
        assert_eq!(
            scenario.faults[0].message,
            "Injected by the simulator's scenario."
        );
        assert_eq!(
            scenario.instance_behaviors[0].behavior,
            InstanceBehavior::NeverActive
        );
    }

    #[test]
    fn mistakes_are_named() {
        let error = Scenario::from_toml("sede = 1").unwrap_err().to_string();
        assert!(error.contains("sede"), "{error}");
        let error = Scenario::from_toml("[[faults]]\noperation = \"launch\"\nstatus = 500")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`launch`") && error.contains("launchInstance"),
            "{error}"
        );
        let error = Scenario::from_toml(
            "[[capacity]]\ninstance_type = \"gpu_9x\"\nregion = \"us-east-1\"\ntimeline = []",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("gpu_9x"), "{error}");
    }
}
