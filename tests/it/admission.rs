//! The two-person rule as the API server enforces it: the chart's admission policies and RBAC
//! (`charts/mua-operator/files/`) against a real kube-apiserver. Every way around the rule is a test named
//! `attack_...` that asserts the refusal (status code and message) and that nothing changed; the other
//! tests show the paths that must keep working. One behaviour per test.
//!
//! Users: `backup-admin` (mua-backup-admin), `security-admin` (mua-security-admin), `approver-a` and
//! `approver-b` (mua-approver and mua-requester), and `admin` (system:masters), who stands in for the
//! operator: it holds every verb, `operate` included.

use crate::cluster;

use std::fmt::Debug;
use std::time::{Duration, Instant};

use cluster::{ControlPlane, TestNamespace, User};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mua_operator::crd::critical_operation_request::{Decision, RequestPhase};
use mua_operator::crd::{CriticalOperationRequest, ElevationPolicy, ResourceGuard};
use serde_json::{Value, json};

const TIME: &str = "2026-11-29T12:00:00Z";
const GUARD_ID: &str = "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/security-rg/providers/Microsoft.DataProtection/resourceGuards/central-guard";
const RBAC_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------
// Fixture

struct Test {
    cp: &'static ControlPlane,
    ns: TestNamespace,
}

impl Test {
    async fn new(prefix: &str) -> Test {
        let cp = ControlPlane::shared();
        let ns = cp.namespace(prefix).await;
        Test { cp, ns }
    }

    async fn client(&self, user: User) -> Client {
        self.cp.client(user).await
    }

    async fn requests(&self, user: User) -> Api<CriticalOperationRequest> {
        self.ns.api(self.client(user).await)
    }

    /// The request as stored, read as admin.
    async fn stored(&self, name: &str) -> CriticalOperationRequest {
        self.ns.admin_api::<CriticalOperationRequest>().get(name).await.unwrap()
    }

    /// `user` creates a request (without requester: the API server fills it in), the operator records
    /// its target (what approvals are for), and returns what is stored.
    async fn request_by(&self, user: User, name: &str) -> CriticalOperationRequest {
        self.unresolved_request_by(user, name).await;
        self.operator_writes(name, json!({"target": target()})).await
    }

    /// `user` creates a request the operator has not resolved yet (no `status.target`).
    async fn unresolved_request_by(&self, user: User, name: &str) -> CriticalOperationRequest {
        self.create_request(user, request(name, json!({})))
            .await
            .unwrap_or_else(|err| panic!("{} could not create request {name}: {err}", user.name()))
    }

    async fn create_request(&self, user: User, object: Value) -> Result<CriticalOperationRequest, kube::Error> {
        let object: CriticalOperationRequest = serde_json::from_value(object).expect("a well-formed request");
        self.requests(user).await.create(&PostParams::default(), &object).await
    }

    /// What `kubectl mua approve|deny` does: server-side apply of the user's own entry on the status
    /// subresource, with the user's own field manager.
    async fn decide(&self, user: User, name: &str, entry: Value) -> Result<CriticalOperationRequest, kube::Error> {
        let client = self.client(user).await;
        apply_status(
            &self.ns,
            client,
            user.name(),
            name,
            json!({"approvals": [entry]}),
            false,
        )
        .await
    }

    async fn approve(&self, user: User, name: &str) -> Result<CriticalOperationRequest, kube::Error> {
        self.decide(user, name, approval(user.name(), &[user.group()], "Approve"))
            .await
    }

    /// What `kubectl mua revoke` does.
    async fn revoke(&self, user: User, name: &str, by: &str) -> Result<CriticalOperationRequest, kube::Error> {
        let client = self.client(user).await;
        let revocation = json!({"revocation": {"by": by, "time": TIME, "reason": "not needed any more"}});
        apply_status(&self.ns, client, user.name(), name, revocation, false).await
    }

    /// The operator's status write (admin holds `operate`).
    async fn operator_writes(&self, name: &str, status: Value) -> CriticalOperationRequest {
        self.ns
            .admin_api::<CriticalOperationRequest>()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
            .await
            .unwrap_or_else(|err| panic!("the operator could not write status {status}: {err}"))
    }

    /// Asserts that the stored request is exactly `before` (same resourceVersion: nothing was written).
    async fn assert_unchanged(&self, before: &CriticalOperationRequest) {
        let now = self.stored(&before.name_any()).await;
        assert_eq!(now.spec, before.spec, "the spec changed");
        assert_eq!(now.status, before.status, "the status changed");
        assert_eq!(
            now.metadata.finalizers, before.metadata.finalizers,
            "the finalizers changed"
        );
        assert_eq!(
            now.metadata.resource_version, before.metadata.resource_version,
            "the request was written"
        );
    }

    async fn assert_absent(&self, name: &str) {
        let found = self
            .ns
            .admin_api::<CriticalOperationRequest>()
            .get_opt(name)
            .await
            .unwrap();
        assert!(found.is_none(), "request {name} was stored");
    }

    /// Lets `user` patch and update requests in this namespace (say, through a namespace editor role), and
    /// waits until RBAC says so.
    async fn grant_request_editing(&self, user: User) {
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": "request-editor"},
            "rules": [{"apiGroups": ["mua.dev"], "resources": ["criticaloperationrequests"],
                       "verbs": ["get", "patch", "update"]}],
        }))
        .unwrap();
        self.ns
            .admin_api::<Role>()
            .create(&PostParams::default(), &role)
            .await
            .unwrap();
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "request-editor"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "request-editor"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user.name()}],
        }))
        .unwrap();
        self.ns
            .admin_api::<RoleBinding>()
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
        let client = self.client(user).await;
        wait_until_allowed(&client, &self.ns.name, "criticaloperationrequests", "", "patch").await;
    }

    /// Creates a labelled ElevationPolicy (as the security admin) and waits until the admission policy
    /// that takes it as params refuses a request longer than `max_duration`.
    async fn namespace_ceilings(&self, approvers: Value, max_duration: &str, too_long: &str) {
        let policy: ElevationPolicy = serde_json::from_value(json!({
            "apiVersion": "mua.dev/v1alpha1", "kind": "ElevationPolicy",
            "metadata": {"name": "ceilings", "labels": {"mua.dev/admission-params": "true"}},
            "spec": {"guardId": GUARD_ID, "approvers": approvers, "maxDuration": max_duration},
        }))
        .unwrap();
        self.ns
            .api::<ElevationPolicy>(self.client(User::SecurityAdmin).await)
            .create(&PostParams::default(), &policy)
            .await
            .expect("a security admin creates ElevationPolicies");
        let api = self.requests(User::BackupAdmin).await;
        let probe: CriticalOperationRequest =
            serde_json::from_value(request("ceiling-probe", json!({"duration": too_long}))).unwrap();
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let deadline = Instant::now() + RBAC_TIMEOUT;
        while api.create(&dry_run, &probe).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "the ElevationPolicy ceilings were not in force within {RBAC_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn request(name: &str, spec: Value) -> Value {
    let mut object = json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
        "metadata": {"name": name},
        "spec": {
            "vaultProtection": "prod-vault", "operation": "DisableSoftDelete", "duration": "30m",
            "justification": "Decommission prod-vault after the migration (CHG0012345).",
            "ticket": {"system": "ServiceNow", "number": "CHG0012345"},
        },
    });
    for (key, value) in spec.as_object().unwrap() {
        object["spec"][key] = value.clone();
    }
    object
}

/// What the operator records a request to be for: `prod-vault` under the central guard.
fn target() -> Value {
    json!({"vaultProtectionUid": "8a6f3c1e-0000-4000-8000-000000000001",
           "vaultId": "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/backup-rg/providers/Microsoft.RecoveryServices/vaults/prod-vault",
           "guardId": GUARD_ID, "change": "DisableSoftDelete"})
}

/// A decision for what `target()` names, as `kubectl mua approve|deny` writes it.
fn approval(approver: &str, groups: &[&str], decision: &str) -> Value {
    json!({"approver": approver, "groups": groups, "decision": decision, "time": TIME, "comment": "checked the ticket",
           "target": target()})
}

/// Server-side apply on the status subresource with the field manager `kubectl-mua/<user>`.
async fn apply_status(
    ns: &TestNamespace,
    client: Client,
    user: &str,
    name: &str,
    status: Value,
    force: bool,
) -> Result<CriticalOperationRequest, kube::Error> {
    let body = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
                      "metadata": {"name": name}, "status": status});
    let mut params = PatchParams::apply(&format!("kubectl-mua/{user}"));
    params.force = force;
    ns.api::<CriticalOperationRequest>(client)
        .patch_status(name, &params, &Patch::Apply(&body))
        .await
}

/// Asserts that the API server refused with `code` and a message containing `expected`.
fn assert_refused<T: Debug>(result: Result<T, kube::Error>, code: u16, expected: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            eprintln!("  refused ({}): {}", status.code, status.message);
            assert_eq!(
                status.code, code,
                "expected {code}, got {}: {}",
                status.code, status.message
            );
            assert!(
                status.message.contains(expected),
                "expected the refusal to say {expected:?}, it said: {}",
                status.message
            );
        }
        Err(other) => panic!("expected a refusal saying {expected:?}, got {other}"),
        Ok(accepted) => panic!("expected a refusal saying {expected:?}, but it was accepted: {accepted:?}"),
    }
}

/// Waits until RBAC allows `verb` on `resource` to the client's user (bindings take a moment to load).
async fn wait_until_allowed(client: &Client, namespace: &str, resource: &str, subresource: &str, verb: &str) {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("mua.dev".into()),
                resource: Some(resource.into()),
                subresource: (!subresource.is_empty()).then(|| subresource.to_string()),
                namespace: Some(namespace.into()),
                verb: Some(verb.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let deadline = Instant::now() + RBAC_TIMEOUT;
    loop {
        let answer = api.create(&PostParams::default(), &review).await.unwrap();
        if answer.status.is_some_and(|s| s.allowed) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "RBAC did not allow {verb} {resource} within {RBAC_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Creating a request

#[tokio::test]
async fn the_requester_is_filled_in_from_the_creating_user() {
    let t = Test::new("adm-fill").await;
    let created = t.request_by(User::BackupAdmin, "sd").await;
    assert_eq!(created.spec.requester.as_deref(), Some("backup-admin"));
    let groups = &created.spec.requester_groups;
    assert!(groups.contains(&"backup-admins".to_string()), "{groups:?}");
    assert!(groups.contains(&"system:authenticated".to_string()), "{groups:?}");
    assert_eq!(t.stored("sd").await.spec, created.spec, "what was stored");
}

#[tokio::test]
async fn a_requester_may_name_themselves_and_some_of_their_groups() {
    let t = Test::new("adm-self").await;
    let sent = request(
        "sd",
        json!({"requester": "backup-admin", "requesterGroups": ["backup-admins"]}),
    );
    let created = t.create_request(User::BackupAdmin, sent).await.unwrap();
    assert_eq!(created.spec.requester.as_deref(), Some("backup-admin"));
    assert_eq!(created.spec.requester_groups, ["backup-admins"]);
}

#[tokio::test]
async fn attack_requester_names_another_requester() {
    let t = Test::new("adm-other").await;
    let sent = request("sd", json!({"requester": "approver-a"}));
    assert_refused(
        t.create_request(User::BackupAdmin, sent).await,
        403,
        "spec.requester must be the user who creates the request: you are backup-admin, not approver-a",
    );
    t.assert_absent("sd").await;
}

#[tokio::test]
async fn attack_requester_claims_groups_they_are_not_in() {
    let t = Test::new("adm-groups").await;
    let sent = request("sd", json!({"requesterGroups": ["backup-admins", "security-admins"]}));
    assert_refused(
        t.create_request(User::BackupAdmin, sent).await,
        403,
        "spec.requesterGroups may only name groups you are in: backup-admin is not in security-admins",
    );
    t.assert_absent("sd").await;
}

#[tokio::test]
async fn attack_approval_sent_with_the_request_itself_is_dropped() {
    let t = Test::new("adm-smuggle").await;
    let mut sent = request("sd", json!({}));
    sent["status"] = json!({"phase": "Approved", "approvals": [approval("approver-a", &["mua-approvers"], "Approve")]});
    let created = t.create_request(User::BackupAdmin, sent).await.unwrap();
    assert_eq!(created.status, None, "status sent with the request is dropped");
    assert_eq!(t.stored("sd").await.status, None);
}

#[tokio::test]
async fn attack_spec_changes_after_creation() {
    let t = Test::new("adm-spec").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    // Even a requester whom a namespace role lets patch requests cannot change what was asked for.
    t.grant_request_editing(User::BackupAdmin).await;
    let api = t.requests(User::BackupAdmin).await;
    for (field, value) in [
        ("duration", json!("24h")),
        ("operation", json!("DisableMultiUserAuthorization")),
        ("vaultProtection", json!("other-vault")),
        ("requester", json!("approver-a")),
    ] {
        eprintln!("case: spec.{field}");
        let patch = json!({"spec": {field: value}});
        assert_refused(
            api.patch("sd", &PatchParams::default(), &Patch::Merge(&patch)).await,
            422,
            "spec is immutable after creation",
        );
        t.assert_unchanged(&before).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Approving

#[tokio::test]
async fn an_approver_approves_a_request() {
    let t = Test::new("adm-approve").await;
    t.request_by(User::BackupAdmin, "sd").await;
    let approved = t.approve(User::ApproverA, "sd").await.unwrap();
    let approvals = approved.status.unwrap().approvals;
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].approver, "approver-a");
    assert_eq!(approvals[0].groups, ["mua-approvers"]);
    assert_eq!(approvals[0].decision, Decision::Approve);
}

#[tokio::test]
async fn two_approvers_each_write_their_own_entry() {
    let t = Test::new("adm-two").await;
    t.request_by(User::BackupAdmin, "sd").await;
    t.approve(User::ApproverA, "sd").await.unwrap();
    t.decide(
        User::ApproverB,
        "sd",
        approval("approver-b", &["mua-approvers"], "Deny"),
    )
    .await
    .unwrap();
    // And an approver may change their own mind while the request is Pending.
    t.decide(User::ApproverB, "sd", approval("approver-b", &[], "Approve"))
        .await
        .unwrap();
    let approvals = t.stored("sd").await.status.unwrap().approvals;
    let decisions: Vec<_> = approvals.iter().map(|a| (a.approver.as_str(), a.decision)).collect();
    assert_eq!(
        decisions,
        [("approver-a", Decision::Approve), ("approver-b", Decision::Approve)]
    );
}

#[tokio::test]
async fn attack_approval_before_the_operator_recorded_the_target() {
    let t = Test::new("adm-notarget").await;
    let before = t.unresolved_request_by(User::BackupAdmin, "sd").await;
    assert_refused(
        t.approve(User::ApproverA, "sd").await,
        403,
        "cannot be approved yet: the operator has not recorded which vault, guard and change it is for",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn a_denial_needs_no_recorded_target() {
    let t = Test::new("adm-denynotarget").await;
    t.unresolved_request_by(User::BackupAdmin, "sd").await;
    let mut entry = approval("approver-a", &["mua-approvers"], "Deny");
    entry.as_object_mut().unwrap().remove("target");
    let denied = t.decide(User::ApproverA, "sd", entry).await.unwrap();
    assert_eq!(denied.status.unwrap().approvals[0].decision, Decision::Deny);
}

#[tokio::test]
async fn attack_approval_of_another_target_than_the_recorded_one() {
    let t = Test::new("adm-othertarget").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    let mut entry = approval("approver-a", &["mua-approvers"], "Approve");
    entry["target"]["vaultId"] = json!(
        "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/backup-rg/providers/Microsoft.RecoveryServices/vaults/decoy"
    );
    assert_refused(
        t.decide(User::ApproverA, "sd", entry).await,
        403,
        "an approval must name what it approves: target must equal the status.target",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_approval_that_names_no_target() {
    let t = Test::new("adm-unnamedtarget").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    let mut entry = approval("approver-a", &["mua-approvers"], "Approve");
    entry.as_object_mut().unwrap().remove("target");
    assert_refused(
        t.decide(User::ApproverA, "sd", entry).await,
        403,
        "an approval must name what it approves",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_self_approval_by_a_requester_who_is_an_approver() {
    let t = Test::new("adm-selfapprove").await;
    let before = t.request_by(User::ApproverA, "sd").await;
    assert_refused(
        t.approve(User::ApproverA, "sd").await,
        403,
        "approver-a asked for this request and cannot approve or deny it: another person must (two-person rule)",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_requester_approves_through_the_status_subresource() {
    let t = Test::new("adm-selfstatus").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    let patch = json!({"status": {"approvals": [approval("backup-admin", &["backup-admins"], "Approve")]}});
    let result = t
        .requests(User::BackupAdmin)
        .await
        .patch_status("sd", &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    assert_refused(
        result,
        403,
        "backup-admin asked for this request and cannot approve or deny it",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_approval_without_the_approve_verb() {
    let t = Test::new("adm-noverb").await;
    // approver-a asks; backup-admin may write status (to revoke) but holds no `approve`.
    let before = t.request_by(User::ApproverA, "sd").await;
    assert_refused(
        t.approve(User::BackupAdmin, "sd").await,
        403,
        &format!(
            "backup-admin may not approve criticaloperationrequests/sd in namespace {}: RBAC grants no verb \"approve\"",
            t.ns.name
        ),
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_approval_by_a_user_without_status_rights() {
    let t = Test::new("adm-nostatus").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    assert_refused(
        t.approve(User::SecurityAdmin, "sd").await,
        403,
        "cannot patch resource \"criticaloperationrequests/status\"",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_service_account_with_the_approve_verb_approves() {
    let t = Test::new("adm-gitops").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    // Argo CD's controller is often bound to broad roles; here it even holds `approve`.
    let (controller, user) = gitops_service_account(&t, "mua-approver").await;
    wait_until_allowed(&controller, &t.ns.name, "criticaloperationrequests", "", "approve").await;

    let groups = ["system:serviceaccounts"];
    let result = apply_status(
        &t.ns,
        controller,
        &user,
        "sd",
        json!({"approvals": [approval(&user, &groups, "Approve")]}),
        false,
    )
    .await;
    assert_refused(
        result,
        403,
        &format!(
            "ServiceAccount {}:argocd-application-controller cannot approve or deny requests: a person must decide",
            t.ns.name
        ),
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn a_request_synced_from_git_names_the_gitops_service_account_as_its_requester() {
    let t = Test::new("adm-gitops-req").await;
    let (controller, user) = gitops_service_account(&t, "mua-requester").await;
    wait_until_allowed(&controller, &t.ns.name, "criticaloperationrequests", "", "create").await;
    let api: Api<CriticalOperationRequest> = Api::namespaced(controller, &t.ns.name);
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(request("sd", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    // Not the commit's author: the operator asks one approval more of such requests (tests/elevation.rs).
    assert_eq!(created.spec.requester.as_deref(), Some(user.as_str()));
}

/// A ServiceAccount named like Argo CD's controller in the test's namespace, bound there to `role`; its
/// client and user name.
async fn gitops_service_account(t: &Test, role: &str) -> (Client, String) {
    t.cp.service_account(&t.ns, "argocd-application-controller", role).await
}

#[tokio::test]
async fn attack_approver_writes_an_entry_in_another_approvers_name() {
    let t = Test::new("adm-forge-entry").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    assert_refused(
        t.decide(
            User::ApproverB,
            "sd",
            approval("approver-a", &["mua-approvers"], "Approve"),
        )
        .await,
        403,
        "approver-b may only write the approval entry with approver: approver-b, not the entry of approver-a",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_approver_overwrites_another_approvers_decision() {
    let t = Test::new("adm-overwrite").await;
    t.request_by(User::BackupAdmin, "sd").await;
    let before = t.approve(User::ApproverA, "sd").await.unwrap();
    // Server-side apply alone would call it a conflict; forcing it leaves the decision to admission.
    let client = t.client(User::ApproverB).await;
    let forged = json!({"approvals": [approval("approver-a", &["mua-approvers"], "Deny")]});
    assert_refused(
        apply_status(&t.ns, client, "approver-b", "sd", forged, true).await,
        403,
        "approver-b may only write the approval entry with approver: approver-b, not the entry of approver-a",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_approver_removes_another_approvers_entry() {
    let t = Test::new("adm-remove").await;
    t.request_by(User::BackupAdmin, "sd").await;
    t.decide(
        User::ApproverA,
        "sd",
        approval("approver-a", &["mua-approvers"], "Deny"),
    )
    .await
    .unwrap();
    let before = t.approve(User::ApproverB, "sd").await.unwrap();
    let patch = json!([
        {"op": "test", "path": "/status/approvals/0/approver", "value": "approver-a"},
        {"op": "remove", "path": "/status/approvals/0"},
    ]);
    let result = t
        .requests(User::ApproverB)
        .await
        .patch_status(
            "sd",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(patch).unwrap()),
        )
        .await;
    assert_refused(
        result,
        403,
        "approval entries cannot be removed (the audit trail keeps every decision): approver-b removed the entry of approver-a",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_approver_claims_groups_they_are_not_in() {
    let t = Test::new("adm-approver-groups").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    assert_refused(
        t.decide(
            User::ApproverA,
            "sd",
            approval("approver-a", &["mua-approvers", "security-admins"], "Approve"),
        )
        .await,
        403,
        "an approval may only name groups the approver is in: approver-a is not in security-admins",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_approving_a_request_already_decided() {
    let t = Test::new("adm-decided").await;
    for (name, phase) in [("approved", "Approved"), ("denied", "Denied")] {
        eprintln!("case: {phase}");
        t.request_by(User::BackupAdmin, name).await;
        t.decide(
            User::ApproverA,
            name,
            approval("approver-a", &["mua-approvers"], "Deny"),
        )
        .await
        .unwrap();
        let before = t.operator_writes(name, json!({"phase": phase})).await;
        assert_refused(
            t.approve(User::ApproverB, name).await,
            403,
            &format!("the request is already {phase}; approvals are closed"),
        );
        t.assert_unchanged(&before).await;
        // Nor may the first approver change their decision once it is decided.
        assert_refused(
            t.approve(User::ApproverA, name).await,
            403,
            &format!("the request is already {phase}; approvals are closed"),
        );
        t.assert_unchanged(&before).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Status that belongs to the operator

/// Status writes that only the operator may make, with the field they name.
fn forgeries() -> Vec<(&'static str, Value)> {
    vec![
        ("phase", json!({"phase": "Approved"})),
        (
            "history",
            json!({"history": [{"phase": "Approved", "actor": "approver-a", "time": TIME}]}),
        ),
        ("expiresAt", json!({"expiresAt": "2027-01-01T00:00:00Z"})),
        (
            "elevation",
            json!({"elevation": {"principalId": "9f2c1d4e-5b6a-4c3d-8e7f-0a1b2c3d4e5f", "scope": GUARD_ID}}),
        ),
        (
            "target",
            json!({"target": {"vaultProtectionUid": "3f1c2d4e-0000-4000-8000-000000000001",
                              "vaultId": "/subscriptions/5e13b949-1218-4d18-8b99-7e12155ec4f7/resourceGroups/backup-rg/providers/Microsoft.RecoveryServices/vaults/prod-vault",
                              "guardId": GUARD_ID}}),
        ),
        ("observedGeneration", json!({"observedGeneration": 7})),
        (
            "conditions",
            json!({"conditions": [{"type": "Approved", "status": "True", "reason": "Approved", "message": "",
                                   "lastTransitionTime": TIME}]}),
        ),
    ]
}

#[tokio::test]
async fn attack_requester_forges_operator_status() {
    let t = Test::new("adm-forge-req").await;
    let before = t.unresolved_request_by(User::BackupAdmin, "sd").await;
    let api = t.requests(User::BackupAdmin).await;
    for (field, status) in forgeries() {
        eprintln!("case: status.{field}");
        let result = api
            .patch_status("sd", &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
            .await;
        assert_refused(
            result,
            403,
            &format!("only the operator writes status.{field}: backup-admin may only write their own entry"),
        );
        t.assert_unchanged(&before).await;
    }
}

#[tokio::test]
async fn attack_approver_forges_operator_status() {
    let t = Test::new("adm-forge-appr").await;
    t.request_by(User::BackupAdmin, "sd").await;
    let before = t.approve(User::ApproverA, "sd").await.unwrap();
    for (field, mut status) in forgeries() {
        eprintln!("case: status.{field}, alongside the approver's own entry");
        status["approvals"] = json!([approval("approver-a", &["mua-approvers"], "Approve")]);
        let client = t.client(User::ApproverA).await;
        // Forced: taking fields another manager (the operator) owns is exactly the forgery.
        assert_refused(
            apply_status(&t.ns, client, "approver-a", "sd", status, true).await,
            403,
            &format!("only the operator writes status.{field}: approver-a may only write their own entry"),
        );
        t.assert_unchanged(&before).await;
    }
}

#[tokio::test]
async fn attack_a_namespace_admin_with_a_wildcard_role_is_not_the_operator() {
    // `cluster-admin` bound in a namespace grants every verb, the custom `operate` included; a person
    // holding it is still not the operator (only a ServiceAccount, or system:masters, is).
    let t = Test::new("adm-wildcard").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "namespace-owner"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "backup-admin"}],
    }))
    .unwrap();
    t.ns.admin_api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let client = t.client(User::BackupAdmin).await;
    wait_until_allowed(&client, &t.ns.name, "criticaloperationrequests", "status", "operate").await;
    assert_refused(
        apply_status(&t.ns, client, "backup-admin", "sd", json!({"phase": "Approved"}), true).await,
        403,
        "only the operator writes status.phase",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn the_operator_writes_phase_history_and_expiry() {
    let t = Test::new("adm-operator").await;
    t.request_by(User::BackupAdmin, "sd").await;
    t.approve(User::ApproverA, "sd").await.unwrap();
    let written = t
        .operator_writes(
            "sd",
            json!({"phase": "Active", "expiresAt": "2026-11-29T12:30:00Z",
                   "history": [{"phase": "Approved", "actor": "approver-a", "time": TIME},
                               {"phase": "Active", "actor": "mua-operator", "time": TIME}],
                   "elevation": {"principalId": "9f2c1d4e-5b6a-4c3d-8e7f-0a1b2c3d4e5f", "scope": GUARD_ID}}),
        )
        .await;
    let status = written.status.unwrap();
    assert_eq!(status.phase, Some(RequestPhase::Active));
    assert_eq!(status.history.len(), 2);
    assert_eq!(status.approvals.len(), 1, "the approval stays");
}

// ---------------------------------------------------------------------------------------------------------
// Revoking

#[tokio::test]
async fn the_requester_revokes_their_request() {
    let t = Test::new("adm-revoke").await;
    t.request_by(User::BackupAdmin, "sd").await;
    t.operator_writes("sd", json!({"phase": "Active"})).await;
    let revoked = t.revoke(User::BackupAdmin, "sd", "backup-admin").await.unwrap();
    let revocation = revoked.status.unwrap().revocation.expect("a revocation");
    assert_eq!(revocation.by, "backup-admin");
}

#[tokio::test]
async fn an_approver_revokes_a_request() {
    let t = Test::new("adm-revoke-appr").await;
    t.request_by(User::BackupAdmin, "sd").await;
    let revoked = t.revoke(User::ApproverB, "sd", "approver-b").await.unwrap();
    assert_eq!(revoked.status.unwrap().revocation.unwrap().by, "approver-b");
}

#[tokio::test]
async fn attack_revocation_by_a_stranger() {
    let t = Test::new("adm-revoke-stranger").await;
    // approver-a asks; backup-admin neither asked nor may approve.
    let before = t.request_by(User::ApproverA, "sd").await;
    assert_refused(
        t.revoke(User::BackupAdmin, "sd", "backup-admin").await,
        403,
        "backup-admin may not revoke criticaloperationrequests/sd: only its requester (approver-a) or an approver",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_revocation_in_someone_elses_name() {
    let t = Test::new("adm-revoke-name").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    assert_refused(
        t.revoke(User::BackupAdmin, "sd", "approver-a").await,
        403,
        "status.revocation.by must name the user who revokes: you are backup-admin, not approver-a",
    );
    t.assert_unchanged(&before).await;
}

#[tokio::test]
async fn attack_revocation_rewritten_after_it_was_set() {
    let t = Test::new("adm-revoke-once").await;
    t.request_by(User::BackupAdmin, "sd").await;
    let before = t.revoke(User::BackupAdmin, "sd", "backup-admin").await.unwrap();
    let client = t.client(User::ApproverA).await;
    let rewritten = json!({"revocation": {"by": "approver-a", "time": TIME}});
    assert_refused(
        apply_status(&t.ns, client, "approver-a", "sd", rewritten, true).await,
        403,
        "status.revocation is set once and cannot change: backup-admin already revoked this request",
    );
    t.assert_unchanged(&before).await;
}

// ---------------------------------------------------------------------------------------------------------
// Finalizers

#[tokio::test]
async fn attack_backup_admin_removes_the_operators_finalizer() {
    let t = Test::new("adm-finalizer").await;
    let mut sent = request("sd", json!({}));
    sent["metadata"]["finalizers"] = json!(["mua.dev/elevation"]);
    let before = t.create_request(User::Admin, sent).await.unwrap();
    // Without a role that lets them edit requests, RBAC already refuses.
    let patch = json!({"metadata": {"finalizers": null}});
    let api = t.requests(User::BackupAdmin).await;
    assert_refused(
        api.patch("sd", &PatchParams::default(), &Patch::Merge(&patch)).await,
        403,
        "cannot patch resource \"criticaloperationrequests\"",
    );
    // With one (say, a namespace editor role), the admission policy does.
    t.grant_request_editing(User::BackupAdmin).await;
    assert_refused(
        api.patch("sd", &PatchParams::default(), &Patch::Merge(&patch)).await,
        403,
        "only the operator removes the finalizer mua.dev/elevation",
    );
    t.assert_unchanged(&before).await;
    // Other metadata stays editable for them.
    let labels = json!({"metadata": {"labels": {"team": "backup"}}});
    api.patch("sd", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("labels are not the operator's");
    // The operator removes its own finalizer.
    t.ns.admin_api::<CriticalOperationRequest>()
        .patch("sd", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the operator removes its finalizer");
}

// ---------------------------------------------------------------------------------------------------------
// The security side's objects (RBAC)

#[tokio::test]
async fn attack_backup_admin_creates_an_elevation_policy() {
    let t = Test::new("adm-ep-create").await;
    let policy: ElevationPolicy = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "ElevationPolicy", "metadata": {"name": "mine"},
        "spec": {"guardId": GUARD_ID, "approvers": {"users": ["backup-admin"]}, "maxDuration": "24h"},
    }))
    .unwrap();
    let result =
        t.ns.api::<ElevationPolicy>(t.client(User::BackupAdmin).await)
            .create(&PostParams::default(), &policy)
            .await;
    assert_refused(
        result,
        403,
        "User \"backup-admin\" cannot create resource \"elevationpolicies\" in API group \"mua.dev\"",
    );
    let stored = t.ns.admin_api::<ElevationPolicy>().get_opt("mine").await.unwrap();
    assert!(stored.is_none(), "the ElevationPolicy was stored");
}

#[tokio::test]
async fn attack_backup_admin_edits_an_elevation_policy() {
    let t = Test::new("adm-ep-edit").await;
    let policy: ElevationPolicy = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "ElevationPolicy", "metadata": {"name": "central"},
        "spec": {"guardId": GUARD_ID, "approvers": {"groups": ["mua-approvers"]}, "requiredApprovals": 2},
    }))
    .unwrap();
    let before =
        t.ns.api::<ElevationPolicy>(t.client(User::SecurityAdmin).await)
            .create(&PostParams::default(), &policy)
            .await
            .expect("the security admin writes ElevationPolicies");
    let patch =
        json!({"spec": {"requiredApprovals": 1, "maxDuration": "24h", "approvers": {"users": ["backup-admin"]}}});
    let result =
        t.ns.api::<ElevationPolicy>(t.client(User::BackupAdmin).await)
            .patch("central", &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    assert_refused(
        result,
        403,
        "User \"backup-admin\" cannot patch resource \"elevationpolicies\" in API group \"mua.dev\"",
    );
    let now = t.ns.admin_api::<ElevationPolicy>().get("central").await.unwrap();
    assert_eq!(now.spec, before.spec);
    assert_eq!(now.metadata.resource_version, before.metadata.resource_version);
}

#[tokio::test]
async fn attack_backup_admin_widens_a_guards_elevation_rules() {
    let t = Test::new("adm-guard").await;
    let guard: ResourceGuard = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "guard"},
        "spec": {"subscriptionId": "0b352192-dcac-4cc7-992e-a96190ccc68c", "resourceGroup": "security-rg",
                 "name": "backup-guard", "region": "westeurope",
                 "elevation": {"approvers": {"groups": ["mua-approvers"]}, "requiredApprovals": 2, "maxDuration": "1h"}},
    }))
    .unwrap();
    let before =
        t.ns.api::<ResourceGuard>(t.client(User::SecurityAdmin).await)
            .create(&PostParams::default(), &guard)
            .await
            .expect("the security admin writes ResourceGuards");
    let backup = t.ns.api::<ResourceGuard>(t.client(User::BackupAdmin).await);
    let patch = json!({"spec": {"elevation": {"approvers": {"users": ["backup-admin"]}, "requiredApprovals": 1, "maxDuration": "24h"}}});
    assert_refused(
        backup
            .patch("guard", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
        403,
        "User \"backup-admin\" cannot patch resource \"resourceguards\" in API group \"mua.dev\"",
    );
    let mut own = guard.clone();
    own.metadata.name = Some("own-guard".into());
    assert_refused(
        backup.create(&PostParams::default(), &own).await,
        403,
        "User \"backup-admin\" cannot create resource \"resourceguards\" in API group \"mua.dev\"",
    );
    let now = t.ns.admin_api::<ResourceGuard>().get("guard").await.unwrap();
    assert_eq!(now.spec, before.spec);
    assert_eq!(now.metadata.resource_version, before.metadata.resource_version);
    assert!(
        t.ns.admin_api::<ResourceGuard>()
            .get_opt("own-guard")
            .await
            .unwrap()
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------------------
// The namespace's ElevationPolicy as the admission policies' params

#[tokio::test]
async fn attack_duration_beyond_the_namespace_elevation_policy() {
    let t = Test::new("adm-ceiling").await;
    t.namespace_ceilings(json!({"groups": ["mua-approvers"]}), "1h", "1h1m")
        .await;
    assert_refused(
        t.create_request(User::BackupAdmin, request("long", json!({"duration": "8h"})))
            .await,
        422,
        &format!(
            "spec.duration 8h is longer than 1h, the longest elevation ElevationPolicy ceilings allows in namespace {}",
            t.ns.name
        ),
    );
    t.assert_absent("long").await;
    t.create_request(User::BackupAdmin, request("short", json!({"duration": "1h"})))
        .await
        .expect("within the ceiling");
}

#[tokio::test]
async fn attack_approver_not_named_in_the_namespace_elevation_policy() {
    let t = Test::new("adm-ceiling-approver").await;
    t.namespace_ceilings(json!({"users": ["approver-a"]}), "2h", "3h").await;
    let before = t.request_by(User::BackupAdmin, "sd").await;
    assert_refused(
        t.approve(User::ApproverB, "sd").await,
        403,
        &format!(
            "approver-b is not one of the approvers ElevationPolicy ceilings names in namespace {}",
            t.ns.name
        ),
    );
    t.assert_unchanged(&before).await;
    t.approve(User::ApproverA, "sd")
        .await
        .expect("approver-a is named in the policy");
}
