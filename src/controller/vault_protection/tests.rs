//! Unit tests of the pure steps (plan, status) and of the checks before a write.

use proptest::prelude::*;
use serde_json::json;

use super::apply::Applied;
use super::observe::{granted_for, vault_id};
use super::perform::{is_item_path, is_name};
use super::plan::{Elevation, Observed, Step, Target, plan};
use super::status::assess;
use crate::azure::guards::GuardId;
use crate::azure::vaults::{self, Link, SoftDelete, Vault, VaultId};
use crate::controller::{Health, Reason};
use crate::crd::VaultProtection;
use crate::crd::critical_operation_request::{GrantTarget, RequestAction};
use crate::crd::vault_protection::VaultProtectionSpec;
use crate::operations::CriticalOperation;

const GUARD: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/g";
const OTHER: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/resourceGuards/other";

fn spec(extra: serde_json::Value) -> VaultProtectionSpec {
    let mut spec = json!({"vault": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"}, "guard": {"id": GUARD}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(spec).unwrap()
}

fn observed(link: Option<&str>, soft_delete: SoftDelete, retention: u32, elevations: &[CriticalOperation]) -> Observed {
    Observed {
        vault: Vault {
            id: "/v".into(),
            location: "westeurope".into(),
            etag: None,
            soft_delete: Some(vaults::SoftDeleteSettings {
                state: soft_delete,
                retention_days: Some(retention),
            }),
            multi_user_authorization: Some(link.is_some()),
        },
        link: link.map(|g| Link {
            id: "/link".into(),
            guard_id: g.into(),
            description: None,
            protected_operations: Vec::new(),
        }),
        elevations: elevations
            .iter()
            .map(|op| Elevation {
                request: format!("req-{op}"),
                operation: *op,
                action: None,
            })
            .collect(),
        untrusted: Vec::new(),
    }
}

fn target() -> GuardId {
    GuardId::parse(GUARD).unwrap()
}

/// A VaultProtection with `uid` for the vault `v` and guard `g`, and what a grant for it records.
fn granted(uid: &str) -> (VaultProtection, VaultId, GrantTarget) {
    let mut vp = VaultProtection::new("prod", spec(json!({})));
    vp.metadata.uid = Some(uid.into());
    let vault = vault_id(&vp.spec.vault).unwrap();
    let grant = GrantTarget {
        vault_protection_uid: uid.into(),
        vault_id: vault.path().to_uppercase(),
        guard_id: GUARD.to_lowercase(),
        change: "DisableSoftDelete".into(),
    };
    (vp, vault, grant)
}

#[test]
fn an_elevation_serves_the_object_vault_and_guard_it_was_granted_for() {
    let (vp, vault, grant) = granted("uid-1");
    assert!(
        granted_for(&grant, &vp, &vault, &target(), "DisableSoftDelete"),
        "ARM IDs in any casing"
    );
}

#[test]
fn an_elevation_does_not_serve_an_object_of_the_same_name_created_again() {
    let (vp, vault, _) = granted("uid-2");
    let (_, _, grant) = granted("uid-1");
    assert!(!granted_for(&grant, &vp, &vault, &target(), "DisableSoftDelete"));
}

#[test]
fn an_elevation_does_not_serve_another_vault() {
    let (vp, _, grant) = granted("uid-1");
    let other =
        VaultId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/w").unwrap();
    assert!(!granted_for(&grant, &vp, &other, &target(), "DisableSoftDelete"));
}

#[test]
fn an_elevation_does_not_serve_another_guard() {
    let (vp, vault, grant) = granted("uid-1");
    assert!(!granted_for(
        &grant,
        &vp,
        &vault,
        &GuardId::parse(OTHER).unwrap(),
        "DisableSoftDelete"
    ));
}

#[test]
fn an_elevation_does_not_serve_another_change() {
    let (vp, vault, grant) = granted("uid-1");
    assert!(!granted_for(
        &grant,
        &vp,
        &vault,
        &target(),
        "DisableMultiUserAuthorization"
    ));
}

#[test]
fn item_paths_stay_under_the_vault() {
    assert!(is_item_path(
        "backupFabrics/Azure/protectionContainers/iaasvmcontainerv2;rg;vm1/protectedItems/vm;iaasvmcontainerv2;rg;vm1"
    ));
    for outside in [
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/other/backupFabrics/Azure/protectionContainers/c/protectedItems/i",
        "backupFabrics/../protectionContainers/c/protectedItems/i",
        "backupFabrics/Azure/protectionContainers/c/protectedItems/..",
        "backupFabrics/Azure/protectionContainers/c/protectedItems/i/../../x",
        "backupFabrics/Azure/protectionContainers/c/protectedItems/i?api-version=1",
        "backupPolicies/daily",
    ] {
        assert!(!is_item_path(outside), "{outside}");
    }
}

#[test]
fn policy_names_are_one_name_under_the_vault() {
    assert!(is_name("daily-90d"));
    for outside in [
        "",
        ".",
        "..",
        "../other",
        "daily/../../x",
        "daily?api-version=1",
        "%2e%2e",
    ] {
        assert!(!is_name(outside), "{outside}");
    }
}

#[test]
fn a_request_with_an_action_is_performed_once_and_never_while_deleting() {
    let mut o = observed(Some(GUARD), SoftDelete::Enabled, 14, &[]);
    let action: RequestAction = serde_json::from_value(json!({"stopProtectionWithDeleteData": {"item": "backupFabrics/Azure/protectionContainers/c/protectedItems/i"}})).unwrap();
    o.elevations.push(Elevation {
        request: "stop".into(),
        operation: CriticalOperation::StopProtectionWithDeleteData,
        action: Some(action.clone()),
    });
    let s = spec(json!({}));
    let p = plan(&s, &target(), &o, true, true, false);
    assert_eq!(
        p.steps,
        [Step::Perform {
            request: "stop".into(),
            action
        }]
    );
    assert!(plan(&s, &target(), &o, true, true, true).steps.is_empty());
}

#[test]
fn a_vault_without_a_link_is_linked_and_a_lost_link_is_a_restore() {
    let o = observed(None, SoftDelete::Enabled, 14, &[]);
    assert_eq!(
        plan(&spec(json!({})), &target(), &o, false, false, false).steps,
        [Step::Link { restore: false }]
    );
    assert_eq!(
        plan(&spec(json!({})), &target(), &o, true, false, false).steps,
        [Step::Link { restore: true }]
    );
}

#[test]
fn a_vault_linked_to_another_guard_is_left_alone() {
    let p = plan(
        &spec(json!({})),
        &target(),
        &observed(Some(OTHER), SoftDelete::Enabled, 14, &[]),
        false,
        false,
        false,
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.blockers[0].reason, Reason::LinkedToOtherGuard);
}

#[test]
fn unlinking_needs_an_active_request_for_it() {
    let s = spec(json!({"multiUserAuthorization": "Disabled"}));
    let without = plan(
        &s,
        &target(),
        &observed(
            Some(GUARD),
            SoftDelete::Enabled,
            14,
            &[CriticalOperation::DisableSoftDelete],
        ),
        true,
        true,
        false,
    );
    assert!(without.steps.is_empty());
    assert_eq!(
        without.elevation_required,
        [CriticalOperation::DisableMultiUserAuthorization]
    );
    let with = plan(
        &s,
        &target(),
        &observed(
            Some(GUARD),
            SoftDelete::Enabled,
            14,
            &[CriticalOperation::DisableMultiUserAuthorization],
        ),
        true,
        true,
        false,
    );
    assert_eq!(
        with.steps,
        [Step::Unlink {
            request: "req-DisableMultiUserAuthorization".into()
        }]
    );
}

#[test]
fn soft_delete_is_strengthened_at_once_and_weakened_only_under_a_request() {
    let on = spec(json!({"softDelete": {"state": "AlwaysOn"}}));
    let p = plan(
        &on,
        &target(),
        &observed(Some(GUARD), SoftDelete::Disabled, 14, &[]),
        true,
        true,
        false,
    );
    assert!(matches!(
        p.steps[..],
        [Step::StrengthenSoftDelete { restore: true, .. }]
    ));

    let off = spec(json!({"softDelete": {"state": "Disabled"}}));
    let p = plan(
        &off,
        &target(),
        &observed(Some(GUARD), SoftDelete::Enabled, 14, &[]),
        true,
        true,
        false,
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.elevation_required, [CriticalOperation::DisableSoftDelete]);

    let shorter = spec(json!({"softDelete": {"state": "Enabled", "retentionDays": 14}}));
    let p = plan(
        &shorter,
        &target(),
        &observed(Some(GUARD), SoftDelete::Enabled, 30, &[]),
        true,
        true,
        false,
    );
    assert_eq!(
        p.elevation_required,
        [CriticalOperation::DisableSoftDelete],
        "shorter retention is a weakening"
    );

    let longer = spec(json!({"softDelete": {"state": "Enabled", "retentionDays": 60}}));
    let p = plan(
        &longer,
        &target(),
        &observed(Some(GUARD), SoftDelete::Enabled, 30, &[]),
        true,
        true,
        false,
    );
    assert!(matches!(p.steps[..], [Step::StrengthenSoftDelete { .. }]));
}

#[test]
fn always_on_is_never_weakened() {
    let s = spec(json!({"softDelete": {"state": "Enabled"}}));
    let p = plan(
        &s,
        &target(),
        &observed(
            Some(GUARD),
            SoftDelete::AlwaysOn,
            14,
            &[CriticalOperation::DisableSoftDelete],
        ),
        true,
        true,
        false,
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.blockers[0].reason, Reason::AlwaysOnCannotBeWeakened);
}

fn target_with(description: Option<&str>) -> Target {
    Target {
        id: target(),
        region: None,
        description: description.map(str::to_string),
    }
}

fn applied_from(o: &Observed) -> Applied {
    Applied {
        link: o.link.clone(),
        soft_delete: o.vault.soft_delete,
        ..Default::default()
    }
}

#[test]
fn a_wanted_weakening_waits_naming_the_request_and_how_to_ask() {
    let s = spec(json!({"multiUserAuthorization": "Disabled"}));
    let o = observed(Some(GUARD), SoftDelete::Enabled, 14, &[]);
    let p = plan(&s, &target(), &o, true, true, false);
    let a = assess(
        &s,
        &target_with(Some("ask #sec")),
        &p,
        &applied_from(&o),
        &p.blockers,
        false,
    );
    assert!(a.linked.0, "still linked");
    assert_eq!(a.linked.1, Reason::ElevationRequired);
    assert_eq!(
        (a.summary.health, a.summary.reason),
        (Health::Waiting, Reason::ElevationRequired)
    );
    assert!(a.summary.message.contains("DisableMultiUserAuthorization") && a.summary.message.contains("ask #sec"));
}

#[test]
fn blockers_stall_the_object_and_every_one_is_named() {
    let s = spec(json!({"softDelete": {"state": "Enabled"}}));
    let o = observed(Some(OTHER), SoftDelete::AlwaysOn, 14, &[]);
    let p = plan(&s, &target(), &o, false, false, false);
    let a = assess(&s, &target_with(None), &p, &applied_from(&o), &p.blockers, false);
    assert_eq!(
        (a.summary.health, a.summary.reason),
        (Health::Stalled, Reason::LinkedToOtherGuard)
    );
    assert!(
        a.summary.message.contains(OTHER) && a.summary.message.contains("AlwaysOn"),
        "{}",
        a.summary.message
    );
    assert_eq!(a.soft_delete_synced.1, Reason::AlwaysOnCannotBeWeakened);
}

#[test]
fn under_observe_drift_is_ready_but_not_synced() {
    let s = spec(json!({"managementPolicy": "Observe"}));
    let o = observed(None, SoftDelete::Enabled, 14, &[]);
    let p = plan(&s, &target(), &o, true, true, false);
    let a = assess(&s, &target_with(None), &p, &applied_from(&o), &p.blockers, false);
    assert_eq!((a.summary.health, a.summary.reason), (Health::Ready, Reason::Observed));
    assert_eq!((a.synced.0, a.synced.1), (false, Reason::Drifted));
    assert_eq!((a.linked.0, a.linked.1), (false, Reason::Drifted));
}

fn any_state() -> impl Strategy<Value = SoftDelete> {
    prop_oneof![
        Just(SoftDelete::Disabled),
        Just(SoftDelete::Enabled),
        Just(SoftDelete::AlwaysOn)
    ]
}

proptest! {
    /// Whatever the spec and Azure hold, no step weakens protection without an active request for
    /// exactly that operation, unless the vault is and stays outside MUA.
    #[test]
    fn nothing_weakens_without_the_matching_request(
        wanted in prop_oneof![Just("Enabled"), Just("AlwaysOn"), Just("Disabled")],
        retention in proptest::option::of(14i32..=180),
        mua in prop_oneof![Just("Enabled"), Just("Disabled")],
        deletion in prop_oneof![Just("Orphan"), Just("Unlink")],
        link in prop_oneof![Just(None), Just(Some(GUARD)), Just(Some(OTHER))],
        current in any_state(),
        current_retention in 14u32..=180,
        elevations in proptest::sample::subsequence(vec![CriticalOperation::DisableSoftDelete, CriticalOperation::DisableMultiUserAuthorization], 0..=2),
        deleting: bool,
        was_linked: bool,
    ) {
        let mut sd = json!({"state": wanted});
        if let Some(days) = retention {
            sd["retentionDays"] = json!(days);
        }
        let s = spec(json!({"softDelete": sd, "multiUserAuthorization": mua, "deletionPolicy": deletion}));
        let o = observed(link, current, current_retention, &elevations);
        let p = plan(&s, &target(), &o, was_linked, true, deleting);
        for step in &p.steps {
            match step {
                Step::Unlink { .. } => {
                    prop_assert!(elevations.contains(&CriticalOperation::DisableMultiUserAuthorization));
                    prop_assert_eq!(link, Some(GUARD), "only our own link is removed");
                }
                Step::WeakenSoftDelete { request: Some(_), .. } => {
                    prop_assert!(elevations.contains(&CriticalOperation::DisableSoftDelete));
                }
                Step::WeakenSoftDelete { request: None, .. } => {
                    prop_assert!(link.is_none() && mua == "Disabled");
                }
                Step::StrengthenSoftDelete { change, .. } => {
                    prop_assert!(change.state >= current);
                    prop_assert!(change.retention_days.is_none_or(|d| d >= current_retention));
                }
                Step::Link { .. } => prop_assert!(link.is_none() && mua == "Enabled" && !deleting),
                Step::Perform { .. } => prop_assert!(false, "no request here carries an action"),
            }
            if current == SoftDelete::AlwaysOn {
                prop_assert!(!matches!(step, Step::WeakenSoftDelete { .. }), "AlwaysOn is never weakened");
            }
        }
    }
}
