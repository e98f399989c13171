//! A Recovery Services vault's backup config and the vault show one soft delete state.

use super::*;

fn vault_config(name: &str) -> String {
    format!("{}/backupconfig/vaultconfig", vault(name))
}

#[tokio::test]
async fn the_vault_config_and_the_vault_show_one_soft_delete_state() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    let patch = json!({"properties": {"softDeleteRetentionPeriodInDays": 30}});
    let written = ts
        .call(&backup, Method::PATCH, &vault_config("prod-vault"), Some(patch))
        .await
        .expect(200, "a longer retention through the vault config");
    assert_eq!(written.body["properties"]["softDeleteFeatureState"], "Enabled");
    let vault = ts.call(&backup, Method::GET, &vault("prod-vault"), None).await;
    let soft_delete = &vault.body["properties"]["securitySettings"]["softDeleteSettings"];
    assert_eq!(soft_delete["softDeleteRetentionPeriodInDays"], 30, "{}", vault.body);
    let config = ts.call(&backup, Method::GET, &vault_config("prod-vault"), None).await;
    assert_eq!(config.body["properties"]["softDeleteRetentionPeriodInDays"], 30);
    assert_eq!(config.body["name"], "vaultconfig");
    assert_eq!(config.body["type"], "Microsoft.RecoveryServices/vaults/backupconfig");
}

#[tokio::test]
async fn a_vault_config_retention_outside_azures_range_is_a_400_and_changes_nothing() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    let patch = json!({"properties": {"softDeleteRetentionPeriodInDays": 181}});
    let refused = ts
        .call(&backup, Method::PATCH, &vault_config("prod-vault"), Some(patch))
        .await;
    assert_eq!((refused.status, refused.code()), (400, "InvalidRequestContent"));
    let config = ts.call(&backup, Method::GET, &vault_config("prod-vault"), None).await;
    assert_eq!(config.body["properties"]["softDeleteRetentionPeriodInDays"], 14);
}
