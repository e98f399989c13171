//! ARM's front door: path parsing, api-version checks, bearer-token authentication, RBAC, throttling,
//! request IDs and the error envelope. Resource families live in their own modules and only see a parsed
//! [`ArmRequest`].

pub mod api_versions;
pub mod authorization;
pub mod backup;
pub mod casing;
pub mod guards;
pub mod mua;
pub mod protection;
pub mod resources;
pub mod vault_config;
pub mod vaults;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::identity::{ARM_AUDIENCES, Claims};
use super::state::SimState;
use super::throttle::OperationKind;

/// An ARM error: `{"error": {"code", "message"}}` with an HTTP status.
#[derive(Debug)]
pub struct ArmError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn not_found(kind: &str, name: &str, group: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{kind}/{name}' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// ARM's refusal when no role assignment allows `action` on `scope` to `principal`.
    pub fn authorization_failed(principal: &str, action: &str, scope: &str) -> Self {
        Self::forbidden(format!(
            "The client '{principal}' with object id '{principal}' does not have authorization to perform action \
             '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh \
             your credentials."
        ))
    }

    /// `AuthorizationFailed` with a message of the caller's own.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AuthorizationFailed", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// The refusal for a critical operation whose linked authorization check on the guard failed. Azure
    /// Backup's exact code was not seen in the specs; it is defined here, in one place.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn linked_authorization_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "LinkedAuthorizationFailed", message)
    }
}

/// A successful ARM answer.
#[derive(Debug)]
pub struct ArmResponse {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl ArmResponse {
    pub fn ok(body: Value) -> Self {
        Self::with_status(StatusCode::OK, body)
    }

    pub fn with_status(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

pub type ArmResult = Result<ArmResponse, ArmError>;

/// A parsed ARM path: `{scope}/providers/{provider}/{type}/{name}/{type}/{name}...`, split at the last
/// `providers` segment.
#[derive(Clone, Debug)]
pub struct ArmPath {
    /// Everything before the last `/providers/`, e.g. `/subscriptions/{s}/resourceGroups/{rg}`.
    pub scope: String,
    pub provider: String,
    /// Resource types from the provider on, e.g. `["vaults", "backupResourceGuardProxies"]`. One more
    /// type than names means a collection (or, for POST, an action).
    pub types: Vec<String>,
    pub names: Vec<String>,
}

impl ArmPath {
    pub fn parse(path: &str) -> Option<ArmPath> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let at = segments.iter().rposition(|s| s.eq_ignore_ascii_case("providers"))?;
        let provider = segments.get(at + 1)?.to_string();
        let rest = &segments[at + 2..];
        if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
            return None;
        }
        let types = rest.iter().step_by(2).map(|s| s.to_string()).collect();
        let names = rest.iter().skip(1).step_by(2).map(|s| s.to_string()).collect();
        let mut scope = format!("/{}", segments[..at].join("/"));
        // PIM also names a subscription scope as `providers/Microsoft.Subscription/subscriptions/{id}`.
        const SUBSCRIPTION_PROVIDER: &str = "/providers/microsoft.subscription/subscriptions/";
        if scope.to_ascii_lowercase().starts_with(SUBSCRIPTION_PROVIDER) {
            scope = format!("/{}", &scope["/providers/microsoft.subscription/".len()..]);
        }
        Some(ArmPath {
            scope: if scope == "/" { String::new() } else { scope },
            provider,
            types,
            names,
        })
    }

    /// The route key: lowercase provider and types, e.g. `microsoft.recoveryservices/vaults/backupresourceguardproxies`.
    pub fn kind(&self) -> String {
        format!("{}/{}", self.provider, self.types.join("/")).to_ascii_lowercase()
    }

    pub fn is_collection(&self) -> bool {
        self.types.len() > self.names.len()
    }

    /// The ID of the resource the path names (for a collection or action: its parent).
    pub fn resource_id(&self) -> String {
        self.resource_id_of(self.names.len())
    }

    /// The ID of the first `depth` resources of the path, e.g. the vault of a vault's child.
    pub fn resource_id_of(&self, depth: usize) -> String {
        let mut id = format!("{}/providers/{}", self.scope, self.provider);
        for (t, n) in self.types.iter().zip(&self.names).take(depth) {
            id.push_str(&format!("/{t}/{n}"));
        }
        id
    }

    /// The ARM type of the named resource, e.g. `Microsoft.RecoveryServices/vaults/backupResourceGuardProxies`.
    pub fn resource_type(&self) -> String {
        let types: Vec<&str> = self.types.iter().take(self.names.len()).map(String::as_str).collect();
        format!("{}/{}", self.provider, types.join("/"))
    }

    pub fn subscription(&self) -> Option<&str> {
        let mut parts = self.scope.trim_start_matches('/').split('/');
        match (parts.next(), parts.next()) {
            (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") => Some(id),
            _ => None,
        }
    }

    pub fn resource_group(&self) -> Option<&str> {
        let parts: Vec<&str> = self.scope.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            [s, _, rg, name, ..]
                if s.eq_ignore_ascii_case("subscriptions") && rg.eq_ignore_ascii_case("resourceGroups") =>
            {
                Some(name)
            }
            _ => None,
        }
    }

    /// The RBAC action for `method` on this path.
    pub fn action(&self, method: &Method) -> String {
        let types = self.types.join("/");
        let verb = match *method {
            Method::GET => "read",
            Method::DELETE => "delete",
            Method::POST => "action",
            _ => "write",
        };
        format!("{}/{types}/{verb}", self.provider)
    }
}

/// Everything a resource handler needs about one request.
pub struct ArmRequest {
    pub method: Method,
    pub path: ArmPath,
    pub api_version: String,
    pub query: HashMap<String, String>,
    pub caller: Claims,
    /// Tokens from other tenants (`x-ms-authorization-auxiliary`), verified.
    pub auxiliary: Vec<Claims>,
    pub body: Value,
    pub if_match: Option<String>,
}

impl ArmRequest {
    /// The caller's principal in `tenant`: the primary token if it is from that tenant, else an auxiliary one.
    pub fn principal_in(&self, tenant: &str) -> Option<&Claims> {
        std::iter::once(&self.caller)
            .chain(&self.auxiliary)
            .find(|c| c.tid.eq_ignore_ascii_case(tenant))
    }
}

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

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        add_headers(&mut response, &self.headers);
        response
    }
}

/// Every ARM answer carries a new `x-ms-request-id` and the caller's correlation ID (or a new one).
pub fn stamp_request_ids(request: &HeaderMap, response: &mut Response) {
    let correlation = request
        .get("x-ms-correlation-request-id")
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a uuid"));
    let headers = response.headers_mut();
    headers.insert(
        "x-ms-request-id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a uuid"),
    );
    headers.insert("x-ms-correlation-request-id", correlation);
}

fn add_headers(response: &mut Response, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().append(*name, value);
        }
    }
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
        || sim.read(|w| super::authz::is_allowed(w, &caller.oid, &action, &scope, sim.clock.now()));
    if !allowed {
        return Err(ArmError::authorization_failed(&caller.oid, &action, &scope));
    }
    if let Some(group) = path.resource_group() {
        let exists = sim.read(|w| {
            w.subscription(path.subscription().unwrap_or_default())
                .is_some_and(|s| s.resource_groups.contains_key(&group.to_ascii_lowercase()))
        });
        if !exists {
            return Err(resources::resource_group_not_found(group));
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

/// Runs a handler; a panic (a bug: handlers validate their input) becomes ARM's 500 for this request
/// alone, instead of a dropped connection.
pub(crate) fn run_handler(handler: impl FnOnce() -> ArmResult) -> ArmResult {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(handler)).unwrap_or_else(|_| {
        Err(ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The server encountered an internal error; the request was not completed.",
        ))
    })
}

pub(crate) fn require_api_version(query: &HashMap<String, String>) -> Result<String, ArmError> {
    query.get("api-version").cloned().ok_or_else(|| {
        ArmError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    })
}

/// ARM's refusal of an api-version the type does not publish.
pub(crate) fn check_api_version(published: &[&str], api_version: &str, type_name: &str) -> Result<(), ArmError> {
    if published.contains(&api_version) {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "NoRegisteredProviderFound",
        format!(
            "No registered resource provider found for location 'global' and API version '{api_version}' for type '{type_name}'. The supported api-versions are '{}'.",
            published.join(", ")
        ),
    ))
}

/// What every authenticated request goes through before its handler: the subscription (if any) must
/// exist and decides the tenant the token must come from; then throttling, and the call is counted.
/// Returns the remaining-budget headers.
pub(crate) fn admit(
    sim: &SimState,
    caller: &Claims,
    subscription: Option<&str>,
    method: &Method,
    route_name: &str,
) -> Result<Vec<(&'static str, String)>, ArmError> {
    let tenant = match subscription {
        Some(subscription) => {
            let Some(sub) = sim.read(|w| w.subscription(subscription).cloned()) else {
                return Err(resources::subscription_not_found(subscription));
            };
            sub.tenant
        }
        None => caller.tid.clone(),
    };
    if !caller.tid.eq_ignore_ascii_case(&tenant) {
        return Err(ArmError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenTenant",
            format!(
                "The access token is from the wrong issuer '{}'. It must match the tenant '{}/{tenant}/' associated with this subscription. Please use the authority (URL) '{}/{tenant}' to get the token.",
                caller.iss, sim.base_url, sim.base_url
            ),
        ));
    }
    let kind = match *method {
        Method::GET | Method::HEAD => OperationKind::Read,
        Method::DELETE => OperationKind::Delete,
        _ => OperationKind::Write,
    };
    let remaining = sim
        .throttle
        .admit(&tenant, subscription, &caller.oid, kind)
        .inspect_err(|_| sim.count_throttled(route_name, &caller.oid))?;
    sim.count_call(route_name, &caller.oid);
    Ok(remaining)
}

/// The bearer token's claims, checked the way ARM checks them.
fn authenticate(sim: &SimState, headers: &HeaderMap) -> Result<Claims, ArmError> {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) else {
        return Err(unauthorized(
            sim,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    verify_arm_token(sim, token)
}

fn verify_arm_token(sim: &SimState, token: &str) -> Result<Claims, ArmError> {
    let claims = sim.tokens.verify(token).map_err(|err| match err.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => unauthorized(
            sim,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.",
        ),
        _ => unauthorized(sim, "InvalidAuthenticationToken", "The access token is invalid."),
    })?;
    if !ARM_AUDIENCES.contains(&claims.aud.as_str()) {
        // ARM's own code for this case (its message, "obtained for wrong audience or resource", too).
        return Err(unauthorized(
            sim,
            "InvalidAuthenticationTokenAudience",
            &format!(
                "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences '{}'.",
                claims.aud,
                ARM_AUDIENCES.join("','")
            ),
        ));
    }
    Ok(claims)
}

/// `x-ms-authorization-auxiliary: Bearer <t1>, Bearer <t2>`: tokens from other tenants, for resources
/// (such as a Resource Guard) that live there. They must be issued to the same application as the primary
/// token: another identity's token cannot lend its access.
fn auxiliary_tokens(sim: &SimState, headers: &HeaderMap, caller: &Claims) -> Result<Vec<Claims>, ArmError> {
    let Some(value) = headers
        .get("x-ms-authorization-auxiliary")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(|t| t.trim().trim_start_matches("Bearer ").trim())
        .filter(|t| !t.is_empty())
        .map(|t| {
            let claims = verify_arm_token(sim, t).map_err(|mut err| {
                err.message = format!("The auxiliary token is invalid: {}", err.message);
                err
            })?;
            if claims.appid.is_none() || claims.appid != caller.appid {
                return Err(unauthorized(
                    sim,
                    "InvalidAuthenticationToken",
                    "The auxiliary token must be issued to the same application as the primary token.",
                ));
            }
            Ok(claims)
        })
        .collect()
}

fn unauthorized(sim: &SimState, code: &'static str, message: &str) -> ArmError {
    let mut err = ArmError::new(StatusCode::UNAUTHORIZED, code, message);
    err.headers.push((
        "www-authenticate",
        format!(
            "Bearer authorization_uri=\"{}/common\", error=\"invalid_token\", error_description=\"{message}\"",
            sim.base_url
        ),
    ));
    err
}

/// The most items one page of a list holds; the rest follow through `nextLink`.
pub const LIST_PAGE_SIZE: usize = 100;

/// One page of a list the way ARM pages: at most [`LIST_PAGE_SIZE`] items in `value` and, while more
/// remain, a `nextLink` to the same list with an opaque `$skiptoken`.
pub fn page(sim: &SimState, request: &ArmRequest, items: Vec<Value>) -> ArmResult {
    let collection = format!(
        "{}/{}",
        request.path.resource_id(),
        request.path.types.join("/").rsplit('/').next().unwrap_or_default()
    );
    let query: Vec<(&str, &str)> = request
        .query
        .iter()
        .filter(|(k, _)| k.as_str() != "$skiptoken")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    page_at(
        &sim.base_url,
        &collection,
        &query,
        request.query.get("$skiptoken").map(String::as_str),
        items,
    )
}

/// [`page`] for a list at `path` whose query (without `$skiptoken`) is `query`.
pub fn page_at(
    base_url: &str,
    path: &str,
    query: &[(&str, &str)],
    skiptoken: Option<&str>,
    items: Vec<Value>,
) -> ArmResult {
    let start = match skiptoken {
        None => 0,
        Some(token) => token
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= items.len())
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidSkipToken",
                    format!("The skip token '{token}' is not valid for this list."),
                )
            })?,
    };
    let end = start.saturating_add(LIST_PAGE_SIZE).min(items.len());
    let mut body = json!({"value": items[start..end]});
    if end < items.len() {
        let mut url = url::Url::parse(&format!("{base_url}{path}")).map_err(|err| {
            ArmError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                format!("A list URL could not be formed: {err}"),
            )
        })?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().copied())
            .append_pair("$skiptoken", &end.to_string());
        body["nextLink"] = json!(url.to_string());
    }
    Ok(ArmResponse::ok(body))
}

/// Checks `If-Match` against the stored ETag (412 on mismatch, as ARM answers).
pub fn check_if_match(request: &ArmRequest, etag: Option<&str>) -> Result<(), ArmError> {
    match (&request.if_match, etag) {
        (None, _) => Ok(()),
        (Some(want), _) if want == "*" => Ok(()),
        (Some(want), Some(have)) if want == have => Ok(()),
        (Some(want), _) => Err(ArmError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!(
                "The condition specified using HTTP conditional header(s) is not met: If-Match '{want}' does not match the current ETag."
            ),
        )),
    }
}

/// The location of the resource group (or subscription) that holds a path, for defaults and checks.
pub fn location_of(sim: &SimState, path: &ArmPath) -> Option<String> {
    let sub = path.subscription()?;
    let group = path.resource_group()?;
    sim.read(|w| {
        w.subscription(sub)
            .and_then(|s| s.resource_groups.get(&group.to_ascii_lowercase()))
            .map(|g| g.location.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_resource_paths() {
        let p = ArmPath::parse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1/backupResourceGuardProxies/VaultProxy/unlockDelete").unwrap();
        assert_eq!(
            p.kind(),
            "microsoft.recoveryservices/vaults/backupresourceguardproxies/unlockdelete"
        );
        assert_eq!(p.names, ["v1", "VaultProxy"]);
        assert!(p.is_collection());
        assert_eq!(p.subscription(), Some("s1"));
        assert_eq!(p.resource_group(), Some("rg"));
        assert_eq!(
            p.resource_id(),
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1/backupResourceGuardProxies/VaultProxy"
        );
        assert_eq!(
            p.action(&Method::POST),
            "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies/unlockDelete/action"
        );
    }

    #[test]
    fn a_handler_that_panics_answers_500_for_its_request_alone() {
        let err = run_handler(|| panic!("a handler bug")).unwrap_err();
        assert_eq!(
            (err.status, err.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError")
        );
        assert!(run_handler(|| Ok(ArmResponse::empty(StatusCode::OK))).is_ok());
    }

    #[test]
    fn a_list_pages_with_a_skip_token_in_its_next_link() {
        let items: Vec<Value> = (0..LIST_PAGE_SIZE + 5).map(|n| json!(n)).collect();
        let first = page_at("https://sim", "/x/list", &[("api-version", "1")], None, items.clone()).unwrap();
        let body = first.body.unwrap();
        assert_eq!(body["value"].as_array().unwrap().len(), LIST_PAGE_SIZE);
        assert_eq!(
            body["nextLink"],
            format!("https://sim/x/list?api-version=1&%24skiptoken={LIST_PAGE_SIZE}")
        );
        let token = LIST_PAGE_SIZE.to_string();
        let last = page_at("https://sim", "/x/list", &[], Some(&token), items)
            .unwrap()
            .body
            .unwrap();
        assert_eq!(last["value"].as_array().unwrap().len(), 5);
        assert!(last.get("nextLink").is_none());
    }

    #[test]
    fn splits_scope_at_the_last_providers_segment() {
        let p = ArmPath::parse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/g/providers/Microsoft.Authorization/roleAssignments/a1").unwrap();
        assert_eq!(
            p.scope,
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/g"
        );
        assert_eq!(p.kind(), "microsoft.authorization/roleassignments");
        assert!(!p.is_collection());
        let tenant = ArmPath::parse("/providers/Microsoft.Authorization/roleAssignmentApprovals/x/stages/y").unwrap();
        assert_eq!(tenant.scope, "");
        assert_eq!(tenant.subscription(), None);
    }
}
