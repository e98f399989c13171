//! A local Kubernetes control plane for the demo and the tests: etcd and kube-apiserver built from Go
//! modules by `tests/cluster/build.sh` (cached per machine), started on free loopback ports with a tmpfs
//! data directory, static-token users, and the certificates generated here. Nothing else runs (no
//! controller-manager, no scheduler): enough for custom resources, RBAC and admission policies.
//!
//! The processes die with the thread that started them (`PR_SET_PDEATHSIG`) and are stopped when the
//! [`LocalControlPlane`] is dropped, which also removes its work directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Scope;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

const ETCD_START_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_START_TIMEOUT: Duration = Duration::from_secs(120);
const CRD_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);
/// Ports are picked free but can be taken by another process before a server binds them.
const START_ATTEMPTS: usize = 3;
const WORK_DIR_PREFIX: &str = "mua-cp-";
/// The field manager of what is applied here.
const FIELD_MANAGER: &str = "mua-local-control-plane";

/// A person (or identity) with a static bearer token: their user name and groups.
#[derive(Clone, Copy, Debug)]
pub struct LocalUser {
    pub name: &'static str,
    pub groups: &'static [&'static str],
}

/// How a local control plane differs from the default one (the tests' and the demo's).
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Serve the APIs of an older minor release, as clusters of that version do
    /// (`--emulated-version`, e.g. `"1.33"`; the binaries are 1.36, which emulates down to 1.33).
    pub emulated_version: Option<String>,
    /// Run the ServiceAccount admission plugin, which gives pods their token volume: for a control plane
    /// with a node (a controller-manager then creates each namespace's `default` ServiceAccount).
    pub service_accounts: bool,
}

/// A running etcd + kube-apiserver pair; stopped when dropped.
#[derive(Debug)]
pub struct LocalControlPlane {
    pub work_dir: PathBuf,
    pub bin_dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    tokens: Vec<(String, String)>,
    children: Mutex<Vec<Child>>,
}

impl Drop for LocalControlPlane {
    fn drop(&mut self) {
        let children = self.children.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        // kube-apiserver first, then etcd (reverse start order).
        for child in children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

/// The directory with etcd, kube-apiserver and kubectl: `$MUA_CONTROL_PLANE_BIN`, or what
/// `tests/cluster/build.sh` of this checkout builds (once per machine; ~10 minutes on 2 cores) and prints.
pub fn binaries() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("MUA_CONTROL_PLANE_BIN") {
        return Ok(PathBuf::from(dir));
    }
    built_by("tests/cluster/build.sh")
}

/// Runs one of this checkout's tool scripts (`tests/*/build.sh`, `tests/azcli/install.sh`: each builds
/// or installs once per machine, caches outside the checkout, and prints its directory last) and returns
/// that directory. The script's progress goes to stderr.
pub fn built_by(script: &str) -> anyhow::Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed ({}); see its output above", script.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last().map(str::trim) {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => bail!("{} printed no directory", script.display()),
    }
}

impl LocalControlPlane {
    /// Starts etcd and kube-apiserver from `bin_dir` with a token for each of `users`, and waits until the
    /// API server is ready. Blocks: call it outside an async runtime, from a thread that lives as long as
    /// the control plane should (the processes die with it).
    pub fn start(bin_dir: &Path, users: &[LocalUser]) -> anyhow::Result<LocalControlPlane> {
        Self::start_with(bin_dir, users, &StartOptions::default())
    }

    /// [`LocalControlPlane::start`], with `options`.
    pub fn start_with(
        bin_dir: &Path,
        users: &[LocalUser],
        options: &StartOptions,
    ) -> anyhow::Result<LocalControlPlane> {
        remove_stale_work_dirs();
        let mut last_err = anyhow!("not started");
        for attempt in 1..=START_ATTEMPTS {
            match Self::launch(bin_dir, users, options) {
                Ok(cp) => return Ok(cp),
                Err(err) => {
                    tracing::warn!(attempt, "starting the local control plane failed: {err:#}");
                    last_err = err;
                }
            }
        }
        Err(last_err)
    }

    fn launch(bin_dir: &Path, users: &[LocalUser], options: &StartOptions) -> anyhow::Result<LocalControlPlane> {
        let tokens = users
            .iter()
            .map(|u| Ok((u.name.to_string(), random_token()?)))
            .collect::<anyhow::Result<_>>()?;
        let work_dir = new_work_dir()?;
        let pki = match write_pki(&work_dir) {
            Ok(pki) => pki,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&work_dir);
                return Err(err);
            }
        };
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        // From here on, dropping `cp` stops what was started and removes the work directory.
        let cp = LocalControlPlane {
            work_dir: work_dir.clone(),
            bin_dir: bin_dir.to_path_buf(),
            server: format!("https://127.0.0.1:{api_port}"),
            tokens,
            children: Mutex::new(Vec::new()),
        };
        let token_csv: String = users
            .iter()
            .zip(&cp.tokens)
            .map(|(user, (_, token))| format!("{token},{0},uid-{0},\"{1}\"\n", user.name, user.groups.join(",")))
            .collect();
        write(&work_dir.join("tokens.csv"), &token_csv)?;
        // ServiceAccounts' requests (the operator's, in tests of its RBAC) are audited; people's are not.
        write(
            &work_dir.join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n\
             - level: Metadata\n  userGroups: [\"system:serviceaccounts\"]\n- level: None\n",
        )?;

        let etcd_client = format!("http://127.0.0.1:{etcd_port}");
        let etcd_peer = format!("http://127.0.0.1:{peer_port}");
        let etcd_log = work_dir.join("etcd.log");
        cp.spawn(
            "etcd",
            &[
                "--name=local".into(),
                format!("--data-dir={}", work_dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_client}"),
                format!("--advertise-client-urls={etcd_client}"),
                format!("--listen-peer-urls={etcd_peer}"),
                format!("--initial-advertise-peer-urls={etcd_peer}"),
                format!("--initial-cluster=local={etcd_peer}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
            &etcd_log,
        )?;
        cp.wait_until(ETCD_START_TIMEOUT, "etcd /health", &etcd_log, || {
            http_get_plain(etcd_port, "/health").is_some_and(|body| body.contains("\"health\":\"true\""))
        })?;

        let w = |name: &str| work_dir.join(name).display().to_string();
        let apiserver_log = work_dir.join("apiserver.log");
        let mut args = vec![
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
            "--allow-privileged=true".into(),
            format!("--audit-policy-file={}", w("audit-policy.yaml")),
            format!("--audit-log-path={}", w("audit.log")),
        ];
        if !options.service_accounts {
            // No controller-manager runs, so no namespace gets a "default" ServiceAccount.
            args.push("--disable-admission-plugins=ServiceAccount".into());
        }
        if let Some(version) = &options.emulated_version {
            args.push(format!("--emulated-version={version}"));
        }
        cp.spawn("kube-apiserver", &args, &apiserver_log)?;
        for (user, token) in &cp.tokens {
            cp.kubeconfig_for_token(user, token)?;
        }
        let admin = users
            .iter()
            .find(|u| u.groups.contains(&"system:masters"))
            .ok_or_else(|| anyhow!("one user must be in system:masters to check readiness"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building a runtime")?;
        runtime.block_on(async {
            let client = cp.client(admin.name).await?;
            cp.wait_for_apiserver(&client, &apiserver_log).await
        })?;
        Ok(cp)
    }

    /// The kubeconfig of `user` (one of the users given at start).
    pub fn kubeconfig_path(&self, user: &str) -> PathBuf {
        self.work_dir.join(format!("{user}.kubeconfig"))
    }

    /// The bearer token of `user` (one of the users given at start).
    pub fn token(&self, user: &str) -> Option<&str> {
        self.tokens.iter().find(|(u, _)| u == user).map(|(_, t)| t.as_str())
    }

    /// Writes a kubeconfig for any bearer token (e.g. a ServiceAccount's) and returns its path.
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> anyhow::Result<PathBuf> {
        let path = self.kubeconfig_path(name);
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "mua-local", "cluster": {"server": self.server, "certificate-authority": self.ca_path()}}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": "mua-local", "context": {"cluster": "mua-local", "user": name, "namespace": "default"}}],
            "current-context": "mua-local",
        });
        write(&path, &config.to_string())?;
        Ok(path)
    }

    /// The API server's audit log (JSON lines): every request made by a ServiceAccount, at Metadata level.
    pub fn audit_log_path(&self) -> PathBuf {
        self.work_dir.join("audit.log")
    }

    /// The private key that signs ServiceAccount tokens (a controller-manager needs it).
    pub fn service_account_key_path(&self) -> PathBuf {
        self.work_dir.join("sa.key")
    }

    /// The CA that signed the API server's certificate.
    pub fn ca_path(&self) -> PathBuf {
        self.work_dir.join("ca.crt")
    }

    /// A client acting as `user`, bound to the runtime it is created in.
    pub async fn client(&self, user: &str) -> anyhow::Result<Client> {
        client_from_kubeconfig(&self.kubeconfig_path(user)).await
    }

    /// `kubectl` of the same version as the API server, acting as `user`.
    pub fn kubectl(&self, user: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig").arg(self.kubeconfig_path(user));
        cmd
    }

    /// Points `user`'s kubeconfig at `namespace`, so their commands need no `-n`.
    pub async fn set_namespace(&self, user: &str, namespace: &str) -> anyhow::Result<()> {
        let status = tokio::process::Command::from(self.kubectl(user))
            .args(["config", "set-context", "--current", "--namespace", namespace])
            .stdout(Stdio::null())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "setting the namespace in {user}'s kubeconfig failed");
        Ok(())
    }

    fn spawn(&self, program: &str, args: &[String], log: &Path) -> anyhow::Result<()> {
        let child = spawn_supervised(Command::new(self.bin_dir.join(program)).args(args), log)?;
        self.children.lock().unwrap_or_else(|p| p.into_inner()).push(child);
        Ok(())
    }

    /// Polls `ready` until it holds; fails early, with the log's tail, if a process exited.
    fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        log: &Path,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            self.check_running(what, log)?;
            if Instant::now() > deadline {
                bail!("{what} not ready within {timeout:?}:\n{}", log_tail(log));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn wait_for_apiserver(&self, admin: &Client, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + APISERVER_START_TIMEOUT;
        loop {
            let request = http::Request::get("/readyz").body(Vec::new())?;
            if let Ok(body) = admin.request_text(request).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            self.check_running("kube-apiserver", log)?;
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready within {APISERVER_START_TIMEOUT:?}:\n{}",
                    log_tail(log)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An error with the log's tail if one of the processes has exited.
    fn check_running(&self, what: &str, log: &Path) -> anyhow::Result<()> {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        for child in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "process {} exited ({status}) before {what} was ready:\n{}",
                    child.id(),
                    log_tail(log)
                );
            }
        }
        Ok(())
    }
}

/// Starts `cmd` with its output in `log`, killed when the thread that called this ends
/// (`PR_SET_PDEATHSIG`), so that a killed test process leaves no server behind: call it from a thread that
/// lives as long as the process should.
pub fn spawn_supervised(cmd: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))
}

/// A client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    Client::try_from(config).context("building a Kubernetes client")
}

/// Installs `crds` (server-side apply) and waits until each is Established.
pub async fn install_crds(admin: &Client, crds: &[CustomResourceDefinition]) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for crd in crds {
        api.patch(
            &crd.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(crd),
        )
        .await
        .with_context(|| format!("installing the CRD {}", crd.name_any()))?;
    }
    for crd in crds {
        let name = crd.name_any();
        tokio::time::timeout(
            CRD_ESTABLISHED_TIMEOUT,
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| anyhow!("CRD {name} not Established within {CRD_ESTABLISHED_TIMEOUT:?}"))?
        .with_context(|| format!("waiting for CRD {name}"))?;
    }
    Ok(())
}

/// What the chart puts in a cluster before the operator runs: the CRDs, its RBAC (`files/rbac.yaml`) and
/// admission policies (`files/admission-policies.yaml`), with the people's ClusterRoles bound to groups
/// (`(role, group)`); `origin` names the bindings in errors.
pub async fn install_operator_api(admin: &Client, bindings: &[(String, String)], origin: &str) -> anyhow::Result<()> {
    let crds: Vec<_> = crate::crd::all().into_iter().map(|(_, crd)| crd).collect();
    install_crds(admin, &crds).await?;
    let rbac = include_str!("../charts/mua-operator/files/rbac.yaml");
    apply_manifests(admin, rbac, "the chart's rbac.yaml").await?;
    let manifests: String = bindings
        .iter()
        .map(|(role, group)| {
            let name = format!("{role}-{}", group.replace(':', "-"));
            serde_json::json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
            })
            .to_string()
                + "\n---\n"
        })
        .collect();
    apply_manifests(admin, &manifests, origin).await?;
    let policies = include_str!("../charts/mua-operator/files/admission-policies.yaml");
    apply_manifests(admin, policies, "the chart's admission-policies.yaml").await
}

/// Server-side applies every document of `yaml` (cluster-scoped objects, e.g. the chart's RBAC and
/// admission policies); `origin` names it in errors.
pub async fn apply_manifests(admin: &Client, yaml: &str, origin: &str) -> anyhow::Result<()> {
    use serde::Deserialize;
    for document in yaml_serde::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(document).with_context(|| format!("parsing {origin}"))?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject =
            serde_json::from_value(value).with_context(|| format!("reading an object in {origin}"))?;
        let types = object
            .types
            .as_ref()
            .ok_or_else(|| anyhow!("an object without apiVersion/kind in {origin}"))?;
        let gvk = GroupVersionKind::try_from(types).with_context(|| origin.to_string())?;
        let (resource, capabilities) = kube::discovery::pinned_kind(admin, &gvk)
            .await
            .with_context(|| format!("discovering {gvk:?}"))?;
        if capabilities.scope != Scope::Cluster {
            bail!("{origin}: {} is not cluster-scoped", gvk.kind);
        }
        let name = object.name_any();
        Api::<DynamicObject>::all_with(admin.clone(), &resource)
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .with_context(|| format!("applying {} {name} from {origin}", gvk.kind))?;
    }
    Ok(())
}

struct Pki {
    serving_cert: PathBuf,
    serving_key: PathBuf,
    sa_key: PathBuf,
    sa_public: PathBuf,
}

fn write_pki(dir: &Path) -> anyhow::Result<Pki> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mua-operator local control plane CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    serving.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let sa_key = KeyPair::generate()?;
    let pki = Pki {
        serving_cert: dir.join("serving.crt"),
        serving_key: dir.join("serving.key"),
        sa_key: dir.join("sa.key"),
        sa_public: dir.join("sa.pub"),
    };
    write(&dir.join("ca.crt"), &ca_cert.pem())?;
    write(&pki.serving_cert, &serving_cert.pem())?;
    write(&pki.serving_key, &serving_key.serialize_pem())?;
    write(&pki.sa_key, &sa_key.serialize_pem())?;
    write(&pki.sa_public, &sa_key.public_key_pem())?;
    Ok(pki)
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A loopback port nothing listens on now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
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

/// The last 30 lines of a log file.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A tmpfs directory (when /dev/shm exists) named after this process, so a later run can tell whether
/// its owner is still alive.
fn new_work_dir() -> anyhow::Result<PathBuf> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "{WORK_DIR_PREFIX}{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir(&dir).with_context(|| format!("creating the work directory {}", dir.display()))?;
    Ok(dir)
}

/// Whether `name` is `<prefix><pid>-<anything>` for a process that no longer exists: what a killed test
/// process left behind.
pub fn left_by_a_dead_process(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists())
}

/// Removes work directories left by processes that were killed before they could clean up.
fn remove_stale_work_dirs() {
    for base in [PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Only `mua-cp-<pid>-<random>`, exactly as new_work_dir names them.
            if left_by_a_dead_process(&name, WORK_DIR_PREFIX) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
