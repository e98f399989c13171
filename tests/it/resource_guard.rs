//! The ResourceGuard controller (security side) in-process against the real API server and the ARM
//! simulator: it creates the guard once, writes nothing (to Azure or to status) while nothing differs,
//! follows spec changes, only reports under Observe, refuses guards it does not own, uses the guard's own
//! tenant, and deletes only per the deletion policy. One behaviour per test.

use crate::operator;
use crate::simulator;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use mua_operator::azure::guards::{self, DesiredGuard, GuardId};
use mua_operator::controller::resource_guard::OWNER_TAG;
use mua_operator::operations::CriticalOperation;
use operator::*;
use serde_json::json;
use simulator::*;

const QUIET: Duration = Duration::from_secs(3);
const GUARD_PUT: &str = "PUT microsoft.dataprotection/resourceguards";
const GUARD_GET: &str = "GET microsoft.dataprotection/resourceguards";

fn azure_guard(name: &str) -> GuardId {
    GuardId::new(SECURITY_SUB, "security-rg", name)
}

/// A guard created and Ready; returns its Azure name.
async fn ready_guard(op: &Operator, extra: serde_json::Value) -> String {
    let azure_name = op.unique("g");
    op.create_guard("guard", &azure_name, extra).await;
    op.ready(&op.guards(), "guard").await;
    azure_name
}

#[tokio::test]
async fn a_guard_is_created_with_the_owner_tag_and_reported() {
    let op = Operator::start("rg-create").await;
    let azure_name = ready_guard(&op, json!({"excludedOperations": ["ChangeMarsSecurityPin"]})).await;
    let rg = op.guards().get("guard").await.unwrap();
    assert_eq!(rg.metadata.finalizers, None, "Orphan needs no finalizer");
    let status = rg.status.unwrap();
    assert_eq!(status.observed_generation, rg.metadata.generation);
    assert!(
        status
            .resource_id
            .as_deref()
            .is_some_and(|id| id.ends_with(&format!("/resourceGuards/{azure_name}")))
    );
    assert!(
        status
            .protected_operations
            .iter()
            .any(|o| o.operation == Some(CriticalOperation::DisableSoftDelete))
    );
    let azure = guards::get(&op.security, &azure_guard(&azure_name))
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        azure.tags.get(OWNER_TAG).map(String::as_str),
        Some(format!("{}/guard", op.ns.name).as_str())
    );
    assert_eq!(
        azure.excluded,
        ["Microsoft.RecoveryServices/vaults/backupSecurityPIN/action"]
    );
    op.event("guard", "Created").await;
}

#[tokio::test]
async fn a_guard_in_sync_is_read_once_per_look_and_never_written() {
    let op = Operator::start("rg-steady").await;
    ready_guard(&op, json!({})).await;
    op.reset_calls().await;
    op.nudge(&op.guards(), "guard").await;
    eventually("a look at Azure", || async {
        (op.count(GUARD_GET).await >= 1).then_some(())
    })
    .await;
    op.assert_no_calls(&["PUT", "PATCH", "DELETE"], QUIET, "no Azure write while in sync")
        .await;
    assert_eq!(op.count(GUARD_GET).await, 1, "one read: {}", op.calls().await);
}

#[tokio::test]
async fn a_reconcile_that_finds_nothing_new_writes_no_status() {
    let op = Operator::start("rg-status-once").await;
    ready_guard(&op, json!({})).await;
    op.reset_calls().await;
    op.nudge(&op.guards(), "guard").await;
    let nudged = op.guards().get("guard").await.unwrap().metadata.resource_version;
    eventually("a look at Azure", || async {
        (op.count(GUARD_GET).await >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(QUIET).await; // a "nothing happened" window, long enough for a late status write
    let after = op.guards().get("guard").await.unwrap().metadata.resource_version;
    assert_eq!(after, nudged, "the status was not written again");
}

#[tokio::test]
async fn a_spec_change_reaches_azure() {
    let op = Operator::start("rg-update").await;
    let azure_name = ready_guard(&op, json!({"excludedOperations": ["ChangeMarsSecurityPin"]})).await;
    let clear = json!({"spec": {"excludedOperations": []}});
    op.guards()
        .patch("guard", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    eventually("the exclusion removed in Azure", || async {
        let guard = guards::get(&op.security, &azure_guard(&azure_name)).await.ok()??;
        guard.excluded.is_empty().then_some(())
    })
    .await;
    let note = op.event("guard", "Updated").await;
    assert!(note.contains("excluded operations"), "{note}");
}

#[tokio::test]
async fn under_observe_drift_is_reported_and_azure_is_left_alone() {
    let op = Operator::start("rg-observe").await;
    let azure_name = ready_guard(&op, json!({})).await;
    let observe = json!({"spec": {"managementPolicy": "Observe", "excludedOperations": ["Restore"]}});
    op.guards()
        .patch("guard", &PatchParams::default(), &Patch::Merge(&observe))
        .await
        .unwrap();
    op.reset_calls().await;
    let rg = op
        .wait_for(&op.guards(), "guard", "Synced", "False", Some("Drifted"))
        .await;
    assert!(
        Operator::condition(&rg, "Synced")
            .unwrap()
            .2
            .contains("excluded operations")
    );
    op.assert_no_calls(&["PUT", "PATCH", "DELETE"], QUIET, "Observe writes nothing")
        .await;
    let azure = guards::get(&op.security, &azure_guard(&azure_name))
        .await
        .unwrap()
        .unwrap();
    assert!(azure.excluded.is_empty(), "Azure unchanged");
}

#[tokio::test]
async fn a_guard_managed_by_another_object_is_left_alone() {
    let op = Operator::start("rg-owned").await;
    let azure_name = ready_guard(&op, json!({})).await;
    op.reset_calls().await;
    op.create_guard("copy", &azure_name, json!({"excludedOperations": ["Restore"]}))
        .await;
    let copy = op
        .wait_for(&op.guards(), "copy", "Stalled", "True", Some("OwnedByAnother"))
        .await;
    assert!(Operator::condition(&copy, "Ready").unwrap().2.contains("/guard"));
    op.assert_no_calls(&["PUT", "PATCH", "DELETE"], QUIET, "the copy changes nothing")
        .await;
}

#[tokio::test]
async fn an_existing_guard_is_adopted_only_when_asked() {
    let op = Operator::start("rg-adopt").await;
    let azure_name = op.unique("existing");
    let desired = DesiredGuard {
        location: "westeurope".into(),
        tags: Default::default(),
        description: None,
        excluded: Vec::new(),
    };
    guards::put(&op.security, &azure_guard(&azure_name), &desired, None)
        .await
        .unwrap();
    op.create_guard("guard", &azure_name, json!({})).await;
    op.wait_for(&op.guards(), "guard", "Stalled", "True", Some("AlreadyExists"))
        .await;
    assert_eq!(op.count(GUARD_PUT).await, 1, "only the test's own PUT");

    let adopt = json!({"spec": {"adoptExisting": true}});
    op.guards()
        .patch("guard", &PatchParams::default(), &Patch::Merge(&adopt))
        .await
        .unwrap();
    op.ready(&op.guards(), "guard").await;
    let azure = guards::get(&op.security, &azure_guard(&azure_name))
        .await
        .unwrap()
        .unwrap();
    assert!(azure.tags.contains_key(OWNER_TAG), "adopted and tagged");
}

#[tokio::test]
async fn deleting_with_policy_delete_removes_the_guard_it_manages() {
    let op = Operator::start("rg-delete").await;
    let azure_name = ready_guard(&op, json!({"deletionPolicy": "Delete"})).await;
    eventually("the finalizer for deletionPolicy Delete", || async {
        let rg = op.guards().get("guard").await.ok()?;
        rg.metadata
            .finalizers
            .is_some_and(|f| f.iter().any(|f| f == "mua.dev/resource-guard"))
            .then_some(())
    })
    .await;
    op.guards().delete("guard", &DeleteParams::default()).await.unwrap();
    eventually("the object gone", || async {
        op.guards().get_opt("guard").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(
        guards::get(&op.security, &azure_guard(&azure_name)).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn deleting_with_policy_orphan_leaves_the_guard() {
    let op = Operator::start("rg-orphan").await;
    let azure_name = ready_guard(&op, json!({})).await;
    op.guards().delete("guard", &DeleteParams::default()).await.unwrap();
    eventually("the object gone", || async {
        op.guards().get_opt("guard").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(
        guards::get(&op.security, &azure_guard(&azure_name))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_guard_in_a_tenant_without_credentials_says_so_and_nothing_is_called() {
    let options = Options {
        security_tenants: vec![],
        ..Options::default()
    };
    let op = Operator::start_with("rg-tenant", options).await;
    op.reset_calls().await;
    let extra = json!({"subscriptionId": ISOLATED_SUB, "resourceGroup": "guard-rg", "tenantId": FABRIKAM});
    op.create_guard("isolated", &op.unique("xt"), extra).await;
    let rg = op
        .wait_for(
            &op.guards(),
            "isolated",
            "Stalled",
            "True",
            Some("TenantCredentialMissing"),
        )
        .await;
    assert!(Operator::condition(&rg, "Ready").unwrap().2.contains(FABRIKAM));
    op.assert_no_calls(
        &["GET", "PUT", "PATCH", "DELETE"],
        QUIET,
        "no call with the wrong tenant's token",
    )
    .await;
}
