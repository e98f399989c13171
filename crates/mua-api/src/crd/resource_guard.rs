//! ResourceGuard: the security side's declaration of an Azure Resource Guard.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::elevation_policy::ElevationRules;
use super::shared::{
    Conditions, ManagementPolicy, azure_name_rule, guid_rule, immutable_rule, region_rule, resource_group_rule,
};
use crate::operations::CriticalOperation;

/// A Resource Guard (`Microsoft.DataProtection/resourceGuards`): the authorization object that makes the
/// vaults linked to it refuse critical operations unless the caller also holds Contributor on the guard.
/// Owned by the security admin; backup admins need Reader on it to link their vaults.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mua.dev",
    version = "v1alpha1",
    kind = "ResourceGuard",
    namespaced,
    status = "ResourceGuardStatus",
    shortname = "rg",
    category = "mua",
    derive = "PartialEq",
    doc = "ResourceGuard declares an Azure Backup Resource Guard: the authorization object that makes every vault linked to it refuse critical operations (disable soft delete, unlink, reduce retention, delete backup data, change the MARS PIN) unless the caller also holds Contributor on the guard. Owned by the security admin.",
    printcolumn(name = "Azure Name", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".spec.managementPolicy"),
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
    printcolumn(
        name = "Resource ID",
        type_ = "string",
        json_path = ".status.resourceId",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.tenantId) == has(oldSelf.tenantId)")
    .message("tenantId is immutable: a Resource Guard cannot move; create a new ResourceGuard instead"))]
pub struct ResourceGuardSpec {
    /// The Azure subscription that holds the guard, as a GUID. Immutable: a guard cannot move.
    #[x_kube(
        validation = guid_rule("subscriptionId"),
        validation = immutable_rule("subscriptionId is immutable: a Resource Guard cannot move; create a new ResourceGuard instead")
    )]
    #[schemars(length(max = 36))]
    pub subscription_id: String,

    /// The Entra tenant that holds the guard's subscription, as a GUID. Set it when the guard lives in a
    /// different tenant from the vaults it protects (the most isolated setup). Immutable.
    #[x_kube(
        validation = guid_rule("tenantId"),
        validation = immutable_rule("tenantId is immutable: a Resource Guard cannot move; create a new ResourceGuard instead")
    )]
    #[schemars(length(max = 36))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,

    /// The resource group that holds the guard. Immutable.
    #[x_kube(
        validation = resource_group_rule(),
        validation = immutable_rule("resourceGroup is immutable: a Resource Guard cannot move; create a new ResourceGuard instead")
    )]
    #[schemars(length(max = 90))]
    pub resource_group: String,

    /// The guard's name in Azure: 2-50 characters, a letter first, then letters, digits and hyphens.
    /// Immutable.
    #[x_kube(
        validation = azure_name_rule("name"),
        validation = immutable_rule("name is immutable: Azure cannot rename a Resource Guard; create a new ResourceGuard instead")
    )]
    #[schemars(length(max = 50))]
    pub name: String,

    /// The Azure region (programmatic name, e.g. `westeurope`). Vaults can only link to a guard in their
    /// own region. Immutable.
    #[x_kube(
        validation = region_rule(),
        validation = immutable_rule("region is immutable: a Resource Guard cannot change region; create a new ResourceGuard in the new region instead")
    )]
    #[schemars(length(max = 40))]
    pub region: String,

    /// How backup admins request access for a critical operation (for example the approvers' channel or
    /// the ticket queue). Sent to Azure and also kept in status, because Azure may not store it; every
    /// VaultProtection linked to this guard shows it.
    #[schemars(length(max = 2000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// Azure tags for the guard (at most 50; keys up to 512 characters, values up to 256).
    #[x_kube(validation = kube::core::Rule::new("self.all(k, size(k) <= 512 && size(self[k]) <= 256)")
        .message("tag keys must be at most 512 characters and tag values at most 256"))]
    #[schemars(extend("maxProperties" = 50))]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,

    /// Optional critical operations this guard does not protect, for every vault linked to it.
    /// `DisableSoftDelete` and `DisableMultiUserAuthorization` are mandatory and cannot be excluded.
    #[x_kube(validation = kube::core::Rule::new(
        "!self.exists(op, op == 'DisableSoftDelete' || op == 'DisableMultiUserAuthorization')"
    ).message("DisableSoftDelete and DisableMultiUserAuthorization are mandatory critical operations and cannot be excluded"))]
    #[schemars(extend("x-kubernetes-list-type" = "set", "maxItems" = 16))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_operations: Vec<CriticalOperation>,

    /// `Manage` (default) converges Azure to this spec; `Observe` only reports drift and never writes.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// What happens to the Azure guard when this object is deleted: `Orphan` (default) leaves it in Azure,
    /// `Delete` deletes it (refused while vaults are still linked to it).
    #[serde(default)]
    pub deletion_policy: GuardDeletionPolicy,

    /// Who may approve elevation on this guard, how many approvals, for how long at most, through which
    /// backend, and which principals may be elevated. Unset: nobody can be elevated on this guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation: Option<ElevationRules>,

    /// Take over a guard that already exists in Azure under this name but was not created by this
    /// operator. Without it, such a guard is reported (condition `Ready=False`, reason `AlreadyExists`)
    /// and left untouched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing: bool,
}

/// What happens to the Azure guard when the ResourceGuard object is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GuardDeletionPolicy {
    /// Leave the guard in Azure.
    #[default]
    Orphan,
    /// Delete the guard in Azure (refused while vaults are linked to it).
    Delete,
}

/// What Azure reports about the guard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGuardStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Reconciling` and `Stalled`, as kstatus and Argo CD read them, plus `Synced` (Azure matches
    /// the spec) with a reason a person can act on.
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,

    /// The guard's full ARM resource ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,

    /// The operations the guard protects, as Azure reports them (`resourceGuardOperations`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected_operations: Vec<ProtectedOperation>,

    /// The exclusion list as Azure reports it (`vaultCriticalOperationExclusionList`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_operations: Vec<String>,

    /// The access instructions for backup admins, kept here because Azure may not store them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// Azure's ETag of the guard when it was last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,

    /// Azure's provisioning state of the guard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
}

/// One operation a guard protects, as Azure reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtectedOperation {
    /// The operation's name in this API, when it is one this operator knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<CriticalOperation>,
    /// Azure's `vaultCriticalOperation`.
    pub vault_critical_operation: String,
    /// Azure's `requestResourceType`: the guard request type a critical call cites.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource_type: Option<String>,
}
