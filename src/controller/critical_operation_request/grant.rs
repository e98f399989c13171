//! The grant's lifecycle in Azure: grant (Kubernetes backend: an AdminAssign with an Azure-side end),
//! activate (PIM: the backup side's identity self-activates, PIM's approvers decide), revoke, and
//! exclusivity (never two requests on one assignment: Azure would merge them and one revocation would end
//! both).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::ListParams;

use super::decide::{Decision, follow_pim};
use super::policy::{Resolved, parse_duration};
use super::status::{OPERATOR, transition};
use crate::azure::AzureError;
use crate::azure::authorization::{self, RequestType, ScheduleRequestSpec, ScheduleStatus};
use crate::azure::guards::GuardId;
use crate::controller::outcome::{self, Health, Notice, Requeue, Summary};
use crate::controller::{Error, Reason, SecurityContext};
use crate::crd::CriticalOperationRequest;
use crate::crd::critical_operation_request::{CriticalOperationRequestStatus, Elevation, RequestPhase};
use crate::crd::elevation_policy::ElevationRole;
use crate::crd::shared::ApprovalBackend;

/// Grants the approved elevation with an Azure-side end; the request is then Active until that end.
#[allow(
    clippy::too_many_arguments,
    reason = "one request's grant: its parts, and where to record it"
)]
pub(super) async fn grant(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    resolved: &Resolved,
    duration: Duration,
    approvers: &[String],
    status: &mut CriticalOperationRequestStatus,
    notices: &mut Vec<Notice>,
    now: Timestamp,
) -> Result<(Summary, Requeue), Error> {
    let role = role_id(resolved.policy.role);
    let elevation = elevation_for(ctx, cor, resolved).await?;
    let expires = elevation_end(now, duration);
    let spec = ScheduleRequestSpec {
        ends_at: Some(expires),
        ..schedule_spec(cor, &elevation, role, RequestType::AdminAssign, duration)
    };
    let granted = match authorization::request_schedule(&ctx.side.arm, &spec).await {
        // Still Pending: approved, but nothing is granted while Azure holds another assignment.
        Err(err) if err.code() == Some(ASSIGNMENT_EXISTS) => return Ok(assigned_already(&elevation)),
        granted => granted?,
    };
    let actor = approvers.join(", ");
    let message = format!("approved by {actor}");
    transition(status, RequestPhase::Approved, &actor, Reason::Approved, &message, now);
    notices.push(Notice::normal("Approved", message));
    // A grant asked again (its first answer or status write was lost) keeps the first end.
    let expires = granted.ends_at.map_or(expires, |azure| azure.min(expires));
    status.elevation = Some(Elevation {
        schedule_request_id: Some(granted.id),
        ..elevation
    });
    status.granted_at = Some(Time(now));
    status.expires_at = Some(Time(expires));
    let message = format!(
        "granted {} on the guard to {} until {expires} (Azure ends it then even if the operator is down)",
        resolved.policy.role.azure_name(),
        status
            .elevation
            .as_ref()
            .and_then(|e| e.principal_id.clone())
            .unwrap_or_default()
    );
    transition(status, RequestPhase::Active, OPERATOR, Reason::Elevated, &message, now);
    notices.push(Notice::normal("Elevated", message.clone()));
    Ok((
        Summary::new(Health::Ready, Reason::Elevated, message),
        Requeue::At(expires),
    ))
}

/// PIM: asks PIM to activate the backup side's eligible assignment; PIM's approvers decide in Azure.
#[allow(
    clippy::too_many_arguments,
    reason = "one request's activation: its parts, and where to record it"
)]
pub(super) async fn activate(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    resolved: &Resolved,
    duration: Duration,
    previous: &CriticalOperationRequestStatus,
    status: &mut CriticalOperationRequestStatus,
    notices: &mut Vec<Notice>,
    now: Timestamp,
) -> Result<(Summary, Requeue), Error> {
    let role = role_id(resolved.policy.role);
    let elevation = elevation_for(ctx, cor, resolved).await?;
    let spec = schedule_spec(cor, &elevation, role, RequestType::SelfActivate, duration);
    let pim = ctx.side.pim_client().map_err(Error::Azure)?;
    let submitted = match authorization::request_schedule(pim, &spec).await {
        Err(err) if err.code() == Some(ASSIGNMENT_EXISTS) => return Ok(assigned_already(&elevation)),
        submitted => submitted?,
    };
    status.elevation = Some(Elevation {
        schedule_request_id: Some(submitted.id),
        ..elevation
    });
    let message = format!(
        "asked PIM to activate {} on the guard for {}; PIM's approvers decide in Azure",
        resolved.policy.role.azure_name(),
        cor.spec.duration
    );
    if previous.phase.is_none() {
        transition(
            status,
            RequestPhase::Pending,
            OPERATOR,
            Reason::PendingApprovalInAzure,
            &message,
            now,
        );
    }
    notices.push(Notice::normal("ActivationRequested", message.clone()));
    Ok(match follow_pim(&submitted.status) {
        // PIM's policy asks for no approval: active at once.
        Decision::Provisioned => activated(status, cor, now, notices),
        _ => (
            Summary::new(Health::Waiting, Reason::PendingApprovalInAzure, message),
            Requeue::After(Duration::from_secs(10)),
        ),
    })
}

/// The elevation a grant or an activation under `resolved` asks for: the rules' role on the guard, for the
/// principal the request elevates.
async fn elevation_for(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    resolved: &Resolved,
) -> Result<Elevation, Error> {
    Ok(Elevation {
        principal_id: Some(principal_for(ctx, cor, &resolved.guard).await?),
        scope: Some(resolved.guard.path()),
        tenant_id: resolved.guard.tenant.clone(),
        role_definition_id: Some(role_id(resolved.policy.role).to_string()),
        ..Default::default()
    })
}

/// ARM's answer to a grant of a role the principal already holds at that scope.
pub(super) const ASSIGNMENT_EXISTS: &str = "RoleAssignmentExists";

/// Azure already has an assignment this grant would be: another elevation the operator could not see (a
/// race with another request, or one made outside the operator). The request waits for it to end.
pub(super) fn assigned_already(elevation: &Elevation) -> (Summary, Requeue) {
    let message = format!(
        "Azure already has an assignment of this role to {} on the guard (another elevation, or one made outside \
         the operator); this request waits until it ends (elevations are never merged or extended)",
        elevation.principal_id.as_deref().unwrap_or_default()
    );
    (
        Summary::new(Health::Waiting, Reason::AnotherElevationActive, message),
        Requeue::After(Duration::from_secs(15)),
    )
}

/// When an elevation of `duration` from `now` ends: on a whole second (what `metav1.Time` holds), so
/// the end in the status is the exact one the operator enforces; rounded down, never extended.
pub(super) fn elevation_end(now: Timestamp, duration: Duration) -> Timestamp {
    let end = now + jiff::SignedDuration::try_from(duration).unwrap_or_default();
    Timestamp::from_second(end.as_second()).unwrap_or(end)
}

/// The principal the request elevates on `guard`: the one it names (done by hand), else the backup
/// side's identity in the guard's tenant, which performs the operation itself.
pub(super) async fn principal_for(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    guard: &GuardId,
) -> Result<String, Error> {
    if let Some(principal) = &cor.spec.principal {
        return Ok(principal.object_id.to_ascii_lowercase());
    }
    Ok(ctx.side.elevated_principal(guard.tenant.as_deref()).await?)
}

pub(super) fn role_id(role: ElevationRole) -> &'static str {
    match role {
        ElevationRole::BackupMuaOperator => authorization::BACKUP_MUA_OPERATOR,
        ElevationRole::Contributor => authorization::CONTRIBUTOR,
    }
}

/// The name of the schedule request that grants (or activates) `cor`'s elevation: its own per request
/// object (`metadata.uid`, which no status write changes) and kind, so asking again after a lost answer
/// finds the request already made, a grant is never made twice, and the backup side can find the very
/// grant this request was given.
pub fn schedule_request_name(cor: &CriticalOperationRequest, request_type: RequestType) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        format!("mua.dev/{}/{request_type:?}", cor.uid().unwrap_or_default()).as_bytes(),
    )
    .to_string()
}

pub(super) fn schedule_spec(
    cor: &CriticalOperationRequest,
    elevation: &Elevation,
    role: &str,
    request_type: RequestType,
    duration: Duration,
) -> ScheduleRequestSpec {
    let idempotent = matches!(request_type, RequestType::AdminAssign | RequestType::SelfActivate);
    let vault = cor
        .status
        .as_ref()
        .and_then(|s| s.target.as_ref())
        .map(|t| t.vault_id.clone())
        .unwrap_or_default();
    ScheduleRequestSpec {
        name: idempotent.then(|| schedule_request_name(cor, request_type)),
        scope: elevation.scope.clone().unwrap_or_default(),
        tenant: elevation.tenant_id.clone(),
        role: role.to_string(),
        principal_id: elevation.principal_id.clone().unwrap_or_default(),
        request_type,
        duration,
        ends_at: None,
        // Who asked, for PIM's approvers: in Azure the operator's identity is the one activating.
        // The vault is named so that the grant in Azure itself says what it is for (the backup side
        // checks it there, not in a status another principal could write).
        justification: format!(
            "{} on {vault} for {} ({}/{}): {}",
            cor.spec.operation,
            cor.spec.requester.as_deref().unwrap_or("an unknown requester"),
            cor.namespace().unwrap_or_default(),
            cor.name_any(),
            cor.spec.justification
        ),
        ticket: cor.spec.ticket.as_ref().map(|t| (t.system.clone(), t.number.clone())),
    }
}

/// Ends the elevation in Azure: AdminRemove by the security side (Kubernetes backend); for PIM, cancels
/// an activation still waiting for approval or self-deactivates an active one. An assignment Azure already
/// removed at its end time counts as ended. `Ok(false)`: PIM refuses a deactivation this soon after the
/// activation; try again (Azure's end time bounds it meanwhile).
pub(super) async fn revoke(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    status: &CriticalOperationRequestStatus,
) -> Result<bool, Error> {
    let Some(elevation) = &status.elevation else {
        return Ok(true);
    };
    if status
        .policy
        .as_ref()
        .is_some_and(|p| p.backend == ApprovalBackend::Pim)
    {
        return revoke_pim(ctx, cor, status, elevation).await;
    }
    let role = elevation
        .role_definition_id
        .clone()
        .unwrap_or_else(|| authorization::BACKUP_MUA_OPERATOR.to_string());
    let spec = schedule_spec(cor, elevation, &role, RequestType::AdminRemove, Duration::ZERO);
    authorization::end_assignment(&ctx.side.arm, &spec).await?;
    Ok(true)
}

async fn revoke_pim(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    status: &CriticalOperationRequestStatus,
    elevation: &Elevation,
) -> Result<bool, Error> {
    let pim = ctx.side.pim_client().map_err(Error::Azure)?;
    if status.granted_at.is_none()
        && let Some(id) = &elevation.schedule_request_id
    {
        let request = authorization::get_schedule_request(pim, id).await?;
        if !matches!(request.status, ScheduleStatus::Provisioned | ScheduleStatus::Granted) {
            // Still waiting for PIM's approvers (or already over): cancel what can be cancelled; a
            // request PIM no longer holds open needs nothing more.
            return match authorization::cancel_schedule_request(pim, id).await {
                Ok(())
                | Err(AzureError::Arm {
                    status: 400 | 404 | 409,
                    ..
                }) => Ok(true),
                Err(err) => Err(err.into()),
            };
        }
    }
    let role = elevation.role_definition_id.clone().unwrap_or_default();
    let spec = schedule_spec(cor, elevation, &role, RequestType::SelfDeactivate, Duration::ZERO);
    match authorization::end_assignment(pim, &spec).await {
        Ok(()) => Ok(true),
        Err(err) if authorization::is_too_soon_to_deactivate(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Another request holding an elevation now that this one's grant would merge with, and how: one for the
/// same VaultProtection and operation, or one of the same principal on the same guard (in any namespace
/// the operator serves). Azure keeps a single assignment per principal, role and scope, so a second grant
/// would be that one, and the first request's revocation would end both.
pub(super) async fn other_active(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    guard: &GuardId,
) -> Result<Option<String>, Error> {
    let principal = principal_for(ctx, cor, guard).await?;
    let scope = guard.path();
    let (namespace, name) = (cor.namespace(), cor.name_any());
    Ok(ctx
        .api::<CriticalOperationRequest>()
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|other| !(other.namespace() == namespace && other.name_any() == name))
        .find_map(|other| {
            let elevation = other.status.as_ref().filter(|s| s.holds_elevation())?.elevation.as_ref()?;
            let same_operation = other.namespace() == namespace
                && other.spec.vault_protection == cor.spec.vault_protection
                && other.spec.operation == cor.spec.operation;
            let same_grant = elevation.scope.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(&scope))
                && elevation
                    .principal_id
                    .as_deref()
                    .is_some_and(|p| p.eq_ignore_ascii_case(&principal));
            let other = outcome::key(&other);
            if same_operation {
                Some(format!("the request {other} holds an elevation for the same vault and operation"))
            } else if same_grant {
                Some(format!(
                    "the request {other} holds an elevation of the same principal on the same guard (Azure keeps one assignment per principal, role and scope, so the two would be one)"
                ))
            } else {
                None
            }
        }))
}

/// PIM activated the assignment: the request is Active from now, for its duration.
pub(super) fn activated(
    status: &mut CriticalOperationRequestStatus,
    cor: &CriticalOperationRequest,
    now: Timestamp,
    notices: &mut Vec<Notice>,
) -> (Summary, Requeue) {
    let duration = parse_duration(&cor.spec.duration).unwrap_or_default();
    let expires = elevation_end(now, duration);
    transition(
        status,
        RequestPhase::Approved,
        "PIM",
        Reason::Approved,
        "approved in PIM",
        now,
    );
    status.granted_at = Some(Time(now));
    status.expires_at = Some(Time(expires));
    let message = format!("PIM activated the assignment until {expires}");
    transition(status, RequestPhase::Active, OPERATOR, Reason::Elevated, &message, now);
    notices.push(Notice::normal("Elevated", message.clone()));
    (
        Summary::new(Health::Ready, Reason::Elevated, message),
        Requeue::At(expires),
    )
}
