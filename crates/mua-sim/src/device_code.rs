//! The OAuth 2.0 device authorization grant, as Entra serves it (Microsoft Learn, "Microsoft identity
//! platform and the OAuth 2.0 device authorization grant flow"): a client without a browser (`az login
//! --use-device-code`) asks `POST /{tenant}/oauth2/v2.0/devicecode` for a device code and a user code,
//! shows the person the user code, and polls the token endpoint with the device code until the person has
//! signed in elsewhere with the user code. The simulator has no sign-in page: the person signs in at the
//! admin API, `POST /_sim/devicelogin` with the user code, user name and password (or declines the code).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::device_codes::{DecideError, EXPIRES_IN_SECS, MAX_CODES, PollError};
use crate::directory::{self, EntraError, entra_error};
use crate::error::ArmError;
use crate::state::SimState;
use crate::world::Principal;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// `POST /{tenant}/oauth2/v2.0/devicecode` (form `client_id`, `scope`): the device authorization request.
pub async fn device_authorization(
    State(sim): State<Arc<SimState>>,
    UrlPath(tenant): UrlPath<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, EntraError> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let tenant_id = directory::known_tenant(&sim, &tenant)?;
    let client_id = field("client_id");
    if client_id.is_empty() {
        return Err(entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.".into(),
        ));
    }
    // A scope no token can be issued for is refused now, not after the person has signed in.
    let scope = field("scope");
    directory::resource_of(scope)?;
    let Some(issued) = sim.device_codes.issue(&tenant_id, client_id, scope, now()) else {
        return Err(entra_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            90024,
            format!(
                "A transient error has occurred: {MAX_CODES} device codes wait for sign-in already. Try again later."
            ),
        ));
    };
    let verification_uri = format!("{}/_sim/devicelogin", sim.base_url);
    let message = format!(
        "To sign in, use a web browser to open the page {verification_uri} and enter the code {} to authenticate.",
        issued.user_code
    );
    Ok(Json(json!({
        "device_code": issued.device_code,
        "user_code": issued.user_code,
        "verification_uri": verification_uri,
        "expires_in": EXPIRES_IN_SECS,
        "interval": sim.device_codes.interval().as_secs().max(1),
        "message": message,
    }))
    .into_response())
}

/// The token endpoint's device code grant: the user who approved the code and the scope it was asked
/// for, or one of the errors a polling client expects.
pub fn redeem(sim: &SimState, tenant: &str, form: &HashMap<String, String>) -> Result<(Principal, String), EntraError> {
    let field = |name: &str| form.get(name).map(String::as_str);
    // MSAL sends the device code as `code` as well (its "2018-10-4 hack").
    let device_code = field("device_code").or(field("code")).unwrap_or_default();
    let client_id = field("client_id").unwrap_or_default();
    let refused = |error: &'static str, code: u32, description: &str| {
        entra_error(StatusCode::BAD_REQUEST, error, code, description.to_string())
    };
    match sim.device_codes.redeem(device_code, tenant, client_id, now()) {
        Ok(approved) => Ok((directory::user_by_id(sim, tenant, &approved.user)?, approved.scope)),
        Err(PollError::Pending) => Err(refused(
            "authorization_pending",
            70016,
            "The provided request has not yet been authorized by the user. The user must input their code.",
        )),
        Err(PollError::Declined) => Err(refused(
            "authorization_declined",
            65004,
            "The user declined to sign in with this device code.",
        )),
        Err(PollError::Expired) => Err(refused(
            "expired_token",
            70019,
            "The device code has expired. Have the user sign in again.",
        )),
        Err(PollError::Unknown) => Err(refused(
            "bad_verification_code",
            70018,
            "The provided device code was not recognized for this tenant and client.",
        )),
    }
}

/// `GET /_sim/devicelogin`: in place of Entra's sign-in page, how to approve a code.
pub async fn device_login_help(State(sim): State<Arc<SimState>>) -> String {
    let url = format!("{}/_sim/devicelogin", sim.base_url);
    format!(
        r#"The simulator's device login. It has no sign-in page: approve the code your client shows with your
user name and password, or decline it, by posting to this address:

  curl --cacert <caFile> {url} -H 'Content-Type: application/json' \
    -d '{{"userCode": "<code>", "username": "<user name>", "password": "<password>"}}'

  curl --cacert <caFile> {url} -H 'Content-Type: application/json' \
    -d '{{"userCode": "<code>", "decline": true}}'
"#
    )
}

/// A person's answer to a user code: their credentials, or `decline`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceLogin {
    user_code: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    decline: bool,
}

/// `POST /_sim/devicelogin`: a person signs in with a user code (a user of the code's tenant, checked as
/// the password grant checks them), or declines it.
pub async fn device_login(
    State(sim): State<Arc<SimState>>,
    Json(login): Json<DeviceLogin>,
) -> Result<Json<Value>, ArmError> {
    let now = now();
    let cannot_decide = |err: DecideError| {
        let why = match err {
            DecideError::Unknown => "is not a code the simulator issued (or it was redeemed already)",
            DecideError::Expired => "has expired; start the sign-in again",
            DecideError::AlreadyDecided => "was approved or declined already",
        };
        ArmError::bad_request("InvalidUserCode", format!("The code '{}' {why}.", login.user_code))
    };
    if login.decline {
        sim.device_codes.decline(&login.user_code, now).map_err(cannot_decide)?;
        return Ok(Json(json!({"userCode": login.user_code, "status": "declined"})));
    }
    let tenant = sim
        .device_codes
        .pending_tenant(&login.user_code, now)
        .map_err(cannot_decide)?;
    let user = directory::sign_in(&sim, &tenant, &login.username, &login.password).ok_or_else(|| {
        ArmError::bad_request(
            "InvalidCredentials",
            format!("AADSTS50126: {}", directory::INVALID_CREDENTIALS),
        )
    })?;
    sim.device_codes
        .approve(&login.user_code, &user.object_id, now)
        .map_err(cannot_decide)?;
    Ok(Json(json!({
        "userCode": login.user_code,
        "status": "approved",
        "username": user.user_principal_name,
    })))
}
