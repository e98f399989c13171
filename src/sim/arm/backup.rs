//! Backup policies, protected items (Recovery Services) and backup instances (Backup vaults), as far as
//! the optional critical operations need them: reducing retention, modifying protection, stopping
//! protection with delete data, and the MARS security PIN.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::mua::{authorize_critical, cited_requests};
use super::vaults::{kind_of, may_delete_item};
use super::{ArmError, ArmRequest, ArmResponse, ArmResult};
use crate::operations::{CriticalOperation, VaultKind};
use crate::sim::state::SimState;
use crate::sim::world::{StoredResource, World, new_etag};

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

/// The longest retention Azure Backup allows per duration unit (Azure Backup support matrix: 9999
/// days, 5163 weeks, 1188 months, 99 years), with the unit's length in days.
const RETENTION_LIMITS: [(&str, i64, i64); 4] = [
    ("days", 9999, 1),
    ("weeks", 5163, 7),
    ("months", 1188, 30),
    ("years", 99, 365),
];

fn invalid_retention(message: String) -> ArmError {
    ArmError::bad_request("BMSUserErrorInvalidPolicyInput", message)
}

/// Retention per schedule (daily, weekly, monthly, yearly), in days, from
/// `properties.retentionPolicy.*Schedule.retentionDuration`: the shape of Azure VM and file-share policies.
/// A count outside Azure's range (not positive, or longer than the unit's maximum) is refused, so the
/// arithmetic below never overflows.
pub fn retention(policy: &Value) -> Result<BTreeMap<&'static str, i64>, ArmError> {
    let mut kept = BTreeMap::new();
    for schedule in ["dailySchedule", "weeklySchedule", "monthlySchedule", "yearlySchedule"] {
        let duration = &policy["properties"]["retentionPolicy"][schedule]["retentionDuration"];
        if duration["count"].is_null() {
            continue;
        }
        let unit = duration["durationType"].as_str().unwrap_or("Days");
        let Some(&(_, max, days_per)) = RETENTION_LIMITS.iter().find(|(u, ..)| u.eq_ignore_ascii_case(unit)) else {
            return Err(invalid_retention(format!(
                "{schedule}.retentionDuration.durationType '{unit}' is not one of Days, Weeks, Months, Years."
            )));
        };
        let count = duration["count"]
            .as_i64()
            .filter(|count| (1..=max).contains(count))
            .ok_or_else(|| {
                invalid_retention(format!(
                    "{schedule}.retentionDuration.count must be a whole number from 1 to {max} {unit}; got {}.",
                    duration["count"]
                ))
            })?;
        kept.insert(schedule, count * days_per);
    }
    Ok(kept)
}

/// Whether `after` keeps less of anything `before` kept: a shorter or a removed retention.
pub fn retention_reduced(before: &Value, after: &Value) -> Result<bool, ArmError> {
    let (was, now) = (retention(before)?, retention(after)?);
    Ok(was
        .iter()
        .any(|(schedule, days)| now.get(schedule).is_none_or(|kept| kept < days)))
}

/// Reducing a policy's retention is the critical operation `ModifyBackupPolicy`.
pub fn put_policy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let now = sim.clock.now();
    let citations = cited_requests(&req.body);
    // A retention Azure would refuse is refused before anything is compared or stored.
    retention(&req.body)?;
    sim.write(|w| {
        let vault_id = require_vault(w, req)?;
        if let Some(before) = w.resource(&req.path.resource_id())
            && retention_reduced(&before.body, &req.body)?
        {
            let op = CriticalOperation::ModifyBackupPolicy;
            authorize_critical(w, now, req, &citations, &vault_id, VaultKind::RecoveryServicesVault, op)?;
        }
        Ok(ArmResponse::ok(store(w, req).1))
    })
}

/// Moving an item to a policy that keeps less is the critical operation `ModifyProtection`.
pub fn put_item(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let now = sim.clock.now();
    let citations = cited_requests(&req.body);
    sim.write(|w| {
        let vault_id = require_vault(w, req)?;
        let policy = |item: &Value| {
            let id = item["properties"]["policyId"].as_str()?;
            w.resource(id).map(|p| p.body.clone())
        };
        if let Some(before) = w.resource(&req.path.resource_id())
            && let Some(was) = policy(&before.body)
        {
            let reduced = match policy(&req.body) {
                Some(now) => retention_reduced(&was, &now)?,
                None => true,
            };
            let moved = before.body["properties"]["policyId"] != req.body["properties"]["policyId"];
            if moved && reduced {
                authorize_critical(
                    w,
                    now,
                    req,
                    &citations,
                    &vault_id,
                    kind_of(&req.path.provider),
                    CriticalOperation::ModifyProtection,
                )?;
            }
        }
        let (created, body) = store(w, req);
        let status = if created && kind_of(&req.path.provider) == VaultKind::BackupVault {
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
