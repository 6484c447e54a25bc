//! Fabric partitions.

use std::sync::Arc;

use axum::extract::{Path, State};
use lambda_cloud::{
    CreateFabricPartitionRequest, FabricPartition, UpdateFabricPartitionRequest, Validate,
};
use serde_json::{Map, Value};

use crate::answer::{Data, JsonBody, data};
use crate::failure::ApiFailure;
use crate::shared::Shared;

fn partition_missing() -> ApiFailure {
    ApiFailure::not_found("The requested partition was not found.")
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<CreateFabricPartitionRequest>,
) -> Result<Data<FabricPartition>, ApiFailure> {
    request.validate()?;
    shared.with_world(|world| {
        let region = world.known_region(request.region.as_str())?;
        let partition = FabricPartition {
            id: world.new_id().into(),
            created: world.timestamp(),
            name: request.name,
            workspace_id: request
                .workspace_id
                .unwrap_or_else(|| "00000000000000000000000000000001".to_owned()),
            region,
        };
        world.partitions.push(partition.clone());
        Ok(data(partition))
    })
}

pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<UpdateFabricPartitionRequest>,
) -> Result<Data<FabricPartition>, ApiFailure> {
    request.validate()?;
    shared.with_world(|world| {
        let partition = world
            .partitions
            .iter_mut()
            .find(|p| p.id == id.as_str())
            .ok_or_else(partition_missing)?;
        partition.name = request.name;
        Ok(data(partition.clone()))
    })
}

pub(crate) async fn delete(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Data<Map<String, Value>>, ApiFailure> {
    shared.with_world(|world| {
        let before = world.partitions.len();
        world.partitions.retain(|p| p.id != id.as_str());
        if world.partitions.len() == before {
            return Err(partition_missing());
        }
        Ok(data(Map::new()))
    })
}
