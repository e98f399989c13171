//! The real test control plane: etcd and kube-apiserver built from Go modules by `tests/cluster/build.sh`,
//! started once per test binary on free loopback ports with a tmpfs data directory, and stopped when the
//! binary exits (also after a failed test). Each test gets a fresh namespace and per-user clients.
//!
//! Users (static tokens): `admin` (system:masters), `backup-admin` (group `backup-admins`),
//! `security-admin` (group `security-admins`), `approver-a` and `approver-b` (group `mua-approvers`). Before
//! the first test runs, the CRDs from `crds/` are installed and Established, and the chart's RBAC
//! (`charts/mua-operator/files/rbac.yaml`, bound to those groups) and admission policies
//! (`charts/mua-operator/files/admission-policies.yaml`) are applied and in force.

#![allow(dead_code)] // each test binary uses a different part of the fixture

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Scope;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

const ETCD_START_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_START_TIMEOUT: Duration = Duration::from_secs(120);
const CRD_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;
const WORK_DIR_PREFIX: &str = "mua-cp-";

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
        match self {
            User::Admin => "system:masters",
            User::BackupAdmin => "backup-admins",
            User::SecurityAdmin => "security-admins",
            User::ApproverA | User::ApproverB => "mua-approvers",
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

/// The running control plane shared by every test of one test binary.
#[derive(Debug)]
pub struct ControlPlane {
    pub work_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub server: String,
    tokens: Vec<(User, String)>,
}

/// Processes to stop when the test binary exits.
static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

struct Running {
    children: Vec<Child>,
    work_dir: PathBuf,
}

extern "C" fn stop_at_exit() {
    stop_control_plane();
}

fn stop_control_plane() {
    let Ok(mut running) = RUNNING.lock() else { return };
    if let Some(mut running) = running.take() {
        // kube-apiserver first, then etcd (reverse start order).
        for child in running.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&running.work_dir);
    }
}

impl ControlPlane {
    /// The control plane of this test binary, started on first use.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        let started = SHARED.get_or_init(|| {
            // Started from a thread that lives as long as the process: the children get PR_SET_PDEATHSIG,
            // which fires when the thread that spawned them ends, so they die with the test binary even
            // when it is killed, and never with the test that happened to start them.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("control-plane".into())
                .spawn(move || {
                    let _ = tx.send(start());
                    loop {
                        std::thread::park();
                    }
                })
                .expect("spawning the control-plane thread");
            rx.recv()
                .unwrap_or_else(|_| Err("the control-plane thread died while starting".into()))
        });
        match started {
            Ok(cp) => cp,
            Err(err) => panic!("the test control plane did not start: {err}"),
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
        let path = self.work_dir.join(format!("{name}.kubeconfig"));
        write_kubeconfig(&path, &self.server, &self.work_dir.join("ca.crt"), name, token)
            .expect("writing a kubeconfig");
        client_from_kubeconfig(&path).await
    }

    /// `kubectl` of the same version as the API server, acting as `user`.
    pub fn kubectl(&self, user: User) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig").arg(self.kubeconfig_path(user));
        cmd
    }

    /// A fresh namespace for one test (the control plane has no namespace controller, so namespaces are
    /// never deleted; the whole control plane goes away with the test binary).
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
        TestNamespace { name, admin }
    }
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
    let kubeconfig = Kubeconfig::read_from(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|err| panic!("loading {}: {err}", path.display()));
    Client::try_from(config).expect("building a kube client")
}

fn start() -> Result<ControlPlane, String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The test harness exits the process when the tests are done (or failed): stop the servers then.
    // SAFETY: registers a plain function with no captured state.
    if unsafe { libc::atexit(stop_at_exit) } != 0 {
        return Err("registering the control plane's exit handler failed".into());
    }
    let bin_dir = binaries()?;
    remove_stale_work_dirs();
    let mut last_err = String::new();
    for attempt in 1..=START_ATTEMPTS {
        match start_once(&bin_dir) {
            Ok(cp) => return Ok(cp),
            // Ports are picked free but can be taken by another process before the server binds them.
            Err(err) => {
                eprintln!("[tests/cluster] start attempt {attempt} failed: {err}");
                last_err = err;
            }
        }
    }
    Err(last_err)
}

/// The directory with etcd, kube-apiserver and kubectl: `$MUA_CONTROL_PLANE_BIN`, or what
/// `tests/cluster/build.sh` builds (once per machine) and prints.
fn binaries() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("MUA_CONTROL_PLANE_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| format!("running {}: {err}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}); see its output above",
            script.display(),
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout.lines().last().unwrap_or_default().trim();
    Ok(PathBuf::from(dir))
}

fn start_once(bin_dir: &Path) -> Result<ControlPlane, String> {
    let work_dir = new_work_dir()?;
    let result = launch(bin_dir, &work_dir);
    if result.is_err() {
        stop_control_plane();
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    result
}

fn launch(bin_dir: &Path, work_dir: &Path) -> Result<ControlPlane, String> {
    let pki = write_pki(work_dir)?;
    let tokens: Vec<(User, String)> = User::ALL.iter().map(|u| (*u, random_token())).collect();
    let token_csv: String = tokens
        .iter()
        .map(|(u, t)| format!("{t},{},uid-{},\"{}\"\n", u.name(), u.name(), u.group()))
        .collect();
    write(&work_dir.join("tokens.csv"), &token_csv)?;

    let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
    *RUNNING.lock().unwrap() = Some(Running {
        children: Vec::new(),
        work_dir: work_dir.to_path_buf(),
    });

    let etcd_client = format!("http://127.0.0.1:{etcd_port}");
    let etcd_peer = format!("http://127.0.0.1:{peer_port}");
    spawn(
        bin_dir.join("etcd"),
        &[
            "--name=test".into(),
            format!("--data-dir={}", work_dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_client}"),
            format!("--advertise-client-urls={etcd_client}"),
            format!("--listen-peer-urls={etcd_peer}"),
            format!("--initial-advertise-peer-urls={etcd_peer}"),
            format!("--initial-cluster=test={etcd_peer}"),
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ],
        &work_dir.join("etcd.log"),
    )?;
    wait_until(ETCD_START_TIMEOUT, "etcd /health", &work_dir.join("etcd.log"), || {
        http_get_plain(etcd_port, "/health").is_some_and(|body| body.contains("\"health\":\"true\""))
    })?;

    let w = |name: &str| work_dir.join(name).display().to_string();
    spawn(
        bin_dir.join("kube-apiserver"),
        &[
            format!("--etcd-servers={etcd_client}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", w("certs")),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--token-auth-file={}", w("tokens.csv")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pki.sa_public.display()),
            format!("--service-account-signing-key-file={}", pki.sa_key.display()),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--authorization-mode=RBAC".into(),
            // No controller-manager runs, so no namespace gets a "default" ServiceAccount.
            "--disable-admission-plugins=ServiceAccount".into(),
            "--allow-privileged=true".into(),
        ],
        &work_dir.join("apiserver.log"),
    )?;

    let server = format!("https://127.0.0.1:{api_port}");
    for (user, token) in &tokens {
        write_kubeconfig(
            &work_dir.join(format!("{}.kubeconfig", user.name())),
            &server,
            &pki.ca_cert,
            user.name(),
            token,
        )?;
    }
    let cp = ControlPlane {
        work_dir: work_dir.to_path_buf(),
        bin_dir: bin_dir.to_path_buf(),
        server,
        tokens,
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("building a runtime: {err}"))?;
    runtime.block_on(async {
        let admin = client_from_kubeconfig(&cp.kubeconfig_path(User::Admin)).await;
        wait_for_apiserver(&admin, &work_dir.join("apiserver.log")).await?;
        install_crds(&admin).await?;
        install_rbac_and_admission(&admin).await?;
        let backup = client_from_kubeconfig(&cp.kubeconfig_path(User::BackupAdmin)).await;
        let approver = client_from_kubeconfig(&cp.kubeconfig_path(User::ApproverA)).await;
        let security = client_from_kubeconfig(&cp.kubeconfig_path(User::SecurityAdmin)).await;
        admission::wait_until_in_force(&admin, &backup, &approver, &security).await
    })?;
    Ok(cp)
}

fn spawn(program: PathBuf, args: &[String], log: &Path) -> Result<(), String> {
    let log_file = std::fs::File::create(log).map_err(|err| format!("creating {}: {err}", log.display()))?;
    let mut cmd = Command::new(&program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|err| err.to_string())?)
        .stderr(log_file);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|err| format!("starting {}: {err}", program.display()))?;
    RUNNING
        .lock()
        .unwrap()
        .as_mut()
        .expect("work dir registered before spawning")
        .children
        .push(child);
    Ok(())
}

/// Polls `ready` until it holds; fails early, with the log's tail, if a child process exited.
fn wait_until(timeout: Duration, what: &str, log: &Path, mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(exited) = exited_child() {
            return Err(format!("{exited} before {what} was ready:\n{}", log_tail(log)));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} not ready within {timeout:?}:\n{}", log_tail(log)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exited_child() -> Option<String> {
    let mut running = RUNNING.lock().unwrap();
    running
        .as_mut()?
        .children
        .iter_mut()
        .find_map(|child| match child.try_wait() {
            Ok(Some(status)) => Some(format!("process {} exited ({status})", child.id())),
            _ => None,
        })
}

async fn wait_for_apiserver(admin: &Client, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + APISERVER_START_TIMEOUT;
    loop {
        let request = http::Request::get("/readyz").body(Vec::new()).expect("a valid request");
        if let Ok(body) = admin.request_text(request).await
            && body.trim() == "ok"
        {
            return Ok(());
        }
        if let Some(exited) = exited_child() {
            return Err(format!("{exited} before kube-apiserver was ready:\n{}", log_tail(log)));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "kube-apiserver not ready within {APISERVER_START_TIMEOUT:?}:\n{}",
                log_tail(log)
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Installs the checked-in `crds/*.yaml` (what users install) and waits until each is Established.
async fn install_crds(admin: &Client) -> Result<(), String> {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|err| format!("reading {}: {err}", dir.display()))? {
        let path = entry.map_err(|err| err.to_string())?.path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|err| format!("reading {}: {err}", path.display()))?;
        let crd: CustomResourceDefinition =
            yaml_serde::from_str(&text).map_err(|err| format!("parsing {}: {err}", path.display()))?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &PatchParams::apply("mua-tests").force(), &Patch::Apply(&crd))
            .await
            .map_err(|err| format!("installing {}: {err}", path.display()))?;
        names.push(name);
    }
    for name in names {
        tokio::time::timeout(
            CRD_ESTABLISHED_TIMEOUT,
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| format!("CRD {name} not Established within {CRD_ESTABLISHED_TIMEOUT:?}"))?
        .map_err(|err| format!("waiting for CRD {name}: {err}"))?;
    }
    Ok(())
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
    apply_manifests(admin, &chart_file("admission-policies.yaml")).await
}

/// Server-side applies every document of a multi-document YAML file of cluster-scoped objects.
pub async fn apply_manifests(admin: &Client, path: &Path) -> Result<(), String> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    for document in yaml_serde::Deserializer::from_str(&text) {
        let value =
            serde_json::Value::deserialize(document).map_err(|err| format!("parsing {}: {err}", path.display()))?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject =
            serde_json::from_value(value).map_err(|err| format!("reading an object in {}: {err}", path.display()))?;
        let types = object
            .types
            .as_ref()
            .ok_or_else(|| format!("an object without apiVersion/kind in {}", path.display()))?;
        let gvk = GroupVersionKind::try_from(types).map_err(|err| format!("{}: {err}", path.display()))?;
        let (resource, capabilities) = kube::discovery::pinned_kind(admin, &gvk)
            .await
            .map_err(|err| format!("discovering {gvk:?}: {err}"))?;
        if capabilities.scope != Scope::Cluster {
            return Err(format!("{}: {} is not cluster-scoped", path.display(), gvk.kind));
        }
        let name = object.name_any();
        Api::<DynamicObject>::all_with(admin.clone(), &resource)
            .patch(&name, &PatchParams::apply("mua-tests").force(), &Patch::Apply(&object))
            .await
            .map_err(|err| format!("applying {} {name} from {}: {err}", gvk.kind, path.display()))?;
    }
    Ok(())
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
        until("RBAC letting approver-a approve", async || {
            let approval = json!({"apiVersion": "mua.dev/v1alpha1", "kind": "CriticalOperationRequest",
                "metadata": {"name": "probe"},
                "status": {"approvals": [{"approver": "approver-a", "decision": "Approve",
                                          "time": "2026-01-01T00:00:00Z"}]}});
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

struct Pki {
    ca_cert: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    sa_key: PathBuf,
    sa_public: PathBuf,
}

fn write_pki(dir: &Path) -> Result<Pki, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let err = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mua-operator test CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate().map_err(err)?;
    let mut serving = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "kubernetes.default.svc".to_string(),
    ])
    .map_err(err)?;
    serving.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer).map_err(err)?;

    let sa_key = KeyPair::generate().map_err(err)?;
    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("serving.crt"),
        serving_key: dir.join("serving.key"),
        sa_key: dir.join("sa.key"),
        sa_public: dir.join("sa.pub"),
    };
    write(&pki.ca_cert, &ca_cert.pem())?;
    write(&pki.serving_cert, &serving_cert.pem())?;
    write(&pki.serving_key, &serving_key.serialize_pem())?;
    write(&pki.sa_key, &sa_key.serialize_pem())?;
    write(&pki.sa_public, &sa_key.public_key_pem())?;
    Ok(pki)
}

fn write_kubeconfig(path: &Path, server: &str, ca: &Path, user: &str, token: &str) -> Result<(), String> {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "mua-test", "cluster": {"server": server, "certificate-authority": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "mua-test", "context": {"cluster": "mua-test", "user": user, "namespace": "default"}}],
        "current-context": "mua-test",
    });
    write(path, &config.to_string())
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|err| format!("writing {}: {err}", path.display()))
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|err| format!("finding a free port: {err}"))?;
    Ok(listener.local_addr().map_err(|err| err.to_string())?.port())
}

/// A plain-HTTP GET on loopback; `None` while nothing answers.
fn http_get_plain(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A tmpfs directory (when /dev/shm exists) named after this process, so a later run can tell whether
/// its owner is still alive.
fn new_work_dir() -> Result<PathBuf, String> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(&format!("{WORK_DIR_PREFIX}{}-", std::process::id()))
        .tempdir_in(base)
        .map(|dir| dir.keep())
        .map_err(|err| format!("creating the work directory: {err}"))
}

/// Removes work directories left by test binaries that were killed before they could clean up.
fn remove_stale_work_dirs() {
    for base in [PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Only `mua-cp-<pid>-<random>`, exactly as new_work_dir names them.
            let Some(pid) = name
                .strip_prefix(WORK_DIR_PREFIX)
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
            else {
                continue;
            };
            let alive = Path::new("/proc").join(pid.to_string()).exists();
            if !alive {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
