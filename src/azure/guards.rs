//! Resource Guards (`Microsoft.DataProtection/resourceGuards`): typed reads and writes.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::client::{ArmClient, Call};
use super::error::AzureError;

/// The api-version current SDKs send for Microsoft.DataProtection.
pub const API_VERSION: &str = "2026-06-01";

/// Where a guard lives, and the tenant whose token reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardId {
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    /// The guard's Entra tenant when it is not the caller's home tenant: calls on the guard itself are
    /// authenticated there, and critical calls on a vault carry an auxiliary token from it.
    pub tenant: Option<String>,
}

impl GuardId {
    pub fn new(subscription: &str, resource_group: &str, name: &str) -> GuardId {
        GuardId {
            subscription: subscription.to_string(),
            resource_group: resource_group.to_string(),
            name: name.to_string(),
            tenant: None,
        }
    }

    /// The same guard, reached with a token from `tenant`.
    pub fn in_tenant(mut self, tenant: Option<&str>) -> GuardId {
        self.tenant = tenant.map(str::to_ascii_lowercase);
        self
    }

    pub fn path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DataProtection/resourceGuards/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// Whether `arm_id` names this guard (ARM IDs compare without case).
    pub fn is(&self, arm_id: &str) -> bool {
        self.path().eq_ignore_ascii_case(arm_id.trim_end_matches('/'))
    }

    /// Parses a guard's ARM ID (case-insensitive in its fixed segments, as ARM is); no tenant.
    pub fn parse(id: &str) -> Option<GuardId> {
        let (subscription, group, provider, kind, name) = super::parse_resource_id(id)?;
        if !(provider.eq_ignore_ascii_case("Microsoft.DataProtection") && kind.eq_ignore_ascii_case("resourceGuards")) {
            return None;
        }
        Some(GuardId::new(subscription, group, name))
    }

    fn call(&self, method: Method) -> Call {
        Call::new(method, self.path(), API_VERSION).in_tenant(self.tenant.as_deref())
    }
}

/// A guard as ARM reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guard {
    pub id: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub etag: Option<String>,
    pub provisioning_state: Option<String>,
    pub description: Option<String>,
    /// `vaultCriticalOperationExclusionList`: the operations the guard does not protect.
    pub excluded: Vec<String>,
    /// `resourceGuardOperations`: what the guard protects.
    pub operations: Vec<GuardOperation>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuardOperation {
    pub vault_critical_operation: String,
    pub request_resource_type: Option<String>,
}

/// The guard on the wire: `id` and `location` are required, as ARM always sends them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GuardWire {
    id: String,
    location: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default, rename = "eTag", alias = "etag")]
    etag: Option<String>,
    #[serde(default)]
    properties: GuardPropertiesWire,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GuardPropertiesWire {
    #[serde(default)]
    provisioning_state: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    vault_critical_operation_exclusion_list: Vec<String>,
    #[serde(default)]
    resource_guard_operations: Vec<GuardOperationWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GuardOperationWire {
    vault_critical_operation: String,
    #[serde(default)]
    request_resource_type: Option<String>,
}

impl From<GuardWire> for Guard {
    fn from(wire: GuardWire) -> Guard {
        let p = wire.properties;
        Guard {
            id: wire.id,
            location: wire.location,
            tags: wire.tags,
            etag: wire.etag,
            provisioning_state: p.provisioning_state,
            description: p.description,
            excluded: p.vault_critical_operation_exclusion_list,
            operations: p
                .resource_guard_operations
                .into_iter()
                .map(|o| GuardOperation {
                    vault_critical_operation: o.vault_critical_operation,
                    request_resource_type: o.request_resource_type,
                })
                .collect(),
        }
    }
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
    match client.send(&id.call(Method::GET)).await {
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
    let reply = client.send(&id.call(Method::PUT).body(body).if_match(if_match)).await?;
    decode(&id.path(), reply.body)
}

/// Deletes the guard; deleting one that is already gone succeeds.
pub async fn delete(client: &ArmClient, id: &GuardId) -> Result<(), AzureError> {
    client.send(&id.call(Method::DELETE)).await.map(|_| ())
}

fn decode(path: &str, body: serde_json::Value) -> Result<Guard, AzureError> {
    super::decode::<GuardWire>(&format!("the Resource Guard {path}"), body).map(Guard::from)
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

    #[test]
    fn a_guard_without_a_location_is_a_protocol_error() {
        let body = serde_json::json!({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/g"});
        let err = decode("/g", body).unwrap_err();
        assert!(err.to_string().contains("location"), "{err}");
    }
}
