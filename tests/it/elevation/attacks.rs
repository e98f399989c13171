//! Attacks on the two-person rule: widened rules, forged approvals, a second request or a second vault on
//! one grant, deleted, recreated or swapped objects, and principals the rules do not allow.

use super::*;

#[tokio::test]
async fn attack_widening_the_rules_from_the_vault_protection_changes_nothing() {
    let op = start("attack-widen").await;
    // The backup admin's VaultProtection asks for one approval and 24 hours; the guard says two and 1h.
    let guard_id = protected(
        &op,
        2,
        json!({"approval": {"requiredApprovals": 1, "maxDuration": "24h"}}),
    )
    .await;
    request(&op, User::BackupAdmin, "long", "DisableSoftDelete", "8h").await;
    op.wait_for(&op.requests(), "long", "Stalled", "True", Some("DurationTooLong"))
        .await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    op.reset_calls().await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    approved_condition_says(&op, "sd", "1 of 2").await;
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "one approval is not the guard's two",
    )
    .await;
    assert_eq!(grants(&op, &guard_id).await, 0);
}

/// Writes `entry` into the request's approvals with the operator's rights (which admission lets
/// through), then asserts the operator does not count it (saying `why`) and grants nothing.
async fn forged_approval_is_not_counted(op: &Operator, guard_id: &str, entry: Value, why: &str) {
    let forged = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
        "status": {"approvals": [entry]}});
    op.reset_calls().await;
    op.requests()
        .patch_status("sd", &PatchParams::apply("forger"), &Patch::Apply(forged))
        .await
        .unwrap();
    approved_condition_says(op, "sd", why).await;
    op.assert_no_calls(&["PUT", "PATCH", "POST", "DELETE"], QUIET, why)
        .await;
    assert_eq!(grants(op, guard_id).await, 0);
}

#[tokio::test]
async fn attack_a_self_approval_written_past_admission_is_not_counted() {
    let op = start("attack-self").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let entry = json!({"approver": "backup-admin", "groups": ["backup-admins", "mua-approvers"], "decision": "Approve",
                       "time": jiff::Timestamp::now().to_string()});
    forged_approval_is_not_counted(&op, &guard_id, entry, "backup-admin is the requester").await;
}

#[tokio::test]
async fn attack_an_approval_by_someone_outside_the_rules_is_not_counted() {
    let op = start("attack-outsider").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let entry = json!({"approver": "security-admin", "groups": ["security-admins"], "decision": "Approve",
                       "time": jiff::Timestamp::now().to_string()});
    forged_approval_is_not_counted(
        &op,
        &guard_id,
        entry,
        "security-admin is not an approver under the guard's rules",
    )
    .await;
}

#[tokio::test]
async fn attack_an_approval_by_a_named_approver_rbac_does_not_allow_is_not_counted() {
    let op = start("attack-rbac").await;
    // The rules name security-admin, but RBAC gives them no `approve` verb: the SubjectAccessReview says no.
    let azure_name = op.unique("guard");
    let elevation = json!({"elevation": {"approvers": {"users": ["security-admin"], "groups": ["mua-approvers"]}}});
    op.create_guard("guard", &azure_name, elevation).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), json!({}))
        .await;
    op.ready(&op.protections(), "prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let entry = json!({"approver": "security-admin", "groups": ["security-admins"], "decision": "Approve",
                       "time": jiff::Timestamp::now().to_string()});
    forged_approval_is_not_counted(
        &op,
        &guard(&azure_name),
        entry,
        "security-admin lacks the approve permission",
    )
    .await;
}

#[tokio::test]
async fn attack_a_second_request_cannot_extend_an_active_elevation() {
    let op = start("attack-extend").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "first", "DisableSoftDelete", "10m").await;
    decide(&op, User::ApproverA, "first", "Approve").await;
    let first = phase_is(&op, "first", RequestPhase::Active).await;
    request(&op, User::BackupAdmin, "second", "DisableSoftDelete", "1h").await;
    approved_but_waiting(&op, "second").await;
    assert_eq!(grants(&op, &guard_id).await, 1, "one grant, not two");
    let again = op.requests().get("first").await.unwrap();
    assert_eq!(
        again.status.unwrap().expires_at,
        first.status.unwrap().expires_at,
        "the first elevation's end did not move"
    );
}

#[tokio::test]
async fn attack_two_vaults_on_one_guard_never_share_one_grant() {
    // Azure keeps one assignment per principal, role and scope: a second grant on the same guard would be
    // the first one, and revoking either would end both. The second request waits instead.
    let op = start("attack-share").await;
    let guard_id = protected(&op, 1, json!({})).await;
    let backup_vault = format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.DataProtection/backupVaults/prod-backup-vault"
    );
    op.create_protection(
        "other",
        &backup_vault,
        json!({"name": "guard"}),
        json!({"softDelete": {"state": "Enabled"}}),
    )
    .await;
    op.ready(&op.protections(), "other").await;
    request(&op, User::BackupAdmin, "first", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "first", "Approve").await;
    phase_is(&op, "first", RequestPhase::Active).await;
    request_for(&op, User::BackupAdmin, "second", "other", "DisableSoftDelete", "30m").await;
    approved_but_waiting(&op, "second").await;
    assert_eq!(grants(&op, &guard_id).await, 1, "one grant, not a shared one");
    revoke(&op, "first").await;
    phase_is(&op, "first", RequestPhase::Revoked).await;
    let second = phase_is(&op, "second", RequestPhase::Active).await;
    assert!(second.status.unwrap().expires_at.is_some());
    assert_eq!(grants(&op, &guard_id).await, 1, "the second request's own grant");
}

#[tokio::test]
async fn attack_requesters_and_backup_admins_cannot_delete_the_record() {
    let op = start("attack-delete-record").await;
    protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Active).await;
    for user in [User::BackupAdmin, User::ApproverA] {
        match as_user(&op, user).await.delete("sd", &DeleteParams::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("{} deleted the request: {other:?}", user.name()),
        }
    }
    let kept = op.requests().get("sd").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none(), "the record is intact");
}

#[tokio::test]
async fn deleting_an_active_request_revokes_its_grant_first() {
    // Only a cluster admin can delete a request; the finalizer still revokes before the object goes.
    let op = start("attack-delete").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Active).await;
    assert_eq!(grants(&op, &guard_id).await, 1);
    op.requests().delete("sd", &DeleteParams::default()).await.unwrap();
    eventually("the request is gone", || async {
        op.requests().get_opt("sd").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(grants(&op, &guard_id).await, 0, "revoked before the object went");
}

#[tokio::test]
async fn attack_a_request_for_a_vault_linked_to_another_guard_is_not_elevated() {
    let op = start("attack-other-guard").await;
    let other = op.ts.create_guard(&op.unique("other")).await;
    vaults::link(
        &op.backup,
        &VaultId::parse(&vault("prod-vault")).unwrap(),
        &mua_operator::azure::guards::GuardId::parse(&other).unwrap(),
    )
    .await
    .unwrap();
    let azure_name = op.unique("guard");
    let elevation = json!({"elevation": {"approvers": {"groups": ["mua-approvers"]}}});
    op.create_guard("guard", &azure_name, elevation).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), json!({}))
        .await;
    op.wait_for(&op.protections(), "prod", "Linked", "False", Some("LinkedToOtherGuard"))
        .await;
    request(&op, User::BackupAdmin, "unlink", "DisableMultiUserAuthorization", "15m").await;
    op.reset_calls().await;
    let stalled = op
        .wait_for(&op.requests(), "unlink", "Stalled", "True", Some("LinkedToOtherGuard"))
        .await;
    // Nothing is recorded as its target, so nobody can approve it at all.
    assert_eq!(stalled.status.unwrap().target, None);
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "nobody is elevated for a vault on another guard",
    )
    .await;
    assert_eq!(grants(&op, &guard(&azure_name)).await, 0);
}

#[tokio::test]
async fn attack_deleting_and_recreating_a_request_starts_over_without_approvals() {
    let op = start("attack-recreate").await;
    let guard_id = protected(&op, 2, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    approved_condition_says(&op, "sd", "1 of 2").await;
    // A cluster admin deletes it (nobody else may); the backup admin asks again under the same name.
    op.requests().delete("sd", &DeleteParams::default()).await.unwrap();
    eventually("the request is gone", || async {
        op.requests().get_opt("sd").await.unwrap().is_none().then_some(())
    })
    .await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    op.reset_calls().await;
    decide(&op, User::ApproverB, "sd", "Approve").await;
    approved_condition_says(&op, "sd", "1 of 2").await;
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "the first approval did not carry over",
    )
    .await;
    assert_eq!(grants(&op, &guard_id).await, 0);
}

#[tokio::test]
async fn attack_elevating_a_principal_the_rules_do_not_allow_fails() {
    let op = start("attack-principal").await;
    let guard_id = protected(&op, 1, json!({})).await;
    let object = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "pin"},
        "spec": {"vaultProtection": "prod", "operation": "ChangeMarsSecurityPin", "duration": "15m",
                 "justification": "rotate the MARS passphrase", "principal": {"objectId": "8b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d01"}}});
    as_user(&op, User::BackupAdmin)
        .await
        .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
        .await
        .unwrap();
    // The operator fails the request as soon as it sees it, before anyone approves.
    let failed = op
        .wait_for(&op.requests(), "pin", "Stalled", "True", Some("PrincipalNotAllowed"))
        .await;
    assert_eq!(failed.status.unwrap().phase, Some(RequestPhase::Failed));
    op.reset_calls().await;
    // An approver who approves anyway is turned away by the API server: approvals are closed.
    let approval = as_user(&op, User::ApproverA)
        .await
        .patch_status(
            "pin",
            &PatchParams::apply("kubectl-mua/approver-a"),
            &Patch::Apply(decision_entry(
                User::ApproverA,
                "Approve",
                &recorded_target(&op, "pin").await,
            )),
        )
        .await;
    match approval {
        Err(kube::Error::Api(status)) => assert!(
            status.code == 403
                && status
                    .message
                    .contains("the request is already Failed; approvals are closed"),
            "{status:?}"
        ),
        other => panic!("the approval of a failed request was not refused: {other:?}"),
    }
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "nobody the rules do not name is elevated",
    )
    .await;
    assert_eq!(grants(&op, &guard_id).await, 0);
}

/// The backup admin's setup for swapping vaults: the VaultProtection `x`, observing a vault nobody minds
/// under the guard `guard`, and a request `sd` to disable soft delete through it.
pub(super) async fn request_through_a_harmless_vault(op: &Operator) {
    op.create_protection(
        "x",
        &vault("prod-backup-vault"),
        json!({"name": "guard"}),
        json!({"managementPolicy": "Observe"}),
    )
    .await;
    request_for(op, User::BackupAdmin, "sd", "x", "DisableSoftDelete", "30m").await;
}

/// The swap: `x` deleted and created again for the production vault, asking for its soft delete off.
pub(super) async fn swap_x_for_the_production_vault(op: &Operator) {
    op.protections().delete("x", &DeleteParams::default()).await.unwrap();
    eventually("x is gone", || async {
        op.protections().get_opt("x").await.unwrap().is_none().then_some(())
    })
    .await;
    op.create_protection(
        "x",
        &vault("prod-vault"),
        json!({"name": "guard"}),
        json!({"softDelete": {"state": "Disabled"}}),
    )
    .await;
}

#[tokio::test]
async fn attack_an_approval_for_one_vault_is_not_used_on_another_under_the_same_name() {
    let op = start("attack-swap").await;
    guard_needing(&op, 1).await;
    request_through_a_harmless_vault(&op).await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Active).await;
    let before = soft_delete(&op).await;
    assert_eq!(before, Some(SoftDelete::Enabled));
    swap_x_for_the_production_vault(&op).await;
    op.wait_for(&op.protections(), "x", "Ready", "False", Some("ElevationRequired"))
        .await;
    op.reset_calls().await;
    op.assert_no_calls(&["PUT", "PATCH"], QUIET, "nothing weakens the production vault")
        .await;
    assert_eq!(soft_delete(&op).await, before, "the approval was for another vault");
    let sd = op.requests().get("sd").await.unwrap();
    assert_eq!(sd.status.unwrap().performed_at, None, "the request is not used");
}

#[tokio::test]
async fn attack_a_vault_protection_swapped_before_the_approval_fails_the_request() {
    let op = start("attack-swap-early").await;
    let azure_name = guard_needing(&op, 1).await;
    request_through_a_harmless_vault(&op).await;
    eventually("the request records what it is for", || async {
        let sd = op.requests().get("sd").await.ok()?;
        sd.status?.target.filter(|t| t.vault_id.ends_with("/prod-backup-vault"))
    })
    .await;
    swap_x_for_the_production_vault(&op).await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    let failed = op
        .wait_for(&op.requests(), "sd", "Stalled", "True", Some("VaultProtectionChanged"))
        .await;
    assert_eq!(failed.status.unwrap().phase, Some(RequestPhase::Failed));
    assert_eq!(grants(&op, &guard(&azure_name)).await, 0, "nobody is elevated");
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Enabled));
}
