//! `.../Microsoft.RecoveryServices/vaults/{v}/backupconfig/vaultconfig`: the older view of a Recovery
//! Services vault's soft-delete settings, which `az backup vault backup-properties set` reads and writes
//! (GET, then PATCH citing the guard). It is not stored on its own: it is rendered from the vault's
//! `securitySettings.softDeleteSettings` and a write becomes a change of those settings, so both views
//! always agree and a write passes the very checks a vault write does (its weakening is the mandatory
//! critical operation `Microsoft.RecoveryServices/vaults/backupconfig/write`).

use serde_json::{Map, Value, json};

use super::casing::canonical_request;
use super::request::{ArmRequest, ArmResponse, ArmResult};
use super::vaults::{rs_vault_defaults, vault_not_found, write_vault};
use crate::error::ArmError;
use crate::state::SimState;

/// The only name the service knows for this singleton.
const NAME: &str = "vaultconfig";
const TYPE: &str = "Microsoft.RecoveryServices/vaults/backupconfig";
/// The soft-delete retention the service accepts, in days (the CLI checks the same range).
const RETENTION_DAYS: std::ops::RangeInclusive<i64> = 14..=180;

/// Each vault-config property and the soft-delete setting of the vault it stands for.
const FIELDS: [(&str, &str); 3] = [
    ("softDeleteFeatureState", "softDeleteState"),
    ("enhancedSecurityState", "enhancedSecurityState"),
    ("softDeleteRetentionPeriodInDays", "softDeleteRetentionPeriodInDays"),
];

fn require_name(req: &ArmRequest) -> Result<(), ArmError> {
    let name = &req.path.names[1];
    if name.eq_ignore_ascii_case(NAME) {
        return Ok(());
    }
    Err(ArmError::not_found(
        TYPE,
        name,
        req.path.resource_group().unwrap_or_default(),
    ))
}

/// The vault config as the service renders it from a vault (the shape of a 2025 recording: no storage
/// fields, which live in `backupstorageconfig/vaultstorageconfig`).
fn render(vault_id: &str, vault: &Value) -> Value {
    let soft_delete = &vault["properties"]["securitySettings"]["softDeleteSettings"];
    let mut properties = Map::new();
    for (config, setting) in FIELDS {
        properties.insert(config.into(), soft_delete[setting].clone());
    }
    let always_on = soft_delete["softDeleteState"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("AlwaysON"));
    properties.insert("isSoftDeleteFeatureStateEditable".into(), json!(!always_on));
    json!({
        "id": format!("{vault_id}/backupconfig/{NAME}"),
        "name": NAME,
        "type": TYPE,
        "properties": properties,
    })
}

/// `GET .../backupstorageconfig/vaultstorageconfig`: the vault's storage redundancy, which `az backup vault
/// backup-properties show` prints beside the vault config. Read-only here: the CLI changes redundancy
/// through the vault itself.
pub fn get_storage(sim: &SimState, req: &ArmRequest) -> ArmResult {
    const STORAGE_NAME: &str = "vaultstorageconfig";
    let name = &req.path.names[1];
    if !name.eq_ignore_ascii_case(STORAGE_NAME) {
        let group = req.path.resource_group().unwrap_or_default();
        return Err(ArmError::not_found(
            "Microsoft.RecoveryServices/vaults/backupstorageconfig",
            name,
            group,
        ));
    }
    let vault_id = req.path.resource_id_of(1);
    let vault = sim
        .read(|w| w.resource(&vault_id).map(|v| v.body.clone()))
        .ok_or_else(|| vault_not_found(req))?;
    let redundancy = &vault["properties"]["redundancySettings"];
    let storage = redundancy["standardTierStorageRedundancy"].clone();
    let cross_region = redundancy["crossRegionRestore"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("Enabled"));
    Ok(ArmResponse::ok(json!({
        "id": format!("{vault_id}/backupstorageconfig/{STORAGE_NAME}"),
        "name": STORAGE_NAME,
        "type": "Microsoft.RecoveryServices/vaults/backupstorageconfig",
        "properties": {
            "storageModelType": storage,
            "storageType": storage,
            "storageTypeState": "Unlocked",
            "crossRegionRestoreFlag": cross_region,
            "dedupState": "Disabled",
            "xcoolState": "Disabled",
        },
    })))
}

/// `GET .../backupconfig/vaultconfig`
pub fn get(sim: &SimState, req: &ArmRequest) -> ArmResult {
    require_name(req)?;
    let vault_id = req.path.resource_id_of(1);
    sim.read(|w| w.resource(&vault_id).map(|v| render(&vault_id, &v.body)))
        .map(ArmResponse::ok)
        .ok_or_else(|| vault_not_found(req))
}

/// The soft-delete settings a vault-config body asks for, checked as the service checks them.
fn requested_settings(body: &Value) -> Result<Map<String, Value>, ArmError> {
    let invalid = |what: String| ArmError::bad_request("InvalidRequestContent", what);
    let properties = match &body["properties"] {
        Value::Object(p) => p,
        Value::Null => return Err(invalid("properties is required.".into())),
        _ => return Err(invalid("properties must be an object.".into())),
    };
    let mut settings = Map::new();
    for (config, setting) in FIELDS {
        let Some((_, value)) = properties.iter().find(|(k, _)| k.eq_ignore_ascii_case(config)) else {
            continue;
        };
        let valid = match (config, value) {
            (_, Value::Null) => continue,
            ("softDeleteRetentionPeriodInDays", v) => v.as_i64().is_some_and(|d| RETENTION_DAYS.contains(&d)),
            (_, Value::String(s)) => ["Enabled", "Disabled", "AlwaysON"]
                .iter()
                .any(|a| a.eq_ignore_ascii_case(s)),
            _ => false,
        };
        if !valid {
            let allowed = if config == "softDeleteRetentionPeriodInDays" {
                format!(
                    "a whole number of days from {} to {}",
                    RETENTION_DAYS.start(),
                    RETENTION_DAYS.end()
                )
            } else {
                "Enabled, Disabled or AlwaysON".into()
            };
            return Err(invalid(format!("properties.{config} must be {allowed}; got {value}.")));
        }
        settings.insert(setting.into(), value.clone());
    }
    Ok(settings)
}

/// Writes the vault's soft-delete settings from a vault-config body: a PATCH changes what it names, a
/// PUT replaces the settings (what it omits falls back to the service's defaults). Either way the vault
/// write decides whether the change weakens protection and needs the guard; it reads the citations
/// from `properties.resourceGuardOperationRequests`, where this body carries them too.
fn write(sim: &SimState, req: &ArmRequest, replace: bool) -> ArmResult {
    require_name(req)?;
    // Citations in any casing count, as in every other write.
    let req = &canonical_request(req)?;
    let requested = requested_settings(&req.body)?;
    let build = |existing: Option<&Value>| {
        let mut vault = existing.ok_or_else(|| vault_not_found(req))?.clone();
        let pointer = "/properties/securitySettings/softDeleteSettings";
        let mut settings = match vault.pointer(pointer) {
            Some(Value::Object(current)) if !replace => current.clone(),
            _ => rs_vault_defaults()
                .pointer(pointer)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        };
        settings.extend(requested.clone());
        vault["properties"]["securitySettings"]["softDeleteSettings"] = Value::Object(settings);
        Ok(vault)
    };
    let (_, vault_id, vault) = write_vault(sim, req, &build)?;
    Ok(ArmResponse::ok(render(&vault_id, &vault)))
}

/// `PATCH .../backupconfig/vaultconfig` (what the CLI sends).
pub fn patch(sim: &SimState, req: &ArmRequest) -> ArmResult {
    write(sim, req, false)
}

/// `PUT .../backupconfig/vaultconfig`
pub fn put(sim: &SimState, req: &ArmRequest) -> ArmResult {
    write(sim, req, true)
}
