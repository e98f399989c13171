//! The three CRDs against a real kube-apiserver: established, valid objects round-trip, invalid ones are
//! rejected at admission with a message a person understands, and kubectl shows columns and docs.

use crate::cluster;

use cluster::{ControlPlane, TestNamespace, User};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use mua_operator::crd::critical_operation_request::CriticalOperationRequestStatus;
use mua_operator::crd::{CriticalOperationRequest, ElevationPolicy, ResourceGuard, VaultProtection};
use serde_json::{Value, json};

fn example(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    yaml_serde::from_str(&text).unwrap_or_else(|err| panic!("parsing {}: {err}", path.display()))
}

fn guard() -> Value {
    example("resource-guard.yaml")
}

fn vault_protection() -> Value {
    example("vault-protection.yaml")
}

fn request() -> Value {
    example("critical-operation-request.yaml")
}

/// An untyped API for the kind of `object`, so tests can send what the typed structs cannot express.
fn dynamic_api(ns: &TestNamespace, object: &Value) -> Api<DynamicObject> {
    let resource = match object["kind"].as_str() {
        Some("ResourceGuard") => ApiResource::erase::<ResourceGuard>(&()),
        Some("VaultProtection") => ApiResource::erase::<VaultProtection>(&()),
        Some("CriticalOperationRequest") => ApiResource::erase::<CriticalOperationRequest>(&()),
        Some("ElevationPolicy") => ApiResource::erase::<ElevationPolicy>(&()),
        other => panic!("not one of ours: {other:?}"),
    };
    Api::namespaced_with(ns.admin.clone(), &ns.name, &resource)
}

async fn create(ns: &TestNamespace, object: &Value) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject = serde_json::from_value(object.clone()).expect("a well-formed object");
    dynamic_api(ns, &serde_json::to_value(&object).unwrap())
        .create(&PostParams::default(), &object)
        .await
}

/// Asserts that the API server refused the request as invalid (422) and said `expected`.
fn assert_invalid(result: Result<DynamicObject, kube::Error>, expected: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            let (code, message) = (status.code, status.message);
            eprintln!("  rejected: {message}");
            assert_eq!(code, 422, "expected 422 Invalid, got {code}: {message}");
            assert!(
                message.contains(expected),
                "expected the rejection to say {expected:?}, it said: {message}"
            );
        }
        Err(other) => panic!("expected an admission rejection saying {expected:?}, got {other}"),
        Ok(obj) => panic!(
            "expected a rejection saying {expected:?}, but {} was accepted",
            obj.name_any()
        ),
    }
}

fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let target = object.pointer_mut(parent).unwrap_or_else(|| panic!("{parent} exists"));
    target[key] = value;
    object
}

fn without(mut object: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    object.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
    object
}

const SUB: &str = "5e13b949-1218-4d18-8b99-7e12155ec4f7";
const ITEM: &str = "backupFabrics/Azure/protectionContainers/iaasvmcontainerv2;app-rg;vm1/protectedItems/vm;iaasvmcontainerv2;app-rg;vm1";

#[tokio::test]
async fn the_three_crds_are_established_with_names_and_category() {
    let cp = ControlPlane::shared();
    let crds: Api<CustomResourceDefinition> = Api::all(cp.client(User::Admin).await);
    for (plural, kind, short) in [
        ("resourceguards", "ResourceGuard", "rg"),
        ("vaultprotections", "VaultProtection", "vp"),
        ("criticaloperationrequests", "CriticalOperationRequest", "cor"),
    ] {
        let crd = crds
            .get(&format!("{plural}.mua.dev"))
            .await
            .expect("the CRD is installed");
        let status = crd.status.expect("an installed CRD has status");
        let established = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "Established")
            .expect("an Established condition");
        assert_eq!(
            established.status, "True",
            "{plural} is not Established: {:?}",
            established.message
        );
        let names = status.accepted_names.expect("accepted names");
        assert_eq!(names.kind, kind);
        assert_eq!(names.short_names, Some(vec![short.to_string()]));
        assert_eq!(names.categories, Some(vec!["mua".to_string()]));
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{plural} has a status subresource"
        );
    }
}

#[tokio::test]
async fn no_short_name_of_ours_is_taken_by_another_resource_of_the_cluster() {
    // `kubectl get <short name>` must find our kind, not warn and list another (as `ep` did: Endpoints).
    let client = ControlPlane::shared().client(User::Admin).await;
    let mut lists = vec![client.list_core_api_resources("v1").await.unwrap()];
    for group in client.list_api_groups().await.unwrap().groups {
        if let Some(version) = group.preferred_version {
            lists.push(client.list_api_group_resources(&version.group_version).await.unwrap());
        }
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for list in lists {
        let is_ours = list.group_version.starts_with("mua.dev/");
        for resource in list.resources {
            for short in resource.short_names.unwrap_or_default() {
                let taken = (short, format!("{}/{}", list.group_version, resource.name));
                if is_ours { ours.push(taken) } else { theirs.push(taken) }
            }
        }
    }
    assert_eq!(ours.len(), 5, "every kind of ours has a short name: {ours:?}");
    let clashes: Vec<_> = ours
        .iter()
        .filter(|(short, _)| theirs.iter().any(|(other, _)| other == short))
        .collect();
    assert!(clashes.is_empty(), "short names another resource also has: {clashes:?}");
}

#[tokio::test]
async fn valid_examples_are_accepted_and_round_trip_with_defaults() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("roundtrip").await;

    let sent: ResourceGuard = serde_json::from_value(guard()).unwrap();
    let created = ns
        .admin_api::<ResourceGuard>()
        .create(&PostParams::default(), &sent)
        .await
        .unwrap();
    let read = ns.admin_api::<ResourceGuard>().get(&created.name_any()).await.unwrap();
    assert_eq!(read.spec, sent.spec, "the guard's spec round-trips unchanged");
    assert_eq!(
        read.spec.management_policy,
        mua_operator::crd::shared::ManagementPolicy::Manage
    );

    let sent: ElevationPolicy = serde_json::from_value(example("elevation-policy.yaml")).unwrap();
    ns.admin_api::<ElevationPolicy>()
        .create(&PostParams::default(), &sent)
        .await
        .unwrap();
    let read = ns.admin_api::<ElevationPolicy>().get("central-guard").await.unwrap();
    assert_eq!(
        read.spec, sent.spec,
        "the elevation policy's spec round-trips unchanged"
    );
    assert_eq!(
        read.spec.rules.role,
        mua_operator::crd::elevation_policy::ElevationRole::BackupMuaOperator,
        "the narrowest role unless asked"
    );

    let sent: VaultProtection = serde_json::from_value(vault_protection()).unwrap();
    ns.admin_api::<VaultProtection>()
        .create(&PostParams::default(), &sent)
        .await
        .unwrap();
    let read = ns.admin_api::<VaultProtection>().get("prod-vault").await.unwrap();
    assert_eq!(read.spec, sent.spec);

    // Defaults are applied by the API server itself, so every client sees the same object.
    let minimal = json!({
        "apiVersion": "mua.dev/v1alpha1", "kind": "VaultProtection",
        "metadata": {"name": "minimal"},
        "spec": {
            "vault": {"kind": "BackupVault", "subscriptionId": SUB, "resourceGroup": "rg", "name": "bv1"},
            "guard": {"id": "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/sec/providers/Microsoft.DataProtection/resourceGuards/g1",
                      "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47"}
        }
    });
    create(&ns, &minimal).await.unwrap();
    let read = ns.admin_api::<VaultProtection>().get("minimal").await.unwrap();
    assert_eq!(
        read.spec.multi_user_authorization,
        mua_operator::crd::vault_protection::MultiUserAuthorization::Enabled
    );
    assert_eq!(
        read.spec.approval.required_approvals, None,
        "nothing narrowed unless asked"
    );
    assert_eq!(read.spec.approval.max_duration, None);
    assert_eq!(
        read.spec.deletion_policy,
        mua_operator::crd::vault_protection::VaultDeletionPolicy::Orphan
    );

    let sent: CriticalOperationRequest = serde_json::from_value(request()).unwrap();
    ns.admin_api::<CriticalOperationRequest>()
        .create(&PostParams::default(), &sent)
        .await
        .unwrap();
    let read = ns
        .admin_api::<CriticalOperationRequest>()
        .get("disable-soft-delete")
        .await
        .unwrap();
    // The chart's MutatingAdmissionPolicy fills in the requester and their groups from the creating user.
    let mut expected = sent.spec.clone();
    expected.requester = Some("admin".into());
    expected.requester_groups = vec!["system:masters".into(), "system:authenticated".into()];
    assert_eq!(read.spec, expected);

    // A request that carries its action keeps the policy body exactly as written.
    let sent: CriticalOperationRequest =
        serde_json::from_value(example("critical-operation-request-action.yaml")).unwrap();
    ns.admin_api::<CriticalOperationRequest>()
        .create(&PostParams::default(), &sent)
        .await
        .unwrap();
    let read = ns
        .admin_api::<CriticalOperationRequest>()
        .get("shorten-daily-retention")
        .await
        .unwrap();
    assert_eq!(read.spec.action, sent.spec.action);
}

#[tokio::test]
async fn status_is_a_subresource_that_the_main_resource_cannot_write() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("status").await;
    let api = ns.admin_api::<CriticalOperationRequest>();
    let mut sent: CriticalOperationRequest = serde_json::from_value(request()).unwrap();
    sent.status = Some(CriticalOperationRequestStatus {
        phase: Some(mua_operator::crd::critical_operation_request::RequestPhase::Active),
        ..Default::default()
    });
    let created = api.create(&PostParams::default(), &sent).await.unwrap();
    assert_eq!(created.status, None, "status sent on create is dropped");

    let patch = json!({"status": {"phase": "Pending"}});
    let patched = api
        .patch_status("disable-soft-delete", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        patched.status.and_then(|s| s.phase),
        Some(mua_operator::crd::critical_operation_request::RequestPhase::Pending)
    );
}

#[tokio::test]
async fn invalid_objects_are_rejected_at_admission_with_a_clear_message() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("invalid").await;
    let bv_id = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/bv1");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "excluding a mandatory operation",
            with(
                guard(),
                "/spec/excludedOperations",
                json!(["ModifyBackupPolicy", "DisableSoftDelete"]),
            ),
            "DisableSoftDelete and DisableMultiUserAuthorization are mandatory critical operations and cannot be excluded",
        ),
        (
            "excluding the unlink operation",
            with(
                guard(),
                "/spec/excludedOperations",
                json!(["DisableMultiUserAuthorization"]),
            ),
            "are mandatory critical operations and cannot be excluded",
        ),
        (
            "excluding an operation that does not exist",
            with(guard(), "/spec/excludedOperations", json!(["DeleteEverything"])),
            "Unsupported value: \"DeleteEverything\"",
        ),
        (
            "a malformed subscription ID",
            with(
                guard(),
                "/spec/subscriptionId",
                json!("0b352192dcac4cc7992ea96190ccc68c"),
            ),
            "subscriptionId must be a GUID",
        ),
        (
            "a guard without a region",
            without(guard(), "/spec/region"),
            "spec.region: Required value",
        ),
        (
            "a region given by its display name",
            with(guard(), "/spec/region", json!("West Europe")),
            "region must be an Azure region's programmatic name",
        ),
        (
            "a resource group ending in a period",
            with(guard(), "/spec/resourceGroup", json!("security-rg.")),
            "resourceGroup must be 1-90 characters",
        ),
        (
            "a guard name starting with a digit",
            with(guard(), "/spec/name", json!("1guard")),
            "name must be 2-50 characters, start with a letter",
        ),
        (
            "a tag value longer than Azure allows",
            with(guard(), "/spec/tags", json!({"owner": "x".repeat(257)})),
            "tag keys must be at most 512 characters and tag values at most 256",
        ),
        (
            "a vault ID of the wrong resource type",
            with(
                vault_protection(),
                "/spec/vault/id",
                json!(format!(
                    "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa1"
                )),
            ),
            "vault.id must be the ARM ID of a vault",
        ),
        (
            "a vault given both by ID and by parts",
            with(vault_protection(), "/spec/vault/name", json!("prod-vault")),
            "set either vault.id alone, or all of vault.kind",
        ),
        (
            "a guard given both by name and by ID",
            with(
                vault_protection(),
                "/spec/guard/id",
                json!(
                    "/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/sec/providers/Microsoft.DataProtection/resourceGuards/g1"
                ),
            ),
            "set exactly one of guard.name",
        ),
        (
            "a guard ID that names a vault",
            with(vault_protection(), "/spec/guard", json!({"id": bv_id})),
            "guard.id must be the ARM ID of a Resource Guard",
        ),
        (
            "a policy allowing 25 hours of elevation",
            with(vault_protection(), "/spec/approval/maxDuration", json!("25h")),
            "approval.maxDuration must be between 5m and 24h",
        ),
        (
            "a 0-minute duration",
            with(request(), "/spec/duration", json!("0m")),
            "duration must be between 5m and 24h",
        ),
        (
            "a 48-hour duration",
            with(request(), "/spec/duration", json!("48h")),
            "duration must be between 5m and 24h",
        ),
        (
            "an ISO 8601 duration",
            with(request(), "/spec/duration", json!("PT1H")),
            "duration must be a duration such as 30m, 2h or 1h30m",
        ),
        (
            "an empty justification",
            with(request(), "/spec/justification", json!("")),
            "justification must not be empty or only whitespace",
        ),
        (
            "a justification of blanks",
            with(request(), "/spec/justification", json!("   \t ")),
            "justification must not be empty or only whitespace",
        ),
        (
            "a justification longer than 1000 characters",
            with(request(), "/spec/justification", json!("x".repeat(1001))),
            "spec.justification: Too long",
        ),
        (
            "an empty ticket number",
            with(request(), "/spec/ticket/number", json!(" ")),
            "ticket.number must not be empty or only whitespace",
        ),
        (
            "a ticket system longer than 64 characters",
            with(request(), "/spec/ticket/system", json!("s".repeat(65))),
            "spec.ticket.system: Too long",
        ),
        (
            "an operation that does not exist",
            with(request(), "/spec/operation", json!("FormatTheVault")),
            "Unsupported value: \"FormatTheVault\"",
        ),
        (
            "a principal whose object ID is not a GUID",
            with(
                with(request(), "/spec/operation", json!("ChangeMarsSecurityPin")),
                "/spec/principal",
                json!({"objectId": "backup-admin@example.com"}),
            ),
            "objectId must be a GUID",
        ),
        (
            "a principal for an operation the operator performs itself",
            with(
                request(),
                "/spec/principal",
                json!({"objectId": "9f2c1d4e-5b6a-4c3d-8e7f-0a1b2c3d4e5f"}),
            ),
            "performed by the operator itself and take no principal",
        ),
        (
            "an operation done by hand without the principal to elevate",
            with(request(), "/spec/operation", json!("ChangeMarsSecurityPin")),
            "needs the principal to elevate",
        ),
        (
            "an action that does not match the operation",
            with(
                with(request(), "/spec/operation", json!("ModifyBackupPolicy")),
                "/spec/action",
                json!({"stopProtectionWithDeleteData": {"item": ITEM}}),
            ),
            "the action must match the operation",
        ),
        (
            "both a principal and an action",
            with(
                with(
                    with(request(), "/spec/operation", json!("StopProtectionWithDeleteData")),
                    "/spec/action",
                    json!({"stopProtectionWithDeleteData": {"item": ITEM}}),
                ),
                "/spec/principal",
                json!({"objectId": "9f2c1d4e-5b6a-4c3d-8e7f-0a1b2c3d4e5f"}),
            ),
            "either a principal",
        ),
        (
            "an action for an operation the VaultProtection's spec drives",
            with(
                request(),
                "/spec/action",
                json!({"stopProtectionWithDeleteData": {"item": ITEM}}),
            ),
            "take no principal and no action",
        ),
        (
            "an action with two changes",
            with(
                with(request(), "/spec/operation", json!("ModifyProtection")),
                "/spec/action",
                json!({"modifyProtection": {"item": ITEM, "policy": "short"}, "stopProtectionWithDeleteData": {"item": ITEM}}),
            ),
            "exactly one of",
        ),
        (
            "a policy change without the policy's properties",
            with(
                with(request(), "/spec/operation", json!("ModifyBackupPolicy")),
                "/spec/action",
                json!({"modifyBackupPolicy": {"name": "daily", "policy": {"name": "daily"}}}),
            ),
            "spec.action.modifyBackupPolicy.policy.properties: Required value",
        ),
        (
            "an item path that is not under backupFabrics",
            with(
                with(request(), "/spec/operation", json!("StopProtectionWithDeleteData")),
                "/spec/action",
                json!({"stopProtectionWithDeleteData": {"item": "protectedItems/vm1"}}),
            ),
            "must be a protected item's path under the vault",
        ),
        (
            "an item path that climbs out of the vault",
            with(
                with(request(), "/spec/operation", json!("StopProtectionWithDeleteData")),
                "/spec/action",
                json!({"stopProtectionWithDeleteData": {"item": "backupFabrics/../../other-vault/backupFabrics/Azure/protectionContainers/c/protectedItems/i"}}),
            ),
            "must be a protected item's path under the vault",
        ),
        (
            "an item given as an ARM ID (possibly of another vault)",
            with(
                with(request(), "/spec/operation", json!("ModifyProtection")),
                "/spec/action",
                json!({"modifyProtection": {"item": format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/other/{ITEM}"), "policy": "short"}}),
            ),
            "not an ARM ID",
        ),
        (
            "an elevation policy nobody can approve under",
            with(example("elevation-policy.yaml"), "/spec/approvers", json!({})),
            "approvers must name at least one user or group",
        ),
        (
            "an elevation policy for something that is not a guard",
            with(example("elevation-policy.yaml"), "/spec/guardId", json!(bv_id.clone())),
            "guardId must be a Resource Guard's ARM ID",
        ),
        (
            "an elevation policy asking for six approvals",
            with(example("elevation-policy.yaml"), "/spec/requiredApprovals", json!(6)),
            "should be less than or equal to 5",
        ),
        (
            "a guard whose elevation has no approvers",
            with(guard(), "/spec/elevation/approvers", json!({})),
            "approvers must name at least one user or group",
        ),
        (
            "a vault protection narrowing to zero approvals",
            with(vault_protection(), "/spec/approval/requiredApprovals", json!(0)),
            "should be greater than or equal to 1",
        ),
    ];
    assert!(cases.len() >= 12);
    for (what, object, expected) in cases {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        eprintln!("case: {what}");
        assert_invalid(create(&ns, &object).await, expected);
        // Nothing was stored.
        assert!(
            dynamic_api(&ns, &object).get_opt(&name).await.unwrap().is_none(),
            "{what}: object was stored"
        );
    }
}

#[tokio::test]
async fn immutable_fields_cannot_change_after_creation() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("immutable").await;
    for object in [guard(), vault_protection(), request()] {
        create(&ns, &object).await.expect("the example is valid");
    }
    let cases: Vec<(&str, Value, &str, Value, &str)> = vec![
        (
            "changing a guard's region",
            guard(),
            "/spec/region",
            json!("northeurope"),
            "region is immutable",
        ),
        (
            "changing a guard's subscription",
            guard(),
            "/spec/subscriptionId",
            json!(SUB),
            "subscriptionId is immutable",
        ),
        (
            "renaming a guard in Azure",
            guard(),
            "/spec/name",
            json!("other-guard"),
            "name is immutable",
        ),
        (
            "moving a guard to another resource group",
            guard(),
            "/spec/resourceGroup",
            json!("other-rg"),
            "resourceGroup is immutable",
        ),
        (
            "pointing a VaultProtection at another vault",
            vault_protection(),
            "/spec/vault/id",
            json!(format!(
                "/subscriptions/{SUB}/resourceGroups/backup-rg/providers/Microsoft.RecoveryServices/vaults/other-vault"
            )),
            "vault is immutable",
        ),
        (
            "lengthening a request after creation",
            request(),
            "/spec/duration",
            json!("2h"),
            "spec is immutable after creation",
        ),
        (
            "changing a request's operation after creation",
            request(),
            "/spec/operation",
            json!("StopProtectionWithDeleteData"),
            "spec is immutable after creation",
        ),
    ];
    for (what, original, pointer, value, expected) in cases {
        let name = original["metadata"]["name"].as_str().unwrap().to_string();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let mut patch = json!({});
        let mut cursor = &mut patch;
        for segment in parent.split('/').skip(1) {
            cursor = cursor.as_object_mut().unwrap().entry(segment).or_insert(json!({}));
        }
        cursor[key] = value;
        let result = dynamic_api(&ns, &original)
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        eprintln!("case: {what}");
        assert_invalid(result, expected);
        let stored = dynamic_api(&ns, &original).get(&name).await.unwrap();
        assert_eq!(
            stored.data.pointer(pointer),
            original.pointer(pointer),
            "{what}: the field changed"
        );
    }

    // Fields that are not identity stay editable.
    let patch = json!({"spec": {"excludedOperations": ["Restore"], "description": "ask in #sec"}});
    dynamic_api(&ns, &guard())
        .patch("backup-guard", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("a guard's exclusions and description can change");
}

/// Runs kubectl as admin until it succeeds and `ready` accepts its output, for at most 30 s.
fn kubectl_until(cp: &ControlPlane, args: &[&str], ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let output = cp.kubectl(User::Admin).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && ready(&stdout) {
            return stdout;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "`kubectl {}` did not succeed within 30 s: {}\n{stdout}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[tokio::test]
async fn kubectl_get_mua_lists_all_three_kinds_with_their_columns() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("kubectl-get").await;
    for object in [guard(), vault_protection(), request()] {
        create(&ns, &object).await.expect("the example is valid");
    }
    // Discovery and the published OpenAPI follow a new CRD within moments, so kubectl is asked until
    // it sees all three objects (with a deadline).
    let stdout = kubectl_until(cp, &["get", "mua", "-n", &ns.name], |out| out.lines().count() >= 6);
    for expected in [
        "resourceguard.mua.dev/backup-guard",
        "vaultprotection.mua.dev/prod-vault",
        "criticaloperationrequest.mua.dev/disable-soft-delete",
        "AZURE NAME",
        "REGION",
        "westeurope",
        "VAULT",
        "GUARD",
        "MUA",
        "SOFT DELETE",
        "VAULT PROTECTION",
        "OPERATION",
        "REQUESTER",
        "PHASE",
        "EXPIRES",
        "DisableSoftDelete",
    ] {
        assert!(
            stdout.contains(expected),
            "`kubectl get mua` lacks {expected:?}:\n{stdout}"
        );
    }

    let stdout = kubectl_until(cp, &["get", "cor,vp,rg", "-n", &ns.name, "-o", "name"], |_| true);
    assert_eq!(stdout.lines().count(), 3, "short names resolve: {stdout}");
}

#[tokio::test]
async fn kubectl_explain_shows_the_field_descriptions() {
    let cp = ControlPlane::shared();
    for (field, expected) in [
        (
            "resourceguards.spec.excludedOperations",
            "are mandatory and cannot be excluded",
        ),
        ("resourceguards.spec.region", "Vaults can only link to a guard in their"),
        (
            "vaultprotections.spec.guard",
            "a ResourceGuard in this namespace by `name`",
        ),
        ("criticaloperationrequests.spec.duration", "between 5m"),
        (
            "criticaloperationrequests.spec.requester",
            "Filled in by the API server",
        ),
        ("criticaloperationrequests", "Another person must approve it"),
    ] {
        let stdout = kubectl_until(cp, &["explain", field], |_| true);
        let flat = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(expected),
            "`kubectl explain {field}` lacks {expected:?}:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn backup_and_security_admins_authenticate_as_themselves() {
    let cp = ControlPlane::shared();
    for user in User::ALL {
        let client = cp.client(user).await;
        let review: SelfSubjectReview = Api::all(client)
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .unwrap_or_else(|err| panic!("{} could not review itself: {err}", user.name()));
        let info = review
            .status
            .and_then(|s| s.user_info)
            .expect("the review names the user");
        assert_eq!(info.username.as_deref(), Some(user.name()));
        let groups = info.groups.unwrap_or_default();
        assert!(
            groups.iter().any(|g| g == user.group()),
            "{} lacks group {}: {groups:?}",
            user.name(),
            user.group()
        );
        assert!(groups.iter().any(|g| g == "system:authenticated"));
    }

    // And RBAC applies to them: the backup admin (the chart's mua-backup-admin role) reads guards but
    // cannot write one.
    let ns = cp.namespace("rbac").await;
    let guards = ns.api::<ResourceGuard>(cp.client(User::BackupAdmin).await);
    guards
        .list(&Default::default())
        .await
        .expect("backup admins read guards");
    let sent: ResourceGuard = serde_json::from_value(guard()).unwrap();
    match guards.create(&PostParams::default(), &sent).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{}", status.message),
        other => panic!("expected 403 for backup-admin creating a guard, got {other:?}"),
    }
}

#[tokio::test]
async fn service_accounts_get_tokens_that_authenticate_as_themselves() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let cp = ControlPlane::shared();
    let ns = cp.namespace("serviceaccount").await;
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "mua-operator"}})).unwrap();
    ns.admin_api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let output = cp
        .kubectl(User::Admin)
        .args(["create", "token", "mua-operator", "-n", &ns.name, "--duration=10m"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl create token: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let client = cp.client_with_token(&format!("sa-{}", ns.name), token.trim()).await;
    let review: SelfSubjectReview = Api::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .unwrap();
    let info = review.status.and_then(|s| s.user_info).unwrap();
    assert_eq!(
        info.username,
        Some(format!("system:serviceaccount:{}:mua-operator", ns.name))
    );
    assert!(
        info.groups
            .unwrap_or_default()
            .contains(&"system:serviceaccounts".to_string())
    );
}
