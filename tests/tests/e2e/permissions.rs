//! What a job can and cannot do on a machine booted as root by the real boot script: run as
//! the runner user (as every job step runs), it starts its runner, runs both hooks and reaches
//! the agent, but reads no secret the machine holds for root — the Lambda API key, any runner's
//! JIT configuration, cloud-init's copy of the user data, the agent's configuration — finds no
//! credential in any process's command line or environment, and cannot signal the agent or the
//! watchdog. The README's threat model claims what this test proves, and no more.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gha_runner_core::boot_script::RunnerCredential;
use lambda_gha_tests::machine::{run_in_machine, run_in_machine_fed};
use secrecy::SecretString;

use crate::boot::{Boot, Booted, boot};

/// A JIT configuration in GitHub's format whose RSA key is `secret`.
fn jit_config(id: u32, secret: &str) -> String {
    let b64 = |value: serde_json::Value| STANDARD.encode(value.to_string());
    let files = serde_json::json!({
        ".runner": b64(serde_json::json!({"agentId": id, "agentName": format!("r{id}"), "ephemeral": true})),
        ".credentials": b64(serde_json::json!({"scheme": "OAuth", "data": {"clientId": "c"}})),
        ".credentials_rsaparams": b64(serde_json::json!({"d": secret})),
    });
    STANDARD.encode(files.to_string())
}

/// Runs `script` in the machine as `user`; returns (success, stdout + stderr).
fn sh(machine: &Booted, user: &str, script: &str) -> (bool, String) {
    let out = run_in_machine(&machine.sim, &machine.id, user, script);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_reaches_the_agent_but_no_secret_and_cannot_stop_the_backstops() {
    let key = format!("LAMBDACANARY{:016x}", fastrand::u64(..));
    let secrets: Vec<String> = (0..2)
        .map(|i| format!("GHCANARY{:012x}-jit-{i}", fastrand::u64(..)))
        .collect();
    let configs: Vec<String> = secrets
        .iter()
        .zip(1..)
        .map(|(secret, id)| jit_config(id, secret))
        .collect();
    let machine = boot(Boot {
        credentials: configs
            .iter()
            .map(|c| RunnerCredential::Jit(SecretString::from(c.clone())))
            .collect(),
        agent_key: key.clone(),
        // What `userdata` installs as root is for the jobs to use.
        user_script: Some("mkdir -p /opt/tools && echo ready > /opt/tools/setting"),
        ..Boot::new("permissions", "")
    })
    .await;
    let up = machine
        .wait_for(
            "var/log/lambda-gha-boot.log",
            "boot complete",
            Duration::from_secs(60),
        )
        .await;
    assert!(up, "{}", machine.read("var/log/lambda-gha-boot.log"));
    for runner in 0..2 {
        let listening = machine
            .wait_for(
                &format!("home/runner/runner-{runner}/runner.log"),
                "Listening for Jobs",
                Duration::from_secs(30),
            )
            .await;
        assert!(
            listening,
            "runner {runner} did not start as the runner user:\n{}",
            machine.read(&format!("home/runner/runner-{runner}/runner.log"))
        );
    }

    // Both hooks, as the runner's Worker runs them, reach the agent.
    let (ok, out) = sh(
        &machine,
        "runner",
        "export LAMBDA_GHA_RUNNER=1
         bash --noprofile --norc -e -o pipefail /usr/local/lib/lambda-gha/job-started.sh
         bash --noprofile --norc -e -o pipefail /usr/local/lib/lambda-gha/job-completed.sh",
    );
    assert!(ok && !out.contains("warning"), "{out}");
    let heard = machine
        .wait_for(
            "var/log/lambda-gha-agent.jsonl",
            r#""hook":"job-completed","runner":1"#,
            Duration::from_secs(10),
        )
        .await;
    assert!(heard, "{}", machine.read("var/log/lambda-gha-agent.jsonl"));
    // What `userdata` made as root is readable to jobs (the boot's own umask 077 ends with
    // the secrets).
    let (ok, out) = sh(&machine, "runner", "cat /opt/tools/setting");
    assert!(ok && out == "ready\n", "{out}");
    // Nobody else reaches the agent's socket.
    let (ok, out) = sh(
        &machine,
        "nobody",
        "python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"/run/lambda-gha/agent.sock\")'",
    );
    assert!(!ok && out.contains("Permission denied"), "{out}");

    // Root-only files stay root's.
    for path in [
        "/etc/lambda-gha/agent.json",
        "/var/log/lambda-gha-boot.log",
        "/usr/local/lib/lambda-gha/terminate-self.sh",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([
        format!("/var/lib/cloud/instances/{}/user-data.txt", machine.id),
        format!("/var/lib/cloud/instances/{}/scripts/part-001", machine.id),
    ]) {
        let (ok, out) = sh(&machine, "runner", &format!("cat '{path}'"));
        assert!(!ok && out.contains("Permission denied"), "{path}: {out}");
    }
    let (ok, out) = sh(&machine, "runner", "ls /etc/lambda-gha");
    assert!(!ok, "the runner lists the secrets' directory: {out}");

    // No secret anywhere the runner user can read: files, command lines, environments. (Its
    // runners' own credential files, which the runner writes from a JIT configuration itself,
    // are the runner user's by design: they hold the decoded key, not the configuration.)
    // The secrets reach the scans on standard input, never on a command line.
    let scan = |user: &str, files: bool, secrets: &str| {
        let out = run_in_machine_fed(
            &machine.sim,
            &machine.id,
            user,
            &format!(
                "patterns=\"$(mktemp)\"; cat > \"$patterns\"
                 if {files}; then
                   grep -rlF -f \"$patterns\" / --exclude-dir=proc --exclude-dir=sys \\
                     --exclude-dir=dev 2>/dev/null | grep -vx \"$patterns\"
                 fi
                 for p in /proc/[0-9]*; do
                   tr '\\0' '\\n' 2>/dev/null < $p/cmdline; tr '\\0' '\\n' 2>/dev/null < $p/environ
                 done | grep -F -f \"$patterns\" | cut -c1-24
                 rm -f \"$patterns\""
            ),
            secrets,
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // The scans find what is there: each runner's own decoded key, which the real runner
    // keeps in its directory too, and the hook settings in the Listener's environment.
    assert!(
        scan("runner", true, &secrets[1]).contains("runner-1/.credentials_rsaparams"),
        "the file scan finds nothing"
    );
    assert!(
        !scan("runner", false, "ACTIONS_RUNNER_HOOK_JOB_STARTED=").is_empty(),
        "the process scan finds nothing"
    );
    let readable = [key.as_str(), &configs[0], &configs[1]].join("\n");
    assert_eq!(
        scan("runner", true, &readable),
        "",
        "the runner user can read a secret"
    );
    // Not even root sees a credential on a command line or in an environment.
    let all_secrets = [readable.as_str(), &secrets[0], &secrets[1]].join("\n");
    assert_eq!(
        scan("root", false, &all_secrets),
        "",
        "a credential on a command line or in an environment"
    );

    // The agent and the watchdog are root's: the runner cannot signal them.
    let (_, pids) = sh(
        &machine,
        "root",
        "pgrep -x lambda-gha; pgrep -f '^/bin/bash /usr/local/lib/lambda-gha/terminate-self'",
    );
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert!(pids.len() >= 2, "the agent and the watchdog run: {pids:?}");
    for pid in &pids {
        let (ok, out) = sh(&machine, "runner", &format!("kill -TERM {pid}"));
        assert!(
            !ok && out.contains("Operation not permitted"),
            "{pid}: {out}"
        );
    }

    // As root: cloud-init's copies are empty, the boot log holds no secret.
    let (ok, copies) = sh(
        &machine,
        "root",
        &format!(
            "cat /var/lib/cloud/instances/{}/user-data.txt /var/lib/cloud/instance/scripts/part-001",
            machine.id
        ),
    );
    assert!(
        ok && copies.is_empty(),
        "cloud-init's copies: {} bytes",
        copies.len()
    );
    let boot_log = machine.read("var/log/lambda-gha-boot.log");
    for secret in all_secrets.lines() {
        assert!(!boot_log.contains(secret), "a secret in the boot log");
    }
}
