//! Reading a machine's boot log: over a real OpenSSH server on 127.0.0.1 with the key the
//! launcher holds, from a simulated machine's sandbox, and, without a key of ours, the
//! command that reads it by hand.

use std::collections::BTreeMap;

use gha_runner_core::{Machine, MachineId, MachineState, boot_log::MachineAccess};
use lambda_gha_tests::{Sshd, SshdOptions};

fn machine(id: &str, ip: Option<&str>) -> Machine {
    Machine {
        id: MachineId::new(id),
        name: None,
        instance_type: "gpu_1x_a10".into(),
        region: "us-east-1".into(),
        state: MachineState::Running,
        ip: ip.map(str::to_owned),
        tags: BTreeMap::new(),
        price_cents_per_hour: None,
        health_failure: None,
    }
}

fn log_text() -> String {
    let lines: Vec<String> = (1..=100)
        .map(|n| format!("[lambda-gha boot] line {n}"))
        .collect();
    lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tail_comes_over_ssh_with_the_launch_key() {
    let sshd = Sshd::start(&SshdOptions::default()).expect("sshd");
    let log = sshd.home.join("lambda-gha-boot.log");
    std::fs::write(&log, log_text()).unwrap();
    let state = sshd.home.join("state");
    let access = MachineAccess::Ssh {
        user: sshd.user.clone(),
        port: sshd.port,
        identity: sshd.key.clone(),
        state_dir: state.clone(),
    };
    let m = machine("0123456789abcdef0123456789abcdef", Some("127.0.0.1"));
    let tail = access.tail(&m, log.to_str().unwrap(), 40).await.unwrap();
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 40);
    assert_eq!(lines[0], "[lambda-gha boot] line 61");
    assert_eq!(lines[39], "[lambda-gha boot] line 100");
    // The machine's host key was pinned in the launcher's own directory.
    assert!(
        state
            .join("known_hosts-0123456789abcdef0123456789abcdef")
            .exists()
    );

    // A key the machine does not accept: why, and how to read the log by hand.
    let stranger = sshd.home.join("stranger");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(status.success());
    let refused = MachineAccess::Ssh {
        user: sshd.user.clone(),
        port: sshd.port,
        identity: stranger,
        state_dir: state,
    };
    let error = refused
        .tail(&m, log.to_str().unwrap(), 40)
        .await
        .unwrap_err();
    assert!(
        error.contains("ssh ubuntu@127.0.0.1 sudo tail -n 100"),
        "{error}"
    );
}

#[tokio::test]
async fn a_sandbox_is_read_in_place_and_without_a_key_the_fix_is_named() {
    let root = std::env::temp_dir().join(format!("boot-log-{}", fastrand::u64(..)));
    let id = "fedcba9876543210fedcba9876543210";
    let dir = root.join(id).join("var/log");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lambda-gha-boot.log"), log_text()).unwrap();
    let sandbox = MachineAccess::Sandbox { root: root.clone() };
    let tail = sandbox.boot_log_tail(&machine(id, None), 3).await.unwrap();
    assert_eq!(
        tail,
        "[lambda-gha boot] line 98\n[lambda-gha boot] line 99\n[lambda-gha boot] line 100"
    );
    let _ = std::fs::remove_dir_all(&root);

    let none = MachineAccess::Unavailable {
        why: "the machines carry your SSH key `mine`".into(),
    };
    let error = none
        .boot_log_tail(&machine(id, Some("192.0.2.7")), 40)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        "the machines carry your SSH key `mine`: read it with \
         `ssh ubuntu@192.0.2.7 sudo tail -n 100 /var/log/lambda-gha-boot.log` before the machine ends"
    );
}

#[tokio::test]
async fn a_simulated_machines_own_programs_come_first_on_the_sandbox_path() {
    assert_eq!(
        gha_runner_core::transport::SIM_SANDBOX_BIN,
        lambda_cloud_sim::SANDBOX_BIN,
        "the transport looks where the simulator writes"
    );
    let root = std::env::temp_dir().join(format!("sandbox-path-{:016x}", fastrand::u64(..)));
    lambda_cloud_sim::write_fake_nvidia_smi(
        &root.join(lambda_cloud_sim::SANDBOX_BIN),
        "H100 80GB HBM3",
        2,
    )
    .unwrap();
    let sandbox = gha_runner_core::transport::Sandbox::new(&root);
    let listed = gha_runner_core::transport::capture(&sandbox, "nvidia-smi -L")
        .await
        .unwrap();
    let listed = String::from_utf8(listed).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.starts_with("GPU 0: NVIDIA H100 80GB HBM3"),
        "{listed}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[tokio::test]
async fn a_delivered_file_arrives_over_ssh_whole_and_root_only() {
    // The production path of the launcher's agent delivery: OpenSSH with the launch key, the
    // file written beside its place and renamed into it, in a directory only its owner reads.
    let sshd = Sshd::start(&SshdOptions::default()).expect("sshd");
    let access = MachineAccess::Ssh {
        user: sshd.user.clone(),
        port: sshd.port,
        identity: sshd.key.clone(),
        state_dir: sshd.home.join("state"),
    };
    let local = sshd.home.join("agent-to-send");
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&local, &body).unwrap();
    let remote = sshd.home.join("var/lib/lambda-gha/incoming/lambda-gha");
    let m = machine("0123456789abcdef0123456789abcdef", Some("127.0.0.1"));
    access
        .deliver(&m, &local, remote.to_str().unwrap())
        .await
        .unwrap();
    assert!(
        std::fs::read(&remote).unwrap() == body,
        "the bytes arrived as sent"
    );
    assert!(
        !remote.with_extension("part").exists(),
        "nothing half-written is left"
    );
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(remote.parent().unwrap()), 0o700);
    assert_eq!(mode(&remote), 0o600);

    // Without a key of ours on the machine, it says why.
    let none = MachineAccess::Unavailable {
        why: "the machines carry your SSH key `mine`".into(),
    };
    let error = none
        .deliver(&m, &local, remote.to_str().unwrap())
        .await
        .unwrap_err();
    assert!(error.contains("your SSH key `mine`"), "{error}");
}
