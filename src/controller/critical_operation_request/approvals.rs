//! Approvals as the operator judges them: an entry counts only from a person who is not the requester,
//! is named by the guard's rules, whom RBAC allows to approve this request now, who approved exactly the
//! target the operator recorded, and only while the approval is fresh (the rules' `approvalValidity`).
//! A valid denial wins whatever it was for. Pure: what RBAC answered and the time are passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;

use super::policy::is_service_account;
use crate::crd::critical_operation_request::{Approval, Decision as Verdict, GrantTarget};
use crate::crd::elevation_policy::ElevationRules;

/// How far in the future (by the operator's clock) an approval may be dated and still count: the plugin
/// stamps it with the approver's own clock. Anything later is not believed, as it would outlive its
/// validity.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// What an approval is judged against.
#[derive(Clone, Copy, Debug)]
pub struct Judging<'a> {
    pub requester: &'a str,
    pub rules: &'a ElevationRules,
    /// The target the operator recorded; without one no approval counts.
    pub target: Option<&'a GrantTarget>,
    pub now: Timestamp,
    /// How long an approval counts.
    pub validity: Duration,
}

/// The approvals as the operator judges them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Judged {
    /// Distinct approvers whose approval counts.
    pub approvers: Vec<String>,
    /// A valid denial: who, and why.
    pub denied_by: Option<(String, Option<String>)>,
    /// Entries that do not count, each with why.
    pub ignored: Vec<String>,
    /// When the first of the counted approvals stops counting.
    pub first_expiry: Option<Timestamp>,
}

/// Judges the approval entries. Pure: `may_approve` is what RBAC answered for each approver.
pub fn judge(approvals: &[Approval], on: Judging<'_>, may_approve: &BTreeMap<String, bool>) -> Judged {
    let mut judged = Judged::default();
    let mut counted = BTreeSet::new();
    for entry in approvals {
        let who = &entry.approver;
        let why_not = if who == on.requester {
            Some("is the requester".to_string())
        } else if is_service_account(who) {
            Some("is a ServiceAccount; only people approve".to_string())
        } else if !on.rules.approvers.includes(who, &entry.groups) {
            Some("is not an approver under the guard's rules".to_string())
        } else if may_approve.get(who) != Some(&true) {
            Some("lacks the approve permission on this request".to_string())
        } else {
            None
        };
        if let Some(why) = why_not {
            judged.ignored.push(format!("{who} {why}"));
            continue;
        }
        match entry.decision {
            // A denial is safe whatever it was for and however old: it only ever stops an elevation.
            Verdict::Deny => {
                judged.denied_by.get_or_insert((who.clone(), entry.comment.clone()));
            }
            Verdict::Approve => match stale(entry, &on) {
                Some(why) => judged.ignored.push(format!("{who}'s approval {why}")),
                None => {
                    if counted.insert(who.clone()) {
                        judged.approvers.push(who.clone());
                        let expiry = entry.time.0 + on.validity;
                        judged.first_expiry = Some(judged.first_expiry.map_or(expiry, |e| e.min(expiry)));
                    }
                }
            },
        }
    }
    judged
}

/// Why an approval by a valid approver does not count (now): it was for something else, or it is not
/// fresh.
fn stale(entry: &Approval, on: &Judging<'_>) -> Option<String> {
    match (&entry.target, on.target) {
        (_, None) => return Some("was given before the operator recorded what the request is for".into()),
        (None, Some(_)) => return Some("does not say what it approves (kubectl mua approve records it)".into()),
        (Some(seen), Some(target)) if !seen.matches(target) => {
            return Some(format!(
                "was for {} on the vault {}, not for what the request is for now",
                seen.change, seen.vault_id
            ));
        }
        _ => {}
    }
    let at = entry.time.0;
    if at > on.now + CLOCK_SKEW {
        return Some(format!("is dated {at}, in the future; it is not believed"));
    }
    if at + on.validity <= on.now {
        let validity = jiff::SignedDuration::try_from(on.validity)
            .map(|d| format!("{d:#}"))
            .unwrap_or_default();
        return Some(format!(
            "of {at} is older than the rules' approvalValidity ({validity}): approve again to renew it"
        ));
    }
    None
}
