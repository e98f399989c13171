//! Plan: what the spec asks of Azure compared with what was observed — the writes to make, the
//! elevations to wait for, what blocks the rest. Pure: every case is a unit test, and a proptest shows
//! that no step weakens protection without an active request for exactly that operation.

use crate::azure::guards::GuardId;
use crate::azure::vaults::{Link, SoftDelete, SoftDeleteChange, Vault};
use crate::controller::Reason;
use crate::crd::critical_operation_request::RequestAction;
use crate::crd::vault_protection::{MultiUserAuthorization, SoftDeleteState, VaultDeletionPolicy, VaultProtectionSpec};
use crate::operations::CriticalOperation;

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
    /// Why requests that look active were not used (the backup side's own check failed).
    pub untrusted: Vec<String>,
}

/// Why the object cannot be converged until something happens.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocker {
    pub reason: Reason,
    pub message: String,
}

impl Blocker {
    pub(super) fn new(reason: Reason, message: impl Into<String>) -> Self {
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

pub(super) fn linked_to_other(link: &Link, target: &GuardId) -> Blocker {
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
pub(super) fn wanted_soft_delete(spec: &VaultProtectionSpec) -> Option<SoftDeleteChange> {
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

pub(super) fn region_mismatch(guard: &str, vault: &str) -> Blocker {
    Blocker::new(
        Reason::RegionMismatch,
        format!(
            "the guard is in {guard} and the vault in {vault}: a vault can only link to a guard in its own region; name a guard in {vault}"
        ),
    )
}
