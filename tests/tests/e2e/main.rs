//! Workspace end-to-end tests: repository invariants and whole programs run as users run them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod boot;
mod examples;
mod repository;
mod simulator;
