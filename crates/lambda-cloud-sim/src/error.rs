//! Why a simulator could not start.

/// What can go wrong setting up a simulator (not API errors: those are answers it sends).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The scenario is malformed or incoherent.
    #[error("invalid scenario: {message}")]
    Scenario {
        /// What is wrong and where.
        message: String,
    },
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {address}: {source} (is another simulator running? pick another port with --listen)"
    )]
    Bind {
        /// The address asked for (`--listen`).
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The user-data sandbox could not be prepared.
    #[error("cannot prepare the user-data sandbox {path}: {source}")]
    Sandbox {
        /// The sandbox directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Machines cannot boot as root here.
    #[error("cannot boot machines as root: {0}")]
    Rootfs(String),
}
