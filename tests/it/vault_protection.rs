//! The VaultProtection controller (backup side) with the ResourceGuard controller (security side),
//! in-process against the real API server and the ARM simulator with the operator's real credentials
//! code: linking, the checks before any write, drift, and protection that never weakens without an
//! approved, active request. One behaviour per test; each test has its own namespace and simulator.

use crate::elevation;
use crate::operator;
use crate::simulator;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use mua_operator::azure::authorization;
use mua_operator::azure::guards::{self, GuardId};
use mua_operator::azure::vaults::{self, SoftDelete, SoftDeleteChange, VaultId};
use mua_operator::crd::VaultProtection;
use mua_operator::operations::CriticalOperation;
use operator::*;
use reqwest::Method;
use serde_json::json;
use simulator::*;

const WRITES: &[&str] = &["PUT", "PATCH", "POST", "DELETE"];
/// Long enough for a reconcile (and a retry after a failure) to reach Azure if it were going to.
const QUIET: Duration = Duration::from_secs(3);

fn backup_vault(name: &str) -> String {
    format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.DataProtection/backupVaults/{name}"
    )
}

fn east_vault() -> String {
    format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-east-rg/providers/Microsoft.RecoveryServices/vaults/east-vault"
    )
}

fn vault_id(id: &str) -> VaultId {
    VaultId::parse(id).unwrap()
}

/// A ResourceGuard (Ready) and a VaultProtection of `prod-vault` linked to it (Ready); returns the
/// guard's ARM ID.
async fn linked(op: &Operator, extra: serde_json::Value) -> String {
    let azure_name = op.unique("guard");
    op.create_guard("guard", &azure_name, json!({})).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), extra)
        .await;
    op.ready(&op.protections(), "prod").await;
    guard(&azure_name)
}

/// Grants the backup side Contributor on the guard for 30 minutes (as the security side does for an
/// approved request, or as an elevated admin would hold it).
async fn elevate_backup_side(op: &Operator, guard_id: &str) {
    let request = authorization::ScheduleRequestSpec {
        name: None,
        scope: guard_id.to_string(),
        tenant: None,
        role: authorization::CONTRIBUTOR.into(),
        principal_id: BACKUP_OID.into(),
        request_type: authorization::RequestType::AdminAssign,
        duration: Duration::from_secs(1800),
        ends_at: None,
        justification: "test".into(),
        ticket: None,
    };
    authorization::request_schedule(&op.security, &request).await.unwrap();
}

async fn soft_delete_in_azure(op: &Operator, id: &str) -> Option<SoftDelete> {
    vaults::get(&op.backup, &vault_id(id))
        .await
        .unwrap()
        .unwrap()
        .soft_delete
        .map(|s| s.state)
}

async fn linked_guard_in_azure(op: &Operator, id: &str) -> Option<String> {
    vaults::get_link(&op.backup, &vault_id(id))
        .await
        .unwrap()
        .map(|l| l.guard_id)
}

#[tokio::test]
async fn a_recovery_services_vault_links_to_a_guard_named_in_the_cluster() {
    let op = Operator::start("vp-link-name").await;
    let guard_id = linked(&op, json!({})).await;
    let vp = op.protections().get("prod").await.unwrap();
    let status = vp.status.clone().unwrap();
    assert_eq!(
        linked_guard_in_azure(&op, &vault("prod-vault")).await.as_deref(),
        Some(guard_id.as_str())
    );
    assert_eq!(status.guard_id.as_deref(), Some(guard_id.as_str()));
    assert_eq!(status.guard_name.as_deref(), Some("guard"));
    assert_eq!(status.vault_name.as_deref(), Some("prod-vault"));
    assert_eq!(status.region.as_deref(), Some("westeurope"));
    assert_eq!(status.multi_user_authorization.as_deref(), Some("Enabled"));
    assert_eq!(
        status.guard_description.as_deref(),
        Some("Ask #backup-approvals for a CriticalOperationRequest approval")
    );
    let protected: Vec<_> = status.protected_operations.iter().filter_map(|o| o.operation).collect();
    assert!(
        protected.contains(&CriticalOperation::DisableSoftDelete),
        "{protected:?}"
    );
    assert!(
        protected.contains(&CriticalOperation::DisableMultiUserAuthorization),
        "{protected:?}"
    );
    assert_eq!(Operator::condition(&vp, "Linked").map(|c| c.0), Some("True".into()));
    assert_eq!(status.observed_generation, vp.metadata.generation);
    op.event("prod", "Linked").await;
}

#[tokio::test]
async fn a_backup_vault_links_to_a_guard_given_by_arm_id() {
    let op = Operator::start("vp-link-id").await;
    let guard_id = op.ts.create_guard(&op.unique("by-id")).await;
    op.create_protection(
        "bv",
        &backup_vault("prod-backup-vault"),
        json!({"id": guard_id}),
        json!({}),
    )
    .await;
    let vp = op.ready(&op.protections(), "bv").await;
    assert_eq!(
        linked_guard_in_azure(&op, &backup_vault("prod-backup-vault"))
            .await
            .as_deref(),
        Some(guard_id.as_str())
    );
    let status = vp.status.unwrap();
    assert_eq!(status.guard_id.as_deref(), Some(guard_id.as_str()));
    let protected: Vec<_> = status.protected_operations.iter().filter_map(|o| o.operation).collect();
    assert!(
        protected.contains(&CriticalOperation::DisableMultiUserAuthorization),
        "{protected:?}"
    );
}

#[tokio::test]
async fn a_backup_vault_links_to_a_guard_named_in_the_cluster() {
    let op = Operator::start("vp-bv-name").await;
    let azure_name = op.unique("bv-guard");
    op.create_guard("guard", &azure_name, json!({})).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection(
        "bv",
        &backup_vault("prod-backup-vault"),
        json!({"name": "guard"}),
        json!({}),
    )
    .await;
    let vp = op.ready(&op.protections(), "bv").await;
    assert_eq!(
        linked_guard_in_azure(&op, &backup_vault("prod-backup-vault")).await,
        Some(guard(&azure_name))
    );
    let status = vp.status.unwrap();
    assert_eq!(status.guard_name.as_deref(), Some("guard"));
    assert!(status.guard_description.is_some(), "the guard's description is shown");
}

#[tokio::test]
async fn a_recovery_services_vault_links_to_a_guard_given_by_arm_id() {
    let op = Operator::start("vp-rs-id").await;
    let guard_id = op.ts.create_guard(&op.unique("rs-by-id")).await;
    op.create_protection("prod", &vault("prod-vault"), json!({"id": guard_id}), json!({}))
        .await;
    op.ready(&op.protections(), "prod").await;
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, Some(guard_id));
}

#[tokio::test]
async fn a_guard_in_another_tenant_converges_and_a_vault_links_to_it_with_an_auxiliary_token() {
    let op = Operator::start("vp-cross-tenant").await;
    let azure_name = op.unique("xt");
    let extra = json!({"subscriptionId": ISOLATED_SUB, "resourceGroup": "guard-rg", "tenantId": FABRIKAM});
    op.create_guard("isolated", &azure_name, extra).await;
    op.ready(&op.guards(), "isolated").await;
    let id = GuardId::new(ISOLATED_SUB, "guard-rg", &azure_name).in_tenant(Some(FABRIKAM));
    assert!(
        guards::get(&op.security, &id).await.unwrap().is_some(),
        "the guard exists in the other tenant"
    );

    op.create_protection("prod", &vault("prod-vault"), json!({"name": "isolated"}), json!({}))
        .await;
    op.ready(&op.protections(), "prod").await;
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, Some(id.path()));
}

#[tokio::test]
async fn without_the_guard_tenants_credential_the_object_says_so_and_nothing_is_written() {
    let options = Options {
        backup_tenants: vec![],
        ..Options::default()
    };
    let op = Operator::start_with("vp-no-tenant", options).await;
    let guard = json!({"id": isolated_guard(), "tenantId": FABRIKAM});
    op.create_protection("prod", &vault("prod-vault"), guard, json!({}))
        .await;
    let vp = op
        .wait_for(
            &op.protections(),
            "prod",
            "Stalled",
            "True",
            Some("TenantCredentialMissing"),
        )
        .await;
    let (_, _, message) = Operator::condition(&vp, "Ready").unwrap();
    assert!(message.contains(FABRIKAM), "{message}");
    op.assert_no_calls(WRITES, QUIET, "no Azure write without the tenant's credential")
        .await;
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, None);
}

#[tokio::test]
async fn a_guard_in_another_region_is_refused_before_any_write() {
    let op = Operator::start("vp-region").await;
    op.create_guard("guard", &op.unique("weu"), json!({})).await;
    op.ready(&op.guards(), "guard").await;
    op.reset_calls().await;
    op.create_protection("east", &east_vault(), json!({"name": "guard"}), json!({}))
        .await;
    let vp = op
        .wait_for(&op.protections(), "east", "Stalled", "True", Some("RegionMismatch"))
        .await;
    assert!(Operator::condition(&vp, "Ready").unwrap().2.contains("eastus"));
    op.assert_no_calls(WRITES, QUIET, "no Azure write across regions").await;
    assert_eq!(linked_guard_in_azure(&op, &east_vault()).await, None);
}

#[tokio::test]
async fn without_reader_on_the_guard_nothing_is_written() {
    let op = Operator::start("vp-reader").await;
    op.create_guard("guard", &op.unique("noread"), json!({})).await;
    op.ready(&op.guards(), "guard").await;
    // The security admin has not granted the backup side Reader: remove the seed's grant.
    for assignment in authorization::list_for_principal(&op.security, &security_rg(), BACKUP_OID)
        .await
        .unwrap()
    {
        authorization::remove(&op.security, &assignment.id).await.unwrap();
    }
    op.reset_calls().await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), json!({}))
        .await;
    let vp = op
        .wait_for(&op.protections(), "prod", "Stalled", "True", Some("ReaderRoleMissing"))
        .await;
    assert!(Operator::condition(&vp, "Ready").unwrap().2.contains("Reader"));
    op.assert_no_calls(WRITES, QUIET, "no link attempted without Reader")
        .await;
}

#[tokio::test]
async fn a_missing_guard_is_reported_and_nothing_is_written() {
    let op = Operator::start("vp-no-guard").await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "nowhere"}), json!({}))
        .await;
    let vp = op
        .wait_for(&op.protections(), "prod", "Stalled", "True", Some("GuardNotFound"))
        .await;
    assert!(Operator::condition(&vp, "Ready").unwrap().2.contains("nowhere"));
    op.assert_no_calls(WRITES, QUIET, "no Azure write for a missing guard")
        .await;
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, None);
}

#[tokio::test]
async fn a_vault_linked_to_another_guard_is_not_repointed() {
    let op = Operator::start("vp-other-guard").await;
    let other = op.ts.create_guard(&op.unique("other")).await;
    vaults::link(
        &op.backup,
        &vault_id(&vault("prod-vault")),
        &GuardId::parse(&other).unwrap(),
    )
    .await
    .unwrap();
    op.create_guard("guard", &op.unique("mine"), json!({})).await;
    op.ready(&op.guards(), "guard").await;
    op.reset_calls().await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), json!({}))
        .await;
    let vp = op
        .wait_for(&op.protections(), "prod", "Stalled", "True", Some("LinkedToOtherGuard"))
        .await;
    assert!(Operator::condition(&vp, "Ready").unwrap().2.contains(&other));
    op.assert_no_calls(WRITES, QUIET, "the link is not re-pointed").await;
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, Some(other));
}

#[tokio::test]
async fn an_azure_failure_shows_on_the_object_and_in_metrics_until_it_clears() {
    let op = Operator::start("rg-failure").await;
    let azure_name = op.unique("flaky");
    op.create_guard("guard", &azure_name, json!({})).await;
    op.ready(&op.guards(), "guard").await;
    let faults = json!([{"pathContains": azure_name, "errorRate": 1.0, "errorStatus": 500}]);
    op.ts.admin(Method::PUT, "/_sim/faults", Some(faults)).await;
    op.nudge(&op.guards(), "guard").await;
    let rg = op
        .wait_for(&op.guards(), "guard", "Ready", "False", Some("AzureUnavailable"))
        .await;
    assert!(
        Operator::condition(&rg, "Ready").unwrap().2.contains("500"),
        "the message says what Azure answered"
    );
    assert_eq!(
        Operator::condition(&rg, "Reconciling").map(|c| c.0),
        Some("True".into()),
        "it is retried"
    );
    let status = rg.status.as_ref().unwrap();
    assert!(
        status.resource_id.is_some() && !status.protected_operations.is_empty(),
        "a failure keeps what was last seen of Azure: {status:?}"
    );
    op.event("guard", "AzureUnavailable").await;
    let metrics = op.metrics();
    let failures = metrics
        .lines()
        .find(|l| {
            l.starts_with(r#"mua_reconcile_failures_total{controller="resourceguard",reason="AzureUnavailable"}"#)
        })
        .unwrap_or_else(|| panic!("no failure series in\n{metrics}"));
    assert!(!failures.ends_with(" 0"), "{failures}");

    op.ts.admin(Method::PUT, "/_sim/faults", Some(json!([]))).await;
    op.ready(&op.guards(), "guard").await;
}

#[tokio::test]
async fn a_link_removed_outside_the_operator_is_restored() {
    let op = Operator::start("vp-drift-link").await;
    let guard_id = linked(&op, json!({})).await;
    // An elevated admin unlinks the vault directly in Azure.
    elevate_backup_side(&op, &guard_id).await;
    vaults::unlink(
        &op.backup,
        &vault_id(&vault("prod-vault")),
        &GuardId::parse(&guard_id).unwrap(),
    )
    .await
    .unwrap();
    op.nudge(&op.protections(), "prod").await;
    let note = op.event("prod", "LinkRestored").await;
    assert!(note.contains(&guard_id), "{note}");
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, Some(guard_id));
}

#[tokio::test]
async fn soft_delete_turned_off_outside_the_operator_is_turned_back_on() {
    let op = Operator::start("vp-drift-sd").await;
    let guard_id = linked(&op, json!({"softDelete": {"state": "Enabled"}})).await;
    elevate_backup_side(&op, &guard_id).await;
    let off = SoftDeleteChange {
        state: SoftDelete::Disabled,
        retention_days: None,
    };
    vaults::set_soft_delete(
        &op.backup,
        &vault_id(&vault("prod-vault")),
        off,
        GuardId::parse(&guard_id).as_ref(),
    )
    .await
    .unwrap();
    op.nudge(&op.protections(), "prod").await;
    op.event("prod", "SoftDeleteRestored").await;
    assert_eq!(
        soft_delete_in_azure(&op, &vault("prod-vault")).await,
        Some(SoftDelete::Enabled)
    );
}

#[tokio::test]
async fn under_observe_drift_is_only_reported() {
    let op = Operator::start("vp-observe").await;
    let guard_id = linked(
        &op,
        json!({"softDelete": {"state": "Enabled"}, "managementPolicy": "Observe"}),
    )
    .await;
    // Observe never links: link it as the backup admin would, then let it drift.
    let (id, guard) = (vault_id(&vault("prod-vault")), GuardId::parse(&guard_id).unwrap());
    if vaults::get_link(&op.backup, &id).await.unwrap().is_none() {
        vaults::link(&op.backup, &id, &guard).await.unwrap();
    }
    elevate_backup_side(&op, &guard_id).await;
    let off = SoftDeleteChange {
        state: SoftDelete::Disabled,
        retention_days: None,
    };
    vaults::set_soft_delete(&op.backup, &id, off, Some(&guard))
        .await
        .unwrap();
    vaults::unlink(&op.backup, &id, &guard).await.unwrap();
    op.reset_calls().await;
    op.nudge(&op.protections(), "prod").await;
    let message = eventually("both drifts reported", || async {
        let vp = op.protections().get("prod").await.ok()?;
        let (status, reason, message) = Operator::condition(&vp, "Synced")?;
        (status == "False" && reason == "Drifted" && message.contains("soft delete")).then_some(message)
    })
    .await;
    assert!(message.contains("not linked"), "{message}");
    op.assert_no_calls(WRITES, QUIET, "Observe writes nothing").await;
    assert_eq!(vaults::get_link(&op.backup, &id).await.unwrap(), None);
    assert_eq!(
        soft_delete_in_azure(&op, &vault("prod-vault")).await,
        Some(SoftDelete::Disabled)
    );
}

#[tokio::test]
async fn disabling_soft_delete_waits_for_an_approved_request() {
    let op = Operator::start("vp-sd-off").await;
    linked(&op, json!({"softDelete": {"state": "Enabled"}})).await;
    op.reset_calls().await;
    let patch = json!({"spec": {"softDelete": {"state": "Disabled"}}});
    op.protections()
        .patch("prod", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let vp = op
        .wait_for(&op.protections(), "prod", "Ready", "False", Some("ElevationRequired"))
        .await;
    assert!(
        Operator::condition(&vp, "Ready")
            .unwrap()
            .2
            .contains("DisableSoftDelete")
    );
    assert_eq!(
        Operator::condition(&vp, "SoftDeleteSynced").map(|c| (c.0, c.1)),
        Some(("False".into(), "ElevationRequired".into()))
    );
    op.assert_no_calls(WRITES, QUIET, "soft delete is not weakened without a request")
        .await;
    assert_eq!(
        soft_delete_in_azure(&op, &vault("prod-vault")).await,
        Some(SoftDelete::Enabled)
    );
}

#[tokio::test]
async fn disabling_mua_waits_for_an_approved_request() {
    let op = Operator::start("vp-mua-off").await;
    let guard_id = linked(&op, json!({})).await;
    op.reset_calls().await;
    let patch = json!({"spec": {"multiUserAuthorization": "Disabled"}});
    op.protections()
        .patch("prod", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let vp = op
        .wait_for(&op.protections(), "prod", "Ready", "False", Some("ElevationRequired"))
        .await;
    assert!(
        Operator::condition(&vp, "Ready")
            .unwrap()
            .2
            .contains("DisableMultiUserAuthorization")
    );
    op.assert_no_calls(WRITES, QUIET, "the vault is not unlinked without a request")
        .await;
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, Some(guard_id));
}

#[tokio::test]
async fn deleting_with_unlink_waits_for_an_approved_request() {
    let op = Operator::start("vp-delete").await;
    let guard_id = linked(&op, json!({"deletionPolicy": "Unlink"})).await;
    op.reset_calls().await;
    op.protections().delete("prod", &DeleteParams::default()).await.unwrap();
    let vp = op
        .wait_for(&op.protections(), "prod", "Ready", "False", Some("ElevationRequired"))
        .await;
    let message = Operator::condition(&vp, "Ready").unwrap().2;
    assert!(message.contains("deletion waits"), "{message}");
    op.assert_no_calls(WRITES, QUIET, "the vault is not unlinked without a request")
        .await;
    assert!(
        op.protections().get_opt("prod").await.unwrap().is_some(),
        "the object stays"
    );
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, Some(guard_id));
}

#[tokio::test]
async fn an_orphaned_vault_protection_is_deleted_at_once_and_leaves_the_link() {
    let op = Operator::start("vp-orphan").await;
    let guard_id = linked(&op, json!({})).await;
    let vp = op.protections().get("prod").await.unwrap();
    assert_eq!(vp.metadata.finalizers, None, "Orphan needs no finalizer");
    op.protections().delete("prod", &DeleteParams::default()).await.unwrap();
    eventually("the object gone", || async {
        op.protections().get_opt("prod").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(linked_guard_in_azure(&op, &vault("prod-vault")).await, Some(guard_id));
    eventually("the object no longer counted", || async {
        let gone = r#"mua_objects{controller="vaultprotection",ready="True",reason="InSync"} 0"#;
        op.metrics().contains(gone).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_guard_with_linked_vaults_is_not_deleted() {
    let op = Operator::start("rg-linked").await;
    let guard_id = linked(&op, json!({})).await;
    let patch = json!({"spec": {"deletionPolicy": "Delete"}});
    op.guards()
        .patch("guard", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually("the finalizer for deletionPolicy Delete", || async {
        let rg = op.guards().get("guard").await.ok()?;
        rg.metadata.finalizers.is_some_and(|f| !f.is_empty()).then_some(())
    })
    .await;
    op.guards().delete("guard", &DeleteParams::default()).await.unwrap();
    let rg = op
        .wait_for(&op.guards(), "guard", "Stalled", "True", Some("VaultsLinked"))
        .await;
    assert!(Operator::condition(&rg, "Ready").unwrap().2.contains("/prod"));
    let note = op.event("guard", "DeletionBlocked").await;
    assert!(note.contains("/prod"), "{note}");
    assert!(
        guards::get(&op.security, &GuardId::parse(&guard_id).unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

/// The operator with the request controller, the guard `guard` whose rules need one approval from the
/// group `mua-approvers`, and `prod` (of `prod-vault`) linked to it with soft delete on (as the elevation
/// tests set it up).
async fn with_elevation(prefix: &str) -> Operator {
    let op = elevation::start(prefix).await;
    elevation::protected(&op, 1, json!({})).await;
    op
}

/// The backup admin asks for `operation` on `prod` for `duration`; approver-a approves it; it is Active.
async fn approved_request(op: &Operator, name: &str, operation: &str, duration: &str) {
    elevation::request(op, crate::cluster::User::BackupAdmin, name, operation, duration).await;
    elevation::decide(op, crate::cluster::User::ApproverA, name, "Approve").await;
    elevation::phase_is(
        op,
        name,
        mua_operator::crd::critical_operation_request::RequestPhase::Active,
    )
    .await;
}

#[tokio::test]
async fn with_an_active_request_soft_delete_is_disabled_citing_the_guard() {
    let op = with_elevation("vp-sd-elevated").await;
    approved_request(&op, "sd", "DisableSoftDelete", "30m").await;
    let patch = json!({"spec": {"softDelete": {"state": "Disabled"}}});
    op.protections()
        .patch("prod", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let note = op.event("prod", "CriticalOperationPerformed").await;
    assert!(note.contains("sd"), "{note}");
    assert_eq!(
        soft_delete_in_azure(&op, &vault("prod-vault")).await,
        Some(SoftDelete::Disabled)
    );
    op.ready(&op.protections(), "prod").await;
}

#[tokio::test]
async fn a_request_past_its_end_on_the_clock_is_not_used() {
    let op = with_elevation("vp-expired").await;
    approved_request(&op, "sd", "DisableSoftDelete", "10m").await;
    // Twenty minutes later on the shared clock (the simulator's, which the operator reads too), the
    // backup admin turns soft delete off: the request's time is up, whatever its status still says.
    op.ts.sim.advance(Duration::from_secs(20 * 60));
    op.declare_soft_delete_off("prod").await;
    op.wait_for(&op.protections(), "prod", "Ready", "False", Some("ElevationRequired"))
        .await;
    // Watched long enough to catch a late write.
    let until = tokio::time::Instant::now() + QUIET;
    while tokio::time::Instant::now() < until {
        assert_eq!(
            soft_delete_in_azure(&op, &vault("prod-vault")).await,
            Some(SoftDelete::Enabled),
            "an expired request weakens nothing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_steady_state_resync_reads_once_and_writes_nothing() {
    let options = Options {
        config: mua_operator::controller::ControllerConfig {
            resync: Duration::from_secs(4),
            ..Options::default().config
        },
        ..Options::default()
    };
    let op = Operator::start_with("vp-steady", options).await;
    linked(&op, json!({"softDelete": {"state": "Enabled"}})).await;
    op.reset_calls().await;
    eventually("a resync", || async {
        (op.count("GET microsoft.recoveryservices/vaults").await >= 1).then_some(())
    })
    .await;
    // Less than one resync period (4 s less 10% jitter) after the first read: exactly this resync's calls.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = op.calls().await;
    let reads: u64 = calls
        .as_object()
        .unwrap()
        .iter()
        .filter(|(route, _)| route.starts_with("GET ") && route.contains("vaults"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(reads, 1, "one ARM read per object per resync: {calls}");
    op.assert_no_calls(WRITES, Duration::from_millis(1), "no write in steady state")
        .await;
}

#[tokio::test]
async fn a_status_only_update_costs_no_azure_call() {
    let op = Operator::start("vp-status-only").await;
    linked(&op, json!({})).await;
    op.reset_calls().await;
    let patch = json!({"status": {"guardDescription": "edited by hand"}});
    op.protections()
        .patch_status("prod", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    op.assert_no_calls(
        &["GET", "PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "a status update triggers nothing",
    )
    .await;
    let vp: VaultProtection = op.protections().get("prod").await.unwrap();
    assert_eq!(vp.status.unwrap().guard_description.as_deref(), Some("edited by hand"));
}
