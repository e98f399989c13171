//! `mua-operator run` as a child process, configured for the test's simulator and namespace: its JSON
//! logs (kept, and echoed for failed tests), its HTTP endpoints, its lease identity, and signals.
//! `MUA_OPERATOR_LOG` sets the child's `RUST_LOG` (default `info`; e.g. `info,kube_lease_manager=debug`).

use std::future::Future;
use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use mua_operator::crd::{ResourceGuard, VaultProtection};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::{ControlPlane, TestNamespace, User};
use crate::simulator::*;

/// How long a freshly started operator may take to log its address (a loaded CI machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which side a process runs, with which Azure identity and Kubernetes credentials.
pub struct Side {
    pub controllers: &'static str,
    pub client_id: &'static str,
    pub secret: &'static str,
    pub kubeconfig: std::path::PathBuf,
}

pub struct Operator {
    pub child: Child,
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub address: SocketAddr,
    logs: Arc<Mutex<Vec<Value>>>,
    /// Reads stderr until the process closes it.
    reader: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// `run --controllers=security` against `ts` with the security side's identity, watching and
    /// electing in `ns`, with `extra` flags (e.g. `--lease-duration=4s`).
    pub async fn start(cp: &ControlPlane, ns: &TestNamespace, ts: &TestSim, extra: &[&str]) -> Operator {
        let side = Side {
            controllers: "security",
            client_id: SECURITY_APP,
            secret: SECURITY_SECRET,
            kubeconfig: cp.kubeconfig_path(User::Admin),
        };
        Self::launch(ns, ts, side, extra).await
    }

    /// `run --controllers=<side>` against `ts` with that side's identity and Kubernetes credentials.
    pub async fn launch(ns: &TestNamespace, ts: &TestSim, side: Side, extra: &[&str]) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, side.secret).unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, &ts.sim.ca_pem).unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mua-operator"))
            .args([
                "run",
                &format!("--controllers={}", side.controllers),
                "--namespace",
                &ns.name,
            ])
            .args(["--lease-namespace", &ns.name, "--metrics-bind-address", "127.0.0.1:0"])
            .args(["--arm-url", &ts.sim.arm_url, "--authority-host", &ts.sim.authority_host])
            .args(["--tenant-id", CONTOSO, "--client-id", side.client_id])
            .arg("--ca-file")
            .arg(&ca)
            .arg("--client-secret-file")
            .arg(&secret)
            .args(extra)
            .env("KUBECONFIG", &side.kubeconfig)
            // Every replica has the same name: only the random suffix tells them apart.
            .env("POD_NAME", "mua-operator-test")
            .env("RUST_LOG", std::env::var("MUA_OPERATOR_LOG").unwrap_or("info".into()))
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = logs.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[mua-operator {pid}] {line}");
                if let Ok(entry) = serde_json::from_str(&line) {
                    kept.lock().unwrap().push(entry);
                }
            }
        });
        let mut operator = Operator {
            child,
            address: "0.0.0.0:0".parse().unwrap(),
            logs,
            reader: Some(reader),
            _dir: dir,
        };
        let address = operator
            .wait_for_log(START_TIMEOUT, "the bound address", |fields| fields["address"].as_str())
            .await;
        operator.address = address.parse().unwrap();
        operator
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("still running") as i32
    }

    /// The `fields` of every JSON log line so far.
    pub fn log_fields(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(|entry| entry["fields"].clone())
            .collect()
    }

    /// Polls the logs until `find` picks something out of a line's fields; fails if the process exits.
    pub async fn wait_for_log(
        &mut self,
        timeout: Duration,
        what: &str,
        find: impl Fn(&Value) -> Option<&str>,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self
                .log_fields()
                .iter()
                .find_map(|fields| find(fields).map(String::from))
            {
                return found;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "mua-operator exited before logging {what}"
            );
            assert!(
                Instant::now() < deadline,
                "mua-operator did not log {what} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The identity this process competes for leases with.
    pub async fn identity(&mut self) -> String {
        self.wait_for_log(START_TIMEOUT, "its lease identity", |fields| {
            fields["identity"].as_str()
        })
        .await
    }

    /// An HTTP GET on the operator's endpoints: status, content type and body.
    pub async fn get(&self, path: &str) -> (u16, String, String) {
        let response = reqwest::get(format!("http://{}{path}", self.address))
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, content_type, response.text().await.unwrap())
    }

    /// The value of `mua_leader{side="security"}` on `/metrics`, if it is there.
    pub async fn security_leader_gauge(&self) -> Option<i64> {
        let (_, _, body) = self.get("/metrics").await;
        body.lines()
            .find_map(|line| line.strip_prefix("mua_leader{side=\"security\"} "))
            .map(|value| value.trim().parse().unwrap())
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signals our own child process.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Waits for the exit, and for the last log lines.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("mua-operator did not exit within {timeout:?}"))
            .unwrap();
        if let Some(reader) = self.reader.take() {
            reader.await.unwrap();
        }
        status
    }
}

/// Polls `check` every 100 ms until it yields a value; panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A ResourceGuard named `name`, for an Azure guard of the same name in the security resource group.
pub fn guard_object(name: &str) -> ResourceGuard {
    serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": name},
        "spec": {"subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": name, "region": "westeurope"},
    }))
    .unwrap()
}

pub async fn create_guard(ns: &TestNamespace, name: &str) {
    let api: Api<ResourceGuard> = ns.admin_api();
    api.create(&PostParams::default(), &guard_object(name)).await.unwrap();
}

/// Waits until the ResourceGuard `name` is `Ready=True`.
pub async fn wait_ready(ns: &TestNamespace, name: &str, timeout: Duration) {
    let api: Api<ResourceGuard> = ns.admin_api();
    eventually(timeout, &format!("ResourceGuard {name} Ready"), || async {
        let guard = api.get(name).await.unwrap();
        let ready = guard.status?.conditions.get("Ready")?.status == "True";
        ready.then_some(())
    })
    .await
}

/// How many guard PUTs (creates or updates) the simulator has answered.
pub async fn guard_puts(ts: &TestSim) -> u64 {
    let calls = ts.admin(Method::GET, "/_sim/calls", None).await;
    calls["byRoute"]["PUT microsoft.dataprotection/resourceguards"]
        .as_u64()
        .unwrap_or(0)
}

/// The holder of the security side's Lease in `ns`, if any.
pub async fn security_lease_holder(ns: &TestNamespace) -> Option<String> {
    let api: Api<Lease> = ns.admin_api();
    api.get_opt("mua-operator-security")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

/// Creates `guard` (a ResourceGuard as JSON) and the VaultProtection `prod` linking the seed's `prod-vault`
/// to it, and waits until the link is Ready.
pub async fn guarded_vault(ns: &TestNamespace, guard: Value, deadline: Duration) -> Api<VaultProtection> {
    let guard_name = guard["metadata"]["name"].as_str().unwrap().to_string();
    ns.admin_api::<ResourceGuard>()
        .create(&PostParams::default(), &serde_json::from_value(guard).unwrap())
        .await
        .unwrap();
    let protections: Api<VaultProtection> = ns.admin_api();
    let vp = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection", "metadata": {"name": "prod"},
        "spec": {"vault": {"id": vault("prod-vault")}, "guard": {"name": guard_name}, "softDelete": {"state": "Enabled"}}});
    protections
        .create(&PostParams::default(), &serde_json::from_value(vp).unwrap())
        .await
        .unwrap();
    eventually(deadline, "the VaultProtection is Ready", || async {
        let conditions = protections.get("prod").await.ok()?.status?.conditions;
        conditions
            .get("Ready")
            .is_some_and(|c| c.status == "True")
            .then_some(())
    })
    .await;
    protections
}
