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
async fn approve_as_approver_a(cp: &ControlPlane, op: &Operator) {
    let approver: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::ApproverA).await, &op.ns.name);
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

/// The backup admin asks to disable soft delete on `prod` (the request `sd`).
async fn backup_admin_requests(cp: &ControlPlane, op: &Operator) {
    let mine: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::BackupAdmin).await, &op.ns.name);
    let request = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "sd"},
        "spec": {"vaultProtection": "prod", "operation": "DisableSoftDelete", "duration": "30m", "justification": "j"}});
    mine.create(&PostParams::default(), &serde_json::from_value(request).unwrap())
        .await
        .unwrap();
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
    approve_as_approver_a(&cp, &op).await;

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
    approve_as_approver_a(&cp, &op).await;

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
    backup_admin_requests(&cp, &op).await;
    op.reset_calls().await;
    approve_as_approver_a(&cp, &op).await;
    nobody_is_elevated(
        &op,
        &azure_name,
        "AdmissionPoliciesAltered",
        "MutatingWebhookConfiguration friendly-defaults can change mua.dev objects",
    )
    .await;
}

#[tokio::test]
async fn attack_a_policy_weakened_and_put_back_fails_the_pending_request() {
    // Someone who may edit admission objects sets the status policy's binding to Audit (to slip an
    // approval in) and puts it back before the operator looks: the policies are as shipped again, but not
    // the very objects the request was recorded under, so it fails rather than trust its approvals.
    let (cp, op, azure_name) = guarded("attack-restored").await;
    backup_admin_requests(&cp, &op).await;
    eventually("the request records the admission objects in force", || async {
        let sd = op.requests().get("sd").await.ok()?;
        sd.metadata.annotations?.get("mua.dev/admission-seen").cloned()
    })
    .await;
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(cp.client(User::Admin).await);
    let generation = |b: ValidatingAdmissionPolicyBinding| b.metadata.generation.unwrap_or_default();
    let before = generation(bindings.get("mua.dev-request-status").await.unwrap());
    for action in ["Audit", "Deny"] {
        bindings
            .patch(
                "mua.dev-request-status",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"validationActions": [action]}})),
            )
            .await
            .unwrap();
    }
    let after = generation(bindings.get("mua.dev-request-status").await.unwrap());
    assert!(
        after > before,
        "a binding put back is not the one recorded: generation {before} -> {after}"
    );
    op.reset_calls().await;
    approve_as_approver_a(&cp, &op).await;
    // Whether the operator looked while the binding said Audit or only after it was put back, the
    // request fails: "altered" either way, and the approvals written meanwhile are not trusted.
    nobody_is_elevated(
        &op,
        &azure_name,
        "AdmissionPoliciesAltered",
        "approvals written meanwhile cannot be trusted",
    )
    .await;
}
