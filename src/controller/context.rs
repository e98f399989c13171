//! What every reconcile shares (the Kubernetes client, the clock, metrics, the Event recorder, per-object
//! failure backoff) and the context of one side's controllers, which adds that side's own state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::clock::{Clock, SystemClock};
use super::events::Events;
use super::memo_key::MemoKey;
use super::metrics::Metrics;

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
        let mut failures = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(MemoKey::new(controller, key).key()).or_default();
        *count = count.saturating_add(1);
        let wait = Self::FIRST.saturating_mul(1 << (*count - 1).min(16)).min(Self::MAX);
        wait.mul_f64(0.8 + fastrand::f64() * 0.4)
    }

    pub fn succeeded(&self, controller: &str, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
            .unwrap_or_else(PoisonError::into_inner)
            .insert(memo.key(), (memo.salted(status), memo.salted(conditions)));
    }

    /// Whether the status last seen of the object hashes to `status`; `None` if none was seen.
    pub fn is(&self, memo: MemoKey, status: u64) -> Option<bool> {
        let seen = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&memo.key())
            .copied();
        seen.map(|(seen, _)| seen == memo.salted(status))
    }

    /// Whether the conditions last seen of the object hash to `conditions`; `None` if none were seen.
    pub fn conditions_are(&self, memo: MemoKey, conditions: u64) -> Option<bool> {
        let seen = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&memo.key())
            .copied();
        seen.map(|(_, seen)| seen == memo.salted(conditions))
    }

    fn forget(&self, memo: MemoKey) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&memo.key());
    }
}

/// What every controller shares, whichever side it serves: the Kubernetes client and watched scope, the
/// clock, metrics, the Event recorder, what was last written, and per-object backoff. A side's own state
/// (its Azure identity, memos, principals) is in its [`SideContext`], never here.
pub struct Context {
    pub client: kube::Client,
    /// The namespace the controllers watch (`None`: all), also the scope of their lists.
    pub namespace: Option<String>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub events: Events,
    pub statuses: Statuses,
    pub config: ControllerConfig,
    pub backoff: Backoff,
}

impl Context {
    /// A context with the system clock, fresh metrics and default tunables.
    pub fn new(client: kube::Client) -> Self {
        Self {
            events: Events::new(client.clone()),
            statuses: Statuses::default(),
            client,
            namespace: None,
            clock: Arc::new(SystemClock),
            metrics: Arc::new(Metrics::default()),
            config: ControllerConfig::default(),
            backoff: Backoff::default(),
        }
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
    }
}

/// A side's own state (its Azure identity and what only its controllers remember).
pub trait SideState: Send + Sync + 'static {
    /// Drops what the side kept about an object of `controller` that is gone.
    fn forget(&self, _controller: &'static str, _key: &str) {}
}

/// The context one side's controllers run with: the shared [`Context`] (reached through `Deref`) and
/// that side's state. A side that is not running has no `SideContext`, so nothing can ask it for an
/// identity it does not have.
pub struct SideContext<S> {
    shared: Arc<Context>,
    pub side: S,
}

impl<S: SideState> SideContext<S> {
    pub fn new(shared: Arc<Context>, side: S) -> Self {
        Self { shared, side }
    }

    /// Drops what the shared context and the side kept about an object that is gone.
    pub fn forget(&self, controller: &'static str, key: &str) {
        self.shared.forget(controller, key);
        self.side.forget(controller, key);
    }
}

impl<S> std::ops::Deref for SideContext<S> {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.shared
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
