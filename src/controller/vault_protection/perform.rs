//! Perform: the single-use operation. What an approved, active request says to do (replace a backup
//! policy, move a protected item to another policy, stop protection and delete its data) is done once,
//! with the typed ARM calls, citing the guard; the request is then marked performed (or failed) so the
//! security side ends the elevation at once and the request is never used again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};

use crate::azure::client::ArmClient;
use crate::azure::error::AzureError;
use crate::azure::guards::GuardId;
use crate::azure::vaults::{self, VaultId};
use crate::controller::outcome;
use crate::controller::{BackupContext, Error};
use crate::crd::CriticalOperationRequest;
use crate::crd::critical_operation_request::{BackupSideReport, RequestAction};
use crate::operations::VaultKind;

/// Performs a request's action with the typed ARM calls, citing the guard. `Ok(Ok)`: what was done;
/// `Ok(Err)`: why it cannot be done as written (Azure refused it as invalid, or what it names is not
/// there), which no retry changes. Reads first, so a missing policy or item changes nothing.
pub(super) async fn perform(
    backup: &ArmClient,
    id: &VaultId,
    guard: &GuardId,
    action: &RequestAction,
) -> Result<Result<String, String>, Error> {
    if id.kind != VaultKind::RecoveryServicesVault {
        return Ok(Err(
            "actions are for Recovery Services vaults; on a Backup vault, request the operation with a principal and do it by hand".into(),
        ));
    }
    let result: Result<Result<String, String>, AzureError> = async {
        if let Some(change) = &action.modify_backup_policy {
            if !is_name(&change.name) {
                return Ok(Err(format!("{} is not a backup policy's name", change.name)));
            }
            if vaults::get_policy(backup, id, &change.name).await?.is_none() {
                return Ok(Err(format!("the vault has no backup policy {}", change.name)));
            }
            vaults::put_policy(backup, id, &change.name, &change.policy, guard).await?;
            return Ok(Ok(format!("replaced the backup policy {}", change.name)));
        }
        if let Some(change) = &action.modify_protection {
            if !is_item_path(&change.item) {
                return Ok(Err(not_an_item_path(&change.item)));
            }
            let Some(item) = vaults::get_item(backup, id, &change.item).await? else {
                return Ok(Err(format!("the vault has no protected item {}", change.item)));
            };
            if !is_name(&change.policy) {
                return Ok(Err(format!("{} is not a backup policy's name", change.policy)));
            }
            let Some(policy) = vaults::get_policy(backup, id, &change.policy).await? else {
                return Ok(Err(format!("the vault has no backup policy {}", change.policy)));
            };
            vaults::set_item_policy(backup, id, &item, &policy.id, guard).await?;
            return Ok(Ok(format!(
                "moved the protected item {} to the backup policy {}",
                change.item, change.policy
            )));
        }
        if let Some(stop) = &action.stop_protection_with_delete_data {
            if !is_item_path(&stop.item) {
                return Ok(Err(not_an_item_path(&stop.item)));
            }
            let Some(item) = vaults::get_item(backup, id, &stop.item).await? else {
                return Ok(Err(format!("the vault has no protected item {}", stop.item)));
            };
            vaults::delete_item(backup, id, &item, guard).await?;
            return Ok(Ok(format!(
                "stopped protecting {} and deleted its backup data",
                stop.item
            )));
        }
        Ok(Err("the action names nothing to do".to_string()))
    }
    .await;
    match result {
        Ok(done) => Ok(done),
        // Invalid as written (a bad policy body, a name Azure does not know): final.
        Err(err) if matches!(err.status(), Some(400 | 404)) => Ok(Err(format!("Azure refused it: {err}"))),
        Err(err) => Err(err.into()),
    }
}

/// Records on the request that its operation was performed, so the security side ends the elevation at
/// once and the request is never used again (single use).
pub(super) async fn record_performed(ctx: &BackupContext, key: &str, request: &str) -> Result<(), Error> {
    record_on_request(ctx, key, request, BackupSideReport::performed(Time(ctx.clock.now()))).await
}

/// Writes what the backup side found into a request's status, as the operator.
async fn record_on_request(
    ctx: &BackupContext,
    key: &str,
    request: &str,
    report: BackupSideReport,
) -> Result<(), Error> {
    let namespace = key.split('/').next().unwrap_or_default();
    let api: Api<CriticalOperationRequest> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(
        request,
        &PatchParams {
            field_manager: Some(outcome::FIELD_MANAGER.to_string()),
            ..Default::default()
        },
        &Patch::Merge(&serde_json::json!({ "status": report })),
    )
    .await?;
    Ok(())
}

/// Whether `item` is a protected item's path under the vault, as the CRD's rule requires. Checked again
/// here so that a CRD installed without its rules cannot point a write or a delete outside the vault.
pub(super) fn is_item_path(item: &str) -> bool {
    let parts: Vec<&str> = item.split('/').collect();
    let fixed = ["backupFabrics", "protectionContainers", "protectedItems"];
    parts.len() == 6
        && fixed
            .iter()
            .enumerate()
            .all(|(i, name)| parts[2 * i].eq_ignore_ascii_case(name))
        && parts.iter().skip(1).step_by(2).all(|name| is_name(name))
}

/// One name in a path under the vault (a fabric, container, item or policy): never `.`, `..`, empty, or
/// holding a character that would point the call elsewhere.
pub(super) fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric()) && !name.contains(['/', '?', '#', '%', '\\'])
}

fn not_an_item_path(item: &str) -> String {
    format!(
        "{item} is not a protected item's path under the vault (backupFabrics/{{fabric}}/protectionContainers/{{container}}/protectedItems/{{item}})"
    )
}

/// Records on the request that its action cannot be performed, so the security side fails it and ends
/// the elevation at once.
pub(super) async fn record_action_failed(
    ctx: &BackupContext,
    key: &str,
    request: &str,
    why: &str,
) -> Result<(), Error> {
    record_on_request(ctx, key, request, BackupSideReport::action_failed(why)).await
}
