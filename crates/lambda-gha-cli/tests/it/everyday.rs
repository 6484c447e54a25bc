use std::process::Output;

use lambda_cloud_sim::{Scenario, Sim};

pub(crate) const SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(100.0);

/// A simulator whose machines stay `booting` (no IP yet) for the whole test, so tables are
/// the same on a fast and a loaded machine.
async fn sim(scenario: Scenario) -> Sim {
    Sim::builder()
        .scenario(scenario.with_boot_seconds(100_000.0).with_ssh_key("me"))
        .time_scale(SCALE)
        .api_key("cli-key")
        .start()
        .await
        .unwrap()
}

pub(crate) async fn run(sim: &Sim, args: &[&str]) -> Output {
    run_with(sim, args, &[]).await
}

/// The binary with `args`, against `sim` (key `cli-key`, its clock's scale), as user
/// `tester` with nothing else from this process's environment but PATH.
pub(crate) fn command(sim: &Sim, args: &[&str]) -> std::process::Command {
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
    command
}

/// [`run`] with more environment variables.
async fn run_with(sim: &Sim, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = command(sim, args);
    command.envs(vars.iter().copied());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

pub(crate) fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn filters() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b[0-9a-f]{32}\b", "[id]");
    settings.add_filter(r"cli-[0-9a-f]{16}", "cli-[launch]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[time]");
    settings
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_are_renamed_and_restarted_by_name_and_an_ambiguous_name_is_refused() {
    // Machines that are active after 1 simulated second: a restart shows as `booting` again.
    let sim = Sim::builder()
        .scenario(
            Scenario::default()
                .with_ssh_key("me")
                .with_boot_seconds(1.0),
        )
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

/// A simulator whose machines are active after one simulated second.
async fn quick_sim() -> Sim {
    Sim::builder()
        .scenario(
            Scenario::default()
                .with_ssh_key("me")
                .with_boot_seconds(1.0),
        )
        .time_scale(SCALE)
        .api_key("cli-key")
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn jupyter_waits_for_the_lab_and_shows_the_token_only_when_asked() {
    use std::os::unix::fs::PermissionsExt as _;
    let sim = quick_sim().await;
    let client = sim.client().unwrap();
    let id = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "me")
        .name("notebook")
        .send()
        .await
        .unwrap()
        .remove(0);
    // Asked for while it boots: the command waits for the machine and its lab.
    let plain = run(&sim, &["jupyter", "notebook"]).await;
    let instance = client.instances().get(id.as_str()).await.unwrap();
    let token = instance.jupyter_token.unwrap().expose().to_owned();
    let url = instance.jupyter_url.unwrap().expose().to_owned();
    let printed = stdout(&plain);
    assert_eq!(
        printed.trim(),
        format!("{}/_sim/jupyter/{id}/", sim.base_url()),
        "the URL without its token"
    );
    let all = format!("{printed}{}", String::from_utf8_lossy(&plain.stderr));
    assert!(!all.contains(&token), "{all}");
    assert!(all.contains("--show-token"), "{all}");

    let got = stdout(&run(&sim, &["get", "notebook", "--json"]).await);
    assert!(!got.contains(&token), "`get` shows no Jupyter token: {got}");
    let shown = stdout(&run(&sim, &["jupyter", id.as_str(), "--show-token"]).await);
    assert_eq!(shown.trim(), url);

    // --open hands the whole URL to the browser and prints no token.
    let opened_file = std::env::temp_dir().join(format!("cli-browser-{}", std::process::id()));
    let browser = std::env::temp_dir().join(format!("cli-browser-{}.sh", std::process::id()));
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" > {}\n",
            opened_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opened = run_with(
        &sim,
        &["jupyter", "notebook", "--open"],
        &[("BROWSER", browser.to_str().unwrap())],
    )
    .await;
    let all = format!(
        "{}{}",
        stdout(&opened),
        String::from_utf8_lossy(&opened.stderr)
    );
    assert!(!all.contains(&token), "{all}");
    assert_eq!(std::fs::read_to_string(&opened_file).unwrap(), url);
    let json: serde_json::Value = serde_json::from_str(&stdout(
        &run(&sim, &["jupyter", "notebook", "--json"]).await,
    ))
    .unwrap();
    assert_eq!(json["token_shown"], false);
    assert!(!json["url"].as_str().unwrap().contains(&token));
    let _ = std::fs::remove_file(opened_file);
    let _ = std::fs::remove_file(browser);
}

#[tokio::test(flavor = "multi_thread")]
async fn cost_shows_what_bills_now_from_prices_and_launch_tags() {
    let sim = sim(Scenario::default()).await;
    let client = sim.client().unwrap();
    let launch = |ty: &'static str, name: &'static str, launched: Option<&'static str>| {
        let client = client.clone();
        async move {
            let mut builder = client.instances().launch(ty, "us-east-1", "me").name(name);
            if let Some(at) = launched {
                builder = builder.tag(gha_runner_core::tags::LAUNCHED, at);
            }
            builder.send().await.unwrap().remove(0)
        }
    };
    launch("gpu_1x_a10", "notebook", Some("2026-12-01T10:00:00Z")).await;
    launch("gpu_8x_h100_sxm5", "train", Some("2026-12-01T12:30:00Z")).await;
    launch("gpu_1x_a6000", "by-hand", None).await;
    let gone = launch("gpu_1x_h100_pcie", "gone", Some("2026-12-01T09:00:00Z")).await;
    client.instances().terminate([gone.as_str()]).await.unwrap();

    let instances = client.instances().list().await.unwrap();
    let now: jiff::Timestamp = "2026-12-01T13:05:00Z".parse().unwrap();
    let view = lambda_gha_cli::cost::cost_view(&instances, now);
    filters().bind(|| insta::assert_snapshot!("cost_table", lambda_gha_cli::cost::render(&view)));
    // 23.92 + 0.75 + 0.80 per hour; 3h05m of a10 and 35m of h100 so far.
    assert!((view.per_hour - 25.47).abs() < 1e-9, "{view:?}");
    assert!((view.per_month - 25.47 * 730.0).abs() < 1e-6);
    assert!((view.so_far - (0.75 * 185.0 / 60.0 + 23.92 * 35.0 / 60.0)).abs() < 1e-9);

    // The command: the same machines, as JSON, with the clock of the moment.
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(&sim, &["cost", "--json"]).await)).unwrap();
    assert_eq!(json["machines"].as_array().unwrap().len(), 3);
    assert_eq!(json["unknown_launch"], 1);
    assert!((json["per_hour"].as_f64().unwrap() - 25.47).abs() < 1e-9);
    assert_eq!(json["machines"][0]["name"], "train", "the dearest first");
    // A machine `launch` starts carries its launch time.
    let launched = run(
        &sim,
        &[
            "launch",
            "--type",
            "gpu_1x_a10",
            "--ssh-key",
            "me",
            "--json",
        ],
    )
    .await;
    let launched: serde_json::Value = serde_json::from_str(&stdout(&launched)).unwrap();
    let at = launched["tags"][gha_runner_core::tags::LAUNCHED]
        .as_str()
        .unwrap();
    assert!(at.parse::<jiff::Timestamp>().is_ok(), "{at}");
}

/// Logs written to a file or a pipe (where `serve` writes: journald, a container's log) carry
/// no colour codes; at a terminal they keep their colour unless NO_COLOR is set.
#[tokio::test(flavor = "multi_thread")]
async fn logs_are_coloured_only_at_a_terminal() {
    let sim = quick_sim().await;
    let out = run_with(&sim, &["types"], &[("RUST_LOG", "debug")]).await;
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DEBUG"),
        "debug logs were written: {stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "no escape codes: {stderr:?}");
    for (no_color, coloured) in [("", true), ("1", false)] {
        let mut at_terminal = command(&sim, &["types"]);
        at_terminal
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", no_color);
        let (status, screen) = crate::pty::Pty::spawn(at_terminal).finish();
        assert!(status.success(), "{screen}");
        assert_eq!(
            screen.contains("\u{1b}[2m"),
            coloured,
            "NO_COLOR={no_color:?}: {screen:?}"
        );
    }
}
