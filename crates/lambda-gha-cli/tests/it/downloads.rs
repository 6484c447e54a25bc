//! `--download` against a hostile machine: tar streams with absolute paths, `..`, `.git/`,
//! links that leave the download, hard links, devices and fifos. Whatever the stream, nothing
//! is written outside the paths asked for, and a refused entry is named.

use std::path::{Path, PathBuf};

use lambda_gha_cli::project::{Codec, unpack_archive};
use proptest::prelude::*;

/// One entry as a hostile machine might send it: a raw name (written into the header as is,
/// past the tar crate's own checks), a type and a link target.
#[derive(Debug, Clone)]
struct Hostile {
    name: String,
    kind: tar::EntryType,
    link: String,
}

fn names() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "results/ok.txt",
        "results/sub/deep.txt",
        "results",
        "results/",
        "../escape.txt",
        "results/../../escape.txt",
        "/tmp/absolute.txt",
        "./results/dot.txt",
        ".git/hooks/post-checkout",
        "results/.git/config",
        "other/file.txt",
        "resultsx/near.txt",
        "results/link",
        "results/link/through.txt",
    ])
    .prop_map(str::to_owned)
}

fn hostile() -> impl Strategy<Value = Hostile> {
    let kinds = prop::sample::select(vec![
        tar::EntryType::Regular,
        tar::EntryType::Directory,
        tar::EntryType::Symlink,
        tar::EntryType::Link,
        tar::EntryType::Char,
        tar::EntryType::Fifo,
    ]);
    let links = prop::sample::select(vec![
        "ok.txt",
        "../..",
        "/etc",
        "../../outside",
        "sub/deep.txt",
        "../other",
        ".",
    ]);
    (names(), kinds, links).prop_map(|(name, kind, link)| Hostile {
        name,
        kind,
        link: link.to_owned(),
    })
}

/// A gzip'd tar stream of `entries`, names written raw.
fn stream(entries: &[Hostile]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let raw = &mut header.as_gnu_mut().unwrap().name;
        let bytes = entry.name.as_bytes();
        raw[..bytes.len()].copy_from_slice(bytes);
        header.set_entry_type(entry.kind);
        header.set_mode(0o644);
        let body: &[u8] = if entry.kind == tar::EntryType::Regular {
            b"pwned\n"
        } else {
            b""
        };
        header.set_size(body.len() as u64);
        if matches!(entry.kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            header.set_link_name(&entry.link).unwrap();
        }
        header.set_cksum();
        builder.append(&header, body).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

/// Every path under `root`, relative, links not followed.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(root).unwrap().to_path_buf());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn nothing_lands_outside_the_paths_asked_for(entries in prop::collection::vec(hostile(), 1..8)) {
        let sandbox = std::env::temp_dir().join(format!("downloads-{:016x}", fastrand_u64()));
        let dest = sandbox.join("project");
        std::fs::create_dir_all(&dest).unwrap();
        let result = unpack_archive(
            stream(&entries).as_slice(),
            Codec::Gzip,
            &dest,
            &[PathBuf::from("results")],
        );
        // Inside the sandbox only `project/` and what is under `project/results`.
        let outside: Vec<PathBuf> = tree(&sandbox)
            .into_iter()
            .filter(|p| !(p == Path::new("project") || p.starts_with("project/results")))
            .collect();
        let git: Vec<PathBuf> = tree(&dest)
            .into_iter()
            .filter(|p| p.components().any(|c| c.as_os_str() == ".git"))
            .collect();
        // Links written point inside `results` (resolved from where they are, by name).
        let leaving: Vec<PathBuf> = tree(&dest)
            .into_iter()
            .filter(|p| {
                std::fs::read_link(dest.join(p)).is_ok_and(|target| !lands_in_results(p, &target))
            })
            .collect();
        let _ = std::fs::remove_dir_all(&sandbox);
        prop_assert!(outside.is_empty(), "written outside: {outside:?} ({result:?})");
        prop_assert!(git.is_empty(), "written under .git: {git:?}");
        prop_assert!(leaving.is_empty(), "links that leave: {leaving:?}");
        if let Err(error) = result {
            prop_assert!(error.to_string().contains("the machine sent `"), "{error}");
        }
        // Escaping entries never pass silently: /tmp is untouched by this stream.
        prop_assert!(!Path::new("/tmp/absolute.txt").exists());
    }
}

/// Whether a link at `link` (relative to the project) to `target` resolves inside `results`.
/// Written apart from the production check (`project::confined`) on purpose: a shared helper
/// would pass whatever mistake it made.
fn lands_in_results(link: &Path, target: &Path) -> bool {
    use std::path::Component;
    let mut resolved: Vec<&std::ffi::OsStr> = link
        .parent()
        .map(|p| p.components().map(Component::as_os_str).collect())
        .unwrap_or_default();
    for part in target.components() {
        match part {
            Component::Normal(name) => resolved.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                if resolved.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    resolved.first().is_some_and(|first| *first == "results")
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

#[test]
fn a_hostile_entry_is_named_and_stops_the_unpacking() {
    let dir = std::env::temp_dir().join(format!("downloads-named-{}", std::process::id()));
    let dest = dir.join("project");
    std::fs::create_dir_all(&dest).unwrap();
    let entries = [
        Hostile {
            name: "results/ok.txt".into(),
            kind: tar::EntryType::Regular,
            link: String::new(),
        },
        Hostile {
            name: "results/../../escape.txt".into(),
            kind: tar::EntryType::Regular,
            link: String::new(),
        },
    ];
    let error = unpack_archive(
        stream(&entries).as_slice(),
        Codec::Gzip,
        &dest,
        &[PathBuf::from("results")],
    )
    .unwrap_err();
    assert!(
        error.to_string().contains(
            "the machine sent `results/../../escape.txt`, which is absolute or has `..` in it"
        ),
        "{error}"
    );
    assert!(
        dest.join("results/ok.txt").exists(),
        "what came before it is kept"
    );
    assert!(!dir.join("escape.txt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
