//! Observe: what one request's decision depends on — its phase and status, the rules and target it
//! resolves to, the approvals as judged now (each re-checked with RBAC), whether the admission policies
//! are in force, another request holding an elevation it would merge with, and PIM's answer. Reads
//! only; only an undecided request looks at rules, approvals and policies.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::approvals::{Judged, Judging, judge};
use super::decide::{Observed, PimActivation};
use super::grant::other_active;
use super::policy::{Refusal, Resolved, check_pim, check_spec, resolve, same_target};
use super::{grant, status};
use crate::azure::ArmClient;
use crate::azure::authorization;
use crate::azure::guards::GuardId;
use crate::controller::admission::FINGERPRINT_ANNOTATION;
use crate::controller::{Context, Error, Reason, SecurityContext, admission};
use crate::crd::CriticalOperationRequest;
use crate::crd::critical_operation_request::{CriticalOperationRequestStatus, GrantTarget, RequestPhase};
use crate::crd::shared::ApprovalBackend;

/// What the operator sees of `cor` now; `previous` is its status as read.
pub(super) async fn observe(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    previous: &CriticalOperationRequestStatus,
    now: Timestamp,
) -> Result<Observed, Error> {
    let phase = previous.phase.unwrap_or(RequestPhase::Pending);
    let mut observed = Observed {
        phase,
        now,
        resolved: Err(Refusal::waiting(Reason::RequestFailed, "not resolved")),
        duration: Err(Refusal::waiting(Reason::RequestFailed, "not checked")),
        admission: Ok(()),
        record_fingerprint: None,
        judged: Judged::default(),
        other_active: None,
        expires_at: timestamp(&previous.expires_at),
        granted: previous.holds_elevation(),
        performed: previous.performed_at.is_some(),
        action_failed: previous.action_failed.clone(),
        revoked_by: previous.revocation.as_ref().map(|r| (r.by.clone(), r.reason.clone())),
        pim: None,
        pim_policy: None,
        retention_ends: status::retention_ends(previous),
        ending: previous.history.last().and_then(|t| {
            let reason = Reason::parse(t.reason.as_deref()?)?;
            Some((reason, t.message.clone().unwrap_or_default()))
        }),
    };
    let pim_pending = phase == RequestPhase::Pending
        && previous.granted_at.is_none()
        && previous
            .policy
            .as_ref()
            .is_some_and(|p| p.backend == ApprovalBackend::Pim);
    // Allowed to activate: the backup side asks PIM with its own identity, under the name recorded here;
    // the security side follows it with its own.
    if pim_pending
        && let Some(elevation) = &previous.elevation
        && let Some(guard) = elevation.scope.as_deref().and_then(GuardId::parse)
    {
        let guard = guard.in_tenant(elevation.tenant_id.as_deref());
        // Its name comes from the request's uid, as the backup side's does, never from a status.
        let id = grant::activation_request_id(cor, &guard.path());
        let tenant = guard.tenant.as_deref();
        observed.pim = Some(
            match authorization::find_schedule_request_in(
                &grant::recorded_granting_identity(ctx, previous, &guard).await?,
                tenant,
                &id,
            )
            .await?
            {
                Some(asked) => PimActivation::Asked(asked.status),
                None => PimActivation::NotAsked,
            },
        );
    }
    // Only an undecided request needs its rules, approvals and the admission policies looked at.
    let undecided = !phase.is_final() && !observed.granted && observed.pim.is_none();
    if undecided && observed.revoked_by.is_none() {
        observed.resolved = resolve(ctx, cor)
            .await
            .map(|r| r.and_then(|r| same_target(previous, r)))?;
        if let Ok(resolved) = &observed.resolved {
            observed.duration = check_spec(cor, resolved);
            // Approvals count only for the target recorded before them (none before it is recorded).
            observed.judged = judged(ctx, cor, previous, resolved, previous.target.as_ref(), now).await?;
            // As shipped now, and the very objects (uid, generation) seen when the target was recorded.
            let recorded = cor.annotations().get(FINGERPRINT_ANNOTATION).map(String::as_str);
            observed.admission = match ctx.side.admission.verify(&ctx.client).await {
                Ok(fingerprint) => {
                    let unchanged = fingerprint.unchanged_since(recorded);
                    if recorded.is_none() {
                        observed.record_fingerprint = Some(fingerprint);
                    }
                    unchanged
                }
                Err(problems) => Err(problems),
            };
            if resolved.policy.backend == ApprovalBackend::Pim {
                observed.pim_policy = Some(pim_policy(ctx, cor, resolved).await?);
            }
            // Only a request about to be elevated needs to know whether another one holds an elevation.
            let pim = resolved.policy.backend == ApprovalBackend::Pim;
            if pim || observed.judged.approvers.len() >= resolved.policy.required_approvals as usize {
                observed.other_active = other_active(ctx, cor, &resolved.guard).await?;
            }
        }
    }
    Ok(observed)
}

/// PIM's settings for the role on the guard, checked: approval required, by other people.
async fn pim_policy(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    resolved: &Resolved,
) -> Result<Result<(), Refusal>, Error> {
    let arm = grant::granting_identity(ctx, &resolved.policy.owner_namespace).await?;
    let activating = grant::principal_for(ctx, cor, &resolved.guard).await?;
    pim_settings(&arm, cor, resolved, &activating).await
}

/// PIM's settings for the rules' role on the guard, read as `arm`: approval required, by approvers who
/// are neither `activating` nor a principal the rules tie to the requester. Both sides check this: the
/// security side before it allows an activation, the backup side before it asks PIM.
pub(super) async fn pim_settings(
    arm: &ArmClient,
    cor: &CriticalOperationRequest,
    resolved: &Resolved,
    activating: &str,
) -> Result<Result<(), Refusal>, Error> {
    let tenant = resolved.guard.tenant.as_deref();
    let role = grant::role_id(resolved.policy.role);
    let approval = authorization::activation_approval(arm, tenant, &resolved.guard.path(), role).await?;
    let requester = cor.spec.requester.as_deref().unwrap_or_default();
    let requester_principals: Vec<String> = resolved
        .rules
        .principals
        .iter()
        .filter(|p| p.requesters.includes(requester, &cor.spec.requester_groups))
        .map(|p| p.object_id.clone())
        .collect();
    Ok(check_pim(&approval, activating, &requester_principals))
}

/// `status`'s approvals of `cor` as judged under `resolved`'s rules for `target`, at `at`: each approver
/// re-checked with RBAC now (a SubjectAccessReview each, with the groups their entry recorded; Kubernetes
/// cannot say which groups they are in now). The security side judges with this before it grants, the
/// backup side before it uses a grant.
pub(super) async fn judged(
    ctx: &Context,
    cor: &CriticalOperationRequest,
    status: &CriticalOperationRequestStatus,
    resolved: &Resolved,
    target: Option<&GrantTarget>,
    at: Timestamp,
) -> Result<Judged, Error> {
    let namespace = cor.namespace().unwrap_or_default();
    let mut may = BTreeMap::new();
    for entry in &status.approvals {
        let allowed =
            admission::may_approve(&ctx.client, &namespace, &cor.name_any(), &entry.approver, &entry.groups).await?;
        may.insert(entry.approver.clone(), allowed);
    }
    let requester = cor.spec.requester.clone().unwrap_or_default();
    let on = Judging {
        requester: &requester,
        rules: &resolved.rules,
        target,
        now: at,
        validity: resolved.approval_validity,
    };
    Ok(judge(&status.approvals, on, &may))
}

fn timestamp(time: &Option<Time>) -> Option<Timestamp> {
    time.as_ref().map(|t| t.0)
}
