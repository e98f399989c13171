//! Who may read `/metrics` when it is secured (`--metrics-secure`), decided as controller-runtime's secure
//! metrics and kube-rbac-proxy decide it: the API server authenticates the caller's bearer token
//! (TokenReview), and the user it names must be allowed `get` on the non-resource URL `/metrics`
//! (SubjectAccessReview), e.g. through the chart's `mua-metrics-reader` ClusterRole. Decisions are kept
//! for a while per token, so a scraper costs the API server two reviews a minute at most; a review that
//! fails refuses the scrape and is not kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

/// How long an answer is kept: an allowed scraper a minute, a refused one less, so that a binding just
/// made takes effect soon.
const ALLOWED_FOR: Duration = Duration::from_secs(60);
const REFUSED_FOR: Duration = Duration::from_secs(10);
/// At most this many tokens are remembered (scrapers are few; a flood of made-up tokens must not grow it).
const CACHE_LIMIT: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No token, or one the API server does not accept: 401.
    Unauthenticated,
    /// A user not allowed `get /metrics`: 403.
    Forbidden,
    /// The API server could not be asked: 503, and the scraper tries again.
    Unavailable,
}

pub struct MetricsAuth {
    client: kube::Client,
    decided: Mutex<HashMap<String, (Instant, Decision)>>,
}

impl MetricsAuth {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            decided: Mutex::new(HashMap::new()),
        }
    }

    /// The decision for a request with this `Authorization` header.
    pub async fn decide(&self, authorization: Option<&str>) -> Decision {
        let Some(token) = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
        else {
            return Decision::Unauthenticated;
        };
        if let Some(decision) = self.remembered(token) {
            return decision;
        }
        let decision = match self.review(token).await {
            Ok(decision) => decision,
            Err(err) => {
                tracing::warn!(%err, "reviewing a /metrics scraper's token failed; refusing the scrape");
                return Decision::Unavailable;
            }
        };
        self.remember(token, decision);
        decision
    }

    fn remembered(&self, token: &str) -> Option<Decision> {
        let decided = self.decided.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        decided
            .get(token)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, decision)| *decision)
    }

    fn remember(&self, token: &str, decision: Decision) {
        let keep_for = if decision == Decision::Allowed {
            ALLOWED_FOR
        } else {
            REFUSED_FOR
        };
        let mut decided = self.decided.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        decided.retain(|_, (until, _)| now < *until);
        if decided.len() >= CACHE_LIMIT {
            decided.clear();
        }
        decided.insert(token.to_string(), (now + keep_for, decision));
    }

    async fn review(&self, token: &str) -> Result<Decision, kube::Error> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..TokenReviewSpec::default()
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let status = reviewed.status.unwrap_or_default();
        let Some(user) = status.user.filter(|_| status.authenticated == Some(true)) else {
            return Ok(Decision::Unauthenticated);
        };
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                extra: user.extra,
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some("/metrics".into()),
                    verb: Some("get".into()),
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &access)
            .await?;
        Ok(if answer.status.is_some_and(|s| s.allowed) {
            Decision::Allowed
        } else {
            Decision::Forbidden
        })
    }
}
