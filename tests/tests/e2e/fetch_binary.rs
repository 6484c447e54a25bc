//! `action/fetch-binary.sh`, the first step of `action.yml`: the release binary when the
//! action runs at its release (checked against `SHA256SUMS`), a hard failure on a checksum
//! mismatch, and a build from the checkout when no release matches the ref.

use std::path::Path;
use std::process::{Command, Output};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BASE: &str = "/lambda-gha/lambda-gha/releases/download/v0.1.0";
const ASSET: &str = "lambda-gha-action-x86_64-unknown-linux-musl";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn sha256(bytes: &[u8], dir: &Path) -> String {
    let file = dir.join("hash-me");
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&file).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

async fn serve(server: &MockServer, name: &str, body: Vec<u8>) {
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/{name}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
        .mount(server)
        .await;
}

fn fetch(server: &MockServer, dir: &Path, env: &[(&str, &str)]) -> (Output, String) {
    let output = dir.join("github-output");
    let _ = std::fs::remove_file(&output);
    let root = lambda_gha_tests::workspace_root();
    let out = Command::new("bash")
        .arg(root.join("action/fetch-binary.sh"))
        .env("ACTION_PATH", &root)
        .env("ACTION_REPOSITORY", "lambda-gha/lambda-gha")
        .env("RUNNER_ARCH_NAME", "X64")
        .env("SERVER_URL", server.uri())
        .env("RUNNER_TEMP", dir)
        .env("GITHUB_OUTPUT", &output)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out, std::fs::read_to_string(output).unwrap_or_default())
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fetch-binary-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn the_release_binary_is_used_only_with_a_matching_checksum() {
    let dir = temp("release");
    let server = MockServer::start().await;
    let binary = b"#!/bin/sh\necho released\n".to_vec();
    let sums = format!("{}  {ASSET}\n", sha256(&binary, &dir));
    serve(&server, ASSET, binary.clone()).await;
    serve(&server, "SHA256SUMS", sums.into_bytes()).await;

    let (out, outputs) = fetch(&server, &dir, &[("ACTION_REF", "v0.1.0")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let path = outputs
        .lines()
        .find_map(|l| l.strip_prefix("path="))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), binary);
    assert!(outputs.contains(&format!("release-url={}{BASE}", server.uri())));
    assert!(outputs.contains("sha256sums="));

    // The same release, found through the commit it was built from (runner.yml's way).
    serve(&server, "COMMIT", format!("{COMMIT}\n").into_bytes()).await;
    let (out, outputs) = fetch(&server, &dir, &[("ACTION_COMMIT", COMMIT)]);
    assert!(out.status.success());
    assert!(outputs.contains("sha256sums="), "{outputs}");

    // runner.yml uses the action by path, where `github.action_repository` is empty: the
    // repository it checked out (a fork's own) is where its release is looked for.
    let fork = "/octo-fork/lambda-gha/releases/download/v0.1.0";
    for (name, body) in [
        ("COMMIT", format!("{COMMIT}\n").into_bytes()),
        (
            "SHA256SUMS",
            format!("{}  {ASSET}\n", sha256(&binary, &dir)).into_bytes(),
        ),
        (ASSET, binary.clone()),
    ] {
        Mock::given(method("GET"))
            .and(wiremock::matchers::path(format!("{fork}/{name}")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
            .mount(&server)
            .await;
    }
    let (out, outputs) = fetch(
        &server,
        &dir,
        &[
            ("ACTION_REPOSITORY", ""),
            ("LAMBDA_GHA_ACTION_REPOSITORY", "octo-fork/lambda-gha"),
            ("ACTION_COMMIT", COMMIT),
        ],
    );
    assert!(out.status.success());
    assert!(
        outputs.contains(&format!("release-url={}{fork}", server.uri())),
        "{outputs}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_release_binary_fails_hard() {
    let dir = temp("tampered");
    let server = MockServer::start().await;
    serve(&server, ASSET, b"#!/bin/sh\necho evil\n".to_vec()).await;
    serve(
        &server,
        "SHA256SUMS",
        format!("{}  {ASSET}\n", "0".repeat(64)).into_bytes(),
    )
    .await;
    let (out, outputs) = fetch(&server, &dir, &[("ACTION_REF", "v0.1.0")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("::error title=lambda-gha setup::checksum mismatch"),
        "{stdout}"
    );
    assert!(outputs.is_empty(), "no binary is handed on: {outputs}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_matching_release_the_action_builds_itself() {
    let dir = temp("build");
    let server = MockServer::start().await;
    // The release exists but was built from another commit.
    serve(
        &server,
        "COMMIT",
        b"ffffffffffffffffffffffffffffffffffffffff\n".to_vec(),
    )
    .await;
    // Stand-ins: cargo records its arguments (and RUSTFLAGS) and leaves a binary where cargo
    // would; rustup and musl-gcc are present.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, script) in [
        (
            "cargo",
            "#!/bin/sh\necho \"$RUSTFLAGS|$*\" >> \"$CARGO_TARGET_DIR/args\"\n\
             case \"$*\" in\n\
               *x86_64-unknown-linux-musl*) d=\"$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release\"; \
                 mkdir -p \"$d\"; echo agent > \"$d/lambda-gha\" ;;\n\
               *) mkdir -p \"$CARGO_TARGET_DIR/release\"; touch \"$CARGO_TARGET_DIR/release/lambda-gha-action\" ;;\n\
             esac\n",
        ),
        ("rustup", "#!/bin/sh\nexit 0\n"),
        ("musl-gcc", "#!/bin/sh\nexit 0\n"),
    ] {
        std::fs::write(bin.join(name), script).unwrap();
        std::fs::set_permissions(
            bin.join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let target = dir.join("target");
    std::fs::create_dir_all(&target).unwrap();
    let (out, outputs) = fetch(
        &server,
        &dir,
        &[
            ("ACTION_COMMIT", COMMIT),
            ("PATH", &path),
            ("CARGO_TARGET_DIR", target.to_str().unwrap()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The action for this runner, and the agent for the machines (static x86_64), with the
    // checksum the machines check it by.
    let agent = target.join("x86_64-unknown-linux-musl/release/lambda-gha");
    let agent_sha = sha256(b"agent\n", &dir);
    assert_eq!(
        outputs.trim(),
        format!(
            "path={}/release/lambda-gha-action\nagent-path={}\nagent-sha256={agent_sha}",
            target.display(),
            agent.display()
        )
    );
    let args = std::fs::read_to_string(target.join("args")).unwrap();
    let builds: Vec<&str> = args.lines().collect();
    assert!(
        builds[0].starts_with("|build --quiet --release --locked -p lambda-gha-action"),
        "{args}"
    );
    assert!(
        builds[1].starts_with(
            "-C target-feature=+crt-static|build --quiet --release --locked -p lambda-gha-cli \
             --target x86_64-unknown-linux-musl"
        ),
        "{args}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
