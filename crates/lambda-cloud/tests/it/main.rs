//! Integration tests of the client against wiremock, with the spec as the source of truth.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod coverage;
mod errors;
mod models;
mod operations;
mod paging;
mod retries;
mod secrets;
mod support;
mod tls;
