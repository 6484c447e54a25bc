//! Filesystems, listed at `/file-systems` and changed at `/filesystems` as in the real API.

use std::sync::Arc;

use axum::extract::{Path, State};
use lambda_cloud::{
    ErrorCode, Filesystem, FilesystemCreateRequest, FilesystemDeleteResponse, User, UserStatus,
    Validate,
};

use crate::answer::{Data, JsonBody, data};
use crate::failure::ApiFailure;
use crate::shared::Shared;
use crate::world::World;

impl World {
    fn filesystem_in_use(&self, fs: &Filesystem) -> bool {
        self.instances.iter().any(|i| {
            i.holds_machine(self.now)
                && (i.instance.file_system_names.contains(&fs.name)
                    || i.instance
                        .file_system_mounts
                        .iter()
                        .flatten()
                        .any(|m| m.file_system_id == fs.id))
        })
    }

    fn filesystems_now(&self) -> Vec<Filesystem> {
        self.filesystems
            .iter()
            .map(|fs| Filesystem {
                is_in_use: self.filesystem_in_use(fs),
                ..fs.clone()
            })
            .collect()
    }
}

pub(crate) async fn list(State(shared): State<Arc<Shared>>) -> Data<Vec<Filesystem>> {
    data(shared.with_world(|world| world.filesystems_now()))
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<FilesystemCreateRequest>,
) -> Result<Data<Filesystem>, ApiFailure> {
    request.validate()?;
    shared.with_world(|world| {
        let region = world.known_region(request.region.as_str())?;
        if world.filesystems.iter().any(|f| f.name == request.name) {
            return Err(ApiFailure::new(
                400,
                ErrorCode::Duplicate,
                format!("A filesystem named {:?} already exists.", request.name),
            ));
        }
        let filesystem = Filesystem {
            id: world.new_id().into(),
            mount_point: format!("/lambda/nfs/{}", request.name),
            name: request.name,
            created: world.timestamp(),
            created_by: User {
                id: "00000000000000000000000000000001".to_owned(),
                email: "simulator@example.com".to_owned(),
                status: UserStatus::Active,
            },
            is_in_use: false,
            region,
            bytes_used: Some(0),
        };
        world.record_audit("filesystem", "created", filesystem.id.as_str(), &[]);
        world.filesystems.push(filesystem.clone());
        Ok(data(filesystem))
    })
}

pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Data<FilesystemDeleteResponse>, ApiFailure> {
    shared.with_world(|world| {
        let Some(index) = world.filesystems.iter().position(|f| f.id == id.as_str()) else {
            return Err(ApiFailure::new(
                404,
                ErrorCode::ObjectDoesNotExist,
                "Filesystem was not found.",
            ));
        };
        if world.filesystem_in_use(&world.filesystems[index]) {
            return Err(ApiFailure::new(
                400,
                ErrorCode::FilesystemInUse,
                "The filesystem is mounted on an instance.",
            )
            .suggest("Terminate the instances that use it, then delete it."));
        }
        let removed = world.filesystems.remove(index);
        world.record_audit("filesystem", "deleted", removed.id.as_str(), &[]);
        Ok(data(FilesystemDeleteResponse {
            deleted_ids: vec![removed.id],
        }))
    })
}
