//! Where Azure is (public cloud, or the local simulator) and how the operator proves who it is: the real
//! `azure_identity` credentials, pointed at the configured authority host and sharing one HTTP client.

use std::sync::Arc;

use anyhow::Context;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

/// Azure's endpoints as this operator uses them.
#[derive(Clone, Debug)]
pub struct AzureCloud {
    /// ARM's base URL, e.g. `https://management.azure.com`.
    pub arm_url: String,
    /// The Entra authority host, e.g. `https://login.microsoftonline.com`.
    pub authority_host: String,
    /// A CA to trust instead of the system roots (the simulator's), as PEM.
    pub ca_pem: Option<String>,
    /// The audience (resource) ARM tokens are asked for: each cloud's ARM accepts its own, e.g.
    /// `https://management.azure.com` in the public cloud, `https://management.usgovcloudapi.net` in Azure
    /// Government. [`arm_audience`] finds it.
    pub arm_audience: String,
}

/// The public cloud's ARM.
pub const PUBLIC_ARM_URL: &str = "https://management.azure.com";
/// The audience of the public cloud's ARM.
pub const PUBLIC_ARM_AUDIENCE: &str = "https://management.azure.com";
/// The scope of a public-cloud ARM token.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The api-version of ARM's metadata endpoint (`az cloud register` reads the same).
const METADATA_API_VERSION: &str = "2022-09-01";

impl AzureCloud {
    pub fn public() -> Self {
        Self {
            arm_url: PUBLIC_ARM_URL.into(),
            authority_host: "https://login.microsoftonline.com".into(),
            ca_pem: None,
            arm_audience: PUBLIC_ARM_AUDIENCE.into(),
        }
    }

    /// The scope ARM tokens are requested for: `<audience>/.default`.
    pub fn arm_scope(&self) -> String {
        format!("{}/.default", self.arm_audience.trim_end_matches('/'))
    }

    /// One HTTP client for ARM and Entra: rustls, HTTP/2, and the configured CA only when one is set.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .connect_timeout(std::time::Duration::from_secs(10));
        if let Some(pem) = &self.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).context("parsing the CA certificate")?;
            builder = builder.tls_certs_only(certs);
        }
        builder.build().context("building the HTTP client")
    }

    fn client_options(&self, http: &reqwest::Client) -> ClientOptions {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = self.authority_host.clone();
        let cloud = CloudConfiguration::from(custom);
        ClientOptions {
            transport: Some(Transport::new(Arc::new(http.clone()))),
            cloud: Some(Arc::new(cloud)),
            ..Default::default()
        }
    }

    /// A service principal with a client secret.
    pub fn client_secret(
        &self,
        http: &reqwest::Client,
        tenant: &str,
        client_id: &str,
        secret: &str,
    ) -> anyhow::Result<Arc<dyn TokenCredential>> {
        let options = ClientSecretCredentialOptions {
            client_options: self.client_options(http),
        };
        let credential = ClientSecretCredential::new(
            tenant,
            client_id.to_string(),
            Secret::new(secret.to_string()),
            Some(options),
        )
        .context("creating the client secret credential")?;
        Ok(credential)
    }

    /// Workload identity: a Kubernetes ServiceAccount token (in `token_file`) exchanged for an Entra token.
    pub fn workload_identity(
        &self,
        http: &reqwest::Client,
        tenant: &str,
        client_id: &str,
        token_file: &std::path::Path,
    ) -> anyhow::Result<Arc<dyn TokenCredential>> {
        let mut options = WorkloadIdentityCredentialOptions {
            client_id: Some(client_id.to_string()),
            tenant_id: Some(tenant.to_string()),
            token_file_path: Some(token_file.to_path_buf()),
            ..Default::default()
        };
        options.credential_options.client_options = self.client_options(http);
        let credential =
            WorkloadIdentityCredential::new(Some(options)).context("creating the workload identity credential")?;
        Ok(credential)
    }
}

/// Makes ARM clients for identities named at run time (a namespace's own, as Azure Service Operator has
/// them): the same cloud, HTTP client, retries and metrics as the side's global identity, and buckets
/// of their own (ARM counts per principal).
#[derive(Clone)]
pub struct IdentityMaker {
    pub cloud: AzureCloud,
    pub http: reqwest::Client,
    /// The operator's projected ServiceAccount token: workload identity for an identity given without a
    /// client secret.
    pub federated_token_file: Option<std::path::PathBuf>,
    pub metrics: crate::azure::ArmMetrics,
}

/// An identity as a namespace names it.
pub struct NamedIdentity<'a> {
    pub tenant: &'a str,
    pub client_id: &'a str,
    /// Without one: workload identity with the operator's own token.
    pub client_secret: Option<&'a str>,
    pub additional_tenants: Vec<&'a str>,
}

impl IdentityMaker {
    /// The ARM client of `identity`, signed in to its home tenant and its additional ones.
    pub fn client(&self, identity: &NamedIdentity) -> anyhow::Result<crate::azure::ArmClient> {
        let credential = |tenant: &str| match (identity.client_secret, &self.federated_token_file) {
            (Some(secret), _) => self.cloud.client_secret(&self.http, tenant, identity.client_id, secret),
            (None, Some(token_file)) => {
                self.cloud
                    .workload_identity(&self.http, tenant, identity.client_id, token_file)
            }
            (None, None) => anyhow::bail!(
                "it has no AZURE_CLIENT_SECRET and the operator runs without workload identity (no AZURE_FEDERATED_TOKEN_FILE)"
            ),
        };
        let mut arm = crate::azure::ArmClient::new(
            &self.cloud,
            self.http.clone(),
            identity.tenant,
            credential(identity.tenant)?,
        )
        .with_metrics(self.metrics.clone());
        for tenant in &identity.additional_tenants {
            arm = arm.with_tenant(tenant, credential(tenant)?);
        }
        Ok(arm)
    }
}

/// The token audience of the ARM at `arm_url`: the public cloud's without asking; any other cloud's (a
/// sovereign cloud, Azure Stack, the simulator) from its metadata endpoint, `GET
/// <arm>/metadata/endpoints?api-version=2022-09-01`, whose `authentication.audiences` lists the audiences
/// that ARM accepts (the first is the one `az cloud register` uses).
pub async fn arm_audience(http: &reqwest::Client, arm_url: &str) -> anyhow::Result<String> {
    let arm_url = arm_url.trim_end_matches('/');
    if arm_url.eq_ignore_ascii_case(PUBLIC_ARM_URL) {
        return Ok(PUBLIC_ARM_AUDIENCE.to_string());
    }
    let url = format!("{arm_url}/metadata/endpoints?api-version={METADATA_API_VERSION}");
    let unknown = || format!("cannot tell the token audience of ARM at {arm_url} from {url}: set --arm-audience");
    let response = http.get(&url).send().await.with_context(unknown)?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{} (HTTP {status})", unknown());
    let metadata: serde_json::Value = response.json().await.with_context(unknown)?;
    metadata["authentication"]["audiences"]
        .as_array()
        .and_then(|audiences| audiences.first())
        .and_then(|audience| audience.as_str())
        .filter(|audience| !audience.is_empty())
        .map(|audience| audience.trim_end_matches('/').to_string())
        .with_context(|| format!("{}: the metadata lists no authentication.audiences", unknown()))
}
