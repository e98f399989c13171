//! The one place a reconcile's result becomes visible: status (summary conditions, `observedGeneration`,
//! written only when it changed), a log line, metrics and Events, and the next requeue. Reconcilers
//! return an [`Outcome`] or an [`Error`]; they never write status, log results or count them themselves.

use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::metrics;
use super::{Context, Error, SideContext, SideState, conditions, finalizer};

pub use super::conditions::{Health, Summary};
pub use super::memo_key::{MemoKey, key};
use crate::crd::shared::Conditions;

/// The field manager of every status the operator writes.
pub const FIELD_MANAGER: &str = "mua-operator";

/// When to look at the object again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// At the next periodic resync (with jitter).
    Resync,
    /// Sooner: waiting on something that is expected soon.
    After(Duration),
    /// At a moment on the context's clock (an elevation's end). Counted when the reconcile is reported,
    /// after its Azure calls and status write, so the time they took does not make the next one late.
    At(jiff::Timestamp),
    /// Only when the object (or something it watches) changes.
    OnChange,
}

/// An Event to publish about the object: what the operator did or found.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub warning: bool,
    /// PascalCase, e.g. `Linked`, `DriftCorrected`.
    pub reason: &'static str,
    pub message: String,
}

impl Notice {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason,
            message: message.into(),
        }
    }

    pub fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            reason,
            message: message.into(),
        }
    }
}

/// What one reconcile observed and did.
#[derive(Clone, Debug)]
pub struct Outcome<S> {
    /// The status the controller's pure status step computed (specific conditions included; the summary
    /// conditions and `observedGeneration` are added here).
    pub status: S,
    pub summary: Summary,
    pub requeue: Requeue,
    pub notices: Vec<Notice>,
}

/// A custom resource a controller reports on.
pub trait Reported:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    type Status: Clone + Debug + Default + PartialEq + Serialize + Send + Sync;
    /// The controller's name in logs and metrics.
    const CONTROLLER: &'static str;

    fn status(&self) -> Option<&Self::Status>;
    fn conditions(status: &mut Self::Status) -> &mut Conditions;
    fn set_observed_generation(status: &mut Self::Status, generation: Option<i64>);

    /// Drops from a cached object what the reconciler never reads (the cache holds every object).
    fn slim_cached(&mut self) {}

    /// The part of a status the operator writes (and compares): fields people own are left out.
    fn written(status: &Self::Status) -> Self::Status {
        status.clone()
    }
}

/// Stands for a status whose hash is not known (no real status hashes to it in practice).
const UNKNOWN_STATUS: u64 = u64::MAX;

/// A hash of a status as it would be written: compared instead of whole statuses, so the cache need not
/// keep fields the reconciler does not read.
pub fn status_hash<S: Serialize>(status: &S) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_vec(status).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

/// The hashes kept of a status as written (see [`K::written`](Reported::written)): of the whole, and of
/// its conditions (what a failure compares, so the cache need not keep them whole either).
pub fn status_hashes<K: Reported>(written: &mut K::Status) -> (u64, u64) {
    (status_hash(&*written), status_hash(K::conditions(written)))
}

/// The conditions every report sets anew from its summary (`conditions::summarize`).
const SUMMARY_CONDITIONS: [&str; 3] = [conditions::READY, conditions::RECONCILING, conditions::STALLED];

/// Drops from cached conditions what no reconcile reads. Every report sets the summary conditions anew,
/// reading of the previous ones only their status and transition time (kept while the status holds),
/// and compares conditions by hash ([`status_hashes`]); their reason, message and generation go. Other
/// conditions stay whole: a failure writes them back as they were.
pub fn slim_conditions(conditions: &mut Conditions) {
    for condition in &mut conditions.0 {
        if SUMMARY_CONDITIONS.contains(&condition.type_.as_str()) {
            condition.reason = String::new();
            condition.message = String::new();
            condition.observed_generation = None;
        }
    }
}

/// Where deleting an object stands.
pub enum Cleanup<S> {
    /// Nothing (more) to do in Azure: the finalizer may go.
    Done,
    /// Still waiting (for an approval, say): reported like any outcome.
    Waiting(Outcome<S>),
}

/// The lifecycle every reconciler shares. A finalizer is kept exactly while `needs_finalizer` (deleting
/// the object must do something in Azure first); on deletion `cleanup` runs until it is done, then the
/// finalizer goes; otherwise `converge` runs. Every result is reported by [`report`].
pub async fn lifecycle<K, S, C, CF, V, VF>(
    ctx: &SideContext<S>,
    object: &K,
    finalizer: &str,
    needs_finalizer: bool,
    cleanup: C,
    converge: V,
) -> Result<Action, Error>
where
    K: Reported,
    S: SideState,
    C: FnOnce() -> CF,
    CF: Future<Output = Result<Cleanup<K::Status>, Error>>,
    V: FnOnce() -> VF,
    VF: Future<Output = Result<Outcome<K::Status>, Error>>,
{
    let started = Instant::now();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    if object.meta().deletion_timestamp.is_some() {
        if !object.finalizers().iter().any(|f| f == finalizer) {
            return Ok(Action::await_change());
        }
        let result = match needs_finalizer {
            true => cleanup().await,
            false => Ok(Cleanup::Done),
        };
        return match result {
            Ok(Cleanup::Done) => {
                finalizer::remove(&api, object, finalizer).await?;
                ctx.forget(K::CONTROLLER, &key(object));
                Ok(Action::await_change())
            }
            Ok(Cleanup::Waiting(waiting)) => report(ctx, object, started, Ok(waiting)).await,
            Err(err) => report(ctx, object, started, Err(err)).await,
        };
    }
    if needs_finalizer {
        finalizer::add(&api, object, finalizer).await?;
    } else {
        finalizer::remove(&api, object, finalizer).await?;
    }
    let result = converge().await;
    report(ctx, object, started, result).await
}

/// Only failures of the report itself (writing status, a finalizer) get here: Azure failures are
/// outcomes.
pub fn error_policy<K: Reported, S>(object: Arc<K>, error: &Error, ctx: Arc<SideContext<S>>) -> Action {
    let key = key(&*object);
    tracing::warn!(controller = K::CONTROLLER, object = %key, reason = %error.reason(), %error, "reconcile failed");
    Action::requeue(ctx.backoff.failed(K::CONTROLLER, &key))
}

/// Reports a reconcile of `object` that started at `started`, and says when to look again.
pub async fn report<K: Reported>(
    ctx: &Context,
    object: &K,
    started: Instant,
    result: Result<Outcome<K::Status>, Error>,
) -> Result<Action, Error> {
    let key = key(object);
    let generation = object.meta().generation;
    let failed = result.as_ref().err().map(|err| (err.reason(), err.to_string()));
    let outcome = match result {
        Ok(outcome) => {
            ctx.backoff.succeeded(K::CONTROLLER, &key);
            outcome
        }
        Err(err) => failure(ctx, object, &key, &err),
    };
    let Outcome {
        mut status,
        summary,
        requeue,
        notices,
    } = outcome;
    conditions::summarize(K::conditions(&mut status), &summary, generation, ctx.clock.now());
    K::set_observed_generation(&mut status, generation);
    let memo = MemoKey::new(K::CONTROLLER, &key);
    let changed = if failed.is_some() {
        // A failure changes the conditions only: what was last seen of Azure stays as it was (and the
        // cache may not hold all of it).
        let conditions = K::conditions(&mut status).clone();
        let changed = match ctx.statuses.conditions_are(memo, status_hash(&conditions)) {
            Some(same) => !same,
            None => {
                let mut cached = object.status().cloned().unwrap_or_default();
                *K::conditions(&mut cached) != conditions
            }
        };
        if changed {
            write_conditions(ctx, object, &conditions, generation).await?;
            // The status's hashes are unknown until the watch shows the patched object: a reconcile
            // before then must write.
            ctx.statuses.seen(memo, (UNKNOWN_STATUS, UNKNOWN_STATUS));
        }
        changed
    } else {
        let mut status = K::written(&status);
        let hashes = status_hashes::<K>(&mut status);
        let changed = match ctx.statuses.is(memo, hashes.0) {
            Some(same) => !same,
            None => object.status().map(|s| status_hash(&K::written(s))) != Some(hashes.0),
        };
        if changed {
            write_status(ctx, object, &status).await?;
            ctx.statuses.seen(memo, hashes);
        }
        changed
    };

    let result = match (&failed, summary.health) {
        (Some(_), _) => metrics::Result::Failed,
        (None, Health::Ready) => metrics::Result::Ready,
        (None, Health::Waiting) => metrics::Result::Waiting,
        (None, Health::Stalled) => metrics::Result::Stalled,
    };
    let took = started.elapsed();
    ctx.metrics
        .reconciled(K::CONTROLLER, &key, result, summary.reason, took);
    let took_ms = took.as_millis() as u64;
    match &failed {
        Some((reason, error)) => {
            tracing::warn!(controller = K::CONTROLLER, object = %key, %reason, %error, took_ms, "reconcile failed")
        }
        None if changed || !notices.is_empty() => tracing::info!(
            controller = K::CONTROLLER, object = %key, result = ?result, reason = %summary.reason,
            message = %summary.message, took_ms, "reconciled"
        ),
        None => {
            tracing::debug!(controller = K::CONTROLLER, object = %key, reason = %summary.reason, took_ms, "no change")
        }
    }
    for notice in &notices {
        ctx.events
            .publish(memo, (K::CONTROLLER, &key), object.object_ref(&()), notice);
    }
    Ok(match requeue {
        Requeue::Resync => Action::requeue(ctx.config.resync_with_jitter()),
        Requeue::After(after) => Action::requeue(after),
        Requeue::At(at) => Action::requeue(until(ctx.clock.now(), at)),
        Requeue::OnChange => Action::await_change(),
    })
}

/// How long from `now` until `at`; zero once it has passed.
fn until(now: jiff::Timestamp, at: jiff::Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or_default()
}

/// A failed reconcile: the last status with the failure as its summary, a Warning Event, and a requeue
/// that follows the error (ARM's `Retry-After`, else exponential backoff; slowly when a person must act).
fn failure<K: Reported>(ctx: &Context, object: &K, key: &str, err: &Error) -> Outcome<K::Status> {
    let reason = err.reason();
    let message = err.to_string();
    let backoff = ctx.backoff.failed(K::CONTROLLER, key);
    let (health, after) = if err.needs_person() {
        (Health::Stalled, ctx.config.stalled_retry)
    } else {
        (
            Health::Waiting,
            err.retry_after().map_or(backoff, |wait| wait.max(backoff)),
        )
    };
    Outcome {
        status: object.status().cloned().unwrap_or_default(),
        summary: Summary::new(health, reason, message.clone()),
        requeue: Requeue::After(after),
        notices: vec![Notice::warning(reason.as_str(), message)],
    }
}

/// Writes the conditions alone (a merge patch keeps every other status field).
async fn write_conditions<K: Reported>(
    ctx: &Context,
    object: &K,
    conditions: &Conditions,
    generation: Option<i64>,
) -> Result<(), Error> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let patch = serde_json::json!({"status": {"conditions": conditions, "observedGeneration": generation}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch_status(&object.name_any(), &params, &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Writes the status by server-side apply (the operator owns every status field it sets).
async fn write_status<K: Reported>(ctx: &Context, object: &K, status: &K::Status) -> Result<(), Error> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requeue_at_a_moment_waits_until_then_and_never_less_than_zero() {
        let now: jiff::Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let at: jiff::Timestamp = "2026-11-29T12:00:01.250Z".parse().unwrap();
        assert_eq!(until(now, at), Duration::from_millis(1250));
        assert_eq!(until(at, now), Duration::ZERO);
    }
}
