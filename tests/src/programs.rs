//! The workspace's programs, as the tests run them: the one place that knows where cargo puts
//! a binary.
//!
//! A test of one crate gets that crate's binaries from cargo (`env!("CARGO_BIN_EXE_<name>")`);
//! this crate's tests need the binaries of other packages, which cargo does not hand to a test
//! on stable (artifact dependencies are unstable). So they are built here once per test
//! process, with the profile and target directory of the running test itself (read from its
//! own path), never a hard-coded `target/debug`: compile time then never counts as a test's
//! simulated time, and a test never runs a binary older than the tree.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A program of the workspace that the tests run as users do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `lambda-gha`: the CLI, the on-machine agent and the reaper.
    Cli,
    /// `lambda-gha-action`: the GitHub Action.
    Action,
    /// `lambda-cloud-sim`: the simulator's own binary.
    Simulator,
}

impl Program {
    const ALL: [Program; 3] = [Program::Cli, Program::Action, Program::Simulator];

    fn package(self) -> &'static str {
        match self {
            Program::Cli => "lambda-gha-cli",
            Program::Action => "lambda-gha-action",
            Program::Simulator => "lambda-cloud-sim",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Program::Cli => "lambda-gha",
            Program::Action => "lambda-gha-action",
            Program::Simulator => "lambda-cloud-sim",
        }
    }
}

/// The directory the running test's profile builds into (`<target>/debug` for the dev profile),
/// and that profile's name as cargo's `--profile` takes it.
fn profile_dir() -> (PathBuf, String) {
    // A test binary lives in `<target>/<profile>/deps/`; a `[[bin]]` of this crate (the fault
    // matrix) in `<target>/<profile>/`.
    let exe = std::env::current_exe().expect("the test's own path");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_owned();
    let profile = if name == "debug" {
        "dev".to_owned()
    } else {
        name
    };
    (dir, profile)
}

/// The path of `program`, built (with the others) at the first call of the process.
pub fn program(program: Program) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let (dir, profile) = profile_dir();
        let target = dir.parent().expect("a target directory").to_path_buf();
        let mut command = crate::cargo();
        command
            .args(["build", "--quiet", "--locked", "--profile", &profile])
            .arg("--target-dir")
            .arg(&target);
        for p in Program::ALL {
            command.args(["-p", p.package(), "--bin", p.binary()]);
        }
        match command.status() {
            Ok(status) if status.success() => Ok(dir),
            Ok(status) => Err(format!(
                "building the workspace's programs failed: {status}"
            )),
            Err(error) => Err(format!("cannot run cargo: {error}")),
        }
    });
    match dir {
        Ok(dir) => dir.join(program.binary()),
        Err(why) => panic!("{why}"),
    }
}
