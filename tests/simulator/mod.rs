//! An in-process ARM simulator per test, and a small ARM caller that authenticates with the real
//! `azure_identity` credentials against the simulator's token endpoint.

#![allow(dead_code)] // the integration tests and each bench use a different part of the helper

pub mod mua;

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use mua_operator::azure::credentials::{ARM_SCOPE, AzureCloud};
use mua_operator::sim::{SimOptions, Simulator};
use reqwest::Method;
use serde_json::Value;

// IDs from examples/sim-seed.yaml.
pub const CONTOSO: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const FABRIKAM: &str = "33e01921-4d64-4f8c-a055-5bdaffd5e33d";
pub const BACKUP_SUB: &str = "5e13b949-1218-4d18-8b99-7e12155ec4f7";
pub const SECURITY_SUB: &str = "0b352192-dcac-4cc7-992e-a96190ccc68c";
pub const ISOLATED_SUB: &str = "c999d45b-944f-418c-a0d8-c3fcfd1802c8";
pub const BACKUP_APP: &str = "0d9a6a8e-1c2b-4f35-8e7d-5a1b2c3d4e01";
pub const BACKUP_SECRET: &str = "backup-side-secret";
pub const BACKUP_OID: &str = "6f1e2f0a-3b0c-4a52-9d0e-0c3f4e5a6b01";
pub const SECURITY_APP: &str = "1e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a01";
pub const SECURITY_SECRET: &str = "security-side-secret";
pub const SECURITY_OID: &str = "7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c01";
pub const BOB_OID: &str = "9c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e01";
pub const ALICE_OID: &str = "8b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d01";
/// The Azure CLI's application (client) ID, which MSAL sends to the token endpoint.
pub const AZURE_CLI_APP: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

pub fn vault(name: &str) -> String {
    format!("/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.RecoveryServices/vaults/{name}")
}

pub fn security_rg() -> String {
    format!("/subscriptions/{SECURITY_SUB}/resourceGroups/security-rg")
}

pub fn guard(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.DataProtection/resourceGuards/{name}",
        security_rg()
    )
}

pub fn isolated_guard() -> String {
    format!(
        "/subscriptions/{ISOLATED_SUB}/resourceGroups/guard-rg/providers/Microsoft.DataProtection/resourceGuards/isolated-guard"
    )
}

/// An ARM answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Panics with the whole answer unless the status is `want`.
    pub fn expect(self, want: u16, what: &str) -> Reply {
        assert_eq!(
            self.status, want,
            "{what}: expected {want}, got {} {}",
            self.status, self.body
        );
        self
    }
}

pub struct TestSim {
    pub sim: Simulator,
    pub cloud: AzureCloud,
    pub http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

impl TestSim {
    /// A simulator seeded with `examples/sim-seed.yaml`.
    pub async fn start() -> TestSim {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut SimOptions)) -> TestSim {
        let dir = tempfile::tempdir().unwrap();
        let mut ts = Self::start_in(dir.path(), configure).await;
        ts._dir = Some(dir);
        ts
    }

    /// A simulator whose CA, keys (and any state file the caller sets) live in `dir`, which outlives it.
    pub async fn start_in(dir: &std::path::Path, configure: impl FnOnce(&mut SimOptions)) -> TestSim {
        let mut options = SimOptions::new(dir);
        options.seed = Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sim-seed.yaml"));
        configure(&mut options);
        let sim = Simulator::start(options).await.expect("the simulator starts");
        let cloud = AzureCloud {
            arm_url: sim.arm_url.clone(),
            authority_host: sim.authority_host.clone(),
            ca_pem: Some(sim.ca_pem.clone()),
            arm_audience: mua_operator::azure::credentials::PUBLIC_ARM_AUDIENCE.into(),
        };
        let http = cloud.http_client().unwrap();
        TestSim {
            sim,
            cloud,
            http,
            _dir: None,
        }
    }

    pub fn credential(&self, tenant: &str, client_id: &str, secret: &str) -> Arc<dyn TokenCredential> {
        self.cloud.client_secret(&self.http, tenant, client_id, secret).unwrap()
    }

    pub fn backup_side(&self) -> Arc<dyn TokenCredential> {
        self.credential(CONTOSO, BACKUP_APP, BACKUP_SECRET)
    }

    pub fn security_side(&self) -> Arc<dyn TokenCredential> {
        self.credential(CONTOSO, SECURITY_APP, SECURITY_SECRET)
    }

    /// The security side creates a guard in the security resource group (westeurope); returns its ID.
    pub async fn create_guard(&self, name: &str) -> String {
        let guard_id = guard(name);
        let body = serde_json::json!({"location": "westeurope"});
        self.call(&self.security_side(), Method::PUT, &guard_id, Some(body))
            .await
            .expect(201, "creating the guard");
        guard_id
    }

    pub async fn token(&self, credential: &Arc<dyn TokenCredential>) -> String {
        credential
            .get_token(&[ARM_SCOPE], None)
            .await
            .expect("a token from the simulator")
            .token
            .secret()
            .to_string()
    }

    /// A user's token through the password grant (the SDK for Rust has no user-password credential).
    pub async fn user_token(&self, tenant: &str, username: &str, password: &str) -> String {
        let response = self
            .http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.sim.authority_host))
            .form(&[
                ("grant_type", "password"),
                ("client_id", AZURE_CLI_APP),
                ("username", username),
                ("password", password),
                ("scope", ARM_SCOPE),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "password grant for {username}: {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn call(
        &self,
        credential: &Arc<dyn TokenCredential>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let token = self.token(credential).await;
        self.call_with(&token, &[], method, path, body).await
    }

    /// A raw ARM call with a bearer token and auxiliary tokens. `path` may carry its own api-version.
    pub async fn call_with(
        &self,
        token: &str,
        auxiliary: &[String],
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let url = if path.contains("api-version=") {
            format!("{}{path}", self.sim.arm_url)
        } else {
            let separator = if path.contains('?') { '&' } else { '?' };
            format!(
                "{}{path}{separator}api-version={}",
                self.sim.arm_url,
                default_api_version(path)
            )
        };
        let mut request = self.http.request(method, url);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if !auxiliary.is_empty() {
            let value = auxiliary
                .iter()
                .map(|t| format!("Bearer {t}"))
                .collect::<Vec<_>>()
                .join(", ");
            request = request.header("x-ms-authorization-auxiliary", value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the simulator answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply { status, headers, body }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.sim.arm_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }
}

/// The api-versions current SDKs send by default.
pub fn default_api_version(path: &str) -> &'static str {
    let lower = path.to_ascii_lowercase();
    if lower.contains("roleassignmentapprovals") {
        "2021-01-01-preview"
    } else if lower.contains("microsoft.authorization/roleassignments/")
        || lower.ends_with("microsoft.authorization/roleassignments")
    {
        "2022-04-01"
    } else if lower.contains("microsoft.authorization") {
        "2020-10-01"
    } else if lower.contains("microsoft.dataprotection") {
        "2026-06-01"
    } else if lower.contains("/vaults/")
        && lower
            .split("/vaults/")
            .nth(1)
            .is_some_and(|rest| rest.contains('/') && !rest.contains("/operation"))
    {
        "2026-10-01"
    } else {
        "2026-11-01"
    }
}
