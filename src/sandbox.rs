//! `mua-operator sandbox`: a local cluster for trying the operator before a real one, on the same local
//! control plane and simulator as the demo, but with nothing running in it: the API server with the CRDs
//! and the chart's RBAC and admission policies, the ARM simulator with your seed, a namespace bound to
//! the seed's subscriptions, and people of your choosing with a kubeconfig each. It prints how to point
//! `kubectl`, `kubectl mua`, `mua-operator run` and the Azure CLI at it (and writes the same, for scripts,
//! to `sandbox.json`), and stops everything on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use kube::Client;

use crate::control_plane::{self, LocalControlPlane, LocalUser};
use crate::sim::{SimOptions, Simulator};

/// The roles a person may have: the chart's ClusterRoles `mua-<role>`.
const ROLES: [&str; 5] = ["backup-admin", "security-admin", "approver", "requester", "viewer"];
/// The cluster admin, and the operator's own user (both sides' ClusterRoles, its Leases).
const ADMIN: &str = "cluster-admin";
const OPERATOR: &str = "mua-operator";

#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// The simulator's seed (tenants, subscriptions, principals, vaults...; see the simulator's seed file
    /// docs). Default: the example seed, examples/sim-seed.yaml.
    #[arg(long)]
    pub seed: Option<PathBuf>,
    /// A person and their roles: NAME=ROLE[+ROLE...], ROLE one of backup-admin, security-admin, approver,
    /// requester, viewer (the chart's mua-<role> ClusterRoles). Repeat it. Default: alice=backup-admin+requester,
    /// bob=approver, carol=security-admin.
    #[arg(long = "person", value_parser = parse_person)]
    pub people: Vec<Person>,
    /// The namespace the people work in, bound to every subscription of the seed.
    #[arg(long, default_value = "sandbox")]
    pub namespace: String,
    /// Also write the connection details (`sandbox.json`) here.
    #[arg(long)]
    pub info_dir: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Person {
    pub name: String,
    pub roles: Vec<String>,
}

fn parse_person(text: &str) -> Result<Person, String> {
    let (name, roles) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: give NAME=ROLE[+ROLE...], e.g. alice=backup-admin+requester"))?;
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && ![ADMIN, OPERATOR].contains(&name);
    if !valid_name {
        return Err(format!(
            "`{name}`: a person's name is lowercase letters, digits and '-', and not {ADMIN} or {OPERATOR}"
        ));
    }
    let roles: Vec<String> = roles.split('+').map(str::to_string).collect();
    if let Some(unknown) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        return Err(format!("`{unknown}` is not a role; roles: {}", ROLES.join(", ")));
    }
    Ok(Person {
        name: name.to_string(),
        roles,
    })
}

fn default_people() -> Vec<Person> {
    ["alice=backup-admin+requester", "bob=approver", "carol=security-admin"]
        .iter()
        .filter_map(|p| parse_person(p).ok())
        .collect()
}

/// The group a role's holders are in, bound to the chart's ClusterRole `mua-<role>`.
fn group_of(role: &str) -> String {
    format!("sandbox:{role}s")
}

pub fn main(args: SandboxArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: SandboxArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if args.people.is_empty() {
        args.people = default_people();
    }
    let mut names: Vec<&str> = args.people.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("--person {} is given twice", twice[0]);
    }
    let seed = match &args.seed {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading the seed {}", path.display()))?,
        None => include_str!("../examples/sim-seed.yaml").to_string(),
    };
    let subscriptions = seed_subscriptions(&seed)?;

    eprintln!("starting the local control plane (the first run builds it from Go modules: ~10 minutes)");
    let bin_dir = control_plane::binaries()?;
    // Users live as long as the process: leaked once, at start.
    let mut users = vec![
        LocalUser {
            name: ADMIN,
            groups: &["system:masters"],
        },
        LocalUser {
            name: OPERATOR,
            groups: &["sandbox:operators"],
        },
    ];
    for person in &args.people {
        let groups: Vec<&'static str> = person.roles.iter().map(|r| &*group_of(r).leak()).collect();
        users.push(LocalUser {
            name: person.name.clone().leak(),
            groups: groups.leak(),
        });
    }
    // Started on this thread, which lives until the end: the processes die with it.
    let cp = LocalControlPlane::start(&bin_dir, &users)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let admin = cp.client(ADMIN).await?;
        install(&admin, &args, &subscriptions).await?;
        for person in &args.people {
            cp.set_namespace(&person.name, &args.namespace).await?;
        }
        let seed_file = cp.work_dir.join("sim-seed.yaml");
        std::fs::write(&seed_file, &seed)?;
        let mut options = SimOptions::new(cp.work_dir.join("sim"));
        options.seed = Some(seed_file);
        let sim = Simulator::start(options)
            .await
            .context("starting the ARM simulator with the seed")?;
        let info = connection_info(&cp, &sim, &args, &seed)?;
        let text = serde_json::to_string_pretty(&info)?;
        std::fs::write(cp.work_dir.join("sandbox.json"), &text)?;
        if let Some(dir) = &args.info_dir {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join("sandbox.json"), &text)?;
        }
        print_how_to_connect(&cp, &sim, &args, &info);
        crate::run::shutdown_signal().await;
        eprintln!(
            "stopping: the simulator, the API server and etcd; removing {}",
            cp.work_dir.display()
        );
        drop(sim);
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(cp);
    result
}

/// The subscription IDs of a seed (YAML or JSON).
fn seed_subscriptions(seed: &str) -> anyhow::Result<Vec<String>> {
    let parsed: serde_json::Value = yaml_serde::from_str(seed).context("parsing the seed")?;
    let ids: Vec<String> = parsed["subscriptions"]
        .as_array()
        .map(|subs| {
            subs.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    anyhow::ensure!(
        !ids.is_empty(),
        "the seed has no subscriptions: nothing to bind the namespace to"
    );
    Ok(ids)
}

/// The CRDs, the chart's RBAC and admission policies, the people's and the operator's bindings, and the
/// namespace bound to the seed's subscriptions.
async fn install(admin: &Client, args: &SandboxArgs, subscriptions: &[String]) -> anyhow::Result<()> {
    let mut bindings: Vec<(String, String)> = args
        .people
        .iter()
        .flat_map(|p| p.roles.iter().map(|r| (format!("mua-{r}"), group_of(r))))
        .collect();
    bindings.sort();
    bindings.dedup();
    bindings.extend(
        ["mua-operator-security", "mua-operator-backup"].map(|role| (role.to_string(), "sandbox:operators".into())),
    );
    control_plane::install_operator_api(admin, &bindings, "the sandbox's role bindings").await?;

    let ns = &args.namespace;
    let scopes: Vec<String> = subscriptions.iter().map(|s| format!("/subscriptions/{s}")).collect();
    let lease_rules: serde_json::Value = yaml_serde::from_str(
        &include_str!("../charts/mua-operator/files/leader-election-rules.yaml")
            .replace("[LEASES]", "[mua-operator-security, mua-operator-backup]"),
    )?;
    let namespaced = [
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        serde_json::json!({"apiVersion": "mua.dev/v1alpha1", "kind": "AzureScopeBinding", "metadata": {"name": ns},
            "spec": {"scopes": scopes, "guardScopes": scopes}}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "mua-operator-leader-election", "namespace": ns}, "rules": lease_rules}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "mua-operator-leader-election", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mua-operator-leader-election"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "sandbox:operators"}]}),
    ];
    for object in namespaced {
        apply(admin, object).await?;
    }
    Ok(())
}

/// Server-side applies one object of any kind, namespaced or not.
async fn apply(admin: &Client, object: serde_json::Value) -> anyhow::Result<()> {
    use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
    let object: DynamicObject = serde_json::from_value(object)?;
    let types = object.types.clone().context("an object without apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types)?;
    let (resource, capabilities) = kube::discovery::pinned_kind(admin, &gvk).await?;
    let name = object.metadata.name.clone().context("an object without a name")?;
    let api: Api<DynamicObject> = match (&capabilities.scope, &object.metadata.namespace) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(admin.clone(), ns, &resource),
        _ => Api::all_with(admin.clone(), &resource),
    };
    api.patch(
        &name,
        &PatchParams::apply("mua-sandbox").force(),
        &Patch::Apply(&object),
    )
    .await
    .with_context(|| format!("applying {} {name}", gvk.kind))?;
    Ok(())
}

/// What `sandbox.json` holds: where everything is, and the seed's service principals with a secret (the
/// identities `mua-operator run` can sign in as), each secret written to a file.
fn connection_info(
    cp: &LocalControlPlane,
    sim: &Simulator,
    args: &SandboxArgs,
    seed: &str,
) -> anyhow::Result<serde_json::Value> {
    let parsed: serde_json::Value = yaml_serde::from_str(seed)?;
    let secrets_dir = cp.work_dir.join("secrets");
    std::fs::create_dir_all(&secrets_dir)?;
    let mut identities = Vec::new();
    for principal in parsed["principals"].as_array().into_iter().flatten() {
        let (Some(client_id), Some(secret)) = (
            principal["clientId"].as_str(),
            principal["secrets"]
                .as_array()
                .and_then(|s| s.first())
                .and_then(|s| s.as_str()),
        ) else {
            continue;
        };
        let file = secrets_dir.join(client_id);
        if !file.exists() {
            write_private(&file, secret)?;
            identities.push(serde_json::json!({
                "displayName": principal["displayName"], "tenantId": principal["tenant"],
                "clientId": client_id, "objectId": principal["objectId"], "clientSecretFile": file,
            }));
        }
    }
    let people: serde_json::Map<String, serde_json::Value> = args
        .people
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                serde_json::json!({"roles": p.roles, "kubeconfig": cp.kubeconfig_path(&p.name)}),
            )
        })
        .collect();
    Ok(serde_json::json!({
        "apiServer": cp.server,
        "namespace": args.namespace,
        "kubectl": cp.bin_dir.join("kubectl"),
        "adminKubeconfig": cp.kubeconfig_path(ADMIN),
        "operatorKubeconfig": cp.kubeconfig_path(OPERATOR),
        "people": people,
        "armUrl": sim.arm_url,
        "authorityHost": sim.authority_host,
        "caFile": sim.ca_file,
        "identities": identities,
    }))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

fn print_how_to_connect(cp: &LocalControlPlane, sim: &Simulator, args: &SandboxArgs, info: &serde_json::Value) {
    let ns = &args.namespace;
    println!(
        "mua-operator sandbox: running until Ctrl-C (then everything stops and {} is removed)",
        cp.work_dir.display()
    );
    println!(
        "   kube-apiserver: {}   (namespace {ns}, bound to the seed's subscriptions)",
        cp.server
    );
    println!("   ARM simulator:  {}   (CA {})", sim.arm_url, sim.ca_file.display());
    println!("   details for scripts: {}", cp.work_dir.join("sandbox.json").display());
    println!("\n━━ kubectl and kubectl mua, as one of the people");
    println!(
        "   export PATH={}:$PATH    # kubectl of the API server's version; put kubectl-mua on PATH too",
        cp.bin_dir.display()
    );
    for person in &args.people {
        println!(
            "   export KUBECONFIG={}    # {}: {}",
            cp.kubeconfig_path(&person.name).display(),
            person.name,
            person.roles.join(", ")
        );
    }
    println!("   kubectl get mua; kubectl mua request <vault-protection> --operation DisableSoftDelete ...");
    println!("\n━━ The operator, in another terminal (both sides; pick the seed's identities below)");
    let identities = info["identities"].as_array().cloned().unwrap_or_default();
    let pick = |needle: &str| {
        identities
            .iter()
            .find(|i| i["displayName"].as_str().is_some_and(|n| n.contains(needle)))
            .or(identities.first())
            .cloned()
            .unwrap_or_default()
    };
    let (security, backup) = (pick("security"), pick("backup"));
    println!(
        "   KUBECONFIG={} mua-operator run --controllers security,backup \\",
        cp.kubeconfig_path(OPERATOR).display()
    );
    println!("     --namespace {ns} --lease-namespace {ns} --metrics-bind-address 127.0.0.1:0 \\");
    println!(
        "     --arm-url {} --authority-host {} --ca-file {} \\",
        sim.arm_url,
        sim.authority_host,
        sim.ca_file.display()
    );
    println!(
        "     --security-tenant-id {} --security-client-id {} --security-client-secret-file {} \\",
        security["tenantId"].as_str().unwrap_or("<tenant>"),
        security["clientId"].as_str().unwrap_or("<client id>"),
        security["clientSecretFile"].as_str().unwrap_or("<file>")
    );
    println!(
        "     --backup-tenant-id {} --backup-client-id {} --backup-client-secret-file {}",
        backup["tenantId"].as_str().unwrap_or("<tenant>"),
        backup["clientId"].as_str().unwrap_or("<client id>"),
        backup["clientSecretFile"].as_str().unwrap_or("<file>")
    );
    println!("   the seed's identities with a secret:");
    for identity in &identities {
        println!(
            "     {} (tenant {}, client {}): secret in {}",
            identity["displayName"].as_str().unwrap_or("?"),
            identity["tenantId"].as_str().unwrap_or("?"),
            identity["clientId"].as_str().unwrap_or("?"),
            identity["clientSecretFile"].as_str().unwrap_or("?")
        );
    }
    println!("\n━━ The Azure CLI, against the simulator (guides: Rehearse with the Azure CLI)");
    println!("   export REQUESTS_CA_BUNDLE={}", sim.ca_file.display());
    println!(
        "   az cloud register -n MuaSandbox --endpoint-resource-manager {}/ && az cloud set -n MuaSandbox",
        sim.arm_url
    );
    println!("   az login --service-principal --tenant <tenant> -u <client id> -p <secret>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_a_name_and_roles_of_the_chart() {
        let alice = parse_person("alice=backup-admin+requester").unwrap();
        assert_eq!((alice.name.as_str(), alice.roles.len()), ("alice", 2));
        assert!(parse_person("alice").unwrap_err().contains("NAME=ROLE"));
        assert!(parse_person("alice=owner").unwrap_err().contains("not a role"));
        assert!(parse_person("Alice=viewer").unwrap_err().contains("lowercase"));
        assert!(
            parse_person("mua-operator=viewer").is_err(),
            "the operator's user is taken"
        );
    }
}
