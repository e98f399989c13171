//! VaultProtection: the backup side's link between a vault and a Resource Guard.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::{
    Conditions, ManagementPolicy, azure_name_rule, duration_bounds_rule, duration_format_rule, guid_rule,
    immutable_rule, object_name_rule, resource_group_rule,
};
use crate::crd::resource_guard::ProtectedOperation;
use crate::operations::VaultKind;

/// Links a Recovery Services vault or Backup vault to a Resource Guard, so the vault's critical
/// operations need the guard's approval, and keeps its soft-delete state as declared.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mua.dev",
    version = "v1alpha1",
    kind = "VaultProtection",
    namespaced,
    status = "VaultProtectionStatus",
    shortname = "vp",
    category = "mua",
    derive = "PartialEq",
    doc = "VaultProtection links an Azure Recovery Services vault or Backup vault to a Resource Guard (multi-user authorization) and keeps its soft-delete state as declared. Turning MUA off, weakening soft delete or deleting this object while linked needs an approved CriticalOperationRequest. Owned by the backup admin.",
    printcolumn(name = "Vault", type_ = "string", json_path = ".status.vaultName"),
    printcolumn(name = "Guard", type_ = "string", json_path = ".status.guardName"),
    printcolumn(name = "MUA", type_ = "string", json_path = ".status.multiUserAuthorization"),
    printcolumn(name = "Soft Delete", type_ = "string", json_path = ".status.softDeleteState"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct VaultProtectionSpec {
    /// The vault to protect, by full ARM ID or by its parts. Immutable: to protect another vault, create
    /// another VaultProtection.
    #[x_kube(validation = immutable_rule(
        "vault is immutable: to protect another vault, create another VaultProtection"
    ))]
    pub vault: VaultReference,

    /// The Resource Guard to link to: a ResourceGuard in this namespace by `name`, or any guard by ARM
    /// `id` (a guard managed elsewhere, other tenants included).
    pub guard: GuardReference,

    /// `Enabled` (default) links the vault to the guard. `Disabled` removes the link, which is a mandatory
    /// critical operation: it happens only under an approved, active CriticalOperationRequest.
    #[serde(default)]
    pub multi_user_authorization: MultiUserAuthorization,

    /// The vault's soft-delete settings. Weakening them (disabling soft delete) is a mandatory critical
    /// operation and happens only under an approved, active CriticalOperationRequest. Unset: not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_delete: Option<SoftDeleteSpec>,

    /// Stricter elevation rules for this vault than the guard's (more approvals, shorter elevations).
    /// Never wider: the security side's rules always apply.
    #[serde(default, skip_serializing_if = "is_default")]
    pub approval: ApprovalPolicy,

    /// `Manage` (default) converges Azure to this spec; `Observe` only reports drift and never writes.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// What deleting this object does to the link: `Orphan` (default) leaves the vault linked in Azure;
    /// `Unlink` removes the link, which waits for an approved, active CriticalOperationRequest
    /// (`DisableMultiUserAuthorization`).
    #[serde(default)]
    pub deletion_policy: VaultDeletionPolicy,
}

/// A vault, by full ARM ID or by kind, subscription, resource group and name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "has(self.id) ? !has(self.kind) && !has(self.subscriptionId) && !has(self.resourceGroup) && !has(self.name) : has(self.kind) && has(self.subscriptionId) && has(self.resourceGroup) && has(self.name)"
).message("set either vault.id alone, or all of vault.kind, vault.subscriptionId, vault.resourceGroup and vault.name"))]
pub struct VaultReference {
    /// The vault's full ARM ID: `/subscriptions/{guid}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{name}`
    /// or `.../providers/Microsoft.DataProtection/backupVaults/{name}`.
    #[x_kube(validation = Rule::new(format!(
        "self.matches('^{}$') || self.matches('^{}$')",
        super::shared::arm_id_re("Microsoft.RecoveryServices", "vaults"),
        super::shared::arm_id_re("Microsoft.DataProtection", "backupVaults"),
    )).message("vault.id must be the ARM ID of a vault: /subscriptions/{guid}/resourceGroups/{group}/providers/Microsoft.RecoveryServices/vaults/{name} or .../providers/Microsoft.DataProtection/backupVaults/{name}"))]
    #[schemars(length(max = 300))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,

    /// The kind of vault (with the parts below, instead of `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<VaultKind>,

    /// The vault's subscription, as a GUID.
    #[x_kube(validation = guid_rule("vault.subscriptionId"))]
    #[schemars(length(max = 36))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,

    /// The vault's resource group.
    #[x_kube(validation = resource_group_rule())]
    #[schemars(length(max = 90))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,

    /// The vault's name.
    #[x_kube(validation = azure_name_rule("vault.name"))]
    #[schemars(length(max = 50))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A Resource Guard, in this namespace by name or anywhere by ARM ID.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name) != has(self.id)")
    .message("set exactly one of guard.name (a ResourceGuard in this namespace) or guard.id (a guard's ARM ID)"))]
#[x_kube(validation = Rule::new("!has(self.tenantId) || has(self.id)")
    .message("guard.tenantId goes with guard.id; a ResourceGuard named by guard.name carries its own tenantId"))]
pub struct GuardReference {
    /// The name of a ResourceGuard in this namespace.
    #[x_kube(validation = object_name_rule("guard.name"))]
    #[schemars(length(max = 253))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// The full ARM ID of a guard managed elsewhere:
    /// `/subscriptions/{guid}/resourceGroups/{rg}/providers/Microsoft.DataProtection/resourceGuards/{name}`.
    #[x_kube(validation = Rule::new(format!(
        "self.matches('^{}$')",
        super::shared::arm_id_re("Microsoft.DataProtection", "resourceGuards"),
    )).message("guard.id must be the ARM ID of a Resource Guard: /subscriptions/{guid}/resourceGroups/{group}/providers/Microsoft.DataProtection/resourceGuards/{name}"))]
    #[schemars(length(max = 300))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,

    /// The Entra tenant of a guard given by `id`, when it is not the vault's tenant. Critical operations
    /// then carry an auxiliary token from that tenant.
    #[x_kube(validation = guid_rule("guard.tenantId"))]
    #[schemars(length(max = 36))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// Whether the vault is linked to the guard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MultiUserAuthorization {
    /// The vault is linked to the guard.
    #[default]
    Enabled,
    /// The vault is not linked (unlinking needs an approved request).
    Disabled,
}

/// The soft-delete settings wanted on the vault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SoftDeleteSpec {
    /// `Enabled`, `AlwaysOn` (cannot be turned off again, in Azure or here) or `Disabled` (a critical
    /// operation: needs an approved request).
    pub state: SoftDeleteState,

    /// How many days deleted backup data is kept (14-180).
    #[schemars(range(min = 14, max = 180))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<i32>,
}

/// A vault's soft-delete state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SoftDeleteState {
    /// Soft delete is on and can be turned off (with an approved request).
    Enabled,
    /// Soft delete is on and can never be turned off.
    AlwaysOn,
    /// Soft delete is off.
    Disabled,
}

/// The backup admin's narrowing of the guard's elevation rules for this vault. It can only make them
/// stricter: the security side's rules (on the ResourceGuard or an ElevationPolicy) always apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPolicy {
    /// Require at least this many distinct approvals, 1-5. The larger of this and the guard's rule applies.
    #[schemars(range(min = 1, max = 5))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_approvals: Option<i32>,

    /// Allow elevations of at most this long, between 5m and 24h. The shorter of this and the guard's rule
    /// applies.
    #[x_kube(
        validation = duration_format_rule("approval.maxDuration"),
        validation = duration_bounds_rule("approval.maxDuration")
    )]
    #[schemars(length(max = 16))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

/// What deleting a VaultProtection does to the vault's link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VaultDeletionPolicy {
    /// Leave the vault linked to the guard in Azure.
    #[default]
    Orphan,
    /// Remove the link, under an approved, active `DisableMultiUserAuthorization` request.
    Unlink,
}

/// What Azure reports about the vault and its link.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultProtectionStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Reconciling` and `Stalled`, plus `Linked` and `SoftDeleteSynced`, with reasons a person
    /// can act on (for example `ReaderRoleMissing`, `RegionMismatch`, `ElevationRequired`).
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,

    /// The vault's full ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_id: Option<String>,

    /// The vault's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_name: Option<String>,

    /// The vault's region, as Azure reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// The linked guard's full ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_id: Option<String>,

    /// The linked guard's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_name: Option<String>,

    /// How to request access, from the guard's description: read this before asking for elevation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_description: Option<String>,

    /// The vault's `multiUserAuthorization` as Azure reports it (`Enabled` while linked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_user_authorization: Option<String>,

    /// The vault's soft-delete state as Azure reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_delete_state: Option<String>,

    /// The critical operations the linked guard protects for this vault.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_operations: Vec<ProtectedOperation>,
}

fn is_default(approval: &ApprovalPolicy) -> bool {
    *approval == ApprovalPolicy::default()
}
