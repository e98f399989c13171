//! Unit tests of the pure steps: the rules (narrowing, spec checks, target binding), approvals, the state
//! machine, and what Azure is told.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::approvals::{Judged, Judging, judge};
use super::decide::{Decision, Observed, PimActivation, decide};
use super::grant::schedule_spec;
use super::policy::{Refusal, Resolved, check_pim, check_spec, narrowed, same_target};
use super::status::retention_ends;
use crate::azure::authorization::{RequestType, ScheduleStatus};
use crate::azure::guards::GuardId;
use crate::controller::Reason;
use crate::controller::admission::AdmissionProblems;
use crate::controller::outcome::{Health, Requeue};
use crate::crd::critical_operation_request::{
    Approval, CriticalOperationRequestStatus, Decision as Verdict, EffectivePolicy, Elevation, GrantTarget,
    RequestPhase,
};
use crate::crd::elevation_policy::{ElevationRole, ElevationRules, Subjects};
use crate::crd::shared::ApprovalBackend;
use crate::crd::{CriticalOperationRequest, VaultProtection};
use crate::operations::CriticalOperation;

fn rules() -> ElevationRules {
    serde_json::from_value(
        json!({"approvers": {"groups": ["mua-approvers"], "users": ["carol"]}, "requiredApprovals": 2}),
    )
    .unwrap()
}

/// The operator's clock in these tests.
fn now() -> Timestamp {
    Timestamp::from_second(1_000_000).unwrap()
}

/// An entry given a minute ago for what `resolved()` records.
fn approval(who: &str, groups: &[&str], decision: Verdict) -> Approval {
    Approval {
        approver: who.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        decision,
        time: Time(now() - Duration::from_secs(60)),
        comment: None,
        target: Some(resolved().target()),
    }
}

/// Judges as bob's request for `resolved()`'s target, with approvals valid for an hour.
fn judge_for_bob(entries: &[Approval], may: &BTreeMap<String, bool>) -> Judged {
    let rules = rules();
    let target = resolved().target();
    let on = Judging {
        requester: "bob",
        rules: &rules,
        target: Some(&target),
        now: now(),
        validity: Duration::from_secs(3600),
    };
    judge(entries, on, may)
}

fn rbac(allowed: &[&str]) -> BTreeMap<String, bool> {
    allowed.iter().map(|a| (a.to_string(), true)).collect()
}

#[test]
fn the_requester_never_counts_as_an_approver() {
    let judged = judge_for_bob(
        &[approval("bob", &["mua-approvers"], Verdict::Approve)],
        &rbac(&["bob"]),
    );
    assert!(judged.approvers.is_empty());
    assert_eq!(judged.ignored, ["bob is the requester"]);
}

#[test]
fn an_approval_counts_only_from_a_named_approver_whom_rbac_allows() {
    let entries = [
        approval("alice", &["mua-approvers"], Verdict::Approve),
        approval("mallory", &["backup-admins"], Verdict::Approve),
        approval("carol", &[], Verdict::Approve),
        approval("dave", &["mua-approvers"], Verdict::Approve),
        approval(
            "system:serviceaccount:argocd:argocd-application-controller",
            &["mua-approvers"],
            Verdict::Approve,
        ),
    ];
    let judged = judge_for_bob(
        &entries,
        &rbac(&[
            "alice",
            "mallory",
            "carol",
            "system:serviceaccount:argocd:argocd-application-controller",
        ]),
    );
    assert_eq!(judged.approvers, ["alice", "carol"]);
    assert_eq!(judged.ignored.len(), 3, "{:?}", judged.ignored);
}

#[test]
fn a_valid_denial_wins_and_an_invalid_one_does_not() {
    let entries = [
        approval("alice", &["mua-approvers"], Verdict::Approve),
        approval("bob", &["mua-approvers"], Verdict::Deny),
    ];
    let judged = judge_for_bob(&entries, &rbac(&["alice", "bob"]));
    assert_eq!(
        judged.denied_by, None,
        "the requester cannot deny on others' behalf either"
    );
    let entries = [approval("carol", &[], Verdict::Deny)];
    let judged = judge_for_bob(&entries, &rbac(&["carol"]));
    assert_eq!(judged.denied_by, Some(("carol".into(), None)));
}

#[test]
fn an_approval_counts_only_for_the_target_it_names() {
    let mut other = approval("alice", &["mua-approvers"], Verdict::Approve);
    other.target = Some(GrantTarget {
        vault_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/decoy".into(),
        ..resolved().target()
    });
    let mut unnamed = approval("carol", &[], Verdict::Approve);
    unnamed.target = None;
    let judged = judge_for_bob(&[other, unnamed], &rbac(&["alice", "carol"]));
    assert!(judged.approvers.is_empty(), "{judged:?}");
    assert!(
        judged.ignored[0].contains("not for what the request is for now"),
        "{judged:?}"
    );
    assert!(
        judged.ignored[1].contains("does not say what it approves"),
        "{judged:?}"
    );
}

#[test]
fn no_approval_counts_before_the_target_is_recorded() {
    let rules = rules();
    let on = Judging {
        requester: "bob",
        rules: &rules,
        target: None,
        now: now(),
        validity: Duration::from_secs(3600),
    };
    let judged = judge(
        &[approval("alice", &["mua-approvers"], Verdict::Approve)],
        on,
        &rbac(&["alice"]),
    );
    assert!(judged.approvers.is_empty());
    assert!(judged.ignored[0].contains("before the operator recorded"), "{judged:?}");
}

#[test]
fn an_approval_counts_only_while_it_is_fresh() {
    let mut old = approval("alice", &["mua-approvers"], Verdict::Approve);
    old.time = Time(now() - Duration::from_secs(3600));
    let mut future = approval("carol", &[], Verdict::Approve);
    future.time = Time(now() + Duration::from_secs(3600));
    let judged = judge_for_bob(&[old, future], &rbac(&["alice", "carol"]));
    assert!(judged.approvers.is_empty(), "{judged:?}");
    assert!(
        judged.ignored[0].contains("older than the rules' approvalValidity (1h)"),
        "{judged:?}"
    );
    assert!(judged.ignored[1].contains("in the future"), "{judged:?}");
}

#[test]
fn a_fresh_approval_says_when_it_stops_counting() {
    let judged = judge_for_bob(
        &[approval("alice", &["mua-approvers"], Verdict::Approve)],
        &rbac(&["alice"]),
    );
    assert_eq!(judged.approvers, ["alice"]);
    assert_eq!(
        judged.first_expiry,
        Some(now() - Duration::from_secs(60) + Duration::from_secs(3600))
    );
}

#[test]
fn a_denial_counts_whatever_it_was_for() {
    let mut denial = approval("alice", &["mua-approvers"], Verdict::Deny);
    denial.target = None;
    denial.time = Time(Timestamp::UNIX_EPOCH);
    let judged = judge_for_bob(&[denial], &rbac(&["alice"]));
    assert_eq!(judged.denied_by, Some(("alice".into(), None)));
}

fn resolved() -> Resolved {
    Resolved {
        guard: GuardId::new("s", "rg", "g"),
        vault_protection_uid: "uid-1".into(),
        vault: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v".into(),
        change: "DisableSoftDelete".into(),
        guard_description: None,
        rules: rules(),
        policy: EffectivePolicy {
            required_approvals: 2,
            max_duration: "1h".into(),
            approval_validity: "1h".into(),
            rules_from: "ResourceGuard team-a/guard".into(),
            owner_namespace: "team-a".into(),
            retention_days: Some(90),
            backend: ApprovalBackend::Kubernetes,
            role: ElevationRole::BackupMuaOperator,
        },
        max_duration: Duration::from_secs(3600),
        approval_validity: Duration::from_secs(3600),
        excluded: Vec::new(),
        blast_radius: None,
    }
}

fn observed() -> Observed {
    Observed {
        phase: RequestPhase::Pending,
        now: Timestamp::from_second(1_000_000).unwrap(),
        resolved: Ok(resolved()),
        duration: Ok(Duration::from_secs(600)),
        admission: Ok(()),
        record_fingerprint: None,
        judged: Judged {
            approvers: vec!["alice".into(), "carol".into()],
            ..Default::default()
        },
        other_active: None,
        expires_at: None,
        granted: false,
        performed: false,
        action_failed: None,
        revoked_by: None,
        pim: None,
        pim_policy: None,
        retention_ends: None,
        ending: None,
    }
}

#[test]
fn enough_valid_approvals_grant() {
    assert_eq!(
        decide(&observed()),
        Decision::Grant {
            approvers: vec!["alice".into(), "carol".into()],
            resolved: resolved(),
            duration: Duration::from_secs(600),
        }
    );
}

#[test]
fn too_few_approvals_wait() {
    let mut o = observed();
    o.judged.approvers.pop();
    assert!(matches!(
        decide(&o),
        Decision::Wait {
            reason: Reason::ApprovalPending,
            ..
        }
    ));
}

#[test]
fn a_request_fails_when_the_admission_policies_are_missing_or_altered() {
    let mut o = observed();
    o.admission = Err(AdmissionProblems {
        missing: vec!["ValidatingAdmissionPolicy x".into()],
        ..Default::default()
    });
    assert!(matches!(
        decide(&o),
        Decision::End {
            phase: RequestPhase::Failed,
            reason: Reason::AdmissionPoliciesMissing,
            ..
        }
    ));
    o.admission = Err(AdmissionProblems {
        altered: vec!["ValidatingAdmissionPolicyBinding y (spec.validationActions[0])".into()],
        ..Default::default()
    });
    match decide(&o) {
        Decision::End {
            phase: RequestPhase::Failed,
            reason: Reason::AdmissionPoliciesAltered,
            message,
            ..
        } => assert!(message.contains("ValidatingAdmissionPolicyBinding y"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn policies_that_cannot_be_read_now_only_hold_the_request() {
    let mut o = observed();
    o.admission = Err(AdmissionProblems {
        unreadable: vec!["ValidatingAdmissionPolicy x (cannot read it: timeout)".into()],
        ..Default::default()
    });
    assert!(matches!(
        decide(&o),
        Decision::Wait {
            health: Health::Stalled,
            ..
        }
    ));
}

#[test]
fn a_second_elevation_for_the_same_operation_waits_and_is_never_merged() {
    let mut o = observed();
    o.other_active = Some("first".into());
    assert!(matches!(
        decide(&o),
        Decision::Wait {
            reason: Reason::AnotherElevationActive,
            ..
        }
    ));
}

#[test]
fn an_active_elevation_ends_at_its_time_exactly() {
    let mut o = observed();
    o.phase = RequestPhase::Active;
    o.granted = true;
    o.expires_at = Some(o.now + jiff::SignedDuration::from_secs(90));
    assert!(matches!(decide(&o), Decision::Wait { requeue: Requeue::At(at), .. } if Some(at) == o.expires_at));
    o.expires_at = Some(o.now);
    assert!(matches!(
        decide(&o),
        Decision::End {
            phase: RequestPhase::Expired,
            ..
        }
    ));
}

#[test]
fn a_performed_operation_completes_and_a_revocation_ends_at_once() {
    let mut o = observed();
    o.phase = RequestPhase::Active;
    o.granted = true;
    o.expires_at = Some(o.now + jiff::SignedDuration::from_secs(90));
    o.performed = true;
    assert!(matches!(
        decide(&o),
        Decision::End {
            phase: RequestPhase::Completed,
            ..
        }
    ));
    o.revoked_by = Some(("bob".into(), None));
    assert!(matches!(decide(&o), Decision::End { phase: RequestPhase::Revoked, ref actor, .. } if actor == "bob"));
}

#[test]
fn an_action_the_backup_side_could_not_perform_fails_the_request_and_ends_the_grant() {
    let mut o = observed();
    o.phase = RequestPhase::Active;
    o.granted = true;
    o.expires_at = Some(o.now + jiff::SignedDuration::from_secs(90));
    o.action_failed = Some("the vault has no protected item x".into());
    assert!(matches!(
        decide(&o),
        Decision::End { phase: RequestPhase::Failed, ref message, .. } if message.contains("no protected item x")
    ));
}

#[test]
fn a_request_longer_than_the_rules_allow_fails() {
    let cor: CriticalOperationRequest = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "r"},
        "spec": {"vaultProtection": "vp", "operation": "DisableSoftDelete", "duration": "2h", "justification": "j", "requester": "bob"}
    }))
    .unwrap();
    let refusal = check_spec(&cor, &resolved()).unwrap_err();
    assert_eq!((refusal.reason, refusal.fatal), (Reason::DurationTooLong, true));
}

#[test]
fn a_request_stays_bound_to_what_it_was_made_for() {
    let mut previous = CriticalOperationRequestStatus::default();
    assert!(same_target(&previous, resolved()).is_ok(), "nothing recorded yet");
    previous.target = Some(GrantTarget {
        vault_id: resolved().target().vault_id.to_uppercase(),
        ..resolved().target()
    });
    assert!(same_target(&previous, resolved()).is_ok(), "ARM IDs in any casing");
    for changed in [
        Resolved {
            vault_protection_uid: "uid-2".into(),
            ..resolved()
        },
        Resolved {
            vault: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/w".into(),
            ..resolved()
        },
        Resolved {
            guard: GuardId::new("s", "rg", "other"),
            ..resolved()
        },
    ] {
        let refusal = same_target(&previous, changed).unwrap_err();
        assert_eq!((refusal.reason, refusal.fatal), (Reason::VaultProtectionChanged, true));
    }
}

#[test]
fn azure_is_told_who_asked_and_for_which_vault() {
    let cor: CriticalOperationRequest = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "r", "namespace": "team"},
        "spec": {"vaultProtection": "vp", "operation": "DisableSoftDelete", "duration": "10m", "justification": "decommission",
                 "requester": "alice@contoso.example"},
        "status": {"target": {"vaultProtectionUid": "u", "vaultId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v",
                              "guardId": "g"}}
    }))
    .unwrap();
    let spec = schedule_spec(
        &cor,
        &Elevation::default(),
        "role",
        RequestType::SelfActivate,
        Duration::from_secs(600),
    );
    assert_eq!(
        spec.justification,
        "DisableSoftDelete on /subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v for alice@contoso.example (team/r): decommission"
    );
}

#[test]
fn a_principal_outside_the_rules_is_refused() {
    let cor: CriticalOperationRequest = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "r"},
        "spec": {"vaultProtection": "vp", "operation": "ChangeMarsSecurityPin", "duration": "10m", "justification": "j",
                 "requester": "bob", "requesterGroups": ["backup-admins"], "principal": {"objectId": "9f2c1d4e-5b6a-4c3d-8e7f-0a1b2c3d4e5f"}}
    }))
    .unwrap();
    let mut r = resolved();
    assert_eq!(check_spec(&cor, &r).unwrap_err().reason, Reason::ByHandNotAllowed);
    r.rules.by_hand.push(CriticalOperation::ChangeMarsSecurityPin);
    assert_eq!(check_spec(&cor, &r).unwrap_err().reason, Reason::PrincipalNotAllowed);
    r.rules.principals.push(crate::crd::elevation_policy::AllowedPrincipal {
        object_id: "9F2C1D4E-5B6A-4C3D-8E7F-0A1B2C3D4E5F".into(),
        requesters: Subjects {
            groups: vec!["backup-admins".into()],
            ..Default::default()
        },
    });
    assert_eq!(check_spec(&cor, &r), Ok(Duration::from_secs(600)));
}

#[test]
fn a_by_hand_elevation_waits_while_the_guard_protects_other_vaults_if_the_rules_say_so() {
    let cor: CriticalOperationRequest = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "r"},
        "spec": {"vaultProtection": "vp", "operation": "ChangeMarsSecurityPin", "duration": "10m", "justification": "j",
                 "requester": "bob", "principal": {"objectId": "9f2c1d4e-5b6a-4c3d-8e7f-0a1b2c3d4e5f"}}
    }))
    .unwrap();
    let mut r = resolved();
    r.rules.by_hand.push(CriticalOperation::ChangeMarsSecurityPin);
    r.rules.sole_vault = true;
    r.rules.principals.push(crate::crd::elevation_policy::AllowedPrincipal {
        object_id: "9f2c1d4e-5b6a-4c3d-8e7f-0a1b2c3d4e5f".into(),
        requesters: Subjects {
            users: vec!["bob".into()],
            ..Default::default()
        },
    });
    r.blast_radius = Some(crate::crd::critical_operation_request::BlastRadius {
        vaults: vec![
            r.vault.to_uppercase(),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/other".into(),
        ],
        operations: Vec::new(),
    });
    let refusal = check_spec(&cor, &r).unwrap_err();
    assert_eq!(
        (refusal.reason, refusal.fatal),
        (Reason::GuardProtectsOtherVaults, false)
    );
    assert!(refusal.message.contains("/vaults/other"), "{}", refusal.message);
    r.blast_radius.as_mut().unwrap().vaults.pop();
    assert_eq!(
        check_spec(&cor, &r),
        Ok(Duration::from_secs(600)),
        "its own vault alone"
    );
}

#[test]
fn the_vault_protection_only_narrows() {
    let mut vp: VaultProtection = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "vp"},
        "spec": {"vault": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"}, "guard": {"name": "g"},
                 "approval": {"requiredApprovals": 1, "maxDuration": "24h"}}
    }))
    .unwrap();
    let (policy, max) = narrowed(&rules(), &vp, Some("bob"));
    assert_eq!((policy.required_approvals, max), (2, Duration::from_secs(3600)));
    vp.spec.approval.required_approvals = Some(3);
    vp.spec.approval.max_duration = Some("10m".into());
    let (policy, max) = narrowed(&rules(), &vp, Some("bob"));
    assert_eq!((policy.required_approvals, max), (3, Duration::from_secs(600)));
}

#[test]
fn a_request_made_by_a_service_account_needs_one_approval_more() {
    let vp: VaultProtection = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "vp"},
        "spec": {"vault": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"}, "guard": {"name": "g"}}
    }))
    .unwrap();
    let mut one = rules();
    one.required_approvals = 1;
    let argocd = Some("system:serviceaccount:argocd:argocd-application-controller");
    assert_eq!(narrowed(&one, &vp, argocd).0.required_approvals, 2);
    assert_eq!(narrowed(&one, &vp, Some("alice")).0.required_approvals, 1);
}

#[test]
fn pim_must_require_an_approval_by_someone_else() {
    use crate::azure::authorization::ActivationApproval;
    let approval = |required: bool, approvers: &[&str]| ActivationApproval {
        required,
        approvers: approvers.iter().map(|a| a.to_string()).collect(),
    };
    let reason = |a: &ActivationApproval| check_pim(a, "backup-oid", &["alice-oid".to_string()]).map_err(|r| r.reason);
    assert_eq!(
        reason(&approval(false, &["bob-oid"])),
        Err(Reason::PimApprovalNotRequired)
    );
    assert_eq!(reason(&approval(true, &[])), Err(Reason::PimApprovalNotRequired));
    assert_eq!(
        reason(&approval(true, &["bob-oid", "BACKUP-OID"])),
        Err(Reason::PimApproverIsRequester)
    );
    assert_eq!(
        reason(&approval(true, &["alice-oid"])),
        Err(Reason::PimApproverIsRequester)
    );
    assert_eq!(reason(&approval(true, &["bob-oid"])), Ok(()));
}

#[test]
fn under_pim_another_person_approves_in_kubernetes_before_activation() {
    let mut o = observed();
    o.resolved.as_mut().unwrap().policy.backend = ApprovalBackend::Pim;
    o.pim_policy = Some(Ok(()));
    o.judged.approvers.clear();
    assert!(matches!(
        decide(&o),
        Decision::Wait {
            reason: Reason::ApprovalPending,
            ..
        }
    ));
    o.judged.approvers = vec!["alice".into(), "carol".into()];
    assert!(matches!(decide(&o), Decision::Activate { .. }));
    o.pim_policy = Some(Err(Refusal::waiting(Reason::PimApprovalNotRequired, "no approval")));
    assert!(matches!(
        decide(&o),
        Decision::Wait {
            reason: Reason::PimApprovalNotRequired,
            ..
        }
    ));
}

#[test]
fn an_ended_request_is_kept_until_its_retention_ends() {
    let mut status = CriticalOperationRequestStatus::default();
    assert_eq!(retention_ends(&status), None, "not ended");
    status.phase = Some(RequestPhase::Completed);
    status.history.push(crate::crd::critical_operation_request::Transition {
        phase: RequestPhase::Completed,
        actor: "mua-operator".into(),
        time: Time(now()),
        reason: None,
        message: None,
    });
    assert_eq!(
        retention_ends(&status),
        Some(now() + Duration::from_secs(90 * 86_400)),
        "the default"
    );
    status.policy = Some(EffectivePolicy {
        retention_days: Some(7),
        ..Default::default()
    });
    assert_eq!(retention_ends(&status), Some(now() + Duration::from_secs(7 * 86_400)));
    status.elevation = Some(Elevation::default());
    assert_eq!(
        retention_ends(&status),
        None,
        "never while an elevation may be in force"
    );
}

#[test]
fn an_ended_request_looks_again_when_its_retention_ends() {
    let mut o = observed();
    o.phase = RequestPhase::Completed;
    o.retention_ends = Some(now() + Duration::from_secs(60));
    assert!(matches!(
        decide(&o),
        Decision::Wait {
            requeue: Requeue::At(_),
            ..
        }
    ));
}

#[test]
fn under_pim_an_allowed_activation_waits_for_the_backup_side_and_fails_with_what_it_refused() {
    let mut o = observed();
    o.granted = true;
    o.pim = Some(PimActivation::NotAsked);
    assert!(matches!(
        decide(&o),
        Decision::Wait {
            reason: Reason::AwaitingActivation,
            health: Health::Waiting,
            ..
        }
    ));
    o.action_failed = Some("only 0 of the 1 approvals hold".into());
    assert!(matches!(
        decide(&o),
        Decision::End {
            phase: RequestPhase::Failed,
            ref message,
            ..
        } if message.contains("only 0 of the 1 approvals hold")
    ));
    o.action_failed = None;
    o.pim = Some(PimActivation::Asked(ScheduleStatus::PendingApproval));
    assert!(matches!(
        decide(&o),
        Decision::Wait {
            reason: Reason::PendingApprovalInAzure,
            ..
        }
    ));
    o.pim = Some(PimActivation::Asked(ScheduleStatus::Provisioned));
    assert_eq!(decide(&o), Decision::Provisioned);
}

#[test]
fn pim_statuses_are_in_force_over_or_waiting_and_an_unknown_one_is_never_over() {
    assert!(ScheduleStatus::Provisioned.is_in_force());
    assert!(ScheduleStatus::Canceled.is_over());
    assert!(ScheduleStatus::PendingApproval.is_waiting());
    assert!(ScheduleStatus::PendingProvisioning.is_waiting());
    assert!(ScheduleStatus::Other("SomethingNew".into()).is_waiting());
}
