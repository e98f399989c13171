//! One reconciler per CRD, all of the same shape — `observe` (reads only), `plan` (pure), `apply` (typed
//! `azure::*` calls), `status` (pure) — and the pieces they share: the [`Context`], the one place
//! results are reported ([`outcome`]), typed reasons, conditions, metrics and the clock.

pub mod admission;
pub mod clock;
pub mod conditions;
pub mod context;
pub mod critical_operation_request;
pub mod events;
pub mod finalizer;
pub mod identity;
pub mod memo_key;
pub mod metrics;
pub mod outcome;
pub mod reason;
pub mod resource_guard;
pub mod scope;
pub mod side;
pub mod vault_protection;
pub mod watch;

pub use context::{Context, ControllerConfig, SideContext, SideState};
pub use outcome::{Health, Notice, Outcome, Requeue, Summary};
pub use reason::Reason;
pub use side::{BackupContext, BackupIdentity, BackupSide, SecurityContext, SecuritySide};

use crate::azure::AzureError;

/// Why a reconcile failed (the expected, person-actionable situations are outcomes, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Azure(#[from] AzureError),
    /// A namespace's identity Secret cannot be used.
    #[error("{0}")]
    Identity(String),
}

impl Error {
    /// The condition reason, metric label and Event reason of this failure.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Kube(_) => Reason::KubernetesError,
            Error::Identity(_) => Reason::IdentityInvalid,
            Error::Azure(err) => match err {
                AzureError::Arm { status: 429, .. } => Reason::AzureThrottled,
                AzureError::Arm { status: 409 | 412, .. } => Reason::AzureConflict,
                AzureError::Arm { status: 401 | 403, .. } | AzureError::Credential { .. } => Reason::AzureAccessDenied,
                AzureError::Arm { status, .. } if *status >= 500 || *status == 408 => Reason::AzureUnavailable,
                AzureError::Transport { .. } => Reason::AzureUnavailable,
                AzureError::TenantNotConfigured { .. } => Reason::TenantCredentialMissing,
                AzureError::Arm { .. } | AzureError::Protocol { .. } | AzureError::OperationFailed { .. } => {
                    Reason::AzureRejected
                }
            },
        }
    }

    /// Whether only a person can resolve it (credentials, permissions, a request Azure finds invalid):
    /// the object is then `Stalled` and retried slowly.
    pub fn needs_person(&self) -> bool {
        matches!(
            self.reason(),
            Reason::AzureAccessDenied
                | Reason::TenantCredentialMissing
                | Reason::AzureRejected
                | Reason::IdentityInvalid
        )
    }

    /// How long ARM asked the operator to wait.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Azure(err) => err.retry_after(),
            Error::Kube(_) | Error::Identity(_) => None,
        }
    }
}
