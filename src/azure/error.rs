//! What can go wrong talking to Azure, with enough context to act on: which call, what Azure said.

/// An Azure call that failed, after retries where retrying made sense.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// ARM answered with an error envelope (`{"error": {"code", "message"}}`).
    #[error("{operation}: Azure answered {status} {code}: {message}")]
    Arm {
        operation: String,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        /// How long ARM asked the caller to wait (`Retry-After`), on 429 and some 5xx.
        retry_after: Option<std::time::Duration>,
    },
    /// No token could be had for a tenant.
    #[error("{operation}: getting a token for tenant {tenant} failed: {message}")]
    Credential {
        operation: String,
        tenant: String,
        message: String,
    },
    /// The call needs a token from a tenant this identity is not configured for.
    #[error("{operation}: no credential is configured for tenant {tenant}")]
    TenantNotConfigured { operation: String, tenant: String },
    /// The request never got an answer (connection refused or dropped, timeout).
    #[error("{operation}: {source}")]
    Transport {
        operation: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer that does not fit the API (undecodable body, missing header).
    #[error("{operation}: unexpected answer: {message}")]
    Protocol { operation: String, message: String },
    /// A long-running operation ended in `Failed` or `Canceled`.
    #[error("{operation}: the long-running operation ended {status}: {message}")]
    OperationFailed {
        operation: String,
        status: String,
        message: String,
    },
}

impl AzureError {
    /// An answer that does not fit the API.
    pub(crate) fn protocol(operation: impl Into<String>, message: impl Into<String>) -> AzureError {
        AzureError::Protocol {
            operation: operation.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Arm { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// ARM's error code, e.g. `LinkedAuthorizationFailed`.
    pub fn code(&self) -> Option<&str> {
        match self {
            AzureError::Arm { code, .. } => Some(code),
            _ => None,
        }
    }

    /// How long ARM asked to wait before trying again.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            AzureError::Arm { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// A short label for metrics and logs: failures are counted by reason.
    pub fn metric_label(&self) -> &'static str {
        match self {
            AzureError::Arm { status: 429, .. } => "throttled",
            AzureError::Arm { status: 401, .. } => "unauthenticated",
            AzureError::Arm { status: 403, .. } => "forbidden",
            AzureError::Arm { status: 404, .. } => "not_found",
            AzureError::Arm { status: 409 | 412, .. } => "conflict",
            AzureError::Arm { status, .. } if *status >= 500 => "server_error",
            AzureError::Arm { .. } => "bad_request",
            AzureError::Credential { .. } => "credential",
            AzureError::TenantNotConfigured { .. } => "tenant_not_configured",
            AzureError::Transport { .. } => "transport",
            AzureError::Protocol { .. } => "protocol",
            AzureError::OperationFailed { .. } => "operation_failed",
        }
    }
}
