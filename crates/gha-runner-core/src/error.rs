//! The crate's errors.

use crate::provider::ProviderError;

/// A user input that cannot work, caught before anything is launched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}`: {problem}")]
pub struct InputError {
    /// The input, as the user named it (`instance_type`, `capacity_wait`, …).
    pub field: String,
    /// What is wrong and what to write instead.
    pub problem: String,
}

impl InputError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        InputError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// A GitHub API failure.
#[derive(Debug, thiserror::Error)]
#[error("GitHub: {action} failed: {message}")]
pub struct GitHubError {
    /// What was being done, e.g. `create a JIT runner config`.
    pub action: String,
    /// GitHub's answer or the transport failure.
    pub message: String,
    /// The HTTP status, when GitHub answered.
    pub status: Option<u16>,
}

/// Everything that can go wrong provisioning runners.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// Bad input, before anything was launched.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The cloud provider failed.
    #[error("{provider}: {source}")]
    Provider {
        /// The provider's name.
        provider: &'static str,
        /// Its failure.
        #[source]
        source: ProviderError,
    },
    /// GitHub failed.
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    /// The boot script cannot be sent.
    #[error("boot script: {0}")]
    BootScript(String),
}
