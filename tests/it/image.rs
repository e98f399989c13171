//! The container image as `packaging/image/build.sh` builds it (an OCI archive, with its SBOM): what its
//! configuration says (non-root, entrypoint, labels), what it holds (the production build, no simulator),
//! and that the version has one source. `on_a_node` runs it under a real kubelet.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::on_a_node::built_image;

/// The image, unpacked once per test process: (the OCI layout's directory, version).
fn unpacked() -> &'static (PathBuf, String) {
    static UNPACKED: OnceLock<(PathBuf, String)> = OnceLock::new();
    UNPACKED.get_or_init(|| {
        let (archive, version) = built_image();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("layout")).unwrap();
        run(Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.join("layout")));
        (dir, version)
    })
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The image's manifest and configuration.
fn manifest_and_config() -> (Value, Value) {
    let (dir, _) = unpacked();
    let layout = dir.join("layout");
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(&layout, index["manifests"][0]["digest"].as_str().unwrap()));
    let config = json(&blob(&layout, manifest["config"]["digest"].as_str().unwrap()));
    (manifest, config)
}

/// The image's root filesystem, unpacked from its layers.
fn rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let (dir, _) = unpacked();
            let (manifest, _) = manifest_and_config();
            let rootfs = dir.join("rootfs");
            std::fs::create_dir_all(&rootfs).unwrap();
            for layer in manifest["layers"].as_array().unwrap() {
                let path = blob(&dir.join("layout"), layer["digest"].as_str().unwrap());
                run(Command::new("tar").arg("-xzf").arg(&path).arg("-C").arg(&rootfs));
            }
            rootfs
        })
        .clone()
}

#[test]
fn the_image_runs_the_operator_as_nonroot_and_names_its_version_revision_and_source() {
    let (_, version) = unpacked();
    let (manifest, config) = manifest_and_config();
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532", "runs as nonroot: {c}");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/local/bin/mua-operator"]));
    assert_eq!(c["Cmd"], serde_json::json!(["run"]));
    assert_eq!(config["architecture"], "amd64");
    for labels in [&c["Labels"], &manifest["annotations"]] {
        assert_eq!(labels["org.opencontainers.image.version"], version.as_str(), "{labels}");
        assert_eq!(
            labels["org.opencontainers.image.source"],
            "https://github.com/mua-dev/mua-operator"
        );
        let revision = labels["org.opencontainers.image.revision"].as_str().unwrap();
        assert!(
            revision.len() == 40 && revision.chars().all(|ch| ch.is_ascii_hexdigit()),
            "the revision is a commit: {revision}"
        );
    }
}

#[test]
fn the_image_holds_the_production_build_which_refuses_the_simulator() {
    let rootfs = rootfs();
    let binary = rootfs.join("usr/local/bin/mua-operator");
    let out = Command::new(&binary).arg("sim").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in this build"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Distroless: the operator, its libraries and certificates, no shell and no package manager.
    for absent in ["bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/apt", "usr/bin/dpkg"] {
        assert!(!rootfs.join(absent).exists(), "the image holds {absent}");
    }
    assert!(
        rootfs
            .join("etc/ssl/certs/ca-certificates.crt")
            .metadata()
            .unwrap()
            .len()
            > 100_000
    );
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
}

#[test]
fn the_sbom_lists_the_operators_crates_without_the_simulator() {
    let (archive, version) = built_image();
    let sbom = json(&archive.with_file_name(format!("mua-operator-{version}.cdx.json")));
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["name"], "mua-operator");
    assert_eq!(sbom["metadata"]["component"]["version"], version.as_str());
    let names: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for present in ["kube-client", "azure_identity", "mua-api", "rustls"] {
        assert!(names.contains(&present), "the SBOM lists {present}");
    }
    assert!(
        !names.contains(&"mua-sim"),
        "the production build has no simulator, nor its SBOM"
    );
}

#[test]
fn the_version_has_one_source_cargo_toml_charts_and_image_tag_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = env!("CARGO_PKG_VERSION");
    for chart in ["mua-operator", "mua-operator-crds"] {
        let text = std::fs::read_to_string(root.join("charts").join(chart).join("Chart.yaml")).unwrap();
        let parsed: Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!(parsed["version"], version, "{chart}'s Chart.yaml version");
        assert_eq!(
            parsed["appVersion"], version,
            "{chart}'s appVersion (the image tag the chart uses)"
        );
    }
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("ARG VERSION={version}\n")),
        "the Dockerfile's default VERSION is {version}"
    );
    let (dir, built) = unpacked();
    assert_eq!(built, version, "the image build's version");
    let index = json(&dir.join("layout/index.json"));
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], version,
        "the image's tag"
    );
}
