//! The integration tests: one test binary (`cargo test --test it`), one module per feature.
//!
//! Every test that needs Kubernetes shares one control plane per process (`ControlPlane::shared()`, in a
//! namespace of its own); a test that changes what the others rely on starts one of its own
//! (`ControlPlane::own()`). `cargo test --test it elevation::` runs one feature's tests.
//!
//! The fixtures: `cluster` (the real control plane, `tests/cluster/`), `simulator` (the ARM simulator,
//! `tests/simulator/`; both also used by the benches), `operator` (the controllers in-process) and `process`
//! (the `mua-operator` binary as a child process).

// The fixtures, like the tests, report a failed precondition by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "../cluster/mod.rs"]
mod cluster;
#[path = "../node/mod.rs"]
mod node;
mod operator;
mod process;
#[path = "../simulator/mod.rs"]
mod simulator;

mod admission;
mod argocd_health;
mod azure_client;
mod azure_throttle;
mod chart;
mod crdgen;
mod crds;
mod demo;
mod elevation;
mod elevation_restart;
mod elevation_without_policies;
mod image;
mod kubectl_mua;
mod leader_election;
mod on_a_node;
mod operator_rbac;
mod resource_guard;
mod run_command;
mod sandbox;
mod sim_arm;
mod sim_authorization;
mod sim_azure_cli;
mod sim_contract;
mod sim_protection;
mod team_identities;
mod teams;
mod vault_protection;
mod vault_protection_faults;
