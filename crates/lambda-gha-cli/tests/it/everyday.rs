use std::process::Output;

use lambda_cloud_sim::{Scenario, Sim};

const SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(100.0);

/// A simulator whose machines stay `booting` (no IP yet) for the whole test, so tables are
/// the same on a fast and a loaded machine.
async fn sim(mut scenario: Scenario) -> Sim {
    for ty in &mut scenario.instance_types {
        ty.boot_seconds = lambda_cloud_sim::SecondsRange {
            min: 100_000.0,
            max: 100_000.0,
        };
    }
    Sim::builder()
        .scenario(scenario.with_ssh_key("me"))
        .time_scale(SCALE)
        .api_key("cli-key")
        .start()
        .await
        .unwrap()
}

async fn run(sim: &Sim, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lambda-gha"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("USER", "tester")
        .env("LAMBDA_API_KEY", "cli-key")
        .env("LAMBDA_API_URL", sim.base_url())
        .env("LAMBDA_API_TIME_SCALE", SCALE.to_string())
        .current_dir(std::env::temp_dir());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn filters() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b[0-9a-f]{32}\b", "[id]");
    settings.add_filter(r"cli-[0-9a-f]{16}", "cli-[launch]");
    settings
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_are_renamed_and_restarted_by_name_and_an_ambiguous_name_is_refused() {
    // Machines that are active after 1 simulated second: a restart shows as `booting` again.
    let mut scenario = Scenario::default().with_ssh_key("me");
    for ty in &mut scenario.instance_types {
        ty.boot_seconds = lambda_cloud_sim::SecondsRange { min: 1.0, max: 1.0 };
    }
    let sim = Sim::builder()
        .scenario(scenario)
        .time_scale(SCALE)
        .api_key("cli-key")
        .start()
        .await
        .unwrap();
    let client = sim.client().unwrap();
    let mut ids = Vec::new();
    for name in ["train", "eval", "eval"] {
        ids.push(
            client
                .instances()
                .launch("gpu_1x_a10", "us-east-1", "me")
                .name(name)
                .send()
                .await
                .unwrap()
                .remove(0),
        );
    }
    let renamed = stdout(&run(&sim, &["rename", "train", "trainer"]).await);
    let mut settings = filters();
    settings.add_filter(r"\b\d+\.\d+\.\d+\.\d+\b", "[ip]");
    settings.bind(|| insta::assert_snapshot!("rename_table", renamed));
    let got = client.instances().get(ids[0].as_str()).await.unwrap();
    assert_eq!(got.name.as_deref(), Some("trainer"));

    let ambiguous = run(&sim, &["restart", "eval"]).await;
    assert!(!ambiguous.status.success());
    let error = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(
        error.contains("2 instances are named \"eval\": name one by its id")
            && error.contains(ids[1].as_str())
            && error.contains(ids[2].as_str()),
        "{error}"
    );
    let missing = run(&sim, &["rename", "nope", "x"]).await;
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("no instance has the id or name \"nope\"")
    );

    for id in &ids {
        let mut status = None;
        for _ in 0..300 {
            status = Some(client.instances().get(id.as_str()).await.unwrap().status);
            if status == Some(lambda_cloud::InstanceStatus::Active) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            status,
            Some(lambda_cloud::InstanceStatus::Active),
            "{id} booted"
        );
    }
    let restarted = stdout(&run(&sim, &["restart", "trainer", ids[1].as_str()]).await);
    assert!(restarted.contains("trainer"), "{restarted}");
    for id in &ids[..2] {
        let instance = client.instances().get(id.as_str()).await.unwrap();
        assert_eq!(
            instance.status,
            lambda_cloud::InstanceStatus::Booting,
            "{id} restarting"
        );
    }
    let untouched = client.instances().get(ids[2].as_str()).await.unwrap();
    assert_eq!(untouched.status, lambda_cloud::InstanceStatus::Active);
}

#[tokio::test(flavor = "multi_thread")]
async fn types_are_a_table_or_json_cheapest_first_and_filter() {
    let sim = sim(Scenario::default().with_capacity("gpu_1x_a10", "us-west-1", &[(0, 0)])).await;
    let table = stdout(&run(&sim, &["types"]).await);
    insta::assert_snapshot!("types_table", table);
    let json = stdout(&run(&sim, &["types", "--gpu", "h100", "--json"]).await);
    insta::assert_snapshot!("types_h100_json", json);
    let none = Scenario::default().with_capacity("gpu_8x_h100_sxm5", "us-east-1", &[(0, 0)]);
    let mut none = none;
    for region in ["us-west-1", "us-south-1", "europe-central-1"] {
        none = none.with_capacity("gpu_8x_h100_sxm5", region, &[(0, 0)]);
    }
    let sim = self::sim(none).await;
    let available = stdout(&run(&sim, &["types", "--available"]).await);
    assert!(!available.contains("gpu_8x_h100_sxm5"), "{available}");
    assert!(available.contains("gpu_1x_a10"));
}

#[tokio::test(flavor = "multi_thread")]
async fn launch_list_and_terminate_mine_leave_nothing_billing() {
    let sim =
        sim(Scenario::default().with_capacity("gpu_1x_h100_pcie", "us-east-1", &[(0, 0)])).await;
    // Someone else's machine, launched outside this tool: `--mine` must leave it alone.
    let client = sim.client().unwrap();
    let theirs = client
        .instances()
        .launch("gpu_1x_a10", "us-west-1", "me")
        .send()
        .await
        .unwrap();
    let out = run(
        &sim,
        &[
            "launch",
            "--type",
            "gpu_1x_h100_pcie,gpu_1x_a100_sxm4",
            "--region",
            "us-east-1",
            "--ssh-key",
            "me",
            "--name",
            "train",
            "--tag",
            "team=ml",
        ],
    )
    .await;
    let launched = stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lambda lists no h100 capacity: no launch is spent on it, the a100 is launched at once.
    assert!(
        stderr.contains("machine 0 on gpu_1x_a100_sxm4 in us-east-1: launched")
            && !stderr.contains("gpu_1x_h100_pcie in us-east-1: no capacity"),
        "the fallback is shown: {stderr}"
    );
    filters().bind(|| insta::assert_snapshot!("launch_table", launched));

    let table = stdout(&run(&sim, &["ls"]).await);
    filters().bind(|| insta::assert_snapshot!("instances_table", table));
    let json = stdout(&run(&sim, &["instances", "--json"]).await);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ours = parsed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "train")
        .unwrap();
    filters().bind(|| insta::assert_json_snapshot!("instance_json", ours));

    let ended = stdout(&run(&sim, &["terminate", "--mine", "--json"]).await);
    let ended: serde_json::Value = serde_json::from_str(&ended).unwrap();
    assert_eq!(ended.as_array().unwrap().len(), 1);
    assert_eq!(
        sim.ledger().still_billing,
        theirs,
        "only theirs still bills"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn get_shows_one_instance_as_a_table_or_json() {
    let sim = sim(Scenario::default()).await;
    let id = sim
        .client()
        .unwrap()
        .instances()
        .launch("gpu_1x_a10", "us-west-1", "me")
        .name("probe")
        .send()
        .await
        .unwrap()
        .remove(0);
    let table = stdout(&run(&sim, &["get", id.as_str()]).await);
    assert!(
        table.contains(id.as_str()) && table.contains("gpu_1x_a10") && table.contains("probe"),
        "{table}"
    );
    let json = stdout(&run(&sim, &["--json", "get", id.as_str()]).await);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["id"], id.as_str(), "{parsed:#}");
    assert_eq!(parsed["name"], "probe");
    assert_eq!(parsed["region"], "us-west-1");
    let missing = run(&sim, &["get", "0000000000000000000000000000dead"]).await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("0000000000000000000000000000dead"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_that_cannot_work_fails_before_launching() {
    let sim = sim(Scenario::default()).await;
    let out = run(&sim, &["launch", "--type", "gpu_1x_a01", "--ssh-key", "me"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean `gpu_1x_a10`"), "{stderr}");
    let out = run(&sim, &["launch", "--type", "gpu_1x_a10"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ssh-key NAME"));
    assert!(sim.ledger().entries.is_empty(), "nothing was launched");
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_keys_are_written_for_the_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let sim = sim(Scenario::default()).await;
    let path = std::env::temp_dir().join(format!("cli-key-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    stdout(
        &run(
            &sim,
            &[
                "ssh-keys",
                "generate",
                "laptop",
                "--out",
                path.to_str().unwrap(),
            ],
        )
        .await,
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    let list = stdout(&run(&sim, &["ssh-keys", "list"]).await);
    assert!(list.contains("laptop") && list.contains("me"), "{list}");
    stdout(&run(&sim, &["ssh-keys", "rm", "laptop"]).await);
    let list = stdout(&run(&sim, &["ssh-keys", "list"]).await);
    assert!(!list.contains("laptop"), "{list}");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_to_a_booting_instance_says_to_wait() {
    let sim = sim(Scenario::default()).await;
    let ids = sim
        .client()
        .unwrap()
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "me")
        .send()
        .await
        .unwrap();
    let out = run(&sim, &["ssh", ids[0].as_str(), "--", "true"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has no IP yet (it is booting)") && stderr.contains("lambda-gha wait"),
        "{stderr}"
    );
}
