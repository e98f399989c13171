//! The simulator enforces multi-user authorization the way Azure does, over real HTTPS, with tokens that
//! the real `azure_identity` credentials obtain from its token endpoint.

use crate::simulator;

use reqwest::Method;
use serde_json::{Value, json};
use simulator::mua::*;
use simulator::*;

/// The six critical operations of the seed, each attempted by the backup side with the right citation.
/// Returns the answers in order: PIN, retention, protection, delete data, soft delete, unlink.
async fn attempt_critical_operations(ts: &TestSim, guard_id: &str) -> Vec<(&'static str, Reply)> {
    let backup = ts.backup_side();
    let v = vault("prod-vault");
    let mut replies = Vec::new();
    let pin = json!({"resourceGuardOperationRequests": cite(guard_id, "getBackupSecurityPINRequests")});
    replies.push((
        "ChangeMarsSecurityPin",
        ts.call(&backup, Method::POST, &format!("{v}/backupSecurityPIN"), Some(pin))
            .await,
    ));
    let shorter = policy(30, Some(cite(guard_id, "updateProtectionPolicyRequests")));
    replies.push((
        "ModifyBackupPolicy",
        ts.call(
            &backup,
            Method::PUT,
            &format!("{v}/backupPolicies/daily"),
            Some(shorter),
        )
        .await,
    ));
    let moved = json!({"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines", "policyId": format!("{v}/backupPolicies/short"),
                                     "resourceGuardOperationRequests": cite(guard_id, "updateProtectedItemRequests")}});
    replies.push((
        "ModifyProtection",
        ts.call(&backup, Method::PUT, &format!("{v}/{ITEM}"), Some(moved)).await,
    ));
    let unlock_item = json!({"resourceGuardOperationRequests": cite(guard_id, "deleteProtectedItemRequests"), "resourceToBeDeleted": format!("{v}/{ITEM}")});
    let unlocked = ts
        .call(
            &backup,
            Method::POST,
            &format!("{v}/backupResourceGuardProxies/{PROXY}/unlockDelete"),
            Some(unlock_item),
        )
        .await;
    let reply = if unlocked.status == 200 {
        ts.call(&backup, Method::DELETE, &format!("{v}/{ITEM}"), None).await
    } else {
        unlocked
    };
    replies.push(("StopProtectionWithDeleteData", reply));
    let soft_delete = json!({"properties": {"securitySettings": {"softDeleteSettings": {"softDeleteState": "Disabled"}},
                                            "resourceGuardOperationRequests": cite(guard_id, "disableSoftDeleteRequests")}});
    replies.push((
        "DisableSoftDelete",
        ts.call(&backup, Method::PATCH, &v, Some(soft_delete)).await,
    ));
    let proxy = format!("{v}/backupResourceGuardProxies/{PROXY}");
    let unlock_link = json!({"resourceGuardOperationRequests": cite(guard_id, "deleteResourceGuardProxyRequests"), "resourceToBeDeleted": proxy});
    let unlocked = ts
        .call(
            &backup,
            Method::POST,
            &format!("{proxy}/unlockDelete"),
            Some(unlock_link),
        )
        .await;
    let reply = if unlocked.status == 200 {
        ts.call(&backup, Method::DELETE, &proxy, None).await
    } else {
        unlocked
    };
    replies.push(("DisableMultiUserAuthorization", reply));
    replies
}

fn assert_all_refused(replies: &[(&str, Reply)], when: &str) {
    for (op, reply) in replies {
        assert_eq!(
            reply.status, 403,
            "{op} {when}: expected 403, got {} {}",
            reply.status, reply.body
        );
        assert_eq!(reply.code(), "LinkedAuthorizationFailed", "{op} {when}: {}", reply.body);
    }
}

/// A PIM schedule request giving the backup side Contributor.
fn contributor_request(request_type: &str, duration: &str, justification: &str) -> Value {
    json!({"properties": {
        "principalId": BACKUP_OID,
        "roleDefinitionId": format!("/subscriptions/{SECURITY_SUB}/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"),
        "requestType": request_type,
        "justification": justification,
        "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": duration}},
    }})
}

/// A new schedule request's path at `scope`.
fn schedule_request_path(scope: &str) -> String {
    format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}",
        uuid::Uuid::new_v4()
    )
}

/// The backup side asks PIM to activate Contributor on the security resource group for an hour.
async fn self_activate(ts: &TestSim, justification: &str) -> Reply {
    let body = contributor_request("SelfActivate", "PT1H", justification);
    let path = schedule_request_path(&security_rg());
    ts.call(&ts.backup_side(), Method::PUT, &path, Some(body)).await
}

/// The backup side asks PIM for the activation `body` as `request_id`; it waits for approval. Returns
/// the approval's ID.
async fn pending_activation(ts: &TestSim, request_id: &str, body: Value) -> String {
    let created = ts
        .call(&ts.backup_side(), Method::PUT, request_id, Some(body))
        .await
        .expect(201, "self-activation");
    assert_eq!(created.body["properties"]["status"], "PendingApproval");
    created.body["properties"]["approvalId"]
        .as_str()
        .expect("an approval ID")
        .to_string()
}

/// The backup side activates Contributor on the security resource group through PIM; Bob approves.
async fn activate_with_approval(ts: &TestSim, duration: &str) -> Value {
    let request_id = schedule_request_path(&security_rg());
    let mut body = contributor_request("SelfActivate", duration, "Reduce retention per CHG0012345");
    body["properties"]["ticketInfo"] = json!({"ticketNumber": "CHG0012345", "ticketSystem": "ServiceNow"});
    let approval = pending_activation(ts, &request_id, body).await;

    let bob = ts.user_token(CONTOSO, "bob@contoso.example", "bob-password").await;
    let stage = format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}/stages/{approval}");
    ts.call_with(
        &bob,
        &[],
        Method::PUT,
        &stage,
        Some(json!({"properties": {"reviewResult": "Approve", "justification": "ticket checked"}})),
    )
    .await
    .expect(200, "Bob approves");
    ts.call(&ts.backup_side(), Method::GET, &request_id, None)
        .await
        .expect(200, "reading the request")
        .body
}

#[tokio::test]
async fn critical_operations_need_elevation_on_the_guard_and_lose_it_at_expiry() {
    let ts = TestSim::start().await;
    let guard_id = protected_vault(&ts, "backup-guard", &[]).await;

    let vault_body = ts
        .call(&ts.backup_side(), Method::GET, &vault("prod-vault"), None)
        .await
        .expect(200, "reading the vault")
        .body;
    assert_eq!(
        vault_body["properties"]["securitySettings"]["multiUserAuthorization"],
        "Enabled"
    );

    assert_all_refused(&attempt_critical_operations(&ts, &guard_id).await, "without elevation");

    let request = activate_with_approval(&ts, "PT1H").await;
    assert_eq!(request["properties"]["status"], "Provisioned");
    for (op, reply) in attempt_critical_operations(&ts, &guard_id).await {
        assert!(
            reply.status < 300,
            "{op} with an active PIM activation: {} {}",
            reply.status,
            reply.body
        );
    }
    let vault_body = ts
        .call(&ts.backup_side(), Method::GET, &vault("prod-vault"), None)
        .await
        .body;
    assert_eq!(
        vault_body["properties"]["securitySettings"]["multiUserAuthorization"],
        "Disabled"
    );
    assert_eq!(
        vault_body["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"],
        "Disabled"
    );

    // Relink, then let the activation run out: the same operations are refused again.
    link(&ts, &vault("prod-vault"), &guard_id)
        .await
        .expect(200, "relinking");
    ts.sim.advance(std::time::Duration::from_secs(3601));
    // (Retention and soft delete were already reduced, so only these three are still critical changes.)
    let replies = attempt_critical_operations(&ts, &guard_id).await;
    for (op, reply) in replies.iter().filter(|(op, _)| {
        [
            "ChangeMarsSecurityPin",
            "StopProtectionWithDeleteData",
            "DisableMultiUserAuthorization",
        ]
        .contains(op)
    }) {
        assert_eq!(
            (reply.status, reply.code()),
            (403, "LinkedAuthorizationFailed"),
            "{op} after the activation expired: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn an_admin_assignment_with_an_end_time_elevates_until_then() {
    let ts = TestSim::start().await;
    let guard_id = protected_vault(&ts, "backup-guard", &[]).await;
    let request_id = schedule_request_path(&guard_id);
    let body = contributor_request("AdminAssign", "PT30M", "approved in the cluster");
    let reply = ts
        .call(&ts.security_side(), Method::PUT, &request_id, Some(body.clone()))
        .await
        .expect(201, "AdminAssign by the guard's owner");
    assert_eq!(reply.body["properties"]["status"], "Provisioned");

    let pin = json!({"resourceGuardOperationRequests": cite(&guard_id, "getBackupSecurityPINRequests")});
    let pin_path = format!("{}/backupSecurityPIN", vault("prod-vault"));
    let reply = ts
        .call(&ts.backup_side(), Method::POST, &pin_path, Some(pin.clone()))
        .await
        .expect(200, "PIN while assigned");
    assert_eq!(reply.body["securityPIN"].as_str().map(str::len), Some(8));

    ts.sim.advance(std::time::Duration::from_secs(31 * 60));
    let reply = ts.call(&ts.backup_side(), Method::POST, &pin_path, Some(pin)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "after the end time: {}",
        reply.body
    );

    // The backup side cannot grant itself the role: AdminAssign needs roleAssignments/write.
    let own = schedule_request_path(&guard_id);
    let reply = ts.call(&ts.backup_side(), Method::PUT, &own, Some(body)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "AuthorizationFailed"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn excluded_optional_operations_pass_without_elevation_but_mandatory_ones_never_do() {
    let ts = TestSim::start().await;
    let excluded = [
        "Microsoft.RecoveryServices/vaults/backupSecurityPIN/action",
        "Microsoft.RecoveryServices/vaults/backupPolicies/write",
    ];
    let guard_id = protected_vault(&ts, "lenient-guard", &excluded).await;
    let replies = attempt_critical_operations(&ts, &guard_id).await;
    let status = |op: &str| replies.iter().find(|(o, _)| *o == op).map(|(_, r)| r.status).unwrap();
    assert_eq!(status("ChangeMarsSecurityPin"), 200);
    assert_eq!(status("ModifyBackupPolicy"), 200);
    assert_eq!(status("ModifyProtection"), 403);
    assert_eq!(status("DisableSoftDelete"), 403);
    assert_eq!(status("DisableMultiUserAuthorization"), 403);

    // Excluding a mandatory operation is refused by the guard itself.
    for mandatory in [
        "Microsoft.RecoveryServices/vaults/backupconfig/write",
        "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies/delete",
    ] {
        let body =
            json!({"location": "westeurope", "properties": {"vaultCriticalOperationExclusionList": [mandatory]}});
        let reply = ts
            .call(&ts.security_side(), Method::PUT, &guard("lenient-guard"), Some(body))
            .await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert!(reply.message().contains("mandatory"), "{}", reply.message());
    }
}

#[tokio::test]
async fn a_critical_call_must_cite_the_guard_request() {
    let ts = TestSim::start().await;
    let guard_id = protected_vault(&ts, "backup-guard", &[]).await;
    activate_with_approval(&ts, "PT1H").await;
    let reply = ts
        .call(
            &ts.backup_side(),
            Method::POST,
            &format!("{}/backupSecurityPIN", vault("prod-vault")),
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, 403);
    assert!(
        reply
            .message()
            .contains(&format!("{guard_id}/getBackupSecurityPINRequests/default")),
        "{}",
        reply.message()
    );
    assert!(
        reply.message().contains("Ask #backup-approvals"),
        "the refusal says how to ask: {}",
        reply.message()
    );
}

#[tokio::test]
async fn linking_needs_reader_on_the_guard() {
    let ts = TestSim::start().await;
    let guard_id = ts.create_guard("backup-guard").await;

    // The security admin removes the backup side's Reader role.
    let security = ts.security_side();
    let filter = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId%20eq%20'{BACKUP_OID}'",
        security_rg()
    );
    let assignments = ts
        .call(&security, Method::GET, &filter, None)
        .await
        .expect(200, "listing assignments")
        .body;
    let readers: Vec<&str> = assignments["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["properties"]["scope"].as_str() == Some(security_rg().as_str()))
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(readers.len(), 1, "{assignments}");
    ts.call(&security, Method::DELETE, readers[0], None)
        .await
        .expect(200, "removing Reader");

    let reply = link(&ts, &vault("prod-vault"), &guard_id).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "{}",
        reply.body
    );
    assert!(reply.message().contains("Reader"), "{}", reply.message());
    let vault_body = ts
        .call(&ts.backup_side(), Method::GET, &vault("prod-vault"), None)
        .await
        .body;
    assert_eq!(
        vault_body["properties"]["securitySettings"]["multiUserAuthorization"], "Disabled",
        "nothing was linked"
    );
}

#[tokio::test]
async fn a_vault_links_only_to_a_guard_in_its_region() {
    let ts = TestSim::start().await;
    let guard_id = ts.create_guard("backup-guard").await;
    let east = format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-east-rg/providers/Microsoft.RecoveryServices/vaults/east-vault"
    );
    let reply = link(&ts, &east, &guard_id).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.message().contains("eastus") && reply.message().contains("westeurope"),
        "{}",
        reply.message()
    );
}

#[tokio::test]
async fn a_guard_in_another_tenant_needs_the_auxiliary_token() {
    let ts = TestSim::start().await;
    let guard_id = isolated_guard();
    let reply = link(&ts, &vault("prod-vault"), &guard_id).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "{}",
        reply.body
    );
    assert!(
        reply.message().contains("x-ms-authorization-auxiliary"),
        "{}",
        reply.message()
    );

    // The same multi-tenant app signs in to the guard's tenant for the auxiliary token.
    let primary = ts.token(&ts.backup_side()).await;
    let auxiliary = ts.token(&ts.credential(FABRIKAM, BACKUP_APP, BACKUP_SECRET)).await;
    let body = json!({"properties": {"resourceGuardResourceId": guard_id}});
    let proxy = format!("{}/backupResourceGuardProxies/{PROXY}", vault("prod-vault"));
    let reply = ts
        .call_with(
            &primary,
            std::slice::from_ref(&auxiliary),
            Method::PUT,
            &proxy,
            Some(body),
        )
        .await
        .expect(200, "linking with the auxiliary token");
    assert_eq!(
        reply.body["properties"]["description"],
        "Ask the security on-call in #sec-oncall for a PIM activation."
    );

    // Another application's token from the guard's tenant lends nothing.
    let other_app = ts.token(&ts.security_side()).await;
    let reply = ts
        .call_with(&primary, &[other_app], Method::GET, &vault("prod-vault"), None)
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "InvalidAuthenticationToken"),
        "{}",
        reply.body
    );

    // Reader in the guard's tenant links, but does not pass a critical operation.
    let pin = json!({"resourceGuardOperationRequests": cite(&guard_id, "getBackupSecurityPINRequests")});
    let reply = ts
        .call_with(
            &primary,
            &[auxiliary],
            Method::POST,
            &format!("{}/backupSecurityPIN", vault("prod-vault")),
            Some(pin),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn pim_enforces_its_policy_and_approvers() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    let request = |duration: &str, justification: &str| contributor_request("SelfActivate", duration, justification);
    let path = || schedule_request_path(&security_rg());
    let reply = ts
        .call(&backup, Method::PUT, &path(), Some(request("PT9H", "long")))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "RoleAssignmentRequestPolicyValidationFailed"),
        "{}",
        reply.body
    );
    let reply = ts.call(&backup, Method::PUT, &path(), Some(request("PT1H", ""))).await;
    assert!(reply.message().contains("Justification"), "{}", reply.body);

    // Not eligible elsewhere.
    let elsewhere = schedule_request_path(&format!("/subscriptions/{BACKUP_SUB}"));
    let reply = ts
        .call(&backup, Method::PUT, &elsewhere, Some(request("PT1H", "x")))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "RoleAssignmentDoesNotExist"),
        "{}",
        reply.body
    );

    // Only listed approvers decide, and a pending request grants nothing.
    let pending = ts
        .call(&backup, Method::PUT, &path(), Some(request("PT1H", "ok")))
        .await
        .expect(201, "a valid activation");
    let approval = pending.body["properties"]["approvalId"].as_str().unwrap().to_string();
    let stage = format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}/stages/{approval}");
    let decision = json!({"properties": {"reviewResult": "Approve", "justification": "self"}});
    let reply = ts
        .call(&ts.security_side(), Method::PUT, &stage, Some(decision.clone()))
        .await;
    assert_eq!(reply.status, 403, "not an approver: {}", reply.body);
    let reply = ts.call(&backup, Method::PUT, &stage, Some(decision)).await;
    assert_eq!(reply.status, 403, "the requester cannot approve: {}", reply.body);
    let state = ts.admin(Method::GET, "/_sim/state", None).await;
    let active = state["roleAssignments"]
        .as_object()
        .unwrap()
        .values()
        .filter(|a| a["principalId"] == BACKUP_OID && a["roleDefinition"] == "b24988ac-6180-42a0-ab88-20f7382dd24c")
        .count();
    assert_eq!(active, 0, "nothing granted while pending");

    let bob = ts.user_token(CONTOSO, "bob@contoso.example", "bob-password").await;
    let deny = json!({"properties": {"reviewResult": "Deny", "justification": "no ticket"}});
    ts.call_with(&bob, &[], Method::PUT, &stage, Some(deny))
        .await
        .expect(200, "Bob denies");
    let id = pending.body["id"].as_str().unwrap();
    let reply = ts
        .call(&backup, Method::GET, id, None)
        .await
        .expect(200, "reading the request");
    assert_eq!(reply.body["properties"]["status"], "Denied");
}

#[tokio::test]
async fn arm_authenticates_every_call() {
    let ts = TestSim::start().await;
    let v = vault("prod-vault");
    let reply = ts.call_with("", &[], Method::GET, &v, None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "AuthenticationFailed"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer authorization_uri="))
    );
    let reply = ts.call_with("not-a-jwt", &[], Method::GET, &v, None).await;
    assert_eq!((reply.status, reply.code()), (401, "InvalidAuthenticationToken"));

    // A token from the other tenant does not open this tenant's subscription.
    let other = ts.token(&ts.credential(FABRIKAM, BACKUP_APP, BACKUP_SECRET)).await;
    let reply = ts.call_with(&other, &[], Method::GET, &v, None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "InvalidAuthenticationTokenTenant"),
        "{}",
        reply.body
    );

    // A wrong secret fails in the credential, with Entra's error.
    let wrong = ts.credential(CONTOSO, BACKUP_APP, "wrong");
    let err = wrong
        .get_token(&[mua_operator::azure::credentials::ARM_SCOPE], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");

    // Without a role, ARM says which action on which scope is missing.
    let alice = ts.user_token(CONTOSO, "alice@contoso.example", "alice-password").await;
    let reply = ts.call_with(&alice, &[], Method::GET, &v, None).await;
    assert_eq!((reply.status, reply.code()), (403, "AuthorizationFailed"));
    assert!(
        reply.message().contains("Microsoft.RecoveryServices/vaults/read"),
        "{}",
        reply.message()
    );
}

#[tokio::test]
async fn a_backup_vault_link_protects_its_backup_instances() {
    let ts = TestSim::start().await;
    let guard_id = ts.create_guard("backup-guard").await;
    let bv = format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.DataProtection/backupVaults/prod-backup-vault"
    );
    let backup = ts.backup_side();
    let body = json!({"properties": {"resourceGuardResourceId": guard_id}});
    let linked = ts
        .call(
            &backup,
            Method::PUT,
            &format!("{bv}/backupResourceGuardProxies/{PROXY}"),
            Some(body),
        )
        .await
        .expect(200, "linking a Backup vault");
    assert_eq!(
        linked.body["type"],
        "Microsoft.DataProtection/vaults/backupResourceGuardProxies"
    );
    let details = linked.body["properties"]["resourceGuardOperationDetails"]
        .as_array()
        .unwrap();
    assert!(
        details.iter().all(|d| d["vaultCriticalOperation"]
            .as_str()
            .unwrap()
            .starts_with("Microsoft.DataProtection/backupVaults/")),
        "{details:?}"
    );

    let instance = format!("{bv}/backupInstances/disk1");
    ts.call(
        &backup,
        Method::PUT,
        &instance,
        Some(json!({"properties": {"friendlyName": "disk1"}})),
    )
    .await
    .expect(201, "protecting a disk");
    let reply = ts.call(&backup, Method::DELETE, &instance, None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "deleting without unlock: {}",
        reply.body
    );
    let unlock = json!({"resourceGuardOperationRequests": cite(&guard_id, "deleteBackupInstanceRequests"), "resourceToBeDeleted": instance});
    let unlock_path = format!("{bv}/backupResourceGuardProxies/{PROXY}/unlockDelete");
    let reply = ts.call(&backup, Method::POST, &unlock_path, Some(unlock.clone())).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "unlocking without elevation: {}",
        reply.body
    );

    activate_with_approval(&ts, "PT1H").await;
    ts.call(&backup, Method::POST, &unlock_path, Some(unlock))
        .await
        .expect(200, "unlocking with elevation");
    ts.call(&backup, Method::DELETE, &instance, None)
        .await
        .expect(200, "deleting after the unlock");
}

#[tokio::test]
async fn always_on_soft_delete_cannot_be_turned_off_even_with_elevation() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    let v = vault("prod-vault");
    let always_on =
        json!({"properties": {"securitySettings": {"softDeleteSettings": {"softDeleteState": "AlwaysON"}}}});
    ts.call(&backup, Method::PATCH, &v, Some(always_on))
        .await
        .expect(202, "making soft delete irreversible");
    let off = json!({"properties": {"securitySettings": {"softDeleteSettings": {"softDeleteState": "Disabled"}}}});
    let reply = ts.call(&backup, Method::PATCH, &v, Some(off)).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let state = ts.call(&backup, Method::GET, &v, None).await.body;
    assert_eq!(
        state["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"],
        "AlwaysON"
    );
}

#[tokio::test]
async fn malformed_or_sideways_requests_cannot_weaken_a_linked_vault() {
    let ts = TestSim::start().await;
    protected_vault(&ts, "backup-guard", &[]).await;
    let backup = ts.backup_side();
    let v = vault("prod-vault");

    // Soft delete cannot be emptied first and disabled next, nor replaced by a non-object.
    for settings in [
        json!({"softDeleteSettings": {"softDeleteState": ""}}),
        json!({"softDeleteSettings": "x"}),
        json!("x"),
    ] {
        let body = json!({"properties": {"securitySettings": settings}});
        let reply = ts.call(&backup, Method::PATCH, &v, Some(body)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "InvalidRequestContent"),
            "{}",
            reply.body
        );
    }
    let body =
        json!({"properties": {"securitySettings": {"softDeleteSettings": {"enhancedSecurityState": "Disabled"}}}});
    let reply = ts.call(&backup, Method::PATCH, &v, Some(body)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "{}",
        reply.body
    );
    let reply = ts
        .call(
            &backup,
            Method::PUT,
            &format!("{v}/backupPolicies/daily"),
            Some(json!(["not", "an", "object"])),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);

    // Removing a schedule's retention is a reduction too.
    let no_retention = json!({"properties": {"backupManagementType": "AzureIaasVM"}});
    let reply = ts
        .call(
            &backup,
            Method::PUT,
            &format!("{v}/backupPolicies/daily"),
            Some(no_retention),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "{}",
        reply.body
    );

    // An unlock through another vault's link (to a guard that lets it through) opens nothing here.
    let lenient = guard("lenient-guard");
    let body = json!({"location": "westeurope", "properties": {
        "vaultCriticalOperationExclusionList": ["Microsoft.DataProtection/backupVaults/backupInstances/delete"]}});
    ts.call(&ts.security_side(), Method::PUT, &lenient, Some(body))
        .await
        .expect(201, "a lenient guard");
    let bv = format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.DataProtection/backupVaults/prod-backup-vault"
    );
    let link_body = json!({"properties": {"resourceGuardResourceId": lenient}});
    ts.call(
        &backup,
        Method::PUT,
        &format!("{bv}/backupResourceGuardProxies/{PROXY}"),
        Some(link_body),
    )
    .await
    .expect(200, "linking");
    let unlock = json!({"resourceGuardOperationRequests": cite(&lenient, "deleteBackupInstanceRequests"), "resourceToBeDeleted": format!("{v}/{ITEM}")});
    let unlock_path = format!("{bv}/backupResourceGuardProxies/{PROXY}/unlockDelete");
    ts.call(&backup, Method::POST, &unlock_path, Some(unlock))
        .await
        .expect(200, "an unlock naming another vault's item");
    let reply = ts.call(&backup, Method::DELETE, &format!("{v}/{ITEM}"), None).await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "LinkedAuthorizationFailed"),
        "{}",
        reply.body
    );

    // A link must point at a Resource Guard, not at any resource the caller can read.
    let fake_guard = json!({"properties": {"resourceGuardResourceId": vault("prod-vault")}});
    let east = format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-east-rg/providers/Microsoft.RecoveryServices/vaults/east-vault"
    );
    let east_link = format!("{east}/backupResourceGuardProxies/{PROXY}");
    let reply = ts.call(&backup, Method::PUT, &east_link, Some(fake_guard)).await;
    assert_eq!(reply.status, 404, "{}", reply.body);

    let state = ts.call(&backup, Method::GET, &v, None).await.body;
    assert_eq!(
        state["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"],
        "Enabled"
    );
    assert_eq!(
        state["properties"]["securitySettings"]["softDeleteSettings"]["enhancedSecurityState"],
        "Enabled"
    );
}

#[tokio::test]
async fn an_undecided_pim_request_times_out_and_cannot_be_approved_late() {
    let ts = TestSim::start().await;
    let pending = self_activate(&ts, "late approval").await.expect(201, "request");
    let approval = pending.body["properties"]["approvalId"].as_str().unwrap().to_string();
    ts.sim.advance(std::time::Duration::from_secs(25 * 3600));
    let id = pending.body["id"].as_str().unwrap();
    let reply = ts
        .call(&ts.backup_side(), Method::GET, id, None)
        .await
        .expect(200, "reading the request");
    assert_eq!(reply.body["properties"]["status"], "TimedOut");
    let bob = ts.user_token(CONTOSO, "bob@contoso.example", "bob-password").await;
    let stage = format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}/stages/{approval}");
    let reply = ts
        .call_with(
            &bob,
            &[],
            Method::PUT,
            &stage,
            Some(json!({"properties": {"reviewResult": "Approve"}})),
        )
        .await;
    assert_eq!(reply.status, 404, "a timed-out approval is gone: {}", reply.body);

    // Who is eligible is not everyone's business: only the caller's own, or with read access.
    let eligibility = format!(
        "{}/providers/Microsoft.Authorization/roleEligibilitySchedules",
        security_rg()
    );
    let alice = ts.user_token(CONTOSO, "alice@contoso.example", "alice-password").await;
    let reply = ts.call_with(&alice, &[], Method::GET, &eligibility, None).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let own = format!("{eligibility}?$filter=asTarget()");
    let reply = ts
        .call(&ts.backup_side(), Method::GET, &own, None)
        .await
        .expect(200, "own eligibilities");
    assert_eq!(reply.body["value"].as_array().map(Vec::len), Some(1), "{}", reply.body);
}

#[tokio::test]
async fn an_approval_sent_flat_as_the_python_sdk_sends_it_is_taken() {
    let ts = TestSim::start().await;
    let request_id = schedule_request_path(&security_rg());
    let body = contributor_request("SelfActivate", "PT1H", "Reduce retention per CHG0012345");
    let approval = pending_activation(&ts, &request_id, body).await;
    let bob = ts.user_token(CONTOSO, "bob@contoso.example", "bob-password").await;
    let stage = format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}/stages/{approval}");
    ts.call_with(
        &bob,
        &[],
        Method::PUT,
        &stage,
        Some(json!({"reviewResult": "Approve", "justification": "ticket checked"})),
    )
    .await
    .expect(200, "Bob approves with the spec's flat body");
    let request = ts
        .call(&ts.backup_side(), Method::GET, &request_id, None)
        .await
        .expect(200, "reading the request");
    assert_eq!(request.body["properties"]["status"], "Provisioned");
}

#[tokio::test]
async fn only_its_approvers_can_read_an_approval() {
    let ts = TestSim::start().await;
    let request_id = schedule_request_path(&security_rg());
    let body = contributor_request("SelfActivate", "PT1H", "Reduce retention per CHG0012345");
    let approval = pending_activation(&ts, &request_id, body).await;
    let path = format!("/providers/Microsoft.Authorization/roleAssignmentApprovals/{approval}");
    let bob = ts.user_token(CONTOSO, "bob@contoso.example", "bob-password").await;
    let read = ts
        .call_with(&bob, &[], Method::GET, &path, None)
        .await
        .expect(200, "Bob, the approver, reads it");
    assert_eq!(read.body["properties"]["stages"][0]["properties"]["assignedToMe"], true);
    let stranger = ts.call(&ts.security_side(), Method::GET, &path, None).await;
    assert_eq!((stranger.status, stranger.code()), (404, "ApprovalNotFound"));
}

#[tokio::test]
async fn an_admin_assign_of_a_role_the_principal_holds_at_the_scope_is_refused() {
    let ts = TestSim::start().await;
    let guard_id = ts.create_guard("assigned-twice").await;
    let security = ts.security_side();
    let assign = |name: &str| {
        let path = format!(
            "{guard_id}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes())
        );
        let body = json!({"properties": {
            "principalId": BACKUP_OID,
            "roleDefinitionId": format!("{guard_id}/providers/Microsoft.Authorization/roleDefinitions/f54b6d04-23c6-443e-b462-9c16ab7b4a52"),
            "requestType": "AdminAssign",
            "justification": "one elevation",
            "scheduleInfo": {"expiration": {"type": "AfterDuration", "duration": "PT1H"}},
        }});
        (path, body)
    };
    let (first, body) = assign("first");
    ts.call(&security, Method::PUT, &first, Some(body))
        .await
        .expect(201, "the first grant");
    let (second, body) = assign("second");
    let refused = ts.call(&security, Method::PUT, &second, Some(body)).await;
    assert_eq!((refused.status, refused.code()), (409, "RoleAssignmentExists"));
}

#[tokio::test]
async fn a_justification_of_only_whitespace_is_no_justification() {
    let ts = TestSim::start().await;
    let reply = self_activate(&ts, "   ").await;
    assert_eq!(
        (reply.status, reply.code()),
        (400, "RoleAssignmentRequestPolicyValidationFailed"),
        "{}",
        reply.body
    );
    assert!(reply.message().contains("Justification"), "{}", reply.body);
}
