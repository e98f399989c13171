//! The chart's pods on a real node: the image built by `packaging/image/build.sh` (daemonless), loaded into
//! the containerd of a test node (kubelet, controller-manager and scheduler from `tests/node/`), and the
//! chart installed with Helm into a control plane that has nothing of the operator's before. Only what a
//! test node on this machine needs is set beyond the shipped values: the pods use the host's network
//! (loopback only) and so reach the API server at its loopback address, and trust the simulator's CA.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use mua_operator::control_plane::{StartOptions, free_port};
use mua_operator::crd::critical_operation_request::RequestPhase;
use mua_operator::crd::{CriticalOperationRequest, ResourceGuard, VaultProtection};
use reqwest::Method;
use serde_json::json;

use crate::chart::{chart, helm_ok};
use crate::cluster::{self, ControlPlane, User};
use crate::node::{self, TestNode};
use crate::process::{eventually, guarded_vault};
use crate::simulator::*;

const REPOSITORY: &str = "ghcr.io/mua-dev/mua-operator";
const RELEASE: &str = "mua";
const RELEASE_NAMESPACE: &str = "mua-system";
/// Starting pods on a loaded 2-core machine (image unpacking, probes) takes a while.
const POD_DEADLINE: Duration = Duration::from_secs(180);
const DEADLINE: Duration = Duration::from_secs(90);

/// The image, built (or brought up to date) by the daemonless build once per test process: (OCI archive,
/// version).
pub fn built_image() -> (PathBuf, String) {
    static BUILT: std::sync::OnceLock<(PathBuf, String)> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = mua_operator::control_plane::built_by("packaging/image/build.sh").expect("building the image");
            let env = std::fs::read_to_string(dir.join("image.env")).unwrap();
            let version = env
                .lines()
                .find_map(|l| l.strip_prefix("VERSION="))
                .expect("image.env names the version")
                .to_string();
            (dir.join(format!("mua-operator-{version}.oci.tar")), version)
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_runs_on_a_real_node_converges_elevates_upgrades_and_uninstalls_leaving_azure_untouched() {
    let (archive, version) = built_image();
    let cp = ControlPlane::bare(StartOptions {
        service_accounts: true,
        ..StartOptions::default()
    });
    let test_node = TestNode::start(&cp, &[(archive, REPOSITORY)]);
    node::wait_until_ready(&cp, &test_node).await;
    // The upgrade's image: the same content under another version's tag.
    let upgraded = format!("{version}-upgrade");
    let tagged = test_node
        .ctr()
        .args([
            "images",
            "tag",
            &format!("{REPOSITORY}:{version}"),
            &format!("{REPOSITORY}:{upgraded}"),
        ])
        .output()
        .unwrap();
    assert!(tagged.status.success(), "{}", String::from_utf8_lossy(&tagged.stderr));

    let ts = TestSim::start().await;
    let admin = cp.client(User::Admin).await;
    prepare_release_namespace(&admin, &ts).await;
    let (values, metrics_port) = values_file(&cp, &ts, &test_node);
    let kubeconfig = cp.kubeconfig_path(User::Admin);
    let helm = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--namespace",
            RELEASE_NAMESPACE,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]);
        helm_ok(&all)
    };
    let chart = chart();
    let out = helm(&[
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "-f",
        values.to_str().unwrap(),
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");

    // Both sides' Deployments become Available: the kubelet started the image as shipped (probes answer).
    for side in ["security", "backup"] {
        wait_rolled(&admin, &format!("{RELEASE}-mua-operator-{side}"), &version, &test_node).await;
    }
    // The containers run as 65532, with no capabilities and a read-only root, as the chart asks.
    for pod in operator_pods(&admin).await {
        let pid = container_pid(&test_node, &pod);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:\t")))
                .unwrap()
                .to_string()
        };
        assert!(field("Uid").starts_with("65532\t"), "{pod}: Uid {}", field("Uid"));
        assert_eq!(field("CapEff"), "0000000000000000", "{pod}: effective capabilities");
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
        let root = mounts.lines().find(|l| l.split(' ').nth(4) == Some("/")).unwrap();
        assert!(
            root.split(' ').nth(5).unwrap().split(',').any(|o| o == "ro"),
            "{pod}: the root filesystem is read-only: {root}"
        );
    }

    // Each side's leader holds its Lease in the release namespace.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    let pods = operator_pods(&admin).await;
    for side in ["security", "backup"] {
        let holder = eventually(DEADLINE, &format!("the {side} Lease is held"), || async {
            leases
                .get_opt(&format!("mua-operator-{side}"))
                .await
                .ok()??
                .spec?
                .holder_identity
        })
        .await;
        assert!(
            held_by(&holder, &pods),
            "the {side} Lease is held by {holder}, one of the operator's pods {pods:?}"
        );
    }

    // Metrics are secured as shipped: over TLS, and refused to a scraper without a token.
    let insecure = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    for port in [metrics_port, metrics_port + 1] {
        let response = insecure
            .get(format!("https://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            401,
            "an unauthenticated scrape of port {port}"
        );
    }

    // The operator in the pods converges a guard and a vault link against the simulator, and performs an
    // approved elevation.
    cluster::bind_people(&admin).await.unwrap();
    cluster::wait_until_admission_in_force(&cp).await;
    let ns = cp.namespace("team").await;
    let guard = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "ResourceGuard", "metadata": {"name": "node-guard"},
        "spec": {"subscriptionId": SECURITY_SUB, "resourceGroup": "security-rg", "name": "node-guard",
                 "region": "westeurope", "elevation": {"approvers": {"groups": ["mua-approvers"]}, "maxDuration": "1h"}}});
    let protections = guarded_vault(&ns, guard, POD_DEADLINE).await;
    let guards: Api<ResourceGuard> = ns.admin_api();
    let requests: Api<CriticalOperationRequest> = ns.admin_api();
    disable_soft_delete(&cp, &ns, &protections, &requests, "before-upgrade").await;

    // A helm upgrade to another version rolls the pods; the Lease passes from the old leader to the new
    // one and never back, and the new pods act.
    let before: Vec<String> = operator_pods(&admin).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watch = tokio::spawn(record_holders(leases.clone(), "mua-operator-security", seen.clone()));
    helm(&[
        "upgrade",
        RELEASE,
        chart.to_str().unwrap(),
        "-f",
        values.to_str().unwrap(),
        "--set",
        &format!("image.tag={upgraded}"),
    ]);
    for side in ["security", "backup"] {
        wait_rolled(&admin, &format!("{RELEASE}-mua-operator-{side}"), &upgraded, &test_node).await;
    }
    let after = operator_pods(&admin).await;
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "new pods {after:?} replaced {before:?}"
    );
    let new_holder = eventually(DEADLINE, "a new pod holds the security Lease", || async {
        let holder = leases
            .get_opt("mua-operator-security")
            .await
            .ok()??
            .spec?
            .holder_identity?;
        held_by(&holder, &after).then_some(holder)
    })
    .await;
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    let first_new = seen
        .iter()
        .position(|h| *h == new_holder)
        .expect("the watch saw the new holder");
    // The old leader released the Lease on SIGTERM, after its in-flight work, before the new one took it.
    assert!(
        first_new > 0 && seen[first_new - 1].is_empty() && held_by(&seen[0], &before),
        "the Lease went from the old leader, through released, to the new one: {seen:?}"
    );
    assert!(
        seen[first_new..].iter().all(|h| held_by(h, &after) || h.is_empty()),
        "after the new leader took the Lease, no old pod held it again: {seen:?}"
    );
    protections
        .patch(
            "prod",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"softDelete": {"state": "Enabled"}}})),
        )
        .await
        .unwrap();
    disable_soft_delete(&cp, &ns, &protections, &requests, "after-upgrade").await;

    // helm uninstall stops the operator and changes nothing in Azure: once its pods are gone, the guard,
    // the link and the vault are as they were, and no write reached the simulator.
    let state_before = ts.admin(Method::GET, "/_sim/state", None).await;
    let writes_before = writes(&ts).await;
    helm(&["uninstall", RELEASE, "--wait", "--timeout", "3m"]);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    eventually(POD_DEADLINE, "the operator's pods are gone", || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    // A pod leaves the API only once the kubelet has stopped its containers.
    assert_eq!(
        writes(&ts).await,
        writes_before,
        "no write reached Azure after the uninstall began"
    );
    assert_eq!(
        ts.admin(Method::GET, "/_sim/state", None).await,
        state_before,
        "Azure is untouched"
    );
    assert!(
        guards.get_opt("node-guard").await.unwrap().is_some(),
        "the custom resources stay"
    );
}

/// The release namespace with the Azure identities' client secrets and the simulator's CA.
async fn prepare_release_namespace(admin: &kube::Client, ts: &TestSim) {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": RELEASE_NAMESPACE}})).unwrap(),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    for (name, secret) in [
        ("security-identity", SECURITY_SECRET),
        ("backup-identity", BACKUP_SECRET),
    ] {
        let object = json!({"metadata": {"name": name}, "stringData": {"client-secret": secret}});
        secrets
            .create(&PostParams::default(), &serde_json::from_value(object).unwrap())
            .await
            .unwrap();
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    let ca = json!({"metadata": {"name": "simulator-ca"}, "data": {"ca.crt": ts.sim.ca_pem}});
    config_maps
        .create(&PostParams::default(), &serde_json::from_value(ca).unwrap())
        .await
        .unwrap();
}

/// The chart's values for this node: identities with client secrets, the simulator as the cloud, one
/// replica per side on the host's network, the API server at its loopback address.
fn values_file(cp: &ControlPlane, ts: &TestSim, test_node: &TestNode) -> (PathBuf, u16) {
    let api_port = cp.server.rsplit(':').next().unwrap();
    // Both sides' ports (the backup side's is this + 1) must be free on the host.
    let port = loop {
        let port = free_port().unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            break port;
        }
    };
    let values = json!({
        "mode": "split",
        "replicas": 1,
        "hostNetwork": true,
        "metrics": {"port": port},
        "azure": {"armUrl": ts.sim.arm_url, "authorityHost": ts.sim.authority_host},
        "security": {"azure": {"tenantId": CONTOSO, "clientId": SECURITY_APP, "credential": "secret",
                               "secret": {"name": "security-identity", "key": "client-secret"}}},
        "backup": {"azure": {"tenantId": CONTOSO, "clientId": BACKUP_APP, "principalId": BACKUP_OID,
                             "credential": "secret", "secret": {"name": "backup-identity", "key": "client-secret"}}},
        "controllers": {"resync": "30s"},
        "leaderElection": {"leaseDuration": "4s"},
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": api_port},
            {"name": "MUA_AZURE_CA_FILE", "value": "/etc/mua-simulator/ca.crt"},
        ],
        "extraVolumes": [{"name": "simulator-ca", "configMap": {"name": "simulator-ca"}}],
        "extraVolumeMounts": [{"name": "simulator-ca", "mountPath": "/etc/mua-simulator", "readOnly": true}],
    });
    let path = test_node.dir.join("values.yaml");
    std::fs::write(&path, values.to_string()).unwrap();
    (path, port)
}

/// The names of the operator's pods in the release namespace.
async fn operator_pods(admin: &kube::Client) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    pods.list(&ListParams::default().labels("app.kubernetes.io/name=mua-operator"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect()
}

/// Waits until the Deployment `name` runs one pod, of the image tagged `tag`, available (its probes answer).
async fn wait_rolled(admin: &kube::Client, name: &str, tag: &str, test_node: &TestNode) {
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), RELEASE_NAMESPACE);
    let rolled = tokio::time::timeout(POD_DEADLINE, async {
        loop {
            if let Ok(d) = deployments.get(name).await
                && let Some(status) = &d.status
                && status.observed_generation == d.metadata.generation
                && status.updated_replicas == Some(1)
                && status.replicas == Some(1)
                && status.available_replicas == Some(1)
                && d.spec.as_ref().is_some_and(|s| {
                    s.template.spec.as_ref().is_some_and(|p| {
                        p.containers[0]
                            .image
                            .as_deref()
                            .is_some_and(|i| i.ends_with(&format!(":{tag}")))
                    })
                })
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    assert!(
        rolled.is_ok(),
        "{name} not rolled to {tag} within {POD_DEADLINE:?}; kubelet log:\n{}",
        tail(&test_node.kubelet_log())
    );
}

/// The host PID of the operator container of `pod`, from containerd (the CRI labels name pod and container).
fn container_pid(test_node: &TestNode, pod: &str) -> u32 {
    let output = |args: &[&str]| {
        let out = test_node.ctr().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let filter = format!("labels.\"io.kubernetes.pod.name\"=={pod},labels.\"io.kubernetes.container.name\"==operator");
    let ids = output(&["containers", "ls", "-q", &filter]);
    let id = ids
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no operator container of {pod} in containerd"))
        .to_string();
    output(&["tasks", "ls"])
        .lines()
        .find(|l| l.starts_with(&id))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no running task for the container {id} of {pod}"))
}

/// The backup admin asks to disable soft delete on `prod`, approver-a approves, and the operator performs
/// it (the request Completes).
async fn disable_soft_delete(
    cp: &ControlPlane,
    ns: &cluster::TestNamespace,
    protections: &Api<VaultProtection>,
    requests: &Api<CriticalOperationRequest>,
    name: &str,
) {
    protections
        .patch(
            "prod",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"softDelete": {"state": "Disabled"}}})),
        )
        .await
        .unwrap();
    cluster::request(
        cp.client(User::BackupAdmin).await,
        &ns.name,
        name,
        "prod",
        "DisableSoftDelete",
    )
    .await;
    cluster::approve(
        cp.client(User::ApproverA).await,
        requests,
        &ns.name,
        name,
        User::ApproverA,
    )
    .await;
    eventually(POD_DEADLINE, &format!("the request {name} is Completed"), || async {
        let status = requests.get(name).await.ok()?.status?;
        (status.phase == Some(RequestPhase::Completed)).then_some(())
    })
    .await;
}

/// The calls that change Azure the simulator has served, by route (sign-ins and reads left out).
async fn writes(ts: &TestSim) -> Vec<(String, u64)> {
    let calls = ts.admin(Method::GET, "/_sim/calls", None).await;
    // Routes are "<method> <resource type or path>"; POSTs also sign in and read the directory.
    let changes = |route: &str| {
        ["PUT ", "PATCH ", "DELETE "].iter().any(|m| route.starts_with(m))
            || (route.starts_with("POST ") && !route.contains("/oauth2/") && !route.contains("/v1.0/"))
    };
    calls["byRoute"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(route, _)| changes(route))
        .map(|(route, n)| (route.clone(), n.as_u64().unwrap()))
        .collect()
}

/// Records every holder the Lease `name` names, in order, until aborted.
async fn record_holders(leases: Api<Lease>, name: &'static str, seen: Arc<Mutex<Vec<String>>>) {
    loop {
        let holder = leases
            .get_opt(name)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec?.holder_identity)
            .unwrap_or_default();
        {
            let mut seen = seen.lock().unwrap();
            if seen.last() != Some(&holder) {
                seen.push(holder);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a Lease holder identity (`<pod name>-<random>`, src/run/leader.rs) is one of `pods`.
fn held_by(holder: &str, pods: &[String]) -> bool {
    pods.iter().any(|p| {
        holder
            .strip_prefix(p.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    })
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
