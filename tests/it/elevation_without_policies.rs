//! Defence in depth: with the admission policies removed from the cluster (this test has a control plane
//! of its own, so nothing else is affected), a self-approval gets past the API server — and the operator
//! still refuses to elevate anyone.

use crate::cluster;
use crate::operator;
use crate::simulator;

use std::time::Duration;

use cluster::{ControlPlane, User};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use mua_operator::azure::authorization;
use mua_operator::crd::CriticalOperationRequest;
use operator::{Operator, Options, eventually};
use serde_json::json;
use simulator::*;

const QUIET: Duration = Duration::from_secs(3);

#[tokio::test]
async fn attack_removing_the_admission_policies_then_self_approving_elevates_nobody() {
    let cp = ControlPlane::own();
    let op = Operator::start_on(
        &cp,
        "attack-no-policies",
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
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), json!({}))
        .await;
    op.ready(&op.protections(), "prod").await;

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
    approver
        .patch_status(
            "sd",
            &PatchParams::apply("kubectl-mua/approver-a"),
            &Patch::Apply(approve("approver-a", &["mua-approvers"])),
        )
        .await
        .unwrap();

    let stalled = op
        .wait_for(
            &op.requests(),
            "sd",
            "Stalled",
            "True",
            Some("AdmissionPoliciesMissing"),
        )
        .await;
    let (_, _, message) = Operator::condition(&stalled, "Stalled").unwrap();
    assert!(message.contains("mua.dev-request-status"), "{message}");
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "nobody is elevated without the policies",
    )
    .await;
    let grants = authorization::list_for_principal(&op.security, &guard(&azure_name), BACKUP_OID)
        .await
        .unwrap();
    assert!(
        grants.iter().all(|g| g.role != authorization::BACKUP_MUA_OPERATOR),
        "{grants:?}"
    );
}
