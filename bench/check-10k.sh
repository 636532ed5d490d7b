#!/usr/bin/env bash
# Benchmark (not a test): steady-state `freshen check` of 10,000 tags in a
# local CNCF Distribution registry, against
#   (a) the registry's own HEAD ceiling, measured by ApacheBench (`ab -i`) in
#       the same run, at the same concurrency, and
#   (b) `skopeo inspect` per tag on a sample of tags.
# Prints medians, ratios and registry requests per tag (from the registry's
# access log). Target: >= 80 % of ab's ceiling, exactly 1 HEAD per tag.
#
#   bash bench/check-10k.sh
#
# Knobs (environment): TAGS=10000 RUNS=5 (interleaved rounds per concurrency)
# CONCURRENCIES="32 8" AB_N=$TAGS SKOPEO_SAMPLE=100 POSTGRES=auto|0|1 PERF=1|0
# TIME_LIMIT=3600 (seconds, whole script, build included) KEEP=1 (keep the
# temp dir).
#
# Loopback only. Everything it starts (registry, database, watchdog) is
# stopped on exit; it writes only into a temp dir (and cargo's target dir).
# Needs: cargo, docker-registry, curl, ab (apache2-utils), jq, python3;
# optional: skopeo, psql + a PostgreSQL at 127.0.0.1:5432 (user postgres,
# trust auth, as scripts/test sets up), perf.
set -euo pipefail

TAGS=${TAGS:-10000}
RUNS=${RUNS:-5}
CONCURRENCIES=${CONCURRENCIES:-"32 8"}
AB_N=${AB_N:-$TAGS}
SKOPEO_SAMPLE=${SKOPEO_SAMPLE:-100}
POSTGRES=${POSTGRES:-auto}
PERF=${PERF:-1}
TIME_LIMIT=${TIME_LIMIT:-3600}
KEEP=${KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
TIMEFORMAT='%R %U %S' # `time`: wall, user CPU, system CPU (seconds)

say() { printf '%s\n' "$*"; }
die() {
  printf 'check-10k: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: apt-get install $2"; }
need cargo "rustup/cargo"
need docker-registry docker-registry
need curl curl
need ab apache2-utils
need jq jq
need python3 python3
HAVE_SKOPEO=1
command -v skopeo >/dev/null 2>&1 || HAVE_SKOPEO=0

WORK=$(mktemp -d "${TMPDIR:-/tmp}/freshen-check-10k.XXXXXX")
REG_PID=""
WATCHDOG_PID=""
PG_DB=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$REG_PID" ] && kill -0 "$REG_PID" 2>/dev/null; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  if [ -n "$PG_DB" ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 ||
      say "check-10k: could not drop database $PG_DB" >&2
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
# children (bash runs the trap only once the foreground child has ended);
# every long step also has its own `timeout`.
MAIN_PID=$$
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$TIME_LIMIT" &
  sp=$!
  wait "$sp"
  trap - TERM
  echo "check-10k: time limit of ${TIME_LIMIT}s reached; stopping" >&2
  kill -TERM "$MAIN_PID"
  for child in $(pgrep -P "$MAIN_PID"); do
    [ "$child" = "$BASHPID" ] || kill -TERM "$child" 2>/dev/null || true
  done
) &
WATCHDOG_PID=$!

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
now() { printf '%s' "$EPOCHREALTIME"; }

# ---------------------------------------------------------------- machine
say "== freshen check-10k benchmark"
say "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "commit:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) paths modified in the work tree)"
say "cpus:     $(nproc) ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
say "memory:   $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
say "kernel:   $(uname -r)"
say "registry: $(docker-registry --version 2>&1 | sed -n 1p)"
say "ab:       $(ab -V | sed -n 1p)"
[ "$HAVE_SKOPEO" = 1 ] && say "skopeo:   $(skopeo --version)"
say "settings: TAGS=$TAGS RUNS=$RUNS CONCURRENCIES=\"$CONCURRENCIES\" AB_N=$AB_N SKOPEO_SAMPLE=$SKOPEO_SAMPLE"
say

# ---------------------------------------------------------------- build
say "== building: cargo build --release -p freshen"
t0=$(now)
if ! (cd "$ROOT" && timeout 3000 cargo build --release -p freshen) >"$WORK/build.log" 2>&1; then
  tail -30 "$WORK/build.log" >&2
  die "release build failed"
fi
FRESHEN="${CARGO_TARGET_DIR:-$ROOT/target}/release/freshen"
[ -x "$FRESHEN" ] || die "no binary at $FRESHEN"
say "built in $(calc '%.0f' "$(now) - $t0") s: $FRESHEN ($("$FRESHEN" --version))"
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
say "== registry: $REG (pid $REG_PID, storage $WORK/storage, access log on)"

# One small OCI image (linux/amd64, one layer) pushed with plain HTTP calls.
IMG="$WORK/image"
mkdir -p "$IMG/rootfs"
printf 'freshen benchmark\n' >"$IMG/rootfs/hello"
tar -C "$IMG/rootfs" --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$IMG/layer.tar" hello
gzip -n -c "$IMG/layer.tar" >"$IMG/layer.tar.gz"
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(sha "$IMG/layer.tar")" >"$IMG/config.json"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$OCI_MANIFEST" "$(sha "$IMG/config.json")" "$(size "$IMG/config.json")" \
  "$(sha "$IMG/layer.tar.gz")" "$(size "$IMG/layer.tar.gz")" >"$IMG/manifest.json"
DIGEST="sha256:$(sha "$IMG/manifest.json")"
push_blob() {
  local file=$1 loc
  loc=$(curl -fsS -X POST -D - -o /dev/null "$REG/v2/bench/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
  [ -n "$loc" ] || die "blob upload: no Location"
  case $loc in /*) loc="$REG$loc" ;; esac
  curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" \
    -o /dev/null "$loc&digest=sha256:$(sha "$file")"
}
push_blob "$IMG/layer.tar.gz"
push_blob "$IMG/config.json"

# TAGS tags, all pointing at the same manifest: the same bytes PUT under each
# tag, by 8 curl processes of 250 URLs each (one connection per process).
seq -f "$REG/v2/bench/manifests/t%05g" 0 $((TAGS - 1)) >"$WORK/tag-urls"
t0=$(now)
timeout 600 xargs -P 8 -n 250 curl -sS -X PUT -H "Content-Type: $OCI_MANIFEST" \
  --data-binary "@$IMG/manifest.json" -o /dev/null -w '%{http_code}\n' \
  <"$WORK/tag-urls" >"$WORK/tag-codes"
created=$(grep -c '^201$' "$WORK/tag-codes" || true)
[ "$created" -eq "$TAGS" ] || die "created $created of $TAGS tags ($(sort "$WORK/tag-codes" | uniq -c | tr '\n' ' '))"
listed=$(curl -fsS "$REG/v2/bench/tags/list" | jq '.tags | length')
[ "$listed" -eq "$TAGS" ] || die "the registry lists $listed tags, expected $TAGS"
got=$(curl -fsS -I -H "Accept: $OCI_MANIFEST" "$REG/v2/bench/manifests/t00001" |
  tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" {print $2}')
[ "$got" = "$DIGEST" ] || die "HEAD t00001 gave digest '$got', expected $DIGEST"
say "pushed 1 image ($DIGEST, $(size "$IMG/manifest.json") B manifest) and $TAGS tags in $(calc '%.1f' "$(now) - $t0") s"
say

# ---------------------------------------------------------------- helpers
log_offset() { stat -c %s "$ACCESS"; }
# CPU seconds used so far, as "registry postgres machine": the registry
# (user + system, all threads); PostgreSQL (every process of user postgres,
# plus the backends its postmaster reaped: a connection's CPU outlives it);
# the whole machine (busy time of all cores, steal excluded). The machine's
# busy time minus ours tells how much else ran meanwhile (others share it).
HZ=$(getconf CLK_TCK)
proc_cpu() { sed 's/^.*) //' "$@" 2>/dev/null | awk -v hz="$HZ" '{t += $12 + $13 + $14 + $15} END {printf "%.2f", t / hz}'; }
cpu_snapshot() {
  local pg=0 files=()
  if [ -n "$PG_DB" ]; then
    for p in $(pgrep -u postgres); do files+=("/proc/$p/stat"); done
    [ ${#files[@]} -eq 0 ] || pg=$(proc_cpu "${files[@]}")
  fi
  echo "$(proc_cpu "/proc/$REG_PID/stat") $pg $(awk -v hz="$HZ" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat)"
}
# Sets D_REG D_PG D_BUSY: CPU seconds since snapshot $1.
cpu_delta() {
  local now
  now=$(cpu_snapshot)
  read -r D_REG D_PG D_BUSY < <(echo "$1 $now" | awk '{printf "%.2f %.2f %.2f\n", $4 - $1, $5 - $2, $6 - $3}')
}
# Requests in the access log since byte offset $1: "HEAD GET other non-2xx".
count_requests() {
  sleep 0.3 # the log line is written just after the response
  tail -c +$(($1 + 1)) "$ACCESS" | awk '
    / "HEAD \/v2\// {h++} / "GET \/v2\// {g++}
    !/ "(HEAD|GET) \/v2\// {o++}
    match($0, /HTTP\/1\.[01]" [0-9][0-9][0-9] /) {if (substr($0, RSTART + 10, 1) != "2") bad++}
    END {printf "%d %d %d %d\n", h, g, o, bad}'
}
# The same slice of the log as "count method path-kind" items.
request_kinds() {
  sleep 0.3
  tail -c +$(($1 + 1)) "$ACCESS" | awk '
    match($0, /"[A-Z]+ [^ ]+/) {
      split(substr($0, RSTART + 1, RLENGTH - 1), r, " ")
      p = r[2]; sub(/\?.*/, "", p)
      if (p ~ /\/manifests\//) p = "/v2/bench/manifests/<tag>"; else if (p ~ /\/blobs\//) p = "/v2/bench/blobs/<digest>"
      k[r[1] " " p]++
    }
    END {for (x in k) printf "%s %s; ", k[x], x}'
}
write_config() { # concurrency file
  {
    say "check_concurrency: $1"
    say "registries:"
    say "  - host: \"$HOST\""
    say "    max_concurrency: $1"
    say "watches:"
    seq -f "  - ref: $HOST/bench:t%05g" 0 $((TAGS - 1))
  } >"$2"
}

RESULTS="$WORK/results"
: >"$RESULTS"
# Appends one measurement, CPU from cpu_delta. Args: tool c rep wall rate client-cpu log-offset
record() {
  local h g o bad others n
  read -r h g o bad < <(count_requests "$7")
  others=$(calc '%.2f' "$D_BUSY - $D_REG - $D_PG - $6")
  echo "$1 $2 $3 $4 $5 $6 $D_REG $D_PG $others $h $g $o $bad" >>"$RESULTS"
  n=$((h + g > 0 ? h + g : 1))
  printf '  %-16s c=%-3s #%s %6.2f s %4.0f req/s  HEAD %5s GET %5s other %s non-2xx %s  CPU us/req: client %4.0f registry %4.0f postgres %4.0f; others used %.2f cores\n' \
    "$1" "$2" "$3" "$4" "$5" "$h" "$g" "$o" "${bad:-0}" \
    "$(calc '%.0f' "$6 * 1e6 / $n")" "$(calc '%.0f' "$D_REG * 1e6 / $n")" "$(calc '%.0f' "$D_PG * 1e6 / $n")" "$(calc '%.2f' "$others / $4")"
}

# ab -i: N HEADs of one tag. Args: concurrency keepalive(0|1) rep
ab_run() {
  local c=$1 k=$2 off c0 rc=0 wall u s rps failed non2xx
  local flags=(-i -n "$AB_N" -c "$c" -H "Accept: $OCI_MANIFEST")
  [ "$k" = 1 ] && flags+=(-k)
  off=$(log_offset)
  c0=$(cpu_snapshot)
  { time timeout 600 ab "${flags[@]}" "$REG/v2/bench/manifests/t00001" >"$WORK/ab.out" 2>&1; } 2>"$WORK/t" || rc=$?
  cpu_delta "$c0"
  [ "$rc" -eq 0 ] || {
    tail -20 "$WORK/ab.out" >&2
    die "ab exited $rc"
  }
  read -r wall u s <"$WORK/t"
  rps=$(awk '/^Requests per second:/ {print $4}' "$WORK/ab.out")
  failed=$(awk '/^Failed requests:/ {print $3}' "$WORK/ab.out")
  non2xx=$(awk '/^Non-2xx responses:/ {print $3}' "$WORK/ab.out")
  [ "${failed:-0}" -eq 0 ] && [ -z "$non2xx" ] || die "ab -c $c: failed=$failed non-2xx=$non2xx"
  if [ "$k" = 1 ]; then
    local kept
    kept=$(awk '/^Keep-Alive requests:/ {print $3}' "$WORK/ab.out")
    [ "$kept" = "$AB_N" ] || say "  !! ab -k: only $kept of $AB_N requests kept the connection alive"
  fi
  record "$([ "$k" = 1 ] && echo ab-keepalive || echo ab-new-conn)" "$c" "$3" "$wall" "$rps" \
    "$(calc '%.2f' "$u + $s")" "$off"
}

# curl --parallel: 1 HEAD per tag over all tags, keep-alive, nothing stored.
curl_run() { # concurrency rep
  local off c0 wall u s
  off=$(log_offset)
  c0=$(cpu_snapshot)
  { time timeout 600 curl --parallel --parallel-max "$1" -K "$WORK/curl-heads.cfg" >/dev/null 2>&1; } 2>"$WORK/t" ||
    die "curl --parallel failed"
  cpu_delta "$c0"
  read -r wall u s <"$WORK/t"
  record curl-parallel "$1" "$2" "$wall" "$(calc '%.1f' "$TAGS / $wall")" \
    "$(calc '%.2f' "$u + $s")" "$off"
}

# One `freshen check --config CFG --json` over every watch, end to end.
freshen_run() { # store-name db-url config concurrency rep(0 = baseline)
  local name=$1 db=$2 cfg=$3 c=$4 rep=$5 off c0 rc=0 wall u s out="$WORK/freshen-$1-c$4-$5"
  off=$(log_offset)
  c0=$(cpu_snapshot)
  { time timeout 900 env FRESHEN_DATABASE="$db" "$FRESHEN" check --config "$cfg" --json \
    >"$out.json" 2>"$out.err"; } 2>"$WORK/t" || rc=$?
  cpu_delta "$c0"
  [ "$rc" -eq 0 ] || {
    head -c 2000 "$out.err" >&2
    die "freshen check ($name, c=$c) exited $rc"
  }
  read -r wall u s <"$WORK/t"
  local status want=unchanged
  [ "$rep" = 0 ] && want=new
  status=$(jq -r '"\(.results | length) \(.errors | length) \([.results[].platforms[] | select(.status == "'"$want"'")] | length)"' "$out.json")
  [ "$status" = "$TAGS 0 $TAGS" ] || die "freshen check ($name, c=$c): results/errors/$want = $status, expected $TAGS 0 $TAGS"
  record "freshen-$name$([ "$rep" = 0 ] && echo -baseline)" "$c" "$rep" "$wall" "$(calc '%.1f' "$TAGS / $wall")" \
    "$(calc '%.2f' "$u + $s")" "$off"
  rm -f "$out.json"
}

# ---------------------------------------------------------------- stores
STORES=("sqlite sqlite://$WORK/freshen.db")
if [ "$POSTGRES" != 0 ] && command -v psql >/dev/null 2>&1 &&
  psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'select 1' >/dev/null 2>&1; then
  PG_DB="freshen_bench_$$"
  psql -h 127.0.0.1 -U postgres -d postgres -qAtc "CREATE DATABASE $PG_DB" >/dev/null
  STORES+=("postgres postgres://postgres@127.0.0.1:5432/$PG_DB")
elif [ "$POSTGRES" = 1 ]; then
  die "POSTGRES=1 but no PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth)"
else
  say "(no PostgreSQL at 127.0.0.1:5432: SQLite only)"
fi

{
  say "head"
  say "silent"
  say "output = /dev/null"
  say "header = \"Accept: $OCI_MANIFEST\""
  sed 's/.*/url = "&"/' "$WORK/tag-urls"
} >"$WORK/curl-heads.cfg"

C1=$(echo "$CONCURRENCIES" | awk '{print $1}')
write_config "$C1" "$WORK/freshen-c$C1.yaml"
say "== baseline: first freshen check of every tag into an empty store (not measured; GETs expected)"
for store in "${STORES[@]}"; do
  read -r sname db <<<"$store"
  freshen_run "$sname" "$db" "$WORK/freshen-c$C1.yaml" "$C1" 0
done
say

say "== fixed cost of one freshen run: process start, parsing the $TAGS-watch config, opening the store"
say "   (\`freshen history <one tag> --config ...\`: the same start-up, one query, no registry request)"
declare -A FIXED
for store in "${STORES[@]}"; do
  read -r sname db <<<"$store"
  fixed=()
  for _ in 1 2 3; do
    { time env FRESHEN_DATABASE="$db" "$FRESHEN" history "$HOST/bench:t00000" --config "$WORK/freshen-c$C1.yaml" >/dev/null; } 2>"$WORK/t"
    fixed+=("$(cut -d' ' -f1 "$WORK/t")")
  done
  FIXED[$sname]=$(printf '%s\n' "${fixed[@]}" | median)
  say "  $sname: ${fixed[*]} s (median ${FIXED[$sname]} s)"
done
say

# ---------------------------------------------------------------- interleaved measurements
say "== steady state, interleaved: per round ab -k, ab, curl --parallel, then freshen per store"
say "   ab: $AB_N HEADs of one tag; curl and freshen: 1 HEAD for each of the $TAGS tags"
for c in $CONCURRENCIES; do
  write_config "$c" "$WORK/freshen-c$c.yaml"
  for rep in $(seq "$RUNS"); do
    ab_run "$c" 1 "$rep"
    ab_run "$c" 0 "$rep"
    curl_run "$c" "$rep"
    for store in "${STORES[@]}"; do
      read -r sname db <<<"$store"
      freshen_run "$sname" "$db" "$WORK/freshen-c$c.yaml" "$c" "$rep"
    done
  done
done
say

# ---------------------------------------------------------------- profile
if [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
  say "== where freshen's CPU goes: perf record of one more steady-state run (sqlite, c=$C1)"
  if timeout 900 env FRESHEN_DATABASE="sqlite://$WORK/freshen.db" perf record -q -F 1999 -o "$WORK/perf.data" \
    -- "$FRESHEN" check --config "$WORK/freshen-c$C1.yaml" --json >/dev/null 2>"$WORK/perf.err"; then
    say "  by shared object (self time):"
    perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | sed -n '1,6p' | sed 's/^/    /'
    say "  by thread (sqlx runs each SQLite connection on its own thread):"
    perf report -i "$WORK/perf.data" --no-children --sort comm --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | sed -n '1,8p' | sed 's/^/    /'
    say "  top symbols (self time):"
    perf report -i "$WORK/perf.data" --no-children --sort sym --stdio 2>/dev/null |
      grep -v '^#' | grep -v '^$' | sed -n '1,25p' | cut -c1-140 | sed 's/^/    /'
    # Rough buckets by symbol name.
    perf report -i "$WORK/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^#' | grep '%' |
      awk '{p = $1; sub(/%/, "", p); line = $0
        if (line ~ /\[kernel/) b = "kernel (syscalls, network, scheduling, page faults)"
        else if (line ~ /sqlite|sqlx|[Vv]dbe|[Bb]tree|[Pp]ager|pcache|wal[A-Z]|unix[A-Z]|yy_|flume/) b = "SQLite, sqlx and its worker channel (flume)"
        else if (line ~ /hyper|reqwest|h2::|http::|tower|rustls|webpki|pki_types/) b = "HTTP client and TLS setup (hyper, reqwest, rustls)"
        else if (line ~ /tokio|parking_lot|futex|pthread/) b = "tokio runtime, threads"
        else if (line ~ /serde|yaml|json/) b = "serde (config, JSON output)"
        else if (line ~ /malloc|free|memcpy|memmove|memset|alloc|libc/) b = "allocation, memcpy (libc)"
        else b = "other"
        s[b] += p}
        END {for (b in s) printf "%6.1f%%  %s\n", s[b], b}' | sort -rn | sed 's/^/    /' >"$WORK/perf.buckets"
    say "  rough buckets:"
    cat "$WORK/perf.buckets"
  else
    say "  perf record failed: $(head -3 "$WORK/perf.err")"
  fi
  say
fi

# ---------------------------------------------------------------- skopeo
SK_ROWS=()
if [ "$HAVE_SKOPEO" = 1 ] && [ "$SKOPEO_SAMPLE" -gt 0 ]; then
  say "== skopeo inspect, sample of $SKOPEO_SAMPLE tags spread over all $TAGS"
  step=$((TAGS / SKOPEO_SAMPLE))
  [ "$step" -ge 1 ] || step=1
  seq -f 't%05g' 0 "$step" $((TAGS - 1)) | sed -n "1,${SKOPEO_SAMPLE}p" >"$WORK/sample"
  n=$(wc -l <"$WORK/sample")
  skopeo inspect --tls-verify=false --no-tags --format '{{.Digest}}' "docker://$HOST/bench:t00000" | grep -qx "$DIGEST" ||
    die "skopeo inspect did not print $DIGEST"
  for par in 1 "$C1"; do
    off=$(log_offset)
    { time timeout 900 xargs -P "$par" -I{} skopeo inspect --tls-verify=false --no-tags --format '{{.Digest}}' \
      "docker://$HOST/bench:{}" <"$WORK/sample" >"$WORK/skopeo.out"; } 2>"$WORK/t"
    read -r wall u s <"$WORK/t"
    ok=$(grep -cx "$DIGEST" "$WORK/skopeo.out" || true)
    [ "$ok" -eq "$n" ] || die "skopeo printed $ok of $n digests"
    per=$(calc '%.2f' "$wall * 1000 / $n")
    printf '  skopeo inspect --no-tags, %2s at a time: %6.2f s for %s tags = %7s ms/tag, %6.1f tags/s, skopeo CPU %.0f ms/tag\n' \
      "$par" "$wall" "$n" "$per" "$(calc '%.1f' "$n / $wall")" "$(calc '%.1f' "($u + $s) * 1000 / $n")"
    say "    requests: $(request_kinds "$off")"
    SK_ROWS+=("--no-tags $par $per $(calc '%.1f' "$n / $wall")")
  done
  # Plain `skopeo inspect` also lists the repository's tags (all of them) each time.
  sed -n '1,10p' "$WORK/sample" >"$WORK/sample10"
  n=$(wc -l <"$WORK/sample10")
  off=$(log_offset)
  { time timeout 600 xargs -I{} skopeo inspect --tls-verify=false --format '{{.Digest}}' \
    "docker://$HOST/bench:{}" <"$WORK/sample10" >"$WORK/skopeo.out"; } 2>"$WORK/t"
  read -r wall u s <"$WORK/t"
  per=$(calc '%.2f' "$wall * 1000 / $n")
  printf '  skopeo inspect (also lists the %s tags), 1 at a time: %6.2f s for %s tags = %s ms/tag\n' "$TAGS" "$wall" "$n" "$per"
  say "    requests: $(request_kinds "$off")"
  SK_ROWS+=("with-tag-list 1 $per $(calc '%.1f' "$n / $wall")")
  say
fi

# ---------------------------------------------------------------- summary
# Median of column $2 over rows of tool $1 at concurrency $3 (rep > 0).
med() { awk -v t="$1" -v c="$3" -v col="$2" '$1 == t && $2 == c && $3 > 0 {print $col}' "$RESULTS" | median; }
# Per-round ratio of tool $1's rate to tool $2's rate at concurrency $3: median.
paired() {
  awk -v a="$1" -v b="$2" -v c="$3" '$2 == c && $3 > 0 && $1 == a {ra[$3] = $5} $2 == c && $3 > 0 && $1 == b {rb[$3] = $5}
    END {for (r in ra) if (r in rb) print 100 * ra[r] / rb[r]}' "$RESULTS" | median
}
# Requests per tag over the runs of tool $1 at concurrency $3, column $2: "min..max" or one value.
per_tag() {
  awk -v t="$1" -v c="$3" -v col="$2" -v n="$TAGS" '$1 == t && $2 == c && $3 > 0 {v = $col / n; if (!k++ || v < lo) lo = v; if (v > hi) hi = v}
    END {if (lo == hi) printf "%.2f", lo; else printf "%.2f..%.2f", lo, hi}' "$RESULTS"
}
# Median over rounds of column $2 per request (us) or per second of wall ($4 = wall).
med_per_req() { awk -v t="$1" -v c="$3" -v col="$2" '$1 == t && $2 == c && $3 > 0 {print $col * 1e6 / ($10 + $11)}' "$RESULTS" | median; }
med_per_s() { awk -v t="$1" -v c="$3" -v col="$2" '$1 == t && $2 == c && $3 > 0 {print $col / $4}' "$RESULTS" | median; }
summary_row() { # label tool concurrency ab-k-rate ab-rate
  local rate heads gets
  rate=$(med "$2" 5 "$3")
  heads=-
  gets=-
  case $2 in freshen-* | curl-*)
    heads=$(per_tag "$2" 10 "$3")
    gets=$(per_tag "$2" 11 "$3")
    ;;
  esac
  printf '  %-28s %8.2f %6.0f %7s %7s %9s %9s %7.0f %7.0f %7.0f %7.2f\n' "$1" "$(med "$2" 4 "$3")" "$rate" \
    "$(calc '%.0f%%' "100 * $rate / $4")" "$(calc '%.0f%%' "100 * $rate / $5")" "$heads" "$gets" \
    "$(med_per_req "$2" 6 "$3")" "$(med_per_req "$2" 7 "$3")" "$(med_per_req "$2" 8 "$3")" "$(med_per_s "$2" 9 "$3")"
}
say "== summary: $TAGS tags, steady state (every tag recorded, nothing changed), medians of $RUNS interleaved rounds"
say "   req/s: ab's own figure; tags/s for curl and freshen (end to end: process start, config, store, output)."
say "   CPU columns: microseconds of CPU per request (client = the tool itself); others = cores used meanwhile by"
say "   processes not in this benchmark (the machine is shared)."
say
for c in $CONCURRENCIES; do
  abk=$(med ab-keepalive 5 "$c")
  abn=$(med ab-new-conn 5 "$c")
  say "concurrency $c (freshen: check_concurrency = max_concurrency = $c)"
  printf '  %-28s %8s %6s %7s %7s %9s %9s %7s %7s %7s %7s\n' "" "median s" "req/s" "% ab -k" "% ab" "HEAD/tag" "GET/tag" \
    "cpu cli" "cpu reg" "cpu pg" "others"
  summary_row "ab -i -k (registry ceiling)" ab-keepalive "$c" "$abk" "$abn"
  summary_row "ab -i (new connection each)" ab-new-conn "$c" "$abk" "$abn"
  summary_row "curl --parallel, every tag" curl-parallel "$c" "$abk" "$abn"
  for store in "${STORES[@]}"; do
    read -r sname _ <<<"$store"
    summary_row "freshen check ($sname)" "freshen-$sname" "$c" "$abk" "$abn"
  done
  for store in "${STORES[@]}"; do
    read -r sname _ <<<"$store"
    wall=$(med "freshen-$sname" 4 "$c")
    crate=$(calc '%.0f' "$TAGS / ($wall - ${FIXED[$sname]})")
    say "  freshen ($sname): other requests/tag $(per_tag "freshen-$sname" 12 "$c");" \
      "paired per round: $(calc '%.0f' "$(paired "freshen-$sname" ab-keepalive "$c")")% of ab -k, $(calc '%.0f' "$(paired "freshen-$sname" ab-new-conn "$c")")% of ab;" \
      "check phase only (minus ${FIXED[$sname]} s fixed cost): $crate tags/s = $(calc '%.0f' "100 * $crate / $abk")% of ab -k"
  done
  say
done
if [ ${#SK_ROWS[@]} -gt 0 ]; then
  wall=$(med freshen-sqlite 4 "$C1")
  fr_ms=$(calc '%.3f' "$wall * 1000 / $TAGS")
  say "vs skopeo (freshen: sqlite, c=$C1, $fr_ms ms per tag end to end)"
  for row in "${SK_ROWS[@]}"; do
    read -r kind par per rate <<<"$row"
    printf '  skopeo inspect %-14s %2s at a time: %8s ms/tag (%6s tags/s): freshen is %4.0fx faster per tag\n' \
      "$kind" "$par" "$per" "$rate" "$(calc '%.1f' "$per / $fr_ms")"
  done
  say
fi
say "target: >= 80% of the registry's ceiling (ab), exactly 1.00 HEAD and 0.00 GET per tag in steady state"
say "raw measurements: tool c round wall_s rate cpu_s:client,registry,postgres,others HEAD GET other non2xx"
sed 's/^/  /' "$RESULTS"
