#!/usr/bin/env bash
# Builds tests/argocd/harness (a runner of Argo CD health checks on Argo CD's own Lua engine, the
# github.com/argoproj/argo-cd/v3/util/lua package) from Go modules, like tests/helm/build.sh builds Helm.
# The binary is cached outside the checkout, keyed by Argo CD's version, the Go version and a hash of the
# harness source, so a change to any of them builds anew. Prints its directory on the last line.
set -euo pipefail

# v3.3 is the newest line whose module builds from the Go module proxy with Go 1.26: v3.4.x and v3.5.x need
# github.com/argoproj/argo-cd/gitops-engine at a version the proxy does not serve, v3.6.x needs Go 1.27.
ARGOCD_VERSION=${ARGOCD_VERSION:-v3.3.9}
CACHE_ROOT=${MUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mua-operator}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/harness" && pwd)

command -v go >/dev/null || { echo "error: Go is required to build the Argo CD health harness" >&2; exit 1; }
export GOTOOLCHAIN=local GOSUMDB=off GOFLAGS=-mod=mod CGO_ENABLED=0
key=$( { cat "$SRC/main.go"; echo "$ARGOCD_VERSION"; go env GOVERSION; } | sha256sum | cut -c1-16)
BIN_DIR="$CACHE_ROOT/argocd-health/argo-cd-$ARGOCD_VERSION-$key"

built() { [[ -x "$BIN_DIR/argocd-health" ]]; }
if built; then echo "$BIN_DIR"; exit 0; fi

# Test binaries may ask at once: one builds, the others wait.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/argocd-health.lock"
flock 9
if built; then echo "$BIN_DIR"; exit 0; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mua-argocd-health-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
rm -rf "$BIN_DIR.partial" && mkdir -p "$BIN_DIR.partial"

echo "[tests/argocd] building the health harness on Argo CD $ARGOCD_VERSION (first run on this machine: several minutes)" >&2
cp "$SRC/main.go" "$WORK/"
cd "$WORK"
printf 'module mua.dev/argocdhealth\n\ngo 1.26.0\n' > go.mod
# Requiring Argo CD's module resolves its dependencies from its go.mod, as `go install` would (its
# replace directives do not apply to a dependency; v3.3 needs none of them to build util/lua).
go mod edit -require="github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION"
go mod tidy
go build -trimpath -ldflags="-s -w" -o "$BIN_DIR.partial/argocd-health" .
rm -rf "$BIN_DIR" && mv "$BIN_DIR.partial" "$BIN_DIR"
echo "$BIN_DIR"
