#!/bin/bash
# What the watcher's inventory upkeep (issue 15, 4b) costs per change: a
# `check` that sees a watched tag move to a digest the inventory never saw
# (the new image is scanned) against one that moves it to a digest the
# inventory holds (the tag is pointed at it: no request beyond the check's
# own), with an unchanged check and a plain `freshen scan` beside them.
#
# The base is Debian-sized: one layer of ~110 MiB (the host's dpkg status,
# os-release and the first 110 MiB of /usr/lib/x86_64-linux-gnu), built by
# buildah, three versions, in a local docker-registry. SQLite, release build.
#   BIN=<freshen binary> (default: target/release/freshen, built if BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/freshen}
[ "${BUILD:-1}" = 1 ] && cargo build --release -p freshen >/dev/null
W=$(mktemp -d); trap 'kill $REG 2>/dev/null; rm -rf "$W"' EXIT
PORT=${PORT:-5077}; R=127.0.0.1:$PORT
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s/reg}}\nhttp: {addr: "%s"}\n' "$W" "$R" > "$W/reg.yml"
docker-registry serve "$W/reg.yml" > "$W/reg.log" 2>&1 & REG=$!
mkdir -p "$W/ctx/root/var/lib/dpkg" "$W/ctx/root/etc"
cp /var/lib/dpkg/status "$W/ctx/root/var/lib/dpkg/"; cp /etc/os-release "$W/ctx/root/etc/"
python3 - "$W/ctx/root/usr/lib/x86_64-linux-gnu" <<'PY'
import os, shutil, sys
src, dst, total = '/usr/lib/x86_64-linux-gnu', sys.argv[1], 0
for dp, _, fn in os.walk(src):
    for f in sorted(fn):
        p = os.path.join(dp, f)
        if os.path.islink(p) or not os.path.isfile(p) or total + os.path.getsize(p) > 110 * 2**20:
            continue
        q = os.path.join(dst, os.path.relpath(p, src))
        os.makedirs(os.path.dirname(q), exist_ok=True); shutil.copy(p, q); total += os.path.getsize(p)
PY
B="buildah --root $W/broot --runroot $W/brun --storage-driver vfs"
printf 'FROM scratch\nCOPY root /\n' > "$W/ctx/Dockerfile"
for v in 1 2 3; do
  echo "v$v" > "$W/ctx/root/etc/version"
  $B bud -q --isolation chroot -t "localhost/follow:v$v" "$W/ctx" >/dev/null
  $B push -q --tls-verify=false "localhost/follow:v$v" "docker://$R/base/os:v$v"
done
REF=$R/base/os:stable
mv_to() { skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$R/base/os:$1" "docker://$REF"; }
t() { local s e; s=$(date +%s.%N); "$@" > "$W/out" 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
for trial in 1 2 3; do
  D=$(mktemp -d -p "$W"); export FRESHEN_DATABASE=sqlite://$D/freshen.db FRESHEN_DATA_DIR=$D
  mv_to v1; $BIN scan "$REF" >/dev/null; $BIN check "$REF" >/dev/null
  mv_to v2; scanned=$(t $BIN check "$REF" --json)
  grep -q '"changed"' "$W/out" && ! grep -q inventory_error "$W/out" || { cat "$W/out"; exit 1; }
  mv_to v1; pointed=$(t $BIN check "$REF" --json)
  unchanged=$(t $BIN check "$REF" --json)
  scan=$(t $BIN scan "$R/base/os:v3")
  echo "trial $trial: move to a new digest ${scanned}s, to a held digest ${pointed}s, unchanged ${unchanged}s, freshen scan ${scan}s"
done
