//! Two teams in one cluster, one operator: each namespace is bound to its own Azure scopes (an
//! AzureScopeBinding only cluster admins write), each team's security admins own their own guard, and
//! neither team can name, adopt, link, elevate on or weaken the other's guards or vaults through the
//! operator, while each still does everything on its own. Each test has a control plane of its own (the
//! operator watches every namespace of it).

use crate::cluster;
use crate::operator;
use crate::simulator;

use std::time::Duration;

use cluster::{ControlPlane, OwnControlPlane, TestNamespace, User};
use kube::Api;
use kube::api::PostParams;
use mua_operator::azure::authorization;
use mua_operator::azure::guards::{self, GuardId};
use mua_operator::azure::vaults::{self, SoftDelete, VaultId};
use mua_operator::crd::critical_operation_request::RequestPhase;
use mua_operator::crd::{CriticalOperationRequest, ElevationPolicy, ResourceGuard, VaultProtection};
use operator::{Operator, Options, eventually};
use serde_json::{Value, json};
use simulator::*;

/// Long enough for a reconcile (and a retry) to reach Azure if it were going to.
const QUIET: Duration = Duration::from_secs(3);

fn backup_vault(name: &str) -> String {
    format!(
        "/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg/providers/Microsoft.DataProtection/backupVaults/{name}"
    )
}

/// Team A owns `prod-vault` and the guard `ga`; team B owns `prod-backup-vault` and the guard `gb`. The
/// operator (`op`, whose own namespace is team A's) watches both namespaces.
struct Teams {
    _cp: OwnControlPlane,
    op: Operator,
    b: TestNamespace,
    /// The guards' ARM IDs.
    ga: String,
    gb: String,
}

impl Teams {
    async fn start(prefix: &str) -> Teams {
        let cp = ControlPlane::own();
        let op = Operator::start_on(&cp, &format!("{prefix}-a"), Options::teams()).await;
        let b = cp.namespace(&format!("{prefix}-b")).await;
        let ga = guard(&op.unique("ga"));
        let gb = guard(&op.unique("gb"));
        let admin = cp.client(User::Admin).await;
        cluster::bind(&admin, &op.ns.name, &[&vault("prod-vault")], &[&ga]).await;
        cluster::bind(&admin, &b.name, &[&backup_vault("prod-backup-vault")], &[&gb]).await;
        Teams { _cp: cp, op, b, ga, gb }
    }

    fn in_b<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        self.b.admin_api()
    }

    /// Team A's guard `guard` (Ready) with `rules`, and its VaultProtection `prod` of `prod-vault`
    /// linked to it with soft delete declared `soft_delete`.
    async fn team_a_protected(&self, rules: Value, soft_delete: &str) {
        let name = GuardId::parse(&self.ga).unwrap().name;
        self.op.create_guard("guard", &name, json!({"elevation": rules})).await;
        self.op.ready(&self.op.guards(), "guard").await;
        self.op
            .create_protection(
                "prod",
                &vault("prod-vault"),
                json!({"name": "guard"}),
                json!({"softDelete": {"state": soft_delete}}),
            )
            .await;
        let reason = if soft_delete == "Disabled" {
            "ElevationRequired"
        } else {
            "InSync"
        };
        let ready = if soft_delete == "Disabled" { "False" } else { "True" };
        self.op
            .wait_for(&self.op.protections(), "prod", "Ready", ready, Some(reason))
            .await;
    }

    /// Team B's ResourceGuard `gb` of its guard, Ready.
    async fn team_b_guard(&self) {
        let name = GuardId::parse(&self.gb).unwrap().name;
        self.created_in_b::<ResourceGuard>(json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "gb"},
                "spec": {"subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": name, "region": "westeurope",
                         "elevation": {"approvers": {"groups": ["mua-approvers"]}}}}))
        .await;
        self.op
            .wait_for(&self.in_b::<ResourceGuard>(), "gb", "Ready", "True", None)
            .await;
    }

    /// Creates `object` (a `mua.dev` kind) in team B's namespace as its admin.
    async fn create_in_b<K>(&self, object: Value) -> K
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
        <K as kube::Resource>::DynamicType: Default,
    {
        self.in_b::<K>()
            .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
            .await
            .unwrap()
    }

    /// Team B's people's view of its namespace: its backup admin writes VaultProtections, its security
    /// admin ResourceGuards and ElevationPolicies (admins pass the scope policy, people do not).
    async fn b_as_owner<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        let user = match K::kind(&Default::default()).as_ref() {
            "VaultProtection" => User::BackupAdmin,
            _ => User::SecurityAdmin,
        };
        Api::namespaced(self._cp.client(user).await, &self.b.name)
    }

    /// Creating `object` in team B's namespace (as its owner) is refused by the API server with a message
    /// saying `why`.
    async fn refused_in_b<K>(&self, object: Value, why: &str)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
        <K as kube::Resource>::DynamicType: Default,
    {
        let object: K = serde_json::from_value(object).unwrap();
        // The API server reads the bindings through a cache: wait until it knows the latest one.
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let api = self.b_as_owner::<K>().await;
        eventually(&format!("the API server refuses it saying {why:?}"), || async {
            api.create(&dry_run, &object).await.is_err().then_some(())
        })
        .await;
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 403, "{status:?}");
                assert!(status.message.contains(why), "{}", status.message);
            }
            other => panic!("the API server accepted what team B may not name: {other:?}"),
        }
    }

    /// Creates `object` in team B's namespace as its owner, once the API server lets it (its bindings'
    /// cache caught up).
    async fn created_in_b<K>(&self, object: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
        <K as kube::Resource>::DynamicType: Default,
    {
        let object: K = serde_json::from_value(object).unwrap();
        let api = self.b_as_owner::<K>().await;
        eventually("the API server accepts it", || async {
            api.create(&PostParams::default(), &object).await.ok()
        })
        .await;
    }

    /// Asserts that nothing is written in Azure over a window that would catch a late write, that
    /// `prod-vault` keeps soft delete on and its link to team A's guard, and that nobody holds a grant
    /// on team A's guard.
    async fn team_a_unchanged(&self, why: &str) {
        let op = &self.op;
        op.assert_no_calls(&["PUT", "PATCH", "POST", "DELETE"], QUIET, why)
            .await;
        let id = VaultId::parse(&vault("prod-vault")).unwrap();
        let soft_delete = vaults::get(&op.backup, &id)
            .await
            .unwrap()
            .unwrap()
            .soft_delete
            .map(|s| s.state);
        assert_eq!(soft_delete, Some(SoftDelete::Enabled), "{why}");
        let link = vaults::get_link(&op.backup, &id).await.unwrap();
        assert!(
            link.as_ref()
                .is_none_or(|l| GuardId::parse(&self.ga).unwrap().is(&l.guard_id)),
            "{why}: {link:?}"
        );
        // The backup identity's standing Reader on the resource group aside: no elevation role.
        let grants: Vec<_> = authorization::list_for_principal(&op.security, &self.ga, BACKUP_OID)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.role == authorization::BACKUP_MUA_OPERATOR || a.role == authorization::CONTRIBUTOR)
            .collect();
        assert!(grants.is_empty(), "{why}: {grants:?}");
    }
}

/// The condition `type_` of a team-B object as `(status, message)`, once it has `reason` and its message
/// says `text`.
async fn b_condition<K>(api: &Api<K>, name: &str, type_: &str, reason: &str, text: &str) -> (String, String)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    eventually(&format!("{name}: {type_} {reason} saying {text:?}"), || async {
        let value = serde_json::to_value(api.get(name).await.ok()?).ok()?;
        let conditions = value["status"]["conditions"].as_array()?.clone();
        conditions
            .iter()
            .find(|c| {
                c["type"] == type_ && c["reason"] == reason && c["message"].as_str().is_some_and(|m| m.contains(text))
            })
            .map(|c| {
                (
                    c["status"].as_str().unwrap_or_default().to_string(),
                    c["message"].as_str().unwrap_or_default().to_string(),
                )
            })
    })
    .await
}

#[tokio::test]
async fn attack_another_team_cannot_name_our_vault() {
    let t = Teams::start("teams-vault").await;
    t.team_a_protected(json!({"approvers": {"groups": ["mua-approvers"]}}), "Enabled")
        .await;
    // Team B links team A's vault to its own guard, and turns its soft delete off.
    t.team_b_guard().await;
    t.op.reset_calls().await;
    // The API server refuses it (the operator would too: see attack_an_unbound_namespace_names_nothing).
    let theirs = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "theirs"},
        "spec": {"vault": {"id": vault("prod-vault")}, "guard": {"name": "gb"}, "softDelete": {"state": "Disabled"}}});
    t.refused_in_b::<VaultProtection>(theirs, "may not name").await;
    t.team_a_unchanged("another team's VaultProtection touches nothing of ours")
        .await;
}

#[tokio::test]
async fn attack_another_team_cannot_adopt_our_guard() {
    // Case 3: team B's security admin adopts team A's guard and excludes operations on it.
    let t = Teams::start("teams-adopt").await;
    t.team_a_protected(json!({"approvers": {"groups": ["mua-approvers"]}}), "Enabled")
        .await;
    let id = GuardId::parse(&t.ga).unwrap();
    let before = guards::get(&t.op.security, &id).await.unwrap().unwrap();
    t.op.reset_calls().await;
    let adopted = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "adopted"},
        "spec": {"subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": id.name, "region": "westeurope",
                 "adoptExisting": true,
                 "excludedOperations": ["ModifyProtection", "ModifyBackupPolicy", "StopProtectionWithDeleteData",
                                        "ChangeMarsSecurityPin", "ModifyEncryptionSettings"]}});
    t.refused_in_b::<ResourceGuard>(adopted, "does not own the guard").await;
    t.team_a_unchanged("another team's adoption touches nothing").await;
    let after = guards::get(&t.op.security, &id).await.unwrap().unwrap();
    assert_eq!(after.excluded, before.excluded, "the guard's exclusions are team A's");
    assert_eq!(
        after.tags, before.tags,
        "the guard still belongs to team A's ResourceGuard"
    );
}

#[tokio::test]
async fn attack_another_teams_rules_never_govern_our_guard() {
    // Case 2: team B may name team A's vault and guard (a binding wide enough, say a shared
    // subscription) and declares its own, looser rules for team A's guard: one approval, its own
    // approver. The rules are the guard owner's, so team A's two approvals are still needed.
    let t = Teams::start("teams-rules").await;
    t.team_a_protected(
        json!({"approvers": {"groups": ["mua-approvers"]}, "requiredApprovals": 2}),
        "Enabled",
    )
    .await;
    let admin = t._cp.client(User::Admin).await;
    let shared = [format!("/subscriptions/{BACKUP_SUB}"), t.ga.clone()];
    let shared: Vec<&str> = shared.iter().map(String::as_str).collect();
    let loose = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ElevationPolicy", "metadata": {"name": "loose"},
        "spec": {"guardId": t.ga, "approvers": {"users": ["approver-a"]}, "requiredApprovals": 1}});
    cluster::bind(&admin, &t.b.name, &shared, &[&t.gb]).await;
    // Team B does not own team A's guard: the API server refuses its rules for it...
    t.refused_in_b::<ElevationPolicy>(loose.clone(), "does not own the guard")
        .await;
    // ... and rules written while it did (a binding since narrowed) are not the owner's either.
    cluster::bind(&admin, &t.b.name, &shared, &[&t.gb, &t.ga]).await;
    t.created_in_b::<ElevationPolicy>(loose).await;
    cluster::bind(&admin, &t.b.name, &shared, &[&t.gb]).await;
    let _: VaultProtection = t
        .create_in_b(
            json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "theirs"},
            "spec": {"vault": {"id": vault("prod-vault")}, "guard": {"id": t.ga}, "softDelete": {"state": "Disabled"},
                     "managementPolicy": "Manage"}}),
        )
        .await;
    let requests: Api<CriticalOperationRequest> = Api::namespaced(t._cp.client(User::BackupAdmin).await, &t.b.name);
    let request = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "sd"},
        "spec": {"vaultProtection": "theirs", "operation": "DisableSoftDelete", "duration": "30m",
                 "justification": "under our own rules"}});
    requests
        .create(&PostParams::default(), &serde_json::from_value(request).unwrap())
        .await
        .unwrap();
    t.op.reset_calls().await;
    let approver = t._cp.client(User::ApproverA).await;
    cluster::approve(approver, &t.in_b(), &t.b.name, "sd", User::ApproverA).await;
    b_condition(
        &t.in_b::<CriticalOperationRequest>(),
        "sd",
        "Approved",
        "ApprovalPending",
        "1 of 2",
    )
    .await;
    let sd = t.in_b::<CriticalOperationRequest>().get("sd").await.unwrap();
    let policy = sd.status.unwrap().policy.unwrap();
    assert_eq!(policy.rules_from, format!("ResourceGuard {}/guard", t.op.ns.name));
    assert_eq!(policy.required_approvals, 2);
    t.team_a_unchanged("another team's rules never govern our guard").await;
}

#[tokio::test]
async fn two_teams_each_do_everything_on_their_own() {
    let t = Teams::start("teams-own").await;
    // Team A: guard, link, and soft delete off under an approved request.
    t.team_a_protected(json!({"approvers": {"groups": ["mua-approvers"]}}), "Enabled")
        .await;
    // Team B: its own guard and its Backup vault linked to it.
    t.team_b_guard().await;
    t.created_in_b::<VaultProtection>(
        json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "ours"},
            "spec": {"vault": {"id": backup_vault("prod-backup-vault")}, "guard": {"name": "gb"}}}),
    )
    .await;
    t.op.wait_for(&t.in_b::<VaultProtection>(), "ours", "Ready", "True", None)
        .await;
    let link = vaults::get_link(
        &t.op.backup,
        &VaultId::parse(&backup_vault("prod-backup-vault")).unwrap(),
    )
    .await
    .unwrap()
    .expect("team B's vault is linked");
    assert!(GuardId::parse(&t.gb).unwrap().is(&link.guard_id));

    // Team A weakens its own vault under its own rules.
    t.op.declare_soft_delete_off("prod").await;
    let requests: Api<CriticalOperationRequest> = Api::namespaced(t._cp.client(User::BackupAdmin).await, &t.op.ns.name);
    let request = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": "sd"},
        "spec": {"vaultProtection": "prod", "operation": "DisableSoftDelete", "duration": "30m",
                 "justification": "decommission"}});
    requests
        .create(&PostParams::default(), &serde_json::from_value(request).unwrap())
        .await
        .unwrap();
    let approver = t._cp.client(User::ApproverA).await;
    cluster::approve(approver, &t.op.requests(), &t.op.ns.name, "sd", User::ApproverA).await;
    eventually("team A's request is Completed", || async {
        let sd = t.op.requests().get("sd").await.ok()?;
        (sd.status?.phase == Some(RequestPhase::Completed)).then_some(())
    })
    .await;
    let id = VaultId::parse(&vault("prod-vault")).unwrap();
    let soft_delete = vaults::get(&t.op.backup, &id)
        .await
        .unwrap()
        .unwrap()
        .soft_delete
        .map(|s| s.state);
    assert_eq!(soft_delete, Some(SoftDelete::Disabled));
}

#[tokio::test]
async fn attack_an_unbound_namespace_names_nothing() {
    let t = Teams::start("teams-unbound").await;
    let admin = t._cp.client(User::Admin).await;
    Api::<mua_operator::crd::AzureScopeBinding>::all(admin)
        .delete(&t.b.name, &Default::default())
        .await
        .unwrap();
    t.op.reset_calls().await;
    let _: VaultProtection = t
        .create_in_b(
            json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "any"},
            "spec": {"vault": {"id": backup_vault("prod-backup-vault")}, "guard": {"id": t.gb}}}),
        )
        .await;
    b_condition(
        &t.in_b::<VaultProtection>(),
        "any",
        "Stalled",
        "OutOfScope",
        "has no AzureScopeBinding",
    )
    .await;
    t.op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "an unbound namespace reaches nothing",
    )
    .await;
}
