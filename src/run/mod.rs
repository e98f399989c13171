//! `mua-operator run`: the controllers of one or both sides, each side behind its own leader-election
//! Lease, plus `/metrics`, `/healthz` and `/readyz`, until SIGTERM/SIGINT.
//!
//! Start-up order: flags → Azure credentials → HTTP endpoints → Kubernetes → Leases (Ready from here) →
//! per side: wait for its lease, then start its controllers.

mod azure;
mod leader;
pub mod memory;
mod metrics_auth;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use prometheus_client::registry::Registry;

use crate::azure::ArmMetrics;
use crate::azure::credentials::IdentityMaker;
use crate::controller::metrics::Metrics;
use crate::controller::{
    BackupContext, BackupIdentity, BackupSide, Context, ControllerConfig, SecurityContext, SecuritySide,
    critical_operation_request, resource_guard, vault_protection,
};
use leader::LeaderGauge;

/// Which controllers to run: the security side (guards, granting elevation) and the backup side (vault
/// links, performing approved operations) can run as separate Deployments with separate identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    Security,
    Backup,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Security => "security",
            Side::Backup => "backup",
        }
    }

    /// The side's leader-election Lease.
    fn lease_name(self) -> String {
        format!("mua-operator-{}", self.name())
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The controllers to run: `security`, `backup`, or both (`security,backup`).
    #[arg(long, value_delimiter = ',', env = "MUA_CONTROLLERS", default_value = "security")]
    pub controllers: Vec<Side>,
    /// Watch one namespace instead of all.
    #[arg(long, env = "MUA_NAMESPACE")]
    pub namespace: Option<String>,
    /// The backup side's Azure object ID: the principal the security side elevates for operations the
    /// operator performs itself. Needed when the security side runs without the backup side's
    /// credential; otherwise read from the backup side's token. A multi-tenant application has an object
    /// ID per tenant: give the home tenant's as `OBJECT_ID` and each guard tenant's as
    /// `TENANT_ID=OBJECT_ID` (comma-separated or repeated).
    #[arg(long, env = "MUA_BACKUP_PRINCIPAL_ID", value_delimiter = ',', value_parser = parse_principal)]
    pub backup_principal_id: Vec<(Option<String>, String)>,

    /// Serve /metrics, /healthz and /readyz here (port 0 picks a free port; the bound address is logged).
    #[arg(
        long,
        env = "MUA_METRICS_BIND_ADDRESS",
        default_value = "0.0.0.0:8080",
        help_heading = "Endpoints"
    )]
    pub metrics_bind_address: SocketAddr,
    /// Serve the endpoints over TLS and `/metrics` only to callers the API server authenticates
    /// (TokenReview) and allows `get` on the non-resource URL `/metrics` (SubjectAccessReview).
    #[arg(long, env = "MUA_METRICS_SECURE", help_heading = "Endpoints")]
    pub metrics_secure: bool,
    /// With `--metrics-secure`: a directory with `tls.crt` and `tls.key` (default: a self-signed
    /// certificate made at start).
    #[arg(
        long,
        env = "MUA_METRICS_CERT_DIR",
        requires = "metrics_secure",
        help_heading = "Endpoints"
    )]
    pub metrics_cert_dir: Option<std::path::PathBuf>,

    /// Act for a side only while holding its Lease (`mua-operator-security`, `mua-operator-backup`), so
    /// that of several replicas one acts; `--leader-election=false` for a single replica or development.
    #[arg(
        long,
        env = "MUA_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        help_heading = "Leader election"
    )]
    pub leader_election: bool,
    /// The namespace of the Leases (the pod's own).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "default",
        help_heading = "Leader election"
    )]
    pub lease_namespace: String,
    /// How long a Lease stays valid without renewal, in whole seconds (e.g. `15s`, `1m`): a standby takes
    /// over at most this long after the leader dies. The leader renews after a third of it.
    #[arg(
        long,
        env = "MUA_LEASE_DURATION",
        default_value = "15s",
        value_parser = parse_lease_duration,
        help_heading = "Leader election"
    )]
    pub lease_duration: u64,

    /// After SIGTERM, how long in-flight reconciles may take before the controllers are stopped anyway and
    /// the leases released; keep it below the pod's `terminationGracePeriodSeconds`.
    #[arg(
        long,
        env = "MUA_GRACEFUL_SHUTDOWN_TIMEOUT",
        default_value = "20s",
        value_parser = parse_duration
    )]
    pub graceful_shutdown_timeout: Duration,

    /// How often an object in steady state is compared with Azure (one ARM read each), ±10% jitter.
    #[arg(long, env = "MUA_RESYNC", default_value = "10m", value_parser = parse_duration, help_heading = "Controllers")]
    pub resync: Duration,
    /// Reconciles in flight per controller: bounds concurrent Azure calls and API-server connections.
    #[arg(long, env = "MUA_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256), help_heading = "Controllers")]
    pub concurrency: u16,

    #[command(flatten)]
    pub azure: Box<azure::AzureArgs>,
}

/// `OBJECT_ID` (the home tenant's) or `TENANT_ID=OBJECT_ID`.
fn parse_principal(text: &str) -> Result<(Option<String>, String), String> {
    let is_guid = |s: &str| uuid::Uuid::parse_str(s).is_ok();
    match text.trim().split_once('=') {
        None if is_guid(text.trim()) => Ok((None, text.trim().to_string())),
        Some((tenant, id)) if is_guid(tenant) && is_guid(id) => Ok((Some(tenant.to_string()), id.to_string())),
        _ => Err("an object ID (GUID), or TENANT_ID=OBJECT_ID for another tenant".into()),
    }
}

/// A duration like `15s`, `1m30s` or `500ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration: jiff::SignedDuration = text
        .parse()
        .map_err(|err| format!("not a duration like `15s`: {err}"))?;
    Duration::try_from(duration).map_err(|_| "a duration cannot be negative".into())
}

/// Lease durations are whole seconds on the Lease; the renewal needs at least two.
fn parse_lease_duration(text: &str) -> Result<u64, String> {
    let duration = parse_duration(text)?;
    match duration.as_secs() {
        secs if secs >= 2 && duration.subsec_nanos() == 0 => Ok(secs),
        _ => Err("a whole number of seconds, at least 2s".into()),
    }
}

/// Resolves on SIGTERM/SIGINT; shared by every side's controllers and lease.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Runs until SIGTERM or SIGINT, or fails when a side loses its lease.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let shutdown: Shutdown = shutdown_signal().boxed().shared();
    let mut sides: Vec<Side> = Vec::new();
    for side in &args.controllers {
        if !sides.contains(side) {
            sides.push(*side);
        }
    }

    // Every metric is registered here, before the registry is shared read-only with `/metrics`: a
    // module's metrics struct registers its families and is then handed to whatever updates it.
    let mut registry = Registry::default();
    let leader = LeaderGauge::register(&mut registry);
    let metrics = Arc::new(Metrics::default());
    metrics.register(&mut registry);
    let arm_metrics = ArmMetrics::new();
    arm_metrics.register(&mut registry);
    let registry = Arc::new(registry);

    let (cloud, http) = args.azure.cloud().await?;
    let arms = sides
        .iter()
        .map(|side| {
            let arm = args.azure.arm_client(*side, &cloud, &http)?;
            Ok((*side, arm.with_metrics(arm_metrics.clone())))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // For namespaces that name identities of their own (a Secret, as Azure Service Operator has them).
    let maker = IdentityMaker {
        cloud: cloud.clone(),
        http: http.clone(),
        federated_token_file: args.azure.federated_token_file.clone(),
        metrics: arm_metrics.clone(),
    };
    let config = ControllerConfig {
        resync: args.resync,
        concurrency: args.concurrency,
        ..ControllerConfig::default()
    };

    let ready = Arc::new(AtomicBool::new(false));
    let listener = serve::bind(args.metrics_bind_address).await?;
    tokio::spawn(memory::trim_periodically());

    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes (in-cluster or KUBECONFIG)")?;
    let secured = if args.metrics_secure {
        Some(Arc::new(serve::Secured::new(
            args.metrics_cert_dir.as_deref(),
            client.clone(),
        )?))
    } else {
        None
    };
    tokio::spawn(serve::serve(listener, registry, ready.clone(), secured));
    client
        .apiserver_version()
        .await
        .context("reaching the Kubernetes API server")?;

    let election = args.leader_election.then(|| {
        leader::Election::new(
            client.clone(),
            &args.lease_namespace,
            leader::identity(),
            args.lease_duration,
        )
    });
    // The security side elevates the backup side's identity; in one process it can ask that identity's
    // credential who it is.
    let backup_arm = arms
        .iter()
        .find(|(side, _)| *side == Side::Backup)
        .map(|(_, arm)| arm.clone());
    let mut running = Vec::new();
    for (side, arm) in arms {
        let lease = match &election {
            Some(election) => Some(election.candidate(&side.lease_name()).await?),
            None => None,
        };
        leader.set(side, false);
        let shared = Arc::new(
            Context::new(client.clone())
                .with_namespace(args.namespace.clone())
                .with_metrics(metrics.clone())
                .with_config(config.clone()),
        );
        let setup = match side {
            Side::Security => {
                let security = SecuritySide::new(arm)
                    .with_identity_maker(maker.clone())
                    .with_elevated_principals(&args.backup_principal_id);
                let security = match &backup_arm {
                    Some(backup) => security.identifying_backup(BackupIdentity::of(backup)),
                    None => security,
                };
                SideControllers::Security(Arc::new(SecurityContext::new(shared, security)))
            }
            Side::Backup => SideControllers::Backup(Arc::new(BackupContext::new(
                shared,
                BackupSide::new(arm).with_identity_maker(maker.clone()),
            ))),
        };
        let stop = Stop {
            shutdown: shutdown.clone(),
            timeout: args.graceful_shutdown_timeout,
        };
        running.push(run_side(setup, lease, leader.clone(), stop));
    }
    ready.store(true, Ordering::Relaxed);
    tracing::info!(controllers = ?sides, namespace = ?args.namespace, arm = %cloud.arm_url, leader_election = args.leader_election, "ready");
    futures::future::try_join_all(running).await?;
    tracing::info!("stopped");
    Ok(())
}

/// One side's controllers with their context, which holds that side's own state (its ARM client, what
/// it remembers) and nothing of the other side's.
pub enum SideControllers {
    Security(Arc<SecurityContext>),
    Backup(Arc<BackupContext>),
}

impl SideControllers {
    pub fn side(&self) -> Side {
        match self {
            SideControllers::Security(_) => Side::Security,
            SideControllers::Backup(_) => Side::Backup,
        }
    }

    /// Starts the side's controllers; the future ends once `shutdown` has fired and in-flight reconciles
    /// have finished.
    pub fn start(self, shutdown: Shutdown) -> BoxFuture<'static, ()> {
        match self {
            // The security side: the ResourceGuard and CriticalOperationRequest controllers.
            SideControllers::Security(ctx) => {
                let requests = critical_operation_request::run(ctx.api(), ctx.clone(), shutdown.clone());
                let guards = resource_guard::run(ctx.api(), ctx, shutdown);
                async move {
                    futures::join!(guards, requests);
                }
                .boxed()
            }
            // The backup side: the VaultProtection controller, woken by the guards and requests it names.
            SideControllers::Backup(ctx) => {
                vault_protection::run(ctx.api(), ctx.api(), ctx.api(), ctx, shutdown).boxed()
            }
        }
    }
}

/// When a side stops: on `shutdown`, with at most `timeout` for in-flight reconciles.
#[derive(Clone)]
struct Stop {
    shutdown: Shutdown,
    timeout: Duration,
}

impl Stop {
    /// Runs the controllers until shutdown and their in-flight reconciles end, or the timeout after
    /// shutdown passes. (The timeout also ends a controller stopped before its cache was filled, which
    /// kube-runtime would otherwise wait for forever.)
    async fn run(&self, mut controllers: BoxFuture<'static, ()>) {
        tokio::select! {
            () = &mut controllers => return,
            () = self.shutdown.clone() => {}
        }
        if tokio::time::timeout(self.timeout, controllers).await.is_err() {
            tracing::warn!(timeout = ?self.timeout, "reconciles still running after the graceful shutdown timeout: stopped");
        }
    }
}

/// Runs one side: waits for its lease, runs its controllers while holding it, and on shutdown lets
/// in-flight reconciles finish before releasing the lease so that a standby takes over at once.
async fn run_side(
    setup: SideControllers,
    lease: Option<leader::Candidate>,
    leader: LeaderGauge,
    stop: Stop,
) -> anyhow::Result<()> {
    let side = setup.side();
    let Some(mut lease) = lease else {
        leader.set(side, true);
        stop.run(setup.start(stop.shutdown.clone())).await;
        leader.set(side, false);
        return Ok(());
    };
    if !lease.acquire(stop.shutdown.clone()).await {
        tracing::info!(side = side.name(), "stopped while standing by");
        return Ok(());
    }
    leader.set(side, true);
    tracing::info!(side = side.name(), "holding the lease: starting the controllers");
    let result = tokio::select! {
        () = stop.run(setup.start(stop.shutdown.clone())) => Ok(()),
        // Dropping the controllers stops them at once, mid-reconcile: the new leader redoes that work.
        lost = lease.hold() => Err(lost),
    };
    leader.set(side, false);
    match result {
        Ok(()) => {
            lease.release().await;
            Ok(())
        }
        Err(lost) => Err(lost.context(format!(
            "the {} side lost its lease and stopped; exiting so that this pod restarts as a standby",
            side.name()
        ))),
    }
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or SIGINT. The handlers are installed at the call,
/// so a signal that comes before the first poll is not lost (nor kills the process).
#[allow(
    clippy::expect_used,
    reason = "installing a signal handler fails only outside a Tokio runtime with signals enabled, a build error"
)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_principals_are_an_object_id_or_one_per_tenant() {
        let home = "6f1e2f0a-3b0c-4a52-9d0e-0c3f4e5a6b01";
        let tenant = "33e01921-4d64-4f8c-a055-5bdaffd5e33d";
        assert_eq!(parse_principal(home), Ok((None, home.to_string())));
        assert_eq!(
            parse_principal(&format!("{tenant}={home}")),
            Ok((Some(tenant.to_string()), home.to_string()))
        );
        assert!(parse_principal("alice").unwrap_err().contains("TENANT_ID=OBJECT_ID"));
        assert!(parse_principal(&format!("contoso={home}")).is_err());
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn lease_durations_are_whole_seconds_of_at_least_two() {
        assert_eq!(parse_lease_duration("15s"), Ok(15));
        assert_eq!(parse_lease_duration("1m"), Ok(60));
        assert!(parse_lease_duration("1s").is_err());
        assert!(parse_lease_duration("2.5s").is_err());
        assert!(parse_lease_duration("soon").is_err());
    }
}
