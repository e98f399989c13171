//! Backup policies and protected items (Recovery Services), backup policies and backup instances (Backup
//! vaults), as far as the optional critical operations need them: reducing retention, modifying protection,
//! stopping protection with delete data, and the MARS security PIN. What a change weakens is decided by
//! the effective protection model (`protection`), on canonical bodies (`casing`).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::casing::canonical_request;
use super::mua::{authorize_critical, cited_requests};
use super::protection::{
    ItemProtection, PolicyRetention, item_weakening, policy_id_of, policy_in_vault, policy_weakening,
};
use super::request::{ArmRequest, ArmResponse, ArmResult};
use super::vaults::{kind_of, may_delete_item};
use crate::error::ArmError;
use crate::operations::{CriticalOperation, VaultKind};
use crate::state::SimState;
use crate::world::{StoredResource, World, new_etag};

/// The ID of the vault the path is under, refused with ARM's 404 when there is no such vault.
fn require_vault(w: &World, req: &ArmRequest) -> Result<String, ArmError> {
    let vault_id = req.path.resource_id_of(1);
    if w.resource(&vault_id).is_none() {
        let vault_type = format!("{}/{}", req.path.provider, req.path.types[0]);
        let group = req.path.resource_group().unwrap_or_default();
        return Err(ArmError::not_found(&vault_type, &req.path.names[0], group));
    }
    Ok(vault_id)
}

fn not_found(req: &ArmRequest) -> ArmError {
    let name = req.path.names.last().map(String::as_str).unwrap_or_default();
    ArmError::not_found(
        &req.path.resource_type(),
        name,
        req.path.resource_group().unwrap_or_default(),
    )
}

/// GET of a policy, protected item or backup instance under an existing vault.
pub fn get_resource(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    sim.read(|w| {
        require_vault(w, req)?;
        w.resource(&id)
            .map(|r| ArmResponse::ok(r.body.clone()))
            .ok_or_else(|| not_found(req))
    })
}

/// Stores the request body as the resource (without its citations); returns whether it was created.
fn store(w: &mut World, req: &ArmRequest) -> (bool, Value) {
    let id = req.path.resource_id();
    let mut body = req.body.clone();
    if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
        props.remove("resourceGuardOperationRequests");
    }
    body["id"] = json!(id);
    body["name"] = json!(req.path.names.last());
    body["type"] = json!(req.path.resource_type());
    let stored = StoredResource {
        body: body.clone(),
        etag: new_etag(),
    };
    let created = w.resources.insert(id.to_ascii_lowercase(), stored).is_none();
    (created, body)
}

/// Reducing a policy's retention (in any of its shapes) is the critical operation `ModifyBackupPolicy`.
pub fn put_policy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let req = &canonical_request(req)?;
    let kind = kind_of(&req.path.provider);
    let now = sim.clock.now();
    let citations = cited_requests(&req.body);
    // A retention Azure would refuse is refused before anything is compared or stored.
    let after = PolicyRetention::of(kind, &req.body)?;
    sim.write(|w| {
        let vault_id = require_vault(w, req)?;
        if let Some(stored) = w.resource(&req.path.resource_id()) {
            let before = PolicyRetention::of(kind, &stored.body)?;
            if let Some(op) = policy_weakening(&before, &after) {
                authorize_critical(w, now, req, &citations, &vault_id, kind, op)?;
            }
        }
        Ok(ArmResponse::ok(store(w, req).1))
    })
}

/// An item's policy must be one of its own vault's: the service refuses any other.
fn check_policy_in_vault(kind: VaultKind, item: &Value, vault_id: &str) -> Result<(), ArmError> {
    match policy_id_of(kind, item)? {
        Some(policy_id) if !policy_in_vault(policy_id, vault_id) => Err(ArmError::bad_request(
            "BMSUserErrorInvalidInput",
            format!(
                "The policy '{policy_id}' is not a backup policy of the vault '{vault_id}'; an item can only be protected by a policy of its own vault."
            ),
        )),
        _ => Ok(()),
    }
}

/// What protects `item`: its policy and, when that policy is one of the vault's and exists, its retention.
fn item_protection(w: &World, kind: VaultKind, item: &Value, vault_id: &str) -> Result<ItemProtection, ArmError> {
    let policy_id = policy_id_of(kind, item)?;
    let retention = policy_id
        .filter(|id| policy_in_vault(id, vault_id))
        .and_then(|id| w.resource(id))
        .map(|policy| PolicyRetention::of(kind, &policy.body))
        .transpose()?;
    Ok(ItemProtection::new(policy_id, retention))
}

/// Moving an item to a policy that keeps less, or to one that cannot be found, is the critical operation
/// `ModifyProtection`.
pub fn put_item(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let req = &canonical_request(req)?;
    let kind = kind_of(&req.path.provider);
    check_policy_in_vault(kind, &req.body, &req.path.resource_id_of(1))?;
    let now = sim.clock.now();
    let citations = cited_requests(&req.body);
    sim.write(|w| {
        let vault_id = require_vault(w, req)?;
        if let Some(stored) = w.resource(&req.path.resource_id()) {
            let before = item_protection(w, kind, &stored.body, &vault_id)?;
            let after = item_protection(w, kind, &req.body, &vault_id)?;
            if let Some(op) = item_weakening(&before, &after) {
                authorize_critical(w, now, req, &citations, &vault_id, kind, op)?;
            }
        }
        let (created, body) = store(w, req);
        let status = if created && kind == VaultKind::BackupVault {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(ArmResponse::with_status(status, body))
    })
}

/// Stopping protection with delete data needs a valid `unlockDelete` for the item while the vault is
/// linked and the guard protects the operation.
pub fn delete_item(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    let key = id.to_ascii_lowercase();
    let now = sim.clock.now();
    sim.write(|w| {
        let vault_id = require_vault(w, req)?;
        if w.resource(&id).is_none() {
            return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
        }
        may_delete_item(w, now, req, &vault_id, &id)?;
        w.resources.remove(&key);
        w.unlocked_items.remove(&key);
        Ok(ArmResponse::empty(StatusCode::OK))
    })
}

/// `POST .../vaults/{v}/backupSecurityPIN`: the PIN that lets a MARS agent change its passphrase.
pub fn security_pin(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let now = sim.clock.now();
    let citations = cited_requests(&req.body);
    sim.read(|w| {
        let vault_id = require_vault(w, req)?;
        let op = CriticalOperation::ChangeMarsSecurityPin;
        authorize_critical(w, now, req, &citations, &vault_id, VaultKind::RecoveryServicesVault, op)
    })?;
    let pin = format!("{:08}", fastrand::u32(0..100_000_000));
    let expiry = now + jiff::SignedDuration::from_mins(5);
    Ok(ArmResponse::ok(json!({
        "token": uuid::Uuid::new_v4().simple().to_string(),
        "expiryTimeInUtcTicks": expiry.as_second() * 10_000_000 + 621_355_968_000_000_000,
        "securityPIN": pin,
    })))
}
