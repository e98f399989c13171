//! Defence in depth: with the admission policies removed from the cluster, or weakened (each test has a
//! control plane of its own, so nothing else is affected), a forged request or a self-approval gets past
//! the API server — and the operator still refuses to elevate anyone.

use crate::cluster;
use crate::operator;
use crate::simulator;

use std::time::Duration;

use cluster::{ControlPlane, OwnControlPlane, User};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use mua_operator::azure::authorization;
use mua_operator::crd::CriticalOperationRequest;
use operator::{Operator, Options, eventually};
use serde_json::json;
use simulator::*;

const QUIET: Duration = Duration::from_secs(3);

/// Approver-a approves `sd` for its recorded target, with their own rights. The API server may refuse it
/// as the request already failed (the operator saw the policies not in force): either way nobody may be
/// elevated, which the caller checks.
async fn approve_as_approver_a(approver: &Api<CriticalOperationRequest>, op: &Operator) {
    let approval = cluster::approval_of(&op.requests(), "sd", User::ApproverA).await;
    let written = approver
        .patch_status(
            "sd",
            &PatchParams::apply("kubectl-mua/approver-a"),
            &Patch::Apply(approval),
        )
        .await;
    if let Err(err) = written {
        assert!(err.to_string().contains("approvals are closed"), "{err}");
    }
}

/// Asserts that `sd` is Stalled with `reason` saying `names`, that nothing is written in Azure over a
/// window that would catch a late write, and that nobody holds a grant on the guard.
async fn nobody_is_elevated(op: &Operator, azure_name: &str, reason: &str, names: &str) {
    let stalled = op.wait_for(&op.requests(), "sd", "Stalled", "True", Some(reason)).await;
    let (_, _, message) = Operator::condition(&stalled, "Stalled").unwrap();
    assert!(message.contains(names), "{message}");
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "nobody is elevated without the policies as shipped",
    )
    .await;
    let grants = authorization::list_for_principal(&op.security, &guard(azure_name), BACKUP_OID)
        .await
        .unwrap();
    assert!(
        grants.iter().all(|g| g.role != authorization::BACKUP_MUA_OPERATOR),
        "{grants:?}"
    );
}

/// A control plane of the test's own, the operator on it, the guard `guard` (one approval from the group
/// `mua-approvers`) and `prod-vault` linked to it, declared with soft delete off; returns the guard's
/// name in Azure.
async fn guarded(prefix: &str) -> (OwnControlPlane, Operator, String) {
    let cp = ControlPlane::own();
    let op = Operator::start_on(
        &cp,
        prefix,
        Options {
            requests: true,
            ..Options::default()
        },
    )
    .await;
    let azure_name = op.unique("guard");
    op.create_guard(
        "guard",
        &azure_name,
        json!({"elevation": {"approvers": {"groups": ["mua-approvers"]}}}),
    )
    .await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection(
        "prod",
        &vault("prod-vault"),
        json!({"name": "guard"}),
        json!({"softDelete": {"state": "Disabled"}}),
    )
    .await;
    op.wait_for(&op.protections(), "prod", "Ready", "False", Some("ElevationRequired"))
        .await;
    (cp, op, azure_name)
}

#[tokio::test]
async fn attack_removing_the_admission_policies_then_self_approving_elevates_nobody() {
    let (cp, op, azure_name) = guarded("attack-no-policies").await;

    // A cluster admin (or an attacker with their rights) removes the status policy's binding.
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(cp.client(User::Admin).await);
    bindings
        .delete("mua.dev-request-status", &DeleteParams::default())
        .await
        .unwrap();

    let mine: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::BackupAdmin).await, &op.ns.name);
    let request = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "sd"},
        "spec": {"vaultProtection": "prod", "operation": "DisableSoftDelete", "duration": "30m", "justification": "just me"}});
    mine.create(&PostParams::default(), &serde_json::from_value(request).unwrap())
        .await
        .unwrap();
    op.reset_calls().await;
    // With the binding gone, the API server lets the requester write their own approval, claiming the
    // approvers' group, and an approver's approval through too.
    let approve = |who: &str, groups: &[&str]| {
        json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
            "status": {"approvals": [{"approver": who, "groups": groups, "decision": "Approve",
                                      "time": jiff::Timestamp::now().to_string()}]}})
    };
    eventually("the API server lets a self-approval through", || async {
        mine.patch_status(
            "sd",
            &PatchParams::apply("kubectl-mua/backup-admin"),
            &Patch::Apply(approve("backup-admin", &["backup-admins", "mua-approvers"])),
        )
        .await
        .ok()
    })
    .await;
    let approver: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::ApproverA).await, &op.ns.name);
    approve_as_approver_a(&approver, &op).await;

    nobody_is_elevated(&op, &azure_name, "AdmissionPoliciesMissing", "mua.dev-request-status").await;
}

#[tokio::test]
async fn attack_a_binding_set_to_audit_then_a_request_in_someone_elses_name_elevates_nobody() {
    // Case 8: someone who may edit admission objects (nothing in mua.dev) sets the binding that checks
    // spec.requester to Audit; approver-a then files a request in approver-b's name and approves it.
    let (cp, op, azure_name) = guarded("attack-audit").await;
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(cp.client(User::Admin).await);
    bindings
        .patch(
            "mua.dev-request-create",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"validationActions": ["Audit"]}})),
        )
        .await
        .unwrap();
    let approver: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::ApproverA).await, &op.ns.name);
    let forged = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "sd"},
        "spec": {"vaultProtection": "prod", "operation": "DisableSoftDelete", "duration": "30m",
                 "justification": "in someone else's name", "requester": "approver-b"}});
    let forged: CriticalOperationRequest = serde_json::from_value(forged).unwrap();
    eventually("the API server lets a request in another's name through", || async {
        approver.create(&PostParams::default(), &forged).await.ok()
    })
    .await;
    op.reset_calls().await;
    approve_as_approver_a(&approver, &op).await;

    nobody_is_elevated(&op, &azure_name, "AdmissionPoliciesAltered", r#"ValidatingAdmissionPolicyBinding mua.dev-request-create (spec.validationActions[0] is "Audit" instead of "Deny")"#).await;
}

#[tokio::test]
async fn attack_a_mutating_webhook_on_mua_objects_stops_every_elevation() {
    // Mutating admission the chart does not ship could slip an approval into the operator's own status
    // writes (which the status policy lets through): while one can touch mua.dev objects, nobody is
    // elevated.
    let (cp, op, azure_name) = guarded("attack-mutator").await;
    let webhook: k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration =
        serde_json::from_value(json!({
            "metadata": {"name": "friendly-defaults"},
            "webhooks": [{"name": "defaults.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "failurePolicy": "Ignore", "timeoutSeconds": 1,
                          "clientConfig": {"url": "https://127.0.0.1:1/mutate"},
                          "rules": [{"apiGroups": ["mua.dev"], "apiVersions": ["*"], "operations": ["UPDATE"],
                                     "resources": ["criticaloperationrequests/status"]}]}],
        }))
        .unwrap();
    Api::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>::all(cp.client(User::Admin).await)
        .create(&PostParams::default(), &webhook)
        .await
        .unwrap();
    let mine: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::BackupAdmin).await, &op.ns.name);
    let request = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "sd"},
        "spec": {"vaultProtection": "prod", "operation": "DisableSoftDelete", "duration": "30m", "justification": "j"}});
    mine.create(&PostParams::default(), &serde_json::from_value(request).unwrap())
        .await
        .unwrap();
    let approver: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::ApproverA).await, &op.ns.name);
    op.reset_calls().await;
    approve_as_approver_a(&approver, &op).await;
    nobody_is_elevated(
        &op,
        &azure_name,
        "AdmissionPoliciesAltered",
        "MutatingWebhookConfiguration friendly-defaults can change mua.dev objects",
    )
    .await;
}
