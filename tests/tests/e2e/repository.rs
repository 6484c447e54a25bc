//! Invariants of the repository itself, checked like code: a stale artifact or a broken
//! promise in the README fails here with the command that fixes it.

use std::path::Path;

use lambda_gha_tests::{read_repo_file, workspace_root};

fn member_manifests() -> Vec<(String, String)> {
    let root = workspace_root();
    let mut manifests = Vec::new();
    for dir in ["crates"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            manifests.push((
                name,
                std::fs::read_to_string(path.join("Cargo.toml")).unwrap(),
            ));
        }
    }
    for name in ["xtask", "tests"] {
        manifests.push((
            name.to_owned(),
            read_repo_file(&format!("{name}/Cargo.toml")),
        ));
    }
    manifests.sort();
    manifests
}

#[test]
fn the_readme_shows_the_test_command_that_ci_runs() {
    let readme = read_repo_file("README.md");
    let top: String = readme.lines().take(40).collect::<Vec<_>>().join("\n");
    assert!(
        top.contains("cargo xtask ci"),
        "README.md must show `cargo xtask ci` near the top"
    );
    let ci = read_repo_file(".ci/run");
    assert!(
        ci.lines().any(|line| line.trim() == "exec cargo xtask ci"),
        ".ci/run must run the README's test command"
    );
}

#[test]
fn every_member_inherits_the_workspace_lints_and_package_fields() {
    for (name, manifest) in member_manifests() {
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{name}/Cargo.toml must have `[lints] workspace = true`"
        );
        for field in ["version", "edition", "license"] {
            assert!(
                manifest.contains(&format!("{field}.workspace = true")),
                "{name}/Cargo.toml must inherit `{field}` from the workspace"
            );
        }
    }
}

/// Crates published for others to build on document every public item; the binaries' own
/// libraries and the test support do not (a doc that only repeats a name says nothing).
#[test]
fn every_published_library_crate_denies_missing_docs() {
    let root = workspace_root();
    for (name, manifest) in member_manifests() {
        let base = if Path::new(&root.join("crates").join(&name)).exists() {
            root.join("crates").join(&name)
        } else {
            root.join(&name)
        };
        let lib = base.join("src/lib.rs");
        if lib.exists() {
            let source = std::fs::read_to_string(&lib).unwrap();
            let published = !manifest.contains("publish = false");
            assert_eq!(
                source.contains("#![deny(missing_docs)]"),
                published,
                "{}: #![deny(missing_docs)] where the crate is published, nowhere else",
                lib.display()
            );
        }
    }
}

#[test]
fn the_architecture_document_maps_every_crate() {
    let architecture = read_repo_file("ARCHITECTURE.md");
    for (name, _) in member_manifests() {
        let heading = if name == "tests" || name == "xtask" {
            format!("### `{name}/`")
        } else {
            format!("### `crates/{name}`")
        };
        assert!(
            architecture.contains(&heading),
            "ARCHITECTURE.md needs a code-map heading `{heading}`"
        );
    }
}

#[test]
fn the_vendored_spec_is_the_shared_one() {
    let shared = workspace_root().join("../shared/lambda-cloud-openapi.json");
    let Ok(shared) = std::fs::read(&shared) else {
        // Outside the project's own checkout layout there is nothing to compare with.
        return;
    };
    let vendored =
        std::fs::read(workspace_root().join("crates/lambda-cloud/spec/lambda-cloud-openapi.json"))
            .unwrap();
    assert!(
        shared == vendored,
        "the vendored spec is stale: run `cp ../shared/lambda-cloud-openapi.json crates/lambda-cloud/spec/`"
    );
}
