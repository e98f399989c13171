//! ARM's own resources, which clients read before anything else: the cloud's metadata (served without a
//! token), subscriptions and tenants, resource groups and resource providers. `az login` lists the
//! caller's subscriptions, `az cloud register` reads the metadata, and most `az` commands check the
//! resource group.
//!
//! Sources, per request (azure-cli 2.91.0 run with `--debug` against the simulator shows each one):
//! - `az cloud register --endpoint-resource-manager URL`: `GET URL/metadata/endpoints?api-version=2022-09-01`
//!   without a token (`command_modules/cloud/custom.py`, `_populate_from_metadata_endpoint`); the body is one
//!   cloud object read by `core/cloud.py` `_arm_to_cli_mapper` (`name`, `authentication.loginEndpoint`,
//!   `authentication.audiences[0]` as the token audience, `resourceManager`, `suffixes`, ...).
//! - `az login --service-principal --tenant T`: `GET /subscriptions?api-version=2022-12-01`; the item shape
//!   (`id`, `authorizationSource`, `managedByTenants`, `subscriptionId`, `tenantId`, `displayName`,
//!   `state`, `subscriptionPolicies`, and `count`) is ARM's recorded answer (`subscriptions.json`,
//!   `stable/2022-12-01`). ARM lists the subscriptions the caller has access to: any role assignment at,
//!   above or inside the subscription.
//! - `az group show/list`: `GET /subscriptions/{s}/resourcegroups[/{rg}]?api-version=2024-11-01`, the
//!   `ResourceGroup` of `resources.json` (names case-insensitive, the stored casing returned).
//! - `az provider show/register`: `GET /subscriptions/{s}/providers/{ns}`, `POST .../{ns}/register`
//!   (the `Provider` of `resources.json`; registering needs `{ns}/register/action`).

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::api_versions::{
    DATA_PROTECTION, METADATA, RECOVERY_SERVICES_BACKUP, RECOVERY_SERVICES_VAULTS, RESOURCES, ROLE_ASSIGNMENTS,
    ROLE_DEFINITIONS, SUBSCRIPTIONS,
};
use super::caller::admit;
use super::request::{ArmResponse, ArmResult, check_api_version, page_at, require_api_version, run_handler};
use crate::authz::{is_allowed, scope_covers};
use crate::error::ArmError;
use crate::state::SimState;
use crate::tokens::Claims;
use crate::world::{Subscription, World};

/// A path to one of ARM's own resources (segment names are case-insensitive, as in ARM).
#[derive(Clone, Debug, PartialEq)]
pub enum CorePath {
    Tenants,
    Subscriptions,
    Subscription(String),
    ResourceGroups(String),
    ResourceGroup(String, String),
    Providers(String),
    Provider(String, String),
    /// `POST /subscriptions/{s}/providers/{namespace}/register`
    Register(String, String),
}

impl CorePath {
    pub fn parse(path: &str) -> Option<CorePath> {
        let segments: Vec<&str> = path.trim_end_matches('/').trim_start_matches('/').split('/').collect();
        let is = |i: usize, name: &str| segments.get(i).is_some_and(|s| s.eq_ignore_ascii_case(name));
        let at = |i: usize| segments[i].to_string();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        match segments.len() {
            1 if is(0, "tenants") => Some(CorePath::Tenants),
            1 if is(0, "subscriptions") => Some(CorePath::Subscriptions),
            2 if is(0, "subscriptions") => Some(CorePath::Subscription(at(1))),
            3 if is(0, "subscriptions") && is(2, "resourcegroups") => Some(CorePath::ResourceGroups(at(1))),
            4 if is(0, "subscriptions") && is(2, "resourcegroups") => Some(CorePath::ResourceGroup(at(1), at(3))),
            3 if is(0, "subscriptions") && is(2, "providers") => Some(CorePath::Providers(at(1))),
            4 if is(0, "subscriptions") && is(2, "providers") => Some(CorePath::Provider(at(1), at(3))),
            5 if is(0, "subscriptions") && is(2, "providers") && is(4, "register") => {
                Some(CorePath::Register(at(1), at(3)))
            }
            _ => None,
        }
    }

    fn subscription(&self) -> Option<&str> {
        match self {
            CorePath::Tenants | CorePath::Subscriptions => None,
            CorePath::Subscription(s)
            | CorePath::ResourceGroups(s)
            | CorePath::ResourceGroup(s, _)
            | CorePath::Providers(s)
            | CorePath::Provider(s, _)
            | CorePath::Register(s, _) => Some(s),
        }
    }

    /// The route name calls are counted under, and the type named in api-version errors.
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            CorePath::Tenants => ("tenants", "tenants"),
            CorePath::Subscriptions | CorePath::Subscription(_) => ("subscriptions", "subscriptions"),
            CorePath::ResourceGroups(_) | CorePath::ResourceGroup(..) => ("resourcegroups", "resourceGroups"),
            CorePath::Providers(_) | CorePath::Provider(..) => ("providers", "providers"),
            CorePath::Register(..) => ("providers/register", "providers"),
        }
    }

    fn api_versions(&self) -> &'static [&'static str] {
        match self {
            CorePath::Tenants | CorePath::Subscriptions | CorePath::Subscription(_) => SUBSCRIPTIONS,
            _ => RESOURCES,
        }
    }
}

/// Serves one of ARM's own resources for an authenticated caller.
pub fn serve(
    sim: &SimState,
    method: &Method,
    path: &CorePath,
    api_version: &str,
    skiptoken: Option<&str>,
    caller: &Claims,
) -> ArmResult {
    let (route, type_name) = path.names();
    let allowed_method = match path {
        CorePath::Register(..) => Method::POST,
        _ => Method::GET,
    };
    if *method != allowed_method {
        return Err(ArmError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The simulator serves only {allowed_method} on '{type_name}'."),
        ));
    }
    check_api_version(path.api_versions(), api_version, type_name)?;
    let remaining = admit(sim, caller, path.subscription(), method, &format!("{method} {route}"))?;
    let now = sim.clock.now();
    let oid = caller.oid.to_ascii_lowercase();
    let mut response = run_handler(|| {
        sim.read(|w| match path {
            CorePath::Tenants => Ok(ArmResponse::ok(json!({ "value": [render_tenant(w, &caller.tid)] }))),
            CorePath::Subscriptions => {
                let value: Vec<Value> = w
                    .subscriptions
                    .values()
                    .filter(|s| s.tenant.eq_ignore_ascii_case(&caller.tid) && has_access(w, &oid, &sub_scope(s), now))
                    .map(render_subscription)
                    .collect();
                let count = value.len();
                let mut page = page_at(
                    &sim.base_url,
                    "/subscriptions",
                    &[("api-version", api_version)],
                    skiptoken,
                    value,
                )?;
                if let Some(body) = page.body.as_mut() {
                    body["count"] = json!({"type": "Total", "value": count});
                }
                Ok(page)
            }
            CorePath::Subscription(id) => {
                let sub = visible_subscription(w, id, &oid, now)?;
                Ok(ArmResponse::ok(render_subscription(sub)))
            }
            CorePath::ResourceGroups(id) => {
                let sub = visible_subscription(w, id, &oid, now)?;
                let value: Vec<Value> = sub
                    .resource_groups
                    .values()
                    .map(|g| render_group(sub, &g.name, &g.location))
                    .filter(|g| {
                        let id = g["id"].as_str().unwrap_or_default();
                        is_allowed(
                            w,
                            &oid,
                            "Microsoft.Resources/subscriptions/resourceGroups/read",
                            id,
                            now,
                        )
                    })
                    .collect();
                let path = format!("{}/resourcegroups", sub_scope(sub));
                page_at(&sim.base_url, &path, &[("api-version", api_version)], skiptoken, value)
            }
            CorePath::ResourceGroup(id, name) => {
                let sub = w.subscription(id).ok_or_else(|| ArmError::subscription_not_found(id))?;
                let group_id = format!("{}/resourceGroups/{name}", sub_scope(sub));
                let action = "Microsoft.Resources/subscriptions/resourceGroups/read";
                if !is_allowed(w, &oid, action, &group_id, now) {
                    return Err(ArmError::authorization_failed(&caller.oid, action, &group_id));
                }
                let group = sub
                    .resource_groups
                    .get(&name.to_ascii_lowercase())
                    .ok_or_else(|| ArmError::resource_group_not_found(name))?;
                Ok(ArmResponse::ok(render_group(sub, &group.name, &group.location)))
            }
            CorePath::Providers(id) => {
                let sub = visible_subscription(w, id, &oid, now)?;
                let value: Vec<Value> = PROVIDERS.iter().map(|p| render_provider(sub, p)).collect();
                Ok(ArmResponse::ok(json!({ "value": value })))
            }
            CorePath::Provider(id, namespace) => {
                let sub = visible_subscription(w, id, &oid, now)?;
                Ok(ArmResponse::ok(render_provider(sub, provider(namespace)?)))
            }
            CorePath::Register(id, namespace) => {
                let sub = w.subscription(id).ok_or_else(|| ArmError::subscription_not_found(id))?;
                let provider = provider(namespace)?;
                // Registering is `{namespace}/register/action` on the subscription (Contributor has it,
                // Reader does not). Every provider the simulator serves is registered already, so it
                // changes nothing.
                let action = format!("{}/register/action", provider.namespace);
                if !is_allowed(w, &oid, &action, &sub_scope(sub), now) {
                    return Err(ArmError::authorization_failed(&caller.oid, &action, &sub_scope(sub)));
                }
                Ok(ArmResponse::ok(render_provider(sub, provider)))
            }
        })
    })?;
    response.headers.extend(remaining);
    Ok(response)
}

fn sub_scope(sub: &Subscription) -> String {
    format!("/subscriptions/{}", sub.id)
}

/// Whether the principal holds any active role at, above or below `scope`: ARM lists (and shows) a
/// subscription to whoever has access to anything in it.
fn has_access(w: &World, principal: &str, scope: &str, now: jiff::Timestamp) -> bool {
    w.role_assignments.values().any(|a| {
        a.principal_id.eq_ignore_ascii_case(principal)
            && a.end_time.is_none_or(|end| end > now)
            && (scope_covers(&a.scope, scope) || scope_covers(scope, &a.scope))
    })
}

/// A subscription the caller can see; ARM answers one it cannot see as it answers one that does not
/// exist.
fn visible_subscription<'w>(
    w: &'w World,
    id: &str,
    principal: &str,
    now: jiff::Timestamp,
) -> Result<&'w Subscription, ArmError> {
    w.subscription(id)
        .filter(|s| has_access(w, principal, &sub_scope(s), now))
        .ok_or_else(|| ArmError::subscription_not_found(id))
}

/// A subscription as `GET /subscriptions` (2022-12-01) returns it.
fn render_subscription(sub: &Subscription) -> Value {
    let name = if sub.name.is_empty() { &sub.id } else { &sub.name };
    json!({
        "id": sub_scope(sub),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.id,
        "tenantId": sub.tenant,
        "displayName": name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    })
}

fn render_tenant(w: &World, tenant: &str) -> Value {
    let name = w
        .tenants
        .get(&tenant.to_ascii_lowercase())
        .map(|t| t.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| tenant.to_string());
    json!({
        "id": format!("/tenants/{tenant}"),
        "tenantId": tenant,
        "tenantCategory": "Home",
        "displayName": name,
        "domains": [],
        "tenantType": "AAD",
    })
}

/// A resource group as `GET /subscriptions/{s}/resourcegroups/{rg}` returns it.
fn render_group(sub: &Subscription, name: &str, location: &str) -> Value {
    json!({
        "id": format!("{}/resourceGroups/{name}", sub_scope(sub)),
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": location,
        "properties": {"provisioningState": "Succeeded"},
    })
}

/// A resource provider the simulator serves, and its resource types with their api-versions.
struct Provider {
    namespace: &'static str,
    types: &'static [(&'static str, &'static [&'static str])],
}

const PROVIDERS: &[Provider] = &[
    Provider {
        namespace: "Microsoft.RecoveryServices",
        types: &[
            ("vaults", RECOVERY_SERVICES_VAULTS),
            ("vaults/backupResourceGuardProxies", RECOVERY_SERVICES_BACKUP),
            ("vaults/backupPolicies", RECOVERY_SERVICES_BACKUP),
            (
                "vaults/backupFabrics/protectionContainers/protectedItems",
                RECOVERY_SERVICES_BACKUP,
            ),
        ],
    },
    Provider {
        namespace: "Microsoft.DataProtection",
        types: &[
            ("resourceGuards", DATA_PROTECTION),
            ("backupVaults", DATA_PROTECTION),
            ("backupVaults/backupResourceGuardProxies", DATA_PROTECTION),
            ("backupVaults/backupInstances", DATA_PROTECTION),
        ],
    },
    Provider {
        namespace: "Microsoft.Authorization",
        types: &[
            ("roleAssignments", ROLE_ASSIGNMENTS),
            ("roleDefinitions", ROLE_DEFINITIONS),
        ],
    },
];

fn provider(namespace: &str) -> Result<&'static Provider, ArmError> {
    PROVIDERS
        .iter()
        .find(|p| p.namespace.eq_ignore_ascii_case(namespace))
        .ok_or_else(|| {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "InvalidResourceNamespace",
                format!("The resource namespace '{namespace}' is invalid."),
            )
        })
}

/// A provider as `GET /subscriptions/{s}/providers/{namespace}` returns it (always registered here).
fn render_provider(sub: &Subscription, provider: &Provider) -> Value {
    let types: Vec<Value> = provider
        .types
        .iter()
        .map(|(name, versions)| {
            let mut newest_first = versions.to_vec();
            newest_first.reverse();
            json!({"resourceType": name, "locations": [], "apiVersions": newest_first})
        })
        .collect();
    json!({
        "id": format!("{}/providers/{}", sub_scope(sub), provider.namespace),
        "namespace": provider.namespace,
        "registrationState": "Registered",
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": types,
    })
}

/// The audiences the metadata names, as the public cloud's lists them (with a trailing slash, the legacy
/// `management.core` one first): those ARM accepts.
fn metadata_audiences(sim: &SimState) -> Vec<String> {
    let mut audiences: Vec<String> = sim.arm_audiences.iter().filter(|a| a.ends_with('/')).cloned().collect();
    audiences.sort_by_key(|a| !a.contains("management.core."));
    audiences
}

pub fn is_metadata_path(path: &str) -> bool {
    path.trim_end_matches('/').eq_ignore_ascii_case("/metadata/endpoints")
}

/// `GET /metadata/endpoints?api-version=...`: the cloud's endpoints, which ARM serves without a token and
/// `az cloud register --endpoint-resource-manager` reads. Here ARM, the authority and the audience are
/// all the simulator; audiences are those ARM accepts.
pub fn metadata_endpoints(sim: &SimState, method: &Method, query: &HashMap<String, String>) -> ArmResult {
    if *method != Method::GET {
        return Err(ArmError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The metadata endpoint answers GET only.",
        ));
    }
    let api_version = require_api_version(query)?;
    check_api_version(METADATA, &api_version, "metadata/endpoints")?;
    let base = &sim.base_url;
    Ok(ArmResponse::ok(json!({
        "name": "MuaSimulator",
        "portal": base,
        "resourceManager": format!("{base}/"),
        "authentication": {
            "loginEndpoint": format!("{base}/"),
            "audiences": metadata_audiences(sim),
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "media": base,
        "graphAudience": base,
        "graph": format!("{base}/"),
        "microsoftGraphResourceId": format!("{base}/"),
        "batch": base,
        "sqlManagement": base,
        "gallery": base,
        "vmImageAliasDoc": base,
        "suffixes": {
            "keyVaultDns": ".vault.mua-sim.invalid",
            "storage": "mua-sim.invalid",
            "sqlServerHostname": ".database.mua-sim.invalid",
            "acrLoginServer": ".azurecr.mua-sim.invalid",
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arms_own_paths_case_insensitively() {
        assert_eq!(CorePath::parse("/subscriptions"), Some(CorePath::Subscriptions));
        assert_eq!(CorePath::parse("/tenants"), Some(CorePath::Tenants));
        assert_eq!(
            CorePath::parse("/subscriptions/s1/resourcegroups/RG"),
            Some(CorePath::ResourceGroup("s1".into(), "RG".into()))
        );
        assert_eq!(
            CorePath::parse("/Subscriptions/s1/resourceGroups"),
            Some(CorePath::ResourceGroups("s1".into()))
        );
        assert_eq!(
            CorePath::parse("/subscriptions/s1/providers/Microsoft.RecoveryServices/register"),
            Some(CorePath::Register("s1".into(), "Microsoft.RecoveryServices".into()))
        );
        // Paths into a provider's resources are not ARM's own.
        assert_eq!(
            CorePath::parse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"),
            None
        );
        assert_eq!(
            CorePath::parse("/subscriptions/s1/providers/Microsoft.DataProtection/resourceGuards"),
            None
        );
    }
}
