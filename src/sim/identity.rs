//! Entra ID, as far as the SDKs need it: the v2.0 token endpoint (client credentials with a secret or a
//! client assertion; for users the password, device code and refresh token grants), the OpenID discovery
//! documents MSAL reads first, and the signing keys. ARM requests are then checked against the tokens
//! issued here.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::device_code;
use super::state::SimState;
use super::user_tokens::{self, RefreshClaims, UserSignIn};
use super::world::{Principal, PrincipalType};

/// The resource ARM tokens are issued for, and the audiences ARM accepts.
pub const ARM_RESOURCE: &str = "https://management.azure.com";
pub const ARM_AUDIENCES: [&str; 4] = [
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
];
const TOKEN_LIFETIME_SECS: i64 = 3600;
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The claims of an access token, as ARM reads them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    pub idtyp: String,
    pub ver: String,
}

/// Signs and verifies the simulator's tokens, with keys kept beside the CA so tokens survive a restart:
/// access and ID tokens with one RSA key (the one the JWKS publishes), refresh tokens with an EC key of
/// their own, so that neither kind of token can pass for the other.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    kid: String,
    refresh_encoding: EncodingKey,
    refresh_decoding: DecodingKey,
}

impl TokenIssuer {
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let pem = load_or_create_key(&dir.join("token-signing.key"), || {
            let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?;
            Ok(key.serialize_pem())
        })?;
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
        let kid = format!(
            "sim-{}",
            &uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, pem.as_bytes())
                .simple()
                .to_string()[..12]
        );
        jwk.common.key_id = Some(kid.clone());
        let decoding = DecodingKey::from_jwk(&jwk)?;
        // rcgen's default key pair is ECDSA P-256.
        let refresh_pem = load_or_create_key(&dir.join("refresh-token-signing.key"), || {
            Ok(rcgen::KeyPair::generate()?.serialize_pem())
        })?;
        let refresh_encoding = EncodingKey::from_ec_pem(refresh_pem.as_bytes())?;
        let refresh_decoding = DecodingKey::from_jwk(&Jwk::from_encoding_key(&refresh_encoding, Algorithm::ES256)?)?;
        Ok(Self {
            encoding,
            decoding,
            jwk,
            kid,
            refresh_encoding,
            refresh_decoding,
        })
    }

    /// Signs an access token or an ID token.
    pub fn issue(&self, claims: &impl Serialize) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing with our own key")
    }

    /// Verifies an access token's signature and expiry (wall clock); the caller checks audience and tenant.
    pub fn verify(&self, token: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map(|data| data.claims)
    }

    pub fn issue_refresh(&self, claims: &RefreshClaims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &self.refresh_encoding)
            .expect("signing with our own key")
    }

    /// Verifies a refresh token's signature and expiry (wall clock); the caller checks whom it binds.
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshClaims, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<RefreshClaims>(token, &self.refresh_decoding, &validation).map(|data| data.claims)
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }
}

/// A PEM key from `path`, generated and written there first if the file does not exist yet.
fn load_or_create_key(path: &Path, generate: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<String> {
    if path.exists() {
        return std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()));
    }
    let pem = generate()?;
    std::fs::write(path, &pem).with_context(|| format!("writing {}", path.display()))?;
    Ok(pem)
}

/// An error the way Entra's token endpoint answers: an OAuth error with an `AADSTS` code.
#[derive(Debug)]
pub struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

pub(super) fn entra_error(status: StatusCode, error: &'static str, code: u32, description: String) -> EntraError {
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
        body.as_object_mut().expect("a JSON object").extend(fields);
    }
    Ok(Json(body).into_response())
}

/// The tenant ID the path names (an ID or a tenant's name), or Entra's error for an unknown tenant.
pub(super) fn known_tenant(sim: &SimState, tenant: &str) -> Result<String, EntraError> {
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
pub(super) fn resource_of(scope: &str) -> Result<&str, EntraError> {
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
pub(super) fn issuer(sim: &SimState, tenant_id: &str) -> String {
    format!("{}/{tenant_id}/v2.0", sim.base_url)
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

/// What Entra says to a wrong user name or password (AADSTS50126).
pub(super) const INVALID_CREDENTIALS: &str = "Error validating credentials due to invalid username or password.";

/// The user of `tenant` with this sign-in name, if the password is theirs.
pub(super) fn sign_in(sim: &SimState, tenant: &str, username: &str, password: &str) -> Option<Principal> {
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
pub(super) fn user_by_id(sim: &SimState, tenant: &str, object_id: &str) -> Result<Principal, EntraError> {
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
