//! The ARM client: credentials, retries, throttling and long-running operations, with one module per
//! Azure resource family. It never sees Kubernetes types.

pub mod credentials;
