//! Prometheus metrics of the ARM client: requests by route and status, their latency, client-side
//! throttling waits and retries. Labels stay low-cardinality: routes are resource types, never names or
//! IDs.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use reqwest::Method;

use super::throttle::OperationKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    method: String,
    route: String,
    reason: &'static str,
}

/// The ARM client's metrics. Clones share the same series, so one instance can serve every client.
#[derive(Clone, Debug)]
pub struct ArmMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    throttle_wait: Family<KindLabels, Counter<f64, AtomicU64>>,
    throttle_waits: Family<KindLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
}

/// 5 ms to about 20 s: ARM answers in tens of milliseconds, slow calls take seconds.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl Default for ArmMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ArmMetrics {
    pub fn new() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            throttle_wait: Family::default(),
            throttle_waits: Family::default(),
            retries: Family::default(),
        }
    }

    /// Adds the metrics to `registry` (counters get their `_total` suffix there).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mua_arm_requests",
            "ARM requests sent, by method, route and HTTP status (or transport_error)",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "mua_arm_request_duration",
            "Time from sending an ARM request to its response headers",
            Unit::Seconds,
            self.duration.clone(),
        );
        registry.register_with_unit(
            "mua_arm_throttle_wait",
            "Time ARM calls waited for a client-side throttling token, by operation kind",
            Unit::Seconds,
            self.throttle_wait.clone(),
        );
        registry.register(
            "mua_arm_throttle_waits",
            "ARM calls that had to wait for a client-side throttling token, by operation kind",
            self.throttle_waits.clone(),
        );
        registry.register(
            "mua_arm_retries",
            "ARM requests repeated, by method, route and reason",
            self.retries.clone(),
        );
    }

    /// One answered request (`status` is the HTTP code) or one that got none (`"transport_error"`).
    pub fn request(&self, method: &Method, route: &str, status: &str, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn throttle_wait(&self, kind: OperationKind, waited: Duration) {
        if waited.is_zero() {
            return;
        }
        let labels = KindLabels { kind: kind.as_str() };
        self.throttle_wait.get_or_create(&labels).inc_by(waited.as_secs_f64());
        self.throttle_waits.get_or_create(&labels).inc();
    }

    pub fn retry(&self, method: &Method, route: &str, reason: &'static str) {
        self.retries
            .get_or_create(&RetryLabels {
                method: method.to_string(),
                route: route.to_string(),
                reason,
            })
            .inc();
    }
}

/// The resource type an ARM path addresses, without names or IDs: the provider namespace and the type
/// segments after the last `providers` (so an extension resource counts as its own type), e.g.
/// `microsoft.recoveryservices/vaults/backupresourceguardproxies`. Paths outside any provider keep their
/// fixed segments (`subscriptions/resourcegroups`).
pub fn route(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (namespace, types) = match segments.iter().rposition(|s| s.eq_ignore_ascii_case("providers")) {
        Some(i) if i + 1 < segments.len() => (Some(segments[i + 1]), &segments[i + 2..]),
        _ => (None, &segments[..]),
    };
    let types = types.iter().step_by(2).map(|t| {
        // A malformed path could put an ID where a type belongs; never let it into a label.
        if uuid::Uuid::parse_str(t).is_ok() {
            "{id}".to_string()
        } else {
            t.to_ascii_lowercase()
        }
    });
    let route: Vec<String> = namespace
        .map(str::to_ascii_lowercase)
        .into_iter()
        .chain(types)
        .collect();
    if route.is_empty() {
        "/".to_string()
    } else {
        route.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RG: &str = "/subscriptions/5e13b949-1218-4d18-8b99-7e12155ec4f7/resourceGroups/backup-rg";

    #[test]
    fn routes_keep_resource_types_and_drop_names_and_ids() {
        let cases = [
            (
                format!("{RG}/providers/Microsoft.DataProtection/resourceGuards/my-guard"),
                "microsoft.dataprotection/resourceguards",
            ),
            (
                format!("{RG}/providers/Microsoft.DataProtection/resourceGuards"),
                "microsoft.dataprotection/resourceguards",
            ),
            (
                format!("{RG}/providers/Microsoft.RecoveryServices/vaults/v1/backupResourceGuardProxies/VaultProxy"),
                "microsoft.recoveryservices/vaults/backupresourceguardproxies",
            ),
            (
                format!(
                    "{RG}/providers/Microsoft.RecoveryServices/vaults/v1/backupResourceGuardProxies/VaultProxy/unlockDelete"
                ),
                "microsoft.recoveryservices/vaults/backupresourceguardproxies/unlockdelete",
            ),
            (
                format!(
                    "{RG}/providers/Microsoft.DataProtection/resourceGuards/g/providers/Microsoft.Authorization/roleAssignments/0b9a4f3e-5a7c-4f2d-9d1e-2c3b4a5d6e7f"
                ),
                "microsoft.authorization/roleassignments",
            ),
            (
                "/subscriptions/s/providers/Microsoft.DataProtection/locations/westeurope/operationStatus/abc?x=1"
                    .to_string(),
                "microsoft.dataprotection/locations/operationstatus",
            ),
            (RG.to_string(), "subscriptions/resourcegroups"),
            (
                "/providers/Microsoft.Authorization/0b9a4f3e-5a7c-4f2d-9d1e-2c3b4a5d6e7f/x".to_string(),
                "microsoft.authorization/{id}",
            ),
            ("/".to_string(), "/"),
        ];
        for (path, want) in cases {
            assert_eq!(route(&path), want, "{path}");
        }
    }

    #[test]
    fn encoded_metrics_carry_the_documented_names() {
        let metrics = ArmMetrics::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.request(
            &Method::GET,
            "microsoft.dataprotection/resourceguards",
            "200",
            Duration::from_millis(12),
        );
        metrics.throttle_wait(OperationKind::Write, Duration::from_millis(250));
        metrics.throttle_wait(OperationKind::Write, Duration::ZERO);
        metrics.retry(&Method::PUT, "microsoft.dataprotection/resourceguards", "throttled");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"mua_arm_requests_total{method="GET",route="microsoft.dataprotection/resourceguards",status="200"} 1"#,
            r#"mua_arm_request_duration_seconds_count{method="GET",route="microsoft.dataprotection/resourceguards"} 1"#,
            r#"mua_arm_throttle_wait_seconds_total{kind="write"} 0.25"#,
            r#"mua_arm_throttle_waits_total{kind="write"} 1"#,
            r#"mua_arm_retries_total{method="PUT",route="microsoft.dataprotection/resourceguards",reason="throttled"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
