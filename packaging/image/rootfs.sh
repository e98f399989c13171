#!/usr/bin/env bash
# Assembles the container image's root filesystem in $1: the operator built for production (release,
# without the `sim` and `demo` features, so the image holds no simulator) and, from Debian 12's packages,
# only what it needs at run time: glibc (the allocator tuning in src/run/memory.rs is glibc's), libgcc_s
# (unwinding) and the CA bundle (ARM and Entra ID over TLS). A distroless layout: no shell, no package
# manager; the user nonroot (65532); dpkg status files so that image scanners see the Debian packages.
# Used by both the Dockerfile and the daemonless build (packaging/image/build.sh), so both ship the same.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROOTFS=${1:?usage: rootfs.sh <output directory>}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
PACKAGES=(libc6 libgcc-s1 ca-certificates)
log() { echo "[image] $*" >&2; }

log "building the operator (release, --no-default-features)"
cargo build --release --locked --no-default-features --bin mua-operator >&2
binary="$TARGET_DIR/release/mua-operator"
# The production build refuses the simulator with exit code 2 and says why: checked where the image's
# binary is made.
set +e
out=$("$binary" sim 2>&1); code=$?
set -e
[[ $code -eq 2 && $out == *"not in this build"* ]] || {
  echo "error: the production build's \`mua-operator sim\` exited $code: $out" >&2; exit 1; }

rm -rf "$ROOTFS" && mkdir -p "$ROOTFS"
debs=$(mktemp -d "${TMPDIR:-/tmp}/mua-image-debs.XXXXXX")
trap 'rm -rf "$debs"' EXIT
log "downloading ${PACKAGES[*]} from Debian"
if ! (cd "$debs" && apt-get download "${PACKAGES[@]}" >&2 2>/dev/null); then
  apt-get update -qq >&2
  (cd "$debs" && apt-get download "${PACKAGES[@]}" >&2)
fi
mkdir -p "$ROOTFS/var/lib/dpkg/status.d"
for deb in "$debs"/*.deb; do
  name=$(dpkg-deb -f "$deb" Package)
  dpkg-deb -x "$deb" "$ROOTFS"
  # The package's control fields, as distroless images keep them for scanners.
  dpkg-deb -f "$deb" > "$ROOTFS/var/lib/dpkg/status.d/$name"
done

# Keep the libraries and licences; drop what nothing here reads (docs, locales, iconv modules, the
# certificates' update scripts, lintian overrides).
find "$ROOTFS/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
rm -rf "$ROOTFS/usr/share/lintian" "$ROOTFS/usr/share/locale" "$ROOTFS/usr/share/man" \
  "$ROOTFS/usr/lib/x86_64-linux-gnu/gconv" "$ROOTFS/usr/sbin" "$ROOTFS/usr/bin" \
  "$ROOTFS/etc/ca-certificates" "$ROOTFS/etc/ld.so.conf.d" "$ROOTFS/usr/lib/x86_64-linux-gnu/audit"
# The bundle update-ca-certificates would write: every Mozilla certificate the package ships.
mkdir -p "$ROOTFS/etc/ssl/certs"
cat "$ROOTFS"/usr/share/ca-certificates/mozilla/*.crt > "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
rm -rf "$ROOTFS/usr/share/ca-certificates"

# Users: root and nonroot (65532, as distroless has it); the pod's securityContext runs as 65532.
mkdir -p "$ROOTFS/etc" "$ROOTFS/home/nonroot" "$ROOTFS/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
  > "$ROOTFS/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$ROOTFS/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$ROOTFS/etc/nsswitch.conf"
chmod 1777 "$ROOTFS/tmp"
chown 65532:65532 "$ROOTFS/home/nonroot"

install -D -m 0755 "$binary" "$ROOTFS/usr/local/bin/mua-operator"

# The binary must find every library it links in the image.
missing=$(ldd "$binary" | awk '/=>/ {print $3}' | while read -r lib; do
  base=$(basename "$lib")
  [[ -e "$ROOTFS/lib/x86_64-linux-gnu/$base" || -e "$ROOTFS/usr/lib/x86_64-linux-gnu/$base" ]] || echo "$base"
done)
[[ -z "$missing" ]] || { echo "error: the image lacks libraries the operator links: $missing" >&2; exit 1; }
log "root filesystem ready in $ROOTFS ($(du -sh "$ROOTFS" | cut -f1))"
