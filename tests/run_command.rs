//! `mua-operator run` as a process: configured for the simulator through flags, it reconciles a
//! ResourceGuard in the real API server and stops cleanly on SIGTERM.

mod cluster;
mod simulator;

use std::time::Duration;

use cluster::{ControlPlane, User};
use kube::api::{Api, PostParams};
use mua_operator::azure::ArmClient;
use mua_operator::azure::guards::{self, GuardId};
use mua_operator::crd::ResourceGuard;
use serde_json::json;
use simulator::*;

#[tokio::test]
async fn run_reconciles_with_the_configured_identity_and_stops_on_sigterm() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("run-command").await;
    let ts = TestSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECURITY_SECRET).unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &ts.sim.ca_pem).unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .args([
            "run",
            "--controllers",
            "security",
            "--namespace",
            &ns.name,
            "--arm-url",
            &ts.sim.arm_url,
        ])
        .args([
            "--authority-host",
            &ts.sim.authority_host,
            "--tenant-id",
            CONTOSO,
            "--client-id",
            SECURITY_APP,
        ])
        .arg("--ca-file")
        .arg(&ca)
        .arg("--client-secret-file")
        .arg(&secret)
        .env("KUBECONFIG", cp.kubeconfig_path(User::Admin))
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let rg: ResourceGuard = serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "from-run"},
        "spec": {"subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": "run-guard", "region": "westeurope"},
    }))
    .unwrap();
    let api: Api<ResourceGuard> = ns.admin_api();
    api.create(&PostParams::default(), &rg).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = api
            .get("from-run")
            .await
            .unwrap()
            .status
            .and_then(|s| s.conditions.get("Ready").map(|c| c.status == "True"));
        if ready == Some(true) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "mua-operator run exited early");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ResourceGuard did not become Ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let security = ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, ts.security_side());
    let id = GuardId::new(SECURITY_SUB, "security-rg", "run-guard");
    assert!(
        guards::get(&security, &id).await.unwrap().is_some(),
        "the operator created the guard in Azure"
    );

    // SAFETY: signals our own child process.
    assert_eq!(unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn asking_for_controllers_that_are_not_built_fails_clearly() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .args([
            "run",
            "--controllers",
            "backup",
            "--tenant-id",
            CONTOSO,
            "--client-id",
            BACKUP_APP,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("backup-side controllers"), "{stderr}");
}
