//! Who is calling: the bearer token checked the way ARM checks it, the auxiliary tokens from other
//! tenants, and what admits an authenticated request before its handler (the subscription's tenant,
//! throttling, call counts).

use axum::http::{HeaderMap, Method, StatusCode};

use crate::error::ArmError;
use crate::state::SimState;
use crate::throttle::OperationKind;
use crate::tokens::Claims;

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
                return Err(ArmError::subscription_not_found(subscription));
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
pub(crate) fn authenticate(sim: &SimState, headers: &HeaderMap) -> Result<Claims, ArmError> {
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
    if !sim.arm_audiences.contains(&claims.aud) {
        // ARM's own code for this case (its message, "obtained for wrong audience or resource", too).
        return Err(unauthorized(
            sim,
            "InvalidAuthenticationTokenAudience",
            &format!(
                "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences '{}'.",
                claims.aud,
                sim.arm_audiences.join("','")
            ),
        ));
    }
    Ok(claims)
}

/// `x-ms-authorization-auxiliary: Bearer <t1>, Bearer <t2>`: tokens from other tenants, for resources
/// (such as a Resource Guard) that live there. They must be issued to the same application as the primary
/// token: another identity's token cannot lend its access.
pub(crate) fn auxiliary_tokens(sim: &SimState, headers: &HeaderMap, caller: &Claims) -> Result<Vec<Claims>, ArmError> {
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
