//! SSH keys stored in the account; every launch names exactly one.

use serde::{Deserialize, Serialize};

use crate::client::{Call, Client};
use crate::error::{Result, ValidationError};
use crate::ids::SshKeyId;
use crate::operations;
use crate::redacted::Redacted;
use crate::validation::{self, Validate};

/// A stored public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct SshKey {
    /// The key's id, as `delete` takes it (launches name keys by name).
    pub id: SshKeyId,
    /// Its name, used at launch.
    pub name: String,
    /// The public key, e.g. `ssh-ed25519 AAAA… comment`.
    pub public_key: String,
}

/// A key pair Lambda generated. The private key is shown once and never stored by Lambda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(not(feature = "simulator"), non_exhaustive)]
pub struct GeneratedSshKey {
    /// The key's id, as `delete` takes it (launches name keys by name).
    pub id: SshKeyId,
    /// Its name, used at launch.
    pub name: String,
    /// The OpenSSH public key line that machines launched with this key accept.
    pub public_key: String,
    /// The private key (PEM). Never shown in `Debug`; save it with mode 0600.
    pub private_key: Redacted,
}

/// A key to add. Without `public_key`, Lambda generates a pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddSshKeyRequest {
    /// The name, 1 to 64 characters.
    pub name: String,
    /// The public key, 1 to 4096 characters; absent to generate a pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl Validate for AddSshKeyRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validation::length("name", &self.name, 1, 64)?;
        if let Some(key) = &self.public_key {
            validation::length("public_key", key, 1, 4096)?;
        }
        Ok(())
    }
}

/// The `ssh-keys` API area. Get it from [`Client::ssh_keys`].
#[derive(Debug, Clone, Copy)]
pub struct SshKeys<'c> {
    client: &'c Client,
}

impl Client {
    /// SSH keys.
    pub fn ssh_keys(&self) -> SshKeys<'_> {
        SshKeys { client: self }
    }
}

impl SshKeys<'_> {
    /// Every stored key (`GET /api/v1/ssh-keys`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// for key in client.ssh_keys().list().await? {
    ///     println!("{} {}", key.name, key.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<Vec<SshKey>> {
        self.client
            .data(Call::new(&operations::SSH_KEYS_LIST))
            .await
    }

    /// Stores a public key (`POST /api/v1/ssh-keys`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let key = client.ssh_keys().add("laptop", "ssh-ed25519 AAAAC3Nza… me@laptop").await?;
    /// # Ok(()) }
    /// ```
    pub async fn add(
        &self,
        name: impl Into<String>,
        public_key: impl Into<String>,
    ) -> Result<SshKey> {
        let body = AddSshKeyRequest {
            name: name.into(),
            public_key: Some(public_key.into()),
        };
        self.client
            .data(Call::new(&operations::SSH_KEY_ADD).validated_json(&body))
            .await
    }

    /// Has Lambda generate a key pair and returns it with its private key
    /// (`POST /api/v1/ssh-keys` without `public_key`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// let pair = client.ssh_keys().generate("ephemeral-ci").await?;
    /// std::fs::write("id_lambda", pair.private_key.expose()).ok();
    /// # Ok(()) }
    /// ```
    pub async fn generate(&self, name: impl Into<String>) -> Result<GeneratedSshKey> {
        let body = AddSshKeyRequest {
            name: name.into(),
            public_key: None,
        };
        self.client
            .data(Call::new(&operations::SSH_KEY_ADD).validated_json(&body))
            .await
    }

    /// Deletes a stored key (`DELETE /api/v1/ssh-keys/{id}`).
    ///
    /// ```no_run
    /// # async fn demo(client: lambda_cloud::Client) -> lambda_cloud::Result<()> {
    /// client.ssh_keys().delete("ddf9a910ceb744a0bb95242cbba6cb50").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, id: impl Into<SshKeyId>) -> Result<()> {
        let id: SshKeyId = id.into();
        self.client
            .empty(Call::new(&operations::SSH_KEY_DELETE).path(id.as_str()))
            .await
    }
}
