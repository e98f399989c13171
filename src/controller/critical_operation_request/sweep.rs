//! The start-up sweep: an elevation the operator granted and no request holds any more (a request
//! deleted while the operator was down, its finalizer forced away) is removed, so a crash or restart
//! cannot leave a grant behind.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::grant;
use crate::azure::ArmClient;
use crate::azure::authorization::{self, RequestType, ScheduleRequestSpec};
use crate::azure::guards::GuardId;
use crate::controller::{Error, SecurityContext, resource_guard};
use crate::crd::{AzureScopeBinding, CriticalOperationRequest, ElevationPolicy, ResourceGuard};

/// The start-up sweep: every elevation role the elevated principal holds directly on a guard the cluster
/// knows, with no request holding it, is removed — a request deleted while the operator was down (its
/// finalizer forced away) leaves no grant behind. Grants whose time has passed are ended by the first
/// reconcile of their request, which the initial list triggers for every request.
pub async fn sweep(ctx: &SecurityContext) -> Result<usize, Error> {
    // Only grants older than the sweep: one the controller makes meanwhile is recorded by its request.
    let started = ctx.clock.now();
    // Each guard with the namespace whose security identity grants there.
    let mut scopes: Vec<(GuardId, String)> = ctx
        .api::<ResourceGuard>()
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|rg| rg.spec.elevation.is_some())
        .map(|rg| (resource_guard::guard_id(&rg.spec), rg.namespace().unwrap_or_default()))
        .collect();
    for policy in ctx.api::<ElevationPolicy>().list(&ListParams::default()).await? {
        if let Some(id) = GuardId::parse(&policy.spec.guard_id) {
            scopes.push((id, policy.namespace().unwrap_or_default()));
        }
    }
    let bindings = Api::<AzureScopeBinding>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
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
    for (guard, owner) in scopes {
        let scope = guard.path();
        if held.iter().any(|h| h.eq_ignore_ascii_case(&scope)) {
            continue;
        }
        // Only as the identity of a namespace whose binding owns the guard; one guard's trouble (an
        // unusable identity Secret, say) does not stop the sweep of the others.
        let owns = bindings
            .iter()
            .any(|b| b.name_any() == owner && b.spec.owns_guard(&scope));
        if !owns {
            tracing::debug!(guard = %scope, namespace = %owner, "sweep: the namespace does not own the guard");
            continue;
        }
        let tenant = guard.tenant.as_deref();
        let arm = match grant::granting_identity(ctx, &owner).await {
            Ok(arm) => arm,
            Err(err) => {
                tracing::warn!(guard = %scope, namespace = %owner, %err, "sweep: cannot act on the guard");
                continue;
            }
        };
        // Whom the operator may have elevated there: its backup identity, or a namespace's.
        let mut principals = vec![ctx.side.elevated_principal(tenant).await?];
        principals.extend(bindings.iter().filter_map(|b| b.spec.backup_principal(tenant)));
        principals.sort();
        principals.dedup();
        for principal in principals {
            removed += sweep_guard(&arm, &guard, &principal, started).await?;
        }
    }
    Ok(removed)
}

/// Removes the elevation roles `principal` holds directly on `guard`, granted before `started`.
async fn sweep_guard(
    arm: &ArmClient,
    guard: &GuardId,
    principal: &str,
    started: jiff::Timestamp,
) -> Result<usize, Error> {
    let (scope, tenant) = (guard.path(), guard.tenant.as_deref());
    let mut removed = 0;
    let assignments = match authorization::list_for_principal_in(arm, tenant, &scope, principal).await {
        Ok(list) => list,
        // A guard that is gone, or one this identity cannot read: nothing it could have granted there.
        Err(err) => {
            tracing::debug!(guard = %scope, %err, "sweep: cannot list role assignments");
            return Ok(0);
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
            principal_id: principal.to_string(),
            request_type: RequestType::AdminRemove,
            duration: Duration::ZERO,
            ends_at: None,
            justification: "mua-operator start-up sweep: no CriticalOperationRequest holds this elevation".into(),
            ticket: None,
        };
        authorization::end_assignment(arm, &spec).await?;
        tracing::warn!(guard = %scope, role = %assignment.role, %principal, "removed an elevation no request holds");
        removed += 1;
    }
    Ok(removed)
}
