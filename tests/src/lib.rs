//! Shared helpers for the workspace's end-to-end tests.

use std::path::{Path, PathBuf};

pub mod controller_rig;
pub mod faults;
mod internet;
mod link;
pub mod machine;
pub mod postgres;
mod programs;
pub mod replica_rig;
pub mod rig;
pub mod runpod_rig;
mod sshd;

pub use github_fake::{
    Deliveries, FakeGitHub, FakeJob, FakeRunner, GitHubFailure, GitHubFault, GitHubRoute,
    JobStatus, REPOSITORY as FAKE_REPOSITORY, TokenPermission, WebhookDelivery, get as http_get,
    post as post_webhook, signature as webhook_signature,
};
pub use internet::{
    FAKE_GITHUB_URL_FILE, FakeInternet, HeldDownloads, PINNED_RUNNER_VERSION, RUNNER_VERSION,
    write_fake_runner,
};
pub use link::{LinkShape, ShapedLink};
pub use programs::{Program, program};
pub use sshd::{Sshd, SshdOptions};

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// The Debian root filesystem machines boot from as root (`LAMBDA_GHA_ROOTFS`, else
/// `target/machine-rootfs`); `cargo xtask rootfs` builds it, `cargo xtask e2e` and `ci` too.
pub fn machine_rootfs() -> PathBuf {
    let path = std::env::var_os("LAMBDA_GHA_ROOTFS").map_or_else(
        || workspace_root().join("target/machine-rootfs"),
        PathBuf::from,
    );
    assert!(
        path.join("usr/bin/sudo").exists(),
        "no machine root filesystem at {}: run `cargo xtask rootfs` (as root), or the suite \
         through `cargo xtask e2e`",
        path.display()
    );
    path
}

/// The `uv` binary (from PyPI) that `cargo xtask ci` installs under `target/tools/uv`, for
/// Python projects run over the test `sshd`.
pub fn uv_binary() -> PathBuf {
    let path = workspace_root().join("target/tools/uv/bin/uv");
    assert!(
        path.exists(),
        "no uv at {}: run the suite through `cargo xtask ci` (it installs uv from PyPI), or \
         `python3 -m pip install --target target/tools/uv uv==0.13.9`",
        path.display()
    );
    path
}

/// Reads a file relative to the workspace root, with the path in the panic message.
pub fn read_repo_file(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// A `cargo` command at the workspace root, without the per-crate `CARGO_*` variables a test
/// process inherits. Build scripts track some of them (`ring`'s tracks `CARGO_MANIFEST_DIR`),
/// so passing them on would rebuild the dependency tree for every spawned cargo, and again for
/// the next ordinary build.
pub fn cargo() -> std::process::Command {
    const PER_CRATE: [&str; 6] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ];
    let mut command =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(workspace_root());
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| PER_CRATE.iter().any(|prefix| n.starts_with(prefix)))
        {
            command.env_remove(name);
        }
    }
    command
}

/// The `lambda-gha` binary (see [`program`]).
pub fn lambda_gha_binary() -> PathBuf {
    program(Program::Cli)
}

/// Waits up to `timeout` for `child` to exit, polling; panics naming `what` if it does not.
pub fn wait_for_exit(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap_or(None) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not exit within {timeout:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The environment variable that lets a test rewrite its generated part of the README.
pub const UPDATE_README_ENV: &str = "LAMBDA_GHA_UPDATE_README";

/// Checks that docs/troubleshooting.md holds `table` between `<!-- {marker} -->` and
/// `<!-- /{marker} -->`; with `LAMBDA_GHA_UPDATE_README=1` writes it there instead. A generated
/// part of the docs is then what the code says, never a copy that drifted.
pub fn check_troubleshooting_section(marker: &str, table: &str) {
    if let Err(message) = check_doc_section("docs/troubleshooting.md", marker, table) {
        panic!("{message}");
    }
}

/// Checks that the workspace file `file` holds `text` between `<!-- {marker} -->` and
/// `<!-- /{marker} -->`; with `LAMBDA_GHA_UPDATE_README=1` writes it there instead. Says what
/// differs, and how to update it, when not.
pub fn check_doc_section(file: &str, marker: &str, text: &str) -> Result<(), String> {
    let path = workspace_root().join(file);
    let doc = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let (open, close) = (
        format!("<!-- {marker} -->\n"),
        format!("<!-- /{marker} -->"),
    );
    let start = doc
        .find(&open)
        .ok_or_else(|| format!("{file} lacks the marker {open:?}"))?
        + open.len();
    let end = doc[start..]
        .find(&close)
        .ok_or_else(|| format!("{file} lacks the marker {close:?}"))?
        + start;
    if doc[start..end] == *text {
        return Ok(());
    }
    if std::env::var(UPDATE_README_ENV).is_ok_and(|v| v == "1") {
        let updated = format!("{}{text}{}", &doc[..start], &doc[end..]);
        return std::fs::write(&path, updated)
            .map_err(|error| format!("cannot write {}: {error}", path.display()));
    }
    Err(format!(
        "{file}'s `{marker}` section is not what the code says; rerun with \
         {UPDATE_README_ENV}=1 to rewrite it. Expected:\n{text}"
    ))
}
