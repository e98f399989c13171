//! Entra's directory as its endpoints read it: the tenant a path names, the users and their passwords,
//! the issuer of a tenant's tokens, and Entra's OAuth error answer.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::SimState;
use crate::world::{Principal, PrincipalType};

/// An error the way Entra's token endpoint answers: an OAuth error with an `AADSTS` code.
#[derive(Debug)]
pub struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

pub(crate) fn entra_error(status: StatusCode, error: &'static str, code: u32, description: String) -> EntraError {
    EntraError {
        status,
        error,
        code,
        description,
    }
}

impl EntraError {
    /// The `AADSTS` number.
    #[cfg(test)]
    pub fn code(&self) -> u32 {
        self.code
    }
}

impl IntoResponse for EntraError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {}", self.code, self.description),
            "error_codes": [self.code],
            "timestamp": jiff::Timestamp::now().to_string(),
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        });
        (self.status, Json(body)).into_response()
    }
}

/// The tenant ID the path names (an ID or a tenant's name), or Entra's error for an unknown tenant.
pub(crate) fn known_tenant(sim: &SimState, tenant: &str) -> Result<String, EntraError> {
    sim.resolve_tenant(tenant).ok_or_else(|| {
        entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        )
    })
}

/// The resource a v2.0 scope list asks for (`<resource>/.default`; the OpenID scopes beside it name none).
pub(crate) fn resource_of(scope: &str) -> Result<&str, EntraError> {
    scope
        .split(' ')
        .find_map(|s| s.strip_suffix("/.default"))
        .ok_or_else(|| {
            entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                format!(
                    "The provided request must include a 'scope' input parameter ending in '/.default'; got '{scope}'."
                ),
            )
        })
}

/// The issuer of the tenant's tokens, as its OpenID document names it.
pub(crate) fn issuer(sim: &SimState, tenant_id: &str) -> String {
    format!("{}/{tenant_id}/v2.0", sim.base_url)
}

/// What Entra says to a wrong user name or password (AADSTS50126).
pub(crate) const INVALID_CREDENTIALS: &str = "Error validating credentials due to invalid username or password.";

/// The user of `tenant` with this sign-in name, if the password is theirs.
pub(crate) fn sign_in(sim: &SimState, tenant: &str, username: &str, password: &str) -> Option<Principal> {
    let world = sim.lock_world();
    world
        .principals
        .values()
        .find(|p| {
            p.kind == PrincipalType::User
                && p.tenant.eq_ignore_ascii_case(tenant)
                && p.user_principal_name
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(username))
        })
        .filter(|user| user.password.as_deref() == Some(password))
        .cloned()
}

/// The user of `tenant` with this object ID (a user a device code or refresh token names).
pub(crate) fn user_by_id(sim: &SimState, tenant: &str, object_id: &str) -> Result<Principal, EntraError> {
    let world = sim.lock_world();
    world
        .principals
        .get(object_id)
        .filter(|p| p.kind == PrincipalType::User && p.tenant.eq_ignore_ascii_case(tenant))
        .cloned()
        .ok_or_else(|| {
            entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                50034,
                format!("The user account {object_id} does not exist in the '{tenant}' directory."),
            )
        })
}
