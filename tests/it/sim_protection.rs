//! A backup admin with only Reader on the Resource Guard cannot weaken a linked vault's protection by any
//! route: soft-delete retention, policy retention in every shape, item and instance moves, Backup-vault
//! encryption, a region move, or a property name in another casing. Each refusal leaves the resource as
//! it was; the same change passes with the guard cited and Contributor on it, and a strengthening passes
//! without.

use crate::simulator;

use reqwest::Method;
use serde_json::{Value, json};
use simulator::mua::*;
use simulator::*;

/// Why Backup-vault soft-delete tests are ignored until `operations.rs` maps the operation for them.
const NEEDS_BV_SOFT_DELETE: &str = "needs the Backup-vault DisableSoftDelete mapping in operations.rs";

async fn read(ts: &TestSim, path: &str) -> Value {
    ts.call(&ts.backup_side(), Method::GET, path, None)
        .await
        .expect(200, "reading it back")
        .body
}

async fn soft_delete_settings(ts: &TestSim, vault_id: &str) -> Value {
    read(ts, vault_id).await["properties"]["securitySettings"]["softDeleteSettings"].clone()
}

fn rs_retention(days: u32) -> Value {
    json!({"properties": {"securitySettings": {"softDeleteSettings": {"softDeleteRetentionPeriodInDays": days}}}})
}

fn backup_vault_retention(days: f64) -> Value {
    json!({"properties": {"securitySettings": {"softDeleteSettings": {"retentionDurationInDays": days}}}})
}

/// The linked RS vault with 180 days of soft-delete retention (raising it needs no guard).
async fn rs_vault_keeping_180_days(ts: &TestSim) -> String {
    let guard_id = protected_vault(ts, "backup-guard", &[]).await;
    ts.call(
        &ts.backup_side(),
        Method::PATCH,
        &vault("prod-vault"),
        Some(rs_retention(180)),
    )
    .await
    .expect(202, "raising soft-delete retention");
    guard_id
}

/// The linked Backup vault with 180 days of soft-delete retention.
async fn backup_vault_keeping_180_days(ts: &TestSim) -> String {
    let guard_id = protected_backup_vault(ts).await;
    ts.call(
        &ts.backup_side(),
        Method::PATCH,
        &backup_vault(),
        Some(backup_vault_retention(180.0)),
    )
    .await
    .expect(200, "raising soft-delete retention");
    guard_id
}

async fn patch_rs_vault(ts: &TestSim, body: Value) -> Reply {
    ts.call(&ts.backup_side(), Method::PATCH, &vault("prod-vault"), Some(body))
        .await
}

async fn patch_backup_vault(ts: &TestSim, body: Value) -> Reply {
    ts.call(&ts.backup_side(), Method::PATCH, &backup_vault(), Some(body))
        .await
}

// ---- 1. Soft-delete retention.

#[tokio::test]
async fn raising_soft_delete_retention_needs_no_guard() {
    let ts = TestSim::start().await;
    rs_vault_keeping_180_days(&ts).await;
    let settings = soft_delete_settings(&ts, &vault("prod-vault")).await;
    assert_eq!(settings["softDeleteRetentionPeriodInDays"], 180);
}

#[tokio::test]
async fn cutting_soft_delete_retention_with_a_patch_is_refused() {
    let ts = TestSim::start().await;
    rs_vault_keeping_180_days(&ts).await;
    let reply = patch_rs_vault(&ts, rs_retention(14)).await;
    assert_refused_by_guard(&reply, "180 → 14 days");
    let settings = soft_delete_settings(&ts, &vault("prod-vault")).await;
    assert_eq!(settings["softDeleteRetentionPeriodInDays"], 180);
}

#[tokio::test]
async fn removing_soft_delete_settings_with_a_null_patch_is_refused() {
    let ts = TestSim::start().await;
    rs_vault_keeping_180_days(&ts).await;
    let body = json!({"properties": {"securitySettings": {"softDeleteSettings": null}}});
    let reply = patch_rs_vault(&ts, body).await;
    assert_refused_by_guard(&reply, "softDeleteSettings: null (the 14-day default comes back)");
    let settings = soft_delete_settings(&ts, &vault("prod-vault")).await;
    assert_eq!(settings["softDeleteRetentionPeriodInDays"], 180);
}

#[tokio::test]
async fn a_put_without_security_settings_cannot_cut_soft_delete_retention() {
    let ts = TestSim::start().await;
    rs_vault_keeping_180_days(&ts).await;
    let body = json!({"location": "westeurope", "sku": {"name": "Standard"}, "properties": {}});
    let reply = ts
        .call(&ts.backup_side(), Method::PUT, &vault("prod-vault"), Some(body))
        .await;
    assert_refused_by_guard(&reply, "a PUT that omits the settings");
    let settings = soft_delete_settings(&ts, &vault("prod-vault")).await;
    assert_eq!(settings["softDeleteRetentionPeriodInDays"], 180);
}

#[tokio::test]
async fn cutting_soft_delete_retention_with_elevation_succeeds() {
    let ts = TestSim::start().await;
    let guard_id = rs_vault_keeping_180_days(&ts).await;
    elevate(&ts, &guard_id).await;
    let mut body = rs_retention(14);
    body["properties"]["resourceGuardOperationRequests"] = cite(&guard_id, "disableSoftDeleteRequests");
    patch_rs_vault(&ts, body)
        .await
        .expect(202, "cutting retention with elevation");
    let settings = soft_delete_settings(&ts, &vault("prod-vault")).await;
    assert_eq!(settings["softDeleteRetentionPeriodInDays"], 14);
}

#[tokio::test]
async fn raising_backup_vault_soft_delete_retention_needs_no_guard() {
    let ts = TestSim::start().await;
    backup_vault_keeping_180_days(&ts).await;
    let settings = soft_delete_settings(&ts, &backup_vault()).await;
    assert_eq!(settings["retentionDurationInDays"], 180.0);
}

#[tokio::test]
async fn cutting_backup_vault_soft_delete_retention_with_a_patch_is_refused() {
    let ts = TestSim::start().await;
    backup_vault_keeping_180_days(&ts).await;
    let reply = patch_backup_vault(&ts, backup_vault_retention(14.0)).await;
    assert_refused_by_guard(&reply, NEEDS_BV_SOFT_DELETE);
    let settings = soft_delete_settings(&ts, &backup_vault()).await;
    assert_eq!(settings["retentionDurationInDays"], 180.0);
}

#[tokio::test]
async fn removing_backup_vault_soft_delete_settings_with_a_null_patch_is_refused() {
    let ts = TestSim::start().await;
    backup_vault_keeping_180_days(&ts).await;
    let body = json!({"properties": {"securitySettings": {"softDeleteSettings": null}}});
    let reply = patch_backup_vault(&ts, body).await;
    assert_refused_by_guard(&reply, NEEDS_BV_SOFT_DELETE);
    let settings = soft_delete_settings(&ts, &backup_vault()).await;
    assert_eq!(settings["retentionDurationInDays"], 180.0);
}

#[tokio::test]
async fn a_backup_vault_put_without_security_settings_cannot_cut_soft_delete_retention() {
    let ts = TestSim::start().await;
    backup_vault_keeping_180_days(&ts).await;
    let body = json!({"location": "westeurope", "properties": {
        "storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]}});
    let reply = ts
        .call(&ts.backup_side(), Method::PUT, &backup_vault(), Some(body))
        .await;
    assert_refused_by_guard(&reply, NEEDS_BV_SOFT_DELETE);
    let settings = soft_delete_settings(&ts, &backup_vault()).await;
    assert_eq!(settings["retentionDurationInDays"], 180.0);
}

#[tokio::test]
async fn cutting_backup_vault_soft_delete_retention_with_elevation_succeeds() {
    let ts = TestSim::start().await;
    let guard_id = backup_vault_keeping_180_days(&ts).await;
    elevate(&ts, &guard_id).await;
    let mut body = backup_vault_retention(14.0);
    body["properties"]["resourceGuardOperationRequests"] = cite(&guard_id, "dppReduceSoftDeleteSecurityRequests");
    patch_backup_vault(&ts, body)
        .await
        .expect(200, "cutting retention with elevation");
    let settings = soft_delete_settings(&ts, &backup_vault()).await;
    assert_eq!(settings["retentionDurationInDays"], 14.0);
}

// ---- 2. Policy retention in every shape.

fn simple_policy(days: i64) -> Value {
    json!({"properties": {"backupManagementType": "AzureStorage", "workLoadType": "AzureFileShare",
        "retentionPolicy": {"retentionPolicyType": "SimpleRetentionPolicy",
                            "retentionDuration": {"count": days, "durationType": "Days"}}}})
}

/// A SQL policy: full backups kept 5 weeks, log backups `log_days`.
fn workload_policy(log_days: i64) -> Value {
    json!({"properties": {"backupManagementType": "AzureWorkload", "workLoadType": "SQLDataBase",
    "subProtectionPolicy": [
        {"policyType": "Full", "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy",
            "weeklySchedule": {"daysOfTheWeek": ["Sunday"], "retentionDuration": {"count": 5, "durationType": "Weeks"}}}},
        {"policyType": "Log", "retentionPolicy": {"retentionPolicyType": "SimpleRetentionPolicy",
            "retentionDuration": {"count": log_days, "durationType": "Days"}}},
    ]}})
}

async fn put_policy(ts: &TestSim, name: &str, body: Value) -> Reply {
    let path = format!("{}/backupPolicies/{name}", vault("prod-vault"));
    ts.call(&ts.backup_side(), Method::PUT, &path, Some(body)).await
}

async fn read_policy(ts: &TestSim, name: &str) -> Value {
    read(ts, &format!("{}/backupPolicies/{name}", vault("prod-vault"))).await
}

#[tokio::test]
async fn cutting_a_simple_retention_policy_is_refused() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    put_policy(&ts, "files", simple_policy(30))
        .await
        .expect(200, "a 30-day policy");
    let reply = put_policy(&ts, "files", simple_policy(7)).await;
    assert_refused_by_guard(&reply, "30 → 7 days");
    let kept = read_policy(&ts, "files").await;
    assert_eq!(kept["properties"]["retentionPolicy"]["retentionDuration"]["count"], 30);
}

#[tokio::test]
async fn cutting_a_simple_retention_policy_with_elevation_succeeds() {
    let ts = TestSim::start().await;
    let guard_id = protected_vault(&ts, "backup-guard", &[]).await;
    put_policy(&ts, "files", simple_policy(30))
        .await
        .expect(200, "a 30-day policy");
    elevate(&ts, &guard_id).await;
    let mut body = simple_policy(7);
    body["properties"]["resourceGuardOperationRequests"] = cite(&guard_id, "updateProtectionPolicyRequests");
    put_policy(&ts, "files", body)
        .await
        .expect(200, "cutting retention with elevation");
    let kept = read_policy(&ts, "files").await;
    assert_eq!(kept["properties"]["retentionPolicy"]["retentionDuration"]["count"], 7);
}

#[tokio::test]
async fn cutting_a_workload_sub_policy_retention_is_refused() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    put_policy(&ts, "sql", workload_policy(30))
        .await
        .expect(200, "a SQL policy");
    let reply = put_policy(&ts, "sql", workload_policy(7)).await;
    assert_refused_by_guard(&reply, "log backups 30 → 7 days");
    let kept = read_policy(&ts, "sql").await;
    assert_eq!(
        kept["properties"]["subProtectionPolicy"][1]["retentionPolicy"]["retentionDuration"]["count"],
        30
    );
}

#[tokio::test]
async fn lengthening_a_workload_sub_policy_retention_needs_no_guard() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    put_policy(&ts, "sql", workload_policy(30))
        .await
        .expect(200, "a SQL policy");
    put_policy(&ts, "sql", workload_policy(60))
        .await
        .expect(200, "log backups 30 → 60 days");
    let kept = read_policy(&ts, "sql").await;
    assert_eq!(
        kept["properties"]["subProtectionPolicy"][1]["retentionPolicy"]["retentionDuration"]["count"],
        60
    );
}

// ---- 3. Protected items: the policy must be the vault's own, and an unknown one counts as weaker.

fn item_on(policy_id: &str) -> Value {
    json!({"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines", "policyId": policy_id}})
}

async fn move_item(ts: &TestSim, body: Value) -> Reply {
    let path = format!("{}/{ITEM}", vault("prod-vault"));
    ts.call(&ts.backup_side(), Method::PUT, &path, Some(body)).await
}

async fn item_policy(ts: &TestSim) -> Value {
    read(ts, &format!("{}/{ITEM}", vault("prod-vault"))).await["properties"]["policyId"].clone()
}

fn daily_policy_id() -> String {
    format!("{}/backupPolicies/daily", vault("prod-vault"))
}

#[tokio::test]
async fn an_item_cannot_be_moved_to_another_vaults_policy() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    // Another (unlinked) vault's policy, however long it keeps, is not this item's to use.
    let east = format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-east-rg/providers/Microsoft.RecoveryServices/vaults/east-vault/backupPolicies/yearly"
    );
    ts.call(&ts.backup_side(), Method::PUT, &east, Some(policy(365, None)))
        .await
        .expect(200, "a policy in the unlinked vault");
    let reply = move_item(&ts, item_on(&east)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "BMSUserErrorInvalidInput"),
        "{}",
        reply.body
    );
    assert_eq!(item_policy(&ts).await, daily_policy_id());
}

#[tokio::test]
async fn moving_an_item_to_a_policy_that_does_not_exist_is_refused() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let missing = format!("{}/backupPolicies/no-such-policy", vault("prod-vault"));
    let reply = move_item(&ts, item_on(&missing)).await;
    assert_refused_by_guard(&reply, "a policy that cannot be found counts as weaker");
    assert_eq!(item_policy(&ts).await, daily_policy_id());
}

#[tokio::test]
async fn moving_an_item_to_a_shorter_policy_of_another_shape_is_refused() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    put_policy(&ts, "simple-30", simple_policy(30))
        .await
        .expect(200, "a 30-day simple policy");
    let target = format!("{}/backupPolicies/simple-30", vault("prod-vault"));
    let reply = move_item(&ts, item_on(&target)).await;
    assert_refused_by_guard(&reply, "90 daily days → 30 days");
    assert_eq!(item_policy(&ts).await, daily_policy_id());
}

#[tokio::test]
async fn moving_an_item_to_a_longer_policy_needs_no_guard() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    put_policy(&ts, "yearly", policy(365, None))
        .await
        .expect(200, "a 365-day policy");
    let target = format!("{}/backupPolicies/yearly", vault("prod-vault"));
    move_item(&ts, item_on(&target)).await.expect(200, "90 → 365 days");
    assert_eq!(item_policy(&ts).await, target);
}

#[tokio::test]
async fn moving_an_item_to_a_shorter_policy_with_elevation_succeeds() {
    let ts = TestSim::start().await;
    let guard_id = protected_vault(&ts, "backup-guard", &[]).await;
    elevate(&ts, &guard_id).await;
    let target = format!("{}/backupPolicies/short", vault("prod-vault"));
    let mut body = item_on(&target);
    body["properties"]["resourceGuardOperationRequests"] = cite(&guard_id, "updateProtectedItemRequests");
    move_item(&ts, body).await.expect(200, "90 → 7 days with elevation");
    assert_eq!(item_policy(&ts).await, target);
}

// ---- 4. Backup-vault backup instances and their policies.

fn instance_path() -> String {
    format!("{}/backupInstances/disk1", backup_vault())
}

async fn move_instance(ts: &TestSim, body: Value) -> Reply {
    ts.call(&ts.backup_side(), Method::PUT, &instance_path(), Some(body))
        .await
}

async fn instance_policy(ts: &TestSim) -> Value {
    read(ts, &instance_path()).await["properties"]["policyInfo"]["policyId"].clone()
}

fn backup_vault_policy_id(name: &str) -> String {
    format!("{}/backupPolicies/{name}", backup_vault())
}

#[tokio::test]
async fn a_backup_vault_policy_reads_back_as_written() {
    let ts = TestSim::start().await;
    protected_backup_vault(&ts).await;
    let policy = read(&ts, &backup_vault_policy_id("monthly")).await;
    assert_eq!(policy["type"], "Microsoft.DataProtection/backupVaults/backupPolicies");
    assert_eq!(
        policy["properties"]["policyRules"][1]["lifecycles"][0]["deleteAfter"]["duration"],
        "P30D"
    );
}

#[tokio::test]
async fn a_backup_vault_policy_with_a_duration_in_hours_is_a_400() {
    let ts = TestSim::start().await;
    protected_backup_vault(&ts).await;
    let path = backup_vault_policy_id("hourly");
    let reply = ts
        .call(&ts.backup_side(), Method::PUT, &path, Some(backup_vault_policy("PT4H")))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "BMSUserErrorInvalidInput"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn moving_a_backup_instance_to_a_shorter_policy_is_refused() {
    let ts = TestSim::start().await;
    protected_backup_vault(&ts).await;
    let reply = move_instance(&ts, backup_instance("weekly")).await;
    assert_refused_by_guard(&reply, "P30D → P7D");
    assert_eq!(instance_policy(&ts).await, backup_vault_policy_id("monthly"));
}

#[tokio::test]
async fn moving_a_backup_instance_to_an_unknown_policy_is_refused() {
    let ts = TestSim::start().await;
    protected_backup_vault(&ts).await;
    let reply = move_instance(&ts, backup_instance("no-such-policy")).await;
    assert_refused_by_guard(&reply, "an unknown policy counts as weaker");
    assert_eq!(instance_policy(&ts).await, backup_vault_policy_id("monthly"));
}

#[tokio::test]
async fn a_backup_instance_cannot_use_another_vaults_policy() {
    let ts = TestSim::start().await;
    protected_backup_vault(&ts).await;
    let mut body = backup_instance("monthly");
    body["properties"]["policyInfo"]["policyId"] = json!(format!("{}/backupPolicies/daily", vault("prod-vault")));
    let reply = move_instance(&ts, body).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "BMSUserErrorInvalidInput"),
        "{}",
        reply.body
    );
    assert_eq!(instance_policy(&ts).await, backup_vault_policy_id("monthly"));
}

#[tokio::test]
async fn moving_a_backup_instance_to_a_longer_policy_needs_no_guard() {
    let ts = TestSim::start().await;
    protected_backup_vault(&ts).await;
    let path = backup_vault_policy_id("yearly");
    ts.call(&ts.backup_side(), Method::PUT, &path, Some(backup_vault_policy("P1Y")))
        .await
        .expect(200, "a one-year policy");
    move_instance(&ts, backup_instance("yearly"))
        .await
        .expect(200, "P30D → P1Y");
    assert_eq!(instance_policy(&ts).await, path);
}

#[tokio::test]
async fn moving_a_backup_instance_to_a_shorter_policy_with_elevation_succeeds() {
    let ts = TestSim::start().await;
    let guard_id = protected_backup_vault(&ts).await;
    elevate(&ts, &guard_id).await;
    let mut body = backup_instance("weekly");
    body["properties"]["resourceGuardOperationRequests"] = cite(&guard_id, "dppModifyPolicy");
    move_instance(&ts, body).await.expect(200, "P30D → P7D with elevation");
    assert_eq!(instance_policy(&ts).await, backup_vault_policy_id("weekly"));
}

// ---- 5. Backup-vault encryption settings.

fn encryption(settings: Value) -> Value {
    json!({"properties": {"securitySettings": {"encryptionSettings": settings}}})
}

fn customer_key(name: &str) -> Value {
    json!({"state": "Enabled", "keyVaultProperties": {"keyUri": format!("https://contoso-kv.vault.azure.net/keys/{name}")},
           "kekIdentity": {"identityType": "SystemAssigned"}, "infrastructureEncryption": "Disabled"})
}

async fn encryption_settings(ts: &TestSim) -> Value {
    read(ts, &backup_vault()).await["properties"]["securitySettings"]["encryptionSettings"].clone()
}

/// The linked Backup vault encrypted with the customer's key `key-1`.
async fn backup_vault_with_customer_key(ts: &TestSim) -> String {
    let guard_id = protected_backup_vault(ts).await;
    patch_backup_vault(ts, encryption(customer_key("key-1")))
        .await
        .expect(200, "choosing a customer-managed key");
    guard_id
}

#[tokio::test]
async fn choosing_a_first_backup_vault_key_needs_no_guard() {
    let ts = TestSim::start().await;
    backup_vault_with_customer_key(&ts).await;
    assert_eq!(encryption_settings(&ts).await, customer_key("key-1"));
}

#[tokio::test]
async fn changing_backup_vault_encryption_is_refused() {
    let ts = TestSim::start().await;
    backup_vault_with_customer_key(&ts).await;
    let reply = patch_backup_vault(&ts, encryption(customer_key("attacker-key"))).await;
    assert_refused_by_guard(&reply, "another key");
    assert_eq!(encryption_settings(&ts).await, customer_key("key-1"));
}

#[tokio::test]
async fn disabling_backup_vault_encryption_is_refused() {
    let ts = TestSim::start().await;
    backup_vault_with_customer_key(&ts).await;
    let reply = patch_backup_vault(&ts, encryption(json!({"state": "Disabled"}))).await;
    assert_refused_by_guard(&reply, "back to platform-managed keys");
    assert_eq!(encryption_settings(&ts).await, customer_key("key-1"));
}

#[tokio::test]
async fn changing_backup_vault_encryption_with_elevation_succeeds() {
    let ts = TestSim::start().await;
    let guard_id = backup_vault_with_customer_key(&ts).await;
    elevate(&ts, &guard_id).await;
    let mut body = encryption(customer_key("key-2"));
    body["properties"]["resourceGuardOperationRequests"] = cite(&guard_id, "dppModifyEncryptionSettingsRequests");
    patch_backup_vault(&ts, body)
        .await
        .expect(200, "rotating to another key with elevation");
    assert_eq!(encryption_settings(&ts).await, customer_key("key-2"));
}

// ---- 6. Location is immutable.

fn assert_location_refused(reply: &Reply, name: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (409, "InvalidResourceLocation"),
        "{}",
        reply.body
    );
    assert_eq!(
        reply.message(),
        format!(
            "The resource '{name}' already exists in location 'westeurope' in resource group 'backup-rg'. A resource \
             with the same name cannot be created in location 'eastus'. Please select a new resource name."
        )
    );
}

#[tokio::test]
async fn moving_a_recovery_services_vault_to_another_region_is_refused() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let body = json!({"location": "eastus", "sku": {"name": "Standard"}, "properties": {}});
    let reply = ts
        .call(&ts.backup_side(), Method::PUT, &vault("prod-vault"), Some(body))
        .await;
    assert_location_refused(&reply, "prod-vault");
    assert_eq!(read(&ts, &vault("prod-vault")).await["location"], "westeurope");
}

#[tokio::test]
async fn moving_a_backup_vault_to_another_region_is_refused() {
    let ts = TestSim::start().await;
    protected_backup_vault(&ts).await;
    let body = json!({"location": "East US", "properties": {
        "storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]}});
    let reply = ts
        .call(&ts.backup_side(), Method::PUT, &backup_vault(), Some(body))
        .await;
    assert_location_refused(&reply, "prod-backup-vault");
    assert_eq!(read(&ts, &backup_vault()).await["location"], "westeurope");
}

#[tokio::test]
async fn moving_a_vault_with_a_patch_is_refused() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let reply = patch_rs_vault(&ts, json!({"location": "eastus"})).await;
    assert_location_refused(&reply, "prod-vault");
    assert_eq!(read(&ts, &vault("prod-vault")).await["location"], "westeurope");
}

#[tokio::test]
async fn a_put_naming_the_vaults_region_in_another_spelling_succeeds() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let body =
        json!({"location": "West Europe", "sku": {"name": "Standard"}, "tags": {"env": "prod"}, "properties": {}});
    ts.call(&ts.backup_side(), Method::PUT, &vault("prod-vault"), Some(body))
        .await
        .expect(200, "a PUT in the vault's own region");
    let stored = read(&ts, &vault("prod-vault")).await;
    assert_eq!(
        (&stored["location"], &stored["tags"]["env"]),
        (&json!("westeurope"), &json!("prod"))
    );
}

// ---- 7. Property names in another casing.

#[tokio::test]
async fn a_soft_delete_state_in_another_casing_is_the_soft_delete_state() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let body = json!({"properties": {"securitySettings": {"softDeleteSettings": {"SoftDeleteState": "Disabled"}}}});
    let reply = patch_rs_vault(&ts, body).await;
    assert_refused_by_guard(&reply, "SoftDeleteState: Disabled");
    let settings = soft_delete_settings(&ts, &vault("prod-vault")).await;
    assert_eq!(settings["softDeleteState"], "Enabled");
    assert!(settings.get("SoftDeleteState").is_none(), "{settings}");
}

#[tokio::test]
async fn a_property_named_twice_in_two_casings_is_a_400() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let body = json!({"properties": {"securitySettings": {"softDeleteSettings": {
        "softDeleteState": "Enabled", "SoftDeleteState": "Disabled"}}}});
    let reply = patch_rs_vault(&ts, body).await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "InvalidRequestContent"),
        "{}",
        reply.body
    );
    let settings = soft_delete_settings(&ts, &vault("prod-vault")).await;
    assert_eq!(settings["softDeleteState"], "Enabled");
    assert!(settings.get("SoftDeleteState").is_none(), "{settings}");
}

#[tokio::test]
async fn a_policy_retention_cut_in_another_casing_is_refused() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let body = json!({"Properties": {"BackupManagementType": "AzureIaasVM", "RetentionPolicy": {
        "RetentionPolicyType": "LongTermRetentionPolicy",
        "DailySchedule": {"RetentionDuration": {"Count": 7, "DurationType": "Days"}}}}});
    let reply = put_policy(&ts, "daily", body).await;
    assert_refused_by_guard(&reply, "90 → 7 days, keys in PascalCase");
    let kept = read_policy(&ts, "daily").await;
    assert_eq!(
        kept["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"],
        90
    );
}

#[tokio::test]
async fn a_strengthening_in_another_casing_is_stored_under_the_canonical_name() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let body =
        json!({"PROPERTIES": {"SecuritySettings": {"SoftDeleteSettings": {"SoftDeleteRetentionPeriodInDays": 30}}}});
    patch_rs_vault(&ts, body)
        .await
        .expect(202, "raising retention in PascalCase");
    let settings = soft_delete_settings(&ts, &vault("prod-vault")).await;
    assert_eq!(settings["softDeleteRetentionPeriodInDays"], 30);
    assert!(settings.get("SoftDeleteRetentionPeriodInDays").is_none(), "{settings}");
}

// ---- 8. The vault config: the CLI's way to the same soft-delete settings.

fn vault_config() -> String {
    format!("{}/backupconfig/vaultconfig", vault("prod-vault"))
}

#[tokio::test]
async fn disabling_soft_delete_through_the_vault_config_is_refused() {
    let ts = TestSim::start().await;
    let guard_id = protected_vault(&ts, "config-guard", &[]).await;
    let body = json!({"properties": {"softDeleteFeatureState": "Disabled",
        "resourceGuardOperationRequests": cite(&guard_id, "disableSoftDeleteRequests")}});
    let reply = ts
        .call(&ts.backup_side(), Method::PATCH, &vault_config(), Some(body))
        .await;
    assert_refused_by_guard(&reply, "soft delete off through the vault config, with Reader only");
    let config = ts.call(&ts.backup_side(), Method::GET, &vault_config(), None).await;
    assert_eq!(config.body["properties"]["softDeleteFeatureState"], "Enabled");
}

#[tokio::test]
async fn a_vault_config_citation_in_another_casing_counts_with_elevation() {
    let ts = TestSim::start().await;
    let guard_id = protected_vault(&ts, "config-casing-guard", &[]).await;
    elevate(&ts, &guard_id).await;
    let body = json!({"Properties": {"SoftDeleteFeatureState": "Disabled",
        "ResourceGuardOperationRequests": cite(&guard_id, "disableSoftDeleteRequests")}});
    ts.call(&ts.backup_side(), Method::PATCH, &vault_config(), Some(body))
        .await
        .expect(200, "soft delete off through the vault config, elevated");
    let vault = ts
        .call(&ts.backup_side(), Method::GET, &vault("prod-vault"), None)
        .await;
    let state = &vault.body["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"];
    assert_eq!(state, "Disabled", "both views say the same");
}
