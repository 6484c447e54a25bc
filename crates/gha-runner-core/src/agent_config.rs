//! The on-machine agent's configuration, written by the boot script to a root-only file.
//! The agent (the `lambda-gha agent run` command) reads it; this crate renders it.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::health::HealthGate;

/// When the agent ends the machine. Defaults follow ec2-gha's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTimings {
    /// How long to wait for the first job (seconds).
    pub initial_grace_seconds: u64,
    /// How long to wait between jobs (seconds).
    pub grace_seconds: u64,
    /// How often to poll runner processes (seconds).
    pub poll_seconds: u64,
    /// How long runners may take to register (seconds).
    pub registration_timeout_seconds: u64,
    /// The hard maximum life of the machine (seconds).
    pub max_lifetime_seconds: u64,
}

impl Default for AgentTimings {
    fn default() -> Self {
        AgentTimings {
            initial_grace_seconds: 180,
            grace_seconds: 60,
            poll_seconds: 10,
            registration_timeout_seconds: 300,
            max_lifetime_seconds: 120 * 60,
        }
    }
}

impl AgentTimings {
    /// The registration timeout as a duration.
    pub fn registration_timeout(&self) -> Duration {
        Duration::from_secs(self.registration_timeout_seconds)
    }
}

/// Everything the agent on one machine needs.
#[derive(Clone, Serialize, Deserialize)]
pub struct AgentConfig {
    /// The project version that rendered it.
    pub version: String,
    /// The provider (`lambda`).
    pub provider: String,
    /// The provider API's base URL, when not the default.
    pub api_url: Option<String>,
    /// The provider API key, for self-termination. Secret: the file is root-only.
    #[serde(with = "secret_text", default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretString>,
    /// The variable of the machine's environment holding the machine's own key, when the
    /// provider gives its machines one ([`MachineKey::ProvidedOnMachine`]) and the machine may
    /// end itself: then no key of the launcher's is here.
    ///
    /// [`MachineKey::ProvidedOnMachine`]: crate::provider::MachineKey::ProvidedOnMachine
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_variable: Option<String>,
    /// The tag that identifies this machine (`key`, `value`): the agent finds its own id by it.
    pub machine_tag: (String, String),
    /// The launch's label.
    pub run_label: String,
    /// How many runners the machine runs.
    pub runner_count: usize,
    /// `jit` or `reusable`.
    pub runner_mode: String,
    /// When to end the machine.
    pub timings: AgentTimings,
    /// What the machine checks before its runners start; none: nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthGate>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("version", &self.version)
            .field("provider", &self.provider)
            .field("api_url", &self.api_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("key_variable", &self.key_variable)
            .field("machine_tag", &self.machine_tag)
            .field("run_label", &self.run_label)
            .field("runner_count", &self.runner_count)
            .field("runner_mode", &self.runner_mode)
            .field("timings", &self.timings)
            .field("health", &self.health)
            .finish()
    }
}

impl AgentConfig {
    /// The JSON the boot script writes. Secret, since it may hold the API key.
    pub fn to_json(&self) -> SecretString {
        SecretString::from(serde_json::to_string_pretty(self).unwrap_or_default())
    }
}

mod secret_text {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`.
    pub(super) fn serialize<S: Serializer>(
        value: &Option<SecretString>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => serializer.serialize_some(secret.expose_secret()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(SecretString::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_key_is_in_the_json_for_the_agent_but_never_in_debug() {
        let config = AgentConfig {
            version: "0.1.0".into(),
            provider: "lambda".into(),
            api_url: None,
            api_key: Some(SecretString::from("secret_key_value")),
            key_variable: None,
            machine_tag: ("lambda-gha:machine".into(), "lambda-1-abc-0".into()),
            run_label: "lambda-1-abc".into(),
            runner_count: 1,
            runner_mode: "jit".into(),
            timings: AgentTimings::default(),
            health: None,
        };
        assert!(!format!("{config:?}").contains("secret_key_value"));
        let json = config.to_json();
        let back: AgentConfig = serde_json::from_str(json.expose_secret()).unwrap();
        assert_eq!(back.api_key.unwrap().expose_secret(), "secret_key_value");
        assert_eq!(back.timings, AgentTimings::default());
    }
}
