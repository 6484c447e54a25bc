//! What every handler shares: the world under its lock (brought up to now on every use, its
//! effects carried out after), the key, the limiter, the fault counters and the request log.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use crate::faults::FaultCounters;
use crate::machine::Effect;
use crate::rate_limit::ServerLimiter;
use crate::user_data::UserDataRunner;
use crate::world::World;

/// What every handler shares.
pub(crate) struct Shared {
    world: Mutex<World>,
    api_key: Option<SecretString>,
    pub(crate) limiter: Mutex<ServerLimiter>,
    pub(crate) faults: Mutex<FaultCounters>,
    pub(crate) runner: Option<UserDataRunner>,
    pub(crate) base_url: OnceLock<String>,
    /// How many API requests arrived (authenticated or not).
    pub(crate) received: std::sync::atomic::AtomicU64,
    /// How many requests were refused with 429.
    pub(crate) rate_limited: std::sync::atomic::AtomicU64,
    /// The latest API requests, as [`request_line`] writes them.
    pub(crate) requests: Mutex<std::collections::VecDeque<String>>,
}

/// How many requests the log keeps: the latest, so a long-running simulator stays small.
pub(crate) const REQUEST_LOG_LIMIT: usize = 10_000;

/// One request as the log keeps it: method, path and query, status, and the JSON body with
/// `user_data` replaced by its size (it is the machine's own channel, meant to carry what the
/// machine needs). The `Authorization` header is never kept.
pub(crate) fn request_line(method: &str, uri: &str, status: u16, body: &[u8]) -> String {
    let body = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut json) => {
            if let Some(user_data) = json.get_mut("user_data") {
                let size = user_data.as_str().map_or(0, str::len);
                *user_data = serde_json::Value::String(format!("[{size} bytes]"));
            }
            json.to_string()
        }
        Err(_) if body.is_empty() => String::new(),
        Err(_) => format!("[{} bytes, not JSON]", body.len()),
    };
    format!("{method} {uri} {status} {body}")
        .trim_end()
        .to_owned()
}

impl Shared {
    pub(crate) fn new(
        world: World,
        api_key: Option<SecretString>,
        runner: Option<UserDataRunner>,
    ) -> Self {
        Shared {
            world: Mutex::new(world),
            api_key,
            limiter: Mutex::new(ServerLimiter::default()),
            faults: Mutex::new(FaultCounters::default()),
            runner,
            base_url: OnceLock::new(),
            received: std::sync::atomic::AtomicU64::new(0),
            rate_limited: std::sync::atomic::AtomicU64::new(0),
            requests: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the world brought up to now, then carries out the effects it caused
    /// (starting and stopping user-data processes) outside the lock.
    pub(crate) fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let (result, effects, time_scale) = {
            let mut world = self.lock();
            world.advance();
            let result = f(&mut world);
            (
                result,
                std::mem::take(&mut world.effects),
                world.clock.scale(),
            )
        };
        for effect in effects {
            match (&self.runner, effect) {
                (
                    Some(runner),
                    Effect::StartUserData {
                        id,
                        script,
                        gpus,
                        mounts,
                    },
                ) => {
                    runner.start(
                        &id,
                        script.as_ref().map(lambda_cloud::Redacted::expose),
                        &gpus,
                        &mounts,
                        self.base_url.get().map_or("", String::as_str),
                        time_scale,
                    );
                }
                (Some(runner), Effect::StopUserData { id }) => runner.stop(&id),
                (None, _) => {}
            }
        }
        result
    }

    /// The configured API key, if any.
    pub(crate) fn api_key(&self) -> Option<SecretString> {
        self.api_key.clone()
    }

    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        let Some(presented) = header.and_then(presented_key) else {
            return false;
        };
        match &self.api_key {
            Some(key) => presented == key.expose_secret(),
            None => !presented.is_empty(),
        }
    }
}

/// The key in a `Bearer <key>`, `Basic base64(<key>:)` or `Basic <key>` header.
fn presented_key(header: &str) -> Option<String> {
    let (scheme, value) = header.trim().split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(value.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        return Some(match decoded {
            Some(pair) => pair.split(':').next().unwrap_or_default().to_owned(),
            None => value.to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_both_basic_forms_carry_the_key() {
        assert_eq!(presented_key("Bearer abc").as_deref(), Some("abc"));
        let encoded = base64::engine::general_purpose::STANDARD.encode("abc:");
        assert_eq!(
            presented_key(&format!("Basic {encoded}")).as_deref(),
            Some("abc")
        );
        assert_eq!(presented_key("Basic abc").as_deref(), Some("abc"));
        assert_eq!(presented_key("Token abc"), None);
    }
}
