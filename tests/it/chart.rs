//! The Helm chart (`charts/mua-operator/`) with real Helm, built from Go modules by `tests/helm/build.sh`:
//! `helm lint`, `helm template` with each values example, the values schema refusing wrong values, and
//! `helm install` into the real test control plane, whose admission policies then refuse the two-person
//! rule's attacks.
//!
//! The control plane's set-up (`tests/cluster`) already applied the chart's cluster-scoped files (the
//! admission policies and ClusterRoles, fixed names: one copy per cluster). The install adopts them with
//! `--take-ownership`, as one would adopt objects applied by hand before: afterwards they are the release's
//! objects, rendered by the chart, and the attacks run against them. Only one test installs, so the
//! objects never change hands twice.

use crate::cluster;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cluster::{ControlPlane, TestNamespace, User};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use mua_operator::crd::CriticalOperationRequest;
use serde::Deserialize;
use serde_json::{Value, json};

const TIME: &str = "2026-11-29T12:00:00Z";
const RBAC_TIMEOUT: Duration = Duration::from_secs(30);
const EXAMPLES: [&str; 3] = ["same-tenant.yaml", "cross-tenant-guard.yaml", "pim-backend.yaml"];

// ---------------------------------------------------------------------------------------------------------
// Helm

pub(crate) fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/mua-operator")
}

pub(crate) fn example(name: &str) -> PathBuf {
    chart().join("examples").join(name)
}

/// The helm binary: `$MUA_HELM_BIN`, or what `tests/helm/build.sh` builds (once per machine) and prints.
/// A failed build fails every test with the build's output: nothing is skipped.
fn helm_bin() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = HELM.get_or_init(|| {
        if let Ok(path) = std::env::var("MUA_HELM_BIN") {
            return Ok(PathBuf::from(path));
        }
        mua_operator::control_plane::built_by("tests/helm/build.sh")
            .map(|dir| dir.join("helm"))
            .map_err(|err| format!("{err:#}"))
    });
    match found {
        Ok(path) => path,
        Err(err) => panic!("Helm is not available: {err}"),
    }
}

/// Helm with its own config, cache and data directories, so that nothing of the user's Helm is read.
pub(crate) fn helm(args: &[&str]) -> Output {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    Command::new(helm_bin())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("running helm")
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub(crate) fn helm_ok(args: &[&str]) -> String {
    let output = helm(args);
    assert!(
        output.status.success(),
        "helm {} failed: {}",
        args.join(" "),
        text(&output)
    );
    String::from_utf8(output.stdout).expect("UTF-8 from helm")
}

/// `helm template` with a values file: the rendered objects.
fn template(values: &Path, extra: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec![
        "template",
        "mua-operator",
        chart.to_str().unwrap(),
        "--namespace",
        "mua-system",
        "-f",
        values.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let rendered = helm_ok(&args);
    yaml_serde::Deserializer::from_str(&rendered)
        .map(|doc| Value::deserialize(doc).expect("helm renders YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// The container's environment as (name, value) pairs (values from fields show as "").
fn env(deployment: &Value) -> Vec<(String, String)> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("an env list")
        .iter()
        .map(|e| {
            let value = e["value"].as_str().unwrap_or_default().to_string();
            (e["name"].as_str().unwrap().to_string(), value)
        })
        .collect()
}

fn env_value(deployment: &Value, name: &str) -> Option<String> {
    env(deployment).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// The (kind, name) of every object in one of the chart's plain-YAML files.
fn objects_in_file(name: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(chart().join("files").join(name)).unwrap();
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| {
            (
                v["kind"].as_str().unwrap().to_string(),
                v["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Restricted Pod Security, as the chart promises it for every operator pod.
fn assert_restricted(deployment: &Value) {
    let name = &deployment["metadata"]["name"];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}: pod runAsNonRoot");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{name}"
    );
    let container = &pod["containers"][0]["securityContext"];
    assert_eq!(container["runAsNonRoot"], true, "{name}");
    assert_eq!(container["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(container["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(container["capabilities"]["drop"], json!(["ALL"]), "{name}");
    assert_eq!(container["seccompProfile"]["type"], "RuntimeDefault", "{name}");
    let probes = &pod["containers"][0];
    assert_eq!(probes["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
    assert_eq!(probes["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
}

// ---------------------------------------------------------------------------------------------------------
// Lint and template

#[test]
fn the_chart_lints_cleanly_with_every_example() {
    let chart = chart();
    for name in EXAMPLES {
        let values = example(name);
        let out = helm_ok(&[
            "lint",
            "--strict",
            chart.to_str().unwrap(),
            "-f",
            values.to_str().unwrap(),
        ]);
        assert!(out.contains("0 chart(s) failed"), "helm lint with {name}: {out}");
    }
}

#[test]
fn same_tenant_renders_two_restricted_deployments_with_workload_identity() {
    let objects = template(&example("same-tenant.yaml"), &[]);
    let deployments = of_kind(&objects, "Deployment");
    assert_eq!(deployments.len(), 2, "one Deployment per side");
    for (side, tenant, client) in [
        (
            "security",
            "11111111-1111-1111-1111-111111111111",
            "22222222-2222-2222-2222-222222222222",
        ),
        (
            "backup",
            "11111111-1111-1111-1111-111111111111",
            "33333333-3333-3333-3333-333333333333",
        ),
    ] {
        let name = format!("mua-operator-{side}");
        let deployment = named(&objects, "Deployment", &name);
        assert_restricted(deployment);
        assert_eq!(deployment["spec"]["replicas"], 2);
        assert_eq!(env_value(deployment, "MUA_CONTROLLERS").as_deref(), Some(side));
        assert_eq!(env_value(deployment, "MUA_LEADER_ELECTION").as_deref(), Some("true"));
        let upper = side.to_uppercase();
        assert_eq!(
            env_value(deployment, &format!("MUA_{upper}_AZURE_TENANT_ID")).as_deref(),
            Some(tenant)
        );
        assert_eq!(
            env_value(deployment, &format!("MUA_{upper}_AZURE_CLIENT_ID")).as_deref(),
            Some(client)
        );
        let pod = &deployment["spec"]["template"];
        assert_eq!(pod["metadata"]["labels"]["azure.workload.identity/use"], "true");
        assert_eq!(pod["spec"]["serviceAccountName"], name.as_str());
        let sa = named(&objects, "ServiceAccount", &name);
        assert_eq!(
            sa["metadata"]["annotations"]["azure.workload.identity/client-id"],
            client
        );
        // Each side's ServiceAccount holds only its own side's role.
        let binding = named(&objects, "ClusterRoleBinding", &name);
        assert_eq!(binding["roleRef"]["name"], format!("mua-operator-{side}").as_str());
        assert_eq!(binding["subjects"][0]["name"], name.as_str());
        assert_eq!(binding["subjects"][0]["namespace"], "mua-system");
        named(&objects, "Service", &format!("{name}-metrics"));
        named(&objects, "PodDisruptionBudget", &name);
    }
    // The security side elevates the backup identity, which it cannot ask in another process.
    let security = named(&objects, "Deployment", "mua-operator-security");
    assert_eq!(
        env_value(security, "MUA_BACKUP_PRINCIPAL_ID").as_deref(),
        Some("44444444-4444-4444-4444-444444444444")
    );
    assert_eq!(of_kind(&objects, "ClusterRoleBinding").len(), 2);
    // Off by default.
    assert!(of_kind(&objects, "ServiceMonitor").is_empty());
    assert!(of_kind(&objects, "NetworkPolicy").is_empty());
}

#[test]
fn every_example_renders_the_admission_policies_and_roles_of_the_files() {
    for name in EXAMPLES {
        let objects = template(&example(name), &[]);
        for file in ["admission-policies.yaml", "rbac.yaml"] {
            for (kind, object) in objects_in_file(file) {
                let rendered = named(&objects, &kind, &object);
                assert!(
                    rendered["metadata"]["namespace"].is_null(),
                    "{kind} {object} is cluster-scoped"
                );
            }
        }
        for deployment in of_kind(&objects, "Deployment") {
            assert_restricted(deployment);
        }
    }
}

#[test]
fn the_chart_carries_the_crds() {
    let objects = template(&example("same-tenant.yaml"), &["--include-crds"]);
    let crds: Vec<_> = of_kind(&objects, "CustomResourceDefinition")
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(crds.len(), 5, "{crds:?}");
    assert!(
        crds.contains(&"criticaloperationrequests.mua.dev".to_string()),
        "{crds:?}"
    );
}

#[test]
fn cross_tenant_guard_signs_the_backup_side_in_to_the_guards_tenant() {
    let objects = template(&example("cross-tenant-guard.yaml"), &[]);
    let security = named(&objects, "Deployment", "mua-operator-security");
    let backup = named(&objects, "Deployment", "mua-operator-backup");
    let guards = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
    assert_eq!(
        env_value(security, "MUA_SECURITY_AZURE_TENANT_ID").as_deref(),
        Some(guards)
    );
    assert_eq!(
        env_value(backup, "MUA_BACKUP_AZURE_TENANT_ID").as_deref(),
        Some("bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb")
    );
    assert_eq!(
        env_value(backup, "MUA_AZURE_ADDITIONAL_TENANTS").as_deref(),
        Some(guards)
    );
    assert_eq!(env_value(security, "MUA_AZURE_ADDITIONAL_TENANTS"), None);
    // Neither side's identity is in the other's Deployment.
    assert!(env(security).iter().all(|(n, _)| !n.starts_with("MUA_BACKUP_AZURE_")));
    assert!(env(backup).iter().all(|(n, _)| !n.starts_with("MUA_SECURITY_AZURE_")));
}

#[test]
fn pim_backend_runs_the_sides_apart_and_only_the_backup_deployment_holds_the_backup_secret() {
    let objects = template(&example("pim-backend.yaml"), &[]);
    let security = named(&objects, "Deployment", "mua-operator-security");
    let backup = named(&objects, "Deployment", "mua-operator-backup");
    assert_restricted(security);
    assert_restricted(backup);
    assert_eq!(
        env_value(security, "MUA_BACKUP_PRINCIPAL_ID").as_deref(),
        Some("44444444-4444-4444-4444-444444444444"),
        "the security side knows the backup identity by its object ID"
    );
    assert_eq!(
        env_value(backup, "MUA_BACKUP_AZURE_CLIENT_SECRET_FILE").as_deref(),
        Some("/var/run/secrets/mua/backup/client-secret")
    );
    // The security side holds nothing of the backup credential: no variable, no volume.
    assert!(env(security).iter().all(|(n, _)| !n.starts_with("MUA_BACKUP_AZURE_")));
    let rendered = serde_json::to_string(security).unwrap();
    assert!(!rendered.contains("mua-backup-azure"), "{rendered}");
    // The secret is a file, never in the environment.
    let rendered = serde_json::to_string(backup).unwrap();
    assert!(!rendered.contains("secretKeyRef"), "{rendered}");
    let volumes = &backup["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "mua-backup-azure"),
        "{volumes}"
    );
}

#[test]
fn combined_mode_runs_both_sides_in_one_deployment_under_one_service_account() {
    let objects = template(&example("pim-backend.yaml"), &["--set", "mode=combined"]);
    let deployments = of_kind(&objects, "Deployment");
    assert_eq!(deployments.len(), 1, "mode: combined");
    assert_restricted(deployments[0]);
    assert_eq!(
        env_value(deployments[0], "MUA_CONTROLLERS").as_deref(),
        Some("security,backup")
    );
    let roles: Vec<_> = of_kind(&objects, "ClusterRoleBinding")
        .iter()
        .map(|b| b["roleRef"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["mua-operator-security", "mua-operator-backup"]);
}

#[test]
fn the_optional_objects_render_when_asked_for_and_shared_objects_can_be_left_out() {
    let objects = template(
        &example("same-tenant.yaml"),
        &[
            "--set",
            "metrics.serviceMonitor.enabled=true,networkPolicy.enabled=true,networkPolicy.restrictEgress=true",
            "--set",
            "replicas=1,admissionPolicies.install=false,rbac.installRoles=false",
        ],
    );
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 2);
    let policies = of_kind(&objects, "NetworkPolicy");
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0]["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert!(
        of_kind(&objects, "PodDisruptionBudget").is_empty(),
        "no PDB for one replica"
    );
    assert!(of_kind(&objects, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&objects, "ClusterRole").is_empty());
    assert_eq!(
        of_kind(&objects, "ClusterRoleBinding").len(),
        2,
        "the operator is still bound"
    );
}

#[test]
fn image_digest_extra_env_volumes_and_host_network_render_into_each_deployment() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("extra.yaml");
    let extra = json!({
        "image": {"digest": digest},
        "hostNetwork": true,
        "metrics": {"port": 9400, "podMonitor": {"enabled": true, "bearerTokenSecret": {"name": "prometheus-token"}}},
        "extraEnv": [{"name": "SSL_CERT_FILE", "value": "/etc/proxy/ca.crt"}],
        "extraVolumes": [{"name": "proxy-ca", "configMap": {"name": "proxy-ca"}}],
        "extraVolumeMounts": [{"name": "proxy-ca", "mountPath": "/etc/proxy", "readOnly": true}],
    });
    std::fs::write(&values, extra.to_string()).unwrap();
    let objects = template(&example("same-tenant.yaml"), &["-f", values.to_str().unwrap()]);
    let monitors = of_kind(&objects, "PodMonitor");
    assert_eq!(monitors.len(), 2);
    // Secured metrics (the default): HTTPS with the scraper's token.
    let endpoint = &monitors[0]["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(
        endpoint["bearerTokenSecret"],
        json!({"name": "prometheus-token", "key": "token"})
    );
    let mut ports = Vec::new();
    for deployment in of_kind(&objects, "Deployment") {
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(
            container["image"],
            format!("ghcr.io/mua-dev/mua-operator@{digest}"),
            "pinned by digest"
        );
        assert_eq!(
            env_value(deployment, "SSL_CERT_FILE").as_deref(),
            Some("/etc/proxy/ca.crt")
        );
        assert!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == "proxy-ca")
        );
        assert!(
            container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == "/etc/proxy")
        );
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
        // A new pod cannot bind the old one's port on the node: one at a time.
        assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 0);
        // Two replicas of a side never share a node (its port).
        let anti = &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
        ports.push(container["ports"][0]["containerPort"].as_u64().unwrap());
        assert_restricted(deployment);
    }
    ports.sort_unstable();
    assert_eq!(
        ports,
        [9400, 9401],
        "the two sides' pods on one node's network need ports of their own"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Wrong values

/// `helm template` with `values` (YAML) on top of the same-tenant example: its failure message.
fn refused(values: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.yaml");
    std::fs::write(&wrong, values).unwrap();
    let chart = chart();
    let base = example("same-tenant.yaml");
    let output = helm(&[
        "template",
        "mua-operator",
        chart.to_str().unwrap(),
        "-f",
        base.to_str().unwrap(),
        "-f",
        wrong.to_str().unwrap(),
    ]);
    assert!(!output.status.success(), "helm accepted {values}: {}", text(&output));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_mistyped_value_fails_with_the_schemas_message() {
    let message = refused("replicas: two\n");
    assert!(
        message.contains("values don't meet the specifications of the schema"),
        "{message}"
    );
    assert!(
        message.contains("/replicas") && message.contains("want integer"),
        "{message}"
    );
}

#[test]
fn scope_bindings_render_one_per_namespace_with_the_teams_backup_principal() {
    let binding = r#"scopeBindings=[{"namespace":"team-a","scopes":["/subscriptions/5e13b949-1218-4d18-8b99-7e12155ec4f7/resourceGroups/team-a"],"guardScopes":["/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/team-a-security"],"backupPrincipalIds":["6f1e2f0a-3b0c-4a52-9d0e-0c3f4e5a6b01"],"backupClientIds":["0d9a6a8e-1c2b-4f35-8e7d-5a1b2c3d4e01"]},{"namespace":"team-b"}]"#;
    let objects = template(&example("same-tenant.yaml"), &["--set-json", binding]);
    let a = named(&objects, "AzureScopeBinding", "team-a");
    assert_eq!(
        a["spec"]["backupPrincipalIds"],
        serde_json::json!(["6f1e2f0a-3b0c-4a52-9d0e-0c3f4e5a6b01"])
    );
    assert_eq!(a["spec"]["guardScopes"].as_array().unwrap().len(), 1);
    assert_eq!(
        a["spec"]["backupClientIds"],
        serde_json::json!(["0d9a6a8e-1c2b-4f35-8e7d-5a1b2c3d4e01"])
    );
    let b = named(&objects, "AzureScopeBinding", "team-b");
    assert!(b["spec"].get("backupPrincipalIds").is_none(), "{b}");
    assert_eq!(
        b["spec"]["scopes"],
        serde_json::json!([]),
        "a namespace bound to nothing"
    );
    let message = refused("scopeBindings:\n  - namespace: team-a\n    backupPrincipalIds: [team-a-backup]\n");
    assert!(message.contains("backupPrincipalIds"), "{message}");
}

#[test]
fn a_misspelt_or_unknown_value_fails() {
    let message = refused("replica: 3\n");
    assert!(
        message.contains("additional properties 'replica' not allowed"),
        "{message}"
    );
    let message = refused("mode: both\n");
    assert!(message.contains("/mode") && message.contains("split"), "{message}");
    let message = refused("security:\n  azure:\n    tenantId: contoso.onmicrosoft.com\n");
    assert!(message.contains("/security/azure/tenantId"), "{message}");
}

#[test]
fn values_only_some_modes_need_fail_with_what_to_set() {
    let message = refused("backup:\n  azure:\n    principalId: \"\"\n");
    assert!(
        message.contains("backup.azure.principalId is required in mode: split"),
        "{message}"
    );
    let message = refused("security:\n  azure:\n    credential: secret\n");
    assert!(message.contains("security.azure.secret.name is required"), "{message}");
    let message = refused("leaderElection:\n  enabled: false\n");
    assert!(
        message.contains("replicas > 1 needs leaderElection.enabled"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Installed into the real API server

fn request(name: &str) -> CriticalOperationRequest {
    serde_json::from_value(json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
        "metadata": {"name": name},
        "spec": {
            "vaultProtection": "prod-vault", "operation": "DisableSoftDelete", "duration": "30m",
            "justification": "Decommission prod-vault after the migration (CHG0012345).",
        },
    }))
    .unwrap()
}

/// What `kubectl mua approve` does: server-side apply of the user's own entry, for the target the
/// operator recorded, on the status subresource. No operator runs here: the admin records the target.
async fn approve(ns: &TestNamespace, user: User, name: &str) -> Result<CriticalOperationRequest, kube::Error> {
    let target = json!({"vaultProtectionUid": "chart-test", "vaultId": "prod-vault", "guardId": "guard"});
    ns.admin_api::<CriticalOperationRequest>()
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"target": target}})),
        )
        .await
        .expect("the operator (admin) records the target");
    let client = ControlPlane::shared().client(user).await;
    let body = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
                      "metadata": {"name": name},
                      "status": {"approvals": [{"approver": user.name(), "groups": [user.group()],
                                                "decision": "Approve", "time": TIME, "target": target}]}});
    ns.api::<CriticalOperationRequest>(client)
        .patch_status(
            name,
            &PatchParams::apply(&format!("kubectl-mua/{}", user.name())),
            &Patch::Apply(&body),
        )
        .await
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, kube::Error>, code: u16, expected: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, code, "expected {code}: {}", status.message);
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

/// Waits until RBAC gives `user` the verb `operate` on requests' status in `namespace`: the operator's
/// ServiceAccount is the operator for the admission policies.
async fn wait_until_operator(admin: &kube::Client, user: &str, namespace: &str) {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": user, "resourceAttributes": {"group": "mua.dev", "resource": "criticaloperationrequests",
                 "subresource": "status", "verb": "operate", "namespace": namespace}},
    }))
    .unwrap();
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    let deadline = Instant::now() + RBAC_TIMEOUT;
    loop {
        let answer = api.create(&PostParams::default(), &review).await.unwrap();
        if answer.status.is_some_and(|s| s.allowed) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} is not the operator within {RBAC_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every example's objects, the optional ones included, as the real API server validates them (a
/// server-side dry run: nothing is stored). The install below stores only one example.
#[tokio::test]
async fn every_example_is_valid_for_the_api_server() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("chart-dry-run").await;
    let chart = chart();
    for name in EXAMPLES {
        let values = example(name);
        let rendered = helm_ok(&[
            "template",
            &ns.name,
            chart.to_str().unwrap(),
            "--namespace",
            &ns.name,
            "-f",
            values.to_str().unwrap(),
            "--set",
            "networkPolicy.enabled=true,networkPolicy.restrictEgress=true",
        ]);
        let mut kubectl = cp.kubectl(User::Admin);
        kubectl
            .args(["apply", "--dry-run=server", "--server-side", "--force-conflicts"])
            .args(["--field-manager", "chart-dry-run", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = kubectl.spawn().expect("running kubectl");
        child.stdin.take().unwrap().write_all(rendered.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{name} is not valid for the API server: {}",
            text(&output)
        );
        let applied = String::from_utf8_lossy(&output.stdout);
        assert!(applied.contains("deployment.apps/"), "{name}: {applied}");
    }
}

#[tokio::test]
async fn installed_chart_enforces_the_two_person_rule() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("chart").await;
    // The release name carries the namespace: the ClusterRoleBindings it creates are unique to it.
    let release = ns.name.clone();
    let chart = chart();
    let values = example("same-tenant.yaml");
    let kubeconfig = cp.kubeconfig_path(User::Admin);
    let out = helm_ok(&[
        "install",
        &release,
        chart.to_str().unwrap(),
        "--namespace",
        &ns.name,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "-f",
        values.to_str().unwrap(),
        "--take-ownership",
    ]);
    assert!(out.contains("STATUS: deployed"), "{out}");

    // The Deployments are there (no controller-manager runs here, so no pods), and the chart now owns the
    // admission policies the control plane's set-up had applied.
    let deployments: Api<Deployment> = ns.admin_api();
    for side in ["security", "backup"] {
        deployments
            .get(&format!("{release}-mua-operator-{side}"))
            .await
            .unwrap();
    }
    let policies = Api::<DynamicObject>::all_with(
        ns.admin.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy"),
            "validatingadmissionpolicies",
        ),
    );
    for (kind, name) in objects_in_file("admission-policies.yaml") {
        if kind != "ValidatingAdmissionPolicy" {
            continue;
        }
        let policy = policies.get(&name).await.unwrap();
        let annotations = policy.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get("meta.helm.sh/release-name"),
            Some(&release),
            "{name} belongs to the release"
        );
    }

    // The chart's bindings make its ServiceAccounts the operator, each for its side.
    for side in ["security", "backup"] {
        let sa = format!("system:serviceaccount:{}:{release}-mua-operator-{side}", ns.name);
        wait_until_operator(&ns.admin, &sa, &ns.name).await;
    }

    // Self-approval: approver-a asks and approves their own request.
    let requests: Api<CriticalOperationRequest> = ns.api(cp.client(User::ApproverA).await);
    let created = requests.create(&PostParams::default(), &request("self")).await.unwrap();
    assert_eq!(
        created.spec.requester.as_deref(),
        Some("approver-a"),
        "the mutating policy filled it in"
    );
    assert_refused(
        approve(&ns, User::ApproverA, "self").await,
        403,
        "approver-a asked for this request and cannot approve or deny it: another person must (two-person rule)",
    );

    // An approval by a user without the `approve` verb: backup-admin may write status (to revoke) only.
    requests
        .create(&PostParams::default(), &request("noverb"))
        .await
        .unwrap();
    assert_refused(
        approve(&ns, User::BackupAdmin, "noverb").await,
        403,
        &format!(
            "backup-admin may not approve criticaloperationrequests/noverb in namespace {}: RBAC grants no verb \"approve\"",
            ns.name
        ),
    );

    // And the rule lets the right person through: approver-b approves approver-a's request.
    let approved = approve(&ns, User::ApproverB, "noverb").await.unwrap();
    assert_eq!(approved.status.unwrap().approvals[0].approver, "approver-b");
    let stored = ns.admin_api::<CriticalOperationRequest>().get("self").await.unwrap();
    assert!(
        stored.status.is_none_or(|s| s.approvals.is_empty()),
        "the self-approval left no trace"
    );
}

/// `kubectl auth can-i` as `user` (impersonated by the admin): whether it says yes.
fn can_i(cp: &ControlPlane, user: &str, args: &[&str]) -> bool {
    let out = cp
        .kubectl(User::Admin)
        .args(["auth", "can-i"])
        .args(args)
        .args(["--as", user])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {args:?}: {}",
        text(&out)
    );
    answer == "yes"
}

#[tokio::test]
async fn the_operator_may_write_only_its_own_leases_in_the_release_namespace() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("chart-leases").await;
    let release = ns.name.clone();
    let kubeconfig = cp.kubeconfig_path(User::Admin);
    // A second release in the cluster: the cluster-scoped policies, roles and bindings are another's.
    helm_ok(&[
        "install",
        &release,
        chart().to_str().unwrap(),
        "--namespace",
        &ns.name,
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "-f",
        example("same-tenant.yaml").to_str().unwrap(),
        "--set",
        "admissionPolicies.install=false,rbac.installRoles=false",
        "--set-json",
        "scopeBindings=[]",
    ]);
    let security = format!("system:serviceaccount:{}:{release}-mua-operator-security", ns.name);
    let deadline = Instant::now() + RBAC_TIMEOUT;
    while !can_i(
        cp,
        &security,
        &["patch", "leases/mua-operator-security", "-n", &ns.name],
    ) {
        assert!(
            Instant::now() < deadline,
            "the security side may not renew its own Lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        can_i(cp, &security, &["create", "leases", "-n", &ns.name]),
        "it creates its Lease"
    );
    for (what, args) in [
        ("kube-system's Leases", vec!["patch", "leases", "-n", "kube-system"]),
        (
            "a Lease of kube-system by name",
            vec!["patch", "leases/kube-scheduler", "-n", "kube-system"],
        ),
        ("another namespace's Leases", vec!["create", "leases", "-n", "default"]),
        (
            "the backup side's Lease",
            vec!["patch", "leases/mua-operator-backup", "-n", &ns.name],
        ),
        (
            "any other Lease of the release namespace",
            vec!["patch", "leases/other", "-n", &ns.name],
        ),
        ("Leases cluster-wide", vec!["list", "leases", "--all-namespaces"]),
    ] {
        assert!(!can_i(cp, &security, &args), "the security side may write {what}");
    }
}

/// The CRD chart (`charts/mua-operator-crds/`): its templates are the CRDs, so `helm upgrade` applies a
/// changed one (Helm never upgrades a chart's `crds/`), and `helm uninstall` keeps them.
#[tokio::test]
async fn a_helm_upgrade_of_the_crd_chart_applies_a_changed_crd_and_uninstall_keeps_them() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let cp = ControlPlane::bare(mua_operator::control_plane::StartOptions::default());
    let kubeconfig = cp.kubeconfig_path(User::Admin);
    let new = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/mua-operator-crds");
    // The previous version: the same chart, its VaultProtection CRD without short names.
    let old_dir = tempfile::tempdir().unwrap();
    let old = old_dir.path().join("mua-operator-crds");
    let copied = Command::new("cp").arg("-r").arg(&new).arg(&old).status().unwrap();
    assert!(copied.success());
    let file = old.join("files/vaultprotections.yaml");
    let mut crd: Value = yaml_serde::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let short_names = crd["spec"]["names"]["shortNames"].take();
    assert!(short_names.as_array().is_some_and(|n| !n.is_empty()), "{short_names}");
    std::fs::write(&file, yaml_serde::to_string(&crd).unwrap()).unwrap();

    let helm = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--namespace", "default", "--kubeconfig", kubeconfig.to_str().unwrap()]);
        helm_ok(&all)
    };
    helm(&["install", "mua-crds", old.to_str().unwrap()]);
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client(User::Admin).await);
    let installed = crds.get("vaultprotections.mua.dev").await.unwrap();
    assert_eq!(installed.spec.names.short_names, None, "the previous version has none");

    helm(&["upgrade", "mua-crds", new.to_str().unwrap()]);
    let upgraded = crds.get("vaultprotections.mua.dev").await.unwrap();
    assert_eq!(
        serde_json::to_value(upgraded.spec.names.short_names).unwrap(),
        short_names,
        "the upgrade applied the new version's CRD"
    );

    helm(&["uninstall", "mua-crds", "--wait"]);
    for name in ["vaultprotections.mua.dev", "criticaloperationrequests.mua.dev"] {
        assert!(
            crds.get_opt(name).await.unwrap().is_some(),
            "{name} is kept on uninstall"
        );
    }
}
