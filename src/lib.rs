//! mua-operator: Azure Backup multi-user authorization (MUA), made declarative.
//!
//! Data flows one way: Kubernetes object → reconciler (`controller`) → typed Azure call (`azure`) →
//! ARM (or the local simulator, `sim`) → status.

pub mod azure;
#[cfg(feature = "demo")]
pub mod control_plane;
pub mod controller;
#[cfg(feature = "demo")]
pub mod demo;
pub mod run;

/// The CRD types and the operations table live in `mua-api` (the kubectl plugin uses them alone).
pub use mua_api::{crd, operations};
/// The local ARM simulator, in builds with the `sim` feature (the default; not in the container image).
#[cfg(feature = "sim")]
pub use mua_sim as sim;
