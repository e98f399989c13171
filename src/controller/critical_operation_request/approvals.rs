//! Approvals as the operator judges them: an entry counts only from a person who is not the requester,
//! is named by the guard's rules, and whom RBAC allows to approve this request now; a valid denial wins.
//! Pure: what RBAC answered is passed in.

use std::collections::{BTreeMap, BTreeSet};

use super::policy::is_service_account;
use crate::crd::critical_operation_request::{Approval, Decision as Verdict};
use crate::crd::elevation_policy::ElevationRules;

/// The approvals as the operator judges them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Judged {
    /// Distinct approvers whose approval counts.
    pub approvers: Vec<String>,
    /// A valid denial: who, and why.
    pub denied_by: Option<(String, Option<String>)>,
    /// Entries that do not count, each with why.
    pub ignored: Vec<String>,
}

/// Judges the approval entries. Pure: `may_approve` is what RBAC answered for each approver.
pub fn judge(
    approvals: &[Approval],
    requester: &str,
    rules: &ElevationRules,
    may_approve: &BTreeMap<String, bool>,
) -> Judged {
    let mut judged = Judged::default();
    let mut counted = BTreeSet::new();
    for entry in approvals {
        let who = &entry.approver;
        let why_not = if who == requester {
            Some("is the requester")
        } else if is_service_account(who) {
            Some("is a ServiceAccount; only people approve")
        } else if !rules.approvers.includes(who, &entry.groups) {
            Some("is not an approver under the guard's rules")
        } else if may_approve.get(who) != Some(&true) {
            Some("lacks the approve permission on this request")
        } else {
            None
        };
        if let Some(why) = why_not {
            judged.ignored.push(format!("{who} {why}"));
            continue;
        }
        match entry.decision {
            Verdict::Deny => {
                judged.denied_by.get_or_insert((who.clone(), entry.comment.clone()));
            }
            Verdict::Approve => {
                if counted.insert(who.clone()) {
                    judged.approvers.push(who.clone());
                }
            }
        }
    }
    judged
}
