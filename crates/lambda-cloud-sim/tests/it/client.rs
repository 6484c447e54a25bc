//! The `lambda-cloud` client against the simulator over real HTTP: lifecycles, capacity,
//! rate limits, faults, and the ledger.

use std::time::Duration;

use lambda_cloud::{Client, InstanceId, InstanceStatus, RateLimits, RetryPolicy};
use lambda_cloud_sim::{FaultSpec, InstanceBehavior, Scenario, Sim};

use crate::support::{client, eventually};

const KEY: &str = "sim-test-key";

async fn sim(scenario: Scenario, time_scale: f64) -> Sim {
    let time_scale = lambda_cloud::TimeScale::new(time_scale).unwrap();
    Sim::builder()
        .scenario(scenario)
        .time_scale(time_scale)
        .api_key(KEY)
        .start()
        .await
        .unwrap()
}

async fn with_key(client: &Client) {
    client
        .ssh_keys()
        .add("ci", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI ci")
        .await
        .unwrap();
}

async fn status(client: &Client, id: &InstanceId) -> InstanceStatus {
    client.instances().get(id).await.unwrap().status
}

async fn wait_for(client: &Client, id: &InstanceId, wanted: InstanceStatus) {
    eventually(Duration::from_secs(20), || async {
        status(client, id).await == wanted
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_launches_at_real_limits_and_100x_time_leave_nothing_billing() {
    let sim = sim(Scenario::default(), 100.0).await;
    let client = client(&sim, KEY);
    with_key(&client).await;

    let mut launched = Vec::new();
    for index in 0..3 {
        let before = sim.now();
        let ids = client
            .instances()
            .launch("gpu_1x_a10", "us-east-1", "ci")
            .name(format!("runner-{index}"))
            .tag("lambda-gha:run", "42")
            .send()
            .await
            .unwrap();
        launched.push((ids[0].clone(), before, sim.now()));
    }
    for (id, ..) in &launched {
        wait_for(&client, id, InstanceStatus::Active).await;
        let instance = client.instances().get(id).await.unwrap();
        assert!(instance.ip.is_some() && instance.hostname.is_some());
        assert_eq!(instance.tag("lambda-gha:run"), Some("42"));
    }
    let mut windows = Vec::new();
    for (id, launch_before, launch_after) in &launched {
        let before = sim.now();
        client.instances().terminate([id.clone()]).await.unwrap();
        windows.push((id.clone(), before - launch_after, sim.now() - launch_before));
    }

    let ledger = sim.ledger();
    assert!(
        ledger.still_billing.is_empty(),
        "nothing left billing: {:?}",
        ledger.still_billing
    );
    assert_eq!(ledger.entries.len(), 3);
    // Each launch is billed from when it arrived: within its own call. (Their spacing is the
    // client's decision, checked on a paused clock in lambda-cloud's `retries.rs`; arrival
    // times on a loaded machine say little about it.)
    for (id, before, after) in &launched {
        let start = ledger.entry(id).unwrap().launched_at;
        assert!(
            (*before..=*after).contains(&start),
            "{id} billed from simulated second {start:.1}, its call ran {before:.1}..={after:.1}"
        );
    }
    for (id, least, most) in &windows {
        let entry = ledger.entry(id).unwrap();
        assert!(
            (*least..=*most).contains(&entry.billable_seconds),
            "{id} billed {} simulated s, expected {least:.1}..={most:.1}",
            entry.billable_seconds
        );
        assert!((entry.cost_cents - entry.billable_seconds * 75.0 / 3600.0).abs() < 1e-9);
    }
    let total: f64 = ledger.entries.iter().map(|e| e.billable_seconds).sum();
    assert!((ledger.total_billable_seconds - total).abs() < 1e-9);
    sim.rate_limited_within_jitter().unwrap();
    // A raw reqwest call of the test's own, on the tree's one TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let over_http: lambda_cloud_sim::Ledger =
        reqwest::get(format!("{}/_sim/ledger", sim.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(over_http.still_billing.is_empty());
    assert_eq!(over_http.entries.len(), 3);
    assert!(
        (over_http.total_cost_cents - ledger.total_cost_cents).abs() < 1e-6,
        "billing stopped, so the totals are final"
    );
    println!(
        "3 instances billed {:.0} simulated s, {:.2} cents in total",
        ledger.total_billable_seconds, ledger.total_cost_cents
    );
    for (id, ..) in &launched {
        wait_for(&client, id, InstanceStatus::Terminated).await;
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_client_limiter_429s_come_and_are_survived() {
    let sim = sim(Scenario::default(), 100.0).await;
    let client = Client::builder()
        .base_url(sim.base_url())
        .api_key(KEY)
        .rate_limits(RateLimits::UNLIMITED)
        .retry_policy(RetryPolicy {
            max_retries: 20,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_elapsed: Duration::from_secs(30),
            jitter: true,
        })
        .build()
        .unwrap();
    for _ in 0..10 {
        client.instance_types().list().await.unwrap();
    }
    assert!(
        sim.rate_limited_requests() > 0,
        "back-to-back requests must earn 429s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_follows_the_timeline_and_is_consumed_by_launches() {
    let scenario =
        Scenario::default().with_capacity("gpu_1x_h100_pcie", "us-west-1", &[(0, 0), (90, 2)]);
    let sim = sim(scenario, 100.0).await;
    let client = client(&sim, KEY);
    with_key(&client).await;
    let launch = || {
        client
            .instances()
            .launch("gpu_1x_h100_pcie", "us-west-1", "ci")
            .send()
    };

    let error = launch().await.unwrap_err();
    assert!(error.is_insufficient_capacity(), "{error}");
    assert_eq!(error.retries(), 0, "capacity errors come back at once");
    let types = client.instance_types().list().await.unwrap();
    assert!(
        types
            .get("gpu_1x_h100_pcie")
            .unwrap()
            .regions_with_capacity_available
            .iter()
            .all(|r| r.name.as_str() != "us-west-1")
    );

    tokio::time::sleep(sim.real_duration(95.0 - sim.now())).await;
    let types = client.instance_types().list().await.unwrap();
    assert!(
        types
            .get("gpu_1x_h100_pcie")
            .unwrap()
            .has_capacity_in(&"us-west-1".into())
    );
    launch().await.unwrap();
    launch().await.unwrap();
    assert!(
        launch().await.unwrap_err().is_insufficient_capacity(),
        "two machines, both taken"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_refusal_is_resent_but_an_internal_error_is_not() {
    let provider = FaultSpec::error("launchInstance", 503, "provider/internal-unavailable")
        .message("Provider unavailable")
        .on_calls([1]);
    let internal = FaultSpec::error("launchInstance", 500, "global/internal-error")
        .message("Provider unavailable")
        .on_calls([3]);
    let sim = sim(
        Scenario::default()
            .with_fault(provider)
            .with_fault(internal),
        100.0,
    )
    .await;
    let client = client(&sim, KEY);
    with_key(&client).await;
    let launch = || {
        client
            .instances()
            .launch("gpu_1x_a10", "us-east-1", "ci")
            .send()
    };

    launch().await.unwrap();
    assert_eq!(
        sim.ledger().entries.len(),
        1,
        "resent after the provider refusal, launched once"
    );
    let error = launch().await.unwrap_err();
    assert_eq!(error.status(), Some(500));
    assert_eq!(
        error.retries(),
        0,
        "an ambiguous failure of a launch is not resent"
    );
    assert_eq!(sim.ledger().entries.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_loses_the_answer_not_the_launch_and_reads_are_resent() {
    let dropped = |operation: &str| FaultSpec::dropped(operation).on_calls([1]);
    let sim = sim(
        Scenario::default()
            .with_fault(dropped("launchInstance"))
            .with_fault(dropped("listInstances")),
        100.0,
    )
    .await;
    let client = client(&sim, KEY);
    with_key(&client).await;
    let error = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.status(), None, "no answer: {error}");
    assert_eq!(
        error.retries(),
        0,
        "a launch that may have happened is not resent"
    );
    assert_eq!(sim.ledger().still_billing.len(), 1, "it did happen");
    let listed = client.instances().list().await.unwrap();
    assert_eq!(listed.len(), 1, "a read is resent after the drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_log_keeps_what_was_sent_but_not_the_key_or_the_user_data() {
    let sim = sim(
        Scenario::default().with_fault(
            FaultSpec::error("listInstances", 500, "global/internal-error").message("boom"),
        ),
        100.0,
    )
    .await;
    let client = client(&sim, KEY);
    with_key(&client).await;
    client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .user_data("#!/bin/bash\necho secret-in-user-data\n")
        .tag("team", "ml")
        .send()
        .await
        .unwrap();
    assert!(
        client.instances().list().await.is_err(),
        "faulted every call"
    );
    sim.clear_faults();
    client.instances().list().await.unwrap();
    let log = sim.request_log().join("\n");
    assert!(
        log.contains("POST /api/v1/instance-operations/launch 200"),
        "{log}"
    );
    assert!(log.contains("\"user_data\":\"[37 bytes]\""), "{log}");
    assert!(log.contains("\"team\""), "{log}");
    assert!(log.contains("GET /api/v1/instances 500"), "{log}");
    assert!(log.ends_with("GET /api/v1/instances 200"), "{log}");
    assert!(
        !log.contains("secret-in-user-data") && !log.contains(KEY),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_instances_misbehave_and_terminated_ones_leave_the_list() {
    let scenario = Scenario {
        terminated_visible_seconds: 30.0,
        ..Scenario::default()
            .with_behavior(1, InstanceBehavior::NeverActive)
            .with_behavior(2, InstanceBehavior::UnhealthyAfter { seconds: 30.0 })
    };
    let sim = sim(scenario, 200.0).await;
    let client = client(&sim, KEY);
    with_key(&client).await;
    let never = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .send()
        .await
        .unwrap()
        .remove(0);
    let sick = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .send()
        .await
        .unwrap()
        .remove(0);
    wait_for(&client, &sick, InstanceStatus::Active).await;
    wait_for(&client, &sick, InstanceStatus::Unhealthy).await;
    // Past the longest boot of the type, the first instance still boots.
    tokio::time::sleep(sim.real_duration(260.0 - sim.now())).await;
    assert_eq!(status(&client, &never).await, InstanceStatus::Booting);

    client
        .instances()
        .terminate([never.clone(), sick.clone()])
        .await
        .unwrap();
    wait_for(&client, &never, InstanceStatus::Terminated).await;
    eventually(Duration::from_secs(20), || async {
        client.instances().list().await.unwrap().is_empty()
    })
    .await;
    assert!(
        client
            .instances()
            .get(&never)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(sim.ledger().still_billing.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn user_data_runs_in_its_sandbox_and_dies_with_the_instance() {
    let sim = Sim::builder()
        .time_scale(lambda_cloud::TimeScale::of(200.0))
        .api_key(KEY)
        .run_user_data()
        .start()
        .await
        .unwrap();
    let client = client(&sim, KEY);
    with_key(&client).await;
    let script = "#!/bin/bash\n\
        echo \"instance=$LAMBDA_SIM_INSTANCE_ID\"\n\
        echo \"api=$LAMBDA_SIM_API_URL\"\n\
        echo \"pwd=$PWD\"\n\
        echo \"scale=$LAMBDA_API_TIME_SCALE\"\n\
        sleep 1000 &\n\
        echo $! > worker.pid\n\
        setsid sleep 1000 < /dev/null > /dev/null 2>&1 &\n\
        echo $! > daemon.pid\n\
        echo started\n\
        wait\n";
    let id = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "ci")
        .user_data(script)
        .send()
        .await
        .unwrap()
        .remove(0);
    assert!(
        sim.user_data_log(&id).is_none(),
        "nothing runs while booting"
    );
    wait_for(&client, &id, InstanceStatus::Active).await;
    eventually(Duration::from_secs(10), || async {
        sim.user_data_log(&id)
            .is_some_and(|log| log.contains("started"))
    })
    .await;
    let log = sim.user_data_log(&id).unwrap();
    let sandbox = sim.sandbox_dir(&id).unwrap();
    assert!(log.contains(&format!("instance={id}")), "{log}");
    assert!(log.contains(&format!("api={}", sim.base_url())), "{log}");
    assert!(log.contains(&format!("pwd={}", sandbox.display())), "{log}");
    assert!(
        log.contains("scale=200"),
        "the script knows the clock's scale: {log}"
    );
    let worker: u32 = std::fs::read_to_string(sandbox.join("worker.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let daemon: u32 = std::fs::read_to_string(sandbox.join("daemon.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let alive = |pid: u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    assert!(alive(worker) && alive(daemon));
    assert_eq!(sim.user_data_running(), std::slice::from_ref(&id));

    client.instances().terminate([id.clone()]).await.unwrap();
    eventually(Duration::from_secs(10), || async {
        !alive(worker) && !alive(daemon)
    })
    .await;
    assert!(sim.user_data_running().is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_key_pairs_are_real_ed25519_keys() {
    let sim = sim(Scenario::default(), 100.0).await;
    let client = client(&sim, KEY);
    let pair = client.ssh_keys().generate("ephemeral").await.unwrap();
    assert!(pair.public_key.starts_with("ssh-ed25519 "));
    let dir = std::env::temp_dir().join(format!("sim-key-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    std::fs::write(&path, pair.private_key.expose()).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let derived = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let derived = String::from_utf8(derived.stdout).unwrap();
    let key_of = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        key_of(&derived),
        key_of(&pair.public_key),
        "the private key matches the public key"
    );
    assert_eq!(client.ssh_keys().list().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn machines_see_their_gpus_and_a_scenario_can_break_them() {
    let sim = Sim::builder()
        .scenario(
            Scenario::default()
                .with_behavior(2, InstanceBehavior::GpusMissing { count: 1 })
                .with_behavior(3, InstanceBehavior::GpusMissing { count: 1 }),
        )
        .time_scale(lambda_cloud::TimeScale::of(200.0))
        .api_key(KEY)
        .run_user_data()
        .start()
        .await
        .unwrap();
    let client = client(&sim, KEY);
    with_key(&client).await;
    let script = "#!/bin/bash\n\
        nvidia-smi --query-gpu=index,name --format=csv,noheader > gpus.csv\n\
        echo \"exit=$?\"\n\
        nvidia-smi -L | head -1\n\
        echo done\n";
    let mut ids = Vec::new();
    for ty in [
        "gpu_8x_a100_80gb_sxm4",
        "gpu_8x_a100_80gb_sxm4",
        "gpu_1x_a10",
    ] {
        let id = client
            .instances()
            .launch(ty, "us-east-1", "ci")
            .user_data(script)
            .send()
            .await
            .unwrap()
            .remove(0);
        ids.push(id);
    }
    let mut seen = Vec::new();
    for id in &ids {
        wait_for(&client, id, InstanceStatus::Active).await;
        eventually(Duration::from_secs(10), || async {
            sim.user_data_log(id)
                .is_some_and(|log| log.contains("done"))
        })
        .await;
        let csv = std::fs::read_to_string(sim.sandbox_dir(id).unwrap().join("gpus.csv")).unwrap();
        seen.push((csv.lines().count(), sim.user_data_log(id).unwrap()));
    }
    assert_eq!(seen[0].0, 8, "all eight: {}", seen[0].1);
    assert!(seen[0].1.contains("GPU 0: NVIDIA A100"), "{}", seen[0].1);
    assert_eq!(seen[1].0, 7, "one broken: {}", seen[1].1);
    assert_eq!(seen[2].0, 0, "its only GPU broken");
    assert!(
        seen[2].1.contains("No devices were found") && seen[2].1.contains("exit=6"),
        "{}",
        seen[2].1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instances_jupyter_answers_once_it_is_active_and_only_with_its_token() {
    use lambda_cloud::JupyterProbe;
    let scenario = Scenario::default()
        .with_ssh_key("me")
        .with_boot_seconds(100_000.0);
    let sim = Sim::builder()
        .scenario(scenario)
        .api_key("key")
        .start()
        .await
        .unwrap();
    let client = sim.client().unwrap();
    let id = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "me")
        .send()
        .await
        .unwrap()
        .remove(0);
    let booting = client.instances().get(id.as_str()).await.unwrap();
    assert_eq!(
        client.probe_jupyter(&booting).await,
        JupyterProbe::NotYet("HTTP 502".into())
    );
    let mut forged = booting.clone();
    let url = forged.jupyter_url.as_ref().unwrap().expose().to_owned();
    forged.jupyter_url = Some(lambda_cloud::Redacted::new(format!("{url}x")));
    assert_eq!(
        client.probe_jupyter(&forged).await,
        JupyterProbe::NotYet("HTTP 403".into())
    );
    forged.jupyter_url = Some(lambda_cloud::Redacted::new(
        "http://jupyter.example.com/?token=t",
    ));
    assert_eq!(client.probe_jupyter(&forged).await, JupyterProbe::Insecure);
    forged.jupyter_url = None;
    assert_eq!(client.probe_jupyter(&forged).await, JupyterProbe::NoUrl);
}
