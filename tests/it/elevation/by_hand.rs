//! Operations done by hand: the named person is elevated for the approved time only.

use super::*;

/// Alice (a person in the seed) may be elevated by backup admins for operations done by hand.
const ALICE: &str = "8b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d01";

#[tokio::test]
async fn an_operation_done_by_hand_elevates_the_named_person_for_the_approved_time_only() {
    let op = start("elev-by-hand").await;
    let azure_name = op.unique("guard");
    let elevation = json!({"elevation": {"approvers": {"groups": ["mua-approvers"]},
        "principals": [{"objectId": ALICE, "requesters": {"groups": ["backup-admins"]}}]}});
    op.create_guard("guard", &azure_name, elevation).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), json!({}))
        .await;
    op.ready(&op.protections(), "prod").await;
    let guard_id = guard(&azure_name);
    let object = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "pin"},
        "spec": {"vaultProtection": "prod", "operation": "ChangeMarsSecurityPin", "duration": "15m",
                 "justification": "rotate the MARS passphrase", "principal": {"objectId": ALICE}}});
    as_user(&op, User::BackupAdmin)
        .await
        .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
        .await
        .unwrap();
    decide(&op, User::ApproverA, "pin", "Approve").await;
    phase_is(&op, "pin", RequestPhase::Active).await;
    let alice = |op: &Operator| {
        let guard_id = guard_id.clone();
        let security = op.security.clone();
        async move {
            authorization::list_for_principal(&security, &guard_id, ALICE)
                .await
                .unwrap()
                .into_iter()
                .filter(|a| a.role == authorization::BACKUP_MUA_OPERATOR)
                .count()
        }
    };
    assert_eq!(alice(&op).await, 1, "Alice holds the role on the guard");
    assert_eq!(
        grants(&op, &guard_id).await,
        0,
        "the operator's own identity is not elevated"
    );
    op.ts.sim.state.clock.advance(Duration::from_secs(901));
    op.nudge(&op.requests(), "pin").await;
    phase_is(&op, "pin", RequestPhase::Expired).await;
    assert_eq!(alice(&op).await, 0);
}
