//! Recovery Services vaults and Backup vaults: their security settings (soft delete, immutability,
//! encryption, MUA state) and their links to Resource Guards (`backupResourceGuardProxies`).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::guards::{GUARD_TYPE, normalize_location};
use super::mua::{authorize_critical, caller_in_guard_tenant, cited_requests, vault_link};
use super::{ArmError, ArmRequest, ArmResponse, ArmResult, check_if_match, location_of};
use crate::operations::{CriticalOperation, VaultKind};
use crate::sim::authz;
use crate::sim::state::SimState;
use crate::sim::world::{AsyncOperation, StoredResource, new_etag};

pub const RS_VAULT_TYPE: &str = "Microsoft.RecoveryServices/vaults";
pub const BACKUP_VAULT_TYPE: &str = "Microsoft.DataProtection/backupVaults";
/// How long an `unlockDelete` lasts.
const UNLOCK_MINUTES: i64 = 30;

fn kind_of(path_provider: &str) -> VaultKind {
    if path_provider.eq_ignore_ascii_case("Microsoft.DataProtection") {
        VaultKind::BackupVault
    } else {
        VaultKind::RecoveryServicesVault
    }
}

/// A vault as ARM returns it, with the MUA state derived from its link.
fn render(sim: &SimState, id: &str, stored: &StoredResource) -> Value {
    let mut body = stored.body.clone();
    body["etag"] = json!(stored.etag);
    if body["type"] == RS_VAULT_TYPE {
        let linked = vault_link(sim, id).is_some();
        body["properties"]["securitySettings"]["multiUserAuthorization"] =
            json!(if linked { "Enabled" } else { "Disabled" });
    }
    body
}

fn vault_not_found(req: &ArmRequest, vault_type: &str) -> ArmError {
    ArmError::not_found(
        vault_type,
        &req.path.names[0],
        req.path.resource_group().unwrap_or_default(),
    )
}

fn get_vault(sim: &SimState, req: &ArmRequest, vault_type: &str) -> ArmResult {
    let id = req.path.resource_id_of(1);
    let stored = sim
        .read(|w| w.resource(&id).cloned())
        .ok_or_else(|| vault_not_found(req, vault_type))?;
    Ok(ArmResponse::ok(render(sim, &id, &stored)))
}

pub fn get(sim: &SimState, req: &ArmRequest) -> ArmResult {
    get_vault(sim, req, RS_VAULT_TYPE)
}

pub fn get_backup_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    get_vault(sim, req, BACKUP_VAULT_TYPE)
}

/// Recursively applies a JSON merge patch (RFC 7396), which is what ARM PATCH bodies are.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Fills what `defaults` has and `target` lacks, recursively (the service's defaults for a new resource).
pub fn fill_defaults(target: &mut Value, defaults: &Value) {
    if let (Some(target), Some(defaults)) = (target.as_object_mut(), defaults.as_object()) {
        for (key, value) in defaults {
            match target.get_mut(key) {
                Some(existing) if !existing.is_null() => fill_defaults(existing, value),
                _ => {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

/// What a Recovery Services vault reports when its creator did not say otherwise.
pub fn rs_vault_defaults() -> Value {
    json!({
        "tags": {},
        "sku": {"name": "Standard"},
        "properties": {
            "publicNetworkAccess": "Enabled",
            "monitoringSettings": {
                "azureMonitorAlertSettings": {"alertsForAllJobFailures": "Enabled", "alertsForAllReplicationIssues": "Enabled", "alertsForAllFailoverIssues": "Disabled"},
                "classicAlertSettings": {"alertsForCriticalOperations": "Disabled", "emailNotificationsForSiteRecovery": "Enabled"},
            },
            "privateEndpointConnections": [],
            "privateEndpointStateForBackup": "None",
            "privateEndpointStateForSiteRecovery": "None",
            "securitySettings": {
                "immutabilitySettings": {"state": "Disabled"},
                "softDeleteSettings": {"softDeleteRetentionPeriodInDays": 14, "softDeleteState": "Enabled", "enhancedSecurityState": "Enabled"},
                "sourceScanConfiguration": {"state": "Disabled", "sourceScanIdentity": {"identityType": "SystemAssigned"}},
            },
            "redundancySettings": {"standardTierStorageRedundancy": "GeoRedundant", "crossRegionRestore": "Disabled"},
            "secureScore": "None",
            "bcdrSecurityLevel": "Poor",
        },
    })
}

/// Fills the IDs Azure assigns to a vault's managed identities.
fn complete_identity(body: &mut Value, tenant: &str) {
    let identity = &mut body["identity"];
    let kind = identity["type"].as_str().unwrap_or_default().to_ascii_lowercase();
    if kind.contains("systemassigned") {
        fill_defaults(
            identity,
            &json!({"tenantId": tenant, "principalId": uuid::Uuid::new_v4().to_string()}),
        );
    }
    if let Some(assigned) = identity["userAssignedIdentities"].as_object_mut() {
        for entry in assigned.values_mut() {
            if entry.is_null() {
                *entry = json!({});
            }
            fill_defaults(
                entry,
                &json!({"clientId": uuid::Uuid::new_v4().to_string(), "principalId": uuid::Uuid::new_v4().to_string()}),
            );
        }
    }
    if let Some(kek) = body["properties"]["encryption"]["kekIdentity"].as_object_mut() {
        kek.entry("useSystemAssignedIdentity").or_insert(json!(false));
    }
}

/// The critical operations a change of vault settings amounts to.
fn critical_changes(kind: VaultKind, before: &Value, after: &Value) -> Vec<CriticalOperation> {
    let security = |v: &Value| v["properties"]["securitySettings"].clone();
    let (was, now) = (security(before), security(after));
    let mut ops = Vec::new();
    match kind {
        VaultKind::RecoveryServicesVault => {
            let soft = |v: &Value, f: &str| {
                v["softDeleteSettings"][f]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            };
            let weakened =
                |f: &str| soft(&was, f) != "disabled" && soft(&now, f) == "disabled" && !soft(&was, f).is_empty();
            if weakened("softDeleteState") || weakened("enhancedSecurityState") {
                ops.push(CriticalOperation::DisableSoftDelete);
            }
        }
        VaultKind::BackupVault => {}
    }
    let immutability = |v: &Value| match v["immutabilitySettings"]["state"]
        .as_str()
        .unwrap_or("Disabled")
        .to_ascii_lowercase()
        .as_str()
    {
        "locked" => 2,
        "unlocked" => 1,
        _ => 0,
    };
    if immutability(&now) < immutability(&was) {
        ops.push(CriticalOperation::DisableImmutability);
    }
    if before["properties"]["encryption"] != after["properties"]["encryption"]
        && !before["properties"]["encryption"].is_null()
    {
        ops.push(CriticalOperation::ModifyEncryptionSettings);
    }
    ops
}

/// Refuses changes Azure never allows, whoever asks.
fn check_irreversible(kind: VaultKind, before: &Value, after: &Value) -> Result<(), ArmError> {
    let (field, always_on) = match kind {
        VaultKind::RecoveryServicesVault => ("softDeleteState", "alwayson"),
        VaultKind::BackupVault => ("state", "alwayson"),
    };
    let state = |v: &Value| {
        v["properties"]["securitySettings"]["softDeleteSettings"][field]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    if state(before) == always_on && state(after) != always_on {
        return Err(ArmError::bad_request(
            "UserErrorSoftDeleteAlwaysOnCannotBeDisabled",
            "Soft delete is always on for this vault and cannot be turned off.",
        ));
    }
    let locked = |v: &Value| {
        v["properties"]["securitySettings"]["immutabilitySettings"]["state"]
            .as_str()
            .unwrap_or_default()
            .eq_ignore_ascii_case("Locked")
    };
    if locked(before) && !locked(after) {
        return Err(ArmError::bad_request(
            "UserErrorImmutabilityLocked",
            "Immutability is locked for this vault and cannot be reduced.",
        ));
    }
    Ok(())
}

/// Stores a vault change after the MUA checks; PUT and PATCH differ only in how `after` is built.
fn write_vault(
    sim: &SimState,
    req: &ArmRequest,
    vault_type: &'static str,
    build: impl FnOnce(Option<&Value>) -> Result<Value, ArmError>,
) -> Result<(bool, String, Value), ArmError> {
    let id = req.path.resource_id_of(1);
    let kind = kind_of(&req.path.provider);
    let existing = sim.read(|w| w.resource(&id).cloned());
    check_if_match(req, existing.as_ref().map(|r| r.etag.as_str()))?;
    let before = existing.as_ref().map(|r| r.body.clone()).unwrap_or(Value::Null);
    let mut after = build(existing.as_ref().map(|r| &r.body))?;
    if let Some(props) = after["properties"].as_object_mut() {
        // Citations authorize this call; they are not stored.
        props.remove("resourceGuardOperationRequests");
        props.insert("provisioningState".into(), json!("Succeeded"));
    }
    after["id"] = json!(id);
    after["name"] = json!(req.path.names[0]);
    after["type"] = json!(vault_type);
    if vault_type == RS_VAULT_TYPE {
        fill_defaults(&mut after, &rs_vault_defaults());
        complete_identity(&mut after, &req.caller.tid);
    }
    if existing.is_some() {
        check_irreversible(kind, &before, &after)?;
        for op in critical_changes(kind, &before, &after) {
            authorize_critical(sim, req, &id, kind, op)?;
        }
    }
    let stored = StoredResource {
        body: after,
        etag: new_etag(),
    };
    sim.write(|w| w.resources.insert(id.to_ascii_lowercase(), stored.clone()));
    Ok((existing.is_none(), id.clone(), render(sim, &id, &stored)))
}

fn new_vault_body(sim: &SimState, req: &ArmRequest) -> Result<Value, ArmError> {
    let mut body = req.body.clone();
    let location = body["location"]
        .as_str()
        .map(normalize_location)
        .filter(|l| !l.is_empty())
        .or_else(|| location_of(sim, &req.path))
        .ok_or_else(|| {
            ArmError::bad_request(
                "LocationRequired",
                "The location property is required for this definition.",
            )
        })?;
    body["location"] = json!(location);
    Ok(body)
}

/// Starts a long-running operation that is already done (the change is applied synchronously); clients
/// still poll it the way they poll Azure.
fn start_operation(sim: &SimState, vault_id: &str) -> (String, String) {
    let op_id = uuid::Uuid::new_v4().to_string();
    let now = sim.clock.now();
    sim.write(|w| {
        w.operations.insert(
            op_id.clone(),
            AsyncOperation {
                id: op_id.clone(),
                resource_id: vault_id.to_string(),
                started: now,
                completes: now,
                outcome: "Succeeded".into(),
                error: None,
            },
        )
    });
    let base = format!("{}{vault_id}", sim.base_url);
    (
        format!("{base}/operationStatus/{op_id}?api-version=2026-11-01"),
        format!("{base}/operationResults/{op_id}?api-version=2026-11-01"),
    )
}

pub fn put(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let (created, id, body) = write_vault(sim, req, RS_VAULT_TYPE, |existing| {
        let mut body = new_vault_body(sim, req)?;
        if let Some(existing) = existing {
            body["location"] = existing["location"].clone();
        }
        Ok(body)
    })?;
    if created {
        let (status, _) = start_operation(sim, &id);
        let mut body = body;
        body["properties"]["provisioningState"] = json!("Provisioning");
        return Ok(ArmResponse::with_status(StatusCode::CREATED, body)
            .header("azure-asyncoperation", status)
            .header("retry-after", "1".into()));
    }
    Ok(ArmResponse::ok(body))
}

/// The vault after applying a PATCH body to it.
fn patched(req: &ArmRequest, existing: Option<&Value>, vault_type: &str) -> Result<Value, ArmError> {
    let mut body = existing.ok_or_else(|| vault_not_found(req, vault_type))?.clone();
    merge(&mut body, &req.body);
    Ok(body)
}

pub fn patch(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let (_, id, _) = write_vault(sim, req, RS_VAULT_TYPE, |existing| {
        patched(req, existing, RS_VAULT_TYPE)
    })?;
    let (status, location) = start_operation(sim, &id);
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .header("azure-asyncoperation", status)
        .header("location", location)
        .header("retry-after", "1".into()))
}

pub fn put_backup_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let (created, _, body) = write_vault(sim, req, BACKUP_VAULT_TYPE, |_| new_vault_body(sim, req))?;
    Ok(ArmResponse::with_status(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        body,
    ))
}

pub fn patch_backup_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let (_, _, body) = write_vault(sim, req, BACKUP_VAULT_TYPE, |existing| {
        patched(req, existing, BACKUP_VAULT_TYPE)
    })?;
    Ok(ArmResponse::ok(body))
}

fn find_operation(sim: &SimState, req: &ArmRequest) -> Result<AsyncOperation, ArmError> {
    let op_id = &req.path.names[1];
    sim.read(|w| w.operations.get(op_id).cloned()).ok_or_else(|| {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{op_id}' was not found."),
        )
    })
}

/// `GET .../vaults/{v}/operationStatus/{id}`
pub fn operation_status(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let op = find_operation(sim, req)?;
    let done = sim.clock.now() >= op.completes;
    let mut body = json!({
        "id": req.path.resource_id(),
        "name": op.id,
        "status": if done { op.outcome.as_str() } else { "InProgress" },
        "startTime": op.started.to_string(),
    });
    if done {
        body["endTime"] = json!(op.completes.to_string());
    }
    Ok(ArmResponse::ok(body))
}

/// `GET .../vaults/{v}/operationResults/{id}`: 202 while running, then the vault.
pub fn operation_result(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let op = find_operation(sim, req)?;
    if sim.clock.now() < op.completes {
        return Ok(ArmResponse::empty(StatusCode::ACCEPTED).header("retry-after", "1".into()));
    }
    get_vault(sim, req, RS_VAULT_TYPE)
}

fn proxy_type(kind: VaultKind) -> &'static str {
    match kind {
        VaultKind::RecoveryServicesVault => "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies",
        // Sic: the service reports this type for Backup-vault links.
        VaultKind::BackupVault => "Microsoft.DataProtection/vaults/backupResourceGuardProxies",
    }
}

fn render_proxy(stored: &StoredResource) -> Value {
    stored.body.clone()
}

pub fn get_proxy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    sim.read(|w| w.resource(&id).map(render_proxy))
        .map(ArmResponse::ok)
        .ok_or_else(|| {
            ArmError::not_found(
                proxy_type(kind_of(&req.path.provider)),
                &req.path.names[1],
                req.path.resource_group().unwrap_or_default(),
            )
        })
}

pub fn list_proxies(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let vault_id = req.path.resource_id_of(1);
    if sim.read(|w| w.resource(&vault_id).is_none()) {
        return Err(vault_not_found(
            req,
            if kind_of(&req.path.provider) == VaultKind::BackupVault {
                BACKUP_VAULT_TYPE
            } else {
                RS_VAULT_TYPE
            },
        ));
    }
    let prefix = format!("{}/backupresourceguardproxies/", vault_id.to_ascii_lowercase());
    let value: Vec<Value> = sim.read(|w| {
        w.resources
            .iter()
            .filter(|(id, _)| id.starts_with(&prefix))
            .map(|(_, r)| render_proxy(r))
            .collect()
    });
    Ok(ArmResponse::ok(json!({ "value": value })))
}

/// Links a vault to a guard: needs Reader on the guard (from the guard's tenant) and the same region.
pub fn put_proxy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let kind = kind_of(&req.path.provider);
    let vault_id = req.path.resource_id_of(1);
    let id = req.path.resource_id();
    let Some(vault) = sim.read(|w| w.resource(&vault_id).map(|r| r.body.clone())) else {
        return Err(vault_not_found(
            req,
            if kind == VaultKind::BackupVault {
                BACKUP_VAULT_TYPE
            } else {
                RS_VAULT_TYPE
            },
        ));
    };
    let Some(guard_id) = req.body["properties"]["resourceGuardResourceId"]
        .as_str()
        .map(str::to_string)
    else {
        return Err(ArmError::bad_request(
            "InvalidRequestContent",
            "properties.resourceGuardResourceId is required.",
        ));
    };
    let Some(guard) = sim.read(|w| w.resource(&guard_id).map(|r| r.body.clone())) else {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource Guard '{guard_id}' was not found."),
        ));
    };
    let principal = caller_in_guard_tenant(sim, req, &guard_id)?;
    let read_action = format!("{GUARD_TYPE}/read");
    if !sim.read(|w| authz::is_allowed(w, &principal.oid, &read_action, &guard_id, sim.clock.now())) {
        return Err(ArmError::linked_authorization_failed(format!(
            "The client '{}' needs the Reader role on the Resource Guard '{guard_id}' to link a vault to it.",
            principal.oid
        )));
    }
    let (vault_region, guard_region) = (
        vault["location"].as_str().unwrap_or_default(),
        guard["location"].as_str().unwrap_or_default(),
    );
    if normalize_location(vault_region) != normalize_location(guard_region) {
        return Err(ArmError::bad_request(
            "BadRequest",
            format!(
                "The Resource Guard must be in the vault's region: the vault is in '{vault_region}', the guard in '{guard_region}'."
            ),
        ));
    }
    if let Some((existing_proxy, existing_guard)) = vault_link(sim, &vault_id)
        && (!existing_guard.eq_ignore_ascii_case(&guard_id) || !existing_proxy.eq_ignore_ascii_case(&id))
    {
        return Err(ArmError::conflict(format!(
            "The vault is already linked to the Resource Guard '{existing_guard}' through '{existing_proxy}'; remove that link first (a critical operation)."
        )));
    }
    let details: Vec<Value> = CriticalOperation::all()
        .filter_map(|op| op.on(kind))
        .filter_map(|a| {
            a.request_type.map(|rt| json!({"vaultCriticalOperation": a.vault_critical_operation, "defaultResourceRequest": format!("{guard_id}/{rt}/default")}))
        })
        .collect();
    let mut properties = json!({
        "resourceGuardResourceId": guard_id,
        "resourceGuardOperationDetails": details,
        "lastUpdatedTime": sim.clock.now().to_string(),
    });
    if let Some(description) = guard["properties"]["description"].as_str() {
        properties["description"] = json!(description);
    }
    let body = json!({"id": id, "name": req.path.names[1], "type": proxy_type(kind), "properties": properties});
    sim.write(|w| {
        w.resources.insert(
            id.to_ascii_lowercase(),
            StoredResource {
                body: body.clone(),
                etag: new_etag(),
            },
        )
    });
    Ok(ArmResponse::ok(body))
}

/// `POST .../backupResourceGuardProxies/{p}/unlockDelete`: a critical operation that opens a short window
/// to delete the link or a protected item.
pub fn unlock_proxy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let kind = kind_of(&req.path.provider);
    let vault_id = req.path.resource_id_of(1);
    let proxy_id = req.path.resource_id_of(2);
    if sim.read(|w| w.resource(&proxy_id).is_none()) {
        return Err(ArmError::not_found(
            proxy_type(kind),
            &req.path.names[1],
            req.path.resource_group().unwrap_or_default(),
        ));
    }
    let target = req.body["resourceToBeDeleted"]
        .as_str()
        .unwrap_or(&proxy_id)
        .to_string();
    let lower = target.to_ascii_lowercase();
    let op = if lower.contains("/protecteditems/") || lower.contains("/backupinstances/") {
        CriticalOperation::StopProtectionWithDeleteData
    } else {
        CriticalOperation::DisableMultiUserAuthorization
    };
    if cited_requests(&req.body).is_empty() {
        return Err(ArmError::bad_request(
            "BadRequest",
            "resourceGuardOperationRequests is required to unlock a delete.",
        ));
    }
    authorize_critical(sim, req, &vault_id, kind, op)?;
    let expiry = sim.clock.now() + jiff::SignedDuration::from_mins(UNLOCK_MINUTES);
    sim.write(|w| {
        if op == CriticalOperation::DisableMultiUserAuthorization {
            w.unlocked_proxies.insert(proxy_id.to_ascii_lowercase(), expiry);
        } else {
            w.unlocked_items.insert(lower.clone(), expiry);
        }
    });
    Ok(ArmResponse::ok(json!({ "unlockDeleteExpiryTime": expiry.to_string() })))
}

/// Removing the link is the mandatory critical operation: it needs a valid `unlockDelete` first.
pub fn delete_proxy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    let key = id.to_ascii_lowercase();
    if sim.read(|w| w.resource(&id).is_none()) {
        return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
    }
    let unlocked = sim.read(|w| w.unlocked_proxies.contains_key(&key));
    if !unlocked {
        return Err(ArmError::linked_authorization_failed(format!(
            "Removing the link '{id}' disables multi-user authorization, a critical operation: call unlockDelete on it (citing the guard's deleteResourceGuardProxyRequests) first."
        )));
    }
    sim.write(|w| {
        w.resources.remove(&key);
        w.unlocked_proxies.remove(&key);
    });
    Ok(ArmResponse::empty(StatusCode::OK))
}
