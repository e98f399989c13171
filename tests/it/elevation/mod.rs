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

mod actions;
mod attacks;
mod bound;
mod by_hand;
mod expiry;
mod forgery;
mod grant;
mod kubectl;
mod pim;

/// Long enough for a reconcile to reach Azure if it were going to.
const QUIET: Duration = Duration::from_secs(3);

pub(crate) async fn start(prefix: &str) -> Operator {
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
pub(crate) async fn protected(op: &Operator, required: i32, vp_extra: Value) -> String {
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
/// `mua-approvers` (and let a person change the MARS PIN by hand); returns its name in Azure.
async fn guard_needing(op: &Operator, required: i32) -> String {
    let azure_name = op.unique("guard");
    let elevation = json!({"elevation": {"approvers": {"groups": ["mua-approvers"]}, "requiredApprovals": required, "maxDuration": "1h",
                                         "byHand": ["ChangeMarsSecurityPin"]}});
    op.create_guard("guard", &azure_name, elevation).await;
    op.ready(&op.guards(), "guard").await;
    azure_name
}

async fn as_user(op: &Operator, user: User) -> Api<CriticalOperationRequest> {
    Api::namespaced(ControlPlane::shared().client(user).await, &op.ns.name)
}

/// Creates a request as `user` for the VaultProtection `prod` (the API server fills in the requester).
pub(crate) async fn request(op: &Operator, user: User, name: &str, operation: &str, duration: &str) {
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

/// An approval (or denial) entry for `target`, as `kubectl mua approve` writes it: server-side apply on
/// status with a field manager of the user's own.
fn decision_entry(user: User, decision: &str, target: &Value) -> Value {
    json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
        "status": {"approvals": [{"approver": user.name(), "groups": [user.group()], "decision": decision,
                                  "time": jiff::Timestamp::now().to_string(), "comment": "checked the ticket",
                                  "target": target}]}})
}

/// What the operator recorded `name` to be for (its `status.target`), once it has: what an approver sees
/// and approves.
async fn recorded_target(op: &Operator, name: &str) -> Value {
    eventually(&format!("{name} has a recorded target"), || async {
        let cor = op.requests().get(name).await.ok()?;
        serde_json::to_value(cor.status?.target?).ok()
    })
    .await
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

pub(crate) async fn decide(op: &Operator, user: User, name: &str, decision: &str) {
    let manager = format!("kubectl-mua/{}", user.name());
    as_user(op, user)
        .await
        .patch_status(
            name,
            &PatchParams::apply(&manager),
            &Patch::Apply(decision_entry(user, decision, &recorded_target(op, name).await)),
        )
        .await
        .unwrap();
}

pub(crate) async fn phase_is(op: &Operator, name: &str, phase: RequestPhase) -> CriticalOperationRequest {
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

/// A guard whose rules choose PIM (the seed makes the backup identity eligible for Contributor on the
/// security resource group, with Bob as PIM's approver), and `prod-vault` linked to it.
async fn protected_by_pim(op: &Operator) -> String {
    protected_by_pim_with(op, json!({})).await
}

/// [`protected_by_pim`] with `extra` rules.
async fn protected_by_pim_with(op: &Operator, extra: Value) -> String {
    let azure_name = op.unique("guard");
    let mut elevation = json!({"approvers": {"groups": ["mua-approvers"]}, "backend": "PIM", "role": "Contributor", "maxDuration": "1h"});
    for (k, v) in extra.as_object().unwrap() {
        elevation[k] = v.clone();
    }
    op.create_guard("guard", &azure_name, json!({"elevation": elevation}))
        .await;
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
