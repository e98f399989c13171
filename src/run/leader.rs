//! Leader election: one Lease per side, held through kube-lease-manager, so that of several replicas
//! only one acts for a side, and the `mua_leader{side}` gauge that shows which.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError, LeaseParams};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Shutdown, Side};

/// How often a standby looks whether the leader released the lease (kube-lease-manager itself only
/// looks again when the lease would expire).
const RELEASE_POLL: Duration = Duration::from_secs(1);
/// Pause after a failed Kubernetes call while standing by.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// `POD_NAME` (or the host name) plus a random suffix: a restarted pod, or two processes on one host,
/// never take each other for the holder.
pub fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "mua-operator".into());
    let suffix: String = std::iter::repeat_with(fastrand::lowercase).take(6).collect();
    format!("{base}-{suffix}")
}

/// Where and as whom this process competes for leases.
pub struct Election {
    client: kube::Client,
    namespace: String,
    identity: String,
    duration: u64,
}

impl Election {
    pub fn new(client: kube::Client, namespace: &str, identity: String, duration: u64) -> Election {
        Election {
            client,
            namespace: namespace.into(),
            identity,
            duration,
        }
    }

    /// A candidate for the lease `name`, which is created when missing.
    pub async fn candidate(&self, name: &str) -> anyhow::Result<Candidate> {
        let api = Api::namespaced(self.client.clone(), &self.namespace);
        // Renew after a third of the duration: two thirds of slack for a slow API server or clock skew.
        let params = LeaseParams::new(&self.identity, self.duration, (self.duration * 2 / 3).max(1));
        let manager = lease_manager(&api, name, &params)
            .await
            .map_err(|err| anyhow::anyhow!("preparing the lease {}/{name}: {err}", self.namespace))?;
        tracing::info!(lease = name, namespace = %self.namespace, identity = %self.identity, "lease candidate");
        Ok(Candidate {
            api,
            name: name.into(),
            params,
            manager,
        })
    }
}

/// A manager for the lease `name` in `api`'s namespace; a fresh one reads the Lease at once.
async fn lease_manager(api: &Api<Lease>, name: &str, params: &LeaseParams) -> Result<LeaseManager, LeaseManagerError> {
    // `Election::new` makes the API namespaced (`--lease-namespace`), so it always has one.
    let namespace = api.namespace().unwrap_or("default");
    LeaseManagerBuilder::new(api.clone().into_client(), name)
        .with_namespace(namespace)
        .with_parameters(params.clone())
        .build()
        .await
}

pub struct Candidate {
    api: Api<Lease>,
    name: String,
    params: LeaseParams,
    manager: LeaseManager,
}

impl Candidate {
    /// Replaces the manager, which re-reads the Lease at once (the old one waits for the holder's expiry).
    async fn reread(&mut self) {
        match lease_manager(&self.api, &self.name, &self.params).await {
            Ok(manager) => self.manager = manager,
            Err(err) => tracing::warn!(lease = %self.name, %err, "re-reading the lease failed"),
        }
    }

    /// Waits until this process holds the lease; `false` when `shutdown` comes first.
    pub async fn acquire(&mut self, shutdown: Shutdown) -> bool {
        tracing::info!(lease = %self.name, "waiting for the lease");
        loop {
            enum Step {
                Shutdown,
                Changed(Result<bool, LeaseManagerError>),
                Released,
            }
            let step = tokio::select! {
                () = shutdown.clone() => Step::Shutdown,
                changed = self.manager.changed() => Step::Changed(changed),
                () = self.released() => Step::Released,
            };
            match step {
                Step::Shutdown => {
                    // `changed()` may have been stopped just after taking the lease: give it back.
                    if let Err(err) = self.manager.release().await {
                        tracing::warn!(lease = %self.name, %err, "releasing the lease on shutdown failed");
                    }
                    return false;
                }
                Step::Changed(Ok(true)) => return true,
                Step::Changed(Ok(false)) => {}
                Step::Changed(Err(err)) => {
                    tracing::warn!(lease = %self.name, %err, "leader election failed; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                    self.reread().await;
                }
                Step::Released => self.reread().await,
            }
        }
    }

    /// Returns once the lease has no holder: released by a leader that stopped. (A free lease is taken
    /// by `changed()` at once, so this fires only while kube-lease-manager waits for the old expiry.)
    async fn released(&self) {
        loop {
            tokio::time::sleep(RELEASE_POLL).await;
            if let Ok(Some(lease)) = self.api.get_opt(&self.name).await
                && lease.spec.and_then(|spec| spec.holder_identity).is_none()
            {
                return;
            }
        }
    }

    /// Keeps the lease renewed while the side runs; returns only when the lease is lost, with why. Any
    /// failure to renew counts as lost: the side must never act without knowing it holds the lease.
    pub async fn hold(&self) -> anyhow::Error {
        loop {
            match self.manager.changed().await {
                Ok(true) => {}
                Ok(false) => {
                    return anyhow::anyhow!("another replica holds the lease {}", self.name);
                }
                Err(err) => {
                    return anyhow::anyhow!("renewing the lease {} failed: {err}", self.name);
                }
            }
        }
    }

    /// Gives the lease up, so that a standby takes over without waiting for it to expire.
    pub async fn release(&self) {
        match self.manager.release().await {
            Ok(()) => tracing::info!(lease = %self.name, "released the lease"),
            Err(err) => tracing::warn!(lease = %self.name, %err, "releasing the lease failed; it expires on its own"),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabel {
    side: &'static str,
}

/// `mua_leader{side}`: 1 while this process acts for the side (holds its lease, or runs without leader
/// election), else 0.
#[derive(Clone)]
pub struct LeaderGauge(Family<SideLabel, Gauge>);

impl LeaderGauge {
    pub fn register(registry: &mut Registry) -> LeaderGauge {
        let family = Family::<SideLabel, Gauge>::default();
        registry.register(
            "mua_leader",
            "1 while this process acts for the side (holds its leader-election lease)",
            family.clone(),
        );
        LeaderGauge(family)
    }

    pub fn set(&self, side: Side, leading: bool) {
        self.0
            .get_or_create(&SideLabel { side: side.name() })
            .set(i64::from(leading));
    }
}
