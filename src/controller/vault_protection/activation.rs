//! The backup side's part of a PIM elevation. Once the security side allowed it (another person approved
//! in Kubernetes, and PIM's settings require approval by people other than the requester), the backup side
//! asks PIM to activate its own eligible role on the guard with its own identity — the security side never
//! holds that credential — after judging the request itself: the admission objects it was recorded under,
//! its approvals under the guard owner's rules, its target and the principal it names. A request that
//! ended while PIM still holds the activation for approval has it cancelled (only its requestor may).
//! What went wrong is written on the request (`actionFailed`), which fails it.

use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};

use super::observe::granted_for;
use super::{perform, trust};
use crate::azure::authorization::{self, RequestType, ScheduleRequestSpec};
use crate::azure::guards::GuardId;
use crate::azure::vaults::VaultId;
use crate::azure::{ArmClient, AzureError};
use crate::controller::outcome;
use crate::controller::{BackupContext, Error, critical_operation_request};
use crate::crd::critical_operation_request::{CriticalOperationRequestStatus, Elevation, RequestPhase};
use crate::crd::shared::ApprovalBackend;
use crate::crd::{CriticalOperationRequest, VaultProtection};

/// Whether `status` is a PIM elevation the security side allowed and that is not yet in force: the
/// backup side has something to ask PIM for, or to cancel.
pub fn awaits_backup_side(status: &CriticalOperationRequestStatus) -> bool {
    status
        .policy
        .as_ref()
        .is_some_and(|p| p.backend == ApprovalBackend::Pim)
        && status.holds_elevation()
        && status.granted_at.is_none()
}

/// Activates (or cancels) in PIM what the requests for `vp` await of the backup side.
pub(super) async fn follow(
    ctx: &BackupContext,
    arm: &ArmClient,
    vp: &VaultProtection,
    (vault, guard): (&VaultId, &GuardId),
) -> Result<(), Error> {
    let namespace = vp.namespace().unwrap_or_default();
    let requests: Api<CriticalOperationRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = vp.name_any();
    for request in requests.list(&ListParams::default()).await? {
        let Some(status) = request.status.as_ref().filter(|s| awaits_backup_side(s)) else {
            continue;
        };
        if request.spec.vault_protection != name {
            continue;
        }
        let ended = request.meta().deletion_timestamp.is_some() || wants_no_activation(&request);
        if ended {
            cancel(arm, &request, guard).await?;
        } else if status.phase == Some(RequestPhase::Pending) {
            activate(ctx, arm, vp, &request, (vault, guard)).await?;
        }
    }
    Ok(())
}

/// The backup side's own activation request for `request` (its name comes from the request's uid, never
/// from a status).
fn own_request_id(request: &CriticalOperationRequest, guard: &GuardId) -> String {
    critical_operation_request::activation_request_id(request, &guard.path())
}

/// Cancels the activation of an ended request while PIM still waits for approval on it.
async fn cancel(arm: &ArmClient, request: &CriticalOperationRequest, guard: &GuardId) -> Result<(), Error> {
    let id = own_request_id(request, guard);
    let tenant = guard.tenant.as_deref();
    let Some(asked) = authorization::find_schedule_request_in(arm, tenant, &id).await? else {
        return Ok(());
    };
    if !asked.status.is_waiting() {
        return Ok(());
    }
    match authorization::cancel_schedule_request_in(arm, tenant, &id).await {
        // PIM decided meanwhile: the security side ends what is in force.
        Ok(()) | Err(AzureError::Arm { status: 400 | 404, .. }) => {}
        Err(err) => return Err(err.into()),
    }
    tracing::info!(request = %outcome::key(request), "cancelled the PIM activation of an ended request");
    Ok(())
}

/// Asks PIM to activate the backup identity's role for `request`, once the backup side's own checks pass;
/// an activation already asked for is left to PIM's approvers.
async fn activate(
    ctx: &BackupContext,
    arm: &ArmClient,
    vp: &VaultProtection,
    request: &CriticalOperationRequest,
    (vault, guard): (&VaultId, &GuardId),
) -> Result<(), Error> {
    let id = own_request_id(request, guard);
    let tenant = guard.tenant.as_deref();
    if authorization::find_schedule_request_in(arm, tenant, &id)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let key = outcome::key(vp);
    let spec = match may_activate(ctx, arm, vp, request, (vault, guard)).await? {
        Ok(spec) => spec,
        Err(why) => {
            let why = format!("the backup side's own check refused it: {why}");
            tracing::warn!(request = %outcome::key(request), %why, "a PIM activation was not asked for");
            return perform::record_action_failed(ctx, &key, &request.name_any(), &why).await;
        }
    };
    match authorization::request_schedule(arm, &spec).await {
        Ok(asked) => {
            tracing::info!(request = %outcome::key(request), status = ?asked.status, "asked PIM to activate the backup identity's role on the guard");
            // The request may have ended while this was asked (the security side then found nothing to
            // end): read it again and cancel what it no longer wants.
            let requests: Api<CriticalOperationRequest> =
                Api::namespaced(ctx.client.clone(), &request.namespace().unwrap_or_default());
            let now = requests.get_opt(&request.name_any()).await?;
            if now
                .as_ref()
                .is_none_or(|r| r.meta().deletion_timestamp.is_some() || wants_no_activation(r))
            {
                cancel(arm, request, guard).await?;
            }
            Ok(())
        }
        // Refused as asked (not eligible, against PIM's settings, an assignment already in force): final.
        Err(err) if matches!(err.status(), Some(400 | 403 | 409)) => {
            let why = format!("PIM refused the activation: {err}");
            tracing::warn!(request = %outcome::key(request), %why, "a PIM activation was refused");
            perform::record_action_failed(ctx, &key, &request.name_any(), &why).await
        }
        Err(err) => Err(err.into()),
    }
}

/// Whether a request no longer wants its activation: revoked, failed by a side, or ended.
fn wants_no_activation(request: &CriticalOperationRequest) -> bool {
    request.status.as_ref().is_none_or(|s| {
        s.revocation.is_some() || s.action_failed.is_some() || s.phase.is_some_and(RequestPhase::is_final)
    })
}

/// The backup side's own judgement of an activation, from nothing a status could forge: the request's
/// target is this object, its vault and guard; the guard owner's rules use PIM, the request is within
/// them, and PIM's settings keep another person in the loop ([`critical_operation_request::pim_activation`]);
/// and it is approved ([`trust::approved`]). The activation asked for is built from those rules: the
/// backup identity itself, on that guard, with the rules' role, for the request's duration.
async fn may_activate(
    ctx: &BackupContext,
    arm: &ArmClient,
    vp: &VaultProtection,
    request: &CriticalOperationRequest,
    (vault, guard): (&VaultId, &GuardId),
) -> Result<Result<ScheduleRequestSpec, String>, Error> {
    let status = request.status.clone().unwrap_or_default();
    let for_this_vault = status
        .target
        .as_ref()
        .is_some_and(|t| granted_for(t, vp, vault, guard, &request.spec.change()));
    if !for_this_vault {
        return Ok(Err(
            "it records another target than this VaultProtection, its vault and guard".into(),
        ));
    }
    let me = arm.principal_id_in(guard.tenant.as_deref()).await?;
    let activation = match critical_operation_request::pim_activation(ctx, arm, request, &me).await? {
        Ok(activation) => activation,
        Err(why) => return Ok(Err(why)),
    };
    if let Err(why) = trust::approved(ctx, request, ctx.clock.now()).await? {
        return Ok(Err(why));
    }
    let elevation = Elevation {
        principal_id: Some(me),
        scope: Some(guard.path()),
        tenant_id: guard.tenant.clone(),
        ..Default::default()
    };
    Ok(Ok(critical_operation_request::schedule_spec(
        request,
        &elevation,
        &activation.role,
        RequestType::SelfActivate,
        activation.duration,
    )))
}
