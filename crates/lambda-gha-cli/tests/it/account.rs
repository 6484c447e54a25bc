//! `login`, `logout` and `doctor` against the simulator: the key asked for with echo off
//! through a real pseudo-terminal, stored 0600, checked before it is stored, never printed.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lambda_cloud_sim::{Scenario, Sim};

use crate::pty::Pty;

const KEY: &str = "secret_cli-login_0123456789abcdef";

async fn sim() -> Sim {
    Sim::builder()
        .scenario(Scenario::default())
        .api_key(KEY)
        .start()
        .await
        .unwrap()
}

/// A home of its own for each test, so the config files do not meet.
fn home(test: &str) -> PathBuf {
    let home = std::env::temp_dir().join(format!("cli-account-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    home
}

/// The binary with `home` as HOME, no key in the environment, and the simulator's URL.
fn command(sim: &Sim, home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-gha"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("LAMBDA_API_URL", sim.base_url())
        .current_dir(home);
    command
}

async fn output(mut command: Command, stdin: &str) -> Output {
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn config(home: &Path) -> PathBuf {
    home.join(".config/lambda-gha/config.toml")
}

#[tokio::test(flavor = "multi_thread")]
async fn login_at_a_terminal_hides_the_key_and_stores_it_0600() {
    let sim = sim().await;
    let home = home("pty");
    let mut pty = Pty::spawn(command(&sim, &home, &["login"]));
    pty.expect("Lambda API key (typing is hidden");
    pty.expect(": ");
    pty.send(KEY);
    let (status, screen) = pty.finish();
    assert!(status.success(), "{screen}");
    assert!(
        !screen.contains(KEY),
        "the key showed on the terminal:\n{screen}"
    );
    assert!(
        screen.contains("key accepted") && screen.contains("(mode 600)"),
        "{screen}"
    );
    let file = config(&home);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("api_key = \"{KEY}\"\n")
    );
    // The stored key is the one every command then uses.
    let listed = output(command(&sim, &home, &["ls", "--json"]), "").await;
    assert!(listed.status.success(), "{}", text(&listed));
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_is_not_stored_and_logout_removes_the_stored_one() {
    let sim = sim().await;
    let home = home("stdin");
    let refused = output(
        command(&sim, &home, &["login", "--key-stdin"]),
        "wrong_key\n",
    )
    .await;
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("the key was refused (HTTP 401)")
            && text(&refused).contains("nothing stored"),
        "{}",
        text(&refused)
    );
    assert!(!config(&home).exists());
    assert!(!text(&refused).contains("wrong_key"));

    let stored = output(
        command(&sim, &home, &["login", "--key-stdin"]),
        &format!("{KEY}\n"),
    )
    .await;
    assert!(stored.status.success(), "{}", text(&stored));
    assert!(!text(&stored).contains(KEY));
    // Not a terminal and no --key-stdin: told how to pipe it.
    let piped = output(command(&sim, &home, &["login"]), "").await;
    assert!(text(&piped).contains("--key-stdin"), "{}", text(&piped));

    // A default the file holds beside the key is shown where it comes from.
    let mut file = std::fs::read_to_string(config(&home)).unwrap();
    file.push_str("region = \"us-east-1\"\n");
    std::fs::write(config(&home), file).unwrap();
    let doctor = output(command(&sim, &home, &["doctor"]), "").await;
    assert!(doctor.status.success(), "{}", text(&doctor));
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&home.display().to_string()), "[home]");
    settings.add_filter(&regex_escape(sim.base_url()), "[sim]");
    settings.add_filter(r"/[^ ]*/ssh\b", "[path]/ssh");
    settings.add_filter(
        r"\d+ instance types, \d+ with capacity",
        "[n] instance types, [n] with capacity",
    );
    let report = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert!(!report.contains(KEY) && !text(&doctor).contains(KEY));
    settings.bind(|| insta::assert_snapshot!("doctor_ok", report));

    let logout = output(command(&sim, &home, &["logout"]), "").await;
    assert!(
        text(&logout).contains("Removed the API key"),
        "{}",
        text(&logout)
    );
    let doctor = output(command(&sim, &home, &["doctor", "--json"]), "").await;
    assert!(!doctor.status.success(), "no key is a failure");
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(checks[1]["check"], "API key");
    assert_eq!(checks[1]["status"], "fail");
    let _ = std::fs::remove_dir_all(&home);
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '-' || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}
