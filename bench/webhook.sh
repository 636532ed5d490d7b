#!/usr/bin/env bash
# Benchmark (not a test): how soon a push reaches a trigger, by a registry
# webhook vs by polling, and what one webhook costs freshen, in the same run.
#
# 1. Push to trigger. A local Distribution registry whose
#    notifications.endpoints point at `freshen watch --serve` (receiver
#    kind registry, bearer token; the watch's schedule 1h, so only the
#    webhook can be quick), and beside it, the peer, a second
#    `freshen watch` with polling only (schedule POLL, default 15s, no
#    receivers), each on its own SQLite store. Both watch REG/app:1 with
#    on_change: [notify], a webhook trigger posting to a small Python
#    receiver that logs arrival times (one receiver, one path per daemon).
#    Each round sleeps a random 0..POLL s (so the push falls anywhere in the
#    poll cycle and in the watcher's idle wait), moves app:1 with
#    `skopeo copy --preserve-digests` from app:src-1 or app:src-2
#    (alternating, so the digest changes each time), and measures from the
#    end of the copy to the arrival of each daemon's trigger carrying the new
#    digest. Prints the medians and the ratio.
# 2. Webhook handling cost. HOOKS authenticated POSTs of a Distribution
#    envelope for the unchanged app:1 (freshen answers "unchanged" after one
#    HEAD to the registry), one after another over one keep-alive
#    connection, and again as one `curl` process each; against the peer
#    `skopeo inspect --raw` of app:1 (one process, GET /v2/ and the
#    manifest), HOOKS times. Registry requests are counted from its access
#    log. Prints the medians and the ratios.
#
#   RUNS=11 bash bench/webhook.sh      # about 4 min here, build excluded
#
# Knobs (environment): RUNS=11 POLL=15 (the peer's schedule, seconds)
# HOOKS=200 TIME_LIMIT=900 KEEP=0 (1: keep the temp dir) BUILD=1 (0: use the
# binary as it is). The binary is $CARGO_TARGET_DIR/release/freshen (default
# target/).
#
# Loopback only. Everything it starts (registry, receiver, two freshen
# daemons, watchdog) is stopped on exit; it writes only into a temp dir
# (buildah's storage included) and cargo's target dir. Needs: cargo,
# docker-registry, buildah, skopeo, curl, jq, python3, root (buildah).
set -euo pipefail

RUNS=${RUNS:-11}
POLL=${POLL:-15}
HOOKS=${HOOKS:-200}
TIME_LIMIT=${TIME_LIMIT:-900}
KEEP=${KEEP:-0}
BUILD=${BUILD:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
FRESHEN="$TARGET/release/freshen"
HELPER="$ROOT/bench/webhook_helper.py"

say() { printf '%s\n' "$*"; }
die() {
  printf 'webhook-bench: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }
need cargo "rustup/cargo"
need docker-registry "apt-get install docker-registry"
need buildah "apt-get install buildah"
need skopeo "apt-get install skopeo"
need curl "apt-get install curl"
need jq "apt-get install jq"
need python3 "apt-get install python3"
[ "$(id -u)" = 0 ] || die "needs root (buildah)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/freshen-webhook-bench.XXXXXX")
PIDS=()
WATCHDOG_PID=""
BUILDAH=(buildah --root "$WORK/containers" --runroot "$WORK/run" --storage-driver vfs)
stop() { # $1: pid
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do stop "$p"; done
  if [ -d "$WORK/containers" ]; then
    "${BUILDAH[@]}" rmi --all --force >/dev/null 2>&1 || true
  fi
  stop "$WATCHDOG_PID"
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
  echo "webhook-bench: time limit of ${TIME_LIMIT}s reached; stopping" >&2
  kill -TERM "$MAIN_PID"
  for child in $(pgrep -P "$MAIN_PID"); do
    [ "$child" = "$BASHPID" ] || kill -TERM "$child" 2>/dev/null || true
  done
) &
WATCHDOG_PID=$!

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
minmax() { sort -g | awk 'NR == 1 {lo=$1} {hi=$1} END {printf "%s..%s", lo, hi}'; }
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
now() { printf '%s' "$EPOCHREALTIME"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # $1: url, $2: what
  for _ in $(seq 200); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "$2 did not start"
}

say "== freshen webhook benchmark"
say "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "commit:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) paths modified in the work tree)"
say "cpus:     $(nproc) ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load $(cut -d' ' -f1-3 /proc/loadavg)"
say "registry: $(docker-registry --version 2>/dev/null | head -1), skopeo: $(skopeo --version)"
say "settings: RUNS=$RUNS POLL=${POLL}s HOOKS=$HOOKS"
say

if [ "$BUILD" = 1 ]; then
  say "== building: cargo build --release -p freshen (target dir $TARGET)"
  (cd "$ROOT" && timeout 2400 cargo build --release -p freshen) >"$WORK/build.log" 2>&1 ||
    { tail -30 "$WORK/build.log" >&2; die "release build failed"; }
fi
[ -x "$FRESHEN" ] || die "no binary at $FRESHEN"

# ---------------------------------------------------------------- registry
REG_PORT=$(free_port)
HOOK_PORT=$(free_port)
RECV_PORT=$(free_port)
HOST="127.0.0.1:$REG_PORT"
KEY="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TOKEN="tok-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
registry_config() { # $1: with notifications (1) or not
  cat <<EOF
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
  [ "$1" = 1 ] && cat <<EOF
notifications:
  endpoints:
    - name: freshen
      url: http://127.0.0.1:$HOOK_PORT/hooks/registry/$KEY
      headers: {Authorization: ["Bearer $TOKEN"]}
      timeout: 5s
      threshold: 3
      backoff: 1s
EOF
  return 0
}
start_registry() { # $1: notifications 0/1
  registry_config "$1" >"$WORK/registry.yml"
  docker-registry serve "$WORK/registry.yml" >>"$WORK/registry.log" 2>&1 &
  REG_PID=$!
  PIDS+=("$REG_PID")
  wait_http "http://$HOST/v2/" "the registry"
}

# The images are pushed before notifications are on: Distribution retries a
# failing endpoint without end, and nothing listens yet.
start_registry 0
say "== building app:src-0 (FROM scratch + COPY, buildah), and app:src-1..$RUNS: its manifest with an annotation naming the round"
declare -A DIGEST
mkdir -p "$WORK/img"
head -c 4096 /dev/urandom >"$WORK/img/payload"
printf 'FROM scratch\nCOPY payload /payload\n' >"$WORK/img/Dockerfile"
"${BUILDAH[@]}" bud -q --isolation chroot -t "localhost/app:src-0" "$WORK/img" >/dev/null
"${BUILDAH[@]}" push -q --tls-verify=false "localhost/app:src-0" "docker://$HOST/app:src-0"
skopeo inspect --raw --tls-verify=false "docker://$HOST/app:src-0" >"$WORK/src-0.json"
MEDIA=$(jq -r .mediaType "$WORK/src-0.json")
DIGEST[0]="sha256:$(sha256sum <"$WORK/src-0.json" | cut -d' ' -f1)"
# One digest never seen before per round (same blobs): a webhook that loses
# its race with the tag (see the summary) then costs only its own round.
for n in $(seq "$RUNS"); do
  jq -c --arg n "$n" '.annotations = ((.annotations // {}) + {"bench.round": $n})' "$WORK/src-0.json" | tr -d '\n' >"$WORK/src-$n.json"
  curl -fsS -X PUT -H "Content-Type: $MEDIA" --data-binary "@$WORK/src-$n.json" "http://$HOST/v2/app/manifests/src-$n" >/dev/null
  DIGEST[$n]="sha256:$(sha256sum <"$WORK/src-$n.json" | cut -d' ' -f1)"
done
say "   app:src-0 = ${DIGEST[0]} ($MEDIA), and $RUNS more"
move() { # $1: source number
  skopeo copy -q --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
    "docker://$HOST/app:src-$1" "docker://$HOST/app:1" >/dev/null
}
move 0
stop "$REG_PID"
start_registry 1

# ---------------------------------------------------------------- receiver and daemons
: >"$WORK/arrivals.log"
python3 "$HELPER" receiver "$RECV_PORT" "$WORK/arrivals.log" 2>"$WORK/receiver.err" &
PIDS+=("$!")
for _ in $(seq 100); do
  (echo >"/dev/tcp/127.0.0.1/$RECV_PORT") 2>/dev/null && break
  sleep 0.1
done

cat >"$WORK/hook.yaml" <<EOF
jitter: 0s
watches:
  - {ref: "$HOST/app:1", schedule: 1h, on_change: [notify]}
triggers:
  notify:
    webhook: {url: "http://127.0.0.1:$RECV_PORT/hook/webhook"}
receivers:
  reg: {kind: registry, key: "$KEY", token: "$TOKEN"}
EOF
cat >"$WORK/poll.yaml" <<EOF
jitter: 0s
watches:
  - {ref: "$HOST/app:1", schedule: ${POLL}s, on_change: [notify]}
triggers:
  notify:
    webhook: {url: "http://127.0.0.1:$RECV_PORT/hook/poll"}
EOF
mkdir -p "$WORK/data-hook" "$WORK/data-poll"
fr() { # $1: hook|poll, then freshen's arguments
  FRESHEN_DATABASE="sqlite://$WORK/$1.db" FRESHEN_DATA_DIR="$WORK/data-$1" "$FRESHEN" "${@:2}"
}
# Simple commands, so that $! is freshen itself (stopped on exit).
FRESHEN_DATABASE="sqlite://$WORK/hook.db" FRESHEN_DATA_DIR="$WORK/data-hook" \
  "$FRESHEN" watch --config "$WORK/hook.yaml" --serve "127.0.0.1:$HOOK_PORT" --log info >"$WORK/hook.out" 2>"$WORK/hook.log" &
HOOK_PID=$!
PIDS+=("$HOOK_PID")
FRESHEN_DATABASE="sqlite://$WORK/poll.db" FRESHEN_DATA_DIR="$WORK/data-poll" \
  "$FRESHEN" watch --config "$WORK/poll.yaml" --log info >"$WORK/poll.out" 2>"$WORK/poll.log" &
POLL_PID=$!
PIDS+=("$POLL_PID")
wait_http "http://127.0.0.1:$HOOK_PORT/healthz" "freshen watch --serve"
for w in hook poll; do
  for _ in $(seq 100); do
    fr "$w" history --config "$WORK/$w.yaml" "$HOST/app:1" >/dev/null 2>&1 && break
    sleep 0.2
  done
  fr "$w" history --config "$WORK/$w.yaml" "$HOST/app:1" >/dev/null 2>&1 || { tail "$WORK/$w.log" >&2; die "no baseline for the $w daemon"; }
done
say "== both daemons have their baseline (app:1 = app:src-0)"
say

# ---------------------------------------------------------------- 1. push to trigger
arrival() { # $1: path, $2: digest, $3: line count before the push; prints the arrival time
  awk -v p="$1" -v d="$2" -v skip="$3" 'NR > skip && $2 == p && $3 == d {print $1; exit}' "$WORK/arrivals.log"
}
say "== 1. push to trigger: webhook (schedule 1h) vs polling every ${POLL}s, $RUNS rounds"
# freshen's intake answers, in order (its log): "<epoch> <outcome>" per
# tag pushed. Splits the webhook's latency into notification + check, and
# the wait for the watcher's next delivery pass; an "unchanged" answer to a
# push of a new digest is a webhook that fired nothing.
answers() {
  sed 's/\x1b\[[0-9;]*m//g' "$WORK/hook.log" | { grep 'push received' || true; } |
    sed -E 's/^([^ ]+) .*outcome="([a-z]+)".*/\1 \2/' |
    while read -r ts outcome; do printf '%s %s\n' "$(date -d "$ts" +%s.%N)" "$outcome"; done
}
LAT_HOOK=()
LAT_POLL=()
LAT_IN=()
LAT_Q=()
MISSED=0
for round in $(seq "$RUNS"); do
  src=$round
  d=${DIGEST[$src]}
  pause=$(awk -v s="$RANDOM" -v p="$POLL" 'BEGIN {srand(s); printf "%.3f", rand() * p}')
  sleep "$pause"
  before=$(wc -l <"$WORK/arrivals.log")
  nans=$(answers | wc -l)
  t0=$(now)
  move "$src"
  t1=$(now)
  th="" tp="" ans=""
  deadline=$(calc '%.0f' "$t1 + 3 * $POLL + 30")
  while [ -z "$ans" ] || [ -z "$tp" ] || { [ -z "$th" ] && [ "${ans#* }" = fired ]; }; do
    [ -n "$ans" ] || ans=$(answers | sed -n "$((nans + 1))p")
    [ -n "$th" ] || th=$(arrival /hook/webhook "$d" "$before")
    [ -n "$tp" ] || tp=$(arrival /hook/poll "$d" "$before")
    [ "${EPOCHSECONDS}" -lt "$deadline" ] || { tail -n 5 "$WORK/hook.log" "$WORK/poll.log" >&2; die "round $round: no trigger for $d (answer '${ans}', webhook '${th}', poll '${tp}')"; }
    sleep 0.05
  done
  lp=$(calc '%.3f' "$tp - $t1")
  LAT_POLL+=("$lp")
  tf=${ans% *}
  li=$(calc '%.3f' "$tf - $t1")
  if [ -n "$th" ]; then
    lh=$(calc '%.3f' "$th - $t1")
    lq=$(calc '%.3f' "$th - $tf")
    LAT_HOOK+=("$lh")
    LAT_IN+=("$li")
    LAT_Q+=("$lq")
    say "round $round (after ${pause}s): copy $(calc '%.3f' "$t1 - $t0") s; trigger after: webhook $lh s (answered \"${ans#* }\" at +$li s, then $lq s to the delivery pass), poll $lp s"
  else
    MISSED=$((MISSED + 1))
    say "round $round (after ${pause}s): copy $(calc '%.3f' "$t1 - $t0") s; trigger after: webhook NONE (answered \"${ans#* }\" at +$li s: its HEAD saw the old digest), poll $lp s"
  fi
done
mh=$(printf '%s\n' "${LAT_HOOK[@]}" | median)
mp=$(printf '%s\n' "${LAT_POLL[@]}" | median)
fires_hook=$(grep -c ' /hook/webhook ' "$WORK/arrivals.log" || true)
fires_poll=$(grep -c ' /hook/poll ' "$WORK/arrivals.log" || true)
say
say "median push-to-trigger, webhook receiver: $mh s over the $((RUNS - MISSED)) rounds it fired; $MISSED of $RUNS fired nothing (range $(printf '%s\n' "${LAT_HOOK[@]}" | minmax))"
say "median push-to-trigger, polling ${POLL}s:   $mp s (range $(printf '%s\n' "${LAT_POLL[@]}" | minmax))"
say "polling / webhook: $(calc '%.1f' "$mp / $mh")x"
say "webhook split, medians: copy end to freshen's \"fired\" answer $(printf '%s\n' "${LAT_IN[@]}" | median) s (range $(printf '%s\n' "${LAT_IN[@]}" | minmax)), then to the delivery $(printf '%s\n' "${LAT_Q[@]}" | median) s (range $(printf '%s\n' "${LAT_Q[@]}" | minmax); the watcher's idle wait is up to 5 s)"
say "triggers received: webhook daemon $fires_hook, polling daemon $fires_poll (rounds: $RUNS)"
say

# ---------------------------------------------------------------- 2. webhook handling cost
stop "$POLL_PID"
say "== 2. one webhook for the unchanged app:1 vs one skopeo inspect, $HOOKS each, one after another"
cur=$(skopeo inspect --raw --tls-verify=false "docker://$HOST/app:1")
cur_digest="sha256:$(printf '%s' "$cur" | sha256sum | cut -d' ' -f1)"
jq -n --arg d "$cur_digest" --arg mt "$(printf '%s' "$cur" | jq -r .mediaType)" --argjson size "$(printf '%s' "$cur" | wc -c)" \
  --arg host "$HOST" '{events: [{
    id: "bench-1", timestamp: "2026-12-02T10:00:00Z", action: "push",
    target: {mediaType: $mt, size: $size, digest: $d, length: $size, repository: "app",
             url: ("http://" + $host + "/v2/app/manifests/" + $d), tag: "1"},
    request: {id: "r1", addr: "127.0.0.1:40000", host: $host, method: "PUT", useragent: "skopeo/bench"},
    actor: {}, source: {addr: "bench:5000", instanceID: "bench"}}]}' >"$WORK/envelope.json"
HOOK_URL="http://127.0.0.1:$HOOK_PORT/hooks/registry/$KEY"
reg_requests() { # $1: byte offset of the registry log; counts HEAD and GET since
  tail -c +"$(($1 + 1))" "$WORK/registry.log" | awk '/"HEAD \/v2\/app\/manifests\/1 /{h++} /"GET /{g++} /"(HEAD|GET|PUT|POST|PATCH|DELETE) /{a++} END {printf "%d HEAD of app:1, %d GET, %d requests in all", h, g, a}'
}
off=$(wc -c <"$WORK/registry.log")
python3 "$HELPER" hooks "$HOOK_URL" "$TOKEN" "$WORK/envelope.json" "$HOOKS" >"$WORK/hooks.ms" 2>"$WORK/hooks.err" ||
  { cat "$WORK/hooks.err" >&2; die "webhook POSTs failed"; }
say "$(grep 'first answer' "$WORK/hooks.err")"
say "registry during the $HOOKS keep-alive webhooks: $(reg_requests "$off")"
off=$(wc -c <"$WORK/registry.log")
python3 "$HELPER" procs "$HOOKS" curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/vnd.docker.distribution.events.v1+json' --data-binary "@$WORK/envelope.json" "$HOOK_URL" >"$WORK/curl.ms"
say "registry during the $HOOKS curl webhooks:       $(reg_requests "$off")"
off=$(wc -c <"$WORK/registry.log")
python3 "$HELPER" procs "$HOOKS" skopeo inspect --raw --tls-verify=false "docker://$HOST/app:1" >"$WORK/skopeo.ms"
say "registry during the $HOOKS skopeo inspects:     $(reg_requests "$off")"
fired_after=$(grep -c ' /hook/webhook ' "$WORK/arrivals.log" || true)
[ "$fired_after" = "$fires_hook" ] || die "the unchanged webhooks fired $((fired_after - fires_hook)) triggers"
m_keep=$(median <"$WORK/hooks.ms")
m_curl=$(median <"$WORK/curl.ms")
m_sko=$(median <"$WORK/skopeo.ms")
say
say "median ms per request: webhook keep-alive $m_keep (range $(minmax <"$WORK/hooks.ms")), webhook one curl each $m_curl (range $(minmax <"$WORK/curl.ms")), skopeo inspect --raw $m_sko (range $(minmax <"$WORK/skopeo.ms"))"
say "skopeo inspect / webhook (keep-alive): $(calc '%.1f' "$m_sko / $m_keep")x"
say "skopeo inspect / webhook (one curl each): $(calc '%.1f' "$m_sko / $m_curl")x"
say
say "== summary"
say "push to trigger, median of $RUNS: webhook $mh s ($MISSED rounds missed), polling ${POLL}s $mp s, ratio $(calc '%.1f' "$mp / $mh")x"
say "webhook handling, median of $HOOKS: $m_keep ms (keep-alive), $m_curl ms (curl); skopeo inspect $m_sko ms; ratios $(calc '%.1f' "$m_sko / $m_keep")x, $(calc '%.1f' "$m_sko / $m_curl")x"
