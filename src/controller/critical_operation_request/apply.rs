//! Apply: carries a decision out — records a new request, grants (Kubernetes backend) or asks PIM to
//! activate, follows PIM, and ends a request, revoking its elevation first. Each transition is recorded
//! in the status's history and as an Event.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::decide::Decision;
use super::grant::{AWAITING_BACKUP_SIDE, Revoked, activated, allow_activation, grant, revoke};
use super::status::{OPERATOR, final_reason, transition};
use crate::controller::admission::{FINGERPRINT_ANNOTATION, Fingerprint};
use crate::controller::outcome::{Health, Notice, Requeue, Summary};
use crate::controller::{Error, Reason, SecurityContext};
use crate::crd::CriticalOperationRequest;
use crate::crd::critical_operation_request::{CriticalOperationRequestStatus, RequestPhase};

/// What carrying a decision out came to: the summary, when to look again, and the Events.
pub(super) struct Applied {
    pub summary: Summary,
    pub requeue: Requeue,
    pub notices: Vec<Notice>,
}

/// Carries `decision` out, writing what happened into `status` (read as `previous`); first records the
/// admission objects' fingerprint on the request when it has none yet.
pub(super) async fn apply(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    (decision, fingerprint): (Decision, Option<&Fingerprint>),
    previous: &CriticalOperationRequestStatus,
    status: &mut CriticalOperationRequestStatus,
    now: Timestamp,
) -> Result<Applied, Error> {
    if let Some(fingerprint) = fingerprint {
        record_fingerprint(ctx, cor, fingerprint).await?;
    }
    let mut notices = Vec::new();
    let (summary, requeue) = match decision {
        Decision::Wait {
            health,
            reason,
            message,
            requeue,
        } => {
            if previous.phase.is_none() {
                transition(status, RequestPhase::Pending, OPERATOR, reason, "request received", now);
                notices.push(Notice::normal("Requested", requested(cor)));
            }
            (Summary::new(health, reason, message), requeue)
        }
        Decision::Grant {
            approvers,
            resolved,
            duration,
        } => grant(ctx, cor, &resolved, duration, &approvers, status, &mut notices, now).await?,
        Decision::Activate { resolved } => {
            allow_activation(ctx, cor, &resolved, (previous, status), &mut notices, now).await?
        }
        Decision::Provisioned => activated(status, cor, now, &mut notices),
        Decision::End {
            phase,
            actor,
            reason,
            message,
        } => end(ctx, cor, status, (phase, &actor, reason, message), &mut notices).await?,
    };
    Ok(Applied {
        summary,
        requeue,
        notices,
    })
}

/// Records on the request itself which admission objects were in force (see [`Fingerprint`]): an
/// annotation, which no status write can change and requesters and approvers may not write.
async fn record_fingerprint(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    fingerprint: &Fingerprint,
) -> Result<(), Error> {
    let api: Api<CriticalOperationRequest> = Api::namespaced(ctx.client.clone(), &cor.namespace().unwrap_or_default());
    let patch = serde_json::json!({"metadata": {"annotations": {FINGERPRINT_ANNOTATION: fingerprint.0}}});
    api.patch(&cor.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The creation of a request, for its Event: who asks for what, for how long, and why.
fn requested(cor: &CriticalOperationRequest) -> String {
    let spec = &cor.spec;
    let ticket = spec
        .ticket
        .as_ref()
        .map(|t| format!(" (ticket {} {})", t.system, t.number))
        .unwrap_or_default();
    format!(
        "{} asks for {} through the VaultProtection {} for {}: {}{ticket}",
        spec.requester.as_deref().unwrap_or("someone"),
        spec.change(),
        spec.vault_protection,
        spec.duration,
        spec.justification
    )
}

/// Ends the request in its final `phase`, revoking its elevation first; waits while PIM holds the backup
/// side's activation for approval (only the backup side may cancel it).
async fn end(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    status: &mut CriticalOperationRequestStatus,
    (phase, actor, reason, message): (RequestPhase, &str, Reason, String),
    notices: &mut Vec<Notice>,
) -> Result<(Summary, Requeue), Error> {
    if revoke(ctx, cor, status).await? == Revoked::AwaitingCancellation {
        let waiting = Summary::waiting(
            Reason::AwaitingCancellation,
            format!(
                "ending ({message}): PIM still holds the backup side's activation request for approval, and only the backup side may cancel it; if PIM's approvers approve it first, the operator removes the activation at once"
            ),
        );
        return Ok((waiting, Requeue::After(AWAITING_BACKUP_SIDE)));
    }
    // When the elevation ended: after Azure took the removal, not when this reconcile began.
    let ended = ctx.clock.now();
    if status.elevation.is_some() && status.ended_at.is_none() {
        status.ended_at = Some(Time(ended));
    }
    if status.phase != Some(phase) {
        transition(status, phase, actor, reason, &message, ended);
        notices.push(if phase == RequestPhase::Failed {
            Notice::warning("Failed", message.clone())
        } else {
            Notice::normal(final_reason(phase).as_str(), message.clone())
        });
    }
    let health = if phase == RequestPhase::Failed {
        Health::Stalled
    } else {
        Health::Ready
    };
    Ok((Summary::new(health, reason, message), Requeue::OnChange))
}
