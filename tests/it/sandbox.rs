//! `mua-operator sandbox`: started as a user would, with a seed of the test's own; `mua-operator run` as a
//! separate process against it, as its printed instructions say; a person of the sandbox's links a vault.

use std::process::Stdio;
use std::time::Duration;

use kube::api::{Api, PostParams};
use mua_operator::crd::{ResourceGuard, VaultProtection};
use serde_json::{Value, json};

use crate::process::eventually;

const DEADLINE: Duration = Duration::from_secs(120);

/// One tenant, a backup and a security subscription, the two sides' service principals with the roles a
/// same-tenant setup needs, and one vault: IDs of this test's own.
const SEED: &str = r"
tenants: [{id: 0a1b2c3d-0000-4000-8000-000000000001, name: sandbox-tenant}]
subscriptions:
  - {id: 0a1b2c3d-0000-4000-8000-0000000000b1, tenant: 0a1b2c3d-0000-4000-8000-000000000001, name: backup,
     resourceGroups: [{name: vaults-rg, location: westeurope}]}
  - {id: 0a1b2c3d-0000-4000-8000-0000000000c1, tenant: 0a1b2c3d-0000-4000-8000-000000000001, name: security,
     resourceGroups: [{name: guards-rg, location: westeurope}]}
principals:
  - {objectId: 0a1b2c3d-0000-4000-8000-0000000000d1, tenant: 0a1b2c3d-0000-4000-8000-000000000001,
     type: ServicePrincipal, displayName: team-backup, clientId: 0a1b2c3d-0000-4000-8000-0000000000e1,
     secrets: [team-backup-secret]}
  - {objectId: 0a1b2c3d-0000-4000-8000-0000000000d2, tenant: 0a1b2c3d-0000-4000-8000-000000000001,
     type: ServicePrincipal, displayName: team-security, clientId: 0a1b2c3d-0000-4000-8000-0000000000e2,
     secrets: [team-security-secret]}
vaults:
  - {subscription: 0a1b2c3d-0000-4000-8000-0000000000b1, resourceGroup: vaults-rg, name: team-vault,
     location: westeurope, kind: RecoveryServicesVault}
roleAssignments:
  - {principal: 0a1b2c3d-0000-4000-8000-0000000000d1, role: Backup Contributor,
     scope: /subscriptions/0a1b2c3d-0000-4000-8000-0000000000b1}
  - {principal: 0a1b2c3d-0000-4000-8000-0000000000d1, role: Reader,
     scope: /subscriptions/0a1b2c3d-0000-4000-8000-0000000000c1/resourceGroups/guards-rg}
  - {principal: 0a1b2c3d-0000-4000-8000-0000000000d2, role: Owner,
     scope: /subscriptions/0a1b2c3d-0000-4000-8000-0000000000c1/resourceGroups/guards-rg}
";

#[tokio::test]
async fn the_sandbox_runs_your_seed_and_people_for_an_operator_started_apart() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("my-seed.yaml");
    std::fs::write(&seed, SEED).unwrap();
    let info_dir = dir.path().join("info");
    let mut sandbox = tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .args([
            "sandbox",
            "--namespace",
            "team",
            "--person",
            "dana=backup-admin+requester",
        ])
        .args(["--person", "erin=security-admin", "--person", "finn=approver"])
        .arg("--seed")
        .arg(&seed)
        .arg("--info-dir")
        .arg(&info_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let info: Value = eventually(DEADLINE, "the sandbox writes sandbox.json", || async {
        serde_json::from_str(&std::fs::read_to_string(info_dir.join("sandbox.json")).ok()?).ok()
    })
    .await;
    let identity = |name: &str| {
        info["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["displayName"] == name)
            .unwrap_or_else(|| panic!("the sandbox lists the seed's {name}: {info}"))
            .clone()
    };
    let (security, backup) = (identity("team-security"), identity("team-backup"));
    let text = |v: &Value| v.as_str().unwrap().to_string();

    // The operator, apart, as the sandbox says to start it.
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .env("KUBECONFIG", text(&info["operatorKubeconfig"]))
        .args([
            "run",
            "--controllers",
            "security,backup",
            "--namespace",
            "team",
            "--lease-namespace",
            "team",
        ])
        .args(["--metrics-bind-address", "127.0.0.1:0"])
        .args([
            "--arm-url",
            &text(&info["armUrl"]),
            "--authority-host",
            &text(&info["authorityHost"]),
        ])
        .args(["--ca-file", &text(&info["caFile"])])
        .args(["--security-tenant-id", &text(&security["tenantId"])])
        .args(["--security-client-id", &text(&security["clientId"])])
        .args(["--security-client-secret-file", &text(&security["clientSecretFile"])])
        .args(["--backup-tenant-id", &text(&backup["tenantId"])])
        .args(["--backup-client-id", &text(&backup["clientId"])])
        .args(["--backup-client-secret-file", &text(&backup["clientSecretFile"])])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // erin, the security admin, declares the guard; dana, the backup admin, links the vault to it.
    let as_person = |name: &str| {
        let path = text(&info["people"][name]["kubeconfig"]);
        async move { crate::cluster::client_from_kubeconfig(std::path::Path::new(&path)).await }
    };
    let guard = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "team-guard"},
        "spec": {"subscriptionId": "0a1b2c3d-0000-4000-8000-0000000000c1", "resourceGroup": "guards-rg",
                 "name": "team-guard", "region": "westeurope"}});
    Api::<ResourceGuard>::namespaced(as_person("erin").await, "team")
        .create(&PostParams::default(), &serde_json::from_value(guard).unwrap())
        .await
        .unwrap();
    let vault = "/subscriptions/0a1b2c3d-0000-4000-8000-0000000000b1/resourceGroups/vaults-rg/providers/Microsoft.RecoveryServices/vaults/team-vault";
    let vp = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "team-vault"},
        "spec": {"vault": {"id": vault}, "guard": {"name": "team-guard"}, "softDelete": {"state": "Enabled"}}});
    let protections = Api::<VaultProtection>::namespaced(as_person("dana").await, "team");
    protections
        .create(&PostParams::default(), &serde_json::from_value(vp).unwrap())
        .await
        .unwrap();
    eventually(DEADLINE, "dana's vault is linked to the guard (Ready)", || async {
        let status = protections.get("team-vault").await.ok()?.status?;
        status
            .conditions
            .get("Ready")
            .is_some_and(|c| c.status == "True")
            .then_some(())
    })
    .await;

    let _ = operator.kill().await;
    // Ctrl-C stops the sandbox, which removes what it started.
    let work_dir = std::path::Path::new(&text(&info["adminKubeconfig"]))
        .parent()
        .unwrap()
        .to_path_buf();
    // SAFETY: signals our own child process.
    unsafe { libc::kill(sandbox.id().unwrap() as i32, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(30), sandbox.wait())
        .await
        .expect("the sandbox stops on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!work_dir.exists(), "{} is removed", work_dir.display());
}
