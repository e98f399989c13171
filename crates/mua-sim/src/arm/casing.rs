//! ARM reads property names case-insensitively: `SoftDeleteState` sets `softDeleteState`. The simulator
//! stores and checks the canonical names only, so a key in another casing can neither hide beside the real
//! one nor slip past a check that reads the canonical name. A body naming one property twice (two keys that
//! differ only by case) is ambiguous and refused.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::request::ArmRequest;
use crate::error::ArmError;

/// The property names the simulator reads (and the vault defaults it fills), in their canonical casing.
const CANONICAL: &[&str] = &[
    // Every resource.
    "location",
    "tags",
    "properties",
    "identity",
    "sku",
    "name",
    "type",
    "userAssignedIdentities",
    "resourceGuardOperationRequests",
    "provisioningState",
    // Vault security settings.
    "securitySettings",
    "softDeleteSettings",
    "softDeleteState",
    "softDeleteRetentionPeriodInDays",
    "enhancedSecurityState",
    "state",
    "retentionDurationInDays",
    "immutabilitySettings",
    "multiUserAuthorization",
    "sourceScanConfiguration",
    "sourceScanIdentity",
    "identityType",
    "identityId",
    // Encryption (Recovery Services `encryption`, Backup vault `encryptionSettings`).
    "encryption",
    "encryptionSettings",
    "keyVaultProperties",
    "keyUri",
    "kekIdentity",
    "userAssignedIdentity",
    "useSystemAssignedIdentity",
    "infrastructureEncryption",
    // The rest of a Recovery Services vault's defaults.
    "publicNetworkAccess",
    "monitoringSettings",
    "azureMonitorAlertSettings",
    "alertsForAllJobFailures",
    "alertsForAllReplicationIssues",
    "alertsForAllFailoverIssues",
    "classicAlertSettings",
    "alertsForCriticalOperations",
    "emailNotificationsForSiteRecovery",
    "privateEndpointConnections",
    "privateEndpointStateForBackup",
    "privateEndpointStateForSiteRecovery",
    "redundancySettings",
    "standardTierStorageRedundancy",
    "crossRegionRestore",
    "secureScore",
    "bcdrSecurityLevel",
    // Recovery Services backup policies and protected items.
    "backupManagementType",
    "workLoadType",
    "retentionPolicy",
    "retentionPolicyType",
    "retentionDuration",
    "count",
    "durationType",
    "dailySchedule",
    "weeklySchedule",
    "monthlySchedule",
    "yearlySchedule",
    "subProtectionPolicy",
    "policyType",
    "policyId",
    "protectedItemType",
    // Backup-vault backup policies and backup instances.
    "policyInfo",
    "policyRules",
    "lifecycles",
    "deleteAfter",
    "duration",
    "objectType",
    "sourceDataStore",
    "dataStoreType",
    "isDefault",
    "datasourceTypes",
];

/// Objects whose keys are user data (tag names, identity IDs): kept as sent.
const DATA_MAPS: &[&str] = &["tags", "userAssignedIdentities"];

fn canonical_name(key: &str) -> &str {
    CANONICAL
        .iter()
        .find(|name| name.eq_ignore_ascii_case(key))
        .copied()
        .unwrap_or(key)
}

/// `body` with every known property name in its canonical casing. Refuses an object with two keys that
/// differ only by case (`InvalidRequestContent`, as ARM refuses a body it cannot read).
pub fn canonicalize(body: &Value) -> Result<Value, ArmError> {
    canonicalize_at("", body)
}

fn canonicalize_at(at: &str, value: &Value) -> Result<Value, ArmError> {
    match value {
        Value::Object(object) => canonicalize_object(at, object).map(Value::Object),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| canonicalize_at(&format!("{at}[{i}]"), item))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

fn canonicalize_object(at: &str, object: &Map<String, Value>) -> Result<Map<String, Value>, ArmError> {
    let mut canonical = Map::new();
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (key, value) in object {
        let name = canonical_name(key);
        if let Some(twin) = seen.insert(key.to_ascii_lowercase(), key) {
            return Err(ArmError::bad_request(
                "InvalidRequestContent",
                format!(
                    "The request content was invalid: '{at}' has both '{twin}' and '{key}'; property names are \
                     case-insensitive, so each may appear once."
                ),
            ));
        }
        let path = if at.is_empty() {
            name.to_string()
        } else {
            format!("{at}.{name}")
        };
        let value = if DATA_MAPS.contains(&name) {
            value.clone()
        } else {
            canonicalize_at(&path, value)?
        };
        canonical.insert(name.to_string(), value);
    }
    Ok(canonical)
}

/// The request with its body canonicalized: what every check and store of a protected resource reads.
pub fn canonical_request(req: &ArmRequest) -> Result<ArmRequest, ArmError> {
    Ok(ArmRequest {
        method: req.method.clone(),
        path: req.path.clone(),
        api_version: req.api_version.clone(),
        query: req.query.clone(),
        caller: req.caller.clone(),
        auxiliary: req.auxiliary.clone(),
        body: canonicalize(&req.body)?,
        if_match: req.if_match.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn known_names_take_their_canonical_casing_at_any_depth() {
        let body = json!({"Properties": {"SECURITYSETTINGS": {"softdeletesettings": {"SoftDeleteState": "Disabled"}}},
                          "Location": "westeurope", "CustomThing": 1});
        let canonical = canonicalize(&body).unwrap();
        assert_eq!(
            canonical,
            json!({"properties": {"securitySettings": {"softDeleteSettings": {"softDeleteState": "Disabled"}}},
                   "location": "westeurope", "CustomThing": 1})
        );
    }

    #[test]
    fn names_inside_arrays_are_canonical_too() {
        let body = json!({"properties": {"SubProtectionPolicy": [{"PolicyType": "Log"}]}});
        let canonical = canonicalize(&body).unwrap();
        assert_eq!(canonical["properties"]["subProtectionPolicy"][0]["policyType"], "Log");
    }

    #[test]
    fn two_keys_that_differ_only_by_case_are_refused() {
        let body = json!({"properties": {"securitySettings": {"softDeleteSettings": {
            "softDeleteState": "Enabled", "SoftDeleteState": "Disabled"}}}});
        let err = canonicalize(&body).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "InvalidRequestContent"));
        assert!(
            err.message.contains("properties.securitySettings.softDeleteSettings"),
            "{}",
            err.message
        );
    }

    #[test]
    fn tag_names_and_identity_ids_are_user_data() {
        let body = json!({"tags": {"Location": "x", "location": "y"},
                          "identity": {"UserAssignedIdentities": {"/Sub/ID": {}}}});
        let canonical = canonicalize(&body).unwrap();
        assert_eq!(canonical["tags"], json!({"Location": "x", "location": "y"}));
        assert_eq!(canonical["identity"]["userAssignedIdentities"], json!({"/Sub/ID": {}}));
    }
}
