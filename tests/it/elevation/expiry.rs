//! How an elevation ends: expiry on the simulator's clock, revocation by the requester, the rules'
//! longest duration, an assignment made outside the operator, Azure's own end time with the operator gone,
//! and the start-up sweep.

use super::*;

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

#[tokio::test]
async fn without_elevation_rules_the_sweep_needs_no_backup_identity() {
    // A security side that only manages guards has no backup credential and no --backup-principal-id.
    let op = Operator::start("elev-norules").await;
    op.create_guard("guard", &op.unique("guard"), json!({})).await;
    op.ready(&op.guards(), "guard").await;
    let shared = mua_operator::controller::Context::new(op.ctx.client.clone()).with_namespace(Some(op.ns.name.clone()));
    let security_only = mua_operator::controller::SecurityContext::new(
        std::sync::Arc::new(shared),
        mua_operator::controller::SecuritySide::new(op.security.clone()),
    );
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
        op.security_side.clone(),
        std::future::pending(),
    ));
    eventually("the orphaned grant is removed", || async {
        (grants(&op, &guard_id).await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_ended_request_is_kept_for_its_retention_then_removed() {
    let op = start("elev-retention").await;
    let azure_name = op.unique("guard");
    let elevation = json!({"elevation": {"approvers": {"groups": ["mua-approvers"]}, "retentionDays": 1}});
    op.create_guard("guard", &azure_name, elevation).await;
    op.ready(&op.guards(), "guard").await;
    op.create_protection("prod", &vault("prod-vault"), json!({"name": "guard"}), json!({}))
        .await;
    op.ready(&op.protections(), "prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    recorded_target(&op, "sd").await;
    revoke(&op, "sd").await;
    let ended = phase_is(&op, "sd", RequestPhase::Revoked).await;
    assert_eq!(ended.status.unwrap().policy.unwrap().retention_days, Some(1));
    // A day later on the operator's clock (no nudge: the jump wakes it), the record goes.
    op.ts.sim.state.clock.advance(Duration::from_secs(86_401));
    eventually("the request is removed", || async {
        op.requests().get_opt("sd").await.unwrap().is_none().then_some(())
    })
    .await;
    let note = op.event("sd", "Removed").await;
    assert!(note.contains("retentionDays"), "{note}");
}
