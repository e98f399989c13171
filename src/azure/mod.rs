//! The ARM client: credentials, retries, throttling and long-running operations, with one module per
//! Azure resource family. It never sees Kubernetes types.

pub mod authorization;
pub mod client;
pub mod credentials;
pub mod error;
pub mod guards;
pub mod metrics;
pub mod throttle;
pub mod vaults;

pub use client::{ArmClient, Call, Reply, RetryPolicy};
pub use metrics::ArmMetrics;
pub use throttle::{Bucket, OperationKind, ThrottlePolicy};

/// A shared Azure credential.
pub type TokenCredentialRef = std::sync::Arc<dyn azure_core::credentials::TokenCredential>;
pub use error::AzureError;

/// Decodes an ARM body into a private wire type; a body that does not fit is a protocol error naming
/// `what` was being decoded.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &str, body: serde_json::Value) -> Result<T, AzureError> {
    serde_json::from_value(body).map_err(|err| AzureError::protocol(format!("decoding {what}"), err.to_string()))
}

/// The parts of a top-level resource ID `/subscriptions/{s}/resourceGroups/{rg}/providers/{provider}/{type}/{name}`:
/// `(subscription, resource group, provider, type, name)`. The fixed segments compare without case, as ARM
/// does; anything else (a child resource, another scope) is `None`.
pub(crate) fn parse_resource_id(id: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [s, subscription, rg, group, p, provider, kind, name]
            if s.eq_ignore_ascii_case("subscriptions")
                && rg.eq_ignore_ascii_case("resourceGroups")
                && p.eq_ignore_ascii_case("providers") =>
        {
            Some((subscription, group, provider, kind, name))
        }
        _ => None,
    }
}
