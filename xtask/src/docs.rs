//! The documentation points at real things: every relative link in the Markdown files resolves
//! (the file, and the heading an anchor names), and every path and test CONTRIBUTING.md's
//! recipes name exists — so a recipe cannot drift from the code it describes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;

/// The Markdown files people read: the top-level guides, `docs/`, and the crates' READMEs.
fn markdown_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = [
        "README.md",
        "CONTRIBUTING.md",
        "ARCHITECTURE.md",
        "CHANGELOG.md",
    ]
    .iter()
    .map(|name| root.join(name))
    .collect();
    for dir in [root.join("docs"), root.join("crates")] {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
                continue;
            }
            for name in ["README.md", "CHANGELOG.md"] {
                if path.join(name).is_file() {
                    files.push(path.join(name));
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as `-`.
pub(crate) fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The anchors of `text`'s headings (code blocks skipped).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            code = !code;
        } else if !code && line.starts_with('#') {
            let heading = line.trim_start_matches('#');
            if heading.starts_with(' ') {
                found.insert(slug(heading));
            }
        }
    }
    found
}

/// The targets of `text`'s inline links, `](target)`, outside code blocks.
pub(crate) fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            code = !code;
            continue;
        }
        if code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    found
}

/// Every link of `file` (in the tree at `root`) that leads nowhere.
fn broken_links(root: &Path, file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file)?;
    let dir = file.parent().unwrap_or(root);
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut broken = Vec::new();
    for target in links(&text) {
        if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
            continue;
        }
        let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
        let linked = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        if !linked.exists() {
            broken.push(format!("{shown}: link to {target}: no such file"));
            continue;
        }
        if !anchor.is_empty() && linked.extension().is_some_and(|e| e == "md") {
            let headings = anchors(&std::fs::read_to_string(&linked)?);
            if !headings.contains(anchor) {
                broken.push(format!("{shown}: link to {target}: no such heading"));
            }
        }
    }
    Ok(broken)
}

/// What CONTRIBUTING.md names in code spans that is not there: repository paths, and tests
/// written `path.rs: test_name`.
fn missing_references(root: &Path, text: &str) -> Vec<String> {
    const TOP: [&str; 7] = [
        "crates/", "tests/", "xtask/", "docs/", ".github/", "action/", "deploy/",
    ];
    let mut missing = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        if let Some((path, test)) = span.split_once(".rs: ") {
            let file = root.join(format!("{path}.rs"));
            let source = std::fs::read_to_string(&file).unwrap_or_default();
            if !source.contains(&format!("fn {test}(")) {
                missing.push(format!("CONTRIBUTING.md names `{span}`: no such test"));
            }
        } else if TOP.iter().any(|top| span.starts_with(top))
            && !span.contains(['*', '<', ' '])
            && !root.join(span.trim_end_matches('/')).exists()
        {
            missing.push(format!("CONTRIBUTING.md names `{span}`: no such path"));
        }
    }
    missing
}

/// The problems: broken links anywhere, missing things CONTRIBUTING.md names.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for file in markdown_files(root)? {
        problems.extend(broken_links(root, &file)?);
    }
    let contributing = std::fs::read_to_string(root.join("CONTRIBUTING.md"))?;
    problems.extend(missing_references(root, &contributing));
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_made_as_github_makes_them() {
        assert_eq!(
            slug(" Just change `runs-on`: `lambda-gha serve`"),
            "just-change-runs-on-lambda-gha-serve"
        );
        assert_eq!(slug(" 2. Add a launch job"), "2-add-a-launch-job");
        assert_eq!(
            links("[a](x.md#y) and [b](https://e.com)\n```\n[c](nope)\n```\n"),
            ["x.md#y", "https://e.com"]
        );
    }

    #[test]
    fn a_broken_link_or_a_missing_test_is_found() {
        let root = crate::workspace_root();
        let text = "`xtask/src/docs.rs: a_broken_link_or_a_missing_test_is_found` \
                    `xtask/src/docs.rs: no_such_test` `crates/no-such-crate` `crates/*/x` `cargo xtask ci`";
        assert_eq!(
            missing_references(&root, text),
            [
                "CONTRIBUTING.md names `xtask/src/docs.rs: no_such_test`: no such test",
                "CONTRIBUTING.md names `crates/no-such-crate`: no such path",
            ]
        );
        let dir = std::env::temp_dir().join(format!("xtask-docs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.md"),
            "# Top\n\n[ok](#top) [bad](#nope) [gone](b.md) [c](a.md#top)\n",
        )
        .unwrap();
        let broken = broken_links(&dir, &dir.join("a.md")).unwrap();
        assert_eq!(
            broken,
            [
                "a.md: link to #nope: no such heading",
                "a.md: link to b.md: no such file"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn this_trees_docs_point_at_real_things() {
        let problems = check(&crate::workspace_root()).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
