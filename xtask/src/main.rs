//! Project automation, run as `cargo xtask <command>`.
//!
//! `ci` is the one command that proves a tree green: it installs the system tools the tests
//! need, then runs formatting, lints, every test, the end-to-end suite and a package check,
//! and prints a summary. `.ci/run` calls it; so should you before pushing.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod bench;
mod dist;
mod docs;
mod function_length;
mod lint;
mod modules;
mod postgres;
mod release;
mod rootfs;
mod snapshots;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                      install missing tools, then fmt, clippy, workflow lints, all tests,
                          e2e and package checks (PostgreSQL: DATABASE_URL, or a throwaway
                          cluster)
  e2e [--faults]          run the workspace end-to-end suite (tests/); with --faults, the
                          fault matrix instead (docs/fault-matrix.md)
  rootfs                  build the Debian root filesystem machines boot from as root in
                          the e2e suite and the fault matrix (cached in target/)
  lint                    actionlint and zizmor over the workflows and action.yml
  snapshots [--check|--accept|--review] [--no-run]
                          run the tests and list the insta snapshots they would change, with
                          a diff; --accept takes them all, --review goes through them with
                          cargo insta (installed on first use), --check fails on any (ci);
                          --no-run looks at what the last test run left
  postgres COMMAND...     run COMMAND with DATABASE_URL set: the server there already, or a
                          throwaway PostgreSQL cluster, stopped afterwards
  dist [--target TRIPLE]  release binaries and SHA256SUMS under target/dist
  release X.Y.Z [--crate lambda-cloud=A.B.C] [--dry-run]
                          prepare a release: versions, CHANGELOG sections, documented pins
  bench [NAME...] [--link RATE,RTT]  benchmarks with ratios against in-run baselines (action, transfer,
                          serve, serve-replicas; --link 100mbit,30ms, 1gbit,5ms or loopback)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("e2e") => e2e(&args[1..]),
        Some("lint") => {
            let mut run = Run::new();
            lint::steps(&mut run).map(|()| run.summary())
        }
        Some("rootfs") => rootfs::ensure().map(|path| {
            println!("{}", path.display());
            true
        }),
        Some("dist") => dist::dist(&args[1..]),
        Some("postgres") => postgres::with_server(&args[1..]),
        Some("bench") => bench::bench(&args[1..]),
        Some("snapshots") => snapshots::snapshots(&args[1..]),
        Some("release") => release::release(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(true)
        }
        Some(other) => {
            eprint!("unknown command `{other}`\n\n{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    // xtask/ sits at the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Every file under `root`, sorted, as the repository holds them: `target/`, `node_modules/`
/// and hidden directories (`.git`) left out.
fn repository_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !path.is_dir() {
                found.push(path);
            } else if name != "target" && name != "node_modules" && !name.starts_with('.') {
                dirs.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// One step of a run: its name, how it went, how long it took.
struct Step {
    name: &'static str,
    ok: bool,
    took: Duration,
}

struct Run {
    steps: Vec<Step>,
    /// Set for every command of the run (the test database's URL).
    env: Vec<(String, String)>,
}

impl Run {
    fn new() -> Self {
        Run {
            steps: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A run whose commands reach `postgres` at `DATABASE_URL`.
    fn with_database(postgres: &postgres::Server) -> Self {
        let mut run = Run::new();
        run.env
            .push(("DATABASE_URL".to_owned(), postgres.url.clone()));
        run
    }

    /// Runs `cargo <args>` at the workspace root as a named step.
    fn cargo(&mut self, name: &'static str, args: &[&str]) -> bool {
        self.cargo_with_env(name, args, &[])
    }

    fn cargo_with_env(&mut self, name: &'static str, args: &[&str], env: &[(&str, &str)]) -> bool {
        let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        command.args(args).current_dir(workspace_root());
        command.envs(env.iter().copied());
        self.command(name, &mut command)
    }

    fn command(&mut self, name: &'static str, command: &mut Command) -> bool {
        println!("\n==> {name}");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let started = Instant::now();
        let ok = match command.status() {
            Ok(status) => status.success(),
            Err(error) => {
                eprintln!("could not start {command:?}: {error}");
                false
            }
        };
        self.steps.push(Step {
            name,
            ok,
            took: started.elapsed(),
        });
        ok
    }

    /// A check run in this process: its problems, one per line; none passes.
    fn check(&mut self, name: &'static str, check: impl FnOnce() -> Result<Vec<String>>) -> bool {
        println!("\n==> {name}");
        let started = Instant::now();
        let problems = check().unwrap_or_else(|error| vec![format!("{error:#}")]);
        for problem in &problems {
            eprintln!("{problem}");
        }
        let ok = problems.is_empty();
        self.steps.push(Step {
            name,
            ok,
            took: started.elapsed(),
        });
        ok
    }

    fn summary(&self) -> bool {
        println!("\n==> summary");
        let width = self.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for step in &self.steps {
            let mark = if step.ok { "ok    " } else { "FAILED" };
            println!(
                "  {mark} {:<width$} {:>7.1}s",
                step.name,
                step.took.as_secs_f64()
            );
        }
        let failed = self.steps.iter().filter(|step| !step.ok).count();
        let total: Duration = self.steps.iter().map(|step| step.took).sum();
        if failed == 0 {
            println!(
                "ci: all {} steps passed in {:.0}s",
                self.steps.len(),
                total.as_secs_f64()
            );
        } else {
            println!("ci: {failed} of {} steps FAILED", self.steps.len());
        }
        failed == 0
    }
}

fn ci() -> Result<bool> {
    let started = Instant::now();
    install_system_tools()?;
    let rootfs = rootfs::ensure()?;
    let postgres = postgres::ensure()?;
    let mut run = Run::with_database(&postgres);
    run.cargo("cargo fmt --check", &["fmt", "--all", "--check"]);
    run.cargo(
        "cargo clippy (all targets, -D warnings)",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    );
    // A changed snapshot is written beside the accepted one rather than failing its test, so
    // that the snapshot check below lists every change with the command that reviews them.
    snapshots::clear(&workspace_root())?;
    run.cargo_with_env(
        "unit and integration tests (nextest)",
        &[
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--profile",
            "ci",
            "-E",
            "not package(lambda-gha-tests)",
        ],
        &snapshots::TEST_ENV,
    );
    run.check("cargo xtask snapshots --check", || {
        snapshots::check(&workspace_root())
    });
    run.cargo(
        "doc tests",
        &["test", "--workspace", "--doc", "--locked", "--quiet"],
    );
    lint::steps(&mut run)?;
    run.check("no module cycle in any crate", || {
        modules::check(&workspace_root())
    });
    run.check("no function over 100 lines without a reason", || {
        function_length::check(&workspace_root())
    });
    run.check("CONTRIBUTING.md and docs/ point at real things", || {
        docs::check(&workspace_root())
    });
    run.cargo_with_env(
        "a downstream crate of lambda-cloud (its own workspace and TLS set-up)",
        &[
            "run",
            "--quiet",
            "--locked",
            "--manifest-path",
            "tests/downstream/Cargo.toml",
        ],
        // The workspace's target directory: dependencies built for the workspace are reused.
        &[("CARGO_TARGET_DIR", "target")],
    );
    e2e_step(&mut run, &rootfs);
    faults_step(&mut run, &rootfs);
    run.cargo_with_env(
        "cargo doc (no warnings, no broken links)",
        &["doc", "--workspace", "--no-deps", "--locked", "--quiet"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    );
    run.cargo(
        "cargo package -p lambda-cloud",
        &[
            "package",
            "-p",
            "lambda-cloud",
            "--locked",
            "--allow-dirty",
            "--quiet",
        ],
    );
    let ok = run.summary();
    println!("ci: wall time {:.0}s", started.elapsed().as_secs_f64());
    Ok(ok)
}

fn e2e(args: &[String]) -> Result<bool> {
    let rootfs = rootfs::ensure()?;
    let postgres = postgres::ensure()?;
    let mut run = Run::with_database(&postgres);
    if args.iter().any(|a| a == "--faults") {
        faults_step(&mut run, &rootfs);
    } else {
        e2e_step(&mut run, &rootfs);
    }
    Ok(run.summary())
}

/// The fault matrix: every scenario, a row each, nothing left, no secret anywhere.
fn faults_step(run: &mut Run, rootfs: &Path) {
    let name = "fault matrix (cargo xtask e2e --faults)";
    match workspace_binary("fault-matrix") {
        Ok(binary) => {
            run.command(
                name,
                Command::new(binary)
                    .current_dir(workspace_root())
                    .env("LAMBDA_GHA_ROOTFS", rootfs),
            );
        }
        Err(error) => {
            run.check(name, || Err(error));
        }
    }
}

/// The end-to-end suite, built with the whole workspace's features: a build of
/// `-p lambda-gha-tests` alone resolves other features and compiles the TLS stack, the clients
/// and the support crate a second time.
fn e2e_step(run: &mut Run, rootfs: &Path) {
    run.cargo_with_env(
        "end-to-end suite (tests/)",
        &[
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--profile",
            "ci",
            "-E",
            "package(lambda-gha-tests)",
        ],
        &[("LAMBDA_GHA_ROOTFS", &rootfs.to_string_lossy())],
    );
}

/// The path of a binary of the workspace as its test build makes it (the build the test
/// steps already did, so nothing compiles again), as cargo reports it.
fn workspace_binary(name: &str) -> Result<PathBuf> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "test",
            "--workspace",
            "--locked",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace_root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    anyhow::ensure!(
        output.status.success(),
        "building the workspace's tests failed"
    );
    let target = format!("\"name\":\"{name}\",\"src_path\"");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        // The program itself, not its unit-test harness (a profile with `"test":true`).
        .filter(|line| {
            line.contains(&target)
                && line.contains("\"kind\":[\"bin\"]")
                && line.contains("\"test\":false")
        })
        .find_map(|line| {
            let start = line.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = line[start..].find('"')? + start;
            Some(PathBuf::from(&line[start..end]))
        })
        .with_context(|| format!("cargo built no binary named {name}"))
}

/// System packages the tests need: (a command they run, the Debian package providing it).
const SYSTEM_TOOLS: &[(&str, &str)] = &[
    // The simulator generates SSH key pairs with ssh-keygen, as Lambda hands out real ones.
    ("ssh-keygen", "openssh-client"),
    // `run` reaches machines with ssh; its tests start a real sshd on 127.0.0.1.
    ("ssh", "openssh-client"),
    ("sshd", "openssh-server"),
    // runner.yml's resolve step reads GitHub's OIDC token with jq (as on ubuntu-latest).
    ("jq", "jq"),
    // lambda-cloud's TLS test serves HTTPS with `openssl s_server`.
    ("openssl", "openssl"),
    // The controller's status page is loaded in headless Chromium.
    ("chromium", "chromium"),
];

/// Installs what the tests need that cargo does not provide. Only what is missing, so a
/// warm machine pays nothing.
fn install_system_tools() -> Result<()> {
    ensure_tools(SYSTEM_TOOLS)?;
    if !has_command("cargo-nextest") {
        println!("==> installing cargo-nextest");
        let status = Command::new("cargo")
            .args(["install", "cargo-nextest", "--locked"])
            .status()
            .context("running cargo install")?;
        if !status.success() {
            bail!("could not install cargo-nextest: run `cargo install cargo-nextest --locked`");
        }
    }
    install_uv()
}

/// Where the tests find `uv` (from PyPI) to run Python projects over the test `sshd`.
const UV_DIR: &str = "target/tools/uv";
/// The uv the tests use, pinned.
const UV: &str = "uv==0.13.9";

/// Installs uv from PyPI under `target/tools/uv` when it is not there.
fn install_uv() -> Result<()> {
    let dir = workspace_root().join(UV_DIR);
    if dir.join("bin/uv").exists() {
        return Ok(());
    }
    println!("==> installing {UV} (PyPI) into {UV_DIR}");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(&dir)
        .arg(UV)
        .status()
        .context("running python3 -m pip")?;
    if !status.success() {
        bail!("could not install {UV}: run `python3 -m pip install --target {UV_DIR} {UV}`");
    }
    Ok(())
}

/// Installs the Debian packages of `tools` whose command is missing.
pub(crate) fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(command, _)| !has_command(command))
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        println!("==> installing {}", missing.join(", "));
        let updated = Command::new("apt-get").args(["update", "-qq"]).status();
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        match (updated, installed) {
            (Ok(_), Ok(status)) if status.success() => {}
            _ => bail!(
                "could not install {}: run `apt-get install -y {}` as root",
                missing.join(", "),
                missing.join(" ")
            ),
        }
    }
    Ok(())
}

fn has_command(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}
