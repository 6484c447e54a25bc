//! One module per group of subcommands: each holds its arguments and the handler that calls
//! the libraries and prints.

pub(crate) mod account;
pub(crate) mod agent;
pub(crate) mod catalog;
pub(crate) mod filesystems;
pub(crate) mod firewall;
pub(crate) mod instances;
pub(crate) mod reap;
pub(crate) mod run;
pub(crate) mod runpod;
pub(crate) mod serve;
#[cfg(feature = "simulator")]
pub(crate) mod sim;
pub(crate) mod ssh_keys;

use std::process::ExitCode;

use anyhow::Result;
use lambda_gha_cli::progress::Ui;
use lambda_gha_cli::tables;

/// How the command prints.
pub(crate) struct Out {
    pub(crate) json: bool,
    pub(crate) quiet: bool,
}

impl Out {
    /// JSON on stdout with `--json`, otherwise the table for people.
    pub(crate) fn show<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        table: impl FnOnce(&T) -> tables::Table,
    ) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            print!("{}", table(value).render());
        }
        Ok(())
    }

    /// Progress for people, as the library draws it.
    pub(crate) fn ui(&self) -> Ui {
        Ui {
            quiet: self.quiet,
            json: self.json,
        }
    }

    /// A message for people: stderr, so stdout stays clean for `--json`; none with `-q`.
    pub(crate) fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// A duration argument such as `90s`, `20m` or `12h`.
pub(crate) fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    gha_runner_core::duration::parse_duration(text, "duration").map_err(|e| e.problem)
}

/// A process exit code from an `i32` (anything out of range is 1).
pub(crate) fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Who runs this command: the value of the `lambda-gha:cli` tag on what it launches.
pub(crate) fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The process environment, as the libraries read it.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
