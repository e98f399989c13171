//! Device code sign-in, as MSAL drives it for `az login --use-device-code`.

use super::*;

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A form post to one of Contoso's OAuth endpoints (`devicecode`, `token`): status and JSON body.
async fn oauth_post(ts: &TestSim, endpoint: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = ts
        .http
        .post(format!("{}/{CONTOSO}/oauth2/v2.0/{endpoint}", ts.sim.authority_host))
        .form(form)
        .send()
        .await
        .expect("the simulator answers");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// A device code for the Azure CLI, asked for as MSAL asks (ARM's scope and the OpenID ones): the
/// device code and the user code.
async fn device_code(ts: &TestSim) -> (String, String) {
    let scope = "https://management.core.windows.net//.default offline_access openid profile";
    let (status, body) = oauth_post(ts, "devicecode", &[("client_id", AZURE_CLI_APP), ("scope", scope)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verification_uri"], format!("{}/_sim/devicelogin", ts.sim.arm_url));
    assert_eq!((&body["expires_in"], &body["interval"]), (&json!(900), &json!(5)));
    let user_code = body["user_code"].as_str().unwrap().to_string();
    assert!(body["message"].as_str().unwrap().contains(&user_code), "{body}");
    (body["device_code"].as_str().unwrap().to_string(), user_code)
}

/// One poll of the token endpoint, as MSAL sends it (the device code also as `code`).
async fn redeem_device_code(ts: &TestSim, device_code: &str) -> (u16, Value) {
    let form = [
        ("grant_type", DEVICE_CODE_GRANT),
        ("client_id", AZURE_CLI_APP),
        ("device_code", device_code),
        ("code", device_code),
        ("client_info", "1"),
    ];
    oauth_post(ts, "token", &form).await
}

async fn approve_as_alice(ts: &TestSim, user_code: &str) {
    let login = json!({"userCode": user_code, "username": "alice@contoso.example", "password": "alice-password"});
    ts.admin(Method::POST, "/_sim/devicelogin", Some(login)).await;
}

fn claims_of(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token).unwrap().claims
}

#[tokio::test]
async fn a_device_code_is_pending_until_the_person_approves_it_then_redeems_for_their_tokens() {
    let ts = TestSim::start().await;
    let (device_code, user_code) = device_code(&ts).await;
    let (status, pending) = redeem_device_code(&ts, &device_code).await;
    assert_eq!(
        (status, &pending["error"]),
        (400, &json!("authorization_pending")),
        "{pending}"
    );
    assert_eq!(pending["error_codes"], json!([70016]));

    approve_as_alice(&ts, &user_code).await;
    let (status, tokens) = redeem_device_code(&ts, &device_code).await;
    assert_eq!(status, 200, "{tokens}");
    let access = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (&access["oid"], &access["upn"]),
        (&json!(ALICE_OID), &json!("alice@contoso.example"))
    );
    assert_eq!(access["aud"], "https://management.core.windows.net");
    // What MSAL keeps the account by: the ID token's claims and client_info.
    let id = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (&id["aud"], &id["preferred_username"], &id["tid"]),
        (&json!(AZURE_CLI_APP), &json!("alice@contoso.example"), &json!(CONTOSO))
    );
    assert!(
        tokens["client_info"].is_string() && tokens["refresh_token"].is_string(),
        "{tokens}"
    );
    assert!(
        tokens["scope"]
            .as_str()
            .unwrap()
            .contains("https://management.core.windows.net//.default")
    );
}

#[tokio::test]
async fn a_device_code_redeems_only_once() {
    let ts = TestSim::start().await;
    let (device_code, user_code) = device_code(&ts).await;
    approve_as_alice(&ts, &user_code).await;
    assert_eq!(redeem_device_code(&ts, &device_code).await.0, 200);
    let (status, again) = redeem_device_code(&ts, &device_code).await;
    assert_eq!(
        (status, &again["error"]),
        (400, &json!("bad_verification_code")),
        "{again}"
    );
}

#[tokio::test]
async fn the_device_login_refuses_a_wrong_password_and_an_unknown_code() {
    let ts = TestSim::start().await;
    let (_, user_code) = device_code(&ts).await;
    let wrong = json!({"userCode": user_code, "username": "alice@contoso.example", "password": "guess"});
    let (status, body) = admin_raw(&ts, Method::POST, "/_sim/devicelogin", wrong).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with("AADSTS50126"),
        "{body}"
    );
    let unknown = json!({"userCode": "NOSUCHCD", "username": "alice@contoso.example", "password": "alice-password"});
    let (status, body) = admin_raw(&ts, Method::POST, "/_sim/devicelogin", unknown).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("InvalidUserCode")),
        "{body}"
    );
}

#[tokio::test]
async fn a_refresh_token_gets_alice_a_graph_token_and_a_forged_one_is_refused() {
    let ts = TestSim::start().await;
    let (device_code, user_code) = device_code(&ts).await;
    approve_as_alice(&ts, &user_code).await;
    let (_, tokens) = redeem_device_code(&ts, &device_code).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let graph_scope = format!("{} offline_access openid profile", graph_scope(&ts));
    let refresh_form = |token| {
        [
            ("grant_type", "refresh_token"),
            ("client_id", AZURE_CLI_APP),
            ("refresh_token", token),
            ("scope", graph_scope.as_str()),
        ]
    };
    let (status, graph) = oauth_post(&ts, "token", &refresh_form(refresh)).await;
    assert_eq!(status, 200, "{graph}");
    let access = claims_of(graph["access_token"].as_str().unwrap());
    assert_eq!(
        (&access["oid"], &access["aud"]),
        (&json!(ALICE_OID), &json!(ts.sim.arm_url))
    );

    let (status, forged) = oauth_post(&ts, "token", &refresh_form("not-a-refresh-token")).await;
    assert_eq!((status, &forged["error"]), (400, &json!("invalid_grant")), "{forged}");
    assert_eq!(forged["error_codes"], json!([9002313]));
}

#[tokio::test]
async fn a_device_code_for_an_unknown_tenant_is_refused_as_entra_refuses_it() {
    let ts = TestSim::start().await;
    let response = ts
        .http
        .post(format!(
            "{}/no-such-tenant/oauth2/v2.0/devicecode",
            ts.sim.authority_host
        ))
        .form(&[
            ("client_id", AZURE_CLI_APP),
            ("scope", "https://management.core.windows.net//.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (&body["error"], &body["error_codes"]),
        (&json!("invalid_request"), &json!([90002])),
        "{body}"
    );
}
