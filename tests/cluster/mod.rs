//! The real test control plane: etcd and kube-apiserver built from Go modules by `tests/cluster/build.sh`,
//! started once per test process on free loopback ports with a tmpfs data directory, and stopped when the
//! process exits (also after a failed test). Each test gets a fresh namespace and per-user clients. A test
//! that changes what every other test relies on (e.g. removes an admission policy) starts one of its own
//! with [`ControlPlane::own`], stopped when the test ends.
//!
//! Users (static tokens): `admin` (system:masters), `backup-admin` (group `backup-admins`),
//! `security-admin` (group `security-admins`), `approver-a` and `approver-b` (group `mua-approvers`). Before
//! the first test runs, the CRDs from `crds/` are installed and Established, and the chart's RBAC
//! (`charts/mua-operator/files/rbac.yaml`, bound to those groups) and admission policies
//! (`charts/mua-operator/files/admission-policies.yaml`) are applied and in force.

#![allow(dead_code)] // the integration tests and each bench use a different part of the fixture

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams, PostParams};
use mua_operator::control_plane::{self, LocalControlPlane, LocalUser, StartOptions};
use mua_operator::crd::{AzureScopeBinding, CriticalOperationRequest};

/// A person or identity with its own credentials on the test control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Admin,
    BackupAdmin,
    SecurityAdmin,
    ApproverA,
    ApproverB,
}

impl User {
    pub const ALL: [User; 5] = [
        User::Admin,
        User::BackupAdmin,
        User::SecurityAdmin,
        User::ApproverA,
        User::ApproverB,
    ];

    pub fn name(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::BackupAdmin => "backup-admin",
            User::SecurityAdmin => "security-admin",
            User::ApproverA => "approver-a",
            User::ApproverB => "approver-b",
        }
    }

    pub fn group(self) -> &'static str {
        self.groups()[0]
    }

    pub fn groups(self) -> &'static [&'static str] {
        match self {
            User::Admin => &["system:masters"],
            User::BackupAdmin => &["backup-admins"],
            User::SecurityAdmin => &["security-admins"],
            User::ApproverA | User::ApproverB => &["mua-approvers"],
        }
    }
}

/// The chart's ClusterRoles bound to the test users' groups: (ClusterRole, group).
pub const ROLE_BINDINGS: [(&str, &str); 4] = [
    ("mua-backup-admin", "backup-admins"),
    ("mua-security-admin", "security-admins"),
    ("mua-approver", "mua-approvers"),
    // Approvers may ask for elevation too (never approve their own: the admission policies see to it).
    ("mua-requester", "mua-approvers"),
];

/// The namespace where the start-up probes check that the admission policies are in force.
pub const PROBE_NAMESPACE: &str = "mua-admission-probe";

/// A running control plane: the one shared by every test of the process, or one of a test's own.
#[derive(Debug)]
pub struct ControlPlane {
    pub work_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub server: String,
    tokens: Vec<(User, String)>,
}

/// The processes of every running control plane, stopped when the process exits (or, for a test's own,
/// when it is dropped).
static RUNNING: Mutex<Vec<LocalControlPlane>> = Mutex::new(Vec::new());

extern "C" fn stop_at_exit() {
    if let Ok(mut running) = RUNNING.lock() {
        running.clear();
    }
}

/// A control plane of one test's own (see [`ControlPlane::own`]): stopped when dropped.
#[derive(Debug)]
pub struct OwnControlPlane(ControlPlane);

impl Deref for OwnControlPlane {
    type Target = ControlPlane;

    fn deref(&self) -> &ControlPlane {
        &self.0
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        let stopped: Vec<LocalControlPlane> = {
            let mut running = RUNNING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (stopped, kept) = running.drain(..).partition(|local| local.server == self.0.server);
            *running = kept;
            stopped
        };
        drop(stopped);
    }
}

impl ControlPlane {
    /// The control plane of this test process, shared by all its tests, started on first use.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        match SHARED.get_or_init(|| start_on_its_own_thread(StartOptions::default(), Setup::AsShared)) {
            Ok(cp) => cp,
            Err(err) => panic!("the test control plane did not start: {err}"),
        }
    }

    /// A control plane of the calling test's own, set up as the shared one (CRDs, RBAC, admission policies),
    /// for a test that changes what every other test relies on (e.g. removes an admission policy's
    /// binding). Stopped when dropped.
    pub fn own() -> OwnControlPlane {
        Self::own_with(StartOptions::default())
    }

    /// [`ControlPlane::own`] with `options` (e.g. an emulated older Kubernetes version).
    pub fn own_with(options: StartOptions) -> OwnControlPlane {
        match start_on_its_own_thread(options, Setup::AsShared) {
            Ok(cp) => OwnControlPlane(cp),
            Err(err) => panic!("the test's own control plane did not start: {err}"),
        }
    }

    /// A control plane of the calling test's own with nothing of the operator's installed (no CRDs, RBAC
    /// or admission policies): what a user's cluster is before `helm install`. Stopped when dropped.
    pub fn bare(options: StartOptions) -> OwnControlPlane {
        match start_on_its_own_thread(options, Setup::Bare) {
            Ok(cp) => OwnControlPlane(cp),
            Err(err) => panic!("the test's own control plane did not start: {err}"),
        }
    }

    pub fn token(&self, user: User) -> &str {
        &self
            .tokens
            .iter()
            .find(|(u, _)| *u == user)
            .expect("every user has a token")
            .1
    }

    pub fn kubeconfig_path(&self, user: User) -> PathBuf {
        self.work_dir.join(format!("{}.kubeconfig", user.name()))
    }

    /// A client acting as `user`. Create it in the test's own runtime: a client is bound to the runtime it
    /// was created in.
    pub async fn client(&self, user: User) -> Client {
        client_from_kubeconfig(&self.kubeconfig_path(user)).await
    }

    /// A client that authenticates with a bearer token, e.g. a ServiceAccount token from TokenRequest.
    pub async fn client_with_token(&self, name: &str, token: &str) -> Client {
        let path = self.local(|local| local.kubeconfig_for_token(name, token).expect("writing a kubeconfig"));
        client_from_kubeconfig(&path).await
    }

    /// The CA of the API server's certificate and the key that signs ServiceAccount tokens: what a
    /// controller-manager needs.
    pub fn pki_paths(&self) -> (PathBuf, PathBuf) {
        self.local(|local| (local.ca_path(), local.service_account_key_path()))
    }

    /// `f` of the running local control plane behind this one.
    fn local<T>(&self, f: impl FnOnce(&LocalControlPlane) -> T) -> T {
        let running = RUNNING.lock().unwrap();
        f(running
            .iter()
            .find(|local| local.server == self.server)
            .expect("the control plane runs"))
    }

    /// The API server's audit log: every request made by a ServiceAccount (JSON lines, Metadata level).
    pub fn audit_log(&self) -> PathBuf {
        self.work_dir.join("audit.log")
    }

    /// The kubeconfig `service_account` wrote for the ServiceAccount `name` of `ns`.
    pub fn service_account_kubeconfig(&self, ns: &TestNamespace, name: &str) -> PathBuf {
        self.work_dir.join(format!("{}-{name}.kubeconfig", ns.name))
    }

    /// The bearer token `service_account` made for the ServiceAccount `name` of `ns`.
    pub async fn service_account_token(&self, ns: &TestNamespace, name: &str) -> String {
        let text = std::fs::read_to_string(self.service_account_kubeconfig(ns, name)).unwrap();
        let config: serde_json::Value = serde_json::from_str(&text).unwrap();
        config["users"][0]["user"]["token"].as_str().unwrap().to_string()
    }

    /// A ServiceAccount `name` in `ns`, bound there to the ClusterRole `role`: its client and user name.
    pub async fn service_account(&self, ns: &TestNamespace, name: &str, role: &str) -> (Client, String) {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;
        let sa: ServiceAccount = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        let accounts: Api<ServiceAccount> = Api::namespaced(ns.admin.clone(), &ns.name);
        accounts.create(&PostParams::default(), &sa).await.unwrap();
        let binding: RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{name}-{role}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns.name}],
        }))
        .unwrap();
        Api::<RoleBinding>::namespaced(ns.admin.clone(), &ns.name)
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap()
            .status
            .and_then(|s| s.token)
            .expect("a token");
        let client = self.client_with_token(&format!("{}-{name}", ns.name), &token).await;
        (client, format!("system:serviceaccount:{}:{name}", ns.name))
    }

    /// `kubectl` of the same version as the API server, acting as `user`.
    pub fn kubectl(&self, user: User) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig").arg(self.kubeconfig_path(user));
        cmd
    }

    /// A fresh namespace for one test (the control plane has no namespace controller, so namespaces are
    /// never deleted; the whole control plane goes away with the test process).
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let admin = self.client(User::Admin).await;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|err| panic!("creating namespace {name}: {err}"));
        bind_to_the_seed(&admin, &name).await;
        TestNamespace { name, admin }
    }
}

/// The AzureScopeBinding of a test namespace: its objects may name the vaults of the simulator seed's
/// backup subscription, and it owns the guards of its security subscriptions (examples/sim-seed.yaml).
/// A test about scopes narrows or deletes it.
pub async fn bind_to_the_seed(admin: &Client, namespace: &str) {
    bind(
        admin,
        namespace,
        &["/subscriptions/5e13b949-1218-4d18-8b99-7e12155ec4f7"],
        &[
            "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c",
            "/subscriptions/c999d45b-944f-418c-a0d8-c3fcfd1802c8",
        ],
    )
    .await
}

/// Binds `namespace` to `scopes` and `guard_scopes` (creates or replaces its AzureScopeBinding).
pub async fn bind(admin: &Client, namespace: &str, scopes: &[&str], guard_scopes: &[&str]) {
    bind_with(
        admin,
        namespace,
        serde_json::json!({"scopes": scopes, "guardScopes": guard_scopes}),
    )
    .await
}

/// Creates or replaces `namespace`'s AzureScopeBinding with `spec`.
pub async fn bind_with(admin: &Client, namespace: &str, spec: serde_json::Value) {
    let binding: AzureScopeBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "AzureScopeBinding", "metadata": {"name": namespace},
        "spec": spec,
    }))
    .unwrap();
    Api::<AzureScopeBinding>::all(admin.clone())
        .patch(
            namespace,
            &PatchParams::apply("mua-tests").force(),
            &Patch::Apply(&binding),
        )
        .await
        .unwrap_or_else(|err| panic!("binding namespace {namespace} to its Azure scopes: {err}"));
}

/// A namespace owned by one test.
pub struct TestNamespace {
    pub name: String,
    pub admin: Client,
}

impl TestNamespace {
    pub fn api<K>(&self, client: Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(client, &self.name)
    }

    pub fn admin_api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        self.api(self.admin.clone())
    }
}

pub async fn client_from_kubeconfig(path: &Path) -> Client {
    control_plane::client_from_kubeconfig(path)
        .await
        .unwrap_or_else(|err| panic!("{err:#}"))
}

/// Starts a control plane from a thread that lives as long as the process: the children get
/// PR_SET_PDEATHSIG, which fires when the thread that spawned them ends, so they die with the test process
/// even when it is killed, and never with the test that happened to start them.
fn start_on_its_own_thread(options: StartOptions, setup: Setup) -> Result<ControlPlane, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("control-plane".into())
        .spawn(move || {
            let _ = tx.send(start(&options, setup).map_err(|err| format!("{err:#}")));
            loop {
                std::thread::park();
            }
        })
        .expect("spawning the control-plane thread");
    rx.recv()
        .unwrap_or_else(|_| Err("the control-plane thread died while starting".into()))
}

/// What a started control plane gets before the tests use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// The CRDs, the chart's RBAC and admission policies, in force.
    AsShared,
    /// Nothing.
    Bare,
}

fn start(options: &StartOptions, setup: Setup) -> anyhow::Result<ControlPlane> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The test harness exits the process when the tests are done (or failed): stop the servers then.
    static AT_EXIT: OnceLock<bool> = OnceLock::new();
    // SAFETY: registers a plain function with no captured state, once per process.
    if !*AT_EXIT.get_or_init(|| unsafe { libc::atexit(stop_at_exit) } == 0) {
        anyhow::bail!("registering the control plane's exit handler failed");
    }
    let users: Vec<LocalUser> = User::ALL
        .iter()
        .map(|u| LocalUser {
            name: u.name(),
            groups: u.groups(),
        })
        .collect();
    let local = LocalControlPlane::start_with(&control_plane::binaries()?, &users, options)?;
    let cp = ControlPlane {
        work_dir: local.work_dir.clone(),
        bin_dir: local.bin_dir.clone(),
        server: local.server.clone(),
        tokens: User::ALL
            .iter()
            .map(|u| (*u, local.token(u.name()).expect("a token per user").to_string()))
            .collect(),
    };
    RUNNING.lock().unwrap().push(local);
    if setup == Setup::Bare {
        return Ok(cp);
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let admin = cp.client(User::Admin).await;
        install_crds(&admin).await?;
        install_rbac_and_admission(&admin).await.map_err(anyhow::Error::msg)?;
        let backup = cp.client(User::BackupAdmin).await;
        let approver = cp.client(User::ApproverA).await;
        let security = cp.client(User::SecurityAdmin).await;
        admission::wait_until_in_force(&admin, &backup, &approver, &security)
            .await
            .map_err(anyhow::Error::msg)
    })?;
    Ok(cp)
}

/// Installs the checked-in `crds/*.yaml` (what users install).
async fn install_crds(admin: &Client) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut crds = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let crd: CustomResourceDefinition =
            yaml_serde::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        crds.push(crd);
    }
    control_plane::install_crds(admin, &crds).await
}

/// The chart's plain-YAML manifests, as the tests apply them.
pub fn chart_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("charts/mua-operator/files")
        .join(name)
}

/// Applies the chart's RBAC and admission policies (server-side apply, as `helm` or Argo CD would) and binds
/// the people's ClusterRoles to the test users' groups.
async fn install_rbac_and_admission(admin: &Client) -> Result<(), String> {
    apply_manifests(admin, &chart_file("rbac.yaml")).await?;
    bind_people(admin).await?;
    apply_manifests(admin, &chart_file("admission-policies.yaml")).await
}

/// Binds the people's ClusterRoles (the chart's) to the test users' groups.
pub async fn bind_people(admin: &Client) -> Result<(), String> {
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    for (role, group) in ROLE_BINDINGS {
        let name = format!("{role}-{group}");
        let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        }))
        .expect("a well-formed ClusterRoleBinding");
        bindings
            .patch(&name, &PatchParams::apply("mua-tests").force(), &Patch::Apply(&binding))
            .await
            .map_err(|err| format!("binding {role} to {group}: {err}"))?;
    }
    Ok(())
}

/// Waits until the admission policies (installed by the chart, say) answer as the tests expect.
pub async fn wait_until_admission_in_force(cp: &ControlPlane) {
    let admin = cp.client(User::Admin).await;
    let backup = cp.client(User::BackupAdmin).await;
    let approver = cp.client(User::ApproverA).await;
    let security = cp.client(User::SecurityAdmin).await;
    admission::wait_until_in_force(&admin, &backup, &approver, &security)
        .await
        .unwrap_or_else(|err| panic!("the admission policies are not in force: {err}"));
}

/// Server-side applies every document of a multi-document YAML file of cluster-scoped objects.
pub async fn apply_manifests(admin: &Client, path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    control_plane::apply_manifests(admin, &text, &path.display().to_string())
        .await
        .map_err(|err| format!("{err:#}"))
}

/// Start-up probes: admission policies (and the RBAC they consult) load asynchronously after they are
/// created, so each is exercised in a scratch namespace until it answers as it will in the tests.
mod admission {
    use super::*;
    use serde_json::{Value, json};

    const IN_FORCE_TIMEOUT: Duration = Duration::from_secs(60);

    fn request(name: &str, extra: Value) -> Value {
        let mut spec = json!({
            "vaultProtection": "probe", "operation": "DisableSoftDelete", "duration": "30m",
            "justification": "probing the admission policies",
        });
        for (key, value) in extra.as_object().expect("an object").clone() {
            spec[key] = value;
        }
        json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
               "metadata": {"name": name}, "spec": spec})
    }

    fn api(client: &Client) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("mua.dev", "v1alpha1", "CriticalOperationRequest"),
            "criticaloperationrequests",
        );
        Api::namespaced_with(client.clone(), PROBE_NAMESPACE, &resource)
    }

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).expect("a well-formed object")
    }

    fn dry_run() -> PostParams {
        PostParams {
            dry_run: true,
            ..Default::default()
        }
    }

    /// `Ok` when the API server refused with `code` and a message containing `expected`.
    fn refused<T>(result: Result<T, kube::Error>, code: u16, expected: &str) -> Result<(), String> {
        match result {
            Err(kube::Error::Api(status)) if status.code == code && status.message.contains(expected) => Ok(()),
            Err(err) => Err(format!("refused otherwise: {err}")),
            Ok(_) => Err("accepted".into()),
        }
    }

    async fn until<F>(what: &str, mut probe: F) -> Result<(), String>
    where
        F: AsyncFnMut() -> Result<(), String>,
    {
        let deadline = Instant::now() + IN_FORCE_TIMEOUT;
        loop {
            let outcome = probe().await;
            match outcome {
                Ok(()) => return Ok(()),
                Err(last) if Instant::now() > deadline => {
                    return Err(format!(
                        "{what}: not in force within {IN_FORCE_TIMEOUT:?}; last: {last}"
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `Ok` when RBAC allows the client's user `verb` on `resource` in the probe namespace.
    async fn allowed(client: &Client, resource: &str, verb: &str) -> Result<(), String> {
        let review: SelfSubjectAccessReview = serde_json::from_value(json!({
            "spec": {"resourceAttributes": {"group": "mua.dev", "resource": resource, "verb": verb,
                                            "namespace": PROBE_NAMESPACE}},
        }))
        .unwrap();
        let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| err.to_string())?;
        match answer.status {
            Some(status) if status.allowed => Ok(()),
            other => Err(format!("not allowed: {other:?}")),
        }
    }

    pub async fn wait_until_in_force(
        admin: &Client,
        backup: &Client,
        approver: &Client,
        security: &Client,
    ) -> Result<(), String> {
        // Every binding of the people's roles, before anything relies on them.
        until("RBAC for the security admin", async || {
            allowed(security, "elevationpolicies", "create").await
        })
        .await?;
        until("RBAC for the approvers as requesters", async || {
            allowed(approver, "criticaloperationrequests", "create").await
        })
        .await?;
        until("RBAC for the approvers", async || {
            allowed(approver, "criticaloperationrequests", "approve").await
        })
        .await?;
        until("RBAC for the backup admin", async || {
            allowed(backup, "vaultprotections", "create").await
        })
        .await?;

        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": PROBE_NAMESPACE}})).unwrap();
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|err| format!("creating namespace {PROBE_NAMESPACE}: {err}"))?;

        until("the MutatingAdmissionPolicy filling in spec.requester", async || {
            let created = api(backup)
                .create(&dry_run(), &object(request("probe-mutation", json!({}))))
                .await
                .map_err(|err| err.to_string())?;
            match created.data["spec"]["requester"].as_str() {
                Some("backup-admin") => Ok(()),
                other => Err(format!("requester {other:?}")),
            }
        })
        .await?;
        until("the policy refusing another user as requester", async || {
            let sent = object(request("probe-requester", json!({"requester": "someone-else"})));
            refused(
                api(backup).create(&dry_run(), &sent).await,
                403,
                "spec.requester must be the user who creates the request",
            )
        })
        .await?;

        api(backup)
            .create(&PostParams::default(), &object(request("probe", json!({}))))
            .await
            .map_err(|err| format!("creating the probe request: {err}"))?;
        until("the policy on status writes", async || {
            let patch = json!({"status": {"phase": "Approved"}});
            let params = PatchParams {
                dry_run: true,
                ..Default::default()
            };
            refused(
                api(backup).patch_status("probe", &params, &Patch::Merge(&patch)).await,
                403,
                "only the operator writes status.phase",
            )
        })
        .await?;
        // An approval names the target the operator recorded; admin (who may `operate`) records one.
        let target = json!({"vaultProtectionUid": "probe", "vaultId": "probe-vault", "guardId": "probe-guard"});
        api(admin)
            .patch_status(
                "probe",
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"target": target}})),
            )
            .await
            .map_err(|err| format!("recording the probe request's target: {err}"))?;
        until("RBAC letting approver-a approve", async || {
            let approval = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
                "metadata": {"name": "probe"},
                "status": {"approvals": [{"approver": "approver-a", "decision": "Approve",
                                          "time": "2026-01-01T00:00:00Z", "target": target}]}});
            let params = PatchParams::apply("kubectl-mua/approver-a").dry_run();
            api(approver)
                .patch_status("probe", &params, &Patch::Apply(&approval))
                .await
                .map(|_| ())
                .map_err(|err| err.to_string())
        })
        .await?;

        // The finalizer policy, tried by a user RBAC lets update requests in this namespace.
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": "probe-request-editor", "namespace": PROBE_NAMESPACE},
            "rules": [{"apiGroups": ["mua.dev"], "resources": ["criticaloperationrequests"], "verbs": ["patch"]}],
        }))
        .unwrap();
        Api::<Role>::namespaced(admin.clone(), PROBE_NAMESPACE)
            .create(&PostParams::default(), &role)
            .await
            .map_err(|err| format!("creating the probe Role: {err}"))?;
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "probe-request-editor", "namespace": PROBE_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "probe-request-editor"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "backup-admin"}],
        }))
        .unwrap();
        Api::<RoleBinding>::namespaced(admin.clone(), PROBE_NAMESPACE)
            .create(&PostParams::default(), &binding)
            .await
            .map_err(|err| format!("binding the probe Role: {err}"))?;
        let mut with_finalizer = request("probe-finalizer", json!({}));
        with_finalizer["metadata"]["finalizers"] = json!(["mua.dev/probe"]);
        api(admin)
            .create(&PostParams::default(), &object(with_finalizer))
            .await
            .map_err(|err| format!("creating the probe request with a finalizer: {err}"))?;
        until("the policy on the operator's finalizers", async || {
            let patch = json!({"metadata": {"finalizers": null}});
            let params = PatchParams {
                dry_run: true,
                ..Default::default()
            };
            refused(
                api(backup)
                    .patch("probe-finalizer", &params, &Patch::Merge(&patch))
                    .await,
                403,
                "only the operator removes the finalizer mua.dev/probe",
            )
        })
        .await?;

        // The ElevationPolicy ceilings: the policy must see a labelled ElevationPolicy in the namespace.
        let policy_resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("mua.dev", "v1alpha1", "ElevationPolicy"),
            "elevationpolicies",
        );
        let policy = object(json!({
            "apiVersion": "mua.dev/v1alpha1", "kind": "ElevationPolicy",
            "metadata": {"name": "probe", "labels": {"mua.dev/admission-params": "true"}},
            "spec": {"guardId": "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/security-rg/providers/Microsoft.DataProtection/resourceGuards/probe",
                     "approvers": {"groups": ["mua-approvers"]}, "maxDuration": "1h"},
        }));
        Api::<DynamicObject>::namespaced_with(admin.clone(), PROBE_NAMESPACE, &policy_resource)
            .create(&PostParams::default(), &policy)
            .await
            .map_err(|err| format!("creating the probe ElevationPolicy: {err}"))?;
        until("the ElevationPolicy ceilings", async || {
            let sent = object(request("probe-ceiling", json!({"duration": "2h"})));
            refused(
                api(backup).create(&dry_run(), &sent).await,
                422,
                "spec.duration 2h is longer than 1h",
            )
        })
        .await
    }
}

/// What `kubectl mua approve` writes for `user` on the request `name`: their own approval entry for the
/// target the operator recorded, once it has (waiting up to 30 s), as a server-side apply body.
/// `as_user` asks for `operation` on the VaultProtection `vault_protection` in `namespace` for 30 minutes:
/// the CriticalOperationRequest `name` (the API server fills in the requester).
pub async fn request(as_user: Client, namespace: &str, name: &str, vault_protection: &str, operation: &str) {
    let request = serde_json::json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest", "metadata": {"name": name},
        "spec": {"vaultProtection": vault_protection, "operation": operation, "duration": "30m", "justification": "decommission"}});
    Api::<CriticalOperationRequest>::namespaced(as_user, namespace)
        .create(&PostParams::default(), &serde_json::from_value(request).unwrap())
        .await
        .unwrap_or_else(|err| panic!("requesting {operation} as {namespace}/{name}: {err}"));
}

/// `user` (signed in as `as_user`) approves the request `name` in `namespace` for the target the operator
/// recorded, as `kubectl mua approve` does; `requests` reads it as an admin.
pub async fn approve(
    as_user: Client,
    requests: &Api<CriticalOperationRequest>,
    namespace: &str,
    name: &str,
    user: User,
) {
    let approval = approval_of(requests, name, user).await;
    Api::<CriticalOperationRequest>::namespaced(as_user, namespace)
        .patch_status(
            name,
            &PatchParams::apply(&format!("kubectl-mua/{}", user.name())),
            &Patch::Apply(approval),
        )
        .await
        .unwrap_or_else(|err| panic!("{} approving {namespace}/{name}: {err}", user.name()));
}

pub async fn approval_of(requests: &Api<CriticalOperationRequest>, name: &str, user: User) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    let target = loop {
        let recorded = requests.get(name).await.ok().and_then(|r| r.status?.target);
        if let Some(target) = recorded {
            break target;
        }
        assert!(
            Instant::now() < deadline,
            "the operator recorded no target for {name} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    serde_json::json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
        "status": {"approvals": [{"approver": user.name(), "groups": [user.group()], "decision": "Approve",
                                  "time": jiff::Timestamp::now().to_string(), "comment": "checked the ticket",
                                  "target": target}]}})
}
