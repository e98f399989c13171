//! The ARM client against the simulator over HTTPS: typed guard calls, ARM errors, retries on throttling,
//! server errors and dropped connections, no retries where they would be wrong, long-running operations
//! and auxiliary tokens.

use crate::simulator;

use std::collections::BTreeMap;
use std::time::Duration;

use mua_operator::azure::guards::{self, DesiredGuard, GuardId};
use mua_operator::azure::{ArmClient, Call, RetryPolicy};
use reqwest::Method;
use serde_json::json;
use simulator::*;

fn client(ts: &TestSim, app: &str, secret: &str) -> ArmClient {
    let credential = ts.credential(CONTOSO, app, secret);
    let fast = RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, credential).with_retry(fast)
}

fn guard_id(name: &str) -> GuardId {
    GuardId::new(SECURITY_SUB, "security-rg", name)
}

fn desired() -> DesiredGuard {
    DesiredGuard {
        location: "westeurope".into(),
        tags: BTreeMap::from([("owner".to_string(), "security".to_string())]),
        description: Some("Ask #backup-approvals".into()),
        excluded: vec!["Microsoft.RecoveryServices/vaults/backupSecurityPIN/action".into()],
    }
}

async fn calls_to(ts: &TestSim, route: &str) -> u64 {
    let calls = ts.admin(Method::GET, "/_sim/calls", None).await;
    calls["byRoute"][route].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn guards_are_created_read_conditionally_updated_and_deleted() {
    let ts = TestSim::start().await;
    let security = client(&ts, SECURITY_APP, SECURITY_SECRET);
    let id = guard_id("typed-guard");
    assert_eq!(guards::get(&security, &id).await.unwrap(), None, "no guard yet");

    let created = guards::put(&security, &id, &desired(), None).await.unwrap();
    assert_eq!(created.location, "westeurope");
    assert_eq!(created.description.as_deref(), Some("Ask #backup-approvals"));
    assert_eq!(created.excluded, desired().excluded);
    assert!(
        created
            .operations
            .iter()
            .any(|o| o.vault_critical_operation.ends_with("backupconfig/write"))
    );
    let read = guards::get(&security, &id).await.unwrap().expect("the guard exists");
    assert_eq!(read.etag, created.etag);

    let stale = guards::put(&security, &id, &desired(), Some("\"stale\"".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (stale.status(), stale.code()),
        (Some(412), Some("PreconditionFailed")),
        "{stale}"
    );
    let mut changed = desired();
    changed.excluded.clear();
    let updated = guards::put(&security, &id, &changed, read.etag.clone()).await.unwrap();
    assert!(updated.excluded.is_empty());

    // Excluding a mandatory operation is Azure's call to refuse, and the error says why.
    let mut mandatory = desired();
    mandatory.excluded = vec!["Microsoft.RecoveryServices/vaults/backupconfig/write".into()];
    let err = guards::put(&security, &id, &mandatory, None).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(err.to_string().contains("mandatory"), "{err}");

    guards::delete(&security, &id).await.unwrap();
    guards::delete(&security, &id)
        .await
        .expect("deleting a deleted guard succeeds");
    assert_eq!(guards::get(&security, &id).await.unwrap(), None);
}

#[tokio::test]
async fn transient_failures_are_retried_and_the_call_succeeds() {
    let ts = TestSim::start().await;
    let security = client(&ts, SECURITY_APP, SECURITY_SECRET);
    let id = guard_id("retried");
    guards::put(&security, &id, &desired(), None).await.unwrap();

    for rule in [
        json!({"pathContains": "resourceGuards/retried", "errorRate": 1.0, "errorStatus": 503, "times": 2}),
        json!({"pathContains": "resourceGuards/retried", "dropRate": 1.0, "times": 2}),
        json!({"pathContains": "resourceGuards/retried", "errorRate": 1.0, "errorStatus": 429, "times": 1}),
    ] {
        ts.admin(Method::PUT, "/_sim/faults", Some(json!([rule.clone()]))).await;
        let guard = guards::get(&security, &id)
            .await
            .unwrap_or_else(|err| panic!("{rule}: {err}"));
        assert!(guard.is_some(), "{rule}");
        let left = ts.admin(Method::GET, "/_sim/faults", None).await;
        assert_eq!(left[0]["times"], 0, "every injected failure was met: {left}");
    }
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let ts = TestSim::start().await;
    let security = client(&ts, SECURITY_APP, SECURITY_SECRET);
    let id = guard_id("throttled");
    guards::put(&security, &id, &desired(), None).await.unwrap();
    ts.admin(
        Method::PUT,
        "/_sim/faults",
        Some(json!([{"pathContains": "resourceGuards/throttled", "errorRate": 1.0, "errorStatus": 429, "times": 1}])),
    )
    .await;
    let started = tokio::time::Instant::now();
    guards::get(&security, &id).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn refusals_are_not_retried_and_say_what_azure_said() {
    let ts = TestSim::start().await;
    let backup = client(&ts, BACKUP_APP, BACKUP_SECRET);
    ts.admin(Method::DELETE, "/_sim/calls", None).await;
    let err = guards::put(&backup, &guard_id("not-mine"), &desired(), None)
        .await
        .unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(403), Some("AuthorizationFailed")));
    assert_eq!(err.metric_label(), "forbidden");
    assert!(
        err.to_string().contains("PUT /subscriptions/"),
        "the error names the call: {err}"
    );
    assert_eq!(
        calls_to(&ts, "PUT microsoft.dataprotection/resourceguards").await,
        1,
        "a 403 is not retried"
    );

    // A POST action is not repeated after a server error: ARM may have carried it out.
    let pin = Call::new(
        Method::POST,
        format!("{}/backupSecurityPIN", vault("prod-vault")),
        "2026-10-01",
    )
    .body(json!({}));
    ts.admin(
        Method::PUT,
        "/_sim/faults",
        Some(json!([{"pathContains": "backupSecurityPIN", "errorRate": 1.0, "errorStatus": 500, "times": 1}])),
    )
    .await;
    let err = backup.send(&pin).await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    backup.send(&pin).await.expect("the next call goes through");

    // Persistent failures end with the last error after the policy's attempts.
    ts.admin(
        Method::PUT,
        "/_sim/faults",
        Some(json!([{"pathContains": "vaults/prod-vault", "errorRate": 1.0, "errorStatus": 503}])),
    )
    .await;
    let err = backup
        .send(&Call::new(Method::GET, vault("prod-vault"), "2026-11-01"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
}

#[tokio::test]
async fn long_running_vault_updates_are_followed_to_the_end() {
    let ts = TestSim::start().await;
    let backup = client(&ts, BACKUP_APP, BACKUP_SECRET);
    let patch = Call::new(Method::PATCH, vault("prod-vault"), "2026-11-01").body(json!({"tags": {"env": "prod"}}));
    let reply = backup.send(&patch).await.unwrap();
    assert_eq!(reply.status, 202);
    backup
        .wait_for_completion(&reply, "patching the vault", Duration::from_secs(30))
        .await
        .unwrap();
    let vault_body = backup
        .send(&Call::new(Method::GET, vault("prod-vault"), "2026-11-01"))
        .await
        .unwrap()
        .body;
    assert_eq!(vault_body["tags"]["env"], "prod");
}

#[tokio::test]
async fn a_guard_in_another_tenant_gets_an_auxiliary_token() {
    let ts = TestSim::start().await;
    let link = Call::new(
        Method::PUT,
        format!("{}/backupResourceGuardProxies/VaultProxy", vault("prod-vault")),
        "2026-10-01",
    )
    .body(json!({"properties": {"resourceGuardResourceId": isolated_guard()}}));
    let home_only = client(&ts, BACKUP_APP, BACKUP_SECRET);
    let err = home_only
        .send(&link.clone().auxiliary(Some(FABRIKAM)))
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "tenant_not_configured", "{err}");
    let both = home_only.with_tenant(FABRIKAM, ts.credential(FABRIKAM, BACKUP_APP, BACKUP_SECRET));
    let reply = both.send(&link.auxiliary(Some(FABRIKAM))).await.unwrap();
    assert_eq!(reply.body["properties"]["resourceGuardResourceId"], isolated_guard());
}

#[tokio::test]
async fn vaults_link_and_weaken_only_with_elevation_through_the_typed_calls() {
    use mua_operator::azure::vaults::{self, SoftDelete, SoftDeleteChange, VaultId};
    let ts = TestSim::start().await;
    let backup = client(&ts, BACKUP_APP, BACKUP_SECRET);
    let id = VaultId::parse(&vault("prod-vault")).unwrap();
    let before = vaults::get(&backup, &id).await.unwrap().expect("the seeded vault");
    assert_eq!(
        (before.soft_delete.map(|s| s.state), before.multi_user_authorization),
        (Some(SoftDelete::Enabled), Some(false))
    );
    assert_eq!(
        vaults::get(
            &backup,
            &VaultId {
                name: "missing".into(),
                ..id.clone()
            }
        )
        .await
        .unwrap(),
        None
    );

    let guard_id = ts.create_guard("typed-link").await;
    let guard = GuardId::parse(&guard_id).unwrap();
    let disable = SoftDeleteChange {
        state: SoftDelete::Disabled,
        retention_days: None,
    };
    let link = vaults::link(&backup, &id, &guard).await.unwrap();
    assert_eq!(link.guard_id, guard_id);
    assert_eq!(
        vaults::get_link(&backup, &id).await.unwrap().map(|l| l.guard_id),
        Some(guard_id.clone())
    );
    assert_eq!(
        vaults::get(&backup, &id)
            .await
            .unwrap()
            .unwrap()
            .multi_user_authorization,
        Some(true)
    );

    for refused in [
        vaults::set_soft_delete(&backup, &id, disable, Some(&guard))
            .await
            .unwrap_err(),
        vaults::unlink(&backup, &id, &guard).await.unwrap_err(),
    ] {
        assert_eq!(refused.code(), Some("LinkedAuthorizationFailed"), "{refused}");
    }

    // The security side grants Contributor on the guard for 30 minutes.
    let grant = json!({"properties": {
        "principalId": BACKUP_OID,
        "roleDefinitionId": format!("/subscriptions/{SECURITY_SUB}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"),
        "requestType": "AdminAssign",
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT30M"}},
    }});
    let request = format!(
        "{guard_id}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}",
        uuid::Uuid::new_v4()
    );
    ts.call(&ts.security_side(), Method::PUT, &request, Some(grant))
        .await
        .expect(201, "granting");

    vaults::set_soft_delete(&backup, &id, disable, Some(&guard))
        .await
        .unwrap();
    assert_eq!(
        vaults::get(&backup, &id)
            .await
            .unwrap()
            .unwrap()
            .soft_delete
            .map(|s| s.state),
        Some(SoftDelete::Disabled)
    );
    vaults::unlink(&backup, &id, &guard).await.unwrap();
    assert_eq!(vaults::get_link(&backup, &id).await.unwrap(), None);
    assert_eq!(
        vaults::get(&backup, &id)
            .await
            .unwrap()
            .unwrap()
            .multi_user_authorization,
        Some(false)
    );
}

#[tokio::test]
async fn role_assignments_and_pim_requests_through_the_typed_calls() {
    use mua_operator::azure::authorization::{self, CONTRIBUTOR, READER, RequestType, ScheduleRequestSpec};
    let ts = TestSim::start().await;
    let security = client(&ts, SECURITY_APP, SECURITY_SECRET);
    let backup = client(&ts, BACKUP_APP, BACKUP_SECRET);
    let guard_id = ts.create_guard("pim-guard").await;

    // Direct assignments: created once, found again, removed.
    let reader = authorization::assign(&security, &guard_id, READER, BOB_OID)
        .await
        .unwrap();
    assert_eq!(
        (reader.role.as_str(), reader.scope.as_str()),
        (READER, guard_id.as_str())
    );
    let again = authorization::assign(&security, &guard_id, READER, BOB_OID)
        .await
        .unwrap();
    assert_eq!(
        again.id, reader.id,
        "an existing assignment is returned, not duplicated"
    );
    let listed = authorization::list_for_principal(&security, &guard_id, BOB_OID)
        .await
        .unwrap();
    assert!(listed.iter().any(|a| a.id == reader.id));
    authorization::remove(&security, &reader.id).await.unwrap();
    authorization::remove(&security, &reader.id)
        .await
        .expect("removing twice succeeds");
    let err = authorization::assign(&backup, &guard_id, CONTRIBUTOR, BACKUP_OID)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "the backup side cannot grant itself: {err}");

    // PIM self-activation waits for Bob; a pending request can be cancelled.
    let activation = ScheduleRequestSpec {
        name: None,
        scope: security_rg(),
        tenant: None,
        role: CONTRIBUTOR.into(),
        principal_id: BACKUP_OID.into(),
        request_type: RequestType::SelfActivate,
        duration: Duration::from_secs(3600),
        ends_at: None,
        justification: "CHG0012345: reduce retention".into(),
        ticket: Some(("ServiceNow".into(), "CHG0012345".into())),
    };
    let pending = authorization::request_schedule(&backup, &activation).await.unwrap();
    assert_eq!(pending.status, authorization::ScheduleStatus::PendingApproval);
    assert!(pending.approval_id.is_some());
    authorization::cancel_schedule_request_in(&backup, None, &pending.id)
        .await
        .unwrap();
    assert_eq!(
        authorization::get_schedule_request(&backup, &pending.id)
            .await
            .unwrap()
            .status,
        authorization::ScheduleStatus::Canceled
    );

    // An admin assignment with an exact end time, then its removal.
    let end = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 1800).unwrap();
    let assign = ScheduleRequestSpec {
        request_type: RequestType::AdminAssign,
        scope: guard_id.clone(),
        ends_at: Some(end),
        ..activation.clone()
    };
    let assigned = authorization::request_schedule(&security, &assign).await.unwrap();
    assert_eq!(assigned.status, authorization::ScheduleStatus::Provisioned);
    assert_eq!(assigned.ends_at, Some(end), "Azure holds the end it was given");
    let remove = ScheduleRequestSpec {
        request_type: RequestType::AdminRemove,
        ..assign
    };
    assert_eq!(
        authorization::request_schedule(&security, &remove)
            .await
            .unwrap()
            .status,
        authorization::ScheduleStatus::Revoked
    );
    let too_long = ScheduleRequestSpec {
        duration: Duration::from_secs(9 * 3600),
        ..activation
    };
    let err = authorization::request_schedule(&backup, &too_long).await.unwrap_err();
    assert_eq!(err.code(), Some("RoleAssignmentRequestPolicyValidationFailed"), "{err}");
}

#[tokio::test]
async fn lists_follow_next_links_to_the_last_page() {
    let ts = TestSim::start().await;
    for n in 0..130 {
        ts.create_guard(&format!("listed-{n:03}")).await;
    }
    let security = client(&ts, SECURITY_APP, SECURITY_SECRET);
    let list = format!("{}/providers/Microsoft.DataProtection/resourceGuards", security_rg());
    let items = security
        .list(&Call::new(Method::GET, list, guards::API_VERSION))
        .await
        .unwrap();
    let mut names: Vec<&str> = items.iter().filter_map(|g| g["name"].as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 130, "every guard once, over two pages");
}
