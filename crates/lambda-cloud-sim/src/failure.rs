//! Error answers in the API's envelope, with the status and code the spec declares per case.

use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use lambda_cloud::{ErrorBody, ErrorCode, ErrorEnvelope, ValidationError};

/// An error answer: `{"error": {code, message, suggestion}}` with its HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiFailure {
    pub(crate) status: u16,
    pub(crate) body: ErrorBody,
    pub(crate) retry_after_seconds: Option<u64>,
}

impl ApiFailure {
    pub(crate) fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiFailure {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                suggestion: None,
            },
            retry_after_seconds: None,
        }
    }

    pub(crate) fn suggest(mut self, suggestion: impl Into<String>) -> Self {
        self.body.suggestion = Some(suggestion.into());
        self
    }

    /// 400 `global/invalid-parameters`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ApiFailure::new(400, ErrorCode::InvalidParameters, message)
    }

    /// 404 `global/object-does-not-exist`, with the suggestion the spec requires for launch
    /// resources and others.
    pub(crate) fn missing(what: &str, id: &str) -> Self {
        ApiFailure::new(
            404,
            ErrorCode::ObjectDoesNotExist,
            format!("{what} {id:?} does not exist."),
        )
        .suggest(format!("Check the {what} and try again."))
    }

    /// 404 `global/object-does-not-exist` for an instance.
    pub(crate) fn instance_missing(id: &str) -> Self {
        ApiFailure::new(
            404,
            ErrorCode::ObjectDoesNotExist,
            format!("Specified instance {id:?} does not exist."),
        )
    }

    /// 404 `global/not-found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiFailure::new(404, ErrorCode::NotFound, message)
    }

    /// 401 `global/invalid-api-key`.
    pub(crate) fn unauthorized() -> Self {
        ApiFailure::new(
            401,
            ErrorCode::InvalidApiKey,
            "API key was invalid, expired, or deleted.",
        )
        .suggest("Check your API key or create a new one, then try again.")
    }

    /// 500 `global/internal-error`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiFailure::new(500, ErrorCode::InternalError, message)
            .suggest("Try again later. Contact Support if the problem persists.")
    }
}

impl From<ValidationError> for ApiFailure {
    fn from(error: ValidationError) -> Self {
        ApiFailure::invalid(error.to_string())
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(ErrorEnvelope { error: self.body })).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
