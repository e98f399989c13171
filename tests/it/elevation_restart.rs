//! A crash cannot extend an elevation: the security side (a real `mua-operator` process) is SIGKILLed
//! while a request is Active, stays down past the elevation's end, and on restart ends the request at
//! once. It takes the shortest elevation the API allows (5 minutes) of real time, so it has its own test
//! binary and runs alongside the others.

use crate::cluster;
use crate::process;
use crate::simulator;

use std::time::Duration;

use cluster::{ControlPlane, User};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use mua_operator::crd::critical_operation_request::RequestPhase;
use mua_operator::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};
use process::{Operator, eventually};
use serde_json::json;
use simulator::*;

const STEP: Duration = Duration::from_secs(60);

#[tokio::test]
async fn killed_while_active_and_restarted_after_the_end_the_request_expires_at_start_up() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("elev-restart").await;
    let ts = TestSim::start().await;
    let backup_principal = format!("--backup-principal-id={BACKUP_OID}");
    let flags = [backup_principal.as_str()];
    let mut first = Operator::start(cp, &ns, &ts, &flags).await;

    let guards: Api<ResourceGuard> = ns.admin_api();
    let rg = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "guard"},
        "spec": {"subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": format!("restart-{}", ns.name.rsplit('-').next().unwrap()),
                 "region": "westeurope", "elevation": {"approvers": {"groups": ["mua-approvers"]}}}});
    guards
        .create(&PostParams::default(), &serde_json::from_value(rg).unwrap())
        .await
        .unwrap();
    process::wait_ready(&ns, "guard", STEP).await;
    let vps: Api<VaultProtection> = ns.admin_api();
    let vp = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "prod"},
        "spec": {"vault": {"id": vault("prod-vault")}, "guard": {"name": "guard"}}});
    vps.create(&PostParams::default(), &serde_json::from_value(vp).unwrap())
        .await
        .unwrap();

    let requester: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::BackupAdmin).await, &ns.name);
    let request = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "sd"},
        "spec": {"vaultProtection": "prod", "operation": "DisableSoftDelete", "duration": "5m", "justification": "restart drill"}});
    requester
        .create(&PostParams::default(), &serde_json::from_value(request).unwrap())
        .await
        .unwrap();
    let approver: Api<CriticalOperationRequest> = Api::namespaced(cp.client(User::ApproverA).await, &ns.name);
    approver
        .patch_status(
            "sd",
            &PatchParams::apply("kubectl-mua/approver-a"),
            &Patch::Apply(cluster::approval_of(&ns.admin_api(), "sd", User::ApproverA).await),
        )
        .await
        .unwrap();

    let requests: Api<CriticalOperationRequest> = ns.admin_api();
    let active = eventually(STEP, "the request is Active", || async {
        let cor = requests.get("sd").await.ok()?;
        (cor.status.as_ref()?.phase == Some(RequestPhase::Active)).then_some(cor)
    })
    .await;
    let expires = active.status.unwrap().expires_at.unwrap().0;

    first.signal(libc::SIGKILL);
    first.wait_exit(STEP).await;
    // Down until the elevation's end has passed.
    let until_end = expires.duration_since(jiff::Timestamp::now());
    tokio::time::sleep(Duration::try_from(until_end).unwrap_or_default() + Duration::from_secs(1)).await;
    assert_eq!(
        requests.get("sd").await.unwrap().status.unwrap().phase,
        Some(RequestPhase::Active),
        "nothing ended it while the operator was down"
    );

    let started = tokio::time::Instant::now();
    let _second = Operator::start(cp, &ns, &ts, &flags).await;
    let expired = eventually(STEP, "the request is Expired after the restart", || async {
        let cor = requests.get("sd").await.ok()?;
        (cor.status.as_ref()?.phase == Some(RequestPhase::Expired)).then_some(cor)
    })
    .await;
    eprintln!("restart to Expired: {:?}", started.elapsed());
    let status = expired.status.unwrap();
    assert!(status.ended_at.is_some());
    let grants = mua_operator::azure::authorization::list_for_principal(
        &security_client(&ts),
        &status.elevation.unwrap().scope.unwrap(),
        BACKUP_OID,
    )
    .await
    .unwrap();
    assert!(
        grants
            .iter()
            .all(|g| g.role != mua_operator::azure::authorization::BACKUP_MUA_OPERATOR),
        "{grants:?}"
    );
}

fn security_client(ts: &TestSim) -> mua_operator::azure::ArmClient {
    mua_operator::azure::ArmClient::new(
        &ts.cloud,
        ts.http.clone(),
        CONTOSO,
        ts.credential(CONTOSO, SECURITY_APP, SECURITY_SECRET),
    )
}
