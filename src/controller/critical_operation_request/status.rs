//! Status: the audit trail (each transition with its actor and time) and the `Approved` and `Elevated`
//! conditions, from the phase and the elevation. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::policy::Resolved;
use crate::controller::Reason;
use crate::controller::conditions::{self, APPROVED, ELEVATED};
use crate::controller::outcome::Summary;
use crate::crd::critical_operation_request::{CriticalOperationRequestStatus, RequestPhase, Transition};

/// The actor recorded for what the operator itself decides.
pub const OPERATOR: &str = "mua-operator";

/// Moves the request to `phase`, recording who and why in its history.
pub(super) fn transition(
    status: &mut CriticalOperationRequestStatus,
    phase: RequestPhase,
    actor: &str,
    reason: Reason,
    message: &str,
    now: Timestamp,
) {
    status.phase = Some(phase);
    status.history.push(Transition {
        phase,
        actor: actor.to_string(),
        time: Time(now),
        reason: Some(reason.as_str().to_string()),
        message: Some(message.to_string()),
    });
}

/// `Approved` and `Elevated`, from the phase and the elevation. Pure.
pub(super) fn set_conditions(
    status: &mut CriticalOperationRequestStatus,
    generation: Option<i64>,
    now: Timestamp,
    summary: &Summary,
) {
    let phase = status.phase.unwrap_or(RequestPhase::Pending);
    let approved = matches!(
        phase,
        RequestPhase::Approved | RequestPhase::Active | RequestPhase::Completed | RequestPhase::Expired
    ) || (phase == RequestPhase::Revoked && status.granted_at.is_some());
    let (approved_reason, approved_message) = match phase {
        RequestPhase::Pending => (summary.reason, summary.message.as_str()),
        RequestPhase::Denied => (Reason::Denied, summary.message.as_str()),
        RequestPhase::Failed => (Reason::RequestFailed, summary.message.as_str()),
        _ if approved => (Reason::Approved, "the required approvals were given"),
        _ => (final_reason(phase), "the request ended before it was approved"),
    };
    conditions::set(
        &mut status.conditions,
        APPROVED,
        approved,
        approved_reason,
        approved_message,
        generation,
        now,
    );
    let elevated = status.holds_elevation();
    let (reason, message) = if elevated {
        (Reason::Elevated, "the elevation is in force in Azure")
    } else if status.ended_at.is_some() {
        (final_reason(phase), "the elevation has ended")
    } else {
        (Reason::NotElevated, "no elevation was granted")
    };
    conditions::set(
        &mut status.conditions,
        ELEVATED,
        elevated,
        reason,
        message,
        generation,
        now,
    );
}

/// What the rules resolved to: the effective policy, the guard's description, and what the request is
/// for, from the first time it is seen whole (approvers decide on this; it is never rewritten).
pub(super) fn record_rules(status: &mut CriticalOperationRequestStatus, resolved: &Resolved) {
    status.policy = Some(resolved.policy.clone());
    status.guard_description = resolved.guard_description.clone();
    status.blast_radius = resolved.blast_radius.clone();
    status.target.get_or_insert_with(|| resolved.target());
}

/// How long an ended request is kept when its rules said nothing (the CRD's default).
const DEFAULT_RETENTION_DAYS: i32 = 90;

/// When an ended request's retention ends and the operator removes it: its last transition plus the
/// rules' `retentionDays`. `None` while it is not final or an elevation may still be in force.
pub fn retention_ends(status: &CriticalOperationRequestStatus) -> Option<Timestamp> {
    if !status.phase.is_some_and(RequestPhase::is_final) || status.holds_elevation() {
        return None;
    }
    let ended = status.history.last()?.time.0;
    let days = status
        .policy
        .as_ref()
        .and_then(|p| p.retention_days)
        .unwrap_or(DEFAULT_RETENTION_DAYS)
        .clamp(1, 3650);
    ended
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .ok()
}

/// The reason a request that ended in `phase` keeps.
pub(super) fn final_reason(phase: RequestPhase) -> Reason {
    match phase {
        RequestPhase::Denied => Reason::Denied,
        RequestPhase::Completed => Reason::Completed,
        RequestPhase::Expired => Reason::Expired,
        RequestPhase::Revoked => Reason::Revoked,
        _ => Reason::RequestFailed,
    }
}
