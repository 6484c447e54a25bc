//! The function-length check: no function outside tests runs over [`MAX_LINES`] lines unless a
//! comment just above it, starting `// Long:`, says why it reads best whole.
//!
//! Read from the source with rustfmt's layout: a function starts at a line `fn name(` (after
//! its qualifiers) and ends at the first line that is its indentation followed by `}`; a trait
//! method declared without a body (its signature ends in `;`) is no function. A file's
//! `#[cfg(test)] mod tests` and everything after it are tests.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// The longest a function may be without saying why.
pub(crate) const MAX_LINES: usize = 100;

/// A function of `lines` lines starting at line `line` (1-based).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Function {
    pub(crate) name: String,
    pub(crate) line: usize,
    pub(crate) lines: usize,
    pub(crate) explained: bool,
}

/// The functions of `text` outside its tests.
pub(crate) fn functions(text: &str) -> Vec<Function> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod tests"))
        .unwrap_or(lines.len());
    let mut found = Vec::new();
    for (at, line) in lines[..end].iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        // A trait's declaration has no body: its signature ends in `;`, not `{`.
        let signature_end = lines[at..end].iter().find(|l| {
            let l = l.trim_end();
            l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
        });
        if signature_end.is_some_and(|l| l.trim_end().ends_with(';')) {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let close = format!("{indent}}}");
        let Some(length) = lines[at..end].iter().position(|l| *l == close) else {
            continue;
        };
        // Above it: its attributes and doc comments, then a `// Long:` reason if any.
        let explained = lines[..at]
            .iter()
            .rev()
            .take_while(|l| {
                let l = l.trim_start();
                l.starts_with("//") || l.starts_with("#[")
            })
            .any(|l| l.trim_start().starts_with("// Long:"));
        found.push(Function {
            name,
            line: at + 1,
            lines: length + 1,
            explained,
        });
    }
    found
}

/// The name in a line that starts a function, after its qualifiers.
fn fn_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for qualifier in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(qualifier).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    Ok(())
}

/// Every long function without its reason, as lines for people.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("crates"))? {
        let src = entry?.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files)?;
        }
    }
    rust_files(&root.join("xtask/src"), &mut files)?;
    files.sort();
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for f in functions(&text) {
            if f.lines > MAX_LINES && !f.explained {
                problems.push(format!(
                    "{}:{}: `{}` is {} lines: split it where a reader gains, or say why it reads \
                     best whole in a `// Long:` comment above it",
                    file.strip_prefix(root).unwrap_or(&file).display(),
                    f.line,
                    f.name,
                    f.lines
                ));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_are_measured_to_their_closing_brace_and_tests_are_left_out() {
        let body = "    x();\n".repeat(3);
        let text = format!(
            "pub(crate) async fn short() {{\n{body}}}\n\n    // Long: one match.\n    \
             fn method(&self) -> u8 {{\n{body}    }}\n#[cfg(test)]\nmod tests {{\n    \
             fn in_a_test() {{}}\n}}\n"
        );
        // Declarations in a trait have no body to measure, on one line or several.
        let declared = format!(
            "trait T {{\n    fn one(&self) -> u8;\n    async fn two(\n        &self,\n    ) -> u8;\n{text}"
        );
        assert_eq!(functions(&declared).len(), 2, "{:?}", functions(&declared));
        let found = functions(&text);
        assert_eq!(
            found,
            [
                Function {
                    name: "short".into(),
                    line: 1,
                    lines: 5,
                    explained: false
                },
                Function {
                    name: "method".into(),
                    line: 8,
                    lines: 5,
                    explained: true
                },
            ]
        );
    }

    #[test]
    fn no_function_of_this_workspace_is_long_without_a_reason() {
        let problems = check(&crate::workspace_root()).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
