//! The simulator binary as its README says: started with a scenario, it prints its URL, serves
//! the API, and stops cleanly on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_a_scenario_and_stops_on_ctrl_c() {
    let mut child = lambda_gha_tests::cargo()
        .args([
            "run",
            "--quiet",
            "-p",
            "lambda-cloud-sim",
            "--",
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--scenario",
            "crates/lambda-cloud-sim/scenarios/capacity-crunch.toml",
        ])
        .args(["--time-scale", "100", "--api-key", "e2e-key"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let url = first_line.trim().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "first line is the base URL: {first_line:?}"
    );

    let client = lambda_cloud::Client::builder()
        .base_url(&url)
        .api_key("e2e-key")
        .time_scale(100.0)
        .build()
        .unwrap();
    let types = client.instance_types().list().await.unwrap();
    let a100 = types.get("gpu_1x_a100_sxm4").unwrap();
    assert!(
        !a100.has_capacity_in(&"us-east-1".into()) && !a100.has_capacity_in(&"us-west-1".into()),
        "the scenario's crunch applies: {:?}",
        a100.regions_with_capacity_available
    );
    assert!(
        a100.has_capacity_in(&"us-south-1".into()),
        "other regions keep the default"
    );
    assert!(
        types
            .get("gpu_1x_a10")
            .unwrap()
            .has_capacity_in(&"us-east-1".into())
    );
    let wrong_key = lambda_cloud::Client::builder()
        .base_url(&url)
        .api_key("other")
        .build()
        .unwrap();
    let error = wrong_key.regions().list().await.unwrap_err();
    assert_eq!(error.status(), Some(401));

    let stopped = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = tokio::task::spawn_blocking(move || {
        lambda_gha_tests::wait_for_exit(
            &mut child,
            Duration::from_secs(20),
            "the simulator after Ctrl-C",
        )
    })
    .await
    .unwrap();
    assert!(status.success(), "Ctrl-C is a clean stop: {status}");
}
