//! Recovery Services vaults and Backup vaults: their security settings (soft delete, immutability,
//! encryption, MUA state) and their links to Resource Guards (`backupResourceGuardProxies`). Each handler
//! checks and writes under one lock, so concurrent writers see ARM's ETag semantics.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::casing::{canonical_request, canonicalize};
use super::guards::{GUARD_TYPE, normalize_location};
use super::mua::{authorize_critical, caller_in_guard_tenant, cited_requests, find_guard, vault_link};
use super::protection::{Immutability, SoftDelete, VaultProtection, vault_weakenings};
use super::request::{ArmRequest, ArmResponse, ArmResult, check_if_match, location_of, page};
use crate::authz;
use crate::error::ArmError;
use crate::operations::{CriticalOperation, VaultKind};
use crate::state::SimState;
use crate::world::{AsyncOperation, StoredResource, World, new_etag};

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

pub(super) fn vault_not_found(req: &ArmRequest) -> ArmError {
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
    page(sim, req, value)
}

pub fn get_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let id = req.path.resource_id_of(1);
    sim.read(|w| w.resource(&id).map(|stored| render(w, &id, stored)))
        .map(ArmResponse::ok)
        .ok_or_else(|| vault_not_found(req))
}

/// Recursively applies a JSON merge patch (RFC 7396), which is what ARM PATCH bodies are. Property names
/// match case-insensitively, as ARM reads them: a patch key updates the stored key in any casing.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                let key = stored_key(target, key);
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Fills what `defaults` has and `target` lacks (in any casing), recursively (the service's defaults for a
/// new resource).
pub fn fill_defaults(target: &mut Value, defaults: &Value) {
    if let (Some(target), Some(defaults)) = (target.as_object_mut(), defaults.as_object()) {
        for (key, value) in defaults {
            let key = stored_key(target, key);
            match target.get_mut(&key) {
                Some(existing) if !existing.is_null() => fill_defaults(existing, value),
                _ => {
                    target.insert(key, value.clone());
                }
            }
        }
    }
}

/// The key `object` stores `key` under, compared case-insensitively; `key` itself when it has none.
fn stored_key(object: &serde_json::Map<String, Value>, key: &str) -> String {
    if object.contains_key(key) {
        return key.to_string();
    }
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_string())
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

/// What a Backup vault reports when its creator did not say otherwise: soft delete on for 14 days.
pub fn backup_vault_defaults() -> Value {
    json!({
        "tags": {},
        "properties": {
            "securitySettings": {
                "softDeleteSettings": {"state": "On", "retentionDurationInDays": 14.0},
                "immutabilitySettings": {"state": "Disabled"},
            },
        },
    })
}

fn vault_defaults(kind: VaultKind) -> Value {
    match kind {
        VaultKind::RecoveryServicesVault => rs_vault_defaults(),
        VaultKind::BackupVault => backup_vault_defaults(),
    }
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

/// Refuses changes Azure never allows, whoever asks.
fn check_irreversible(before: &VaultProtection, after: &VaultProtection) -> Result<(), ArmError> {
    if before.soft_delete == SoftDelete::AlwaysOn && after.soft_delete < SoftDelete::AlwaysOn {
        return Err(ArmError::bad_request(
            "UserErrorSoftDeleteAlwaysOnCannotBeDisabled",
            "Soft delete is always on for this vault and cannot be turned off.",
        ));
    }
    if before.immutability == Immutability::Locked && after.immutability < Immutability::Locked {
        return Err(ArmError::bad_request(
            "UserErrorImmutabilityLocked",
            "Immutability is locked for this vault and cannot be reduced.",
        ));
    }
    Ok(())
}

/// ARM's refusal to move an existing resource to another region. The code and message are ARM's own (as
/// quoted in MicrosoftDocs/azure-docs#70422 and Azure/azure-cli#31604); the status is 409: the Python
/// SDK raises its ResourceExistsError, its error for a 409, for this code (azure-cli#31604).
fn location_is_immutable(req: &ArmRequest, stored: &str, asked: &str) -> ArmError {
    ArmError::new(
        StatusCode::CONFLICT,
        "InvalidResourceLocation",
        format!(
            "The resource '{name}' already exists in location '{stored}' in resource group '{group}'. A resource \
             with the same name cannot be created in location '{asked}'. Please select a new resource name.",
            name = req.path.names[0],
            group = req.path.resource_group().unwrap_or_default(),
        ),
    )
}

/// A vault stays in its region: a write that names another is refused, one that names none keeps it.
fn keep_location(req: &ArmRequest, existing: &Value, after: &mut Value) -> Result<(), ArmError> {
    let stored = existing["location"].as_str().unwrap_or_default().to_string();
    if let Some(asked) = after["location"]
        .as_str()
        .map(normalize_location)
        .filter(|asked| !asked.is_empty() && *asked != normalize_location(&stored))
    {
        return Err(location_is_immutable(req, &stored, &asked));
    }
    after["location"] = json!(stored);
    Ok(())
}

/// How a vault write builds the new vault from the stored one (`None` when it does not exist).
type Build<'a> = &'a dyn Fn(Option<&Value>) -> Result<Value, ArmError>;

/// Checks and stores a vault change under one lock: ETag, shape, region, irreversible changes, then the MUA
/// check for every weakening. Decides from what would be stored (names canonical, defaults filled), so no
/// JSON shape (a null, an omitted section, another casing) slips past. `build` should read a request
/// that [`canonical_request`] made. Returns whether it was created, its ID and its rendered body.
pub(super) fn write_vault(sim: &SimState, req: &ArmRequest, build: Build) -> Result<(bool, String, Value), ArmError> {
    let kind = kind_of(&req.path.provider);
    let id = req.path.resource_id_of(1);
    let now = sim.clock.now();
    let citations = cited_requests(&req.body);
    sim.write(|w| {
        let existing = w.resource(&id).cloned();
        check_if_match(req, existing.as_ref().map(|r| r.etag.as_str()))?;
        let mut after = canonicalize(&build(existing.as_ref().map(|r| &r.body))?)?;
        if !after.is_object() {
            return Err(ArmError::bad_request(
                "InvalidRequestContent",
                "The request content was invalid: a vault must be a JSON object.",
            ));
        }
        if let Some(props) = after.get_mut("properties").and_then(Value::as_object_mut) {
            // Citations authorize this call; they are not stored.
            props.remove("resourceGuardOperationRequests");
            props.insert("provisioningState".into(), json!("Succeeded"));
        }
        after["id"] = json!(id);
        after["name"] = json!(req.path.names[0]);
        after["type"] = json!(vault_type(kind));
        fill_defaults(&mut after, &vault_defaults(kind));
        if kind == VaultKind::RecoveryServicesVault {
            complete_identity(&mut after, &req.caller.tid);
        }
        let protection = VaultProtection::of(kind, &after)?;
        if let Some(existing) = &existing {
            keep_location(req, &existing.body, &mut after)?;
            let before = VaultProtection::of(kind, &existing.body)?;
            check_irreversible(&before, &protection)?;
            for op in vault_weakenings(&before, &protection) {
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

/// A PUT's vault: the body as sent, with the location of its resource group when it names none and the
/// vault is new (an existing vault keeps its own; see [`keep_location`]).
fn put_vault_body(req: &ArmRequest, group_location: Option<&str>, existing: Option<&Value>) -> Result<Value, ArmError> {
    match existing {
        Some(_) => Ok(req.body.clone()),
        None => new_vault_body(req, group_location),
    }
}

pub fn put(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let req = &canonical_request(req)?;
    let group_location = location_of(sim, &req.path);
    let build = |existing: Option<&Value>| put_vault_body(req, group_location.as_deref(), existing);
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
    let req = &canonical_request(req)?;
    let (_, id, _) = write_vault(sim, req, &|existing| patched(req, existing))?;
    let (status, location) = start_operation(sim, &id);
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .header("azure-asyncoperation", status)
        .header("location", location)
        .header("retry-after", "1".into()))
}

pub fn put_backup_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let req = &canonical_request(req)?;
    let group_location = location_of(sim, &req.path);
    let build = |existing: Option<&Value>| put_vault_body(req, group_location.as_deref(), existing);
    let (created, _, body) = write_vault(sim, req, &build)?;
    Ok(ArmResponse::with_status(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        body,
    ))
}

pub fn patch_backup_vault(sim: &SimState, req: &ArmRequest) -> ArmResult {
    let req = &canonical_request(req)?;
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
