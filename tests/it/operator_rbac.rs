//! The operator's RBAC is least privilege: both sides run as `mua-operator run` under ServiceAccounts bound
//! only to the chart's `mua-operator-security` and `mua-operator-backup` ClusterRoles and its leader-election
//! Role (`files/leader-election-rules.yaml`, in the Leases' namespace), through the whole
//! story (a guard with elevation rules, a linked vault, a request approved and performed, the guard
//! deleted). The API server's audit log then says exactly which verbs on which resources each side used,
//! and that must be exactly what its role grants: nothing denied, nothing granted but unused.

use crate::cluster;
use crate::process;
use crate::simulator;

use std::collections::BTreeSet;
use std::time::Duration;

use cluster::{ControlPlane, TestNamespace, User};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mua_operator::crd::critical_operation_request::RequestPhase;
use mua_operator::crd::{CriticalOperationRequest, ResourceGuard};
use process::{Operator, Side, eventually};
use serde_json::{Value, json};
use simulator::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Verbs a role grants that are never an API request: the admission policies ask the authorizer
/// whether the writer may `operate` on a request's status (only the operator writes phases and grants).
const AUTHORIZER_ONLY: [&str; 1] = ["operate"];

/// Granted for paths this story does not take, each needed by the operator's code: (role, permission).
const NOT_EXERCISED: [(&str, (&str, &str, &str)); 6] = [
    // Secured metrics review a scraper's token (run_command::secured_metrics_answer_only_an_authorized_scraper).
    (
        "mua-operator-security",
        ("authentication.k8s.io", "tokenreviews", "create"),
    ),
    (
        "mua-operator-backup",
        ("authentication.k8s.io", "tokenreviews", "create"),
    ),
    // kube-runtime's Event recorder patches an Event's series when the same Event repeats.
    ("mua-operator-security", ("events.k8s.io", "events", "patch")),
    ("mua-operator-backup", ("events.k8s.io", "events", "patch")),
    // The finalizer of a VaultProtection with deletionPolicy Unlink (this story's is Orphan).
    ("mua-operator-backup", ("mua.dev", "vaultprotections", "patch")),
    // Removing a request whose retention ended (days later; elevation::expiry shows it in-process).
    (
        "mua-operator-security",
        ("mua.dev", "criticaloperationrequests", "delete"),
    ),
];

/// (API group, resource[/subresource], verb).
type Permission = (String, String, String);

/// A ServiceAccount for one side, bound cluster-wide to the chart's role for it (reviews and admission
/// policies are not in the watched namespace) and, in the namespace, to the chart's leader-election Role
/// for the side's Lease; its kubeconfig and user name.
async fn side_account(cp: &ControlPlane, ns: &TestNamespace, role: &str) -> (std::path::PathBuf, String) {
    let (_, user) = cp.service_account(ns, role, role).await;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{}-{role}", ns.name)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": role, "namespace": ns.name}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(ns.admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let lease_role: Role = serde_json::from_value(json!({
        "metadata": {"name": format!("{role}-leader-election")},
        "rules": leader_election_rules(role),
    }))
    .unwrap();
    Api::<Role>::namespaced(ns.admin.clone(), &ns.name)
        .create(&PostParams::default(), &lease_role)
        .await
        .unwrap();
    let lease_binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{role}-leader-election")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{role}-leader-election")},
        "subjects": [{"kind": "ServiceAccount", "name": role, "namespace": ns.name}],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(ns.admin.clone(), &ns.name)
        .create(&PostParams::default(), &lease_binding)
        .await
        .unwrap();
    (cp.service_account_kubeconfig(ns, role), user)
}

/// The chart's leader-election rules for the side whose ClusterRole is `role` (its Lease has that name).
fn leader_election_rules(role: &str) -> Vec<PolicyRule> {
    let text = std::fs::read_to_string(cluster::chart_file("leader-election-rules.yaml")).unwrap();
    yaml_serde::from_str(&text.replace("[LEASES]", &format!("[{role}]"))).unwrap()
}

/// Every permission the ClusterRole and the side's leader-election Role grant.
async fn granted(admin: &kube::Client, role: &str) -> BTreeSet<Permission> {
    let cluster_role = Api::<ClusterRole>::all(admin.clone()).get(role).await.unwrap();
    let mut rules = cluster_role.rules.unwrap_or_default();
    rules.extend(leader_election_rules(role));
    let mut granted = BTreeSet::new();
    for rule in rules {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    if !AUTHORIZER_ONLY.contains(&verb.as_str()) {
                        granted.insert((group.clone(), resource.clone(), verb.clone()));
                    }
                }
            }
        }
    }
    granted
}

/// What `user` asked the API server for, from the audit log: (allowed, denied).
fn used(cp: &ControlPlane, user: &str) -> (BTreeSet<Permission>, BTreeSet<Permission>) {
    let log = std::fs::read_to_string(cp.audit_log()).unwrap();
    let (mut allowed, mut denied) = (BTreeSet::new(), BTreeSet::new());
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(object) = event.get("objectRef") else { continue };
        if event["user"]["username"] != user {
            continue;
        }
        let mut resource = object["resource"].as_str().unwrap_or_default().to_string();
        if let Some(sub) = object["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        let permission = (
            object["apiGroup"].as_str().unwrap_or_default().to_string(),
            resource,
            event["verb"].as_str().unwrap_or_default().to_string(),
        );
        match event["responseStatus"]["code"].as_u64() {
            Some(403) => denied.insert(permission),
            _ => allowed.insert(permission),
        };
    }
    (allowed, denied)
}

#[tokio::test]
async fn each_side_uses_exactly_what_its_role_grants() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("rbac").await;
    let ts = TestSim::start().await;
    let (security_kubeconfig, security_user) = side_account(cp, &ns, "mua-operator-security").await;
    let (backup_kubeconfig, backup_user) = side_account(cp, &ns, "mua-operator-backup").await;
    let security = Side {
        controllers: "security",
        client_id: SECURITY_APP,
        secret: SECURITY_SECRET,
        kubeconfig: security_kubeconfig,
    };
    let backup = Side {
        controllers: "backup",
        client_id: BACKUP_APP,
        secret: BACKUP_SECRET,
        kubeconfig: backup_kubeconfig,
    };
    let principal = format!("--backup-principal-id={BACKUP_OID}");
    let mut security = Operator::launch(&ns, &ts, security, &[&principal]).await;
    let mut backup = Operator::launch(&ns, &ts, backup, &[]).await;

    // The story: a guard with elevation rules (deleted at the end: policy Delete), a linked vault, soft
    // delete declared off, a request approved by a second person and performed.
    let guards: Api<ResourceGuard> = ns.admin_api();
    let guard = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "guard"},
        "spec": {"subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": format!("rbac-{}", ns.name),
                 "region": "westeurope", "description": "Ask #backup-approvals", "deletionPolicy": "Delete",
                 "elevation": {"approvers": {"groups": ["mua-approvers"]}, "maxDuration": "1h"}}});
    let protections = process::guarded_vault(&ns, guard, DEADLINE).await;
    let off = json!({"spec": {"softDelete": {"state": "Disabled"}}});
    protections
        .patch("prod", &PatchParams::default(), &Patch::Merge(&off))
        .await
        .unwrap();

    let backup_admin = cp.client(User::BackupAdmin).await;
    cluster::request(backup_admin, &ns.name, "sd", "prod", "DisableSoftDelete").await;
    let approver = cp.client(User::ApproverA).await;
    cluster::approve(approver, &ns.admin_api(), &ns.name, "sd", User::ApproverA).await;
    eventually(DEADLINE, "the request is Completed", || async {
        let status = ns
            .admin_api::<CriticalOperationRequest>()
            .get("sd")
            .await
            .ok()?
            .status?;
        (status.phase == Some(RequestPhase::Completed)).then_some(())
    })
    .await;

    protections.delete("prod", &DeleteParams::default()).await.unwrap();
    guards.delete("guard", &DeleteParams::default()).await.unwrap();
    eventually(DEADLINE, "the guard is gone", || async {
        guards.get_opt("guard").await.ok()?.is_none().then_some(())
    })
    .await;
    // A graceful stop releases the leases.
    for operator in [&mut security, &mut backup] {
        operator.signal(libc::SIGTERM);
        operator.wait_exit(DEADLINE).await;
    }

    let mut findings = Vec::new();
    for (role, user) in [
        ("mua-operator-security", &security_user),
        ("mua-operator-backup", &backup_user),
    ] {
        let granted = granted(&ns.admin, role).await;
        let (mut allowed, denied) = used(cp, user);
        let unexercised = NOT_EXERCISED.iter().filter(|(r, _)| *r == role);
        allowed.extend(unexercised.map(|(_, (g, r, v))| (g.to_string(), r.to_string(), v.to_string())));
        let unused: Vec<_> = granted.difference(&allowed).collect();
        let ungranted: Vec<_> = allowed.difference(&granted).collect();
        if !denied.is_empty() || !unused.is_empty() || !ungranted.is_empty() {
            findings.push(format!(
                "{role}: refused {denied:?}; granted but not used {unused:?}; used but not granted {ungranted:?}"
            ));
        }
    }
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}
