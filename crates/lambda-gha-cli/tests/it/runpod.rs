//! `--provider runpod` against the RunPod fake: its types with stock, the account's pods,
//! terminating them, the reaper; Lambda's commands refused by name.

use std::process::Output;

use gha_runner_core::{CloudProvider, MachineSpec, tags};
use runpod_fake::FakeRunPod;

async fn run(fake: &FakeRunPod, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lambda-gha"));
    command
        .arg("--provider")
        .arg("runpod")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("RUNPOD_API_KEY", fake.api_key())
        .env("RUNPOD_API_URL", fake.base_url())
        .env("LAMBDA_API_TIME_SCALE", "50")
        .current_dir(std::env::temp_dir());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(out: &Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn launch(fake: &FakeRunPod, tags: &[(&str, &str)]) -> String {
    let client = gha_runner_runpod::Client::builder()
        .api_key(fake.api_key().to_owned())
        .base_url(fake.base_url())
        .time_scale(50.0)
        .build()
        .unwrap();
    let provider = gha_runner_runpod::RunPodProvider::new(client);
    let mut spec = MachineSpec::new("1x NVIDIA A40", "US-KS-2");
    spec.name = Some("trainer".into());
    for (key, value) in tags {
        spec.tags.insert((*key).into(), (*value).into());
    }
    provider.launch(&spec).await.unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn types_instances_terminate_and_reap_work_on_runpod() {
    let fake = FakeRunPod::builder()
        .time_scale(50.0)
        .start()
        .await
        .unwrap();
    fake.set_stock("NVIDIA A40", "EU-RO-1", 0);
    let (ok, types, _) = text(&run(&fake, &["types"]).await);
    assert!(ok);
    let a40 = types
        .lines()
        .find(|l| l.starts_with("1x NVIDIA A40 "))
        .unwrap_or_else(|| panic!("{types}"));
    assert!(
        a40.contains("0.40") && a40.contains("US-TX-3, US-KS-2"),
        "{a40}"
    );

    let id = launch(&fake, &[]).await;
    let (ok, listed, _) = text(&run(&fake, &["instances"]).await);
    assert!(ok);
    assert!(
        listed.contains(&id) && listed.contains("trainer"),
        "{listed}"
    );
    let (ok, json, _) = text(&run(&fake, &["instances", "--json"]).await);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["instance_type"], "1x NVIDIA A40");
    assert!(text(&run(&fake, &["terminate", &id]).await).0);
    assert!(fake.pods().is_empty());

    // An expired launch of this project is reaped; someone else's pod is left alone.
    let expired = launch(
        &fake,
        &[
            (tags::RUN, "lambda-1-x"),
            (tags::EXPIRES, "2026-01-01T00:00:00Z"),
        ],
    )
    .await;
    let theirs = launch(&fake, &[]).await;
    let (ok, reaped, stderr) = text(&run(&fake, &["reap"]).await);
    assert!(ok, "{reaped}\n{stderr}");
    assert!(
        reaped.contains(&format!("terminated {expired}")),
        "{reaped}"
    );
    assert_eq!(fake.pods(), [theirs]);

    let (ok, _, refused) = text(&run(&fake, &["ssh-keys", "list"]).await);
    assert!(!ok);
    assert!(refused.contains("`ssh-keys` is Lambda-only"), "{refused}");
    assert!(!refused.contains(fake.api_key()));
}

#[tokio::test]
async fn a_missing_key_or_a_clear_text_url_is_refused() {
    let fake = FakeRunPod::builder().start().await.unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lambda-gha"));
    let out = command
        .args(["--provider", "runpod", "instances"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUNPOD_API_KEY"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lambda-gha"))
        .args(["--provider", "runpod", "instances"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUNPOD_API_KEY", fake.api_key())
        .env("RUNPOD_API_URL", "http://runpod.example")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not https://"), "{stderr}");
}
