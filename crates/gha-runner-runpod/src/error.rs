//! Everything that can go wrong talking to RunPod, with what to do about it.

use std::time::Duration;

/// A failed RunPod call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// RunPod answered with an error (`application/problem+json`).
    #[error("RunPod answered {status} {title} to {operation}: {detail}{}", list(.errors))]
    Api {
        /// What was asked, e.g. `POST /v2/pods`.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// RunPod's short summary.
        title: String,
        /// RunPod's explanation.
        detail: String,
        /// Each validation failure, for a 422.
        errors: Vec<String>,
        /// How long RunPod asked to wait, for a 429.
        retry_after: Option<Duration>,
    },
    /// RunPod could not be reached, or the connection failed midway: a create may or may not
    /// have happened.
    #[error("could not reach RunPod for {operation}: {message}")]
    Transport {
        /// What was asked.
        operation: String,
        /// What went wrong.
        message: String,
    },
    /// RunPod's answer was not what its API description says.
    #[error("RunPod's answer to {operation} was not understood: {message}")]
    Decode {
        /// What was asked.
        operation: String,
        /// What did not fit.
        message: String,
    },
    /// The client is set up wrong.
    #[error("{0}")]
    Config(String),
}

fn list(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" ({})", errors.join("; "))
    }
}

impl Error {
    /// The HTTP status, for an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether RunPod said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the same call may succeed later: rate limits, RunPod's own failures, and
    /// connections that failed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status == 429 || *status >= 500,
            Error::Transport { .. } => true,
            Error::Decode { .. } | Error::Config(_) => false,
        }
    }
}
