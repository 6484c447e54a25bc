//! Integration tests of the client against wiremock, with the spec as the source of truth.

mod coverage;
mod errors;
mod models;
mod operations;
mod retries;
mod secrets;
mod support;
