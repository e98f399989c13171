//! Fault injection, set at start (`--faults FILE`) or at run time (`PUT /_sim/faults`): error rates per
//! route, added latency, dropped connections and forced 429 storms, so tests and benchmarks can see how
//! the operator copes with a misbehaving Azure.

use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One rule; a request matches when its method and path match. Several rules can apply; the first that
/// fires decides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// HTTP method to match (any when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Case-insensitive substring of the request path to match (any path when empty), e.g.
    /// `backupResourceGuardProxies`.
    #[serde(default)]
    pub path_contains: String,
    /// Fraction (0-1) of matching requests answered with `errorStatus`.
    #[serde(default)]
    pub error_rate: f64,
    /// The status of injected errors (default 500).
    #[serde(default = "default_error_status")]
    pub error_status: u16,
    /// Delay added before matching requests are handled, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Fraction (0-1) of matching requests whose connection is closed without an answer.
    #[serde(default)]
    pub drop_rate: f64,
    /// Until this time (simulator clock), matching requests get 429 with `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_until: Option<Timestamp>,
    /// How many more times the rule may fire (latency aside); unlimited when unset. Lets a test make
    /// exactly the first N calls fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

fn default_error_status() -> u16 {
    500
}

/// The longest latency one rule may add: longer than any client waits, short of holding a connection
/// (and a test) for ever.
pub const MAX_LATENCY_MS: u64 = 10 * 60 * 1000;

impl FaultRule {
    /// Refuses rules the simulator cannot apply: rates outside 0-1, statuses that are not errors,
    /// latencies beyond [`MAX_LATENCY_MS`].
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [("errorRate", self.error_rate), ("dropRate", self.drop_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be a fraction between 0 and 1; got {rate}."));
            }
        }
        if !(400..=599).contains(&self.error_status) {
            return Err(format!(
                "errorStatus must be an HTTP error status (400-599); got {}.",
                self.error_status
            ));
        }
        if self.latency_ms > MAX_LATENCY_MS {
            return Err(format!(
                "latencyMs must be at most {MAX_LATENCY_MS} (10 minutes); got {}.",
                self.latency_ms
            ));
        }
        Ok(())
    }
}

/// Checks every rule; the first bad one is named by its position.
pub fn validate(rules: &[FaultRule]) -> Result<(), String> {
    rules
        .iter()
        .enumerate()
        .try_for_each(|(i, rule)| rule.validate().map_err(|err| format!("fault rule {i}: {err}")))
}

/// What to do to one request.
#[derive(Debug, PartialEq)]
pub enum Fault {
    Error(u16),
    Drop,
    Throttle(Duration),
}

#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    pub fn set(&self, rules: Vec<FaultRule>) {
        *self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = rules;
    }

    pub fn get(&self) -> Vec<FaultRule> {
        self.rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The added latency and the fault, if any, for one request.
    pub fn decide(&self, method: &str, path: &str, now: Timestamp) -> (Duration, Option<Fault>) {
        let mut rules = self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = path.to_ascii_lowercase();
        let mut latency = Duration::ZERO;
        let mut fault = None;
        for rule in rules.iter_mut().filter(|r| {
            r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
                && path.contains(&r.path_contains.to_ascii_lowercase())
        }) {
            latency = latency.saturating_add(Duration::from_millis(rule.latency_ms));
            if fault.is_some() || rule.times == Some(0) {
                continue;
            }
            if let Some(until) = rule.throttle_until.filter(|until| *until > now) {
                let wait = until.duration_since(now).unsigned_abs();
                fault = Some(Fault::Throttle(wait));
            } else if rule.drop_rate > 0.0 && fastrand::f64() < rule.drop_rate {
                fault = Some(Fault::Drop);
            } else if rule.error_rate > 0.0 && fastrand::f64() < rule.error_rate {
                fault = Some(Fault::Error(rule.error_status));
            }
            if fault.is_some()
                && let Some(times) = rule.times.as_mut()
            {
                *times -= 1;
            }
        }
        (latency, fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_method_and_path() {
        let faults = Faults::default();
        faults.set(vec![FaultRule {
            method: Some("PUT".into()),
            path_contains: "backupResourceGuardProxies".into(),
            error_rate: 1.0,
            error_status: 503,
            latency_ms: 5,
            ..Default::default()
        }]);
        let now = Timestamp::now();
        assert_eq!(
            faults.decide("PUT", "/x/BACKUPRESOURCEGUARDPROXIES/p", now),
            (Duration::from_millis(5), Some(Fault::Error(503)))
        );
        assert_eq!(
            faults.decide("GET", "/x/backupResourceGuardProxies/p", now),
            (Duration::ZERO, None)
        );
    }

    #[test]
    fn a_rule_with_times_fires_that_often() {
        let faults = Faults::default();
        faults.set(vec![FaultRule {
            error_rate: 1.0,
            error_status: 503,
            times: Some(2),
            ..Default::default()
        }]);
        let now = Timestamp::now();
        let fired = (0..5).filter(|_| faults.decide("GET", "/x", now).1.is_some()).count();
        assert_eq!(fired, 2);
    }

    #[test]
    fn a_429_storm_ends_at_its_time() {
        let faults = Faults::default();
        let now = Timestamp::now();
        faults.set(vec![FaultRule {
            throttle_until: Some(now + jiff::SignedDuration::from_secs(30)),
            ..Default::default()
        }]);
        assert!(matches!(faults.decide("GET", "/any", now).1, Some(Fault::Throttle(_))));
        assert_eq!(
            faults
                .decide("GET", "/any", now + jiff::SignedDuration::from_secs(31))
                .1,
            None
        );
    }
}
