//! Workspace end-to-end tests: repository invariants and whole programs run as users run them.

// The suite prints the timelines it measures; helpers outside #[test] unwrap like tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod action_files;
mod agent;
mod boot;
mod boot_log;
mod cache;
mod controller;
mod examples;
mod fake_runner;
mod fetch_binary;
mod gpus;
mod permissions;
mod reap;
mod replicas;
mod repository;
mod runner_release;
mod runpod;
mod simulator;
mod workflow;
