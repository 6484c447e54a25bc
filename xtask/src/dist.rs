//! `cargo xtask dist [--target TRIPLE]`: the release artifacts for one target, as
//! `release.yml` attaches them: `target/dist/lambda-gha-<target>`,
//! `target/dist/lambda-gha-action-<target>` and `SHA256SUMS`.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

/// The binaries a release carries: (package, binary).
const BINARIES: [(&str, &str); 2] = [
    ("lambda-gha-cli", "lambda-gha"),
    ("lambda-gha-action", "lambda-gha-action"),
];

fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host's static (musl) target when installed; otherwise the host target itself.
fn default_target() -> Result<String> {
    let host = output(Command::new("rustc").arg("-vV"))?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV printed no host")?;
    let arch = host.split('-').next().unwrap_or("x86_64");
    let musl = format!("{arch}-unknown-linux-musl");
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|t| t.trim() == musl) {
        Ok(musl)
    } else {
        println!(
            "dist: {musl} is not installed (`rustup target add {musl}`); building {host}, which is not static"
        );
        Ok(host)
    }
}

pub(crate) fn dist(args: &[String]) -> Result<bool> {
    let target = match args {
        [] => default_target()?,
        [flag, target] if flag == "--target" => target.clone(),
        _ => bail!("usage: cargo xtask dist [--target TRIPLE]"),
    };
    let root = workspace_root();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--release", "--locked", "--target", &target])
        .current_dir(&root);
    for (package, _) in BINARIES {
        build.args(["-p", package]);
    }
    if target.ends_with("-musl") {
        // Fully static, so the same file runs on any Linux of that CPU.
        build.env("RUSTFLAGS", "-C target-feature=+crt-static");
    }
    if !build.status().context("running cargo build")?.success() {
        return Ok(false);
    }
    let dist = root.join("target/dist");
    std::fs::create_dir_all(&dist)?;
    let mut names = Vec::new();
    for (_, binary) in BINARIES {
        let name = format!("{binary}-{target}");
        let from = root
            .join("target")
            .join(&target)
            .join("release")
            .join(binary);
        std::fs::copy(&from, dist.join(&name))
            .with_context(|| format!("copying {}", from.display()))?;
        names.push(name);
    }
    let sums = output(Command::new("sha256sum").args(&names).current_dir(&dist))?;
    std::fs::write(dist.join("SHA256SUMS"), &sums)?;
    println!("dist: {}", dist.display());
    for name in &names {
        let size = std::fs::metadata(dist.join(name))?.len();
        #[allow(clippy::cast_precision_loss)]
        let mib = size as f64 / 1_048_576.0;
        println!("  {name:<48} {mib:>6.1} MiB");
    }
    print!("{sums}");
    Ok(true)
}
