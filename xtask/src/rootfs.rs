//! `cargo xtask rootfs`: the Debian root filesystem that simulated machines boot from as real
//! root (`sim_machine::MachineMode::Root`), built once with `debootstrap` and cached under
//! `target/machine-rootfs`. A stamp inside names what it was built with; a different stamp
//! (the package list changed) builds it again.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{ensure_tools, workspace_root};

/// What a boot script needs from Lambda's Ubuntu image, beyond `debootstrap`'s minimal base
/// (which has bash, coreutils, tar, gzip, passwd's `useradd`, util-linux).
const PACKAGES: &[&str] = &[
    "sudo",
    "curl",
    "ca-certificates",
    "procps",
    "python3",
    "zstd",
];
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Bumped when the build below changes in a way the package list does not show.
const RECIPE: u32 = 1;
const STAMP: &str = "etc/lambda-gha-rootfs.stamp";

/// Where the root filesystem lives (the e2e tests read `LAMBDA_GHA_ROOTFS`, default this).
pub(crate) fn path() -> PathBuf {
    std::env::var_os("LAMBDA_GHA_ROOTFS").map_or_else(
        || workspace_root().join("target/machine-rootfs"),
        PathBuf::from,
    )
}

fn stamp() -> String {
    format!(
        "recipe {RECIPE}; debootstrap --variant=minbase {SUITE}; {}\n",
        PACKAGES.join(",")
    )
}

/// Builds the root filesystem unless a current one is there; says how long a build took.
pub(crate) fn ensure() -> Result<PathBuf> {
    let target = path();
    if std::fs::read_to_string(target.join(STAMP)).is_ok_and(|s| s == stamp()) {
        return Ok(target);
    }
    ensure_tools(&[("debootstrap", "debootstrap")])?;
    println!(
        "==> building the machines' root filesystem at {}",
        target.display()
    );
    let started = Instant::now();
    let building = target.with_extension(format!("building-{}", std::process::id()));
    remove(&building)?;
    let status = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&building)
        .arg(MIRROR)
        .status()
        .context("running debootstrap")?;
    if !status.success() {
        remove(&building)?;
        bail!(
            "debootstrap failed: the machines' root filesystem needs Debian's packages \
             (run as root, with the Debian mirror reachable)"
        );
    }
    // Ubuntu (Lambda's image) makes new homes private (HOME_MODE 0750 since 21.04); Debian
    // leaves them to the umask. Match the machine a runner meets.
    let login_defs = building.join("etc/login.defs");
    let mut defs = std::fs::read_to_string(&login_defs).context("reading login.defs")?;
    defs.push_str("HOME_MODE\t0750\n");
    std::fs::write(&login_defs, defs)?;
    // Keep apt's package cache out of every machine.
    remove(&building.join("var/cache/apt/archives"))?;
    std::fs::write(building.join(STAMP), stamp())?;
    remove(&target)?;
    std::fs::rename(&building, &target)
        .with_context(|| format!("moving the root filesystem to {}", target.display()))?;
    println!(
        "==> root filesystem built in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(target)
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
