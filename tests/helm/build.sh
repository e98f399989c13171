#!/usr/bin/env bash
# Builds Helm ($HELM_VERSION) from its Go module, like tests/cluster/build.sh builds the control plane.
# The binary is cached outside the checkout, keyed by version. Prints its directory on the last line.
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE_ROOT=${MUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mua-operator}
BIN_DIR="$CACHE_ROOT/helm/helm-$HELM_VERSION"

built() { [[ -x "$BIN_DIR/helm" ]]; }
if built; then echo "$BIN_DIR"; exit 0; fi

# Test binaries may ask at once: one builds, the others wait.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/helm.lock"
flock 9
if built; then echo "$BIN_DIR"; exit 0; fi

command -v go >/dev/null || { echo "error: Go is required to build Helm" >&2; exit 1; }

export GOTOOLCHAIN=local GOSUMDB=off GOFLAGS=-mod=mod CGO_ENABLED=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mua-helm-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
rm -rf "$BIN_DIR.partial" && mkdir -p "$BIN_DIR.partial"

echo "[tests/helm] building helm $HELM_VERSION (first run on this machine: a few minutes)" >&2
cd "$WORK"
printf 'module mua.dev/testhelm\n\ngo 1.26.0\n' > go.mod
# A temporary module that requires Helm and names its command as a tool resolves Helm's own
# dependency versions (its go.mod), as `go install` would, without replaces to care about.
go mod edit -require="helm.sh/helm/v3@$HELM_VERSION" -tool=helm.sh/helm/v3/cmd/helm
go mod tidy
# The flags of Helm's own Makefile: its version (else `helm version` says v3.x-dev), and the Kubernetes
# version that `helm template` and `helm lint` assume, from the client-go it is built with (else 1.20,
# which the chart's kubeVersion refuses).
k8s=$(go list -f '{{.Version}}' -m k8s.io/client-go)   # v0.<minor>.<patch>
k8s_minor=$(echo "$k8s" | cut -d. -f2)
go build -trimpath -ldflags="-s -w \
  -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
  -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
  -o "$BIN_DIR.partial/helm" helm.sh/helm/v3/cmd/helm
rm -rf "$BIN_DIR" && mv "$BIN_DIR.partial" "$BIN_DIR"
"$BIN_DIR/helm" version >&2
echo "$BIN_DIR"
