#!/usr/bin/env bash
# Benchmark (not a test): a cascade on a new base, by real buildah builds vs
# by freshen's rebase, in the same run.
#
# Two copies of one 50-image, 3-level tree (1 golden base FROM the upstream
# tag, MIDS mids FROM the golden base, the rest apps FROM the mids) live in
# repositories b/... (executor: buildah) and r/... (executor: rebase), both
# first built by buildah on upstream v1. Each round moves the upstream tag
# to a new version and runs, interleaved (the order alternates),
#   freshen rebuild --config b.yaml --base HOST/upstream/os:stable
#   freshen rebuild --config r.yaml --base HOST/upstream/os:stable
# and checks that every image of both trees got a new digest. Both runs
# version, promote and scan every image into the inventory; they differ
# only in how each image is made. Prints the medians and the ratio.
# Target (issue 5): rebase >= 20x faster than the buildah rebuild.
#
# The upstream image is UPSTREAM_MB of incompressible files in one layer (v2
# on: one changed file, plus a layer); the tree's own layers are COPYs of a
# few KiB: no RUN steps, which favours buildah (a real Dockerfile's
# `apt-get install` runs again on every rebuild; a rebase never runs it).
#
#   bash bench/rebase.sh
#
# Knobs (environment): RUNS=3 PARALLEL=4 (freshen rebuild --parallel) MIDS=4
# IMAGES=50 UPSTREAM_MB=64 TIME_LIMIT=3600 KEEP=1 (keep the temp dir)
# BUILD=0 (use target/release/freshen as it is).
#
# Loopback only. Everything it starts (registry, watchdog) is stopped on
# exit; it writes only into a temp dir (buildah's storage included) and
# cargo's target dir. Needs: cargo, docker-registry, buildah, skopeo, curl,
# jq, root (buildah).
set -euo pipefail

RUNS=${RUNS:-3}
PARALLEL=${PARALLEL:-4}
MIDS=${MIDS:-4}
IMAGES=${IMAGES:-50}
UPSTREAM_MB=${UPSTREAM_MB:-64}
TIME_LIMIT=${TIME_LIMIT:-3600}
KEEP=${KEEP:-0}
BUILD=${BUILD:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '%s\n' "$*"; }
die() {
  printf 'rebase-bench: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }
need cargo "rustup/cargo"
need docker-registry "apt-get install docker-registry"
need buildah "apt-get install buildah"
need skopeo "apt-get install skopeo"
need curl "apt-get install curl"
need jq "apt-get install jq"
[ "$(id -u)" = 0 ] || die "needs root (buildah)"
APPS=$((IMAGES - 1 - MIDS))
[ "$APPS" -ge 1 ] || die "IMAGES=$IMAGES leaves no apps with MIDS=$MIDS"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/freshen-rebase-bench.XXXXXX")
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
    "${BUILDAH[@]}" rmi --all --force >/dev/null 2>&1 || true
  fi
  if [ -n "$WATCHDOG_PID" ]; then
    kill "$WATCHDOG_PID" 2>/dev/null || true
    wait "$WATCHDOG_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then say "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

MAIN_PID=$$
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$TIME_LIMIT" &
  sp=$!
  wait "$sp"
  trap - TERM
  echo "rebase-bench: time limit of ${TIME_LIMIT}s reached; stopping" >&2
  kill -TERM "$MAIN_PID"
  for child in $(pgrep -P "$MAIN_PID"); do
    [ "$child" = "$BASHPID" ] || kill -TERM "$child" 2>/dev/null || true
  done
) &
WATCHDOG_PID=$!

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
now() { printf '%s' "$EPOCHREALTIME"; }

say "== freshen rebase benchmark"
say "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "commit:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) paths modified in the work tree)"
say "cpus:     $(nproc) ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "memory:   $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
say "buildah:  $(buildah --version)"
say "settings: RUNS=$RUNS PARALLEL=$PARALLEL IMAGES=$IMAGES (1 base, $MIDS mids, $APPS apps) UPSTREAM_MB=$UPSTREAM_MB"
say

FRESHEN="$ROOT/target/release/freshen"
if [ "$BUILD" = 1 ]; then
  say "== building: cargo build --release -p freshen"
  (cd "$ROOT" && timeout 2400 cargo build --release -p freshen) >"$WORK/build.log" 2>&1 ||
    { tail -30 "$WORK/build.log" >&2; die "release build failed"; }
fi
[ -x "$FRESHEN" ] || die "no binary at $FRESHEN"

# ---------------------------------------------------------------- registry
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST="127.0.0.1:$PORT"
cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/storage
http:
  addr: $HOST
EOF
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.out" 2>"$WORK/registry.err" &
REG_PID=$!
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://$HOST/v2/" && break
  sleep 0.1
done
curl -fs -o /dev/null "http://$HOST/v2/" || { cat "$WORK/registry.err" >&2; die "registry did not start"; }

# ---------------------------------------------------------------- upstream versions
# v1: one layer of UPSTREAM_MB; v2..: the same with one file changed, plus a small layer.
mkdir -p "$WORK/up/etc"
for i in $(seq "$UPSTREAM_MB"); do head -c 1048576 /dev/urandom >"$WORK/up/etc/blob-$i"; done
for v in $(seq 1 $((RUNS + 1))); do
  echo "VERSION=$v" >"$WORK/up/etc/os-release"
  mkdir -p "$WORK/up/more" && echo "v$v" >"$WORK/up/more/stamp"
  if [ "$v" = 1 ]; then df='FROM scratch\nCOPY etc /etc\n'; else df='FROM scratch\nCOPY etc /etc\nCOPY more /more\n'; fi
  printf "$df" >"$WORK/up/Dockerfile"
  "${BUILDAH[@]}" bud -q --isolation chroot -t "localhost/up:v$v" "$WORK/up" >/dev/null
  "${BUILDAH[@]}" push -q --tls-verify=false "localhost/up:v$v" "docker://$HOST/upstream/os:v$v"
done
move() { skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$HOST/upstream/os:v$1" "docker://$HOST/upstream/os:stable"; }
move 1

# ---------------------------------------------------------------- the two trees
tree() { # $1: prefix (b or r)
  local p=$1 d="$WORK/tree-$1"
  mkdir -p "$d/base" "$d/apps"
  printf 'FROM %s/upstream/os:stable\nCOPY golden.txt /etc/golden\n' "$HOST" >"$d/base/Dockerfile"
  echo golden >"$d/base/golden.txt"
  for m in $(seq "$MIDS"); do
    mkdir -p "$d/mids/mid$m/1"
    printf 'FROM %s/%s/golden/base:1\nCOPY runtime /opt/runtime\n' "$HOST" "$p" >"$d/mids/mid$m/1/Dockerfile"
    mkdir -p "$d/mids/mid$m/1/runtime" && head -c 65536 /dev/urandom >"$d/mids/mid$m/1/runtime/lib$m.so"
  done
  for a in $(seq "$APPS"); do
    local m=$(((a - 1) % MIDS + 1))
    mkdir -p "$d/apps/app$a/1/src"
    printf 'FROM %s/%s/mid%s:1\nCOPY src /srv/app\n' "$HOST" "$p" "$m" >"$d/apps/app$a/1/Dockerfile"
    head -c 8192 /dev/urandom >"$d/apps/app$a/1/src/app.bin"
  done
}
config() { # $1: prefix, $2: executor line
  local p=$1 d="$WORK/tree-$1"
  cat >"$WORK/$p.yaml" <<EOF
builds:
  - {image: $HOST/$p/golden/base:1, context: $d/base$2}
discover:
  - {root: $d/mids, image: "$HOST/$p/{app}:{version}"$2}
  - {root: $d/apps, image: "$HOST/$p/{app}:{version}"$2}
builders:
  buildah:
    root: $WORK/containers
    runroot: $WORK/run
    storage_driver: vfs
EOF
}
tree b
tree r
config b ""
config r ", executor: rebase, fallback: buildah"
export FRESHEN_DATABASE="sqlite://$WORK/freshen.db" FRESHEN_DATA_DIR="$WORK/data" DOCKER_CONFIG="$WORK/docker"
mkdir -p "$WORK/data" "$WORK/docker"

rebuild() { # $1: prefix, $2...: selection; prints wall seconds
  local out="$WORK/run-$1-$RANDOM"
  local t0 t1
  t0=$(now)
  timeout 2400 "$FRESHEN" rebuild --config "$WORK/$1.yaml" "${@:2}" --parallel "$PARALLEL" --json >"$out.json" 2>"$out.err" ||
    { tail -20 "$out.err" >&2; jq -c '.items[] | select(.state != "done") | {image, detail}' "$out.json" >&2 2>/dev/null || true; die "freshen rebuild $1 ${*:2} failed"; }
  t1=$(now)
  local done
  done=$(jq '[.items[] | select(.state == "done")] | length' "$out.json")
  [ "$done" = "$IMAGES" ] || die "$1: $done of $IMAGES images done"
  cp "$out.json" "$WORK/last-$1.json"
  calc '%.2f' "$t1 - $t0"
}
digests() { # $1: prefix; the current digest of every image of the tree
  jq -r '.items[].image' "$WORK/last-$1.json" | sort | while read -r ref; do
    skopeo inspect --raw --tls-verify=false "docker://$ref" | sha256sum | cut -c1-16
  done
}

say "== first build of both trees on upstream v1 (buildah; r's rebases are refused: nothing to rebase yet)"
say "   b: $(rebuild b --all) s, r: $(rebuild r --all) s"
say

B=()
R=()
for round in $(seq "$RUNS"); do
  move $((round + 1))
  before_b=$(digests b)
  before_r=$(digests r)
  if [ $((round % 2)) = 1 ]; then
    tb=$(rebuild b --base "$HOST/upstream/os:stable")
    tr=$(rebuild r --base "$HOST/upstream/os:stable")
  else
    tr=$(rebuild r --base "$HOST/upstream/os:stable")
    tb=$(rebuild b --base "$HOST/upstream/os:stable")
  fi
  rebased=$(jq '[.items[] | select(.detail // "" | startswith("rebased"))] | length' "$WORK/last-r.json")
  [ "$rebased" = "$IMAGES" ] || die "round $round: only $rebased of $IMAGES images rebased: $(jq -c '[.items[] | .detail] | unique' "$WORK/last-r.json")"
  same_b=$(comm -12 <(echo "$before_b" | sort) <(digests b | sort) | wc -l)
  same_r=$(comm -12 <(echo "$before_r" | sort) <(digests r | sort) | wc -l)
  [ "$same_b" = 0 ] && [ "$same_r" = 0 ] || die "round $round: $same_b (b) and $same_r (r) images kept their digest"
  say "round $round (upstream v$((round + 1))): buildah rebuild $tb s, rebase $tr s, ratio $(calc '%.1f' "$tb / $tr")x"
  B+=("$tb")
  R+=("$tr")
done
mb=$(printf '%s\n' "${B[@]}" | median)
mr=$(printf '%s\n' "${R[@]}" | median)
say
say "== medians of $RUNS rounds, $IMAGES images in 3 levels, --parallel $PARALLEL"
say "freshen rebuild, executor buildah: $mb s"
say "freshen rebuild, executor rebase:  $mr s"
say "rebase is $(calc '%.1f' "$mb / $mr")x faster (target: >= 20x)"
