//! RunPod GPU pods as a `gha-runner-core` [`CloudProvider`](gha_runner_core::CloudProvider),
//! written from RunPod's REST API v2 description (REST v1 was retired on 2026-11-15).
//!
//! Where RunPod differs from a VM cloud, and what this crate does about it:
//!
//! - **A pod is a container started from an image**, with no cloud-init: the boot script
//!   travels base64-encoded in the pod's environment ([`BOOT_VARIABLE`]) and the start command
//!   ([`START_COMMAND`]) runs it as the container's root, then keeps the container up.
//! - **Machine types are GPU type ids with a count**: `2x NVIDIA H100 80GB HBM3` ([`PodType`]);
//!   regions are data center ids (`US-TX-3`); one create places one GPU type, so the launch
//!   plan's candidates are the preference order.
//! - **Pods have no tags**: tags travel as JSON in [`TAGS_VARIABLE`], which RunPod returns with
//!   the pod.
//! - **A pod ends itself with its own key**: RunPod gives every pod a pod-scoped key and its id
//!   ([`POD_KEY_VARIABLE`], [`POD_ID_VARIABLE`]); the launcher's key never reaches the pod.
//! - **Capacity** is a 400 (or a 403 for a pool the account cannot use) on create, which the
//!   plan treats as "try the next candidate"; RunPod's catalog stock per data center is the
//!   capacity hint.
//! - **Limits** are per user and per window; the [`Client`] spaces calls a second apart, obeys
//!   `RateLimit` and `Retry-After`.

#![deny(missing_docs)]

mod client;
mod error;
mod models;
mod provider;

pub use client::{Client, ClientBuilder, DEFAULT_BASE_URL};
pub use error::Error;
pub use models::{
    Availability, Cloud, CreatePodRequest, DataCenter, DataCenterStock, GpuConfig, GpuMaxCount,
    GpuPrice, GpuType, Mounts, NetworkMount, Pod, PodSsh, PodStatus, SshEndpoint,
};
pub use provider::{
    BOOT_VARIABLE, DEFAULT_DISK_GB, DEFAULT_IMAGE, POD_ID_VARIABLE, POD_KEY_VARIABLE, PodType,
    RunPodProvider, START_COMMAND, TAGS_VARIABLE, UNHEALTHY_NAME, VOLUME_PATH, agent_provider,
    provider_error,
};
