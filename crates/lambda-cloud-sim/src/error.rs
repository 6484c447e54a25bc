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
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The time scale is not a positive number.
    #[error(
        "invalid time scale {0}: use a number above 0, e.g. 1 for real time or 100 to run 100x faster"
    )]
    TimeScale(f64),
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
