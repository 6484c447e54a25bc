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
        "launch",
        "lambda-gha-action",
        "time to a working runner, phase by phase: the action's start with root machines on the simulator, 1 and 4 machines, before / now / cache cold / cache warm",
    ),
    (
        "transfer",
        "lambda-gha-cli",
        "`run`'s upload of a project to an sshd (10,000 files / 300 MB over loopback; 1,000 / 30 MB over a --link), against scp -r and rsync -a",
    ),
    (
        "serve",
        "lambda-gha-cli",
        "`serve` on SQLite: webhook → decision latency and peak RSS at 200 deliveries/s for 60 s, against /healthz",
    ),
    (
        "serve-replicas",
        "lambda-gha-cli",
        "three `serve` replicas on PostgreSQL: webhook → decision latency at 600 deliveries/s for 60 s, against /healthz",
    ),
];

pub(crate) fn bench(args: &[String]) -> Result<bool> {
    // `--link RATE,RTT` (repeatable; `loopback` too): the transfer bench crosses each such
    // link (lambda_gha_tests::ShapedLink); by default, loopback.
    let mut links: Vec<String> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--link" {
            let Some(link) = rest.next() else {
                bail!("--link needs a link: 100mbit,30ms, 1gbit,5ms or loopback");
            };
            links.push(link.clone());
        } else {
            names.push(arg);
        }
    }
    if links.is_empty() {
        links.push("loopback".to_owned());
    }
    let wanted: Vec<&str> = if names.is_empty() {
        BENCHES.iter().map(|(name, _, _)| *name).collect()
    } else {
        names
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
        let each: &[String] = if name == "transfer" {
            &links
        } else {
            &links[..1]
        };
        // The replicas' database: DATABASE_URL, or a throwaway cluster for this bench.
        let postgres = if name == "serve-replicas" {
            Some(crate::postgres::ensure()?)
        } else {
            None
        };
        for link in each {
            println!("==> bench {name}: {what} (link: {link})");
            let mut command =
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            command
                .args(["bench", "--locked", "-p", package, "--bench", name])
                .env("LAMBDA_GHA_BENCH_LINK", link)
                .current_dir(workspace_root());
            if let Some(postgres) = &postgres {
                command.env("DATABASE_URL", &postgres.url);
            }
            ok &= command.status()?.success();
        }
    }
    Ok(ok)
}
