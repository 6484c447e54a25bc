//! `cargo xtask bench <name>`: benchmarks that print their figures and ratios against a
//! baseline measured in the same run. Targets are printed, never asserted on timing.

use std::process::Command;

use anyhow::{Result, bail};

use crate::workspace_root;

const BENCHES: &[(&str, &str, &str)] = &[
    (
        "action",
        "lambda-gha-action",
        "the action binary: wall time and peak RSS of a 1-instance launch against the simulator",
    ),
    (
        "transfer",
        "lambda-gha-cli",
        "`run`'s upload of a 10,000-file / 300 MB project to a loopback sshd, against scp -r and rsync -a",
    ),
];

pub(crate) fn bench(args: &[String]) -> Result<bool> {
    let wanted: Vec<&str> = if args.is_empty() {
        BENCHES.iter().map(|(name, _, _)| *name).collect()
    } else {
        args.iter().map(String::as_str).collect()
    };
    // Peak RSS is read by GNU time; the transfer bench compares with scp and rsync over a
    // local sshd.
    crate::ensure_tools(&[
        ("time", "time"),
        ("rsync", "rsync"),
        ("scp", "openssh-client"),
        ("sshd", "openssh-server"),
    ])?;
    let mut ok = true;
    for name in wanted {
        let Some((_, package, what)) = BENCHES.iter().find(|(n, _, _)| *n == name) else {
            let known: Vec<&str> = BENCHES.iter().map(|(n, _, _)| *n).collect();
            bail!("unknown bench `{name}`; known: {}", known.join(", "));
        };
        println!("==> bench {name}: {what}");
        ok &= Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["bench", "--locked", "-p", package, "--bench", name])
            .current_dir(workspace_root())
            .status()?
            .success();
    }
    Ok(ok)
}
