//! The stock Azure CLI (azure-cli from PyPI, installed once per machine by `tests/azcli/install.sh`)
//! against the simulator, the way a person rehearses MUA: `az cloud register` with the simulator's
//! endpoints, `az login --service-principal` (or a person's `az login --use-device-code`), then ordinary
//! commands. Each test has its own simulator and its own CLI profile (`AZURE_CONFIG_DIR`), so they run in
//! parallel.

use crate::simulator;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use simulator::*;
use tokio::io::{AsyncBufReadExt, BufReader};

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

    /// `az <args> --output json` with this profile, pointed at the simulator.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
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
        command
    }

    async fn run(&self, args: &[&str]) -> AzOutput {
        let output = self.command(args).output().await.expect("az runs");
        AzOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `az login --use-device-code --tenant <tenant>` and reads its stderr until it asks the person
    /// to enter a code.
    async fn start_device_login(&self, tenant: &str) -> DeviceLogin {
        let mut child = self
            .command(&["login", "--use-device-code", "--tenant", tenant])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("az starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let shown = tokio::time::timeout(DEVICE_LOGIN_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.expect("az's stderr reads") {
                said.push_str(&line);
                said.push('\n');
                if let Some(code) = user_code_in(&line) {
                    return Some(code);
                }
            }
            None
        })
        .await;
        let user_code = match shown {
            Ok(Some(code)) => code,
            Ok(None) => panic!("az login ended without showing a code:\n{said}"),
            Err(_) => panic!("az login showed no code within {DEVICE_LOGIN_TIMEOUT:?}:\n{said}"),
        };
        // Read on, so that az never blocks on a full pipe, and keep what it says for the assertions.
        let stderr = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                said.push_str(&line);
                said.push('\n');
            }
            said
        });
        DeviceLogin {
            child,
            user_code,
            stderr,
        }
    }
}

/// How long `az login --use-device-code` may take to show its code, and to finish once the code is decided.
const DEVICE_LOGIN_TIMEOUT: Duration = Duration::from_secs(90);

/// The code in the CLI's "... enter the code ABCD2345 to authenticate." (Entra's device code message).
fn user_code_in(line: &str) -> Option<String> {
    let (_, after) = line.split_once("enter the code ")?;
    after.split_whitespace().next().map(String::from)
}

/// `az login --use-device-code` under way, waiting for a person to decide on its code.
struct DeviceLogin {
    child: tokio::process::Child,
    user_code: String,
    stderr: tokio::task::JoinHandle<String>,
}

impl DeviceLogin {
    /// Waits for `az login` to end (its polling sees the decision within one interval).
    async fn finish(self) -> AzOutput {
        let output = tokio::time::timeout(DEVICE_LOGIN_TIMEOUT, self.child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("az login did not end within {DEVICE_LOGIN_TIMEOUT:?}"))
            .expect("az login runs");
        AzOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: self.stderr.await.expect("stderr was read"),
        }
    }
}

/// A simulator whose device code clients poll every second (Entra says 5), so sign-ins end quickly.
async fn sim_with_fast_device_codes() -> TestSim {
    TestSim::start_with(|options| options.device_code_interval = Duration::from_secs(1)).await
}

/// Alice answers a code at the simulator's device login: her credentials, or `decline`.
async fn alice_decides(ts: &TestSim, user_code: &str, approve: bool) {
    let body = if approve {
        json!({"userCode": user_code, "username": "alice@contoso.example", "password": "alice-password"})
    } else {
        json!({"userCode": user_code, "decline": true})
    };
    ts.admin(Method::POST, "/_sim/devicelogin", Some(body)).await;
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

/// The walkthrough of the book's "Rehearse with the Azure CLI" (docs/src/guides/rehearse-azure-cli.md),
/// command for command: the security admin creates a guard and grants the backup identity Reader on it; the
/// backup admin links the vault; Azure refuses to disable soft delete and to remove the link until the
/// security admin elevates the backup identity on the guard; then both go through.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_login_with_a_device_code_signs_alice_in_once_she_approves_the_code() {
    let ts = sim_with_fast_device_codes().await;
    // Without a role anywhere `az login` finds no subscription: the security admin makes Alice Reader on
    // the security resource group.
    let assignment = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{}",
        security_rg(),
        uuid::Uuid::new_v4()
    );
    let reader = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SECURITY_SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"),
        "principalId": ALICE_OID,
        "principalType": "User",
    }});
    ts.call(&ts.security_side(), Method::PUT, &assignment, Some(reader))
        .await
        .expect(201, "Reader for Alice");

    let az = Az::registered(&ts).await;
    let login = az.start_device_login(CONTOSO).await;
    alice_decides(&ts, &login.user_code, true).await;
    let subscriptions = login.finish().await.ok("az login --use-device-code").json();
    assert_eq!(ids(subscriptions.as_array().unwrap()), [SECURITY_SUB]);

    let shown = az.run(&["account", "show"]).await.ok("az account show").json();
    assert_eq!(shown["user"], json!({"name": "alice@contoso.example", "type": "user"}));
    assert_eq!(shown["tenantId"], CONTOSO);

    // `--assignee <UPN>` is resolved through Microsoft Graph: MSAL gets the Graph token silently, with
    // the refresh token from the sign-in. (`--all` would list at the subscription, where Alice may read
    // nothing: ARM refuses that with AuthorizationFailed.)
    let listed = az
        .run(&[
            "role",
            "assignment",
            "list",
            "--assignee",
            "alice@contoso.example",
            "--resource-group",
            "security-rg",
        ])
        .await
        .ok("az role assignment list --assignee alice@contoso.example --resource-group security-rg")
        .json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["principalId"], ALICE_OID);
    // The CLI names the principal with Graph's answer to `directoryObjects/getByIds`.
    assert_eq!(listed[0]["principalName"], "alice@contoso.example");
    assert_eq!(listed[0]["roleDefinitionName"], "Reader");
    assert_eq!(listed[0]["scope"], security_rg());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_login_with_a_device_code_fails_when_the_code_is_declined() {
    let ts = sim_with_fast_device_codes().await;
    let az = Az::registered(&ts).await;
    let login = az.start_device_login(CONTOSO).await;
    alice_decides(&ts, &login.user_code, false).await;
    login
        .finish()
        .await
        .refused("az login with a declined code", &["AADSTS65004", "declined"]);
    let shown = az.run(&["account", "show"]).await;
    shown.refused("az account show after the declined sign-in", &["az login"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_backup_vault_backup_properties_show_reads_storage_and_soft_delete() {
    let ts = TestSim::start().await;
    let az = Az::backup_side_in_backup_subscription(&ts).await;
    let shown = on_prod_vault(&az, &["backup-properties", "show"])
        .await
        .ok("backup-properties show")
        .json();
    // The CLI prints [storage config, vault config].
    assert_eq!(shown[0]["name"], "vaultstorageconfig", "{shown}");
    assert_eq!(shown[0]["properties"]["storageModelType"], "GeoRedundant");
    assert_eq!(shown[1]["name"], "vaultconfig", "{shown}");
    assert_eq!(shown[1]["properties"]["softDeleteFeatureState"], "Enabled");
    assert_eq!(shown[1]["properties"]["softDeleteRetentionPeriodInDays"], 14);
}
