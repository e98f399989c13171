//! Privileged Identity Management as the backend: the operator asks PIM to activate the backup identity's
//! eligible role, waits for PIM's approver, performs, then deactivates.

use super::*;

#[tokio::test]
async fn under_pim_the_operator_activates_waits_for_pims_approver_performs_then_deactivates() {
    let op = start("elev-pim").await;
    let guard_id = protected_by_pim(&op).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    op.wait_for(
        &op.requests(),
        "sd",
        "Approved",
        "False",
        Some("PendingApprovalInAzure"),
    )
    .await;
    assert_eq!(
        soft_delete(&op).await,
        Some(SoftDelete::Enabled),
        "nothing before PIM approves"
    );
    assert_eq!(contributor_grants(&op, &guard_id).await, 0);

    approve_in_pim(&op, "sd").await;
    op.nudge(&op.requests(), "sd").await;
    // Performed at once; PIM refuses the deactivation for five minutes, and the request says so.
    let refused = op
        .wait_for(&op.requests(), "sd", "Reconciling", "True", Some("DeactivationRefused"))
        .await;
    assert!(refused.status.unwrap().performed_at.is_some());
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Disabled));
    assert_eq!(
        contributor_grants(&op, &guard_id).await,
        1,
        "still active inside PIM's five minutes"
    );

    op.ts.sim.state.clock.advance(Duration::from_secs(301));
    op.nudge(&op.requests(), "sd").await;
    let done = phase_is(&op, "sd", RequestPhase::Completed).await;
    assert_eq!(contributor_grants(&op, &guard_id).await, 0, "self-deactivated");
    assert_eq!(
        phases(&done),
        [
            RequestPhase::Pending,
            RequestPhase::Approved,
            RequestPhase::Active,
            RequestPhase::Completed
        ]
    );
}

#[tokio::test]
async fn under_pim_unlinking_is_performed_after_pims_approval() {
    let op = start("elev-pim-unlink").await;
    let _guard_id = protected_by_pim(&op).await;
    let patch = json!({"spec": {"multiUserAuthorization": "Disabled"}});
    op.protections()
        .patch("prod", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    request(&op, User::BackupAdmin, "unlink", "DisableMultiUserAuthorization", "15m").await;
    op.wait_for(
        &op.requests(),
        "unlink",
        "Approved",
        "False",
        Some("PendingApprovalInAzure"),
    )
    .await;
    let id = VaultId::parse(&vault("prod-vault")).unwrap();
    assert!(
        vaults::get_link(&op.backup, &id).await.unwrap().is_some(),
        "still linked"
    );
    approve_in_pim(&op, "unlink").await;
    op.nudge(&op.requests(), "unlink").await;
    eventually("the vault is unlinked", || async {
        vaults::get_link(&op.backup, &id).await.unwrap().is_none().then_some(())
    })
    .await;
    op.ts.sim.state.clock.advance(Duration::from_secs(301));
    op.nudge(&op.requests(), "unlink").await;
    phase_is(&op, "unlink", RequestPhase::Completed).await;
}
