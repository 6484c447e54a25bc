//! RunPod as a [`CloudProvider`]: GPU pods started from a container image, their boot script in
//! their environment, their tags in it too (pods have none), and their own pod-scoped key to end
//! themselves with.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use gha_runner_core::provider::{
    BootDelivery, Capabilities, Catalog, CloudProvider, Machine, MachineId, MachineKey,
    MachineSpec, MachineState, MetadataPlace, Offering, ProviderError, ProviderErrorKind,
    SshAccess,
};
use secrecy::ExposeSecret as _;

use crate::client::Client;
use crate::error::Error;
use crate::models::{Cloud, CreatePodRequest, GpuConfig, Mounts, NetworkMount, Pod, PodStatus};

/// The variable a pod's boot script travels in (base64).
pub const BOOT_VARIABLE: &str = "LAMBDA_GHA_BOOT";
/// The variable a pod's tags travel in (a JSON object), read back from the pod's description.
pub const TAGS_VARIABLE: &str = "LAMBDA_GHA_TAGS";
/// The variable RunPod puts a pod's own, pod-scoped key in (RunPod's documentation, Pods →
/// Environment variables: "`RUNPOD_API_KEY` — Pod-scoped API key").
pub const POD_KEY_VARIABLE: &str = "RUNPOD_API_KEY";
/// The variable RunPod puts a pod's id in (same page: "`RUNPOD_POD_ID` — Unique Pod
/// identifier").
pub const POD_ID_VARIABLE: &str = "RUNPOD_POD_ID";
/// What a pod's name starts with once its health gate failed (its name says why).
pub const UNHEALTHY_NAME: &str = "unhealthy: ";
/// Where a network volume is mounted in the container.
pub const VOLUME_PATH: &str = "/runpod-volume";
/// An image with CUDA, PyTorch, python3, curl and sudo-less root (RunPod's own, the example in
/// its API description); any image with bash, curl, python3 and `useradd` works.
pub const DEFAULT_IMAGE: &str = "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404";
/// Container disk for the runner, its tools and a job's checkout, in GB.
pub const DEFAULT_DISK_GB: u32 = 50;

/// Linux's limit on one environment string (`MAX_ARG_STRLEN`, 32 pages of 4 KiB): the boot
/// script, base64-encoded in one variable, must fit, name and all. RunPod documents no limit
/// of its own.
const MAX_ENVIRONMENT_STRING: usize = 32 * 4096;

/// The container's start command: decode the boot script to a root-only file, run it as root
/// (as cloud-init would on a VM), and keep the container up, reaping orphans, until the pod is
/// deleted. The boot script itself never reaches a command line.
pub const START_COMMAND: &str = "bash -c 'umask 077; printf %s \"$LAMBDA_GHA_BOOT\" | base64 -d > /root/lambda-gha-boot.sh; unset LAMBDA_GHA_BOOT; bash /root/lambda-gha-boot.sh; rm -f /root/lambda-gha-boot.sh; while :; do sleep 3600 & wait; done'";

/// A RunPod machine type: `<count>x <GPU type id>`, e.g. `2x NVIDIA H100 80GB HBM3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodType {
    /// GPUs per pod.
    pub count: u32,
    /// RunPod's GPU type id.
    pub gpu: String,
}

impl std::fmt::Display for PodType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x {}", self.count, self.gpu)
    }
}

impl std::str::FromStr for PodType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (count, gpu) = text
            .split_once(' ')
            .and_then(|(count, gpu)| Some((count.strip_suffix('x')?.parse::<u32>().ok()?, gpu.trim())))
            .filter(|(count, gpu)| *count > 0 && !gpu.is_empty())
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a RunPod type: write `<count>x <GPU type id>`, e.g. `1x NVIDIA GeForce RTX 4090` (see `lambda-gha types --provider runpod`)"
                )
            })?;
        Ok(PodType {
            count,
            gpu: gpu.to_owned(),
        })
    }
}

/// RunPod as a [`CloudProvider`].
#[derive(Debug, Clone)]
pub struct RunPodProvider {
    client: Client,
    cloud: Cloud,
    disk_gb: u32,
    this_pod: Option<MachineId>,
}

impl RunPodProvider {
    /// A provider over a configured client, on the secure cloud.
    pub fn new(client: Client) -> Self {
        RunPodProvider {
            client,
            cloud: Cloud::Secure,
            disk_gb: DEFAULT_DISK_GB,
            this_pod: None,
        }
    }

    /// Pods on `cloud`.
    #[must_use]
    pub fn on_cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self
    }

    /// Container disks of `gb` GB.
    #[must_use]
    pub fn with_disk_gb(mut self, gb: u32) -> Self {
        self.disk_gb = gb.max(1);
        self
    }

    /// The provider a pod's own agent uses: the pod's id ([`POD_ID_VARIABLE`]) and the
    /// pod-scoped key in `key_variable` ([`POD_KEY_VARIABLE`]) from its environment; `None`
    /// outside a pod.
    pub fn inside_pod(
        key_variable: &str,
        base_url: Option<&str>,
        time_scale: f64,
    ) -> Result<Option<Self>, Error> {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        let (Some(key), Some(id)) = (var(key_variable), var(POD_ID_VARIABLE)) else {
            return Ok(None);
        };
        let mut builder = Client::builder().api_key(key).time_scale(time_scale);
        if let Some(url) = base_url {
            builder = builder.base_url(url);
        }
        let mut provider = RunPodProvider::new(builder.build()?);
        provider.this_pod = Some(MachineId::new(id));
        Ok(Some(provider))
    }

    /// Every pod of the account, as the core describes machines.
    pub async fn machines(&self) -> Result<Vec<Machine>, ProviderError> {
        let pods = self
            .client
            .pods()
            .await
            .map_err(|e| provider_error(&e, false))?;
        Ok(pods.into_iter().map(machine).collect())
    }

    /// The client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The body of the create call for `spec`: what is sent, less nothing.
    pub fn create_request(&self, spec: &MachineSpec) -> Result<CreatePodRequest, ProviderError> {
        let pod_type: PodType = spec
            .instance_type
            .parse()
            .map_err(|e: String| ProviderError::new(ProviderErrorKind::InvalidRequest, e))?;
        let mut env = BTreeMap::new();
        let tags = serde_json::to_string(&spec.tags)
            .map_err(|e| ProviderError::new(ProviderErrorKind::Other, e.to_string()))?;
        env.insert(TAGS_VARIABLE.to_owned(), tags);
        let mut args = String::new();
        if let Some(script) = &spec.boot_script {
            let encoded = base64::engine::general_purpose::STANDARD.encode(script.expose_secret());
            env.insert(BOOT_VARIABLE.to_owned(), encoded);
            START_COMMAND.clone_into(&mut args);
        }
        let mounts = (!spec.volumes.is_empty()).then(|| Mounts {
            network: spec
                .volumes
                .iter()
                .map(|id| NetworkMount {
                    volume_id: id.clone(),
                    path: VOLUME_PATH.to_owned(),
                })
                .collect(),
        });
        Ok(CreatePodRequest {
            name: spec
                .name
                .clone()
                .or_else(|| spec.tags.get(gha_runner_core::tags::MACHINE).cloned())
                .unwrap_or_else(|| "lambda-gha".to_owned()),
            image: spec
                .image
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()),
            gpu: GpuConfig {
                id: pod_type.gpu,
                count: pod_type.count,
            },
            cloud: self.cloud,
            data_center_ids: match spec.region.as_str() {
                "" | "any" => Vec::new(),
                region => vec![region.to_owned()],
            },
            env,
            args,
            disk: self.disk_gb,
            mounts,
        })
    }
}

/// The agent's provider in a pod (a
/// [`ProviderFactory`](gha_runner_core::agent::ProviderFactory)): the pod's own key, from the
/// variable the agent's configuration names; none when it names none (the pod may not end
/// itself) or the pod has no such variable.
pub fn agent_provider(
    config: &gha_runner_core::agent_config::AgentConfig,
    time_scale: f64,
) -> Result<Option<Box<dyn CloudProvider>>, ProviderError> {
    let Some(variable) = &config.key_variable else {
        return Ok(None);
    };
    let provider = RunPodProvider::inside_pod(variable, config.api_url.as_deref(), time_scale)
        .map_err(|e| provider_error(&e, false))?;
    Ok(provider.map(|p| Box::new(p) as Box<dyn CloudProvider>))
}

/// Maps RunPod's failures onto the kinds the core acts on. For a create, RunPod's own table
/// (`createPod` in its API description): 400 is a rule broken *or* no capacity for this GPU
/// and data center ("try your next candidate"), 402 is an empty balance ("stop"), 403 is a
/// pool the account cannot use ("skip this candidate"), 422 a body that breaks the contract.
pub fn provider_error(error: &Error, creating: bool) -> ProviderError {
    let kind = match error {
        Error::Api { status, .. } => match (*status, creating) {
            (400 | 403, true) => ProviderErrorKind::Capacity,
            (402, _) => ProviderErrorKind::Quota,
            (400 | 422, false) | (422, true) => ProviderErrorKind::InvalidRequest,
            (404, _) => ProviderErrorKind::NotFound,
            (401 | 403, _) => ProviderErrorKind::Unauthorized,
            (429 | 500.., _) => ProviderErrorKind::Unavailable,
            _ => ProviderErrorKind::Other,
        },
        Error::Transport { .. } => ProviderErrorKind::Unavailable,
        Error::Decode { .. } | Error::Config(_) => ProviderErrorKind::Other,
    };
    let mut message = error.to_string();
    if matches!(error, Error::Api { status: 401, .. }) {
        message.push_str(
            " (check RUNPOD_API_KEY: create a key in RunPod's console, Settings → API Keys)",
        );
    }
    ProviderError::new(kind, message)
}

/// The core's view of a pod.
fn machine(pod: Pod) -> Machine {
    let tags: BTreeMap<String, String> = pod
        .env
        .get(TAGS_VARIABLE)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    let state = match pod.status {
        PodStatus::Provisioning | PodStatus::Starting => MachineState::Pending,
        PodStatus::Running => MachineState::Running,
        // The container stopped; the pod still exists (and its disk still bills) until deleted.
        PodStatus::Exited => MachineState::Other("exited".into()),
        PodStatus::Error => MachineState::Unhealthy,
        PodStatus::Terminated => MachineState::Gone,
        PodStatus::Unknown => MachineState::Other("unknown".into()),
    };
    let health_failure = pod.name.strip_prefix(UNHEALTHY_NAME).map(str::to_owned);
    Machine {
        id: MachineId::new(pod.id),
        name: Some(pod.name),
        instance_type: pod
            .gpu
            .map(|gpu| {
                PodType {
                    count: gpu.count,
                    gpu: gpu.id,
                }
                .to_string()
            })
            .unwrap_or_default(),
        region: pod.data_center_id.unwrap_or_default(),
        state,
        ip: pod.ssh.and_then(|ssh| ssh.direct).map(|direct| direct.host),
        tags,
        price_cents_per_hour: Some(cents(pod.cost)),
        health_failure,
    }
}

fn cents(usd: f64) -> u32 {
    // Prices are small positive numbers; anything else reads as free rather than wrapping.
    let cents = (usd * 100.0).round();
    if cents.is_finite() && cents >= 0.0 && cents <= f64::from(u32::MAX) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let cents = cents as u32;
        cents
    } else {
        0
    }
}

#[async_trait]
impl CloudProvider for RunPodProvider {
    fn name(&self) -> &'static str {
        "runpod"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            boot: BootDelivery::ContainerEnvironment,
            // Base64 grows the script by 4/3; the variable's name and `=` count too.
            max_boot_script_bytes: (MAX_ENVIRONMENT_STRING - BOOT_VARIABLE.len() - 2) / 4 * 3,
            ssh: SshAccess::Unavailable {
                why: "RunPod puts only the account's registered SSH keys on a pod, and this project does not change them",
            },
            metadata: MetadataPlace::Environment,
            // RunPod paces by per-user windows, not per launch; the client spaces calls 1 s apart.
            launch_interval: Duration::from_secs(1),
            machine_key: MachineKey::ProvidedOnMachine {
                key_variable: POD_KEY_VARIABLE,
                id_variable: POD_ID_VARIABLE,
            },
            // REST API v2 has no interruptible (spot) pods: `CreatePodRequest` has no such
            // field (v1's `interruptible` was retired with v1 on 2026-11-15).
            interruptible: false,
            // `Mounts.network` has `maxItems: 1`.
            max_volumes: 1,
            firewall_rulesets: false,
        }
    }

    fn this_machine(&self) -> Option<MachineId> {
        self.this_pod.clone()
    }

    async fn launch(&self, spec: &MachineSpec) -> Result<MachineId, ProviderError> {
        let request = self.create_request(spec)?;
        let pod = self
            .client
            .create_pod(&request)
            .await
            .map_err(|e| provider_error(&e, true))?;
        Ok(MachineId::new(pod.id))
    }

    async fn describe(&self, id: &MachineId) -> Result<Machine, ProviderError> {
        self.client
            .pod(id.as_str())
            .await
            .map(machine)
            .map_err(|e| provider_error(&e, false))
    }

    async fn list_tagged(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<Machine>, ProviderError> {
        let pods = self
            .client
            .pods()
            .await
            .map_err(|e| provider_error(&e, false))?;
        Ok(pods
            .into_iter()
            .map(machine)
            .filter(|m| {
                m.tags
                    .get(key)
                    .is_some_and(|v| value.is_none_or(|wanted| v == wanted))
            })
            .collect())
    }

    async fn report_unhealthy(&self, id: &MachineId, why: &str) -> Result<(), ProviderError> {
        // A short line: a pod's name is what RunPod's console shows in its list.
        let name: String = format!("{UNHEALTHY_NAME}{why}").chars().take(120).collect();
        self.client
            .rename_pod(id.as_str(), &name)
            .await
            .map(drop)
            .map_err(|e| provider_error(&e, false))
    }

    async fn terminate(&self, ids: &[MachineId]) -> Result<(), ProviderError> {
        for id in ids {
            match self.client.delete_pod(id.as_str()).await {
                Ok(()) => {}
                // Gone already (its own agent, most likely): the goal is reached.
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(provider_error(&error, false)),
            }
        }
        Ok(())
    }

    async fn catalog(&self) -> Result<Catalog, ProviderError> {
        let gpus = self
            .client
            .gpu_types(self.cloud)
            .await
            .map_err(|e| provider_error(&e, false))?;
        let data_centers = self
            .client
            .data_centers()
            .await
            .map_err(|e| provider_error(&e, false))?;
        let cloud = self.cloud;
        let offerings = gpus
            .iter()
            .filter(|gpu| match cloud {
                Cloud::Secure => gpu.secure,
                Cloud::Community => gpu.community,
            })
            .flat_map(|gpu| {
                let (max, price) = match cloud {
                    Cloud::Secure => (gpu.max_count.secure, gpu.price.secure),
                    Cloud::Community => (gpu.max_count.community, gpu.price.community),
                };
                let stocked: Vec<String> = gpu
                    .data_centers
                    .iter()
                    .filter(|dc| dc.availability.any())
                    .map(|dc| dc.id.clone())
                    .collect();
                (1..=max).map(move |count| Offering {
                    instance_type: PodType {
                        count,
                        gpu: gpu.id.clone(),
                    }
                    .to_string(),
                    description: format!("{count}x {} ({} GB)", gpu.name, gpu.memory),
                    gpus: count,
                    price_cents_per_hour: cents(price * f64::from(count)),
                    // Stock is reported per GPU type; a larger pod may still not fit.
                    regions_available: stocked.clone(),
                })
            })
            .collect();
        Ok(Catalog {
            offerings,
            regions: data_centers.into_iter().map(|dc| dc.id).collect(),
        })
    }

    fn self_terminate_script(&self) -> Option<&'static str> {
        Some(include_str!("../templates/terminate-self-runpod.sh"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_types_are_a_count_and_a_gpu_type_id() {
        let parsed: PodType = "2x NVIDIA H100 80GB HBM3".parse().unwrap();
        assert_eq!(
            parsed,
            PodType {
                count: 2,
                gpu: "NVIDIA H100 80GB HBM3".into()
            }
        );
        assert_eq!(parsed.to_string(), "2x NVIDIA H100 80GB HBM3");
        for bad in [
            "NVIDIA H100",
            "0x NVIDIA H100",
            "2 NVIDIA H100",
            "2x",
            "x A40",
            "gpu_1x_a10",
        ] {
            let error = bad.parse::<PodType>().unwrap_err();
            assert!(
                error.contains("`1x NVIDIA GeForce RTX 4090`"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn create_failures_move_to_the_next_candidate_as_runpod_documents() {
        let api = |status| Error::Api {
            operation: "POST /v2/pods".into(),
            status,
            title: String::new(),
            detail: "d".into(),
            errors: Vec::new(),
            retry_after: None,
        };
        let kind = |status, creating| provider_error(&api(status), creating).kind;
        assert_eq!(kind(400, true), ProviderErrorKind::Capacity);
        assert_eq!(kind(403, true), ProviderErrorKind::Capacity);
        assert_eq!(kind(402, true), ProviderErrorKind::Quota);
        assert_eq!(kind(422, true), ProviderErrorKind::InvalidRequest);
        assert_eq!(kind(400, false), ProviderErrorKind::InvalidRequest);
        assert_eq!(kind(403, false), ProviderErrorKind::Unauthorized);
        assert_eq!(kind(404, false), ProviderErrorKind::NotFound);
        assert_eq!(kind(503, true), ProviderErrorKind::Unavailable);
        assert!(
            provider_error(&api(401), false)
                .message
                .contains("RUNPOD_API_KEY")
        );
    }

    #[test]
    fn prices_become_cents() {
        assert_eq!(cents(0.44), 44);
        assert_eq!(cents(2.0 * 2.69), 538);
        assert_eq!(cents(f64::NAN), 0);
        assert_eq!(cents(-1.0), 0);
    }
}
