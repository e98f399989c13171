//! Resource Guards (`Microsoft.DataProtection/resourceGuards`): typed reads and writes.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{ArmClient, Call};
use super::error::AzureError;

/// The api-version current SDKs send for Microsoft.DataProtection.
pub const API_VERSION: &str = "2026-06-01";

/// Where a guard lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardId {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
}

impl GuardId {
    pub fn path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DataProtection/resourceGuards/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// Parses a guard's ARM ID (case-insensitive in its fixed segments, as ARM is).
    pub fn parse(id: &str) -> Option<GuardId> {
        let (subscription, group, provider, kind, name) = super::parse_resource_id(id)?;
        if !(provider.eq_ignore_ascii_case("Microsoft.DataProtection") && kind.eq_ignore_ascii_case("resourceGuards")) {
            return None;
        }
        let (subscription, resource_group, name) = (subscription.to_string(), group.to_string(), name.to_string());
        Some(GuardId {
            subscription,
            resource_group,
            name,
        })
    }
}

/// A guard as ARM returns it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Guard {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, rename = "eTag", alias = "etag")]
    pub etag: Option<String>,
    #[serde(default)]
    pub properties: GuardProperties,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardProperties {
    #[serde(default)]
    pub provisioning_state: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub vault_critical_operation_exclusion_list: Vec<String>,
    #[serde(default)]
    pub resource_guard_operations: Vec<GuardOperation>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardOperation {
    pub vault_critical_operation: String,
    #[serde(default)]
    pub request_resource_type: Option<String>,
}

/// What the operator asks a guard to be.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredGuard {
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub description: Option<String>,
    /// `vaultCriticalOperation` strings not protected.
    pub excluded: Vec<String>,
}

/// The guard, or `None` when it does not exist.
pub async fn get(client: &ArmClient, id: &GuardId) -> Result<Option<Guard>, AzureError> {
    match client.send(&Call::new(Method::GET, id.path(), API_VERSION)).await {
        Ok(reply) => decode(&id.path(), reply.body).map(Some),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// Creates or updates the guard. `if_match` makes the write conditional on the guard's ETag.
pub async fn put(
    client: &ArmClient,
    id: &GuardId,
    desired: &DesiredGuard,
    if_match: Option<String>,
) -> Result<Guard, AzureError> {
    let mut properties = json!({"vaultCriticalOperationExclusionList": desired.excluded});
    if let Some(description) = &desired.description {
        properties["description"] = json!(description);
    }
    let body = json!({"location": desired.location, "tags": desired.tags, "properties": properties});
    let reply = client
        .send(
            &Call::new(Method::PUT, id.path(), API_VERSION)
                .body(body)
                .if_match(if_match),
        )
        .await?;
    decode(&id.path(), reply.body)
}

/// Deletes the guard; deleting one that is already gone succeeds.
pub async fn delete(client: &ArmClient, id: &GuardId) -> Result<(), AzureError> {
    client
        .send(&Call::new(Method::DELETE, id.path(), API_VERSION))
        .await
        .map(|_| ())
}

fn decode(path: &str, body: serde_json::Value) -> Result<Guard, AzureError> {
    serde_json::from_value(body).map_err(|err| AzureError::Protocol {
        operation: format!("decoding the Resource Guard {path}"),
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_ids_round_trip_and_reject_other_types() {
        let id = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/g1";
        let parsed = GuardId::parse(id).unwrap();
        assert_eq!(parsed.path(), id);
        assert_eq!(
            GuardId::parse(&id.to_ascii_lowercase()).map(|g| g.name),
            Some("g1".to_string())
        );
        assert_eq!(GuardId::parse(&id.replace("resourceGuards", "backupVaults")), None);
        assert_eq!(GuardId::parse("/subscriptions/s1"), None);
    }
}
