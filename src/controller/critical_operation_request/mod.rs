//! The CriticalOperationRequest reconciler (security side): decides a request under the security side's
//! rules, grants the elevation with an Azure-side end time, and ends it the moment the operation is done,
//! the time is up, or someone revokes it. Same shape as every reconciler: [`observe`] (reads only) →
//! [`decide`] (pure) → [`apply`] (typed `azure::*` calls, the [`grant`] lifecycle) → [`status`] (pure);
//! results are reported by `outcome::report`. The rules come from [`policy`], approvals are judged by
//! [`approvals`], and the start-up [`sweep`] removes grants no request holds.
//!
//! It trusts nothing a backup admin can write: the rules come from the ResourceGuard or the
//! ElevationPolicy (security admins' objects), the VaultProtection can only narrow them, every approval is
//! re-checked (approver ≠ requester, named by the rules, allowed by RBAC now), and nobody is elevated
//! while the admission policies that enforce the two-person rule are missing from the cluster.

mod apply;
mod approvals;
mod decide;
mod grant;
mod observe;
mod policy;
mod status;
mod sweep;
#[cfg(test)]
mod tests;
mod verify;

use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Config, Controller};
use kube::{Resource, ResourceExt};

use super::memo_key::MemoKey;
use super::outcome::{self, Cleanup, Notice, Outcome, Reported, Requeue, Summary};
use super::{Error, Reason, SecurityContext, watch};
use crate::crd::CriticalOperationRequest;
use crate::crd::critical_operation_request::{CriticalOperationRequestStatus, RequestPhase};
use crate::crd::shared::Conditions;

pub use approvals::{Judged, judge};
pub use decide::{Decision, Observed, decide};
pub use grant::{activation_request_id, schedule_request_id, schedule_spec};
pub use policy::{Refusal, Resolved, check_spec, parse_duration};
pub use status::OPERATOR;
pub use sweep::sweep;
pub use verify::{Activation, approvals_hold, pim_activation};

pub const CONTROLLER: &str = "criticaloperationrequest";
const FINALIZER: &str = "mua.dev/elevation";

impl Reported for CriticalOperationRequest {
    type Status = CriticalOperationRequestStatus;
    const CONTROLLER: &'static str = CONTROLLER;

    fn status(&self) -> Option<&CriticalOperationRequestStatus> {
        self.status.as_ref()
    }

    fn conditions(status: &mut CriticalOperationRequestStatus) -> &mut Conditions {
        &mut status.conditions
    }

    fn set_observed_generation(status: &mut CriticalOperationRequestStatus, generation: Option<i64>) {
        status.observed_generation = generation;
    }

    /// People own their approval entries and the revocation: the operator never writes them back (a
    /// write of what it last read could undo a decision made meanwhile).
    fn written(status: &CriticalOperationRequestStatus) -> CriticalOperationRequestStatus {
        CriticalOperationRequestStatus {
            approvals: Vec::new(),
            revocation: None,
            ..status.clone()
        }
    }
}

/// observe → decide → apply → status.
async fn converge(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
) -> Result<Outcome<CriticalOperationRequestStatus>, Error> {
    let now = ctx.clock.now();
    let previous = cor.status.clone().unwrap_or_default();
    let observed = observe::observe(ctx, cor, &previous, now).await?;
    let decision = decide(&observed);
    let mut status = previous.clone();
    if let Ok(resolved) = &observed.resolved {
        status::record_rules(&mut status, resolved);
    }
    let recording = observed.record_fingerprint.as_ref();
    let applied = apply::apply(ctx, cor, (decision, recording), &previous, &mut status, now).await?;
    status::set_conditions(&mut status, cor.meta().generation, now, &applied.summary);
    Ok(Outcome {
        status,
        summary: applied.summary,
        requeue: applied.requeue,
        notices: applied.notices,
    })
}

/// On delete: an elevation in force is revoked before the object may go.
async fn cleanup(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
) -> Result<Cleanup<CriticalOperationRequestStatus>, Error> {
    let status = cor.status.clone().unwrap_or_default();
    if status.holds_elevation() {
        if grant::revoke(ctx, cor, &status).await? == grant::Revoked::AwaitingCancellation {
            let summary = Summary::waiting(
                Reason::AwaitingCancellation,
                "deleting: PIM still holds the backup side's activation request for approval, and only the backup side may cancel it",
            );
            return Ok(Cleanup::Waiting(Outcome {
                status,
                summary,
                requeue: Requeue::After(grant::AWAITING_BACKUP_SIDE),
                notices: Vec::new(),
            }));
        }
        tracing::info!(request = %outcome::key(cor), "revoked the elevation of a deleted request");
    }
    Ok(Cleanup::Done)
}

async fn reconcile(cor: Arc<CriticalOperationRequest>, ctx: Arc<SecurityContext>) -> Result<Action, Error> {
    // The finalizer stays while an elevation may be in force, so deleting the request revokes it first.
    let status = cor.status.clone().unwrap_or_default();
    // An ended request is the audit record: kept for the rules' retention, then removed (by the operator
    // only; nobody else may delete requests).
    if cor.meta().deletion_timestamp.is_none()
        && status::retention_ends(&status).is_some_and(|end| end <= ctx.clock.now())
    {
        return remove(&ctx, &cor).await;
    }
    let needs_finalizer = !status.phase.is_some_and(RequestPhase::is_final) || status.holds_elevation();
    outcome::lifecycle(
        &ctx,
        &*cor,
        FINALIZER,
        needs_finalizer,
        || cleanup(&ctx, &cor),
        || converge(&ctx, &cor),
    )
    .await
}

/// Removes a request whose retention ended, with an Event and a log line.
async fn remove(ctx: &SecurityContext, cor: &CriticalOperationRequest) -> Result<Action, Error> {
    let api: Api<CriticalOperationRequest> = Api::namespaced(ctx.client.clone(), &cor.namespace().unwrap_or_default());
    // Exactly this object as read: not one created again under the same name meanwhile.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cor.uid(),
            resource_version: cor.resource_version(),
        }),
        ..Default::default()
    };
    api.delete(&cor.name_any(), &params).await?;
    let message = "removed: the request ended longer ago than its rules' retentionDays".to_string();
    tracing::info!(request = %outcome::key(cor), "{message}");
    let key = outcome::key(cor);
    ctx.events.publish(
        MemoKey::new(CONTROLLER, &key),
        (CONTROLLER, &key),
        cor.object_ref(&()),
        &Notice::normal("Removed", message),
    );
    ctx.forget(CONTROLLER, &key);
    Ok(Action::await_change())
}

/// What wakes a request: its spec, deletion, a reconcile request, and what people write into its status
/// (approvals, revocation) or the backup side records (the operation performed).
fn trigger(cor: &CriticalOperationRequest) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    cor.meta().generation.hash(&mut hasher);
    cor.meta().deletion_timestamp.is_some().hash(&mut hasher);
    cor.annotations().get(watch::RECONCILE_REQUEST).hash(&mut hasher);
    if let Some(status) = &cor.status {
        serde_json::to_string(&status.approvals)
            .unwrap_or_default()
            .hash(&mut hasher);
        serde_json::to_string(&status.revocation)
            .unwrap_or_default()
            .hash(&mut hasher);
        status.performed_at.is_some().hash(&mut hasher);
        status.action_failed.hash(&mut hasher);
    }
    Some(hasher.finish())
}

/// Runs the CriticalOperationRequest controller until `shutdown` resolves, after the start-up sweep.
pub async fn run(
    api: Api<CriticalOperationRequest>,
    ctx: Arc<SecurityContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let sweeping = Arc::clone(&ctx);
    tokio::spawn(async move {
        if let Err(err) = sweep(&sweeping).await {
            tracing::warn!(reason = %err.reason(), %err, "start-up sweep of elevations failed");
        }
    });
    let (reader, stream) = watch::objects_with_trigger(api, &ctx, trigger);
    let mut controller =
        Controller::for_stream(stream, reader).with_config(Config::default().concurrency(ctx.config.concurrency));
    // An elevation's end is a moment on the context's clock: when that clock jumps (the simulator's),
    // every request is looked at again, as its timer, set in real time, would not fire.
    if let Some(jumps) = ctx.clock.jumps() {
        controller = controller.reconcile_all_on(futures::stream::unfold(jumps, |mut jumps| async move {
            jumps.changed().await.ok().map(|()| ((), jumps))
        }));
    }
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, outcome::error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
