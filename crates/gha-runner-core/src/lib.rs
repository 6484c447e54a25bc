//! Ephemeral, self-terminating, self-hosted GitHub Actions runners on any cloud.
//!
//! This crate is the part that the `lambda-gha` action, the CLI and a future webhook
//! controller share: the [`CloudProvider`] trait a backend implements, GitHub runner
//! registration, [`LaunchPlan`]s with capacity fallback, the boot script, and the guarantee
//! that a failed provisioning leaves nothing launched and nothing registered.
//!
//! # Providers
//!
//! Lambda Cloud is implemented in the `gha-runner-lambda` crate, RunPod in `gha-runner-runpod`;
//! both pass the conformance suite (`conformance`, feature `testing`). The trait is small on purpose;
//! where clouds differ, [`provider::Capabilities`] says how. This is how they map onto it, and
//! how EC2 would:
//!
//! | trait | Lambda Cloud | RunPod (REST v2) | AWS EC2 |
//! |---|---|---|---|
//! | `launch(spec)` → one id | `POST /instance-operations/launch` (one instance per call, 1 per 12 s) | `POST /v2/pods` (one GPU type per call) | `RunInstances` with `MinCount = MaxCount = 1` |
//! | `spec.instance_type` | `gpu_1x_a10` | `<count>x <GPU type id>`, e.g. `1x NVIDIA A40` | `g5.xlarge` |
//! | `spec.region` | `us-east-1` | data center id, e.g. `US-TX-3` | region of the client, subnet/AZ |
//! | `spec.image` | image family or id | container image | AMI id |
//! | `spec.boot_script` | `user_data` (cloud-init) | base64 in the pod's environment, run by its start command | `UserData` (base64) |
//! | `spec.tags` | `tags` | JSON in the pod's environment | `TagSpecifications` |
//! | `spec.ssh_key` | `ssh_key_names` (exactly one) | refused (account keys only) | `KeyName` |
//! | `describe(id)` | `GET /instances/{id}` | `GET /v2/pods/{id}` | `DescribeInstances` |
//! | `list_tagged(k, v)` | `GET /instances`, filtered by tag | `GET /v2/pods`, filtered by the environment's tags | `DescribeInstances` with `tag:k` filter |
//! | `report_unhealthy(id, why)` | `POST /instances/{id}`: the name becomes `unhealthy: <why>` | `PATCH /v2/pods/{id}`: the name | `CreateTags` |
//! | `terminate(ids)` | `POST /instance-operations/terminate` | `DELETE /v2/pods/{id}` | `TerminateInstances` |
//! | `capacity_hints()` | `regions_with_capacity_available` | catalog stock per data center | none (capacity shows as `InsufficientInstanceCapacity`) |
//! | `Capacity` error | `instance-operations/launch/insufficient-capacity` | a 400 (or 403) on create | `InsufficientInstanceCapacity` |
//! | machine's own key | the launcher's (cannot be scoped) | the pod-scoped `RUNPOD_API_KEY` | an instance profile |
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
pub mod cache;
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
