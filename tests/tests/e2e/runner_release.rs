//! Which GitHub runner machines install, end to end: the real action resolves it once per
//! launch (the runner GitHub serves the repository, or the pinned `runner_version` from
//! actions/runner's release notes) and each machine's boot script downloads exactly that URL
//! and checks its SHA-256 before any runner starts.

use lambda_gha_tests::rig::quick_boot_scenario;
use lambda_gha_tests::{PINNED_RUNNER_VERSION, RUNNER_VERSION};

use crate::gpus::Stage;

/// The boot log of the one machine the stage launched.
fn boot_log(stage: &Stage) -> String {
    let ledger = stage.rig.sim.ledger();
    let machine = stage
        .rig
        .dir
        .join("machines")
        .join(ledger.entries[0].instance_id.as_str());
    std::fs::read_to_string(machine.join("var/log/lambda-gha-boot.log")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn machines_install_the_runner_github_serves_the_repository() {
    let stage = Stage::new("served-runner", quick_boot_scenario(), "9500", true).await;
    let started = stage.start(&[("instance_type", "gpu_1x_a10")]).await;
    assert!(started.success(), "{}\n{}", started.stdout, started.stderr);
    let log = boot_log(&stage);
    let served = format!("v{RUNNER_VERSION}/actions-runner-linux-x64-{RUNNER_VERSION}.tar.gz");
    assert!(
        log.contains(&served)
            && log.contains(&format!(
                "runner verified (sha256 {})",
                stage.internet.runner_sha256()
            )),
        "{log}"
    );
    stage.stop(&started).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_runner_version_is_the_one_machines_install() {
    let stage = Stage::new("pinned-runner", quick_boot_scenario(), "9600", true).await;
    let started = stage
        .start(&[
            ("instance_type", "gpu_1x_a10"),
            ("runner_version", PINNED_RUNNER_VERSION),
        ])
        .await;
    assert!(started.success(), "{}\n{}", started.stdout, started.stderr);
    let log = boot_log(&stage);
    let pinned =
        format!("v{PINNED_RUNNER_VERSION}/actions-runner-linux-x64-{PINNED_RUNNER_VERSION}.tar.gz");
    assert!(
        log.contains(&pinned) && log.contains("runner verified"),
        "{log}"
    );
    stage.stop(&started).await;
}
