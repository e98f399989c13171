//! `mua-operator run` as a process: configured for the simulator through flags, it reconciles a
//! ResourceGuard in the real API server, serves `/healthz`, `/readyz` and `/metrics`, and stops cleanly on
//! SIGTERM; wrong configurations fail clearly.

use crate::cluster;
use crate::process;
use crate::simulator;

use std::time::Duration;

use cluster::ControlPlane;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use mua_operator::azure::ArmClient;
use mua_operator::azure::guards::{self, GuardId};
use mua_operator::crd::ResourceGuard;
use process::*;
use simulator::*;

const CONVERGE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn run_reconciles_with_the_configured_identity_and_stops_on_sigterm() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("run-command").await;
    let ts = TestSim::start().await;
    let mut op = Operator::start(cp, &ns, &ts, &["--leader-election=false"]).await;

    create_guard(&ns, "run-guard").await;
    wait_ready(&ns, "run-guard", CONVERGE).await;
    let security = ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, ts.security_side());
    let id = GuardId::new(SECURITY_SUB, "security-rg", "run-guard");
    assert!(
        guards::get(&security, &id).await.unwrap().is_some(),
        "the operator created the guard in Azure"
    );
    assert_eq!(
        op.security_leader_gauge().await,
        Some(1),
        "without election it acts at once"
    );
    let leases: Api<Lease> = ns.admin_api();
    assert!(
        leases.list(&ListParams::default()).await.unwrap().items.is_empty(),
        "--leader-election=false takes no lease"
    );

    op.signal(libc::SIGTERM);
    let status = op.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn endpoints_report_liveness_readiness_and_leadership() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("endpoints").await;
    let ts = TestSim::start().await;
    // A SIGTERM before the controller's cache is filled waits for the whole timeout (see `run::Stop`).
    let flags = ["--lease-duration=4s", "--graceful-shutdown-timeout=2s"];
    let mut op = Operator::start(cp, &ns, &ts, &flags).await;

    let (status, _, body) = op.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    eventually(CONVERGE, "/readyz 200", || async {
        (op.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let id = op.identity().await;
    eventually(CONVERGE, "mua_leader 1 once the lease is held", || async {
        (op.security_leader_gauge().await == Some(1)).then_some(())
    })
    .await;
    assert_eq!(security_lease_holder(&ns).await, Some(id));

    let (status, content_type, body) = op.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.contains("# TYPE mua_leader gauge"), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");

    op.signal(libc::SIGTERM);
    let status = op.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
}

/// `mua-operator run` with the given arguments and no Azure environment: exit code and stderr.
fn run_fails(args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .arg("run")
        .args(args)
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_CLIENT_ID")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn both_sides_run_with_their_own_identities_and_metrics_count_their_work() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("run-both").await;
    let ts = TestSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let backup_secret = dir.path().join("backup-secret");
    std::fs::write(&backup_secret, BACKUP_SECRET).unwrap();
    let backup_secret = backup_secret.to_str().unwrap();
    let flags = [
        "--controllers=security,backup",
        "--leader-election=false",
        "--backup-client-id",
        BACKUP_APP,
        "--backup-client-secret-file",
        backup_secret,
    ];
    let op = Operator::start(cp, &ns, &ts, &flags).await;

    create_guard(&ns, "both-guard").await;
    let vault_id = vault("prod-vault");
    let protection = serde_json::json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection",
        "metadata": {"name": "prod"}, "spec": {"vault": {"id": vault_id}, "guard": {"name": "both-guard"}}});
    let protections: Api<mua_operator::crd::VaultProtection> = ns.admin_api();
    protections
        .create(&Default::default(), &serde_json::from_value(protection).unwrap())
        .await
        .unwrap();
    eventually(CONVERGE, "the VaultProtection Ready", || async {
        let vp = protections.get("prod").await.ok()?;
        let ready = vp.status?.conditions.get("Ready")?.status == "True";
        ready.then_some(())
    })
    .await;
    let backup = ArmClient::new(&ts.cloud, ts.http.clone(), CONTOSO, ts.backup_side());
    let link = mua_operator::azure::vaults::get_link(
        &backup,
        &mua_operator::azure::vaults::VaultId::parse(&vault_id).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        link.is_some_and(|l| l.guard_id.ends_with("/resourceGuards/both-guard")),
        "the backup side linked the vault"
    );

    let (_, _, metrics) = op.get("/metrics").await;
    let value = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for series in [
        r#"mua_reconciles_total{controller="resourceguard",result="Ready""#,
        r#"mua_reconciles_total{controller="vaultprotection",result="Ready""#,
        r#"mua_reconcile_duration_seconds_count{controller="vaultprotection"}"#,
        r#"mua_objects{controller="vaultprotection",ready="True""#,
        r#"mua_arm_requests_total{method="PUT",route="microsoft.recoveryservices/vaults/backupresourceguardproxies",status="200"}"#,
        r#"mua_arm_request_duration_seconds_count{method="GET""#,
    ] {
        assert!(value(series) > 0.0, "{series} counts work:\n{metrics}");
    }
}

#[test]
fn a_side_without_an_azure_identity_fails_clearly() {
    let (code, stderr) = run_fails(&["--controllers=security", "--tenant-id", CONTOSO]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no Azure client ID for the security side"), "{stderr}");
}

/// Azure Government's ARM audience: a sovereign cloud's ARM refuses tokens for the public cloud's.
const GOVERNMENT_AUDIENCE: &str = "https://management.usgovcloudapi.net";

#[tokio::test]
async fn in_another_cloud_the_token_audience_comes_from_its_arms_metadata() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("sovereign").await;
    let ts = TestSim::start_with(|o| o.arm_audience = Some(GOVERNMENT_AUDIENCE.into())).await;
    let mut op = Operator::start(cp, &ns, &ts, &["--leader-election=false"]).await;

    create_guard(&ns, "gov-guard").await;
    wait_ready(&ns, "gov-guard", CONVERGE).await;
    let logged = op
        .log_fields()
        .into_iter()
        .find(|f| f["message"] == "ARM token audience")
        .expect("the operator logs the audience it uses");
    assert_eq!(logged["audience"], GOVERNMENT_AUDIENCE, "{logged}");
    op.signal(libc::SIGTERM);
    op.wait_exit(Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_token_audience_another_cloud_refuses_stops_the_guard_with_arms_message() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("wrong-audience").await;
    let ts = TestSim::start_with(|o| o.arm_audience = Some(GOVERNMENT_AUDIENCE.into())).await;
    // The public cloud's audience, given explicitly against a Government ARM.
    let flags = ["--leader-election=false", "--arm-audience=https://management.azure.com"];
    let mut op = Operator::start(cp, &ns, &ts, &flags).await;

    create_guard(&ns, "refused-guard").await;
    let guards: Api<ResourceGuard> = ns.admin_api();
    let message = eventually(CONVERGE, "the guard reports ARM's refusal", || async {
        let ready = guards
            .get("refused-guard")
            .await
            .ok()?
            .status?
            .conditions
            .get("Ready")?
            .clone();
        (ready.status == "False" && ready.message.contains("wrong audience")).then_some(ready.message)
    })
    .await;
    assert!(
        message.contains(GOVERNMENT_AUDIENCE),
        "ARM names the audiences it accepts: {message}"
    );
    assert_eq!(guard_puts(&ts).await, 0, "nothing was created in Azure");
    op.signal(libc::SIGTERM);
    op.wait_exit(Duration::from_secs(30)).await;
}

/// GET `https://<address>/metrics` with an optional bearer token: (status, body). The endpoint's
/// certificate is self-signed, as scrapers of controller-runtime's secure metrics also accept it.
async fn scrape(address: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let mut request = client.get(format!("https://{address}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn secured_metrics_answer_only_an_authorized_scraper() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("secure-metrics").await;
    let ts = TestSim::start().await;
    let flags = ["--leader-election=false", "--metrics-secure"];
    let mut op = Operator::start(cp, &ns, &ts, &flags).await;

    // The probes stay open (the kubelet asks them without credentials), over TLS.
    assert_eq!(scrape(op.address, "/healthz", None).await, (200, "ok".into()));
    let (status, body) = scrape(op.address, "/metrics", None).await;
    assert_eq!(status, 401, "an unauthenticated scrape is refused: {body}");
    let (status, _) = scrape(op.address, "/metrics", Some("not-a-token")).await;
    assert_eq!(status, 401, "a token the API server does not accept is refused");
    // A person the API server knows, without the metrics reader's role.
    let (status, body) = scrape(op.address, "/metrics", Some(cp.token(cluster::User::BackupAdmin))).await;
    assert_eq!(status, 403, "{body}");

    // A scraper's ServiceAccount bound to the chart's mua-metrics-reader.
    let (_, user) = cp.service_account(&ns, "prometheus", "mua-metrics-reader").await;
    let binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{}-metrics-reader", ns.name)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mua-metrics-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": ns.name}],
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(ns.admin.clone())
        .create(&kube::api::PostParams::default(), &binding)
        .await
        .unwrap();
    let token = cp.service_account_token(&ns, "prometheus").await;
    let body = eventually(CONVERGE, "the bound scraper reads /metrics", || async {
        let (status, body) = scrape(op.address, "/metrics", Some(&token)).await;
        (status == 200).then_some(body)
    })
    .await;
    assert!(body.contains("# TYPE mua_leader gauge"), "{user}: {body}");
    op.signal(libc::SIGTERM);
    op.wait_exit(Duration::from_secs(30)).await;
}
