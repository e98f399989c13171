//! The VaultProtection reconciler (backup side, its own ARM identity): keeps a vault linked to its
//! guard and its soft-delete settings as declared, restores drift, and never weakens protection —
//! unlinking, disabling soft delete, shortening retention — without an approved, active
//! CriticalOperationRequest. Same shape as every reconciler: observe (reads only) → plan (pure) →
//! apply (typed `azure::*` calls, checks before each write) → status (pure), reported in one place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::outcome::{self, Cleanup, Notice, Outcome, Reported, Requeue, Summary};
use super::{Context, Error, Reason, conditions, critical_operation_request, resource_guard, watch};
use crate::azure::client::ArmClient;
use crate::azure::error::AzureError;
use crate::azure::guards::{self, GuardId};
use crate::azure::vaults::{self, Link, SoftDelete, SoftDeleteChange, Vault, VaultId};
use crate::crd::critical_operation_request::{GrantTarget, RequestAction, RequestPhase};
use crate::crd::resource_guard::ProtectedOperation;
use crate::crd::shared::{Conditions, ManagementPolicy};
use crate::crd::vault_protection::{
    MultiUserAuthorization, SoftDeleteState, VaultDeletionPolicy, VaultProtectionSpec, VaultProtectionStatus,
    VaultReference,
};
use crate::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};
use crate::operations::{CriticalOperation, VaultKind};

const FINALIZER: &str = "mua.dev/vault-protection";
pub const CONTROLLER: &str = "vaultprotection";
/// How long a link read stays good enough to skip while the vault reports MUA on (a link re-pointed by
/// an elevated admin within this window is seen at the next full read).
const LINK_RECHECK: Duration = Duration::from_secs(3600);

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

/// How long a guard read before linking stays good for other vaults linking to the same guard.
const GUARD_FACTS_TTL: Duration = Duration::from_secs(300);

/// What the controller remembers between reconciles to spare ARM reads (never what it decides on alone:
/// a write that finds Azure otherwise is checked again).
#[derive(Default)]
pub struct Memo {
    /// When each object's link was last read from Azure, and the guard it named (see [`known_link`]).
    link_reads: Mutex<HashMap<String, (Instant, Option<String>)>>,
    /// Guards the backup identity could read, by lowercase ARM ID and tenant: region and description.
    /// Many vaults linking to one guard read it once.
    guards: Mutex<HashMap<GuardKey, (Instant, GuardFacts)>>,
    /// Requests with an action to perform, by `namespace/name`, naming their VaultProtection's key, as
    /// the watch last saw them: only objects named here list their requests on every reconcile.
    actions: Mutex<HashMap<String, String>>,
}

/// A guard's lowercase ARM ID and the tenant it is read from.
type GuardKey = (String, Option<String>);

#[derive(Clone, Debug)]
struct GuardFacts {
    location: String,
    description: Option<String>,
}

impl Memo {
    /// Notes whether `request` has an action waiting to be performed (Active, not yet performed or failed).
    pub fn note_request(&self, request: &CriticalOperationRequest) {
        let namespace = request.namespace().unwrap_or_default();
        let waiting = request.spec.action.is_some()
            && request.status.as_ref().is_some_and(|s| {
                s.phase == Some(RequestPhase::Active) && s.performed_at.is_none() && s.action_failed.is_none()
            });
        let key = format!("{namespace}/{}", request.name_any());
        let mut actions = self.actions.lock().expect("memo lock");
        if waiting {
            actions.insert(key, format!("{namespace}/{}", request.spec.vault_protection));
        } else {
            actions.remove(&key);
        }
    }

    fn has_action(&self, key: &str) -> bool {
        self.actions.lock().expect("memo lock").values().any(|vp| vp == key)
    }

    pub fn forget(&self, key: &str) {
        self.link_reads.lock().expect("memo lock").remove(key);
    }

    fn link_read(&self, key: &str, link: Option<&Link>) {
        let guard = link.map(|l| l.guard_id.clone());
        self.link_reads
            .lock()
            .expect("memo lock")
            .insert(key.to_string(), (Instant::now(), guard));
    }

    /// Whether this process read, within [`LINK_RECHECK`], that the object's vault is linked to `guard`:
    /// the operator's own reading, never what a status (which others could write) claims.
    fn recently_linked_to(&self, key: &str, guard: &GuardId) -> bool {
        let reads = self.link_reads.lock().expect("memo lock");
        reads.get(key).is_some_and(|(read, linked)| {
            read.elapsed() < LINK_RECHECK && linked.as_deref().is_some_and(|g| guard.is(g))
        })
    }

    fn guard(&self, id: &GuardId) -> Option<GuardFacts> {
        let guards = self.guards.lock().expect("memo lock");
        let (read, facts) = guards.get(&(id.path().to_ascii_lowercase(), id.tenant.clone()))?;
        (read.elapsed() < GUARD_FACTS_TTL).then(|| facts.clone())
    }

    fn remember_guard(&self, id: &GuardId, facts: GuardFacts) {
        let mut guards = self.guards.lock().expect("memo lock");
        guards.retain(|_, (read, _)| read.elapsed() < GUARD_FACTS_TTL);
        guards.insert(
            (id.path().to_ascii_lowercase(), id.tenant.clone()),
            (Instant::now(), facts),
        );
    }
}

/// The guard the spec names, as far as it could be resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub id: GuardId,
    /// The guard's region when the cluster knows it (a ResourceGuard's spec); otherwise read from Azure
    /// before linking.
    pub region: Option<String>,
    /// How to ask for access (the ResourceGuard's status, else what the link echoes).
    pub description: Option<String>,
}

/// A weakening the operator may perform now: an approved request that is active.
#[derive(Clone, Debug, PartialEq)]
pub struct Elevation {
    pub request: String,
    pub operation: CriticalOperation,
    /// What the request says to do, for the optional operations the operator performs itself.
    pub action: Option<RequestAction>,
}

/// What the operator saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub vault: Vault,
    pub link: Option<Link>,
    /// Active, approved requests for this object, by operation.
    pub elevations: Vec<Elevation>,
}

/// Why the object cannot be converged until something happens.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocker {
    pub reason: Reason,
    pub message: String,
}

impl Blocker {
    fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// One write the plan calls for.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Link the vault to the guard (after checking Reader and region).
    Link { restore: bool },
    /// Make soft delete stronger (no elevation needed).
    StrengthenSoftDelete { change: SoftDeleteChange, restore: bool },
    /// Make soft delete weaker: under an active elevation (`request`), citing the guard's request object,
    /// or without one on a vault that is not under MUA.
    WeakenSoftDelete {
        change: SoftDeleteChange,
        request: Option<String>,
    },
    /// Remove the link under an active elevation.
    Unlink { request: String },
    /// Perform what the request says (a policy, an item) under its active elevation.
    Perform { request: String, action: RequestAction },
}

/// The plan: writes to make, and what keeps the rest from converging.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Waiting for an elevation (the operation to request).
    pub elevation_required: Vec<CriticalOperation>,
    pub blockers: Vec<Blocker>,
    /// Differences found (for `Observe`, and for drift Events).
    pub drift: Vec<String>,
}

fn linked_to_other(link: &Link, target: &GuardId) -> Blocker {
    Blocker::new(
        Reason::LinkedToOtherGuard,
        format!(
            "the vault is linked to the guard {}, not to {}; nothing is re-pointed without an approved DisableMultiUserAuthorization on that guard: the backup admin either names that guard here or asks its security admin to unlink it",
            link.guard_id,
            target.path()
        ),
    )
}

fn elevation_for(observed: &Observed, operation: CriticalOperation) -> Option<String> {
    observed
        .elevations
        .iter()
        .find(|e| e.operation == operation && e.action.is_none())
        .map(|e| e.request.clone())
}

/// What the vault's soft delete should become, when the spec manages it.
fn wanted_soft_delete(spec: &VaultProtectionSpec) -> Option<SoftDeleteChange> {
    let soft_delete = spec.soft_delete.as_ref()?;
    let state = match soft_delete.state {
        SoftDeleteState::Enabled => SoftDelete::Enabled,
        SoftDeleteState::AlwaysOn => SoftDelete::AlwaysOn,
        SoftDeleteState::Disabled => SoftDelete::Disabled,
    };
    Some(SoftDeleteChange {
        state,
        retention_days: soft_delete.retention_days.map(|d| d.max(0) as u32),
    })
}

/// Compares the spec with Azure. Pure: every case is a unit test. `was_linked` and
/// `soft_delete_was_synced` come from the previous status, to tell drift from a first convergence.
pub fn plan(
    spec: &VaultProtectionSpec,
    target: &GuardId,
    observed: &Observed,
    was_linked: bool,
    soft_delete_was_synced: bool,
    deleting: bool,
) -> Plan {
    let mut plan = Plan::default();
    let want_linked = spec.multi_user_authorization == MultiUserAuthorization::Enabled && !deleting;
    let unlink_on_delete = deleting && spec.deletion_policy == VaultDeletionPolicy::Unlink;
    let linked_to_target = observed.link.as_ref().is_some_and(|l| target.is(&l.guard_id));

    match &observed.link {
        Some(link) if !linked_to_target => plan.blockers.push(linked_to_other(link, target)),
        Some(_) if !want_linked && (!deleting || unlink_on_delete) => {
            match elevation_for(observed, CriticalOperation::DisableMultiUserAuthorization) {
                Some(request) => plan.steps.push(Step::Unlink { request }),
                None => plan
                    .elevation_required
                    .push(CriticalOperation::DisableMultiUserAuthorization),
            }
            plan.drift.push("the vault is linked".into());
        }
        None if want_linked => {
            plan.steps.push(Step::Link { restore: was_linked });
            plan.drift.push("the vault is not linked to the guard".into());
        }
        _ => {}
    }

    if let Some(wanted) = wanted_soft_delete(spec).filter(|_| !deleting) {
        let current = observed.vault.soft_delete;
        let state = current.map(|s| s.state);
        let retention = current.and_then(|s| s.retention_days);
        let state_differs = state != Some(wanted.state);
        let retention_differs = wanted.retention_days.is_some() && retention != wanted.retention_days;
        let shorter = matches!((wanted.retention_days, retention), (Some(w), Some(r)) if w < r);
        if state == Some(SoftDelete::AlwaysOn) && (wanted.state != SoftDelete::AlwaysOn || shorter) {
            // Treated as locked in full: neither the state nor the retention is ever reduced.
            plan.blockers.push(Blocker::new(
                Reason::AlwaysOnCannotBeWeakened,
                "soft delete is AlwaysOn in Azure: it can never be turned off, set back to Enabled or given a shorter retention; set softDelete.state: AlwaysOn and a retention at least as long as the vault's",
            ));
        } else if state_differs || retention_differs {
            plan.drift.push(format!(
                "soft delete is {} with {} days of retention",
                state.map_or("unknown".to_string(), |s| format!("{s:?}")),
                retention.map_or("unknown".to_string(), |d| d.to_string())
            ));
            let weaker_state = state.is_some_and(|s| wanted.state < s);
            let protected = observed.link.is_some() || want_linked;
            if (weaker_state || shorter) && protected {
                match elevation_for(observed, CriticalOperation::DisableSoftDelete) {
                    Some(request) => plan.steps.push(Step::WeakenSoftDelete {
                        change: wanted,
                        request: Some(request),
                    }),
                    None => plan.elevation_required.push(CriticalOperation::DisableSoftDelete),
                }
            } else if weaker_state || shorter {
                // An unlinked vault is not under MUA: Azure lets its owner weaken it.
                plan.steps.push(Step::WeakenSoftDelete {
                    change: wanted,
                    request: None,
                });
            } else {
                plan.steps.push(Step::StrengthenSoftDelete {
                    change: wanted,
                    restore: soft_delete_was_synced,
                });
            }
        }
    }
    // What requests say to do is done once, under their own elevation; never while deleting.
    if !deleting {
        for elevation in &observed.elevations {
            if let Some(action) = &elevation.action {
                plan.steps.push(Step::Perform {
                    request: elevation.request.clone(),
                    action: action.clone(),
                });
            }
        }
    }
    plan
}

/// How a check before a write, or a write, came out.
#[derive(Default)]
struct Applied {
    /// The link as it is after the writes.
    link: Option<Link>,
    /// The soft-delete state as it is after the writes.
    soft_delete: Option<vaults::SoftDeleteSettings>,
    /// The guard's description, when the pre-link read found one.
    description: Option<String>,
    blockers: Vec<Blocker>,
    notices: Vec<Notice>,
}

/// Checks what linking needs (the guard exists, the backup identity can read it, same region); returns
/// the guard's description, or why the link cannot be made. Reads only.
async fn check_guard(ctx: &Context, target: &Target, vault: &Vault) -> Result<Result<Option<String>, Blocker>, Error> {
    let facts = match ctx.vault_memo.guard(&target.id) {
        Some(facts) => facts,
        None => match read_guard(ctx, target).await? {
            Ok(facts) => {
                ctx.vault_memo.remember_guard(&target.id, facts.clone());
                facts
            }
            Err(blocker) => return Ok(Err(blocker)),
        },
    };
    if !facts.location.eq_ignore_ascii_case(&vault.location) {
        return Ok(Err(region_mismatch(&facts.location, &vault.location)));
    }
    Ok(Ok(facts.description))
}

/// Reads the guard with the backup identity (from the guard's tenant).
async fn read_guard(ctx: &Context, target: &Target) -> Result<Result<GuardFacts, Blocker>, Error> {
    let guard = match guards::get(ctx.backup(), &target.id).await {
        Ok(Some(guard)) => guard,
        Ok(None) => {
            return Ok(Err(Blocker::new(
                Reason::GuardNotFound,
                format!(
                    "the Resource Guard {} does not exist in Azure; its security admin must create it, or fix the guard reference",
                    target.id.path()
                ),
            )));
        }
        Err(err) if err.status() == Some(403) => return Ok(Err(reader_missing(ctx, target))),
        Err(err) => return Err(err.into()),
    };
    Ok(Ok(GuardFacts {
        location: guard.location,
        description: guard.description,
    }))
}

fn reader_missing(ctx: &Context, target: &Target) -> Blocker {
    let tenant = target.id.tenant.as_deref().unwrap_or(ctx.backup().home_tenant());
    Blocker::new(
        Reason::ReaderRoleMissing,
        format!(
            "the backup side's Azure identity cannot read the Resource Guard {} (tenant {tenant}); the guard's security admin must grant it the Reader role on the guard",
            target.id.path()
        ),
    )
}

fn region_mismatch(guard: &str, vault: &str) -> Blocker {
    Blocker::new(
        Reason::RegionMismatch,
        format!(
            "the guard is in {guard} and the vault in {vault}: a vault can only link to a guard in its own region; name a guard in {vault}"
        ),
    )
}

/// Carries the plan's steps out, checking before each write; stops at the first step that cannot be
/// made.
async fn apply(
    ctx: &Context,
    key: &str,
    id: &VaultId,
    target: &Target,
    observed: &Observed,
    plan: &Plan,
) -> Result<Applied, Error> {
    let backup = ctx.backup();
    let mut applied = Applied {
        link: observed.link.clone(),
        soft_delete: observed.vault.soft_delete,
        ..Default::default()
    };
    for step in &plan.steps {
        match step {
            Step::Link { restore } => {
                match check_guard(ctx, target, &observed.vault).await? {
                    Ok(description) => applied.description = description,
                    Err(blocker) => {
                        applied.blockers.push(blocker);
                        break;
                    }
                }
                let link = match vaults::link(backup, id, &target.id).await {
                    Ok(link) => link,
                    Err(err) if err.status() == Some(403) => {
                        applied.blockers.push(reader_missing(ctx, target));
                        break;
                    }
                    // Linked meanwhile (or the vault's MUA flag was stale): look at the link itself.
                    Err(err) if err.status() == Some(409) => match vaults::get_link(backup, id).await? {
                        Some(link) if target.id.is(&link.guard_id) => link,
                        Some(other) => {
                            applied.blockers.push(linked_to_other(&other, &target.id));
                            applied.link = Some(other);
                            break;
                        }
                        None => return Err(err.into()),
                    },
                    Err(err) => return Err(err.into()),
                };
                applied.notices.push(if *restore {
                    Notice::warning(
                        "LinkRestored",
                        format!(
                            "the vault's link to the guard {} was removed outside the operator; restored it",
                            target.id.path()
                        ),
                    )
                } else {
                    Notice::normal("Linked", format!("linked the vault to the guard {}", target.id.path()))
                });
                // Linking read (or wrote) the link: the next look need not read it again.
                ctx.vault_memo.link_read(key, Some(&link));
                applied.link = Some(link);
            }
            Step::StrengthenSoftDelete { change, restore } => {
                vaults::set_soft_delete(backup, id, *change, None).await?;
                let before = describe_soft_delete(observed.vault.soft_delete);
                applied.notices.push(if *restore {
                    Notice::warning(
                        "SoftDeleteRestored",
                        format!(
                            "soft delete was changed outside the operator ({before}); restored it to {}",
                            describe_change(change)
                        ),
                    )
                } else {
                    Notice::normal(
                        "SoftDeleteUpdated",
                        format!("set soft delete to {}", describe_change(change)),
                    )
                });
                applied.soft_delete = Some(settings(change, observed.vault.soft_delete));
            }
            Step::WeakenSoftDelete { change, request } => {
                let guard = request.as_ref().map(|_| &target.id);
                vaults::set_soft_delete(backup, id, *change, guard).await?;
                if let Some(request) = request {
                    record_performed(ctx, key, request).await?;
                }
                let note = match request {
                    Some(request) => format!(
                        "set soft delete to {} under the CriticalOperationRequest {request} (DisableSoftDelete)",
                        describe_change(change)
                    ),
                    None => format!(
                        "set soft delete to {} (the vault is not under MUA)",
                        describe_change(change)
                    ),
                };
                applied.notices.push(Notice::normal("CriticalOperationPerformed", note));
                applied.soft_delete = Some(settings(change, observed.vault.soft_delete));
            }
            Step::Unlink { request } => {
                vaults::unlink(backup, id, &target.id).await?;
                record_performed(ctx, key, request).await?;
                applied.notices.push(Notice::normal(
                    "CriticalOperationPerformed",
                    format!(
                        "removed the vault's link to the guard {} under the CriticalOperationRequest {request} (DisableMultiUserAuthorization)",
                        target.id.path()
                    ),
                ));
                applied.link = None;
            }
            Step::Perform { request, action } => match perform(backup, id, &target.id, action).await? {
                Ok(done) => {
                    record_performed(ctx, key, request).await?;
                    let operation = action.operation();
                    tracing::info!(object = %key, %request, %operation, "performed: {done}");
                    applied.notices.push(Notice::normal(
                        "CriticalOperationPerformed",
                        format!("{done} under the CriticalOperationRequest {request} ({operation})"),
                    ));
                }
                Err(why) => {
                    // Final: the request fails (and its elevation ends) rather than being tried again.
                    record_action_failed(ctx, key, request, &why).await?;
                    tracing::warn!(object = %key, %request, "could not {}: {why}", action.describe());
                    let message = format!(
                        "could not {} under the CriticalOperationRequest {request}: {why}",
                        action.describe()
                    );
                    applied
                        .notices
                        .push(Notice::warning("CriticalOperationFailed", message.clone()));
                    applied.blockers.push(Blocker::new(Reason::AzureRejected, message));
                }
            },
        }
    }
    Ok(applied)
}

/// Performs a request's action with the typed ARM calls, citing the guard. `Ok(Ok)`: what was done;
/// `Ok(Err)`: why it cannot be done as written (Azure refused it as invalid, or what it names is not
/// there), which no retry changes. Reads first, so a missing policy or item changes nothing.
async fn perform(
    backup: &ArmClient,
    id: &VaultId,
    guard: &GuardId,
    action: &RequestAction,
) -> Result<Result<String, String>, Error> {
    if id.kind != VaultKind::RecoveryServicesVault {
        return Ok(Err(
            "actions are for Recovery Services vaults; on a Backup vault, request the operation with a principal and do it by hand".into(),
        ));
    }
    let result: Result<Result<String, String>, AzureError> = async {
        if let Some(change) = &action.modify_backup_policy {
            if !is_name(&change.name) {
                return Ok(Err(format!("{} is not a backup policy's name", change.name)));
            }
            if vaults::get_policy(backup, id, &change.name).await?.is_none() {
                return Ok(Err(format!("the vault has no backup policy {}", change.name)));
            }
            vaults::put_policy(backup, id, &change.name, &change.policy, guard).await?;
            return Ok(Ok(format!("replaced the backup policy {}", change.name)));
        }
        if let Some(change) = &action.modify_protection {
            if !is_item_path(&change.item) {
                return Ok(Err(not_an_item_path(&change.item)));
            }
            let Some(item) = vaults::get_item(backup, id, &change.item).await? else {
                return Ok(Err(format!("the vault has no protected item {}", change.item)));
            };
            if !is_name(&change.policy) {
                return Ok(Err(format!("{} is not a backup policy's name", change.policy)));
            }
            let Some(policy) = vaults::get_policy(backup, id, &change.policy).await? else {
                return Ok(Err(format!("the vault has no backup policy {}", change.policy)));
            };
            vaults::set_item_policy(backup, id, &item, &policy.id, guard).await?;
            return Ok(Ok(format!(
                "moved the protected item {} to the backup policy {}",
                change.item, change.policy
            )));
        }
        if let Some(stop) = &action.stop_protection_with_delete_data {
            if !is_item_path(&stop.item) {
                return Ok(Err(not_an_item_path(&stop.item)));
            }
            let Some(item) = vaults::get_item(backup, id, &stop.item).await? else {
                return Ok(Err(format!("the vault has no protected item {}", stop.item)));
            };
            vaults::delete_item(backup, id, &item, guard).await?;
            return Ok(Ok(format!(
                "stopped protecting {} and deleted its backup data",
                stop.item
            )));
        }
        Ok(Err("the action names nothing to do".to_string()))
    }
    .await;
    match result {
        Ok(done) => Ok(done),
        // Invalid as written (a bad policy body, a name Azure does not know): final.
        Err(err) if matches!(err.status(), Some(400 | 404)) => Ok(Err(format!("Azure refused it: {err}"))),
        Err(err) => Err(err.into()),
    }
}

fn settings(change: &SoftDeleteChange, before: Option<vaults::SoftDeleteSettings>) -> vaults::SoftDeleteSettings {
    vaults::SoftDeleteSettings {
        state: change.state,
        retention_days: change.retention_days.or(before.and_then(|b| b.retention_days)),
    }
}

fn describe_change(change: &SoftDeleteChange) -> String {
    match change.retention_days {
        Some(days) => format!("{:?} with {days} days of retention", change.state),
        None => format!("{:?}", change.state),
    }
}

fn describe_soft_delete(settings: Option<vaults::SoftDeleteSettings>) -> String {
    match settings {
        Some(s) => describe_change(&SoftDeleteChange {
            state: s.state,
            retention_days: s.retention_days,
        }),
        None => "unknown".into(),
    }
}

/// Everything the status reports, gathered from the observation and the writes.
pub struct View<'a> {
    pub vault_id: &'a VaultId,
    pub target: Option<&'a Target>,
    pub guard_name: Option<&'a str>,
    pub vault: Option<&'a Vault>,
    pub link: Option<&'a Link>,
    pub soft_delete: Option<vaults::SoftDeleteSettings>,
    pub linked: (bool, Reason, String),
    pub soft_delete_synced: (bool, Reason, String),
    pub synced: (bool, Reason, String),
}

/// The status that reports `view`. Pure.
pub fn status(
    view: &View,
    previous: &VaultProtectionStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> VaultProtectionStatus {
    let kind = view.vault_id.kind;
    let mut status = VaultProtectionStatus {
        conditions: previous.conditions.clone(),
        vault_id: Some(view.vault.map_or_else(|| view.vault_id.path(), |v| v.id.clone())),
        vault_name: Some(view.vault_id.name.clone()),
        region: view.vault.map(|v| v.location.clone()),
        guard_id: view.target.map(|t| t.id.path()),
        guard_name: view
            .guard_name
            .map(str::to_string)
            .or_else(|| view.target.map(|t| t.id.name.clone())),
        guard_description: view
            .target
            .and_then(|t| t.description.clone())
            .or_else(|| view.link.and_then(|l| l.description.clone())),
        // What Azure reports once the writes are done: a vault is under MUA while it has a link.
        multi_user_authorization: view
            .vault
            .map(|_| if view.link.is_some() { "Enabled" } else { "Disabled" }.to_string()),
        soft_delete_state: view.soft_delete.map(|s| s.state.azure_name(kind).to_string()),
        protected_operations: view.link.map(|l| protected_operations(kind, l)).unwrap_or_default(),
        ..Default::default()
    };
    for (type_, (ok, reason, message)) in [
        ("Linked", &view.linked),
        ("SoftDeleteSynced", &view.soft_delete_synced),
        ("Synced", &view.synced),
    ] {
        conditions::set(&mut status.conditions, type_, *ok, *reason, message, generation, now);
    }
    status
}

/// The operations a link says the guard protects: the live service names the vault operation; links
/// recorded as the older REST examples show them name the guard's request type instead.
fn protected_operations(kind: VaultKind, link: &Link) -> Vec<ProtectedOperation> {
    link.protected_operations
        .iter()
        .map(|name| {
            let request_type = name.rsplit('/').next().unwrap_or_default();
            let operation = CriticalOperation::from_azure(name).or_else(|| {
                CriticalOperation::all().find(|op| {
                    op.on(kind)
                        .and_then(|a| a.request_type)
                        .is_some_and(|rt| rt.eq_ignore_ascii_case(request_type))
                })
            });
            ProtectedOperation {
                operation,
                vault_critical_operation: name.clone(),
                request_resource_type: None,
            }
        })
        .collect()
}

/// Resolves the guard reference: a Ready ResourceGuard in the namespace, or an ARM ID. `Err` carries the
/// summary of an object that cannot go on yet. On deletion, a guard that is gone from the cluster is
/// taken from the last status.
async fn resolve(
    ctx: &Context,
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
    let ready = rg.status.as_ref().and_then(|s| s.conditions.get("Ready"));
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

/// Records on the request that its operation was performed, so the security side ends the elevation at
/// once and the request is never used again (single use).
async fn record_performed(ctx: &Context, key: &str, request: &str) -> Result<(), Error> {
    record_on_request(
        ctx,
        key,
        request,
        serde_json::json!({"performedAt": Time(ctx.clock.now())}),
    )
    .await
}

/// Writes what the backup side found into a request's status, as the operator.
async fn record_on_request(ctx: &Context, key: &str, request: &str, status: serde_json::Value) -> Result<(), Error> {
    let namespace = key.split('/').next().unwrap_or_default();
    let api: Api<CriticalOperationRequest> = Api::namespaced(ctx.client.clone(), namespace);
    api.patch_status(
        request,
        &PatchParams {
            field_manager: Some(outcome::FIELD_MANAGER.to_string()),
            ..Default::default()
        },
        &Patch::Merge(&serde_json::json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// Whether `item` is a protected item's path under the vault, as the CRD's rule requires. Checked again
/// here so that a CRD installed without its rules cannot point a write or a delete outside the vault.
fn is_item_path(item: &str) -> bool {
    let parts: Vec<&str> = item.split('/').collect();
    let fixed = ["backupFabrics", "protectionContainers", "protectedItems"];
    parts.len() == 6
        && fixed
            .iter()
            .enumerate()
            .all(|(i, name)| parts[2 * i].eq_ignore_ascii_case(name))
        && parts.iter().skip(1).step_by(2).all(|name| is_name(name))
}

/// One name in a path under the vault (a fabric, container, item or policy): never `.`, `..`, empty, or
/// holding a character that would point the call elsewhere.
fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric()) && !name.contains(['/', '?', '#', '%', '\\'])
}

fn not_an_item_path(item: &str) -> String {
    format!(
        "{item} is not a protected item's path under the vault (backupFabrics/{{fabric}}/protectionContainers/{{container}}/protectedItems/{{item}})"
    )
}

/// Records on the request that its action cannot be performed, so the security side fails it and ends
/// the elevation at once.
async fn record_action_failed(ctx: &Context, key: &str, request: &str, why: &str) -> Result<(), Error> {
    record_on_request(ctx, key, request, serde_json::json!({"actionFailed": why})).await
}

/// The approved requests for this object, its vault `vault` and its guard `guard` that are active now and
/// not yet used.
async fn active_elevations(
    ctx: &Context,
    vp: &VaultProtection,
    vault: &VaultId,
    guard: &GuardId,
) -> Result<Vec<Elevation>, Error> {
    let requests: Api<CriticalOperationRequest> =
        Api::namespaced(ctx.client.clone(), &vp.namespace().unwrap_or_default());
    let now = ctx.clock.now();
    let name = vp.name_any();
    Ok(requests
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
                    && critical_operation_request::holds_elevation(s)
                    && s.target.as_ref().is_some_and(|t| granted_for(t, vp, vault, guard))
            })
        })
        .map(|r| Elevation {
            request: r.name_any(),
            operation: r.spec.operation,
            action: r.spec.action,
        })
        .collect())
}

/// Whether an elevation was granted for this very object (not one deleted before it under the same
/// name), its vault and its guard: an approval for one vault is never used on another.
fn granted_for(target: &GrantTarget, vp: &VaultProtection, vault: &VaultId, guard: &GuardId) -> bool {
    vp.uid().is_some_and(|uid| {
        target.matches(&GrantTarget {
            vault_protection_uid: uid,
            vault_id: vault.path(),
            guard_id: guard.path(),
        })
    })
}

/// The link as the last status recorded it, when reading it again would tell nothing new: the vault
/// still reports MUA on (Recovery Services vaults do), the spec has not changed since, and this process
/// itself read the link to that guard within [`LINK_RECHECK`]. This keeps a steady-state resync at one
/// ARM read (the vault).
fn known_link(
    ctx: &Context,
    vp: &VaultProtection,
    key: &str,
    vault: &Vault,
    previous: &VaultProtectionStatus,
    was_linked: bool,
) -> Option<Link> {
    let target = GuardId::parse(previous.guard_id.as_deref()?)?;
    let fresh = ctx.vault_memo.recently_linked_to(key, &target);
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

/// A status for an object that stopped before it could compare Azure with the spec. What it last saw
/// of Azure (`Linked`, `SoftDeleteSynced`, the vault and guard fields) stays as it was: not having
/// looked is no evidence that anything changed, and the security side relies on `Linked`.
fn early(ctx: &Context, vp: &VaultProtection, id: &VaultId, summary: Summary) -> Outcome<VaultProtectionStatus> {
    let now = ctx.clock.now();
    let mut status = vp.status.clone().unwrap_or_default();
    status.vault_id.get_or_insert_with(|| id.path());
    status.vault_name.get_or_insert_with(|| id.name.clone());
    let generation = vp.meta().generation;
    for type_ in ["Linked", "SoftDeleteSynced"] {
        if status.conditions.get(type_).is_none() {
            conditions::set(
                &mut status.conditions,
                type_,
                false,
                summary.reason,
                &summary.message,
                generation,
                now,
            );
        }
    }
    conditions::set(
        &mut status.conditions,
        "Synced",
        false,
        summary.reason,
        &summary.message,
        generation,
        now,
    );
    let requeue = match summary.health {
        super::Health::Waiting => Requeue::After(ctx.config.waiting_retry),
        _ => Requeue::Resync,
    };
    Outcome {
        status,
        summary,
        requeue,
        notices: Vec::new(),
    }
}

/// observe → plan → apply → status. The flag says whether the object's link is gone (a deletion may
/// finish).
async fn converge(
    ctx: &Context,
    vp: &VaultProtection,
    deleting: bool,
) -> Result<(Outcome<VaultProtectionStatus>, bool), Error> {
    let now = ctx.clock.now();
    let spec = &vp.spec;
    let Some(id) = vault_id(&spec.vault) else {
        let summary = Summary::stalled(Reason::VaultNotFound, "spec.vault does not name a vault");
        return Ok((
            Outcome {
                status: vp.status.clone().unwrap_or_default(),
                summary,
                requeue: Requeue::OnChange,
                notices: Vec::new(),
            },
            true,
        ));
    };
    // Observe: the guard reference, the tenant, the vault and its link.
    let (target, guard_name) = match resolve(ctx, vp, deleting).await? {
        Ok(resolved) => resolved,
        Err(summary) => return Ok((early(ctx, vp, &id, summary), false)),
    };
    let guard_name = guard_name.as_deref();
    if let Some(tenant) = target.id.tenant.as_deref()
        && !ctx.backup().has_tenant(tenant)
    {
        let summary = Summary::stalled(
            Reason::TenantCredentialMissing,
            format!(
                "the guard is in tenant {tenant} and the backup side has no credential there: the operator's admin must register its application in that tenant and add it to --additional-tenants"
            ),
        );
        return Ok((early(ctx, vp, &id, summary), false));
    }
    let backup = ctx.backup();
    let Some(vault) = vaults::get(backup, &id).await? else {
        let summary = Summary::stalled(
            Reason::VaultNotFound,
            format!(
                "the vault {} does not exist, or the backup side's identity cannot see it: create the vault or grant the identity Backup Contributor on it",
                id.path()
            ),
        );
        return Ok((early(ctx, vp, &id, summary), deleting));
    };
    if let Some(region) = &target.region
        && !region.eq_ignore_ascii_case(&vault.location)
        && !deleting
    {
        let blocker = region_mismatch(region, &vault.location);
        let summary = Summary::stalled(blocker.reason, blocker.message);
        return Ok((early(ctx, vp, &id, summary), false));
    }
    let previous = vp.status.clone().unwrap_or_default();
    let same_guard = previous.guard_id.as_deref().is_some_and(|g| target.id.is(g));
    let was_linked = same_guard && previous.conditions.is_true("Linked");
    let key = outcome::key(vp);
    let link = if vault.multi_user_authorization == Some(false) {
        // A Recovery Services vault says it has no link (Azure derives the flag from the link).
        None
    } else if let Some(link) = known_link(ctx, vp, &key, &vault, &previous, was_linked && !deleting) {
        Some(link)
    } else {
        let link = vaults::get_link(backup, &id).await?;
        ctx.vault_memo.link_read(&key, link.as_ref());
        link
    };
    let mut observed = Observed {
        vault,
        link,
        elevations: Vec::new(),
    };

    // Plan; elevations are looked up only when a weakening is wanted.
    let soft_delete_was_synced = previous.conditions.is_true("SoftDeleteSynced");
    let manage = spec.management_policy == ManagementPolicy::Manage;
    let mut plan = plan(
        spec,
        &target.id,
        &observed,
        was_linked,
        soft_delete_was_synced,
        deleting,
    );
    if manage && (!plan.elevation_required.is_empty() || ctx.vault_memo.has_action(&key)) {
        observed.elevations = active_elevations(ctx, vp, &id, &target.id).await?;
        plan = self::plan(
            spec,
            &target.id,
            &observed,
            was_linked,
            soft_delete_was_synced,
            deleting,
        );
    }

    // Apply (only under Manage).
    let mut applied = if manage {
        apply(ctx, &key, &id, &target, &observed, &plan).await?
    } else {
        Applied {
            link: observed.link.clone(),
            soft_delete: observed.vault.soft_delete,
            ..Default::default()
        }
    };
    let mut blockers = plan.blockers.clone();
    blockers.append(&mut applied.blockers);
    let mut target = target;
    if target.description.is_none() {
        target.description = applied.description.clone();
    }

    // Status (pure).
    let linked_now = applied.link.as_ref().is_some_and(|l| target.id.is(&l.guard_id));
    let assessment = assess(spec, &target, &plan, &applied, &blockers, deleting);
    let mut notices = std::mem::take(&mut applied.notices);
    if !manage && !plan.drift.is_empty() {
        notices.push(Notice::warning("Drifted", assessment.synced.2.clone()));
    }
    let view = View {
        vault_id: &id,
        target: Some(&target),
        guard_name,
        vault: Some(&observed.vault),
        link: applied.link.as_ref(),
        soft_delete: applied.soft_delete,
        linked: assessment.linked,
        soft_delete_synced: assessment.soft_delete_synced,
        synced: assessment.synced,
    };
    let unlinked = !linked_now;
    let outcome = Outcome {
        status: status(&view, &previous, vp.meta().generation, now),
        summary: assessment.summary,
        requeue: Requeue::Resync,
        notices,
    };
    Ok((outcome, unlinked))
}

/// The conditions and the summary after the writes: what is linked, whether soft delete is as declared,
/// whether Azure matches the spec, and what (if anything) must happen next. Pure.
struct Assessment {
    linked: (bool, Reason, String),
    soft_delete_synced: (bool, Reason, String),
    synced: (bool, Reason, String),
    summary: Summary,
}

fn assess(
    spec: &VaultProtectionSpec,
    target: &Target,
    plan: &Plan,
    applied: &Applied,
    blockers: &[Blocker],
    deleting: bool,
) -> Assessment {
    let linked_now = applied.link.as_ref().is_some_and(|l| target.id.is(&l.guard_id));
    let manage = spec.management_policy == ManagementPolicy::Manage;
    let wants_link = spec.multi_user_authorization == MultiUserAuthorization::Enabled;
    let drifted = |what: &str| {
        (
            false,
            Reason::Drifted,
            format!("{what}; managementPolicy is Observe, so nothing was changed"),
        )
    };
    let elevation = |op: CriticalOperation| {
        (
            Reason::ElevationRequired,
            format!(
                "{op} is a critical operation: it waits for an approved, active CriticalOperationRequest for {op} on this VaultProtection"
            ),
        )
    };
    let blocker = blockers.first();
    let linked = if plan
        .elevation_required
        .contains(&CriticalOperation::DisableMultiUserAuthorization)
        && linked_now
    {
        let (reason, message) = elevation(CriticalOperation::DisableMultiUserAuthorization);
        (true, reason, message)
    } else if linked_now {
        (
            true,
            Reason::InSync,
            format!("the vault is linked to the guard {}", target.id.path()),
        )
    } else if !wants_link && applied.link.is_none() {
        (
            false,
            Reason::InSync,
            "multi-user authorization is disabled, as declared".to_string(),
        )
    } else if let Some(b) = blocker {
        (false, b.reason, b.message.clone())
    } else {
        drifted("the vault is not linked to the guard")
    };
    let wanted = wanted_soft_delete(spec);
    let soft_delete_synced = match wanted {
        None => (
            true,
            Reason::InSync,
            "soft delete is not managed by this object".to_string(),
        ),
        Some(_) if blockers.iter().any(|b| b.reason == Reason::AlwaysOnCannotBeWeakened) => {
            let b = blockers
                .iter()
                .find(|b| b.reason == Reason::AlwaysOnCannotBeWeakened)
                .expect("found above");
            (false, b.reason, b.message.clone())
        }
        Some(_) if plan.elevation_required.contains(&CriticalOperation::DisableSoftDelete) => {
            let (reason, message) = elevation(CriticalOperation::DisableSoftDelete);
            (false, reason, message)
        }
        Some(w)
            if applied.soft_delete.is_some_and(|s| {
                s.state == w.state && w.retention_days.is_none_or(|d| s.retention_days == Some(d))
            }) =>
        {
            (true, Reason::InSync, format!("soft delete is {}", describe_change(&w)))
        }
        Some(_) => drifted(&format!("soft delete is {}", describe_soft_delete(applied.soft_delete))),
    };
    let synced = if !manage && !plan.drift.is_empty() {
        drifted(&format!("Azure differs from the spec ({})", plan.drift.join("; ")))
    } else if let Some(b) = blocker {
        (false, b.reason, b.message.clone())
    } else if let Some(op) = plan.elevation_required.first() {
        let (reason, message) = elevation(*op);
        (false, reason, message)
    } else {
        (true, Reason::InSync, "Azure matches the spec".to_string())
    };

    let summary = if let Some(b) = blocker {
        let message = blockers
            .iter()
            .map(|b| b.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Summary::stalled(b.reason, message)
    } else if !plan.elevation_required.is_empty() {
        let operations = plan
            .elevation_required
            .iter()
            .map(|op| op.name())
            .collect::<Vec<_>>()
            .join(", ");
        let how = target
            .description
            .as_deref()
            .map(|d| format!(" How to ask: {d}"))
            .unwrap_or_default();
        let what = if deleting { "the deletion waits: " } else { "" };
        Summary::waiting(
            Reason::ElevationRequired,
            format!(
                "{what}weakening protection is a critical operation: create a CriticalOperationRequest for {operations} on this VaultProtection and have it approved.{how}"
            ),
        )
    } else if !manage && !plan.drift.is_empty() {
        Summary::ready(Reason::Observed, synced.2.clone())
    } else {
        Summary::ready(Reason::InSync, "the vault's protection is as declared")
    };
    Assessment {
        linked,
        soft_delete_synced,
        synced,
        summary,
    }
}

/// Whether deleting the object must do something in Azure first (and so needs a finalizer).
fn unlinks_on_delete(spec: &VaultProtectionSpec) -> bool {
    spec.deletion_policy == VaultDeletionPolicy::Unlink && spec.management_policy == ManagementPolicy::Manage
}

async fn reconcile(vp: Arc<VaultProtection>, ctx: Arc<Context>) -> Result<Action, Error> {
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
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = watch::controller(api, &ctx);
    let memo_ctx = ctx.clone();
    let store = controller.store();
    controller
        .watches(guards, watcher::Config::default(), move |rg| naming_guard(&store, &rg))
        .watches(requests, watcher::Config::default(), move |request| {
            memo_ctx.vault_memo.note_request(&request);
            let namespace = request.namespace().unwrap_or_default();
            Some(ObjectRef::new(&request.spec.vault_protection).within(&namespace))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, outcome::error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::super::Health;
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const GUARD: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/g";
    const OTHER: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/other";

    fn spec(extra: serde_json::Value) -> VaultProtectionSpec {
        let mut spec = json!({"vault": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"}, "guard": {"id": GUARD}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(spec).unwrap()
    }

    fn observed(
        link: Option<&str>,
        soft_delete: SoftDelete,
        retention: u32,
        elevations: &[CriticalOperation],
    ) -> Observed {
        Observed {
            vault: Vault {
                id: "/v".into(),
                location: "westeurope".into(),
                etag: None,
                soft_delete: Some(vaults::SoftDeleteSettings {
                    state: soft_delete,
                    retention_days: Some(retention),
                }),
                multi_user_authorization: Some(link.is_some()),
            },
            link: link.map(|g| Link {
                id: "/link".into(),
                guard_id: g.into(),
                description: None,
                protected_operations: Vec::new(),
            }),
            elevations: elevations
                .iter()
                .map(|op| Elevation {
                    request: format!("req-{op}"),
                    operation: *op,
                    action: None,
                })
                .collect(),
        }
    }

    fn target() -> GuardId {
        GuardId::parse(GUARD).unwrap()
    }

    /// A VaultProtection with `uid` for the vault `v` and guard `g`, and what a grant for it records.
    fn granted(uid: &str) -> (VaultProtection, VaultId, GrantTarget) {
        let mut vp = VaultProtection::new("prod", spec(json!({})));
        vp.metadata.uid = Some(uid.into());
        let vault = vault_id(&vp.spec.vault).unwrap();
        let grant = GrantTarget {
            vault_protection_uid: uid.into(),
            vault_id: vault.path().to_uppercase(),
            guard_id: GUARD.to_lowercase(),
        };
        (vp, vault, grant)
    }

    #[test]
    fn an_elevation_serves_the_object_vault_and_guard_it_was_granted_for() {
        let (vp, vault, grant) = granted("uid-1");
        assert!(granted_for(&grant, &vp, &vault, &target()), "ARM IDs in any casing");
    }

    #[test]
    fn an_elevation_does_not_serve_an_object_of_the_same_name_created_again() {
        let (vp, vault, _) = granted("uid-2");
        let (_, _, grant) = granted("uid-1");
        assert!(!granted_for(&grant, &vp, &vault, &target()));
    }

    #[test]
    fn an_elevation_does_not_serve_another_vault() {
        let (vp, _, grant) = granted("uid-1");
        let other =
            VaultId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/w").unwrap();
        assert!(!granted_for(&grant, &vp, &other, &target()));
    }

    #[test]
    fn an_elevation_does_not_serve_another_guard() {
        let (vp, vault, grant) = granted("uid-1");
        assert!(!granted_for(&grant, &vp, &vault, &GuardId::parse(OTHER).unwrap()));
    }

    #[test]
    fn item_paths_stay_under_the_vault() {
        assert!(is_item_path(
            "backupFabrics/Azure/protectionContainers/iaasvmcontainerv2;rg;vm1/protectedItems/vm;iaasvmcontainerv2;rg;vm1"
        ));
        for outside in [
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/other/backupFabrics/Azure/protectionContainers/c/protectedItems/i",
            "backupFabrics/../protectionContainers/c/protectedItems/i",
            "backupFabrics/Azure/protectionContainers/c/protectedItems/..",
            "backupFabrics/Azure/protectionContainers/c/protectedItems/i/../../x",
            "backupFabrics/Azure/protectionContainers/c/protectedItems/i?api-version=1",
            "backupPolicies/daily",
        ] {
            assert!(!is_item_path(outside), "{outside}");
        }
    }

    #[test]
    fn policy_names_are_one_name_under_the_vault() {
        assert!(is_name("daily-90d"));
        for outside in [
            "",
            ".",
            "..",
            "../other",
            "daily/../../x",
            "daily?api-version=1",
            "%2e%2e",
        ] {
            assert!(!is_name(outside), "{outside}");
        }
    }

    #[test]
    fn a_request_with_an_action_is_performed_once_and_never_while_deleting() {
        let mut o = observed(Some(GUARD), SoftDelete::Enabled, 14, &[]);
        let action: RequestAction = serde_json::from_value(json!({"stopProtectionWithDeleteData": {"item": "backupFabrics/Azure/protectionContainers/c/protectedItems/i"}})).unwrap();
        o.elevations.push(Elevation {
            request: "stop".into(),
            operation: CriticalOperation::StopProtectionWithDeleteData,
            action: Some(action.clone()),
        });
        let s = spec(json!({}));
        let p = plan(&s, &target(), &o, true, true, false);
        assert_eq!(
            p.steps,
            [Step::Perform {
                request: "stop".into(),
                action
            }]
        );
        assert!(plan(&s, &target(), &o, true, true, true).steps.is_empty());
    }

    #[test]
    fn a_vault_without_a_link_is_linked_and_a_lost_link_is_a_restore() {
        let o = observed(None, SoftDelete::Enabled, 14, &[]);
        assert_eq!(
            plan(&spec(json!({})), &target(), &o, false, false, false).steps,
            [Step::Link { restore: false }]
        );
        assert_eq!(
            plan(&spec(json!({})), &target(), &o, true, false, false).steps,
            [Step::Link { restore: true }]
        );
    }

    #[test]
    fn a_vault_linked_to_another_guard_is_left_alone() {
        let p = plan(
            &spec(json!({})),
            &target(),
            &observed(Some(OTHER), SoftDelete::Enabled, 14, &[]),
            false,
            false,
            false,
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.blockers[0].reason, Reason::LinkedToOtherGuard);
    }

    #[test]
    fn unlinking_needs_an_active_request_for_it() {
        let s = spec(json!({"multiUserAuthorization": "Disabled"}));
        let without = plan(
            &s,
            &target(),
            &observed(
                Some(GUARD),
                SoftDelete::Enabled,
                14,
                &[CriticalOperation::DisableSoftDelete],
            ),
            true,
            true,
            false,
        );
        assert!(without.steps.is_empty());
        assert_eq!(
            without.elevation_required,
            [CriticalOperation::DisableMultiUserAuthorization]
        );
        let with = plan(
            &s,
            &target(),
            &observed(
                Some(GUARD),
                SoftDelete::Enabled,
                14,
                &[CriticalOperation::DisableMultiUserAuthorization],
            ),
            true,
            true,
            false,
        );
        assert_eq!(
            with.steps,
            [Step::Unlink {
                request: "req-DisableMultiUserAuthorization".into()
            }]
        );
    }

    #[test]
    fn soft_delete_is_strengthened_at_once_and_weakened_only_under_a_request() {
        let on = spec(json!({"softDelete": {"state": "AlwaysOn"}}));
        let p = plan(
            &on,
            &target(),
            &observed(Some(GUARD), SoftDelete::Disabled, 14, &[]),
            true,
            true,
            false,
        );
        assert!(matches!(
            p.steps[..],
            [Step::StrengthenSoftDelete { restore: true, .. }]
        ));

        let off = spec(json!({"softDelete": {"state": "Disabled"}}));
        let p = plan(
            &off,
            &target(),
            &observed(Some(GUARD), SoftDelete::Enabled, 14, &[]),
            true,
            true,
            false,
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.elevation_required, [CriticalOperation::DisableSoftDelete]);

        let shorter = spec(json!({"softDelete": {"state": "Enabled", "retentionDays": 14}}));
        let p = plan(
            &shorter,
            &target(),
            &observed(Some(GUARD), SoftDelete::Enabled, 30, &[]),
            true,
            true,
            false,
        );
        assert_eq!(
            p.elevation_required,
            [CriticalOperation::DisableSoftDelete],
            "shorter retention is a weakening"
        );

        let longer = spec(json!({"softDelete": {"state": "Enabled", "retentionDays": 60}}));
        let p = plan(
            &longer,
            &target(),
            &observed(Some(GUARD), SoftDelete::Enabled, 30, &[]),
            true,
            true,
            false,
        );
        assert!(matches!(p.steps[..], [Step::StrengthenSoftDelete { .. }]));
    }

    #[test]
    fn always_on_is_never_weakened() {
        let s = spec(json!({"softDelete": {"state": "Enabled"}}));
        let p = plan(
            &s,
            &target(),
            &observed(
                Some(GUARD),
                SoftDelete::AlwaysOn,
                14,
                &[CriticalOperation::DisableSoftDelete],
            ),
            true,
            true,
            false,
        );
        assert!(p.steps.is_empty());
        assert_eq!(p.blockers[0].reason, Reason::AlwaysOnCannotBeWeakened);
    }

    fn target_with(description: Option<&str>) -> Target {
        Target {
            id: target(),
            region: None,
            description: description.map(str::to_string),
        }
    }

    fn applied_from(o: &Observed) -> Applied {
        Applied {
            link: o.link.clone(),
            soft_delete: o.vault.soft_delete,
            ..Default::default()
        }
    }

    #[test]
    fn a_wanted_weakening_waits_naming_the_request_and_how_to_ask() {
        let s = spec(json!({"multiUserAuthorization": "Disabled"}));
        let o = observed(Some(GUARD), SoftDelete::Enabled, 14, &[]);
        let p = plan(&s, &target(), &o, true, true, false);
        let a = assess(
            &s,
            &target_with(Some("ask #sec")),
            &p,
            &applied_from(&o),
            &p.blockers,
            false,
        );
        assert!(a.linked.0, "still linked");
        assert_eq!(a.linked.1, Reason::ElevationRequired);
        assert_eq!(
            (a.summary.health, a.summary.reason),
            (Health::Waiting, Reason::ElevationRequired)
        );
        assert!(a.summary.message.contains("DisableMultiUserAuthorization") && a.summary.message.contains("ask #sec"));
    }

    #[test]
    fn blockers_stall_the_object_and_every_one_is_named() {
        let s = spec(json!({"softDelete": {"state": "Enabled"}}));
        let o = observed(Some(OTHER), SoftDelete::AlwaysOn, 14, &[]);
        let p = plan(&s, &target(), &o, false, false, false);
        let a = assess(&s, &target_with(None), &p, &applied_from(&o), &p.blockers, false);
        assert_eq!(
            (a.summary.health, a.summary.reason),
            (Health::Stalled, Reason::LinkedToOtherGuard)
        );
        assert!(
            a.summary.message.contains(OTHER) && a.summary.message.contains("AlwaysOn"),
            "{}",
            a.summary.message
        );
        assert_eq!(a.soft_delete_synced.1, Reason::AlwaysOnCannotBeWeakened);
    }

    #[test]
    fn under_observe_drift_is_ready_but_not_synced() {
        let s = spec(json!({"managementPolicy": "Observe"}));
        let o = observed(None, SoftDelete::Enabled, 14, &[]);
        let p = plan(&s, &target(), &o, true, true, false);
        let a = assess(&s, &target_with(None), &p, &applied_from(&o), &p.blockers, false);
        assert_eq!((a.summary.health, a.summary.reason), (Health::Ready, Reason::Observed));
        assert_eq!((a.synced.0, a.synced.1), (false, Reason::Drifted));
        assert_eq!((a.linked.0, a.linked.1), (false, Reason::Drifted));
    }

    fn any_state() -> impl Strategy<Value = SoftDelete> {
        prop_oneof![
            Just(SoftDelete::Disabled),
            Just(SoftDelete::Enabled),
            Just(SoftDelete::AlwaysOn)
        ]
    }

    proptest! {
        /// Whatever the spec and Azure hold, no step weakens protection without an active request for
        /// exactly that operation, unless the vault is and stays outside MUA.
        #[test]
        fn nothing_weakens_without_the_matching_request(
            wanted in prop_oneof![Just("Enabled"), Just("AlwaysOn"), Just("Disabled")],
            retention in proptest::option::of(14i32..=180),
            mua in prop_oneof![Just("Enabled"), Just("Disabled")],
            deletion in prop_oneof![Just("Orphan"), Just("Unlink")],
            link in prop_oneof![Just(None), Just(Some(GUARD)), Just(Some(OTHER))],
            current in any_state(),
            current_retention in 14u32..=180,
            elevations in proptest::sample::subsequence(vec![CriticalOperation::DisableSoftDelete, CriticalOperation::DisableMultiUserAuthorization], 0..=2),
            deleting: bool,
            was_linked: bool,
        ) {
            let mut sd = json!({"state": wanted});
            if let Some(days) = retention {
                sd["retentionDays"] = json!(days);
            }
            let s = spec(json!({"softDelete": sd, "multiUserAuthorization": mua, "deletionPolicy": deletion}));
            let o = observed(link, current, current_retention, &elevations);
            let p = plan(&s, &target(), &o, was_linked, true, deleting);
            for step in &p.steps {
                match step {
                    Step::Unlink { .. } => {
                        prop_assert!(elevations.contains(&CriticalOperation::DisableMultiUserAuthorization));
                        prop_assert_eq!(link, Some(GUARD), "only our own link is removed");
                    }
                    Step::WeakenSoftDelete { request: Some(_), .. } => {
                        prop_assert!(elevations.contains(&CriticalOperation::DisableSoftDelete));
                    }
                    Step::WeakenSoftDelete { request: None, .. } => {
                        prop_assert!(link.is_none() && mua == "Disabled");
                    }
                    Step::StrengthenSoftDelete { change, .. } => {
                        prop_assert!(change.state >= current);
                        prop_assert!(change.retention_days.is_none_or(|d| d >= current_retention));
                    }
                    Step::Link { .. } => prop_assert!(link.is_none() && mua == "Enabled" && !deleting),
                    Step::Perform { .. } => prop_assert!(false, "no request here carries an action"),
                }
                if current == SoftDelete::AlwaysOn {
                    prop_assert!(!matches!(step, Step::WeakenSoftDelete { .. }), "AlwaysOn is never weakened");
                }
            }
        }
    }
}
