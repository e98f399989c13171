//! Backup policies, protected items (Recovery Services) and backup instances (Backup vaults), as far as
//! the optional critical operations need them: reducing retention, modifying protection, stopping
//! protection with delete data, and the MARS security PIN.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::mua::{authorize_critical, vault_link};
use super::{ArmError, ArmRequest, ArmResponse, ArmResult};
use crate::operations::{CriticalOperation, VaultKind};
use crate::sim::state::SimState;
use crate::sim::world::{StoredResource, new_etag};

fn vault_kind(req: &ArmRequest) -> VaultKind {
    if req.path.provider.eq_ignore_ascii_case("Microsoft.DataProtection") {
        VaultKind::BackupVault
    } else {
        VaultKind::RecoveryServicesVault
    }
}

fn require_vault(sim: &SimState, req: &ArmRequest) -> Result<String, ArmError> {
    let vault_id = req.path.resource_id_of(1);
    if sim.read(|w| w.resource(&vault_id).is_none()) {
        return Err(ArmError::not_found(
            &format!("{}/{}", req.path.provider, req.path.types[0]),
            &req.path.names[0],
            req.path.resource_group().unwrap_or_default(),
        ));
    }
    Ok(vault_id)
}

fn get_resource(sim: &SimState, req: &ArmRequest) -> ArmResult {
    require_vault(sim, req)?;
    let id = req.path.resource_id();
    sim.read(|w| w.resource(&id).map(|r| r.body.clone()))
        .map(ArmResponse::ok)
        .ok_or_else(|| {
            ArmError::not_found(
                &req.path.resource_type(),
                req.path.names.last().map(String::as_str).unwrap_or_default(),
                req.path.resource_group().unwrap_or_default(),
            )
        })
}

fn store(sim: &SimState, req: &ArmRequest) -> (bool, Value) {
    let id = req.path.resource_id();
    let mut body = req.body.clone();
    if let Some(props) = body["properties"].as_object_mut() {
        props.remove("resourceGuardOperationRequests");
    }
    body["id"] = json!(id);
    body["name"] = json!(req.path.names.last());
    body["type"] = json!(req.path.resource_type());
    let created = sim.write(|w| {
        w.resources
            .insert(
                id.to_ascii_lowercase(),
                StoredResource {
                    body: body.clone(),
                    etag: new_etag(),
                },
            )
            .is_none()
    });
    (created, body)
}

/// Daily retention in days, from `properties.retentionPolicy.dailySchedule.retentionDuration` (the
/// shape of Azure VM and file-share policies); unknown retention counts as unchanged.
pub fn retention_days(policy: &Value) -> Option<i64> {
    let duration = &policy["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"];
    let count = duration["count"].as_i64()?;
    Some(match duration["durationType"].as_str().unwrap_or("Days") {
        "Weeks" => count * 7,
        "Months" => count * 30,
        "Years" => count * 365,
        _ => count,
    })
}

pub fn get_policy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    get_resource(sim, req)
}

/// Reducing a policy's retention is the critical operation `ModifyBackupPolicy`.
pub fn put_policy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let vault_id = require_vault(sim, req)?;
    let before = sim.read(|w| w.resource(&req.path.resource_id()).map(|r| r.body.clone()));
    if let Some(before) = &before
        && let (Some(was), Some(now)) = (retention_days(before), retention_days(&req.body))
        && now < was
    {
        authorize_critical(
            sim,
            req,
            &vault_id,
            VaultKind::RecoveryServicesVault,
            CriticalOperation::ModifyBackupPolicy,
        )?;
    }
    let (_, body) = store(sim, req);
    Ok(ArmResponse::ok(body))
}

pub fn get_item(sim: &SimState, req: &ArmRequest) -> ArmResult {
    get_resource(sim, req)
}

/// Moving an item to a policy with shorter retention is the critical operation `ModifyProtection`.
pub fn put_item(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let vault_id = require_vault(sim, req)?;
    let id = req.path.resource_id();
    let before = sim.read(|w| w.resource(&id).map(|r| r.body.clone()));
    if let Some(before) = &before {
        let policy_retention = |item: &Value| {
            let policy = item["properties"]["policyId"].as_str()?;
            sim.read(|w| w.resource(policy).and_then(|p| retention_days(&p.body)))
        };
        if let (Some(was), Some(now)) = (policy_retention(before), policy_retention(&req.body))
            && now < was
        {
            authorize_critical(
                sim,
                req,
                &vault_id,
                vault_kind(req),
                CriticalOperation::ModifyProtection,
            )?;
        }
    }
    let (created, body) = store(sim, req);
    Ok(ArmResponse::with_status(
        if created && vault_kind(req) == VaultKind::BackupVault {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        body,
    ))
}

/// Stopping protection with delete data needs a valid `unlockDelete` for the item while the vault is
/// linked and the guard protects the operation.
pub fn delete_item(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let vault_id = require_vault(sim, req)?;
    let id = req.path.resource_id();
    let key = id.to_ascii_lowercase();
    if sim.read(|w| w.resource(&id).is_none()) {
        return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
    }
    let unlocked = sim.read(|w| w.unlocked_items.contains_key(&key));
    if !unlocked && vault_link(sim, &vault_id).is_some() {
        // Not unlocked: allowed only if the guard does not protect the operation (it is excluded).
        let probe = ArmRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            api_version: req.api_version.clone(),
            query: req.query.clone(),
            caller: req.caller.clone(),
            auxiliary: req.auxiliary.clone(),
            body: Value::Null,
            if_match: None,
        };
        authorize_critical(sim, &probe, &vault_id, vault_kind(req), CriticalOperation::StopProtectionWithDeleteData).map_err(|_| {
            ArmError::linked_authorization_failed(format!(
                "Deleting '{id}' stops protection and deletes its backup data, a critical operation: call unlockDelete on the vault's resource guard link with resourceToBeDeleted set to it first."
            ))
        })?;
    }
    sim.write(|w| {
        w.resources.remove(&key);
        w.unlocked_items.remove(&key);
    });
    Ok(ArmResponse::empty(StatusCode::OK))
}

/// `POST .../vaults/{v}/backupSecurityPIN`: the PIN that lets a MARS agent change its passphrase.
pub fn security_pin(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let vault_id = require_vault(sim, req)?;
    authorize_critical(
        sim,
        req,
        &vault_id,
        VaultKind::RecoveryServicesVault,
        CriticalOperation::ChangeMarsSecurityPin,
    )?;
    let pin = format!("{:08}", fastrand::u32(0..100_000_000));
    let expiry = sim.clock.now() + jiff::SignedDuration::from_mins(5);
    Ok(ArmResponse::ok(json!({
        "token": uuid::Uuid::new_v4().simple().to_string(),
        "expiryTimeInUtcTicks": expiry.as_second() * 10_000_000 + 621_355_968_000_000_000,
        "securityPIN": pin,
    })))
}
