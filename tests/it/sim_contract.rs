//! Contract tests: every official example request in `shared/azure-specs/` for the resources the simulator
//! covers is sent as it is, and must be answered with the example's status code and a body with the
//! example's property names and JSON types.

use crate::simulator;

use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};
use simulator::TestSim;

fn specs_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/azure-specs");
    assert!(
        dir.is_dir(),
        "the Azure examples are expected in {} (shared/ beside the checkout)",
        dir.display()
    );
    dir
}

fn load(relative: &str) -> Value {
    let path = specs_dir().join(relative);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Fills `{name}` placeholders from the example's parameters.
fn expand(template: &str, parameters: &Value) -> String {
    let mut path = template.to_string();
    for (name, value) in parameters.as_object().unwrap() {
        if let Some(value) = value.as_str() {
            path = path.replace(&format!("{{{name}}}", name = name), value);
        }
    }
    assert!(!path.contains('{'), "unfilled placeholder in {path}");
    format!("{path}?api-version={}", parameters["api-version"].as_str().unwrap())
}

/// Keys whose values are maps of user data, compared only as objects.
const DATA_MAPS: [&str; 2] = ["tags", "userAssignedIdentities"];

/// Asserts that `actual` has every property of `example`, with the same JSON type, recursively.
fn assert_same_shape(at: &str, example: &Value, actual: &Value) {
    match (example, actual) {
        (Value::Null, _) => {}
        (Value::Object(want), Value::Object(have)) => {
            let data_map = DATA_MAPS.iter().any(|k| at.ends_with(&format!(".{k}")));
            if data_map {
                return;
            }
            for (key, value) in want {
                let path = format!("{at}.{key}");
                match have.get(key) {
                    Some(got) => assert_same_shape(&path, value, got),
                    None if value.is_null() => {}
                    None => panic!("{path} is missing from the answer: {actual}"),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) => {
            if let (Some(w), Some(h)) = (want.first(), have.first()) {
                assert_same_shape(&format!("{at}[0]"), w, h);
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_)) => {}
        _ => panic!("{at}: the example has {example}, the answer has {actual}"),
    }
}

/// Sends one example and checks the answer against it. `body_key` names the parameter holding the body.
async fn check(ts: &TestSim, token: &str, file: &str, method: Method, template: &str, body_key: Option<&str>) -> Value {
    let example = load(file);
    let parameters = &example["parameters"];
    let path = expand(template, parameters);
    let body = body_key.map(|k| parameters[k].clone());
    let reply = ts.call_with(token, &[], method, &path, body).await;
    let responses = example["responses"].as_object().unwrap();
    let expected = responses.get(&reply.status.to_string()).unwrap_or_else(|| {
        panic!(
            "{file}: answered {} (expected one of {:?}): {}",
            reply.status,
            responses.keys().collect::<Vec<_>>(),
            reply.body
        )
    });
    if let Some(want) = expected.get("body") {
        assert_same_shape(file, want, &reply.body);
    }
    for header in expected
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|h| h.keys())
    {
        assert!(
            reply.header(&header.to_ascii_lowercase()).is_some(),
            "{file}: header {header} is missing"
        );
    }
    assert!(reply.header("x-ms-request-id").is_some(), "{file}: no x-ms-request-id");
    assert!(
        reply.header("x-ms-correlation-request-id").is_some(),
        "{file}: no x-ms-correlation-request-id"
    );
    reply.body
}

const DP: &str = "Microsoft.DataProtection/2025-07-01";
const RS_BACKUP: &str = "Microsoft.RecoveryServices/backup/2025-08-01/ResourceGuardProxyCRUD";
const RS_VAULTS: &str = "Microsoft.RecoveryServices/vaults/2025-02-01";
const AUTH: &str = "Microsoft.Authorization/2020-10-01";
const RG: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers";

/// The unlock a proxy DELETE needs first (not itself one of the examples).
async fn unlock_link(ts: &TestSim, token: &str, proxy_path: &str, guard: &str, api_version: &str) {
    let body = json!({"resourceGuardOperationRequests": [format!("{guard}/deleteResourceGuardProxyRequests/default")]});
    ts.call_with(
        token,
        &[],
        Method::POST,
        &format!("{proxy_path}/unlockDelete?api-version={api_version}"),
        Some(body),
    )
    .await
    .expect(200, "unlocking the link before deleting it");
}

#[tokio::test]
async fn every_example_request_is_accepted_and_answered_like_the_example() {
    let ts = TestSim::start_with(|o| {
        o.seed = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/contract-seed.yaml"));
    })
    .await;
    let caller = ts.credential(
        "d676e86e-2206-4a7c-999c-ece52c144b5b",
        "5b0c1ea4-0b5c-4c54-9d57-3f9c1b8a2e11",
        "contract-secret",
    );
    let token = ts.token(&caller).await;
    let t = token.as_str();
    let mut checked = Vec::new();
    let mut run = async |file: String, method: Method, template: String, body: Option<&str>| {
        let answer = check(&ts, t, &file, method, &template, body).await;
        checked.push(file);
        answer
    };

    // Resource Guards.
    let guard = format!("{RG}/Microsoft.DataProtection/resourceGuards/{{resourceGuardsName}}");
    run(
        format!("{DP}/ResourceGuardCRUD/PutResourceGuard.json"),
        Method::PUT,
        guard.clone(),
        Some("parameters"),
    )
    .await;
    run(
        format!("{DP}/ResourceGuardCRUD/GetResourceGuard.json"),
        Method::GET,
        guard.clone(),
        None,
    )
    .await;
    run(
        format!("{DP}/ResourceGuardCRUD/PatchResourceGuard.json"),
        Method::PATCH,
        guard.clone(),
        Some("parameters"),
    )
    .await;
    let listed = run(
        format!("{DP}/ResourceGuardCRUD/GetResourceGuardsInResourceGroup.json"),
        Method::GET,
        format!("{RG}/Microsoft.DataProtection/resourceGuards"),
        None,
    )
    .await;
    assert_eq!(listed["value"].as_array().map(Vec::len), Some(1), "{listed}");
    run(
        format!("{DP}/ResourceGuardCRUD/GetDefaultDisableSoftDeleteRequests.json"),
        Method::GET,
        format!("{guard}/disableSoftDeleteRequests/{{requestName}}"),
        None,
    )
    .await;

    // Recovery Services vault links.
    let rs_proxy = format!("{RG}/Microsoft.RecoveryServices/vaults/{{vaultName}}/backupResourceGuardProxies");
    let rs_guard = "/subscriptions/c999d45b-944f-418c-a0d8-c3fcfd1802c8/resourceGroups/vaultguardRGNew/providers/Microsoft.DataProtection/resourceGuards/VaultGuardTestNew";
    run(
        format!("{RS_BACKUP}/PutResourceGuardProxy.json"),
        Method::PUT,
        format!("{rs_proxy}/{{resourceGuardProxyName}}"),
        Some("parameters"),
    )
    .await;
    run(
        format!("{RS_BACKUP}/GetResourceGuardProxy.json"),
        Method::GET,
        format!("{rs_proxy}/{{resourceGuardProxyName}}"),
        None,
    )
    .await;
    run(
        format!("{RS_BACKUP}/ListResourceGuardProxy.json"),
        Method::GET,
        rs_proxy.clone(),
        None,
    )
    .await;
    run(
        format!("{RS_BACKUP}/UnlockDeleteResourceGuardProxy.json"),
        Method::POST,
        format!("{rs_proxy}/{{resourceGuardProxyName}}/unlockDelete"),
        Some("parameters"),
    )
    .await;
    let proxy_path = expand(
        &format!("{rs_proxy}/{{resourceGuardProxyName}}"),
        &load(&format!("{RS_BACKUP}/DeleteResourceGuardProxy.json"))["parameters"],
    );
    unlock_link(&ts, t, proxy_path.split('?').next().unwrap(), rs_guard, "2025-08-01").await;
    run(
        format!("{RS_BACKUP}/DeleteResourceGuardProxy.json"),
        Method::DELETE,
        format!("{rs_proxy}/{{resourceGuardProxyName}}"),
        None,
    )
    .await;

    // Backup vault links.
    let dp_proxy = format!("{RG}/Microsoft.DataProtection/backupVaults/{{vaultName}}/backupResourceGuardProxies");
    let dp_guard = "/subscriptions/f9e67185-f313-4e79-aa71-6458d429369d/resourceGroups/ResourceGuardSecurityAdminRG/providers/Microsoft.DataProtection/resourceGuards/ResourceGuardTestResource";
    run(
        format!("{DP}/ResourceGuardProxyCRUD/PutResourceGuardProxy.json"),
        Method::PUT,
        format!("{dp_proxy}/{{resourceGuardProxyName}}"),
        Some("parameters"),
    )
    .await;
    run(
        format!("{DP}/ResourceGuardProxyCRUD/ListResourceGuardProxy.json"),
        Method::GET,
        dp_proxy.clone(),
        None,
    )
    .await;
    run(
        format!("{DP}/ResourceGuardProxyCRUD/UnlockDeleteResourceGuardProxy.json"),
        Method::POST,
        format!("{dp_proxy}/{{resourceGuardProxyName}}/unlockDelete"),
        Some("parameters"),
    )
    .await;
    let proxy_path = expand(
        &format!("{dp_proxy}/{{resourceGuardProxyName}}"),
        &load(&format!("{DP}/ResourceGuardProxyCRUD/DeleteResourceGuardProxy.json"))["parameters"],
    );
    unlock_link(&ts, t, proxy_path.split('?').next().unwrap(), dp_guard, "2025-07-01").await;
    run(
        format!("{DP}/ResourceGuardProxyCRUD/DeleteResourceGuardProxy.json"),
        Method::DELETE,
        format!("{dp_proxy}/{{resourceGuardProxyName}}"),
        None,
    )
    .await;

    run(
        format!("{DP}/ResourceGuardCRUD/DeleteResourceGuard.json"),
        Method::DELETE,
        guard.clone(),
        None,
    )
    .await;

    // Recovery Services vaults.
    let vault = format!("{RG}/Microsoft.RecoveryServices/vaults/{{vaultName}}");
    run(format!("{RS_VAULTS}/GETVault.json"), Method::GET, vault.clone(), None).await;
    run(
        format!("{RS_VAULTS}/PUTVault_ResourceGuardEnabled.json"),
        Method::PUT,
        vault.clone(),
        Some("vault"),
    )
    .await;
    run(
        format!("{RS_VAULTS}/PATCHVault.json"),
        Method::PATCH,
        vault.clone(),
        Some("vault"),
    )
    .await;

    // Authorization and PIM.
    let schedule =
        "/{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{roleAssignmentScheduleRequestName}";
    run(
        format!("{AUTH}/PutRoleAssignmentScheduleRequest.json"),
        Method::PUT,
        schedule.into(),
        Some("parameters"),
    )
    .await;
    run(
        format!("{AUTH}/GetRoleAssignmentScheduleRequestByName.json"),
        Method::GET,
        schedule.into(),
        None,
    )
    .await;
    run(
        format!("{AUTH}/CancelRoleAssignmentScheduleRequestByName.json"),
        Method::POST,
        format!("{schedule}/cancel"),
        None,
    )
    .await;
    run(
        format!("{AUTH}/RoleAssignments_CreateForResource.json"),
        Method::PUT,
        "/{scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}".into(),
        Some("parameters"),
    )
    .await;

    // Every example file was sent.
    let mut all: Vec<String> = walk(&specs_dir())
        .into_iter()
        .filter(|f| f.ends_with(".json"))
        .collect();
    all.sort();
    checked.sort();
    assert_eq!(checked, all, "every example in shared/azure-specs/ is covered");
}

fn walk(dir: &Path) -> Vec<String> {
    let root = specs_dir();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
        }
    }
    files
}
