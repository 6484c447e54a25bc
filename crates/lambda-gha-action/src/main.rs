//! The `lambda-gha-action` binary. Its commands are composed from the workspace libraries as they land;
//! today it answers `--version` and says plainly that it has no commands yet.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("-V" | "--version") => {
            println!("lambda-gha-action {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "lambda-gha-action {}: no commands are available in this build yet (see ARCHITECTURE.md)",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}
