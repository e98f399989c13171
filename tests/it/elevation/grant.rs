//! Approval and grant: a request waits for its approvals, the operator grants the backup identity the
//! role on the guard with an Azure-side end time, the backup side performs the operation once, and the
//! grant ends.

use super::*;

#[tokio::test]
async fn disabling_soft_delete_waits_for_approval_then_runs_once_and_the_grant_ends() {
    let op = start("elev-sd").await;
    let guard_id = protected(&op, 1, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    op.wait_for(&op.requests(), "sd", "Approved", "False", Some("ApprovalPending"))
        .await;
    assert_eq!(
        soft_delete(&op).await,
        Some(SoftDelete::Enabled),
        "nothing before approval"
    );
    assert_eq!(grants(&op, &guard_id).await, 0);

    decide(&op, User::ApproverA, "sd", "Approve").await;
    let done = phase_is(&op, "sd", RequestPhase::Completed).await;
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Disabled));
    assert_eq!(grants(&op, &guard_id).await, 0, "the grant ended with the operation");
    assert_eq!(
        phases(&done),
        [
            RequestPhase::Pending,
            RequestPhase::Approved,
            RequestPhase::Active,
            RequestPhase::Completed
        ]
    );
    let history = &done.status.as_ref().unwrap().history;
    assert_eq!(history[1].actor, "approver-a", "the approver is on the record");
    assert_eq!(done.spec.requester.as_deref(), Some("backup-admin"));
}

#[tokio::test]
async fn a_request_from_git_needs_one_approval_more_than_the_rules() {
    let op = start("elev-gitops").await;
    let guard_id = protected(&op, 1, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    // Argo CD creates what someone committed: the requester is its ServiceAccount, not that person, who
    // may well be one of the approvers.
    let cp = ControlPlane::shared();
    let (controller, _) = cp
        .service_account(&op.ns, "argocd-application-controller", "mua-requester")
        .await;
    let api: Api<CriticalOperationRequest> = Api::namespaced(controller, &op.ns.name);
    let object: CriticalOperationRequest = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "sd"},
        "spec": {"vaultProtection": "prod", "operation": "DisableSoftDelete", "duration": "30m",
                 "justification": "decommission the vault (from Git)"}}))
    .unwrap();
    eventually("the ServiceAccount may create requests", || async {
        api.create(&PostParams::default(), &object).await.ok()
    })
    .await;

    decide(&op, User::ApproverA, "sd", "Approve").await;
    approved_condition_says(&op, "sd", "1 of 2").await;
    assert_eq!(grants(&op, &guard_id).await, 0, "one approval is not enough");
    decide(&op, User::ApproverB, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Completed).await;
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Disabled));
}

/// The backup application's service principal in the isolated tenant (its own object ID there).
const BACKUP_OID_FABRIKAM: &str = "6f1e2f0a-3b0c-4a52-9d0e-0c3f4e5a6b02";

#[tokio::test]
async fn a_guard_in_another_tenant_elevates_the_backup_side_s_principal_of_that_tenant() {
    let op = start("elev-xt").await;
    let azure_name = op.unique("xt");
    let spec = json!({"subscriptionId": ISOLATED_SUB, "resourceGroup": "guard-rg", "tenantId": FABRIKAM,
        "elevation": {"approvers": {"groups": ["mua-approvers"]}, "maxDuration": "1h"}});
    op.create_guard("isolated", &azure_name, spec).await;
    op.ready(&op.guards(), "isolated").await;
    op.create_protection(
        "prod",
        &vault("prod-vault"),
        json!({"name": "isolated"}),
        json!({"softDelete": {"state": "Enabled"}}),
    )
    .await;
    op.ready(&op.protections(), "prod").await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;

    let active = phase_is(&op, "sd", RequestPhase::Completed).await;
    let elevation = active.status.unwrap().elevation.unwrap();
    assert_eq!(
        elevation.principal_id.as_deref(),
        Some(BACKUP_OID_FABRIKAM),
        "Azure checks the principal of the guard's tenant (the auxiliary token's), not the home tenant's"
    );
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Disabled));
}

#[tokio::test]
async fn after_completion_the_backup_identity_is_refused_by_azure_again() {
    let op = start("elev-after").await;
    let _guard_id = protected(&op, 1, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Completed).await;
    // Turn it back on (strengthening needs nothing), then try to weaken it directly, as the backup
    // identity: the guard refuses without a grant.
    let id = VaultId::parse(&vault("prod-vault")).unwrap();
    let on = vaults::SoftDeleteChange {
        state: SoftDelete::Enabled,
        retention_days: None,
    };
    vaults::set_soft_delete(&op.backup, &id, on, None).await.unwrap();
    let off = vaults::SoftDeleteChange {
        state: SoftDelete::Disabled,
        retention_days: None,
    };
    let guard = mua_operator::azure::guards::GuardId::parse(&_guard_id).unwrap();
    let refused = vaults::set_soft_delete(&op.backup, &id, off, Some(&guard)).await;
    assert!(
        refused.is_err(),
        "Azure must refuse the backup identity once the grant ended"
    );
}

#[tokio::test]
async fn unlinking_waits_for_approval_then_runs_once_and_the_grant_ends() {
    let op = start("elev-unlink").await;
    let guard_id = protected(&op, 1, json!({})).await;
    let patch = json!({"spec": {"multiUserAuthorization": "Disabled"}});
    op.protections()
        .patch("prod", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    request(&op, User::BackupAdmin, "unlink", "DisableMultiUserAuthorization", "15m").await;
    op.wait_for(&op.requests(), "unlink", "Approved", "False", Some("ApprovalPending"))
        .await;
    let id = VaultId::parse(&vault("prod-vault")).unwrap();
    assert!(
        vaults::get_link(&op.backup, &id).await.unwrap().is_some(),
        "still linked"
    );

    decide(&op, User::ApproverA, "unlink", "Approve").await;
    phase_is(&op, "unlink", RequestPhase::Completed).await;
    assert!(vaults::get_link(&op.backup, &id).await.unwrap().is_none(), "unlinked");
    assert_eq!(grants(&op, &guard_id).await, 0);
}

#[tokio::test]
async fn two_approvals_are_needed_when_the_rules_say_two() {
    let op = start("elev-two").await;
    let guard_id = protected(&op, 2, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    op.reset_calls().await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    approved_condition_says(&op, "sd", "1 of 2").await;
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "one approval of two grants nothing",
    )
    .await;
    assert_eq!(grants(&op, &guard_id).await, 0);
    decide(&op, User::ApproverB, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Completed).await;
}

#[tokio::test]
async fn a_denied_request_grants_nothing() {
    let op = start("elev-deny").await;
    let guard_id = protected(&op, 1, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "sd", "Deny").await;
    let denied = phase_is(&op, "sd", RequestPhase::Denied).await;
    assert_eq!(denied.status.unwrap().history.last().unwrap().actor, "approver-a");
    assert_eq!(grants(&op, &guard_id).await, 0);
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Enabled));
}

#[tokio::test]
async fn a_new_request_is_an_event_naming_who_asks_for_what() {
    let op = start("elev-requested").await;
    protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let note = op.event("sd", "Requested").await;
    assert_eq!(
        note,
        "backup-admin asks for DisableSoftDelete through the VaultProtection prod for 30m: decommission the vault (ticket ServiceNow CHG0012345)"
    );
}
