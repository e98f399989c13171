//! The ResourceGuard controller against a real API server and the ARM simulator: it creates the guard
//! once, writes nothing while nothing differs, follows spec changes, only reports under Observe, refuses
//! a guard it does not own, and deletes only per the deletion policy.

mod cluster;
mod simulator;

use std::sync::Arc;
use std::time::Duration;

use cluster::{ControlPlane, User};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mua_operator::azure::guards::{self, GuardId};
use mua_operator::azure::{ArmClient, RetryPolicy};
use mua_operator::controller::{Context, resource_guard};
use mua_operator::crd::ResourceGuard;
use reqwest::Method;
use serde_json::json;
use simulator::*;

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, for at most [`DEADLINE`].
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn guard_object(name: &str, azure_name: &str, extra: serde_json::Value) -> ResourceGuard {
    let mut spec = json!({
        "subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": azure_name, "region": "westeurope",
        "description": "Ask #backup-approvals", "excludedOperations": ["ChangeMarsSecurityPin"],
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(
        json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn condition(rg: &ResourceGuard, type_: &str) -> Option<(String, String)> {
    let c = rg.status.as_ref()?.conditions.get(type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn the_controller_keeps_the_azure_guard_as_declared() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("mua_operator=debug")
        .try_init();
    let cp = ControlPlane::shared();
    let ns = cp.namespace("guard-controller").await;
    let ts = TestSim::start().await;
    let security = ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, ts.security_side()).with_retry(RetryPolicy {
        min_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    });
    let ctx = Arc::new(Context::new(cp.client(User::Admin).await).with_security(security.clone()));
    let api: Api<ResourceGuard> = ns.admin_api();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(resource_guard::run(api.clone(), ctx, async {
        let _ = stopped.await;
    }));

    api.create(
        &PostParams::default(),
        &guard_object("backup-guard", "ctl-guard", json!({})),
    )
    .await
    .unwrap();
    let ready = eventually("Ready=True", || async {
        let rg = api.get("backup-guard").await.ok()?;
        (condition(&rg, "Ready").is_some_and(|(status, _)| status == "True")).then_some(rg)
    })
    .await;
    assert_eq!(ready.metadata.finalizers, None, "Orphan needs no finalizer");
    let status = ready.status.clone().unwrap();
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert!(
        status
            .resource_id
            .as_deref()
            .is_some_and(|id| id.ends_with("/resourceGuards/ctl-guard"))
    );
    assert!(
        status
            .protected_operations
            .iter()
            .any(|o| o.operation == Some(mua_operator::operations::CriticalOperation::DisableSoftDelete))
    );
    let id = GuardId::new(SECURITY_SUB, "security-rg", "ctl-guard");
    let azure = guards::get(&security, &id)
        .await
        .unwrap()
        .expect("the controller created the guard");
    assert_eq!(
        azure.tags.get(resource_guard::OWNER_TAG).map(String::as_str),
        Some(format!("{}/backup-guard", ns.name).as_str())
    );
    assert_eq!(
        azure.excluded,
        ["Microsoft.RecoveryServices/vaults/backupSecurityPIN/action"]
    );

    // A reconcile with nothing to change reads Azure once and writes nothing.
    ts.admin(Method::DELETE, "/_sim/calls", None).await;
    let nudge = json!({"metadata": {"annotations": {"mua.dev/reconcile-requested-at": "1"}}});
    api.patch("backup-guard", &PatchParams::default(), &Patch::Merge(&nudge))
        .await
        .unwrap();
    let calls = eventually("a resync read", || async {
        let calls = ts.admin(Method::GET, "/_sim/calls", None).await;
        (calls["byRoute"]["GET microsoft.dataprotection/resourceguards"].as_u64() >= Some(1)).then_some(calls)
    })
    .await;
    assert_eq!(
        calls["byRoute"]["PUT microsoft.dataprotection/resourceguards"],
        serde_json::Value::Null,
        "no write: {calls}"
    );

    // A spec change reaches Azure.
    let clear = json!({"spec": {"excludedOperations": []}});
    api.patch("backup-guard", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    eventually("the exclusion removed in Azure", || async {
        let guard = guards::get(&security, &id).await.ok()??;
        guard.excluded.is_empty().then_some(())
    })
    .await;

    // Under Observe, drift is reported and Azure is left alone.
    let observe = json!({"spec": {"managementPolicy": "Observe", "excludedOperations": ["Restore"]}});
    api.patch("backup-guard", &PatchParams::default(), &Patch::Merge(&observe))
        .await
        .unwrap();
    eventually("Synced=False Drifted", || async {
        let rg = api.get("backup-guard").await.ok()?;
        (condition(&rg, "Synced") == Some(("False".into(), "Drifted".into()))).then_some(())
    })
    .await;
    let azure = guards::get(&security, &id).await.unwrap().unwrap();
    assert!(azure.excluded.is_empty(), "Observe changed nothing");

    // A second object naming the same Azure guard does not take it over.
    api.create(&PostParams::default(), &guard_object("copy", "ctl-guard", json!({})))
        .await
        .unwrap();
    eventually("the copy stalled", || async {
        let rg = api.get("copy").await.ok()?;
        (condition(&rg, "Stalled") == Some(("True".into(), "OwnedByAnother".into()))).then_some(())
    })
    .await;
    api.delete("copy", &DeleteParams::default()).await.unwrap();

    // Deleting with deletionPolicy Delete removes the guard it manages.
    let delete = json!({"spec": {"managementPolicy": "Manage", "deletionPolicy": "Delete"}});
    api.patch("backup-guard", &PatchParams::default(), &Patch::Merge(&delete))
        .await
        .unwrap();
    eventually("the finalizer added for deletionPolicy Delete", || async {
        let rg = api.get("backup-guard").await.ok()?;
        rg.metadata
            .finalizers
            .is_some_and(|f| f.iter().any(|f| f == "mua.dev/resource-guard"))
            .then_some(())
    })
    .await;
    api.delete("backup-guard", &DeleteParams::default()).await.unwrap();
    eventually("the object gone", || async {
        api.get_opt("backup-guard").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        guards::get(&security, &id).await.unwrap(),
        None,
        "the Azure guard was deleted"
    );
    assert!(api.get_opt("copy").await.unwrap().is_none());

    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, controller)
        .await
        .expect("the controller stops")
        .unwrap();
}
