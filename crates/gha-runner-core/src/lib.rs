//! Ephemeral, self-terminating, self-hosted GitHub Actions runners on any cloud.
//!
//! This crate is the part that the `lambda-gha` action, the CLI and a future webhook
//! controller share: the [`CloudProvider`] trait a backend implements, GitHub runner
//! registration, [`LaunchPlan`]s with capacity fallback, the boot script, and the guarantee
//! that a failed provisioning leaves nothing launched and nothing registered.
//!
//! # Providers
//!
//! Lambda Cloud is implemented (feature `lambda`, on by default). The trait is small on
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
//! use gha_runner_core::{CapacityPolicy, LaunchPlan, candidates};
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

mod agent;
mod agent_config;
mod boot_log;
mod boot_script;
mod duration;
mod error;
mod github;
mod gpus;
mod health;
mod jit;
#[cfg(feature = "lambda")]
mod lambda;
mod naming;
mod outputs;
mod plan;
mod preflight;
mod provider;
mod provisioner;
mod reaper;
mod runner_release;
pub mod session;
pub mod tags;
mod termination;
pub mod transport;

pub use agent::{
    Agent, AgentClock, AgentOutcome, AgentPaths, HOOK_MAX_BYTES, HOOK_READ_TIMEOUT, HookKind,
    RunnerProcesses, TERMINATE_MARGIN, scan_processes, send_hook,
};
pub use agent_config::{AgentConfig, AgentTimings};
pub use boot_log::{BOOT_LOG, BOOT_LOG_LINES, MachineAccess};
pub use boot_script::{
    AGENT_DELIVERY_PATH, AGENT_DELIVERY_WAIT, AgentDownload, AgentSource, BootScript,
    MAX_USER_DATA_BYTES, RunnerBoot, RunnerCredential, RunnerPrivileges, WATCHDOG_MARGIN,
    shell_quote,
};
pub use duration::{format_duration, parse_duration};
pub use error::{CoreError, GitHubError, InputError, SessionError};
pub use github::{BUSY_RUNNER_WAIT, GitHub, JitRunner, RegistrationToken, RunnerInfo, RunnerScope};
pub use gpus::{GpuLayout, GpusPerRunner, gpu_layouts};
pub use health::{GpuGate, HealthGate, HealthReport, UNHEALTHY_HOLD, read_report};
pub use jit::unpack_jit_config;
#[cfg(feature = "lambda")]
pub use lambda::{LambdaProvider, LaunchKey, UNHEALTHY_NAME, provider_error};
pub use naming::{MAX_LABELS, MAX_RUNNER_NAME, OWN_LABELS, RunnerNaming, parse_labels};
pub use outputs::{MatrixEntry, Outputs};
pub use plan::{
    Attempt, AttemptOutcome, Candidate, CapacityPolicy, LaunchPlan, LaunchSetup, Launched,
    PlanFailure, candidates, parse_list, replacement_order, terminate_all,
};
pub use preflight::{CostEstimate, Preflight, preflight};
pub use provider::{
    CapacityHint, Catalog, CloudProvider, Machine, MachineId, MachineSpec, MachineState, Offering,
    ProviderError, ProviderErrorKind,
};
pub use provisioner::{
    BootSettings, CleanupReport, Diagnosis, MachineTemplate, ProvisionFailure, ProvisionRequest,
    Provisioned, Provisioner, RunnerMode, StopReport,
};
pub use reaper::{ReapPolicy, ReapReason, ReapReport, reap};
pub use runner_release::{
    RUNNER_DOWNLOAD_BASE, RUNNER_RELEASES_API, RunnerDownload, RunnerPackage, RunnerVersion,
};
pub use termination::{Decision, Event, PolicyConfig, Reason, TerminationPolicy};
