//! The `lambda-gha-action` binary. Its commands are composed from the workspace libraries as they land;
//! today it answers `--version` and says plainly that it has no commands yet.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some("-V" | "--version") = std::env::args().nth(1).as_deref() {
        println!("lambda-gha-action {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "lambda-gha-action {}: no commands are available in this build yet (see ARCHITECTURE.md)",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
