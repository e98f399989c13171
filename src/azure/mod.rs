//! The ARM client: credentials, retries, throttling and long-running operations, with one module per
//! Azure resource family. It never sees Kubernetes types.

pub mod authorization;
pub mod client;
pub mod credentials;
pub mod error;
pub mod guards;
pub mod vaults;

pub use client::{ArmClient, Call, Reply, RetryPolicy};

/// A shared Azure credential.
pub type TokenCredentialRef = std::sync::Arc<dyn azure_core::credentials::TokenCredential>;
pub use error::AzureError;
