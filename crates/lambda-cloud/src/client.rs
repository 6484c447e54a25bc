//! The client: configuration, and the one path every request takes (validate → pace → send →
//! decode → retry), instrumented with a `tracing` span per call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use url::Url;

use crate::error::{ApiError, Error, ErrorCode, ErrorEnvelope, ErrorKind, Result};
use crate::operations::Operation;
use crate::rate_limit::{Budget, Limiter, RateLimits};
use crate::retry::{RetryPolicy, parse_retry_after};
use crate::validation::Validate;

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://cloud.lambda.ai";
/// The environment variable the API key is read from when none is given.
pub const API_KEY_ENV: &str = "LAMBDA_API_KEY";
/// The environment variable the base URL is read from when none is given.
pub const API_URL_ENV: &str = "LAMBDA_API_URL";

/// A Lambda Cloud API client. Cheap to clone; clones share connections and the rate limiter.
///
/// ```no_run
/// # async fn demo() -> Result<(), lambda_cloud::Error> {
/// let client = lambda_cloud::Client::builder().build()?; // LAMBDA_API_KEY, LAMBDA_API_URL
/// for instance in client.instances().list().await? {
///     println!("{} {} {}", instance.id, instance.status, instance.instance_type.name);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    authorization: HeaderValue,
    limiter: Limiter,
    retry: RetryPolicy,
    timeout: Duration,
}

impl Client {
    /// The HTTP client, for requests outside the API (an instance's JupyterLab).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url.as_str())
            .field("api_key", &"[redacted]")
            .field("rate_limits", &self.inner.limiter)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Client`]. Every setting has a sensible default.
pub struct ClientBuilder {
    api_key: Option<SecretString>,
    base_url: Option<String>,
    user_agent: String,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    rate_limits: RateLimits,
    time_scale: f64,
    timers: bool,
}

/// The least real time a time-scaled timeout is cut to: a simulator answers at local speed,
/// but a busy test machine must not turn into a timeout.
const SCALED_TIMEOUT_FLOOR: Duration = Duration::from_secs(2);

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("base_url", &self.base_url)
            .field("user_agent", &self.user_agent)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("rate_limits", &self.rate_limits)
            .field("time_scale", &self.time_scale)
            .field("timers", &self.timers)
            .finish()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            api_key: None,
            base_url: None,
            user_agent: concat!("lambda-cloud-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            rate_limits: RateLimits::DOCUMENTED,
            time_scale: 1.0,
            timers: true,
        }
    }
}

impl ClientBuilder {
    /// The API key. Without it, `LAMBDA_API_KEY` is read when building.
    pub fn api_key(mut self, key: impl Into<SecretString>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The server, e.g. `https://cloud.lambda.ai` or a simulator's URL. Without it,
    /// `LAMBDA_API_URL` is read, else [`DEFAULT_BASE_URL`]. A trailing `/api/v1` is accepted.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// How long one attempt may take, from sending to the end of the body (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// When failed requests are sent again (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The client-side pacing (default [`RateLimits::DOCUMENTED`]).
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// Talks to a simulator whose clock runs `scale` times faster than real time: at build,
    /// the rate limits, the retry delays and the timeouts are divided by it, timeouts to no
    /// less than 2 s.
    #[cfg(feature = "simulator")]
    pub fn time_scale(mut self, scale: crate::TimeScale) -> Self {
        self.time_scale = scale.factor();
        self
    }

    /// No request or connect timeout and no idle-connection reaper: for tests on tokio's
    /// paused clock, which jumps to the next pending timer whenever the runtime idles, so that
    /// a timer of the HTTP client would fire at once.
    pub fn without_timers(mut self) -> Self {
        self.timers = false;
        self
    }

    /// Builds the client, reading the environment for what was not given.
    pub fn build(self) -> Result<Client> {
        let config = |message: String| Error::new(ErrorKind::Config(message), "");
        let api_key = match self.api_key {
            Some(key) => key,
            None => env_var(API_KEY_ENV).map(SecretString::from).ok_or_else(|| {
                config(format!(
                    "no Lambda API key: set `{API_KEY_ENV}` or pass one to `ClientBuilder::api_key` \
                     (create a key at https://cloud.lambda.ai/api-keys)"
                ))
            })?,
        };
        if api_key.expose_secret().trim().is_empty() {
            return Err(config(format!(
                "the Lambda API key is empty: set `{API_KEY_ENV}` to your key"
            )));
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", api_key.expose_secret().trim())).map_err(
                |_| {
                    config(
                        "the Lambda API key contains characters that cannot be sent in an HTTP \
                         header: copy the key again without line breaks or spaces"
                            .to_owned(),
                    )
                },
            )?;
        authorization.set_sensitive(true);

        let base_url = self
            .base_url
            .or_else(|| env_var(API_URL_ENV))
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let base_url = parse_base_url(&base_url).map_err(config)?;

        let scale = crate::rate_limit::valid_scale(self.time_scale);
        let scaled_timeout =
            |timeout: Duration| timeout.min(timeout.div_f64(scale).max(SCALED_TIMEOUT_FLOOR));
        let (timeout, connect_timeout) = (
            scaled_timeout(self.timeout),
            scaled_timeout(self.connect_timeout),
        );
        let mut http = reqwest::Client::builder().user_agent(self.user_agent);
        if self.timers {
            http = http.timeout(timeout).connect_timeout(connect_timeout);
        } else {
            http = http.pool_idle_timeout(None);
        }
        // The program's own TLS provider when it installed one; otherwise `ring` for this
        // client only, so that nothing process-wide is installed behind the program's back.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            http = http.tls_backend_preconfigured(tls_config().map_err(config)?);
        }
        let http = http
            .build()
            .map_err(|error| config(format!("could not set up HTTP: {error}")))?;

        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                authorization,
                limiter: Limiter::new(self.rate_limits.scaled(scale)),
                retry: self.retry.time_scaled(scale),
                timeout,
            }),
        })
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Accepts `https://host`, `https://host/`, `https://host/prefix` and the common mistake
/// `https://host/api/v1`; the operation paths (`/api/v1/...`) are appended to what remains.
fn parse_base_url(text: &str) -> std::result::Result<Url, String> {
    let mut url = Url::parse(text.trim()).map_err(|error| {
        format!("invalid Lambda API URL {text:?}: {error} (expected e.g. `{DEFAULT_BASE_URL}`)")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!(
            "invalid Lambda API URL {text:?}: use an http:// or https:// URL such as `{DEFAULT_BASE_URL}`"
        ));
    }
    let trimmed = url
        .path()
        .trim_end_matches('/')
        .trim_end_matches("/api/v1")
        .to_owned();
    url.set_path(&trimmed);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// TLS through `ring` and the platform's certificate roots (what reqwest sets up itself when a
/// process-wide provider is installed), HTTP/1.1 only.
fn tls_config() -> std::result::Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(rustls::ConfigBuilder::with_platform_verifier)
        .map_err(|error| format!("could not set up TLS: {error}"))?
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// The success envelope: `{"data": ...}`.
#[derive(serde::Deserialize)]
pub(crate) struct Data<T> {
    pub(crate) data: T,
}

/// `{}`, what the API answers to deletions.
#[derive(serde::Deserialize)]
pub(crate) struct Empty {}

/// One request, described before it is sent.
pub(crate) struct Call<'a> {
    op: &'static Operation,
    path_params: Vec<&'a str>,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    invalid: Option<crate::error::ValidationError>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(op: &'static Operation) -> Self {
        Call {
            op,
            path_params: Vec::new(),
            query: Vec::new(),
            body: None,
            invalid: None,
        }
    }

    /// The next `{param}` of the path template.
    pub(crate) fn path(mut self, value: &'a str) -> Self {
        self.path_params.push(value);
        self
    }

    pub(crate) fn query(
        mut self,
        name: &'static str,
        value: &(impl fmt::Display + ?Sized),
    ) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub(crate) fn query_opt(self, name: &'static str, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(value) => self.query(name, &value),
            None => self,
        }
    }

    pub(crate) fn json(mut self, body: &impl Serialize) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body = Some(bytes),
            Err(error) => {
                self.invalid = Some(crate::error::ValidationError::new(
                    "body",
                    format!("cannot be encoded as JSON: {error}"),
                ));
            }
        }
        self
    }

    /// A body whose fields the spec constrains: checked here, and nothing is sent if it fails.
    pub(crate) fn validated_json(self, body: &(impl Serialize + Validate)) -> Self {
        let mut call = self.json(body);
        if let Err(error) = body.validate() {
            call.invalid = Some(error);
        }
        call
    }
}

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from `LAMBDA_API_KEY` and `LAMBDA_API_URL` with default settings.
    pub fn from_env() -> Result<Client> {
        ClientBuilder::default().build()
    }

    /// The server this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// Sends a call whose answer is `{"data": T}` and returns `T`.
    pub(crate) async fn data<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        self.send::<Data<T>>(call)
            .await
            .map(|envelope| envelope.data)
    }

    /// Sends a call whose answer is `{"data": {}}`.
    pub(crate) async fn empty(&self, call: Call<'_>) -> Result<()> {
        self.data::<Empty>(call).await.map(|_| ())
    }

    /// Sends a call and decodes the whole answer as `T`, retrying as the policy allows.
    pub(crate) async fn send<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T> {
        let op = call.op;
        if let Some(invalid) = call.invalid {
            return Err(Error::new(ErrorKind::Validation(invalid), op.id));
        }
        let url = self.url(op, &call.path_params);
        let span = tracing::debug_span!(
            "lambda_cloud.request",
            operation = op.id,
            method = op.method.as_str(),
            path = op.path,
            status = tracing::field::Empty,
            retries = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = tokio::time::Instant::now();
        let result = self
            .send_with_retries(op, &url, &call.query, call.body.as_deref())
            .instrument(span.clone())
            .await;
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.record("duration_ms", elapsed);
        match result {
            Ok((value, retries)) => {
                span.record("status", "ok");
                span.record("retries", retries);
                Ok(value)
            }
            Err(error) => {
                span.record("retries", error.retries());
                let status = error
                    .status()
                    .map_or_else(|| "error".to_owned(), |s| s.to_string());
                span.record("status", status);
                Err(error)
            }
        }
    }

    async fn send_with_retries<T: DeserializeOwned>(
        &self,
        op: &'static Operation,
        url: &Url,
        query: &[(&'static str, String)],
        body: Option<&[u8]>,
    ) -> Result<(T, u32)> {
        let inner = &self.inner;
        let budget = if op.is_launch() {
            Budget::Launch
        } else {
            Budget::Request
        };
        let started = tokio::time::Instant::now();
        let mut delays = inner.retry.delays();
        let mut retries = 0;
        loop {
            inner.limiter.acquire(budget).await;
            let error = match self.attempt::<T>(op, url, query, body).await {
                Ok(value) => return Ok((value, retries)),
                Err(error) => error,
            };
            let may_retry = error.is_retryable() && (!op.creates || error.is_safe_to_resend());
            let retry_after = error.retry_after();
            let Some(delay) = delays.next().filter(|_| may_retry) else {
                return Err(error.with_retries(retries));
            };
            let wait = retry_after.map_or(delay, |server| server.max(delay));
            if started.elapsed() + wait > inner.retry.max_elapsed {
                return Err(error.with_retries(retries));
            }
            retries += 1;
            tracing::warn!(
                operation = op.id,
                retry = retries,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "retrying Lambda Cloud request"
            );
            if let Some(server_wait) = retry_after {
                inner.limiter.back_off(server_wait);
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        op: &'static Operation,
        url: &Url,
        query: &[(&'static str, String)],
        body: Option<&[u8]>,
    ) -> Result<T> {
        let inner = &self.inner;
        let transport = |error: reqwest::Error| {
            let kind = if error.is_timeout() {
                ErrorKind::Timeout {
                    after: inner.timeout,
                }
            } else {
                ErrorKind::Transport(crate::error::TransportError(error))
            };
            Error::new(kind, op.id)
        };
        let mut request = inner
            .http
            .request(op.method.to_reqwest(), url.clone())
            .header(AUTHORIZATION, inner.authorization.clone())
            .header(ACCEPT, "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, jiff::Timestamp::now()));
        let bytes = response.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .map_err(|source| Error::new(ErrorKind::Decode { status, source }, op.id));
        }
        Err(Error::new(
            ErrorKind::Api(api_error(status, &bytes, retry_after)),
            op.id,
        ))
    }

    fn url(&self, op: &Operation, params: &[&str]) -> Url {
        let mut url = self.inner.base_url.clone();
        let mut params = params.iter();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            for segment in op.path.trim_start_matches('/').split('/') {
                if segment.starts_with('{') {
                    // Pushed segments are percent-encoded, so an id can never alter the path.
                    segments.push(params.next().copied().unwrap_or_default());
                } else {
                    segments.push(segment);
                }
            }
        }
        url
    }
}

/// Decodes an error answer; one that is not in the API's shape (a proxy's HTML page, say)
/// still becomes an [`ApiError`] with the status and a code naming it.
fn api_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> ApiError {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => ApiError {
            status,
            code: envelope.error.code,
            message: envelope.error.message,
            suggestion: envelope.error.suggestion,
            retry_after,
        },
        Err(_) => ApiError {
            status,
            code: ErrorCode::Unknown(format!("http/{status}")),
            message: format!("the server answered HTTP {status} without a Lambda error body"),
            suggestion: None,
            retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms_are_normalized() {
        for (input, expected) in [
            ("https://cloud.lambda.ai", "https://cloud.lambda.ai/"),
            ("https://cloud.lambda.ai/", "https://cloud.lambda.ai/"),
            ("https://cloud.lambda.ai/api/v1", "https://cloud.lambda.ai/"),
            (
                "https://cloud.lambda.ai/api/v1/",
                "https://cloud.lambda.ai/",
            ),
            (
                "http://127.0.0.1:8787/prefix/",
                "http://127.0.0.1:8787/prefix",
            ),
        ] {
            assert_eq!(parse_base_url(input).unwrap().as_str(), expected, "{input}");
        }
        assert!(parse_base_url("cloud.lambda.ai").is_err());
        assert!(parse_base_url("ftp://cloud.lambda.ai").is_err());
    }

    fn client(base: &str) -> Client {
        Client::builder()
            .api_key("secret-key-for-tests")
            .base_url(base)
            .build()
            .unwrap()
    }

    #[test]
    fn path_parameters_are_encoded_as_single_segments() {
        let client = client("http://127.0.0.1:1/prefix");
        let url = client.url(&crate::operations::INSTANCE_GET, &["../ssh-keys"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/api/v1/instances/..%2Fssh-keys"
        );
        let url = client.url(&crate::operations::ATTACHMENT_DELETE, &["t 1", "a1"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/api/v1/tickets/t%201/attachments/a1"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let client = client("http://127.0.0.1:1");
        let shown = format!("{client:?}");
        assert!(!shown.contains("secret-key-for-tests"), "{shown}");
        let builder = Client::builder().api_key("secret-key-for-tests");
        assert!(!format!("{builder:?}").contains("secret-key-for-tests"));
    }

    #[test]
    fn unusable_keys_are_refused_without_echoing_them() {
        let error = Client::builder()
            .api_key("bad\nkey-secret")
            .base_url("http://127.0.0.1:1")
            .build()
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("cannot be sent in an HTTP header"), "{text}");
        assert!(!text.contains("key-secret"));
        let error = Client::builder()
            .api_key("  ")
            .base_url("http://127.0.0.1:1")
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("empty"));
    }

    #[test]
    fn non_api_error_bodies_still_become_api_errors() {
        let error = api_error(502, b"<html>Bad Gateway</html>", None);
        assert_eq!(error.status, 502);
        assert_eq!(error.code, ErrorCode::Unknown("http/502".into()));
        assert!(error.is_retryable());
    }
}
