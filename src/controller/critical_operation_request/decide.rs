//! Decide: what happens to a request, from what was observed. Pure, so every path is a unit test: a
//! final request stays final (a grant left over is ended again), a revocation or a denial wins, an
//! active elevation ends when it was used, failed or ran out, and a pending one is granted only with
//! its rules resolved, its spec valid, the admission policies in force, enough valid approvals and no
//! other elevation it would merge with. A decision carries what carrying it out needs.

use std::time::Duration;

use jiff::Timestamp;

use super::approvals::Judged;
use super::grant::AWAITING_BACKUP_SIDE;
use super::policy::{Refusal, Resolved};
use super::status::{OPERATOR, final_reason};
use crate::azure::authorization::ScheduleStatus;
use crate::controller::Reason;
use crate::controller::admission::{AdmissionProblems, Fingerprint};
use crate::controller::outcome::{Health, Requeue};
use crate::crd::critical_operation_request::RequestPhase;
use crate::crd::shared::ApprovalBackend;

/// What the operator saw about one request.
#[derive(Clone, Debug)]
pub struct Observed {
    pub phase: RequestPhase,
    pub now: Timestamp,
    pub resolved: Result<Resolved, Refusal>,
    pub duration: Result<Duration, Refusal>,
    pub admission: Result<(), AdmissionProblems>,
    /// The admission objects' fingerprint to record on the request (with its target, the first time).
    pub record_fingerprint: Option<Fingerprint>,
    pub judged: Judged,
    /// Another request holding an elevation for the same vault and operation.
    pub other_active: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// An elevation was granted and not yet ended.
    pub granted: bool,
    pub performed: bool,
    /// Why the backup side could not perform the request's action.
    pub action_failed: Option<String>,
    /// `(by, reason)`.
    pub revoked_by: Option<(String, Option<String>)>,
    /// The PIM backend, once the activation was allowed: where the backup side's activation stands.
    pub pim: Option<PimActivation>,
    /// The PIM backend, before activating: whether PIM's settings keep two people in the loop.
    pub pim_policy: Option<Result<(), Refusal>>,
    /// An ended request: when its retention ends (it is removed then).
    pub retention_ends: Option<Timestamp>,
    /// Why a final request ended, from its last transition.
    pub ending: Option<(Reason, String)>,
}

/// Where the backup side's PIM activation for an allowed request stands in Azure.
#[derive(Clone, Debug, PartialEq)]
pub enum PimActivation {
    /// The backup side has not asked PIM yet.
    NotAsked,
    /// Asked; PIM's status for it.
    Asked(ScheduleStatus),
}

/// What to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Nothing to do now.
    Wait {
        health: Health,
        reason: Reason,
        message: String,
        requeue: Requeue,
    },
    /// Grant the elevation (the approvals are in) under `resolved` for `duration`, then the request is
    /// Active.
    Grant {
        approvers: Vec<String>,
        resolved: Resolved,
        duration: Duration,
    },
    /// PIM: let the backup side ask PIM to activate its eligible assignment (with its own identity);
    /// PIM's approvers decide.
    Activate { resolved: Resolved },
    /// PIM activated the assignment: the request is Active from now.
    Provisioned,
    /// End the request in a final phase, revoking the elevation first if one is in force.
    End {
        phase: RequestPhase,
        actor: String,
        reason: Reason,
        message: String,
    },
}

pub(super) fn end(phase: RequestPhase, actor: &str, reason: Reason, message: impl Into<String>) -> Decision {
    Decision::End {
        phase,
        actor: actor.to_string(),
        reason,
        message: message.into(),
    }
}

/// Decides what happens to a request. Pure, so every path is a unit test.
pub fn decide(o: &Observed) -> Decision {
    if o.phase.is_final() {
        return match o.granted {
            // A grant left over (a crash between revoking and recording it): end it again.
            true => end(o.phase, OPERATOR, Reason::Revoked, "ending an elevation left in force"),
            false => {
                // A final request keeps saying why it ended.
                let (reason, message) = o
                    .ending
                    .clone()
                    .unwrap_or((final_reason(o.phase), format!("the request is {:?}", o.phase)));
                Decision::Wait {
                    health: if o.phase == RequestPhase::Failed {
                        Health::Stalled
                    } else {
                        Health::Ready
                    },
                    reason,
                    message,
                    // Looked at again when its retention ends, to be removed.
                    requeue: o.retention_ends.map_or(Requeue::OnChange, Requeue::At),
                }
            }
        };
    }
    if let Some((by, reason)) = &o.revoked_by {
        let message = match reason {
            Some(reason) => format!("revoked by {by}: {reason}"),
            None => format!("revoked by {by}"),
        };
        return end(RequestPhase::Revoked, by, Reason::Revoked, message);
    }
    if let Some(activation) = &o.pim
        && o.phase == RequestPhase::Pending
    {
        return match (activation, &o.action_failed) {
            (PimActivation::Asked(status), _) => follow_pim(status),
            (PimActivation::NotAsked, Some(why)) => end(
                RequestPhase::Failed,
                OPERATOR,
                Reason::RequestFailed,
                format!("the backup side did not ask PIM to activate: {why}"),
            ),
            (PimActivation::NotAsked, None) => Decision::Wait {
                health: Health::Waiting,
                reason: Reason::AwaitingActivation,
                message: "approved here; waiting for the backup side to ask PIM to activate with its own identity"
                    .into(),
                requeue: Requeue::After(AWAITING_BACKUP_SIDE),
            },
        };
    }
    if o.phase == RequestPhase::Active || o.granted {
        if let Some(why) = &o.action_failed {
            return end(
                RequestPhase::Failed,
                OPERATOR,
                Reason::RequestFailed,
                format!("the operator could not perform the action: {why}; the elevation ended"),
            );
        }
        if o.performed {
            return end(
                RequestPhase::Completed,
                OPERATOR,
                Reason::Completed,
                "the operation was performed; the elevation ended",
            );
        }
        return match o.expires_at {
            Some(at) if at > o.now => Decision::Wait {
                health: Health::Ready,
                reason: Reason::Elevated,
                message: format!("elevated until {at}"),
                requeue: Requeue::At(at),
            },
            _ => end(
                RequestPhase::Expired,
                OPERATOR,
                Reason::Expired,
                "the elevation's time ran out; it was revoked",
            ),
        };
    }
    // Pending (or Approved before a grant was recorded).
    let resolved = match &o.resolved {
        Ok(resolved) => resolved,
        Err(refusal) => return refuse(refusal),
    };
    let duration = match &o.duration {
        Ok(duration) => *duration,
        Err(refusal) => return refuse(refusal),
    };
    if let Some((by, comment)) = &o.judged.denied_by {
        let message = match comment {
            Some(comment) => format!("denied by {by}: {comment}"),
            None => format!("denied by {by}"),
        };
        return end(RequestPhase::Denied, by, Reason::Denied, message);
    }
    if let Err(problems) = &o.admission {
        // Unreadable now: look again. Known missing or altered: the request fails, because approvals
        // written while the policies were not in force cannot be told from real ones (even once the
        // policies are put back).
        if !problems.known() {
            return Decision::Wait {
                health: Health::Stalled,
                reason: Reason::AdmissionPoliciesMissing,
                message: format!(
                    "nobody is elevated while the admission policies of the two-person rule cannot be read ({problems})"
                ),
                requeue: Requeue::After(Duration::from_secs(30)),
            };
        }
        let (reason, what) = match problems.missing.is_empty() {
            true => (Reason::AdmissionPoliciesAltered, "differ from what this operator ships"),
            false => (Reason::AdmissionPoliciesMissing, "are not as shipped"),
        };
        return end(
            RequestPhase::Failed,
            OPERATOR,
            reason,
            format!(
                "the admission policies that enforce the two-person rule {what} ({problems}): approvals written meanwhile cannot be trusted, so this request fails; a cluster admin must install them again from the chart, then create a new request"
            ),
        );
    }
    let pim = resolved.policy.backend == ApprovalBackend::Pim;
    if pim && let Some(Err(refusal)) = &o.pim_policy {
        return refuse(refusal);
    }
    // Under PIM too: the operator cannot tell whether PIM's approver is the Kubernetes requester in
    // another guise, so another person approves here as well.
    let required = resolved.policy.required_approvals.max(1) as usize;
    if o.judged.approvers.len() < required {
        let mut message = format!(
            "{} of {required} approvals from the guard's approvers",
            o.judged.approvers.len()
        );
        if !o.judged.ignored.is_empty() {
            message.push_str(&format!("; not counted: {}", o.judged.ignored.join("; ")));
        }
        return Decision::Wait {
            health: Health::Waiting,
            reason: Reason::ApprovalPending,
            message,
            // A counted approval that goes stale changes what this says.
            requeue: o.judged.first_expiry.map_or(Requeue::OnChange, Requeue::At),
        };
    }
    if let Some(other) = &o.other_active {
        return another_active(other);
    }
    if pim {
        // PIM's approvers decide in Azure too; the operator asks and follows.
        return Decision::Activate {
            resolved: resolved.clone(),
        };
    }
    Decision::Grant {
        approvers: o.judged.approvers.clone(),
        resolved: resolved.clone(),
        duration,
    }
}

pub(super) fn another_active(other: &str) -> Decision {
    Decision::Wait {
        health: Health::Waiting,
        reason: Reason::AnotherElevationActive,
        message: format!("{other}; this one waits until it ends (elevations are never merged or extended)"),
        requeue: Requeue::After(Duration::from_secs(15)),
    }
}

/// Where a PIM activation request stands, as a decision.
pub(super) fn follow_pim(status: &ScheduleStatus) -> Decision {
    use ScheduleStatus::*;
    match status {
        Provisioned | Granted | ScheduleCreated | AdminApproved => Decision::Provisioned,
        Denied | AdminDenied => end(
            RequestPhase::Denied,
            "PIM",
            Reason::Denied,
            "PIM's approvers denied the activation",
        ),
        TimedOut => end(
            RequestPhase::Expired,
            "PIM",
            Reason::Expired,
            "nobody approved the activation in PIM in time",
        ),
        Canceled | Revoked | Failed | FailedAsResourceIsLocked | Invalid => end(
            RequestPhase::Failed,
            "PIM",
            Reason::RequestFailed,
            format!("PIM ended the activation request: {status:?}"),
        ),
        other => Decision::Wait {
            health: Health::Waiting,
            reason: Reason::PendingApprovalInAzure,
            message: format!("waiting for PIM's approvers in Azure (the activation request is {other:?})"),
            requeue: Requeue::After(Duration::from_secs(10)),
        },
    }
}

pub(super) fn refuse(refusal: &Refusal) -> Decision {
    if refusal.fatal {
        end(RequestPhase::Failed, OPERATOR, refusal.reason, refusal.message.clone())
    } else {
        Decision::Wait {
            health: Health::Stalled,
            reason: refusal.reason,
            message: refusal.message.clone(),
            requeue: Requeue::After(Duration::from_secs(30)),
        }
    }
}
