//! `lambda-gha run` over real OpenSSH: an `sshd` on 127.0.0.1 started by the test stands in
//! for the machine the simulator launches (its instances report 127.0.0.1 as their IP).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lambda_cloud_sim::{Scenario, Sim};
use lambda_gha_tests::{Sshd, SshdOptions};
use serde_json::Value;

const SCALE: lambda_cloud::TimeScale = lambda_cloud::TimeScale::of(100.0);

struct Fixture {
    sim: Sim,
    sshd: Sshd,
    dir: PathBuf,
}

impl Fixture {
    /// The machine: an `sshd` whose `nvidia-smi` shows the one GPU of a gpu_1x_a10.
    async fn new(options: SshdOptions) -> Fixture {
        Fixture::booting_for(options, None).await
    }

    /// As [`Fixture::new`], with machines that take `boot_seconds` (simulated) to boot.
    async fn booting_for(options: SshdOptions, boot_seconds: Option<f64>) -> Fixture {
        let sshd = Sshd::start(&SshdOptions {
            gpus: Some(1),
            ..options
        })
        .expect("sshd");
        let mut scenario = Scenario::default()
            .with_public_ip("127.0.0.1")
            .with_public_key("laptop", &sshd.public_key);
        if let Some(seconds) = boot_seconds {
            scenario = scenario.with_boot_seconds(seconds);
        }
        let sim = Sim::builder()
            .scenario(scenario)
            .time_scale(SCALE)
            .api_key("run-key")
            .start()
            .await
            .expect("sim");
        let dir = std::env::temp_dir().join(format!("lambda-gha-run-{:016x}", fastrand::u64(..)));
        std::fs::create_dir_all(dir.join("state")).expect("mkdir");
        Fixture { sim, sshd, dir }
    }

    /// A project directory named `name` with `files` (path, contents, executable).
    fn project(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.dir.join(name);
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        root
    }

    /// `lambda-gha --json ARGS` against the simulator.
    fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-gha"));
        command
            .arg("--json")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("XDG_STATE_HOME", self.dir.join("state"))
            .env("USER", "tester")
            .env("LAMBDA_API_KEY", "run-key")
            .env("LAMBDA_API_URL", self.sim.base_url())
            .env("LAMBDA_API_TIME_SCALE", SCALE.to_string())
            .current_dir(&self.dir);
        command
    }

    /// `lambda-gha --json ARGS` on `project`, reaching the machine through the test's sshd.
    fn command(&self, project: &Path, args: &[&str]) -> Command {
        let mut command = self.cli(args);
        command
            .args(["--project", project.to_str().unwrap()])
            .args(["--ssh-user", &self.sshd.user])
            .args(["--ssh-port", &self.sshd.port.to_string()])
            .args(["--identity", self.sshd.key.to_str().unwrap()]);
        command
    }

    /// `run SCRIPT` on a new gpu_1x_a10 launched with the test's key, plus `extra`.
    fn launch_args<'a>(script: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run", script, "--type", "gpu_1x_a10", "--ssh-key", "laptop"];
        args.extend_from_slice(extra);
        args
    }

    async fn run(&self, project: &Path, args: &[&str]) -> (Output, Value) {
        let mut command = self.command(project, args);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let summary = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "no JSON summary ({e}):\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output, summary)
    }

    fn assert_nothing_billing(&self) {
        let ledger = self.sim.ledger();
        assert!(ledger.still_billing.is_empty(), "still billing: {ledger:?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const TRAIN: &str = "set -e\n\
    test ! -e secret/token.txt || { echo 'an ignored file was uploaded'; exit 9; }\n\
    mkdir -p results/plots\n\
    echo \"answer=$(cat data.txt)\" > results/out.txt\n\
    echo plot > results/plots/loss.txt\n\
    echo trained\n";

#[tokio::test(flavor = "multi_thread")]
async fn run_uploads_what_git_tracks_runs_downloads_and_terminates() {
    let world = Fixture::new(SshdOptions::default()).await;
    let project = world.project(
        "proj",
        &[
            (".gitignore", "secret/\nresults/\n"),
            ("data.txt", "42"),
            ("secret/token.txt", "do-not-upload"),
            ("train.sh", TRAIN),
        ],
    );
    let (output, summary) = world
        .run(
            &project,
            &Fixture::launch_args(
                "train.sh",
                &[
                    "--download",
                    "results",
                    "--download",
                    "missing.txt",
                    "--gpu-check",
                    "nvidia-smi -L | grep -q A10",
                ],
            ),
        )
        .await;
    assert!(output.status.success(), "{summary:#}\n{}", stderr(&output));
    assert!(
        stderr(&output).contains("trained"),
        "remote output streamed"
    );
    assert_eq!(summary["machine"]["state"], "terminated", "{summary:#}");
    assert_eq!(summary["upload"]["files"], 3, "secret/ stayed home");
    assert_eq!(summary["downloaded_files"], 2);
    assert_eq!(summary["missing_downloads"][0], "missing.txt");
    assert_eq!(
        std::fs::read_to_string(project.join("results/out.txt")).unwrap(),
        "answer=42\n"
    );
    assert!(project.join("results/plots/loss.txt").exists());
    let phases: Vec<&str> = summary["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "launch",
            "boot",
            "connect",
            "gpu check",
            "upload",
            "run",
            "download",
            "terminate"
        ]
    );
    assert_eq!(
        summary["gpu_check"], "nvidia-smi sees all 1 GPUs; gpu_check passed",
        "the GPU check ran over SSH"
    );
    assert!(summary["cost_usd"].as_f64().unwrap() > 0.0);
    world.assert_nothing_billing();
    // The machine's copy: uploaded files with their modes, nothing ignored.
    let remote = world.sshd.home.join("proj");
    assert!(remote.join("train.sh").exists() && !remote.join("secret").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_script_gives_its_exit_code_and_the_machine_is_terminated() {
    let world = Fixture::new(SshdOptions::default()).await;
    let project = world.project(
        "failing",
        &[("fail.sh", "echo 'about to fail' >&2\nexit 7\n")],
    );
    let (output, summary) = world
        .run(&project, &Fixture::launch_args("fail.sh", &[]))
        .await;
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert!(stderr(&output).contains("about to fail"));
    assert_eq!(summary["exit_code"], 7);
    assert_eq!(summary["failed_step"], "bash fail.sh");
    assert_eq!(summary["machine"]["state"], "terminated");
    world.assert_nothing_billing();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_machine_gets_only_the_changed_files_next_time() {
    let world = Fixture::new(SshdOptions::default()).await;
    let mut files: Vec<(String, String)> = (0..20)
        .map(|i| (format!("src/m{i}.py"), format!("x = {i}\n")))
        .collect();
    files.push(("data.txt".into(), "1".into()));
    files.push(("train.sh".into(), TRAIN.into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let project = world.project("kept", &refs);
    let (output, first) = world
        .run(
            &project,
            &Fixture::launch_args("train.sh", &["--keep", "--name", "kept-box"]),
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(first["machine"]["state"], "left-running");
    assert_eq!(first["upload"]["files_sent"], 22);
    let id = first["instance_id"].as_str().unwrap().to_owned();

    // One file changes (a different size, so even a same-second edit counts). The machine
    // is named by its name this time.
    std::fs::write(project.join("data.txt"), "12345").unwrap();
    let (output, second) = world
        .run(&project, &["run", "train.sh", "--instance", "kept-box"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(second["upload"]["files"], 22);
    assert_eq!(second["upload"]["files_sent"], 1, "{second:#}");
    assert_eq!(
        second["machine"]["state"], "left-running",
        "not ours to end"
    );
    assert_eq!(
        std::fs::read_to_string(world.sshd.home.join("kept/results/out.txt")).unwrap(),
        "answer=12345\n"
    );

    assert_eq!(second["instance_id"].as_str(), Some(id.as_str()));
    let terminated = world.cli(&["terminate", "kept-box"]).output().unwrap();
    assert!(terminated.status.success(), "{}", stderr(&terminated));
    world.assert_nothing_billing();
}

#[tokio::test(flavor = "multi_thread")]
async fn files_holding_the_api_key_are_never_uploaded() {
    let world = Fixture::new(SshdOptions::default()).await;
    // Not ignored by git, and holding the key this run uses (`run-key`).
    let project = world.project(
        "keyed",
        &[
            (".env", "LAMBDA_API_KEY=run-key\n"),
            ("conf/settings.toml", "api_key = \"run-key\"\n"),
            (
                "train.sh",
                "ls -a; test ! -e .env && test ! -e conf/settings.toml\n",
            ),
        ],
    );
    let (output, summary) = world
        .run(&project, &Fixture::launch_args("train.sh", &[]))
        .await;
    assert!(output.status.success(), "{summary:#}\n{}", stderr(&output));
    assert_eq!(
        summary["withheld"],
        serde_json::json!([".env", "conf/settings.toml"])
    );
    assert_eq!(summary["upload"]["files"], 1, "{summary:#}");
    let remote = world.sshd.home.join("keyed");
    assert!(remote.join("train.sh").exists());
    assert!(!remote.join(".env").exists() && !remote.join("conf/settings.toml").exists());
    world.assert_nothing_billing();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_url_that_would_send_the_key_in_clear_is_refused_before_anything() {
    let world = Fixture::new(SshdOptions::default()).await;
    let project = world.project("clear", &[("train.sh", "true\n")]);
    let mut command = world.command(&project, &Fixture::launch_args("train.sh", &[]));
    let output = command
        .env("LAMBDA_API_URL", "http://api.lambda.example/")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("is not https://") && stderr(&output).contains("LAMBDA_API_URL"),
        "{}",
        stderr(&output)
    );
    assert!(world.sim.ledger().entries.is_empty(), "nothing launched");
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_pins_host_keys_per_instance_so_a_reused_address_works() {
    let world = Fixture::new(SshdOptions::default()).await;
    let client = world.sim.client().unwrap();
    let port = world.sshd.port.to_string();
    let ssh = |id: &str| {
        world
            .cli(&[
                "ssh",
                id,
                "--port",
                &port,
                "--user",
                &world.sshd.user,
                "--identity",
                world.sshd.key.to_str().unwrap(),
                "--",
                "echo",
                "hello-from-the-machine",
            ])
            .output()
            .unwrap()
    };
    let launch = || async {
        let id = client
            .instances()
            .launch("gpu_1x_a10", "us-east-1", "laptop")
            .send()
            .await
            .unwrap()
            .remove(0);
        let waited = world.cli(&["wait", id.as_str()]).output().unwrap();
        assert!(waited.status.success(), "{}", stderr(&waited));
        id
    };
    let pinned = |id: &str| world.dir.join("state/lambda-gha/known_hosts").join(id);

    // Machine A: its key is accepted on first use and pinned for A alone.
    let first = launch().await;
    let output = ssh(first.as_str());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "hello-from-the-machine"
    );
    assert!(std::fs::read_to_string(pinned(first.as_str())).is_ok_and(|t| t.contains("ssh-")));
    // A's key changes (as if another machine answered at its address): refused for A.
    std::fs::write(
        pinned(first.as_str()),
        format!("[127.0.0.1]:{port} {}\n", world.sshd.public_key.trim()),
    )
    .unwrap();
    let refused = ssh(first.as_str());
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("IDENTIFICATION HAS CHANGED"),
        "{}",
        stderr(&refused)
    );
    // Machine B at the same address (Lambda reuses them), whatever A's file says: it works.
    let second = launch().await;
    let output = ssh(second.as_str());
    assert!(output.status.success(), "{}", stderr(&output));
    client.instances().terminate([first, second]).await.unwrap();
}

/// A package "installed system-wide" on the machine (the test's sshd runs on this host): a
/// module in the system Python's site-packages, as Lambda Stack installs PyTorch. Removed on
/// drop.
struct SystemPackage {
    name: String,
    dir: PathBuf,
}

impl SystemPackage {
    fn install() -> SystemPackage {
        let site = Command::new("/usr/bin/python3")
            .args(["-c", "import site; print(site.getsitepackages()[0])"])
            .output()
            .expect("the system python3");
        let site = PathBuf::from(String::from_utf8_lossy(&site.stdout).trim());
        let name = format!("lambda_stack_probe_{:08x}", fastrand::u32(..));
        let dir = site.join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("__init__.py"), "WHERE = 'system'\n").unwrap();
        SystemPackage { name, dir }
    }
}

impl Drop for SystemPackage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_project_uses_the_machines_system_packages_unless_isolated() {
    let package = SystemPackage::install();
    // A real uv (from PyPI) on the machine's PATH.
    let bin = std::env::temp_dir().join(format!("lambda-gha-uv-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(lambda_gha_tests::uv_binary(), bin.join("uv")).unwrap();
    let world = Fixture::new(SshdOptions {
        path_prefix: Some(bin.clone()),
        ..SshdOptions::default()
    })
    .await;
    let pyproject = "[project]\nname = \"probe\"\nversion = \"0.1.0\"\n\
                     requires-python = \">=3.8\"\ndependencies = []\n";
    let train = format!(
        "import {name} as p\nprint('imported', p.WHERE, 'from', p.__file__)\n",
        name = package.name
    );
    let files = [("pyproject.toml", pyproject), ("train.py", train.as_str())];

    let project = world.project("python", &files);
    let (output, summary) = world
        .run(&project, &Fixture::launch_args("train.py", &[]))
        .await;
    assert!(output.status.success(), "{summary:#}\n{}", stderr(&output));
    let printed = stderr(&output);
    let from_system = format!("imported system from {}", package.dir.display());
    assert!(printed.contains(&from_system), "{printed}");
    let phases: Vec<&str> = summary["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert!(
        phases.contains(&"setup"),
        "uv sync timed as setup: {phases:?}"
    );
    // Nothing of it was installed into the project's venv.
    let venv = world.sshd.home.join("python/.venv");
    assert!(venv.join("pyvenv.cfg").exists(), "uv sync made the venv");
    let copies = Command::new("find")
        .arg(&venv)
        .args(["-name", &format!("{}*", package.name)])
        .output()
        .unwrap();
    assert!(
        copies.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&copies.stdout)
    );

    // `--isolated`: a venv of its own only, which does not see it.
    let project = world.project("python-isolated", &files);
    let (output, summary) = world
        .run(&project, &Fixture::launch_args("train.py", &["--isolated"]))
        .await;
    assert!(!output.status.success());
    assert_eq!(summary["failed_step"], "uv run train.py", "{summary:#}");
    assert!(
        stderr(&output).contains("ModuleNotFoundError"),
        "{}",
        stderr(&output)
    );
    world.assert_nothing_billing();
    let _ = std::fs::remove_dir_all(bin);
}

/// Where a run is when it gets a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// The machine is launched and still booting.
    Boot,
    /// The project is being unpacked on the machine.
    Upload,
    /// The script runs.
    Run,
}

/// Sends each of `signals` (`kill -NAME`, expected exit code) to a run at `moment`, one run
/// each: the machine is terminated, and the exit code and summary name the signal.
async fn signal_during(moment: Moment, signals: &[(&str, i32)]) {
    // The machine's `tar` announces the upload and then stalls; the script announces itself
    // and runs for a minute: either phase lasts as long as the test needs.
    let bin = std::env::temp_dir().join(format!("lambda-gha-slow-tar-{:016x}", fastrand::u64(..)));
    std::fs::create_dir_all(&bin).unwrap();
    let tar = bin.join("tar");
    let stall = if moment == Moment::Upload {
        "touch \"$HOME/upload-started\"; sleep 60"
    } else {
        ":"
    };
    std::fs::write(
        &tar,
        format!("#!/bin/sh\ncase \"$*\" in *-x*) {stall};; esac\nexec /usr/bin/tar \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Boots of 50 simulated minutes (30 s here) for the boot case: the signal lands in it.
    let boot = (moment == Moment::Boot).then_some(3000.0);
    let world = Fixture::booting_for(
        SshdOptions {
            path_prefix: Some(bin.clone()),
            ..SshdOptions::default()
        },
        boot,
    )
    .await;
    for (signal, code) in signals {
        let name = format!("signal-{signal}-{moment:?}").to_lowercase();
        let project = world.project(
            &name,
            &[("train.sh", "touch \"$HOME/run-started\"; sleep 60\n")],
        );
        let _ = std::fs::remove_file(world.sshd.home.join("upload-started"));
        let _ = std::fs::remove_file(world.sshd.home.join("run-started"));
        let mut command = world.command(&project, &Fixture::launch_args("train.sh", &[]));
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let reached = || match moment {
            Moment::Boot => world.sim.ledger().entries.len() == world_runs(&world),
            Moment::Upload => world.sshd.home.join("upload-started").exists(),
            Moment::Run => world.sshd.home.join("run-started").exists(),
        };
        while !reached() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the run never reached {moment:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(world.sim.ledger().still_billing.len(), 1, "a machine is up");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(*code), "{}", stderr(&output));
        assert_eq!(summary["interrupted"], true);
        assert_eq!(summary["signal"], format!("SIG{signal}"));
        assert_eq!(summary["machine"]["state"], "terminated", "{summary:#}");
        assert!(
            stderr(&output).contains(&format!("interrupted by SIG{signal}: cleaning up")),
            "{}",
            stderr(&output)
        );
        world.assert_nothing_billing();
    }
    let _ = std::fs::remove_dir_all(bin);
}

/// How many machines the runs so far launched, this one included.
fn world_runs(world: &Fixture) -> usize {
    std::fs::read_dir(&world.dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("signal-"))
            .count()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_the_upload_terminates_the_machine() {
    signal_during(Moment::Upload, &[("INT", 130)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sighup_during_the_boot_terminate_the_machine() {
    signal_during(Moment::Boot, &[("TERM", 143), ("HUP", 129)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sighup_during_the_upload_terminate_the_machine() {
    signal_during(Moment::Upload, &[("TERM", 143), ("HUP", 129)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_and_sighup_while_the_script_runs_terminate_the_machine() {
    signal_during(Moment::Run, &[("TERM", 143), ("HUP", 129)]).await;
}
