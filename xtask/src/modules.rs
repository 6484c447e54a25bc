//! The module-cycle check: within each crate, the top-level modules (`src/<name>.rs` and
//! `src/<name>/`) and the `crate::<name>` paths between them form a graph that must have no
//! cycle, so that every module can be read, tested and moved after the ones it uses.
//!
//! `cargo modules dependencies --acyclic` answers the same question from rustc's own view; it
//! needs a nightly-pinned rust-analyzer build, so this reads the source: a path written
//! `crate::name` anywhere in a module's files is an edge (a `use` inside a function counts; a
//! test module counts too, which is stricter than needed and kept that way for simplicity).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Module name → the modules it names through `crate::`.
pub(crate) type Graph = BTreeMap<String, BTreeSet<String>>;

/// The graph of the crate whose sources are under `src`.
pub(crate) fn graph(src: &Path) -> Result<Graph> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if ["lib", "main"].contains(&stem) {
            continue;
        }
        if path.is_dir() {
            files
                .entry(stem.to_owned())
                .or_default()
                .extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.entry(stem.to_owned()).or_default().push(path);
        }
    }
    let names: BTreeSet<String> = files.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, paths) in &files {
        let mut uses = BTreeSet::new();
        for path in paths {
            let text = std::fs::read_to_string(path)?;
            uses.extend(
                crate_paths(&text)
                    .into_iter()
                    .filter(|n| n != module && names.contains(n)),
            );
        }
        graph.insert(module.clone(), uses);
    }
    Ok(graph)
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    Ok(found)
}

/// The first segment after every `crate::` in `text`, and every name in a
/// `use crate::{a, b::c}` group.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // `$crate::` in macros and `lambda_cloud_crate::` style names are not this crate.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The names at the group's top level: `{plan::{A, B}, tags}` → plan, tags.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        names.insert(ident(group[start..i].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(ident(group[start..i].trim()));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(ident(rest));
        }
    }
    names.remove("");
    names
}

/// The cycles of `graph`: each strongly connected component of more than one module, sorted.
pub(crate) fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    // Two modules are in one cycle when each reaches the other.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(module) = todo.pop() {
            for next in graph.get(&module).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    for module in graph.keys() {
        if found.iter().any(|c| c.contains(module)) {
            continue;
        }
        let component: Vec<String> = graph
            .keys()
            .filter(|other| {
                *other == module
                    || (reachable[module].contains(*other) && reachable[*other].contains(module))
            })
            .cloned()
            .collect();
        if component.len() > 1 {
            found.push(component);
        }
    }
    found
}

/// Every crate's cycles, as lines for people; empty when there is none.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    crates.extend([root.join("tests"), root.join("xtask")]);
    crates.sort();
    for dir in crates {
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let name = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        for cycle in cycles(&graph(&src)?) {
            let cycle = cycle.join(" ↔ ");
            problems.push(format!(
                "{name}: modules {cycle} use each other (move what they share into a leaf module)"
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_of(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(m, uses)| {
                (
                    (*m).to_owned(),
                    uses.iter().map(|u| (*u).to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn paths_are_read_from_uses_groups_and_expressions_but_not_macros() {
        let text = "use crate::{plan::{A, B}, tags};\nlet x = crate::naming::f();\n\
                    $crate::macros::m!(); my_crate::nope::x();";
        let names: Vec<String> = crate_paths(text).into_iter().collect();
        assert_eq!(names, ["naming", "plan", "tags"]);
    }

    #[test]
    fn a_cycle_is_found_and_a_chain_is_not() {
        let chain = graph_of(&[("a", &["b"]), ("b", &["c"]), ("c", &[])]);
        assert!(cycles(&chain).is_empty());
        let cyclic = graph_of(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]);
        assert_eq!(cycles(&cyclic), [["a", "b", "c"]]);
    }

    #[test]
    fn no_crate_of_this_workspace_has_a_module_cycle() {
        let problems = check(&crate::workspace_root()).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
