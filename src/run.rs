//! `mua-operator run`: the controllers, configured from flags and the environment, until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use kube::Api;

use crate::azure::credentials::AzureCloud;
use crate::azure::{ArmClient, TokenCredentialRef};
use crate::controller::{Context, resource_guard};
use crate::crd::ResourceGuard;

/// Which controllers to run: the security side (guards, granting elevation) and the backup side (vault
/// links, performing approved operations) can run as separate Deployments with separate identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    Security,
    Backup,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The controllers to run.
    #[arg(long, value_delimiter = ',', default_value = "security")]
    pub controllers: Vec<Side>,
    /// Watch one namespace instead of all.
    #[arg(long, env = "MUA_NAMESPACE")]
    pub namespace: Option<String>,
    /// ARM's base URL (the simulator's `armUrl` for rehearsals).
    #[arg(
        long,
        env = "AZURE_RESOURCE_MANAGER_URL",
        default_value = "https://management.azure.com"
    )]
    pub arm_url: String,
    /// The Entra authority host.
    #[arg(
        long,
        env = "AZURE_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com"
    )]
    pub authority_host: String,
    /// Trust only this CA (PEM) for ARM and Entra: the simulator's `caFile`.
    #[arg(long, env = "MUA_AZURE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The identity's home tenant.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub tenant_id: String,
    /// The identity's application (client) ID.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub client_id: String,
    /// A file holding the client secret; without it, workload identity (`AZURE_FEDERATED_TOKEN_FILE`).
    #[arg(long, env = "MUA_AZURE_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// Workload identity: the projected ServiceAccount token.
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE")]
    pub federated_token_file: Option<PathBuf>,
    /// Other tenants the same application signs in to (for guards there), comma-separated.
    #[arg(long, value_delimiter = ',', env = "MUA_AZURE_ADDITIONAL_TENANTS")]
    pub additional_tenants: Vec<String>,
}

impl RunArgs {
    fn cloud(&self) -> anyhow::Result<AzureCloud> {
        let ca_pem = match &self.ca_file {
            Some(path) => {
                Some(std::fs::read_to_string(path).with_context(|| format!("reading the CA file {}", path.display()))?)
            }
            None => None,
        };
        Ok(AzureCloud {
            arm_url: self.arm_url.clone(),
            authority_host: self.authority_host.clone(),
            ca_pem,
        })
    }

    fn credential(
        &self,
        cloud: &AzureCloud,
        http: &reqwest::Client,
        tenant: &str,
    ) -> anyhow::Result<TokenCredentialRef> {
        if let Some(path) = &self.client_secret_file {
            let secret = std::fs::read_to_string(path)
                .with_context(|| format!("reading the client secret {}", path.display()))?;
            return cloud.client_secret(http, tenant, &self.client_id, secret.trim());
        }
        match &self.federated_token_file {
            Some(token_file) => cloud.workload_identity(http, tenant, &self.client_id, token_file),
            None => bail!(
                "no Azure credential: set --client-secret-file, or workload identity (AZURE_FEDERATED_TOKEN_FILE)"
            ),
        }
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.controllers.contains(&Side::Backup) {
        bail!(
            "the backup-side controllers (VaultProtection, CriticalOperationRequest) are not built yet; run --controllers=security"
        );
    }
    let cloud = args.cloud()?;
    let http = cloud.http_client()?;
    let mut arm = ArmClient::new(
        &cloud,
        http.clone(),
        &args.tenant_id,
        args.credential(&cloud, &http, &args.tenant_id)?,
    );
    for tenant in &args.additional_tenants {
        arm = arm.with_tenant(tenant, args.credential(&cloud, &http, tenant)?);
    }
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster or KUBECONFIG)")?;
    let ctx = Arc::new(Context::new(client.clone()).with_security(arm));
    let guards: Api<ResourceGuard> = match &args.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    tracing::info!(controllers = ?args.controllers, namespace = ?args.namespace, arm = %cloud.arm_url, "starting");
    resource_guard::run(guards, ctx, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (Kubernetes stopping the pod) or SIGINT.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
