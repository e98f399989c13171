//! Client-side token buckets that mirror ARM's throttling, so an identity stays under ARM's limits instead
//! of learning them from 429s. ARM keeps buckets per subscription (or tenant), principal and operation kind;
//! an [`ArmClient`](super::ArmClient) is one principal, so its buckets are keyed by scope and kind. ARM's
//! `x-ms-ratelimit-remaining-*` headers correct them when something else (another replica, another tool
//! with the same identity) spent part of the budget.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use reqwest::Method;
use reqwest::header::HeaderMap;

/// ARM's operation kinds, each with its own bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationKind {
    Read,
    Write,
    Delete,
}

impl OperationKind {
    /// As ARM counts them: GET and HEAD read, DELETE deletes, everything else (PUT, PATCH, POST) writes.
    pub fn of(method: &Method) -> Self {
        match *method {
            Method::GET | Method::HEAD => OperationKind::Read,
            Method::DELETE => OperationKind::Delete,
            _ => OperationKind::Write,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Read => "read",
            OperationKind::Write => "write",
            OperationKind::Delete => "delete",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            OperationKind::Read => "reads",
            OperationKind::Write => "writes",
            OperationKind::Delete => "deletes",
        }
    }
}

/// One bucket: how many tokens it holds and how fast it refills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub capacity: u32,
    pub per_second: u32,
}

/// The buckets an identity keeps per subscription (or tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Off: no client-side waiting (ARM's 429s are still retried).
    pub enabled: bool,
    pub reads: Bucket,
    pub writes: Bucket,
    pub deletes: Bucket,
    /// Tokens of each bucket left unused: a request reaches ARM a little after it left our bucket, and
    /// that delay varies, so a bucket exactly as large as ARM's would sometimes run a few milliseconds
    /// ahead of ARM's. A reserve of `r` tokens absorbs `r / per_second` of such jitter and costs nothing
    /// in sustained throughput.
    pub reserve: u32,
}

/// ARM's published figures (regional token-bucket model): reads 250 refilled at 25/s, writes and deletes
/// 200 at 10/s; two tokens in reserve (80 ms of jitter for reads, 200 ms for writes).
impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            reads: Bucket {
                capacity: 250,
                per_second: 25,
            },
            writes: Bucket {
                capacity: 200,
                per_second: 10,
            },
            deletes: Bucket {
                capacity: 200,
                per_second: 10,
            },
            reserve: 2,
        }
    }
}

impl ThrottlePolicy {
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    fn bucket(&self, kind: OperationKind) -> Bucket {
        match kind {
            OperationKind::Read => self.reads,
            OperationKind::Write => self.writes,
            OperationKind::Delete => self.deletes,
        }
    }

    /// What our bucket holds: ARM's capacity less the reserve (at least one token).
    fn burst(&self, kind: OperationKind) -> u32 {
        self.bucket(kind).capacity.saturating_sub(self.reserve).max(1)
    }
}

/// Which bucket a call draws from: its subscription (lowercase) or, for calls outside any subscription,
/// the tenant's; and its operation kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ThrottleKey {
    pub scope: String,
    pub kind: OperationKind,
}

impl ThrottleKey {
    /// `tenant` is the tenant whose token the call carries (ARM's scope for paths without a subscription).
    pub fn for_call(method: &Method, path: &str, tenant: &str) -> Self {
        let mut segments = path.trim_start_matches('/').split(['/', '?']);
        let scope = match (segments.next(), segments.next()) {
            (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") && !id.is_empty() => id.to_ascii_lowercase(),
            _ => format!("tenant/{}", tenant.to_ascii_lowercase()),
        };
        Self {
            scope,
            kind: OperationKind::of(method),
        }
    }
}

/// What taking a token cost.
#[derive(Clone, Copy, Debug)]
pub struct Acquired {
    /// How long the call waited for the token.
    pub waited: Duration,
    /// Tokens our bucket held after this one was taken.
    remaining: u32,
}

type Limiter = RateLimiter<ThrottleKey, DefaultKeyedStateStore<ThrottleKey>, DefaultClock, StateInformationMiddleware>;

/// An identity's buckets (one governor keyed limiter per operation kind, since each kind has its quota).
#[derive(Debug)]
pub struct Throttle {
    policy: ThrottlePolicy,
    limiters: Option<[Limiter; 3]>,
    /// The last count each bucket reported, and when: governor cannot be asked without taking a token.
    seen: Mutex<HashMap<ThrottleKey, (u32, Instant)>>,
    /// One queue per bucket: waiters take tokens first come, first served (tokio's mutex is fair), where
    /// governor alone lets each waiter retry on its own and some wait far longer than others.
    queues: Mutex<HashMap<ThrottleKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl Throttle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        let limiter = |kind| {
            let bucket = policy.bucket(kind);
            // At least one token per second and in the burst (`burst` is at least one already).
            let at_least_one = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            let quota =
                Quota::per_second(at_least_one(bucket.per_second)).allow_burst(at_least_one(policy.burst(kind)));
            RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>()
        };
        let limiters = policy.enabled.then(|| {
            [
                limiter(OperationKind::Read),
                limiter(OperationKind::Write),
                limiter(OperationKind::Delete),
            ]
        });
        Self {
            policy,
            limiters,
            seen: Mutex::default(),
            queues: Mutex::default(),
        }
    }

    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    fn limiter(&self, kind: OperationKind) -> Option<&Limiter> {
        self.limiters.as_ref().map(|l| &l[kind as usize])
    }

    fn note(&self, key: &ThrottleKey, remaining: u32) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(key.clone(), (remaining, Instant::now()));
    }

    /// Waits until the key's bucket has a token and takes it.
    pub async fn acquire(&self, key: &ThrottleKey) -> Acquired {
        let Some(limiter) = self.limiter(key.kind) else {
            return Acquired {
                waited: Duration::ZERO,
                remaining: u32::MAX,
            };
        };
        let started = Instant::now();
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(queues.entry(key.clone()).or_default())
        };
        let snapshot = {
            let _turn = queue.lock().await;
            limiter.until_key_ready(key).await
        };
        let remaining = snapshot.remaining_burst_capacity();
        self.note(key, remaining);
        Acquired {
            waited: started.elapsed(),
            remaining,
        }
    }

    /// Corrects the key's bucket by ARM's answer to the call that took `acquired`: after a 429 the bucket
    /// is emptied; otherwise, when ARM reports fewer tokens left than we believed it had, ours loses the
    /// difference, so the next calls wait here instead of being refused there.
    pub fn observe(&self, key: &ThrottleKey, acquired: &Acquired, status: u16, headers: &HeaderMap) {
        if self.limiters.is_none() {
            return;
        }
        let excess = if status == 429 {
            self.policy.burst(key.kind)
        } else {
            let Some(arm) = remaining_at_arm(headers, key.kind) else {
                return;
            };
            acquired
                .remaining
                .saturating_add(self.policy.reserve)
                .saturating_sub(arm)
        };
        self.drain(key, excess);
    }

    /// Takes up to `tokens` tokens without waiting; returns how many it took.
    pub fn drain(&self, key: &ThrottleKey, tokens: u32) -> u32 {
        let Some(limiter) = self.limiter(key.kind) else {
            return 0;
        };
        for taken in 0..tokens {
            match limiter.check_key(key) {
                Ok(snapshot) => self.note(key, snapshot.remaining_burst_capacity()),
                Err(_) => {
                    self.note(key, 0);
                    return taken;
                }
            }
        }
        tokens
    }

    /// About how many tokens the key's bucket holds now (the last count plus the refill since); `None`
    /// when the throttle is off.
    pub fn tokens_left(&self, key: &ThrottleKey) -> Option<u32> {
        self.limiters.as_ref()?;
        let burst = self.policy.burst(key.kind);
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let Some(&(remaining, at)) = seen.get(key) else {
            return Some(burst);
        };
        let refilled = at.elapsed().as_secs_f64() * f64::from(self.policy.bucket(key.kind).per_second);
        Some((f64::from(remaining) + refilled.floor()).min(f64::from(burst)) as u32)
    }
}

/// The tokens ARM says are left for `kind`: the lowest of its per-principal and subscription-wide (global)
/// figures, or the tenant's for calls outside a subscription.
pub fn remaining_at_arm(headers: &HeaderMap, kind: OperationKind) -> Option<u32> {
    let kind = kind.plural();
    [
        format!("x-ms-ratelimit-remaining-subscription-{kind}"),
        format!("x-ms-ratelimit-remaining-subscription-global-{kind}"),
        format!("x-ms-ratelimit-remaining-tenant-{kind}"),
    ]
    .iter()
    .filter_map(|name| headers.get(name)?.to_str().ok()?.trim().parse::<u32>().ok())
    .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: OperationKind) -> ThrottleKey {
        ThrottleKey {
            scope: "sub".into(),
            kind,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn methods_map_to_arms_operation_kinds() {
        assert_eq!(OperationKind::of(&Method::GET), OperationKind::Read);
        assert_eq!(OperationKind::of(&Method::HEAD), OperationKind::Read);
        assert_eq!(OperationKind::of(&Method::PUT), OperationKind::Write);
        assert_eq!(OperationKind::of(&Method::PATCH), OperationKind::Write);
        assert_eq!(OperationKind::of(&Method::POST), OperationKind::Write);
        assert_eq!(OperationKind::of(&Method::DELETE), OperationKind::Delete);
    }

    #[test]
    fn the_key_is_the_lowercase_subscription_or_the_tenant() {
        let key = ThrottleKey::for_call(
            &Method::PUT,
            "/subscriptions/AB-CD/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/g",
            "t",
        );
        assert_eq!((key.scope.as_str(), key.kind), ("ab-cd", OperationKind::Write));
        let key = ThrottleKey::for_call(&Method::GET, "/subscriptions/AB-CD?x=1", "t");
        assert_eq!(key.scope, "ab-cd");
        let key = ThrottleKey::for_call(&Method::GET, "/providers/Microsoft.Authorization/operations", "TEN");
        assert_eq!(key.scope, "tenant/ten");
    }

    #[test]
    fn arms_remaining_budget_is_the_lowest_reported_figure() {
        let both = headers(&[
            ("x-ms-ratelimit-remaining-subscription-writes", "150"),
            ("x-ms-ratelimit-remaining-subscription-global-writes", "40"),
            ("x-ms-ratelimit-remaining-subscription-reads", "7"),
        ]);
        assert_eq!(remaining_at_arm(&both, OperationKind::Write), Some(40));
        assert_eq!(remaining_at_arm(&both, OperationKind::Read), Some(7));
        assert_eq!(remaining_at_arm(&both, OperationKind::Delete), None);
        let junk = headers(&[("x-ms-ratelimit-remaining-subscription-deletes", "lots")]);
        assert_eq!(remaining_at_arm(&junk, OperationKind::Delete), None);
    }

    #[tokio::test]
    async fn a_lower_figure_from_arm_drains_the_bucket_down_to_it() {
        let throttle = Throttle::new(ThrottlePolicy::default());
        let key = key(OperationKind::Write);
        let acquired = throttle.acquire(&key).await;
        assert_eq!(throttle.tokens_left(&key), Some(197), "200 less the reserve less one");

        // ARM has 199 left, as we believed: nothing changes.
        let agreeing = headers(&[("x-ms-ratelimit-remaining-subscription-writes", "199")]);
        throttle.observe(&key, &acquired, 200, &agreeing);
        assert_eq!(throttle.tokens_left(&key), Some(197));

        // Someone else spent most of it: we keep ARM's 10 less our reserve.
        let low = headers(&[("x-ms-ratelimit-remaining-subscription-writes", "10")]);
        throttle.observe(&key, &acquired, 200, &low);
        assert_eq!(throttle.tokens_left(&key), Some(8));
    }

    #[tokio::test]
    async fn a_429_empties_the_bucket() {
        let throttle = Throttle::new(ThrottlePolicy::default());
        let key = key(OperationKind::Delete);
        let acquired = throttle.acquire(&key).await;
        throttle.observe(&key, &acquired, 429, &HeaderMap::new());
        assert_eq!(throttle.tokens_left(&key), Some(0));
        assert_eq!(throttle.drain(&key, 1), 0, "no token is left to take");
    }

    #[tokio::test]
    async fn a_disabled_throttle_never_waits_nor_counts() {
        let throttle = Throttle::new(ThrottlePolicy::disabled());
        let key = key(OperationKind::Read);
        for _ in 0..1_000 {
            assert_eq!(throttle.acquire(&key).await.waited, Duration::ZERO);
        }
        assert_eq!(throttle.tokens_left(&key), None);
    }
}
