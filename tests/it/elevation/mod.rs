//! Elevation end to end: CriticalOperationRequests created and approved by real users on the real API
//! server (with the chart's admission policies and RBAC), the operator deciding, granting with an
//! Azure-side end time and revoking in the ARM simulator, and the backup side performing the operation.

use crate::cluster;
use crate::operator;
use crate::simulator;

use std::time::Duration;

use cluster::{ControlPlane, User};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use mua_operator::azure::authorization;
use mua_operator::azure::client::Call;
use mua_operator::azure::error::AzureError;
use mua_operator::azure::guards::GuardId;
use mua_operator::azure::vaults::{self, SoftDelete, VaultId};
use mua_operator::crd::CriticalOperationRequest;
use mua_operator::crd::critical_operation_request::RequestPhase;
use operator::{Operator, Options, eventually};
use reqwest::Method;
use serde_json::{Value, json};
use simulator::*;

/// Long enough for a reconcile to reach Azure if it were going to.
const QUIET: Duration = Duration::from_secs(3);

async fn start(prefix: &str) -> Operator {
    Operator::start_with(
        prefix,
        Options {
            requests: true,
            ..Options::default()
        },
    )
    .await
}

/// A guard whose rules need `required` approvals from the group `mua-approvers`, and `prod-vault` linked to
/// it with soft delete on; returns the guard's ARM ID.
async fn protected(op: &Operator, required: i32, vp_extra: Value) -> String {
    let azure_name = guard_needing(op, required).await;
    let mut extra = json!({"softDelete": {"state": "Enabled"}});
    for (k, v) in vp_extra.as_object().unwrap() {
        extra[k] = v.clone();
    }
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), extra)
        .await;
    op.ready(&op.protections(), "prod").await;
    guard(&azure_name)
}

/// The ResourceGuard `guard`, Ready, whose rules need `required` approvals from the group
/// `mua-approvers`; returns its name in Azure.
async fn guard_needing(op: &Operator, required: i32) -> String {
    let azure_name = op.unique("guard");
    let elevation = json!({"elevation": {"approvers": {"groups": ["mua-approvers"]}, "requiredApprovals": required, "maxDuration": "1h"}});
    op.create_guard("guard", &azure_name, elevation).await;
    op.ready(&op.guards(), "guard").await;
    azure_name
}

async fn as_user(op: &Operator, user: User) -> Api<CriticalOperationRequest> {
    Api::namespaced(ControlPlane::shared().client(user).await, &op.ns.name)
}

/// Creates a request as `user` for the VaultProtection `prod` (the API server fills in the requester).
async fn request(op: &Operator, user: User, name: &str, operation: &str, duration: &str) {
    request_for(op, user, name, "prod", operation, duration).await
}

async fn request_for(op: &Operator, user: User, name: &str, protection: &str, operation: &str, duration: &str) {
    let object = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": name},
        "spec": {"vaultProtection": protection, "operation": operation, "duration": duration,
                 "justification": "decommission the vault", "ticket": {"system": "ServiceNow", "number": "CHG0012345"}}});
    as_user(op, user)
        .await
        .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
        .await
        .unwrap();
}

/// An approval (or denial) entry, as `kubectl mua approve` writes it: server-side apply on status with
/// a field manager of the user's own.
fn decision_entry(user: User, decision: &str) -> Value {
    json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
        "status": {"approvals": [{"approver": user.name(), "groups": [user.group()], "decision": decision,
                                  "time": jiff::Timestamp::now().to_string(), "comment": "checked the ticket"}]}})
}

/// The requester revokes, as `kubectl mua revoke` does.
async fn revoke(op: &Operator, name: &str) {
    let revocation = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
        "status": {"revocation": {"by": "backup-admin", "time": jiff::Timestamp::now().to_string(), "reason": "not needed"}}});
    as_user(op, User::BackupAdmin)
        .await
        .patch_status(
            name,
            &PatchParams::apply("kubectl-mua/backup-admin"),
            &Patch::Apply(revocation),
        )
        .await
        .unwrap();
}

async fn decide(op: &Operator, user: User, name: &str, decision: &str) {
    let manager = format!("kubectl-mua/{}", user.name());
    as_user(op, user)
        .await
        .patch_status(
            name,
            &PatchParams::apply(&manager),
            &Patch::Apply(decision_entry(user, decision)),
        )
        .await
        .unwrap();
}

async fn phase_is(op: &Operator, name: &str, phase: RequestPhase) -> CriticalOperationRequest {
    eventually(&format!("{name} is {phase:?}"), || async {
        let cor = op.requests().get(name).await.ok()?;
        (cor.status.as_ref()?.phase == Some(phase)).then_some(cor)
    })
    .await
}

/// The Backup MUA Operator assignments the backup identity holds on the guard.
async fn grants(op: &Operator, guard_id: &str) -> usize {
    authorization::list_for_principal(&op.security, guard_id, BACKUP_OID)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.role == authorization::BACKUP_MUA_OPERATOR)
        .count()
}

async fn soft_delete(op: &Operator) -> Option<SoftDelete> {
    vaults::get(&op.backup, &VaultId::parse(&vault("prod-vault")).unwrap())
        .await
        .unwrap()
        .unwrap()
        .soft_delete
        .map(|s| s.state)
}

/// Waits until the request's `Approved` condition is False with a message containing `text`.
async fn approved_condition_says(op: &Operator, name: &str, text: &str) {
    eventually(&format!("{name}: Approved=False saying {text:?}"), || async {
        let cor = op.requests().get(name).await.ok()?;
        let (status, _, message) = Operator::condition(&cor, "Approved")?;
        (status == "False" && message.contains(text)).then_some(())
    })
    .await
}

fn phases(cor: &CriticalOperationRequest) -> Vec<RequestPhase> {
    cor.status
        .as_ref()
        .map(|s| s.history.iter().map(|t| t.phase).collect())
        .unwrap_or_default()
}

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
async fn an_unused_elevation_expires_on_the_simulators_clock_and_is_revoked() {
    let op = start("elev-expire").await;
    let guard_id = protected(&op, 1, json!({})).await;
    // The VaultProtection still wants soft delete on: the elevation is granted but never used.
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "10m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Active).await;
    assert_eq!(grants(&op, &guard_id).await, 1);
    // No nudge: the operator's timer follows its clock, and the simulator's clock jumped.
    op.ts.sim.state.clock.advance(Duration::from_secs(601));
    let expired = phase_is(&op, "sd", RequestPhase::Expired).await.status.unwrap();
    let (expires, ended) = (expired.expires_at.unwrap().0, expired.ended_at.unwrap().0);
    assert!(ended >= expires, "ended {ended}, before its end {expires}");
    assert_eq!(grants(&op, &guard_id).await, 0);
}

#[tokio::test]
async fn the_requester_revokes_an_active_elevation_at_once() {
    let op = start("elev-revoke").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Active).await;
    revoke(&op, "sd").await;
    let revoked = phase_is(&op, "sd", RequestPhase::Revoked).await;
    assert_eq!(revoked.status.unwrap().history.last().unwrap().actor, "backup-admin");
    assert_eq!(grants(&op, &guard_id).await, 0);
}

#[tokio::test]
async fn a_request_longer_than_the_rules_allow_fails_without_a_grant() {
    let op = start("elev-long").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "2h").await;
    let failed = op
        .wait_for(&op.requests(), "sd", "Stalled", "True", Some("DurationTooLong"))
        .await;
    assert_eq!(failed.status.unwrap().phase, Some(RequestPhase::Failed));
    assert_eq!(grants(&op, &guard_id).await, 0);
}

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

/// Approves `name`, which then waits for another request's elevation to end.
async fn approved_but_waiting(op: &Operator, name: &str) {
    decide(op, User::ApproverA, name, "Approve").await;
    op.wait_for(
        &op.requests(),
        name,
        "Approved",
        "False",
        Some("AnotherElevationActive"),
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
async fn an_assignment_made_outside_the_operator_makes_an_approved_request_wait_until_it_ends() {
    // Azure refuses a second assignment of the role (RoleAssignmentExists): the request waits rather than
    // share or extend one it does not own, and goes on once it is gone.
    let op = start("outside-grant").await;
    let guard_id = protected(&op, 1, json!({})).await;
    let outside = authorization::assign(&op.security, &guard_id, authorization::BACKUP_MUA_OPERATOR, BACKUP_OID)
        .await
        .unwrap();
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "first", "DisableSoftDelete", "30m").await;
    approved_but_waiting(&op, "first").await;
    assert_eq!(
        soft_delete(&op).await,
        Some(SoftDelete::Enabled),
        "nothing performed while waiting"
    );
    authorization::remove(&op.security, &outside.id).await.unwrap();
    phase_is(&op, "first", RequestPhase::Completed).await;
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Disabled));
    assert_eq!(
        grants(&op, &guard_id).await,
        0,
        "its own grant ended, the outside one is gone"
    );
}

#[tokio::test]
async fn attack_deleting_an_active_request_revokes_its_grant_first() {
    let op = start("attack-delete").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Active).await;
    assert_eq!(grants(&op, &guard_id).await, 1);
    as_user(&op, User::BackupAdmin)
        .await
        .delete("sd", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the request is gone", || async {
        op.requests().get_opt("sd").await.unwrap().is_none().then_some(())
    })
    .await;
    assert_eq!(grants(&op, &guard_id).await, 0, "revoked before the object went");
}

#[tokio::test]
async fn with_the_operator_gone_azures_own_end_time_removes_the_grant() {
    let mut op = start("elev-azure-end").await;
    let guard_id = protected(&op, 1, json!({})).await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "10m").await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Active).await;
    assert_eq!(grants(&op, &guard_id).await, 1);
    op.stop();
    op.ts.sim.state.clock.advance(Duration::from_secs(601));
    assert_eq!(
        grants(&op, &guard_id).await,
        0,
        "Azure ended the assignment at its end time"
    );
}

/// A guard whose rules choose PIM (the seed makes the backup identity eligible for Contributor on the
/// security resource group, with Bob as PIM's approver), and `prod-vault` linked to it.
async fn protected_by_pim(op: &Operator) -> String {
    let azure_name = op.unique("guard");
    let elevation = json!({"elevation": {"approvers": {"groups": ["mua-approvers"]}, "backend": "PIM", "role": "Contributor", "maxDuration": "1h"}});
    op.create_guard("guard", &azure_name, elevation).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection(
        "prod",
        &vault("prod-vault"),
        json!({"name": "guard"}),
        json!({"softDelete": {"state": "Enabled"}}),
    )
    .await;
    op.ready(&op.protections(), "prod").await;
    guard(&azure_name)
}

async fn contributor_grants(op: &Operator, guard_id: &str) -> usize {
    authorization::list_for_principal(&op.security, guard_id, BACKUP_OID)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.role == authorization::CONTRIBUTOR)
        .count()
}

/// Bob approves the PIM activation the request asked for, in Azure.
async fn approve_in_pim(op: &Operator, name: &str) {
    let cor = op.requests().get(name).await.unwrap();
    let id = cor.status.unwrap().elevation.unwrap().schedule_request_id.unwrap();
    let pim = authorization::get_schedule_request(&op.backup, &id).await.unwrap();
    let approval = pim.approval_id.expect("PIM asks for an approval");
    let approval = approval.rsplit('/').next().unwrap().to_string();
    let bob = op.ts.user_token(CONTOSO, "bob@contoso.example", "bob-password").await;
    let stage = format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}/stages/{approval}");
    op.ts
        .call_with(
            &bob,
            &[],
            reqwest::Method::PUT,
            &stage,
            Some(json!({"properties": {"reviewResult": "Approve", "justification": "ticket checked"}})),
        )
        .await
        .expect(200, "Bob approves in PIM");
}

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
async fn without_elevation_rules_the_sweep_needs_no_backup_identity() {
    // A security side that only manages guards has no backup credential and no --backup-principal-id.
    let op = Operator::start("elev-norules").await;
    op.create_guard("guard", &op.unique("guard"), json!({})).await;
    op.ready(&op.guards(), "guard").await;
    let security_only = mua_operator::controller::Context::new(op.ctx.client.clone())
        .with_namespace(Some(op.ns.name.clone()))
        .with_security(op.security.clone());
    let removed = mua_operator::controller::critical_operation_request::sweep(&security_only).await;
    assert_eq!(removed.unwrap(), 0);
}

#[tokio::test]
async fn the_start_up_sweep_removes_a_grant_whose_request_is_gone() {
    // The request controller is not running yet: as if the operator were down when the request went.
    let op = Operator::start("elev-sweep").await;
    let guard_id = protected(&op, 1, json!({})).await;
    let orphan = authorization::ScheduleRequestSpec {
        name: None,
        scope: guard_id.clone(),
        tenant: None,
        role: authorization::BACKUP_MUA_OPERATOR.into(),
        principal_id: BACKUP_OID.into(),
        request_type: authorization::RequestType::AdminAssign,
        duration: Duration::from_secs(3600),
        ends_at: None,
        justification: "granted for a request that was deleted while the operator was down".into(),
        ticket: None,
    };
    authorization::request_schedule(&op.security, &orphan).await.unwrap();
    assert_eq!(grants(&op, &guard_id).await, 1);
    tokio::spawn(mua_operator::controller::critical_operation_request::run(
        op.requests(),
        op.ctx.clone(),
        std::future::pending(),
    ));
    eventually("the orphaned grant is removed", || async {
        (grants(&op, &guard_id).await == 0).then_some(())
    })
    .await;
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
    decide(&op, User::ApproverA, "unlink", "Approve").await;
    op.wait_for(&op.requests(), "unlink", "Stalled", "True", Some("LinkedToOtherGuard"))
        .await;
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
    as_user(&op, User::BackupAdmin)
        .await
        .delete("sd", &DeleteParams::default())
        .await
        .unwrap();
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
            &Patch::Apply(decision_entry(User::ApproverA, "Approve")),
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
async fn request_through_a_harmless_vault(op: &Operator) {
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
async fn swap_x_for_the_production_vault(op: &Operator) {
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

/// `kubectl mua` as people run it, against the running operator: the requester's `request` waits for the
/// decision, an approver's `approve` lets the operator act, and `wait --for final` sees it complete.
#[tokio::test]
async fn kubectl_mua_request_approve_and_wait_with_the_operator() {
    let op = start("elev-cli").await;
    protected(&op, 1, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    let cp = ControlPlane::shared();
    let plugin = |user: User, args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-mua"));
        command
            .arg("--kubeconfig")
            .arg(cp.kubeconfig_path(user))
            .args(["-n", &op.ns.name])
            .args(args)
            .kill_on_drop(true);
        command
    };
    let requested = plugin(
        User::BackupAdmin,
        &[
            "request",
            "prod",
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "30m",
            "--justification",
            "decommission",
            "--name",
            "sd",
            "--timeout",
            "2m",
        ],
    )
    .output();
    let approve = async {
        eventually("the request exists", || async {
            op.requests().get_opt("sd").await.unwrap().map(|_| ())
        })
        .await;
        let out = plugin(User::ApproverA, &["approve", "sd", "--reason", "ticket checked"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let (requested, ()) = tokio::join!(requested, approve);
    let requested = requested.unwrap();
    assert!(
        requested.status.success(),
        "request exits 0 once Active: {}",
        String::from_utf8_lossy(&requested.stderr)
    );
    let waited = plugin(User::BackupAdmin, &["wait", "sd", "--for", "final", "--timeout", "1m"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        waited.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Disabled));
}

// Actions: the request says what to do (a policy, an item), the backup side does it under the grant.

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
