//! Actions: the request says what to do (a policy, an item), the backup side does it under the grant.

use super::*;

const ITEM: &str = "backupFabrics/Azure/protectionContainers/iaasvmcontainerv2;app-rg;vm1/protectedItems/vm;iaasvmcontainerv2;app-rg;vm1";

fn policy_body(retention_days: i64) -> Value {
    json!({"properties": {
        "backupManagementType": "AzureIaasVM",
        "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy",
                            "dailySchedule": {"retentionDuration": {"count": retention_days, "durationType": "Days"}}},
    }})
}

/// A call to the backup API of `prod-vault` as the backup identity.
async fn backup_call(
    op: &Operator,
    method: Method,
    under_vault: &str,
    body: Option<Value>,
) -> Result<Value, AzureError> {
    let mut call = Call::new(
        method,
        format!("{}/{under_vault}", vault("prod-vault")),
        vaults::RS_BACKUP_API,
    );
    if let Some(body) = body {
        call = call.body(body);
    }
    op.backup.send(&call).await.map(|reply| reply.body)
}

/// Policies `daily` (90 days) and `short` (7 days), and an item protected with `daily`: creating them is
/// not a critical operation.
async fn seed_backups(op: &Operator) {
    backup_call(op, Method::PUT, "backupPolicies/daily", Some(policy_body(90)))
        .await
        .unwrap();
    backup_call(op, Method::PUT, "backupPolicies/short", Some(policy_body(7)))
        .await
        .unwrap();
    let item = json!({"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines",
        "policyId": format!("{}/backupPolicies/daily", vault("prod-vault"))}});
    backup_call(op, Method::PUT, ITEM, Some(item)).await.unwrap();
}

async fn daily_retention(op: &Operator) -> i64 {
    let policy = backup_call(op, Method::GET, "backupPolicies/daily", None)
        .await
        .unwrap();
    policy["properties"]["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"]
        .as_i64()
        .unwrap()
}

async fn item_policy(op: &Operator) -> Option<String> {
    match backup_call(op, Method::GET, ITEM, None).await {
        Ok(item) => item["properties"]["policyId"].as_str().map(str::to_string),
        Err(err) if err.is_not_found() => None,
        Err(err) => panic!("reading the item: {err}"),
    }
}

/// Creates a request with an action as the backup admin.
async fn request_action(op: &Operator, name: &str, operation: &str, action: Value) {
    let object = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": name},
        "spec": {"vaultProtection": "prod", "operation": operation, "duration": "30m", "action": action,
                 "justification": "retention review", "ticket": {"system": "ServiceNow", "number": "CHG0012345"}}});
    as_user(op, User::BackupAdmin)
        .await
        .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
        .await
        .unwrap();
}

/// Nothing happens before approval; after it the operation is done, the request Completed with its
/// timeline and the grant gone.
async fn approve_and_complete(op: &Operator, guard_id: &str, name: &str) {
    op.wait_for(&op.requests(), name, "Approved", "False", Some("ApprovalPending"))
        .await;
    assert_eq!(grants(op, guard_id).await, 0);
    decide(op, User::ApproverA, name, "Approve").await;
    let done = phase_is(op, name, RequestPhase::Completed).await;
    assert_eq!(grants(op, guard_id).await, 0, "the grant ended with the operation");
    assert_eq!(
        phases(&done),
        [
            RequestPhase::Pending,
            RequestPhase::Approved,
            RequestPhase::Active,
            RequestPhase::Completed
        ]
    );
    assert!(done.status.as_ref().unwrap().performed_at.is_some());
}

#[tokio::test]
async fn a_policy_change_in_the_request_is_made_by_the_operator_once_approved() {
    let op = start("elev-policy").await;
    let guard_id = protected(&op, 1, json!({})).await;
    seed_backups(&op).await;
    let action = json!({"modifyBackupPolicy": {"name": "daily", "policy": policy_body(30)}});
    request_action(&op, "mbp", "ModifyBackupPolicy", action).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(daily_retention(&op).await, 90, "nothing before approval");
    approve_and_complete(&op, &guard_id, "mbp").await;
    assert_eq!(daily_retention(&op).await, 30);

    // The backup identity is refused again: reducing retention further needs another elevation.
    let guard = GuardId::parse(&guard_id).unwrap();
    let id = VaultId::parse(&vault("prod-vault")).unwrap();
    let refused = vaults::put_policy(&op.backup, &id, "daily", &policy_body(7), &guard).await;
    assert_eq!(refused.err().and_then(|e| e.status()), Some(403));
}

#[tokio::test]
async fn moving_an_item_to_a_shorter_policy_is_made_by_the_operator_once_approved() {
    let op = start("elev-protect").await;
    let guard_id = protected(&op, 1, json!({})).await;
    seed_backups(&op).await;
    let action = json!({"modifyProtection": {"item": ITEM, "policy": "short"}});
    request_action(&op, "mp", "ModifyProtection", action).await;
    tokio::time::sleep(QUIET).await;
    assert!(item_policy(&op).await.unwrap().ends_with("/backupPolicies/daily"));
    approve_and_complete(&op, &guard_id, "mp").await;
    assert!(
        item_policy(&op)
            .await
            .unwrap()
            .to_ascii_lowercase()
            .ends_with("/backuppolicies/short")
    );
}

#[tokio::test]
async fn stopping_protection_with_delete_data_is_made_by_the_operator_once_approved() {
    let op = start("elev-stop").await;
    let guard_id = protected(&op, 1, json!({})).await;
    seed_backups(&op).await;
    let action = json!({"stopProtectionWithDeleteData": {"item": ITEM}});
    request_action(&op, "stop", "StopProtectionWithDeleteData", action).await;
    tokio::time::sleep(QUIET).await;
    assert!(item_policy(&op).await.is_some(), "nothing before approval");
    approve_and_complete(&op, &guard_id, "stop").await;
    assert_eq!(item_policy(&op).await, None, "the item and its data are gone");
}

#[tokio::test]
async fn an_action_azure_cannot_carry_out_fails_the_request_and_ends_the_grant() {
    let op = start("elev-act-fail").await;
    let guard_id = protected(&op, 1, json!({})).await;
    seed_backups(&op).await;
    let missing = ITEM.replace("vm1", "vm9");
    let action = json!({"modifyProtection": {"item": missing, "policy": "short"}});
    request_action(&op, "mp", "ModifyProtection", action).await;
    decide(&op, User::ApproverA, "mp", "Approve").await;
    let failed = phase_is(&op, "mp", RequestPhase::Failed).await;
    let last = failed.status.as_ref().unwrap().history.last().unwrap().clone();
    assert!(
        last.message
            .as_deref()
            .unwrap_or_default()
            .contains("no protected item"),
        "{last:?}"
    );
    assert_eq!(grants(&op, &guard_id).await, 0, "the grant ended with the failure");
    assert!(
        item_policy(&op).await.unwrap().ends_with("/backupPolicies/daily"),
        "nothing changed"
    );
}

/// PIM: the action waits for PIM's approver; once approved in Azure the operator performs it (`done`
/// says so), and the request completes when PIM lets the activation end.
async fn under_pim_the_action_is_made_after_pims_approval<F: Future<Output = bool>>(
    op: &Operator,
    name: &str,
    done: impl Fn() -> F,
) {
    // Another person approves in Kubernetes first: PIM's approver may be the requester in another guise.
    decide(op, User::ApproverA, name, "Approve").await;
    op.wait_for(
        &op.requests(),
        name,
        "Approved",
        "False",
        Some("PendingApprovalInAzure"),
    )
    .await;
    assert!(!done().await, "nothing before PIM's approval");
    approve_in_pim(op, name).await;
    op.nudge(&op.requests(), name).await;
    eventually("the operator performed the action", || async {
        done().await.then_some(())
    })
    .await;
    // PIM refuses a deactivation within five minutes of the activation; the jump wakes the request.
    op.ts.sim.state.clock.advance(Duration::from_secs(301));
    let completed = phase_is(op, name, RequestPhase::Completed).await;
    assert!(completed.status.unwrap().performed_at.is_some());
}

#[tokio::test]
async fn under_pim_a_policy_change_in_the_request_is_made_after_pims_approval() {
    let op = start("elev-pim-policy").await;
    protected_by_pim(&op).await;
    seed_backups(&op).await;
    let action = json!({"modifyBackupPolicy": {"name": "daily", "policy": policy_body(30)}});
    request_action(&op, "mbp", "ModifyBackupPolicy", action).await;
    under_pim_the_action_is_made_after_pims_approval(&op, "mbp", || async { daily_retention(&op).await == 30 }).await;
}

#[tokio::test]
async fn under_pim_moving_an_item_to_a_shorter_policy_is_made_after_pims_approval() {
    let op = start("elev-pim-protect").await;
    protected_by_pim(&op).await;
    seed_backups(&op).await;
    let action = json!({"modifyProtection": {"item": ITEM, "policy": "short"}});
    request_action(&op, "mp", "ModifyProtection", action).await;
    under_pim_the_action_is_made_after_pims_approval(&op, "mp", || async {
        item_policy(&op)
            .await
            .is_some_and(|p| p.to_ascii_lowercase().ends_with("/backuppolicies/short"))
    })
    .await;
}

#[tokio::test]
async fn under_pim_stopping_protection_with_delete_data_is_made_after_pims_approval() {
    let op = start("elev-pim-stop").await;
    protected_by_pim(&op).await;
    seed_backups(&op).await;
    let action = json!({"stopProtectionWithDeleteData": {"item": ITEM}});
    request_action(&op, "stop", "StopProtectionWithDeleteData", action).await;
    under_pim_the_action_is_made_after_pims_approval(&op, "stop", || async { item_policy(&op).await.is_none() }).await;
}
