//! The action binary as GitHub runs it: `INPUT_*` environment in, workflow commands, outputs
//! and a job summary out, against the simulator and a fake GitHub over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod bad_inputs;
mod parsers;
mod start_stop;
mod support;
