//! The reasons conditions, Events, logs and metrics give: one typed list, so a reason a person reads in
//! `kubectl get` is the same word the metrics count, and a misspelt reason does not compile.

use prometheus_client::encoding::EncodeLabelValue;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelValue)]
pub enum Reason {
    // Ready.
    /// Azure matches the spec.
    InSync,
    /// `Observe`: Azure was read and matches, or only reported.
    Observed,

    // Waiting for something that happens without anyone fixing anything.
    /// The named ResourceGuard exists but is not Ready yet.
    GuardNotReady,
    /// A critical operation waits for an approved, active CriticalOperationRequest.
    ElevationRequired,
    /// Azure answered 429: the operator waits as long as ARM asks.
    AzureThrottled,
    /// Azure failed (5xx) or could not be reached; retried with backoff.
    AzureUnavailable,
    /// Azure refused a write because the resource changed meanwhile (409, 412); retried.
    AzureConflict,
    /// The Kubernetes API failed; retried with backoff.
    KubernetesError,

    // A person must act (Stalled).
    /// The ResourceGuard named by `guard.name` does not exist in the namespace.
    GuardNotFound,
    /// The vault does not exist in Azure (or the backup identity cannot see it).
    VaultNotFound,
    /// The guard and the vault (or the spec and Azure) are in different regions.
    RegionMismatch,
    /// The backup identity cannot read the guard, so it cannot link a vault to it.
    ReaderRoleMissing,
    /// The vault is linked to a guard this object does not name.
    LinkedToOtherGuard,
    /// The operator has no credential for the tenant the guard lives in.
    TenantCredentialMissing,
    /// A guard with this name exists in Azure and was not created by this operator.
    AlreadyExists,
    /// The Azure guard is managed by another ResourceGuard object.
    OwnedByAnother,
    /// The guard cannot be deleted while vaults are linked to it.
    VaultsLinked,
    /// The spec asks to weaken soft delete that Azure keeps `AlwaysOn`.
    AlwaysOnCannotBeWeakened,
    /// Under `Observe`, the Azure object does not exist.
    NotFound,
    /// Under `Observe`, Azure differs from the spec.
    Drifted,
    /// Azure refused the identity (401/403) or its credential failed.
    AzureAccessDenied,
    /// Azure refused the request as invalid (4xx), or answered something that does not fit its API.
    AzureRejected,

    // Elevation (CriticalOperationRequest).
    /// A request waits for its approvals.
    ApprovalPending,
    /// Another request holds an elevation for the same vault and operation; this one waits.
    AnotherElevationActive,
    /// The required approvals were given.
    Approved,
    /// The elevation is in force in Azure until its end time.
    Elevated,
    /// No elevation is in force.
    NotElevated,
    /// The operation was performed and the elevation ended.
    Completed,
    /// The elevation's time ran out and it was revoked.
    Expired,
    /// The request or its elevation was revoked.
    Revoked,
    /// An approver denied the request.
    Denied,
    /// The VaultProtection a request names does not exist.
    VaultProtectionNotFound,
    /// The VaultProtection a request names was created again, or names another vault or guard, since the
    /// request was made: what was asked for is not what would be elevated.
    VaultProtectionChanged,
    /// No elevation rules (ResourceGuard.spec.elevation or an ElevationPolicy) cover the guard.
    ElevationPolicyMissing,
    /// The admission policies that enforce the two-person rule are missing: nobody is elevated.
    AdmissionPoliciesMissing,
    /// The approval backend the rules choose cannot be driven by this operator.
    BackendUnavailable,
    /// The request cannot be carried out as written; create a new one.
    RequestInvalid,
    /// The request asks for a longer elevation than the rules allow.
    DurationTooLong,
    /// The rules do not allow the requester to elevate the principal.
    PrincipalNotAllowed,
    /// The request failed; see the message.
    RequestFailed,
    /// PIM: the activation waits for PIM's approvers in Azure.
    PendingApprovalInAzure,
    /// PIM refuses a deactivation within five minutes of the activation; retried.
    DeactivationRefused,
}

impl Reason {
    /// Every reason, for reading one back from what was written.
    pub const ALL: &'static [Reason] = &[
        Reason::InSync,
        Reason::Observed,
        Reason::GuardNotReady,
        Reason::ElevationRequired,
        Reason::AzureThrottled,
        Reason::AzureUnavailable,
        Reason::AzureConflict,
        Reason::KubernetesError,
        Reason::GuardNotFound,
        Reason::VaultNotFound,
        Reason::RegionMismatch,
        Reason::ReaderRoleMissing,
        Reason::LinkedToOtherGuard,
        Reason::TenantCredentialMissing,
        Reason::AlreadyExists,
        Reason::OwnedByAnother,
        Reason::VaultsLinked,
        Reason::AlwaysOnCannotBeWeakened,
        Reason::NotFound,
        Reason::Drifted,
        Reason::AzureAccessDenied,
        Reason::AzureRejected,
        Reason::ApprovalPending,
        Reason::AnotherElevationActive,
        Reason::Approved,
        Reason::Elevated,
        Reason::NotElevated,
        Reason::Completed,
        Reason::Expired,
        Reason::Revoked,
        Reason::Denied,
        Reason::VaultProtectionNotFound,
        Reason::VaultProtectionChanged,
        Reason::ElevationPolicyMissing,
        Reason::AdmissionPoliciesMissing,
        Reason::BackendUnavailable,
        Reason::RequestInvalid,
        Reason::DurationTooLong,
        Reason::PrincipalNotAllowed,
        Reason::RequestFailed,
        Reason::PendingApprovalInAzure,
        Reason::DeactivationRefused,
    ];

    /// The reason written as `text`, if it is one.
    pub fn parse(text: &str) -> Option<Reason> {
        Self::ALL.iter().copied().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        use Reason::*;
        match self {
            InSync => "InSync",
            Observed => "Observed",
            GuardNotReady => "GuardNotReady",
            ElevationRequired => "ElevationRequired",
            AzureThrottled => "AzureThrottled",
            AzureUnavailable => "AzureUnavailable",
            AzureConflict => "AzureConflict",
            KubernetesError => "KubernetesError",
            GuardNotFound => "GuardNotFound",
            VaultNotFound => "VaultNotFound",
            RegionMismatch => "RegionMismatch",
            ReaderRoleMissing => "ReaderRoleMissing",
            LinkedToOtherGuard => "LinkedToOtherGuard",
            TenantCredentialMissing => "TenantCredentialMissing",
            AlreadyExists => "AlreadyExists",
            OwnedByAnother => "OwnedByAnother",
            VaultsLinked => "VaultsLinked",
            AlwaysOnCannotBeWeakened => "AlwaysOnCannotBeWeakened",
            NotFound => "NotFound",
            Drifted => "Drifted",
            AzureAccessDenied => "AzureAccessDenied",
            AzureRejected => "AzureRejected",
            ApprovalPending => "ApprovalPending",
            AnotherElevationActive => "AnotherElevationActive",
            Approved => "Approved",
            Elevated => "Elevated",
            NotElevated => "NotElevated",
            Completed => "Completed",
            Expired => "Expired",
            Revoked => "Revoked",
            Denied => "Denied",
            VaultProtectionNotFound => "VaultProtectionNotFound",
            VaultProtectionChanged => "VaultProtectionChanged",
            ElevationPolicyMissing => "ElevationPolicyMissing",
            AdmissionPoliciesMissing => "AdmissionPoliciesMissing",
            BackendUnavailable => "BackendUnavailable",
            RequestInvalid => "RequestInvalid",
            DurationTooLong => "DurationTooLong",
            PrincipalNotAllowed => "PrincipalNotAllowed",
            RequestFailed => "RequestFailed",
            PendingApprovalInAzure => "PendingApprovalInAzure",
            DeactivationRefused => "DeactivationRefused",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_as_itself() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(*reason));
        }
        assert_eq!(Reason::parse("NoSuchReason"), None);
    }
}
