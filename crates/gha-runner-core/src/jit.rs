//! A just-in-time runner configuration (GitHub's `encoded_jit_config`) unpacked into the files
//! the runner reads, exactly as the runner does itself with `run.sh --jitconfig` (actions/runner
//! `src/Runner.Listener/Runner.cs`: base64 of a JSON map from file name to base64 content, each
//! written into the runner's root). Done by root at boot, it gives the runner its configuration
//! without a command line or an environment variable, where every process of the runner's
//! user could read it for as long as the runner runs.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

use crate::error::CoreError;

/// Writes each file of the JIT configuration `encoded` into `dir` (mode 0600, replacing what
/// is there) and returns their paths. Nothing of the configuration is in an error.
pub fn unpack_jit_config(encoded: &SecretString, dir: &Path) -> Result<Vec<PathBuf>, CoreError> {
    let bad = |why: &str| CoreError::JitConfig(format!("the JIT configuration {why}"));
    let json = STANDARD
        .decode(encoded.expose_secret().trim())
        .map_err(|_| bad("is not base64"))?;
    let files: BTreeMap<String, String> =
        serde_json::from_slice(&json).map_err(|_| bad("is not a JSON map of files"))?;
    if files.is_empty() {
        return Err(bad("has no files"));
    }
    let mut written = Vec::with_capacity(files.len());
    for (name, content) in &files {
        // Plain names in the runner's root only (`.runner`, `.credentials`, …).
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(bad("names a file outside the runner's directory"));
        }
        let content = STANDARD
            .decode(content)
            .map_err(|_| bad("has a file that is not base64"))?;
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(&content).map(|()| file))
            .map_err(|e| CoreError::JitConfig(format!("cannot write {}: {e}", path.display())))?;
        let _ = file.flush();
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(files: &[(&str, &str)]) -> SecretString {
        let map: BTreeMap<&str, String> = files
            .iter()
            .map(|(name, text)| (*name, STANDARD.encode(text)))
            .collect();
        SecretString::from(STANDARD.encode(serde_json::to_vec(&map).unwrap()))
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("jit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_files_land_in_the_runner_directory_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = dir("ok");
        let written = unpack_jit_config(
            &encode(&[(".runner", "{\"agentId\":7}"), (".credentials", "secret")]),
            &dir,
        )
        .unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.join(".credentials")).unwrap(),
            "secret"
        );
        let mode = std::fs::metadata(dir.join(".runner"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn paths_out_of_the_directory_and_garbage_are_refused_without_echoing_it() {
        let dir = dir("bad");
        for (encoded, why) in [
            (encode(&[("../escape", "x")]), "outside"),
            (encode(&[("sub/file", "x")]), "outside"),
            (SecretString::from("not base64 SECRETVALUE"), "base64"),
            (SecretString::from(STANDARD.encode("[1,2]")), "JSON map"),
            (encode(&[]), "no files"),
        ] {
            let error = unpack_jit_config(&encoded, &dir).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
            assert!(!error.contains("SECRETVALUE"), "{error}");
        }
        assert!(!dir.parent().unwrap().join("escape").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
