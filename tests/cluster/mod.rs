//! The real test control plane: etcd and kube-apiserver built from Go modules by `tests/cluster/build.sh`,
//! started once per test binary on free loopback ports with a tmpfs data directory, and stopped when the
//! binary exits (also after a failed test). Each test gets a fresh namespace and per-user clients.
//!
//! Users (static tokens): `admin` (system:masters), `backup-admin` (group `backup-admins`) and
//! `security-admin` (group `security-admins`). The CRDs from `crds/` are installed and Established before
//! the first test runs.

#![allow(dead_code)] // each test binary uses a different part of the fixture

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
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
}

impl User {
    pub const ALL: [User; 3] = [User::Admin, User::BackupAdmin, User::SecurityAdmin];

    pub fn name(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::BackupAdmin => "backup-admin",
            User::SecurityAdmin => "security-admin",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            User::Admin => "system:masters",
            User::BackupAdmin => "backup-admins",
            User::SecurityAdmin => "security-admins",
        }
    }
}

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
        install_crds(&admin).await
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
