//! The controllers' Prometheus metrics: reconciles by result and reason, failures by reason, reconcile
//! duration, and objects by their `Ready` condition. The ARM client counts its own calls
//! (`azure::metrics`); both register into the one registry `/metrics` serves.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::memo_key::MemoKey;
use super::reason::Reason;

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Result {
    /// Azure matches the spec.
    Ready,
    /// Waiting for something that needs no person (a guard becoming Ready, an approval, a retry).
    Waiting,
    /// Only a person can resolve it.
    Stalled,
    /// The reconcile failed and is retried.
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: Result,
    reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    controller: &'static str,
    reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ObjectLabels {
    controller: &'static str,
    ready: &'static str,
    reason: Reason,
}

/// Per object (by [`MemoKey`]): whether it was Ready, and why.
type ObjectStates = HashMap<u64, (bool, Reason)>;

pub struct Metrics {
    reconciles: Family<ReconcileLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    objects: Family<ObjectLabels, Gauge>,
    /// Each object's last `Ready` state and reason, so the gauge moves an object from one series to
    /// another: per controller, by [`MemoKey`] (two objects whose keys collide would count as one).
    states: Mutex<HashMap<&'static str, ObjectStates>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16))),
            objects: Family::default(),
            states: Mutex::default(),
        }
    }
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mua_reconciles",
            "Reconciles by controller, result and reason",
            self.reconciles.clone(),
        );
        registry.register(
            "mua_reconcile_failures",
            "Failed reconciles (retried) by controller and reason",
            self.failures.clone(),
        );
        registry.register(
            "mua_reconcile_duration_seconds",
            "Time one reconcile took, Azure calls included",
            self.duration.clone(),
        );
        registry.register(
            "mua_objects",
            "Objects by controller and their Ready condition's status and reason",
            self.objects.clone(),
        );
    }

    /// Records one reconcile of object `key` (`namespace/name`).
    pub fn reconciled(&self, controller: &'static str, key: &str, result: Result, reason: Reason, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                controller,
                result,
                reason,
            })
            .inc();
        if result == Result::Failed {
            self.failures.get_or_create(&FailureLabels { controller, reason }).inc();
        }
        self.duration
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
        self.set_state(controller, key, Some((result == Result::Ready, reason)));
    }

    /// The object is gone: it no longer counts.
    pub fn forget(&self, controller: &'static str, key: &str) {
        self.set_state(controller, key, None);
    }

    fn set_state(&self, controller: &'static str, key: &str, state: Option<(bool, Reason)>) {
        let key = MemoKey::new(controller, key).key();
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = match state {
            Some(state) => states.entry(controller).or_default().insert(key, state),
            None => states.get_mut(controller).and_then(|states| states.remove(&key)),
        };
        if previous == state {
            return;
        }
        let labels = |(ready, reason)| ObjectLabels {
            controller,
            ready: if ready { "True" } else { "False" },
            reason,
        };
        if let Some(previous) = previous {
            self.objects.get_or_create(&labels(previous)).dec();
        }
        if let Some(state) = state {
            self.objects.get_or_create(&labels(state)).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(metrics: &Metrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn an_object_moves_between_series_as_its_state_changes() {
        let metrics = Metrics::default();
        let second = Duration::from_secs(1);
        metrics.reconciled(
            "vaultprotection",
            "ns/a",
            Result::Failed,
            Reason::AzureUnavailable,
            second,
        );
        metrics.reconciled("vaultprotection", "ns/a", Result::Ready, Reason::InSync, second);
        metrics.reconciled("vaultprotection", "ns/b", Result::Ready, Reason::InSync, second);
        let text = encode(&metrics);
        assert!(
            text.contains(r#"mua_objects{controller="vaultprotection",ready="True",reason="InSync"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mua_objects{controller="vaultprotection",ready="False",reason="AzureUnavailable"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mua_reconcile_failures_total{controller="vaultprotection",reason="AzureUnavailable"} 1"#),
            "{text}"
        );
        metrics.forget("vaultprotection", "ns/b");
        assert!(encode(&metrics).contains(r#"ready="True",reason="InSync"} 1"#));
    }
}
