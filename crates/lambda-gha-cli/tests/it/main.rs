//! The `lambda-gha` binary's everyday commands against the simulator over real HTTP: tables
//! and `--json` shapes snapshot-tested, launches checked before they happen, `--mine` ends
//! only what this tool launched; `run` over a real OpenSSH server on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod bad_inputs;
mod downloads;
mod everyday;
mod firewall;
mod guided;
mod pty;
mod run_sandbox;
mod run_ssh;
mod runpod;
