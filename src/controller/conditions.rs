//! Conditions as kstatus and Argo CD read them: `Ready`, `Reconciling`, `Stalled`, plus specific ones,
//! each with a typed reason a person can act on and the generation it describes.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::reason::Reason;
use crate::crd::shared::Conditions;

// The condition types, one name each (the CRDs' printer columns, Argo CD's health scripts and the docs
// read the same names).
/// Every kind: the object is as declared (kstatus, Argo CD).
pub const READY: &str = "Ready";
/// Every kind: the operator is still working towards the spec (waiting or retrying).
pub const RECONCILING: &str = "Reconciling";
/// Every kind: only a person can move the object on.
pub const STALLED: &str = "Stalled";
/// ResourceGuard, VaultProtection: Azure matches the spec.
pub const SYNCED: &str = "Synced";
/// VaultProtection: the vault is linked to the guard (the security side relies on it).
pub const LINKED: &str = "Linked";
/// VaultProtection: soft delete is as declared.
pub const SOFT_DELETE_SYNCED: &str = "SoftDeleteSynced";
/// CriticalOperationRequest: the required approvals were given.
pub const APPROVED: &str = "Approved";
/// CriticalOperationRequest: the elevation is in force in Azure.
pub const ELEVATED: &str = "Elevated";

/// Where an object stands after a reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Azure matches the spec (or, under `Observe`, has been read).
    Ready,
    /// Working towards the spec; something will move it on without anyone fixing anything.
    Waiting,
    /// Only a person can move it on: the reason says what to do.
    Stalled,
}

/// The summary conditions' state, reason and message.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub health: Health,
    pub reason: Reason,
    pub message: String,
}

impl Summary {
    pub fn ready(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Health::Ready, reason, message)
    }

    pub fn waiting(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Health::Waiting, reason, message)
    }

    pub fn stalled(reason: Reason, message: impl Into<String>) -> Self {
        Self::new(Health::Stalled, reason, message)
    }

    pub fn new(health: Health, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            health,
            reason,
            message: message.into(),
        }
    }
}

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
    set(conditions, READY, is(Health::Ready), reason, message, generation, now);
    let reconciling = if is(Health::Waiting) { message } else { "" };
    set(
        conditions,
        RECONCILING,
        is(Health::Waiting),
        reason,
        reconciling,
        generation,
        now,
    );
    let stalled = if is(Health::Stalled) { message } else { "" };
    set(
        conditions,
        STALLED,
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
