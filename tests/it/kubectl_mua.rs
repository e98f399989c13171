//! `kubectl mua` as people run it: the built binary against the real test control plane, with the chart's
//! RBAC and admission policies in force (`tests/cluster`). Each person has their own kubeconfig and the
//! shipped role bound to their group: `backup-admin` asks (mua-backup-admin), `approver-a` and `approver-b`
//! decide (mua-approver, and may ask too: mua-requester), `security-admin` reads (mua-security-admin).
//! Requests are created by their real requester, the plugin or the requester's own client, and the API
//! server fills in `spec.requester`. Where a behaviour needs the operator's transitions, the test writes
//! them as `admin` through the status subresource, as the operator does (`admin` holds the verb `operate`).

use crate::cluster;

use std::process::Stdio;
use std::time::Duration;

use cluster::{ControlPlane, TestNamespace, User};
use kube::api::{Patch, PatchParams, PostParams};
use mua_operator::crd::critical_operation_request::{CriticalOperationRequestSpec, Decision, RequestPhase, Ticket};
use mua_operator::crd::{CriticalOperationRequest, VaultProtection};
use mua_operator::operations::CriticalOperation;
use serde_json::{Value, json};

/// Generous: a debug binary starting, plus a watch, on a 2-core machine running other tests.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
const VAULT_PROTECTION: &str = "prod-vault";
const PRINCIPAL: &str = "6f3c1e5a-2b7d-4c9e-8a1f-0d2e3b4c5a6f";

/// What one run of the plugin printed and how it exited.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `kubectl mua -n <ns> <args>` as `user`, with only the user's own kubeconfig.
async fn mua(user: User, ns: &str, args: &[&str]) -> Run {
    let cp = ControlPlane::shared();
    let child = tokio::process::Command::new(mua_operator::demo::kubectl_mua_path().expect("building kubectl-mua"))
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path(user))
        .args(["-n", ns])
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_TIMEOUT, child)
        .await
        .unwrap_or_else(|_| panic!("`kubectl mua {}` did not finish within {RUN_TIMEOUT:?}", args.join(" ")))
        .expect("running kubectl-mua");
    Run {
        code: output
            .status
            .code()
            .expect("kubectl-mua exited, not killed by a signal"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `mua` in the background, for commands that wait while the test plays the operator.
fn mua_in_background(user: User, ns: &str, args: &[&str]) -> tokio::task::JoinHandle<Run> {
    let ns = ns.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mua(user, &ns, &args).await
    })
}

/// A namespace with the VaultProtection requests refer to. The people's roles are the chart's, bound
/// cluster-wide by the test control plane (so `-A` works); nothing else is granted.
async fn setup(prefix: &str) -> TestNamespace {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/vault-protection.yaml");
    let vp: VaultProtection = yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ns.admin_api::<VaultProtection>()
        .create(&PostParams::default(), &vp)
        .await
        .expect("creating the VaultProtection");
    ns
}

/// `requester` creates a request with their own kubeconfig, as with `kubectl create`: without
/// `spec.requester`, which the API server's admission policy fills in with the creating user.
async fn create_request(ns: &TestNamespace, requester: User, name: &str) -> CriticalOperationRequest {
    create_unresolved_request(ns, requester, name).await;
    // No operator runs here: record the target as the operator would, so approvers can approve.
    set_status(ns, name, json!({"target": recorded_target()})).await;
    read(ns, name).await
}

/// What the operator records a request made by [`create_request`] to be for.
fn recorded_target() -> Value {
    json!({"vaultProtectionUid": "3f1c2d4e-0000-4000-8000-000000000001",
           "vaultId": "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/backup-rg/providers/Microsoft.RecoveryServices/vaults/prod-vault",
           "guardId": "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/sec/providers/Microsoft.DataProtection/resourceGuards/backup-guard",
           "change": "DisableSoftDelete"})
}

/// A request the operator has not resolved yet: no `status.target`.
async fn create_unresolved_request(ns: &TestNamespace, requester: User, name: &str) -> CriticalOperationRequest {
    let spec = CriticalOperationRequestSpec {
        vault_protection: VAULT_PROTECTION.into(),
        operation: CriticalOperation::DisableSoftDelete,
        duration: "30m".into(),
        justification: "Decommission after the migration".into(),
        ticket: Some(Ticket {
            system: "ServiceNow".into(),
            number: "CHG0012345".into(),
        }),
        requester: None,
        requester_groups: Vec::new(),
        principal: None,
        action: None,
    };
    let client = ControlPlane::shared().client(requester).await;
    let created = ns
        .api::<CriticalOperationRequest>(client)
        .create(&PostParams::default(), &CriticalOperationRequest::new(name, spec))
        .await
        .unwrap_or_else(|err| panic!("{} creating request {name}: {err}", requester.name()));
    assert_eq!(created.spec.requester.as_deref(), Some(requester.name()));
    created
}

/// Writes status as the operator does: through the status subresource.
async fn set_status(ns: &TestNamespace, name: &str, status: Value) {
    ns.admin_api::<CriticalOperationRequest>()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
        .await
        .expect("writing status as the operator");
}

async fn read(ns: &TestNamespace, name: &str) -> CriticalOperationRequest {
    ns.admin_api::<CriticalOperationRequest>().get(name).await.unwrap()
}

/// A time relative to now, as the API writes it.
fn at(offset_secs: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(offset_secs);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn history(entries: &[(&str, &str, &str)]) -> Value {
    entries
        .iter()
        .map(|(phase, actor, message)| {
            json!({"phase": phase, "actor": actor, "time": at(-60), "reason": format!("{phase}Reason"), "message": message})
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// request

#[tokio::test]
async fn request_no_wait_creates_the_request_with_the_given_fields() {
    let ns = setup("cli-request").await;
    let run = mua(
        User::BackupAdmin,
        &ns.name,
        &[
            "request",
            VAULT_PROTECTION,
            "--operation",
            "change-mars-security-pin",
            "--duration",
            "45m",
            "--justification",
            "Rotate the MARS passphrase on the file server",
            "--ticket",
            "Jira:OPS-42",
            "--principal",
            PRINCIPAL,
            "--name",
            "pin-rotation",
            "--no-wait",
        ],
    )
    .await;
    run.assert_code(0);
    assert!(run.stdout.contains("requested as backup-admin"), "{}", run.stdout);
    assert!(
        run.stdout.contains(&format!(
            "criticaloperationrequest/pin-rotation created in namespace {}",
            ns.name
        )),
        "{}",
        run.stdout
    );

    let created = read(&ns, "pin-rotation").await;
    let spec = &created.spec;
    assert_eq!(spec.vault_protection, VAULT_PROTECTION);
    assert_eq!(spec.operation, CriticalOperation::ChangeMarsSecurityPin);
    assert_eq!(spec.duration, "45m");
    assert_eq!(spec.justification, "Rotate the MARS passphrase on the file server");
    assert_eq!(
        spec.ticket,
        Some(Ticket {
            system: "Jira".into(),
            number: "OPS-42".into()
        })
    );
    assert_eq!(spec.principal.as_ref().map(|p| p.object_id.as_str()), Some(PRINCIPAL));
    // The plugin sends neither field: the API server's admission policy fills in who created the request.
    assert_eq!(spec.requester.as_deref(), Some("backup-admin"));
    assert!(
        spec.requester_groups.contains(&"backup-admins".to_string()),
        "{:?}",
        spec.requester_groups
    );
}

#[tokio::test]
async fn request_without_a_name_generates_one_and_prints_json() {
    let ns = setup("cli-request-json").await;
    let run = mua(
        User::BackupAdmin,
        &ns.name,
        &[
            "request",
            VAULT_PROTECTION,
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "30m",
            "--justification",
            "Decommission",
            "--no-wait",
            "-o",
            "json",
        ],
    )
    .await;
    run.assert_code(0);
    let object: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", run.stdout));
    let name = object["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("prod-vault-disable-soft-delete-")
            && name.len() == "prod-vault-disable-soft-delete-".len() + 5,
        "{name}"
    );
    assert_eq!(object["kind"], "CriticalOperationRequest");
    assert!(object["metadata"].get("managedFields").is_none());
    assert!(
        run.stderr.contains("requested as backup-admin"),
        "notes go to stderr with -o json: {}",
        run.stderr
    );
    read(&ns, name).await;
}

#[tokio::test]
async fn request_waits_and_prints_phase_changes_until_active() {
    let ns = setup("cli-request-wait").await;
    let waiting = mua_in_background(
        User::BackupAdmin,
        &ns.name,
        &[
            "request",
            VAULT_PROTECTION,
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "30m",
            "--justification",
            "Decommission",
            "--name",
            "followed",
        ],
    );
    // Play the operator once the request exists.
    let api = ns.admin_api::<CriticalOperationRequest>();
    for _ in 0..300 {
        if api.get_opt("followed").await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_status(&ns, "followed", json!({"phase": "Pending"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_status(
        &ns,
        "followed",
        json!({"phase": "Active", "expiresAt": at(1800),
               "history": history(&[("Pending", "mua-operator", "waiting"), ("Active", "mua-operator", "granted")])}),
    )
    .await;

    let run = waiting.await.unwrap();
    run.assert_code(0);
    assert!(run.stdout.contains("requested as backup-admin"), "{}", run.stdout);
    assert!(run.stdout.contains("waiting for a decision"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("followed: Active (by mua-operator: granted), expires "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("(in 29m") || run.stdout.contains("(in 30m"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn request_shows_the_guards_instructions_for_asking_access() {
    let ns = setup("cli-request-guard").await;
    ns.admin_api::<VaultProtection>()
        .patch_status(
            VAULT_PROTECTION,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"guardDescription": "Page the security on-call\nwith the ticket"}})),
        )
        .await
        .unwrap();
    let run = mua(
        User::BackupAdmin,
        &ns.name,
        &[
            "request",
            VAULT_PROTECTION,
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "30m",
            "--justification",
            "Decommission",
            "--no-wait",
        ],
    )
    .await;
    run.assert_code(0);
    assert!(
        run.stdout.contains(
            "how to ask for access (from the Resource Guard):\n  Page the security on-call\n  with the ticket\n"
        ),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn the_kubeconfig_comes_from_the_environment_like_kubectl() {
    let cp = ControlPlane::shared();
    let ns = setup("cli-kubeconfig-env").await;
    create_request(&ns, User::BackupAdmin, "seen").await;
    let output = tokio::process::Command::new(mua_operator::demo::kubectl_mua_path().expect("building kubectl-mua"))
        .args(["-n", &ns.name, "list"])
        .env("KUBECONFIG", cp.kubeconfig_path(User::SecurityAdmin))
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("seen"));

    let run = mua(User::SecurityAdmin, &ns.name, &["--context", "nope", "list"]).await;
    run.assert_code(1);
    assert!(run.stderr.starts_with("error: cannot use kubeconfig"), "{}", run.stderr);
}

#[tokio::test]
async fn request_for_a_missing_vault_protection_is_not_found() {
    let ns = setup("cli-request-novp").await;
    let run = mua(
        User::BackupAdmin,
        &ns.name,
        &[
            "request",
            "no-such-vault",
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "30m",
            "--justification",
            "x",
            "--no-wait",
        ],
    )
    .await;
    run.assert_code(7);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "error: vaultprotection \"no-such-vault\" not found in namespace \"{}\"",
            ns.name
        )
    );
}

#[tokio::test]
async fn a_request_the_api_server_refuses_exits_6_with_its_message() {
    let ns = setup("cli-request-invalid").await;
    let run = mua(
        User::BackupAdmin,
        &ns.name,
        &[
            "request",
            VAULT_PROTECTION,
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "48h",
            "--justification",
            "x",
            "--no-wait",
        ],
    )
    .await;
    run.assert_code(6);
    assert!(
        run.stderr.contains("duration must be between 5m and 24h"),
        "the CEL rule's message reaches the user: {}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------------
// approve, deny, revoke

#[tokio::test]
async fn approve_as_an_approver_writes_an_approval_entry() {
    let ns = setup("cli-approve").await;
    mua(
        User::BackupAdmin,
        &ns.name,
        &[
            "request",
            VAULT_PROTECTION,
            "--operation",
            "DisableSoftDelete",
            "--duration",
            "30m",
            "--justification",
            "Decommission",
            "--name",
            "to-approve",
            "--no-wait",
        ],
    )
    .await
    .assert_code(0);
    // No operator runs here: record the target as it would.
    set_status(&ns, "to-approve", json!({"target": recorded_target()})).await;

    let run = mua(
        User::ApproverA,
        &ns.name,
        &["approve", "to-approve", "--reason", "Checked CHG0012345"],
    )
    .await;
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("criticaloperationrequest/to-approve approved by approver-a (approvals: 1)"),
        "{}",
        run.stdout
    );

    let request = read(&ns, "to-approve").await;
    let approvals = request.status.unwrap().approvals;
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let approval = &approvals[0];
    assert_eq!(approval.approver, "approver-a");
    assert_eq!(approval.decision, Decision::Approve);
    assert_eq!(approval.comment.as_deref(), Some("Checked CHG0012345"));
    assert!(
        approval.groups.contains(&"mua-approvers".to_string()),
        "{:?}",
        approval.groups
    );
    let age = jiff::Timestamp::now().duration_since(approval.time.0);
    assert!(age.as_secs() < 120, "the approval time is now: {age:?}");

    let managers = request.metadata.managed_fields.unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some("kubectl-mua/approver-a")
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref() == Some("status")),
        "the approval is applied server-side under the approver's own field manager: {managers:?}"
    );
}

#[tokio::test]
async fn approvals_by_two_people_are_kept_side_by_side() {
    let ns = setup("cli-two-approvers").await;
    create_request(&ns, User::BackupAdmin, "two").await;
    mua(User::ApproverA, &ns.name, &["approve", "two", "--reason", "ok from a"])
        .await
        .assert_code(0);
    mua(User::ApproverB, &ns.name, &["approve", "two", "--reason", "ok from b"])
        .await
        .assert_code(0);
    let approvals = read(&ns, "two").await.status.unwrap().approvals;
    let mut approvers: Vec<&str> = approvals.iter().map(|a| a.approver.as_str()).collect();
    approvers.sort();
    assert_eq!(
        approvers,
        ["approver-a", "approver-b"],
        "neither approval overwrote the other"
    );
}

#[tokio::test]
async fn approve_without_a_reason_is_a_usage_error() {
    let ns = setup("cli-approve-usage").await;
    create_request(&ns, User::BackupAdmin, "no-reason").await;
    let run = mua(User::ApproverA, &ns.name, &["approve", "no-reason"]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("--reason"), "{}", run.stderr);
    assert!(
        read(&ns, "no-reason").await.status.unwrap().approvals.is_empty(),
        "nothing was written"
    );

    let run = mua(User::ApproverA, &ns.name, &["approve", "no-reason", "--reason", "  "]).await;
    run.assert_code(2);
    assert!(run.stderr.contains("--reason must not be empty"), "{}", run.stderr);
}

#[tokio::test]
async fn approving_a_request_already_decided_is_refused() {
    let ns = setup("cli-approve-decided").await;
    create_request(&ns, User::BackupAdmin, "decided").await;
    set_status(&ns, "decided", json!({"phase": "Approved"})).await;
    let run = mua(User::ApproverA, &ns.name, &["approve", "decided", "--reason", "late"]).await;
    run.assert_code(6);
    assert_eq!(
        run.stderr.trim(),
        "error: criticaloperationrequest \"decided\" is already Approved: only a pending request can be approved or denied"
    );
    assert!(read(&ns, "decided").await.status.unwrap().approvals.is_empty());
}

#[tokio::test]
async fn approving_before_the_operator_recorded_the_target_is_refused() {
    let ns = setup("cli-approve-unresolved").await;
    create_unresolved_request(&ns, User::BackupAdmin, "unresolved").await;
    let run = mua(
        User::ApproverA,
        &ns.name,
        &["approve", "unresolved", "--reason", "early"],
    )
    .await;
    run.assert_code(6);
    assert!(
        run.stderr.contains(
            "\"unresolved\" cannot be approved yet: the operator has not recorded which vault, guard and change it is for"
        ),
        "{}",
        run.stderr
    );
    assert!(read(&ns, "unresolved").await.status.is_none(), "nothing was written");
}

#[tokio::test]
async fn an_approval_records_the_target_the_approver_saw() {
    let ns = setup("cli-approve-target").await;
    create_request(&ns, User::BackupAdmin, "seen").await;
    mua(User::ApproverA, &ns.name, &["approve", "seen", "--reason", "ok"])
        .await
        .assert_code(0);
    let approval = read(&ns, "seen").await.status.unwrap().approvals.remove(0);
    assert_eq!(
        serde_json::to_value(approval.target).unwrap(),
        recorded_target(),
        "the entry names what describe showed"
    );
}

#[tokio::test]
async fn approving_your_own_request_is_refused() {
    // An approver may ask too (mua-requester), never decide on what they asked for.
    let ns = setup("cli-approve-self").await;
    create_request(&ns, User::ApproverA, "mine").await;
    let run = mua(User::ApproverA, &ns.name, &["approve", "mine", "--reason", "trust me"]).await;
    run.assert_code(6);
    assert_eq!(
        run.stderr.trim(),
        "error: you cannot approve your own request: another person must (two-person rule)"
    );
    assert!(
        read(&ns, "mine").await.status.unwrap().approvals.is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn approving_without_the_approve_verb_is_refused_by_the_api_server() {
    // backup-admin may write status (to revoke their own requests) but RBAC grants them no `approve`: the
    // plugin sends the approval and the admission policy refuses it.
    let ns = setup("cli-approve-noverb").await;
    let before = create_request(&ns, User::ApproverB, "theirs").await;
    let run = mua(
        User::BackupAdmin,
        &ns.name,
        &["approve", "theirs", "--reason", "looks fine"],
    )
    .await;
    run.assert_code(6);
    assert!(
        run.stderr.starts_with("error: ") && run.stderr.lines().count() == 1,
        "one error line: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "backup-admin may not approve criticaloperationrequests/theirs in namespace {}: RBAC grants no verb \"approve\" on it (ask for the mua-approver ClusterRole)",
            ns.name
        )),
        "the admission policy's message reaches the user: {}",
        run.stderr
    );
    let after = read(&ns, "theirs").await;
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "nothing was written"
    );
}

#[tokio::test]
async fn deny_writes_a_deny_entry() {
    let ns = setup("cli-deny").await;
    create_request(&ns, User::BackupAdmin, "to-deny").await;
    let run = mua(
        User::ApproverB,
        &ns.name,
        &["deny", "to-deny", "--reason", "No change ticket approved"],
    )
    .await;
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("criticaloperationrequest/to-deny denied by approver-b"),
        "{}",
        run.stdout
    );
    let approvals = read(&ns, "to-deny").await.status.unwrap().approvals;
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].approver, "approver-b");
    assert_eq!(approvals[0].decision, Decision::Deny);
    assert_eq!(approvals[0].comment.as_deref(), Some("No change ticket approved"));
}

#[tokio::test]
async fn revoke_sets_the_revocation() {
    let ns = setup("cli-revoke").await;
    create_request(&ns, User::BackupAdmin, "to-revoke").await;
    set_status(&ns, "to-revoke", json!({"phase": "Active", "expiresAt": at(1200)})).await;
    let run = mua(
        User::BackupAdmin,
        &ns.name,
        &["revoke", "to-revoke", "--reason", "Done early"],
    )
    .await;
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("criticaloperationrequest/to-revoke revoked by backup-admin"),
        "{}",
        run.stdout
    );
    let status = read(&ns, "to-revoke").await.status.unwrap();
    let revocation = status.revocation.expect("a revocation");
    assert_eq!(revocation.by, "backup-admin");
    assert_eq!(revocation.reason.as_deref(), Some("Done early"));
    assert_eq!(
        status.phase,
        Some(RequestPhase::Active),
        "only the operator changes the phase"
    );
}

#[tokio::test]
async fn revoking_twice_is_refused_and_keeps_the_first_revocation() {
    let ns = setup("cli-revoke-twice").await;
    create_request(&ns, User::BackupAdmin, "twice").await;
    mua(User::BackupAdmin, &ns.name, &["revoke", "twice", "--reason", "first"])
        .await
        .assert_code(0);
    // An approver may revoke too, but not once the request is revoked.
    let run = mua(User::ApproverA, &ns.name, &["revoke", "twice", "--reason", "second"]).await;
    run.assert_code(6);
    assert!(
        run.stderr.contains("\"twice\" was already revoked by backup-admin at "),
        "{}",
        run.stderr
    );
    let revocation = read(&ns, "twice").await.status.unwrap().revocation.unwrap();
    assert_eq!(
        (revocation.by.as_str(), revocation.reason.as_deref()),
        ("backup-admin", Some("first"))
    );
}

#[tokio::test]
async fn revoking_someone_elses_request_without_the_approve_verb_is_refused_by_the_api_server() {
    let ns = setup("cli-revoke-other").await;
    let before = create_request(&ns, User::ApproverA, "not-yours").await;
    let run = mua(
        User::BackupAdmin,
        &ns.name,
        &["revoke", "not-yours", "--reason", "oops"],
    )
    .await;
    run.assert_code(6);
    assert!(
        run.stderr.contains(
            "backup-admin may not revoke criticaloperationrequests/not-yours: only its requester (approver-a) or an approver (RBAC verb \"approve\") may"
        ),
        "the admission policy's message reaches the user: {}",
        run.stderr
    );
    let after = read(&ns, "not-yours").await;
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "nothing was written"
    );
}

#[tokio::test]
async fn revoking_an_ended_request_is_refused() {
    let ns = setup("cli-revoke-ended").await;
    create_request(&ns, User::BackupAdmin, "ended").await;
    set_status(&ns, "ended", json!({"phase": "Expired"})).await;
    let run = mua(User::BackupAdmin, &ns.name, &["revoke", "ended"]).await;
    run.assert_code(6);
    assert!(
        run.stderr.contains("\"ended\" has already ended (Expired)"),
        "{}",
        run.stderr
    );
    assert!(read(&ns, "ended").await.status.unwrap().revocation.is_none());
}

// ---------------------------------------------------------------------------------------------------
// list, describe

/// The data rows of a table, each split into its cells (cells never contain three spaces).
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|line| {
            line.split("   ")
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn list_shows_requests_with_approvals_and_expiry() {
    let ns = setup("cli-list").await;
    create_request(&ns, User::BackupAdmin, "a-active").await;
    set_status(
        &ns,
        "a-active",
        json!({"phase": "Active", "expiresAt": at(725),
               "approvals": [{"approver": "approver-a", "decision": "Approve", "time": at(-30)}],
               "policy": {"requiredApprovals": 2, "maxDuration": "1h", "backend": "Kubernetes", "role": "BackupMUAOperator"}}),
    )
    .await;
    create_request(&ns, User::ApproverB, "b-new").await;

    let run = mua(User::SecurityAdmin, &ns.name, &["list"]).await;
    run.assert_code(0);
    let header = run.stdout.lines().next().unwrap();
    assert_eq!(
        header
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>(),
        [
            "NAME",
            "VAULT PROTECTION",
            "OPERATION",
            "REQUESTER",
            "PHASE",
            "APPROVALS",
            "EXPIRES",
            "AGE"
        ]
    );
    let rows = rows(&run.stdout);
    assert_eq!(rows.len(), 2, "{}", run.stdout);
    assert_eq!(
        rows[0][..6],
        [
            "a-active",
            "prod-vault",
            "DisableSoftDelete",
            "backup-admin",
            "Active",
            "1/2"
        ]
    );
    assert!(rows[0][6] == "in 12m" || rows[0][6] == "in 11m", "{:?}", rows[0]);
    assert_eq!(
        rows[1][..7],
        ["b-new", "prod-vault", "DisableSoftDelete", "approver-b", "-", "0", "-"],
        "a missing phase and expiry show as -"
    );
}

#[tokio::test]
async fn list_pending_shows_only_undecided_requests() {
    let ns = setup("cli-list-pending").await;
    create_request(&ns, User::BackupAdmin, "new").await;
    create_request(&ns, User::BackupAdmin, "pending").await;
    set_status(&ns, "pending", json!({"phase": "Pending"})).await;
    create_request(&ns, User::BackupAdmin, "denied").await;
    set_status(&ns, "denied", json!({"phase": "Denied"})).await;

    let run = mua(User::SecurityAdmin, &ns.name, &["list", "--pending"]).await;
    run.assert_code(0);
    let names: Vec<String> = rows(&run.stdout).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(names, ["new", "pending"]);
}

#[tokio::test]
async fn list_mine_shows_only_the_callers_requests() {
    let ns = setup("cli-list-mine").await;
    create_request(&ns, User::BackupAdmin, "by-backup-admin").await;
    create_request(&ns, User::ApproverA, "by-someone-else").await;

    let run = mua(User::BackupAdmin, &ns.name, &["list", "--mine"]).await;
    run.assert_code(0);
    let names: Vec<String> = rows(&run.stdout).into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(names, ["by-backup-admin"]);

    let run = mua(User::SecurityAdmin, &ns.name, &["list", "--mine"]).await;
    run.assert_code(0);
    assert_eq!(run.stdout, "", "nothing is security-admin's");
    assert_eq!(
        run.stderr.trim(),
        format!("No requests found in namespace {}.", ns.name)
    );
}

#[tokio::test]
async fn list_all_namespaces_adds_a_namespace_column() {
    let first = setup("cli-list-all-a").await;
    let second = setup("cli-list-all-b").await;
    create_request(&first, User::BackupAdmin, "in-first").await;
    create_request(&second, User::BackupAdmin, "in-second").await;

    let run = mua(User::SecurityAdmin, &first.name, &["list", "-A"]).await;
    run.assert_code(0);
    assert!(run.stdout.lines().next().unwrap().starts_with("NAME"), "{}", run.stdout);
    assert!(
        run.stdout.lines().next().unwrap().contains("NAMESPACE"),
        "{}",
        run.stdout
    );
    let rows = rows(&run.stdout);
    assert!(
        rows.iter().any(|r| r[0] == "in-first" && r[1] == first.name),
        "{}",
        run.stdout
    );
    assert!(
        rows.iter().any(|r| r[0] == "in-second" && r[1] == second.name),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn list_prints_a_json_list() {
    let ns = setup("cli-list-json").await;
    create_request(&ns, User::BackupAdmin, "one").await;
    create_request(&ns, User::BackupAdmin, "two").await;
    let run = mua(User::SecurityAdmin, &ns.name, &["list", "-o", "json"]).await;
    run.assert_code(0);
    let list: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", run.stdout));
    assert_eq!(list["kind"], "List");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"]);

    let run = mua(User::SecurityAdmin, &ns.name, &["list", "-o", "yaml"]).await;
    run.assert_code(0);
    let list: Value = yaml_serde::from_str(&run.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

const DESCRIBED_VAULT: &str = "/subscriptions/5e13b949-1218-4d18-8b99-7e12155ec4f7/resourceGroups/backup-rg/providers/Microsoft.RecoveryServices/vaults/prod-vault";

#[tokio::test]
async fn describe_shows_the_timeline() {
    let ns = setup("cli-describe").await;
    create_request(&ns, User::BackupAdmin, "described").await;
    let scope = "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/sec/providers/Microsoft.DataProtection/resourceGuards/backup-guard";
    set_status(
        &ns,
        "described",
        json!({
            "phase": "Active",
            "expiresAt": at(1500),
            "grantedAt": at(-300),
            "guardDescription": "Ask #backup-security on Slack, with the change ticket.\nOn call: +1 555 0100",
            "approvals": [{"approver": "approver-a", "groups": ["mua-approvers"], "decision": "Approve",
                           "time": at(-400), "comment": "Checked the ticket"}],
            "history": history(&[
                ("Pending", "mua-operator", "Waiting for 1 approval"),
                ("Approved", "approver-a", "Approved by approver-a"),
                ("Active", "mua-operator", "Granted Backup MUA Operator until expiry"),
            ]),
            "elevation": {"principalId": PRINCIPAL, "scope": scope,
                          "scheduleRequestId": "b1f3a2c4-0000-4000-8000-000000000001"},
            "target": {"vaultProtectionUid": "3f1c2d4e-0000-4000-8000-000000000002", "vaultId": DESCRIBED_VAULT, "guardId": scope},
            "policy": {"requiredApprovals": 1, "maxDuration": "1h", "backend": "Kubernetes", "role": "BackupMUAOperator"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Elevated", "message": "The elevation is active",
                            "lastTransitionTime": at(-300)}],
        }),
    )
    .await;

    let run = mua(User::SecurityAdmin, &ns.name, &["describe", "described"]).await;
    run.assert_code(0);
    let out = &run.stdout;
    for expected in [
        "Name:",
        "described",
        "Vault Protection:",
        "Vault:",
        DESCRIBED_VAULT,
        "Guard:",
        "Operation:",
        "DisableSoftDelete",
        "Justification:",
        "Decommission after the migration",
        "Ticket:",
        "ServiceNow CHG0012345",
        "Requester:",
        "Phase:",
        "Active (by mua-operator: Granted Backup MUA Operator until expiry)",
        "Approvals:",
        "1/1",
        "Policy:",
        "role Backup MUA Operator",
        "How to ask for access:\n  Ask #backup-security on Slack, with the change ticket.\n  On call: +1 555 0100\n",
        "approver-a   Approve",
        "Checked the ticket",
        "Ready",
        "The elevation is active",
        scope,
        "b1f3a2c4-0000-4000-8000-000000000001",
    ] {
        assert!(out.contains(expected), "describe lacks {expected:?}:\n{out}");
    }
    assert!(
        out.contains("Expires:") && (out.contains("(in 24m") || out.contains("(in 25m")),
        "{out}"
    );

    // The timeline: one row per transition, in order, with time, phase, actor, reason and message.
    let timeline = out.split("Timeline:\n").nth(1).expect("a Timeline section");
    let lines: Vec<&str> = timeline.lines().take(4).collect();
    assert!(
        lines[0].contains("TIME") && lines[0].contains("ACTOR") && lines[0].contains("MESSAGE"),
        "{out}"
    );
    for (line, (phase, actor, message)) in lines[1..].iter().zip([
        ("Pending", "mua-operator", "Waiting for 1 approval"),
        ("Approved", "approver-a", "Approved by approver-a"),
        ("Active", "mua-operator", "Granted Backup MUA Operator until expiry"),
    ]) {
        for cell in [phase, actor, &format!("{phase}Reason"), message] {
            assert!(line.contains(cell), "timeline row {line:?} lacks {cell:?}:\n{out}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// wait, not found

#[tokio::test]
async fn wait_exits_0_when_the_request_becomes_active() {
    let ns = setup("cli-wait-active").await;
    create_request(&ns, User::BackupAdmin, "soon-active").await;
    let waiting = mua_in_background(
        User::BackupAdmin,
        &ns.name,
        &["wait", "soon-active", "--timeout", "60s"],
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    set_status(&ns, "soon-active", json!({"phase": "Approved"})).await;
    set_status(&ns, "soon-active", json!({"phase": "Active", "expiresAt": at(1800)})).await;
    let run = waiting.await.unwrap();
    run.assert_code(0);
    assert!(run.stdout.contains("soon-active: Active"), "{}", run.stdout);
}

#[tokio::test]
async fn wait_exits_3_when_denied() {
    let ns = setup("cli-wait-denied").await;
    create_request(&ns, User::BackupAdmin, "denied").await;
    set_status(
        &ns,
        "denied",
        json!({"phase": "Denied", "history": history(&[("Denied", "approver-a", "No ticket")])}),
    )
    .await;
    let run = mua(User::BackupAdmin, &ns.name, &["wait", "denied"]).await;
    run.assert_code(3);
    assert!(
        run.stdout.contains("denied: Denied (by approver-a: No ticket)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("error: criticaloperationrequest \"denied\" was denied"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn wait_exits_4_when_expired() {
    let ns = setup("cli-wait-expired").await;
    create_request(&ns, User::BackupAdmin, "expired").await;
    set_status(&ns, "expired", json!({"phase": "Active", "expiresAt": at(600)})).await;
    let waiting = mua_in_background(User::BackupAdmin, &ns.name, &["wait", "expired", "--for", "final"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    set_status(&ns, "expired", json!({"phase": "Expired"})).await;
    let run = waiting.await.unwrap();
    run.assert_code(4);
    assert!(run.stderr.contains("ended without success (Expired)"), "{}", run.stderr);
}

#[tokio::test]
async fn wait_exits_5_on_timeout() {
    let ns = setup("cli-wait-timeout").await;
    create_request(&ns, User::BackupAdmin, "stuck").await;
    set_status(&ns, "stuck", json!({"phase": "Pending"})).await;
    let run = mua(User::BackupAdmin, &ns.name, &["wait", "stuck", "--timeout", "2s"]).await;
    run.assert_code(5);
    assert!(
        run.stderr
            .contains("timed out after 2s waiting for criticaloperationrequest \"stuck\" (phase Pending)"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn wait_prints_the_final_object_as_json() {
    let ns = setup("cli-wait-json").await;
    create_request(&ns, User::BackupAdmin, "done").await;
    set_status(&ns, "done", json!({"phase": "Completed"})).await;
    let run = mua(User::BackupAdmin, &ns.name, &["wait", "done", "-o", "json"]).await;
    run.assert_code(0);
    let object: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", run.stdout));
    assert_eq!(object["status"]["phase"], "Completed");
}

#[tokio::test]
async fn a_missing_request_exits_7_for_every_verb() {
    let ns = setup("cli-not-found").await;
    let expected = format!(
        "error: criticaloperationrequest \"nope\" not found in namespace \"{}\"",
        ns.name
    );
    for args in [
        &["describe", "nope"][..],
        &["wait", "nope"],
        &["approve", "nope", "--reason", "x"],
        &["deny", "nope", "--reason", "x"],
        &["revoke", "nope"],
    ] {
        let run = mua(User::SecurityAdmin, &ns.name, args).await;
        run.assert_code(7);
        assert_eq!(run.stderr.trim(), expected, "{args:?}");
    }
}

#[tokio::test]
async fn a_by_hand_request_shows_how_far_its_grant_reaches() {
    // Azure's unit is the guard: describe, list and approve say which vaults and operations a person's
    // grant opens.
    let ns = setup("cli-blast-radius").await;
    create_request(&ns, User::BackupAdmin, "pin").await;
    let other = "/subscriptions/5e13b949-1218-4d18-8b99-7e12155ec4f7/resourceGroups/backup-rg/providers/Microsoft.RecoveryServices/vaults/other-vault";
    set_status(
        &ns,
        "pin",
        json!({"phase": "Pending",
               "blastRadius": {"vaults": [DESCRIBED_VAULT, other], "operations": ["DisableSoftDelete", "ChangeMarsSecurityPin"]}}),
    )
    .await;
    let describe = mua(User::SecurityAdmin, &ns.name, &["describe", "pin"]).await;
    describe.assert_code(0);
    let opens =
        format!("the whole guard: DisableSoftDelete, ChangeMarsSecurityPin on 2 vault(s): {DESCRIBED_VAULT}, {other}");
    assert!(describe.stdout.contains(&opens), "{}", describe.stdout);
    let list = mua(User::SecurityAdmin, &ns.name, &["list"]).await;
    list.assert_code(0);
    assert!(list.stdout.contains("(opens 2 vaults)"), "{}", list.stdout);
    let approve = mua(User::ApproverA, &ns.name, &["approve", "pin", "--reason", "ok"]).await;
    approve.assert_code(0);
    assert!(
        approve
            .stderr
            .contains("note: this approval elevates a person on the whole guard: DisableSoftDelete"),
        "{}",
        approve.stderr
    );
}
