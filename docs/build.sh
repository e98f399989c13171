#!/usr/bin/env bash
# Builds the book (docs/src → docs/book) with mdBook ($MDBOOK_VERSION), then checks every internal link
# and anchor of the built HTML with docs/linkcheck.py; a broken one fails the build. mdBook is installed
# from crates.io with `cargo install --locked`, cached outside the checkout and keyed by version, like
# tests/helm/build.sh builds Helm: only the first run on a machine pays (a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

MDBOOK_VERSION=${MDBOOK_VERSION:-0.5.4}
CACHE_ROOT=${MUA_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mua-operator}
ROOT_DIR="$CACHE_ROOT/mdbook/mdbook-$MDBOOK_VERSION"
MDBOOK="$ROOT_DIR/bin/mdbook"

installed() { [[ -x "$MDBOOK" ]]; }
if ! installed; then
  # Two builds may ask at once: one installs, the other waits.
  mkdir -p "$CACHE_ROOT/mdbook"
  exec 9>"$CACHE_ROOT/mdbook.lock"
  flock 9
  if ! installed; then
    command -v cargo >/dev/null || { echo "error: cargo (Rust) is required to install mdBook" >&2; exit 1; }
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/mua-mdbook-build.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    rm -rf "$ROOT_DIR.partial"
    echo "[docs] installing mdbook $MDBOOK_VERSION from crates.io (first run on this machine: a few minutes)" >&2
    started=$(date +%s)
    # Its own target directory (never a CARGO_TARGET_DIR shared with the project's builds); without the
    # `serve` and `watch` features, which only `mdbook serve` needs.
    CARGO_TARGET_DIR="$WORK/target" cargo install --locked --quiet --version "=$MDBOOK_VERSION" \
      --no-default-features --features search --root "$ROOT_DIR.partial" mdbook >&2
    rm -rf "$ROOT_DIR" && mv "$ROOT_DIR.partial" "$ROOT_DIR"
    echo "[docs] mdbook $MDBOOK_VERSION installed in $(( $(date +%s) - started )) s" >&2
  fi
  exec 9>&-
fi

"$MDBOOK" --version
"$MDBOOK" build docs
python3 docs/linkcheck.py docs/book
