//! Ephemeral, self-terminating, self-hosted GitHub Actions runners on any cloud.
//!
//! This crate is the part that the `lambda-gha` action, the CLI and a future webhook
//! controller share: the [`CloudProvider`] trait a backend implements, GitHub runner
//! registration, [`LaunchPlan`]s with capacity fallback, the boot script, and the guarantee
//! that a failed provisioning leaves nothing launched and nothing registered.
//!
//! # Providers
//!
//! Lambda Cloud is implemented in the `gha-runner-lambda` crate. The trait is small on
//! purpose; this is how other clouds map onto it:
//!
//! | trait | Lambda Cloud | RunPod | AWS EC2 |
//! |---|---|---|---|
//! | `launch(spec)` → one id | `POST /instance-operations/launch` (one instance per call, 1 per 12 s) | `podFindAndDeployOnDemand` (GraphQL) | `RunInstances` with `MinCount = MaxCount = 1` |
//! | `spec.instance_type` | `gpu_1x_a10` | GPU type id, e.g. `NVIDIA A40` | `g5.xlarge` |
//! | `spec.region` | `us-east-1` | data center id | region of the client, subnet/AZ |
//! | `spec.image` | image family or id | container image | AMI id |
//! | `spec.user_data` | `user_data` (cloud-init) | `dockerArgs`/start command | `UserData` (base64) |
//! | `spec.tags` | `tags` | pod name prefix / env | `TagSpecifications` |
//! | `spec.ssh_key` | `ssh_key_names` (exactly one) | account public key | `KeyName` |
//! | `describe(id)` | `GET /instances/{id}` | `pod(id)` | `DescribeInstances` |
//! | `list_tagged(k, v)` | `GET /instances`, filtered by tag | `myself.pods`, filtered by name | `DescribeInstances` with `tag:k` filter |
//! | `report_unhealthy(id, why)` | `POST /instances/{id}`: the name becomes `unhealthy: <why>` | the pod's name | `CreateTags` |
//! | `terminate(ids)` | `POST /instance-operations/terminate` | `podTerminate` | `TerminateInstances` |
//! | `capacity_hints()` | `regions_with_capacity_available` | `gpuTypes.lowestPrice.stockStatus` | none (always "available"; capacity shows as `InsufficientInstanceCapacity`) |
//! | `Capacity` error | `instance-operations/launch/insufficient-capacity` | "no longer any instances available" | `InsufficientInstanceCapacity` |
//!
//! # Example
//!
//! ```no_run
//! use gha_runner_core::plan::candidates;
//! use gha_runner_core::{CapacityPolicy, LaunchPlan};
//!
//! # fn demo() -> Result<(), gha_runner_core::InputError> {
//! let plan = LaunchPlan::new(
//!     candidates("gpu_1x_a10,gpu_1x_a100", "us-east-1,us-west-1")?,
//!     2,
//!     CapacityPolicy::parse("10m")?,
//! )?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod agent;
pub mod agent_config;
pub mod boot_log;
pub mod boot_script;
#[cfg(feature = "testing")]
pub mod conformance;
pub mod duration;
pub mod error;
pub mod github;
pub mod gpus;
pub mod health;
pub mod jit;
pub mod naming;
pub mod outputs;
pub mod plan;
pub mod preflight;
pub mod provider;
pub mod provisioner;
pub mod reaper;
pub mod runner_release;
pub mod session;
pub mod tags;
pub mod termination;
pub mod transport;

pub use error::{CoreError, Field, GitHubError, InputError, SessionError};
pub use github::{GitHub, RunnerScope};

pub use plan::{
    Attempt, AttemptOutcome, Candidate, CapacityPolicy, LaunchPlan, Launched, PlanFailure,
};

pub use provider::{
    CapacityHint, Catalog, CloudProvider, Machine, MachineId, MachineSpec, MachineState, Offering,
    ProviderError, ProviderErrorKind,
};
pub use provisioner::{ProvisionFailure, ProvisionRequest, Provisioned, Provisioner};
