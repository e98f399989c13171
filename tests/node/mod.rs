//! A real Kubernetes node for the tests: kubelet, kube-controller-manager and kube-scheduler built from the
//! same Go modules as the test control plane (`tests/node/build.sh`), containerd and runc from Debian, all
//! started beside a control plane of the test's own, and stopped (containers, mounts and cgroups removed)
//! when dropped. Images come from OCI archives imported into containerd; nothing is pulled.
//!
//! Confined to loopback: pods run in the host's network namespace (`hostNetwork`), the only CNI network is
//! the loopback plugin (which keeps the runtime's network Ready without giving pods an address) and every
//! server binds 127.0.0.1. The kubelet refuses a loopback node IP, so the node has no address and
//! host-network pods none either: the kubelet's probes then dial the port on the local host.
//!
//! What it changes on the machine, and puts back: the kernel settings the kubelet insists on
//! (`vm.overcommit_memory`, `kernel.panic`, `kernel.panic_on_oops`). Its cgroups live under a root of its
//! own (`/mua-node-<id>` in each hierarchy), so two nodes never share one.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use mua_operator::control_plane::{self, free_port, left_by_a_dead_process, log_tail, spawn_supervised};

use crate::cluster::{ControlPlane, User};

/// The node's name.
pub const NODE_NAME: &str = "mua-node";
/// The image the pod sandboxes run (tests/node/pause).
const SANDBOX_IMAGE: &str = "localhost/mua-test/pause:3.10";
const CONTAINERD_START_TIMEOUT: Duration = Duration::from_secs(30);
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);
const WORK_DIR_PREFIX: &str = "mua-node-";
/// The kernel settings the kubelet sets when it starts (`protectKernelDefaults: false`).
const KUBELET_SYSCTLS: [&str; 3] = ["vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"];

pub struct TestNode {
    pub dir: PathBuf,
    socket: PathBuf,
    cgroup_root: String,
    sysctls: Vec<(String, String)>,
    /// containerd first, then the Kubernetes components.
    children: Vec<Child>,
}

impl TestNode {
    /// Starts a node that joins `cp` (a control plane started with `service_accounts`), with `images`
    /// (`(OCI archive, repository)`: each archive's tags are imported as `<repository>:<tag>`) in its
    /// runtime, and waits until the node is Ready. Blocks, and spawns from a thread that lives as long as
    /// the process (the processes die with it when the test process is killed).
    pub fn start(cp: &ControlPlane, images: &[(PathBuf, &'static str)]) -> TestNode {
        let bin_dir = control_plane::built_by("tests/node/build.sh").expect("building the test node");
        let kubeconfig = cp.kubeconfig_path(User::Admin);
        let (ca, service_account_key) = cp.pki_paths();
        let images = images.to_vec();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("test-node".into())
            .spawn(move || {
                let _ = tx.send(
                    launch(&bin_dir, &kubeconfig, &ca, &service_account_key, &images).map_err(|e| format!("{e:#}")),
                );
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        match rx.recv().unwrap() {
            Ok(node) => node,
            Err(err) => panic!("the test node did not start: {err}"),
        }
    }

    /// `ctr` against this node's containerd, in the namespace the kubelet uses.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.socket).args(["--namespace", "k8s.io"]);
        cmd
    }

    /// The kubelet's log.
    pub fn kubelet_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kubelet.log")).unwrap_or_default()
    }
}

/// Waits until the node is Ready, from outside any runtime.
pub async fn wait_until_ready(cp: &ControlPlane, node: &TestNode) {
    let nodes: Api<Node> = Api::all(cp.client(User::Admin).await);
    let deadline = Instant::now() + NODE_READY_TIMEOUT;
    loop {
        if let Ok(n) = nodes.get(NODE_NAME).await
            && n.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {NODE_NAME} not Ready within {NODE_READY_TIMEOUT:?}; kubelet log:\n{}",
            log_tail(&node.dir.join("kubelet.log"))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn launch(
    bin_dir: &Path,
    kubeconfig: &Path,
    ca: &Path,
    service_account_key: &Path,
    images: &[(PathBuf, &str)],
) -> anyhow::Result<TestNode> {
    use anyhow::Context as _;
    remove_stale_nodes();
    let id = format!("{}-{:08x}", std::process::id(), fastrand::u32(..));
    let dir = std::env::temp_dir().join(format!("{WORK_DIR_PREFIX}{id}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut node = TestNode {
        socket: dir.join("containerd.sock"),
        cgroup_root: format!("/{WORK_DIR_PREFIX}{id}"),
        sysctls: KUBELET_SYSCTLS
            .iter()
            .filter_map(|k| {
                Some((
                    k.to_string(),
                    std::fs::read_to_string(proc_sys(k)).ok()?.trim().to_string(),
                ))
            })
            .collect(),
        dir,
        children: Vec::new(),
    };
    let node_dir = node.dir.clone();
    let d = |name: &str| node_dir.join(name).display().to_string();

    // containerd: its own root, state and socket; runc with the oom_score_adj the test process may set
    // (this machine's root lacks CAP_SYS_RESOURCE, so the usual -998 of a sandbox is refused).
    std::fs::create_dir_all(node.dir.join("cni"))?;
    write(
        &node.dir.join("cni/10-loopback.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "mua-node-loopback", "plugins": [{"type": "loopback"}]}"#,
    )?;
    write(
        &node.dir.join("containerd.toml"),
        &format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
            root = d("containerd/root"),
            state = d("containerd/state"),
            socket = node.socket.display(),
            cni = d("cni"),
        ),
    )?;
    let containerd_log = node.dir.join("containerd.log");
    node.children.push(spawn_supervised(
        Command::new("containerd")
            .arg("--config")
            .arg(node.dir.join("containerd.toml")),
        &containerd_log,
    )?);
    wait_until(CONTAINERD_START_TIMEOUT, "containerd", &containerd_log, || {
        node.ctr()
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })?;
    node.import(&bin_dir.join("pause.oci.tar"), "localhost/mua-test/pause")?;
    for (archive, repository) in images {
        node.import(archive, repository)?;
    }

    // The Kubernetes components act as the control plane's admin (system:masters).
    for hierarchy in cgroup_hierarchies() {
        std::fs::create_dir_all(hierarchy.join(node.cgroup_root.trim_start_matches('/')))?;
    }
    write(
        &node.dir.join("kubelet.yaml"),
        &format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1, which the kubelet refuses from 1.35 unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
containerRuntimeEndpoint: unix://{socket}
address: 127.0.0.1
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
podLogsDir: {logs}
volumePluginDir: {plugins}
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
"#,
            cgroup_root = node.cgroup_root,
            socket = node.socket.display(),
            port = free_port()?,
            healthz = free_port()?,
            logs = d("pod-logs"),
            plugins = d("volume-plugins"),
        ),
    )?;
    let spawn = |node: &mut TestNode, program: &str, args: Vec<String>| -> anyhow::Result<()> {
        let log = node.dir.join(format!("{program}.log"));
        let child = spawn_supervised(Command::new(bin_dir.join(program)).args(args), &log)?;
        node.children.push(child);
        Ok(())
    };
    spawn(
        &mut node,
        "kube-controller-manager",
        vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--root-ca-file={}", ca.display()),
            format!("--service-account-private-key-file={}", service_account_key.display()),
            "--use-service-account-credentials=false".into(),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()?),
            // Nothing of a cloud or of pod networking: no routes, no load balancers, no pod CIDRs.
            "--controllers=*,-nodeipam,-service-lb-controller,-route,-cloud-node-lifecycle".into(),
        ],
    )?;
    spawn(
        &mut node,
        "kube-scheduler",
        vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()?),
        ],
    )?;
    spawn(
        &mut node,
        "kubelet",
        vec![
            format!("--config={}", d("kubelet.yaml")),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--root-dir={}", d("kubelet")),
            format!("--cert-dir={}", d("kubelet/pki")),
            format!("--hostname-override={NODE_NAME}"),
            "--node-ip=127.0.0.1".into(),
        ],
    )?;
    Ok(node)
}

impl TestNode {
    fn import(&self, archive: &Path, repository: &str) -> anyhow::Result<()> {
        let output = self
            .ctr()
            .args(["images", "import", "--base-name", repository])
            .arg(archive)
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "importing {} into containerd: {}",
            archive.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // The Kubernetes components first (nothing restarts a container then), then every process of
        // the node's cgroups (the containers), containerd's shims, containerd.
        for child in self.children.iter_mut().skip(1).rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_cgroup_tree(&self.cgroup_root);
        kill_processes_mentioning(&self.socket.display().to_string());
        if let Some(containerd) = self.children.first_mut() {
            let _ = containerd.kill();
            let _ = containerd.wait();
        }
        remove_node_dir(&self.dir, &self.cgroup_root);
        for (key, value) in &self.sysctls {
            let _ = std::fs::write(proc_sys(key), value);
        }
    }
}

/// Removes what nodes of test processes that were killed left behind.
fn remove_stale_nodes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if left_by_a_dead_process(&name, WORK_DIR_PREFIX) {
            let cgroup_root = format!("/{name}");
            kill_cgroup_tree(&cgroup_root);
            kill_processes_mentioning(&entry.path().display().to_string());
            remove_node_dir(&entry.path(), &cgroup_root);
        }
    }
}

fn remove_node_dir(dir: &Path, cgroup_root: &str) {
    unmount_under(dir);
    let _ = std::fs::remove_dir_all(dir);
    for hierarchy in cgroup_hierarchies() {
        remove_cgroup_dirs(&hierarchy.join(cgroup_root.trim_start_matches('/')));
    }
}

/// The mounted cgroup v1 hierarchies (`/sys/fs/cgroup/<controller>`), or the v2 root.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process in the cgroup `root` (and below) of every hierarchy, until none is left.
fn kill_cgroup_tree(root: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut found = false;
        for hierarchy in cgroup_hierarchies() {
            for procs in files_named(&hierarchy.join(root.trim_start_matches('/')), "cgroup.procs") {
                for pid in std::fs::read_to_string(&procs).unwrap_or_default().lines() {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        found = true;
                        // SAFETY: kill only sends a signal.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        if !found || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGKILLs every process whose command line mentions `text` (containerd's shims name its socket).
fn kill_processes_mentioning(text: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if pid != std::process::id() as i32 && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(text) {
            // SAFETY: kill only sends a signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Unmounts everything mounted under `dir` (deepest first): the containers' root filesystems and the
/// pods' volumes.
fn unmount_under(dir: &Path) {
    let prefix = dir.display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        if let Ok(c) = std::ffi::CString::new(point) {
            // SAFETY: a NUL-terminated path; MNT_DETACH never blocks.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Removes a cgroup directory tree, leaves first (cgroup directories are removed with rmdir).
fn remove_cgroup_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_dirs(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if dir.join(name).exists() {
        found.push(dir.join(name));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.extend(files_named(&entry.path(), name));
            }
        }
    }
    found
}

fn proc_sys(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key)
}

fn wait_until(timeout: Duration, what: &str, log: &Path, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !ready() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} not ready within {timeout:?}:\n{}",
            log_tail(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}
