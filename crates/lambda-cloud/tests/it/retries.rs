//! Retries and pacing: what is retried, how often, how long; what is never re-sent; and the
//! launch limit measured on tokio's paused clock.

use std::time::Duration;

use lambda_cloud::{Client, ErrorCode, InstanceId, RateLimits, RetryPolicy};
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::TEST_KEY;

fn fast_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_elapsed: Duration::from_secs(10),
        jitter: false,
    }
}

fn client(server: &MockServer, policy: RetryPolicy) -> Client {
    Client::builder()
        .api_key(TEST_KEY)
        .base_url(server.uri())
        .rate_limits(RateLimits::UNLIMITED)
        .retry_policy(policy)
        .build()
        .unwrap()
}

fn error_body(code: &str) -> serde_json::Value {
    json!({"error": {"code": code, "message": "m"}})
}

fn regions_ok() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"data": [{"name": "us-east-1", "description": "Virginia, USA"}]}))
}

fn launched() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": {"instance_ids": ["i1"]}}))
}

/// A server answering `route` with `first` for the first `times` requests, then with `then`.
async fn answering(
    route: &str,
    first: ResponseTemplate,
    times: u64,
    then: ResponseTemplate,
) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(route))
        .respond_with(first)
        .up_to_n_times(times)
        .mount(&server)
        .await;
    Mock::given(path(route))
        .respond_with(then)
        .mount(&server)
        .await;
    server
}

/// A server answering `route` with `template`, always.
async fn always(route: &str, template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path(route))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

async fn launch(server: &MockServer, policy: RetryPolicy) -> lambda_cloud::Result<Vec<InstanceId>> {
    client(server, policy)
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "k")
        .send()
        .await
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_429_is_retried_then_succeeds() {
    let rate_limited = ResponseTemplate::new(429).set_body_json(error_body("global/rate-limited"));
    let server = answering("/api/v1/regions", rate_limited, 1, regions_ok()).await;
    let regions = client(&server, fast_retries(3))
        .regions()
        .list()
        .await
        .unwrap();
    assert_eq!(regions.len(), 1);
    assert_eq!(requests(&server).await, 2);
}

#[tokio::test]
async fn server_errors_are_retried_until_the_retries_run_out() {
    let server = always(
        "/api/v1/regions",
        ResponseTemplate::new(503).set_body_json(error_body("global/internal-error")),
    )
    .await;
    let error = client(&server, fast_retries(3))
        .regions()
        .list()
        .await
        .unwrap_err();
    assert_eq!(error.retries(), 3);
    assert_eq!(requests(&server).await, 4, "one attempt and three retries");
    assert!(
        error
            .to_string()
            .starts_with("`listRegions` failed after 3 retries: HTTP 503")
    );
}

#[tokio::test]
async fn insufficient_capacity_is_returned_at_once() {
    let server = always(
        "/api/v1/instance-operations/launch",
        ResponseTemplate::new(400).set_body_json(error_body(
            "instance-operations/launch/insufficient-capacity",
        )),
    )
    .await;
    let error = launch(&server, fast_retries(5)).await.unwrap_err();
    assert!(error.is_insufficient_capacity());
    assert_eq!(error.retries(), 0);
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn a_launch_is_never_resent_after_an_ambiguous_failure() {
    // A 500 may have launched the machine; sending again could launch a second one.
    let server = always(
        "/api/v1/instance-operations/launch",
        ResponseTemplate::new(500).set_body_json(error_body("global/internal-error")),
    )
    .await;
    let error = launch(&server, fast_retries(5)).await.unwrap_err();
    assert!(error.is_retryable(), "retryable in general…");
    assert_eq!(requests(&server).await, 1, "…but a launch is not re-sent");
}

#[tokio::test]
async fn a_launch_is_resent_when_the_failure_proves_nothing_was_launched() {
    for (status, code) in [
        (429, "global/rate-limited"),
        (503, "provider/internal-unavailable"),
    ] {
        let refused = ResponseTemplate::new(status).set_body_json(error_body(code));
        let server = answering("/api/v1/instance-operations/launch", refused, 1, launched()).await;
        let ids = client(&server, fast_retries(2))
            .instances()
            .launch("gpu_1x_a10", "us-east-1", "k")
            .send()
            .await
            .unwrap();
        assert_eq!(ids, [InstanceId::from("i1")], "{code}");
        assert_eq!(requests(&server).await, 2, "{code}");
    }
}

#[tokio::test]
async fn terminate_is_retried_on_server_errors() {
    let terminated =
        ResponseTemplate::new(200).set_body_json(json!({"data": {"terminated_instances": []}}));
    let route = "/api/v1/instance-operations/terminate";
    let server = answering(route, ResponseTemplate::new(502), 2, terminated).await;
    client(&server, fast_retries(3))
        .instances()
        .terminate(["i1"])
        .await
        .unwrap();
    assert_eq!(requests(&server).await, 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let wait_a_second = ResponseTemplate::new(429)
        .insert_header("retry-after", "1")
        .set_body_json(error_body("global/rate-limited"));
    let server = answering("/api/v1/regions", wait_a_second, 1, regions_ok()).await;
    let started = std::time::Instant::now();
    client(&server, fast_retries(3))
        .regions()
        .list()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}, less than the server asked",
        started.elapsed()
    );
}

#[tokio::test]
async fn no_retry_starts_past_the_total_deadline() {
    let server = always(
        "/api/v1/regions",
        ResponseTemplate::new(429)
            .insert_header("retry-after", "60")
            .set_body_json(error_body("global/rate-limited")),
    )
    .await;
    let policy = RetryPolicy {
        max_elapsed: Duration::from_secs(5),
        ..fast_retries(5)
    };
    let error = client(&server, policy).regions().list().await.unwrap_err();
    assert_eq!(
        error.retries(),
        0,
        "a 60 s wait does not fit a 5 s deadline"
    );
    assert_eq!(
        error.api().unwrap().retry_after,
        Some(Duration::from_secs(60))
    );
    assert_eq!(requests(&server).await, 1);
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    for (status, code) in [
        (400, ErrorCode::InvalidParameters),
        (401, ErrorCode::InvalidApiKey),
        (404, ErrorCode::ObjectDoesNotExist),
    ] {
        let server = MockServer::start().await;
        Mock::given(path("/api/v1/regions"))
            .respond_with(ResponseTemplate::new(status).set_body_json(error_body(&code.as_str())))
            .mount(&server)
            .await;
        let error = client(&server, fast_retries(3))
            .regions()
            .list()
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(&code));
        assert_eq!(requests(&server).await, 1, "{code}");
    }
}

/// The paced client on tokio's paused clock: the limiter's sleeps take no real time, and the
/// clock shows exactly how long the client made each launch wait. The paused clock jumps to
/// the next pending timer whenever the runtime idles, so the HTTP client must bring no timers
/// of its own (timeouts, idle-pool reaper) or a pending socket would "time out" instantly.
fn paced_client(server: &MockServer) -> Client {
    Client::builder()
        .without_timers()
        .api_key(TEST_KEY)
        .base_url(server.uri())
        .rate_limits(RateLimits::DOCUMENTED)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn launches_are_paced_twelve_seconds_apart() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/instance-operations/launch"))
        .respond_with(launched())
        .mount(&server)
        .await;
    let client = paced_client(&server);
    let start = Instant::now();
    let mut finished = Vec::new();
    for _ in 0..3 {
        client
            .instances()
            .launch("gpu_1x_a10", "us-east-1", "k")
            .send()
            .await
            .unwrap();
        finished.push(start.elapsed());
    }
    println!("launches finished at {finished:?} on the paused clock");
    assert_eq!(
        finished,
        [0, 12, 24].map(Duration::from_secs).to_vec(),
        "the first launch goes at once, each next one exactly 12 s later"
    );
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_launch_budget() {
    let server = always("/api/v1/instance-operations/launch", launched()).await;
    let client = paced_client(&server);
    let start = Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .instances()
                    .launch("gpu_1x_a10", "us-east-1", "k")
                    .send()
                    .await
                    .unwrap();
                start.elapsed()
            })
        })
        .collect();
    let mut finished = Vec::new();
    for task in tasks {
        finished.push(task.await.unwrap());
    }
    finished.sort();
    // A task's finish can be stamped after the paused clock jumped to another task's pending
    // slot, so only lower bounds hold; unshared budgets would let all three finish at 0 s.
    assert!(finished[1] >= Duration::from_secs(12), "{finished:?}");
    assert!(finished[2] >= Duration::from_secs(24), "{finished:?}");
}
