//! Conditions as kstatus and Argo CD read them: `Ready`, `Reconciling`, `Stalled`, plus specific ones,
//! each with a typed reason a person can act on and the generation it describes.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::outcome::{Health, Summary};
use super::reason::Reason;
use crate::crd::shared::Conditions;

/// Sets one condition, keeping its transition time while its status does not change.
pub fn set(
    conditions: &mut Conditions,
    type_: &str,
    status: bool,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let transition = conditions
        .get(type_)
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.as_str().to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: transition,
    };
    match conditions.0.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.0.push(condition),
    }
}

/// The summary conditions from one reconcile's summary: `Ready`, `Reconciling` while the operator is
/// still working towards the spec (waiting or retrying), `Stalled` when only a person can move it on.
pub fn summarize(conditions: &mut Conditions, summary: &Summary, generation: Option<i64>, now: Timestamp) {
    let (reason, message) = (summary.reason, summary.message.as_str());
    let is = |health| summary.health == health;
    set(conditions, "Ready", is(Health::Ready), reason, message, generation, now);
    let reconciling = if is(Health::Waiting) { message } else { "" };
    set(
        conditions,
        "Reconciling",
        is(Health::Waiting),
        reason,
        reconciling,
        generation,
        now,
    );
    let stalled = if is(Health::Stalled) { message } else { "" };
    set(
        conditions,
        "Stalled",
        is(Health::Stalled),
        reason,
        stalled,
        generation,
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let mut conditions = Conditions::default();
        set(&mut conditions, "Ready", true, Reason::InSync, "", Some(1), t0);
        set(&mut conditions, "Ready", true, Reason::InSync, "still", Some(2), t1);
        let ready = conditions.get("Ready").unwrap();
        assert_eq!(ready.last_transition_time, Time(t0));
        assert_eq!((ready.message.as_str(), ready.observed_generation), ("still", Some(2)));
        set(&mut conditions, "Ready", false, Reason::Drifted, "", Some(2), t1);
        let ready = conditions.get("Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), &ready.last_transition_time),
            ("False", &Time(t1))
        );
        assert_eq!(conditions.0.len(), 1);
    }

    #[test]
    fn a_stalled_summary_is_not_ready_and_not_reconciling() {
        let now = Timestamp::from_second(1_000).unwrap();
        let mut conditions = Conditions::default();
        let summary = Summary::stalled(Reason::RegionMismatch, "move it");
        summarize(&mut conditions, &summary, Some(3), now);
        let status = |t: &str| conditions.get(t).map(|c| (c.status.as_str(), c.reason.as_str()));
        assert_eq!(status("Ready"), Some(("False", "RegionMismatch")));
        assert_eq!(status("Reconciling"), Some(("False", "RegionMismatch")));
        assert_eq!(status("Stalled"), Some(("True", "RegionMismatch")));
        assert_eq!(conditions.get("Stalled").unwrap().message, "move it");
    }
}
