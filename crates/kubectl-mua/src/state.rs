//! Reading a request's state: its phase, its approvals, and what a phase means for an exit code.

use mua_api::crd::CriticalOperationRequest;
use mua_api::crd::critical_operation_request::{Decision, RequestPhase};

use crate::args::WaitFor;
use crate::error::Exit;

pub fn phase(request: &CriticalOperationRequest) -> Option<RequestPhase> {
    request.status.as_ref().and_then(|s| s.phase)
}

/// The phase's name; `-` before the operator has seen the request.
pub fn phase_name(phase: Option<RequestPhase>) -> String {
    phase.map_or_else(|| "-".to_string(), |p| format!("{p:?}"))
}

/// Waiting for a decision: new (no phase yet) or Pending.
pub fn is_undecided(request: &CriticalOperationRequest) -> bool {
    matches!(phase(request), None | Some(RequestPhase::Pending))
}

pub fn requester(request: &CriticalOperationRequest) -> Option<&str> {
    request.spec.requester.as_deref().filter(|r| !r.is_empty())
}

/// `1/2` when the policy says how many approvals are needed, else just the count of approvals.
pub fn approvals_summary(request: &CriticalOperationRequest) -> String {
    let status = request.status.as_ref();
    let approved = status.map_or(0, |s| {
        s.approvals.iter().filter(|a| a.decision == Decision::Approve).count()
    });
    match status.and_then(|s| s.policy.as_ref()) {
        Some(policy) => format!("{approved}/{}", policy.required_approvals),
        None => approved.to_string(),
    }
}

/// The exit code once `phase` settles the wait, or `None` to keep waiting.
pub fn outcome(phase: Option<RequestPhase>, wait_for: WaitFor) -> Option<Exit> {
    match phase? {
        RequestPhase::Active if wait_for == WaitFor::Active => Some(Exit::Success),
        RequestPhase::Completed => Some(Exit::Success),
        RequestPhase::Denied => Some(Exit::Denied),
        RequestPhase::Expired | RequestPhase::Revoked | RequestPhase::Failed => Some(Exit::Ended),
        RequestPhase::Pending | RequestPhase::Approved | RequestPhase::Active => None,
    }
}

/// Who caused the current phase and why, from the last matching entry of the audit trail.
pub fn phase_detail(request: &CriticalOperationRequest) -> Option<String> {
    let status = request.status.as_ref()?;
    let current = status.phase?;
    let entry = status.history.iter().rev().find(|t| t.phase == current)?;
    let why = entry.message.as_deref().or(entry.reason.as_deref());
    Some(match why {
        Some(why) => format!("by {}: {why}", entry.actor),
        None => format!("by {}", entry.actor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_documented_exit_codes() {
        use RequestPhase::*;
        assert_eq!(outcome(None, WaitFor::Active), None);
        assert_eq!(outcome(Some(Pending), WaitFor::Active), None);
        assert_eq!(outcome(Some(Approved), WaitFor::Final), None);
        assert_eq!(outcome(Some(Active), WaitFor::Active), Some(Exit::Success));
        assert_eq!(outcome(Some(Active), WaitFor::Final), None);
        assert_eq!(outcome(Some(Completed), WaitFor::Active), Some(Exit::Success));
        assert_eq!(outcome(Some(Denied), WaitFor::Active), Some(Exit::Denied));
        for ended in [Expired, Revoked, Failed] {
            assert_eq!(outcome(Some(ended), WaitFor::Final), Some(Exit::Ended));
        }
    }
}
