//! ARM's throttling: token buckets per subscription, principal and operation kind (reads 250 refilled at
//! 25/s, writes and deletes 200 at 10/s), plus a per-subscription bucket 15× larger shared by every
//! principal. Over the limit, ARM answers 429 with `Retry-After`; within it, it reports what is left in
//! `x-ms-ratelimit-remaining-subscription-*`. Time is the simulator's clock, so tests can refill buckets
//! by advancing it.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::StatusCode;
use governor::clock::Clock;
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::nanos::Nanos;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::clock::SimClock;
use crate::error::ArmError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationKind {
    Read,
    Write,
    Delete,
}

impl OperationKind {
    fn plural(self) -> &'static str {
        match self {
            OperationKind::Read => "reads",
            OperationKind::Write => "writes",
            OperationKind::Delete => "deletes",
        }
    }
}

/// Bucket sizes and refill rates per principal; the subscription-wide bucket is `GLOBAL_FACTOR` times these.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub read_capacity: u32,
    pub read_per_second: u32,
    pub write_capacity: u32,
    pub write_per_second: u32,
    pub delete_capacity: u32,
    pub delete_per_second: u32,
}

/// ARM's documented figures (regional token-bucket model).
impl Default for Limits {
    fn default() -> Self {
        Self {
            read_capacity: 250,
            read_per_second: 25,
            write_capacity: 200,
            write_per_second: 10,
            delete_capacity: 200,
            delete_per_second: 10,
        }
    }
}

pub const GLOBAL_FACTOR: u32 = 15;

/// The simulator clock as governor sees it: nanoseconds since the throttle was created.
#[derive(Clone)]
struct ThrottleClock {
    clock: Arc<SimClock>,
    origin: Timestamp,
}

impl Clock for ThrottleClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let elapsed = self.clock.now().duration_since(self.origin);
        Nanos::from(u64::try_from(elapsed.as_nanos()).unwrap_or(0))
    }
}

type Key = (String, String, OperationKind);
type Limiter = RateLimiter<Key, DefaultKeyedStateStore<Key>, ThrottleClock, StateInformationMiddleware>;

pub struct Throttle {
    /// Per principal, per subscription (or tenant), per kind; one limiter per kind so each has its quota.
    principal: [Limiter; 3],
    /// Per subscription (or tenant), per kind, shared by all principals.
    global: [Limiter; 3],
    clock: ThrottleClock,
    enabled: bool,
}

impl Throttle {
    pub fn new(limits: Limits, clock: Arc<SimClock>, enabled: bool) -> Self {
        let clock = ThrottleClock {
            origin: clock.now(),
            clock,
        };
        let quota = |capacity: u32, rate: u32, factor: u32| {
            // A zero limit would be no bucket at all: it holds one token at least.
            let at_least_one = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            Quota::per_second(at_least_one(rate * factor)).allow_burst(at_least_one(capacity * factor))
        };
        let limiter = |q: Quota| {
            RateLimiter::<Key, DefaultKeyedStateStore<Key>, ThrottleClock, NoOpMiddleware<Nanos>>::new(
                q,
                DefaultKeyedStateStore::default(),
                clock.clone(),
            )
            .with_middleware::<StateInformationMiddleware>()
        };
        let set = |factor| {
            [
                limiter(quota(limits.read_capacity, limits.read_per_second, factor)),
                limiter(quota(limits.write_capacity, limits.write_per_second, factor)),
                limiter(quota(limits.delete_capacity, limits.delete_per_second, factor)),
            ]
        };
        Self {
            principal: set(1),
            global: set(GLOBAL_FACTOR),
            clock,
            enabled,
        }
    }

    /// Takes one token for `principal`'s `kind` request; on success returns the remaining-budget headers.
    pub fn admit(
        &self,
        tenant: &str,
        subscription: Option<&str>,
        principal: &str,
        kind: OperationKind,
    ) -> Result<Vec<(&'static str, String)>, ArmError> {
        if !self.enabled {
            return Ok(Vec::new());
        }
        let scope = subscription.unwrap_or(tenant).to_ascii_lowercase();
        let index = kind as usize;
        let own = self.principal[index].check_key(&(scope.clone(), principal.to_ascii_lowercase(), kind));
        let shared = own
            .as_ref()
            .ok()
            .map(|_| self.global[index].check_key(&(scope.clone(), String::new(), kind)));
        match (own, shared) {
            (Ok(own), Some(Ok(shared))) => Ok(vec![
                (remaining_header(kind), own.remaining_burst_capacity().to_string()),
                (
                    remaining_global_header(kind),
                    shared.remaining_burst_capacity().to_string(),
                ),
            ]),
            (Err(not_until), _) | (Ok(_), Some(Err(not_until))) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(throttled(subscription.unwrap_or(tenant), principal, kind, wait))
            }
            (Ok(_), None) => unreachable!("the shared bucket is checked after the principal's"),
        }
    }
}

fn remaining_header(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Read => "x-ms-ratelimit-remaining-subscription-reads",
        OperationKind::Write => "x-ms-ratelimit-remaining-subscription-writes",
        OperationKind::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
    }
}

fn remaining_global_header(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Read => "x-ms-ratelimit-remaining-subscription-global-reads",
        OperationKind::Write => "x-ms-ratelimit-remaining-subscription-global-writes",
        OperationKind::Delete => "x-ms-ratelimit-remaining-subscription-global-deletes",
    }
}

/// ARM's 429: the wait rounded up to whole seconds in `Retry-After`.
pub fn throttled(scope: &str, principal: &str, kind: OperationKind, wait: std::time::Duration) -> ArmError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut err = ArmError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "SubscriptionRequestsThrottled",
        format!(
            "Number of '{}' requests for subscription '{scope}' actor '{principal}' exceeded. Please try again after '{seconds}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling",
            kind.plural().trim_end_matches('s')
        ),
    );
    err.headers.push(("retry-after", seconds.to_string()));
    err.headers.push((remaining_header(kind), "0".to_string()));
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit_all(t: &Throttle, n: usize, kind: OperationKind) -> usize {
        (0..n).filter(|_| t.admit("t", Some("sub"), "p", kind).is_ok()).count()
    }

    #[test]
    fn a_burst_beyond_the_bucket_is_refused_and_refills_at_the_documented_rate() {
        let clock = Arc::new(SimClock::default());
        let t = Throttle::new(Limits::default(), clock.clone(), true);
        // The real clock moves a little during the test; a large jump dominates it.
        assert_eq!(admit_all(&t, 250, OperationKind::Write), 200);
        clock.advance(std::time::Duration::from_secs(10));
        let refilled = admit_all(&t, 250, OperationKind::Write);
        assert!((100..=101).contains(&refilled), "10 s at 10/s refilled {refilled}");
    }

    #[test]
    fn the_429_says_when_to_retry() {
        let t = Throttle::new(Limits::default(), Arc::new(SimClock::default()), true);
        admit_all(&t, 200, OperationKind::Delete);
        let err = t.admit("t", Some("sub"), "p", OperationKind::Delete).unwrap_err();
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            err.headers.iter().any(|(h, v)| *h == "retry-after" && v == "1"),
            "{:?}",
            err.headers
        );
    }
}
