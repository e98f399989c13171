//! Before it weakens anything, the backup side checks the elevation it is about to use by itself,
//! trusting no status another principal could write: the admission policies are in the cluster as this
//! build ships them, the request's approvals hold under the guard owner's rules for the target it
//! records (the security side's own judge), and Azure holds the very grant this request object was
//! given — found by its `metadata.uid`, made for this vault, held by the backup identity on that guard
//! now, and ending when the request says. Any check failing means the elevation is not used.

use jiff::Timestamp;
use kube::ResourceExt;

use crate::azure::ArmClient;
use crate::azure::authorization::{self, RequestType, ScheduleStatus};
use crate::azure::guards::GuardId;
use crate::controller::admission::{self, AdmissionProblems};
use crate::controller::{BackupContext, Error, critical_operation_request};
use crate::crd::CriticalOperationRequest;
use crate::crd::shared::ApprovalBackend;

/// How far Azure's end of the grant may lie after the request's (`expiresAt` holds whole seconds).
const END_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);

/// `Ok(Ok(()))` when `cor`'s elevation on `guard` may be used now; otherwise why not, for a person.
pub(super) async fn verify(
    ctx: &BackupContext,
    arm: &ArmClient,
    cor: &CriticalOperationRequest,
    guard: &GuardId,
    now: Timestamp,
) -> Result<Result<(), String>, Error> {
    if let Err(why) = approved(ctx, cor, now).await? {
        return Ok(Err(why));
    }
    grant_in_azure(arm, cor, guard, now).await
}

/// Whether the request is approved as the backup side judges it itself: under the admission objects it
/// was recorded with (still in force, as this build ships them), by enough valid approvals for its
/// recorded target under the guard owner's rules.
pub(super) async fn approved(
    ctx: &BackupContext,
    cor: &CriticalOperationRequest,
    now: Timestamp,
) -> Result<Result<(), String>, Error> {
    let recorded = cor
        .annotations()
        .get(admission::FINGERPRINT_ANNOTATION)
        .map(String::as_str);
    let in_force = ctx
        .side
        .admission
        .verify(&ctx.client)
        .await
        .and_then(|fingerprint| match recorded {
            Some(_) => fingerprint.unchanged_since(recorded),
            None => Err(AdmissionProblems {
                missing: vec!["the request records no admission objects it was approved under".into()],
                ..Default::default()
            }),
        });
    if let Err(problems) = in_force {
        return Ok(Err(format!(
            "the admission policies of the two-person rule are not as this operator ships them, or changed since the request was recorded ({problems})"
        )));
    }
    critical_operation_request::approvals_hold(ctx, cor, now).await
}

/// The grant as Azure holds it.
async fn grant_in_azure(
    arm: &ArmClient,
    cor: &CriticalOperationRequest,
    guard: &GuardId,
    now: Timestamp,
) -> Result<Result<(), String>, Error> {
    let status = cor.status.clone().unwrap_or_default();
    let pim = status
        .policy
        .as_ref()
        .is_some_and(|p| p.backend == ApprovalBackend::Pim);
    let kind = if pim {
        RequestType::SelfActivate
    } else {
        RequestType::AdminAssign
    };
    let id = critical_operation_request::schedule_request_id(cor, &guard.path(), kind);
    let tenant = guard.tenant.as_deref();
    let Some(granted) = authorization::find_schedule_request_in(arm, tenant, &id).await? else {
        return Ok(Err("Azure holds no grant made for this request".into()));
    };
    let me = arm.principal_id_in(tenant).await?;
    // The grant's justification starts `<operation> on <vault ID> for ` (the requester's words come last).
    let vault = status
        .target
        .as_ref()
        .map(|t| t.vault_id.to_ascii_lowercase())
        .unwrap_or_default();
    let made_for = format!("{} on {vault} for ", cor.spec.operation).to_ascii_lowercase();
    let provisioned = matches!(
        granted.status,
        ScheduleStatus::Provisioned
            | ScheduleStatus::Granted
            | ScheduleStatus::AdminApproved
            | ScheduleStatus::ScheduleCreated
    );
    let why_not = if !provisioned {
        Some(format!("its grant in Azure is {:?}", granted.status))
    } else if !granted
        .principal_id
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case(&me))
    {
        Some(
            "its grant in Azure is for another principal than the backup identity this namespace uses (a namespace with a backup identity of its own needs its object ID in its AzureScopeBinding's backupPrincipalIds)"
                .into(),
        )
    } else if !granted.scope.as_deref().is_some_and(|s| guard.is(s)) {
        Some("its grant in Azure is on another scope than the guard".into())
    } else if vault.is_empty()
        || !granted
            .justification
            .as_deref()
            .is_some_and(|j| j.to_ascii_lowercase().starts_with(&made_for))
    {
        Some("its grant in Azure was made for another vault".into())
    } else {
        let expires = status.expires_at.as_ref().map(|t| t.0);
        match (granted.ends_at, expires) {
            (Some(end), _) if end <= now => Some(format!("its grant in Azure ended at {end}")),
            (Some(end), Some(expires)) if end > expires + END_SLACK => Some(format!(
                "its grant in Azure ends at {end}, after the request's end {expires}"
            )),
            (Some(_), None) => Some("the request records no end".into()),
            // A grant (not a PIM activation, which ends after its duration) always has an end.
            (None, _) if !pim => Some("its grant in Azure has no end".into()),
            _ => None,
        }
    };
    if let Some(why) = why_not {
        return Ok(Err(why));
    }
    // And the role is held now (Azure removes it at its end, or when the security side revokes it).
    let role = granted
        .role_definition_id
        .as_deref()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let held = authorization::list_for_principal_in(arm, tenant, &guard.path(), &me)
        .await?
        .into_iter()
        .any(|a| a.role.eq_ignore_ascii_case(&role) && guard.is(&a.scope));
    Ok(if held {
        Ok(())
    } else {
        Err("the backup identity holds no such role on the guard now".into())
    })
}
