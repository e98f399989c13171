//! The VaultProtection reconciler (backup side, its own ARM identity): keeps a vault linked to its
//! guard and its soft-delete settings as declared, restores drift, and never weakens protection —
//! unlinking, disabling soft delete, shortening retention — without an approved, active
//! CriticalOperationRequest. Same shape as every reconciler: [`observe`] (reads only) → [`plan`] (pure)
//! → [`apply`] (typed `azure::*` calls, checks before each write; [`perform`] for what a request says to
//! do) → [`status`] (pure), reported in one place.

mod activation;
mod apply;
mod memo;
mod observe;
mod perform;
mod plan;
mod status;
#[cfg(test)]
mod tests;
mod trust;

use std::sync::Arc;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::outcome::{self, Cleanup, Outcome, Reported};
use super::{BackupContext, Error, watch};
use crate::crd::shared::{Conditions, ManagementPolicy};
use crate::crd::vault_protection::{VaultDeletionPolicy, VaultProtectionSpec, VaultProtectionStatus};
use crate::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};

pub use memo::Memo;
pub use observe::vault_id;
pub use plan::{Blocker, Plan, Step};

const FINALIZER: &str = "mua.dev/vault-protection";
pub const CONTROLLER: &str = "vaultprotection";

impl Reported for VaultProtection {
    type Status = VaultProtectionStatus;
    const CONTROLLER: &'static str = CONTROLLER;

    fn status(&self) -> Option<&VaultProtectionStatus> {
        self.status.as_ref()
    }

    fn conditions(status: &mut VaultProtectionStatus) -> &mut Conditions {
        &mut status.conditions
    }

    fn set_observed_generation(status: &mut VaultProtectionStatus, generation: Option<i64>) {
        status.observed_generation = generation;
    }
}

/// observe → plan → apply → status. The flag says whether the object's link is gone (a deletion may
/// finish).
async fn converge(
    ctx: &BackupContext,
    vp: &VaultProtection,
    deleting: bool,
) -> Result<(Outcome<VaultProtectionStatus>, bool), Error> {
    let mut seen = match observe::observe(ctx, vp, deleting).await? {
        Ok(seen) => seen,
        Err(stop) => return Ok(status::stopped(ctx, vp, stop)),
    };
    // The backup side's part of a PIM elevation for this object: asked for (or cancelled) with its own
    // identity.
    if ctx.side.memo.has_activation(&seen.key) {
        activation::follow(ctx, &seen.arm, vp, (&seen.id, &seen.target.id)).await?;
    }
    let manage = vp.spec.management_policy == ManagementPolicy::Manage;
    let mut plan = seen.plan(&vp.spec, deleting);
    // Requests are looked up only when a weakening is wanted, or one has an action waiting.
    if manage && (!plan.elevation_required.is_empty() || ctx.side.memo.has_action(&seen.key)) {
        (seen.observed.elevations, seen.observed.untrusted) =
            observe::active_elevations(ctx, &seen.arm, vp, &seen.id, &seen.target.id).await?;
        plan = seen.plan(&vp.spec, deleting);
    }
    let applied = if manage {
        apply::apply(ctx, &seen, &plan).await?
    } else {
        apply::Applied::unchanged(&seen.observed)
    };
    Ok(status::report(vp, seen, &plan, applied, deleting))
}

/// Whether deleting the object must do something in Azure first (and so needs a finalizer).
fn unlinks_on_delete(spec: &VaultProtectionSpec) -> bool {
    spec.deletion_policy == VaultDeletionPolicy::Unlink && spec.management_policy == ManagementPolicy::Manage
}

async fn reconcile(vp: Arc<VaultProtection>, ctx: Arc<BackupContext>) -> Result<Action, Error> {
    let cleanup = || async {
        // Unlink (under an approved request): done once the vault has no link to the guard.
        let (outcome, unlinked) = converge(&ctx, &vp, true).await?;
        Ok(if unlinked {
            Cleanup::Done
        } else {
            Cleanup::Waiting(outcome)
        })
    };
    let converge = || async { converge(&ctx, &vp, false).await.map(|(outcome, _)| outcome) };
    outcome::lifecycle(&ctx, &*vp, FINALIZER, unlinks_on_delete(&vp.spec), cleanup, converge).await
}

/// The VaultProtections that name `rg` by `guard.name`.
fn naming_guard(store: &Store<VaultProtection>, rg: &ResourceGuard) -> Vec<ObjectRef<VaultProtection>> {
    let (namespace, name) = (rg.namespace(), rg.name_any());
    store
        .state()
        .iter()
        .filter(|vp| vp.namespace() == namespace && vp.spec.guard.name.as_deref() == Some(name.as_str()))
        .map(|vp| ObjectRef::from_obj(&**vp))
        .collect()
}

/// Runs the VaultProtection controller until `shutdown` resolves. It also wakes when a ResourceGuard a
/// VaultProtection names changes (becomes Ready), and when a CriticalOperationRequest for one changes
/// (becomes Active).
pub async fn run(
    api: Api<VaultProtection>,
    guards: Api<ResourceGuard>,
    requests: Api<CriticalOperationRequest>,
    ctx: Arc<BackupContext>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = watch::controller(api, &ctx);
    let memo_ctx = ctx.clone();
    let store = controller.store();
    controller
        .watches(guards, watcher::Config::default(), move |rg| naming_guard(&store, &rg))
        .watches(requests, watcher::Config::default(), move |request| {
            memo_ctx.side.memo.note_request(&request);
            let namespace = request.namespace().unwrap_or_default();
            Some(ObjectRef::new(&request.spec.vault_protection).within(&namespace))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, outcome::error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
