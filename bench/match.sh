#!/usr/bin/env bash
# Benchmark (not a test): matching a fleet's installed packages against a
# Debian-sized OSV set, freshen against its peers, in the same run.
#
#  1. Generates, deterministically from SEED, with
#     `crates/vuln/examples/match_bench.rs gen`:
#       - RECORDS OSV records in Debian's shape (DEBIAN-CVE-*, DSA-*, DLA-*;
#         `upstream` CVEs; `affected` per Debian:11/12/13 source package with
#         an ECOSYSTEM range `introduced: "0"` and a dpkg `fixed` version, or
#         none when unfixed; some `versions` lists; CVSS v3 vectors on half),
#         over real source package names, the records concentrated on a few
#         thousand of them (Zipf; linux, chromium, firefox-esr first);
#       - IMAGES images x PER_IMAGE installed dpkg packages (binary name and
#         version, source name and version, `Debian:12`) drawn from the real
#         binary packages of the apt lists (`/var/lib/apt/lists/*_Packages*`
#         of SUITE), a fifth of them shared by every image, each image lagging
#         behind (an older revision) on up to 30% of its packages.
#  2. RUNS interleaved rounds, each a new process per tool:
#       - `match_bench run` (freshen-vuln, release): times separately
#         (c) `Record::parse` of every record from the text the store keeps,
#         (a) `Index::new`, (b) `Index::matches` for every package (as
#         `inventory::vulns::match_packages` does), and the floor: the same
#         lookups in a plain HashMap, no version compared, no finding built;
#       - `match_peer.py` (the peer): the same data and rules in Python, with
#         python-apt's `apt_pkg.version_compare` (libapt-pkg's C++ dpkg
#         comparison); it counts findings rather than building them.
#     Checks that both count the same findings in every round.
#  3. Prints medians, packages/s and ratios; the target (issue 4) is
#     matching 1,000,000 packages in under 2 s.
#
#   bash bench/match.sh
#
# Knobs (environment): RUNS=5 SEED=1 RECORDS=50000 IMAGES=100
# PER_IMAGE=10000 SUITE=(this machine's codename) UNIVERSE= (a ready
# `name\tversion\tsource\tsource_version` file instead of the apt lists)
# PEER=auto|0|1 TIME_LIMIT=1800 (seconds, whole script) KEEP=1 (keep the
# temp dir) BUILD=0 (use the built example as it is) BASELINE= (another
# build of match_bench, e.g. from an earlier commit: it runs in every round
# too, and must find the same findings, for a before/after in one run).
#
# No network (apart from `apt-get install python3-apt` when it is missing).
# Writes only into a temp dir and cargo's target dir.
set -euo pipefail

RUNS=${RUNS:-5}
SEED=${SEED:-1}
RECORDS=${RECORDS:-50000}
IMAGES=${IMAGES:-100}
PER_IMAGE=${PER_IMAGE:-10000}
SUITE=${SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
UNIVERSE=${UNIVERSE:-}
PEER=${PEER:-auto}
BASELINE=${BASELINE:-}
TIME_LIMIT=${TIME_LIMIT:-1800}
KEEP=${KEEP:-0}
BUILD=${BUILD:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH=$TARGET/release/examples/match_bench

say() { printf '%s\n' "$*"; }
die() {
  printf 'match-bench: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }
need cargo "rustup/cargo"
need /usr/bin/python3 "apt-get install python3"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/freshen-match-bench.XXXXXX")
WATCHDOG_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
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

# Global time limit: the watchdog TERMs this script and then its children.
MAIN_PID=$$
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$TIME_LIMIT" &
  sp=$!
  wait "$sp"
  trap - TERM
  echo "match-bench: time limit of ${TIME_LIMIT}s reached; stopping" >&2
  kill -TERM "$MAIN_PID"
  for child in $(pgrep -P "$MAIN_PID"); do
    [ "$child" = "$BASHPID" ] || kill -TERM "$child" 2>/dev/null || true
  done
) &
WATCHDOG_PID=$!

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
load() { cut -d' ' -f1 /proc/loadavg; }

# ---------------------------------------------------------------- tools
if [ "$BUILD" = 1 ]; then
  say "== cargo build --release -p freshen-vuln --example match_bench"
  (cd "$ROOT" && cargo build --release -p freshen-vuln --example match_bench --locked 2>&1 | tail -3) ||
    die "the build failed"
fi
[ -x "$BENCH" ] || die "$BENCH not built (BUILD=1)"
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || die "BASELINE=$BASELINE is not an executable"
PEER_OK=0
if [ "$PEER" != 0 ]; then
  if ! /usr/bin/python3 -c 'import apt_pkg' 2>/dev/null; then
    say "(installing python3-apt with apt-get)"
    apt-get install -y python3-apt >"$WORK/apt.log" 2>&1 || true
  fi
  if /usr/bin/python3 -c 'import apt_pkg' 2>/dev/null; then
    PEER_OK=1
  elif [ "$PEER" = 1 ]; then
    die "no python3-apt (apt-get install python3-apt)"
  else
    say "(no python3-apt: no peer)"
  fi
fi

# ---------------------------------------------------------------- data
if [ -z "$UNIVERSE" ]; then
  UNIVERSE=$WORK/universe.tsv
  mapfile -t LISTS < <(ls /var/lib/apt/lists/*_dists_"${SUITE}"_main_binary-*_Packages* 2>/dev/null | sort)
  [ "${#LISTS[@]}" -gt 0 ] || die "no apt list for $SUITE main in /var/lib/apt/lists (apt-get update, or UNIVERSE=FILE)"
  for l in "${LISTS[@]}"; do
    /usr/lib/apt/apt-helper cat-file "$l"
  done | awk -F': ' '
    /^Package: / {p = $2} /^Version: / {v = $2} /^Source: / {s = $2}
    /^$/ {
      if (p != "") {
        src = s; sv = v
        if (src == "") src = p
        else if (match(src, / \(.*\)/)) {sv = substr(src, RSTART + 2, RLENGTH - 3); src = substr(src, 1, RSTART - 1)}
        print p "\t" v "\t" src "\t" sv
      }
      p = ""; v = ""; s = ""
    }' >"$UNIVERSE"
  say "universe: ${LISTS[*]##*/}"
fi
say "universe: $(wc -l <"$UNIVERSE") binary packages, $(cut -f3 "$UNIVERSE" | sort -u | wc -l) source packages, sha256 $(sha256sum "$UNIVERSE" | cut -c1-16)"
DATA=$WORK/data
"$BENCH" gen --universe "$UNIVERSE" --out "$DATA" --seed "$SEED" --records "$RECORDS" \
  --images "$IMAGES" --per-image "$PER_IMAGE" | sed 's/^/  /'
say "  records.jsonl $(calc '%.1f' "$(stat -c %s "$DATA/records.jsonl") / 1048576") MiB, sha256 $(sha256sum "$DATA/records.jsonl" | cut -c1-16); packages.tsv sha256 $(sha256sum "$DATA/packages.tsv" | cut -c1-16)"
say "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
say

# ---------------------------------------------------------------- rounds
RESULTS=$WORK/results
: >"$RESULTS"
# results: tool round parse build match floor findings affected load_before load_after
val() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
say "== $RUNS interleaved rounds (s)"
for rep in $(seq "$RUNS"); do
  l0=$(load)
  timeout 900 "$BENCH" run --data "$DATA" >"$WORK/freshen-$rep" || die "match_bench run failed"
  f=$WORK/freshen-$rep
  echo "freshen $rep $(val parse_s "$f") $(val build_s "$f") $(val match_s "$f") $(val floor_s "$f") $(val findings "$f") $(val affected_packages "$f") $l0 $(load)" >>"$RESULTS"
  printf '  freshen #%-2s parse %6.2f  build %6.2f  match %6.2f  floor %6.3f  findings %s  (load %s)\n' "$rep" \
    "$(val parse_s "$f")" "$(val build_s "$f")" "$(val match_s "$f")" "$(val floor_s "$f")" "$(val findings "$f")" "$l0"
  if [ -n "$BASELINE" ]; then
    l0=$(load)
    timeout 900 "$BASELINE" run --data "$DATA" >"$WORK/base-$rep" || die "BASELINE run failed"
    b=$WORK/base-$rep
    echo "base $rep $(val parse_s "$b") $(val build_s "$b") $(val match_s "$b") $(val floor_s "$b") $(val findings "$b") $(val affected_packages "$b") $l0 $(load)" >>"$RESULTS"
    printf '  base    #%-2s parse %6.2f  build %6.2f  match %6.2f  floor %6.3f  findings %s  (load %s)\n' "$rep" \
      "$(val parse_s "$b")" "$(val build_s "$b")" "$(val match_s "$b")" "$(val floor_s "$b")" "$(val findings "$b")" "$l0"
    [ "$(val findings "$b")" = "$(val findings "$f")" ] || die "freshen and BASELINE disagree: findings $(val findings "$f") vs $(val findings "$b")"
  fi
  if [ "$PEER_OK" = 1 ]; then
    l0=$(load)
    timeout 1800 /usr/bin/python3 "$ROOT/bench/match_peer.py" "$DATA" >"$WORK/peer-$rep" || die "match_peer.py failed"
    p=$WORK/peer-$rep
    echo "peer $rep $(val parse_s "$p") $(val build_s "$p") $(val match_s "$p") - $(val findings "$p") $(val affected_packages "$p") $l0 $(load)" >>"$RESULTS"
    printf '  peer    #%-2s parse %6.2f  build %6.2f  match %6.2f  %14s findings %s  (load %s)\n' "$rep" \
      "$(val parse_s "$p")" "$(val build_s "$p")" "$(val match_s "$p")" "" "$(val findings "$p")" "$l0"
    [ "$(val findings "$p")" = "$(val findings "$f")" ] && [ "$(val affected_packages "$p")" = "$(val affected_packages "$f")" ] ||
      die "freshen and the peer disagree: findings $(val findings "$f") vs $(val findings "$p"), affected packages $(val affected_packages "$f") vs $(val affected_packages "$p")"
  fi
done
say

# ---------------------------------------------------------------- summary
F1=$WORK/freshen-1
PACKAGES=$(val packages "$F1")
med() { awk -v t="$1" -v c="$2" '$1 == t {print $c}' "$RESULTS" | median; }
# Median of the per-round ratio a/b of columns ca and cb.
paired() {
  awk -v a="$1" -v ca="$2" -v b="$3" -v cb="$4" '$1 == a {ra[$2] = $ca} $1 == b {rb[$2] = $cb}
    END {for (r in ra) if (r in rb && rb[r] > 0) print ra[r] / rb[r]}' "$RESULTS" | median
}
total() { awk -v t="$1" '$1 == t {print $3 + $4 + $5}' "$RESULTS" | median; }
say "== summary: $(val records "$F1") records ($(calc '%.1f' "$(val record_bytes "$F1") / 1048576") MiB of stored JSON), $PACKAGES packages ($IMAGES images x $PER_IMAGE), $(val distinct_source_versions "$F1") distinct (source, version)"
say "   $(val candidates "$F1") candidate entries looked at, $(val findings "$F1") findings on $(val affected_packages "$F1") affected packages"
say "   medians of $RUNS rounds, seconds; load average (1 min) at the rounds' starts: $(awk '{print $9}' "$RESULTS" | sort -g | tr '\n' ' ')"
printf '  %-46s %9s %9s %9s %13s\n' "" "parse" "build" "match" "packages/s"
printf '  %-46s %9.3f %9.3f %9.3f %13s\n' "freshen-vuln (Record::parse, Index::new, matches)" "$(med freshen 3)" "$(med freshen 4)" "$(med freshen 5)" \
  "$(calc '%.0f' "$PACKAGES / $(med freshen 5)")"
if [ -n "$BASELINE" ]; then
  printf '  %-46s %9.3f %9.3f %9.3f %13s\n' "BASELINE build of match_bench" "$(med base 3)" "$(med base 4)" "$(med base 5)" \
    "$(calc '%.0f' "$PACKAGES / $(med base 5)")"
fi
printf '  %-46s %9s %9s %9.3f %13s\n' "floor: HashMap get, no comparison" "" "" "$(med freshen 6)" "$(calc '%.0f' "$PACKAGES / $(med freshen 6)")"
if [ "$PEER_OK" = 1 ]; then
  printf '  %-46s %9.3f %9.3f %9.3f %13s\n' "peer: Python + apt_pkg.version_compare" "$(med peer 3)" "$(med peer 4)" "$(med peer 5)" \
    "$(calc '%.0f' "$PACKAGES / $(med peer 5)")"
fi
say "  ratios (median of the per-round ratios):"
say "    freshen match / floor:   $(calc '%.1f' "$(paired freshen 5 freshen 6)")x"
[ -n "$BASELINE" ] && say "    BASELINE / freshen, match: $(calc '%.2f' "$(paired base 5 freshen 5)")x"
if [ "$PEER_OK" = 1 ]; then
  say "    peer / freshen, parse:   $(calc '%.2f' "$(paired peer 3 freshen 3)")x"
  say "    peer / freshen, build:   $(calc '%.2f' "$(paired peer 4 freshen 4)")x"
  say "    peer / freshen, match:   $(calc '%.2f' "$(paired peer 5 freshen 5)")x"
  say "    peer / freshen, all three: $(calc '%.2f' "$(total peer) / $(total freshen)")x (ratio of medians of the sums)"
fi
m=$(med freshen 5)
say "  target: match $PACKAGES packages in under 2 s: $(calc '%.2f' "$m") s, $(awk -v m="$m" 'BEGIN {print (m < 2) ? "met" : "missed"}')"
say "  what the CLI pays per call (parse + build + match): $(calc '%.2f' "$(total freshen)") s"
say
say "raw: tool round parse build match floor findings affected_packages load_before load_after"
sed 's/^/  /' "$RESULTS"
