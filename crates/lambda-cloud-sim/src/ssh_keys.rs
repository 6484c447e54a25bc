//! SSH keys. A key added without `public_key` gets a real key pair from `ssh-keygen`, so that
//! what the simulator hands out works with a real `sshd`.

use std::process::Command;
use std::sync::Arc;

use axum::extract::{Path, State};
use lambda_cloud::{
    AddSshKeyRequest, ErrorCode, GeneratedSshKey, Redacted, SshKey, SshKeyId, Validate,
};
use serde_json::Value;

use crate::answer::{Data, JsonBody, data};
use crate::failure::ApiFailure;
use crate::shared::Shared;

pub(crate) async fn list(State(shared): State<Arc<Shared>>) -> Data<Vec<SshKey>> {
    data(shared.with_world(|world| world.ssh_keys.clone()))
}

pub(crate) async fn add(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<AddSshKeyRequest>,
) -> Result<Data<Value>, ApiFailure> {
    request.validate()?;
    let (public_key, private_key) = if let Some(public_key) = request.public_key {
        (public_key, None)
    } else {
        let (public_key, private_key) = generate_pair(&request.name).await?;
        (public_key, Some(private_key))
    };
    shared.with_world(|world| {
        if world.ssh_keys.iter().any(|k| k.name == request.name) {
            return Err(ApiFailure::new(
                400,
                ErrorCode::InvalidParameters,
                format!("An SSH key named {:?} already exists.", request.name),
            )
            .suggest("Choose another name or delete the existing key."));
        }
        let id = SshKeyId::new(world.new_id());
        let key = SshKey {
            id: id.clone(),
            name: request.name.clone(),
            public_key: public_key.clone(),
        };
        world.ssh_keys.push(key.clone());
        world.record_audit("ssh_key", "created", id.as_str(), &[]);
        let body = match private_key {
            Some(private_key) => serde_json::to_value(GeneratedSshKey {
                id,
                name: request.name,
                public_key,
                private_key: Redacted::new(private_key),
            }),
            None => serde_json::to_value(key),
        };
        body.map(data)
            .map_err(|error| ApiFailure::internal(error.to_string()))
    })
}

pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Data<serde_json::Map<String, Value>>, ApiFailure> {
    shared.with_world(|world| {
        let before = world.ssh_keys.len();
        world.ssh_keys.retain(|k| k.id != id.as_str());
        if world.ssh_keys.len() == before {
            return Err(ApiFailure::not_found(format!(
                "SSH key {id:?} was not found."
            )));
        }
        world.record_audit("ssh_key", "deleted", &id, &[]);
        Ok(data(serde_json::Map::new()))
    })
}

/// A fresh ed25519 pair from `ssh-keygen`, as (public key line, private key PEM).
async fn generate_pair(name: &str) -> Result<(String, String), ApiFailure> {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let dir = std::env::temp_dir().join(format!(
            "lambda-cloud-sim-keygen-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| ApiFailure::internal(format!("cannot create a key directory: {e}")))?;
        let path = dir.join("key");
        let output = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", &name, "-f"])
            .arg(&path)
            .output();
        let result = match output {
            Ok(output) if output.status.success() => {
                let public = std::fs::read_to_string(path.with_extension("pub"));
                let private = std::fs::read_to_string(&path);
                match (public, private) {
                    (Ok(public), Ok(private)) => Ok((public.trim().to_owned(), private)),
                    _ => Err(ApiFailure::internal("ssh-keygen wrote no key files")),
                }
            }
            Ok(output) => Err(ApiFailure::internal(format!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))),
            Err(error) => Err(ApiFailure::internal(format!(
                "cannot run ssh-keygen ({error}); install OpenSSH's client tools to generate key pairs"
            ))),
        };
        let _ = std::fs::remove_dir_all(&dir);
        result
    })
    .await
    .map_err(|error| ApiFailure::internal(format!("key generation stopped: {error}")))?
}
