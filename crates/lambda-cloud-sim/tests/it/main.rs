//! Integration tests of the simulator over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod schema;
mod support;
