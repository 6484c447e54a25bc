//! `cargo xtask release X.Y.Z [--crate lambda-cloud=A.B.C] [--dry-run]`: prepares a release
//! commit. It moves the workspace's version (the binaries, the action, and the crates that
//! follow it) and the changelog's `Unreleased` section under the new version with today's
//! date, points the documented pins (`@vX.Y.Z`) at it, and, with `--crate`, does the same for a
//! crate versioned on its own (`lambda-cloud`). Committing, tagging and pushing stay with the
//! person releasing: the tag starts `release.yml`. CONTRIBUTING.md, "Cut a release".

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// Crates versioned on their own, apart from the workspace: their manifest and changelog.
const OWN_VERSION: [(&str, &str); 1] = [("lambda-cloud", "crates/lambda-cloud")];

/// Files whose `@vX.Y.Z` pins and `LAMBDA_GHA_VERSION: vX.Y.Z` name the product's release.
const PINNED_IN: [&str; 4] = [
    "README.md",
    "CONTRIBUTING.md",
    ".github/workflows/runner.yml",
    ".github/workflows/reaper.yml",
];

/// A SemVer version: `MAJOR.MINOR.PATCH[-PRE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Option<String>,
}

impl Version {
    pub(crate) fn parse(text: &str) -> Result<Version> {
        let text = text.trim();
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_owned())),
            Some(_) => bail!("{text:?}: an empty pre-release after `-`"),
            None => (text, None),
        };
        let numbers: Vec<&str> = core.split('.').collect();
        let number = |part: &str| {
            if part.len() > 1 && part.starts_with('0') {
                bail!("{text:?}: `{part}` has a leading zero");
            }
            part.parse::<u64>()
                .with_context(|| format!("{text:?}: `{part}` is not a number"))
        };
        let [major, minor, patch] = numbers.as_slice() else {
            bail!("{text:?} is not MAJOR.MINOR.PATCH (e.g. 0.2.0, without a leading v)");
        };
        Ok(Version {
            major: number(major)?,
            minor: number(minor)?,
            patch: number(patch)?,
            pre,
        })
    }

    /// The tag that names it: `v0`, then `v1`… (what `release.yml` moves).
    pub(crate) fn major_tag(&self) -> String {
        format!("v{}", self.major)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                // A pre-release comes before its release.
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

/// The `version = "…"` of `section` in a Cargo manifest.
fn section_version(manifest: &str, section: &str) -> Option<String> {
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == section;
        } else if inside && let Some(rest) = line.strip_prefix("version = \"") {
            return rest.split('"').next().map(str::to_owned);
        }
    }
    None
}

/// `manifest` with `section`'s `version` set to `new`.
fn set_section_version(manifest: &str, section: &str, new: &Version) -> String {
    let mut inside = false;
    let mut out = String::with_capacity(manifest.len());
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed == section;
        }
        if inside && trimmed.starts_with("version = \"") {
            let rest = trimmed
                .strip_prefix("version = \"")
                .and_then(|r| r.split_once('"'))
                .map_or("", |(_, after)| after);
            let _ = write!(out, "version = \"{new}\"{rest}");
            // Only the first: a section has one version.
            inside = false;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `manifest`'s `[workspace.dependencies]` entries for `crates` (by name) moved from `old` to
/// `new`: what other crates of the workspace require of them.
fn set_dependency_versions(
    manifest: &str,
    crates: &dyn Fn(&str) -> bool,
    old: &str,
    new: &Version,
) -> String {
    let mut inside = false;
    let mut out = String::with_capacity(manifest.len());
    let from = format!("version = \"{old}\"");
    let to = format!("version = \"{new}\"");
    for line in manifest.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed == "[workspace.dependencies]";
        }
        let name = trimmed.split([' ', '=']).next().unwrap_or_default();
        if inside && trimmed.contains("path = \"") && crates(name) {
            out.push_str(&line.replacen(&from, &to, 1));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `changelog` with its `## [Unreleased]` entries moved under `## [new] - date`, a fresh
/// empty `Unreleased` above, and the compare links at the bottom updated. Fails when nothing
/// is unreleased, or `new` is already there.
fn release_changelog(
    changelog: &str,
    new: &Version,
    date: &str,
    tag_prefix: &str,
) -> Result<String> {
    const UNRELEASED: &str = "## [Unreleased]";
    if changelog.contains(&format!("## [{new}]")) {
        bail!("the changelog already has a section for {new}");
    }
    let start = changelog
        .find(UNRELEASED)
        .context("the changelog has no `## [Unreleased]` section (Keep a Changelog)")?;
    let body_start = start + UNRELEASED.len();
    let body_end = changelog[body_start..]
        .find("\n## [")
        .map_or(changelog.len(), |at| body_start + at);
    let body = changelog[body_start..body_end].trim_matches('\n');
    if !body.lines().any(|l| l.trim_start().starts_with("- ")) {
        bail!("nothing under `## [Unreleased]` to release: write what changed there first");
    }
    let previous = changelog[body_end..]
        .lines()
        .find_map(|l| l.strip_prefix("## [")?.split(']').next())
        .map(str::to_owned);
    let mut text = format!(
        "{}{UNRELEASED}\n\n## [{new}] - {date}\n\n{body}\n{}",
        &changelog[..start],
        &changelog[body_end..]
    );
    // The links: `[Unreleased]` compares from the new tag; the new version from the last.
    let link = |line: &str| line.starts_with("[Unreleased]: ");
    if let Some(unreleased) = text.lines().find(|l| link(l)).map(str::to_owned) {
        // The repository's address: `https://github.com/OWNER/REPO`.
        let base = unreleased
            .trim_start_matches("[Unreleased]: ")
            .split('/')
            .take(5)
            .collect::<Vec<_>>()
            .join("/");
        let new_link = match &previous {
            Some(previous) => {
                format!("[{new}]: {base}/compare/{tag_prefix}{previous}...{tag_prefix}{new}")
            }
            None => format!("[{new}]: {base}/releases/tag/{tag_prefix}{new}"),
        };
        let replaced = format!("[Unreleased]: {base}/compare/{tag_prefix}{new}...HEAD\n{new_link}");
        text = text.replacen(&unreleased, &replaced, 1);
    }
    Ok(text)
}

/// `text` with the product's release pins moved from `old` to `new`.
fn move_pins(text: &str, old: &Version, new: &Version) -> String {
    text.replace(&format!("@v{old}"), &format!("@v{new}"))
        .replace(
            &format!("LAMBDA_GHA_VERSION: v{old}"),
            &format!("LAMBDA_GHA_VERSION: v{new}"),
        )
}

/// One file's new text, written unless it is a dry run.
struct Change {
    path: String,
    text: String,
}

/// Everything a release of the workspace at `new` (and the `crates` at theirs) changes.
fn plan(
    root: &Path,
    new: &Version,
    crates: &[(String, Version)],
    date: &str,
) -> Result<Vec<Change>> {
    let read = |path: &str| {
        std::fs::read_to_string(root.join(path)).with_context(|| format!("reading {path}"))
    };
    let manifest = read("Cargo.toml")?;
    let current = section_version(&manifest, "[workspace.package]")
        .context("Cargo.toml has no [workspace.package] version")?;
    let current = Version::parse(&current)?;
    if *new < current {
        bail!("{new} is older than the workspace's {current}");
    }
    let own = |name: &str| {
        OWN_VERSION
            .iter()
            .any(|(crate_name, _)| *crate_name == name)
    };
    let follows = |name: &str| !own(name);
    let mut manifest = set_section_version(&manifest, "[workspace.package]", new);
    manifest = set_dependency_versions(&manifest, &follows, &current.to_string(), new);
    let mut changes = vec![Change {
        path: "CHANGELOG.md".into(),
        text: release_changelog(&read("CHANGELOG.md")?, new, date, "v")?,
    }];
    for (name, version) in crates {
        let Some((_, dir)) = OWN_VERSION.iter().find(|(n, _)| n == name) else {
            bail!(
                "--crate {name}: only {} are versioned on their own",
                OWN_VERSION.map(|(n, _)| n).join(", ")
            );
        };
        let crate_manifest_path = format!("{dir}/Cargo.toml");
        let crate_manifest = read(&crate_manifest_path)?;
        let old = section_version(&crate_manifest, "[package]").context("no [package] version")?;
        // Equal is a first release at the version the manifest already has; the changelog
        // refuses a version it already lists.
        if *version < Version::parse(&old)? {
            bail!("--crate {name}={version}: older than its {old}");
        }
        manifest = set_dependency_versions(&manifest, &|n| n == name, &old, version);
        changes.push(Change {
            path: crate_manifest_path,
            text: set_section_version(&crate_manifest, "[package]", version),
        });
        let changelog = format!("{dir}/CHANGELOG.md");
        let tag_prefix = format!("{name}-v");
        changes.push(Change {
            text: release_changelog(&read(&changelog)?, version, date, &tag_prefix)?,
            path: changelog,
        });
    }
    changes.push(Change {
        path: "Cargo.toml".into(),
        text: manifest,
    });
    for path in PINNED_IN {
        let text = read(path)?;
        let moved = move_pins(&text, &current, new);
        if moved != text {
            changes.push(Change {
                path: path.into(),
                text: moved,
            });
        }
    }
    Ok(changes)
}

/// Today, `YYYY-MM-DD`, from `date` (the one place xtask asks the system for the date).
fn today() -> Result<String> {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .context("could not run `date`")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `cargo xtask release X.Y.Z [--crate NAME=A.B.C]... [--dry-run]`.
pub(crate) fn release(args: &[String]) -> Result<bool> {
    let mut version = None;
    let mut crates = Vec::new();
    let mut dry_run = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--dry-run" => dry_run = true,
            "--crate" => {
                let spec = rest.next().context("--crate NAME=VERSION")?;
                let (name, v) = spec.split_once('=').context("--crate NAME=VERSION")?;
                crates.push((name.to_owned(), Version::parse(v)?));
            }
            other if version.is_none() && !other.starts_with('-') => {
                version = Some(Version::parse(other)?);
            }
            other => bail!(
                "unexpected argument {other:?}: cargo xtask release X.Y.Z [--crate lambda-cloud=A.B.C] [--dry-run]"
            ),
        }
    }
    let version = version.context("cargo xtask release X.Y.Z: name the version")?;
    let root = workspace_root();
    let changes = plan(&root, &version, &crates, &today()?)?;
    // Only what moves: a first release keeps the manifests' versions.
    let changes: Vec<Change> = changes
        .into_iter()
        .filter(|c| {
            std::fs::read_to_string(root.join(&c.path)).ok().as_deref() != Some(c.text.as_str())
        })
        .collect();
    for change in &changes {
        println!(
            "{} {}",
            if dry_run { "would change" } else { "changed" },
            change.path
        );
        if !dry_run {
            std::fs::write(root.join(&change.path), &change.text)
                .with_context(|| format!("writing {}", change.path))?;
        }
    }
    if dry_run {
        return Ok(true);
    }
    // The lock file follows the manifests (no network: only the workspace's own versions move).
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["update", "--workspace", "--offline", "--quiet"])
            .current_dir(&root)
            .status()?;
    if !status.success() {
        bail!("cargo update --workspace failed ({status})");
    }
    println!(
        "\nNext: review `git diff`, run `cargo xtask ci`, then\n  git commit -am \"Release v{version}\" && git tag v{version} && git push origin HEAD v{version}\n\
         release.yml builds the binaries, publishes the release and moves {} to it.",
        version.major_tag()
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order_as_semver_says() {
        let v = |t| Version::parse(t).unwrap();
        assert!(v("0.1.0") < v("0.1.1") && v("0.1.1") < v("0.2.0") && v("0.9.9") < v("1.0.0"));
        assert!(v("1.0.0-rc.1") < v("1.0.0"));
        assert_eq!(v("1.2.3-rc.1").to_string(), "1.2.3-rc.1");
        assert_eq!(v("0.4.2").major_tag(), "v0");
        for bad in ["v1.0.0", "1.0", "1.0.0.0", "01.0.0", "1.x.0", "1.0.0-"] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
    }

    const MANIFEST: &str = "[workspace.package]\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
        [workspace.dependencies]\nlambda-cloud = { path = \"crates/lambda-cloud\", version = \"0.2.0\" }\n\
        gha-runner-core = { path = \"crates/gha-runner-core\", version = \"0.1.0\" }\n\
        tokio = { version = \"0.1.0\" }\n";

    #[test]
    fn the_workspace_version_moves_with_the_crates_that_follow_it() {
        let new = Version::parse("0.2.0").unwrap();
        let text = set_section_version(MANIFEST, "[workspace.package]", &new);
        let text = set_dependency_versions(&text, &|n| n != "lambda-cloud", "0.1.0", &new);
        assert_eq!(
            section_version(&text, "[workspace.package]").as_deref(),
            Some("0.2.0")
        );
        assert!(text.contains(
            "gha-runner-core = { path = \"crates/gha-runner-core\", version = \"0.2.0\" }"
        ));
        assert!(
            text.contains("lambda-cloud = { path = \"crates/lambda-cloud\", version = \"0.2.0\" }")
        );
        assert!(
            text.contains("tokio = { version = \"0.1.0\" }"),
            "not a workspace crate"
        );
        assert!(text.contains("edition = \"2024\""));
    }

    const CHANGELOG: &str = "# Changelog\n\nIntro.\n\n## [Unreleased]\n\n### Added\n\n- `cost`.\n\n\
        ## [0.1.0] - 2026-11-01\n\n### Added\n\n- Everything.\n\n\
        [Unreleased]: https://github.com/o/r/compare/v0.1.0...HEAD\n\
        [0.1.0]: https://github.com/o/r/releases/tag/v0.1.0\n";

    #[test]
    fn the_unreleased_entries_move_under_the_new_version_with_its_links() {
        let new = Version::parse("0.2.0").unwrap();
        let text = release_changelog(CHANGELOG, &new, "2026-12-01", "v").unwrap();
        assert_eq!(
            text,
            "# Changelog\n\nIntro.\n\n## [Unreleased]\n\n## [0.2.0] - 2026-12-01\n\n### Added\n\n- `cost`.\n\n\
             ## [0.1.0] - 2026-11-01\n\n### Added\n\n- Everything.\n\n\
             [Unreleased]: https://github.com/o/r/compare/v0.2.0...HEAD\n\
             [0.2.0]: https://github.com/o/r/compare/v0.1.0...v0.2.0\n\
             [0.1.0]: https://github.com/o/r/releases/tag/v0.1.0\n"
        );
        let first = "# C\n\n## [Unreleased]\n\n- One.\n\n[Unreleased]: https://github.com/o/r/commits/main\n";
        let first = release_changelog(first, &Version::parse("0.1.0").unwrap(), "d", "v").unwrap();
        assert!(first.ends_with(
            "[Unreleased]: https://github.com/o/r/compare/v0.1.0...HEAD\n[0.1.0]: https://github.com/o/r/releases/tag/v0.1.0\n"
        ), "{first}");
        let error =
            release_changelog(&text, &Version::parse("0.2.1").unwrap(), "d", "v").unwrap_err();
        assert!(error.to_string().contains("nothing under"), "{error}");
        assert!(release_changelog(CHANGELOG, &Version::parse("0.1.0").unwrap(), "d", "v").is_err());
    }

    #[test]
    fn pins_move_and_nothing_else() {
        let (old, new) = (
            Version::parse("0.1.0").unwrap(),
            Version::parse("0.1.1").unwrap(),
        );
        let text =
            "uses: o/r@v0.1.0\nLAMBDA_GHA_VERSION: v0.1.0\nversion 0.1.0 of x\nuses: o/r@v0\n";
        assert_eq!(
            move_pins(text, &old, &new),
            "uses: o/r@v0.1.1\nLAMBDA_GHA_VERSION: v0.1.1\nversion 0.1.0 of x\nuses: o/r@v0\n"
        );
    }

    #[test]
    fn a_release_of_this_tree_is_planned_whole() {
        let root = workspace_root();
        let new = Version::parse("99.0.0").unwrap();
        let changes = plan(&root, &new, &[], "2026-12-01").unwrap();
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        for wanted in [
            "CHANGELOG.md",
            "Cargo.toml",
            "README.md",
            ".github/workflows/reaper.yml",
        ] {
            assert!(paths.contains(&wanted), "{wanted} not in {paths:?}");
        }
        let manifest = &changes
            .iter()
            .find(|c| c.path == "Cargo.toml")
            .unwrap()
            .text;
        assert_eq!(
            section_version(manifest, "[workspace.package]").as_deref(),
            Some("99.0.0")
        );
        assert!(
            plan(&root, &Version::parse("0.0.1").unwrap(), &[], "d").is_err(),
            "older"
        );
    }
}
