//! The simulator binary as its README says: started with a scenario, it prints its URL, serves
//! the API, and stops cleanly on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_a_scenario_and_stops_on_ctrl_c() {
    let mut child = Command::new(lambda_gha_tests::program(
        lambda_gha_tests::Program::Simulator,
    ))
    .current_dir(lambda_gha_tests::workspace_root())
    .args(["--listen", "127.0.0.1:0"])
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
        .time_scale(lambda_cloud::TimeScale::of(100.0))
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

/// Every process whose root directory is `root` (a root machine's merged filesystem).
fn processes_rooted_in(root: &std::path::Path) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_link(e.path().join("root")).is_ok_and(|r| r == root))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_machine_that_boots_as_root_is_a_machine_of_its_own_and_ends_whole() {
    let work = std::env::temp_dir().join(format!("root-machine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let rootfs = lambda_gha_tests::machine_rootfs();
    let sim = lambda_cloud_sim::Sim::builder()
        .scenario(lambda_gha_tests::rig::quick_boot_scenario().with_ssh_key("k"))
        .time_scale(lambda_cloud::TimeScale::of(50.0))
        .api_key("root-key")
        .user_data_sandbox(work.join("machines"))
        .machine_rootfs(&rootfs)
        .start()
        .await
        .unwrap();
    let client = sim.client().unwrap();
    let script = "#!/bin/bash
umask 022
id -u > /root/uid
useradd --create-home alice
stat -c '%U %a' /home/alice > /root/home
ls /proc | grep -c '^[0-9]' > /root/procs
stat -c '%a' /var/lib/cloud/instance/user-data.txt /var/lib/cloud/instance/scripts/part-001 > /root/cloud-init
# A daemon that leaves the process group, as an agent does.
setsid nohup sleep 1000 > /dev/null 2>&1 < /dev/null &
sudo -u alice -H bash -c 'id -un; umask' > /root/alice
";
    let id = client
        .instances()
        .launch("gpu_1x_a10", "us-east-1", "k")
        .user_data(script)
        .send()
        .await
        .unwrap()
        .remove(0);
    let machine = sim.sandbox_dir(&id).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !machine.join("root/alice").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            sim.user_data_log(&id).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let read = |path: &str| std::fs::read_to_string(machine.join(path)).unwrap();
    assert_eq!(read("root/uid"), "0\n", "user data runs as root");
    assert_eq!(
        read("root/home"),
        "alice 750\n",
        "useradd made a home it owns"
    );
    assert_eq!(read("root/alice"), "alice\n0022\n", "sudo switched users");
    assert_eq!(
        read("root/cloud-init"),
        "600\n700\n",
        "cloud-init's copies, root-only"
    );
    let procs: usize = read("root/procs").trim().parse().unwrap();
    assert!(
        procs < 10,
        "/proc shows the machine's processes only: {procs}"
    );
    // The machine's writes land in its own layer, never in the shared image.
    assert!(!rootfs.join("home/alice").exists());
    assert!(
        !std::fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .contains("alice")
    );

    let merged = work.join("machines").join(format!(".{id}.root"));
    assert!(
        processes_rooted_in(&merged) >= 2,
        "the machine's init and its daemon run"
    );
    client.instances().terminate([id.clone()]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while processes_rooted_in(&merged) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "terminating the machine ended everything in it, daemons too"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&work);
}
