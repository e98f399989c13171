//! Entra ID, as far as the SDKs need it: the v2.0 token endpoint (client credentials with a secret or a
//! client assertion; for users the password, device code and refresh token grants), the OpenID discovery
//! documents MSAL reads first, and the signing keys. ARM requests are then checked against the tokens
//! issued here.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use serde_json::json;

use crate::device_code;
use crate::directory::{EntraError, INVALID_CREDENTIALS, entra_error, issuer, known_tenant, resource_of, sign_in};
use crate::state::SimState;
use crate::tokens::Claims;
use crate::user_tokens::{self, UserSignIn};
use crate::world::{Principal, PrincipalType};

const TOKEN_LIFETIME_SECS: i64 = 3600;
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// `POST /{tenant}/oauth2/v2.0/token`
pub async fn token(
    State(sim): State<Arc<SimState>>,
    UrlPath(tenant): UrlPath<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, EntraError> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let tenant_id = known_tenant(&sim, &tenant)?;
    let (principal, scope) = match field("grant_type") {
        "client_credentials" => (client_credentials(&sim, &tenant_id, &form)?, field("scope").to_string()),
        "password" => (password_grant(&sim, &tenant_id, &form)?, field("scope").to_string()),
        "refresh_token" => (
            user_tokens::redeem_refresh_token(&sim, &tenant_id, &form)?,
            field("scope").to_string(),
        ),
        // The client named the scope when it asked for the device code, not here.
        device_code::GRANT_TYPE => device_code::redeem(&sim, &tenant_id, &form)?,
        other => {
            return Err(entra_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            ));
        }
    };
    let resource = resource_of(&scope)?;
    let now = jiff::Timestamp::now().as_second();
    let claims = Claims {
        aud: resource.trim_end_matches('/').to_string(),
        iss: issuer(&sim, &tenant_id),
        iat: now,
        nbf: now,
        exp: now + TOKEN_LIFETIME_SECS,
        tid: tenant_id.clone(),
        oid: principal.object_id.clone(),
        sub: principal.object_id.clone(),
        appid: principal.client_id.clone(),
        upn: principal.user_principal_name.clone(),
        idtyp: if principal.kind == PrincipalType::User {
            "user"
        } else {
            "app"
        }
        .to_string(),
        ver: "2.0".to_string(),
    };
    sim.count_call("POST /{tenant}/oauth2/v2.0/token", &principal.object_id);
    let mut body = json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": sim.tokens.issue(&claims),
    });
    if principal.kind == PrincipalType::User {
        let sign_in = UserSignIn {
            user: &principal,
            tenant: &tenant_id,
            client_id: field("client_id"),
            scope: &scope,
        };
        let fields = sign_in.response_fields(&sim, field("client_info") == "1", now);
        if let Some(body) = body.as_object_mut() {
            body.extend(fields);
        }
    }
    Ok(Json(body).into_response())
}

fn client_credentials(sim: &SimState, tenant: &str, form: &HashMap<String, String>) -> Result<Principal, EntraError> {
    let client_id = form.get("client_id").map(String::as_str).unwrap_or_default();
    let world = sim.lock_world();
    let Some(principal) = world.principal_by_client(tenant, client_id).cloned() else {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        ));
    };
    drop(world);
    if let Some(secret) = form.get("client_secret") {
        if principal.secrets.iter().any(|s| s == secret) {
            return Ok(principal);
        }
        return Err(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.".into(),
        ));
    }
    match (form.get("client_assertion_type"), form.get("client_assertion")) {
        (Some(kind), Some(assertion)) if kind == CLIENT_ASSERTION_TYPE => {
            verify_federated_assertion(&principal, assertion).map(|()| principal)
        }
        _ => Err(entra_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".into(),
        )),
    }
}

/// Workload identity: the assertion is a token from an external issuer (a Kubernetes ServiceAccount
/// token) that one of the principal's federated credentials trusts.
fn verify_federated_assertion(principal: &Principal, assertion: &str) -> Result<(), EntraError> {
    #[derive(Deserialize)]
    struct External {
        iss: String,
        sub: String,
    }
    let invalid =
        |code: u32, description: String| entra_error(StatusCode::UNAUTHORIZED, "invalid_client", code, description);
    let unverified: External = jsonwebtoken::dangerous::insecure_decode(assertion)
        .map(|data| data.claims)
        .map_err(|err| invalid(50027, format!("JWT token is invalid or malformed: {err}.")))?;
    let Some(credential) = principal
        .federated_credentials
        .iter()
        .find(|c| c.issuer == unverified.iss && c.subject == unverified.sub)
    else {
        return Err(invalid(
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'.",
                unverified.iss, unverified.sub
            ),
        ));
    };
    let keys: JwkSet = serde_json::from_value(credential.jwks.clone()).map_err(|err| {
        invalid(
            50027,
            format!("The federated credential's signing keys are not a JWKS document: {err}."),
        )
    })?;
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|err| invalid(50027, format!("JWT header is invalid: {err}.")))?;
    let jwk = match header.kid.as_deref() {
        Some(kid) => keys.find(kid),
        None => keys.keys.first(),
    }
    .ok_or_else(|| {
        invalid(
            500011,
            "The key used to sign the assertion was not found in the issuer's keys.".into(),
        )
    })?;
    let key =
        DecodingKey::from_jwk(jwk).map_err(|err| invalid(50027, format!("The issuer's key is unusable: {err}.")))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[credential.audience.as_str()]);
    validation.set_issuer(&[credential.issuer.as_str()]);
    jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
        .map(|_| ())
        .map_err(|err| invalid(700024, format!("Client assertion failed validation: {err}.")))
}

fn password_grant(sim: &SimState, tenant: &str, form: &HashMap<String, String>) -> Result<Principal, EntraError> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    sign_in(sim, tenant, field("username"), field("password")).ok_or_else(|| {
        entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50126,
            INVALID_CREDENTIALS.into(),
        )
    })
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`
pub async fn openid_configuration(State(sim): State<Arc<SimState>>, UrlPath(tenant): UrlPath<String>) -> Response {
    let Some(tenant_id) = sim.resolve_tenant(&tenant) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            format!("Tenant '{tenant}' not found."),
        )
        .into_response();
    };
    let base = &sim.base_url;
    Json(json!({
        "issuer": issuer(&sim, &tenant_id),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "grant_types_supported": ["client_credentials", "password", device_code::GRANT_TYPE, "refresh_token"],
        "tenant_region_scope": "WW",
        "cloud_instance_name": "mua-sim",
    }))
    .into_response()
}

/// `GET /common/discovery/instance`: MSAL's instance discovery.
pub async fn instance_discovery(
    State(sim): State<Arc<SimState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let host = sim.base_url.trim_start_matches("https://").to_string();
    let authorize = query.get("authorization_endpoint").cloned().unwrap_or_default();
    let tenant = authorize
        .trim_start_matches(sim.base_url.as_str())
        .split('/')
        .find(|s| !s.is_empty())
        .unwrap_or("common")
        .to_string();
    Json(json!({
        "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", sim.base_url),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }))
    .into_response()
}

/// `GET /{tenant}/discovery/v2.0/keys`
pub async fn keys(State(sim): State<Arc<SimState>>) -> Response {
    Json(sim.tokens.jwks()).into_response()
}
