//! mua-operator: Azure Backup multi-user authorization (MUA), made declarative.
//!
//! Data flows one way: Kubernetes object → reconciler (`controller`) → typed Azure call (`azure`) →
//! ARM (or the local simulator, `sim`) → status.

pub mod azure;
pub mod control_plane;
pub mod controller;
pub mod crd;
pub mod demo;
pub mod docs;
pub mod operations;
pub mod run;
pub mod sim;
