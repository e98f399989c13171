//! Observe: what the VaultProtection names (the vault, the guard, the tenant), what Azure holds (the
//! vault and its link) and the active requests for it. Reads only; a link read is spared when this
//! process read it recently (see [`known_link`]).

use jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};

use super::plan::{self, Elevation, Observed, Plan, Target, region_mismatch};
use super::trust;
use crate::azure::ArmClient;
use crate::azure::guards::GuardId;
use crate::azure::vaults::{self, Link, Vault, VaultId};
use crate::controller::conditions::{LINKED, READY, SOFT_DELETE_SYNCED};
use crate::controller::outcome::{self, Summary};
use crate::controller::{BackupContext, Error, Reason, resource_guard, scope};
use crate::crd::critical_operation_request::{GrantTarget, RequestPhase};
use crate::crd::vault_protection::{VaultProtectionSpec, VaultProtectionStatus, VaultReference};
use crate::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};

/// The vault the spec names.
pub fn vault_id(reference: &VaultReference) -> Option<VaultId> {
    match (
        &reference.id,
        reference.kind,
        &reference.subscription_id,
        &reference.resource_group,
        &reference.name,
    ) {
        (Some(id), ..) => VaultId::parse(id),
        (None, Some(kind), Some(subscription), Some(resource_group), Some(name)) => Some(VaultId {
            kind,
            subscription: subscription.clone(),
            resource_group: resource_group.clone(),
            name: name.clone(),
        }),
        _ => None,
    }
}

/// Resolves the guard reference: a Ready ResourceGuard in the namespace, or an ARM ID. `Err` carries the
/// summary of an object that cannot go on yet. On deletion, a guard that is gone from the cluster is
/// taken from the last status.
pub(super) async fn resolve(
    ctx: &BackupContext,
    vp: &VaultProtection,
    deleting: bool,
) -> Result<Result<(Target, Option<String>), Summary>, Error> {
    let reference = &vp.spec.guard;
    if let Some(id) = &reference.id {
        let Some(id) = GuardId::parse(id) else {
            return Ok(Err(Summary::stalled(
                Reason::GuardNotFound,
                format!("guard.id {id} is not a Resource Guard's ARM ID"),
            )));
        };
        let target = Target {
            id: id.in_tenant(reference.tenant_id.as_deref()),
            region: None,
            description: None,
        };
        return Ok(Ok((target, None)));
    }
    let name = reference.name.clone().unwrap_or_default();
    let namespace = vp.namespace().unwrap_or_default();
    let guards: Api<ResourceGuard> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(rg) = guards.get_opt(&name).await? else {
        let previous = vp
            .status
            .as_ref()
            .and_then(|s| s.guard_id.as_deref())
            .and_then(GuardId::parse);
        if let (true, Some(id)) = (deleting, previous) {
            return Ok(Ok((
                Target {
                    id,
                    region: None,
                    description: None,
                },
                Some(name),
            )));
        }
        return Ok(Err(Summary::stalled(
            Reason::GuardNotFound,
            format!(
                "there is no ResourceGuard {name} in namespace {namespace}: the security admin must create it, or fix guard.name"
            ),
        )));
    };
    let ready = rg.status.as_ref().and_then(|s| s.conditions.get(READY));
    let is_ready = ready.is_some_and(|c| c.status == "True" && c.observed_generation == rg.metadata.generation);
    if !is_ready {
        let why = ready
            .map(|c| format!(" ({}: {})", c.reason, c.message))
            .unwrap_or_default();
        return Ok(Err(Summary::waiting(
            Reason::GuardNotReady,
            format!("waiting for the ResourceGuard {name} to be Ready{why}"),
        )));
    }
    let target = Target {
        id: resource_guard::guard_id(&rg.spec),
        region: Some(rg.spec.region.clone()),
        description: rg.status.as_ref().and_then(|s| s.description.clone()),
    };
    Ok(Ok((target, Some(name))))
}

/// The approved requests for this object, its vault `vault` and its guard `guard` that are active now and
/// not yet used, each checked by the backup side itself ([`trust`]); and why the others that look active
/// cannot be used.
pub(super) async fn active_elevations(
    ctx: &BackupContext,
    arm: &ArmClient,
    vp: &VaultProtection,
    vault: &VaultId,
    guard: &GuardId,
) -> Result<(Vec<Elevation>, Vec<String>), Error> {
    let requests: Api<CriticalOperationRequest> =
        Api::namespaced(ctx.client.clone(), &vp.namespace().unwrap_or_default());
    let now = ctx.clock.now();
    let name = vp.name_any();
    let candidates = requests
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|r| r.spec.vault_protection == name)
        .filter(|r| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == Some(RequestPhase::Active)
                    && s.expires_at.as_ref().is_some_and(|t| t.0 > now)
                    && s.performed_at.is_none()
                    && s.action_failed.is_none()
                    && s.holds_elevation()
                    && s.target
                        .as_ref()
                        .is_some_and(|t| granted_for(t, vp, vault, guard, &r.spec.change()))
            })
        });
    let (mut usable, mut untrusted) = (Vec::new(), Vec::new());
    for request in candidates {
        match trust::verify(ctx, arm, &request, guard, now).await? {
            Ok(()) => usable.push(Elevation {
                request: request.name_any(),
                operation: request.spec.operation,
                action: request.spec.action,
            }),
            Err(why) => {
                let why = format!(
                    "the CriticalOperationRequest {} is not used: {why}; nothing was changed",
                    request.name_any()
                );
                tracing::warn!(vault_protection = %outcome::key(vp), %why, "an elevation failed the backup side's own check");
                untrusted.push(why);
            }
        }
    }
    Ok((usable, untrusted))
}

/// Whether an elevation was granted for this very object (not one deleted before it under the same
/// name), its vault and its guard: an approval for one vault is never used on another.
pub(super) fn granted_for(
    target: &GrantTarget,
    vp: &VaultProtection,
    vault: &VaultId,
    guard: &GuardId,
    change: &str,
) -> bool {
    vp.uid().is_some_and(|uid| {
        target.matches(&GrantTarget {
            vault_protection_uid: uid,
            vault_id: vault.path(),
            guard_id: guard.path(),
            change: change.to_string(),
        })
    })
}

/// The link as the last status recorded it, when reading it again would tell nothing new: the vault
/// still reports MUA on (Recovery Services vaults do), the spec has not changed since, and this process
/// itself read the link to that guard within [`super::memo::LINK_RECHECK`]. This keeps a steady-state resync at one
/// ARM read (the vault).
pub(super) fn known_link(
    ctx: &BackupContext,
    vp: &VaultProtection,
    key: &str,
    vault: &Vault,
    previous: &VaultProtectionStatus,
    was_linked: bool,
) -> Option<Link> {
    let target = GuardId::parse(previous.guard_id.as_deref()?)?;
    let fresh = ctx.side.memo.recently_linked_to(key, &target);
    let unchanged = previous.observed_generation == vp.meta().generation;
    if !(fresh && unchanged && was_linked && vault.multi_user_authorization == Some(true)) {
        return None;
    }
    Some(Link {
        id: String::new(),
        guard_id: target.path(),
        description: previous.guard_description.clone(),
        protected_operations: previous
            .protected_operations
            .iter()
            .map(|o| o.vault_critical_operation.clone())
            .collect(),
    })
}

/// Why a reconcile stopped before it could compare Azure with the spec.
pub enum Stop {
    /// The spec names no vault.
    NoVault(Summary),
    /// The vault is named, but something else is missing (the guard, a credential, the vault itself, the
    /// region). `unlinked`: a deletion may finish (the vault is gone).
    Early {
        id: VaultId,
        summary: Summary,
        unlinked: bool,
    },
}

/// Everything one reconcile saw before it plans.
pub struct Seen {
    pub id: VaultId,
    /// The backup identity this object is handled with (its namespace's own, or the global one).
    pub arm: ArmClient,
    /// The object's `namespace/name`.
    pub key: String,
    pub target: Target,
    /// The ResourceGuard's name, when the spec names one.
    pub guard_name: Option<String>,
    pub observed: Observed,
    /// The status as the reconcile found it.
    pub previous: VaultProtectionStatus,
    /// The last status says the vault was linked to this same guard (a missing link is then drift).
    pub was_linked: bool,
    pub now: Timestamp,
}

impl Seen {
    /// The plan for what was seen.
    pub fn plan(&self, spec: &VaultProtectionSpec, deleting: bool) -> Plan {
        plan::plan(
            spec,
            &self.target.id,
            &self.observed,
            self.was_linked,
            self.previous.conditions.is_true(SOFT_DELETE_SYNCED),
            deleting,
        )
    }
}

/// Reads what the object names and what Azure holds. `Err(Stop)`: the object cannot be compared with
/// Azure yet (and why).
pub async fn observe(ctx: &BackupContext, vp: &VaultProtection, deleting: bool) -> Result<Result<Seen, Stop>, Error> {
    let now = ctx.clock.now();
    let Some(id) = vault_id(&vp.spec.vault) else {
        return Ok(Err(Stop::NoVault(Summary::stalled(
            Reason::VaultNotFound,
            "spec.vault does not name a vault",
        ))));
    };
    let stop = |id: &VaultId, summary, unlinked| {
        Ok(Err(Stop::Early {
            id: id.clone(),
            summary,
            unlinked,
        }))
    };
    let (target, guard_name) = match resolve(ctx, vp, deleting).await? {
        Ok(resolved) => resolved,
        Err(summary) => return stop(&id, summary, false),
    };
    // Nothing outside the namespace's scopes is read or written. A deletion may finish: whatever link
    // there is stays (the vault keeps its protection).
    let scope = scope::of(&ctx.client, &vp.namespace().unwrap_or_default()).await?;
    if let Err(why) = scope
        .may_name("the vault", &id.path())
        .and_then(|()| scope.may_name("the guard", &target.id.path()))
    {
        return stop(&id, Summary::stalled(Reason::OutOfScope, why), deleting);
    }
    // The namespace's own backup identity where it names one, so Azure RBAC bounds the team too.
    let backup = ctx.side.identities.of(&ctx.client, &scope.namespace).await?;
    if let Some(tenant) = target.id.tenant.as_deref()
        && !backup.has_tenant(tenant)
    {
        let summary = Summary::stalled(
            Reason::TenantCredentialMissing,
            format!(
                "the guard is in tenant {tenant} and the backup side has no credential there: the operator's admin must register its application in that tenant and add it to --additional-tenants"
            ),
        );
        return stop(&id, summary, false);
    }
    let Some(vault) = vaults::get(&backup, &id).await? else {
        let summary = Summary::stalled(
            Reason::VaultNotFound,
            format!(
                "the vault {} does not exist, or the backup side's identity cannot see it: create the vault or grant the identity Backup Contributor on it",
                id.path()
            ),
        );
        return stop(&id, summary, deleting);
    };
    if let Some(region) = &target.region
        && !region.eq_ignore_ascii_case(&vault.location)
        && !deleting
    {
        let blocker = region_mismatch(region, &vault.location);
        return stop(&id, Summary::stalled(blocker.reason, blocker.message), false);
    }
    let previous = vp.status.clone().unwrap_or_default();
    let same_guard = previous.guard_id.as_deref().is_some_and(|g| target.id.is(g));
    let was_linked = same_guard && previous.conditions.is_true(LINKED);
    let key = outcome::key(vp);
    let link = if vault.multi_user_authorization == Some(false) {
        // A Recovery Services vault says it has no link (Azure derives the flag from the link).
        None
    } else if let Some(link) = known_link(ctx, vp, &key, &vault, &previous, was_linked && !deleting) {
        Some(link)
    } else {
        let link = vaults::get_link(&backup, &id).await?;
        ctx.side.memo.link_read(&key, link.as_ref());
        link
    };
    Ok(Ok(Seen {
        id,
        arm: backup,
        key,
        target,
        guard_name,
        observed: Observed {
            vault,
            link,
            elevations: Vec::new(),
            untrusted: Vec::new(),
        },
        previous,
        was_linked,
        now,
    }))
}
