#!/usr/bin/env bash
# Builds the test node's Kubernetes components from the same Go modules as the test control plane
# (tests/cluster/build.sh): kubelet, kube-controller-manager and kube-scheduler ($K8S_VERSION). Binaries are
# cached outside the checkout, keyed by version, so only the first run on a machine pays; and the pod
# sandbox image (tests/node/pause, as an OCI archive `pause.oci.tar`, keyed by its source). Prints the
# directory holding them on its last line. The container runtime (containerd, runc, the CNI loopback plugin)
# and umoci come from Debian's packages, installed here when missing.
set -euo pipefail
cd "$(dirname "$0")"

K8S_VERSION=${K8S_VERSION:-v1.36.3}
CACHE_ROOT=${MUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mua-operator}
PAUSE_KEY=$(sha256sum pause/main.go | cut -c1-12)
BIN_DIR="$CACHE_ROOT/node/k8s-$K8S_VERSION-pause-$PAUSE_KEY"
COMPONENTS=(kubelet kube-controller-manager kube-scheduler)

runtime_installed() {
  command -v containerd >/dev/null && command -v ctr >/dev/null && command -v runc >/dev/null \
    && command -v umoci >/dev/null && [[ -x /usr/lib/cni/loopback ]]
}
if ! runtime_installed; then
  echo "[tests/node] installing containerd, runc, the CNI plugins and umoci from Debian" >&2
  { apt-get update -qq && apt-get install -y -qq containerd runc containernetworking-plugins umoci; } >&2
fi

built() {
  for c in "${COMPONENTS[@]}"; do [[ -x "$BIN_DIR/$c" ]] || return 1; done
  [[ -f "$BIN_DIR/pause.oci.tar" ]]
}
if built; then echo "$BIN_DIR"; exit 0; fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/node.lock"
flock 9
if built; then echo "$BIN_DIR"; exit 0; fi

command -v go >/dev/null || { echo "error: Go is required to build the test node" >&2; exit 1; }

export GOTOOLCHAIN=local GOSUMDB=off GOFLAGS=-mod=mod CGO_ENABLED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mua-node-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
rm -rf "$BIN_DIR.partial" && mkdir -p "$BIN_DIR.partial"
log() { echo "[tests/node] $*" >&2; }

log "building the pod sandbox image"
mkdir -p "$WORK/pause/rootfs"
cp pause/main.go "$WORK/pause/"
(cd "$WORK/pause" && printf 'module mua.dev/pause\n\ngo 1.26.0\n' > go.mod \
  && go build -trimpath -ldflags="-s -w" -o rootfs/pause .)
umoci init --layout "$WORK/pause/layout"
umoci new --image "$WORK/pause/layout:3.10"
umoci insert --image "$WORK/pause/layout:3.10" --no-history "$WORK/pause/rootfs" / 2>/dev/null
umoci config --image "$WORK/pause/layout:3.10" --config.entrypoint /pause --config.user 65535:65535 \
  --architecture amd64 --os linux --no-history
tar -C "$WORK/pause/layout" -cf "$BIN_DIR.partial/pause.oci.tar" .

stg="v0.${K8S_VERSION#v1.}"
mkdir -p "$WORK/k8s" && cd "$WORK/k8s"
printf 'module mua.dev/testnode\n\ngo 1.26.0\n\ngodebug default=go1.26\n' > go.mod
# As for the control plane: k8s.io/kubernetes resolves its staging modules with replaces a consumer does not
# inherit, so each one is pinned to its published tag.
mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
replaces=()
while read -r m; do replaces+=("-replace=$m=$m@$stg"); done < <(
  grep -E '^[[:space:]]+k8s\.io/[A-Za-z0-9._-]+ => \./staging/' "$mod" | awk '{print $1}')
tools=()
for c in "${COMPONENTS[@]}"; do tools+=("-tool=k8s.io/kubernetes/cmd/$c"); done
go mod edit "${replaces[@]}" -require="k8s.io/kubernetes@$K8S_VERSION" "${tools[@]}"
go mod tidy
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
ldflags="-s -w \
  -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
  -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
  -X k8s.io/component-base/version.gitTreeState=clean \
  -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
  -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
  -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
log "building ${COMPONENTS[*]} $K8S_VERSION (first run on this machine: several minutes)"
pkgs=()
for c in "${COMPONENTS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
go build -trimpath -ldflags="$ldflags" -o "$BIN_DIR.partial/" "${pkgs[@]}"
rm -rf "$BIN_DIR" && mv "$BIN_DIR.partial" "$BIN_DIR"
"$BIN_DIR/kubelet" --version >&2
echo "$BIN_DIR"
