//! The published examples work as their docs say, against a server that speaks the spec.

use std::process::Output;

use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn item(name: &str, gpus: u32, cents: u32, regions: &[(&str, &str)]) -> serde_json::Value {
    json!({
        "instance_type": {
            "name": name,
            "description": format!("{gpus}x GPU"),
            "gpu_description": "GPU",
            "price_cents_per_hour": cents,
            "specs": {"vcpus": 30, "memory_gib": 200, "storage_gib": 1400, "gpus": gpus}
        },
        "regions_with_capacity_available":
            regions.iter().map(|(n, d)| json!({"name": n, "description": d})).collect::<Vec<_>>()
    })
}

/// Runs the `list_types` example as its docs say, with `env` set and `LAMBDA_API_KEY` unset
/// unless `env` sets it.
fn run_list_types(env: &[(&str, &str)]) -> Output {
    lambda_gha_tests::cargo()
        .args([
            "run",
            "--quiet",
            "-p",
            "lambda-cloud",
            "--example",
            "list_types",
        ])
        .env_remove("LAMBDA_API_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_types_prints_prices_and_regions_with_capacity_from_lambda_api_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/instance-types"))
        .and(header("authorization", "Bearer example-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "gpu_8x_h100_sxm5": item("gpu_8x_h100_sxm5", 8, 2392, &[]),
            "gpu_1x_a10": item("gpu_1x_a10", 1, 75, &[("us-east-1", "Virginia, USA"), ("us-west-1", "California, USA")]),
        }})))
        .expect(1)
        .mount(&server)
        .await;

    let uri = server.uri();
    let output = tokio::task::spawn_blocking(move || {
        run_list_types(&[("LAMBDA_API_URL", &uri), ("LAMBDA_API_KEY", "example-key")])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[1].starts_with("gpu_1x_a10"),
        "cheapest first:\n{stdout}"
    );
    assert!(
        lines[1].contains("0.75") && lines[1].contains("us-east-1, us-west-1"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("gpu_8x_h100_sxm5") && lines[2].contains("23.92"),
        "{stdout}"
    );
    assert!(
        lines[2].trim_end().ends_with('-'),
        "no capacity shows `-`:\n{stdout}"
    );
    assert!(stdout.contains("2 types, 1 with capacity now"), "{stdout}");
    assert!(!stdout.contains("example-key") && !stderr.contains("example-key"));
}

#[test]
fn list_types_without_a_key_says_how_to_get_one() {
    let output = run_list_types(&[("LAMBDA_API_URL", "http://127.0.0.1:9")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("set `LAMBDA_API_KEY`"), "{stderr}");
}
