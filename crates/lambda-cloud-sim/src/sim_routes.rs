//! Simulator-only endpoints under `/_sim/`: the ledger, the clock, the storage behind
//! attachment upload URLs, and the instances' JupyterLab. Not part of Lambda's API; unauthenticated, like presigned URLs.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::answer::{Data, data};
use crate::failure::ApiFailure;
use crate::ledger::Ledger;
use crate::shared::Shared;

pub(crate) async fn ledger(State(shared): State<Arc<Shared>>) -> Json<Ledger> {
    Json(shared.with_world(|world| world.ledger()))
}

#[derive(Serialize)]
pub(crate) struct Clock {
    /// Simulated seconds since start.
    now: f64,
    /// Simulated seconds per real second.
    time_scale: f64,
}

pub(crate) async fn clock(State(shared): State<Arc<Shared>>) -> Data<Clock> {
    data(shared.with_world(|world| Clock {
        now: world.now,
        time_scale: world.clock.scale().factor(),
    }))
}

pub(crate) async fn upload(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiFailure> {
    shared.with_world(|world| world.store_upload(&id, body.to_vec()))?;
    Ok(StatusCode::OK)
}

pub(crate) async fn download(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Vec<u8>, ApiFailure> {
    shared
        .with_world(|world| world.uploaded(&id))
        .ok_or_else(|| ApiFailure::not_found("No uploaded attachment at this URL."))
}

#[derive(serde::Deserialize)]
pub(crate) struct JupyterQuery {
    #[serde(default)]
    token: String,
}

/// An instance's JupyterLab, as its `jupyter_url` reaches it: the lab answers once the machine
/// is `active` and only with the instance's token. Before that the proxy has nothing behind it
/// (502). Lambda's own proxy (`*.lambdaspaces.com`) cannot be reached from here: the statuses
/// are this simulator's model, not read off the real service.
pub(crate) async fn jupyter(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::extract::Query(query): axum::extract::Query<JupyterQuery>,
) -> (StatusCode, &'static str) {
    shared.with_world(|world| {
        let Some(instance) = world
            .instances
            .iter()
            .map(|sim| &sim.instance)
            .find(|i| i.id.as_str() == id)
        else {
            return (StatusCode::NOT_FOUND, "no such lab\n");
        };
        let token = instance
            .jupyter_token
            .as_ref()
            .map_or("", |token| token.expose());
        if token.is_empty() || token != query.token {
            (StatusCode::FORBIDDEN, "invalid token\n")
        } else if instance.status == lambda_cloud::InstanceStatus::Active {
            (StatusCode::OK, "JupyterLab (lambda-cloud-sim)\n")
        } else {
            (StatusCode::BAD_GATEWAY, "the lab is not up yet\n")
        }
    })
}
