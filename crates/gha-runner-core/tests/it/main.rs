//! Integration tests of the runner core.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod boot_script;
mod fake;
mod github;
mod plan;
mod termination;
