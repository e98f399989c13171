//! ARM's front door: path parsing, api-version checks, bearer-token authentication, RBAC, throttling,
//! request IDs and the error envelope. Resource families live in their own modules and only see a parsed
//! [`ArmRequest`].

pub mod api_versions;
pub mod authorization;
pub mod backup;
pub mod caller;
pub mod casing;
pub mod guards;
pub mod mua;
pub mod protection;
pub mod request;
pub mod resources;
pub mod vault_config;
pub mod vaults;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ArmError, add_headers};
use crate::state::SimState;
use caller::{admit, authenticate, auxiliary_tokens};
use request::{ArmPath, ArmRequest, ArmResult, check_api_version, require_api_version, run_handler};

/// A route's supported api-versions and its handler.
struct Route {
    api_versions: &'static [&'static str],
    handler: fn(&SimState, &ArmRequest) -> ArmResult,
    /// PIM requests and approvals: who may call them is decided by the handler (eligibility, approver
    /// lists), not by the caller's role assignments.
    own_authorization: bool,
}

use api_versions::{
    DATA_PROTECTION, PIM, PIM_APPROVALS, RECOVERY_SERVICES_BACKUP, RECOVERY_SERVICES_VAULTS, ROLE_ASSIGNMENTS,
    ROLE_DEFINITIONS,
};

fn route(path: &ArmPath, method: &Method) -> Option<Route> {
    let r = |api_versions, handler| {
        Some(Route {
            api_versions,
            handler,
            own_authorization: false,
        })
    };
    let own = |api_versions, handler| {
        Some(Route {
            api_versions,
            handler,
            own_authorization: true,
        })
    };
    let named = !path.is_collection();
    match (path.kind().as_str(), method.as_str(), named) {
        ("microsoft.dataprotection/resourceguards", "GET", true) => r(DATA_PROTECTION, guards::get),
        ("microsoft.dataprotection/resourceguards", "PUT", true) => r(DATA_PROTECTION, guards::put),
        ("microsoft.dataprotection/resourceguards", "PATCH", true) => r(DATA_PROTECTION, guards::patch),
        ("microsoft.dataprotection/resourceguards", "DELETE", true) => r(DATA_PROTECTION, guards::delete),
        ("microsoft.dataprotection/resourceguards", "GET", false) => r(DATA_PROTECTION, guards::list),
        (kind, "GET", _) if kind.starts_with("microsoft.dataprotection/resourceguards/") && path.types.len() == 2 => {
            r(DATA_PROTECTION, guards::request_object)
        }
        ("microsoft.recoveryservices/vaults", "GET", true) => r(RECOVERY_SERVICES_VAULTS, vaults::get_vault),
        ("microsoft.recoveryservices/vaults", "GET", false) => r(RECOVERY_SERVICES_VAULTS, vaults::list_vaults),
        ("microsoft.recoveryservices/vaults", "PUT", true) => r(RECOVERY_SERVICES_VAULTS, vaults::put),
        ("microsoft.recoveryservices/vaults", "PATCH", true) => r(RECOVERY_SERVICES_VAULTS, vaults::patch),
        ("microsoft.recoveryservices/vaults/operationstatus", "GET", true) => {
            r(RECOVERY_SERVICES_VAULTS, vaults::operation_status)
        }
        ("microsoft.recoveryservices/vaults/operationresults", "GET", true) => {
            r(RECOVERY_SERVICES_VAULTS, vaults::operation_result)
        }
        ("microsoft.recoveryservices/vaults/backupresourceguardproxies", "GET", true) => {
            r(RECOVERY_SERVICES_BACKUP, vaults::get_proxy)
        }
        ("microsoft.recoveryservices/vaults/backupresourceguardproxies", "GET", false) => {
            r(RECOVERY_SERVICES_BACKUP, vaults::list_proxies)
        }
        ("microsoft.recoveryservices/vaults/backupresourceguardproxies", "PUT", true) => {
            r(RECOVERY_SERVICES_BACKUP, vaults::put_proxy)
        }
        ("microsoft.recoveryservices/vaults/backupresourceguardproxies", "DELETE", true) => {
            r(RECOVERY_SERVICES_BACKUP, vaults::delete_proxy)
        }
        ("microsoft.recoveryservices/vaults/backupresourceguardproxies/unlockdelete", "POST", _) => {
            r(RECOVERY_SERVICES_BACKUP, vaults::unlock_proxy)
        }
        ("microsoft.recoveryservices/vaults/backuppolicies", "GET", true) => {
            r(RECOVERY_SERVICES_BACKUP, backup::get_resource)
        }
        ("microsoft.recoveryservices/vaults/backuppolicies", "PUT", true) => {
            r(RECOVERY_SERVICES_BACKUP, backup::put_policy)
        }
        ("microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems", "GET", true) => {
            r(RECOVERY_SERVICES_BACKUP, backup::get_resource)
        }
        ("microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems", "PUT", true) => {
            r(RECOVERY_SERVICES_BACKUP, backup::put_item)
        }
        ("microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems", "DELETE", true) => {
            r(RECOVERY_SERVICES_BACKUP, backup::delete_item)
        }
        ("microsoft.recoveryservices/vaults/backupstorageconfig", "GET", true) => {
            r(RECOVERY_SERVICES_BACKUP, vault_config::get_storage)
        }
        ("microsoft.recoveryservices/vaults/backupconfig", "GET", true) => {
            r(RECOVERY_SERVICES_BACKUP, vault_config::get)
        }
        ("microsoft.recoveryservices/vaults/backupconfig", "PATCH", true) => {
            r(RECOVERY_SERVICES_BACKUP, vault_config::patch)
        }
        ("microsoft.recoveryservices/vaults/backupconfig", "PUT", true) => {
            r(RECOVERY_SERVICES_BACKUP, vault_config::put)
        }
        ("microsoft.recoveryservices/vaults/backupsecuritypin", "POST", _) => {
            r(RECOVERY_SERVICES_BACKUP, backup::security_pin)
        }
        ("microsoft.dataprotection/backupvaults", "GET", true) => r(DATA_PROTECTION, vaults::get_vault),
        ("microsoft.dataprotection/backupvaults", "GET", false) => r(DATA_PROTECTION, vaults::list_vaults),
        ("microsoft.dataprotection/backupvaults", "PUT", true) => r(DATA_PROTECTION, vaults::put_backup_vault),
        ("microsoft.dataprotection/backupvaults", "PATCH", true) => r(DATA_PROTECTION, vaults::patch_backup_vault),
        ("microsoft.dataprotection/backupvaults/backupresourceguardproxies", "GET", true) => {
            r(DATA_PROTECTION, vaults::get_proxy)
        }
        ("microsoft.dataprotection/backupvaults/backupresourceguardproxies", "GET", false) => {
            r(DATA_PROTECTION, vaults::list_proxies)
        }
        ("microsoft.dataprotection/backupvaults/backupresourceguardproxies", "PUT", true) => {
            r(DATA_PROTECTION, vaults::put_proxy)
        }
        ("microsoft.dataprotection/backupvaults/backupresourceguardproxies", "DELETE", true) => {
            r(DATA_PROTECTION, vaults::delete_proxy)
        }
        ("microsoft.dataprotection/backupvaults/backupresourceguardproxies/unlockdelete", "POST", _) => {
            r(DATA_PROTECTION, vaults::unlock_proxy)
        }
        ("microsoft.dataprotection/backupvaults/backuppolicies", "GET", true) => {
            r(DATA_PROTECTION, backup::get_resource)
        }
        ("microsoft.dataprotection/backupvaults/backuppolicies", "PUT", true) => r(DATA_PROTECTION, backup::put_policy),
        ("microsoft.dataprotection/backupvaults/backupinstances", "GET", true) => {
            r(DATA_PROTECTION, backup::get_resource)
        }
        ("microsoft.dataprotection/backupvaults/backupinstances", "PUT", true) => r(DATA_PROTECTION, backup::put_item),
        ("microsoft.dataprotection/backupvaults/backupinstances", "DELETE", true) => {
            r(DATA_PROTECTION, backup::delete_item)
        }
        ("microsoft.authorization/roleassignments", "GET", true) => r(ROLE_ASSIGNMENTS, authorization::get_assignment),
        ("microsoft.authorization/roleassignments", "PUT", true) => r(ROLE_ASSIGNMENTS, authorization::put_assignment),
        ("microsoft.authorization/roleassignments", "DELETE", true) => {
            r(ROLE_ASSIGNMENTS, authorization::delete_assignment)
        }
        ("microsoft.authorization/roleassignments", "GET", false) => {
            r(ROLE_ASSIGNMENTS, authorization::list_assignments)
        }
        ("microsoft.authorization/roledefinitions", "GET", true) => {
            r(ROLE_DEFINITIONS, authorization::get_role_definition)
        }
        ("microsoft.authorization/roledefinitions", "GET", false) => {
            r(ROLE_DEFINITIONS, authorization::list_role_definitions)
        }
        ("microsoft.authorization/roleassignmentschedulerequests", "PUT", true) => {
            own(PIM, authorization::put_schedule_request)
        }
        ("microsoft.authorization/roleassignmentschedulerequests", "GET", true) => {
            own(PIM, authorization::get_schedule_request)
        }
        ("microsoft.authorization/roleassignmentschedulerequests", "GET", false) => {
            own(PIM, authorization::list_schedule_requests)
        }
        ("microsoft.authorization/roleassignmentschedulerequests/cancel", "POST", _) => {
            own(PIM, authorization::cancel_schedule_request)
        }
        ("microsoft.authorization/roleeligibilityschedules", "GET", false) => {
            own(PIM, authorization::list_eligibility_schedules)
        }
        ("microsoft.authorization/rolemanagementpolicies", "GET", false) => own(PIM, authorization::list_policies),
        ("microsoft.authorization/rolemanagementpolicies", "GET", true) => own(PIM, authorization::get_policy),
        ("microsoft.authorization/rolemanagementpolicies", "PATCH", true) => own(PIM, authorization::patch_policy),
        ("microsoft.authorization/rolemanagementpolicyassignments", "GET", false) => {
            own(PIM, authorization::list_policy_assignments)
        }
        ("microsoft.authorization/roleassignmentapprovals/stages", "PUT", true) => {
            own(PIM_APPROVALS, authorization::decide_approval)
        }
        ("microsoft.authorization/roleassignmentapprovals", "GET", true) => {
            own(PIM_APPROVALS, authorization::get_approval)
        }
        _ => None,
    }
}

/// Every ARM request enters here.
pub async fn handle(
    State(sim): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = match serve(&sim, &method, &uri, &headers, &body) {
        Ok(ok) => {
            let mut response = match ok.body {
                Some(body) => (ok.status, axum::Json(body)).into_response(),
                None => ok.status.into_response(),
            };
            add_headers(&mut response, &ok.headers);
            response
        }
        Err(err) => {
            tracing::debug!(%method, %uri, code = err.code, message = %err.message, "ARM error");
            err.into_response()
        }
    };
    stamp_request_ids(&headers, &mut response);
    response
}

/// Every ARM answer carries a new `x-ms-request-id` and the caller's correlation ID (or a new one).
pub fn stamp_request_ids(request: &HeaderMap, response: &mut Response) {
    let correlation = request
        .get("x-ms-correlation-request-id")
        .cloned()
        .unwrap_or_else(new_request_id);
    let headers = response.headers_mut();
    headers.insert("x-ms-request-id", new_request_id());
    headers.insert("x-ms-correlation-request-id", correlation);
}

/// A new request ID: a v4 UUID.
#[allow(clippy::expect_used, reason = "a UUID's text is ASCII, a valid header value")]
fn new_request_id() -> HeaderValue {
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a uuid")
}

fn serve(sim: &SimState, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> ArmResult {
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    // ARM serves its metadata to anyone: clients read it before they have a token.
    if resources::is_metadata_path(uri.path()) {
        return resources::metadata_endpoints(sim, method, &query);
    }
    let caller = authenticate(sim, headers)?;
    // Subscriptions, tenants, resource groups and providers: ARM's own resources, not under a provider.
    if let Some(core) = resources::CorePath::parse(uri.path()) {
        let api_version = require_api_version(&query)?;
        return resources::serve(
            sim,
            method,
            &core,
            &api_version,
            query.get("$skiptoken").map(String::as_str),
            &caller,
        );
    }
    let Some(path) = ArmPath::parse(uri.path()) else {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!("The resource path '{}' is not a valid ARM resource path.", uri.path()),
        ));
    };
    let api_version = require_api_version(&query)?;
    let Some(route) = route(&path, method) else {
        return Err(ArmError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType",
            format!(
                "The resource type '{}' could not be found in the namespace '{}' for api version '{api_version}'.",
                path.types.join("/"),
                path.provider
            ),
        ));
    };
    check_api_version(route.api_versions, &api_version, &path.types.join("/"))?;

    let remaining = admit(
        sim,
        &caller,
        path.subscription(),
        method,
        &format!("{method} {}", path.kind()),
    )?;

    let action = path.action(method);
    let scope = path.resource_id();
    let allowed = route.own_authorization
        || sim.read(|w| crate::authz::is_allowed(w, &caller.oid, &action, &scope, sim.clock.now()));
    if !allowed {
        return Err(ArmError::authorization_failed(&caller.oid, &action, &scope));
    }
    if let Some(group) = path.resource_group() {
        let exists = sim.read(|w| {
            w.subscription(path.subscription().unwrap_or_default())
                .is_some_and(|s| s.resource_groups.contains_key(&group.to_ascii_lowercase()))
        });
        if !exists {
            return Err(ArmError::resource_group_not_found(group));
        }
    }

    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|err| {
            ArmError::bad_request(
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{err}'."),
            )
        })?
    };
    if matches!(*method, Method::PUT | Method::PATCH) && !body.is_object() {
        return Err(ArmError::bad_request(
            "InvalidRequestContent",
            "The request content was invalid: a PUT or PATCH body must be a JSON object.",
        ));
    }
    let auxiliary = auxiliary_tokens(sim, headers, &caller)?;
    let request = ArmRequest {
        method: method.clone(),
        path,
        api_version,
        query,
        caller,
        auxiliary,
        body,
        if_match: headers
            .get("if-match")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let mut response = run_handler(|| (route.handler)(sim, &request))?;
    response.headers.extend(remaining);
    Ok(response)
}
