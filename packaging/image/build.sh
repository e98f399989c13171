#!/usr/bin/env bash
# The daemonless image build (CI and the tests; users with Docker use the Dockerfile, which assembles the
# same root filesystem with packaging/image/rootfs.sh). Writes to $OUT (default target/image):
#   mua-operator-<version>.oci.tar   the image as an OCI archive (an OCI layout in a tar), tagged <version>
#   mua-operator-<version>.cdx.json  its SBOM (CycloneDX, from Cargo.lock, by cargo-cyclonedx)
#   image.env                        VERSION, REVISION, DIGEST (the manifest's), COMPRESSED_BYTES
# and prints $OUT on its last line. Packs with umoci (Debian); cargo-cyclonedx is installed from crates.io,
# cached outside the checkout like the other tools. Needs root (the layer keeps the files' owners).
set -euo pipefail
cd "$(dirname "$0")/../.."

CYCLONEDX_VERSION=${CYCLONEDX_VERSION:-0.5.9}
CACHE_ROOT=${MUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mua-operator}
OUT=${OUT:-$PWD/target/image}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
SOURCE=https://github.com/mua-dev/mua-operator
log() { echo "[image] $*" >&2; }

[[ $(id -u) == 0 ]] || { echo "error: the daemonless build packs files owned by root and 65532: run it as root" >&2; exit 1; }
command -v umoci >/dev/null || { apt-get update -qq >&2 && apt-get install -y -qq umoci >&2; }

# cargo-cyclonedx, once per machine.
CYCLONEDX="$CACHE_ROOT/cargo-cyclonedx/$CYCLONEDX_VERSION/bin/cargo-cyclonedx"
if [[ ! -x "$CYCLONEDX" ]]; then
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/cargo-cyclonedx.lock"
  flock 9
  if [[ ! -x "$CYCLONEDX" ]]; then
    log "installing cargo-cyclonedx $CYCLONEDX_VERSION from crates.io (first run on this machine)"
    work=$(mktemp -d "${TMPDIR:-/tmp}/mua-cyclonedx.XXXXXX")
    root="$CACHE_ROOT/cargo-cyclonedx/$CYCLONEDX_VERSION"
    rm -rf "$root.partial"
    CARGO_TARGET_DIR="$work/target" cargo install --locked --quiet --version "=$CYCLONEDX_VERSION" \
      --root "$root.partial" cargo-cyclonedx >&2
    rm -rf "$root" "$work" && mv "$root.partial" "$root"
  fi
  exec 9>&-
fi

# Two builds at once (two test processes) would write the same files: one builds, the other waits.
mkdir -p "$OUT"
exec 8>"$OUT/.lock"
flock 8

work=$(mktemp -d "${TMPDIR:-/tmp}/mua-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The release build's target directory lives in the cache, as the other tools do: a fresh checkout
# recompiles only what changed.
CARGO_TARGET_DIR=${IMAGE_TARGET_DIR:-$CACHE_ROOT/image-target} bash packaging/image/rootfs.sh "$work/rootfs"

log "packing the OCI image $VERSION"
layout="$work/layout"
umoci init --layout "$layout"
umoci new --image "$layout:$VERSION"
# unpack + repack (umoci 0.4.7's `insert` writes a truncated layer): the empty image's bundle gets the
# root filesystem, and repack makes it one layer.
umoci unpack --image "$layout:$VERSION" "$work/bundle" >/dev/null
cp -a "$work/rootfs/." "$work/bundle/rootfs/"
umoci repack --image "$layout:$VERSION" --history.created_by "packaging/image/rootfs.sh" \
  --history.comment "the operator, glibc, libgcc_s and the CA bundle" "$work/bundle"
created=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
labels=(
  "org.opencontainers.image.title=mua-operator"
  "org.opencontainers.image.description=Kubernetes operator for Azure Backup multi-user authorization"
  "org.opencontainers.image.version=$VERSION"
  "org.opencontainers.image.revision=$REVISION"
  "org.opencontainers.image.source=$SOURCE"
  "org.opencontainers.image.licenses=Apache-2.0"
  "org.opencontainers.image.created=$created"
)
args=(--config.user 65532:65532 --config.entrypoint /usr/local/bin/mua-operator --config.cmd run
  --config.workingdir / --config.env PATH=/usr/local/bin --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
  --architecture amd64 --os linux --created "$created" --author "mua-operator" --no-history)
for l in "${labels[@]}"; do args+=(--config.label "$l" --manifest.annotation "$l"); done
umoci config --image "$layout:$VERSION" "${args[@]}"
umoci gc --layout "$layout"

# Every layer must read back as a whole tar stream with the operator in it.
for blob in "$layout"/blobs/sha256/*; do
  if gzip -t "$blob" 2>/dev/null; then
    entries=$(tar -tzf "$blob" 2>/dev/null) && [[ $'\n'"$entries"$'\n' == *$'\n'usr/local/bin/mua-operator$'\n'* ]] \
      || { echo "error: the image's layer $(basename "$blob") is not a complete tar holding the operator" >&2; exit 1; }
  fi
done

archive="$OUT/mua-operator-$VERSION.oci.tar"
tar -C "$layout" -cf "$archive.partial" . && mv "$archive.partial" "$archive"

log "generating the SBOM"
# For the workspace (one file per member, next to its Cargo.toml): the operator's is the root one. What
# the binary holds: the production features, this target, no build-time dependencies.
"$CYCLONEDX" cyclonedx --format json --spec-version 1.5 --no-default-features --no-build-deps \
  --target x86_64-unknown-linux-gnu --override-filename mua-operator.sbom >&2
mv mua-operator.sbom.json "$OUT/mua-operator-$VERSION.cdx.json"
rm -f crates/*/mua-operator.sbom.json

# The manifest's digest and the compressed size (the layer blobs and the config, as a registry stores them).
digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$layout/index.json")
bytes=$(find "$layout/blobs" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
printf 'VERSION=%s\nREVISION=%s\nDIGEST=%s\nCOMPRESSED_BYTES=%s\n' "$VERSION" "$REVISION" "$digest" "$bytes" > "$OUT/image.env"
log "image $VERSION ($digest): $(( bytes / 1024 / 1024 )) MiB compressed, archive $archive"
echo "$OUT"
