//! The few Microsoft Graph look-ups clients make to turn a name into an object ID: `az role assignment
//! create --assignee <appId or UPN>` asks `GET /v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c
//! eq '<appId>')`, `GET /v1.0/users?$filter=userPrincipalName eq '<upn>'` and, for a bare GUID, `POST
//! /v1.0/directoryObjects/getByIds` (azure-cli 2.91, `role/custom.py` `_resolve_object_id_and_type`).
//!
//! Graph is served at the simulator's base URL, which its metadata advertises as `microsoftGraphResourceId`,
//! so one setting gives clients both the host and the token audience, as in Azure. Graph checks what ARM
//! does not: a token for Graph's audience, and for an application, a Graph permission (`Directory.Read.All`,
//! or `Application.Read.All` for service principals and `User.Read.All` for users); people may read their
//! own tenant's directory, as Entra's default user permissions allow.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::state::SimState;
use super::world::{Principal, PrincipalType};
use crate::tokens::Claims;

/// The audiences Graph accepts: the simulator (as its metadata names Graph) and Graph's public one.
fn accepted_audiences(sim: &SimState) -> [String; 2] {
    [sim.base_url.clone(), "https://graph.microsoft.com".into()]
}

/// A Graph error in Graph's envelope.
#[derive(Debug)]
pub struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl GraphError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": jiff::Timestamp::now().to_string(),
                "request-id": uuid::Uuid::new_v4().to_string(),
                "client-request-id": uuid::Uuid::new_v4().to_string(),
            },
        }});
        (self.status, Json(body)).into_response()
    }
}

/// The bearer token's claims, checked as Graph checks them.
fn authenticate(sim: &SimState, headers: &HeaderMap) -> Result<Claims, GraphError> {
    let unauthenticated =
        |message: &str| GraphError::new(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", message);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .ok_or_else(|| unauthenticated("Access token is empty."))?;
    let claims = sim
        .tokens
        .verify(token)
        .map_err(|_| unauthenticated("Access token validation failure."))?;
    if !accepted_audiences(sim)
        .iter()
        .any(|a| a == claims.aud.trim_end_matches('/'))
    {
        return Err(unauthenticated("Access token validation failure. Invalid audience."));
    }
    Ok(claims)
}

/// Whether the caller may read this kind of directory object: people may, applications need a permission.
fn authorize(sim: &SimState, caller: &Claims, permissions: &[&str]) -> Result<(), GraphError> {
    let allowed = sim.read(|w| {
        w.principals.get(&caller.oid).is_some_and(|p| {
            p.kind == PrincipalType::User
                || p.graph_permissions
                    .iter()
                    .any(|granted| permissions.iter().any(|p| p.eq_ignore_ascii_case(granted)))
        })
    });
    if allowed {
        return Ok(());
    }
    Err(GraphError::new(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        format!(
            "Insufficient privileges to complete the operation. The application needs one of these Microsoft Graph \
             permissions: {}.",
            permissions.join(", ")
        ),
    ))
}

/// What a `$filter` asks for: one property equal to one value.
#[derive(Debug, PartialEq)]
struct Filter {
    property: String,
    value: String,
}

/// Parses the filters clients send here: `prop eq 'v'` and `collection/any(c:c eq 'v')`.
fn parse_filter(text: &str) -> Option<Filter> {
    let text = text.trim();
    if let Some((name, lambda)) = text.split_once("/any(") {
        let (var, condition) = lambda.strip_suffix(')')?.split_once(':')?;
        let (left, value) = condition.split_once(" eq ")?;
        if left.trim() != var.trim() {
            return None;
        }
        return Some(Filter {
            property: name.trim().to_string(),
            value: unquote(value)?,
        });
    }
    let (property, value) = text.split_once(" eq ")?;
    Some(Filter {
        property: property.trim().to_string(),
        value: unquote(value)?,
    })
}

/// An OData string literal: in single quotes, a quote doubled.
fn unquote(literal: &str) -> Option<String> {
    let inner = literal.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

fn unsupported(filter: &str, supported: &str) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "Request_UnsupportedQuery",
        format!("Unsupported or invalid query filter clause '{filter}'. The simulator answers: {supported}."),
    )
}

fn service_principal(p: &Principal) -> Value {
    let app_id = p.client_id.clone().unwrap_or_default();
    json!({
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": p.object_id,
        "appId": app_id,
        "displayName": p.display_name,
        "servicePrincipalNames": [app_id],
        "servicePrincipalType": if p.kind == PrincipalType::ManagedIdentity { "ManagedIdentity" } else { "Application" },
        "accountEnabled": true,
    })
}

fn user(p: &Principal) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": p.object_id,
        "displayName": p.display_name,
        "userPrincipalName": p.user_principal_name,
        "mail": Value::Null,
    })
}

fn directory_object(p: &Principal) -> Value {
    match p.kind {
        PrincipalType::User => user(p),
        _ => service_principal(p),
    }
}

fn collection(sim: &SimState, entity: &str, value: Vec<Value>) -> Response {
    let context = format!("{}/v1.0/$metadata#{entity}", sim.base_url);
    Json(json!({"@odata.context": context, "value": value})).into_response()
}

/// One directory collection the simulator answers `$filter` look-ups on.
struct Collection {
    /// The entity set's name, as in its path.
    name: &'static str,
    users: bool,
    /// The Graph permissions an application needs to read it (any one).
    permissions: &'static [&'static str],
    /// The properties a `$filter` may name, and how to say so.
    properties: &'static [&'static str],
    supported: &'static str,
    /// Whether a principal has `value` in `property` (one of `properties`).
    matches: fn(property: &str, principal: &Principal, value: &str) -> bool,
}

const SERVICE_PRINCIPALS: Collection = Collection {
    name: "servicePrincipals",
    users: false,
    permissions: &["Application.Read.All", "Directory.Read.All"],
    properties: &["servicePrincipalNames", "appId", "displayName"],
    supported: "servicePrincipalNames/any(c:c eq '<appId>'), appId eq '<appId>', displayName eq '<name>'",
    matches: |property, p, value| match property {
        "displayName" => p.display_name == value,
        _ => p.client_id.as_deref().is_some_and(|id| id.eq_ignore_ascii_case(value)),
    },
};

const USERS: Collection = Collection {
    name: "users",
    users: true,
    permissions: &["User.Read.All", "Directory.Read.All"],
    properties: &["userPrincipalName", "mail", "displayName"],
    supported: "userPrincipalName eq '<upn>', mail eq '<address>', displayName eq '<name>'",
    matches: |property, p, value| match property {
        "displayName" => p.display_name == value,
        // Sign-in names compare without regard to case.
        _ => p
            .user_principal_name
            .as_deref()
            .is_some_and(|upn| upn.eq_ignore_ascii_case(value)),
    },
};

/// `GET /v1.0/{collection}?$filter=...`: the principals of the caller's tenant in the collection that the
/// filter selects.
fn look_up(
    sim: &SimState,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    collection_of: &Collection,
) -> Result<Response, GraphError> {
    let caller = authenticate(sim, headers)?;
    authorize(sim, &caller, collection_of.permissions)?;
    let text = query.get("$filter").map(String::as_str).unwrap_or_default();
    let filter = parse_filter(text)
        .filter(|f| collection_of.properties.contains(&f.property.as_str()))
        .ok_or_else(|| unsupported(text, collection_of.supported))?;
    let value: Vec<Value> = sim.read(|w| {
        w.principals
            .values()
            .filter(|p| p.tenant.eq_ignore_ascii_case(&caller.tid))
            .filter(|p| (p.kind == PrincipalType::User) == collection_of.users)
            .filter(|p| (collection_of.matches)(&filter.property, p, &filter.value))
            .map(directory_object)
            .collect()
    });
    sim.count_call(&format!("GET /v1.0/{}", collection_of.name), &caller.oid);
    Ok(collection(sim, collection_of.name, value))
}

/// `GET /v1.0/servicePrincipals?$filter=...`
pub async fn service_principals(
    State(sim): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, GraphError> {
    look_up(&sim, &headers, &query, &SERVICE_PRINCIPALS)
}

/// `GET /v1.0/users?$filter=...`
pub async fn users(
    State(sim): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, GraphError> {
    look_up(&sim, &headers, &query, &USERS)
}

/// `POST /v1.0/directoryObjects/getByIds` with `{"ids": [...], "types": [...]}`.
pub async fn get_by_ids(
    State(sim): State<Arc<SimState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, GraphError> {
    let caller = authenticate(&sim, &headers)?;
    authorize(&sim, &caller, &["Directory.Read.All"])?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(ids) = request["ids"].as_array() else {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "The request body must have an 'ids' array.",
        ));
    };
    let ids: Vec<String> = ids
        .iter()
        .filter_map(|id| id.as_str().map(str::to_ascii_lowercase))
        .collect();
    let types: Vec<String> = request["types"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t.as_str().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
    let wanted = |p: &Principal| {
        let kind = if p.kind == PrincipalType::User {
            "user"
        } else {
            "serviceprincipal"
        };
        types.is_empty() || types.iter().any(|t| t == kind)
    };
    let value: Vec<Value> = sim.read(|w| {
        ids.iter()
            .filter_map(|id| w.principals.get(id))
            .filter(|p| p.tenant.eq_ignore_ascii_case(&caller.tid) && wanted(p))
            .map(directory_object)
            .collect()
    });
    sim.count_call("POST /v1.0/directoryObjects/getByIds", &caller.oid);
    Ok(collection(&sim, "directoryObjects", value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(property: &str, value: &str) -> Option<Filter> {
        Some(Filter {
            property: property.into(),
            value: value.into(),
        })
    }

    #[test]
    fn parses_the_filters_the_cli_sends() {
        assert_eq!(
            parse_filter("servicePrincipalNames/any(c:c eq '0d9a6a8e-1c2b')"),
            filter("servicePrincipalNames", "0d9a6a8e-1c2b")
        );
        assert_eq!(
            parse_filter("userPrincipalName eq 'alice@contoso.example'"),
            filter("userPrincipalName", "alice@contoso.example")
        );
        assert_eq!(
            parse_filter("displayName eq 'O''Brien'"),
            filter("displayName", "O'Brien")
        );
    }

    #[test]
    fn refuses_filters_it_does_not_understand() {
        assert_eq!(parse_filter("startswith(displayName,'a')"), None);
        assert_eq!(parse_filter("displayName ne 'a'"), None);
        assert_eq!(parse_filter("displayName eq a"), None);
        assert_eq!(parse_filter("servicePrincipalNames/any(c:d eq 'x')"), None);
    }
}
