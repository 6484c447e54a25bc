//! Instances: launching, listing, renaming, restarting and terminating machines.

use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::{Result, ValidationError};
use crate::filesystems::{FilesystemMountEntry, RequestedFilesystemMountEntry};
use crate::firewall::FirewallRulesetEntry;
use crate::ids::{FilesystemId, FirewallRulesetId, InstanceId, InstanceTypeName};
use crate::images::ImageSpecification;
use crate::instance_types::InstanceType;
use crate::operations;
use crate::redacted::Redacted;
use crate::regions::{Region, RegionName};
use crate::validation::{self, Validate};

/// The most bytes of `user_data` the API accepts ("cannot exceed 1MB"; read strictly).
pub const USER_DATA_MAX_BYTES: usize = 1_000_000;

open_enum! {
    /// Where an instance is in its life. Only `terminate` ends billing.
    pub enum InstanceStatus {
        /// Starting up; billing has started.
        Booting = "booting",
        /// Running and reachable.
        Active = "active",
        /// Running but failing health checks.
        Unhealthy = "unhealthy",
        /// Gone; no longer billed.
        Terminated = "terminated",
        /// Being shut down.
        Terminating = "terminating",
        /// Taken back by Lambda; no longer billed.
        Preempted = "preempted",
    }
}

impl InstanceStatus {
    /// Whether the instance is gone for good (`terminated` or `preempted`).
    pub fn is_gone(&self) -> bool {
        matches!(self, InstanceStatus::Terminated | InstanceStatus::Preempted)
    }
}

open_enum! {
    /// Why an operation on an instance is not available now.
    pub enum InstanceActionUnavailableCode {
        /// The machine has not launched yet.
        VmHasNotLaunched = "vm-has-not-launched",
        /// The machine is too old for this operation.
        VmIsTooOld = "vm-is-too-old",
        /// The machine is terminating.
        VmIsTerminating = "vm-is-terminating",
        /// Another operation is in progress.
        VmActionInProgress = "vm-action-in-progress",
    }
}

/// Whether one operation can be performed on an instance now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct InstanceActionAvailabilityDetails {
    /// Whether the operation can be performed now.
    pub available: bool,
    /// Why not, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<InstanceActionUnavailableCode>,
    /// Why not, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_description: Option<String>,
}

impl InstanceActionAvailabilityDetails {
    /// The operation is available.
    pub fn available() -> Self {
        InstanceActionAvailabilityDetails {
            available: true,
            reason_code: None,
            reason_description: None,
        }
    }

    /// The operation is blocked for `code`.
    pub fn blocked(code: InstanceActionUnavailableCode, description: impl Into<String>) -> Self {
        InstanceActionAvailabilityDetails {
            available: false,
            reason_code: Some(code),
            reason_description: Some(description.into()),
        }
    }
}

/// Which operations an instance allows now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct InstanceActionAvailability {
    /// Migration.
    pub migrate: InstanceActionAvailabilityDetails,
    /// Rebuild.
    pub rebuild: InstanceActionAvailabilityDetails,
    /// Restart.
    pub restart: InstanceActionAvailabilityDetails,
    /// Cold reboot.
    pub cold_reboot: InstanceActionAvailabilityDetails,
    /// Termination.
    pub terminate: InstanceActionAvailabilityDetails,
}

/// A tag on an instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct TagEntry {
    /// The key of the tag.
    pub key: String,
    /// The value of the tag.
    pub value: String,
}

/// A tag to set at launch. Keys match `^[a-z][a-z0-9-:]+$` (at most 55 characters); values
/// have at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestedTagEntry {
    /// The key of the tag.
    pub key: String,
    /// The value of the tag.
    pub value: String,
}

impl RequestedTagEntry {
    /// The tag `key=value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        RequestedTagEntry {
            key: key.into(),
            value: value.into(),
        }
    }

    /// Checks the key pattern and both lengths; `field` prefixes the error's field path.
    pub fn check(&self, field: &str) -> Result<(), ValidationError> {
        let key_field = format!("{field}.key");
        validation::length(&key_field, &self.key, 2, 55)?;
        validation::characters(
            &key_field,
            &self.key,
            |c| c.is_ascii_lowercase(),
            |c| validation::is_lower_alnum(c) || c == '-' || c == ':',
            "must start with a lowercase letter and contain only `a-z`, `0-9`, `-` and `:`",
        )?;
        validation::length(&format!("{field}.value"), &self.value, 0, 128)
    }
}

/// A machine of the account, as `GET /instances` shows it: from `booting` to `terminated`
/// (listed a while after).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct Instance {
    /// The unique identifier of the instance.
    pub id: InstanceId,
    /// The name given at launch or by rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The public IPv4 address, once assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The private IPv4 address, once assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// Where it is in its life.
    pub status: InstanceStatus,
    /// The SSH keys that may log in.
    pub ssh_key_names: Vec<String>,
    /// The filesystems mounted.
    pub file_system_names: Vec<String>,
    /// The filesystems mounted, with their mount points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_mounts: Option<Vec<FilesystemMountEntry>>,
    /// The region it runs in.
    pub region: Region,
    /// Its type, with price and specs.
    pub instance_type: InstanceType,
    /// The hostname assigned to this instance, which resolves to the instance's IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The token for its JupyterLab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jupyter_token: Option<Redacted>,
    /// The URL of its JupyterLab, token included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jupyter_url: Option<Redacted>,
    /// Which operations it allows now.
    pub actions: InstanceActionAvailability,
    /// Key/value pairs representing the instance's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagEntry>,
    /// The firewall rulesets it uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall_rulesets: Vec<FirewallRulesetEntry>,
}

impl Instance {
    /// The value of the tag `key`, if set.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|tag| tag.key == key)
            .map(|tag| tag.value.as_str())
    }
}

/// A launch request (`POST /api/v1/instance-operations/launch`). Build one with
/// [`Instances::launch`], or fill the fields and send it with [`Instances::launch_request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchInstanceRequest {
    /// The region to launch in.
    pub region_name: RegionName,
    /// The instance type to launch.
    pub instance_type_name: InstanceTypeName,
    /// The SSH keys that may log in: exactly one.
    pub ssh_key_names: Vec<String>,
    /// Filesystems to mount at their default mount points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_system_names: Vec<String>,
    /// Filesystems to mount at chosen mount points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_system_mounts: Vec<RequestedFilesystemMountEntry>,
    /// The hostname (`^[a-z0-9][0-9a-z-]{0,62}$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The name (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The image; the latest Lambda Stack when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSpecification>,
    /// cloud-init user data, at most 1 MB. Never shown in `Debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<Redacted>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RequestedTagEntry>,
    /// Firewall rulesets in the same region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall_rulesets: Vec<FirewallRulesetEntry>,
}

impl LaunchInstanceRequest {
    /// A request with the required fields only.
    pub fn new(
        instance_type: impl Into<InstanceTypeName>,
        region: impl Into<RegionName>,
        ssh_key_name: impl Into<String>,
    ) -> Self {
        LaunchInstanceRequest {
            region_name: region.into(),
            instance_type_name: instance_type.into(),
            ssh_key_names: vec![ssh_key_name.into()],
            file_system_names: Vec::new(),
            file_system_mounts: Vec::new(),
            hostname: None,
            name: None,
            image: None,
            user_data: None,
            tags: Vec::new(),
            firewall_rulesets: Vec::new(),
        }
    }
}

impl Validate for LaunchInstanceRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validation::length(
            "instance_type_name",
            self.instance_type_name.as_str(),
            1,
            256,
        )?;
        validation::length("region_name", self.region_name.as_str(), 1, 256)?;
        if self.ssh_key_names.len() != 1 {
            return Err(ValidationError::new(
                "ssh_key_names",
                format!(
                    "exactly one SSH key must be named (got {})",
                    self.ssh_key_names.len()
                ),
            ));
        }
        validation::length("ssh_key_names[0]", &self.ssh_key_names[0], 1, 64)?;
        if let Some(name) = &self.name {
            validation::length("name", name, 0, 64)?;
        }
        if let Some(hostname) = &self.hostname {
            validation::length("hostname", hostname, 1, 63)?;
            validation::characters(
                "hostname",
                hostname,
                validation::is_lower_alnum,
                |c| validation::is_lower_alnum(c) || c == '-',
                "must start with `a-z` or `0-9` and contain only `a-z`, `0-9` and `-`",
            )?;
        }
        if let Some(user_data) = &self.user_data
            && user_data.len() > USER_DATA_MAX_BYTES
        {
            return Err(ValidationError::new(
                "user_data",
                format!(
                    "must be at most {USER_DATA_MAX_BYTES} bytes (got {}); fetch large files at boot instead",
                    user_data.len()
                ),
            ));
        }
        for (index, tag) in self.tags.iter().enumerate() {
            tag.check(&format!("tags[{index}]"))?;
        }
        for (index, mount) in self.file_system_mounts.iter().enumerate() {
            mount.check(&format!("file_system_mounts[{index}]"))?;
        }
        for (index, name) in self.file_system_names.iter().enumerate() {
            validation::length(&format!("file_system_names[{index}]"), name, 1, 60)?;
        }
        for (index, ruleset) in self.firewall_rulesets.iter().enumerate() {
            validation::length(
                &format!("firewall_rulesets[{index}].id"),
                ruleset.id.as_str(),
                1,
                256,
            )?;
        }
        if let Some(ImageSpecification::Family { family }) = &self.image {
            validation::length("image.family", family, 1, 256)?;
        }
        if let Some(ImageSpecification::Id { id }) = &self.image {
            validation::length("image.id", id.as_str(), 1, 256)?;
        }
        Ok(())
    }
}

/// The answer to a launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct InstanceLaunchResponse {
    /// The launched instances' ids (one per launch today).
    pub instance_ids: Vec<InstanceId>,
}

/// Instances to restart or terminate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceIdsRequest {
    /// The instances to act on; an unknown id fails the whole request.
    pub instance_ids: Vec<InstanceId>,
}

impl Validate for InstanceIdsRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.instance_ids.is_empty() {
            return Err(ValidationError::new(
                "instance_ids",
                "must name at least one instance",
            ));
        }
        for (index, id) in self.instance_ids.iter().enumerate() {
            validation::length(&format!("instance_ids[{index}]"), id.as_str(), 1, 256)?;
        }
        Ok(())
    }
}

/// The answer to a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct InstanceRestartResponse {
    /// The instances restarted.
    pub restarted_instances: Vec<Instance>,
}

/// The answer to a termination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct InstanceTerminateResponse {
    /// The instances now terminating.
    pub terminated_instances: Vec<Instance>,
}

/// A rename (`POST /api/v1/instances/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceModificationRequest {
    /// The new name (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Validate for InstanceModificationRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        match &self.name {
            Some(name) => validation::length("name", name, 0, 64),
            None => Ok(()),
        }
    }
}

/// The `instances` API area. Get it from [`Client::instances`].
#[derive(Debug, Clone, Copy)]
pub struct Instances<'c> {
    client: &'c Client,
}

impl Client {
    /// Instances and instance operations.
    pub fn instances(&self) -> Instances<'_> {
        Instances { client: self }
    }
}

impl<'c> Instances<'c> {
    /// Every running instance of the account (`GET /api/v1/instances`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let mine = client.instances().list().await?
    ///     .into_iter()
    ///     .filter(|i| i.tag("lambda-gha:run").is_some());
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<Vec<Instance>> {
        self.client
            .data(Call::new(&operations::INSTANCES_LIST))
            .await
    }

    /// The instances of one 1-Click Cluster (`GET /api/v1/instances?cluster_id=`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let nodes = client.instances().list_in_cluster("ddaedf1b7a0e41ac981711504493b242").await?;
    /// # Ok(()) }
    /// ```
    pub async fn list_in_cluster(&self, cluster_id: &str) -> Result<Vec<Instance>> {
        self.client
            .data(Call::new(&operations::INSTANCES_LIST).query("cluster_id", cluster_id))
            .await
    }

    /// One instance (`GET /api/v1/instances/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let instance = client.instances().get("0920582c7ff041399e34823a0be62549").await?;
    /// println!("{}", instance.status);
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, id: impl Into<InstanceId>) -> Result<Instance> {
        let id: InstanceId = id.into();
        self.client
            .data(Call::new(&operations::INSTANCE_GET).path(id.as_str()))
            .await
    }

    /// Renames an instance (`POST /api/v1/instances/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.instances().rename("0920582c7ff041399e34823a0be62549", "trainer").await?;
    /// # Ok(()) }
    /// ```
    pub async fn rename(
        &self,
        id: impl Into<InstanceId>,
        name: impl Into<String>,
    ) -> Result<Instance> {
        let id: InstanceId = id.into();
        let body = InstanceModificationRequest {
            name: Some(name.into()),
        };
        self.client
            .data(
                Call::new(&operations::INSTANCE_UPDATE)
                    .path(id.as_str())
                    .validated_json(&body),
            )
            .await
    }

    /// Starts a launch of one instance; finish with [`LaunchBuilder::send`].
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let ids = client
    ///     .instances()
    ///     .launch("gpu_1x_a10", "us-east-1", "my-key")
    ///     .name("ci-runner")
    ///     .tag("lambda-gha:run", "12345")
    ///     .send()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn launch(
        &self,
        instance_type: impl Into<InstanceTypeName>,
        region: impl Into<RegionName>,
        ssh_key_name: impl Into<String>,
    ) -> LaunchBuilder<'c> {
        LaunchBuilder {
            instances: *self,
            request: LaunchInstanceRequest::new(instance_type, region, ssh_key_name),
        }
    }

    /// Launches from a complete request (`POST /api/v1/instance-operations/launch`). Paced to
    /// one launch per 12 s; insufficient capacity is returned at once, not retried.
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::LaunchInstanceRequest;
    /// let request = LaunchInstanceRequest::new("gpu_1x_a10", "us-east-1", "my-key");
    /// let ids = client.instances().launch_request(&request).await?;
    /// # Ok(()) }
    /// ```
    pub async fn launch_request(&self, request: &LaunchInstanceRequest) -> Result<Vec<InstanceId>> {
        self.client
            .data::<InstanceLaunchResponse>(
                Call::new(&operations::INSTANCE_LAUNCH).validated_json(request),
            )
            .await
            .map(|response| response.instance_ids)
    }

    /// Restarts instances (`POST /api/v1/instance-operations/restart`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.instances().restart(["0920582c7ff041399e34823a0be62549"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn restart<I>(&self, ids: I) -> Result<Vec<Instance>>
    where
        I: IntoIterator,
        I::Item: Into<InstanceId>,
    {
        self.on_instances::<InstanceRestartResponse, _>(&operations::INSTANCE_RESTART, ids)
            .await
            .map(|response| response.restarted_instances)
    }

    /// Terminates instances, which ends their billing
    /// (`POST /api/v1/instance-operations/terminate`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.instances().terminate(["0920582c7ff041399e34823a0be62549"]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn terminate<I>(&self, ids: I) -> Result<Vec<Instance>>
    where
        I: IntoIterator,
        I::Item: Into<InstanceId>,
    {
        self.on_instances::<InstanceTerminateResponse, _>(&operations::INSTANCE_TERMINATE, ids)
            .await
            .map(|response| response.terminated_instances)
    }

    /// Sends an instance operation that takes a list of instance ids.
    async fn on_instances<R, I>(&self, op: &'static operations::Operation, ids: I) -> Result<R>
    where
        R: serde::de::DeserializeOwned,
        I: IntoIterator,
        I::Item: Into<InstanceId>,
    {
        let body = InstanceIdsRequest {
            instance_ids: ids.into_iter().map(Into::into).collect(),
        };
        self.client.data(Call::new(op).validated_json(&body)).await
    }
}

/// A launch being put together. Every optional field of the spec has a method.
#[derive(Debug, Clone)]
#[must_use = "a launch does nothing until `send` is awaited"]
pub struct LaunchBuilder<'c> {
    instances: Instances<'c>,
    request: LaunchInstanceRequest,
}

impl LaunchBuilder<'_> {
    /// The instance's name (at most 64 characters).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.request.name = Some(name.into());
        self
    }

    /// The hostname (`^[a-z0-9][0-9a-z-]{0,62}$`).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.request.hostname = Some(hostname.into());
        self
    }

    /// The image to boot.
    pub fn image(mut self, image: ImageSpecification) -> Self {
        self.request.image = Some(image);
        self
    }

    /// cloud-init user data (at most 1 MB).
    pub fn user_data(mut self, user_data: impl Into<String>) -> Self {
        self.request.user_data = Some(Redacted::new(user_data));
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.tags.push(RequestedTagEntry::new(key, value));
        self
    }

    /// Mounts a filesystem, by name, at its default mount point.
    pub fn file_system(mut self, name: impl Into<String>) -> Self {
        self.request.file_system_names.push(name.into());
        self
    }

    /// Mounts a filesystem, by id, at `mount_point` (under `/home`, `/lambda/nfs` or `/data`).
    pub fn file_system_mount(
        mut self,
        file_system_id: impl Into<FilesystemId>,
        mount_point: impl Into<String>,
    ) -> Self {
        self.request
            .file_system_mounts
            .push(RequestedFilesystemMountEntry {
                mount_point: mount_point.into(),
                file_system_id: file_system_id.into(),
            });
        self
    }

    /// Associates a firewall ruleset of the same region.
    pub fn firewall_ruleset(mut self, id: impl Into<FirewallRulesetId>) -> Self {
        self.request
            .firewall_rulesets
            .push(FirewallRulesetEntry { id: id.into() });
        self
    }

    /// The request as built so far.
    pub fn request(&self) -> &LaunchInstanceRequest {
        &self.request
    }

    /// Validates and sends the launch; the ids of what was launched.
    pub async fn send(self) -> Result<Vec<InstanceId>> {
        self.instances.launch_request(&self.request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LaunchInstanceRequest {
        LaunchInstanceRequest::new("gpu_1x_a10", "us-east-1", "key")
    }

    fn rule_broken(request: &LaunchInstanceRequest) -> String {
        request.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_request_is_valid() {
        assert_eq!(request().validate(), Ok(()));
    }

    #[test]
    fn exactly_one_ssh_key() {
        let mut r = request();
        r.ssh_key_names.push("other".into());
        assert_eq!(
            rule_broken(&r),
            "invalid `ssh_key_names`: exactly one SSH key must be named (got 2)"
        );
        r.ssh_key_names.clear();
        assert!(rule_broken(&r).contains("(got 0)"));
    }

    #[test]
    fn name_hostname_and_tags_follow_the_spec() {
        let mut r = request();
        r.name = Some("n".repeat(65));
        assert!(rule_broken(&r).starts_with("invalid `name`: must be at most 64"));

        let mut r = request();
        r.hostname = Some("Head-Node".into());
        assert!(rule_broken(&r).starts_with("invalid `hostname`"));
        r.hostname = Some("head-node-1".into());
        assert_eq!(r.validate(), Ok(()));

        let mut r = request();
        r.tags.push(RequestedTagEntry::new("lambda-gha:run", "1"));
        r.tags.push(RequestedTagEntry::new("Bad", "1"));
        assert!(rule_broken(&r).starts_with("invalid `tags[1].key`: must start with"));

        let mut r = request();
        r.tags.push(RequestedTagEntry::new("k1", "v".repeat(129)));
        assert!(rule_broken(&r).starts_with("invalid `tags[0].value`"));
    }

    #[test]
    fn user_data_is_capped_and_never_echoed() {
        let mut r = request();
        r.user_data = Some(Redacted::new("x".repeat(USER_DATA_MAX_BYTES)));
        assert_eq!(r.validate(), Ok(()));
        r.user_data = Some(Redacted::new(format!(
            "SECRET{}",
            "x".repeat(USER_DATA_MAX_BYTES)
        )));
        let message = rule_broken(&r);
        assert!(message.starts_with("invalid `user_data`: must be at most"));
        assert!(!message.contains("SECRET"));
        assert!(!format!("{r:?}").contains("SECRET"));
    }

    #[test]
    fn optional_fields_are_left_out_of_the_body() {
        let body = serde_json::to_value(request()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "region_name": "us-east-1",
                "instance_type_name": "gpu_1x_a10",
                "ssh_key_names": ["key"],
            })
        );
    }
}
