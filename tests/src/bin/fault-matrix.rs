//! `cargo xtask e2e --faults`: runs the fault matrix, prints a row per scenario and the
//! totals, keeps `docs/fault-matrix.md` equal to the table, and fails on any leak, secret or
//! broken scenario. `-j N` runs N scenarios at once (default 6); names after the flags run
//! only the scenarios whose fault contains one of them.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use lambda_gha_tests::faults::{self, Programs};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut parallel = 6;
    let mut filters = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-j" => {
                let Some(n) = args.next().and_then(|n| n.parse().ok()) else {
                    eprintln!("fault-matrix: -j needs a number");
                    return ExitCode::from(2);
                };
                parallel = n;
            }
            other => filters.push(other.to_owned()),
        }
    }
    let mut scenarios = faults::scenarios();
    let whole = filters.is_empty();
    if !whole {
        scenarios.retain(|s| {
            let name = format!("{s:?}");
            filters.iter().any(|f| name.contains(f.as_str()))
        });
    }
    println!("fault matrix: building the programs");
    let programs = Programs::build();
    println!(
        "fault matrix: {} scenarios, {parallel} at a time",
        scenarios.len()
    );
    let started = std::time::Instant::now();
    let report = faults::run_matrix(&programs, &scenarios, parallel).await;
    let leaked = report.leaked();
    println!(
        "fault matrix: {} scenarios in {:.0}s; left at the end: {} machines, {} runner \
         registrations, {} SSH keys; secrets found: {} in {} captured outputs",
        report.rows.len(),
        started.elapsed().as_secs_f64(),
        leaked.machines,
        leaked.runners,
        leaked.keys,
        report.secret_hits(),
        report.places_scanned()
    );
    let (files, repository_hits) = faults::scan_repository();
    println!(
        "fault matrix: secrets found in {files} snapshots and documents of the repository: {}",
        repository_hits.len()
    );
    let mut ok = true;
    for hit in &repository_hits {
        println!("  SECRET in {hit}");
        ok = false;
    }
    for row in &report.rows {
        for hit in &row.secret_hits {
            println!("  SECRET in {hit} ({:?})", row.scenario);
            ok = false;
        }
    }
    for problem in report.problems() {
        println!("  PROBLEM: {problem}");
        ok = false;
    }
    if leaked.machines + leaked.runners + leaked.keys > 0 {
        ok = false;
    }
    if whole {
        let table = report.table();
        if let Err(message) =
            lambda_gha_tests::check_doc_section("docs/fault-matrix.md", "fault-matrix", &table)
        {
            println!("{message}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
