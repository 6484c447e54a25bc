//! Inputs to the `lambda-gha` command that cannot work: each fails with a message that names
//! the fix, and not one machine is launched. The table of messages is docs/troubleshooting.md's
//! table (`LAMBDA_GHA_UPDATE_README=1` rewrites it).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use lambda_cloud_sim::{Scenario, Sim};

struct Case {
    args: &'static [&'static str],
    /// Environment changes: a value, or `None` to remove the variable.
    env: &'static [(&'static str, Option<&'static str>)],
    says: &'static str,
}

const RUN: &[&str] = &["run", "train.py", "--type", "gpu_1x_a10"];

fn cases() -> Vec<Case> {
    let case = |args, says| Case {
        args,
        env: &[],
        says,
    };
    vec![
        case(&["run"], "name what to run"),
        case(&["run", "train.py"], "name an instance type"),
        case(
            &["run", "train.py", "--type", "gpu_1x_a01"],
            "did you mean `gpu_1x_a10`",
        ),
        case(
            &[
                "run",
                "train.py",
                "--type",
                "gpu_1x_a10",
                "--region",
                "us-east-9",
            ],
            "did you mean `us-east-1`",
        ),
        case(
            &["run", "missing.py", "--type", "gpu_1x_a10"],
            "give a path inside it",
        ),
        case(&["run", "out/x.py", "--type", "gpu_1x_a10"], "un-ignore it"),
        case(
            &["run", "notes.txt", "--type", "gpu_1x_a10"],
            "use a .py or .sh file",
        ),
        case(
            &[
                "run",
                "train.py",
                "--type",
                "gpu_1x_a10",
                "--download",
                "../etc",
            ],
            "give a path inside the project",
        ),
        case(
            &[
                "run",
                "train.py",
                "--type",
                "gpu_1x_a10",
                "--identity",
                "/no/such/key",
            ],
            "no such file",
        ),
        case(
            &[
                "run",
                "train.py",
                "--type",
                "gpu_1x_a10",
                "--capacity-wait",
                "2 hours",
            ],
            "write e.g.",
        ),
        case(
            &[
                "run",
                "train.py",
                "--type",
                "gpu_1x_a10",
                "--project",
                "/no/such/dir",
            ],
            "no such directory",
        ),
        case(&["launch", "--type", "gpu_1x_a10"], "name an SSH key"),
        case(
            &[
                "launch",
                "--type",
                "gpu_1x_a10",
                "--ssh-key",
                "me",
                "--tag",
                "team",
            ],
            "write key=value",
        ),
        Case {
            args: RUN,
            env: &[("LAMBDA_API_KEY", None)],
            says: "create a key at https://cloud.lambda.ai/api-keys",
        },
        Case {
            args: RUN,
            env: &[("LAMBDA_API_KEY", Some("secret_wrong"))],
            says: "check the API key",
        },
    ]
}

fn project(dir: &Path) {
    for (path, text) in [
        (".gitignore", "out/\n"),
        ("train.py", "print('hi')\n"),
        ("notes.txt", "notes\n"),
        ("out/x.py", "print('ignored')\n"),
    ] {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// The line of `stderr` that says `says`, without the command's prefixes.
fn message(stderr: &str, says: &str) -> Option<String> {
    stderr.lines().find(|line| line.contains(says)).map(|line| {
        line.trim_start_matches("lambda-gha: ")
            .trim_start_matches("error: ")
            .trim_start_matches("error")
            .trim()
            .to_owned()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_name_the_fix_and_launch_nothing() {
    let sim = Sim::builder()
        .scenario(Scenario::default().with_ssh_key("me"))
        .time_scale(lambda_cloud::TimeScale::of(100.0))
        .api_key("cli-key")
        .start()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("lambda-gha-bad-{:016x}", fastrand::u64(..)));
    project(&dir);
    let mut table = String::from("| command | message |\n|---|---|\n");
    for case in cases() {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-gha"));
        command
            .args(case.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &dir)
            .env("USER", "tester")
            .env("LAMBDA_API_KEY", "cli-key")
            .env("LAMBDA_API_URL", sim.base_url())
            .env("LAMBDA_API_TIME_SCALE", "100")
            .current_dir(&dir);
        for (name, value) in case.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        let shown = case
            .args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("'{a}'")
                } else {
                    (*a).to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let stderr = String::from_utf8_lossy(&output.stderr).replace(dir.to_str().unwrap(), ".");
        assert!(!output.status.success(), "`{shown}` succeeded:\n{stderr}");
        let said = message(&stderr, case.says)
            .unwrap_or_else(|| panic!("`{shown}` does not say {:?}:\n{stderr}", case.says));
        let env: String = case
            .env
            .iter()
            .map(|(name, value)| match value {
                Some(_) => format!("{name}=<wrong> "),
                None => format!("(no {name}) "),
            })
            .collect();
        let _ = writeln!(
            table,
            "| `{env}lambda-gha {shown}` | {} |",
            said.replace('|', "\\|")
        );
    }
    let ledger = sim.ledger();
    assert!(ledger.entries.is_empty(), "launched: {ledger:?}");
    println!("{table}");
    let _ = std::fs::remove_dir_all(&dir);
    lambda_gha_tests::check_troubleshooting_section("bad-inputs-cli", &table);
}
