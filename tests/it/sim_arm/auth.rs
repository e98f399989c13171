//! Who may call what: tokens for ARM and for Microsoft Graph, workload identity, the anonymous metadata
//! endpoint, and subscriptions, role definitions and service principals as each caller sees them.

use super::*;

#[tokio::test]
async fn a_token_for_another_resource_is_refused_and_guards_list_by_scope() {
    let ts = TestSim::start().await;
    let vault_token = ts
        .backup_side()
        .get_token(&["https://vault.azure.net/.default"], None)
        .await
        .unwrap();
    let reply = ts
        .call_with(vault_token.token.secret(), &[], Method::GET, &vault("prod-vault"), None)
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "InvalidAuthenticationTokenAudience")
    );
    assert!(reply.message().contains("wrong audience"), "{}", reply.message());

    let security = ts.security_side();
    for name in ["g1", "g2"] {
        ts.create_guard(name).await;
    }
    let in_group = ts
        .call(
            &security,
            Method::GET,
            &format!("{}/providers/Microsoft.DataProtection/resourceGuards", security_rg()),
            None,
        )
        .await;
    assert_eq!(
        in_group.expect(200, "list by resource group").body["value"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // A subscription-wide list needs a role on the subscription: the security side's Owner role is on the
    // resource group only; Bob reads the whole subscription.
    let in_subscription = format!("/subscriptions/{SECURITY_SUB}/providers/Microsoft.DataProtection/resourceGuards");
    let reply = ts.call(&security, Method::GET, &in_subscription, None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "AuthorizationFailed"),
        "{}",
        reply.body
    );
    let bob = ts.user_token(CONTOSO, "bob@contoso.example", "bob-password").await;
    let reply = ts
        .call_with(&bob, &[], Method::GET, &in_subscription, None)
        .await
        .expect(200, "Bob lists the subscription");
    assert_eq!(reply.body["value"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn workload_identity_exchanges_a_service_account_token() {
    use jsonwebtoken::{
        Algorithm, EncodingKey, Header,
        jwk::{Jwk, JwkSet},
    };
    let key = rcgen::KeyPair::generate().unwrap();
    let encoding = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("sa-key".into());
    let issuer = "https://kubernetes.default.svc.cluster.local";
    let subject = "system:serviceaccount:mua-system:mua-operator";

    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    let seed_doc = json!({
        "tenants": [{"id": CONTOSO}],
        "subscriptions": [{"id": BACKUP_SUB, "tenant": CONTOSO, "resourceGroups": [{"name": "backup-rg", "location": "westeurope"}]}],
        "principals": [{"objectId": BACKUP_OID, "tenant": CONTOSO, "type": "ManagedIdentity", "clientId": BACKUP_APP,
                        "federatedCredentials": [{"issuer": issuer, "subject": subject, "jwks": JwkSet {keys: vec![jwk]}}]}],
        "vaults": [{"subscription": BACKUP_SUB, "resourceGroup": "backup-rg", "name": "prod-vault", "location": "westeurope"}],
        "roleAssignments": [{"principal": BACKUP_OID, "role": "Reader", "scope": format!("/subscriptions/{BACKUP_SUB}")}],
    });
    std::fs::write(&seed, seed_doc.to_string()).unwrap();
    let ts = TestSim::start_with(|o| o.seed = Some(seed.clone())).await;

    let sign = |sub: &str| {
        let now = jiff::Timestamp::now().as_second();
        let claims = json!({"iss": issuer, "sub": sub, "aud": ["api://AzureADTokenExchange"], "iat": now, "nbf": now, "exp": now + 600});
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("sa-key".into());
        jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
    };
    let token_file = dir.path().join("sa-token");
    std::fs::write(&token_file, sign(subject)).unwrap();
    let credential = ts
        .cloud
        .workload_identity(&ts.http, CONTOSO, BACKUP_APP, &token_file)
        .unwrap();
    ts.call(&credential, Method::GET, &vault("prod-vault"), None)
        .await
        .expect(200, "reading with a workload identity token");

    let other_file = dir.path().join("other-token");
    std::fs::write(&other_file, sign("system:serviceaccount:other:intruder")).unwrap();
    let intruder = ts
        .cloud
        .workload_identity(&ts.http, CONTOSO, BACKUP_APP, &other_file)
        .unwrap();
    let err = intruder
        .get_token(&[mua_operator::azure::credentials::ARM_SCOPE], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AADSTS70021"), "{err}");
}

#[tokio::test]
async fn the_metadata_endpoint_is_anonymous_and_everything_else_needs_a_token() {
    let ts = TestSim::start().await;
    let metadata = ts
        .call_with("", &[], Method::GET, "/metadata/endpoints?api-version=2022-09-01", None)
        .await
        .expect(200, "metadata without a token");
    assert_eq!(metadata.body["resourceManager"], format!("{}/", ts.sim.arm_url));
    assert_eq!(
        metadata.body["authentication"]["loginEndpoint"],
        format!("{}/", ts.sim.authority_host)
    );
    let unversioned = ts
        .http
        .get(format!("{}/metadata/endpoints", ts.sim.arm_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), 400);
    let body: Value = unversioned.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
    let subscriptions = ts
        .call_with("", &[], Method::GET, "/subscriptions?api-version=2022-12-01", None)
        .await;
    assert_eq!(subscriptions.status, 401);
}

#[tokio::test]
async fn a_subscription_is_visible_to_whoever_has_a_role_in_it_and_not_found_for_others() {
    let ts = TestSim::start().await;
    let security_sub = format!("/subscriptions/{SECURITY_SUB}?api-version=2022-12-01");
    // Reader on one resource group of the security subscription is enough to see it.
    let backup = ts.token(&ts.backup_side()).await;
    let seen = ts
        .call_with(&backup, &[], Method::GET, &security_sub, None)
        .await
        .expect(200, "the backup side sees the security subscription");
    assert_eq!(seen.body["subscriptionId"], SECURITY_SUB);
    assert_eq!(seen.body["displayName"], "security");
    // Alice has no role anywhere: the subscription is not found, and her list is empty.
    let alice = ts.user_token(CONTOSO, "alice@contoso.example", "alice-password").await;
    let hidden = ts.call_with(&alice, &[], Method::GET, &security_sub, None).await;
    assert_eq!((hidden.status, hidden.code()), (404, "SubscriptionNotFound"));
    let list = ts
        .call_with(&alice, &[], Method::GET, "/subscriptions?api-version=2022-12-01", None)
        .await
        .expect(200, "Alice's subscriptions");
    assert_eq!(list.body["value"], json!([]));
    assert_eq!(list.body["count"]["value"], 0);
    // The caller's tenant, as `GET /tenants` lists it.
    let tenants = ts
        .call_with(&backup, &[], Method::GET, "/tenants?api-version=2022-12-01", None)
        .await
        .expect(200, "tenants");
    assert_eq!(tenants.body["value"][0]["tenantId"], CONTOSO);
    assert_eq!(tenants.body["value"][0]["displayName"], "contoso");
    // Resource groups: listed only where the caller may read them.
    let groups = ts
        .call_with(
            &backup,
            &[],
            Method::GET,
            &format!("/subscriptions/{SECURITY_SUB}/resourcegroups?api-version=2024-11-01"),
            None,
        )
        .await
        .expect(200, "the security subscription's groups");
    let names: Vec<&str> = groups.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["security-rg"]);
}

#[tokio::test]
async fn role_definitions_filter_by_name_as_az_role_assignment_create_asks() {
    let ts = TestSim::start().await;
    let token = ts.token(&ts.security_side()).await;
    let at_guard = format!(
        "{}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'Reader'&api-version=2022-05-01-preview",
        security_rg()
    );
    let reply = ts
        .call_with(&token, &[], Method::GET, &at_guard, None)
        .await
        .expect(200, "Reader by name");
    let found = reply.body["value"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{}", reply.body);
    assert_eq!(found[0]["name"], "acdd72a7-3385-48ef-bd42-f606fba81ae7");
    assert_eq!(
        found[0]["id"],
        format!(
            "/subscriptions/{SECURITY_SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
        )
    );
    assert_eq!(found[0]["properties"]["type"], "BuiltInRole");
    assert_eq!(found[0]["properties"]["permissions"][0]["actions"], json!(["*/read"]));
    let unsupported = ts
        .call_with(
            &token,
            &[],
            Method::GET,
            &format!(
                "{}/providers/Microsoft.Authorization/roleDefinitions?$filter=startswith(roleName,'R')&api-version=2022-05-01-preview",
                security_rg()
            ),
            None,
        )
        .await;
    assert_eq!(unsupported.status, 400);
}

/// A Microsoft Graph call with a token of the given scope: (status, body).
async fn graph_get(
    ts: &TestSim,
    credential: &std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    scope: &str,
    path: &str,
) -> (u16, Value) {
    let token = credential
        .get_token(&[scope], None)
        .await
        .expect("a token")
        .token
        .secret()
        .to_string();
    let response = ts
        .http
        .get(format!("{}{path}", ts.sim.arm_url))
        .bearer_auth(token)
        .send()
        .await
        .expect("the simulator answers");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

const BACKUP_APP_FILTER: &str =
    "/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c%20eq%20'0d9a6a8e-1c2b-4f35-8e7d-5a1b2c3d4e01')";

#[tokio::test]
async fn graph_finds_a_service_principal_by_its_app_id() {
    let ts = TestSim::start().await;
    let (status, body) = graph_get(&ts, &ts.security_side(), &graph_scope(&ts), BACKUP_APP_FILTER).await;
    assert_eq!(status, 200, "{body}");
    let found: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    // Only the principal in the caller's tenant, though the app has one in the isolated tenant too.
    assert_eq!(found, [BACKUP_OID]);
}

#[tokio::test]
async fn graph_refuses_a_token_for_arm() {
    let ts = TestSim::start().await;
    let (status, body) = graph_get(
        &ts,
        &ts.security_side(),
        mua_operator::azure::credentials::ARM_SCOPE,
        BACKUP_APP_FILTER,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("InvalidAuthenticationToken")),
        "{body}"
    );
}

#[tokio::test]
async fn graph_refuses_an_application_without_a_graph_permission() {
    let ts = TestSim::start().await;
    // The backup side has no Graph permission in the seed.
    let (status, body) = graph_get(&ts, &ts.backup_side(), &graph_scope(&ts), BACKUP_APP_FILTER).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("Authorization_RequestDenied")),
        "{body}"
    );
}

#[tokio::test]
async fn arm_refuses_a_token_for_graph() {
    let ts = TestSim::start().await;
    let token = ts
        .security_side()
        .get_token(&[&graph_scope(&ts)], None)
        .await
        .unwrap()
        .token
        .secret()
        .to_string();
    let reply = ts.call_with(&token, &[], Method::GET, &security_rg(), None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "InvalidAuthenticationTokenAudience")
    );
}
