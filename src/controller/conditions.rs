//! Conditions as kstatus and Argo CD read them: `Ready`, `Reconciling`, `Stalled`, plus specific ones,
//! each with a reason a person can act on and the generation it describes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::shared::Conditions;

/// Sets one condition, keeping its transition time when its status does not change.
pub fn set(
    conditions: &mut Conditions,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let now = Time(jiff::Timestamp::now());
    let transition = conditions
        .get(type_)
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: transition,
    };
    match conditions.0.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.0.push(condition),
    }
}

/// The summary conditions: `Ready` with its reason, and `Stalled` when nothing will change without a
/// person's action; `Reconciling` is cleared once the object has been handled.
pub fn summarize(
    conditions: &mut Conditions,
    ready: bool,
    stalled: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    set(conditions, "Ready", ready, reason, message, generation);
    set(conditions, "Reconciling", false, reason, "", generation);
    set(
        conditions,
        "Stalled",
        stalled,
        reason,
        if stalled { message } else { "" },
        generation,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut conditions = Conditions::default();
        set(&mut conditions, "Ready", true, "Synced", "", Some(1));
        let first = conditions.get("Ready").unwrap().last_transition_time.clone();
        set(&mut conditions, "Ready", true, "Synced", "still", Some(2));
        let ready = conditions.get("Ready").unwrap();
        assert_eq!(ready.last_transition_time, first);
        assert_eq!((ready.message.as_str(), ready.observed_generation), ("still", Some(2)));
        set(&mut conditions, "Ready", false, "Drifted", "", Some(2));
        assert_eq!(conditions.get("Ready").unwrap().status, "False");
        assert_eq!(conditions.0.len(), 1);
    }
}
