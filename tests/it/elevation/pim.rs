//! Privileged Identity Management as the backend: once another person approved in Kubernetes, the
//! operator checks PIM's settings for the role (approval required, by approvers who are neither the
//! activating identity nor the requester's own principal), asks PIM to activate the backup identity's
//! eligible role, waits for PIM's approver, performs, then deactivates.

use super::*;

#[tokio::test]
async fn under_pim_the_operator_activates_waits_for_pims_approver_performs_then_deactivates() {
    let op = start("elev-pim").await;
    let guard_id = protected_by_pim(&op).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    approved_condition_says(&op, "sd", "0 of 1").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
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
    decide(&op, User::ApproverA, "unlink", "Approve").await;
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

/// Changes the PIM settings of Contributor on the security resource group, as a security admin would in
/// Azure (the security identity is its Owner): `rule` replaces the end users' approval rule's setting.
async fn set_pim_approval(op: &Operator, setting: Value) {
    let policies = format!(
        "{}/providers/Microsoft.Authorization/roleManagementPolicies",
        security_rg()
    );
    let listed = op
        .security
        .send(&Call::new(Method::GET, policies.as_str(), authorization::PIM_API))
        .await
        .unwrap()
        .body;
    let policy = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["properties"]["roleDefinitionId"]
                .as_str()
                .unwrap()
                .ends_with(authorization::CONTRIBUTOR)
        })
        .expect("the seed's PIM policy for Contributor")
        .clone();
    let rule = json!({"id": "Approval_EndUser_Assignment", "ruleType": "RoleManagementPolicyApprovalRule",
                      "target": {"caller": "EndUser", "operations": ["All"], "level": "Assignment"},
                      "setting": setting});
    op.security
        .send(
            &Call::new(Method::PATCH, policy["id"].as_str().unwrap(), authorization::PIM_API)
                .body(json!({"properties": {"rules": [rule]}})),
        )
        .await
        .unwrap();
}

/// With the guard under PIM and another person's approval in Kubernetes, the request is refused with
/// `reason` before anything is asked of PIM, and nothing changes in Azure.
async fn refused_before_activation(op: &Operator, guard_id: &str, reason: &str) {
    op.declare_soft_delete_off("prod").await;
    request(op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    op.reset_calls().await;
    decide(op, User::ApproverA, "sd", "Approve").await;
    op.wait_for(&op.requests(), "sd", "Stalled", "True", Some(reason)).await;
    op.assert_no_calls(&["PUT", "PATCH", "POST", "DELETE"], QUIET, "nothing is asked of PIM")
        .await;
    assert_eq!(soft_delete(op).await, Some(SoftDelete::Enabled));
    assert_eq!(contributor_grants(op, guard_id).await, 0);
    let sd = op.requests().get("sd").await.unwrap();
    assert_eq!(sd.status.unwrap().elevation, None, "no activation was asked for");
}

#[tokio::test]
async fn attack_a_pim_setting_without_approval_activates_nobody() {
    // Case 5: the role's PIM settings activate without approval; the request would be Active with one
    // person behind it.
    let op = start("attack-pim-noapproval").await;
    let guard_id = protected_by_pim(&op).await;
    set_pim_approval(
        &op,
        json!({"isApprovalRequired": false, "approvalMode": "NoApproval", "approvalStages": []}),
    )
    .await;
    refused_before_activation(&op, &guard_id, "PimApprovalNotRequired").await;
}

#[tokio::test]
async fn attack_a_pim_approver_who_is_the_activating_identity_is_refused() {
    // PIM sees the operator's backup identity as the requestor: were it an approver, it could approve
    // its own activation.
    let op = start("attack-pim-selfapprover").await;
    let guard_id = protected_by_pim(&op).await;
    set_pim_approval(
        &op,
        json!({"isApprovalRequired": true, "approvalMode": "SingleStage",
               "approvalStages": [{"approvalStageTimeOutInDays": 1, "primaryApprovers": [{"id": BACKUP_OID, "userType": "User"}]}]}),
    )
    .await;
    refused_before_activation(&op, &guard_id, "PimApproverIsRequester").await;
}

#[tokio::test]
async fn attack_a_pim_approver_who_is_the_requesters_own_principal_is_refused() {
    // Case 6: the rules tie Alice's Azure principal to the Kubernetes requester; Alice approves in PIM.
    let op = start("attack-pim-requester").await;
    let principals = json!([{"objectId": ALICE_OID, "requesters": {"users": ["backup-admin"]}}]);
    let guard_id = protected_by_pim_with(&op, json!({"principals": principals})).await;
    set_pim_approval(
        &op,
        json!({"isApprovalRequired": true, "approvalMode": "SingleStage",
               "approvalStages": [{"approvalStageTimeOutInDays": 1, "primaryApprovers": [{"id": ALICE_OID, "userType": "User"}]}]}),
    )
    .await;
    refused_before_activation(&op, &guard_id, "PimApproverIsRequester").await;
}

#[tokio::test]
async fn under_pim_nothing_is_asked_of_pim_before_another_person_approves_in_kubernetes() {
    let op = start("elev-pim-k8s-first").await;
    let guard_id = protected_by_pim(&op).await;
    op.declare_soft_delete_off("prod").await;
    op.reset_calls().await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    approved_condition_says(&op, "sd", "0 of 1").await;
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "no activation without a Kubernetes approval",
    )
    .await;
    assert_eq!(contributor_grants(&op, &guard_id).await, 0);
}
