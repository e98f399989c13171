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
    /// A namespace's identity Secret (`mua-security-identity`, `mua-backup-identity`) cannot be used.
    IdentityInvalid,
    /// A guard with this name exists in Azure and was not created by this operator.
    AlreadyExists,
    /// The Azure guard is managed by another ResourceGuard object.
    OwnedByAnother,
    /// The guard cannot be deleted while vaults are linked to it.
    VaultsLinked,
    /// The object names a vault or guard outside its namespace's AzureScopeBinding: nothing is done in Azure.
    OutOfScope,
    /// The rules do not allow the operation by hand (elevating a person).
    ByHandNotAllowed,
    /// A by-hand elevation waits while the guard protects other vaults too (the rules' `soleVault`).
    GuardProtectsOtherVaults,
    /// PIM would activate the role without anyone's approval: nobody is elevated.
    PimApprovalNotRequired,
    /// PIM's approvers for the role include the principal that activates, or the requester's own: nobody
    /// is elevated.
    PimApproverIsRequester,
    /// Two namespaces own the guard (or one holds two sets of rules for it): nobody is elevated on it.
    ElevationRulesConflict,
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
    /// The admission policies or bindings differ from what this build ships: nobody is elevated.
    AdmissionPoliciesAltered,
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
    /// PIM: another person approved here; the backup side asks PIM to activate with its own identity.
    AwaitingActivation,
    /// PIM: the request ended while PIM still holds the backup side's activation request for approval;
    /// the backup side (the only one who may) cancels it.
    AwaitingCancellation,
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
        Reason::IdentityInvalid,
        Reason::AlreadyExists,
        Reason::OwnedByAnother,
        Reason::VaultsLinked,
        Reason::OutOfScope,
        Reason::ElevationRulesConflict,
        Reason::PimApprovalNotRequired,
        Reason::PimApproverIsRequester,
        Reason::ByHandNotAllowed,
        Reason::GuardProtectsOtherVaults,
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
        Reason::AdmissionPoliciesAltered,
        Reason::RequestInvalid,
        Reason::DurationTooLong,
        Reason::PrincipalNotAllowed,
        Reason::RequestFailed,
        Reason::PendingApprovalInAzure,
        Reason::AwaitingActivation,
        Reason::AwaitingCancellation,
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
            IdentityInvalid => "IdentityInvalid",
            AlreadyExists => "AlreadyExists",
            OwnedByAnother => "OwnedByAnother",
            VaultsLinked => "VaultsLinked",
            OutOfScope => "OutOfScope",
            ElevationRulesConflict => "ElevationRulesConflict",
            PimApprovalNotRequired => "PimApprovalNotRequired",
            PimApproverIsRequester => "PimApproverIsRequester",
            ByHandNotAllowed => "ByHandNotAllowed",
            GuardProtectsOtherVaults => "GuardProtectsOtherVaults",
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
            AdmissionPoliciesAltered => "AdmissionPoliciesAltered",
            RequestInvalid => "RequestInvalid",
            DurationTooLong => "DurationTooLong",
            PrincipalNotAllowed => "PrincipalNotAllowed",
            RequestFailed => "RequestFailed",
            PendingApprovalInAzure => "PendingApprovalInAzure",
            AwaitingActivation => "AwaitingActivation",
            AwaitingCancellation => "AwaitingCancellation",
        }
    }
}

/// What a person reads about each reason: where it appears, what it means and who acts. The book's
/// "Conditions and reasons" page is generated from these (`mua_operator::docs::reasons_reference`), so a
/// new reason cannot be left out of it.
impl Reason {
    /// The kinds (and conditions) that carry this reason.
    pub fn appears_on(self) -> &'static str {
        use Reason::*;
        match self {
            InSync => "ResourceGuard, VaultProtection: `Ready=True`; `Synced`, `Linked`, `SoftDeleteSynced` when True",
            Observed => {
                "ResourceGuard, VaultProtection under `Observe`: `Ready=True`, the reconcile's log line and metrics \
                 (`Synced` says `Drifted` when Azure differs)"
            }
            GuardNotReady => "VaultProtection",
            ElevationRequired => {
                "VaultProtection: `Ready`, `Reconciling`, and `Synced`, `Linked` or `SoftDeleteSynced`"
            }
            AzureThrottled | AzureUnavailable | AzureConflict | KubernetesError => "all",
            GuardNotFound => "VaultProtection; a request whose VaultProtection names a missing ResourceGuard",
            VaultNotFound => "VaultProtection; a request whose VaultProtection names no vault",
            RegionMismatch => "VaultProtection; ResourceGuard (the Azure guard is not in `spec.region`)",
            ReaderRoleMissing => "VaultProtection",
            LinkedToOtherGuard => "VaultProtection (`Linked`, `Synced`); a request for that VaultProtection",
            TenantCredentialMissing => "ResourceGuard, VaultProtection",
            IdentityInvalid => "ResourceGuard, VaultProtection, request",
            AlreadyExists | OwnedByAnother | VaultsLinked => "ResourceGuard",
            OutOfScope => "ResourceGuard, VaultProtection (`Stalled`); a request whose vault or guard is out of scope",
            ElevationRulesConflict | PimApprovalNotRequired | PimApproverIsRequester => "request",
            ByHandNotAllowed => "request (phase `Failed`)",
            GuardProtectsOtherVaults => "request",
            AlwaysOnCannotBeWeakened => "VaultProtection (`SoftDeleteSynced`, `Stalled`)",
            NotFound => "ResourceGuard under `Observe` (`Stalled`)",
            Drifted => {
                "ResourceGuard, VaultProtection under `Observe`: `Synced=False` (a VaultProtection also `Linked`, \
                 `SoftDeleteSynced`) and a Warning Event; `Ready`, the log line and metrics say `Observed`"
            }
            AzureAccessDenied | AzureRejected => "all",
            ApprovalPending | PendingApprovalInAzure | AwaitingActivation => {
                "request (`Approved=False`, `Reconciling`)"
            }
            AnotherElevationActive | AwaitingCancellation => "request",
            Approved => "request (`Approved=True`)",
            Elevated => "request (`Elevated=True`; `Ready=True` while Active)",
            NotElevated => "request (`Elevated=False`)",
            Completed | Expired | Revoked => "request (final phase: `Ready`, `Elevated`)",
            Denied | RequestFailed => "request (final phase: `Ready`, `Approved`)",
            VaultProtectionNotFound | VaultProtectionChanged | ElevationPolicyMissing => "request",
            AdmissionPoliciesMissing | AdmissionPoliciesAltered => "request",
            RequestInvalid | DurationTooLong | PrincipalNotAllowed => "request (phase `Failed`)",
        }
    }

    /// What it means.
    pub fn meaning(self) -> &'static str {
        use Reason::*;
        match self {
            InSync => "Azure matches the spec",
            Observed => "`managementPolicy: Observe`: Azure was read and matches, or differences were only reported",
            GuardNotReady => "the ResourceGuard it names is not Ready yet",
            GuardNotFound => "no ResourceGuard of that name in the namespace, or no guard at `guard.id`",
            ReaderRoleMissing => "the backup identity cannot read the guard, so it cannot link",
            RegionMismatch => {
                "guard and vault are in different regions (Azure refuses such links); on a ResourceGuard, the \
                 Azure guard is in another region than the spec says (a guard cannot move)"
            }
            LinkedToOtherGuard => "the vault is linked to a guard this object does not name; nothing is re-pointed",
            TenantCredentialMissing => "no credential for the guard's tenant",
            IdentityInvalid => {
                "the namespace's identity Secret lacks a key, holds a value that is not a GUID, or cannot sign in; nothing is done in Azure"
            }
            VaultNotFound => "the vault does not exist or the backup identity cannot see it",
            ElevationRequired => "the spec weakens protection (soft delete off or shorter, MUA off, `Unlink`)",
            AlwaysOnCannotBeWeakened => "soft delete is `AlwaysOn` in Azure, which can never be weakened",
            Drifted => "Azure differs from the spec; only reported",
            NotFound => "the Azure object is missing; only reported",
            AlreadyExists | OwnedByAnother => "a guard of that name exists and this object does not own it",
            VaultsLinked => "deletion (policy `Delete`) waits while vaults are linked; nothing is deleted",
            AzureAccessDenied => "Azure refused the identity (401/403) or its credential failed",
            AzureRejected => "Azure refused the call as invalid",
            OutOfScope => {
                "the namespace's AzureScopeBinding does not cover the vault or guard (or the namespace has none): nothing is done in Azure"
            }
            ElevationRulesConflict => {
                "more than one namespace owns the guard, or rules for it are declared twice: nobody is elevated on it"
            }
            PimApprovalNotRequired => "the role's PIM settings on the guard require no approval: nobody is elevated",
            ByHandNotAllowed => {
                "the rules do not list the operation in `byHand`: a person's grant would open the whole guard"
            }
            GuardProtectsOtherVaults => {
                "the rules' `soleVault`: a by-hand elevation waits while other vaults are linked to the guard"
            }
            PimApproverIsRequester => {
                "PIM's approvers for the role include the activating identity or the requester's own principal: nobody is elevated"
            }
            AzureThrottled | AzureUnavailable | AzureConflict | KubernetesError => {
                "transient; retried (`Retry-After` or backoff)"
            }
            ApprovalPending => "waiting for approvals (`Approved` says how many, and which entries do not count)",
            PendingApprovalInAzure => "PIM backend: waiting for PIM's approvers",
            AnotherElevationActive => {
                "another request holds an elevation for the same vault and operation, or for the same principal \
                 on the guard"
            }
            Approved => "the required approvals were given",
            Elevated => "the elevation is in force in Azure until its end time (`status.expiresAt`)",
            NotElevated => "no elevation was granted",
            DurationTooLong | PrincipalNotAllowed | RequestInvalid => {
                "the request breaks the rules; the spec is immutable"
            }
            VaultProtectionNotFound => "the VaultProtection the request names does not exist in the namespace; retried",
            VaultProtectionChanged => {
                "its VaultProtection was created again, or names another vault or guard, since the request was made"
            }
            ElevationPolicyMissing => "no elevation rules cover the guard: nobody is elevated",
            AdmissionPoliciesMissing => {
                "the two-person rule's admission policies are not in the cluster: nobody is elevated"
            }
            AdmissionPoliciesAltered => {
                "the two-person rule's admission policies or bindings differ from what this build ships (a binding set to Audit, a narrowed match, a changed expression): nobody is elevated"
            }
            AwaitingActivation => {
                "PIM backend: another person approved here; the backup side asks PIM to activate its role with its own identity"
            }
            AwaitingCancellation => {
                "PIM backend: the request ended while PIM holds its activation for approval; the backup side cancels it"
            }
            Denied | Expired | Revoked | Completed | RequestFailed => "final; `status.history` says who, when and why",
        }
    }

    /// Who acts, and how.
    pub fn who_acts(self) -> &'static str {
        use Reason::*;
        match self {
            InSync | Approved | NotElevated => "nobody",
            Observed => "nobody; to converge, switch to `Manage`",
            Elevated => "nobody: it ends at `expiresAt`, once the operation is performed, or on `kubectl mua revoke`",
            GuardNotReady => "wait; if it lasts, read the ResourceGuard's own reason",
            GuardNotFound => "backup admin: fix `guard`; security admin: declare the guard",
            ReaderRoleMissing => {
                "security admin: grant Reader on the guard to the backup identity (in the guard's tenant)"
            }
            RegionMismatch => {
                "security admin: a guard in the vault's region; on a ResourceGuard, fix `spec.region` or create \
                 a new ResourceGuard"
            }
            LinkedToOtherGuard => {
                "name that guard, or unlink it under an approved `DisableMultiUserAuthorization` request"
            }
            TenantCredentialMissing => "platform: add the tenant (`--additional-tenants`, chart `additionalTenants`)",
            IdentityInvalid => {
                "namespace admin: fix the Secret (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET or workload identity)"
            }
            VaultNotFound => "backup admin: fix `vault`, or grant Backup Contributor",
            ElevationRequired => {
                "create a CriticalOperationRequest for the operation the message names, and have it approved"
            }
            AlwaysOnCannotBeWeakened => "set the spec back to `AlwaysOn`",
            Drifted | NotFound => "switch to `Manage`, or fix Azure",
            AlreadyExists | OwnedByAnother => "`adoptExisting: true` to take it over, or another name",
            VaultsLinked => "unlink the vaults first (each under an approved request)",
            OutOfScope => {
                "cluster admin: bind the namespace to the scope (AzureScopeBinding), or name another vault or guard"
            }
            ElevationRulesConflict => {
                "cluster admin: let one namespace own the guard (`guardScopes`); security admin: one set of rules"
            }
            PimApprovalNotRequired => "security admin: require approval in the role's PIM settings on the guard",
            ByHandNotAllowed => "security admin: list the operation in the rules' `byHand`, if a person must do it",
            GuardProtectsOtherVaults => "unlink the other vaults, or a security admin lifts `soleVault`",
            PimApproverIsRequester => {
                "security admin: make PIM's approvers people other than the requester and the operator"
            }
            AzureAccessDenied => "platform: the identity's roles and credential (the message has Azure's words)",
            AzureRejected => "read the message; fix the spec",
            AzureThrottled | AzureUnavailable | AzureConflict | KubernetesError => "nothing, unless it lasts",
            ApprovalPending => "approvers: `kubectl mua approve`",
            PendingApprovalInAzure => "approvers: approve in Entra PIM",
            AnotherElevationActive => "wait for it to end, or revoke it",
            DurationTooLong | PrincipalNotAllowed | RequestInvalid => "a new request within the rules",
            VaultProtectionNotFound => {
                "requester: a new request naming an existing VaultProtection (the spec is immutable), or the \
                 backup admin creates it"
            }
            VaultProtectionChanged => "a new request, for the vault as it is now",
            ElevationPolicyMissing => "security admin: `spec.elevation` on the ResourceGuard, or an ElevationPolicy",
            AdmissionPoliciesMissing => "platform: install them (the chart does)",
            AdmissionPoliciesAltered => "platform: install them again from this version's chart",
            AwaitingActivation => "the backup side (its Deployment must be running); then approvers in Entra PIM",
            AwaitingCancellation => "the backup side (its Deployment must be running)",
            Denied | Expired | Revoked | Completed | RequestFailed => "a new request, if still needed",
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

    #[test]
    fn every_reason_is_explained() {
        for reason in Reason::ALL {
            for text in [reason.appears_on(), reason.meaning(), reason.who_acts()] {
                assert!(!text.trim().is_empty(), "{reason} lacks a text");
                assert!(
                    !text.contains('|'),
                    "{reason}: a `|` would split the reasons table's cell"
                );
            }
        }
    }
}
