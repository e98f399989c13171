//! ARM's wire format as resource handlers see it: the parsed path, the request, the response, and the
//! rules every handler shares (api-versions, paging with `nextLink`, `If-Match`, the resource group's
//! location). Handlers return an [`ArmResult`].

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::error::ArmError;
use crate::state::SimState;
use crate::tokens::Claims;

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
