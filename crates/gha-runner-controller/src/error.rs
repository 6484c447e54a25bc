//! The controller's one error type.

/// What can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The configuration file is wrong: the message names the setting and the fix.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong, and how to fix it.
        message: String,
    },
    /// A secret the configuration names is not in the environment.
    #[error("the environment variable {variable} is not set: {why}")]
    MissingSecret {
        /// The variable the configuration names.
        variable: String,
        /// What it is for.
        why: String,
    },
    /// The state database failed.
    #[error("the state database {path}: {message}")]
    Store {
        /// The database file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A launch was refused: this replica's term (`epoch`) is no longer the current one
    /// (another replica leads now).
    #[error(
        "this replica no longer leads (its term {epoch} ended): another replica decides launches now"
    )]
    NotLeading {
        /// The term this replica held.
        epoch: i64,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {message}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        message: String,
    },
    /// The GitHub App's credentials did not give a token.
    #[error("GitHub App: {0}")]
    App(String),
}
