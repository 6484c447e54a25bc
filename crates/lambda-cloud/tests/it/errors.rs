//! Every `ApiError*` schema of the spec maps to its `ErrorCode`, and every other failure mode
//! (validation, decoding, transport, timeout, non-API bodies) becomes the right kind.

use std::time::Duration;

use lambda_cloud::{ErrorCode, ErrorKind, InstanceId, LaunchInstanceRequest};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{client_for, resolve, spec, spec_operations};

/// What each error schema of the spec must decode to.
const EXPECTED: &[(&str, ErrorCode)] = &[
    ("ApiErrorAccountInactive", ErrorCode::AccountInactive),
    ("ApiErrorConflict", ErrorCode::Conflict),
    ("ApiErrorDuplicate", ErrorCode::Duplicate),
    (
        "ApiErrorFileSystemInWrongRegion",
        ErrorCode::FileSystemInWrongRegion,
    ),
    ("ApiErrorFilesystemInUse", ErrorCode::FilesystemInUse),
    ("ApiErrorFilesystemNotFound", ErrorCode::ObjectDoesNotExist),
    (
        "ApiErrorFirewallRulesetInUse",
        ErrorCode::FirewallRulesetInUse,
    ),
    (
        "ApiErrorFirewallRulesetNotFound",
        ErrorCode::ObjectDoesNotExist,
    ),
    ("ApiErrorForbidden", ErrorCode::Forbidden),
    ("ApiErrorInstanceNotFound", ErrorCode::ObjectDoesNotExist),
    (
        "ApiErrorInsufficientCapacity",
        ErrorCode::InsufficientCapacity,
    ),
    ("ApiErrorInternal", ErrorCode::InternalError),
    (
        "ApiErrorInvalidBillingAddress",
        ErrorCode::InvalidBillingAddress,
    ),
    ("ApiErrorInvalidParameters", ErrorCode::InvalidParameters),
    (
        "ApiErrorLaunchResourceNotFound",
        ErrorCode::ObjectDoesNotExist,
    ),
    ("ApiErrorNotFound", ErrorCode::NotFound),
    ("ApiErrorQuotaExceeded", ErrorCode::QuotaExceeded),
    ("ApiErrorResourceNotFound", ErrorCode::ObjectDoesNotExist),
    ("ApiErrorTicketNotFound", ErrorCode::NotFound),
    ("ApiErrorUnauthorized", ErrorCode::InvalidApiKey),
];

/// Every HTTP status at which the spec answers with the schema `name`.
fn statuses_using(name: &str) -> Vec<u16> {
    let reference = format!("#/components/schemas/{name}");
    let mut statuses = Vec::new();
    for (_, _, op) in spec_operations() {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let text = response["content"]["application/json"]["schema"]["properties"]["error"]
                .to_string();
            if text.contains(&format!("\"{reference}\"")) {
                statuses.push(status.parse().expect("numeric status"));
            }
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

#[test]
fn the_table_covers_every_error_schema_of_the_spec() {
    let mut schemas: Vec<&str> = spec()["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
        .map(String::as_str)
        .filter(|name| name.starts_with("ApiError"))
        .collect();
    let mut covered: Vec<&str> = EXPECTED.iter().map(|(name, _)| *name).collect();
    schemas.sort_unstable();
    covered.sort_unstable();
    assert_eq!(schemas, covered);
}

#[tokio::test]
async fn every_error_schema_decodes_to_its_code_at_every_status_the_spec_uses() {
    for (name, expected) in EXPECTED {
        let schema = resolve(&spec()["components"]["schemas"][name]);
        let code = schema["properties"]["code"]["const"]
            .as_str()
            .expect("const code");
        let statuses = statuses_using(name);
        assert!(!statuses.is_empty(), "{name} is used by no response");
        for status in statuses {
            let server = MockServer::start().await;
            let mut body = json!({"code": code, "message": format!("{name} happened")});
            if let Some(default) = schema["properties"]["suggestion"]["default"].as_str() {
                body["suggestion"] = Value::from(default);
            }
            Mock::given(any())
                .respond_with(ResponseTemplate::new(status).set_body_json(json!({"error": body})))
                .mount(&server)
                .await;
            let error = client_for(&server)
                .instances()
                .get(&InstanceId::from("i1"))
                .await
                .unwrap_err();
            assert_eq!(error.code(), Some(expected), "{name} at {status}");
            assert_eq!(error.status(), Some(status));
            assert_eq!(error.code().unwrap().as_str(), code);
            let api = error.api().unwrap();
            assert_eq!(api.message, format!("{name} happened"));
            assert_eq!(
                api.suggestion.as_deref(),
                schema["properties"]["suggestion"]["default"].as_str()
            );
            let retryable = *expected == ErrorCode::InternalError || status >= 500;
            assert_eq!(error.is_retryable(), retryable, "{name} at {status}");
        }
    }
}

async fn answering(status: u16, body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn provider_errors_are_typed_and_retryable() {
    let server = answering(
        503,
        json!({"error": {"code": "provider/internal-unavailable", "message": "Provider unavailable", "suggestion": "Try again shortly"}}),
    )
    .await;
    let error = client_for(&server).regions().list().await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(&ErrorCode::Provider("internal-unavailable".into()))
    );
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        "`listRegions` failed: HTTP 503 `provider/internal-unavailable`: Provider unavailable (Try again shortly)"
    );
}

#[tokio::test]
async fn unknown_codes_are_kept_verbatim() {
    let server = answering(
        400,
        json!({"error": {"code": "global/new-thing", "message": "new"}}),
    )
    .await;
    let error = client_for(&server).regions().list().await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(&ErrorCode::Unknown("global/new-thing".into()))
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn non_api_error_bodies_keep_the_status() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .mount(&server)
        .await;
    let error = client_for(&server).regions().list().await.unwrap_err();
    assert_eq!(error.status(), Some(502));
    assert!(error.is_retryable());
    assert!(error.to_string().contains("without a Lambda error body"));
}

#[tokio::test]
async fn invalid_requests_are_refused_before_sending() {
    let server = MockServer::start().await;
    let client = client_for(&server);
    let mut request = LaunchInstanceRequest::new("gpu_1x_a10", "us-east-1", "a");
    request.ssh_key_names.push("b".into());
    let error = client
        .instances()
        .launch_request(&request)
        .await
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Validation(v) if v.field == "ssh_key_names"));
    assert_eq!(
        error.to_string(),
        "`launchInstance` failed: invalid `ssh_key_names`: exactly one SSH key must be named (got 2); nothing was sent"
    );
    let error = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "a")
        .hostname("Not_Valid")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Validation(v) if v.field == "hostname"));
    let error = client
        .instances()
        .terminate(Vec::<InstanceId>::new())
        .await
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Validation(v) if v.field == "instance_ids"));
    assert!(!error.is_retryable());
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        0,
        "nothing was sent"
    );
}

#[tokio::test]
async fn answers_that_break_the_spec_are_decode_errors() {
    let server = answering(200, json!({"data": [{"name": 3}]})).await;
    let error = client_for(&server).regions().list().await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Decode { status: 200, .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn unreachable_servers_are_transport_errors() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = lambda_cloud::Client::builder()
        .api_key(crate::support::TEST_KEY)
        .base_url(format!("http://127.0.0.1:{port}"))
        .rate_limits(lambda_cloud::RateLimits::UNLIMITED)
        .retry_policy(lambda_cloud::RetryPolicy::none())
        .build()
        .unwrap();
    let error = client.regions().list().await.unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn slow_servers_time_out() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let client = lambda_cloud::Client::builder()
        .api_key(crate::support::TEST_KEY)
        .base_url(server.uri())
        .rate_limits(lambda_cloud::RateLimits::UNLIMITED)
        .retry_policy(lambda_cloud::RetryPolicy::none())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = client.regions().list().await.unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::Timeout { after } if *after == Duration::from_millis(200)),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn missing_configuration_names_the_fix() {
    let error = lambda_cloud::Client::builder()
        .api_key("k")
        .base_url("cloud.lambda.ai")
        .build()
        .unwrap_err();
    assert!(
        error.to_string().contains("https://cloud.lambda.ai"),
        "{error}"
    );
}
