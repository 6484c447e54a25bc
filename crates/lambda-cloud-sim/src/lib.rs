//! A faithful, stateful local Lambda Cloud: the embedded default that lets everything run and
//! be tested offline.
//!
//! This crate is being built (see `ARCHITECTURE.md`); today it only fixes its place in the
//! workspace: it depends on `lambda-cloud` for the API's models and nothing else of ours.

#![deny(missing_docs)]
