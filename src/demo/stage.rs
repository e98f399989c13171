//! What the walkthrough runs on: the local control plane with the people's users, the CRDs, the chart's
//! RBAC and admission policies; the ARM simulator with the demo's two tenants; and the operator's
//! controllers (both sides) on the simulator's clock, so the walkthrough can move time forward.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::azure::credentials::AzureCloud;
use crate::azure::{ArmClient, RetryPolicy};
use crate::control_plane::{self, LocalControlPlane, LocalUser};
use crate::controller::{
    BackupContext, BackupIdentity, BackupSide, Context, ControllerConfig, SecurityContext, SecuritySide,
};
use crate::run::{Shutdown, SideControllers};
use crate::sim::{SimOptions, Simulator};

pub const NAMESPACE: &str = "mua-demo";

// The demo's Azure (src/demo/seed.yaml).
pub const CONTOSO: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const FABRIKAM: &str = "33e01921-4d64-4f8c-a055-5bdaffd5e33d";
pub const BACKUP_SUB: &str = "5e13b949-1218-4d18-8b99-7e12155ec4f7";
pub const GUARD_SUB: &str = "c999d45b-944f-418c-a0d8-c3fcfd1802c8";
const BACKUP_APP: &str = "0d9a6a8e-1c2b-4f35-8e7d-5a1b2c3d4e01";
const BACKUP_SECRET: &str = "backup-side-secret";
const SECURITY_APP: &str = "1e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a01";
const SECURITY_SECRET: &str = "security-side-secret";
/// The backup side's service principal in the guard's tenant: the one that needs Reader on the guard.
pub const BACKUP_OID_IN_GUARD_TENANT: &str = "6f1e2f0a-3b0c-4a52-9d0e-0c3f4e5a6b02";

/// A person at the keyboard: their Kubernetes user (and groups) and how the walkthrough shows them.
#[derive(Clone, Copy, Debug)]
pub struct Persona {
    pub user: LocalUser,
    pub title: &'static str,
}

pub const ADMIN: Persona = Persona {
    user: LocalUser {
        name: "cluster-admin",
        groups: &["system:masters"],
    },
    title: "the cluster admin",
};
pub const ALICE: Persona = Persona {
    user: LocalUser {
        name: "alice",
        groups: &["backup-admins"],
    },
    title: "Alice, backup admin",
};
pub const BOB: Persona = Persona {
    user: LocalUser {
        name: "bob",
        groups: &["security-admins", "mua-approvers"],
    },
    title: "Bob, security admin and approver",
};

/// The chart's ClusterRoles for people, bound to the personas' groups.
const ROLE_BINDINGS: [(&str, &str); 3] = [
    ("mua-backup-admin", "backup-admins"),
    ("mua-security-admin", "security-admins"),
    ("mua-approver", "mua-approvers"),
];

/// Everything the walkthrough started; dropping it stops the controllers and the simulator (the control
/// plane is owned by the caller, on the thread its processes belong to).
pub struct Stage<'cp> {
    pub cp: &'cp LocalControlPlane,
    pub work_dir: PathBuf,
    /// The directory with `kubectl-mua`, put on kubectl's PATH so `kubectl mua` finds the plugin.
    pub plugin_dir: PathBuf,
    pub sim: Simulator,
    pub admin: Client,
    /// The operator's two identities, for what the walkthrough shows from Azure's side.
    pub security: ArmClient,
    pub backup: ArmClient,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Stage<'_> {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub fn people() -> [LocalUser; 3] {
    [ADMIN.user, ALICE.user, BOB.user]
}

impl<'cp> Stage<'cp> {
    pub async fn start(cp: &'cp LocalControlPlane, plugin_dir: PathBuf) -> anyhow::Result<Stage<'cp>> {
        let work_dir = cp.work_dir.join("demo");
        std::fs::create_dir_all(work_dir.join("manifests"))?;
        let admin = cp.client(ADMIN.user.name).await?;
        install_api(&admin).await?;

        let sim = start_simulator(&work_dir).await?;
        let cloud = AzureCloud {
            arm_url: sim.arm_url.clone(),
            authority_host: sim.authority_host.clone(),
            ca_pem: Some(sim.ca_pem.clone()),
            arm_audience: crate::azure::credentials::PUBLIC_ARM_AUDIENCE.into(),
        };
        let http = cloud.http_client()?;
        let identity = |app: &str, secret: &str| -> anyhow::Result<ArmClient> {
            let home = cloud.client_secret(&http, CONTOSO, app, secret)?;
            let guard_tenant = cloud.client_secret(&http, FABRIKAM, app, secret)?;
            Ok(ArmClient::new(&cloud, http.clone(), CONTOSO, home)
                .with_tenant(FABRIKAM, guard_tenant)
                .with_retry(RetryPolicy {
                    min_delay: Duration::from_millis(50),
                    max_delay: Duration::from_secs(1),
                    ..RetryPolicy::default()
                }))
        };
        let security = identity(SECURITY_APP, SECURITY_SECRET)?;
        let backup = identity(BACKUP_APP, BACKUP_SECRET)?;

        for persona in [ADMIN, ALICE, BOB] {
            cp.set_namespace(persona.user.name, NAMESPACE).await?;
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        start_operator(&admin, &sim, &security, &backup, stopped);
        Ok(Stage {
            cp,
            work_dir,
            plugin_dir,
            sim,
            admin,
            security,
            backup,
            stop,
        })
    }

    /// A manifest file the walkthrough shows and applies (kept for `--keep`).
    pub fn manifest(&self, name: &str, yaml: &str) -> anyhow::Result<PathBuf> {
        let path = self.work_dir.join("manifests").join(name);
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// `kubectl` as `persona` (whose kubeconfig's namespace is the demo's), with `kubectl mua` on its PATH.
    pub fn kubectl(&self, persona: Persona) -> tokio::process::Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.plugin_dir.clone(), self.cp.bin_dir.clone()];
        dirs.extend(std::env::split_paths(&path));
        let mut cmd = tokio::process::Command::new(self.cp.bin_dir.join("kubectl"));
        // The environment rather than flags: kubectl refuses flags before a plugin's name.
        cmd.env("KUBECONFIG", self.cp.kubeconfig_path(persona.user.name))
            .env("PATH", std::env::join_paths(dirs).unwrap_or(path))
            .kill_on_drop(true);
        cmd
    }
}

/// The CRDs, the chart's RBAC and admission policies (as the chart installs them), the people's role
/// bindings and the demo namespace.
async fn install_api(admin: &Client) -> anyhow::Result<()> {
    let bindings: Vec<(String, String)> = ROLE_BINDINGS
        .iter()
        .map(|(role, group)| (role.to_string(), group.to_string()))
        .collect();
    control_plane::install_operator_api(admin, &bindings, "the demo's role bindings").await?;
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}
    }))?;
    Api::<Namespace>::all(admin.clone())
        .patch(NAMESPACE, &PatchParams::apply("mua-demo"), &Patch::Apply(&namespace))
        .await
        .context("creating the demo namespace")?;
    Ok(())
}

async fn start_simulator(work_dir: &Path) -> anyhow::Result<Simulator> {
    let seed = work_dir.join("sim-seed.yaml");
    std::fs::write(&seed, include_str!("seed.yaml"))?;
    let mut options = SimOptions::new(work_dir.join("sim"));
    options.seed = Some(seed);
    Simulator::start(options).await.context("starting the ARM simulator")
}

/// Both sides' controllers in this process, watching the demo namespace, on the simulator's clock.
fn start_operator(
    admin: &Client,
    sim: &Simulator,
    security: &ArmClient,
    backup: &ArmClient,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    let shared = Arc::new(
        Context::new(admin.clone())
            .with_namespace(Some(NAMESPACE.to_string()))
            .with_clock(sim.state.clock.clone())
            .with_config(ControllerConfig {
                // A walkthrough looks again within seconds where production waits minutes.
                waiting_retry: Duration::from_secs(1),
                stalled_retry: Duration::from_secs(2),
                ..ControllerConfig::default()
            }),
    );
    let security = SecuritySide::new(security.clone()).identifying_backup(BackupIdentity::of(backup));
    let sides = [
        SideControllers::Security(Arc::new(SecurityContext::new(shared.clone(), security))),
        SideControllers::Backup(Arc::new(BackupContext::new(shared, BackupSide::new(backup.clone())))),
    ];
    let shutdown: Shutdown = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    }
    .boxed()
    .shared();
    for side in sides {
        tokio::spawn(side.start(shutdown.clone()));
    }
}
