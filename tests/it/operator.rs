//! The operator's controllers running in-process against the real test control plane and a simulator of
//! their own, in a namespace of their own: one per test, so tests run in parallel.

use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use mua_operator::azure::credentials::IdentityMaker;
use mua_operator::azure::{ArmClient, ArmMetrics, RetryPolicy};
use mua_operator::controller::{
    BackupContext, BackupIdentity, BackupSide, Context, ControllerConfig, SecurityContext, SecuritySide,
    critical_operation_request, resource_guard, vault_protection,
};
use mua_operator::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};
use prometheus_client::registry::Registry;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{ControlPlane, TestNamespace, User};
use crate::simulator::*;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, for at most [`DEADLINE`].
pub async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, check: impl FnMut() -> F) -> T {
    eventually_within(what, DEADLINE, check).await
}

/// Polls `check` until it returns `Some`, for at most `within`.
pub async fn eventually_within<T, F: Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How to set the operator up.
pub struct Options {
    /// Tenants beyond the home tenant the backup side has credentials for.
    pub backup_tenants: Vec<&'static str>,
    /// Tenants beyond the home tenant the security side has credentials for.
    pub security_tenants: Vec<&'static str>,
    pub config: ControllerConfig,
    /// A seed for the simulator instead of `examples/sim-seed.yaml`.
    pub seed: Option<std::path::PathBuf>,
    /// Also run the CriticalOperationRequest controller (elevation).
    pub requests: bool,
    /// Watch every namespace of the control plane (several teams), not only the test's own.
    pub all_namespaces: bool,
    /// Give the security side only the backup identity's object ID, as a separate Deployment has it
    /// (`--backup-principal-id`), instead of letting it ask the backup side in this process.
    pub backup_principal_by_id: bool,
}

impl Options {
    /// Several teams: the operator over every namespace of the control plane, requests included.
    pub fn teams() -> Self {
        Self {
            requests: true,
            all_namespaces: true,
            ..Self::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backup_tenants: vec![FABRIKAM],
            security_tenants: vec![FABRIKAM],
            config: ControllerConfig {
                // Tests look again soon rather than after production's minutes.
                waiting_retry: Duration::from_secs(1),
                stalled_retry: Duration::from_secs(2),
                ..ControllerConfig::default()
            },
            seed: None,
            requests: false,
            all_namespaces: false,
            backup_principal_by_id: false,
        }
    }
}

pub struct Operator {
    pub ts: TestSim,
    pub ns: TestNamespace,
    pub ctx: Arc<Context>,
    /// The security side's context (its ARM identity, and the backup identity it elevates).
    pub security_side: Arc<SecurityContext>,
    pub security: ArmClient,
    pub backup: ArmClient,
    pub arm_metrics: ArmMetrics,
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

/// What a controller watches: the test's namespace, or every namespace.
fn watched<K>(ns: &TestNamespace, all: bool) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match all {
        true => Api::all(ns.admin.clone()),
        false => ns.admin_api(),
    }
}

fn arm_client(ts: &TestSim, app: &str, secret: &str, tenants: &[&str], metrics: &ArmMetrics) -> ArmClient {
    let mut client = ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, ts.credential(CONTOSO, app, secret))
        .with_retry(RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            ..RetryPolicy::default()
        })
        .with_metrics(metrics.clone());
    for tenant in tenants {
        client = client.with_tenant(tenant, ts.credential(tenant, app, secret));
    }
    client
}

impl Operator {
    pub async fn start(prefix: &str) -> Operator {
        Self::start_with(prefix, Options::default()).await
    }

    /// Both sides' controllers over a fresh namespace of the shared control plane, against a fresh simulator.
    pub async fn start_with(prefix: &str, options: Options) -> Operator {
        Self::start_on(ControlPlane::shared(), prefix, options).await
    }

    /// Both sides' controllers over a fresh namespace of `cp`, against a fresh simulator.
    pub async fn start_on(cp: &ControlPlane, prefix: &str, options: Options) -> Operator {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("mua_operator=info")
            .try_init();
        let ns = cp.namespace(prefix).await;
        let seed = options.seed.clone();
        let ts = TestSim::start_with(|o| {
            if seed.is_some() {
                o.seed = seed;
            }
        })
        .await;
        let arm_metrics = ArmMetrics::new();
        let security = arm_client(
            &ts,
            SECURITY_APP,
            SECURITY_SECRET,
            &options.security_tenants,
            &arm_metrics,
        );
        let backup = arm_client(&ts, BACKUP_APP, BACKUP_SECRET, &options.backup_tenants, &arm_metrics);
        let ctx = Arc::new(
            Context::new(cp.client(User::Admin).await)
                .with_namespace((!options.all_namespaces).then(|| ns.name.clone()))
                .with_clock(ts.sim.state.clock.clone())
                .with_config(options.config),
        );
        // Namespaces may name identities of their own (Secrets), signed in with client secrets here.
        let maker = IdentityMaker {
            cloud: ts.cloud.clone(),
            http: ts.http.clone(),
            federated_token_file: None,
            metrics: arm_metrics.clone(),
        };
        let security_only = SecuritySide::new(security.clone()).with_identity_maker(maker.clone());
        let security_side = Arc::new(SecurityContext::new(
            ctx.clone(),
            match options.backup_principal_by_id {
                true => security_only.with_elevated_principals(&[(None, BACKUP_OID.to_string())]),
                false => security_only.identifying_backup(BackupIdentity::of(&backup)),
            },
        ));
        let backup_side = Arc::new(BackupContext::new(
            ctx.clone(),
            BackupSide::new(backup.clone()).with_identity_maker(maker),
        ));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        tokio::spawn(resource_guard::run(
            watched(&ns, options.all_namespaces),
            security_side.clone(),
            shutdown(stopped.clone()),
        ));
        if options.requests {
            tokio::spawn(critical_operation_request::run(
                watched(&ns, options.all_namespaces),
                security_side.clone(),
                shutdown(stopped.clone()),
            ));
        }
        tokio::spawn(vault_protection::run(
            watched(&ns, options.all_namespaces),
            watched(&ns, options.all_namespaces),
            watched(&ns, options.all_namespaces),
            backup_side,
            shutdown(stopped),
        ));
        Operator {
            ts,
            ns,
            ctx,
            security_side,
            security,
            backup,
            arm_metrics,
            stop: Some(stop),
        }
    }

    pub fn guards(&self) -> Api<ResourceGuard> {
        self.ns.admin_api()
    }

    pub fn protections(&self) -> Api<VaultProtection> {
        self.ns.admin_api()
    }

    pub fn requests(&self) -> Api<CriticalOperationRequest> {
        self.ns.admin_api()
    }

    /// A ResourceGuard in the security resource group (westeurope); `extra` overrides spec fields.
    pub async fn create_guard(&self, name: &str, azure_name: &str, extra: Value) -> ResourceGuard {
        let mut spec = json!({
            "subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": azure_name, "region": "westeurope",
            "description": "Ask #backup-approvals for a CriticalOperationRequest approval",
        });
        merge(&mut spec, extra);
        let object = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": name}, "spec": spec});
        self.guards()
            .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
            .await
            .unwrap()
    }

    /// A VaultProtection of the seeded vault `vault_name` (Recovery Services) with `guard` as its guard
    /// reference; `extra` overrides spec fields.
    pub async fn create_protection(&self, name: &str, vault_id: &str, guard: Value, extra: Value) -> VaultProtection {
        let mut spec = json!({"vault": {"id": vault_id}, "guard": guard});
        merge(&mut spec, extra);
        let object = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": name}, "spec": spec});
        self.protections()
            .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
            .await
            .unwrap()
    }

    /// Waits until the object's condition `type_` has `status` (and `reason`, when given) for its
    /// current generation; returns the object.
    pub async fn wait_for<K>(&self, api: &Api<K>, name: &str, type_: &str, status: &str, reason: Option<&str>) -> K
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
    {
        eventually(&format!("{name}: {type_}={status} {reason:?}"), || async {
            let object = api.get(name).await.ok()?;
            let value = serde_json::to_value(&object).ok()?;
            let conditions = value["status"]["conditions"].as_array()?.clone();
            let generation = object.meta().generation;
            conditions
                .iter()
                .any(|c| {
                    c["type"] == type_
                        && c["status"] == status
                        && reason.is_none_or(|r| c["reason"] == r)
                        && c["observedGeneration"].as_i64() == generation
                })
                .then_some(object)
        })
        .await
    }

    pub async fn ready<K>(&self, api: &Api<K>, name: &str) -> K
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
    {
        self.wait_for(api, name, "Ready", "True", None).await
    }

    /// The condition `type_` of an object as `(status, reason, message)`.
    pub fn condition<K: serde::Serialize>(object: &K, type_: &str) -> Option<(String, String, String)> {
        let value = serde_json::to_value(object).ok()?;
        value["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or_default().to_string(),
                    c["reason"].as_str().unwrap_or_default().to_string(),
                    c["message"].as_str().unwrap_or_default().to_string(),
                )
            })
    }

    /// Asks for a reconcile now (what `kubectl annotate ... mua.dev/reconcile-requested-at=...` does).
    pub async fn nudge<K>(&self, api: &Api<K>, name: &str)
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    {
        let value = uuid::Uuid::new_v4().to_string();
        let patch = json!({"metadata": {"annotations": {"mua.dev/reconcile-requested-at": value}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// ARM calls per route since the last reset (`METHOD provider/type`, lowercase).
    pub async fn calls(&self) -> Value {
        self.ts.admin(Method::GET, "/_sim/calls", None).await["byRoute"].clone()
    }

    pub async fn reset_calls(&self) {
        self.ts.admin(Method::DELETE, "/_sim/calls", None).await;
    }

    /// How many times `route` was called since the last reset.
    pub async fn count(&self, route: &str) -> u64 {
        self.calls().await[route].as_u64().unwrap_or(0)
    }

    /// Asserts that no ARM call (token requests aside) matching `methods` (e.g. `["PUT", "PATCH", "POST", "DELETE"]`) reaches the
    /// simulator for `window`: long enough for a late write after a reconcile to show.
    pub async fn assert_no_calls(&self, methods: &[&str], window: Duration, what: &str) {
        let end = tokio::time::Instant::now() + window;
        loop {
            let calls = self.calls().await;
            let made: Vec<_> = calls
                .as_object()
                .map(|routes| {
                    routes
                        .iter()
                        .filter(|(route, _)| methods.iter().any(|m| route.starts_with(&format!("{m} microsoft."))))
                        .map(|(route, n)| format!("{route}: {n}"))
                        .collect()
                })
                .unwrap_or_default();
            assert!(made.is_empty(), "{what}: {made:?}");
            if tokio::time::Instant::now() >= end {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The Events about one object, as `(type, reason, note)`.
    pub async fn events(&self, name: &str) -> Vec<(String, String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> = self.ns.admin_api();
        api.list(&Default::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Waits for an Event about `name` with `reason`; returns its note.
    pub async fn event(&self, name: &str, reason: &str) -> String {
        eventually(&format!("an Event {reason} about {name}"), || async {
            self.events(name)
                .await
                .into_iter()
                .find(|(_, r, _)| r == reason)
                .map(|(_, _, note)| note)
        })
        .await
    }

    /// The controllers' and the ARM client's metrics in the text format `/metrics` serves.
    pub fn metrics(&self) -> String {
        let mut registry = Registry::default();
        self.ctx.metrics.register(&mut registry);
        self.arm_metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    /// A name for an Azure resource that no other test uses.
    pub fn unique(&self, base: &str) -> String {
        format!("{base}-{}", self.ns.name.rsplit('-').next().unwrap_or("0"))
    }
}

impl Operator {
    /// Declares soft delete off on the VaultProtection `name` and waits until it says the change needs an
    /// elevation.
    pub async fn declare_soft_delete_off(&self, name: &str) {
        let patch = json!({"spec": {"softDelete": {"state": "Disabled"}}});
        self.protections()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        self.wait_for(&self.protections(), name, "Ready", "False", Some("ElevationRequired"))
            .await;
    }

    /// Stops the controllers (as if every copy of the operator were gone); the simulator keeps running.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

fn merge(target: &mut Value, extra: Value) {
    if let Some(fields) = extra.as_object() {
        for (key, value) in fields {
            target[key] = value.clone();
        }
    }
}
