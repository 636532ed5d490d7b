#!/usr/bin/env bash
# Diagnostic companion to bench/check-10k.sh: how fast can `freshen check` go
# when the registry costs (almost) nothing? The real registry (Distribution
# 2.8) needs about 2 ms of CPU per HEAD on the 2-core benchmark machine, so it
# is the bottleneck there and hides freshen's own cost. Here a minimal
# registry stand-in (asyncio Python, one fixed OCI manifest for every tag,
# keep-alive) answers instead, and freshen's steady-state check of 10,000
# tags is compared with ab -i -k and curl --parallel against the same server.
#
#   bash bench/client-ceiling.sh
#
# Knobs: TAGS=10000 RUNS=5 C=32 AB_N=50000 POSTGRES=auto|0 PERF=1|0
# TIME_LIMIT=2400 KEEP=1 BASELINE=<an older freshen binary>: with
# BASELINE, each round also runs that binary on the same database, in
# alternating order, and the summary gives this build's ratio to it. Loopback only; stops everything it starts; writes
# only into a temp dir (and cargo's target dir).
set -euo pipefail

TAGS=${TAGS:-10000}
RUNS=${RUNS:-5}
C=${C:-32}
AB_N=${AB_N:-50000}
POSTGRES=${POSTGRES:-auto}
PERF=${PERF:-1}
TIME_LIMIT=${TIME_LIMIT:-2400}
KEEP=${KEEP:-0}
BASELINE=${BASELINE:-}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
TIMEFORMAT='%R %U %S'

say() { printf '%s\n' "$*"; }
die() {
  printf 'client-ceiling: %s\n' "$*" >&2
  exit 1
}
for t in cargo ab curl jq python3; do command -v "$t" >/dev/null 2>&1 || die "$t not found"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/freshen-client-ceiling.XXXXXX")
SRV_PID=""
WATCHDOG_PID=""
PG_DB=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
    kill "$SRV_PID" 2>/dev/null || true
    wait "$SRV_PID" 2>/dev/null || true
  fi
  if [ -n "$PG_DB" ]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 ||
      say "client-ceiling: could not drop database $PG_DB" >&2
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
  echo "client-ceiling: time limit of ${TIME_LIMIT}s reached; stopping" >&2
  kill -TERM "$MAIN_PID"
  for child in $(pgrep -P "$MAIN_PID"); do
    [ "$child" = "$BASHPID" ] || kill -TERM "$child" 2>/dev/null || true
  done
) &
WATCHDOG_PID=$!

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
HZ=$(getconf CLK_TCK)
proc_cpu() { sed 's/^.*) //' "$@" 2>/dev/null | awk -v hz="$HZ" '{t += $12 + $13 + $14 + $15} END {printf "%.2f", t / hz}'; }
# "server postgres machine" CPU seconds so far (see check-10k.sh).
cpu_snapshot() {
  local pg=0 files=()
  if [ -n "$PG_DB" ]; then
    for p in $(pgrep -u postgres); do files+=("/proc/$p/stat"); done
    [ ${#files[@]} -eq 0 ] || pg=$(proc_cpu "${files[@]}")
  fi
  echo "$(proc_cpu "/proc/$SRV_PID/stat") $pg $(awk -v hz="$HZ" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat)"
}

say "== freshen client-side ceiling (registry stand-in that costs almost nothing)"
say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  cpus: $(nproc)  commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) paths modified)"
say "settings: TAGS=$TAGS RUNS=$RUNS C=$C AB_N=$AB_N"
(cd "$ROOT" && timeout 3000 cargo build --release -p freshen) >"$WORK/build.log" 2>&1 || {
  tail -30 "$WORK/build.log" >&2
  die "release build failed"
}
FRESHEN="${CARGO_TARGET_DIR:-$ROOT/target}/release/freshen"
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || die "BASELINE=$BASELINE is not an executable"

# The image: a linux/amd64 config and an OCI manifest naming it (no layers
# needed: nothing but the manifest and config is ever read).
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}' >"$WORK/config.json"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[]}' \
  "$OCI_MANIFEST" "$(sha256sum "$WORK/config.json" | cut -d' ' -f1)" "$(stat -c %s "$WORK/config.json")" >"$WORK/manifest.json"

cat >"$WORK/stand-in.py" <<'EOF'
# HEAD/GET /v2/<repo>/manifests/<any tag> -> one fixed OCI manifest; GET its
# config blob; GET /v2/. HTTP/1.1 keep-alive, and HTTP/1.0 keep-alive for ab.
# GET /_counts (not counted) -> request counts by method.
import asyncio, hashlib, json, signal, sys

port, manifest_file, config_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
manifest = open(manifest_file, "rb").read()
config = open(config_file, "rb").read()
mdig = "sha256:" + hashlib.sha256(manifest).hexdigest()
cdig = "sha256:" + hashlib.sha256(config).hexdigest()
MT = "application/vnd.oci.image.manifest.v1+json"
counts = {"HEAD": 0, "GET": 0, "other": 0}


def response(status, ctype, digest, body, head, keep, v10):
    h = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", f"Content-Type: {ctype}"]
    if digest:
        h.append(f"Docker-Content-Digest: {digest}")
    if v10 and keep:
        h.append("Connection: keep-alive")
    if not keep:
        h.append("Connection: close")
    out = ("\r\n".join(h) + "\r\n\r\n").encode()
    return out if head else out + body


class Conn(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            req, self.buf = self.buf[:i], self.buf[i + 4 :]
            lines = req.split(b"\r\n")
            method, path, ver = lines[0].decode().split(" ")
            hdrs = b"\r\n".join(lines[1:]).lower()
            v10 = ver == "HTTP/1.0"
            keep = (b"connection: keep-alive" in hdrs) if v10 else (b"connection: close" not in hdrs)
            head = method == "HEAD"
            if path == "/_counts":
                out = response("200 OK", "application/json", None, json.dumps(counts).encode(), head, keep, v10)
            else:
                counts[method if method in counts else "other"] += 1
                if "/manifests/" in path:
                    out = response("200 OK", MT, mdig, manifest, head, keep, v10)
                elif path.endswith("/blobs/" + cdig):
                    out = response("200 OK", "application/octet-stream", cdig, config, head, keep, v10)
                elif path == "/v2/":
                    out = response("200 OK", "application/json", None, b"{}", head, keep, v10)
                else:
                    out = response("404 Not Found", "application/json", None, b'{"errors":[]}', head, keep, v10)
            self.t.write(out)
            if not keep:
                self.t.close()
                return


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await loop.create_server(Conn, "127.0.0.1", port, backlog=1024)
    await stop
    server.close()


asyncio.run(main())
EOF
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOST="127.0.0.1:$PORT"
python3 "$WORK/stand-in.py" "$PORT" "$WORK/manifest.json" "$WORK/config.json" 2>"$WORK/stand-in.err" &
SRV_PID=$!
for _ in $(seq 50); do curl -fs -o /dev/null "http://$HOST/v2/" && break; sleep 0.1; done
curl -fs -o /dev/null "http://$HOST/v2/" || die "stand-in did not start: $(cat "$WORK/stand-in.err")"
say "stand-in registry: http://$HOST (pid $SRV_PID)"

counts() { curl -fsS "http://$HOST/_counts" | jq -r '"\(.HEAD) \(.GET) \(.other)"'; }
{
  say "check_concurrency: $C"
  say "registries:"
  say "  - host: \"$HOST\""
  say "    max_concurrency: $C"
  say "watches:"
  seq -f "  - ref: $HOST/bench:t%05g" 0 $((TAGS - 1))
} >"$WORK/freshen.yaml"
{
  say "head"
  say "silent"
  say "output = /dev/null"
  say "header = \"Accept: $OCI_MANIFEST\""
  seq -f "url = \"http://$HOST/v2/bench/manifests/t%05g\"" 0 $((TAGS - 1))
} >"$WORK/curl.cfg"

STORES=("sqlite sqlite://$WORK/freshen.db")
if [ "$POSTGRES" != 0 ] && command -v psql >/dev/null 2>&1 &&
  psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'select 1' >/dev/null 2>&1; then
  PG_DB="freshen_ceiling_$$"
  psql -h 127.0.0.1 -U postgres -d postgres -qAtc "CREATE DATABASE $PG_DB" >/dev/null
  STORES+=("postgres postgres://postgres@127.0.0.1:5432/$PG_DB")
fi

RESULTS="$WORK/results" # tool round wall rate cpu:client,server,postgres,others HEAD GET other
: >"$RESULTS"
# Runs "$@" timed, with CPU and request accounting. Args: tool round requests-or-0 cmd...
measure() {
  local tool=$1 round=$2 n=$3 c0 q0 rc=0 wall u s q1 dh dg do_ srv pg busy rate others
  shift 3
  q0=$(counts)
  c0=$(cpu_snapshot)
  { time timeout 900 "$@" >"$WORK/out" 2>"$WORK/err"; } 2>"$WORK/t" || rc=$?
  [ "$rc" -eq 0 ] || {
    head -c 2000 "$WORK/err" >&2
    die "$tool exited $rc"
  }
  read -r srv pg busy < <(echo "$c0 $(cpu_snapshot)" | awk '{printf "%.2f %.2f %.2f\n", $4 - $1, $5 - $2, $6 - $3}')
  q1=$(counts)
  read -r dh dg do_ < <(echo "$q0 $q1" | awk '{print $4 - $1, $5 - $2, $6 - $3}')
  read -r wall u s <"$WORK/t"
  if [ "$tool" = ab-keepalive ]; then
    rate=$(awk '/^Requests per second:/ {print $4}' "$WORK/out")
    [ "$(awk '/^Failed requests:/ {print $3}' "$WORK/out")" = 0 ] || die "ab: failed requests"
  else
    rate=$(calc '%.1f' "$TAGS / $wall")
  fi
  case $tool in freshen-* | baseline-*)
    [ "$(jq -r '"\(.results | length) \(.errors | length)"' "$WORK/out")" = "$TAGS 0" ] || die "$tool: errors: $(jq -c '.errors[0]' "$WORK/out")"
    ;;
  esac
  others=$(calc '%.2f' "$busy - $srv - $pg - $u - $s")
  echo "$tool $round $wall $rate $(calc '%.2f' "$u + $s") $srv $pg $others $dh $dg $do_" >>"$RESULTS"
  local req=$((dh + dg > 0 ? dh + dg : 1))
  printf '  %-16s #%s %6.2f s %6.0f req/s  HEAD %6s GET %6s other %s  CPU us/req: client %4.0f server %4.0f postgres %4.0f; others used %.2f cores\n' \
    "$tool" "$round" "$wall" "$rate" "$dh" "$dg" "$do_" "$(calc '%.0f' "($u + $s) * 1e6 / $req")" \
    "$(calc '%.0f' "$srv * 1e6 / $req")" "$(calc '%.0f' "$pg * 1e6 / $req")" "$(calc '%.2f' "$others / $wall")"
}

say "== baseline (GETs), not measured"
for store in "${STORES[@]}"; do
  read -r sname db <<<"$store"
  measure "freshen-$sname-baseline" 0 "$TAGS" env FRESHEN_DATABASE="$db" "$FRESHEN" check --config "$WORK/freshen.yaml" --json
done
say "== steady state, $RUNS interleaved rounds, concurrency $C"
for r in $(seq "$RUNS"); do
  measure ab-keepalive "$r" "$AB_N" ab -i -k -n "$AB_N" -c "$C" -H "Accept: $OCI_MANIFEST" "http://$HOST/v2/bench/manifests/t00001"
  measure curl-parallel "$r" "$TAGS" curl --parallel --parallel-max "$C" -K "$WORK/curl.cfg"
  for store in "${STORES[@]}"; do
    read -r sname db <<<"$store"
    order=("freshen $FRESHEN")
    if [ -n "$BASELINE" ]; then
      # Alternate who goes first, so neither always runs on a warmer cache.
      if [ $((r % 2)) = 1 ]; then order+=("baseline $BASELINE"); else order=("baseline $BASELINE" "${order[@]}"); fi
    fi
    for who in "${order[@]}"; do
      read -r name bin <<<"$who"
      measure "$name-$sname" "$r" "$TAGS" env FRESHEN_DATABASE="$db" "$bin" check --config "$WORK/freshen.yaml" --json
    done
  done
done
say

if [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
  for store in "${STORES[@]}"; do
    read -r sname db <<<"$store"
    say "== perf: freshen CPU by thread, one more steady-state run ($sname)"
    if timeout 900 env FRESHEN_DATABASE="$db" perf record -q -F 1999 -o "$WORK/perf.data" \
      -- "$FRESHEN" check --config "$WORK/freshen.yaml" --json >/dev/null 2>"$WORK/perf.err"; then
      perf report -i "$WORK/perf.data" --no-children --sort comm --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | sed -n '1,6p' | sed 's/^/    /'
    else
      say "  perf failed: $(sed -n 1,3p "$WORK/perf.err")"
    fi
  done
  say
fi

med() { awk -v t="$1" -v col="$2" '$1 == t && $2 > 0 {print $col}' "$RESULTS" | median; }
per_req() { awk -v t="$1" -v col="$2" '$1 == t && $2 > 0 {print $col * 1e6 / ($9 + $10)}' "$RESULTS" | median; }
ab=$(med ab-keepalive 4)
say "== summary: stand-in registry, $TAGS tags, concurrency $C, medians of $RUNS rounds"
printf '  %-22s %8s %8s %8s %9s %9s %8s %8s %8s %7s\n' "" "median s" "req/s" "% ab -k" "HEAD/tag" "GET/tag" "cpu cli" "cpu srv" "cpu pg" "others"
for tool in ab-keepalive curl-parallel $(for s in "${STORES[@]}"; do
  echo "freshen-${s%% *}"
  [ -z "$BASELINE" ] || echo "baseline-${s%% *}"
done); do
  rate=$(med "$tool" 4)
  if [ "$tool" = ab-keepalive ]; then hd=-; gt=-; else
    hd=$(calc '%.2f' "$(med "$tool" 9) / $TAGS")
    gt=$(calc '%.2f' "$(med "$tool" 10) / $TAGS")
  fi
  printf '  %-22s %8.2f %8.0f %7.0f%% %9s %9s %8.0f %8.0f %8.0f %7.2f\n' "$tool" "$(med "$tool" 3)" "$rate" \
    "$(calc '%.1f' "100 * $rate / $ab")" "$hd" "$gt" "$(per_req "$tool" 5)" "$(per_req "$tool" 6)" "$(per_req "$tool" 7)" \
    "$(awk -v t="$tool" '$1 == t && $2 > 0 {print $8 / $3}' "$RESULTS" | median)"
done
say "  (cpu columns: microseconds of CPU per request: the client, the stand-in server, PostgreSQL; others: cores"
say "   used meanwhile by processes outside this benchmark)"
if [ -n "$BASELINE" ]; then
  for s in "${STORES[@]}"; do
    s=${s%% *}
    say "  this build / BASELINE ($s): median wall $(calc '%.3f' "$(med "freshen-$s" 3) / $(med "baseline-$s" 3)"), client CPU per request $(calc '%.3f' "$(per_req "freshen-$s" 5) / $(per_req "baseline-$s" 5)")"
  done
fi
say "raw: tool round wall rate cpu_s:client,server,postgres,others HEAD GET other"
sed 's/^/  /' "$RESULTS"
