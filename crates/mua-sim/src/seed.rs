//! The seed file: tenants, subscriptions, resource groups, principals with their secrets, vaults, Resource
//! Guards, role assignments and PIM eligibility/policies to preload. YAML or JSON; see
//! docs/src/simulator/seed-file.md for a complete example.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::arm::guards::{GUARD_TYPE, guard_body, normalize_location};
use super::arm::vaults::{BACKUP_VAULT_TYPE, RS_VAULT_TYPE};
use super::authz;
use super::world::{Principal, ResourceGroup, RoleAssignment, StoredResource, Subscription, Tenant, World, new_etag};
use crate::operations::{CriticalOperation, VaultKind};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    #[serde(default)]
    pub subscriptions: Vec<SeedSubscription>,
    #[serde(default)]
    pub principals: Vec<Principal>,
    #[serde(default)]
    pub vaults: Vec<SeedVault>,
    #[serde(default)]
    pub resource_guards: Vec<SeedGuard>,
    #[serde(default)]
    pub role_assignments: Vec<SeedRoleAssignment>,
    #[serde(default)]
    pub eligibilities: Vec<SeedRoleAssignment>,
    #[serde(default)]
    pub policies: Vec<SeedPolicy>,
    /// Custom roles, besides the built-in ones.
    #[serde(default)]
    pub role_definitions: Vec<authz::RoleDefinition>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedSubscription {
    pub id: String,
    pub tenant: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub resource_groups: Vec<ResourceGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedVault {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    #[serde(default = "default_vault_kind")]
    pub kind: VaultKind,
    /// `Enabled` (default), `Disabled` or `AlwaysOn`.
    #[serde(default = "default_soft_delete")]
    pub soft_delete: String,
}

fn default_vault_kind() -> VaultKind {
    VaultKind::RecoveryServicesVault
}

fn default_soft_delete() -> String {
    "Enabled".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedGuard {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Operations not protected, by their names in this project (`ModifyBackupPolicy`, ...).
    #[serde(default)]
    pub excluded_operations: Vec<CriticalOperation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedRoleAssignment {
    /// Object ID of the principal.
    pub principal: String,
    /// A built-in role by name (`Reader`, `Contributor`, ...) or role definition GUID.
    pub role: String,
    /// The ARM scope: a subscription, resource group or resource ID.
    pub scope: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedPolicy {
    pub scope: String,
    pub role: String,
    #[serde(default)]
    pub approval_required: bool,
    /// Object IDs of the approvers.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Longest activation, ISO 8601 (default `PT8H`).
    #[serde(default = "default_max_duration")]
    pub maximum_duration: String,
    #[serde(default)]
    pub require_justification: bool,
    #[serde(default)]
    pub require_ticket: bool,
}

fn default_max_duration() -> String {
    "PT8H".into()
}

impl Seed {
    pub fn load(path: &Path) -> anyhow::Result<Seed> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the seed file {}", path.display()))?;
        yaml_serde::from_str(&text).with_context(|| format!("parsing the seed file {}", path.display()))
    }

    /// Builds the world, refusing references to things the seed does not declare.
    pub fn into_world(self) -> anyhow::Result<World> {
        let mut w = World::default();
        for role in self.role_definitions {
            w.role_definitions.insert(role.id.to_ascii_lowercase(), role);
        }
        for tenant in self.tenants {
            w.tenants.insert(tenant.id.to_ascii_lowercase(), tenant);
        }
        for s in self.subscriptions {
            if !w.tenants.contains_key(&s.tenant.to_ascii_lowercase()) {
                bail!(
                    "subscription {} names tenant {}, which the seed does not declare",
                    s.id,
                    s.tenant
                );
            }
            let groups: BTreeMap<String, ResourceGroup> = s
                .resource_groups
                .into_iter()
                .map(|g| {
                    (
                        g.name.to_ascii_lowercase(),
                        ResourceGroup {
                            location: normalize_location(&g.location),
                            ..g
                        },
                    )
                })
                .collect();
            w.subscriptions.insert(
                s.id.to_ascii_lowercase(),
                Subscription {
                    id: s.id,
                    tenant: s.tenant,
                    name: s.name,
                    resource_groups: groups,
                },
            );
        }
        for mut p in self.principals {
            if !w.tenants.contains_key(&p.tenant.to_ascii_lowercase()) {
                bail!(
                    "principal {} names tenant {}, which the seed does not declare",
                    p.object_id,
                    p.tenant
                );
            }
            p.object_id = p.object_id.to_ascii_lowercase();
            w.principals.insert(p.object_id.clone(), p);
        }
        let group_id = |w: &World, sub: &str, rg: &str| -> anyhow::Result<String> {
            let s = w
                .subscription(sub)
                .with_context(|| format!("subscription {sub} is not in the seed"))?;
            let g = s
                .resource_groups
                .get(&rg.to_ascii_lowercase())
                .with_context(|| format!("resource group {rg} is not in subscription {sub}"))?;
            Ok(format!("/subscriptions/{}/resourceGroups/{}", s.id, g.name))
        };
        for v in self.vaults {
            let (vault_type, security) = match v.kind {
                VaultKind::RecoveryServicesVault => (
                    RS_VAULT_TYPE,
                    json!({
                        "softDeleteSettings": {"softDeleteState": soft_delete_rs(&v.soft_delete), "softDeleteRetentionPeriodInDays": 14, "enhancedSecurityState": "Enabled"},
                        "immutabilitySettings": {"state": "Disabled"},
                        "multiUserAuthorization": "Disabled",
                    }),
                ),
                VaultKind::BackupVault => (
                    BACKUP_VAULT_TYPE,
                    json!({
                        "softDeleteSettings": {"state": soft_delete_bv(&v.soft_delete), "retentionDurationInDays": 14.0},
                        "immutabilitySettings": {"state": "Disabled"},
                    }),
                ),
            };
            let id = format!(
                "{}/providers/{vault_type}/{}",
                group_id(&w, &v.subscription, &v.resource_group)?,
                v.name
            );
            let mut body = json!({
                "id": id, "name": v.name, "type": vault_type, "location": normalize_location(&v.location),
                "tags": {}, "properties": {"provisioningState": "Succeeded", "securitySettings": security},
            });
            if v.kind == VaultKind::RecoveryServicesVault {
                let tenant = w
                    .subscription(&v.subscription)
                    .map(|s| s.tenant.clone())
                    .unwrap_or_default();
                body["identity"] = json!({"type": "SystemAssigned", "tenantId": tenant, "principalId": uuid::Uuid::new_v4().to_string()});
                super::arm::vaults::fill_defaults(&mut body, &super::arm::vaults::rs_vault_defaults());
            } else {
                body["properties"]["storageSettings"] =
                    json!([{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]);
            }
            w.resources
                .insert(id.to_ascii_lowercase(), StoredResource { body, etag: new_etag() });
        }
        for g in self.resource_guards {
            let id = format!(
                "{}/providers/{GUARD_TYPE}/{}",
                group_id(&w, &g.subscription, &g.resource_group)?,
                g.name
            );
            if let Some(op) = g.excluded_operations.iter().find(|op| op.is_mandatory()) {
                bail!("guard {}: {op} is mandatory and cannot be excluded", g.name);
            }
            let excluded = CriticalOperation::exclusion_list(&g.excluded_operations);
            let body = guard_body(
                &id,
                &g.name,
                &g.location,
                json!({}),
                &excluded,
                g.description.as_deref(),
            );
            w.resources
                .insert(id.to_ascii_lowercase(), StoredResource { body, etag: new_etag() });
        }
        for a in self.role_assignments {
            let role = authz::role(&w, &a.role)
                .cloned()
                .with_context(|| format!("unknown role '{}'", a.role))?;
            let principal = w.principals.get(&a.principal.to_ascii_lowercase()).with_context(|| {
                format!(
                    "role assignment names principal {}, which the seed does not declare",
                    a.principal
                )
            })?;
            let name = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{}|{}|{}", a.scope, principal.object_id, role.id).as_bytes(),
            )
            .to_string();
            let id = format!(
                "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
                a.scope.trim_end_matches('/')
            );
            let assignment = RoleAssignment {
                id: id.clone(),
                name,
                scope: a.scope.trim_end_matches('/').to_string(),
                role_definition: role.id.clone(),
                principal_id: principal.object_id.clone(),
                principal_type: principal.kind.arm_name().to_string(),
                end_time: None,
                schedule_request: None,
                created_on: jiff::Timestamp::now(),
            };
            w.role_assignments.insert(id.to_ascii_lowercase(), assignment);
        }
        for e in self.eligibilities {
            let role = authz::role(&w, &e.role)
                .cloned()
                .with_context(|| format!("unknown role '{}'", e.role))?;
            let name = uuid::Uuid::new_v4().to_string();
            let scope = e.scope.trim_end_matches('/');
            let id = format!("{scope}/providers/Microsoft.Authorization/roleEligibilitySchedules/{name}");
            let body = json!({"id": id, "name": name, "type": "Microsoft.Authorization/roleEligibilitySchedules", "properties": {
                "scope": scope, "principalId": e.principal.to_ascii_lowercase(), "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{}", role.id),
                "memberType": "Direct", "status": "Provisioned", "startDateTime": jiff::Timestamp::now().to_string(), "endDateTime": null,
            }});
            w.eligibility_schedules.insert(id.to_ascii_lowercase(), body);
        }
        for p in self.policies {
            let role = authz::role(&w, &p.role)
                .cloned()
                .with_context(|| format!("unknown role '{}'", p.role))?;
            let name = uuid::Uuid::new_v4().to_string();
            let scope = p.scope.trim_end_matches('/');
            let id = format!("{scope}/providers/Microsoft.Authorization/roleManagementPolicies/{name}");
            let mut enabled = vec!["MultiFactorAuthentication"];
            if p.require_justification {
                enabled.push("Justification");
            }
            if p.require_ticket {
                enabled.push("Ticketing");
            }
            let approvers: Vec<Value> = p
                .approvers
                .iter()
                .map(|a| json!({"id": a, "userType": "User", "isBackup": false}))
                .collect();
            let target = json!({"caller": "EndUser", "operations": ["All"], "level": "Assignment"});
            let body = json!({"id": id, "name": name, "type": "Microsoft.Authorization/RoleManagementPolicies", "properties": {
                "scope": scope, "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{}", role.id),
                "rules": [
                    {"id": "Approval_EndUser_Assignment", "ruleType": "RoleManagementPolicyApprovalRule", "target": target,
                     "setting": {"isApprovalRequired": p.approval_required, "approvalMode": "SingleStage",
                                 "approvalStages": [{"approvalStageTimeOutInDays": 1, "isApproverJustificationRequired": true, "primaryApprovers": approvers}]}},
                    {"id": "Expiration_EndUser_Assignment", "ruleType": "RoleManagementPolicyExpirationRule", "target": target, "isExpirationRequired": true, "maximumDuration": p.maximum_duration},
                    {"id": "Enablement_EndUser_Assignment", "ruleType": "RoleManagementPolicyEnablementRule", "target": target, "enabledRules": enabled},
                ],
            }});
            w.role_management_policies.insert(id.to_ascii_lowercase(), body);
        }
        Ok(w)
    }
}

fn soft_delete_rs(state: &str) -> &'static str {
    match state.to_ascii_lowercase().as_str() {
        "disabled" => "Disabled",
        "alwayson" => "AlwaysON",
        _ => "Enabled",
    }
}

fn soft_delete_bv(state: &str) -> &'static str {
    match state.to_ascii_lowercase().as_str() {
        "disabled" => "Off",
        "alwayson" => "AlwaysOn",
        _ => "On",
    }
}
