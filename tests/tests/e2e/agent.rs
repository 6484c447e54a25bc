//! The real `lambda-gha agent` binary against the simulator with the real Lambda provider:
//! hooks through `lambda-gha agent hook`, the machine found by its tag and terminated, the
//! billing ledger showing nothing left.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const SCALE: f64 = 20.0;

fn lambda_gha(args: &[&str], root: &std::path::Path) -> Command {
    let mut command = Command::new(lambda_gha_tests::lambda_gha_binary());
    command
        .args(args)
        .arg("--root")
        .arg(root)
        .env("LAMBDA_API_TIME_SCALE", SCALE.to_string());
    command
}

fn fake_process(root: &std::path::Path, name: &str) -> Child {
    let exe = format!("{}/home/runner/runner-0/bin/{name}", root.display());
    Command::new("bash")
        .arg("-c")
        .arg(format!("exec -a {exe} sleep 1000"))
        .spawn()
        .unwrap()
}

async fn sleep_sim(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds / SCALE)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_binary_terminates_its_own_instance_after_the_last_job() {
    // Built before the simulator starts, so compile time is not simulated time.
    lambda_gha_tests::lambda_gha_binary();

    let sim = lambda_cloud_sim::Sim::builder()
        .scenario(lambda_cloud_sim::Scenario::default().with_ssh_key("ci"))
        .time_scale(lambda_cloud::TimeScale::of(SCALE))
        .api_key("agent-key")
        .start()
        .await
        .unwrap();
    let client = sim.client().unwrap();
    let id = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .tag("lambda-gha:machine", "lambda-9-e2e-0")
        .send()
        .await
        .unwrap()
        .remove(0);

    let root = std::env::temp_dir().join(format!("agent-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("etc/lambda-gha")).unwrap();
    let config = json!({
        "version": "0.1.0", "provider": "lambda", "api_url": sim.base_url(), "api_key": "agent-key",
        "machine_tag": ["lambda-gha:machine", "lambda-9-e2e-0"], "run_label": "lambda-9-e2e",
        "runner_count": 1, "runner_mode": "jit",
        "timings": {"initial_grace_seconds": 180, "grace_seconds": 60, "poll_seconds": 10,
                    "registration_timeout_seconds": 300, "max_lifetime_seconds": 7200}
    });
    let config_path = root.join("etc/lambda-gha/agent.json");
    std::fs::write(&config_path, config.to_string()).unwrap();

    let mut listener = fake_process(&root, "Runner.Listener");
    let mut agent = lambda_gha(
        &["agent", "run", "--config", config_path.to_str().unwrap()],
        &root,
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    sleep_sim(20.0).await;
    assert!(
        lambda_gha(&["agent", "hook", "job-started", "--runner", "0"], &root)
            .status()
            .unwrap()
            .success()
    );
    let mut worker = fake_process(&root, "Runner.Worker");
    sleep_sim(40.0).await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(
        lambda_gha(&["agent", "hook", "job-completed", "--runner", "0"], &root)
            .status()
            .unwrap()
            .success()
    );

    let status = tokio::task::spawn_blocking(move || {
        lambda_gha_tests::wait_for_exit(&mut agent, Duration::from_secs(60), "the agent")
    })
    .await
    .unwrap();
    assert!(status.success());
    assert!(
        matches!(listener.try_wait(), Ok(Some(_))),
        "the agent stopped the runner"
    );

    let ledger = sim.ledger();
    assert!(
        ledger.still_billing.is_empty(),
        "the instance terminated itself"
    );
    assert_eq!(ledger.entries[0].instance_id, id);
    let log: Vec<Value> = std::fs::read_to_string(root.join("var/log/lambda-gha-agent.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |key: &str, value: &str| {
        log.iter()
            .find(|l| l[key] == value)
            .map(|l| l["t"].as_f64().unwrap())
    };
    // The job ended when the agent first learnt it: the hook, or the worker vanishing.
    let ended = [at("hook", "job-completed"), at("event", "worker-gone")]
        .into_iter()
        .flatten()
        .fold(f64::MAX, f64::min);
    let latency = at("terminate", "calling").unwrap() - ended;
    println!("agent binary: last job end -> terminate call {latency:.1} simulated s (grace 60 s)");
    assert!((60.0..=62.0).contains(&latency), "{latency}");
    let _ = listener.kill();
    let _ = std::fs::remove_dir_all(&root);
}
