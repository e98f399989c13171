//! An approval is for exactly what the approver saw, and only while it is fresh: nobody can approve before
//! the operator has recorded the request's target, an approval names that target and counts only while
//! it is the request's, and an approval older than the rules' `approvalValidity` no longer counts
//! (Kubernetes cannot tell the operator that an approver has left the approvers' group).

use super::*;

/// Approver-a's approval entry for `target`, dated `at`, as a server-side apply body.
fn entry(target: &Value, at: jiff::Timestamp) -> Value {
    json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
        "status": {"approvals": [{"approver": "approver-a", "groups": ["mua-approvers"], "decision": "Approve",
                                  "time": at.to_string(), "target": target}]}})
}

/// Approver-a approves `target` with their own rights, dated `at`.
async fn approve_dated(op: &Operator, name: &str, target: &Value, at: jiff::Timestamp) {
    as_user(op, User::ApproverA)
        .await
        .patch_status(
            name,
            &PatchParams::apply("kubectl-mua/approver-a"),
            &Patch::Apply(entry(target, at)),
        )
        .await
        .unwrap();
}

/// The guard `guard` needing `required` approvals that count for ten minutes, and `prod-vault` under it
/// declared with soft delete off; returns the guard's ARM ID.
async fn protected_with_short_validity(op: &Operator, required: i32) -> String {
    let azure_name = op.unique("guard");
    let elevation = json!({"elevation": {"approvers": {"groups": ["mua-approvers"]}, "requiredApprovals": required,
                                         "approvalValidity": "10m"}});
    op.create_guard("guard", &azure_name, elevation).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection(
        "prod",
        &vault("prod-vault"),
        json!({"name": "guard"}),
        json!({"softDelete": {"state": "Disabled"}}),
    )
    .await;
    // Linked, and waiting for an elevation to turn soft delete off: nothing more happens by itself.
    op.wait_for(&op.protections(), "prod", "Ready", "False", Some("ElevationRequired"))
        .await;
    guard(&azure_name)
}

/// Asserts that nothing is written in Azure over a window that would catch a late write, and that soft
/// delete is still on and nobody holds a grant on `guard_id`.
async fn azure_unchanged(op: &Operator, guard_id: &str, why: &str) {
    op.assert_no_calls(&["PUT", "PATCH", "POST", "DELETE"], QUIET, why)
        .await;
    assert_eq!(soft_delete(op).await, Some(SoftDelete::Enabled), "{why}");
    assert_eq!(grants(op, guard_id).await, 0, "{why}");
}

#[tokio::test]
async fn attack_an_approval_cannot_be_given_for_a_decoy_and_carried_to_the_production_vault() {
    // Case 1: the backup admin points the VaultProtection at a guard that does not exist, so the request
    // cannot resolve, hoping for an approval of what `describe` shows, then re-creates it for production.
    let op = start("attack-decoy").await;
    let guard_id = guard(&guard_needing(&op, 1).await);
    op.create_protection(
        "prod",
        &vault("decoy-vault"),
        json!({"name": "no-such-guard"}),
        json!({"managementPolicy": "Observe"}),
    )
    .await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    op.wait_for(&op.requests(), "sd", "Stalled", "True", Some("GuardNotFound"))
        .await;
    let early = json!({"vaultProtectionUid": "decoy", "vaultId": vault("decoy-vault"), "guardId": "none"});
    let refused = as_user(&op, User::ApproverA)
        .await
        .patch_status(
            "sd",
            &PatchParams::apply("kubectl-mua/approver-a"),
            &Patch::Apply(entry(&early, jiff::Timestamp::now())),
        )
        .await;
    match refused {
        Err(kube::Error::Api(status)) => assert!(
            status.code == 403 && status.message.contains("cannot be approved yet"),
            "{status:?}"
        ),
        other => panic!("an approval before the target was recorded was accepted: {other:?}"),
    }

    // The swap: the same name, now the production vault under the real guard, asking for soft delete off.
    op.protections().delete("prod", &DeleteParams::default()).await.unwrap();
    eventually("the decoy is gone", || async {
        op.protections().get_opt("prod").await.unwrap().is_none().then_some(())
    })
    .await;
    op.create_protection(
        "prod",
        &vault("prod-vault"),
        json!({"name": "guard"}),
        json!({"softDelete": {"state": "Disabled"}}),
    )
    .await;
    // Linked to the guard, soft delete still on: turning it off needs an elevation.
    op.wait_for(&op.protections(), "prod", "Ready", "False", Some("ElevationRequired"))
        .await;
    op.nudge(&op.requests(), "sd").await;
    let target = recorded_target(&op, "sd").await;
    assert!(target["vaultId"].as_str().unwrap().ends_with("/prod-vault"), "{target}");
    op.reset_calls().await;
    approved_condition_says(&op, "sd", "0 of 1").await;
    azure_unchanged(&op, &guard_id, "no approval was carried over to the production vault").await;
}

#[tokio::test]
async fn attack_an_approval_naming_another_target_is_not_counted() {
    // Written past admission (with the operator's rights, as if the status policy were weakened): the
    // operator itself still counts only an approval of the recorded target.
    let op = start("attack-othertarget").await;
    let guard_id = protected(&op, 1, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let mut target = recorded_target(&op, "sd").await;
    target["vaultId"] = json!(vault("decoy-vault"));
    op.reset_calls().await;
    op.requests()
        .patch_status(
            "sd",
            &PatchParams::apply("forger"),
            &Patch::Apply(entry(&target, jiff::Timestamp::now())),
        )
        .await
        .unwrap();
    approved_condition_says(&op, "sd", "not for what the request is for now").await;
    azure_unchanged(&op, &guard_id, "the approval was for another vault").await;
}

#[tokio::test]
async fn attack_an_approval_older_than_its_validity_no_longer_counts() {
    // Case 7: approver-a approved, then left the approvers' group. Kubernetes cannot tell the operator
    // (the approval recorded the groups of its time), so an approval only counts while it is fresh.
    let op = start("attack-stale").await;
    let guard_id = protected_with_short_validity(&op, 1).await;
    // The approval is dated eleven minutes ago by the operator's clock: it was given before approver-a
    // left the group, and is no longer trusted.
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let target = recorded_target(&op, "sd").await;
    op.reset_calls().await;
    let eleven_minutes_ago = op.ts.sim.state.clock.now() - Duration::from_secs(660);
    approve_dated(&op, "sd", &target, eleven_minutes_ago).await;
    approved_condition_says(&op, "sd", "older than the rules' approvalValidity (10m)").await;
    azure_unchanged(&op, &guard_id, "a stale approval grants nothing").await;
}

#[tokio::test]
async fn an_approval_stops_counting_when_its_validity_runs_out() {
    // Two approvals needed; the first one goes stale on the operator's clock before the second comes.
    let op = start("elev-validity").await;
    let guard_id = protected_with_short_validity(&op, 2).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let target = recorded_target(&op, "sd").await;
    approve_dated(&op, "sd", &target, op.ts.sim.state.clock.now()).await;
    approved_condition_says(&op, "sd", "1 of 2").await;
    // No nudge: the clock's jump wakes the request, which then counts one approval less.
    op.ts.sim.state.clock.advance(Duration::from_secs(601));
    approved_condition_says(&op, "sd", "0 of 2").await;
    assert_eq!(grants(&op, &guard_id).await, 0);
}

#[tokio::test]
async fn an_approval_dated_in_the_future_is_not_believed() {
    let op = start("elev-future").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    let target = recorded_target(&op, "sd").await;
    op.reset_calls().await;
    let tomorrow = op.ts.sim.state.clock.now() + Duration::from_secs(86_400);
    approve_dated(&op, "sd", &target, tomorrow).await;
    approved_condition_says(&op, "sd", "in the future; it is not believed").await;
    azure_unchanged(&op, &guard_id, "a future-dated approval grants nothing").await;
}
