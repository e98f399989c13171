//! What a person's sign-in returns beside the access token, so that MSAL can keep the account and sign in
//! again silently, for this resource or another. As Microsoft Learn describes the token response ("OAuth
//! 2.0 device authorization grant", successful authentication response): an ID token if the client asked
//! for `openid`, a refresh token if it asked for `offline_access`, and the scopes the token is for; and
//! `client_info` (the account's home IDs, which MSAL keys its cache by) when the client sends
//! `client_info=1`. The refresh token grant ("OAuth 2.0 authorization code flow", refresh the access
//! token) trades a refresh token for a new access token for any resource.

use std::collections::HashMap;

use axum::http::StatusCode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::directory::{self, EntraError, entra_error};
use crate::state::SimState;
use crate::tokens::RefreshClaims;
use crate::world::Principal;

const ID_TOKEN_LIFETIME_SECS: i64 = 3600;
/// Entra's refresh tokens last 90 days.
const REFRESH_TOKEN_LIFETIME_SECS: i64 = 90 * 24 * 3600;

/// The claims of an ID token (v2.0): who signed in, for which client.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub preferred_username: String,
    pub name: String,
    pub ver: String,
}

/// A user's sign-in at the token endpoint.
pub struct UserSignIn<'a> {
    pub user: &'a Principal,
    pub tenant: &'a str,
    pub client_id: &'a str,
    /// The scopes as the client asked for them (space-separated).
    pub scope: &'a str,
}

impl UserSignIn<'_> {
    /// The token response's fields beside the access token.
    pub fn response_fields(&self, sim: &SimState, with_client_info: bool, now: i64) -> Map<String, Value> {
        let asked = |scope: &str| self.scope.split(' ').any(|s| s == scope);
        let mut fields = Map::new();
        fields.insert("scope".into(), self.scope.into());
        if asked("openid") {
            let id_token = sim.tokens.issue(&self.id_claims(sim, now));
            fields.insert("id_token".into(), id_token.into());
        }
        if asked("offline_access") {
            let refresh = RefreshClaims {
                tid: self.tenant.to_string(),
                oid: self.user.object_id.clone(),
                azp: self.client_id.to_string(),
                iat: now,
                exp: now + REFRESH_TOKEN_LIFETIME_SECS,
            };
            fields.insert("refresh_token".into(), sim.tokens.issue_refresh(&refresh).into());
        }
        if with_client_info {
            fields.insert(
                "client_info".into(),
                client_info(&self.user.object_id, self.tenant).into(),
            );
        }
        fields
    }

    fn id_claims(&self, sim: &SimState, now: i64) -> IdClaims {
        IdClaims {
            aud: self.client_id.to_string(),
            iss: directory::issuer(sim, self.tenant),
            iat: now,
            nbf: now,
            exp: now + ID_TOKEN_LIFETIME_SECS,
            tid: self.tenant.to_string(),
            oid: self.user.object_id.clone(),
            sub: self.user.object_id.clone(),
            preferred_username: self.user.user_principal_name.clone().unwrap_or_default(),
            name: self.user.display_name.clone(),
            ver: "2.0".to_string(),
        }
    }
}

/// `client_info`: base64url of the account's home object and tenant IDs.
fn client_info(object_id: &str, tenant: &str) -> String {
    let json = json!({"uid": object_id, "utid": tenant}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The refresh token grant: the user a refresh token was issued to, if it was issued by this simulator,
/// in this tenant, to this client, and has not expired.
pub fn redeem_refresh_token(
    sim: &SimState,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Principal, EntraError> {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let invalid = |why: &str| {
        entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            9002313,
            format!("Invalid request. Request is malformed or invalid. {why}"),
        )
    };
    let claims = sim.tokens.verify_refresh(field("refresh_token")).map_err(|err| {
        if *err.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature {
            entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity.".into(),
            )
        } else {
            invalid("The refresh token was not issued by this authority.")
        }
    })?;
    if !claims.tid.eq_ignore_ascii_case(tenant) {
        return Err(invalid("The refresh token was issued in another tenant."));
    }
    if claims.azp != field("client_id") {
        return Err(invalid("The refresh token was issued to another client."));
    }
    directory::user_by_id(sim, tenant, &claims.oid)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::SimClock;
    use crate::throttle::{Limits, Throttle};
    use crate::tokens::{Claims, TokenIssuer};
    use crate::world::{PrincipalType, World};

    const NOW: i64 = 1_700_000_000;

    fn sim(dir: &std::path::Path) -> SimState {
        let clock = Arc::new(SimClock::default());
        let mut world = World::default();
        world.principals.insert("alice-oid".into(), alice());
        SimState::new(
            world,
            clock.clone(),
            TokenIssuer::load_or_create(dir).unwrap(),
            "https://127.0.0.1:1".into(),
            Throttle::new(Limits::default(), clock, false),
            None,
            std::time::Duration::from_secs(5),
        )
    }

    fn alice() -> Principal {
        Principal {
            object_id: "alice-oid".into(),
            tenant: "contoso".into(),
            kind: PrincipalType::User,
            display_name: "Alice".into(),
            user_principal_name: Some("alice@contoso.example".into()),
            ..Default::default()
        }
    }

    fn sign_in<'a>(user: &'a Principal, scope: &'a str) -> UserSignIn<'a> {
        UserSignIn {
            user,
            tenant: "contoso",
            client_id: "cli",
            scope,
        }
    }

    #[test]
    fn client_info_is_the_base64url_of_the_home_ids() {
        let encoded = client_info("8b3c4d5e", "72f988bf");
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&encoded)
            .unwrap();
        let value: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(value, json!({"uid": "8b3c4d5e", "utid": "72f988bf"}));
        assert!(!encoded.contains(['=', '+', '/']), "{encoded}");
    }

    #[test]
    fn the_id_token_comes_with_openid_and_the_refresh_token_with_offline_access() {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(dir.path());
        let user = alice();
        let bare = sign_in(&user, "arm/.default").response_fields(&sim, false, NOW);
        assert_eq!(bare.keys().collect::<Vec<_>>(), ["scope"]);

        let scope = "arm/.default offline_access openid profile";
        let full = sign_in(&user, scope).response_fields(&sim, true, NOW);
        assert_eq!(full["scope"], scope);
        assert!(full.contains_key("refresh_token") && full.contains_key("client_info"));
        let id_token = full["id_token"].as_str().unwrap();
        let claims: IdClaims = jsonwebtoken::dangerous::insecure_decode(id_token).unwrap().claims;
        assert_eq!(
            (
                claims.aud.as_str(),
                claims.preferred_username.as_str(),
                claims.tid.as_str()
            ),
            ("cli", "alice@contoso.example", "contoso")
        );
        assert_eq!(claims.iss, "https://127.0.0.1:1/contoso/v2.0");
    }

    #[test]
    fn a_refresh_token_is_no_access_token_and_an_access_token_no_refresh_token() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::load_or_create(dir.path()).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let refresh = issuer.issue_refresh(&RefreshClaims {
            tid: "contoso".into(),
            oid: "alice-oid".into(),
            azp: "cli".into(),
            iat: now,
            exp: now + 60,
        });
        assert!(issuer.verify_refresh(&refresh).is_ok());
        assert!(issuer.verify(&refresh).is_err());
        let access = issuer.issue(&Claims {
            aud: "https://management.azure.com".into(),
            iss: "iss".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            tid: "contoso".into(),
            oid: "alice-oid".into(),
            sub: "alice-oid".into(),
            appid: None,
            upn: None,
            idtyp: "user".into(),
            ver: "2.0".into(),
        });
        assert!(issuer.verify_refresh(&access).is_err());
    }

    #[test]
    fn a_refresh_token_redeems_only_in_its_tenant_for_its_client() {
        let dir = tempfile::tempdir().unwrap();
        let sim = sim(dir.path());
        let user = alice();
        let redeem = |tenant: &str, client: &str, token: &str| {
            let form = HashMap::from([
                ("client_id".to_string(), client.to_string()),
                ("refresh_token".to_string(), token.to_string()),
            ]);
            redeem_refresh_token(&sim, tenant, &form)
                .map(|p| p.object_id)
                .map_err(|e| e.code())
        };
        // NOW is in the past: tokens issued then have expired by the wall clock.
        let stale = sign_in(&user, "offline_access").response_fields(&sim, false, NOW);
        assert_eq!(
            redeem("contoso", "cli", stale["refresh_token"].as_str().unwrap()),
            Err(700082)
        );

        let fresh = sign_in(&user, "offline_access").response_fields(&sim, false, jiff::Timestamp::now().as_second());
        let fresh = fresh["refresh_token"].as_str().unwrap();
        assert_eq!(redeem("contoso", "cli", fresh), Ok("alice-oid".to_string()));
        assert_eq!(redeem("fabrikam", "cli", fresh), Err(9002313));
        assert_eq!(redeem("contoso", "other-client", fresh), Err(9002313));
        assert_eq!(redeem("contoso", "cli", "not-a-token"), Err(9002313));
    }
}
