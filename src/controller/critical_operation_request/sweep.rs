//! The start-up sweep: an elevation the operator granted and no request holds any more (a request
//! deleted while the operator was down, its finalizer forced away) is removed, so a crash or restart
//! cannot leave a grant behind.

use std::time::Duration;

use kube::api::ListParams;

use crate::azure::authorization::{self, RequestType, ScheduleRequestSpec};
use crate::azure::guards::GuardId;
use crate::controller::{Error, SecurityContext, resource_guard};
use crate::crd::{CriticalOperationRequest, ElevationPolicy, ResourceGuard};

/// The start-up sweep: every elevation role the elevated principal holds directly on a guard the cluster
/// knows, with no request holding it, is removed — a request deleted while the operator was down (its
/// finalizer forced away) leaves no grant behind. Grants whose time has passed are ended by the first
/// reconcile of their request, which the initial list triggers for every request.
pub async fn sweep(ctx: &SecurityContext) -> Result<usize, Error> {
    // Only grants older than the sweep: one the controller makes meanwhile is recorded by its request.
    let started = ctx.clock.now();
    let mut scopes: Vec<GuardId> = ctx
        .api::<ResourceGuard>()
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|rg| rg.spec.elevation.is_some())
        .map(|rg| resource_guard::guard_id(&rg.spec))
        .collect();
    for policy in ctx.api::<ElevationPolicy>().list(&ListParams::default()).await? {
        if let Some(id) = GuardId::parse(&policy.spec.guard_id) {
            scopes.push(id);
        }
    }
    // No elevation rules, no elevations to look for (and no need to know whom they would elevate).
    if scopes.is_empty() {
        return Ok(0);
    }
    let held: Vec<String> = ctx
        .api::<CriticalOperationRequest>()
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter_map(|cor| cor.status)
        .filter(|s| s.holds_elevation())
        .filter_map(|s| s.elevation.and_then(|e| e.scope))
        .collect();
    let mut removed = 0;
    for guard in scopes {
        let scope = guard.path();
        if held.iter().any(|h| h.eq_ignore_ascii_case(&scope)) {
            continue;
        }
        let principal = ctx.side.elevated_principal(guard.tenant.as_deref()).await?;
        let tenant = guard.tenant.as_deref();
        let assignments = match authorization::list_for_principal_in(&ctx.side.arm, tenant, &scope, &principal).await {
            Ok(list) => list,
            // A guard that is gone, or one this identity cannot read: nothing it could have granted there.
            Err(err) => {
                tracing::debug!(guard = %scope, %err, "sweep: cannot list role assignments");
                continue;
            }
        };
        for assignment in assignments {
            let elevation_role = [authorization::BACKUP_MUA_OPERATOR, authorization::CONTRIBUTOR]
                .iter()
                .any(|r| assignment.role.eq_ignore_ascii_case(r));
            let older = assignment.created_on.is_some_and(|t| t < started);
            if !elevation_role || !older || !assignment.scope.eq_ignore_ascii_case(&scope) {
                continue;
            }
            let spec = ScheduleRequestSpec {
                name: None,
                scope: scope.clone(),
                tenant: guard.tenant.clone(),
                role: assignment.role.clone(),
                principal_id: principal.clone(),
                request_type: RequestType::AdminRemove,
                duration: Duration::ZERO,
                ends_at: None,
                justification: "mua-operator start-up sweep: no CriticalOperationRequest holds this elevation".into(),
                ticket: None,
            };
            authorization::end_assignment(&ctx.side.arm, &spec).await?;
            tracing::warn!(guard = %scope, role = %assignment.role, %principal, "removed an elevation no request holds");
            removed += 1;
        }
    }
    Ok(removed)
}
