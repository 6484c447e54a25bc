//! Shared helpers: the spec, a raw HTTP driver that checks every answer against the spec's
//! schemas, and clients pointed at a simulator.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use lambda_cloud::{Client, RetryPolicy};
use lambda_cloud_sim::Sim;
use serde_json::Value;

pub(crate) fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        serde_json::from_str(include_str!(
            "../../../lambda-cloud/spec/lambda-cloud-openapi.json"
        ))
        .unwrap()
    })
}

/// Validates answers against the response schemas the spec declares, with a real JSON Schema
/// validator, and remembers which (operation, status) pairs were seen.
#[derive(Default)]
pub(crate) struct SchemaChecker {
    validators: HashMap<String, jsonschema::Validator>,
    pub(crate) covered: BTreeSet<(&'static str, u16)>,
}

impl SchemaChecker {
    pub(crate) fn check(&mut self, method: &str, path: &str, status: u16, body: &Value) {
        let errors = self.errors(method, path, status, body);
        let op = lambda_cloud::operations::find(method, path).unwrap();
        assert!(
            errors.is_empty(),
            "{} answered {status} with a body the spec does not allow:\n{errors:#?}\n{body:#}",
            op.id
        );
        self.covered.insert((op.id, status));
    }

    /// What is wrong with `body` as the answer `status` to `method path`.
    pub(crate) fn errors(
        &mut self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Vec<String> {
        let op = lambda_cloud::operations::find(method, path)
            .unwrap_or_else(|| panic!("{method} {path} is no API operation"));
        let pointer = format!(
            "/paths/{}/{}/responses/{status}/content/application~1json/schema",
            op.path.replace('~', "~0").replace('/', "~1"),
            method.to_lowercase()
        );
        assert!(
            spec().pointer(&pointer).is_some(),
            "the simulator answered {status} to {} ({method} {path}), a status the spec does not declare for it:\n{body:#}",
            op.id
        );
        let validator = self.validators.entry(pointer.clone()).or_insert_with(|| {
            let mut root = spec().clone();
            let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
            root["$ref"] = Value::from(format!("#{fragment}"));
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&root)
                .unwrap_or_else(|e| panic!("cannot compile the schema at {pointer}: {e}"))
        });
        validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }
}

/// Raw HTTP against a simulator, every API answer checked by a [`SchemaChecker`].
pub(crate) struct Raw {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    pub(crate) checker: SchemaChecker,
}

impl Raw {
    pub(crate) fn new(sim: &Sim, key: &str) -> Raw {
        // A raw reqwest client of the test's own, on the tree's one TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Raw {
            http: reqwest::Client::new(),
            base: sim.base_url().to_owned(),
            key: Some(key.to_owned()),
            checker: SchemaChecker::default(),
        }
    }

    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        authorized: bool,
    ) -> (u16, Value) {
        let method_value: reqwest::Method = method.parse().unwrap();
        let mut request = self
            .http
            .request(method_value, format!("{}{path}", self.base));
        if authorized && let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let bare_path = path.split('?').next().unwrap();
        self.checker.check(method, bare_path, status, &body);
        (status, body)
    }

    /// Sends with the key and expects `status`; returns the body.
    pub(crate) async fn expect(
        &mut self,
        status: u16,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, answer) = self.send(method, path, body, true).await;
        assert_eq!(got, status, "{method} {path} answered:\n{answer:#}");
        answer
    }
}

/// A client of `sim`, paced to its clock, with quick retries.
pub(crate) fn client(sim: &Sim, key: &str) -> Client {
    Client::builder()
        .base_url(sim.base_url())
        .api_key(key.to_owned())
        .rate_limits(sim.client_rate_limits())
        .retry_policy(RetryPolicy {
            max_retries: 8,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_elapsed: Duration::from_secs(30),
            jitter: true,
        })
        .build()
        .unwrap()
}

/// Polls until `check` holds, for at most `timeout` of real time.
pub(crate) async fn eventually<F, Fut>(timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
