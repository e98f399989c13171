//! The Azure flags: the cloud (ARM, Entra, CA) and each side's identity, shared or per side, so that one
//! process with two identities and two Deployments with one each both work.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use super::Side;
use crate::azure::credentials::{AzureCloud, arm_audience};
use crate::azure::{ArmClient, TokenCredentialRef};

#[derive(clap::Args, Debug)]
pub struct AzureArgs {
    /// ARM's base URL (the simulator's `armUrl` for rehearsals).
    #[arg(
        long,
        env = "AZURE_RESOURCE_MANAGER_URL",
        default_value = "https://management.azure.com",
        help_heading = "Azure"
    )]
    pub arm_url: String,
    /// The Entra authority host.
    #[arg(
        long,
        env = "AZURE_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com",
        help_heading = "Azure"
    )]
    pub authority_host: String,
    /// The audience ARM tokens are asked for. Default: the public cloud's for its ARM, else what the ARM
    /// endpoint's metadata names (`<arm-url>/metadata/endpoints`), as `az cloud register` reads it.
    #[arg(long, env = "MUA_AZURE_ARM_AUDIENCE", help_heading = "Azure")]
    pub arm_audience: Option<String>,
    /// Trust only this CA (PEM) for ARM and Entra: the simulator's `caFile`.
    #[arg(long, env = "MUA_AZURE_CA_FILE", help_heading = "Azure")]
    pub ca_file: Option<PathBuf>,
    /// The identity's home tenant (both sides, unless `--security-tenant-id`/`--backup-tenant-id`).
    #[arg(long, env = "AZURE_TENANT_ID", help_heading = "Azure")]
    pub tenant_id: Option<String>,
    /// The identity's application (client) ID (both sides, unless `--security-client-id`/`--backup-client-id`).
    #[arg(long, env = "AZURE_CLIENT_ID", help_heading = "Azure")]
    pub client_id: Option<String>,
    /// A file holding the client secret (both sides, unless overridden per side); without one, workload
    /// identity (`AZURE_FEDERATED_TOKEN_FILE`).
    #[arg(long, env = "MUA_AZURE_CLIENT_SECRET_FILE", help_heading = "Azure")]
    pub client_secret_file: Option<PathBuf>,
    /// Workload identity: the projected ServiceAccount token (shared by both sides' applications).
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE", help_heading = "Azure")]
    pub federated_token_file: Option<PathBuf>,
    /// Other tenants the applications sign in to (for guards there), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        env = "MUA_AZURE_ADDITIONAL_TENANTS",
        help_heading = "Azure"
    )]
    pub additional_tenants: Vec<String>,

    /// The security side's home tenant (default: `--tenant-id`).
    #[arg(long, env = "MUA_SECURITY_AZURE_TENANT_ID", help_heading = "Azure, per side")]
    pub security_tenant_id: Option<String>,
    /// The security side's application (client) ID (default: `--client-id`).
    #[arg(long, env = "MUA_SECURITY_AZURE_CLIENT_ID", help_heading = "Azure, per side")]
    pub security_client_id: Option<String>,
    /// The security side's client secret file (default: `--client-secret-file`).
    #[arg(
        long,
        env = "MUA_SECURITY_AZURE_CLIENT_SECRET_FILE",
        help_heading = "Azure, per side"
    )]
    pub security_client_secret_file: Option<PathBuf>,
    /// The backup side's home tenant (default: `--tenant-id`).
    #[arg(long, env = "MUA_BACKUP_AZURE_TENANT_ID", help_heading = "Azure, per side")]
    pub backup_tenant_id: Option<String>,
    /// The backup side's application (client) ID (default: `--client-id`).
    #[arg(long, env = "MUA_BACKUP_AZURE_CLIENT_ID", help_heading = "Azure, per side")]
    pub backup_client_id: Option<String>,
    /// The backup side's client secret file (default: `--client-secret-file`).
    #[arg(long, env = "MUA_BACKUP_AZURE_CLIENT_SECRET_FILE", help_heading = "Azure, per side")]
    pub backup_client_secret_file: Option<PathBuf>,
}

/// One side's Azure identity: its own flags where given, else the shared ones.
struct Identity<'a> {
    tenant: &'a str,
    client_id: &'a str,
    secret_file: Option<&'a PathBuf>,
}

impl AzureArgs {
    fn identity(&self, side: Side) -> anyhow::Result<Identity<'_>> {
        let (tenant, client_id, secret_file) = match side {
            Side::Security => (
                &self.security_tenant_id,
                &self.security_client_id,
                &self.security_client_secret_file,
            ),
            Side::Backup => (
                &self.backup_tenant_id,
                &self.backup_client_id,
                &self.backup_client_secret_file,
            ),
        };
        let side = side.name();
        Ok(Identity {
            tenant: tenant.as_ref().or(self.tenant_id.as_ref()).with_context(|| {
                format!("no Azure tenant for the {side} side: set --tenant-id or --{side}-tenant-id")
            })?,
            client_id: client_id.as_ref().or(self.client_id.as_ref()).with_context(|| {
                format!("no Azure client ID for the {side} side: set --client-id or --{side}-client-id")
            })?,
            secret_file: secret_file.as_ref().or(self.client_secret_file.as_ref()),
        })
    }

    /// The cloud, with the token audience of its ARM (asked of the ARM endpoint unless given or public),
    /// and the one HTTP client for ARM and Entra that asked it.
    pub async fn cloud(&self) -> anyhow::Result<(AzureCloud, reqwest::Client)> {
        let ca_pem = match &self.ca_file {
            Some(path) => {
                Some(std::fs::read_to_string(path).with_context(|| format!("reading the CA file {}", path.display()))?)
            }
            None => None,
        };
        let mut cloud = AzureCloud {
            arm_url: self.arm_url.clone(),
            authority_host: self.authority_host.clone(),
            ca_pem,
            arm_audience: String::new(),
        };
        let http = cloud.http_client()?;
        cloud.arm_audience = match &self.arm_audience {
            Some(audience) => audience.trim_end_matches('/').to_string(),
            None => arm_audience(&http, &self.arm_url).await?,
        };
        tracing::info!(arm = %cloud.arm_url, audience = %cloud.arm_audience, "ARM token audience");
        Ok((cloud, http))
    }

    fn credential(
        &self,
        identity: &Identity,
        cloud: &AzureCloud,
        http: &reqwest::Client,
        tenant: &str,
    ) -> anyhow::Result<TokenCredentialRef> {
        if let Some(path) = identity.secret_file {
            let secret = std::fs::read_to_string(path)
                .with_context(|| format!("reading the client secret {}", path.display()))?;
            return cloud.client_secret(http, tenant, identity.client_id, secret.trim());
        }
        match &self.federated_token_file {
            Some(token_file) => cloud.workload_identity(http, tenant, identity.client_id, token_file),
            None => bail!(
                "no Azure credential: set --client-secret-file (or a per-side one), or workload identity (AZURE_FEDERATED_TOKEN_FILE)"
            ),
        }
    }

    /// The side's ARM client, signed in to its home tenant and the additional ones.
    pub fn arm_client(&self, side: Side, cloud: &AzureCloud, http: &reqwest::Client) -> anyhow::Result<ArmClient> {
        let identity = self.identity(side)?;
        let mut arm = ArmClient::new(
            cloud,
            http.clone(),
            identity.tenant,
            self.credential(&identity, cloud, http, identity.tenant)?,
        );
        for tenant in &self.additional_tenants {
            arm = arm.with_tenant(tenant, self.credential(&identity, cloud, http, tenant)?);
        }
        Ok(arm)
    }
}
