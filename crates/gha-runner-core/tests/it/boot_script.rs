//! The boot script: snapshot of what a machine runs, valid bash, secrets only in their
//! heredocs, and the size limit.

use std::io::Write;
use std::process::{Command, Stdio};

use gha_runner_core::{
    Candidate, boot_script::AgentDownload, boot_script::AgentSource, boot_script::BootScript,
    boot_script::MAX_USER_DATA_BYTES, boot_script::RunnerBoot, boot_script::RunnerCredential,
    boot_script::RunnerPrivileges, naming::RunnerNaming, outputs::Outputs,
    runner_release::RUNNER_DOWNLOAD_BASE, runner_release::RunnerPackage,
};
use secrecy::{ExposeSecret, SecretString};

const SECRETS: [&str; 4] = [
    "JIT-CONFIG-SECRET-0",
    "JIT-CONFIG-SECRET-1",
    "LAMBDA-API-KEY-SECRET",
    "RUNNER-DOWNLOAD-TOKEN-SECRET",
];

/// A stand-in for a provider's self-terminate script: read the machine's id, ask the API.
const SELF_TERMINATE: &str = "#!/bin/sh\n# The provider's call that ends this machine.\n\
    curl -fsS -X POST \"$API/terminate/$(cat /etc/machine-id)\"\n";

fn script(credentials: [RunnerCredential; 2], user_script: Option<&str>) -> BootScript {
    let naming = RunnerNaming::with_label("lambda-42-abc123").unwrap();
    let candidate = Candidate {
        instance_type: "gpu_1x_a10".into(),
        region: "us-east-1".into(),
    };
    let runners = credentials
        .into_iter()
        .enumerate()
        .map(|(i, credential)| RunnerBoot {
            name: naming.runner_name(0, i),
            labels: naming.labels(0, i, &candidate, &["cuda".into()]),
            credential,
            gpu_devices: Some(format!("{}", i * 4)),
        })
        .collect();
    BootScript {
        version: "0.1.0".into(),
        run_label: naming.label().into(),
        machine_tag: naming.machine_tag(0),
        registration_url: "https://github.com/octo/gpu".into(),
        // As the launcher pins it: v2.330.0 from actions/runner's releases.
        runner: RunnerPackage::from_release_notes(
            "2.330.0",
            &format!(
                "<!-- BEGIN SHA linux-x64 -->{}<!-- END SHA linux-x64 -->\n\
                 <!-- BEGIN SHA linux-arm64 -->{}<!-- END SHA linux-arm64 -->",
                "1".repeat(64),
                "2".repeat(64)
            ),
            RUNNER_DOWNLOAD_BASE,
        )
        .map(|mut package| {
            // As a GHES server may hand it out with its runner.
            if let Some(x64) = &mut package.x64 {
                x64.token = Some(SecretString::from(SECRETS[3]));
            }
            package
        })
        .unwrap(),
        agent: AgentSource::x86_64(AgentDownload {
            url: "https://github.com/lambda-gha/lambda-gha/releases/download/v0.1.0/lambda-gha-x86_64-unknown-linux-gnu".into(),
            sha256: "0".repeat(64),
        }),
        agent_config: SecretString::from(r#"{"provider":"lambda","api_key":"LAMBDA-API-KEY-SECRET"}"#),
        runners,
        privileges: RunnerPrivileges::default(),
        user_script: user_script.map(str::to_owned),
        runner_group: None,
        // A provider's script, as the boot script carries it (Lambda's is in gha-runner-lambda).
        self_terminate: Some(SELF_TERMINATE.to_owned()),
        max_lifetime_seconds: 7200,
        cache_mount: Some("/lambda/nfs/gha-cache-octo-gpu-us-east-1".into()),
    }
}

fn jit() -> [RunnerCredential; 2] {
    [
        RunnerCredential::Jit(SecretString::from(SECRETS[0])),
        RunnerCredential::Jit(SecretString::from(SECRETS[1])),
    ]
}

fn bash_syntax_ok(script: &str) {
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = bash.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_jit_machine_boot_script() {
    let rendered = script(jit(), Some("apt-get install -y jq\necho 'ready'"))
        .render()
        .unwrap();
    let text = rendered.expose_secret();
    bash_syntax_ok(text);
    insta::assert_snapshot!("boot_script_jit", text);
}

#[test]
fn secrets_appear_only_inside_their_heredocs_and_tracing_is_never_on() {
    let rendered = script(jit(), None).render().unwrap();
    let text = rendered.expose_secret();
    let mut inside = false;
    for line in text.lines() {
        if line.ends_with("<<'LAMBDA_GHA_SECRET'") {
            inside = true;
            continue;
        }
        if line == "LAMBDA_GHA_SECRET" {
            inside = false;
            continue;
        }
        for secret in SECRETS {
            assert!(
                !line.contains(secret) || inside,
                "secret outside a heredoc: {line}"
            );
        }
    }
    for secret in SECRETS {
        assert_eq!(text.matches(secret).count(), 1, "{secret} is written once");
    }
    let code = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'));
    assert!(
        code.clone()
            .all(|line| !line.contains("set -x") && !line.contains("xtrace")),
        "tracing would echo secrets"
    );
}

#[test]
fn reusable_runners_share_one_registration_token() {
    let token = || RunnerCredential::RegistrationToken(SecretString::from("AABB-REGISTRATION"));
    let rendered = script([token(), token()], None).render().unwrap();
    let text = rendered.expose_secret();
    bash_syntax_ok(text);
    assert_eq!(text.matches("AABB-REGISTRATION").count(), 1);
    assert!(text.contains("RUNNER_MODE=reusable"));
    assert!(text.contains(
        "RUNNER_LABELS=('lambda-42-abc123,lambda-42-abc123-0-0,gpu_1x_a10,us-east-1,gpu,cuda' "
    ));
}

#[test]
fn mixed_credentials_oversized_scripts_and_delimiters_are_refused() {
    let mixed = [
        RunnerCredential::Jit(SecretString::from("a")),
        RunnerCredential::RegistrationToken(SecretString::from("b")),
    ];
    assert!(script(mixed, None).render().is_err());
    let huge = "x".repeat(MAX_USER_DATA_BYTES);
    let error = script(jit(), Some(&huge)).render().unwrap_err().to_string();
    assert!(error.contains("over the 1000000-byte limit"), "{error}");
    let sneaky = script(jit(), Some("echo hi\nLAMBDA_GHA_USER_SCRIPT\nrm -rf /")).render();
    assert!(
        sneaky.is_err(),
        "a user script cannot close its heredoc early"
    );
}

#[test]
fn outputs_for_two_machines_with_two_runners_each() {
    let naming = RunnerNaming::with_label("lambda-42-abc123").unwrap();
    let launched: Vec<gha_runner_core::Launched> = ["0920582c7ff041399e34823a0be62549", "1a2b3c"]
        .iter()
        .enumerate()
        .map(|(i, id)| gha_runner_core::Launched {
            instance_index: i,
            machine: gha_runner_core::MachineId::new(*id),
            candidate: Candidate {
                instance_type: "gpu_1x_a10".into(),
                region: ["us-east-1", "us-west-1"][i].into(),
            },
        })
        .collect();
    let outputs = Outputs::new(&naming, &launched, 2);
    insta::assert_snapshot!("outputs_two_machines", outputs.github_output());
    assert_eq!(
        Outputs::new(&naming, &launched[..1], 1)
            .instance_id
            .as_deref(),
        Some("0920582c7ff041399e34823a0be62549")
    );
}

#[test]
fn a_delivered_agent_is_waited_for_and_checked_never_built_or_downloaded() {
    let mut delivered = script(jit(), None);
    delivered.agent = AgentSource::Delivered {
        path: "/tmp/lambda-gha".into(),
        sha256: "e".repeat(64),
    };
    let rendered = delivered.render().unwrap();
    let text = rendered.expose_secret();
    bash_syntax_ok(text);
    assert!(text.contains(&format!("AGENT_DELIVERED_SHA256='{}'", "e".repeat(64))));
    assert!(text.contains("AGENT_DELIVERY_PATH='/var/lib/lambda-gha/incoming/lambda-gha'"));
    assert!(text.contains("AGENT_X86_64_URL=''"), "nothing to download");
    assert!(
        !text.contains("rustup") && !text.contains("cargo "),
        "nothing to build"
    );

    delivered.agent = AgentSource::Delivered {
        path: "/tmp/lambda-gha".into(),
        sha256: "not-a-digest".into(),
    };
    let error = delivered.render().unwrap_err().to_string();
    assert!(error.contains("SHA-256"), "{error}");
}
