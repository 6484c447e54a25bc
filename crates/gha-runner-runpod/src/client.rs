//! A typed client for the parts of RunPod's REST API v2 that run pods: create, get, list,
//! rename and delete pods, and read the GPU and data-center catalog.
//!
//! Pacing follows RunPod's description of its limits (`TooManyRequestsError`, `RateLimit`,
//! `RateLimit-Policy` in its OpenAPI document): quotas are per user and per window (its
//! example: 60 a minute, 3,000 an hour, 50,000 a day), every answer says what is left in each
//! window, and a 429 carries `Retry-After` in seconds. So calls are spaced one second apart (60
//! a minute), a window reported empty holds every call until it resets, and a 429 is waited out
//! and retried. RunPod's own failures (5xx) and lost connections are retried for reads and
//! deletes, never for a create, whose effect is then unknown: the caller looks for the pod.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::error::Error;
use crate::models::{
    CreatePodRequest, DataCenter, DataCenterList, GpuType, GpuTypeList, Pod, PodList, Problem,
};

/// RunPod's REST API, as its OpenAPI document's `servers` names it.
pub const DEFAULT_BASE_URL: &str = "https://api.runpod.io";

/// How often a 429 or a transient failure is retried before it is returned.
const RETRIES: u32 = 4;

/// A RunPod API client. Cheap to clone; clones share one pacer.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    key: SecretString,
    pacer: Mutex<Pacer>,
    time_scale: f64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Sets up a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    base_url: String,
    key: Option<SecretString>,
    time_scale: f64,
}

impl Client {
    /// A builder with RunPod's URL and no key.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            base_url: DEFAULT_BASE_URL.to_owned(),
            key: None,
            time_scale: 1.0,
        }
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str().trim_end_matches('/')
    }

    /// Creates a pod (`POST /v2/pods`). Not retried: after a transport failure or a 5xx the
    /// pod may exist, and only a listing can say.
    pub async fn create_pod(&self, request: &CreatePodRequest) -> Result<Pod, Error> {
        let body = serde_json::to_value(request).map_err(|e| Error::Decode {
            operation: "POST /v2/pods".into(),
            message: e.to_string(),
        })?;
        self.call(Method::POST, "/v2/pods", &[], Some(body), false)
            .await
    }

    /// One pod (`GET /v2/pods/{id}`).
    pub async fn pod(&self, id: &str) -> Result<Pod, Error> {
        self.call(Method::GET, &pod_path(id), &[], None, true).await
    }

    /// Every pod of the account (`GET /v2/pods`).
    pub async fn pods(&self) -> Result<Vec<Pod>, Error> {
        let list: PodList = self.call(Method::GET, "/v2/pods", &[], None, true).await?;
        Ok(list.pods)
    }

    /// Renames a pod (`PATCH /v2/pods/{id}` with only `name`: a change RunPod applies without
    /// restarting the pod).
    pub async fn rename_pod(&self, id: &str, name: &str) -> Result<Pod, Error> {
        let body = serde_json::json!({ "name": name });
        self.call(Method::PATCH, &pod_path(id), &[], Some(body), true)
            .await
    }

    /// Deletes a pod for good (`DELETE /v2/pods/{id}`); billing stops.
    pub async fn delete_pod(&self, id: &str) -> Result<(), Error> {
        self.send(Method::DELETE, &pod_path(id), &[], None, true)
            .await
            .map(|_| ())
    }

    /// The GPU types pods can have, with stock per data center on `cloud`
    /// (`GET /v2/catalog/gpus?include=AVAILABILITY&product=POD&cloud=…`).
    pub async fn gpu_types(&self, cloud: crate::Cloud) -> Result<Vec<GpuType>, Error> {
        let query = [
            ("include", "AVAILABILITY"),
            ("product", "POD"),
            ("cloud", cloud.as_str()),
        ];
        let list: GpuTypeList = self
            .call(Method::GET, "/v2/catalog/gpus", &query, None, true)
            .await?;
        Ok(list.gpus)
    }

    /// Every data center (`GET /v2/catalog/datacenters`).
    pub async fn data_centers(&self) -> Result<Vec<DataCenter>, Error> {
        let list: DataCenterList = self
            .call(Method::GET, "/v2/catalog/datacenters", &[], None, true)
            .await?;
        Ok(list.data_centers)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        retry: bool,
    ) -> Result<T, Error> {
        let operation = format!("{method} {}", template(path));
        let bytes = self.send(method, path, query, body, retry).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            operation,
            message: e.to_string(),
        })
    }

    /// Sends one request, paced, retrying what may succeed later (a 429 always; transient
    /// failures when `retry`).
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
        retry: bool,
    ) -> Result<Vec<u8>, Error> {
        let operation = format!("{method} {}", template(path));
        let mut url = self.inner.base.clone();
        url.set_path(&format!("{}{path}", url.path().trim_end_matches('/')));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.pace().await;
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.inner.key.expose_secret());
            if let Some(body) = &body {
                request = request.json(body);
            }
            let result = request.send().await;
            let error = match result {
                Ok(response) => {
                    let status = response.status();
                    self.note_quota(response.headers()).await;
                    let retry_after = seconds_header(response.headers(), "retry-after");
                    let bytes = response.bytes().await.map_err(|e| Error::Transport {
                        operation: operation.clone(),
                        message: e.to_string(),
                    });
                    match bytes {
                        Ok(bytes) if status.is_success() => return Ok(bytes.to_vec()),
                        Ok(bytes) => problem(&operation, status, &bytes, retry_after),
                        Err(error) => error,
                    }
                }
                Err(error) => Error::Transport {
                    operation: operation.clone(),
                    message: without_url(&error),
                },
            };
            let rate_limited = error.status() == Some(429);
            if attempt > RETRIES || !(rate_limited || retry && error.is_transient()) {
                return Err(error);
            }
            let wait = match &error {
                Error::Api {
                    retry_after: Some(wait),
                    ..
                } => *wait,
                _ => Duration::from_secs(1 << attempt.min(5)),
            };
            tracing::warn!(%error, attempt, "RunPod call failed; retrying");
            self.hold(wait).await;
        }
    }

    /// Waits for this client's turn: one call a second, and none while a window is empty.
    async fn pace(&self) {
        let wait = {
            let mut pacer = self.inner.pacer.lock().await;
            let now = Instant::now();
            let at = pacer.next.max(now);
            pacer.next = at + Duration::from_secs(1).div_f64(self.inner.time_scale);
            at - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every call for `seconds` of the API's time.
    async fn hold(&self, seconds: Duration) {
        let wait = seconds.div_f64(self.inner.time_scale);
        {
            let mut pacer = self.inner.pacer.lock().await;
            pacer.next = pacer.next.max(Instant::now() + wait);
        }
        self.pace().await;
    }

    /// Reads the `RateLimit` header: a window with nothing left holds calls until it resets.
    async fn note_quota(&self, headers: &reqwest::header::HeaderMap) {
        let Some(value) = headers.get("ratelimit").and_then(|v| v.to_str().ok()) else {
            return;
        };
        if let Some(reset) = exhausted_window_reset(value) {
            let wait = reset.div_f64(self.inner.time_scale);
            let mut pacer = self.inner.pacer.lock().await;
            pacer.next = pacer.next.max(Instant::now() + wait);
        }
    }
}

/// When the next call may go.
struct Pacer {
    next: Instant,
}

impl ClientBuilder {
    /// The API key (a RunPod key, or the pod-scoped `RUNPOD_API_KEY` inside a pod).
    pub fn api_key(mut self, key: impl Into<SecretString>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Another base URL (a fake's, in tests).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// For a fake whose clock runs `scale` times faster: pacing and waits shrink by it.
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client, Error> {
        let key = self.key.ok_or_else(|| {
            Error::Config(
                "no RunPod API key: set RUNPOD_API_KEY (a key from RunPod's console, Settings → API Keys)"
                    .into(),
            )
        })?;
        if key.expose_secret().trim().is_empty() {
            return Err(Error::Config("the RunPod API key is empty".into()));
        }
        let base = Url::parse(self.base_url.trim()).map_err(|e| {
            Error::Config(format!(
                "invalid RunPod API URL {:?}: {e} (expected e.g. `{DEFAULT_BASE_URL}`)",
                self.base_url
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "invalid RunPod API URL {:?}: use an http:// or https:// URL such as `{DEFAULT_BASE_URL}`",
                self.base_url
            )));
        }
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("gha-runner-runpod/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(15));
        // The program's own TLS provider when it installed one; otherwise `ring` for this
        // client only, so that nothing process-wide is installed behind the program's back.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            http = http.tls_backend_preconfigured(tls_config()?);
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("could not set up HTTP: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                key,
                pacer: Mutex::new(Pacer {
                    next: Instant::now(),
                }),
                time_scale: self.time_scale,
            }),
        })
    }
}

/// TLS through `ring` and the platform's certificate roots, HTTP/1.1 only.
fn tls_config() -> Result<rustls::ClientConfig, Error> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(rustls::ConfigBuilder::with_platform_verifier)
        .map_err(|e| Error::Config(format!("could not set up TLS: {e}")))?
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

fn pod_path(id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/v2/pods/{id}")
}

/// A path as its operation is named, ids elided: `/v2/pods/{id}`.
fn template(path: &str) -> &str {
    if path.starts_with("/v2/pods/") {
        "/v2/pods/{id}"
    } else {
        path
    }
}

/// A reqwest error without its URL (which names the pod; never a key, which is a header).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "the API");
    }
    if error.is_timeout() {
        format!("timed out ({text})")
    } else {
        text
    }
}

fn seconds_header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<Duration> {
    let text = headers.get(name)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn problem(
    operation: &str,
    status: StatusCode,
    bytes: &[u8],
    retry_after: Option<Duration>,
) -> Error {
    let problem: Problem = serde_json::from_slice(bytes).unwrap_or_default();
    Error::Api {
        operation: operation.to_owned(),
        status: status.as_u16(),
        title: if problem.title.is_empty() {
            status.canonical_reason().unwrap_or("").to_owned()
        } else {
            problem.title
        },
        detail: if problem.detail.is_empty() {
            String::from_utf8_lossy(bytes).chars().take(200).collect()
        } else {
            problem.detail
        },
        errors: problem.errors,
        retry_after,
    }
}

/// From a `RateLimit` header (`"minute";r=0;t=12, "hour";r=2800;t=1812`), how long until the
/// longest-resetting window with nothing left resets; `None` when every window has some left.
fn exhausted_window_reset(header: &str) -> Option<Duration> {
    header
        .split(',')
        .filter_map(|member| {
            let mut remaining = None;
            let mut reset = None;
            for parameter in member.split(';').skip(1) {
                match parameter.trim().split_once('=') {
                    Some(("r", value)) => remaining = value.trim().parse::<u64>().ok(),
                    Some(("t", value)) => reset = value.trim().parse::<u64>().ok(),
                    _ => {}
                }
            }
            (remaining == Some(0)).then_some(reset?)
        })
        .max()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_window_holds_calls_until_it_resets() {
        assert_eq!(
            exhausted_window_reset("\"minute\";r=0;t=12, \"hour\";r=2800;t=1812"),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            exhausted_window_reset("\"minute\";r=3;t=12, \"hour\";r=0;t=1812"),
            Some(Duration::from_secs(1812))
        );
        assert_eq!(
            exhausted_window_reset("\"minute\";r=59;t=60, \"hour\";r=2999;t=3600"),
            None
        );
        assert_eq!(exhausted_window_reset("garbage"), None);
    }

    #[test]
    fn the_key_is_required_and_never_shown() {
        let error = Client::builder().build().unwrap_err();
        assert!(error.to_string().contains("RUNPOD_API_KEY"), "{error}");
        let client = Client::builder().api_key("rpa_SECRET").build().unwrap();
        assert!(!format!("{client:?}").contains("rpa_SECRET"));
        let error = Client::builder()
            .api_key("k")
            .base_url("ftp://x")
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("https://"), "{error}");
    }

    #[test]
    fn pod_ids_cannot_escape_their_path() {
        assert_eq!(pod_path("abc123"), "/v2/pods/abc123");
        assert_eq!(pod_path("../catalog"), "/v2/pods/..%2Fcatalog");
    }
}
