//! The Lambda provider with the core's plans and provisioner, against the simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod plan_sim;
mod provision;
mod self_terminate;
mod sim;
