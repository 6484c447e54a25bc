//! The crate's errors.

use crate::provider::ProviderError;

/// What an input error is about: one of the settings this crate reads, in its own neutral
/// words, or a name the caller gave (its own input or flag). Each front end maps the neutral
/// ones to its own names ([`InputError::renamed`]): the action to `instance_type`, the CLI to
/// `--type`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// The machine types to try.
    InstanceTypes,
    /// The regions to try.
    Regions,
    /// How many machines.
    MachineCount,
    /// How long to wait for capacity.
    CapacityWait,
    /// The launch's label.
    Label,
    /// Labels added to every runner.
    ExtraLabels,
    /// How each machine's GPUs are shared among its runners.
    GpusPerRunner,
    /// How many runners each machine runs.
    RunnersPerMachine,
    /// How runners register (`jit` or `reusable`).
    RunnerMode,
    /// The GitHub runner's version.
    RunnerVersion,
    /// The cost ceiling.
    MaxCost,
    /// The GitHub repository.
    Repository,
    /// Whether runners are the repository's or the organization's.
    Scope,
    /// A setting the caller named.
    Named(String),
}

impl Field {
    /// The neutral words, or the caller's name as given.
    pub fn words(&self) -> &str {
        match self {
            Field::InstanceTypes => "instance types",
            Field::Regions => "regions",
            Field::MachineCount => "machine count",
            Field::CapacityWait => "capacity wait",
            Field::Label => "label",
            Field::ExtraLabels => "extra labels",
            Field::GpusPerRunner => "GPUs per runner",
            Field::RunnersPerMachine => "runners per machine",
            Field::RunnerMode => "runner mode",
            Field::RunnerVersion => "runner version",
            Field::MaxCost => "maximum cost",
            Field::Repository => "repository",
            Field::Scope => "scope",
            Field::Named(name) => name,
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.words())
    }
}

impl From<&str> for Field {
    fn from(name: &str) -> Self {
        Field::Named(name.to_owned())
    }
}

impl From<String> for Field {
    fn from(name: String) -> Self {
        Field::Named(name)
    }
}

/// Compares by what people read: `error.field == "instance_type"` holds once renamed.
impl PartialEq<&str> for Field {
    fn eq(&self, other: &&str) -> bool {
        self.words() == *other
    }
}

/// A user input that cannot work, caught before anything is launched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {}: {problem}", quoted(field))]
pub struct InputError {
    /// What it is about.
    pub field: Field,
    /// What is wrong and what to write instead.
    pub problem: String,
}

fn quoted(field: &Field) -> String {
    match field {
        Field::Named(name) => format!("`{name}`"),
        neutral => neutral.to_string(),
    }
}

impl InputError {
    /// An error about `field`.
    pub fn new(field: impl Into<Field>, problem: impl Into<String>) -> Self {
        InputError {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same error under the front end's own name for its field, when `name` has one.
    #[must_use]
    pub fn renamed(mut self, name: impl Fn(&Field) -> Option<&'static str>) -> Self {
        if let Some(name) = name(&self.field) {
            self.field = Field::Named(name.to_owned());
        }
        self
    }
}

/// A GitHub API failure; its message names the fix for the statuses that have one.
#[derive(Debug, thiserror::Error)]
#[error("GitHub: {action} failed: {message}{}", github_fix(*status))]
pub struct GitHubError {
    /// What was being done, e.g. `create a JIT runner config`.
    pub action: String,
    /// GitHub's answer or the transport failure.
    pub message: String,
    /// The HTTP status, when GitHub answered.
    pub status: Option<u16>,
}

fn github_fix(status: Option<u16>) -> &'static str {
    match status {
        Some(401) => " — the token was refused: check that the GitHub token (GH_PAT) is current",
        Some(403 | 404) => {
            " — the token cannot manage self-hosted runners: a fine-grained token needs \
             Administration: read and write on the repository (org scope: Self-hosted runners: \
             read and write on the organization)"
        }
        Some(422) => " — GitHub refused the request: check `runner_group` and the runner labels",
        _ => "",
    }
}

impl GitHubError {
    /// Whether trying again later cannot help (the token, its rights, or the request).
    pub fn is_permanent(&self) -> bool {
        self.status
            .is_some_and(|status| (400..500).contains(&status) && status != 429)
    }
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
        /// What the provider said.
        #[source]
        source: ProviderError,
    },
    /// GitHub failed.
    #[error(transparent)]
    GitHub(#[from] GitHubError),
    /// The boot script cannot be sent.
    #[error("boot script: {0}")]
    BootScript(String),
    /// A machine used directly (its key files, its wait) failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A JIT runner configuration could not be unpacked on the machine.
    #[error("{0}: generate a new one (the launcher does, at every launch)")]
    JitConfig(String),
}

/// A machine used directly could not be waited for, or its key files written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A key or known-hosts file could not be written.
    #[error("{0}")]
    Files(String),
    /// The provider could not say how the machine is.
    #[error("{machine}: {message}")]
    Provider {
        /// The machine waited for, by its id.
        machine: String,
        /// The provider's failure.
        message: String,
    },
    /// The machine ended, or went somewhere it cannot run from.
    #[error("{machine} is {state}, not booting: it will not become active")]
    Ended {
        /// The machine waited for, by its id.
        machine: String,
        /// Its state, in a word.
        state: String,
    },
    /// The machine was not running in time: it still bills.
    #[error("{machine} was not active within {within}")]
    NotActiveWithin {
        /// The machine waited for, by its id.
        machine: String,
        /// How long was waited, for people.
        within: String,
    },
}
