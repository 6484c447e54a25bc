//! `lambda-gha reap`, the reaper workflow's command, against the simulator and the fake
//! GitHub: an expired machine is terminated, a live one is left alone, and a runner whose
//! machine is gone is deleted.

use lambda_gha_tests::FakeGitHub;

#[tokio::test(flavor = "multi_thread")]
async fn reap_ends_expired_machines_and_ghost_runners_and_nothing_else() {
    let binary = lambda_gha_tests::lambda_gha_binary();
    let sim = lambda_cloud_sim::Sim::builder()
        .scenario(lambda_cloud_sim::Scenario::default().with_ssh_key("ci"))
        .time_scale(lambda_cloud::TimeScale::of(50.0))
        .api_key("reap-key")
        .start()
        .await
        .unwrap();
    let client = sim.client().unwrap();
    let launch = |label: &'static str, expires: &'static str, owner: &'static str| {
        let client = client.clone();
        async move {
            client
                .instances()
                .launch("gpu_1x_a10", "us-east-1", "ci")
                .tag("lambda-gha:run", label)
                .tag("lambda-gha:owner", owner)
                .tag("lambda-gha:launched", "2026-01-01T00:00:00Z")
                .tag("lambda-gha:expires", expires)
                .send()
                .await
                .unwrap()
        }
    };
    let expired = launch("lambda-1-expire", "2026-01-01T02:10:00Z", "repo:octo/gpu").await;
    let live = launch("lambda-2-alive0", "2999-01-01T00:00:00Z", "repo:octo/gpu").await;
    // Another repository's launch in the same account, expired too: not this reaper's.
    let theirs = launch("lambda-4-theirs", "2026-01-01T02:10:00Z", "repo:octo/other").await;
    // Launch keys carry their time: one from 2001 was left by a killed launch.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx me";
    for name in [
        "lambda-gha-lambda-9-old000-t1000000000".to_owned(),
        format!("lambda-gha-lambda-9-new000-t{now}"),
        "my-laptop".to_owned(),
    ] {
        client.ssh_keys().add(&name, public).await.unwrap();
    }
    let github = FakeGitHub::start(true).await;
    github.register("lambda-2-alive0-0-0", true);
    let ghost = github.register("lambda-3-gone00-0-0", false);

    let out = std::process::Command::new(binary)
        .args(["reap", "--github-repository", "octo/gpu"])
        .env("LAMBDA_API_KEY", "reap-key")
        .env("LAMBDA_API_URL", sim.base_url())
        .env("GH_PAT", "reap-pat")
        .env("GITHUB_API_URL", github.uri())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 machine(s) of lambda-gha alive, 1 to end"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("terminated {}", expired[0])),
        "{stdout}"
    );
    assert!(
        stdout.contains("deleted runner lambda-3-gone00-0-0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deleted SSH key lambda-gha-lambda-9-old000-t1000000000"),
        "{stdout}"
    );
    let mut keys: Vec<String> = client
        .ssh_keys()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "ci".to_owned(),
            format!("lambda-gha-lambda-9-new000-t{now}"),
            "my-laptop".to_owned()
        ],
        "a fresh launch key (its launch may be under way) and other keys stay"
    );
    let mut billing = sim.ledger().still_billing;
    billing.sort();
    let mut expected = [live, theirs].concat();
    expected.sort();
    assert_eq!(
        billing, expected,
        "the live machine, and another repository's, still bill"
    );
    assert!(github.runners().iter().all(|r| r.id != ghost));
    assert_eq!(github.names(), ["lambda-2-alive0-0-0"]);
}
