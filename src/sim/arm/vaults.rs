//! Recovery Services vaults and Backup vaults: their security settings (soft delete, immutability,
//! encryption, MUA state) and their links to Resource Guards (`backupResourceGuardProxies`). Each handler
//! checks and writes under one lock, so concurrent writers see ARM's ETag semantics.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::guards::{GUARD_TYPE, normalize_location};
use super::mua::{authorize_critical, caller_in_guard_tenant, cited_requests, find_guard, vault_link};
use super::{ArmError, ArmRequest, ArmResponse, ArmResult, check_if_match, location_of};
use crate::operations::{CriticalOperation, VaultKind};
use crate::sim::authz;
use crate::sim::state::SimState;
use crate::sim::world::{AsyncOperation, StoredResource, World, new_etag};

pub const RS_VAULT_TYPE: &str = "Microsoft.RecoveryServices/vaults";
pub const BACKUP_VAULT_TYPE: &str = "Microsoft.DataProtection/backupVaults";
/// How long an `unlockDelete` lasts.
const UNLOCK_MINUTES: i64 = 30;

pub(super) fn kind_of(path_provider: &str) -> VaultKind {
    if path_provider.eq_ignore_ascii_case("Microsoft.DataProtection") {
        VaultKind::BackupVault
    } else {
        VaultKind::RecoveryServicesVault
    }
}

fn vault_type(kind: VaultKind) -> &'static str {
    match kind {
        VaultKind::RecoveryServicesVault => RS_VAULT_TYPE,
        VaultKind::BackupVault => BACKUP_VAULT_TYPE,
    }
}

/// A vault as ARM returns it, with the MUA state derived from its link.
fn render(w: &World, id: &str, stored: &StoredResource) -> Value {
    let mut body = stored.body.clone();
    body["etag"] = json!(stored.etag);
    if body["type"] == RS_VAULT_TYPE
        && let Some(security) = body
            .pointer_mut("/properties/securitySettings")
            .and_then(Value::as_object_mut)
    {
        let linked = vault_link(w, id).is_some();
        security.insert(
            "multiUserAuthorization".into(),
            json!(if linked { "Enabled" } else { "Disabled" }),
        );
    }
    body
}

fn vault_not_found(req: &ArmRequest) -> ArmError {
    let vault_type = vault_type(kind_of(&req.path.provider));
    ArmError::not_found(
        vault_type,
        &req.path.names[0],
        req.path.resource_group().unwrap_or_default(),
    )
}

/// `GET {subscription or resource group}/providers/{provider}/vaults`: the vaults of the request's type
/// under the scope, paged.
pub fn list_vaults(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let prefix = format!("{}/", req.path.scope.to_ascii_lowercase());
    let vault_type = vault_type(kind_of(&req.path.provider));
    let value: Vec<Value> = sim.read(|w| {
        w.resources
            .iter()
            .filter(|(id, r)| id.starts_with(&prefix) && r.body["type"] == vault_type)
            .map(|(id, r)| render(w, r.body["id"].as_str().unwrap_or(id), r))
            .collect()
    });
    super::page(sim, req, value)
}

pub fn get_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id_of(1);
    sim.read(|w| w.resource(&id).map(|stored| render(w, &id, stored)))
        .map(ArmResponse::ok)
        .ok_or_else(|| vault_not_found(req))
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

/// Fills the IDs Azure assigns to a vault's managed identities (and nothing it would not report).
fn complete_identity(body: &mut Value, tenant: &str) {
    if let Some(identity) = body.get_mut("identity").filter(|i| i.is_object()) {
        let kind = identity["type"].as_str().unwrap_or_default().to_ascii_lowercase();
        if kind.contains("systemassigned") {
            fill_defaults(
                identity,
                &json!({"tenantId": tenant, "principalId": uuid::Uuid::new_v4().to_string()}),
            );
        }
        if let Some(assigned) = identity
            .get_mut("userAssignedIdentities")
            .and_then(Value::as_object_mut)
        {
            for entry in assigned.values_mut() {
                if !entry.is_object() {
                    *entry = json!({});
                }
                let ids = json!({"clientId": uuid::Uuid::new_v4().to_string(), "principalId": uuid::Uuid::new_v4().to_string()});
                fill_defaults(entry, &ids);
            }
        }
    }
    if let Some(kek) = body
        .pointer_mut("/properties/encryption/kekIdentity")
        .and_then(Value::as_object_mut)
    {
        kek.entry("useSystemAssignedIdentity").or_insert(json!(false));
    }
}

/// The strength of a soft-delete state: off, on, or on for good.
fn soft_delete_strength(state: &str) -> u8 {
    match state.to_ascii_lowercase().as_str() {
        "alwayson" => 2,
        "disabled" | "off" => 0,
        _ => 1,
    }
}

fn immutability_strength(state: &str) -> u8 {
    match state.to_ascii_lowercase().as_str() {
        "locked" => 2,
        "unlocked" => 1,
        _ => 0,
    }
}

/// The soft-delete state fields of a vault kind and the values Azure accepts for them.
fn soft_delete_fields(kind: VaultKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        VaultKind::RecoveryServicesVault => (
            &["softDeleteState", "enhancedSecurityState"],
            &["Enabled", "Disabled", "AlwaysON"],
        ),
        VaultKind::BackupVault => (&["state"], &["On", "Off", "AlwaysOn"]),
    }
}

/// Refuses security settings Azure would not accept: wrong shapes and unknown state values.
fn validate_security_settings(kind: VaultKind, body: &Value) -> Result<(), ArmError> {
    let invalid = |what: String| ArmError::bad_request("InvalidRequestContent", what);
    let properties = &body["properties"];
    if !properties.is_null() && !properties.is_object() {
        return Err(invalid("properties must be an object.".into()));
    }
    let security = &properties["securitySettings"];
    if security.is_null() {
        return Ok(());
    }
    if !security.is_object() {
        return Err(invalid("properties.securitySettings must be an object.".into()));
    }
    let (fields, allowed) = soft_delete_fields(kind);
    let soft_delete = &security["softDeleteSettings"];
    if !soft_delete.is_null() && !soft_delete.is_object() {
        return Err(invalid("securitySettings.softDeleteSettings must be an object.".into()));
    }
    for field in fields {
        match &soft_delete[*field] {
            Value::Null => {}
            Value::String(v) if allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) => {}
            other => {
                return Err(invalid(format!(
                    "softDeleteSettings.{field} must be one of {}; got {other}.",
                    allowed.join(", ")
                )));
            }
        }
    }
    match &security["immutabilitySettings"]["state"] {
        Value::Null => Ok(()),
        Value::String(v)
            if ["Disabled", "Unlocked", "Locked"]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(v)) =>
        {
            Ok(())
        }
        other => Err(invalid(format!(
            "immutabilitySettings.state must be Disabled, Unlocked or Locked; got {other}."
        ))),
    }
}

fn security_field<'a>(body: &'a Value, path: &str) -> &'a str {
    body.pointer(&format!("/properties/securitySettings/{path}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The critical operations a change of vault settings amounts to: any weakening counts.
fn critical_changes(kind: VaultKind, before: &Value, after: &Value) -> Vec<CriticalOperation> {
    let mut ops = Vec::new();
    let (fields, _) = soft_delete_fields(kind);
    let weakened = fields.iter().any(|field| {
        let path = format!("softDeleteSettings/{field}");
        let (was, now) = (security_field(before, &path), security_field(after, &path));
        !was.is_empty() && soft_delete_strength(now) < soft_delete_strength(was)
    });
    if weakened {
        ops.push(CriticalOperation::DisableSoftDelete);
    }
    let immutability = |v: &Value| immutability_strength(security_field(v, "immutabilitySettings/state"));
    if immutability(after) < immutability(before) {
        ops.push(CriticalOperation::DisableImmutability);
    }
    let encryption = |v: &Value| v.pointer("/properties/encryption").cloned().unwrap_or(Value::Null);
    if !encryption(before).is_null() && encryption(before) != encryption(after) {
        ops.push(CriticalOperation::ModifyEncryptionSettings);
    }
    ops
}

/// Refuses changes Azure never allows, whoever asks.
fn check_irreversible(kind: VaultKind, before: &Value, after: &Value) -> Result<(), ArmError> {
    let (fields, _) = soft_delete_fields(kind);
    let path = format!("softDeleteSettings/{}", fields[0]);
    if soft_delete_strength(security_field(before, &path)) == 2
        && soft_delete_strength(security_field(after, &path)) < 2
    {
        return Err(ArmError::bad_request(
            "UserErrorSoftDeleteAlwaysOnCannotBeDisabled",
            "Soft delete is always on for this vault and cannot be turned off.",
        ));
    }
    let state = |v: &Value| immutability_strength(security_field(v, "immutabilitySettings/state"));
    if state(before) == 2 && state(after) < 2 {
        return Err(ArmError::bad_request(
            "UserErrorImmutabilityLocked",
            "Immutability is locked for this vault and cannot be reduced.",
        ));
    }
    Ok(())
}

/// How a vault write builds the new vault from the stored one (`None` when it does not exist).
type Build<'a> = &'a dyn Fn(Option<&Value>) -> Result<Value, ArmError>;

/// Checks and stores a vault change under one lock: ETag, shape, irreversible changes, then the MUA check
/// for every critical change. Returns whether it was created, its ID and its rendered body.
pub(super) fn write_vault(sim: &SimState, req: &ArmRequest, build: Build) -> Result<(bool, String, Value), ArmError> {
    let kind = kind_of(&req.path.provider);
    let id = req.path.resource_id_of(1);
    let now = sim.clock.now();
    let citations = cited_requests(&req.body);
    sim.write(|w| {
        let existing = w.resource(&id).cloned();
        check_if_match(req, existing.as_ref().map(|r| r.etag.as_str()))?;
        let mut after = build(existing.as_ref().map(|r| &r.body))?;
        validate_security_settings(kind, &after)?;
        if let Some(props) = after.get_mut("properties").and_then(Value::as_object_mut) {
            // Citations authorize this call; they are not stored.
            props.remove("resourceGuardOperationRequests");
            props.insert("provisioningState".into(), json!("Succeeded"));
        }
        after["id"] = json!(id);
        after["name"] = json!(req.path.names[0]);
        after["type"] = json!(vault_type(kind));
        if kind == VaultKind::RecoveryServicesVault {
            fill_defaults(&mut after, &rs_vault_defaults());
            complete_identity(&mut after, &req.caller.tid);
        }
        if let Some(existing) = &existing {
            check_irreversible(kind, &existing.body, &after)?;
            for op in critical_changes(kind, &existing.body, &after) {
                authorize_critical(w, now, req, &citations, &id, kind, op)?;
            }
        }
        let stored = StoredResource {
            body: after,
            etag: new_etag(),
        };
        let rendered = render(w, &id, &stored);
        w.resources.insert(id.to_ascii_lowercase(), stored);
        Ok((existing.is_none(), id.clone(), rendered))
    })
}

/// A new vault from a PUT body: the location defaults to the resource group's.
fn new_vault_body(req: &ArmRequest, group_location: Option<&str>) -> Result<Value, ArmError> {
    let mut body = req.body.clone();
    let location = body["location"]
        .as_str()
        .map(normalize_location)
        .filter(|l| !l.is_empty())
        .or_else(|| group_location.map(str::to_string))
        .ok_or_else(|| {
            ArmError::bad_request(
                "LocationRequired",
                "The location property is required for this definition.",
            )
        })?;
    body["location"] = json!(location);
    Ok(body)
}

/// The vault after applying a PATCH body to it.
fn patched(req: &ArmRequest, existing: Option<&Value>) -> Result<Value, ArmError> {
    let mut body = existing.ok_or_else(|| vault_not_found(req))?.clone();
    merge(&mut body, &req.body);
    Ok(body)
}

/// Starts a long-running operation that is already done (the change is applied synchronously); clients
/// still poll it the way they poll Azure.
fn start_operation(sim: &SimState, vault_id: &str) -> (String, String) {
    let op_id = uuid::Uuid::new_v4().to_string();
    let now = sim.clock.now();
    let operation = AsyncOperation {
        id: op_id.clone(),
        resource_id: vault_id.to_string(),
        started: now,
        completes: now,
        outcome: "Succeeded".into(),
        error: None,
    };
    sim.write(|w| w.operations.insert(op_id.clone(), operation));
    let base = format!("{}{vault_id}", sim.base_url);
    (
        format!("{base}/operationStatus/{op_id}?api-version=2026-11-01"),
        format!("{base}/operationResults/{op_id}?api-version=2026-11-01"),
    )
}

pub fn put(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let group_location = location_of(sim, &req.path);
    let build = |existing: Option<&Value>| {
        let mut body = new_vault_body(req, group_location.as_deref())?;
        if let Some(existing) = existing {
            body["location"] = existing["location"].clone();
        }
        Ok(body)
    };
    let (created, id, mut body) = write_vault(sim, req, &build)?;
    if !created {
        return Ok(ArmResponse::ok(body));
    }
    let (status, _) = start_operation(sim, &id);
    body["properties"]["provisioningState"] = json!("Provisioning");
    Ok(ArmResponse::with_status(StatusCode::CREATED, body)
        .header("azure-asyncoperation", status)
        .header("retry-after", "1".into()))
}

pub fn patch(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let (_, id, _) = write_vault(sim, req, &|existing| patched(req, existing))?;
    let (status, location) = start_operation(sim, &id);
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .header("azure-asyncoperation", status)
        .header("location", location)
        .header("retry-after", "1".into()))
}

pub fn put_backup_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let group_location = location_of(sim, &req.path);
    let (created, _, body) = write_vault(sim, req, &|_| new_vault_body(req, group_location.as_deref()))?;
    Ok(ArmResponse::with_status(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        body,
    ))
}

pub fn patch_backup_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let (_, _, body) = write_vault(sim, req, &|existing| patched(req, existing))?;
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
    get_vault(sim, req)
}

fn proxy_type(kind: VaultKind) -> &'static str {
    match kind {
        VaultKind::RecoveryServicesVault => "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies",
        // Sic: the service reports this type for Backup-vault links.
        VaultKind::BackupVault => "Microsoft.DataProtection/vaults/backupResourceGuardProxies",
    }
}

fn proxy_not_found(req: &ArmRequest) -> ArmError {
    let kind = kind_of(&req.path.provider);
    ArmError::not_found(
        proxy_type(kind),
        &req.path.names[1],
        req.path.resource_group().unwrap_or_default(),
    )
}

pub fn get_proxy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    sim.read(|w| w.resource(&id).map(|r| r.body.clone()))
        .map(ArmResponse::ok)
        .ok_or_else(|| proxy_not_found(req))
}

pub fn list_proxies(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let vault_id = req.path.resource_id_of(1);
    let prefix = format!("{}/backupresourceguardproxies/", vault_id.to_ascii_lowercase());
    sim.read(|w| {
        w.resource(&vault_id).ok_or_else(|| vault_not_found(req))?;
        let value: Vec<Value> = w
            .resources
            .iter()
            .filter(|(id, _)| id.starts_with(&prefix))
            .map(|(_, r)| r.body.clone())
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    })
}

/// What a link reports about the operations the guard protects for this kind of vault: each vault
/// operation the guard does not exclude, with the request object a call cites for it. This is what the
/// live service returns (the CLI's recordings) and what the CLI looks up to cite the guard; the older
/// REST examples, which name the guard's request types instead, are not followed.
fn operation_details(kind: VaultKind, guard_id: &str, guard: &Value) -> Vec<Value> {
    let excluded = |name: &str| {
        guard["properties"]["vaultCriticalOperationExclusionList"]
            .as_array()
            .is_some_and(|list| {
                list.iter()
                    .any(|e| e.as_str().is_some_and(|e| e.eq_ignore_ascii_case(name)))
            })
    };
    CriticalOperation::all()
        .filter_map(|op| Some((op, op.on(kind)?)))
        .filter(|(op, a)| op.is_mandatory() || !excluded(a.vault_critical_operation))
        .filter_map(|(_, a)| {
            let request_type = a.request_type?;
            Some(json!({
                "vaultCriticalOperation": a.vault_critical_operation,
                "defaultResourceRequest": format!("{guard_id}/{request_type}/default"),
            }))
        })
        .collect()
}

/// Links a vault to a guard: needs Reader on the guard (from the guard's tenant) and the same region.
pub fn put_proxy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let kind = kind_of(&req.path.provider);
    let vault_id = req.path.resource_id_of(1);
    let id = req.path.resource_id();
    let now = sim.clock.now();
    let Some(guard_id) = req.body["properties"]["resourceGuardResourceId"]
        .as_str()
        .map(str::to_string)
    else {
        return Err(ArmError::bad_request(
            "InvalidRequestContent",
            "properties.resourceGuardResourceId is required.",
        ));
    };
    sim.write(|w| {
        let vault = w.resource(&vault_id).ok_or_else(|| vault_not_found(req))?.body.clone();
        let Some(guard) = find_guard(w, &guard_id).cloned() else {
            return Err(ArmError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("The Resource Guard '{guard_id}' was not found."),
            ));
        };
        let principal = caller_in_guard_tenant(w, req, &guard_id)?;
        let read_action = format!("{GUARD_TYPE}/read");
        if !authz::is_allowed(w, &principal.oid, &read_action, &guard_id, now) {
            return Err(ArmError::linked_authorization_failed(format!(
                "The client '{}' needs the Reader role on the Resource Guard '{guard_id}' to link a vault to it.",
                principal.oid
            )));
        }
        let vault_region = vault["location"].as_str().unwrap_or_default();
        let guard_region = guard["location"].as_str().unwrap_or_default();
        if normalize_location(vault_region) != normalize_location(guard_region) {
            return Err(ArmError::bad_request(
                "BadRequest",
                format!(
                    "The Resource Guard must be in the vault's region: the vault is in '{vault_region}', the guard \
                     in '{guard_region}'."
                ),
            ));
        }
        if let Some((existing_proxy, existing_guard)) = vault_link(w, &vault_id)
            && (!existing_guard.eq_ignore_ascii_case(&guard_id) || !existing_proxy.eq_ignore_ascii_case(&id))
        {
            return Err(ArmError::conflict(format!(
                "The vault is already linked to the Resource Guard '{existing_guard}' through '{existing_proxy}'; \
                 remove that link first (a critical operation)."
            )));
        }
        let mut properties = json!({
            "resourceGuardResourceId": guard_id,
            "resourceGuardOperationDetails": operation_details(kind, &guard_id, &guard),
            "lastUpdatedTime": now.to_string(),
        });
        if let Some(description) = guard["properties"]["description"].as_str() {
            properties["description"] = json!(description);
        }
        let body = json!({"id": id, "name": req.path.names[1], "type": proxy_type(kind), "properties": properties});
        w.resources.insert(
            id.to_ascii_lowercase(),
            StoredResource {
                body: body.clone(),
                etag: new_etag(),
            },
        );
        Ok(ArmResponse::ok(body))
    })
}

/// `POST .../backupResourceGuardProxies/{p}/unlockDelete`: a critical operation that opens a short window
/// to delete the link or a protected item of this vault.
pub fn unlock_proxy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let kind = kind_of(&req.path.provider);
    let vault_id = req.path.resource_id_of(1);
    let proxy_id = req.path.resource_id_of(2);
    let now = sim.clock.now();
    let citations = cited_requests(&req.body);
    let target = req.body["resourceToBeDeleted"]
        .as_str()
        .unwrap_or(&proxy_id)
        .to_string();
    let lower = target.to_ascii_lowercase();
    let unlocks_link = lower == proxy_id.to_ascii_lowercase();
    // Azure's own example names an item of another vault here and is answered 200; such an unlock is
    // granted but opens nothing, since a delete only honours unlocks of its own vault's items.
    let in_this_vault = unlocks_link || lower.starts_with(&format!("{}/", vault_id.to_ascii_lowercase()));
    if citations.is_empty() {
        return Err(ArmError::bad_request(
            "BadRequest",
            "resourceGuardOperationRequests is required to unlock a delete.",
        ));
    }
    let op = if unlocks_link {
        CriticalOperation::DisableMultiUserAuthorization
    } else {
        CriticalOperation::StopProtectionWithDeleteData
    };
    let expiry = now + jiff::SignedDuration::from_mins(UNLOCK_MINUTES);
    sim.write(|w| {
        w.resource(&proxy_id).ok_or_else(|| proxy_not_found(req))?;
        authorize_critical(w, now, req, &citations, &vault_id, kind, op)?;
        if in_this_vault {
            let unlocks = if unlocks_link {
                &mut w.unlocked_proxies
            } else {
                &mut w.unlocked_items
            };
            unlocks.insert(lower.clone(), expiry);
        }
        Ok(ArmResponse::ok(json!({ "unlockDeleteExpiryTime": expiry.to_string() })))
    })
}

/// Removing the link is the mandatory critical operation: it needs a valid `unlockDelete` first.
pub fn delete_proxy(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id();
    let key = id.to_ascii_lowercase();
    sim.write(|w| {
        if w.resource(&id).is_none() {
            return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
        }
        if !w.unlocked_proxies.contains_key(&key) {
            return Err(ArmError::linked_authorization_failed(format!(
                "Removing the link '{id}' disables multi-user authorization, a critical operation: call unlockDelete \
                 on it (citing the guard's deleteResourceGuardProxyRequests) first."
            )));
        }
        w.resources.remove(&key);
        w.unlocked_proxies.remove(&key);
        Ok(ArmResponse::empty(StatusCode::OK))
    })
}

/// Whether `item_id` may be deleted now: unlocked, or its vault's guard does not protect the deletion.
pub fn may_delete_item(
    w: &World,
    now: Timestamp,
    req: &ArmRequest,
    vault_id: &str,
    item_id: &str,
) -> Result<(), ArmError> {
    if w.unlocked_items.contains_key(&item_id.to_ascii_lowercase()) {
        return Ok(());
    }
    let kind = kind_of(&req.path.provider);
    authorize_critical(
        w,
        now,
        req,
        &[],
        vault_id,
        kind,
        CriticalOperation::StopProtectionWithDeleteData,
    )
    .map_err(|_| {
        ArmError::linked_authorization_failed(format!(
            "Deleting '{item_id}' stops protection and deletes its backup data, a critical operation: call \
             unlockDelete on the vault's resource guard link with resourceToBeDeleted set to it first."
        ))
    })
}
