//! Simulator-only endpoints under `/_sim/`: the ledger, the clock, and the storage behind
//! attachment upload URLs. Not part of Lambda's API; unauthenticated, like presigned URLs.

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
