//! The parts of RunPod's REST API v2 this crate sends and reads, as its OpenAPI description
//! (`api-reference-v2/openapi.json` in github.com/runpod/docs, vendored in the `runpod-fake`
//! crate) names them. Answers keep only the fields used here; others are ignored, so that
//! fields RunPod adds do not break a release.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// RunPod's cloud tiers (`Cloud`): its own data centers, or community hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Cloud {
    /// RunPod-owned data center hardware (the API's default).
    #[default]
    Secure,
    /// Community-hosted hardware.
    Community,
}

impl Cloud {
    /// The API's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Secure => "SECURE",
            Cloud::Community => "COMMUNITY",
        }
    }
}

impl std::str::FromStr for Cloud {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "secure" => Ok(Cloud::Secure),
            "community" => Ok(Cloud::Community),
            _ => Err(format!(
                "{text:?} is not a RunPod cloud: use `secure` or `community`"
            )),
        }
    }
}

/// A GPU request (`CreateGpuConfig`): a GPU type id from the catalog and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuConfig {
    /// The GPU type's id, e.g. `NVIDIA GeForce RTX 4090`.
    pub id: String,
    /// How many GPUs.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// A network volume attached to a pod (`NetworkMount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkMount {
    /// The volume's id, in the pod's data center.
    pub volume_id: String,
    /// Where the container sees it.
    pub path: String,
}

/// A pod's storage mounts (`Mounts`); at most one network volume today.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounts {
    /// Network volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<NetworkMount>,
}

/// The body of `POST /v2/pods` (`CreatePodRequest`), for a GPU pod from an image.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePodRequest {
    /// The pod's name.
    pub name: String,
    /// The container image.
    pub image: String,
    /// The GPU type and count.
    pub gpu: GpuConfig,
    /// The cloud tier.
    pub cloud: Cloud,
    /// Data centers to place it in, in preference order; empty: the scheduler chooses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_center_ids: Vec<String>,
    /// The container's environment. It carries the boot script, so it is secret: this
    /// type's `Debug` leaves it out.
    pub env: BTreeMap<String, String>,
    /// Arguments to the image's entrypoint: the start command.
    pub args: String,
    /// Container disk in GB.
    pub disk: u32,
    /// Storage mounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Mounts>,
}

impl std::fmt::Debug for CreatePodRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatePodRequest")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("gpu", &self.gpu)
            .field("cloud", &self.cloud)
            .field("data_center_ids", &self.data_center_ids)
            .field(
                "env",
                &format_args!("[{} variables, redacted]", self.env.len()),
            )
            .field("args", &self.args)
            .field("disk", &self.disk)
            .field("mounts", &self.mounts)
            .finish()
    }
}

/// A pod's lifecycle status (`PodStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PodStatus {
    /// Being allocated.
    Provisioning,
    /// Its container is starting.
    Starting,
    /// Its container is healthy.
    Running,
    /// Its container exited (stopped).
    Exited,
    /// Its container is in an unrecoverable error state.
    Error,
    /// Deleted for good.
    Terminated,
    /// A status this crate does not know yet.
    #[serde(other)]
    Unknown,
}

/// SSH connection details of a pod (`PodSshEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SshEndpoint {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// How to reach a pod over SSH (`PodSsh`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PodSsh {
    /// Straight to the pod's published `22/tcp`, when it has one.
    #[serde(default)]
    pub direct: Option<SshEndpoint>,
}

/// A pod as RunPod describes it (`Pod`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: PodStatus,
    /// Its GPUs (absent on CPU pods).
    #[serde(default)]
    pub gpu: Option<GpuConfig>,
    /// Where the scheduler placed it.
    #[serde(default)]
    pub data_center_id: Option<String>,
    /// Its container's environment, as created. May hold secrets: `Debug` leaves it out.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What it costs now, USD per hour (0 when exited).
    #[serde(default)]
    pub cost: f64,
    /// SSH details.
    #[serde(default)]
    pub ssh: Option<PodSsh>,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created_at: Option<String>,
}

impl std::fmt::Debug for Pod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("status", &self.status)
            .field("gpu", &self.gpu)
            .field("data_center_id", &self.data_center_id)
            .field(
                "env",
                &format_args!("[{} variables, redacted]", self.env.len()),
            )
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

/// `GET /v2/pods`'s answer (`ListPodsResponse`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PodList {
    pub(crate) pods: Vec<Pod>,
}

/// How much of something is in stock (`AvailabilityLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Availability {
    /// None.
    None,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// A level this crate does not know yet.
    #[serde(other)]
    Unknown,
}

impl Availability {
    /// Whether there is any (RunPod's own sample treats every level but `NONE` as deployable).
    pub fn any(self) -> bool {
        !matches!(self, Availability::None | Availability::Unknown)
    }
}

/// A data center's stock of one GPU type (`DataCenterAvailability`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataCenterStock {
    /// The data center's id, e.g. `US-TX-3`.
    pub id: String,
    /// How much.
    pub availability: Availability,
}

/// Per-GPU list prices, USD per hour for one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct GpuPrice {
    /// On the secure cloud.
    pub secure: f64,
    /// On the community cloud.
    pub community: f64,
}

/// The most GPUs of a type one pod can have, per cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct GpuMaxCount {
    /// On the secure cloud.
    pub secure: u32,
    /// On the community cloud.
    pub community: u32,
}

/// A GPU type from the catalog (`GpuType`), with stock when asked for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuType {
    /// The id pods are created with, e.g. `NVIDIA GeForce RTX 4090`.
    pub id: String,
    /// Its short name, e.g. `RTX 4090`.
    pub name: String,
    /// Memory in GB.
    pub memory: u32,
    /// Offered on the secure cloud.
    pub secure: bool,
    /// Offered on the community cloud.
    pub community: bool,
    /// List prices.
    pub price: GpuPrice,
    /// The largest pod of this type.
    pub max_count: GpuMaxCount,
    /// Stock per data center (with `include=AVAILABILITY`).
    #[serde(default)]
    pub data_centers: Vec<DataCenterStock>,
}

/// `GET /v2/catalog/gpus`'s answer (`ListGpuTypesResponse`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GpuTypeList {
    pub(crate) gpus: Vec<GpuType>,
}

/// A data center (`DataCenter`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataCenter {
    /// Its id, e.g. `US-TX-3`.
    pub id: String,
    /// Its name, e.g. `US Texas 3`.
    pub name: String,
}

/// `GET /v2/catalog/datacenters`'s answer (`ListDataCentersResponse`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DataCenterList {
    pub(crate) data_centers: Vec<DataCenter>,
}

/// An error answer (`ErrorResponse`, `application/problem+json`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Problem {
    #[serde(default)]
    pub(crate) title: String,
    #[serde(default)]
    pub(crate) detail: String,
    #[serde(default)]
    pub(crate) errors: Vec<String>,
}
