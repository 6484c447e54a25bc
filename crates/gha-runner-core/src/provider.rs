//! What a cloud must do for runners: launch one machine, describe it, list the machines we
//! own, terminate, and hint at capacity; and what it can do where clouds differ
//! ([`Capabilities`]: how a machine boots, SSH, where tags live, keys, limits). Lambda and
//! RunPod implement it; the table in the crate docs shows how EC2 would.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// A machine's id at its provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MachineId(String);

impl MachineId {
    /// Wraps a provider's id.
    pub fn new(id: impl Into<String>) -> Self {
        MachineId(id.into())
    }

    /// The provider's id, as its API takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A machine to launch.
#[derive(Clone)]
pub struct MachineSpec {
    /// The provider's machine type, e.g. `gpu_1x_a10`.
    pub instance_type: String,
    /// The provider's region, e.g. `us-east-1`.
    pub region: String,
    /// An image (family or id; the provider decides), or the provider's default.
    pub image: Option<String>,
    /// The boot script (see [`Capabilities::boot`] for how it reaches the machine). It carries
    /// runner tokens, so it is secret.
    pub boot_script: Option<SecretString>,
    /// A human-readable name.
    pub name: Option<String>,
    /// Tags, used to find our machines again.
    pub tags: BTreeMap<String, String>,
    /// The SSH key to install, by the provider's name for it (see [`Capabilities::ssh`]).
    pub ssh_key: Option<String>,
    /// Persistent storage to attach, by the provider's name or id for it (Lambda's
    /// filesystems, RunPod's network volumes; see [`Capabilities::max_volumes`]).
    pub volumes: Vec<String>,
    /// Firewall rulesets to apply, by id (see [`Capabilities::firewall_rulesets`]).
    pub firewall_rulesets: Vec<String>,
}

impl fmt::Debug for MachineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineSpec")
            .field("instance_type", &self.instance_type)
            .field("region", &self.region)
            .field("image", &self.image)
            .field(
                "boot_script",
                &self.boot_script.as_ref().map(|_| "[redacted]"),
            )
            .field("name", &self.name)
            .field("tags", &self.tags)
            .field("ssh_key", &self.ssh_key)
            .field("volumes", &self.volumes)
            .field("firewall_rulesets", &self.firewall_rulesets)
            .finish()
    }
}

impl MachineSpec {
    /// A spec with only a type and region.
    pub fn new(instance_type: impl Into<String>, region: impl Into<String>) -> Self {
        MachineSpec {
            instance_type: instance_type.into(),
            region: region.into(),
            image: None,
            boot_script: None,
            name: None,
            tags: BTreeMap::new(),
            ssh_key: None,
            volumes: Vec::new(),
            firewall_rulesets: Vec::new(),
        }
    }
}

/// Where a machine is in its life, in provider-neutral terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MachineState {
    /// Launched, not yet usable (and usually already billing).
    Pending,
    /// Up and usable.
    Running,
    /// Up but failing health checks.
    Unhealthy,
    /// Shutting down.
    Stopping,
    /// Gone for good; no longer billing.
    Gone,
    /// A state this crate does not know; the provider's word for it.
    Other(String),
}

impl MachineState {
    /// Whether the machine may still be billing (anything but gone).
    pub fn may_bill(&self) -> bool {
        !matches!(self, MachineState::Gone)
    }

    /// The state in a word, for people: `pending`, `running`, …, or the provider's own word.
    pub fn word(&self) -> &str {
        match self {
            MachineState::Pending => "pending",
            MachineState::Running => "running",
            MachineState::Unhealthy => "unhealthy",
            MachineState::Stopping => "stopping",
            MachineState::Gone => "gone",
            MachineState::Other(word) => word,
        }
    }
}

/// A machine as the provider describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The provider's id, as `describe` and `terminate` take it.
    pub id: MachineId,
    /// The name people see in the provider's console (the health gate writes its verdict
    /// there on Lambda).
    pub name: Option<String>,
    /// The provider's machine type, e.g. `gpu_1x_a10`.
    pub instance_type: String,
    /// The provider's region code.
    pub region: String,
    /// Where it is in its life: only `Gone` has stopped billing.
    pub state: MachineState,
    /// Its public IP, once it has one.
    pub ip: Option<String>,
    /// Its tags: how this project finds its machines again (see [`crate::tags`]).
    pub tags: BTreeMap<String, String>,
    /// Its price in US cents per hour, when the provider says.
    pub price_cents_per_hour: Option<u32>,
    /// Why its own health gate failed, when its agent said so
    /// ([`CloudProvider::report_unhealthy`]).
    pub health_failure: Option<String>,
}

/// Whether a (type, region) pair has capacity now. A hint: it can be stale both ways.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CapacityHint {
    /// The provider's machine type.
    pub instance_type: String,
    /// The provider's region code.
    pub region: String,
    /// Whether the provider lists it as available.
    pub available: bool,
}

/// One machine type the provider offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offering {
    /// The machine type, e.g. `gpu_1x_a10`.
    pub instance_type: String,
    /// What it is, e.g. `1x A10 (24 GB PCIe)`.
    pub description: String,
    /// GPUs per machine.
    pub gpus: u32,
    /// US cents per hour.
    pub price_cents_per_hour: u32,
    /// Regions that list capacity now (a hint).
    pub regions_available: Vec<String>,
}

/// A persistent volume (Lambda's filesystems), for the cache on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// Its name, unique in the account.
    pub name: String,
    /// The region it is in; machines elsewhere cannot mount it.
    pub region: String,
    /// Where a machine that names it at launch finds it (Lambda: `/lambda/nfs/<name>`).
    pub mount_point: String,
}

/// What the provider offers: its machine types and its regions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Machine types.
    pub offerings: Vec<Offering>,
    /// Every region's name.
    pub regions: Vec<String>,
}

impl Catalog {
    /// The offering named `instance_type`.
    pub fn offering(&self, instance_type: &str) -> Option<&Offering> {
        self.offerings
            .iter()
            .find(|o| o.instance_type == instance_type)
    }

    /// Availability of every (type, region) pair.
    pub fn capacity_hints(&self) -> Vec<CapacityHint> {
        self.offerings
            .iter()
            .flat_map(|offering| {
                self.regions.iter().map(move |region| CapacityHint {
                    instance_type: offering.instance_type.clone(),
                    region: region.clone(),
                    available: offering.regions_available.contains(region),
                })
            })
            .collect()
    }
}

/// The kinds of provider failure the core acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderErrorKind {
    /// No capacity for this type in this region now: try the next candidate or wait.
    Capacity,
    /// An account quota is exhausted.
    Quota,
    /// The request is wrong (unknown type or region, bad image, missing SSH key…).
    InvalidRequest,
    /// The machine or resource does not exist.
    NotFound,
    /// The credentials are wrong or lack permission.
    Unauthorized,
    /// The provider is unreachable or failing; the client's own retries were exhausted.
    Unavailable,
    /// Anything else.
    Other,
}

/// A provider failure: a kind to act on and the provider's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// What kind of failure.
    pub kind: ProviderErrorKind,
    /// The provider's explanation, with its codes.
    pub message: String,
}

impl ProviderError {
    /// A failure of `kind`.
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            message: message.into(),
        }
    }

    /// Whether this is a capacity failure.
    pub fn is_capacity(&self) -> bool {
        self.kind == ProviderErrorKind::Capacity
    }
}

/// How a provider's machines get the boot script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDelivery {
    /// As cloud-init user data on a VM, run as root at first boot (Lambda, EC2).
    UserData,
    /// In a container's environment, run as the container's root by its start command, which
    /// then keeps the container up (RunPod): there is no cloud-init.
    ContainerEnvironment,
}

/// How the launcher reaches a machine over SSH (boot logs, `lambda-gha run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshAccess {
    /// With the key named at launch ([`MachineSpec::ssh_key`]), as `user`.
    LaunchKey {
        /// The login user of the provider's image (`ubuntu` on Lambda).
        user: &'static str,
    },
    /// Not through this project; `why` says so to people.
    Unavailable {
        /// Why, in a clause: "RunPod puts only the account's registered keys on a pod".
        why: &'static str,
    },
}

/// Where a machine's tags ([`MachineSpec::tags`]) are kept, to be read back by `describe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataPlace {
    /// The provider's own tags (Lambda, EC2).
    Tags,
    /// Encoded in an environment variable of the machine, which the provider returns when
    /// describing it (RunPod, whose pods have no tags).
    Environment,
}

/// Which API key a machine ends itself with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineKey {
    /// The launcher's key, handed to the machine in its root-only agent configuration: the
    /// provider has no narrower one (Lambda's keys cannot be scoped).
    Launchers,
    /// A key scoped to the machine that the provider itself puts in the machine's environment
    /// (RunPod's `RUNPOD_API_KEY`), with the machine's id beside it: the launcher's key never
    /// reaches the machine.
    ProvidedOnMachine {
        /// The variable holding the key.
        key_variable: &'static str,
        /// The variable holding the machine's own id.
        id_variable: &'static str,
    },
}

/// What a provider can do, where providers differ: the core adapts to these instead of
/// assuming one cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// How the boot script reaches the machine.
    pub boot: BootDelivery,
    /// The largest boot script the provider takes, in bytes.
    pub max_boot_script_bytes: usize,
    /// Whether and how the launcher reaches machines over SSH.
    pub ssh: SshAccess,
    /// Where tags live.
    pub metadata: MetadataPlace,
    /// The shortest interval between two launches the provider allows (its client paces
    /// launches to it; front ends say how long N launches take at least).
    pub launch_interval: Duration,
    /// Which key machines end themselves with.
    pub machine_key: MachineKey,
    /// Whether machines can be interruptible (spot): cheaper, and ended by the provider when it
    /// needs them back.
    pub interruptible: bool,
    /// How many volumes one machine can have attached.
    pub max_volumes: usize,
    /// Whether firewall rulesets apply.
    pub firewall_rulesets: bool,
}

impl Capabilities {
    /// Checks a spec against what the provider can do, before anything is launched, naming
    /// what to change.
    pub fn check(&self, provider: &str, spec: &MachineSpec) -> Result<(), ProviderError> {
        let refuse = |message: String| {
            Err(ProviderError::new(
                ProviderErrorKind::InvalidRequest,
                message,
            ))
        };
        if spec.volumes.len() > self.max_volumes {
            return refuse(match self.max_volumes {
                0 => format!("{provider} machines take no volumes; remove them"),
                n => format!(
                    "{provider} machines take at most {n} volume(s), not {}; name fewer",
                    spec.volumes.len()
                ),
            });
        }
        if !spec.firewall_rulesets.is_empty() && !self.firewall_rulesets {
            return refuse(format!("{provider} has no firewall rulesets; remove them"));
        }
        if let (Some(_), SshAccess::Unavailable { why }) = (&spec.ssh_key, self.ssh) {
            return refuse(format!(
                "no SSH key can be given to {provider} machines: {why}; leave the key out"
            ));
        }
        if let Some(script) = &spec.boot_script {
            use secrecy::ExposeSecret as _;
            let bytes = script.expose_secret().len();
            if bytes > self.max_boot_script_bytes {
                return refuse(format!(
                    "the boot script is {bytes} bytes, over {provider}'s limit of {}; shorten the user script",
                    self.max_boot_script_bytes
                ));
            }
        }
        Ok(())
    }
}

/// A cloud that can run ephemeral runners. Implementations pace and retry their own API
/// calls; the core decides what to do with the failures that remain.
#[async_trait]
pub trait CloudProvider: Send + Sync {
    /// The provider's name, for messages (`lambda`, `runpod`, `ec2`).
    fn name(&self) -> &'static str;

    /// What the provider can do where providers differ.
    fn capabilities(&self) -> Capabilities;

    /// Checks a spec before it is launched: by default against [`Self::capabilities`].
    fn check_spec(&self, spec: &MachineSpec) -> Result<(), ProviderError> {
        self.capabilities().check(self.name(), spec)
    }

    /// The machine this code runs on, when the provider tells its machines their id (RunPod's
    /// `RUNPOD_POD_ID`); `None`: the agent finds its machine by tag.
    fn this_machine(&self) -> Option<MachineId> {
        None
    }

    /// Launches exactly one machine.
    async fn launch(&self, spec: &MachineSpec) -> Result<MachineId, ProviderError>;

    /// Describes one machine; `NotFound` once it is gone from the provider's listing.
    async fn describe(&self, id: &MachineId) -> Result<Machine, ProviderError>;

    /// Every machine carrying tag `key` (with `value`, when given): what we launched.
    async fn list_tagged(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<Machine>, ProviderError>;

    /// Says on the machine, where anyone describing it reads it back as
    /// [`Machine::health_failure`], that its health gate failed and why (one short line).
    async fn report_unhealthy(&self, id: &MachineId, why: &str) -> Result<(), ProviderError>;

    /// Terminates machines; terminating one that is already gone is not an error.
    async fn terminate(&self, ids: &[MachineId]) -> Result<(), ProviderError>;

    /// The machine types and regions on offer, with prices and current availability.
    async fn catalog(&self) -> Result<Catalog, ProviderError>;

    /// Which (type, region) pairs have capacity now, for every pair the provider lists.
    async fn capacity_hints(&self) -> Result<Vec<CapacityHint>, ProviderError> {
        Ok(self.catalog().await?.capacity_hints())
    }

    /// The account's persistent volumes (Lambda's filesystems), for the cache
    /// on one. By default the provider has none the cache can use.
    async fn volumes(&self) -> Result<Vec<Volume>, ProviderError> {
        Err(ProviderError::new(
            ProviderErrorKind::InvalidRequest,
            format!(
                "{} has no persistent volumes the cache can use; leave out the cache",
                self.name()
            ),
        ))
    }

    /// Makes a persistent volume named `name` in `region`.
    async fn create_volume(&self, name: &str, region: &str) -> Result<Volume, ProviderError> {
        let _ = (name, region);
        Err(self.volumes().await.err().unwrap_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::InvalidRequest,
                format!("{} cannot make volumes", self.name()),
            )
        }))
    }

    /// A bash script that ends the machine it runs on through the provider's API, as root,
    /// without the agent binary: the machine's backstop at its maximum lifetime and after a
    /// failed boot. It reads the agent's configuration (`/etc/lambda-gha/agent.json`: key,
    /// API URL, machine tag) or the machine's own key ([`MachineKey::ProvidedOnMachine`]),
    /// retries until the machine is ending, and exits non-zero only when it cannot (no key, or
    /// the key refused). `None`: the provider has none, and only
    /// the agent, the action's stop and the reaper end its machines.
    fn self_terminate_script(&self) -> Option<&'static str> {
        None
    }
}
