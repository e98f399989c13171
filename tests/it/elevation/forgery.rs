//! The backup side trusts no status another principal could write: before it weakens a vault under an
//! elevation it re-judges the request's approvals under the guard owner's rules and finds the grant in
//! Azure itself (made for this very request object and vault). Here status is forged with the rights of
//! someone who may write any of it (as wherever the status policy is weakened or missing).

use super::*;
use attacks::{request_through_a_harmless_vault, swap_x_for_the_production_vault};

/// Writes `status` into the request `name` as someone who may write all of it (the admin's rights).
async fn forge(op: &Operator, name: &str, status: Value) {
    op.requests()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
        .await
        .unwrap();
}

/// Waits for a Warning `ElevationNotTrusted` about the VaultProtection `vp` saying `why`.
async fn not_trusted(op: &Operator, vp: &str, why: &str) {
    eventually(&format!("{vp}: ElevationNotTrusted saying {why:?}"), || async {
        op.events(vp)
            .await
            .into_iter()
            .find(|(kind, reason, note)| kind == "Warning" && reason == "ElevationNotTrusted" && note.contains(why))
    })
    .await;
}

#[tokio::test]
async fn attack_a_forged_active_phase_without_approvals_weakens_nothing() {
    let op = start("attack-forged-active").await;
    let guard_id = protected(&op, 1, json!({})).await;
    op.declare_soft_delete_off("prod").await;
    request(&op, User::BackupAdmin, "sd", "DisableSoftDelete", "30m").await;
    recorded_target(&op, "sd").await;
    op.reset_calls().await;
    let now = jiff::Timestamp::now();
    forge(
        &op,
        "sd",
        json!({"phase": "Active", "grantedAt": now.to_string(), "expiresAt": (now + Duration::from_secs(1800)).to_string(),
               "elevation": {"principalId": BACKUP_OID, "scope": guard_id}}),
    )
    .await;
    not_trusted(&op, "prod", "only 0 of the 1 approvals").await;
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "a forged phase weakens nothing",
    )
    .await;
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Enabled));
    assert_eq!(grants(&op, &guard_id).await, 0);
}

#[tokio::test]
async fn attack_a_live_grant_pointed_at_another_vault_weakens_nothing() {
    // The request was approved and granted for a harmless vault; its VaultProtection is swapped for the
    // production vault, and its status (target and approvals) rewritten to match. Azure's grant still
    // says which vault it was made for.
    let op = start("attack-retarget").await;
    let guard_id = guard(&guard_needing(&op, 1).await);
    request_through_a_harmless_vault(&op).await;
    decide(&op, User::ApproverA, "sd", "Approve").await;
    phase_is(&op, "sd", RequestPhase::Active).await;
    swap_x_for_the_production_vault(&op).await;
    op.wait_for(&op.protections(), "x", "Ready", "False", Some("ElevationRequired"))
        .await;
    let x = op.protections().get("x").await.unwrap();
    let target = json!({"vaultProtectionUid": x.metadata.uid, "vaultId": vault("prod-vault"), "guardId": guard_id,
                        "change": "DisableSoftDelete"});
    op.reset_calls().await;
    forge(
        &op,
        "sd",
        json!({"target": target,
               "approvals": [{"approver": "approver-a", "groups": ["mua-approvers"], "decision": "Approve",
                              "time": jiff::Timestamp::now().to_string(), "target": target}]}),
    )
    .await;
    not_trusted(&op, "x", "its grant in Azure was made for another vault").await;
    op.assert_no_calls(&["PUT", "PATCH"], QUIET, "the production vault is not weakened")
        .await;
    assert_eq!(soft_delete(&op).await, Some(SoftDelete::Enabled));
}
