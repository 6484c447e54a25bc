//! `cargo xtask snapshots`: the insta snapshot tests, and what they would change.
//!
//! A snapshot test that sees new output writes it beside the accepted `.snap` as `.snap.new`
//! (`INSTA_UPDATE=new`) and passes (`INSTA_FORCE_PASS=1`), so one run finds every change, not
//! only the first. Then: list the changes with a diff (the default), accept them all
//! (`--accept`), review them one by one with `cargo insta review` (`--review`, installed under
//! `target/tools` on first use), or fail when any is pending (`--check`, run by `ci` after its
//! test step, which sets the same two variables).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// The insta CLI, pinned to the insta the workspace uses.
const CARGO_INSTA: &str = "cargo-insta@1.49.0";

/// What `ci`'s test step sets so that a changed snapshot is written, not failed on.
pub(crate) const TEST_ENV: [(&str, &str); 2] = [("INSTA_UPDATE", "new"), ("INSTA_FORCE_PASS", "1")];

/// The command that reviews pending snapshots, for messages.
pub(crate) const REVIEW: &str = "cargo xtask snapshots --review";

/// Pending snapshots under `root`: `.snap.new` files beside their `.snap` (or new ones), and
/// `.pending-snap` files of inline snapshots ([`crate::repository_files`]).
pub(crate) fn pending(root: &Path) -> Result<Vec<PathBuf>> {
    Ok(crate::repository_files(root)?
        .into_iter()
        .filter(|path| {
            let name = path.to_string_lossy();
            name.ends_with(".snap.new") || name.ends_with(".pending-snap")
        })
        .collect())
}

/// Removes pending snapshots left by an earlier run, so that what is found is this run's.
pub(crate) fn clear(root: &Path) -> Result<()> {
    for path in pending(root)? {
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(())
}

/// The snapshot's body: what follows insta's `---` header.
fn body(text: &str) -> &str {
    text.strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .map_or(text, |(_, body)| body)
}

/// A line diff of `old` and `new` (longest common subsequence), `-`/`+` marked, unchanged
/// lines left out.
pub(crate) fn diff(old: &str, new: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // lengths[i][j]: the common subsequence of a[i..] and b[j..].
    let mut lengths = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lengths[i][j] = if a[i] == b[j] {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut lines) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lengths[i + 1][j] >= lengths[i][j + 1]) {
            lines.push(format!("-{}", a[i]));
            i += 1;
        } else {
            lines.push(format!("+{}", b[j]));
            j += 1;
        }
    }
    lines
}

/// One pending snapshot, described: its accepted file, and the diff (or that it is new).
fn describe(root: &Path, pending: &Path) -> Vec<String> {
    let shown = pending
        .strip_prefix(root)
        .unwrap_or(pending)
        .display()
        .to_string();
    let accepted = accepted_path(pending);
    let new = std::fs::read_to_string(pending).unwrap_or_default();
    match accepted.as_ref().map(std::fs::read_to_string) {
        Some(Ok(old)) => {
            let mut lines = vec![format!("changed: {shown}")];
            lines.extend(
                diff(body(&old), body(&new))
                    .into_iter()
                    .map(|l| format!("    {l}")),
            );
            lines
        }
        Some(Err(_)) => vec![format!(
            "new: {shown} ({} lines)",
            body(&new).lines().count()
        )],
        None => vec![format!("inline: {shown} (review it with `{REVIEW}`)")],
    }
}

/// `text` without the `assertion_line:` of a pending snapshot's header, which accepted
/// snapshots do not carry (a line number would change them at every edit above the test).
fn without_assertion_line(text: &str) -> String {
    let Some((header, body)) = text
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
    else {
        return text.to_owned();
    };
    let header: Vec<&str> = header
        .lines()
        .filter(|line| !line.starts_with("assertion_line:"))
        .collect();
    format!("---\n{}\n---\n{body}", header.join("\n"))
}

/// The `.snap` a `.snap.new` would replace; `None` for an inline snapshot's `.pending-snap`.
fn accepted_path(pending: &Path) -> Option<PathBuf> {
    let name = pending.to_str()?;
    name.strip_suffix(".new").map(PathBuf::from)
}

/// Runs every test (the snapshot tests are spread over the crates), writing what changed.
fn run_tests(root: &Path) -> Result<()> {
    clear(root)?;
    println!("==> the tests, with changed snapshots written as .snap.new");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "-E",
            "not package(lambda-gha-tests)",
        ])
        .envs(TEST_ENV)
        .current_dir(root)
        .status()
        .context("could not run cargo nextest (cargo install cargo-nextest)")?;
    if !status.success() {
        println!("(some tests failed for other reasons than snapshots; see above)");
    }
    Ok(())
}

/// The problems `--check` reports: one per pending snapshot, then the command to review them.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let found = pending(root)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut problems: Vec<String> = found.iter().flat_map(|p| describe(root, p)).collect();
    problems.push(format!(
        "{} snapshot(s) differ from the accepted ones: review them with `{REVIEW}` (or accept all with `cargo xtask snapshots --accept`)",
        found.len()
    ));
    Ok(problems)
}

/// Accepts every pending `.snap.new`; inline snapshots need `--review`.
fn accept(root: &Path) -> Result<usize> {
    let mut accepted = 0;
    for path in pending(root)? {
        let Some(target) = accepted_path(&path) else {
            bail!(
                "{} is an inline snapshot: accept it with `{REVIEW}`",
                path.display()
            );
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        std::fs::write(&target, without_assertion_line(&text))
            .with_context(|| format!("accepting {}", path.display()))?;
        std::fs::remove_file(&path)?;
        println!(
            "accepted {}",
            target.strip_prefix(root).unwrap_or(&target).display()
        );
        accepted += 1;
    }
    Ok(accepted)
}

/// `cargo insta`, installed under `target/tools` when it is not on PATH.
fn cargo_insta(root: &Path) -> Result<PathBuf> {
    let on_path = Command::new("cargo-insta").arg("--version").output();
    if on_path.is_ok_and(|out| out.status.success()) {
        return Ok(PathBuf::from("cargo-insta"));
    }
    let tools = root.join("target/tools");
    let binary = tools.join("bin/cargo-insta");
    if !binary.is_file() {
        println!("==> installing {CARGO_INSTA} into {}", tools.display());
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["install", "--locked", "--root"])
            .arg(&tools)
            .arg(CARGO_INSTA)
            .status()
            .context("could not run cargo install")?;
        if !status.success() {
            bail!("cargo install {CARGO_INSTA} failed ({status})");
        }
    }
    Ok(binary)
}

/// `cargo xtask snapshots [--check | --accept | --review] [--no-run]`.
pub(crate) fn snapshots(args: &[String]) -> Result<bool> {
    let root = workspace_root();
    let flag = |name: &str| args.iter().any(|a| a == name);
    if let Some(unknown) = args
        .iter()
        .find(|a| !["--check", "--accept", "--review", "--no-run"].contains(&a.as_str()))
    {
        bail!("unknown argument {unknown:?}: use --check, --accept, --review or --no-run");
    }
    if !flag("--no-run") {
        run_tests(&root)?;
    }
    if flag("--review") {
        let status = Command::new(cargo_insta(&root)?)
            .args(["insta", "review", "--workspace-root"])
            .arg(&root)
            .current_dir(&root)
            .status()
            .context("could not run cargo insta review")?;
        return Ok(status.success());
    }
    if flag("--accept") {
        let accepted = accept(&root)?;
        println!("{accepted} snapshot(s) accepted");
        return Ok(true);
    }
    let problems = check(&root)?;
    if problems.is_empty() {
        println!("no snapshot changed");
        return Ok(true);
    }
    for line in &problems {
        println!("{line}");
    }
    // Listing is not failing; --check is.
    Ok(!flag("--check"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_shows_only_what_changed() {
        let old = "a\nb\nc\nd\n";
        let new = "a\nc\nd2\nd\ne\n";
        assert_eq!(diff(old, new), ["-b", "+d2", "+e"]);
        assert!(diff("same\n", "same\n").is_empty());
    }

    #[test]
    fn pending_snapshots_are_found_described_and_accepted() {
        let root = std::env::temp_dir().join(format!("xtask-snapshots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("crates/x/tests/snapshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(root.join("target/snapshots")).unwrap();
        std::fs::write(root.join("target/snapshots/skip.snap.new"), "x").unwrap();
        let header = "---\nsource: tests/x.rs\nexpression: table\n---\n";
        std::fs::write(dir.join("it__table.snap"), format!("{header}A  B\n1  2\n")).unwrap();
        std::fs::write(
            dir.join("it__table.snap.new"),
            format!("{header}A  B\n1  3\n"),
        )
        .unwrap();
        std::fs::write(dir.join("it__fresh.snap.new"), format!("{header}new\n")).unwrap();
        assert!(
            check(&root.join("crates/x/tests/snapshots/none")).is_err(),
            "no such dir"
        );
        let problems = check(&root).unwrap();
        assert_eq!(
            problems[..5],
            [
                "new: crates/x/tests/snapshots/it__fresh.snap.new (1 lines)",
                "changed: crates/x/tests/snapshots/it__table.snap.new",
                "    -1  2",
                "    +1  3",
                &problems[4],
            ]
        );
        assert!(problems[4].contains(REVIEW), "{}", problems[4]);
        assert_eq!(accept(&root).unwrap(), 2);
        assert!(check(&root).unwrap().is_empty());
        let accepted = std::fs::read_to_string(dir.join("it__table.snap")).unwrap();
        assert_eq!(
            accepted,
            format!("{header}A  B\n1  3\n"),
            "as insta accepts it"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
