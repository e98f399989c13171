//! Operations done by hand: only those the rules list in `byHand`; the request shows the grant's blast
//! radius (Azure's unit is the guard: every operation it protects, on every vault linked to it), the
//! rules may require the guard to protect the request's vault alone, and the named person is elevated
//! for the approved time only.

use super::*;
use mua_operator::operations::CriticalOperation;

/// Alice (a person in the seed) may be elevated by backup admins for operations done by hand.
const ALICE: &str = "8b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d01";

#[tokio::test]
async fn an_operation_done_by_hand_elevates_the_named_person_for_the_approved_time_only() {
    let op = start("elev-by-hand").await;
    let guard_id = guard_with_by_hand(&op, json!({"byHand": ["ChangeMarsSecurityPin"]})).await;
    request_pin_for_alice(&op).await;
    let target = recorded_target(&op, "pin").await;
    assert!(target["change"].as_str().unwrap().starts_with("ChangeMarsSecurityPin"));
    let radius = op
        .requests()
        .get("pin")
        .await
        .unwrap()
        .status
        .unwrap()
        .blast_radius
        .unwrap();
    assert_eq!(radius.vaults, [vault("prod-vault")], "the one vault on the guard");
    assert!(
        radius.operations.contains(&CriticalOperation::DisableSoftDelete),
        "a person's grant opens the guard's mandatory operations too: {radius:?}"
    );
    decide(&op, User::ApproverA, "pin", "Approve").await;
    phase_is(&op, "pin", RequestPhase::Active).await;
    assert_eq!(alice(&op, &guard_id).await, 1, "Alice holds the role on the guard");
    assert_eq!(
        grants(&op, &guard_id).await,
        0,
        "the operator's own identity is not elevated"
    );
    op.ts.sim.state.clock.advance(Duration::from_secs(901));
    op.nudge(&op.requests(), "pin").await;
    phase_is(&op, "pin", RequestPhase::Expired).await;
    assert_eq!(alice(&op, &guard_id).await, 0);
}

/// The ResourceGuard `guard` whose rules let backup admins elevate Alice, with `extra` rules, and `prod`
/// of `prod-vault` linked to it; returns the guard's ARM ID.
async fn guard_with_by_hand(op: &Operator, extra: Value) -> String {
    let azure_name = op.unique("guard");
    let mut rules = json!({"approvers": {"groups": ["mua-approvers"]},
        "principals": [{"objectId": ALICE, "requesters": {"groups": ["backup-admins"]}}]});
    for (k, v) in extra.as_object().unwrap() {
        rules[k] = v.clone();
    }
    op.create_guard("guard", &azure_name, json!({"elevation": rules})).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), json!({}))
        .await;
    op.ready(&op.protections(), "prod").await;
    guard(&azure_name)
}

/// The backup admin asks to elevate Alice to change the MARS PIN of `prod`.
async fn request_pin_for_alice(op: &Operator) {
    let object = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "pin"},
        "spec": {"vaultProtection": "prod", "operation": "ChangeMarsSecurityPin", "duration": "15m",
                 "justification": "rotate the MARS passphrase", "principal": {"objectId": ALICE}}});
    as_user(op, User::BackupAdmin)
        .await
        .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
        .await
        .unwrap();
}

/// Alice's Backup MUA Operator assignments on the guard.
async fn alice(op: &Operator, guard_id: &str) -> usize {
    authorization::list_for_principal(&op.security, guard_id, ALICE)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.role == authorization::BACKUP_MUA_OPERATOR)
        .count()
}

#[tokio::test]
async fn attack_a_by_hand_elevation_the_rules_do_not_list_fails_before_anyone_approves() {
    // Case 4: a grant for the MARS PIN would open every operation on every vault of the guard; the
    // rules name Alice as a principal, but list no operation as done by hand.
    let op = start("attack-by-hand").await;
    let guard_id = guard_with_by_hand(&op, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    op.reset_calls().await;
    request_pin_for_alice(&op).await;
    let failed = op
        .wait_for(&op.requests(), "pin", "Stalled", "True", Some("ByHandNotAllowed"))
        .await;
    assert_eq!(failed.status.unwrap().phase, Some(RequestPhase::Failed));
    op.assert_no_calls(&["PUT", "PATCH", "POST", "DELETE"], QUIET, "nobody is elevated by hand")
        .await;
    assert_eq!(alice(&op, &guard_id).await, 0);
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Enabled));
}

#[tokio::test]
async fn attack_a_by_hand_elevation_waits_while_the_guard_protects_another_vault_under_sole_vault() {
    let op = start("attack-by-hand-sole").await;
    let guard_id = guard_with_by_hand(&op, json!({"byHand": ["ChangeMarsSecurityPin"], "soleVault": true})).await;
    let backup_vault = format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.DataProtection/backupVaults/prod-backup-vault"
    );
    op.create_protection("other", &backup_vault, json!({"name": "guard"}), json!({}))
        .await;
    op.ready(&op.protections(), "other").await;
    request_pin_for_alice(&op).await;
    op.wait_for(
        &op.requests(),
        "pin",
        "Stalled",
        "True",
        Some("GuardProtectsOtherVaults"),
    )
    .await;
    op.reset_calls().await;
    decide(&op, User::ApproverA, "pin", "Approve").await;
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "Alice is not elevated on a shared guard",
    )
    .await;
    assert_eq!(alice(&op, &guard_id).await, 0);
}

#[tokio::test]
async fn attack_a_vault_linked_after_the_request_widens_its_reach_and_fails_it() {
    // The approvers approve a person's grant for the vaults the guard protects when they look; a vault
    // linked to the guard afterwards would fall under it too, so the request fails instead.
    let op = start("attack-by-hand-grows").await;
    let guard_id = guard_with_by_hand(&op, json!({"byHand": ["ChangeMarsSecurityPin"]})).await;
    request_pin_for_alice(&op).await;
    let seen = recorded_target(&op, "pin").await;
    assert!(seen["change"].as_str().unwrap().contains("on 1 vault(s)"), "{seen}");
    let backup_vault = format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.DataProtection/backupVaults/prod-backup-vault"
    );
    op.create_protection("other", &backup_vault, json!({"name": "guard"}), json!({}))
        .await;
    op.ready(&op.protections(), "other").await;
    op.reset_calls().await;
    // The approver approves what was recorded; the API server refuses it if the operator already failed
    // the request (it may look before the approval): either way it fails and nobody is elevated.
    let approval = decision_entry(User::ApproverA, "Approve", &seen);
    let written = as_user(&op, User::ApproverA)
        .await
        .patch_status(
            "pin",
            &PatchParams::apply("kubectl-mua/approver-a"),
            &Patch::Apply(approval),
        )
        .await;
    if let Err(err) = written {
        assert!(err.to_string().contains("approvals are closed"), "{err}");
    }
    let failed = op
        .wait_for(&op.requests(), "pin", "Stalled", "True", Some("VaultProtectionChanged"))
        .await;
    assert_eq!(failed.status.unwrap().phase, Some(RequestPhase::Failed));
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "Alice is not elevated on a wider guard",
    )
    .await;
    assert_eq!(alice(&op, &guard_id).await, 0);
}
