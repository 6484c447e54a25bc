//! A start that brings runners online, then the stop that ends them: outputs and summaries
//! snapshot-tested, secrets masked first and absent everywhere, nothing left billing.

use lambda_cloud_sim::{FaultSpec, Scenario};

use crate::support::{Fixture, settings};

#[tokio::test(flavor = "multi_thread")]
async fn start_brings_runners_online_and_stop_leaves_nothing_behind() {
    // Lambda's listing shows the first type available, but it is gone by the launch (the
    // listing goes stale): that launch answers insufficient capacity.
    let stale = FaultSpec::error(
        "launchInstance",
        400,
        "instance-operations/launch/insufficient-capacity",
    )
    .message("Not enough capacity to fulfill launch request.")
    .on_calls([1]);
    let w = Fixture::new(Scenario::default().with_fault(stale)).await;
    let run = w
        .run(w.env(&[
            ("instance_type", "gpu_1x_a10,gpu_1x_a6000"),
            ("region", "us-east-1"),
            ("runners_per_instance", "2"),
            // Two runners share the one GPU (the default would pin one GPU to each).
            ("gpus_per_runner", "all"),
            ("extra_gh_labels", "cuda"),
            ("tags", "team=ml"),
            // The launcher registers JIT runners itself, so this fake GitHub sees them come
            // online without a machine that runs `config.sh` (tests/tests/e2e/workflow.rs
            // runs the default, reusable runners, on root machines).
            ("runner_mode", "jit"),
        ]))
        .await;
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    w.assert_no_secrets(&run);
    let masks: Vec<&str> = run.stdout.lines().take(2).collect();
    assert!(
        masks.iter().all(|l| l.starts_with("::add-mask::")),
        "the secrets are masked before anything else is printed:\n{}",
        run.stdout
    );
    settings().bind(|| {
        insta::assert_snapshot!("start_output", run.output);
        insta::assert_snapshot!("start_summary", run.summary);
    });
    let outputs = run.outputs();
    assert_eq!(
        outputs["instance-type"], "gpu_1x_a6000",
        "fell back past the full type"
    );
    assert_eq!(w.sim.ledger().still_billing.len(), 1);
    assert_eq!(w.github.names().len(), 2, "two runners on the machine");
    let keys = w.sim.client().unwrap().ssh_keys().list().await.unwrap();
    assert!(
        keys.is_empty(),
        "the launch's own SSH key is deleted: {keys:?}"
    );
    let tagged = w.sim.client().unwrap().instances().list().await.unwrap();
    assert_eq!(tagged[0].tag("team"), Some("ml"));
    assert_eq!(
        tagged[0].tag("lambda-gha:run-url"),
        Some("https://github.com/octo/gpu/actions/runs/4242")
    );
    assert_eq!(tagged[0].tag("lambda-gha:owner"), Some("repo:octo/gpu"));
    // Self-termination (the default): the key is on the machine, in the root-only agent
    // configuration written from a quoted heredoc, and nowhere else in the script.
    let user_data = w.sim.launched_user_data(&tagged[0].id).unwrap();
    let heredoc = user_data
        .split("cat > \"$ETC/agent.json\" <<'LAMBDA_GHA_SECRET'")
        .nth(1)
        .and_then(|rest| rest.split("\nLAMBDA_GHA_SECRET\n").next())
        .unwrap();
    assert!(heredoc.contains(&w.lambda_key));
    assert_eq!(user_data.matches(&w.lambda_key).count(), 1);

    let stop = w
        .run(w.env(&[("mode", "stop"), ("mtx", &outputs["mtx"])]))
        .await;
    assert!(stop.success, "{}\n{}", stop.stdout, stop.stderr);
    w.assert_no_secrets(&stop);
    let mut filters = settings();
    filters.add_filter(r"\| [0-9hms]+ \| \$[0-9.]+ \|", "| [billed] | [cost] |");
    filters.add_filter(r"about \$[0-9.]+", "about $[total]");
    filters.bind(|| insta::assert_snapshot!("stop_summary", stop.summary));
    assert!(w.sim.ledger().still_billing.is_empty(), "nothing billing");
    assert!(w.github.names().is_empty(), "nothing registered");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_self_termination_the_key_stays_off_the_machine() {
    let w = Fixture::new(Scenario::default()).await;
    let run = w
        .run(w.env(&[
            ("instance_type", "gpu_1x_a10"),
            ("self_terminate", "false"),
            ("ssh_key_name", "mine"),
        ]))
        .await;
    // The named key does not exist: Lambda refuses the launch, and nothing is left.
    assert!(!run.success);
    let (title, message) = run.error().unwrap();
    assert_eq!(title, "Launch failed");
    assert!(
        message.contains("mine") || message.contains("SSH"),
        "{message}"
    );
    assert!(run.stdout.contains("self_terminate is off"));
    assert!(w.github.names().is_empty());

    w.sim
        .client()
        .unwrap()
        .ssh_keys()
        .add("mine", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx mine")
        .await
        .unwrap();
    let run = w
        .run(w.env(&[
            ("instance_type", "gpu_1x_a10"),
            ("self_terminate", "false"),
            ("ssh_key_name", "mine"),
            // JIT: runners the fake GitHub sees online without a machine running them.
            ("runner_mode", "jit"),
        ]))
        .await;
    assert!(run.success, "{}\n{}", run.stdout, run.stderr);
    let instances = w.sim.client().unwrap().instances().list().await.unwrap();
    let user_data = w.sim.launched_user_data(&instances[0].id).unwrap();
    assert!(
        !user_data.contains("\"api_key\"") && !user_data.contains(&w.lambda_key),
        "the Lambda key never reaches the machine"
    );
    assert!(
        w.github
            .jit_configs()
            .iter()
            .any(|config| user_data.contains(config.as_str())),
        "the runner's JIT config does"
    );
    let running: Vec<_> = instances
        .iter()
        .filter(|i| {
            i.status == lambda_cloud::InstanceStatus::Booting
                || i.status == lambda_cloud::InstanceStatus::Active
        })
        .collect();
    assert_eq!(running.len(), 1);
    let stop = w
        .run(w.env(&[("mode", "stop"), ("instance_id", running[0].id.as_str())]))
        .await;
    assert!(stop.success, "{}", stop.stdout);
    assert!(w.sim.ledger().still_billing.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_a_launch_terminates_it_and_the_summary_says_so() {
    let w = Fixture::new(Scenario {
        max_instances: Some(1),
        ..Scenario::default()
    })
    .await;
    let run = w
        .run(w.env(&[
            ("instance_type", "gpu_1x_a10"),
            ("region", "us-east-1"),
            ("instance_count", "2"),
        ]))
        .await;
    assert!(!run.success);
    w.assert_no_secrets(&run);
    let (title, message) = run.error().unwrap();
    assert_eq!(title, "Launch failed");
    assert!(message.contains("global/quota-exceeded"), "{message}");
    // The label before the launch, then each machine as soon as it exists, for a stop job
    // with `if: always()` (a later line of the same name wins).
    let lines: Vec<&str> = run.output.lines().collect();
    assert!(lines[0].starts_with("label=lambda-"), "{}", run.output);
    let first = &w.sim.ledger().entries[0].instance_id;
    assert_eq!(lines[1], format!("instance-id={first}"), "{}", run.output);
    assert!(
        lines[2].starts_with("mtx=[{") && lines[2].contains(first.as_str()),
        "{}",
        run.output
    );
    assert_eq!(lines.len(), 3, "{}", run.output);
    settings().bind(|| insta::assert_snapshot!("failure_summary", run.summary));
    assert_eq!(w.launches(), 1);
    assert!(
        w.sim.ledger().still_billing.is_empty(),
        "the first machine is terminated"
    );
    assert!(w.github.names().is_empty(), "its runner is deleted");
    let keys = w.sim.client().unwrap().ssh_keys().list().await.unwrap();
    assert!(keys.is_empty(), "the launch key is deleted on failure too");
}
