//! The Argo CD health checks (`argocd/resource_customizations/mua.dev/<Kind>/health.lua`) on Argo CD's own
//! Lua engine: `tests/argocd/build.sh` builds a harness on argo-cd's `util/lua` package from Go modules
//! (once per machine), which runs every case of each kind's `health_test.yaml` with the standard libraries
//! closed (as Argo CD runs a check from argocd-cm) and open (as it runs its built-in checks), and compares
//! status and message. Also: a wrong expectation fails, and the argocd-cm snippet in the chart carries
//! exactly the scripts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;

const KINDS: [&str; 3] = ["ResourceGuard", "VaultProtection", "CriticalOperationRequest"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn customizations() -> PathBuf {
    repo().join("argocd/resource_customizations")
}

/// The harness binary: `$MUA_ARGOCD_HEALTH_BIN`, or what `tests/argocd/build.sh` builds (once per
/// machine) and prints. A failed build fails every test with the build's output: nothing is skipped.
fn harness_bin() -> &'static Path {
    static HARNESS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = HARNESS.get_or_init(|| {
        if let Ok(path) = std::env::var("MUA_ARGOCD_HEALTH_BIN") {
            return Ok(PathBuf::from(path));
        }
        mua_operator::control_plane::built_by("tests/argocd/build.sh")
            .map(|dir| dir.join("argocd-health"))
            .map_err(|err| format!("{err:#}"))
    });
    match found {
        Ok(path) => path,
        Err(err) => panic!("the Argo CD health harness is not available: {err}"),
    }
}

fn harness(dir: &Path, kind: &str) -> Output {
    let output = Command::new(harness_bin())
        .args(["-kind", kind])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("running {}: {err}", harness_bin().display()));
    // Shown for a failing test: one line per case.
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[derive(Deserialize)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
struct HealthTest {
    #[serde(rename = "healthStatus")]
    health_status: BTreeMap<String, String>,
    #[serde(rename = "inputPath")]
    input_path: String,
}

fn health_tests(dir: &Path, kind: &str) -> HealthTests {
    let path = dir.join("mua.dev").join(kind).join("health_test.yaml");
    yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every case of `kind` passes, and every case the test file lists ran.
fn assert_kind_passes(kind: &str) {
    let output = harness(&customizations(), kind);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{kind}: the health checks failed ({})",
        output.status
    );
    let cases = health_tests(&customizations(), kind).tests;
    for case in &cases {
        let line = format!(
            "PASS mua.dev/{kind} {}: {}",
            case.input_path, case.health_status["status"]
        );
        assert!(stdout.lines().any(|l| l == line), "{kind}: no line {line:?}");
    }
    assert!(stdout.contains(&format!("{} passed, 0 failed", cases.len())));
    // Each kind is tested in every state Argo CD knows (a guard never waits for a person: no Suspended).
    let statuses: Vec<&str> = cases.iter().map(|c| c.health_status["status"].as_str()).collect();
    let wanted: &[&str] = match kind {
        "ResourceGuard" => &["Healthy", "Progressing", "Degraded"],
        _ => &["Healthy", "Progressing", "Degraded", "Suspended"],
    };
    for status in wanted {
        assert!(statuses.contains(status), "{kind} has no {status} case");
    }
}

#[test]
fn resource_guard_health_matches_its_cases() {
    assert_kind_passes("ResourceGuard");
}

#[test]
fn vault_protection_health_matches_its_cases() {
    assert_kind_passes("VaultProtection");
}

#[test]
fn critical_operation_request_health_matches_its_cases() {
    assert_kind_passes("CriticalOperationRequest");
}

/// A copy of the checks of `kind` in a temporary directory, with `edit` applied to its health_test.yaml.
fn copy_with(kind: &str, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = customizations().join("mua.dev").join(kind);
    let to = tmp.path().join("mua.dev").join(kind);
    std::fs::create_dir_all(to.join("testdata")).unwrap();
    for name in ["health.lua", "health_test.yaml"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
    for entry in std::fs::read_dir(from.join("testdata")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("testdata").join(entry.file_name())).unwrap();
    }
    let tests = to.join("health_test.yaml");
    let text = std::fs::read_to_string(&tests).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit changed nothing");
    std::fs::write(&tests, edited).unwrap();
    tmp
}

fn assert_one_failure(output: &Output, case: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a wrong expectation must fail the harness"
    );
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert_eq!(failures.len(), 1, "exactly the edited case fails: {failures:?}");
    assert!(failures[0].contains(case), "{}", failures[0]);
    assert!(stdout.contains(" passed, 1 failed"));
}

#[test]
fn a_wrong_expected_status_fails() {
    let tmp = copy_with("VaultProtection", |text| {
        text.replacen("status: Suspended", "status: Degraded", 1)
    });
    let output = harness(tmp.path(), "VaultProtection");
    assert_one_failure(&output, "testdata/suspended_elevationRequired.yaml");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("expected Degraded") && stdout.contains("got Suspended"));
}

#[test]
fn a_wrong_expected_message_fails() {
    let tmp = copy_with("CriticalOperationRequest", |text| {
        text.replacen(
            "message: Waiting for the operator to take up the request",
            "message: Waiting for the operator",
            1,
        )
    });
    let output = harness(tmp.path(), "CriticalOperationRequest");
    assert_one_failure(&output, "testdata/progressing_noStatus.yaml");
}

#[test]
fn a_testdata_file_without_a_case_fails() {
    let tmp = copy_with("ResourceGuard", |text| {
        // Drops the last case: its testdata file is then used by none.
        let cut = text.rfind("- healthStatus:").unwrap();
        text[..cut].to_string()
    });
    let output = harness(tmp.path(), "ResourceGuard");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not used by any case"));
}

#[test]
fn an_unknown_kind_fails() {
    let output = harness(&customizations(), "ResourceGaurd");
    assert_eq!(output.status.code(), Some(2));
}

#[derive(Deserialize)]
struct ConfigMap {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    metadata: BTreeMap<String, String>,
    data: BTreeMap<String, String>,
}

/// The chart's argocd-cm snippet holds exactly the three scripts, byte for byte, under the keys Argo CD
/// reads (`resource.customizations.health.<group>_<Kind>`).
#[test]
fn the_argocd_cm_snippet_is_the_health_scripts() {
    let path = repo().join("charts/mua-operator/files/argocd-cm-health.yaml");
    let snippet: ConfigMap = yaml_serde::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        (snippet.api_version.as_str(), snippet.kind.as_str()),
        ("v1", "ConfigMap")
    );
    assert_eq!(snippet.metadata.get("name").map(String::as_str), Some("argocd-cm"));
    let mut kinds: Vec<String> = std::fs::read_dir(customizations().join("mua.dev"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kinds.sort();
    let mut known = KINDS.map(String::from).to_vec();
    known.sort();
    assert_eq!(
        kinds, known,
        "a kind was added or removed: update KINDS and the snippet"
    );
    let expected: BTreeMap<String, String> = KINDS
        .iter()
        .map(|kind| {
            let script = customizations().join("mua.dev").join(kind).join("health.lua");
            (
                format!("resource.customizations.health.mua.dev_{kind}"),
                std::fs::read_to_string(script).unwrap(),
            )
        })
        .collect();
    assert!(
        snippet.data == expected,
        "{} differs from argocd/resource_customizations/mua.dev/*/health.lua: run bash argocd/generate-argocd-cm.sh",
        path.display()
    );
}
