//! The RunPod provider against the RunPod fake: the core's conformance suite, and what is
//! RunPod's own (the request it sends, the pod-scoped key, the catalog).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod provider;
