//! The stock Azure CLI (azure-cli from PyPI, installed once per machine by `tests/azcli/install.sh`)
//! against the simulator, the way a person rehearses MUA: `az cloud register` with the simulator's
//! endpoints, `az login --service-principal`, then ordinary commands. Each test has its own simulator
//! and its own CLI profile (`AZURE_CONFIG_DIR`), so they run in parallel.

mod simulator;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use reqwest::Method;
use serde_json::Value;
use simulator::*;

/// The directory holding `az`, installed (or found in the cache) by the project's script.
fn az_bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        mua_operator::control_plane::built_by("tests/azcli/install.sh")
            .unwrap_or_else(|err| panic!("the Azure CLI is not available: {err:#}"))
    })
}

/// What one `az` command did.
struct AzOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

impl AzOutput {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("az printed no JSON ({err}): {}", self.stdout))
    }

    /// Panics with what the CLI said unless the command succeeded.
    fn ok(self, what: &str) -> AzOutput {
        assert!(self.success, "{what} failed:\n{}", self.stderr);
        self
    }

    /// Panics unless the command failed with an error that says each of `said`.
    fn refused(&self, what: &str, said: &[&str]) {
        assert!(!self.success, "{what} succeeded: {}", self.stdout);
        for text in said {
            assert!(self.stderr.contains(text), "{what}: no '{text}' in:\n{}", self.stderr);
        }
    }
}

/// The Azure CLI with a profile of its own, pointed at one simulator.
struct Az {
    config: tempfile::TempDir,
    ca_file: PathBuf,
    arm_url: String,
}

impl Az {
    /// A fresh profile with the simulator registered (from its metadata endpoint) and made the active cloud.
    async fn registered(ts: &TestSim) -> Az {
        let bin = tokio::task::spawn_blocking(az_bin_dir).await.unwrap();
        assert!(bin.join("az").exists());
        let az = Az {
            config: tempfile::tempdir().unwrap(),
            ca_file: ts.sim.ca_file.clone(),
            arm_url: ts.sim.arm_url.clone(),
        };
        az.run(&[
            "cloud",
            "register",
            "--name",
            "MuaSim",
            "--endpoint-resource-manager",
            &az.arm_url,
        ])
        .await
        .ok("az cloud register");
        az.run(&["cloud", "set", "--name", "MuaSim"]).await.ok("az cloud set");
        az
    }

    /// `az login --service-principal`; returns the subscriptions it found.
    async fn login(ts: &TestSim, client_id: &str, secret: &str, tenant: &str) -> (Az, Vec<Value>) {
        let az = Az::registered(ts).await;
        let subscriptions = az
            .run(&[
                "login",
                "--service-principal",
                "--username",
                client_id,
                "--password",
                secret,
                "--tenant",
                tenant,
            ])
            .await
            .ok("az login")
            .json();
        (az, subscriptions.as_array().cloned().unwrap_or_default())
    }

    /// Logged in as the backup side, with the backup subscription selected (`az account set`).
    async fn backup_side_in_backup_subscription(ts: &TestSim) -> Az {
        let (az, _) = Az::login(ts, BACKUP_APP, BACKUP_SECRET, CONTOSO).await;
        az.run(&["account", "set", "--subscription", BACKUP_SUB])
            .await
            .ok("az account set");
        az
    }

    async fn run(&self, args: &[&str]) -> AzOutput {
        let mut command = tokio::process::Command::new(az_bin_dir().join("az"));
        command
            .args(args)
            .args(["--output", "json"])
            .env("AZURE_CONFIG_DIR", self.config.path())
            // The simulator's certificates come from its own CA.
            .env("REQUESTS_CA_BUNDLE", &self.ca_file)
            // The documented setting for clouds whose authority Microsoft's instance discovery does not
            // know (Azure Stack, and the simulator): ask the authority itself.
            .env("AZURE_CORE_INSTANCE_DISCOVERY", "false")
            .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
            .env("AZURE_CORE_SURVEY_MESSAGE", "false")
            .env("AZURE_CORE_NO_COLOR", "true")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env_remove("AZURE_TENANT_ID")
            .kill_on_drop(true);
        let output = command.output().await.expect("az runs");
        AzOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn ids(subscriptions: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = subscriptions
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_cloud_register_reads_the_simulators_endpoints_from_its_metadata() {
    let ts = TestSim::start().await;
    let az = Az::registered(&ts).await;
    let cloud = az
        .run(&["cloud", "show", "--name", "MuaSim"])
        .await
        .ok("az cloud show")
        .json();
    assert_eq!(cloud["isActive"], true);
    let endpoints = &cloud["endpoints"];
    assert_eq!(endpoints["resourceManager"], ts.sim.arm_url.as_str());
    // MSAL signs in at the simulator's authority, for an audience ARM accepts.
    assert_eq!(endpoints["activeDirectory"], format!("{}/", ts.sim.authority_host));
    assert_eq!(
        endpoints["activeDirectoryResourceId"],
        "https://management.core.windows.net/"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_login_lists_the_subscriptions_where_the_principal_has_a_role() {
    let ts = TestSim::start().await;
    let (az, subscriptions) = Az::login(&ts, BACKUP_APP, BACKUP_SECRET, CONTOSO).await;
    // Backup Contributor on the backup subscription, Reader on a resource group of the security one;
    // nothing in the other tenant's subscription.
    let mut want = vec![BACKUP_SUB.to_string(), SECURITY_SUB.to_string()];
    want.sort();
    assert_eq!(ids(&subscriptions), want);
    assert!(
        subscriptions
            .iter()
            .all(|s| s["tenantId"] == CONTOSO && s["user"]["type"] == "servicePrincipal")
    );

    let listed = az.run(&["account", "list"]).await.ok("az account list").json();
    assert_eq!(ids(listed.as_array().unwrap()), want);
    let shown = az
        .run(&["account", "show", "--subscription", "backup-prod"])
        .await
        .ok("az account show")
        .json();
    assert_eq!(shown["id"], BACKUP_SUB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_login_with_a_wrong_secret_is_refused_by_the_token_endpoint() {
    let ts = TestSim::start().await;
    let az = Az::registered(&ts).await;
    let out = az
        .run(&[
            "login",
            "--service-principal",
            "--username",
            BACKUP_APP,
            "--password",
            "not-the-secret",
            "--tenant",
            CONTOSO,
        ])
        .await;
    out.refused("az login with a wrong secret", &["AADSTS7000215"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_backup_vault_show_and_list_read_the_seeded_vaults() {
    let ts = TestSim::start().await;
    let az = Az::backup_side_in_backup_subscription(&ts).await;

    let shown = az
        .run(&[
            "backup",
            "vault",
            "show",
            "--name",
            "prod-vault",
            "--resource-group",
            "backup-rg",
        ])
        .await
        .ok("az backup vault show")
        .json();
    assert_eq!(shown["id"], vault("prod-vault"));
    assert_eq!(shown["location"], "westeurope");
    assert_eq!(
        shown["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"],
        "Enabled"
    );
    assert_eq!(
        shown["properties"]["securitySettings"]["multiUserAuthorization"],
        "Disabled"
    );

    let in_group = az
        .run(&[
            "backup",
            "vault",
            "list",
            "--resource-group",
            "backup-rg",
            "--query",
            "[].name",
        ])
        .await
        .ok("az backup vault list -g")
        .json();
    assert_eq!(in_group, serde_json::json!(["prod-vault"]));
    let mut in_subscription: Vec<String> = serde_json::from_value(
        az.run(&["backup", "vault", "list", "--query", "[].name"])
            .await
            .ok("az backup vault list")
            .json(),
    )
    .unwrap();
    in_subscription.sort();
    assert_eq!(in_subscription, ["east-vault", "prod-vault"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_group_show_finds_a_resource_group_in_any_casing_and_refuses_an_unknown_one() {
    let ts = TestSim::start().await;
    let az = Az::backup_side_in_backup_subscription(&ts).await;
    let group = az
        .run(&["group", "show", "--name", "BACKUP-RG"])
        .await
        .ok("az group show")
        .json();
    assert_eq!(group["name"], "backup-rg");
    assert_eq!(group["location"], "westeurope");
    assert_eq!(
        group["id"],
        format!("/subscriptions/{BACKUP_SUB}/resourceGroups/backup-rg")
    );

    let missing = az.run(&["group", "show", "--name", "no-such-rg"]).await;
    missing.refused("az group show (no such group)", &["ResourceGroupNotFound"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_provider_register_needs_a_role_on_the_subscription() {
    let ts = TestSim::start().await;
    let az = Az::backup_side_in_backup_subscription(&ts).await;
    let provider = az
        .run(&["provider", "show", "--namespace", "Microsoft.RecoveryServices"])
        .await
        .ok("az provider show")
        .json();
    assert_eq!(provider["registrationState"], "Registered");
    // Backup Contributor manages vaults but may not register providers (`*/register/action`).
    let register = az
        .run(&["provider", "register", "--namespace", "Microsoft.RecoveryServices"])
        .await;
    register.refused(
        "az provider register",
        &["AuthorizationFailed", "Microsoft.RecoveryServices/register/action"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_rest_creates_and_reads_a_guard_at_the_dataprotection_extensions_api_version() {
    let ts = TestSim::start().await;
    let (az, _) = Az::login(&ts, SECURITY_APP, SECURITY_SECRET, CONTOSO).await;
    let (guard_id, created) = guard_by_az_rest(&az, "cli-guard").await;
    assert_eq!(created["properties"]["provisioningState"], "Succeeded");
    let url = format!("{guard_id}?api-version=2023-11-01");
    let read = az
        .run(&["rest", "--method", "get", "--url", &url])
        .await
        .ok("az rest get")
        .json();
    assert_eq!(read["id"], guard_id.as_str());
    let protected = read["properties"]["resourceGuardOperations"].as_array().map(Vec::len);
    assert!(protected.is_some_and(|n| n > 0), "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_role_assignment_create_grants_reader_on_a_guard() {
    let ts = TestSim::start().await;
    let guard_id = ts.create_guard("reader-guard").await;
    // Alice holds no role on the security side: she cannot read the guard yet.
    let alice = ts.user_token(CONTOSO, "alice@contoso.example", "alice-password").await;
    let before = ts.call_with(&alice, &[], Method::GET, &guard_id, None).await;
    assert_eq!((before.status, before.code()), (403, "AuthorizationFailed"));

    let (az, _) = Az::login(&ts, SECURITY_APP, SECURITY_SECRET, CONTOSO).await;
    let assignee = ["--assignee-object-id", ALICE_OID, "--assignee-principal-type", "User"];
    let assignment = role_assignment_create(&az, "Reader", &assignee, &guard_id)
        .await
        .ok("az role assignment create")
        .json();
    assert!(
        assignment["roleDefinitionId"]
            .as_str()
            .is_some_and(|id| id.ends_with("/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7")),
        "{assignment}"
    );
    assert_eq!(assignment["scope"], guard_id.as_str());
    ts.call_with(&alice, &[], Method::GET, &guard_id, None)
        .await
        .expect(200, "Alice reads the guard as Reader");
}

const ALICE_OID: &str = "8b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_backup_vault_resource_guard_mapping_update_links_the_vault_with_reader_on_the_guard() {
    let ts = TestSim::start().await;
    let guard_id = ts.create_guard("cli-mapping-guard").await;
    let az = Az::backup_side_in_backup_subscription(&ts).await;
    let vault_args = ["--name", "prod-vault", "--resource-group", "backup-rg"];
    let update: Vec<&str> = ["backup", "vault", "resource-guard-mapping", "update"]
        .into_iter()
        .chain(vault_args)
        .chain(["--resource-guard-id", guard_id.as_str()])
        .collect();
    az.run(&update)
        .await
        .ok("az backup vault resource-guard-mapping update");

    let show: Vec<&str> = ["backup", "vault", "resource-guard-mapping", "show"]
        .into_iter()
        .chain(vault_args)
        .collect();
    let mapping = az
        .run(&show)
        .await
        .ok("az backup vault resource-guard-mapping show")
        .json();
    assert_eq!(mapping["properties"]["resourceGuardResourceId"], guard_id.as_str());
    let shown: Vec<&str> = ["backup", "vault", "show"].into_iter().chain(vault_args).collect();
    let linked = az.run(&shown).await.ok("az backup vault show").json();
    assert_eq!(
        linked["properties"]["securitySettings"]["multiUserAuthorization"],
        "Enabled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_backup_vault_list_follows_the_next_link_past_the_first_page() {
    let ts = TestSim::start().await;
    let backup = ts.backup_side();
    // One more page than the first: 105 new vaults beside prod-vault.
    for n in 0..105 {
        let body = serde_json::json!({"location": "westeurope", "sku": {"name": "Standard"}, "properties": {}});
        ts.call(&backup, Method::PUT, &vault(&format!("paged-{n:03}")), Some(body))
            .await
            .expect(201, "a new vault");
    }
    let az = Az::backup_side_in_backup_subscription(&ts).await;
    let names: Vec<String> = serde_json::from_value(
        az.run(&[
            "backup",
            "vault",
            "list",
            "--resource-group",
            "backup-rg",
            "--query",
            "[].name",
        ])
        .await
        .ok("az backup vault list")
        .json(),
    )
    .unwrap();
    assert_eq!(names.len(), 106, "{names:?}");
    assert!(names.iter().any(|n| n == "paged-104") && names.iter().any(|n| n == "prod-vault"));
}

/// A guard created with `az rest` at the dataprotection extension's api-version: its ID and ARM's answer.
async fn guard_by_az_rest(security: &Az, name: &str) -> (String, Value) {
    let guard_id = guard(name);
    let url = format!("{guard_id}?api-version=2023-11-01");
    let created = security
        .run(&[
            "rest",
            "--method",
            "put",
            "--url",
            &url,
            "--body",
            r#"{"location": "westeurope"}"#,
        ])
        .await
        .ok("az rest put (the guard)")
        .json();
    (guard_id, created)
}

/// `az role assignment create --role <role> <assignee...> --scope <scope>`.
async fn role_assignment_create(az: &Az, role: &str, assignee: &[&str], scope: &str) -> AzOutput {
    let command: Vec<&str> = ["role", "assignment", "create", "--role", role]
        .into_iter()
        .chain(assignee.iter().copied())
        .chain(["--scope", scope])
        .collect();
    az.run(&command).await
}

/// `--assignee <appId>`: the CLI resolves the application ID to its service principal through Microsoft
/// Graph.
async fn assign_by_app_id(security: &Az, role: &str, app_id: &str, scope: &str) -> Value {
    role_assignment_create(security, role, &["--assignee", app_id], scope)
        .await
        .ok("az role assignment create --assignee <appId>")
        .json()
}

const VAULT_ARGS: [&str; 4] = ["--name", "prod-vault", "--resource-group", "backup-rg"];

/// `az backup vault <args> --name prod-vault --resource-group backup-rg`
async fn on_prod_vault(az: &Az, args: &[&str]) -> AzOutput {
    let command: Vec<&str> = ["backup", "vault"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(VAULT_ARGS)
        .collect();
    az.run(&command).await
}

fn soft_delete_state(vault: &Value) -> &Value {
    &vault["properties"]["securitySettings"]["softDeleteSettings"]["softDeleteState"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_role_assignment_create_resolves_an_app_id_through_microsoft_graph() {
    let ts = TestSim::start().await;
    let (security, _) = Az::login(&ts, SECURITY_APP, SECURITY_SECRET, CONTOSO).await;
    let (guard_id, _) = guard_by_az_rest(&security, "graph-guard").await;
    let assignment = assign_by_app_id(&security, "Reader", BACKUP_APP, &guard_id).await;
    assert_eq!(assignment["principalId"], BACKUP_OID);
    assert_eq!(assignment["principalType"], "ServicePrincipal");
    assert_eq!(assignment["scope"], guard_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_role_assignment_create_refuses_an_assignee_the_directory_does_not_know() {
    let ts = TestSim::start().await;
    let (security, _) = Az::login(&ts, SECURITY_APP, SECURITY_SECRET, CONTOSO).await;
    let (guard_id, _) = guard_by_az_rest(&security, "unknown-assignee-guard").await;
    let unknown = ["--assignee", "nobody@contoso.example"];
    let out = role_assignment_create(&security, "Reader", &unknown, &guard_id).await;
    out.refused("an unknown assignee", &["Cannot find user or service principal"]);
}

/// The walkthrough of README's "Rehearse with the Azure CLI", command for command: the security admin
/// creates a guard and grants the backup identity Reader on it; the backup admin links the vault; Azure
/// refuses to disable soft delete and to remove the link until the security admin elevates the backup
/// identity on the guard; then both go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mua_walkthrough_with_the_stock_azure_cli() {
    let ts = TestSim::start().await;
    let (security, _) = Az::login(&ts, SECURITY_APP, SECURITY_SECRET, CONTOSO).await;
    let (guard_id, _) = guard_by_az_rest(&security, "walkthrough-guard").await;
    assign_by_app_id(&security, "Reader", BACKUP_APP, &guard_id).await;

    let backup = Az::backup_side_in_backup_subscription(&ts).await;
    on_prod_vault(
        &backup,
        &["resource-guard-mapping", "update", "--resource-guard-id", &guard_id],
    )
    .await
    .ok("resource-guard-mapping update");
    let mapping = on_prod_vault(&backup, &["resource-guard-mapping", "show"])
        .await
        .ok("resource-guard-mapping show")
        .json();
    assert_eq!(mapping["properties"]["resourceGuardResourceId"], guard_id.as_str());

    // Reader on the guard is enough to link, not to weaken: both critical operations are refused.
    let disable = ["backup-properties", "set", "--soft-delete-feature-state", "Disable"];
    on_prod_vault(&backup, &disable).await.refused(
        "disabling soft delete without elevation",
        &["LinkedAuthorizationFailed"],
    );
    let unlink = ["resource-guard-mapping", "delete", "--yes"];
    on_prod_vault(&backup, &unlink)
        .await
        .refused("removing the link without elevation", &["LinkedAuthorizationFailed"]);
    let vault = on_prod_vault(&backup, &["show"]).await.ok("vault show").json();
    assert_eq!(soft_delete_state(&vault), "Enabled");
    assert_eq!(
        vault["properties"]["securitySettings"]["multiUserAuthorization"],
        "Enabled"
    );

    // The security admin elevates the backup identity on the guard; now both go through.
    assign_by_app_id(&security, "Backup MUA Operator", BACKUP_APP, &guard_id).await;
    let config = on_prod_vault(&backup, &disable)
        .await
        .ok("backup-properties set")
        .json();
    assert_eq!(config["properties"]["softDeleteFeatureState"], "Disabled");
    on_prod_vault(&backup, &unlink)
        .await
        .ok("resource-guard-mapping delete");
    let vault = on_prod_vault(&backup, &["show"]).await.ok("vault show").json();
    assert_eq!(soft_delete_state(&vault), "Disabled");
    assert_eq!(
        vault["properties"]["securitySettings"]["multiUserAuthorization"],
        "Disabled"
    );
}
