//! The security side's elevation rules: who approves, how many, for how long, through which backend, and
//! which Azure principals may be elevated for whom.
//!
//! They live on the ResourceGuard (`spec.elevation`) for guards managed in the cluster, and on an
//! ElevationPolicy for guards given by ARM ID. Both are written by security admins only; a VaultProtection
//! (the backup admin's) can only narrow them, never widen them.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::operations::CriticalOperation;

use super::shared::{
    ApprovalBackend, DURATION_RE, arm_id_re, duration_bounds_rule, duration_format_rule, guid_rule, immutable_rule,
};

/// Kubernetes users and groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subjects {
    /// Kubernetes user names, exactly as the API server authenticates them.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 64), inner(length(min = 1, max = 512)))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Kubernetes group names.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 64), inner(length(min = 1, max = 512)))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl Subjects {
    /// Whether the user, with these groups, is one of these subjects.
    pub fn includes(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || self.groups.iter().any(|g| groups.contains(g))
    }
}

fn names_someone_rule(field: &str) -> kube::core::Rule {
    kube::core::Rule::new("(has(self.users) && size(self.users) > 0) || (has(self.groups) && size(self.groups) > 0)")
        .message(format!("{field} must name at least one user or group").as_str())
}

/// The Azure role an elevation grants on the guard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ElevationRole {
    /// The built-in Backup MUA Operator role: passes the guard's check for critical operations and nothing
    /// else (it cannot change the guard). The narrowest role that works.
    #[default]
    #[serde(rename = "BackupMUAOperator")]
    BackupMuaOperator,
    /// Contributor on the guard: also lets the principal change the guard itself. Only for setups that
    /// cannot use the Backup MUA Operator role.
    Contributor,
}

impl ElevationRole {
    /// The built-in role's name in Azure.
    pub fn azure_name(self) -> &'static str {
        match self {
            Self::BackupMuaOperator => "Backup MUA Operator",
            Self::Contributor => "Contributor",
        }
    }
}

/// An Azure principal other than the operator's own identity that may be elevated, and for whom.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedPrincipal {
    /// The principal's object ID in Entra ID.
    #[x_kube(validation = guid_rule("principals[].objectId"))]
    #[schemars(length(max = 36))]
    pub object_id: String,
    /// The requesters (Kubernetes users and groups) who may ask to elevate this principal.
    #[x_kube(validation = names_someone_rule("principals[].requesters"))]
    pub requesters: Subjects,
}

/// The rules for elevating on one guard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElevationRules {
    /// Who may approve or deny requests: Kubernetes users and groups. They also need the `approve` verb on
    /// `criticaloperationrequests` from RBAC (the chart's approver ClusterRole); both must hold.
    #[x_kube(validation = names_someone_rule("approvers"))]
    pub approvers: Subjects,

    /// How many distinct approvers must approve a request (Kubernetes backend), 1-5. Default 1.
    #[schemars(range(min = 1, max = 5))]
    #[serde(default = "default_required_approvals")]
    pub required_approvals: i32,

    /// The longest elevation a request may get, between 5m and 24h. Default 1h.
    #[x_kube(
        validation = duration_format_rule("maxDuration"),
        validation = duration_bounds_rule("maxDuration")
    )]
    #[schemars(length(max = 16))]
    #[serde(default = "default_max_duration")]
    pub max_duration: String,

    /// How long an approval counts, between 1m and 24h. Default 1h. An approval older than this no longer
    /// counts towards a pending request: Kubernetes cannot tell the operator when an approver leaves a
    /// group, so a decision is only trusted while it is fresh.
    #[x_kube(
        validation = duration_format_rule("approvalValidity"),
        validation = validity_bounds_rule("approvalValidity")
    )]
    #[schemars(length(max = 16))]
    #[serde(default = "default_approval_validity")]
    pub approval_validity: String,

    /// `Kubernetes` (default): approvers approve with `kubectl mua approve` and the security side grants the
    /// role with an Azure-side end time. `PIM`: the principal self-activates an eligible assignment and
    /// approvers approve in Azure.
    #[serde(default)]
    pub backend: ApprovalBackend,

    /// The role granted on the guard: `BackupMUAOperator` (default, the narrowest that works) or
    /// `Contributor`.
    #[serde(default)]
    pub role: ElevationRole,

    /// Azure principals a person may ask to elevate for operations done by hand (such as the MARS PIN).
    /// Operations the operator performs itself always elevate the operator's own identity.
    #[schemars(extend("maxItems" = 32))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<AllowedPrincipal>,

    /// The operations a person may be elevated for by hand (a request naming a principal). Empty (the
    /// default): none. Azure's unit is the guard: such a grant opens every operation the guard protects on
    /// every vault linked to it, for the approved time, and the request shows that blast radius.
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 16))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_hand: Vec<CriticalOperation>,

    /// How long a request is kept once it ended (the audit record), in days, 1-3650. Default 90. Then the
    /// operator removes it. Nobody else may delete requests (RBAC).
    #[schemars(range(min = 1, max = 3650))]
    #[serde(default = "default_retention_days")]
    pub retention_days: i32,

    /// Allow a by-hand elevation only while the guard protects no other vault than the request's (as the
    /// cluster's VaultProtections declare them). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sole_vault: bool,
}

pub fn default_required_approvals() -> i32 {
    1
}

pub fn default_max_duration() -> String {
    "1h".to_string()
}

pub fn default_retention_days() -> i32 {
    90
}

pub fn default_approval_validity() -> String {
    "1h".to_string()
}

fn validity_bounds_rule(field: &str) -> kube::core::Rule {
    // Guarded by the format so a malformed value reports only the format rule's message.
    kube::core::Rule::new(format!(
        "self == '' || !self.matches('^{DURATION_RE}$') || (duration(self) >= duration('1m') && duration(self) <= duration('24h'))"
    ))
    .message(format!("{field} must be between 1m and 24h").as_str())
}

/// The elevation rules for a guard managed outside the cluster (named by ARM ID in VaultProtections).
/// Only security admins can write it. Also the parameter object of the chart's admission policies.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mua.dev",
    version = "v1alpha1",
    kind = "ElevationPolicy",
    namespaced,
    shortname = "elp",
    category = "mua",
    derive = "PartialEq",
    doc = "ElevationPolicy holds the security admin's elevation rules (approvers, required approvals, longest elevation, backend, role, allowed principals) for a Resource Guard given by ARM ID. Owned by the security admin; a VaultProtection may only narrow it.",
    printcolumn(name = "Guard", type_ = "string", json_path = ".spec.guardId", priority = 1),
    printcolumn(name = "Backend", type_ = "string", json_path = ".spec.backend"),
    printcolumn(name = "Approvals", type_ = "integer", json_path = ".spec.requiredApprovals"),
    printcolumn(name = "Max Duration", type_ = "string", json_path = ".spec.maxDuration"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ElevationPolicySpec {
    /// The guard these rules apply to: its full ARM ID, as VaultProtections name it in `guard.id`.
    /// Immutable.
    #[x_kube(
        validation = guard_id_rule(),
        validation = immutable_rule("guardId is immutable: create another ElevationPolicy for another guard")
    )]
    #[schemars(length(max = 512))]
    pub guard_id: String,

    /// The rules.
    #[serde(flatten)]
    pub rules: ElevationRules,
}

fn guard_id_rule() -> kube::core::Rule {
    kube::core::Rule::new(format!(
        "self.matches('^{}$')",
        arm_id_re("Microsoft.DataProtection", "resourceGuards")
    ))
    .message(
        "guardId must be a Resource Guard's ARM ID: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.DataProtection/resourceGuards/<name>",
    )
}
