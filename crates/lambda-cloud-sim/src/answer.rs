//! The shapes of the simulator's answers and requests: the `{"data": ...}` envelope, and JSON
//! bodies that fail the way the API fails them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::failure::ApiFailure;

/// The success envelope.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<T> {
    data: T,
}

/// A `{"data": T}` answer.
pub(crate) type Data<T> = Json<Envelope<T>>;

pub(crate) fn data<T>(value: T) -> Data<T> {
    Json(Envelope { data: value })
}

/// A JSON body; a malformed one is a 400 `global/invalid-parameters` in the API's envelope.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiFailure;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|error| ApiFailure::invalid(format!("Invalid request body: {error}")))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| ApiFailure::invalid(format!("Invalid request body: {error}")))
    }
}
