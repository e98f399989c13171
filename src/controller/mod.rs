//! One reconciler per CRD and the context they share (clients, metrics, clock).

pub mod conditions;
pub mod resource_guard;

use crate::azure::{ArmClient, AzureError};

/// What every reconcile needs.
pub struct Context {
    pub client: kube::Client,
    /// The security side's ARM client: owns guards, grants and revokes elevation.
    pub security: ArmClient,
}

/// Why a reconcile failed; each has a short label for metrics and logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Azure(#[from] AzureError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Azure(err) => err.metric_label(),
            Error::Finalizer(_) => "finalizer",
        }
    }
}
