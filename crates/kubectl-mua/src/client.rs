//! Connecting as kubectl does (kubeconfig, context, namespace) and finding out who we are.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use mua_api::crd::CriticalOperationRequest;

use crate::args::Global;
use crate::error::{Failure, Target, from_kube};

/// A client for the chosen context, and the namespace commands act in.
pub struct Session {
    pub client: Client,
    pub namespace: String,
}

impl Session {
    pub async fn connect(global: &Global) -> Result<Self, Failure> {
        let config = load_config(global).await?;
        // `-n` wins over the context's namespace, which kube already defaulted to `default`.
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let _ = crate::error::SERVER.set(config.cluster_url.to_string());
        let client = Client::try_from(config)
            .map_err(|err| Failure::unexpected(format!("cannot build a client from the kubeconfig: {err}")))?;
        Ok(Self { client, namespace })
    }

    pub fn requests(&self) -> Api<CriticalOperationRequest> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Who the API server says we are: the name and groups that admission policies and RBAC see.
    pub async fn whoami(&self) -> Result<Identity, Failure> {
        let review = Api::<SelfSubjectReview>::all(self.client.clone())
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .map_err(|err| from_kube(err, Target::collection("selfsubjectreview", None)))?;
        let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
        match info.username {
            Some(username) if !username.is_empty() => Ok(Identity {
                username,
                groups: info.groups.unwrap_or_default(),
            }),
            _ => Err(Failure::unexpected(
                "the API server did not say who you are (empty SelfSubjectReview): are you anonymous?",
            )),
        }
    }
}

/// The authenticated user.
#[derive(Clone, Debug)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The server-side apply field manager for this user's own fields, so two people writing their own
    /// approval entries never take over each other's fields. Field managers are at most 128 characters.
    pub fn field_manager(&self) -> String {
        format!("kubectl-mua/{}", self.username).chars().take(128).collect()
    }
}

/// `--kubeconfig` alone, else `$KUBECONFIG` / `~/.kube/config` (kube merges them as kubectl does), else
/// the in-cluster service account when no context was asked for.
async fn load_config(global: &Global) -> Result<Config, Failure> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..Default::default()
    };
    if let Some(path) = &global.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path)
            .map_err(|err| Failure::unexpected(format!("cannot read kubeconfig {}: {err}", path.display())))?;
        return Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|err| Failure::unexpected(format!("cannot use kubeconfig {}: {err}", path.display())));
    }
    match Config::from_kubeconfig(&options).await {
        Ok(config) => Ok(config),
        Err(err) if global.context.is_none() => Config::incluster().map_err(|_| {
            Failure::unexpected(format!(
                "no usable kubeconfig ({err}); pass --kubeconfig or set KUBECONFIG"
            ))
        }),
        Err(err) => Err(Failure::unexpected(format!("cannot use context: {err}"))),
    }
}
