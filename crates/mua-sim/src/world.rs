//! Everything the simulator knows: tenants, subscriptions, principals, ARM resources, role assignments and
//! PIM objects. Serializable, so `sim --state FILE` survives restarts, and built from a seed file.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole simulated cloud.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct World {
    pub tenants: BTreeMap<String, Tenant>,
    /// By lowercase subscription ID.
    pub subscriptions: BTreeMap<String, Subscription>,
    /// By object ID.
    pub principals: BTreeMap<String, Principal>,
    /// Custom role definitions by lowercase GUID (built-in roles are always there).
    #[serde(default)]
    pub role_definitions: BTreeMap<String, RoleDefinition>,
    /// ARM resources by lowercase resource ID, kept as the JSON ARM returns.
    pub resources: BTreeMap<String, StoredResource>,
    /// By lowercase role assignment ID.
    pub role_assignments: BTreeMap<String, RoleAssignment>,
    /// PIM eligibility schedules by lowercase ID.
    pub eligibility_schedules: BTreeMap<String, Value>,
    /// PIM role management policies by lowercase ID.
    pub role_management_policies: BTreeMap<String, Value>,
    /// PIM role assignment schedule requests by lowercase ID.
    pub schedule_requests: BTreeMap<String, Value>,
    /// Pending PIM approvals by approval ID.
    pub approvals: BTreeMap<String, PendingApproval>,
    /// Guard links unlocked for deletion: lowercase proxy ID → expiry.
    pub unlocked_proxies: BTreeMap<String, Timestamp>,
    /// Protected items unlocked for deletion: lowercase item ID → expiry.
    pub unlocked_items: BTreeMap<String, Timestamp>,
    /// Long-running operations by ID.
    pub operations: BTreeMap<String, AsyncOperation>,
}

/// A role, built-in or custom: what it allows (`actions`) minus what it excludes (`not_actions`); `authz`
/// matches actions against it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinition {
    /// The role definition's GUID.
    pub id: String,
    pub name: String,
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub tenant: String,
    #[serde(default)]
    pub name: String,
    /// By lowercase name.
    #[serde(default)]
    pub resource_groups: BTreeMap<String, ResourceGroup>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroup {
    pub name: String,
    pub location: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalType {
    User,
    #[default]
    ServicePrincipal,
    ManagedIdentity,
}

impl PrincipalType {
    /// The `principalType` ARM uses in role assignments.
    pub fn arm_name(self) -> &'static str {
        match self {
            PrincipalType::User => "User",
            PrincipalType::ServicePrincipal | PrincipalType::ManagedIdentity => "ServicePrincipal",
        }
    }
}

/// A user, service principal or managed identity in one tenant.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub object_id: String,
    pub tenant: String,
    #[serde(default, rename = "type")]
    pub kind: PrincipalType,
    #[serde(default)]
    pub display_name: String,
    /// The application (client) ID, for service principals and managed identities. A multi-tenant app
    /// has one principal per tenant with the same client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client secrets that the token endpoint accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Workload identity federation: client assertions from these issuers are accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_credentials: Vec<FederatedCredential>,
    /// Users: sign-in name and password (resource owner password grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Applications: the Microsoft Graph application permissions granted (e.g. `Directory.Read.All`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graph_permissions: Vec<String>,
}

/// A federated identity credential: which external tokens may stand in for a client secret.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default = "default_federated_audience")]
    pub audience: String,
    /// The issuer's signing keys (a JWKS document), since the simulator cannot fetch them.
    pub jwks: Value,
}

fn default_federated_audience() -> String {
    "api://AzureADTokenExchange".to_string()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredResource {
    pub body: Value,
    pub etag: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignment {
    pub id: String,
    pub name: String,
    pub scope: String,
    /// The role definition's GUID.
    pub role_definition: String,
    pub principal_id: String,
    pub principal_type: String,
    /// Assignments made by PIM end at this time (simulated clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// The PIM schedule request that created it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_request: Option<String>,
    pub created_on: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingApproval {
    pub id: String,
    /// The lowercase ID of the schedule request it decides.
    pub request: String,
    /// Object IDs allowed to decide.
    pub approvers: Vec<String>,
    /// After this time (simulated clock) the request times out undecided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncOperation {
    pub id: String,
    pub resource_id: String,
    pub started: Timestamp,
    pub completes: Timestamp,
    /// `Succeeded` or `Failed` once complete.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl World {
    pub fn subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions.get(&id.to_ascii_lowercase())
    }

    pub fn resource(&self, id: &str) -> Option<&StoredResource> {
        self.resources.get(&id.to_ascii_lowercase())
    }

    pub fn principal_by_client(&self, tenant: &str, client_id: &str) -> Option<&Principal> {
        self.principals.values().find(|p| {
            p.tenant.eq_ignore_ascii_case(tenant)
                && p.client_id
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(client_id))
        })
    }

    /// Drops what has ended by `now`: PIM assignments past their end time, expired unlocks.
    pub fn expire(&mut self, now: Timestamp) -> Vec<RoleAssignment> {
        let ended: Vec<String> = self
            .role_assignments
            .iter()
            .filter(|(_, a)| a.end_time.is_some_and(|end| end <= now))
            .map(|(id, _)| id.clone())
            .collect();
        self.unlocked_proxies.retain(|_, expiry| *expiry > now);
        let timed_out: Vec<PendingApproval> = self
            .approvals
            .values()
            .filter(|a| a.expires.is_some_and(|e| e <= now))
            .cloned()
            .collect();
        for approval in timed_out {
            self.approvals.remove(&approval.id);
            if let Some(request) = self.schedule_requests.get_mut(&approval.request) {
                request["properties"]["status"] = serde_json::json!("TimedOut");
            }
        }
        self.unlocked_items.retain(|_, expiry| *expiry > now);
        ended.iter().filter_map(|id| self.role_assignments.remove(id)).collect()
    }
}

/// A new ETag: ARM's are opaque quoted strings.
pub fn new_etag() -> String {
    format!("\"{}\"", uuid::Uuid::new_v4().simple())
}
