#!/usr/bin/env bash
# Builds the real test control plane from Go modules: kube-apiserver and kubectl (Kubernetes $K8S_VERSION)
# and etcd ($ETCD_VERSION). Binaries are cached outside the checkout, keyed by version, so only the first
# run on a machine pays. Prints the directory holding the binaries on its last line.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CACHE_ROOT=${MUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mua-operator}
BIN_DIR="$CACHE_ROOT/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"

built() { [[ -x "$BIN_DIR/kube-apiserver" && -x "$BIN_DIR/kubectl" && -x "$BIN_DIR/etcd" ]]; }
if built; then echo "$BIN_DIR"; exit 0; fi

# Test binaries start in parallel and may all ask for the binaries at once: one builds, the others wait.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/control-plane.lock"
flock 9
if built; then echo "$BIN_DIR"; exit 0; fi

command -v go >/dev/null || { echo "error: Go is required to build the test control plane" >&2; exit 1; }

# Older module versions may be missing from the checksum database; the module proxy is the only source here.
export GOTOOLCHAIN=local GOSUMDB=off GOFLAGS=-mod=mod CGO_ENABLED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mua-control-plane-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
rm -rf "$BIN_DIR.partial" && mkdir -p "$BIN_DIR.partial"

log() { echo "[tests/cluster] $*" >&2; }

build_kubernetes() {
  local stg="v0.${K8S_VERSION#v1.}" dir="$WORK/kubernetes"
  mkdir -p "$dir" && cd "$dir"
  printf 'module mua.dev/testcluster\n\ngo 1.26.0\n\ngodebug default=go1.26\n' > go.mod
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and resolves them with replaces a consumer
  # does not inherit: read the list from its own go.mod and pin each one to the published tag.
  local mod
  mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local replaces=()
  while read -r m; do replaces+=("-replace=$m=$m@$stg"); done < <(
    grep -E '^[[:space:]]+k8s\.io/[A-Za-z0-9._-]+ => \./staging/' "$mod" | awk '{print $1}')
  go mod edit "${replaces[@]}" -require="k8s.io/kubernetes@$K8S_VERSION" \
    -tool=k8s.io/kubernetes/cmd/kube-apiserver -tool=k8s.io/kubernetes/cmd/kubectl
  go mod tidy
  local major=1 minor
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  local ldflags="-s -w \
    -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z \
    -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
    -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  log "building kube-apiserver and kubectl $K8S_VERSION (first run on this machine: several minutes)"
  go build -trimpath -ldflags="$ldflags" -o "$BIN_DIR.partial/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
  local dir="$WORK/etcd"
  mkdir -p "$dir" && cd "$dir"
  printf 'module mua.dev/testetcd\n\ngo 1.26.0\n' > go.mod
  # etcd's server/go.mod replaces its siblings with relative paths, so `go install` refuses it;
  # a wrapper main that calls etcdmain resolves the published modules instead.
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go
  go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go mod tidy
  log "building etcd $ETCD_VERSION"
  go build -trimpath -ldflags="-s -w" -o "$BIN_DIR.partial/etcd" .
}

(build_etcd)
(build_kubernetes)
rm -rf "$BIN_DIR" && mv "$BIN_DIR.partial" "$BIN_DIR"
"$BIN_DIR/etcd" --version >&2
"$BIN_DIR/kube-apiserver" --version >&2
echo "$BIN_DIR"
