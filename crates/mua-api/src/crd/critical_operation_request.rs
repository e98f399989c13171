//! CriticalOperationRequest: a time-boxed, approved elevation for one critical operation on one vault.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::elevation_policy::ElevationRole;
use super::shared::ApprovalBackend;
use super::shared::{
    AzurePrincipal, Conditions, duration_bounds_rule, duration_format_rule, immutable_rule, not_blank_rule,
    object_name_rule,
};
use crate::operations::CriticalOperation;

/// A request for time-boxed elevation to perform one critical operation on one protected vault. Another
/// person must approve it; the elevation always ends when its duration is up.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mua.dev",
    version = "v1alpha1",
    kind = "CriticalOperationRequest",
    namespaced,
    status = "CriticalOperationRequestStatus",
    shortname = "cor",
    category = "mua",
    derive = "PartialEq",
    doc = "CriticalOperationRequest asks for time-boxed elevation on a Resource Guard to perform one critical operation on one protected vault. Other people must approve it; the operator performs the operation itself where it can, and the elevation ends when the operation is done or its duration is up. The spec is immutable.",
    printcolumn(name = "Vault Protection", type_ = "string", json_path = ".spec.vaultProtection"),
    printcolumn(name = "Operation", type_ = "string", json_path = ".spec.operation"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.requester"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    // A string, not a date: kubectl prints a date in the future as `<invalid>`.
    printcolumn(name = "Expires At", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Duration", type_ = "string", json_path = ".spec.duration", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = immutable_rule("spec is immutable after creation: create a new CriticalOperationRequest instead"),
    validation = Rule::new(
        "!(self.operation in ['DisableSoftDelete', 'DisableMultiUserAuthorization']) || (!has(self.principal) && !has(self.action))"
    ).message("DisableSoftDelete and DisableMultiUserAuthorization are performed by the operator itself and take no principal and no action: the VaultProtection's spec says what to do"),
    validation = Rule::new(
        "self.operation in ['DisableSoftDelete', 'DisableMultiUserAuthorization'] || has(self.principal) || has(self.action)"
    ).message("every other operation is done by hand and needs the principal to elevate, or (ModifyBackupPolicy, ModifyProtection, StopProtectionWithDeleteData) an action for the operator to perform"),
    validation = Rule::new("!(has(self.principal) && has(self.action))")
        .message("a request takes either a principal (a person does the operation by hand) or an action (the operator performs it), never both"),
    validation = Rule::new(
        "!has(self.action) || (has(self.action.modifyBackupPolicy) ? self.operation == 'ModifyBackupPolicy' : has(self.action.modifyProtection) ? self.operation == 'ModifyProtection' : self.operation == 'StopProtectionWithDeleteData')"
    ).message("the action must match the operation: modifyBackupPolicy for ModifyBackupPolicy, modifyProtection for ModifyProtection, stopProtectionWithDeleteData for StopProtectionWithDeleteData")
)]
pub struct CriticalOperationRequestSpec {
    /// The name of the VaultProtection (in this namespace) whose vault the operation is for.
    #[x_kube(validation = object_name_rule("vaultProtection"))]
    #[schemars(length(max = 253))]
    pub vault_protection: String,

    /// The critical operation to elevate for.
    pub operation: CriticalOperation,

    /// How long the elevation lasts once granted: a duration such as `30m`, `2h` or `1h30m`, between 5m
    /// and 24h, and at most the guard's `maxDuration` (and the VaultProtection's, if shorter).
    #[x_kube(validation = duration_format_rule("duration"), validation = duration_bounds_rule("duration"))]
    #[schemars(length(max = 16))]
    pub duration: String,

    /// Why the operation is needed. Sent to Azure with the elevation (PIM keeps it in its audit log).
    #[x_kube(validation = not_blank_rule("justification"))]
    #[schemars(length(min = 1, max = 1000))]
    pub justification: String,

    /// The change or incident ticket that authorizes the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,

    /// The Kubernetes user who asks. Filled in by the API server (the chart's MutatingAdmissionPolicy)
    /// with the user who creates the object; any other value is refused at admission.
    #[x_kube(validation = not_blank_rule("requester"))]
    #[schemars(length(min = 1, max = 512))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,

    /// The requester's Kubernetes groups, filled in by the API server with the creating user's groups (a
    /// subset is accepted; more is refused). Used to match the guard's rules for allowed principals.
    #[schemars(extend("x-kubernetes-list-type" = "atomic", "maxItems" = 64), inner(length(max = 512)))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requester_groups: Vec<String>,

    /// The Azure principal to elevate, for operations done by hand (such as `ChangeMarsSecurityPin`); it
    /// must be one the guard's elevation rules allow for the requester. Not allowed for `DisableSoftDelete`
    /// and `DisableMultiUserAuthorization`: the operator performs those itself with its own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<AzurePrincipal>,

    /// What the operator is to do under the elevation, for `ModifyBackupPolicy`, `ModifyProtection` and
    /// `StopProtectionWithDeleteData` on a Recovery Services vault: approvers see exactly what will be
    /// done, the operator does it with its own identity and the elevation ends at once. Instead of a
    /// principal, never with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RequestAction>,
}

/// One change the operator makes in the vault under the elevation: exactly one field is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "[has(self.modifyBackupPolicy), has(self.modifyProtection), has(self.stopProtectionWithDeleteData)].filter(x, x).size() == 1"
).message("action must set exactly one of modifyBackupPolicy, modifyProtection and stopProtectionWithDeleteData"))]
pub struct RequestAction {
    /// Replace a backup policy of the vault (for example with a shorter retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modify_backup_policy: Option<ModifyBackupPolicy>,
    /// Move a protected item of the vault to another backup policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modify_protection: Option<ModifyProtection>,
    /// Stop protecting an item of the vault and delete its backup data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_protection_with_delete_data: Option<StopProtectionWithDeleteData>,
}

/// The new body of one backup policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModifyBackupPolicy {
    /// The policy's name in the vault.
    #[x_kube(validation = policy_name_rule("modifyBackupPolicy.name"))]
    #[schemars(length(max = 150))]
    pub name: String,
    /// The full new policy, as `PUT .../vaults/{vault}/backupPolicies/{name}` takes it (`properties` with
    /// `backupManagementType`, `schedulePolicy`, `retentionPolicy`, ...). The operator adds the guard's
    /// citation.
    #[schemars(schema_with = "policy_body_schema")]
    pub policy: serde_json::Value,
}

/// A protected item and the policy to move it to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModifyProtection {
    /// The item under the vault: `backupFabrics/{fabric}/protectionContainers/{container}/protectedItems/{item}`.
    #[x_kube(validation = item_path_rule("modifyProtection.item"))]
    #[schemars(length(max = 1024))]
    pub item: String,
    /// The name of the vault's backup policy to protect it with from now on.
    #[x_kube(validation = policy_name_rule("modifyProtection.policy"))]
    #[schemars(length(max = 150))]
    pub policy: String,
}

/// A protected item whose protection stops and whose backup data is deleted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StopProtectionWithDeleteData {
    /// The item under the vault: `backupFabrics/{fabric}/protectionContainers/{container}/protectedItems/{item}`.
    #[x_kube(validation = item_path_rule("stopProtectionWithDeleteData.item"))]
    #[schemars(length(max = 1024))]
    pub item: String,
}

/// One segment of an item path: it starts with a letter or digit, so `.`, `..` and empty segments never
/// pass, and holds no `/`, `?`, `#` or `%` that could point the call elsewhere.
const SEGMENT_RE: &str = "[A-Za-z0-9][-A-Za-z0-9_.;()]{0,259}";

/// An item path relative to the request's vault: never an absolute ARM ID, never one that leaves it.
fn item_path_rule(field: &str) -> Rule {
    Rule::new(format!(
        "self.matches('^(?i:backupFabrics)/{SEGMENT_RE}/(?i:protectionContainers)/{SEGMENT_RE}/(?i:protectedItems)/{SEGMENT_RE}$')"
    ))
    .message(
        format!(
            "{field} must be a protected item's path under the vault, backupFabrics/{{fabric}}/protectionContainers/{{container}}/protectedItems/{{item}} (not an ARM ID; each name starts with a letter or digit)"
        )
        .as_str(),
    )
}

fn policy_name_rule(field: &str) -> Rule {
    Rule::new(format!("self.matches('^{SEGMENT_RE}$')")).message(
        format!("{field} must be the name of a backup policy in the vault (letters, digits, '-', '_', '.', ';', '(' or ')', a letter or digit first)").as_str(),
    )
}

/// A JSON object with `properties`, kept as written: the policy body is Azure's to validate. (CEL cannot
/// see fields a schema does not declare, so `properties` is declared to be required.)
fn policy_body_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "required": ["properties"],
        "properties": {
            "properties": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

impl CriticalOperationRequestSpec {
    /// The exact change the request is for, as its target records it and approvers see it: the operation,
    /// and what the operator will do for it when the request has an action.
    pub fn change(&self) -> String {
        match &self.action {
            Some(action) => format!("{}: {}", self.operation, action.describe()),
            None => self.operation.to_string(),
        }
    }
}

impl RequestAction {
    /// The operation the action performs.
    pub fn operation(&self) -> CriticalOperation {
        match (&self.modify_backup_policy, &self.modify_protection) {
            (Some(_), _) => CriticalOperation::ModifyBackupPolicy,
            (_, Some(_)) => CriticalOperation::ModifyProtection,
            _ => CriticalOperation::StopProtectionWithDeleteData,
        }
    }

    /// What the action does, in one line for approvers, Events and logs.
    pub fn describe(&self) -> String {
        match (
            &self.modify_backup_policy,
            &self.modify_protection,
            &self.stop_protection_with_delete_data,
        ) {
            (Some(p), _, _) => format!("replace the backup policy {}", p.name),
            (_, Some(m), _) => format!("move the protected item {} to the backup policy {}", m.item, m.policy),
            (_, _, Some(s)) => format!("stop protecting {} and delete its backup data", s.item),
            _ => "nothing".to_string(),
        }
    }
}

/// A ticket in an external system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// The ticket system, e.g. `ServiceNow` or `Jira`.
    #[x_kube(validation = not_blank_rule("ticket.system"))]
    #[schemars(length(min = 1, max = 64))]
    pub system: String,

    /// The ticket's number or key, e.g. `CHG0012345`.
    #[x_kube(validation = not_blank_rule("ticket.number"))]
    #[schemars(length(min = 1, max = 128))]
    pub number: String,
}

/// Where a request is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RequestPhase {
    /// Waiting for approval.
    Pending,
    /// Approved; the elevation is being granted.
    Approved,
    /// An approver denied it. Final.
    Denied,
    /// The elevation is in force until `expiresAt`.
    Active,
    /// The operation was performed and the elevation ended. Final.
    Completed,
    /// The elevation's time ran out and it was revoked. Final.
    Expired,
    /// The elevation was revoked before its time (by an approver or the requester). Final.
    Revoked,
    /// The request could not be carried out; see the conditions. Final.
    Failed,
}

impl RequestPhase {
    /// Final phases never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Denied | Self::Completed | Self::Expired | Self::Revoked | Self::Failed
        )
    }
}

/// An approver's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Decision {
    Approve,
    Deny,
}

/// One approver's decision on a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The Kubernetes user who decided (the admission policies require it to be the user writing it).
    pub approver: String,
    /// The approver's Kubernetes groups when they decided (a subset of their real groups, checked at
    /// admission), so the operator can re-check their right to approve with a SubjectAccessReview.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `Approve` or `Deny`.
    pub decision: Decision,
    /// When they decided.
    pub time: Time,
    /// Why, in the approver's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// What the approver saw and approves: the request's `status.target` when they decided (`kubectl mua
    /// approve` copies it). An approval counts only while it equals `status.target`, and none can be
    /// written before the operator has recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<GrantTarget>,
}

/// A request to end an elevation early.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// The Kubernetes user who revoked (the admission policies require it to be the user writing it).
    pub by: String,
    /// When.
    pub time: Time,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One phase transition, for the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// The phase entered.
    pub phase: RequestPhase,
    /// Who caused it: a Kubernetes user, or the operator's identity.
    pub actor: String,
    /// When.
    pub time: Time,
    /// A short machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The Azure side of a granted elevation, so it can always be revoked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Elevation {
    /// The principal elevated (Entra object ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// The scope of the grant: the guard's ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The guard's tenant, when it is not the operator's home tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The role granted (its role definition GUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_definition_id: Option<String>,
    /// The role assignment the operator created (Kubernetes backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_assignment_id: Option<String>,
    /// The PIM schedule request that granted it (PIM backend, or an AdminAssign with an end time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_request_id: Option<String>,
}

/// What a request (and the elevation granted for it) is for, recorded by the operator the first time it
/// resolves the request, before anyone can approve it. An approval is for one vault: a VaultProtection
/// deleted and created again under the same name (a new `uid`), or now naming another vault or guard,
/// cannot use it, and each approval entry carries the target its approver saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantTarget {
    /// The VaultProtection's `metadata.uid`.
    pub vault_protection_uid: String,
    /// The vault's ARM ID.
    pub vault_id: String,
    /// The guard's ARM ID (the elevation's scope).
    pub guard_id: String,
    /// The exact change: the operation, and for a request with an action what the operator will do.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub change: String,
}

impl GrantTarget {
    /// The same object, vault and guard (ARM IDs compare without regard to case, as ARM's do).
    pub fn matches(&self, other: &GrantTarget) -> bool {
        self.vault_protection_uid == other.vault_protection_uid
            && self.vault_id.eq_ignore_ascii_case(&other.vault_id)
            && self.guard_id.eq_ignore_ascii_case(&other.guard_id)
            && self.change == other.change
    }
}

/// What the backup side records on a request's status: that it performed the operation (the security
/// side then ends the elevation at once, and the request is never used again), or why it could not. The
/// only status fields the backup side writes; written as a merge patch by the operator's field manager.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSideReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performed_at: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_failed: Option<String>,
}

impl CriticalOperationRequestStatus {
    /// Whether the request's elevation is (or may still be) in force in Azure.
    pub fn holds_elevation(&self) -> bool {
        self.elevation.is_some() && self.ended_at.is_none()
    }
}

impl BackupSideReport {
    pub fn performed(at: Time) -> Self {
        Self {
            performed_at: Some(at),
            action_failed: None,
        }
    }

    pub fn action_failed(why: impl Into<String>) -> Self {
        Self {
            performed_at: None,
            action_failed: Some(why.into()),
        }
    }
}

/// Where a request stands, with its audit trail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CriticalOperationRequestStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RequestPhase>,

    /// `Ready`, `Reconciling` and `Stalled`, plus `Approved` and `Elevated`, with reasons a person can act on.
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,

    /// Approvers' decisions, one entry per approver.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["approver"]))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,

    /// Every phase transition with actor and time: the audit trail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Transition>,

    /// When the elevation was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_at: Option<Time>,

    /// When the elevation ends. Never extended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// When the elevation actually ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,

    /// The Azure side of the elevation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation: Option<Elevation>,

    /// What the request is for, recorded the first time the operator resolves it. The backup side performs
    /// the operation under its elevation only for this very VaultProtection, vault and guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<GrantTarget>,

    /// The rules this request was decided under, resolved from the guard's and the VaultProtection's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<EffectivePolicy>,

    /// When the operator performed the operation (operations it performs itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performed_at: Option<Time>,

    /// Why the operator could not perform the request's action (Azure's answer); the request then fails
    /// and the elevation ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_failed: Option<String>,

    /// Set by the requester or an approver (`kubectl mua revoke`) to end the request, or its elevation, at
    /// once. Only ever ends an elevation early; never extends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,

    /// The guard's instructions for asking for access, for approvers and requesters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_description: Option<String>,

    /// A by-hand elevation's reach: Azure's unit is the guard, so the person elevated may do every
    /// operation it protects on every vault linked to it, for the approved time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blast_radius: Option<BlastRadius>,
}

impl BlastRadius {
    /// In one line, for approvers: what the person elevated may do.
    pub fn describe(&self) -> String {
        let operations: Vec<String> = self.operations.iter().map(|o| o.to_string()).collect();
        format!(
            "the whole guard: {} on {} vault(s): {}",
            operations.join(", "),
            self.vaults.len(),
            self.vaults.join(", ")
        )
    }
}

/// What a grant on a guard opens.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlastRadius {
    /// Every vault linked to the guard, as the cluster's VaultProtections declare them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vaults: Vec<String>,
    /// Every critical operation the guard protects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<CriticalOperation>,
}

/// The elevation rules that applied to a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectivePolicy {
    /// Distinct approvals required.
    pub required_approvals: i32,
    /// The longest elevation allowed.
    pub max_duration: String,
    /// How long an approval counts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub approval_validity: String,
    /// How long the request is kept once it ended, in days (then the operator removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i32>,
    /// Where the rules come from: the guard owner's `ResourceGuard <namespace>/<name>` or
    /// `ElevationPolicy <namespace>/<name>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rules_from: String,
    /// The namespace owning the guard: its security identity (its own, or the operator's) grants and ends
    /// the elevation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner_namespace: String,
    /// `Kubernetes` or `PIM`.
    pub backend: ApprovalBackend,
    /// The Azure role granted on the guard.
    pub role: ElevationRole,
}
