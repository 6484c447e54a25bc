//! Provider-neutral provisioning of ephemeral, self-hosted GitHub Actions runners.
//!
//! This crate is being built (see `ARCHITECTURE.md`); today it only fixes its place in the
//! workspace: it will hold the `CloudProvider` trait, GitHub registration, launch plans and the
//! termination policy, with Lambda Cloud as its first provider.

#![deny(missing_docs)]
