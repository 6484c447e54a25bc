//! What is RunPod's own: the request a launch sends, tags and the boot script in the
//! environment, the pod-scoped key, the catalog.

use gha_runner_core::{CloudProvider, MachineSpec, MachineState};
use gha_runner_runpod::{BOOT_VARIABLE, Client, RunPodProvider, START_COMMAND, TAGS_VARIABLE};
use runpod_fake::FakeRunPod;
use secrecy::SecretString;

fn provider(fake: &FakeRunPod, key: &str) -> RunPodProvider {
    let client = Client::builder()
        .api_key(key.to_owned())
        .base_url(fake.base_url())
        .time_scale(fake.time_scale())
        .build()
        .unwrap();
    RunPodProvider::new(client)
}

#[tokio::test]
async fn a_launch_sends_a_valid_pod_with_its_boot_script_and_tags_in_the_environment() {
    let fake = FakeRunPod::builder()
        .time_scale(20.0)
        .start()
        .await
        .unwrap();
    let runpod = provider(&fake, fake.api_key());
    let mut spec = MachineSpec::new("2x NVIDIA H100 80GB HBM3", "EU-RO-1");
    spec.name = Some("lambda-7-m0".into());
    spec.tags.insert("lambda-gha:run".into(), "lambda-7".into());
    spec.boot_script = Some(SecretString::from("#!/bin/bash\necho booted\n"));
    let request = runpod.create_request(&spec).unwrap();
    insta::assert_debug_snapshot!(request);
    let id = runpod.launch(&spec).await.unwrap();
    assert_eq!(fake.invalid_requests(), Vec::<String>::new());
    let env = fake.pod_env(id.as_str()).unwrap();
    assert_eq!(env[TAGS_VARIABLE], r#"{"lambda-gha:run":"lambda-7"}"#);
    assert!(!env[BOOT_VARIABLE].contains("booted"), "encoded, not plain");
    let machine = runpod.describe(&id).await.unwrap();
    assert_eq!(machine.instance_type, "2x NVIDIA H100 80GB HBM3");
    assert_eq!(machine.region, "EU-RO-1");
    assert_eq!(machine.state, MachineState::Pending);
    assert_eq!(machine.price_cents_per_hour, Some(538));
    assert!(
        !format!("{machine:?}").contains(BOOT_VARIABLE),
        "no environment in Debug"
    );
    runpod.terminate(&[id]).await.unwrap();
    assert!(fake.pods().is_empty());
}

#[tokio::test]
async fn the_start_command_runs_the_boot_script_as_a_container_and_the_pod_key_reaches_only_its_pod()
 {
    let dir = std::env::temp_dir().join(format!("runpod-pods-{:08x}", fastrand::u32(..)));
    let fake = FakeRunPod::builder()
        .time_scale(20.0)
        .run_containers(&dir)
        .start()
        .await
        .unwrap();
    let runpod = provider(&fake, fake.api_key());
    let mut spec = MachineSpec::new("1x NVIDIA A40", "US-TX-3");
    spec.tags.insert("lambda-gha:run".into(), "lambda-8".into());
    // The script proves it ran with RunPod's variables, and that the boot variable is gone
    // from what it starts.
    spec.boot_script = Some(SecretString::from(
        "#!/bin/bash\necho \"pod=$RUNPOD_POD_ID gpus=$RUNPOD_GPU_COUNT boot=${LAMBDA_GHA_BOOT:-unset}\"\nnvidia-smi -L\n",
    ));
    let id = runpod.launch(&spec).await.unwrap();
    let mut log = String::new();
    // Up to 10 s: a loaded machine may be slow to start bash.
    for _ in 0..400 {
        log = fake.container_log(id.as_str()).unwrap_or_default();
        if log.contains("GPU 0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        log.contains(&format!("pod={id} gpus=1 boot=unset")),
        "{log}"
    );
    assert!(log.contains("GPU 0: NVIDIA A40"), "{log}");
    // The pod keeps running after its boot script (its start command waits).
    assert!(START_COMMAND.contains("while :; do sleep 3600 & wait; done"));
    // The pod's own key: its pod and nothing else.
    let env_key = {
        let sandbox = fake.container_dir(id.as_str()).unwrap();
        assert!(sandbox.is_dir());
        // The fake hands the key to the container only; tests read it the way the pod does.
        std::process::Command::new("bash")
            .args([
                "-c",
                "tr '\\0' '\\n' < /proc/$0/environ | sed -n 's/^RUNPOD_API_KEY=//p'",
            ])
            .arg(pid_of_container(&sandbox))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap()
    };
    assert!(env_key.starts_with("rpa_pod_"), "{env_key:?}");
    let own = provider(&fake, &env_key);
    assert_eq!(own.describe(&id).await.unwrap().id, id);
    let others = own.list_tagged("lambda-gha:run", None).await.unwrap_err();
    assert_eq!(
        others.kind,
        gha_runner_core::ProviderErrorKind::Unauthorized,
        "{others}"
    );
    own.terminate(std::slice::from_ref(&id)).await.unwrap();
    assert!(fake.pods().is_empty());
    drop(fake);
    let _ = std::fs::remove_dir_all(dir);
}

/// The pid of a process running in a sandboxed container (its environment names the sandbox).
fn pid_of_container(sandbox: &std::path::Path) -> String {
    let marker = format!("SIM_MACHINE_SANDBOX={}", sandbox.display());
    for _ in 0..200 {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.bytes().all(|b| b.is_ascii_digit())
                && std::fs::read(entry.path().join("environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
            {
                return name;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("no process of {}", sandbox.display());
}

#[tokio::test]
async fn the_catalog_lists_counts_up_to_the_largest_pod_with_stock_per_data_center() {
    let fake = FakeRunPod::builder().start().await.unwrap();
    fake.set_stock("NVIDIA A40", "EU-RO-1", 0);
    let runpod = provider(&fake, fake.api_key());
    let catalog = runpod.catalog().await.unwrap();
    assert_eq!(catalog.regions, ["US-TX-3", "US-KS-2", "EU-RO-1"]);
    let a40 = catalog.offering("4x NVIDIA A40").unwrap();
    assert_eq!(a40.gpus, 4);
    assert_eq!(a40.price_cents_per_hour, 160);
    assert_eq!(a40.regions_available, ["US-TX-3", "US-KS-2"]);
    assert!(catalog.offering("9x NVIDIA A40").is_none());
    assert_eq!(fake.invalid_requests(), Vec::<String>::new());
}
