//! Fabric partitions: named slices of the compute fabric.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::{Result, ValidationError};
use crate::ids::FabricPartitionId;
use crate::operations;
use crate::regions::{Region, RegionName};
use crate::validation::{self, Validate};

/// A partition of the high-speed fabric: the machines that share one interconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct FabricPartition {
    /// The unique identifier (ID) for the partition.
    pub id: FabricPartitionId,
    /// When it was created.
    pub created: Timestamp,
    /// The human-readable identifier for the partition.
    pub name: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// The region in which this partition exists.
    pub region: Region,
}

fn check_partition_name(name: &str) -> Result<(), ValidationError> {
    validation::length("name", name, 1, 32)?;
    validation::characters(
        "name",
        name,
        validation::is_lower_alnum,
        |c| validation::is_lower_alnum(c) || c == '-',
        "must start with `a-z` or `0-9` and contain only `a-z`, `0-9` and `-`",
    )
}

/// A partition to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateFabricPartitionRequest {
    /// Its name: `^[a-z0-9][a-z0-9-]{0,31}$`.
    pub name: String,
    /// Where the partition's machines are.
    pub region: RegionName,
    /// Its workspace; the default workspace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
}

impl Validate for CreateFabricPartitionRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        check_partition_name(&self.name)?;
        validation::length("region", self.region.as_str(), 1, 256)
    }
}

/// A new name for a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFabricPartitionRequest {
    /// The new name: `^[a-z0-9][a-z0-9-]{0,31}$`.
    pub name: String,
}

impl Validate for UpdateFabricPartitionRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        check_partition_name(&self.name)
    }
}

/// The `fabric` API area. Get it from [`Client::fabric`].
#[derive(Debug, Clone, Copy)]
pub struct Fabric<'c> {
    client: &'c Client,
}

impl Client {
    /// Fabric partitions.
    pub fn fabric(&self) -> Fabric<'_> {
        Fabric { client: self }
    }
}

impl Fabric<'_> {
    /// Creates a partition (`POST /api/v1/fabric`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// use lambda_cloud::CreateFabricPartitionRequest;
    /// let partition = client.fabric().create_partition(&CreateFabricPartitionRequest {
    ///     name: "training-one".into(),
    ///     region: "us-east-1".into(),
    ///     workspace_id: None,
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_partition(
        &self,
        request: &CreateFabricPartitionRequest,
    ) -> Result<FabricPartition> {
        self.client
            .data(Call::new(&operations::FABRIC_PARTITION_CREATE).validated_json(request))
            .await
    }

    /// Renames a partition (`POST /api/v1/fabric/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.fabric().rename_partition("43336648-096d-4cba-9aa2-f9bb7727639d", "training-two").await?;
    /// # Ok(()) }
    /// ```
    pub async fn rename_partition(
        &self,
        id: impl Into<FabricPartitionId>,
        name: impl Into<String>,
    ) -> Result<FabricPartition> {
        let id: FabricPartitionId = id.into();
        let body = UpdateFabricPartitionRequest { name: name.into() };
        self.client
            .data(
                Call::new(&operations::FABRIC_PARTITION_UPDATE)
                    .path(id.as_str())
                    .validated_json(&body),
            )
            .await
    }

    /// Deletes a partition (`DELETE /api/v1/fabric/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.fabric().delete_partition("43336648-096d-4cba-9aa2-f9bb7727639d").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_partition(&self, id: impl Into<FabricPartitionId>) -> Result<()> {
        let id: FabricPartitionId = id.into();
        self.client
            .empty(Call::new(&operations::FABRIC_PARTITION_DELETE).path(id.as_str()))
            .await
    }
}
