//! Multi-user authorization set-ups shared by the simulator's authorization and protection tests: a guard,
//! linked vaults with policies and protected items, citations and elevation on the guard.

use reqwest::Method;
use serde_json::{Value, json};

use super::*;

pub const PROXY: &str = "VaultProxy";
pub const ITEM: &str = "backupFabrics/Azure/protectionContainers/iaasvmcontainerv2;app-rg;vm1/protectedItems/vm;iaasvmcontainerv2;app-rg;vm1";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

/// `resourceGuardOperationRequests` naming the guard's request object of `request_type`.
pub fn cite(guard: &str, request_type: &str) -> Value {
    json!([format!("{guard}/{request_type}/default")])
}

/// A Recovery Services VM policy keeping daily points for `retention_days`.
pub fn policy(retention_days: i64, citation: Option<Value>) -> Value {
    let mut body = json!({"properties": {
        "backupManagementType": "AzureIaasVM",
        "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy",
                            "dailySchedule": {"retentionDuration": {"count": retention_days, "durationType": "Days"}}},
    }});
    if let Some(citation) = citation {
        body["properties"]["resourceGuardOperationRequests"] = citation;
    }
    body
}

/// The security side creates a guard in westeurope; the backup side links `prod-vault` to it and sets up a
/// policy and a protected item, none of which is critical yet.
pub async fn protected_vault(ts: &TestSim, guard_name: &str, excluded: &[&str]) -> String {
    let guard_id = guard(guard_name);
    let body = json!({"location": "westeurope", "properties": {
        "vaultCriticalOperationExclusionList": excluded,
        "description": "Ask #backup-approvals for elevation",
    }});
    ts.call(&ts.security_side(), Method::PUT, &guard_id, Some(body))
        .await
        .expect(201, "creating the guard");
    link(ts, &vault("prod-vault"), &guard_id)
        .await
        .expect(200, "linking with Reader on the guard");

    let backup = ts.backup_side();
    let v = vault("prod-vault");
    ts.call(
        &backup,
        Method::PUT,
        &format!("{v}/backupPolicies/daily"),
        Some(policy(90, None)),
    )
    .await
    .expect(200, "a 90-day policy");
    ts.call(
        &backup,
        Method::PUT,
        &format!("{v}/backupPolicies/short"),
        Some(policy(7, None)),
    )
    .await
    .expect(200, "a 7-day policy");
    let item = json!({"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines", "policyId": format!("{v}/backupPolicies/daily")}});
    ts.call(&backup, Method::PUT, &format!("{v}/{ITEM}"), Some(item))
        .await
        .expect(200, "protecting an item");
    guard_id
}

/// The backup side links `vault_id` to `guard_id` (it has Reader on the guard).
pub async fn link(ts: &TestSim, vault_id: &str, guard_id: &str) -> Reply {
    let body = json!({"properties": {"resourceGuardResourceId": guard_id}});
    ts.call(
        &ts.backup_side(),
        Method::PUT,
        &format!("{vault_id}/backupResourceGuardProxies/{PROXY}"),
        Some(body),
    )
    .await
}

/// The seed's Backup vault in backup-rg (westeurope).
pub fn backup_vault() -> String {
    format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.DataProtection/backupVaults/prod-backup-vault"
    )
}

/// A Backup-vault policy whose default rule keeps vault-store points for `duration` (ISO 8601).
pub fn backup_vault_policy(duration: &str) -> Value {
    json!({"properties": {"objectType": "BackupPolicy", "datasourceTypes": ["Microsoft.Compute/disks"], "policyRules": [
        {"name": "BackupDaily", "objectType": "AzureBackupRule",
         "dataStore": {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}},
        {"name": "Default", "objectType": "AzureRetentionRule", "isDefault": true, "lifecycles": [
            {"deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": duration},
             "sourceDataStore": {"dataStoreType": "VaultStore", "objectType": "DataStoreInfoBase"}}]},
    ]}})
}

/// A backup instance of the Backup vault protected by its policy `policy_name`.
pub fn backup_instance(policy_name: &str) -> Value {
    json!({"properties": {"friendlyName": "disk1", "objectType": "BackupInstance",
        "policyInfo": {"policyId": format!("{}/backupPolicies/{policy_name}", backup_vault())}}})
}

/// The security side creates a guard; the backup side links the Backup vault to it and protects a disk
/// (`backupInstances/disk1`) with a 30-day policy (`monthly`) beside a 7-day one (`weekly`).
pub async fn protected_backup_vault(ts: &TestSim) -> String {
    let guard_id = ts.create_guard("backup-guard").await;
    link(ts, &backup_vault(), &guard_id)
        .await
        .expect(200, "linking the Backup vault with Reader on the guard");
    let backup = ts.backup_side();
    let bv = backup_vault();
    for (name, duration) in [("monthly", "P30D"), ("weekly", "P7D")] {
        ts.call(
            &backup,
            Method::PUT,
            &format!("{bv}/backupPolicies/{name}"),
            Some(backup_vault_policy(duration)),
        )
        .await
        .expect(200, "a Backup-vault policy");
    }
    ts.call(
        &backup,
        Method::PUT,
        &format!("{bv}/backupInstances/disk1"),
        Some(backup_instance("monthly")),
    )
    .await
    .expect(201, "protecting a disk");
    guard_id
}

/// The security side gives the backup side Contributor on the guard: the elevation a critical operation
/// needs.
pub async fn elevate(ts: &TestSim, guard_id: &str) {
    let assignment = format!(
        "{guard_id}/providers/Microsoft.Authorization/roleAssignments/{}",
        uuid::Uuid::new_v4()
    );
    let body = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SECURITY_SUB}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}"),
        "principalId": BACKUP_OID,
        "principalType": "ServicePrincipal",
    }});
    ts.call(&ts.security_side(), Method::PUT, &assignment, Some(body))
        .await
        .expect(201, "Contributor on the guard for the backup side");
}

/// Panics unless the guard refused the call: ARM's 403 with the linked-authorization code.
pub fn assert_refused_by_guard(reply: &Reply, what: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "{what}: {}",
        reply.body
    );
}
