//! The grant's lifecycle in Azure: grant (Kubernetes backend: an AdminAssign with an Azure-side end),
//! activate (PIM: the backup side's identity self-activates, PIM's approvers decide), revoke, and
//! exclusivity (never two requests on one assignment: Azure would merge them and one revocation would end
//! both).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::ListParams;

use super::policy::{Resolved, parse_duration};
use super::status::{OPERATOR, transition};
use crate::azure::ArmClient;
use crate::azure::authorization::{self, RequestType, ScheduleRequestSpec, ScheduleStatus};
use crate::azure::guards::GuardId;
use crate::controller::outcome::{self, Health, Notice, Requeue, Summary};
use crate::controller::{Error, Reason, SecurityContext, scope};
use crate::crd::CriticalOperationRequest;
use crate::crd::critical_operation_request::{CriticalOperationRequestStatus, Elevation, RequestPhase};
use crate::crd::elevation_policy::ElevationRole;

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
    let arm = granting_identity(ctx, &resolved.policy.owner_namespace).await?;
    let granted = match authorization::request_schedule(&arm, &spec).await {
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

/// PIM: lets the backup side ask PIM to activate its eligible role on the guard, with its own identity
/// (the security side never holds the backup credential). The elevation is recorded now, under the name
/// the activation request will have in Azure, so that the security side follows it with its own identity
/// and can always end it; PIM's approvers decide.
pub(super) async fn allow_activation(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    resolved: &Resolved,
    (previous, status): (&CriticalOperationRequestStatus, &mut CriticalOperationRequestStatus),
    notices: &mut Vec<Notice>,
    now: Timestamp,
) -> Result<(Summary, Requeue), Error> {
    let elevation = elevation_for(ctx, cor, resolved).await?;
    status.elevation = Some(Elevation {
        schedule_request_id: Some(activation_request_id(cor, &resolved.guard.path())),
        ..elevation
    });
    let message = format!(
        "approved here; the backup side asks PIM to activate {} on the guard for {} with its own identity, then PIM's approvers decide in Azure",
        resolved.policy.role.azure_name(),
        cor.spec.duration
    );
    if previous.phase.is_none() {
        transition(
            status,
            RequestPhase::Pending,
            OPERATOR,
            Reason::AwaitingActivation,
            &message,
            now,
        );
    }
    notices.push(Notice::normal("ActivationAllowed", message.clone()));
    Ok((
        Summary::new(Health::Waiting, Reason::AwaitingActivation, message),
        Requeue::After(AWAITING_BACKUP_SIDE),
    ))
}

/// How often a request that waits for the backup side's activation (or cancellation) in PIM looks
/// again (one ARM read each): the backup side writes nothing the security side could be woken by.
pub(super) const AWAITING_BACKUP_SIDE: Duration = Duration::from_secs(3);

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
/// identity that performs the operation itself — the one the request namespace's AzureScopeBinding
/// names (`backupPrincipalIds`, for a namespace with a backup identity of its own), else the operator's
/// in the guard's tenant.
pub(super) async fn principal_for(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    guard: &GuardId,
) -> Result<String, Error> {
    if let Some(principal) = &cor.spec.principal {
        return Ok(principal.object_id.to_ascii_lowercase());
    }
    let scope = scope::of(&ctx.client, &cor.namespace().unwrap_or_default()).await?;
    if let Some(principal) = scope.binding.and_then(|b| b.backup_principal(guard.tenant.as_deref())) {
        return Ok(principal);
    }
    Ok(ctx.side.elevated_principal(guard.tenant.as_deref()).await?)
}

/// The security identity that grants, follows and ends elevations on guards `owner_namespace` owns: the
/// namespace's own where it names one (`mua-security-identity`), else the operator's (also for a request
/// recorded before owners were).
pub(super) async fn granting_identity(ctx: &SecurityContext, owner_namespace: &str) -> Result<ArmClient, Error> {
    if owner_namespace.is_empty() {
        return Ok(ctx.side.identities.global().clone());
    }
    ctx.side.identities.of(&ctx.client, owner_namespace).await
}

/// [`granting_identity`] for the owner the request's status records, on `guard`: only when that
/// namespace's AzureScopeBinding owns the guard, so a status naming another namespace cannot make the
/// operator act on a guard as that namespace's identity.
pub(super) async fn recorded_granting_identity(
    ctx: &SecurityContext,
    status: &CriticalOperationRequestStatus,
    guard: &GuardId,
) -> Result<ArmClient, Error> {
    let owner = status
        .policy
        .as_ref()
        .map(|p| p.owner_namespace.as_str())
        .unwrap_or_default();
    if !owner.is_empty()
        && let Err(why) = scope::of(&ctx.client, owner).await?.owns_guard(&guard.path())
    {
        return Err(Error::Identity(format!(
            "the request records {owner} as the guard's owner, but {why}: its identity is not used on this guard"
        )));
    }
    granting_identity(ctx, owner).await
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

/// The ARM ID of `cor`'s schedule request of `request_type` on the guard `scope` (see
/// [`schedule_request_name`]).
pub fn schedule_request_id(cor: &CriticalOperationRequest, scope: &str, request_type: RequestType) -> String {
    format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}",
        schedule_request_name(cor, request_type)
    )
}

/// The ARM ID the backup side's PIM activation for `cor` has (or will have) on the guard `scope`.
pub fn activation_request_id(cor: &CriticalOperationRequest, scope: &str) -> String {
    schedule_request_id(cor, scope, RequestType::SelfActivate)
}

pub fn schedule_spec(
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

/// What ending an elevation came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Revoked {
    /// Nothing of it is in force in Azure any more.
    Ended,
    /// PIM still holds the backup side's activation request for approval; only the backup side may
    /// cancel it (Azure's end time bounds it meanwhile, should PIM's approvers approve it).
    AwaitingCancellation,
}

/// Ends the elevation in Azure with the security side's own identity, whatever the status says its
/// backend was (a status can be written by others): an activation the backup side asked PIM for (found
/// by the name derived from the request's uid) that PIM has not settled yet is waited for (only its
/// requestor may cancel it); then the elevation roles of the principal the request elevates (from its
/// spec and its namespace's binding, never from the status) are removed from the guard with
/// `AdminRemove`. An assignment Azure already removed at its end time counts as ended.
pub(super) async fn revoke(
    ctx: &SecurityContext,
    cor: &CriticalOperationRequest,
    status: &CriticalOperationRequestStatus,
) -> Result<Revoked, Error> {
    let Some(elevation) = &status.elevation else {
        return Ok(Revoked::Ended);
    };
    let Some(guard) = elevation.scope.as_deref().and_then(GuardId::parse) else {
        return Ok(Revoked::Ended);
    };
    let guard = guard.in_tenant(elevation.tenant_id.as_deref());
    let arm = recorded_granting_identity(ctx, status, &guard).await?;
    let tenant = guard.tenant.as_deref();
    let activation = activation_request_id(cor, &guard.path());
    if let Some(asked) = authorization::find_schedule_request_in(&arm, tenant, &activation).await?
        && !asked.status.is_over()
        && asked.status != ScheduleStatus::Provisioned
    {
        return Ok(Revoked::AwaitingCancellation);
    }
    let principal = principal_for(ctx, cor, &guard).await?;
    let removed = Elevation {
        principal_id: Some(principal.clone()),
        scope: Some(guard.path()),
        tenant_id: guard.tenant.clone(),
        ..Default::default()
    };
    // What the principal holds on the guard itself, and of that only the roles an elevation grants: a
    // status naming another role cannot make this remove it.
    let recorded = elevation.role_definition_id.as_deref().unwrap_or_default();
    let known = ELEVATION_ROLES.iter().any(|r| r.eq_ignore_ascii_case(recorded));
    let held = authorization::list_for_principal_in(&arm, tenant, &guard.path(), &principal).await?;
    for assignment in held {
        let elevation_role = ELEVATION_ROLES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(&assignment.role) && (!known || r.eq_ignore_ascii_case(recorded)));
        if !elevation_role || !guard.is(&assignment.scope) {
            continue;
        }
        let spec = schedule_spec(
            cor,
            &removed,
            &assignment.role,
            RequestType::AdminRemove,
            Duration::ZERO,
        );
        authorization::end_assignment(&arm, &spec).await?;
    }
    Ok(Revoked::Ended)
}

/// The roles an elevation grants.
const ELEVATION_ROLES: [&str; 2] = [authorization::BACKUP_MUA_OPERATOR, authorization::CONTRIBUTOR];

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
