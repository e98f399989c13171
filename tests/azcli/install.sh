#!/usr/bin/env bash
# Installs the stock Azure CLI ($AZURE_CLI_VERSION) from PyPI into a virtualenv, like tests/helm/build.sh
# builds Helm: cached outside the checkout, keyed by version. Prints the venv's bin directory (holding `az`)
# on the last line. The first run on a machine takes about four minutes.
set -euo pipefail

AZURE_CLI_VERSION=${AZURE_CLI_VERSION:-2.91.0}
CACHE_ROOT=${MUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mua-operator}
VENV_DIR="$CACHE_ROOT/azcli/azure-cli-$AZURE_CLI_VERSION"
BIN_DIR="$VENV_DIR/bin"

installed() { [[ -x "$BIN_DIR/az" ]]; }
if installed; then echo "$BIN_DIR"; exit 0; fi

# Test binaries may ask at once: one installs, the others wait.
mkdir -p "$CACHE_ROOT/azcli"
exec 9>"$CACHE_ROOT/azcli.lock"
flock 9
if installed; then echo "$BIN_DIR"; exit 0; fi

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || { echo "error: Python 3 (with venv) is required to install the Azure CLI" >&2; exit 1; }

PARTIAL="$VENV_DIR.partial"
rm -rf "$PARTIAL" && mkdir -p "$PARTIAL"
echo "[tests/azcli] installing azure-cli $AZURE_CLI_VERSION from PyPI (first run on this machine: a few minutes)" >&2
"$PYTHON" -m venv "$PARTIAL"
"$PARTIAL/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "azure-cli==$AZURE_CLI_VERSION" >&2
# A venv's scripts name its interpreter by absolute path (`az` starts with `#!$PARTIAL/bin/python`): point
# them at the final directory before moving the venv there.
grep -rlF "$PARTIAL" "$PARTIAL/bin" "$PARTIAL/pyvenv.cfg" | xargs sed -i "s|$PARTIAL|$VENV_DIR|g"
rm -rf "$VENV_DIR" && mv "$PARTIAL" "$VENV_DIR"
# A check that it runs, with a throwaway profile (never the user's ~/.azure).
AZURE_CONFIG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mua-azcli-check.XXXXXX")
trap 'rm -rf "$AZURE_CONFIG_DIR"' EXIT
AZURE_CONFIG_DIR="$AZURE_CONFIG_DIR" AZURE_CORE_COLLECT_TELEMETRY=false "$BIN_DIR/az" version --output json >&2
echo "$BIN_DIR"
