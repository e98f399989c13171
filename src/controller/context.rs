//! What every reconcile shares: the Kubernetes client, the ARM clients of the sides this process runs,
//! the clock, metrics, the Event recorder, and per-object failure backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clock::{Clock, SystemClock};
use super::events::Events;
use super::metrics::Metrics;
use super::outcome::MemoKey;
use crate::azure::ArmClient;

/// Tunables shared by the controllers.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// How often an object in steady state is compared with Azure (one read), before jitter.
    pub resync: Duration,
    /// How often an object only a person can fix is looked at again.
    pub stalled_retry: Duration,
    /// How soon an object waiting on another one (a guard becoming Ready) is looked at again.
    pub waiting_retry: Duration,
    /// Reconciles in flight per controller: bounds Azure calls and API-server connections.
    pub concurrency: u16,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            stalled_retry: Duration::from_secs(300),
            waiting_retry: Duration::from_secs(30),
            concurrency: 16,
        }
    }
}

impl ControllerConfig {
    /// The resync period ±10%, so objects created together do not all resync together.
    pub fn resync_with_jitter(&self) -> Duration {
        let spread = self.resync.as_millis() as u64 / 10;
        let offset = fastrand::u64(0..=spread.saturating_mul(2));
        (self.resync + Duration::from_millis(offset)).saturating_sub(Duration::from_millis(spread))
    }
}

/// Per-object exponential backoff after failures, forgotten after a success (by [`MemoKey`]: two
/// objects whose keys collide would share one count).
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<u64, u32>>);

impl Backoff {
    const FIRST: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(300);

    /// Records a failure of `key` and returns how long to wait: 2 s, 4 s, 8 s ... up to 5 minutes, with
    /// jitter.
    pub fn failed(&self, controller: &str, key: &str) -> Duration {
        let mut failures = self.0.lock().expect("backoff lock");
        let count = failures.entry(MemoKey::new(controller, key).key()).or_default();
        *count = count.saturating_add(1);
        let wait = Self::FIRST.saturating_mul(1 << (*count - 1).min(16)).min(Self::MAX);
        wait.mul_f64(0.8 + fastrand::f64() * 0.4)
    }

    pub fn succeeded(&self, controller: &str, key: &str) {
        self.0
            .lock()
            .expect("backoff lock")
            .remove(&MemoKey::new(controller, key).key());
    }
}

/// Hashes of each object's status and of its conditions as the API server last showed them (taken
/// before the cache drops fields, see `outcome::status_hashes`): status is written only when it would
/// change. Kept by [`MemoKey`] and salted, so a collision of two objects' keys costs a status write,
/// never skips one.
#[derive(Default)]
pub struct Statuses(Mutex<HashMap<u64, (u64, u64)>>);

impl Statuses {
    /// The object's status and conditions as the API server shows them hash to `status` and
    /// `conditions`.
    pub fn seen(&self, memo: MemoKey, (status, conditions): (u64, u64)) {
        self.0
            .lock()
            .expect("statuses lock")
            .insert(memo.key(), (memo.salted(status), memo.salted(conditions)));
    }

    /// Whether the status last seen of the object hashes to `status`; `None` if none was seen.
    pub fn is(&self, memo: MemoKey, status: u64) -> Option<bool> {
        let seen = self.0.lock().expect("statuses lock").get(&memo.key()).copied();
        seen.map(|(seen, _)| seen == memo.salted(status))
    }

    /// Whether the conditions last seen of the object hash to `conditions`; `None` if none were seen.
    pub fn conditions_are(&self, memo: MemoKey, conditions: u64) -> Option<bool> {
        let seen = self.0.lock().expect("statuses lock").get(&memo.key()).copied();
        seen.map(|(_, seen)| seen == memo.salted(conditions))
    }

    fn forget(&self, memo: MemoKey) {
        self.0.lock().expect("statuses lock").remove(&memo.key());
    }
}

pub struct Context {
    pub client: kube::Client,
    /// The namespace the controllers watch (`None`: all), also the scope of their lists.
    pub namespace: Option<String>,
    /// The security side's ARM identity: owns guards, grants and revokes elevation.
    pub security: Option<ArmClient>,
    /// The backup side's ARM identity: links vaults and performs approved operations.
    pub backup: Option<ArmClient>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub events: Events,
    pub statuses: Statuses,
    pub config: ControllerConfig,
    pub backoff: Backoff,
    /// What the VaultProtection controller remembers between reconciles to spare ARM reads.
    pub vault_memo: super::vault_protection::Memo,
    /// Whether the admission policies of the two-person rule are in the cluster (checked before elevating).
    pub admission: super::admission::AdmissionCheck,
    /// The Azure principals elevated for operations the operator performs itself, by tenant (`""`: the
    /// home tenant): the backup side's identity there (configured, or read from its token once).
    elevated_principals: std::sync::Mutex<HashMap<String, String>>,
    backup_identity: Option<ArmClient>,
}

impl Context {
    /// A context with the system clock, fresh metrics and default tunables; add the sides' clients.
    pub fn new(client: kube::Client) -> Self {
        Self {
            events: Events::new(client.clone()),
            statuses: Statuses::default(),
            client,
            namespace: None,
            security: None,
            backup: None,
            clock: Arc::new(SystemClock),
            metrics: Arc::new(Metrics::default()),
            config: ControllerConfig::default(),
            backoff: Backoff::default(),
            vault_memo: Default::default(),
            admission: Default::default(),
            elevated_principals: Default::default(),
            backup_identity: None,
        }
    }

    /// Names the backup side's Azure object IDs by tenant (none: its home tenant), for a security side
    /// that runs without the backup side's credential in the same process.
    pub fn with_elevated_principals(self, object_ids: &[(Option<String>, String)]) -> Self {
        for (tenant, id) in object_ids {
            self.remember_principal(tenant.as_deref(), id.to_ascii_lowercase());
        }
        self
    }

    fn remember_principal(&self, tenant: Option<&str>, object_id: String) {
        let key = tenant.unwrap_or_default().to_ascii_lowercase();
        let mut known = self.elevated_principals.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(key, object_id);
    }

    /// Lets a security-side context ask the backup side's credential (in the same process) who it is,
    /// without running any backup-side controller.
    pub fn identifying_backup(mut self, backup: ArmClient) -> Self {
        self.backup_identity = Some(backup);
        self
    }

    /// The client of the principal that self-activates in PIM: the backup side's identity.
    pub fn pim_client(&self) -> Result<&ArmClient, crate::azure::AzureError> {
        self.backup
            .as_ref()
            .or(self.backup_identity.as_ref())
            .ok_or_else(|| crate::azure::AzureError::Credential {
                operation: "activate in PIM".into(),
                tenant: String::new(),
                message: "PIM activations are made by the backup side's identity: run the security side with the backup side's credential in the same process".into(),
            })
    }

    /// The principal elevated on a guard in `tenant` (none: the home tenant) when the operator performs
    /// an approved operation itself: the backup side's service principal in that tenant, which is the
    /// one Azure checks when the backup side cites the guard with that tenant's auxiliary token.
    pub async fn elevated_principal(&self, tenant: Option<&str>) -> Result<String, crate::azure::AzureError> {
        let key = tenant.unwrap_or_default().to_ascii_lowercase();
        let known = self
            .elevated_principals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(id) = known {
            return Ok(id);
        }
        let Some(backup) = self.backup.as_ref().or(self.backup_identity.as_ref()) else {
            return Err(crate::azure::AzureError::Credential {
                operation: "elevate".into(),
                tenant: key,
                message: "the backup side's object ID is unknown: run both sides in one process or pass --backup-principal-id".into(),
            });
        };
        let id = backup.principal_id_in(tenant).await?;
        self.remember_principal(tenant, id.clone());
        Ok(id)
    }

    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace;
        self
    }

    /// An API for `K` in the watched scope (one namespace, or all).
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => kube::Api::namespaced(self.client.clone(), ns),
            None => kube::Api::all(self.client.clone()),
        }
    }

    pub fn with_security(mut self, arm: ArmClient) -> Self {
        self.security = Some(arm);
        self
    }

    pub fn with_backup(mut self, arm: ArmClient) -> Self {
        self.backup = Some(arm);
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn with_config(mut self, config: ControllerConfig) -> Self {
        self.config = config;
        self
    }

    /// Drops what was kept about an object that is gone.
    pub fn forget(&self, controller: &'static str, key: &str) {
        let memo = MemoKey::new(controller, key);
        self.metrics.forget(controller, key);
        self.backoff.succeeded(controller, key);
        self.events.forget(memo);
        self.statuses.forget(memo);
        if controller == super::vault_protection::CONTROLLER {
            self.vault_memo.forget(key);
        }
    }

    /// The security side's client; the controllers of that side only run when it is configured.
    pub fn security(&self) -> &ArmClient {
        self.security
            .as_ref()
            .expect("the security-side controllers run only with a security-side ARM client")
    }

    /// The backup side's client; the controllers of that side only run when it is configured.
    pub fn backup(&self) -> &ArmClient {
        self.backup
            .as_ref()
            .expect("the backup-side controllers run only with a backup-side ARM client")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets_on_success() {
        let backoff = Backoff::default();
        let first = backoff.failed("c", "ns/a");
        assert!(first >= Duration::from_millis(1600) && first <= Duration::from_millis(2400));
        let second = backoff.failed("c", "ns/a");
        assert!(second >= Duration::from_millis(3200), "{second:?}");
        for _ in 0..20 {
            assert!(backoff.failed("c", "ns/a") <= Backoff::MAX.mul_f64(1.2));
        }
        backoff.succeeded("c", "ns/a");
        assert!(backoff.failed("c", "ns/a") <= Duration::from_millis(2400));
    }

    #[test]
    fn resync_jitter_stays_within_ten_percent() {
        let config = ControllerConfig::default();
        for _ in 0..100 {
            let d = config.resync_with_jitter();
            assert!(d >= Duration::from_secs(540) && d <= Duration::from_secs(660), "{d:?}");
        }
    }
}
