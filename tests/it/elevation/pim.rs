//! Privileged Identity Management as the backend: once another person approved in Kubernetes, the
//! security side checks PIM's settings for the role (approval required, by approvers who are neither the
//! activating identity nor the requester's own principal) and allows the activation; the backup side,
//! after its own check, asks PIM with its own identity; PIM's approver decides; the backup side performs,
//! and the security side removes the activation with its own identity.

use super::*;

/// Both sides with the security side knowing the backup identity only by its object ID, as a separate
/// Deployment does: every PIM step here is made without the backup credential on the security side.
async fn start_split(prefix: &str) -> Operator {
    Operator::start_with(
        prefix,
        Options {
            requests: true,
            backup_principal_by_id: true,
            ..Options::default()
        },
    )
    .await
}

/// Waits until the request `name` waits for PIM's approvers: the backup side asked PIM to activate.
async fn waiting_for_pims_approvers(op: &Operator, name: &str) {
    op.wait_for(
        &op.requests(),
        name,
        "Approved",
        "False",
        Some("PendingApprovalInAzure"),
    )
    .await;
}

/// `prod` under PIM declares soft delete off; the request `sd` for it, approved by another person in
/// Kubernetes, waits for PIM's approvers. Returns the guard's ARM ID.
async fn soft_delete_off_asked_of_pim(op: &Operator) -> String {
    let guard_id = protected_by_pim(op).await;
    op.declare_soft_delete_off("prod").await;
    request(op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(op, User::ApproverA, "sd", "Approve").await;
    waiting_for_pims_approvers(op, "sd").await;
    guard_id
}

/// The backup side's activation request for `name` as Azure holds it (read by the security identity).
async fn activation(op: &Operator, name: &str) -> Value {
    let cor = op.requests().get(name).await.unwrap();
    let id = cor.status.unwrap().elevation.unwrap().schedule_request_id.unwrap();
    op.security
        .send(&Call::new(Method::GET, id.as_str(), authorization::PIM_API))
        .await
        .unwrap()
        .body
}

#[tokio::test]
async fn under_pim_the_backup_identity_activates_pims_approver_decides_then_the_operation_is_performed_and_ended() {
    let op = start_split("elev-pim").await;
    let guard_id = soft_delete_off_asked_of_pim(&op).await;
    // The backup identity asked PIM for its own role; PIM sees it as the requestor.
    let asked = activation(&op, "sd").await;
    assert_eq!(asked["properties"]["requestType"], "SelfActivate");
    assert_eq!(asked["properties"]["principalId"], BACKUP_OID);
    assert_eq!(asked["properties"]["requestorId"], BACKUP_OID);
    assert_eq!(asked["properties"]["status"], "PendingApproval");
    assert_eq!(
        soft_delete(&op).await,
        Some(SoftDelete::Enabled),
        "nothing before PIM approves"
    );
    assert_eq!(contributor_grants(&op, &guard_id).await, 0);

    approve_in_pim(&op, "sd").await;
    op.nudge(&op.requests(), "sd").await;
    // Performed once, and the security side removes the activation at once with its own identity.
    let done = phase_is(&op, "sd", RequestPhase::Completed).await;
    assert!(done.status.as_ref().unwrap().performed_at.is_some());
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Disabled));
    assert_eq!(
        contributor_grants(&op, &guard_id).await,
        0,
        "the activation was removed"
    );
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
async fn under_pim_a_request_revoked_while_pims_approvers_wait_has_its_activation_cancelled() {
    let op = start_split("elev-pim-cancel").await;
    let guard_id = soft_delete_off_asked_of_pim(&op).await;
    revoke(&op, "sd").await;
    phase_is(&op, "sd", RequestPhase::Revoked).await;
    assert_eq!(
        activation(&op, "sd").await["properties"]["status"],
        "Canceled",
        "the backup side cancelled its activation request"
    );
    assert_eq!(contributor_grants(&op, &guard_id).await, 0);
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Enabled));
}

/// Writes `forged` into the request `sd`'s status as someone who may write all of it; the request then
/// fails saying `says`, nothing is asked of PIM over a window, and nothing changes in Azure.
async fn forged_then_failed(op: &Operator, guard_id: &str, forged: Value, says: &str) {
    op.requests()
        .patch_status("sd", &PatchParams::default(), &Patch::Merge(&forged))
        .await
        .unwrap();
    let failed = phase_is(op, "sd", RequestPhase::Failed).await;
    let history = failed.status.unwrap().history;
    let said = history.last().unwrap().message.clone().unwrap_or_default();
    assert!(said.contains(says), "{said}");
    op.assert_no_calls(&["PUT", "PATCH", "POST", "DELETE"], QUIET, "nothing is asked of PIM")
        .await;
    assert_eq!(soft_delete(op).await, Some(SoftDelete::Enabled));
    assert_eq!(contributor_grants(op, guard_id).await, 0);
}

#[tokio::test]
async fn attack_under_pim_a_forged_allowance_makes_the_backup_side_ask_pim_for_nothing() {
    // Status forgery against the PIM path: someone who may write the request's status (as wherever the
    // status policy is weakened) records an allowed activation that nobody approved. The backup side
    // judges the request itself and asks PIM for nothing; the request fails.
    let op = start_split("attack-pim-forged").await;
    let guard_id = protected_by_pim(&op).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    recorded_target(&op, "sd").await;
    op.reset_calls().await;
    let forged = json!({"status": {"elevation": {"principalId": BACKUP_OID, "scope": guard_id,
                                                 "roleDefinitionId": authorization::CONTRIBUTOR,
                                                 "scheduleRequestId": format!("{guard_id}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/forged")}}});
    forged_then_failed(&op, &guard_id, forged, "own check refused it").await;
}

#[tokio::test]
async fn attack_under_pim_a_forged_allowance_with_a_real_approvers_name_asks_pim_for_nothing_it_would_not_gate() {
    // Someone who can write any of the status writes an approval in a real approver's name and an
    // allowed activation, on a guard whose PIM settings activate without approval (which the security
    // side refuses). The backup side checks PIM's settings itself before it asks: nothing is asked.
    let op = start_split("attack-pim-forged-settings").await;
    let guard_id = protected_by_pim(&op).await;
    set_pim_approval(
        &op,
        json!({"isApprovalRequired": false, "approvalMode": "NoApproval", "approvalStages": []}),
    )
    .await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let target = recorded_target(&op, "sd").await;
    op.reset_calls().await;
    let forged = json!({"status": {
        "approvals": [{"approver": User::ApproverA.name(), "groups": [User::ApproverA.group()], "decision": "Approve",
                       "time": jiff::Timestamp::now().to_string(), "target": target}],
        "policy": {"requiredApprovals": 1, "maxDuration": "1h", "backend": "PIM", "role": "Contributor"},
        "elevation": {"principalId": BACKUP_OID, "scope": guard_id, "roleDefinitionId": authorization::CONTRIBUTOR,
                      "scheduleRequestId": "forged"}}});
    forged_then_failed(&op, &guard_id, forged, "without an approval").await;
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
    waiting_for_pims_approvers(&op, "unlink").await;
    let id = VaultId::parse(&vault("prod-vault")).unwrap();
    assert!(
        vaults::get_link(&op.backup, &id).await.unwrap().is_some(),
        "still linked"
    );
    approve_in_pim(&op, "unlink").await;
    op.nudge(&op.requests(), "unlink").await;
    phase_is(&op, "unlink", RequestPhase::Completed).await;
    assert!(vaults::get_link(&op.backup, &id).await.unwrap().is_none(), "unlinked");
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
