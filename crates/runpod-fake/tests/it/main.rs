//! The fake against RunPod's own description: every answer it gives is one the description
//! allows for that operation and status, bad bodies are refused as RunPod refuses them, and
//! limits, faults and containers behave as documented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use runpod_fake::{FakeRunPod, Fault, Operation, Scenario, spec};
use serde_json::{Value, json};

/// Sends a request and checks the answer against the description.
struct Raw {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Raw {
    fn new(fake: &FakeRunPod, key: &str) -> Raw {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Raw {
            http: reqwest::Client::new(),
            base: fake.base_url().to_owned(),
            key: key.to_owned(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        template: &str,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        let errors = spec::answer_errors(method, template, status, &body);
        assert!(
            errors.is_empty(),
            "{method} {path} → {status}: {errors:#?}\n{body:#}"
        );
        (status, body, headers)
    }
}

fn pod_body() -> Value {
    json!({
        "name": "runner-0",
        "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
        "gpu": {"id": "NVIDIA A40", "count": 2},
        "cloud": "SECURE",
        "dataCenterIds": ["US-KS-2"],
        "env": {"A": "b"},
        "args": "",
        "disk": 20,
    })
}

#[tokio::test]
async fn every_answer_is_one_runpods_description_allows() {
    let fake = FakeRunPod::builder()
        .time_scale(100.0)
        .start()
        .await
        .unwrap();
    let raw = Raw::new(&fake, fake.api_key());
    let (status, pod, _) = raw
        .call("POST", "/v2/pods", "/v2/pods", Some(pod_body()))
        .await;
    assert_eq!(status, 201);
    assert_eq!(pod["status"], "PROVISIONING");
    assert_eq!(pod["dataCenterId"], "US-KS-2");
    let id = pod["id"].as_str().unwrap().to_owned();
    let path = format!("/v2/pods/{id}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, got, _) = raw.call("GET", &path, "/v2/pods/{id}", None).await;
    assert_eq!(got["status"], "RUNNING", "15 simulated seconds on");
    let (_, list, _) = raw.call("GET", "/v2/pods", "/v2/pods", None).await;
    assert_eq!(list["pods"].as_array().unwrap().len(), 1);
    let (status, renamed, _) = raw
        .call(
            "PATCH",
            &path,
            "/v2/pods/{id}",
            Some(json!({"name": "unhealthy: x"})),
        )
        .await;
    assert_eq!(
        (status, renamed["name"].clone()),
        (200, json!("unhealthy: x"))
    );
    for (query, status) in [
        ("", 200),
        ("?include=AVAILABILITY&product=POD", 200),
        ("?include=AVAILABILITY", 400),
        ("?product=POD", 400),
    ] {
        let (got, _, _) = raw
            .call(
                "GET",
                &format!("/v2/catalog/gpus{query}"),
                "/v2/catalog/gpus",
                None,
            )
            .await;
        assert_eq!(got, status, "{query}");
    }
    raw.call(
        "GET",
        "/v2/catalog/datacenters",
        "/v2/catalog/datacenters",
        None,
    )
    .await;
    let (status, _, _) = raw.call("DELETE", &path, "/v2/pods/{id}", None).await;
    assert_eq!(status, 204);
    let (status, _, _) = raw.call("GET", &path, "/v2/pods/{id}", None).await;
    assert_eq!(status, 404);
    let (status, _, _) = raw.call("DELETE", &path, "/v2/pods/{id}", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bodies_are_checked_against_the_description_and_its_handler_rules() {
    let fake = FakeRunPod::builder().start().await.unwrap();
    let raw = Raw::new(&fake, fake.api_key());
    let mut bogus = pod_body();
    bogus["bogus"] = json!(1);
    bogus["gpu"]["count"] = json!(0);
    let (status, answer, _) = raw.call("POST", "/v2/pods", "/v2/pods", Some(bogus)).await;
    assert_eq!(status, 422);
    let errors = answer["errors"].to_string();
    assert!(
        errors.contains("bogus") && errors.contains("count"),
        "{errors}"
    );
    assert_eq!(fake.invalid_requests().len(), 1);
    let mut neither = pod_body();
    neither.as_object_mut().unwrap().remove("gpu");
    let (status, answer, _) = raw
        .call("POST", "/v2/pods", "/v2/pods", Some(neither))
        .await;
    assert_eq!(
        (status, answer["detail"].as_str().unwrap()),
        (400, "exactly one of `gpu` or `cpu` must be set")
    );
    // No capacity is a 400 with words, as RunPod documents.
    fake.set_stock("NVIDIA A40", "US-KS-2", 1);
    let (status, answer, _) = raw
        .call("POST", "/v2/pods", "/v2/pods", Some(pod_body()))
        .await;
    assert_eq!(status, 400);
    assert!(
        answer["detail"].as_str().unwrap().contains("can be placed"),
        "{answer}"
    );
    assert!(fake.pods().is_empty());
    let stranger = Raw::new(&fake, "rpa_WRONG");
    let (status, _, _) = stranger.call("GET", "/v2/pods", "/v2/pods", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn over_the_minute_quota_the_answer_is_429_with_retry_after() {
    let scenario = Scenario {
        requests_per_minute: 3,
        ..Scenario::default()
    };
    let fake = FakeRunPod::builder()
        .scenario(scenario)
        .start()
        .await
        .unwrap();
    let raw = Raw::new(&fake, fake.api_key());
    for left in [2, 1, 0] {
        let (status, _, headers) = raw.call("GET", "/v2/pods", "/v2/pods", None).await;
        assert_eq!(status, 200);
        let limit = headers["ratelimit"].to_str().unwrap();
        assert!(
            limit.starts_with(&format!("\"minute\";r={left};t=")),
            "{limit}"
        );
        assert_eq!(headers["ratelimit-policy"], "\"minute\";q=3;w=60");
    }
    let (status, _, headers) = raw.call("GET", "/v2/pods", "/v2/pods", None).await;
    assert_eq!(status, 429);
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(fake.rate_limited_requests(), 1);
}

#[tokio::test]
async fn a_lost_answer_still_creates_the_pod_and_a_plain_fault_does_not() {
    let fake = FakeRunPod::builder()
        .fault(Fault::lost_answer(Operation::CreatePod, &[1]))
        .fault(Fault::error(Operation::CreatePod, 503, &[2]))
        .start()
        .await
        .unwrap();
    let raw = Raw::new(&fake, fake.api_key());
    let (status, _, _) = raw
        .call("POST", "/v2/pods", "/v2/pods", Some(pod_body()))
        .await;
    assert_eq!(status, 502);
    assert_eq!(fake.pods().len(), 1, "the create took effect");
    let (status, _, _) = raw
        .call("POST", "/v2/pods", "/v2/pods", Some(pod_body()))
        .await;
    assert_eq!(status, 503);
    assert_eq!(fake.pods().len(), 1, "this one did not");
    let (status, _, _) = raw
        .call("POST", "/v2/pods", "/v2/pods", Some(pod_body()))
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn a_container_whose_command_ends_leaves_its_pod_exited_and_free_of_charge() {
    let dir = std::env::temp_dir().join(format!("runpod-fake-{:08x}", fastrand::u32(..)));
    let fake = FakeRunPod::builder()
        .time_scale(100.0)
        .run_containers(&dir)
        .start()
        .await
        .unwrap();
    let raw = Raw::new(&fake, fake.api_key());
    let mut body = pod_body();
    body["args"] = json!("bash -c 'echo \"hello from $RUNPOD_POD_ID on $RUNPOD_DC_ID\"'");
    let (_, pod, _) = raw.call("POST", "/v2/pods", "/v2/pods", Some(body)).await;
    let id = pod["id"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    // Up to 10 s: a loaded machine may be slow to start bash.
    for _ in 0..500 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        last = raw
            .call("GET", &format!("/v2/pods/{id}"), "/v2/pods/{id}", None)
            .await
            .1;
        if last["status"] == "EXITED" {
            break;
        }
    }
    assert_eq!(last["status"], "EXITED", "{last:#}");
    assert_eq!(last["cost"], 0.0);
    let log = fake.container_log(&id).unwrap();
    assert_eq!(log, format!("hello from {id} on US-KS-2\n"));
    drop(fake);
    let _ = std::fs::remove_dir_all(dir);
}
