//! Each team with Azure identities of its own, as Azure Service Operator has them: Secrets in its
//! namespace (`mua-security-identity`, `mua-backup-identity`) name the identities the operator uses for
//! that namespace's objects, and its AzureScopeBinding names the backup identity's object ID (the
//! principal its requests elevate). The teams' resources live in a subscription where the operator's own
//! identities hold nothing, so whatever succeeds there was done as a team's identity, and Azure RBAC
//! bounds each team even where a binding is wider than it should be.

use crate::cluster;
use crate::operator;
use crate::simulator;

use std::time::Duration;

use cluster::{ControlPlane, OwnControlPlane, TestNamespace, User};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use mua_operator::azure::guards::GuardId;
use mua_operator::azure::vaults::{self, SoftDelete, VaultId};
use mua_operator::azure::{ArmClient, ArmMetrics};
use mua_operator::crd::critical_operation_request::RequestPhase;
use mua_operator::crd::{ResourceGuard, VaultProtection};
use operator::{Operator, Options, eventually};
use serde_json::{Value, json};
use simulator::*;

/// Long enough for a reconcile (and a retry) to reach Azure if it were going to.
const QUIET: Duration = Duration::from_secs(3);

/// The teams' subscription: the operator's own identities have no role in it.
const TEAM_SUB: &str = "2c7f6e1a-8d3b-4a9c-b5e4-1f0a9d8c7b6e";

/// One Azure identity of a team (a service principal with a client secret, in Contoso).
struct Identity {
    object_id: &'static str,
    client_id: &'static str,
    secret: &'static str,
}

/// A team: its name (`a`, `b`) and its two identities.
struct Team {
    name: &'static str,
    security: Identity,
    backup: Identity,
}

const TEAM_A: Team = Team {
    name: "a",
    security: Identity {
        object_id: "a0000000-0000-4000-8000-00000000a5ec",
        client_id: "a0000000-0000-4000-8000-0000000a95ec",
        secret: "team-a-security-secret",
    },
    backup: Identity {
        object_id: "a0000000-0000-4000-8000-00000000abac",
        client_id: "a0000000-0000-4000-8000-0000000a9bac",
        secret: "team-a-backup-secret",
    },
};

const TEAM_B: Team = Team {
    name: "b",
    security: Identity {
        object_id: "b0000000-0000-4000-8000-00000000b5ec",
        client_id: "b0000000-0000-4000-8000-0000000b95ec",
        secret: "team-b-security-secret",
    },
    backup: Identity {
        object_id: "b0000000-0000-4000-8000-00000000bbac",
        client_id: "b0000000-0000-4000-8000-0000000b9bac",
        secret: "team-b-backup-secret",
    },
};

fn resource_group(name: &str) -> String {
    format!("/subscriptions/{TEAM_SUB}/resourceGroups/{name}")
}

impl Team {
    fn backup_rg(&self) -> String {
        resource_group(&format!("{}-backup", self.name))
    }

    fn security_rg(&self) -> String {
        resource_group(&format!("{}-security", self.name))
    }

    fn vault(&self) -> String {
        format!(
            "{}/providers/Microsoft.RecoveryServices/vaults/{}-vault",
            self.backup_rg(),
            self.name
        )
    }

    /// The seed's principals and roles for this team: its security identity owns its security resource
    /// group; its backup identity is Backup Contributor on its backup resource group and Reader on the
    /// security one (to link vaults to the guard).
    fn seed(&self, seed: &mut Value) {
        for (identity, side) in [(&self.security, "security"), (&self.backup, "backup")] {
            seed["principals"].as_array_mut().unwrap().push(json!({
                "objectId": identity.object_id, "tenant": CONTOSO, "type": "ServicePrincipal",
                "displayName": format!("team-{}-{side}", self.name), "clientId": identity.client_id,
                "secrets": [identity.secret]}));
        }
        let roles = seed["roleAssignments"].as_array_mut().unwrap();
        roles.push(json!({"principal": self.security.object_id, "role": "Owner", "scope": self.security_rg()}));
        roles
            .push(json!({"principal": self.backup.object_id, "role": "Backup Contributor", "scope": self.backup_rg()}));
        roles.push(json!({"principal": self.backup.object_id, "role": "Reader", "scope": self.security_rg()}));
        seed["vaults"].as_array_mut().unwrap().push(json!({
            "subscription": TEAM_SUB, "resourceGroup": format!("{}-backup", self.name), "name": format!("{}-vault", self.name),
            "location": "westeurope", "kind": "RecoveryServicesVault"}));
    }

    /// The team's identity as a client, to look at Azure as the team sees it.
    fn client(&self, ts: &TestSim, identity: &Identity) -> ArmClient {
        ArmClient::new(
            &ts.cloud,
            ts.http.clone(),
            CONTOSO,
            ts.credential(CONTOSO, identity.client_id, identity.secret),
        )
        .with_metrics(ArmMetrics::new())
    }

    /// Binds `namespace` to the team's resource groups (and `extra` scopes), naming its backup identity.
    async fn bind(&self, admin: &kube::Client, namespace: &str, extra: &[String]) {
        let mut scopes = vec![self.backup_rg()];
        scopes.extend(extra.iter().cloned());
        let spec = json!({"scopes": scopes, "guardScopes": [self.security_rg()], "backupPrincipalIds": [self.backup.object_id],
                          "securityClientIds": [self.security.client_id], "backupClientIds": [self.backup.client_id]});
        cluster::bind_with(admin, namespace, spec).await;
    }

    /// The team's identity Secrets in `namespace`.
    async fn give_identities(&self, ns: &TestNamespace) {
        for (identity, name) in [
            (&self.security, "mua-security-identity"),
            (&self.backup, "mua-backup-identity"),
        ] {
            identity_secret(
                ns,
                name,
                json!({"AZURE_TENANT_ID": CONTOSO, "AZURE_CLIENT_ID": identity.client_id, "AZURE_CLIENT_SECRET": identity.secret}),
            )
            .await;
        }
    }

    /// The team's ResourceGuard `guard` (Ready) with elevation rules, and its VaultProtection `prod` of
    /// its vault linked to it with soft delete on. Returns the guard's ARM ID.
    async fn protected(&self, op: &Operator, ns: &TestNamespace) -> String {
        let azure_name = format!("{}-guard", self.name);
        let guard: ResourceGuard = serde_json::from_value(
            json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "guard"},
            "spec": {"subscriptionId": TEAM_SUB, "resourceGroup": format!("{}-security", self.name), "name": azure_name,
                     "region": "westeurope", "elevation": {"approvers": {"groups": ["mua-approvers"]}}}}),
        )
        .unwrap();
        let guards: Api<ResourceGuard> = ns.admin_api();
        guards.create(&PostParams::default(), &guard).await.unwrap();
        op.ready(&guards, "guard").await;
        let protection: VaultProtection = serde_json::from_value(
            json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "prod"},
            "spec": {"vault": {"id": self.vault()}, "guard": {"name": "guard"}, "softDelete": {"state": "Enabled"}}}),
        )
        .unwrap();
        let protections: Api<VaultProtection> = ns.admin_api();
        protections.create(&PostParams::default(), &protection).await.unwrap();
        op.ready(&protections, "prod").await;
        format!(
            "{}/providers/Microsoft.DataProtection/resourceGuards/{azure_name}",
            self.security_rg()
        )
    }
}

/// A Secret `name` in `ns` holding `data` (string values).
async fn identity_secret(ns: &TestNamespace, name: &str, data: Value) {
    let secret: Secret =
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "stringData": data}))
        .unwrap();
    ns.admin_api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// The example seed plus the teams' subscription, identities and vaults.
fn seed_with_teams(dir: &std::path::Path) -> std::path::PathBuf {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sim-seed.yaml");
    let mut seed: Value = yaml_serde::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let groups: Vec<Value> = ["a-backup", "a-security", "b-backup", "b-security"]
        .iter()
        .map(|g| json!({"name": g, "location": "westeurope"}))
        .collect();
    seed["subscriptions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": TEAM_SUB, "tenant": CONTOSO, "name": "teams", "resourceGroups": groups}));
    TEAM_A.seed(&mut seed);
    TEAM_B.seed(&mut seed);
    let path = dir.join("seed.yaml");
    std::fs::write(&path, yaml_serde::to_string(&seed).unwrap()).unwrap();
    path
}

/// Two teams on a control plane of their own, the operator over both namespaces (its own identities
/// global), each team bound to its resource groups and holding its identity Secrets.
struct TwoTeams {
    cp: OwnControlPlane,
    op: Operator,
    b: TestNamespace,
    _seed: tempfile::TempDir,
}

impl TwoTeams {
    async fn start(prefix: &str) -> TwoTeams {
        let dir = tempfile::tempdir().unwrap();
        let seed = seed_with_teams(dir.path());
        let cp = ControlPlane::own();
        let op = Operator::start_on(
            &cp,
            &format!("{prefix}-a"),
            Options {
                seed: Some(seed),
                ..Options::teams()
            },
        )
        .await;
        let b = cp.namespace(&format!("{prefix}-b")).await;
        let admin = cp.client(User::Admin).await;
        TEAM_A.bind(&admin, &op.ns.name, &[]).await;
        TEAM_B.bind(&admin, &b.name, &[]).await;
        TEAM_A.give_identities(&op.ns).await;
        TEAM_B.give_identities(&b).await;
        TwoTeams { cp, op, b, _seed: dir }
    }
}

fn soft_delete_of(vault: Option<vaults::Vault>) -> Option<SoftDelete> {
    vault.and_then(|v| v.soft_delete).map(|s| s.state)
}

#[tokio::test]
async fn each_team_acts_only_as_its_own_identities_and_does_everything_on_its_own() {
    let t = TwoTeams::start("ids-own").await;
    let (op, ts) = (&t.op, &t.op.ts);
    // Both teams create their guards and link their vaults, each as its own identities (the operator's
    // hold nothing in this subscription).
    let ga = TEAM_A.protected(op, &op.ns).await;
    let gb = TEAM_B.protected(op, &t.b).await;
    for (team, guard) in [(&TEAM_A, &ga), (&TEAM_B, &gb)] {
        let backup = team.client(ts, &team.backup);
        let link = vaults::get_link(&backup, &VaultId::parse(&team.vault()).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("team {}'s vault is linked", team.name));
        assert!(GuardId::parse(guard).unwrap().is(&link.guard_id), "{link:?}");
    }

    // Team A weakens its own vault under its own rules: its security identity grants its backup
    // identity (the principal its binding names), which performs.
    op.declare_soft_delete_off("prod").await;
    let backup_admin = t.cp.client(User::BackupAdmin).await;
    cluster::request(backup_admin, &op.ns.name, "sd", "prod", "DisableSoftDelete").await;
    let approver = t.cp.client(User::ApproverA).await;
    cluster::approve(approver, &op.requests(), &op.ns.name, "sd", User::ApproverA).await;
    let done = eventually("team A's request is Completed", || async {
        let sd = op.requests().get("sd").await.ok()?;
        (sd.status.as_ref()?.phase == Some(RequestPhase::Completed)).then_some(sd)
    })
    .await;
    let elevation = done.status.unwrap().elevation.unwrap();
    assert_eq!(elevation.principal_id.as_deref(), Some(TEAM_A.backup.object_id));
    let team_a = TEAM_A.client(ts, &TEAM_A.backup);
    let vault = vaults::get(&team_a, &VaultId::parse(&TEAM_A.vault()).unwrap())
        .await
        .unwrap();
    assert_eq!(soft_delete_of(vault), Some(SoftDelete::Disabled));
    // Team B's vault is as it was.
    let team_b = TEAM_B.client(ts, &TEAM_B.backup);
    let vault = vaults::get(&team_b, &VaultId::parse(&TEAM_B.vault()).unwrap())
        .await
        .unwrap();
    assert_eq!(soft_delete_of(vault), Some(SoftDelete::Enabled));
}

#[tokio::test]
async fn attack_a_binding_wider_than_it_should_be_is_still_bounded_by_the_teams_own_identity() {
    // A cluster admin's mistake: team B's binding also covers team A's vaults. Team B names team A's
    // vault; the operator acts as team B's identity, which Azure does not let near it.
    let t = TwoTeams::start("ids-wide").await;
    let (op, ts) = (&t.op, &t.op.ts);
    let admin = t.cp.client(User::Admin).await;
    TEAM_B.bind(&admin, &t.b.name, &[TEAM_A.backup_rg()]).await;
    let gb = TEAM_B.protected(op, &t.b).await;
    op.reset_calls().await;
    let theirs: VaultProtection = serde_json::from_value(
        json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "theirs"},
        "spec": {"vault": {"id": TEAM_A.vault()}, "guard": {"id": gb}, "softDelete": {"state": "Disabled"}}}),
    )
    .unwrap();
    let protections: Api<VaultProtection> = t.b.admin_api();
    protections.create(&PostParams::default(), &theirs).await.unwrap();
    let stalled = op.wait_for(&protections, "theirs", "Stalled", "True", None).await;
    let said = serde_json::to_string(&stalled.status).unwrap();
    assert!(
        said.contains("VaultNotFound") || said.contains("AzureAccessDenied"),
        "{said}"
    );
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "team B's identity writes nothing on team A's vault",
    )
    .await;
    let team_a = TEAM_A.client(ts, &TEAM_A.backup);
    let id = VaultId::parse(&TEAM_A.vault()).unwrap();
    assert!(
        vaults::get_link(&team_a, &id).await.unwrap().is_none(),
        "not linked to team B's guard"
    );
    assert_eq!(
        soft_delete_of(vaults::get(&team_a, &id).await.unwrap()),
        Some(SoftDelete::Enabled)
    );
}

#[tokio::test]
async fn attack_a_namespace_cannot_name_another_teams_application_as_its_identity() {
    // With workload identity every team's application trusts the operator's token, so a client ID alone
    // would do: team B names team A's backup application (here even with its working secret). Its
    // binding does not allow that application: nothing is done as it.
    let t = TwoTeams::start("ids-steal").await;
    let (op, ts) = (&t.op, &t.op.ts);
    let gb = format!(
        "{}/providers/Microsoft.DataProtection/resourceGuards/b-guard",
        TEAM_B.security_rg()
    );
    let secrets: Api<Secret> = t.b.admin_api();
    secrets
        .delete("mua-backup-identity", &Default::default())
        .await
        .unwrap();
    identity_secret(
        &t.b,
        "mua-backup-identity",
        json!({"AZURE_TENANT_ID": CONTOSO, "AZURE_CLIENT_ID": TEAM_A.backup.client_id, "AZURE_CLIENT_SECRET": TEAM_A.backup.secret}),
    )
    .await;
    // Team B's binding is also (mistakenly) wide enough to name team A's vault.
    let admin = t.cp.client(User::Admin).await;
    TEAM_B.bind(&admin, &t.b.name, &[TEAM_A.backup_rg()]).await;
    op.reset_calls().await;
    let theirs: VaultProtection = serde_json::from_value(
        json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "theirs"},
        "spec": {"vault": {"id": TEAM_A.vault()}, "guard": {"id": gb}, "softDelete": {"state": "Enabled"}}}),
    )
    .unwrap();
    let protections: Api<VaultProtection> = t.b.admin_api();
    protections.create(&PostParams::default(), &theirs).await.unwrap();
    let stalled = op
        .wait_for(&protections, "theirs", "Stalled", "True", Some("IdentityInvalid"))
        .await;
    let said = serde_json::to_string(&stalled.status).unwrap();
    assert!(said.contains("backupClientIds"), "{said}");
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "nothing is done as team A's identity",
    )
    .await;
    let team_a = TEAM_A.client(ts, &TEAM_A.backup);
    let link = vaults::get_link(&team_a, &VaultId::parse(&TEAM_A.vault()).unwrap())
        .await
        .unwrap();
    assert!(link.is_none(), "{link:?}");
}

#[tokio::test]
async fn a_namespace_identity_without_a_client_id_is_a_clear_condition_and_nothing_is_done() {
    let op = Operator::start("ids-invalid").await;
    identity_secret(&op.ns, "mua-backup-identity", json!({"AZURE_TENANT_ID": CONTOSO})).await;
    let guard_id = op.ts.create_guard("ids-guard").await;
    op.reset_calls().await;
    op.create_protection("prod", &vault("prod-vault"), json!({"id": guard_id}), json!({}))
        .await;
    let stalled = op
        .wait_for(&op.protections(), "prod", "Stalled", "True", Some("IdentityInvalid"))
        .await;
    let said = serde_json::to_string(&stalled.status).unwrap();
    assert!(
        said.contains("mua-backup-identity") && said.contains("AZURE_CLIENT_ID"),
        "{said}"
    );
    op.assert_no_calls(
        &["PUT", "PATCH", "POST", "DELETE"],
        QUIET,
        "nothing is done as another identity",
    )
    .await;
    let link = vaults::get_link(&op.backup, &VaultId::parse(&vault("prod-vault")).unwrap())
        .await
        .unwrap();
    assert!(link.is_none(), "{link:?}");
}
