//! The fake GitHub runner (`tests/fake-runner/`) behaves as the real one does where the boot
//! script depends on it: checked here on its own, outside any machine, so that a test passing
//! against it means something. Each behaviour's source in actions/runner is named in the
//! fake's comments.

use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A fake runner laid out in a fresh directory, with a simulator directory of its own.
struct Runner {
    dir: PathBuf,
    sim: PathBuf,
}

impl Runner {
    fn new(name: &str) -> Runner {
        let root = std::env::temp_dir().join(format!("fake-runner-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("runner");
        lambda_gha_tests::write_fake_runner(&dir);
        let sim = root.join("sim");
        std::fs::create_dir_all(sim.join("shared")).unwrap();
        Runner { dir, sim }
    }

    /// `script` (e.g. `./run.sh`) in the runner's directory, as root allowed to run it.
    fn run(&self, script: &str, args: &[&str], allow_root: bool) -> Output {
        let mut command = Command::new(self.dir.join(script));
        command
            .args(args)
            .current_dir(&self.dir)
            .env("FAKE_RUNNER_SIM_DIR", &self.sim);
        if allow_root {
            command.env("RUNNER_ALLOW_RUNASROOT", "1");
        } else {
            command.env_remove("RUNNER_ALLOW_RUNASROOT");
        }
        command.output().unwrap()
    }

    fn jobs(&self, jobs: &str) {
        std::fs::write(self.sim.join("shared/fake-jobs"), jobs).unwrap();
    }

    fn hook(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, body).unwrap();
        path
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.join(path)).unwrap_or_default()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(root) = self.dir.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A JIT configuration in GitHub's format (actions/runner Runner.cs decodes it).
fn jit_config() -> String {
    let b64 = |value: serde_json::Value| STANDARD.encode(value.to_string());
    let files = serde_json::json!({
        ".runner": b64(serde_json::json!({"agentId": 1, "agentName": "jit", "ephemeral": true})),
        ".credentials": b64(serde_json::json!({"scheme": "OAuth"})),
    });
    STANDARD.encode(files.to_string())
}

#[test]
fn it_refuses_root_unknown_flags_and_an_unconfigured_run() {
    let runner = Runner::new("refuses");
    // run-helper.sh.template: "Must not run interactively with sudo"; run.sh then exits 0.
    let out = runner.run("run.sh", &[], false);
    assert!(
        out.status.success() && text(&out).contains("Must not run interactively with sudo"),
        "{}",
        text(&out)
    );
    let out = runner.run("config.sh", &["--url", "u", "--token", "t"], false);
    assert!(!out.status.success() && text(&out).contains("Must not run with sudo"));
    // CommandSettings.Validate: unknown arguments are refused.
    let out = runner.run(
        "config.sh",
        &["--unattended", "--url", "u", "--token", "t", "--bogus", "x"],
        true,
    );
    assert!(
        !out.status.success()
            && text(&out).contains("Unrecognized command-line input arguments: 'bogus'"),
        "{}",
        text(&out)
    );
    // Runner.cs: `run` needs a configuration.
    let out = runner.run("bin/Runner.Listener", &["run"], true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Runner is not configured."));
}

#[test]
fn hooks_run_after_set_up_as_bash_e_and_a_missing_or_failing_one_fails_the_job() {
    let runner = Runner::new("hooks");
    let seen = runner.dir.join("seen");
    let good = runner.hook(
        "started.sh",
        &format!(
            "printf '%s' \"$LITERAL\" > {}\nfalse\necho not reached >> {}\n",
            seen.display(),
            seen.display()
        ),
    );
    // `.env` is read literally: no expansion, no command substitution.
    std::fs::write(
        runner.dir.join(".env"),
        format!(
            "ACTIONS_RUNNER_HOOK_JOB_STARTED={}\nLITERAL=$(echo expanded) $HOME\n",
            good.display()
        ),
    )
    .unwrap();
    let out = runner.run(
        "config.sh",
        &[
            "--unattended",
            "--url",
            "https://github.com/o/r",
            "--token",
            "t",
            "--name",
            "r0",
            "--ephemeral",
        ],
        true,
    );
    assert!(out.status.success(), "{}", text(&out));
    runner.jobs("0 0 setup=0\n");
    let out = runner.run("run.sh", &[], true);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "$(echo expanded) $HOME",
        "the hook ran with .env's values as written, and stopped at its first failure (bash -e)"
    );
    assert!(
        runner
            .read("_diag/jobs.log")
            .contains("job 1: failed: job-started hook exited 1"),
        "{}",
        runner.read("_diag/jobs.log")
    );
    assert!(
        text(&out).contains("Exiting runner..."),
        "ephemeral: one job, then exit 0"
    );

    // A hook that is not there fails the job (JobHookProvider.cs: "File doesn't exist").
    let runner = Runner::new("missing-hook");
    std::fs::write(
        runner.dir.join(".env"),
        "ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/nonexistent/job-completed.sh\n",
    )
    .unwrap();
    runner.jobs("0 0 setup=0\n");
    let out = runner.run("run.sh", &["--jitconfig", &jit_config()], true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        runner.read("_diag/jobs.log").contains("File doesn't exist"),
        "{}",
        runner.read("_diag/jobs.log")
    );
    assert!(
        runner.read(".runner").contains("\"ephemeral\":true"),
        "the JIT configuration was unpacked as the runner's files"
    );
}
