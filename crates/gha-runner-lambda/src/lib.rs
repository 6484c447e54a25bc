//! Lambda Cloud as a `gha-runner-core` [`CloudProvider`]: the `lambda-cloud` client (whose
//! limiter already paces launches to one per 12 s and other calls to one per second), the
//! mapping of its errors onto the core's kinds, the SSH key a launch needs, and the script a
//! machine ends itself with.

#![deny(missing_docs)]

use async_trait::async_trait;
use lambda_cloud::{
    Client, ErrorCode, ErrorKind, ImageSpecification, Instance, InstanceStatus,
    LaunchInstanceRequest, Redacted, RequestedTagEntry,
};
use secrecy::ExposeSecret;

use gha_runner_core::cache::Volume;
use gha_runner_core::provider::{
    BootDelivery, Capabilities, CapacityHint, Catalog, CloudProvider, Machine, MachineId,
    MachineKey, MachineSpec, MachineState, MetadataPlace, Offering, ProviderError,
    ProviderErrorKind, SshAccess,
};

/// Lambda Cloud as a [`CloudProvider`].
#[derive(Debug, Clone)]
pub struct LambdaProvider {
    client: Client,
}

impl LambdaProvider {
    /// A provider over a configured client.
    pub fn new(client: Client) -> Self {
        LambdaProvider { client }
    }

    /// The client underneath, for Lambda-specific calls (SSH keys, filesystems).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// An SSH key made for one launch (Lambda requires exactly one per launch). Delete it with
/// [`LambdaProvider::delete_launch_key`] once the launch is done: a key is only read at launch.
pub struct LaunchKey {
    /// Lambda's id of the key, for deleting it.
    pub id: lambda_cloud::SshKeyId,
    /// The name the launch passes; it says which launch made it and when.
    pub name: String,
    /// The private key, when Lambda generated the pair.
    pub private_key: Option<secrecy::SecretString>,
}

impl std::fmt::Debug for LaunchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// What every launch key's name starts with.
const LAUNCH_KEY_PREFIX: &str = "lambda-gha-";

/// A launch key's name: `lambda-gha-<purpose>-t<unix seconds>`. The time lets the reaper
/// delete a key whose launch was cut short before it could delete the key itself.
fn launch_key_name(purpose: &str, made: jiff::Timestamp) -> String {
    format!("{LAUNCH_KEY_PREFIX}{purpose}-t{}", made.as_second())
}

/// When a launch key was made, from its name; `None` for any other key.
fn launch_key_made(name: &str) -> Option<jiff::Timestamp> {
    let (_, seconds) = name.strip_prefix(LAUNCH_KEY_PREFIX)?.rsplit_once("-t")?;
    if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    jiff::Timestamp::from_second(seconds.parse().ok()?).ok()
}

impl LambdaProvider {
    /// Creates an SSH key for one launch, named after `purpose` (e.g. the launch's label) and
    /// the time: `public_key` when given (debug access with the user's own key), otherwise a
    /// pair Lambda generates, whose private key is kept.
    pub async fn create_launch_key(
        &self,
        purpose: &str,
        public_key: Option<&str>,
    ) -> Result<LaunchKey, ProviderError> {
        let name = launch_key_name(purpose, jiff::Timestamp::now());
        match self.add_launch_key(&name, public_key).await {
            Err(error) if error.is_retryable() || error.status().is_none_or(|s| s >= 500) => {
                // The key may exist all the same (an answer lost): a generated pair's private
                // half is then lost too, so delete it and make the key once more.
                tracing::warn!(%error, "creating the launch key failed; checking and retrying");
                self.delete_keys_named(&name).await?;
                let again = self.add_launch_key(&name, public_key).await;
                if again.is_err() {
                    // Not left behind by a second lost answer either.
                    let _ = self.delete_keys_named(&name).await;
                }
                again.map_err(|e| provider_error(&e))
            }
            other => other.map_err(|e| provider_error(&e)),
        }
    }

    async fn delete_keys_named(&self, name: &str) -> Result<(), ProviderError> {
        let keys = self.list_keys().await?;
        for key in keys.iter().filter(|k| k.name == name) {
            self.delete_key(&key.id).await?;
        }
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<lambda_cloud::SshKey>, ProviderError> {
        self.client
            .ssh_keys()
            .list()
            .await
            .map_err(|e| provider_error(&e))
    }

    /// Deletes an SSH key; one already gone is not an error.
    async fn delete_key(&self, id: &lambda_cloud::SshKeyId) -> Result<(), ProviderError> {
        match self.client.ssh_keys().delete(id).await {
            Ok(()) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(provider_error(&error)),
        }
    }

    async fn add_launch_key(
        &self,
        name: &str,
        public_key: Option<&str>,
    ) -> Result<LaunchKey, lambda_cloud::Error> {
        let keys = self.client.ssh_keys();
        if let Some(public_key) = public_key {
            let key = keys.add(name, public_key).await?;
            return Ok(LaunchKey {
                id: key.id,
                name: key.name,
                private_key: None,
            });
        }
        let key = keys.generate(name).await?;
        Ok(LaunchKey {
            id: key.id,
            name: key.name,
            private_key: Some(secrecy::SecretString::from(
                key.private_key.expose().to_owned(),
            )),
        })
    }

    /// Deletes the launch keys made longer than `policy.orphan_after` ago (a launch takes
    /// minutes; its process deletes its key right after, unless it was killed), or with
    /// `dry_run` only names them. Returns their names.
    pub async fn reap_launch_keys(
        &self,
        policy: &gha_runner_core::reaper::ReapPolicy,
    ) -> Result<Vec<String>, ProviderError> {
        let orphan_after = jiff::SignedDuration::try_from(policy.orphan_after)
            .unwrap_or(jiff::SignedDuration::MAX);
        let keys = self.list_keys().await?;
        let mut reaped = Vec::new();
        for key in keys {
            let stale = launch_key_made(&key.name)
                .is_some_and(|made| policy.now.duration_since(made) >= orphan_after);
            if !stale {
                continue;
            }
            if !policy.dry_run {
                self.delete_key(&key.id).await?;
            }
            reaped.push(key.name);
        }
        Ok(reaped)
    }

    /// Deletes a launch key; one already gone is not an error.
    pub async fn delete_launch_key(&self, key: &LaunchKey) -> Result<(), ProviderError> {
        self.delete_key(&key.id).await
    }
}

/// The agent's provider on a Lambda machine (a
/// [`ProviderFactory`](gha_runner_core::agent::ProviderFactory)): the launcher's key from the
/// agent's configuration; none without one.
pub fn agent_provider(
    config: &gha_runner_core::agent_config::AgentConfig,
    time_scale: f64,
) -> Result<Option<Box<dyn CloudProvider>>, ProviderError> {
    let Some(key) = &config.api_key else {
        return Ok(None);
    };
    let mut builder = Client::builder()
        .api_key(key.clone())
        .time_scale(lambda_cloud::TimeScale::of(time_scale));
    if let Some(url) = &config.api_url {
        builder = builder.base_url(url);
    }
    let client = builder
        .build()
        .map_err(|e| ProviderError::new(ProviderErrorKind::InvalidRequest, e.to_string()))?;
    Ok(Some(Box::new(LambdaProvider::new(client))))
}

/// Maps the client's failures onto the kinds the core acts on.
pub fn provider_error(error: &lambda_cloud::Error) -> ProviderError {
    let kind = match (error.kind(), error.code()) {
        (_, Some(ErrorCode::InsufficientCapacity)) => ProviderErrorKind::Capacity,
        (_, Some(ErrorCode::QuotaExceeded)) => ProviderErrorKind::Quota,
        (ErrorKind::Validation(_), _)
        | (_, Some(ErrorCode::InvalidParameters | ErrorCode::FileSystemInWrongRegion)) => {
            ProviderErrorKind::InvalidRequest
        }
        (_, Some(ErrorCode::ObjectDoesNotExist | ErrorCode::NotFound)) => {
            ProviderErrorKind::NotFound
        }
        (
            _,
            Some(
                ErrorCode::InvalidApiKey
                | ErrorCode::Forbidden
                | ErrorCode::AccountInactive
                | ErrorCode::InvalidBillingAddress,
            ),
        ) => ProviderErrorKind::Unauthorized,
        (ErrorKind::Config(_), _) => ProviderErrorKind::InvalidRequest,
        _ if error.is_retryable() => ProviderErrorKind::Unavailable,
        _ => ProviderErrorKind::Other,
    };
    ProviderError::new(kind, error.to_string())
}

/// How a machine whose health gate failed is named (`unhealthy: <why>`): Lambda has no other
/// field a machine can set on itself, and the dashboard shows it too. No other machine of
/// ours may be named so.
pub const UNHEALTHY_NAME: &str = "unhealthy: ";

fn volume(filesystem: lambda_cloud::Filesystem) -> Volume {
    Volume {
        name: filesystem.name,
        region: filesystem.region.name.to_string(),
        mount_point: filesystem.mount_point,
    }
}

fn machine(instance: Instance) -> Machine {
    let state = match &instance.status {
        InstanceStatus::Booting => MachineState::Pending,
        InstanceStatus::Active => MachineState::Running,
        InstanceStatus::Unhealthy => MachineState::Unhealthy,
        InstanceStatus::Terminating => MachineState::Stopping,
        InstanceStatus::Terminated | InstanceStatus::Preempted => MachineState::Gone,
        other @ InstanceStatus::Unknown(_) => MachineState::Other(other.to_string()),
    };
    let health_failure = instance
        .name
        .as_deref()
        .and_then(|name| name.strip_prefix(UNHEALTHY_NAME))
        .map(str::to_owned);
    Machine {
        id: MachineId::new(instance.id.as_str()),
        name: instance.name,
        health_failure,
        instance_type: instance.instance_type.name.into_string(),
        region: instance.region.name.to_string(),
        state,
        ip: instance.ip,
        tags: instance
            .tags
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect(),
        price_cents_per_hour: Some(instance.instance_type.price_cents_per_hour),
    }
}

#[async_trait]
impl CloudProvider for LambdaProvider {
    fn name(&self) -> &'static str {
        "lambda"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            boot: BootDelivery::UserData,
            // Lambda's documented limit on `user_data`.
            max_boot_script_bytes: gha_runner_core::boot_script::MAX_USER_DATA_BYTES,
            ssh: SshAccess::LaunchKey { user: "ubuntu" },
            metadata: MetadataPlace::Tags,
            // One launch per 12 s, account-wide (the client's limiter).
            launch_interval: std::time::Duration::from_secs(12),
            // Lambda's API keys cannot be scoped.
            machine_key: MachineKey::Launchers,
            interruptible: false,
            max_volumes: usize::MAX,
            firewall_rulesets: true,
        }
    }

    fn self_terminate_script(&self) -> Option<&'static str> {
        Some(include_str!("../templates/terminate-self-lambda.sh"))
    }

    async fn launch(&self, spec: &MachineSpec) -> Result<MachineId, ProviderError> {
        let Some(ssh_key) = &spec.ssh_key else {
            return Err(ProviderError::new(
                ProviderErrorKind::InvalidRequest,
                "Lambda needs exactly one SSH key per launch: name one (e.g. `ssh_key_name`)",
            ));
        };
        let mut request = LaunchInstanceRequest::new(
            spec.instance_type.as_str(),
            spec.region.as_str(),
            ssh_key.as_str(),
        );
        request.name.clone_from(&spec.name);
        request.user_data = spec
            .boot_script
            .as_ref()
            .map(|data| Redacted::new(data.expose_secret()));
        request.tags = spec
            .tags
            .iter()
            .map(|(k, v)| RequestedTagEntry::new(k, v))
            .collect();
        request.file_system_names.clone_from(&spec.volumes);
        request.firewall_rulesets = spec
            .firewall_rulesets
            .iter()
            .map(|id| lambda_cloud::FirewallRulesetEntry {
                id: id.as_str().into(),
            })
            .collect();
        request.image = spec.image.as_ref().map(|image| {
            // Lambda image ids are 32 hex digits; anything else is a family name.
            if image.len() == 32 && image.chars().all(|c| c.is_ascii_hexdigit()) {
                ImageSpecification::id(image.as_str())
            } else {
                ImageSpecification::family(image.as_str())
            }
        });
        let ids = self
            .client
            .instances()
            .launch_request(&request)
            .await
            .map_err(|e| provider_error(&e))?;
        let mut ids = ids.into_iter();
        let first = ids.next().ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::Other,
                "Lambda launched nothing and said so",
            )
        })?;
        let extra: Vec<_> = ids.collect();
        if !extra.is_empty() {
            // One launch makes one instance; anything more is terminated rather than leaked.
            tracing::warn!(
                count = extra.len(),
                "Lambda launched more than one instance; terminating the extras"
            );
            self.client
                .instances()
                .terminate(extra)
                .await
                .map_err(|e| provider_error(&e))?;
        }
        Ok(MachineId::new(first.as_str()))
    }

    async fn report_unhealthy(&self, id: &MachineId, why: &str) -> Result<(), ProviderError> {
        // Instance names are at most 64 characters.
        let name: String = format!("{UNHEALTHY_NAME}{why}").chars().take(64).collect();
        self.client
            .instances()
            .rename(id.as_str(), name)
            .await
            .map(drop)
            .map_err(|e| provider_error(&e))
    }

    async fn describe(&self, id: &MachineId) -> Result<Machine, ProviderError> {
        self.client
            .instances()
            .get(id.as_str())
            .await
            .map(machine)
            .map_err(|e| provider_error(&e))
    }

    async fn list_tagged(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<Machine>, ProviderError> {
        let instances = self
            .client
            .instances()
            .list()
            .await
            .map_err(|e| provider_error(&e))?;
        Ok(instances
            .into_iter()
            .filter(|i| {
                i.tag(key)
                    .is_some_and(|v| value.is_none_or(|wanted| v == wanted))
            })
            .map(machine)
            .collect())
    }

    async fn terminate(&self, ids: &[MachineId]) -> Result<(), ProviderError> {
        if ids.is_empty() {
            return Ok(());
        }
        let result = self
            .client
            .instances()
            .terminate(ids.iter().map(MachineId::as_str))
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already gone (possibly terminated by its own agent): the goal is reached. With
            // several ids, terminate the ones that still exist one by one.
            Err(error) if error.is_not_found() && ids.len() > 1 => {
                for id in ids {
                    self.terminate(std::slice::from_ref(id)).await?;
                }
                Ok(())
            }
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(provider_error(&error)),
        }
    }

    /// Only `GET /instance-types` (one call; the catalog also lists the regions): the launch
    /// plan reads this before every attempt.
    async fn capacity_hints(&self) -> Result<Vec<CapacityHint>, ProviderError> {
        let types = self
            .client
            .instance_types()
            .list()
            .await
            .map_err(|e| provider_error(&e))?;
        Ok(types
            .iter()
            .flat_map(|item| {
                item.regions_with_capacity_available
                    .iter()
                    .map(|region| CapacityHint {
                        instance_type: item.instance_type.name.to_string(),
                        region: region.name.to_string(),
                        available: true,
                    })
            })
            .collect())
    }

    async fn volumes(&self) -> Result<Vec<Volume>, ProviderError> {
        let filesystems = self
            .client
            .filesystems()
            .list()
            .await
            .map_err(|e| provider_error(&e))?;
        Ok(filesystems.into_iter().map(volume).collect())
    }

    async fn create_volume(&self, name: &str, region: &str) -> Result<Volume, ProviderError> {
        self.client
            .filesystems()
            .create(name, region)
            .await
            .map(volume)
            .map_err(|e| provider_error(&e))
    }

    async fn catalog(&self) -> Result<Catalog, ProviderError> {
        let types = self
            .client
            .instance_types()
            .list()
            .await
            .map_err(|e| provider_error(&e))?;
        let regions = self
            .client
            .regions()
            .list()
            .await
            .map_err(|e| provider_error(&e))?;
        Ok(Catalog {
            offerings: types
                .iter()
                .map(|item| Offering {
                    instance_type: item.instance_type.name.to_string(),
                    description: item.instance_type.description.clone(),
                    gpus: item.instance_type.specs.gpus,
                    price_cents_per_hour: item.instance_type.price_cents_per_hour,
                    regions_available: item
                        .regions_with_capacity_available
                        .iter()
                        .map(|r| r.name.to_string())
                        .collect(),
                })
                .collect(),
            regions: regions.iter().map(|r| r.name.to_string()).collect(),
        })
    }
}

#[cfg(test)]
mod launch_key_tests {
    use super::*;

    #[test]
    fn launch_key_names_carry_their_time_and_other_keys_are_not_ours() {
        let made: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let name = launch_key_name("lambda-4242-abc123", made);
        assert_eq!(name, "lambda-gha-lambda-4242-abc123-t1795428000");
        assert!(name.len() <= 64, "Lambda's limit");
        assert_eq!(launch_key_made(&name), Some(made));
        for other in [
            "my-laptop",
            "lambda-gha-lambda-4242-abc123",
            "lambda-gha-x-t",
            "lambda-gha-x-t12a",
            "someone-t1795428000",
        ] {
            assert_eq!(launch_key_made(other), None, "{other}");
        }
    }
}
