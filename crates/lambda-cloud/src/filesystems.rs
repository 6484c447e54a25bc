//! Persistent shared filesystems that instances in the same region can mount.
//!
//! The API lists them at `/file-systems` but creates and deletes them at `/filesystems`; the
//! client hides the split.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::{Result, ValidationError};
use crate::ids::FilesystemId;
use crate::operations;
use crate::regions::{Region, RegionName};
use crate::validation::{self, Validate};

open_enum! {
    /// Whether a team member's account is active.
    pub enum UserStatus {
        /// Active.
        Active = "active",
        /// Deactivated.
        Deactivated = "deactivated",
    }
}

/// A member of the team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// The user's e-mail address.
    pub email: String,
    /// Whether the account is active.
    pub status: UserStatus,
}

/// A persistent filesystem: storage that outlives machines, mounted by those launched in its
/// region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct Filesystem {
    /// The unique identifier (ID) of the filesystem.
    pub id: FilesystemId,
    /// The name of the filesystem.
    pub name: String,
    /// Where it is mounted by default, e.g. `/lambda/nfs/my-filesystem`.
    pub mount_point: String,
    /// When it was created.
    pub created: Timestamp,
    /// Who created it.
    pub created_by: User,
    /// Whether an instance has it mounted (then it cannot be deleted).
    pub is_in_use: bool,
    /// Where it lives.
    pub region: Region,
    /// About how many bytes it holds (updated every few hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_used: Option<u64>,
}

/// A filesystem mounted on an instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct FilesystemMountEntry {
    /// Where it is mounted.
    pub mount_point: String,
    /// Which filesystem.
    pub file_system_id: FilesystemId,
}

/// A filesystem to mount at launch at a chosen place.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestedFilesystemMountEntry {
    /// Where to mount it: under `/home`, `/lambda/nfs` or `/data`, at most 256 characters
    /// of `a-z A-Z 0-9 - /`.
    pub mount_point: String,
    /// Which filesystem.
    pub file_system_id: FilesystemId,
}

impl RequestedFilesystemMountEntry {
    /// Checks the mount point rules; `field` prefixes the error's field path.
    pub fn check(&self, field: &str) -> Result<(), ValidationError> {
        let mount_field = format!("{field}.mount_point");
        validation::length(&mount_field, &self.mount_point, 1, 256)?;
        let rest = ["/home", "/lambda/nfs", "/data"]
            .iter()
            .find_map(|prefix| self.mount_point.strip_prefix(prefix));
        let valid = rest.is_some_and(|rest| {
            rest.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/')
        });
        if !valid {
            return Err(ValidationError::new(
                mount_field,
                format!(
                    "must start with `/home`, `/lambda/nfs` or `/data` and contain only \
                     `a-z`, `A-Z`, `0-9`, `-` and `/` (got {:?})",
                    self.mount_point
                ),
            ));
        }
        validation::length(
            &format!("{field}.file_system_id"),
            self.file_system_id.as_str(),
            1,
            256,
        )
    }
}

/// A filesystem to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesystemCreateRequest {
    /// Its name: letters first, then letters, digits and `-`; at most 60 characters.
    pub name: String,
    /// Where it lives: only machines launched in this region can mount it.
    pub region: RegionName,
}

impl Validate for FilesystemCreateRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validation::length("name", &self.name, 1, 60)?;
        // ^[a-zA-Z]+[0-9a-zA-Z-]*$ is the same as: a letter, then letters, digits and `-`.
        validation::characters(
            "name",
            &self.name,
            |c| c.is_ascii_alphabetic(),
            |c| c.is_ascii_alphanumeric() || c == '-',
            "must start with a letter and contain only letters, digits and `-`",
        )?;
        validation::length("region", self.region.as_str(), 1, 256)
    }
}

/// The answer to a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct FilesystemDeleteResponse {
    /// The filesystems deleted.
    pub deleted_ids: Vec<FilesystemId>,
}

/// The `filesystems` API area. Get it from [`Client::filesystems`].
#[derive(Debug, Clone, Copy)]
pub struct Filesystems<'c> {
    client: &'c Client,
}

impl Client {
    /// Filesystems.
    pub fn filesystems(&self) -> Filesystems<'_> {
        Filesystems { client: self }
    }
}

impl Filesystems<'_> {
    /// Every filesystem (`GET /api/v1/file-systems`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// for fs in client.filesystems().list().await? {
    ///     println!("{} {} in use: {}", fs.name, fs.region.name, fs.is_in_use);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<Vec<Filesystem>> {
        self.client
            .data(Call::new(&operations::FILESYSTEMS_LIST))
            .await
    }

    /// Creates a filesystem (`POST /api/v1/filesystems`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let fs = client.filesystems().create("datasets", "us-east-1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(
        &self,
        name: impl Into<String>,
        region: impl Into<RegionName>,
    ) -> Result<Filesystem> {
        let body = FilesystemCreateRequest {
            name: name.into(),
            region: region.into(),
        };
        self.client
            .data(Call::new(&operations::FILESYSTEM_CREATE).validated_json(&body))
            .await
    }

    /// Deletes a filesystem that no instance has mounted (`DELETE /api/v1/filesystems/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.filesystems().delete("398578a2336b49079e74043f0bd2cfe8").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, id: impl Into<FilesystemId>) -> Result<Vec<FilesystemId>> {
        let id: FilesystemId = id.into();
        self.client
            .data::<FilesystemDeleteResponse>(
                Call::new(&operations::FILESYSTEM_DELETE).path(id.as_str()),
            )
            .await
            .map(|response| response.deleted_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_must_live_under_the_allowed_roots() {
        let entry = |mount: &str| RequestedFilesystemMountEntry {
            mount_point: mount.into(),
            file_system_id: "fs1".into(),
        };
        assert!(entry("/data/custom-mount-point").check("m").is_ok());
        assert!(entry("/lambda/nfs/x").check("m").is_ok());
        assert!(entry("/home").check("m").is_ok());
        let error = entry("/etc/passwd").check("m").unwrap_err();
        assert_eq!(error.field, "m.mount_point");
        assert!(entry("/data/a b").check("m").is_err());
    }

    #[test]
    fn names_start_with_a_letter() {
        let request = |name: &str| FilesystemCreateRequest {
            name: name.into(),
            region: RegionName::UsEast1,
        };
        assert!(request("datasets-2").validate().is_ok());
        assert!(request("2datasets").validate().is_err());
        assert!(request("data_sets").validate().is_err());
        assert!(request(&"a".repeat(61)).validate().is_err());
    }
}
