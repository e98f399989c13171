//! Status: what the reconcile reports — the vault and guard as seen, the protected operations, the
//! `Linked`, `SoftDeleteSynced` and `Synced` conditions, and the summary (what must happen next). Pure,
//! but for the clock of an object that stopped early.

use jiff::Timestamp;
use kube::Resource;

use super::apply::{Applied, describe_change, describe_soft_delete};
use super::observe::{Seen, Stop};
use super::plan::{Blocker, Plan, Target, wanted_soft_delete};
use crate::azure::vaults::{self, Link, Vault, VaultId};
use crate::controller::conditions::{self, LINKED, SOFT_DELETE_SYNCED, SYNCED};
use crate::controller::outcome::{Notice, Outcome, Requeue, Summary};
use crate::controller::{BackupContext, Health, Reason};
use crate::crd::VaultProtection;
use crate::crd::resource_guard::ProtectedOperation;
use crate::crd::shared::ManagementPolicy;
use crate::crd::vault_protection::{MultiUserAuthorization, VaultProtectionSpec, VaultProtectionStatus};
use crate::operations::{CriticalOperation, VaultKind};

/// The outcome of a reconcile that stopped early, and whether a deletion may finish.
pub(super) fn stopped(ctx: &BackupContext, vp: &VaultProtection, stop: Stop) -> (Outcome<VaultProtectionStatus>, bool) {
    match stop {
        Stop::NoVault(summary) => (
            Outcome {
                status: vp.status.clone().unwrap_or_default(),
                summary,
                requeue: Requeue::OnChange,
                notices: Vec::new(),
            },
            true,
        ),
        Stop::Early { id, summary, unlinked } => (early(ctx, vp, &id, summary), unlinked),
    }
}

/// The outcome of a reconcile that observed, planned and applied; and whether the vault's link to the
/// guard is gone (a deletion may finish).
pub(super) fn report(
    vp: &VaultProtection,
    seen: Seen,
    plan: &Plan,
    mut applied: Applied,
    deleting: bool,
) -> (Outcome<VaultProtectionStatus>, bool) {
    let spec = &vp.spec;
    let manage = spec.management_policy == ManagementPolicy::Manage;
    let mut blockers = plan.blockers.clone();
    blockers.append(&mut applied.blockers);
    let mut target = seen.target;
    if target.description.is_none() {
        target.description = applied.description.clone();
    }
    let linked_now = applied.link.as_ref().is_some_and(|l| target.id.is(&l.guard_id));
    let assessment = assess(spec, &target, plan, &applied, &blockers, deleting);
    let mut notices = std::mem::take(&mut applied.notices);
    for why in &seen.observed.untrusted {
        notices.push(Notice::warning("ElevationNotTrusted", why.clone()));
    }
    if !manage && !plan.drift.is_empty() {
        notices.push(Notice::warning("Drifted", assessment.synced.2.clone()));
    }
    let view = View {
        vault_id: &seen.id,
        target: Some(&target),
        guard_name: seen.guard_name.as_deref(),
        vault: Some(&seen.observed.vault),
        link: applied.link.as_ref(),
        soft_delete: applied.soft_delete,
        linked: assessment.linked,
        soft_delete_synced: assessment.soft_delete_synced,
        synced: assessment.synced,
    };
    let outcome = Outcome {
        status: status(&view, &seen.previous, vp.meta().generation, seen.now),
        summary: assessment.summary,
        requeue: Requeue::Resync,
        notices,
    };
    (outcome, !linked_now)
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
        (LINKED, &view.linked),
        (SOFT_DELETE_SYNCED, &view.soft_delete_synced),
        (SYNCED, &view.synced),
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

/// A status for an object that stopped before it could compare Azure with the spec. What it last saw
/// of Azure (`Linked`, `SoftDeleteSynced`, the vault and guard fields) stays as it was: not having
/// looked is no evidence that anything changed, and the security side relies on `Linked`.
fn early(ctx: &BackupContext, vp: &VaultProtection, id: &VaultId, summary: Summary) -> Outcome<VaultProtectionStatus> {
    let now = ctx.clock.now();
    let mut status = vp.status.clone().unwrap_or_default();
    status.vault_id.get_or_insert_with(|| id.path());
    status.vault_name.get_or_insert_with(|| id.name.clone());
    let generation = vp.meta().generation;
    for type_ in [LINKED, SOFT_DELETE_SYNCED] {
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
        SYNCED,
        false,
        summary.reason,
        &summary.message,
        generation,
        now,
    );
    let requeue = match summary.health {
        Health::Waiting => Requeue::After(ctx.config.waiting_retry),
        _ => Requeue::Resync,
    };
    Outcome {
        status,
        summary,
        requeue,
        notices: Vec::new(),
    }
}

/// The conditions and the summary after the writes: what is linked, whether soft delete is as declared,
/// whether Azure matches the spec, and what (if anything) must happen next. Pure.
pub(super) struct Assessment {
    pub linked: (bool, Reason, String),
    pub soft_delete_synced: (bool, Reason, String),
    pub synced: (bool, Reason, String),
    pub summary: Summary,
}

pub(super) fn assess(
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
    let always_on = blockers.iter().find(|b| b.reason == Reason::AlwaysOnCannotBeWeakened);
    let soft_delete_synced = match wanted {
        None => (
            true,
            Reason::InSync,
            "soft delete is not managed by this object".to_string(),
        ),
        Some(_) if let Some(b) = always_on => (false, b.reason, b.message.clone()),
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
