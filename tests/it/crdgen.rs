//! The checked-in CRDs are exactly what `mua-operator crdgen` writes.

use std::path::Path;
use std::process::Command;

#[test]
fn checked_in_crds_equal_crdgen_output() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .args(["crdgen", "--out-dir"])
        .arg(out.path())
        .status()
        .expect("running mua-operator crdgen");
    assert!(status.success(), "crdgen failed: {status}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The repository's copy, the Helm chart's (Helm installs CRDs only from the chart's own crds/) and the
    // CRD chart's (rendered as templates, so upgrades apply them).
    for dir in ["crds", "charts/mua-operator/crds", "charts/mua-operator-crds/files"] {
        assert_same_files(out.path(), &root.join(dir), dir);
    }
}

#[test]
fn crdgen_writes_every_copy_by_default() {
    let work = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_mua-operator"))
        .arg("crdgen")
        .current_dir(work.path())
        .status()
        .expect("running mua-operator crdgen");
    assert!(status.success(), "crdgen failed: {status}");
    for (copy, label) in [
        ("charts/mua-operator/crds", "the chart's copy"),
        ("charts/mua-operator-crds/files", "the CRD chart's copy"),
    ] {
        assert_same_files(&work.path().join("crds"), &work.path().join(copy), label);
    }
}

fn file_names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}

fn assert_same_files(generated_dir: &Path, checked_in: &Path, label: &str) {
    let generated = file_names(generated_dir);
    assert_eq!(
        generated,
        file_names(checked_in),
        "{label} holds other files than crdgen writes"
    );
    assert_eq!(generated.len(), 5);
    for file in generated {
        let want = std::fs::read(generated_dir.join(&file)).unwrap();
        let have = std::fs::read(checked_in.join(&file)).unwrap();
        assert!(
            want == have,
            "{label}/{} drifted from the CRD types: run `cargo run -- crdgen` and commit the result",
            file.to_string_lossy()
        );
    }
}
