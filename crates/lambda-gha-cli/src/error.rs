//! The CLI library's errors.

use std::path::PathBuf;

/// What can go wrong before or while talking to Lambda.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The config file cannot be read.
    #[error("{}: {problem} (see `lambda-gha --help` for the file's keys)", path.display())]
    Config {
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// No API key anywhere.
    #[error(
        "no Lambda API key: set LAMBDA_API_KEY, put it in a .env file here, or add \
         `api_key = \"...\"` to {config}; create a key at https://cloud.lambda.ai/api-keys"
    )]
    MissingKey {
        /// The config file path looked at.
        config: String,
    },
    /// An API URL the key would travel to in clear.
    #[error(
        "the Lambda API URL {url} (from {source_name}) is not https://: the API key would be \
         sent in clear. Use https://, or http:// only to a loopback address (the simulator); \
         fix or remove it in {source_name}"
    )]
    InsecureApiUrl {
        /// The URL.
        url: String,
        /// Where it was set.
        source_name: String,
    },
    /// `LAMBDA_API_TIME_SCALE` is not a time scale.
    #[error("{0}")]
    TimeScale(String),
    /// The API failed.
    #[error(transparent)]
    Lambda(#[from] lambda_cloud::Error),
    /// No RunPod key.
    #[error(
        "no RunPod API key: set RUNPOD_API_KEY (create a key in RunPod's console, Settings → \
         API Keys)"
    )]
    MissingRunPodKey,
    /// A RunPod URL the key would travel to in clear.
    #[error(
        "the RunPod API URL {0} (from RUNPOD_API_URL) is not https://: the API key would be \
         sent in clear. Use https://, or http:// only to a loopback address (the fake)"
    )]
    InsecureRunPodUrl(String),
    /// RunPod's client could not be set up.
    #[error(transparent)]
    RunPod(#[from] gha_runner_runpod::Error),
    /// A command that only Lambda has.
    #[error(
        "`{command}` is Lambda-only; with --provider runpod use types, instances, terminate or \
         reap"
    )]
    LambdaOnly {
        /// The command.
        command: &'static str,
    },
    /// The controller (`serve`) cannot start.
    #[error(transparent)]
    Controller(#[from] gha_runner_controller::ControllerError),
    /// GitHub's client could not be set up.
    #[error(transparent)]
    GitHub(#[from] gha_runner_core::GitHubError),
    /// Nothing has the id or name given.
    #[error("no {kind} has the id or name {wanted:?} (see `{list}`)")]
    NotFound {
        /// What was looked for.
        kind: &'static str,
        /// The id or name given.
        wanted: String,
        /// The command that lists them.
        list: &'static str,
    },
    /// A name that several share.
    #[error("{} {kind}s are named {wanted:?}: name one by its id: {}", matches.len(), matches.join(", "))]
    Ambiguous {
        /// What was looked for.
        kind: &'static str,
        /// The name given.
        wanted: String,
        /// Those that carry it.
        matches: Vec<String>,
    },
    /// What was given as an API key cannot be one.
    #[error(
        "that is not a Lambda API key (one word, no spaces or quotes): copy it again from \
         https://cloud.lambda.ai/api-keys"
    )]
    BadKey,
}
